"""Exit codes, input errors and output of the command line, without typer: what the typer
commands (through `carlang.cli.common`) and the lean `carlang check` path (`carlang.cli.lean`)
share, so that a check needs no typer to report its findings or its failure."""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path
from typing import Any, NoReturn, TextIO

__all__ = [
    "error_line",
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_USAGE",
    "EXIT_INTERNAL",
    "EXIT_PIPE",
    "PERCENTAGE",
    "UsageProblem",
    "OutputProblem",
    "CheckedStdout",
    "Reported",
    "fail_usage",
    "require_directory",
    "exit_code_for",
    "read_text",
    "read_bytes",
    "os_reason",
    "echo",
    "echo_err",
    "write_out",
    "printable",
    "painted",
    "use_color",
    "silence_stdout",
    "debugging",
    "stand_in_for_closed_streams",
]

EXIT_OK = 0
EXIT_FAILED = 1  # the input was read and found wanting (invalid, errors, failed tests)
EXIT_USAGE = 2  # bad invocation or unreadable input
EXIT_INTERNAL = 101  # a bug in carlang (CAR uses 101 for a panic)
EXIT_PIPE = 141  # the reader closed the pipe: what a shell reports for a SIGPIPE death


class UsageProblem(Exception):
    """Input the command cannot use: reported as `error: <message>`, exit 2."""


class Reported(Exception):
    """Problems already reported, line by line (a file's load errors, each at its position):
    the command ends with exit code `code` and prints nothing more."""

    def __init__(self, code: int) -> None:
        super().__init__(f"exit {code}")
        self.code = code


#: A message that starts at a position in a file: `file:line:col: `.
_AT_POSITION = re.compile(
    r"(?!--)[^\s:][^:\n]*:\d+:\d+: "
)  # (not an option: `--sweep x=0:1:0: ...`)


def error_line(message: str) -> str:
    """`error: message`; for a message that starts at a position, `file:line:col: error:
    ...`, the form of every diagnostic (which editors and CI annotators read). A message of
    several problems, one a line (carlang.toml's), gets the form on each line."""
    if "\n" in message and all(_AT_POSITION.match(line) for line in message.splitlines()):
        return "\n".join(error_line(line) for line in message.splitlines())
    at = _AT_POSITION.match(message)
    if at is None:
        return f"error: {message}"
    return f"{at.group()}error: {message[at.end() :]}"


#: What a percentage option (`test --threshold`) takes, said when it is given anything else
#: (here, where both its typer parser and the lean path's check can read it).
PERCENTAGE = "give a percentage from 0 to 100"


def fail_usage(message: str) -> NoReturn:
    """Stop the command with a usage/input error."""
    raise UsageProblem(message)


def require_directory(option: str, path: Path) -> None:
    """Stop with a usage error unless `path` (given as `option`) is an existing directory,
    saying which it is not: missing, or a file."""
    if path.is_dir():
        return
    if path.exists():
        fail_usage(f"{option} {path}: not a directory")
    fail_usage(f"{option} {path}: no such directory (create it first: mkdir -p {path})")


