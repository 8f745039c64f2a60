"""Incremental parsing for long-lived callers (the language server): a file is cut into its
top-level declarations, each parsed once per text and moved to where it now sits when an edit
before it shifts it, so an edit re-parses one declaration instead of the whole file.

The cut is at lines that start, in the first column, with a declaration keyword. The result is
the same module, spans included, that `parse` gives for the whole text (a test holds it to
that); whenever it might not be — a declaration that does not parse on its own, an import after
a declaration, a file with no declarations — the whole text is parsed instead, so diagnostics are
always exactly `carlang check`'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from . import ast
from .parse import ParseResult, parse
from .source import Source, Span
from .syntax import DECLARATION_KEYWORDS

__all__ = ["DeclarationCache", "split_declarations"]

# Longest keyword first, and in one order in every process (a set's order is not), so that
# the pattern is the same text each time: the regex cache keeps it by its text.
_BOUNDARY = re.compile(
    r"^(?:"
    + "|".join(sorted({"import", *DECLARATION_KEYWORDS}, key=lambda k: (-len(k), k)))
    + r")\b",
    re.MULTILINE,
)


def split_declarations(text: str) -> list[tuple[int, str]]:
    """`(offset, text)` of each piece: what comes before the first declaration keyword, then
    one piece from each keyword in the first column to the next."""
    starts = [m.start() for m in _BOUNDARY.finditer(text)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    ends = [*starts[1:], len(text)]
    return [(start, text[start:end]) for start, end in zip(starts, ends, strict=True)]


@dataclass
class _Piece:
    """One piece parsed on its own, its nodes currently placed at `offset`."""

    offset: int
    module: ast.Module
    comments: list[ast.Comment]


def _shift(value: Any, delta: int, moved: set[int] | None = None) -> None:
    """Move every node under `value` by `delta` characters (in place), each once: a literal's
    `parts` are nodes the tree may hold elsewhere too (a header map's entries)."""
    moved = set() if moved is None else moved
    if isinstance(value, ast.Node):
        if id(value) in moved:
            return
        moved.add(id(value))
        span = value.span
        if span:
            value.span = Span(span.start + delta, span.end + delta)
        for name in ast.compared_fields(type(value)):
            _shift(getattr(value, name), delta, moved)
        if isinstance(value, ast.Value) and value.parts is not None:
            _shift(value.parts, delta, moved)
    elif isinstance(value, tuple | list):
        for item in value:
            _shift(item, delta, moved)
    elif isinstance(value, dict):
        for item in value.values():
            _shift(item, delta, moved)


class DeclarationCache:
    """The pieces of one file's last parse, by their text."""

    def __init__(self) -> None:
        self._pieces: dict[str, _Piece] = {}

    def parse(self, source: Source) -> ParseResult | None:
        """The module of `source` from its pieces (parsing only the new ones), or None when
        the whole text must be parsed instead."""
        pieces: dict[str, _Piece] = {}
        imports: list[ast.Import] = []
        declarations: list[ast.Declaration] = []
        comments: list[ast.Comment] = []
        for offset, text in split_declarations(source.text):
            # the same text twice (two equal declarations): the second is parsed on its own
            piece = None if text in pieces else self._pieces.get(text)
            if piece is None:
                piece = self._parse_piece(source.name, text)
                if piece is None:
                    return None
            if piece.offset != offset:
                _shift(piece.module, offset - piece.offset)
                _shift(piece.comments, offset - piece.offset)
                piece.offset = offset
            pieces[text] = piece
            if piece.module.imports and declarations:
                return None  # an import after a declaration: let the parser say so
            imports.extend(piece.module.imports)
            declarations.extend(piece.module.declarations)
            comments.extend(piece.comments)
        self._pieces = pieces
        parts = [p for p in pieces.values() if p.module.imports or p.module.declarations]
        if not parts:
            return None
        first = min(p.module.span.start for p in parts)
        last = max(p.module.span.end for p in parts)
        module = ast.Module(tuple(imports), tuple(declarations), span=Span(first, last))
        comments.sort(key=lambda c: c.span.start)
        return ParseResult(source, module, comments)

    @staticmethod
    def _parse_piece(name: str, text: str) -> _Piece | None:
        result = parse(Source(name, text))
        if result.diagnostics.items or result.module is None:
            return None
        return _Piece(0, result.module, result.comments)
