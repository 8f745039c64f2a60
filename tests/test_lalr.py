"""The table engine agrees with lark itself: the same trees for carlang programs and for CEL
expressions, and the checked-in tables are the ones the grammars produce today."""

from __future__ import annotations

import re
from typing import Any

import pytest
from carlang_runtime.cel import parser as cel_parser
from carlang_runtime.lalr import Engine, Node, Tables, build_tables
from hypothesis import given, settings
from hypothesis import strategies as st
from lark import Lark, Token, Tree

from benchmarks.generate import generate_program
from carlang.grammar import grammar_text
from carlang.syntax import TABLES_PATH, engine, fresh_tables
from tests.conftest import ROOT


def shape(value: Any) -> Any:
    """A comparable form of a lark tree or an engine tree."""
    if isinstance(value, Tree):
        return (value.data, [shape(c) for c in value.children])
    if isinstance(value, Node):
        return (value.data, [shape(c) for c in value.children])
    if isinstance(value, Token):
        return (value.type, str(value))
    if isinstance(value, tuple):
        return (value[0], value[1])
    return value


LARK = Lark(grammar_text(), parser="lalr", maybe_placeholders=True)


def engine_tree(text: str) -> Any:
    outcome = engine().parse(text, object())
    assert not outcome.problems
    return outcome.value


@pytest.mark.parametrize("path", sorted((ROOT / "examples").rglob("*.car")), ids=lambda p: p.name)
def test_carlang_trees_match_lark(path: Any) -> None:
    text = path.read_text()
    assert shape(engine_tree(text)) == shape(LARK.parse(text))


@pytest.mark.slow  # (the default run stays under three minutes; CI runs it)
def test_generated_program_trees_match_lark() -> None:
    text = generate_program(400, seed=3)
    assert shape(engine_tree(text)) == shape(LARK.parse(text))


def test_checked_in_tables_are_current() -> None:
    assert TABLES_PATH.read_text() == fresh_tables().to_json(), (
        "regenerate: python -m carlang.syntax"
    )
    cel = build_tables(
        cel_parser.grammar_text(),
        "expr",
        g_regex_flags=re.M,
        maybe_placeholders=False,
        priority="invert",
    )
    assert cel_parser.TABLES_PATH.read_text() == cel.to_json(), (
        "regenerate: python -m carlang_runtime.cel.parser"
    )


def test_tables_round_trip_through_json() -> None:
    tables = fresh_tables()
    again = Tables.from_json(tables.to_json())
    assert again.to_json() == tables.to_json()
    assert shape(Engine(again).parse("tool t()", object()).value) == shape(LARK.parse("tool t()"))


