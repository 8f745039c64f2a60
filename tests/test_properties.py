"""Property tests: generated valid programs compile cleanly; fmt round-trips to the same IR and
keeps every comment; mutated programs (deleted tokens, swapped brackets, truncation, random
characters, invalid UTF-8) give diagnostics and never an exception."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from carlang.cli import app
from carlang.compiler import compile_file
from carlang.fmt import format_source
from carlang.parse import parse
from carlang.source import Source, Span
from tests.conftest import ROOT

BASE = Path("/tmp/carlang-properties")
TYPES = {
    "string": st.sampled_from(['"a"', '"b c"', '"https://x.example"', '""']),
    "int": st.integers(-5, 500).map(str),
    "bool": st.sampled_from(["true", "false"]),
    '"red" | "blue"': st.sampled_from(['"red"', '"blue"']),
    "list[string]": st.sampled_from(["[]", '["x"]', '["x", "y"]']),
    "any": st.sampled_from(["1", '"s"', "[1, 2]", "{ k: 1 }", "null"]),
}


@st.composite
def programs(draw: st.DrawFn) -> str:
    """A valid program: every call fits its tool, every dependency exists, no cycles."""
    lines = ["# generated"]
    tools: dict[str, list[tuple[str, str, bool]]] = {}
    for t in range(draw(st.integers(1, 3))):
        params = []
        for p in range(draw(st.integers(0, 3))):
            type_ = draw(st.sampled_from(sorted(TYPES)))
            optional = draw(st.booleans())
            params.append((f"p{p}", type_, optional))
        tools[f"tool{t}"] = params
        signature = ", ".join(f"{n}{'?' if o else ''}: {ty}" for n, ty, o in params)
        body = draw(st.sampled_from(["", " { idempotent }", " {\n  cache 30s\n  rate 3 per 1m\n}"]))
        lines.append(f"tool tool{t}({signature}){body}")
    keys = {
        f"s{i}": draw(st.sampled_from(["int", "bool", "string"]))
        for i in range(draw(st.integers(0, 3)))
    }
    if keys or draw(st.booleans()):
        entries = "\n".join(f"  {k}: {ty} = {draw(TYPES[ty])}" for k, ty in keys.items())
        lines.append("state {\n  out.*: any\n" + entries + "\n}")
        keys["out.*"] = "any"
    if draw(st.booleans()):
        lines.append(
            f'policy never: deny {", ".join(tools)} when action.tool == "not a tool"  # comment'
        )
        lines.append('  message "never matches"')
    for p in range(draw(st.integers(1, 3))):
        lines.append(f'proposal plan{p} from "model" {{')
        used: list[str] = []
        calls: set[str] = set()
        for a in range(draw(st.integers(1, 5))):
            tool = draw(st.sampled_from(sorted(tools)))
            args = [
                f"{n}: {draw(TYPES[ty])}"
                for n, ty, optional in tools[tool]
                if not optional or draw(st.booleans())
            ]
            call = f"{tool}({', '.join(args)})"
            if call in calls:
                call = f"{tool}({', '.join(args)})" if not args else call
                if call in calls:
                    continue
            calls.add(call)
            after = f" after {draw(st.sampled_from(used))}" if used and draw(st.booleans()) else ""
            body = []
            if "out.*" in keys and draw(st.booleans()):
                body.append(f"effects {{ out.p{p}a{a} = {draw(TYPES['any'])} }}")
            if draw(st.booleans()):
                body.append(f"retry {draw(st.integers(0, 3))}")
            if draw(st.booleans()):
                body.append("timeout 2s")
            text = f"  a{a} = {call}{after}"
            lines.append(text + (" { " + "  ".join(body) + " }" if body else ""))
            if draw(st.booleans()):
                lines.append("  # between actions")
            used.append(f"a{a}")
        lines.append("}")
    return "\n".join(lines) + "\n"


def strip_locs(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_locs(v) for k, v in value.items() if k not in ("loc", "when_loc")}
    if isinstance(value, list):
        return [strip_locs(v) for v in value]
    return value


def compile_text_at(text: str, name: str = "gen.car") -> Any:
    BASE.mkdir(exist_ok=True)
    return compile_file(BASE / name, BASE, text=text)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_generated_programs_compile(text: str) -> None:
    result = compile_text_at(text)
    errors = [d.message for d in result.diagnostics.items if d.severity == "error"]
    assert not errors, (errors, text)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_fmt_round_trips(text: str) -> None:
    formatted = format_source(Source("gen.car", text))
    assert format_source(Source("gen.car", formatted)) == formatted
    before = compile_text_at(text).program
    after = compile_text_at(formatted).program
    assert before is not None and after is not None
    assert strip_locs(json.loads(before.model_dump_json())) == strip_locs(
        json.loads(after.model_dump_json())
    )
    original = Counter(c.text for c in parse(Source("a", text)).comments)
    assert Counter(c.text for c in parse(Source("b", formatted)).comments) == original


# -- mutations ---------------------------------------------------------------------------------

SEEDS = [p.read_text() for p in sorted((ROOT / "examples").rglob("*.car"))]
TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[A-Za-z_*][A-Za-z0-9_.*]*|[0-9]+|\S')


@st.composite
def mutations(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    kind = draw(st.sampled_from(["delete", "swap", "truncate", "insert", "duplicate"]))
    tokens = list(TOKEN.finditer(text))
    if kind == "delete":
        token = draw(st.sampled_from(tokens))
        return text[: token.start()] + text[token.end() :]
    if kind == "swap":
        brackets = [m for m in tokens if m.group() in "{}()[]"]
        token = draw(st.sampled_from(brackets))
        other = draw(st.sampled_from([b for b in "{}()[]" if b != token.group()]))
        return text[: token.start()] + other + text[token.end() :]
    if kind == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    if kind == "insert":
        at = draw(st.integers(0, len(text)))
        noise = draw(st.text(min_size=1, max_size=5))
        return text[:at] + noise + text[at:]
    token = draw(st.sampled_from(tokens))
    return text[: token.end()] + " " + token.group() + text[token.end() :]


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_mutations_never_crash(text: str) -> None:
    result = compile_text_at(text)  # must not raise
    for diagnostic in result.diagnostics.items:
        for label in diagnostic.labels:
            assert 0 <= label.span.start <= len(label.source.text)
            assert label.span.start <= label.span.end


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.binary(min_size=1, max_size=8), st.integers(0, 10_000))
def test_invalid_bytes_from_the_command_line(seed: str, noise: bytes, at: int) -> None:
    BASE.mkdir(exist_ok=True)
    data = seed.encode()
    at = at % (len(data) + 1)
    path = BASE / "bytes.car"
    path.write_bytes(data[:at] + b"\xff" + noise + data[at:])
    result = CliRunner().invoke(app, ["check", str(path), "--root", str(BASE)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output


@given(st.text(st.sampled_from("ab\n"), max_size=12), st.integers(-3, 15), st.integers(-3, 15))
def test_span_line_columns_are_line_column_of_both_ends(text: str, start: int, end: int) -> None:
    source = Source("t.car", text)
    expected = (*source.line_column(start), *source.line_column(end))
    assert source.span_line_columns(Span(start, end)) == expected


@given(st.text(st.sampled_from("ab\n\r"), max_size=20), st.integers(0, 25))
def test_line_column_counts_lines_at_newlines_only(text: str, offset: int) -> None:
    at = min(offset, len(text))
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    assert Source("t.car", text).line_column(offset) == (line, column)
