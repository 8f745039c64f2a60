"""`carlang check` without typer. A check is what editors, hooks and CI run most, on a few
files, where start-up is most of the wall time: typer (its import, building the command,
and pydantic validators for every argument) would cost more than checking a small file.

Only plain command lines take this path: paths, `--strict`, `--format FORMAT`, `--root DIR`
(each option at most once, values given). Anything else (`--help`, an unknown or repeated
option, a missing or unknown value) returns None and goes to typer, whose messages and help
stay the only ones; both paths run the same `checking.run_check` under the same error mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .checking import CheckFormat, run_check
from .console import echo_err, exit_code_for

__all__ = ["check_arguments", "check_main"]

_FLAGS = {"--strict": "strict"}
_VALUED = {"--format": "output", "--root": "root"}
_FORMATS = {f.value: f for f in CheckFormat}


def check_arguments(args: Sequence[str]) -> dict[str, Any] | None:
    """`run_check`'s keyword arguments for `carlang check ARGS`, read as typer reads them, or
    None when `args` is anything but plain (see the module's docstring)."""
    found: dict[str, Any] = {}
    paths: list[Path] = []
    rest = iter(args)
    options_end = False
    for arg in rest:
        if options_end or (arg and not arg.startswith("-")):
            if not arg:
                return None
            paths.append(Path(arg))
            continue
        if arg == "--":
            options_end = True
            continue
        name, equals, value = arg.partition("=")
        key = _FLAGS.get(name) or _VALUED.get(name)
        if key is None or key in found:
            return None
        if name in _FLAGS:
            if equals:
                return None
            found[key] = True
            continue
        if not equals:
            value = next(rest, "")
        if not value or value.startswith("-"):
            return None
        if key == "output":
            if value not in _FORMATS:
                return None
            found[key] = _FORMATS[value]
        else:
            found[key] = Path(value)
    return {
        "paths": paths or None,
        "strict": found.get("strict", False),
        "output": found.get("output", CheckFormat.text),
        "root": found.get("root"),
    }


def check_main(args: Sequence[str]) -> int | None:
    """Run `carlang check ARGS` and return its exit code, or None (having done nothing) when
    typer should read `args`. Ends as typer's commands do: an exception maps to its exit code
    (`console.exit_code_for`), Ctrl-C to 130, end of input to `Aborted!` and 1."""
    arguments = check_arguments(args)
    if arguments is None:
        return None
    try:
        return run_check(**arguments)
    except KeyboardInterrupt:
        return 130
    except EOFError:
        echo_err("\nAborted!")
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence, as in `guarded`
        return exit_code_for(exc)
