"""Commands for authoring: `lsp` (the language server for editors)."""

from __future__ import annotations

import importlib.util
from typing import Annotated

import typer

from .common import fail_usage, guarded

__all__ = ["register"]


@guarded
def lsp_command(
    debounce_ms: Annotated[
        int, typer.Option("--debounce-ms", help="Wait this long after an edit before compiling.")
    ] = 30,
) -> None:
    """Run the language server on stdin/stdout (for editors; see docs/editors.md)."""
    if importlib.util.find_spec("pygls") is None:
        fail_usage("the language server needs pygls: pip install 'carlang[lsp]'")
    from carlang.lsp.server import serve

    serve(debounce=max(0, debounce_ms) / 1000)


def register(app: typer.Typer) -> None:
    """Add the authoring commands to the CLI."""
    app.command("lsp")(lsp_command)
