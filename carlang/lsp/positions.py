"""Character offsets (what carlang's spans count) <-> LSP positions (0-based lines, columns in
UTF-16 code units unless the client agreed on UTF-32 or UTF-8)."""

from __future__ import annotations

from lsprotocol import types as lsp

from ..source import Source, Span

__all__ = ["Encoding", "to_position", "to_range", "to_offset"]

Encoding = str  # "utf-16" | "utf-32" | "utf-8"


def _units(text: str, encoding: Encoding) -> int:
    # A lone surrogate (JSON's "\ud800", which an editor's UTF-16 text can hold) is one
    # UTF-16 unit, as the editor counts it: encoded as is rather than refused.
    if encoding == "utf-32":
        return len(text)
    if encoding == "utf-8":
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def to_position(source: Source, offset: int, encoding: Encoding = "utf-16") -> lsp.Position:
    """The LSP position of a character offset."""
    line, column = source.line_column(offset)
    prefix = source.line_text(line)[: column - 1]
    return lsp.Position(line=line - 1, character=_units(prefix, encoding))


def to_range(source: Source, span: Span, encoding: Encoding = "utf-16") -> lsp.Range:
    """The LSP range of a span (an empty range at the start for a span with no position)."""
    if not span:
        return lsp.Range(
            start=lsp.Position(line=0, character=0), end=lsp.Position(line=0, character=0)
        )
    return lsp.Range(
        start=to_position(source, span.start, encoding), end=to_position(source, span.end, encoding)
    )


def to_offset(source: Source, position: lsp.Position, encoding: Encoding = "utf-16") -> int:
    """The character offset of an LSP position (clamped to the line and the text)."""
    line_text = source.line_text(position.line + 1)
    if encoding == "utf-32":
        column = min(position.character, len(line_text))
    else:
        column, units = 0, 0
        for char in line_text:
            width = _units(char, encoding)
            if units + width > position.character:
                break
            units += width
            column += 1
    return source.offset(position.line + 1, column + 1)