def printable(text: str) -> str:
    """`text` with any lone UTF-16 surrogate (which no output encoding can hold) written as
    its `\\udXXX` escape, so that printing a value never fails."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def terminal_text(text: str, newlines: bool = False) -> str:
    """`text` from outside (a model's call id, a parameter's name, a tool's output) made safe
    to show at a terminal: control characters (an escape sequence that moves the cursor,
    erases a line or hides what follows), Unicode format characters (a right-to-left
    override) and line separators written as escapes (`\\x1b`, `\\u202e`), so that what a
    person reads, above all an approval question, is what the text says. Newlines are kept
    with `newlines`."""
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() or (newlines and char == "\n") else ascii(char)[1:-1]
        for char in text
    )


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


#: What click (typer.echo) strips from a line written to anything but a terminal.
_ANSI = re.compile(r"\033\[[;?0-9]*[a-zA-Z]")


def _write_line(stream: TextIO, text: str) -> None:
    """Write `text` and a newline as typer.echo does: ANSI codes stripped unless the stream is
    a terminal, flushed at once (so a closed pipe is found inside the command)."""
    try:
        terminal = stream.isatty()
    except Exception:  # noqa: BLE001 - a stream that cannot tell is not a terminal
        terminal = False
    line = printable(text) + "\n"
    _write(stream, line if terminal else _ANSI.sub("", line))


class OutputProblem(UsageProblem):
    """Standard output or error cannot be written (a full disk, an I/O error): the system's
    problem, not the input's or carlang's; reported as `error: <message>`, exit 2."""


def _write(stream: TextIO, text: str) -> None:
    """Write `text` to `stream` and flush it at once (so a closed pipe is found inside the
    command: `BrokenPipeError`, see `exit_code_for`); any other failure to write raises
    `OutputProblem`, naming the stream and the reason."""
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        name = "standard error" if stream is sys.stderr else "standard output"
        raise OutputProblem(f"cannot write to {name}: {exc.strerror or exc}") from None


class CheckedStdout:
    """Standard output for writers that take a file (rich's consoles): `sys.stdout` as it is
    when written to, its writes failing as `_write` fails (`OutputProblem`, or
    `BrokenPipeError` for the writer's own handler)."""

    def write(self, text: str) -> int:
        """Write `text` and flush it."""
        _write(sys.stdout, text)
        return len(text)

    def flush(self) -> None:
        """Nothing left to flush: every write is flushed."""

    def __getattr__(self, name: str) -> Any:
        return getattr(sys.stdout, name)  # isatty, fileno, encoding, ...


def echo(text: str = "") -> None:
    """Write a line to standard output."""
    _write_line(sys.stdout, text)


def write_out(text: str) -> None:
    """Write `text` to standard output exactly as it is (no newline added, nothing stripped:
    formatted source, JSON documents)."""
    _write(sys.stdout, text)


def echo_err(text: str) -> None:
    """Write a line to standard error."""
    _write_line(sys.stderr, text)


def exit_code_for(exc: Exception) -> int:
    """Report an exception that ended a command's body and say the exit code it ends with:
    the reader went away -> 141, quietly; problems already reported -> their code; carlang's
    input errors, and output that cannot be written -> 2; anything else -> 101, an internal
    error (its traceback first, when `debugging`). A report that cannot be
    written itself (standard error broken too) is dropped: the exit code still tells."""
    from carlang_runtime.errors import CarlangRuntimeError

    if isinstance(exc, Reported):
        return exc.code
    if isinstance(exc, BrokenPipeError):
        # the reader went away (`carlang codes | head -1`): end quietly, like other tools
        silence_stdout()
        return EXIT_PIPE
    if isinstance(exc, OutputProblem):
        silence_stdout()  # (what is left in its buffer cannot be written either)
    if isinstance(exc, (UsageProblem, CarlangRuntimeError)):
        _try_to_tell(error_line(str(exc)))
        return EXIT_USAGE
    if debugging():
        import traceback

        _try_to_tell("".join(traceback.format_exception(exc)).rstrip("\n"))
    _try_to_tell(
        f"internal error: {type(exc).__name__}: {exc} "
        "(this is a bug in carlang; rerun with CARLANG_DEBUG=1 for a traceback "
        "and please report it)"
    )
    return EXIT_INTERNAL


def debugging() -> bool:
    """Whether `CARLANG_DEBUG` asks for an internal error's traceback: 1, true or yes (in any
    case); anything else (unset, empty, 0, false, no) does not."""
    return os.environ.get("CARLANG_DEBUG", "").strip().lower() in ("1", "true", "yes")


def _try_to_tell(text: str) -> None:
    """`echo_err(text)`, unless standard error cannot be written either."""
    try:
        echo_err(text)
    except OutputProblem:
        pass


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush cannot fail again
    (nothing to do for a stdout that is no file: a test's capture)."""
    try:
        descriptor = sys.stdout.fileno()
    except (OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, descriptor)
    os.close(devnull)


class _ClosedOutput(io.TextIOBase):
    """What stands for standard output or error when the process started with it closed
    (`carlang compile f.car >&-`; Python's is then None): every write is an `OutputProblem`,
    as on a full disk, so that a command says so (exit 2) rather than failing on None."""

    def __init__(self, name: str) -> None:
        self._name = name

    def _problem(self) -> OutputProblem:
        return OutputProblem(f"cannot write to {self._name}: it is closed")

    def write(self, text: str) -> int:
        raise self._problem()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def flush(self) -> None:
        """Nothing was written: nothing to flush (the interpreter's last flush too)."""

    encoding = "utf-8"

    @property
    def buffer(self) -> Any:
        raise self._problem()


class _ClosedInput(io.TextIOBase):
    """What stands for standard input when the process started with it closed (`carlang
    verify - <&-`): any read is a `UsageProblem` saying so (exit 2)."""

    def _problem(self) -> UsageProblem:
        return UsageProblem("cannot read standard input: it is closed")

    def read(self, size: int | None = -1) -> str:
        raise self._problem()

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        raise self._problem()

    def readable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    encoding = "utf-8"

    @property
    def buffer(self) -> Any:
        raise self._problem()


def stand_in_for_closed_streams() -> None:
    """Give a process started with standard input, output or error closed (Python's
    `sys.stdin`... is then None) stand-ins that report reading or writing them as the input's
    problem (exit 2), and hold the closed descriptor with /dev/null, so that no file the
    command opens takes its number (and a tool it starts writes there)."""
    stand_ins: dict[str, io.TextIOBase] = {}
    if sys.stdin is None:
        stand_ins["stdin"] = sys.stdin = _ClosedInput()
    if sys.stdout is None:
        stand_ins["stdout"] = sys.stdout = _ClosedOutput("standard output")
    if sys.stderr is None:
        stand_ins["stderr"] = sys.stderr = _ClosedOutput("standard error")
    for descriptor, name in enumerate(("stdin", "stdout", "stderr")):
        if name not in stand_ins:
            continue
        try:
            os.fstat(descriptor)
        except OSError:
            held = os.open(os.devnull, os.O_RDWR)
            if held != descriptor:
                os.dup2(held, descriptor)
                os.close(held)


def os_reason(exc: OSError) -> str:
    """Why the system refused, in lower case, as diagnostics say it: `permission denied`,
    `too many levels of symbolic links`."""
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        from carlang_runtime.textfile import IS_A_DIRECTORY

        return IS_A_DIRECTORY
    reason = exc.strerror or str(exc)
    return reason[:1].lower() + reason[1:]


def read_bytes(path: Path, what: str = "file") -> bytes:
    """The bytes of `path`, or a usage error naming the file and the reason."""
    if str(path) == "-":
        return sys.stdin.buffer.read()
    try:
        return path.read_bytes()
    except FileNotFoundError:
        fail_usage(f"cannot read {what} {path}: no such file")
    except IsADirectoryError as exc:
        fail_usage(f"cannot read {what} {path}: {os_reason(exc)}")
    except OSError as exc:
        fail_usage(f"cannot read {what} {path}: {exc.strerror or exc}")


def read_text(path: Path, what: str = "file") -> str:
    """The UTF-8 text of `path`, or a usage error naming the file and the reason."""
    data = read_bytes(path, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        fail_usage(f"{path}: not UTF-8 text (invalid byte at offset {exc.start})")
