"""Shared plumbing of the command line: exit codes, error reporting, reading input files.

Every command body runs under `guarded`, so bad input ends in a one-line error and exit 2, and
anything unexpected ends in an "internal error" line and exit 101 — never a traceback, unless
`CARLANG_DEBUG=1` asks for one.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn, ParamSpec, TypeVar

import typer

__all__ = [
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_USAGE",
    "EXIT_INTERNAL",
    "EXIT_PIPE",
    "RootOption",
    "AutoApproveOption",
    "DenyApprovalsOption",
    "UsageProblem",
    "fail_usage",
    "guarded",
    "read_text",
    "read_bytes",
    "echo",
    "echo_err",
    "printable",
    "painted",
    "use_color",
]

EXIT_OK = 0
EXIT_FAILED = 1  # the input was read and found wanting (invalid, errors, failed tests)
EXIT_USAGE = 2  # bad invocation or unreadable input
EXIT_INTERNAL = 101  # a bug in carlang (CAR uses 101 for a panic)
EXIT_PIPE = 141  # the reader closed the pipe: what a shell reports for a SIGPIPE death

#: The `--root` option every command that compiles a program takes.
RootOption = Annotated[
    Path | None, typer.Option("--root", help="Project root: imports may not leave it.")
]
#: The approval flags of every command that runs actions (`run`, `agent`).
AutoApproveOption = Annotated[
    bool, typer.Option("--auto-approve", help="Approve every action that asks.")
]
DenyApprovalsOption = Annotated[
    bool, typer.Option("--deny-approvals", help="Refuse every action that asks.")
]

P = ParamSpec("P")
R = TypeVar("R")


class UsageProblem(Exception):
    """Input the command cannot use: reported as `error: <message>`, exit 2."""


def fail_usage(message: str) -> NoReturn:
    """Stop the command with a usage/input error."""
    raise UsageProblem(message)


def printable(text: str) -> str:
    """`text` with any lone UTF-16 surrogate (which no output encoding can hold) written as
    its `\\udXXX` escape, so that printing a value never fails."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


_PAINT = [
    (re.compile(r"(?m)(: )(error)(\[CL\d{4}\])"), "\x1b[1;31m"),
    (re.compile(r"(?m)(: )(warning)(\[CL\d{4}\])"), "\x1b[1;33m"),
    (re.compile(r"(?m)^()(FAIL)( )"), "\x1b[1;31m"),
    (re.compile(r"(?m)^()(error)(: )"), "\x1b[1;31m"),
    (re.compile(r"(?m)^()(warning)(: )"), "\x1b[1;33m"),
    (re.compile(r"(?m)( |^)(0 errors|[1-9]\d* passed, 0 failed)()"), "\x1b[32m"),
]


def use_color(err: bool = False) -> bool:
    """Colour as `run` does: on a terminal, never when piped or with NO_COLOR set."""
    stream = sys.stderr if err else sys.stdout
    return stream.isatty() and not os.environ.get("NO_COLOR")


def painted(text: str, err: bool = False) -> str:
    """`text` with severities, FAIL lines and a clean summary coloured, when `use_color`."""
    if not use_color(err):
        return text
    for pattern, colour in _PAINT:
        text = pattern.sub(f"\\1{colour}\\2\x1b[0m\\3", text)
    return text


def echo(text: str = "") -> None:
    """Write a line to standard output."""
    typer.echo(printable(text))


def echo_err(text: str) -> None:
    """Write a line to standard error."""
    typer.echo(printable(text), err=True)


def guarded(command: Callable[P, R]) -> Callable[P, R]:
    """Map exceptions to exit codes: carlang's input errors -> 2, anything else -> 101."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from carlang_runtime.errors import CarlangRuntimeError

        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit, KeyboardInterrupt):
            raise
        except BrokenPipeError:
            # the reader went away (`carlang codes | head -1`): end quietly, like other tools
            _silence_stdout()
            raise typer.Exit(EXIT_PIPE) from None
        except UsageProblem as exc:
            echo_err(f"error: {exc}")
            raise typer.Exit(EXIT_USAGE) from None
        except CarlangRuntimeError as exc:
            echo_err(f"error: {exc}")
            raise typer.Exit(EXIT_USAGE) from None
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            if os.environ.get("CARLANG_DEBUG"):
                raise
            echo_err(
                f"internal error: {type(exc).__name__}: {exc} "
                "(this is a bug in carlang; rerun with CARLANG_DEBUG=1 for a traceback "
                "and please report it)"
            )
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def read_bytes(path: Path, what: str = "file") -> bytes:
    """The bytes of `path`, or a usage error naming the file and the reason."""
    if str(path) == "-":
        return sys.stdin.buffer.read()
    try:
        return path.read_bytes()
    except FileNotFoundError:
        fail_usage(f"cannot read {what} {path}: no such file")
    except IsADirectoryError:
        fail_usage(f"cannot read {what} {path}: it is a directory")
    except OSError as exc:
        fail_usage(f"cannot read {what} {path}: {exc.strerror or exc}")


def read_text(path: Path, what: str = "file") -> str:
    """The UTF-8 text of `path`, or a usage error naming the file and the reason."""
    data = read_bytes(path, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        fail_usage(f"{path}: not UTF-8 text (invalid byte at offset {exc.start})")