@pytest.fixture
def tables_cache(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A disk cache of its own, which no earlier read in this process has seen."""
    from carlang_runtime import lalr

    monkeypatch.setenv("CARLANG_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(lalr, "_stored", {})
    return tmp_path / "lalr"


def test_tables_read_again_come_from_the_disk_cache_unchanged(tables_cache: Any) -> None:
    from carlang_runtime import lalr

    text = TABLES_PATH.read_text("utf-8")
    first = lalr.load_tables(TABLES_PATH, grammar_text(), "start")
    assert [p.name for p in tables_cache.iterdir()] != []
    lalr._stored.clear()
    reads: list[str] = []
    real = Tables.from_json
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Tables, "from_json", lambda text: reads.append(text) or real(text))
        again = lalr.load_tables(TABLES_PATH, grammar_text(), "start")
    assert reads == []  # (from the cache, not the text)
    assert again == first
    assert again.to_json() == text


def test_a_corrupt_tables_cache_falls_back_to_the_text(tables_cache: Any) -> None:
    from carlang_runtime import lalr

    lalr.load_tables(TABLES_PATH, grammar_text(), "start")
    for cached in tables_cache.iterdir():
        cached.write_bytes(b"\x00not marshal")
    lalr._stored.clear()
    again = lalr.load_tables(TABLES_PATH, grammar_text(), "start")
    assert again.to_json() == TABLES_PATH.read_text("utf-8")


def test_edited_tables_text_is_never_read_stale_from_the_cache(
    tables_cache: Any, tmp_path: Any
) -> None:
    from carlang_runtime import lalr

    copy = tmp_path / "tables.json"
    copy.write_text(TABLES_PATH.read_text("utf-8"), encoding="utf-8")
    lalr.load_tables(copy, grammar_text(), "start")
    stale = Tables.from_json(copy.read_text("utf-8"))
    stale.start_state = stale.start_state + 1
    copy.write_text(stale.to_json(), encoding="utf-8")
    assert lalr.load_tables(copy, grammar_text(), "start").start_state == stale.start_state


# -- CEL -------------------------------------------------------------------------------------

_CELPY: Any = None


def _celpy_parser() -> Any:
    """cel-python's own parser (built once: it is a class-level singleton)."""
    global _CELPY
    if _CELPY is None:
        from celpy.celparser import CELParser

        _CELPY = CELParser()
    return _CELPY


def collapsed(tree: Any) -> Any:
    """cel-python's tree with the one-operand steps of the precedence ladder collapsed, as
    carlang's engine makes them (`collapse=`)."""
    if not (isinstance(tree, tuple) and len(tree) == 2 and isinstance(tree[1], list)):
        return tree
    data, children = tree
    children = [collapsed(child) for child in children]
    if data in cel_parser._LADDER and len(children) == 1 and isinstance(children[0], tuple):
        only = children[0]
        if len(only) == 2 and isinstance(only[1], list):
            return only
    return (data, children)


names = st.sampled_from(["params", "action", "state", "x", "size", "has"])
fields = st.sampled_from(["url", "env", "tool", "a", "b"])
literals = st.sampled_from(
    ['"a"', "'b'", "1", "2.5", "0u", "true", "false", "null", 'b"x"', "-3", "1e3"]
)


@st.composite
def cel_expressions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 3:
        return draw(st.one_of(literals, names))
    kind = draw(st.integers(0, 11))
    sub = lambda: draw(cel_expressions(depth + 1))  # noqa: E731
    if kind == 0:
        return draw(literals)
    if kind == 1:
        return f"{draw(names)}.{draw(fields)}"
    if kind == 2:
        return f"{sub()} {draw(st.sampled_from(['==', '!=', '<', '<=', '>', '>=', 'in']))} {sub()}"
    if kind == 3:
        return f"{sub()} {draw(st.sampled_from(['&&', '||']))} {sub()}"
    if kind == 4:
        return f"{sub()} {draw(st.sampled_from(['+', '-', '*', '/', '%']))} {sub()}"
    if kind == 5:
        return f"!{sub()}" if draw(st.booleans()) else f"-{sub()}"
    if kind == 6:
        return f"{sub()} ? {sub()} : {sub()}"
    if kind == 7:
        return f"[{', '.join(sub() for _ in range(draw(st.integers(0, 2))))}]"
    if kind == 8:
        return "{" + ", ".join(f"{sub()}: {sub()}" for _ in range(draw(st.integers(0, 2)))) + "}"
    if kind == 9:
        return f"{draw(names)}.{draw(fields)}.{draw(st.sampled_from(['startsWith', 'contains', 'exists', 'all']))}({sub()})"
    if kind == 10:
        return f"{sub()}[{sub()}]"
    return f"({sub()})"


@settings(max_examples=300)
@given(cel_expressions())
def test_cel_trees_match_cel_python(text: str) -> None:
    celpy = _celpy_parser()
    try:
        expected = collapsed(shape(celpy.parse(text)))
    except Exception:
        with pytest.raises(cel_parser.CelSyntaxError):
            cel_parser.parse_cel(text)
        return
    assert shape(cel_parser.parse_cel(text)) == expected


@pytest.mark.parametrize("text", ["a &&", "x == 'unterminated", "f(1,", "a ? b", "[1, 2", "}"])
def test_cel_errors_where_cel_python_errors(text: str) -> None:
    from celpy.celparser import CELParseError

    with pytest.raises(CELParseError):
        _celpy_parser().parse(text)
    with pytest.raises(cel_parser.CelSyntaxError):
        cel_parser.parse_cel(text)


# -- lexer order -------------------------------------------------------------------------------

_LEXER_TEXT = st.text(
    st.sampled_from(list("ab_9.0-5e+smh$\"'\\|<>=!&,:;{}[]()?*/#` \t\nµ")), max_size=12
)


def _lark_order_match(engine: Engine, names: frozenset[str], text: str) -> tuple[str, int] | None:
    """What the state's lexer reads at the start of `text`, with its terminals in lark's
    order (`_Scanner`, which the step-by-step driver uses), after the ignored text."""
    skipped = engine.skip.match(text) if engine.skip is not None else None
    start = skipped.end() if skipped is not None else 0
    if engine.comment is not None and engine.comment.match(text, start):
        return None
    match = engine._scanner_for(names).regex.match(text, start)
    return None if match is None else (str(match.lastgroup), match.end())


def _lead_match(
    engine: Engine, names: frozenset[str], text: str, tuned: bool
) -> tuple[str, int] | None:
    lead = engine._lead_for(names, tuned)
    match = lead.match(text, 0)
    if match is None:
        return None
    return str(lead.terminals[match.lastindex]), match.end()  # type: ignore[index]


@settings(max_examples=300)
@given(_LEXER_TEXT)
def test_lead_lexers_read_what_lark_order_reads(text: str) -> None:
    """The one-match lexers, tuned (their own order: identifiers and punctuation first; no
    capturing groups) or not, read the same terminal, to the same end, as lark's order, for
    the whole grammar and for each state's terminals, in carlang and in CEL."""
    for eng in (engine(), cel_parser._engine()):
        for names in {eng.global_names, *(a - {"$END"} for a in eng.accepts[:40])} - {frozenset()}:
            expected = _lark_order_match(eng, frozenset(names), text)
            for tuned in (False, True):
                got = _lead_match(eng, frozenset(names), text, tuned)
                if got is not None or expected is None:  # a lead reads nothing where only a
                    assert got == expected, (text, sorted(names))  # comment or space is left


def test_an_engine_tunes_its_lexers_once_it_has_lexed_enough_text() -> None:
    eng = Engine(engine().tables, comment="COMMENT")
    eng.parse("tool t()", object())
    assert not eng.tuned  # a short text: lark's order, without the set-up
    tree = eng.parse(generate_program(600, seed=5), object())
    assert eng.tuned and not tree.problems


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r'"([^"\\\n]|\\.)*"', r'"(?:[^"\\\n]|\\.)*"'),
        (r"[(]x(y)", r"[(]x(?:y)"),
        (r"[^]()](z)", r"[^]()](?:z)"),
        (r"\((x)\)", r"\((?:x)\)"),
        (r"(a)\1", r"(a)\1"),  # a backreference needs its group
        (r"(?P<n>a)(b)", r"(?P<n>a)(b)"),  # so may a named one: left as it is
    ],
)
def test_lead_patterns_lose_only_groups_nothing_reads(pattern: str, expected: str) -> None:
    from carlang_runtime.lalr import _uncaptured

    assert _uncaptured(pattern, 0) == expected


def test_reduction_steps_made_for_a_builder_class_serve_its_other_builders() -> None:
    class Builder:
        span = (0, 0)

        def tool_decl(self, *children: Any) -> tuple[str, Any]:
            return ("built by", self)

    eng = Engine(engine().tables, comment="COMMENT")
    first, second, odd = Builder(), Builder(), Builder()
    assert eng.parse("tool t()", first).value.children[0] == ("built by", first)
    assert eng.parse("tool t()", second).value.children[0] == ("built by", second)
    odd.tool_decl = None  # type: ignore[assignment, method-assign]  # no method here after all
    assert eng.parse("tool t()", odd).value.children[0].data == "tool_decl"
