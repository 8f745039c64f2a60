"""The `carlang` command line (typer). Commands import their machinery lazily, so that a command
pays only for what it uses at start-up."""

from __future__ import annotations

import enum
import os
import sys
from typing import Annotated, Any

import typer
import typer.main

from carlang import __version__

from . import (
    agent_commands,
    dbos_commands,
    editor_commands,
    experiment_commands,
    ir_commands,
    lang_commands,
    mcp_commands,
    plan_commands,
    policy_commands,
    replay_commands,
    run_commands,
    test_commands,
)
from .common import EXIT_PIPE

__all__ = ["app", "main"]

app = typer.Typer(
    name="carlang",
    help="carlang: write, check, run and rank plans for AI agents.",
    no_args_is_help=True,
    add_completion=True,  # carlang --install-completion / --show-completion
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
replay_commands.register(app)
plan_commands.register(app)
experiment_commands.register(app)
test_commands.register(app)
ir_commands.register(app)
dbos_commands.register(app)
agent_commands.register(app)
mcp_commands.register(app)
editor_commands.register(app)


def _real_metavars(command: Any) -> None:
    """Help that names what to write (`PATHS...`, `--state STATE`) instead of typer's
    `{paths}...` and `<list[str]>`, for every command. Choices keep `<text|json>`."""
    for sub in getattr(command, "commands", {}).values():
        _real_metavars(sub)
    for param in command.params:
        if param.metavar is not None or getattr(param, "is_flag", False):
            continue
        descriptor = getattr(param, "type_descriptor", None)
        annotation = getattr(descriptor, "annotation", None)
        name = (param.name or "value").upper()
        if getattr(param, "opts", [""])[0].startswith("-"):
            if not (isinstance(annotation, type) and issubclass(annotation, enum.Enum)):
                param.metavar = name
        else:
            many = "..." if param.nargs == -1 else ""
            usage = name + many if param.required else f"[{name}]{many}"
            param.metavar = name
            # typer writes required arguments as `{name}` and adds their type: plain instead
            param._usage_display_name = lambda usage=usage: usage
            param.display_type_rich = lambda ctx: ""


def main() -> None:
    """Entry point of the `carlang` script."""
    # The CLI uses no pydantic plugins; skipping their discovery (a scan of every installed
    # package's entry points) saves ~15 ms of every command's start-up.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        command = typer.main.get_command(app)
        _real_metavars(command)
        command(prog_name="carlang")
    except BrokenPipeError:  # a write outside any command body (help, version, exit's flush)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(EXIT_PIPE) from None
