"""What the language server tests share."""

from __future__ import annotations

from lsprotocol import types as lsp

from carlang.lsp.positions import to_offset
from carlang.source import Source


def applied(text: str, edits: list[lsp.TextEdit]) -> str:
    """`text` with the server's `edits` made, as an editor makes them (last first)."""
    source = Source("edited.car", text)
    spans = [(to_offset(source, e.range.start), to_offset(source, e.range.end), e) for e in edits]
    for start, end, edit in sorted(spans, key=lambda s: s[0], reverse=True):
        text = text[:start] + edit.new_text + text[end:]
    return text
