"""Incremental parsing (the language server's): the module built from separately parsed
declarations is the module `parse` gives for the whole text, spans and comments included,
after any sequence of edits; whatever it cannot build the same way falls back to `parse`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from carlang import ast
from carlang.incremental import DeclarationCache, split_declarations
from carlang.loader import ParseCache
from carlang.parse import ParseResult, parse
from carlang.source import Source

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").rglob("*.car"))
PROGRAM = (ROOT / "examples" / "release" / "release.car").read_text()


def _spans(value: Any, out: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    if isinstance(value, ast.Node):
        out.append((type(value).__name__, value.span.start, value.span.end))
        for name in ast.compared_fields(type(value)):
            _spans(getattr(value, name), out)
        if isinstance(value, ast.Value):  # (where each item of a list or map was written)
            _spans(value.parts, out)
    elif isinstance(value, tuple | list):
        for item in value:
            _spans(item, out)
    elif isinstance(value, dict):
        for item in value.values():
            _spans(item, out)
    return out


def _same_as_parse(cache: DeclarationCache, text: str, whole: ParseResult | None = None) -> bool:
    """Whether the incremental parse was made and equals the whole parse."""
    source = Source("x.car", text)
    mine = cache.parse(source)
    whole = whole or parse(source)
    if mine is None:
        return False
    assert mine.module == whole.module
    assert _spans(mine.module, []) == _spans(whole.module, [])
    assert [(c.text, c.span) for c in mine.comments] == [(c.text, c.span) for c in whole.comments]
    assert not whole.diagnostics.items
    return True


def test_every_example_parses_the_same_in_pieces() -> None:
    for path in EXAMPLES:
        assert _same_as_parse(DeclarationCache(), path.read_text()), path


def test_a_shifted_declaration_keeps_where_each_nested_value_was_written() -> None:
    """A value's items and entries (`Value.parts`) move with their declaration, each once,
    though a header map's entries are held twice (by the map and by the setting)."""
    text = (ROOT / "tests" / "golden" / "diagnostics" / "mcp_headers.car").read_text()
    text += "\nproposal p {\n  a = t(x: { legs: [{ to: 7 }] })\n}\n"
    cache = DeclarationCache()
    cache.parse(Source("x.car", text))
    edited = "tool added_above()\n\n" + text
    mine = cache.parse(Source("x.car", edited))
    assert mine is not None
    assert _spans(mine.module, []) == _spans(parse(Source("x.car", edited)).module, [])


def test_pieces_start_at_declarations() -> None:
    pieces = split_declarations(
        "# intro\ntool a()\n  # inside\npolicy p: deny a\nproposal x {\n}\n"
    )
    assert [text.split("\n", 1)[0] for _offset, text in pieces] == [
        "# intro",
        "tool a()",
        "policy p: deny a",
        "proposal x {",
    ]


_EDITS = st.lists(
    st.tuples(
        st.integers(0, 10_000),
        st.sampled_from(["comment", "rename", "delete", "duplicate", "blank"]),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=20)
@given(_EDITS)
def test_edits_keep_the_parse_exact(edits: list[tuple[int, str]]) -> None:
    cache = DeclarationCache()
    text = PROGRAM
    assert _same_as_parse(cache, text)
    for where, kind in edits:
        lines = text.split("\n")
        index = where % len(lines)
        if kind == "comment":
            lines.insert(index, "# a note " + str(where))
        elif kind == "rename":
            lines[index] = lines[index].replace("1.4.2", "1.4.3", 1)
        elif kind == "delete" and lines[index].startswith(("deny_tool", "deny_keyword")):
            del lines[index]
        elif kind == "duplicate" and lines[index].startswith(("deny_keyword", "deny_tool")):
            lines.insert(index, lines[index])
        elif kind == "blank":
            lines.insert(index, "")
        text = "\n".join(lines)
        whole = parse(Source("x.car", text))
        if whole.diagnostics.items:
            continue
        assert _same_as_parse(cache, text, whole)


def test_a_broken_declaration_falls_back_to_the_whole_parse(tmp_path: Path) -> None:
    cache = ParseCache()
    path = tmp_path / "x.car"
    text = "tool a()\nproposal p {\n  x = a()\n"  # the proposal is never closed
    result = cache.parse(path, Source("x.car", text))
    assert [d.code for d in result.diagnostics] == [
        d.code for d in parse(Source("x.car", text)).diagnostics
    ]
    assert result.diagnostics.has_errors
    # an import after a declaration is the parser's to report
    late = 'tool a()\nimport "b.car"\n'
    assert DeclarationCache().parse(Source("x.car", late)) is None
    assert parse(Source("x.car", late)).diagnostics.has_errors
