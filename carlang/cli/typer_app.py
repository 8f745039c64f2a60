"""The `carlang` typer app: the root command (`--version`, `--help`, completion) and each
command module's commands, built for the command line at hand (see `COMMAND_MODULES`)."""

from __future__ import annotations

import enum
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
import typer.main

from carlang import __version__

from . import _MODULES, COMMAND_MODULES
from .console import EXIT_PIPE, silence_stdout

__all__ = ["build_app", "main"]  # and `app`, built when first asked for


def _version(value: bool) -> None:
    if value:
        typer.echo(f"carlang {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """carlang: write, check, run and rank plans for AI agents."""


def build_app(modules: Sequence[str] = _MODULES) -> typer.Typer:
    """The `carlang` app with the commands of `modules` (by default every command)."""
    built = typer.Typer(
        name="carlang",
        help="carlang: write, check, run and rank plans for AI agents.",
        no_args_is_help=True,
        add_completion=True,  # carlang --install-completion / --show-completion
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    built.callback()(_root)
    for module in modules:
        importlib.import_module(f"carlang.cli.{module}").register(built)
    return built


_APP: typer.Typer | None = None


def __getattr__(name: str) -> Any:
    # `app`, the whole command line, is built when first asked for (tests, embedding hosts).
    global _APP
    if name == "app":
        if _APP is None:
            _APP = build_app()
        return _APP
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _app_for(argv: Sequence[str]) -> typer.Typer:
    """The app a command line needs: one command's module when it names a command, else all
    (`--help`, a mistyped command's did-you-mean, shell completion)."""
    name = argv[0] if argv and not argv[0].startswith("-") else None
    module = COMMAND_MODULES.get(name or "")
    if module is None or "_CARLANG_COMPLETE" in os.environ:
        return build_app()
    return build_app((module,))


def _real_metavars(command: Any) -> None:
    """Help that names what to write (`PATHS...`, `--state STATE`) instead of typer's
    `{paths}...` and `<list[str]>`, for every command. Choices keep `<text|json>`."""
    for sub in getattr(command, "commands", {}).values():
        _real_metavars(sub)
    for param in command.params:
        _without_pydantic_prefix(param)
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


def _without_pydantic_prefix(param: Any) -> None:
    """Bad values reported without the `Value error, ` that typer (0.29: pydantic converts
    the values) puts before a choice's message: `'nope' is not one of 'text', 'json'.`"""
    process = param.process_value

    def process_value(ctx: Any, value: Any) -> Any:
        try:
            return process(ctx, value)
        except typer.BadParameter as exc:  # (typer's own click, which it may vendor)
            exc.message = exc.message.removeprefix("Value error, ")
            raise

    param.process_value = process_value


def main() -> None:
    """Run the command line of `sys.argv` through typer (`carlang.entry.main` calls it for
    everything it does not answer itself)."""
    try:
        command = typer.main.get_command(_app_for(sys.argv[1:]))
        _real_metavars(command)
        command(prog_name="carlang")
    except BrokenPipeError:  # a write outside any command body (help, version, exit's flush)
        silence_stdout()
        raise SystemExit(EXIT_PIPE) from None
