"""Shared plumbing of the typer commands: the options several take and `guarded`; exit codes,
error reporting and output come from `carlang.cli.console` (typer-free) and are re-exported.

Every command body runs under `guarded`, so bad input ends in a one-line error and exit 2, and
anything unexpected ends in an "internal error" line and exit 101 — never a traceback, unless
`CARLANG_DEBUG=1` (or true, yes) asks for one (printed before that line; the exit code is still
101).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from .console import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_PIPE,
    EXIT_USAGE,
    PERCENTAGE,
    UsageProblem,
    echo,
    echo_err,
    exit_code_for,
    fail_usage,
    painted,
    printable,
    read_bytes,
    read_text,
    require_directory,
    use_color,
)

__all__ = [
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_USAGE",
    "EXIT_INTERNAL",
    "EXIT_PIPE",
    "RootOption",
    "NowOption",
    "parse_now",
    "AutoApproveOption",
    "DenyApprovalsOption",
    "UsageProblem",
    "check_output_path",
    "seconds",
    "percentage",
    "MAX_SECONDS",
    "fail_usage",
    "require_directory",
    "guarded",
    "read_text",
    "read_bytes",
    "echo",
    "echo_err",
    "printable",
    "painted",
    "use_color",
    "write_output",
]

#: The `--root` option every command that compiles a program takes.
RootOption = Annotated[
    Path | None, typer.Option("--root", help="Project root: imports may not leave it.")
]
#: The `--now` option of the commands that decide one action (`explain`, `eval`).
NowOption = Annotated[
    str | None,
    typer.Option(
        "--now",
        help="The time conditions see as `now` (RFC 3339, like 2026-01-05T10:00:00Z;"
        " default: the current time).",
    ),
]
ScopeOption = Annotated[
    str | None, typer.Option("--scope", help="The caller's scope, a JSON object.")
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


def guarded(command: Callable[P, R]) -> Callable[P, R]:
    """Map exceptions to exit codes: carlang's input errors -> 2, anything else -> 101
    (`console.exit_code_for`)."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            raise typer.Exit(exit_code_for(exc)) from None

    return wrapper


#: The longest wait a seconds option takes: a year (a longer one overflows the system's timers:
#: `--timeout 1e308` was an internal OverflowError).
MAX_SECONDS = 365 * 24 * 3600


def seconds(value: float | None) -> float | None:
    """The callback of every option that is a number of seconds (`--timeout`, `--idle-timeout`;
    `typer.Option(..., callback=seconds)`): a usage error (exit 2) unless it is a finite number
    above 0 and at most `MAX_SECONDS`; `nan`, `inf`, 0 and negative numbers are refused."""
    if value is None:
        return None
    if not math.isfinite(value) or not 0 < value <= MAX_SECONDS:
        raise typer.BadParameter(
            f"{value:g}: give a number of seconds above 0 and at most {MAX_SECONDS} (a year)"
        )
    return value


def percentage(text: str) -> float:
    """The parser of an option that is a percentage (`typer.Option(..., parser=percentage)`):
    a usage error (exit 2) in carlang's words for what is no number (`abc`), where typer's
    own float would answer in pydantic's ("Input should be a valid number..."). The range is
    the command's to check (`--threshold 150` is refused as the lean path refuses it)."""
    try:
        return float(text)
    except ValueError:
        raise typer.BadParameter(f"{text}: {PERCENTAGE}") from None


def check_output_path(
    path: Path | None, option: str, inputs: Iterable[tuple[str, Path | None]] = ()
) -> None:
    """A usage error now, before any work, when `path` (a file a command will write) cannot
    be: its folder is missing, it is a folder (a long search must not end in an error), or it
    is one of the command's `inputs` (`(what it is, path)`: `-o runs.jsonl` replaced the
    event log it learned from) or another of its outputs."""
    if path is None:
        return
    if path.is_dir():
        fail_usage(f"{option} {path}: that is a folder; name a file")
    if not path.parent.is_dir():
        fail_usage(f"{option} {path}: there is no folder {path.parent} to write it in")
    for what, given in inputs:
        if given is not None and str(given) != "-" and same_file(path, given):
            fail_usage(f"{option} {path}: that is {what} {given}; name another file to write")


def same_file(one: Path, other: Path) -> bool:
    """Whether `one` and `other` name the same file: another path to it or a link when both
    exist, else the same absolute path (an output not written yet)."""
    try:
        return os.path.samefile(one, other)
    except (OSError, ValueError):  # (realpath: a link loop is no error, as resolve's is)
        return os.path.realpath(one) == os.path.realpath(other)


def write_output(path: Path, text: str) -> None:
    """Write `text` to `path`; a usage error saying why when the system refuses."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail_usage(f"cannot write {path}: {exc.strerror or exc}")


def parse_now(text: str | None) -> Any:
    """`--now`'s time as a CEL timestamp (None: the current time); a usage error unless it
    is RFC 3339."""
    if text is None:
        return None
    from carlang_runtime.cel.values import CelEvalError, parse_timestamp

    try:
        return parse_timestamp(text)
    except CelEvalError as exc:
        fail_usage(f"--now {text}: {exc.message}")
