"""Loading the JSON inputs of the IR commands (proposals, states, tool lists) from files, with
every problem reported as `file:line:col: error: ...`. Typer-free: the lean `carlang verify`
(`carlang.cli.lean`) loads its inputs here too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

from .console import EXIT_USAGE, Reported, echo_err, fail_usage, read_text

__all__ = [
    "load_file",
    "load_json_option",
    "load_state_option",
    "read_input_text",
    "report_load_error",
    "require_file",
]

T = TypeVar("T")
_MAX_PROBLEMS = 20


def report_load_error(path: Path, exc: Exception) -> NoReturn:
    """Print an `IRLoadError`'s problems against `path` and end the command with exit 2
    (`console.Reported`)."""
    problems = getattr(exc, "problems", [])
    what = getattr(exc, "what", "input")
    for problem in problems[:_MAX_PROBLEMS]:
        where = (
            f"{path}:{problem.position.line}:{problem.position.column}"
            if problem.position
            else str(path)
        )
        subject = f"{problem.path}: " if problem.path else ""
        echo_err(f"{where}: error: invalid {what}: {subject}{problem.message}")
    if len(problems) > _MAX_PROBLEMS:
        echo_err(f"{path}: ... and {len(problems) - _MAX_PROBLEMS} more")
    if not problems:
        echo_err(f"{path}: error: {exc}")
    raise Reported(EXIT_USAGE)


def load_file(path: Path, loader: Callable[[str], T], what: str) -> T:
    """Read `path` and build a value with `loader`, reporting load errors against the file."""
    from carlang_runtime.errors import IRLoadError

    text = read_input_text(path, what)
    try:
        return loader(text)
    except IRLoadError as exc:
        report_load_error(path, exc)


def read_input_text(path: Path, what: str) -> str:
    """The text of an input file (`-`: standard input), or a usage error saying why not: a
    folder, a FIFO or a device (which `carlang_runtime.textfile` refuses before reading: it
    may never end), not UTF-8 (where)."""
    from carlang_runtime.textfile import InputFileError, read_input

    if str(path) == "-":
        return read_text(path, what)
    try:
        return read_input(path)
    except InputFileError as exc:
        fail_usage(str(exc))


def require_file(path: Path) -> None:
    """A usage error unless `path` is a regular file, `-`, or nothing (reading says so then)."""
    from carlang_runtime.textfile import not_a_file

    problem = None if str(path) == "-" else not_a_file(path)
    if problem is not None:
        fail_usage(f"{path}: {problem}")


def load_state_option(value: str) -> dict[str, object]:
    """`--state`'s state: a JSON file, or the JSON object itself (`--state '{"ready": true}'`,
    as `explain` and `eval` take it), its problems reported against the option."""
    from carlang_runtime.verify import load_state

    return load_json_option(value, load_state, "state", "--state", "{")


def load_json_option(
    text: str, loader: Callable[[str], T], what: str, option: str, opening: str
) -> T:
    """An option's JSON `what`: the text itself when it starts with `opening` (`{` for an
    object, `[` for an array), its problems reported against `option`; else a file's. A value
    that is no file but is JSON of another kind (`--state '[1]'`) says so, rather than "no
    such file". (`text` as typed: a `Path` would tidy `//` to `/` inside the JSON.)"""
    from carlang_runtime.errors import IRLoadError

    if not text.lstrip().startswith(opening):
        kind = _json_kind(text)
        if kind is not None and not _is_file(text):
            wanted = "a JSON object" if opening == "{" else "a JSON array"
            fail_usage(f"{option} takes {wanted} or a JSON file of one, and `{text}` is {kind}")
        return load_file(Path(text), loader, what)
    try:
        return loader(text)
    except IRLoadError as exc:
        report_load_error(Path(option), exc)


def _is_file(name: str) -> bool:
    """Whether `name` names something on disk (a name too long for the system names none)."""
    try:
        return Path(name).exists()
    except (OSError, ValueError):
        return False


def _json_kind(text: str) -> str | None:
    """What JSON `text` is (`a JSON array`), or None when it is not JSON."""
    import json

    try:
        value = json.loads(text)
    except ValueError:
        return None
    if value is None:
        return "JSON null"
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean"}
    return f"a JSON {kinds.get(type(value), 'number')}"
