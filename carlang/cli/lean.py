"""`carlang check`, `fmt`, `test` and `verify` without typer. A check is what editors, hooks and CI
run most, on a few files; `fmt` is what hooks run, and editors on every save (`fmt -`); a test run
is policy CI's step; a verify is what an agent's gateway runs once per proposal. All are short, so
start-up is most of their wall time, and typer (its import, building the command, and pydantic
validators for every argument) would cost more than the work itself.

Only plain command lines take this path: the command's positional arguments and its options, each
option at most once with a value that reads (`--format json`, `--max-actions 30`; a short option's
value apart, `-k NAME`: click reads `-k=NAME` as `=NAME`). Anything else (`--help`, an unknown or
repeated option, a missing or unusual value, a missing or extra argument) returns None and goes to
typer, whose messages and help stay the only ones; both paths run the same function
(`checking.run_check`, `formatting.run_fmt`, `testing.run_test`, `verifying.run_verify`) under the
same error mapping.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from .checking import CheckFormat, run_check
from .console import echo_err, exit_code_for
from .formatting import run_fmt
from .testing import TestFormat, run_test
from .verifying import TextOrJson, run_verify

__all__ = ["LEAN_COMMANDS", "plain_arguments", "lean_main"]


def _count(value: str) -> int | None:
    """A non-negative integer written plainly (typer decides anything else: `1_000`, ` 5`)."""
    return int(value) if value.isascii() and value.isdigit() else None


_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


def _decimal(value: str) -> float | None:
    """A number written plainly, `50` or `87.5` (typer decides anything else: `1e2`, `.5`)."""
    return float(value) if _DECIMAL.fullmatch(value) else None


def _choice(kind: type[StrEnum]) -> Callable[[str], Any]:
    """A reader of one of `kind`'s values (None for anything else)."""
    members = {member.value: member for member in kind}
    return members.get


@dataclass(frozen=True)
class _Syntax:
    """How one command's plain command line reads, and the function that runs it."""

    run: Callable[..., int]
    #: The keyword the positional arguments are passed as.
    positional: str
    #: Any number of positional arguments (a list; None when there are none), or exactly one.
    many: bool
    #: Options without a value: option -> keyword (True when given).
    flags: Mapping[str, str]
    #: Options with a value: option -> (keyword, reader; a reader's None leaves it to typer).
    valued: Mapping[str, tuple[str, Callable[[str], Any]]]


_COMMANDS: dict[str, _Syntax] = {
    "check": _Syntax(
        run_check,
        positional="paths",
        many=True,
        flags={"--strict": "strict"},
        valued={
            "--format": ("output", _choice(CheckFormat)),
            "--root": ("root", Path),
        },
    ),
    "fmt": _Syntax(
        run_fmt,
        positional="paths",
        many=True,
        flags={"--check": "check", "--diff": "diff"},
        valued={},
    ),
    "test": _Syntax(
        run_test,
        positional="paths",
        many=True,
        flags={"--coverage": "coverage", "--strict": "strict"},
        valued={
            "--threshold": ("threshold", _decimal),
            "--format": ("output", _choice(TestFormat)),
            "-k": ("select", str),
            "--run": ("select", str),
            "--root": ("root", Path),
        },
    ),
    "verify": _Syntax(
        run_verify,
        positional="proposal",
        many=False,
        flags={},
        valued={
            "--state": ("state", str),
            "--tools": ("tools", str),
            "--tool-schemas": ("tool_schemas", str),
            "--max-actions": ("max_actions", _count),
            "--format": ("output", _choice(TextOrJson)),
        },
    ),
}
#: The commands a plain command line runs without typer.
LEAN_COMMANDS = frozenset(_COMMANDS)


def plain_arguments(command: str, args: Sequence[str]) -> dict[str, Any] | None:
    """The keyword arguments of `command`'s function for `carlang COMMAND ARGS`, read as
    typer reads them (an option not given is left to the function's default), or None when
    `args` is anything but plain (see the module's docstring)."""
    syntax = _COMMANDS[command]
    found: dict[str, Any] = {}
    positional: list[Path] = []
    rest = iter(args)
    options_end = False
    for arg in rest:
        if options_end or arg == "-" or (arg and not arg.startswith("-")):
            if not arg:
                return None
            positional.append(Path(arg))
            continue
        if arg == "--":
            options_end = True
            continue
        name, equals, value = arg.partition("=")
        if equals and not name.startswith("--"):
            return None  # (`-k=NAME`: click's value would be `=NAME`)
        if name in syntax.flags:
            key = syntax.flags[name]
            if equals or key in found:
                return None
            found[key] = True
            continue
        if name not in syntax.valued:
            return None
        key, read = syntax.valued[name]
        if key in found:
            return None
        if not equals:
            value = next(rest, "")
        if not value or value.startswith("-"):
            return None
        found[key] = read(value)
        if found[key] is None:
            return None
    if syntax.many:
        found[syntax.positional] = positional or None
    elif len(positional) == 1:
        found[syntax.positional] = positional[0]
    else:
        return None
    return found


def lean_main(command: str, args: Sequence[str]) -> int | None:
    """Run `carlang COMMAND ARGS` and return its exit code, or None (having done nothing) when
    typer should read `args`. Ends as typer's commands do: an exception maps to its exit code
    (`console.exit_code_for`), Ctrl-C to 130, end of input to `Aborted!` and 1."""
    arguments = plain_arguments(command, args)
    if arguments is None:
        return None
    try:
        return _COMMANDS[command].run(**arguments)
    except KeyboardInterrupt:
        return 130
    except EOFError:
        echo_err("\nAborted!")
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence, as in `guarded`
        return exit_code_for(exc)
