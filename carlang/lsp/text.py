"""Small text helpers shared by the language server's answers."""

from __future__ import annotations

from lsprotocol import types as lsp

from .. import ast
from ..source import Source

__all__ = ["markdown", "code_block", "source_slice", "first_line"]


def markdown(*parts: str) -> lsp.MarkupContent:
    """Markdown content from the non-empty parts, a paragraph each."""
    return lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value="\n\n".join(p for p in parts if p))


#: The longest text a hover shows of a declaration (a tool whose default value is a 200,000
#: character string filled the editor's hover with it).
HOVER_CHARS = 2000


def code_block(text: str) -> str:
    """A fenced carlang block (cut at `HOVER_CHARS`, saying so)."""
    text = text.strip()
    if len(text) > HOVER_CHARS:
        text = text[:HOVER_CHARS] + f" ... ({len(text) - HOVER_CHARS:,} more characters)"
    return f"```carlang\n{text}\n```"


def source_slice(source: Source, node: ast.Node) -> str:
    """The text a node was written as."""
    return source.text[node.span.start : node.span.end]


def first_line(text: str) -> str:
    """The first line of a declaration, without its opening brace."""
    return text.split("\n", 1)[0].rstrip(" {")
