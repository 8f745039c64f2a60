"""Small text helpers shared by the language server's answers."""

from __future__ import annotations

from lsprotocol import types as lsp

from .. import ast
from ..source import Source

__all__ = ["markdown", "code_block", "source_slice", "first_line"]


def markdown(*parts: str) -> lsp.MarkupContent:
    """Markdown content from the non-empty parts, a paragraph each."""
    return lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value="\n\n".join(p for p in parts if p))


def code_block(text: str) -> str:
    """A fenced carlang block."""
    return f"```carlang\n{text.strip()}\n```"


def source_slice(source: Source, node: ast.Node) -> str:
    """The text a node was written as."""
    return source.text[node.span.start : node.span.end]


def first_line(text: str) -> str:
    """The first line of a declaration, without its opening brace."""
    return text.split("\n", 1)[0].rstrip(" {")
