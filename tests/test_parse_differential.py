"""The fused parse driver (`carlang_runtime.lalr`, one loop for lexing and parsing), in Python
and in C (the speedups, where they are built), against the step-by-step driver it replaced
(tests/lalr_reference.py): on generated programs, mutated programs and CEL expressions, the
same tree with the same spans, the same syntax problems (so the same first error, at the same
position), the same comments and the same literal errors."""

from __future__ import annotations

import random
from dataclasses import fields, is_dataclass
from typing import Any

import pytest
from carlang_runtime.cel import parser as cel_parser
from carlang_runtime.lalr import Node, Outcome
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.generate import generate_program
from carlang import ast
from carlang.diagnostics import Diagnostics
from carlang.parse import AstBuilder, parse
from carlang.source import Source, Span
from carlang.syntax import engine
from tests import lalr_reference
from tests.test_lalr import cel_expressions
from tests.test_properties import mutations, programs

#: Every test runs with the C driver and with the Python one (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("speedups")


def plain(value: Any) -> Any:
    """A comparable form that keeps what equality of AST nodes ignores: spans, and the exact
    type of every container (a driver's internal list type must never leak into a tree)."""
    if isinstance(value, Node):
        return ("Node", value.data, plain(value.children), value.span)
    if isinstance(value, ast.Node | Span) or is_dataclass(value):
        return (type(value).__name__, tuple(plain(getattr(value, f.name)) for f in fields(value)))
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(plain(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, plain(v)) for k, v in value.items()))
    return value


def assert_same_parse(text: str) -> None:
    source = Source("t.car", text)
    fused_findings, reference_findings = Diagnostics(), Diagnostics()
    fused = engine().parse(text, AstBuilder(source, fused_findings))
    reference = lalr_reference.parse(engine(), text, AstBuilder(source, reference_findings))
    assert_same_outcome(fused, reference)
    assert fused_findings.items == reference_findings.items


def assert_same_outcome(fused: Outcome, reference: Outcome) -> None:
    assert plain(fused.value) == plain(reference.value)
    assert fused.problems == reference.problems
    assert fused.comments == reference.comments


@st.composite
def noisy(draw: st.DrawFn, text: str) -> str:
    """`text` with up to three bits of noise put in: characters, brackets, keywords."""
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        noise = draw(
            st.one_of(
                st.text(min_size=1, max_size=4),
                st.sampled_from(["{", "}", "(", ")", "[", "]", ",", '"', "#", "\n", "proposal "]),
                st.sampled_from(["tool ", "state ", "retry", "5sec", "==", "= ", "after a1"]),
            )
        )
        text = text[:at] + noise + text[at:]
    return text


@settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_generated_programs_parse_the_same(text: str) -> None:
    assert_same_parse(text)


@pytest.mark.slow  # (the default run stays under three minutes; CI runs it)
@settings(max_examples=120, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_mutated_examples_parse_the_same(text: str) -> None:
    assert_same_parse(text)


@pytest.mark.slow  # (the default run stays under three minutes; CI runs it)
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000).flatmap(lambda seed: noisy(generate_program(60, seed=seed))))
def test_noisy_benchmark_programs_parse_the_same(text: str) -> None:
    assert_same_parse(text)


def test_a_large_program_parses_the_same() -> None:
    text = generate_program(2_000, seed=5)
    assert_same_parse(text)
    result = parse(Source("big.car", text))
    assert result.module is not None and not result.diagnostics.has_errors


def test_many_errors_stop_at_the_limit_the_same() -> None:
    rng = random.Random(3)
    lines = generate_program(300, seed=9).splitlines()
    for _ in range(40):
        lines.insert(rng.randrange(len(lines)), rng.choice(["}", "{ (", '"x', "retry =", "#"]))
    assert_same_parse("\n".join(lines))


@settings(max_examples=200)
@given(st.one_of(cel_expressions(), cel_expressions().flatmap(noisy)))
def test_cel_expressions_parse_the_same(text: str) -> None:
    eng = cel_parser._engine()
    assert_same_outcome(
        eng.parse(text, cel_parser._BUILDER),
        lalr_reference.parse(eng, text, cel_parser._BUILDER),
    )


def test_contextual_lexing_corners_parse_the_same() -> None:
    """Where the one-regex fast path hands over: keywords written as names (`env:`, `url:`,
    a tool called `state`), a number the state wants as a whole number (`retry 2`), a CEL
    condition (a terminal only its state reads), comments right before tokens, the end."""
    text = (
        "tool deploy(env: string, url: string) # trailing\n"
        "tool state(x: int)\n"
        "policy p: deny deploy when params.env == 'prod' # why\n"
        "proposal q {\n"
        '  a = deploy(env: "prod", url: "https://x")#c\n'
        "  b = state(x: 1) after a { retry 2 timeout 5s #c\n"
        "  }\n"
        "}\n"
        "#last"
    )
    for cut in range(0, len(text) + 1, 2):
        assert_same_parse(text[:cut])


def test_an_error_in_a_builder_method_reaches_the_caller() -> None:
    class Failing(AstBuilder):
        def call(self, *children: Any) -> Any:
            raise ZeroDivisionError("from the builder")

    text = "proposal p {\n  a = t(x: 1)\n}\n"
    with pytest.raises(ZeroDivisionError, match="from the builder"):
        engine().parse(text, Failing(Source("t.car", text), Diagnostics()))
