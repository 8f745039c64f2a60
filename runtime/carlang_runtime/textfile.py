"""Reading an input file as text, the one way every reader of carlang's JSON, JSONL, CSV and
TOML inputs does: a regular file or `-` (standard input), UTF-8 with a byte order mark
skipped, and every problem said in words (`file: it is a directory, not a file`, `file:1:4:
not UTF-8 text (byte 0x83)`), never an `OSError`'s or a codec's message. The compiler's
loader and the CLI say what is wrong with a path in these same words (`not_a_file`).

A FIFO or a device is refused before it is read: reading one blocks, maybe for ever
(`/dev/zero` never ends, and fills the memory while it is read)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Literal

from .errors import CarlangRuntimeError

__all__ = [
    "InputFileError",
    "IS_A_DIRECTORY",
    "NOT_REGULAR",
    "file_kind",
    "not_a_file",
    "read_input_bytes",
    "decode_input",
    "read_input",
]

_BOM = b"\xef\xbb\xbf"
_GZIP = b"\x1f\x8b"  # the magic bytes every gzip file starts with


class InputFileError(CarlangRuntimeError):
    """An input file that cannot be read as text; the message says which and why."""


#: Why a directory is not read as a file, after `path: ` or `cannot read X: `.
IS_A_DIRECTORY = "it is a directory, not a file"
#: Why a FIFO, a device or a socket is not read: reading one blocks, maybe for ever.
NOT_REGULAR = "it is not a regular file (a pipe or a device: reading it may never end)"


def file_kind(path: Path) -> Literal["file", "directory", "other"] | None:
    """What is at `path`: a regular "file", a "directory", or "other" (a FIFO, a device, a
    socket); None when there is nothing there or it cannot be looked at (reading it says
    why)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode):
        return "file"
    return "directory" if stat.S_ISDIR(mode) else "other"


def not_a_file(path: Path) -> str | None:
    """Why `path` is not read as a file (`IS_A_DIRECTORY`, `NOT_REGULAR`), or None for a
    regular file or for nothing there (reading it says why)."""
    kind = file_kind(path)
    if kind == "directory":
        # An empty option value (`--state ''`) becomes `.` before carlang sees it.
        return IS_A_DIRECTORY + (
            " (`.`: the current folder, which an empty path names too)" if str(path) == "." else ""
        )
    return NOT_REGULAR if kind == "other" else None


def read_input_bytes(path: Path) -> bytes:
    """The bytes of an input file (`-`: standard input), or `InputFileError` saying why not."""
    if str(path) == "-":
        return sys.stdin.buffer.read()
    problem = not_a_file(path)
    if problem is not None:
        raise InputFileError(f"{path}: {problem}")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputFileError(f"{path}: {IS_A_DIRECTORY}") from None
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise InputFileError(f"{path}: cannot read it ({reason})") from None


def decode_input(path: Path, data: bytes) -> str:
    """`data` as UTF-8 text, a leading byte order mark skipped, or `InputFileError` at the
    line and column of the first byte that is not UTF-8."""
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if data.startswith(_GZIP):  # a rotated log, say: `x.jsonl.gz`
            raise InputFileError(
                f"{path}: gzip-compressed, not text: decompress it first (gunzip -k {path})"
            ) from None
        start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[start : exc.start].decode("utf-8", errors="replace")) + 1
        utf16 = data.startswith((b"\xff\xfe", b"\xfe\xff"))
        hint = "it looks like UTF-16: save it as UTF-8" if utf16 else "save it as UTF-8"
        raise InputFileError(
            f"{path}:{line}:{column}: not UTF-8 text (byte 0x{data[exc.start]:02x}); {hint}"
        ) from None


def read_input(path: Path) -> str:
    """The text of an input file (`-`: standard input): `read_input_bytes`, `decode_input`."""
    return decode_input(path, read_input_bytes(path))
