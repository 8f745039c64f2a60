"""The `carlang` command line (typer). Commands import their machinery lazily, so that a command
pays only for what it uses at start-up."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from carlang import __version__

from . import (
    dbos_commands,
    editor_commands,
    ir_commands,
    lang_commands,
    plan_commands,
    policy_commands,
    run_commands,
    test_commands,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="carlang",
    help="carlang: write, check, run and rank plans for AI agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"carlang {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """carlang: write, check, run and rank plans for AI agents."""


lang_commands.register(app)
policy_commands.register(app)
run_commands.register(app)
plan_commands.register(app)
test_commands.register(app)
ir_commands.register(app)
dbos_commands.register(app)
editor_commands.register(app)


def main() -> None:
    """Entry point of the `carlang` script."""
    # The CLI uses no pydantic plugins; skipping their discovery (a scan of every installed
    # package's entry points) saves ~15 ms of every command's start-up.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    app()
