"""Big regular expressions compiled once per machine, not once per process.

The parse engines' lexers (`carlang_runtime.lalr`) are regexes of every terminal a parser
state takes, thousands of characters long: compiling those a small file's check needs costs
~10 ms, at every start of `carlang check`. Python compiles a regex in two steps: parsing the
pattern and generating the matcher's code (in Python: nearly all the cost), then building the
pattern object from that code (`_sre.compile`, in C: microseconds). This module keeps the code
(a list of integers) on disk, one file per pattern, named by a hash of the pattern, its flags
and the Python that generated it, and builds the pattern from it in later processes.

The directory is `regex` under carlang's cache root (`carlang_runtime.cachedir`, which says how
to turn it off), trusted as the CEL cache's is: this user's alone, and a file is read only if
it is this user's and no one else may write to it. The interpreter validates the code it is
given (an invalid code is an error, never a crash), a stored entry must name the very pattern
and flags asked for, and an entry is stored only when the pattern built from it equals what
`re.compile` makes (same code, flags and groups). Anything that fails falls back to
`re.compile`: the cache can make a compile faster, never different or failing.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import re
import sys
from pathlib import Path
from typing import Any, Final

from .cachedir import cache_root, is_private, private_directory

__all__ = ["compile_cached", "regex_cache_directory"]

# Files of another layout are never read: the format is part of the file name's hash.
_FORMAT: Final = 1
# At most about this many files: past it, the older half goes (one per lexer regex of a
# grammar, so only many grammar versions or Pythons get there).
_FILES: Final = 2048
_READ_FLAGS: Final = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)

try:
    import _sre  # type: ignore[import-not-found]

    _MAGIC: object = _sre.MAGIC
except (ImportError, AttributeError):  # another implementation: no code to keep
    _sre = None
    _MAGIC = None

# The process's directory, looked up on first use: (resolved?, directory or None).
_state: dict[str, Any] = {}


def regex_cache_directory() -> Path | None:
    """Where compiled regexes are kept (None: not on disk)."""
    root = cache_root()
    return None if root is None or _sre is None else root / "regex"


def _directory() -> Path | None:
    if "directory" not in _state:
        directory = regex_cache_directory()
        if directory is not None and not private_directory(directory):
            directory = None
        _state["directory"] = directory
    found: Path | None = _state["directory"]
    return found


def compile_cached(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """`re.compile(pattern, flags)`, from the code kept on disk when there is one (see the
    module's docstring); a compiled pattern's code is kept for the next process."""
    directory = _directory()
    if directory is None:
        return re.compile(pattern, flags)
    flags = int(flags)  # a `re.RegexFlag` is not plain data: the file keeps the number
    path = os.path.join(directory, _file_name(pattern, flags))
    parts = _read(path, pattern, flags)
    if parts is not None:
        try:
            built: re.Pattern[str] = _sre.compile(pattern, *parts)
            return built
        except Exception:  # noqa: BLE001 - a stale or foreign entry: compile afresh
            pass
    compiled = re.compile(pattern, flags)
    parts = _parts(pattern, flags, compiled)
    if parts is not None:
        _write(Path(path), (_FORMAT, pattern, flags, *parts))
    return compiled


def _file_name(pattern: str, flags: int) -> str:
    key = f"{_FORMAT}\0{sys.version}\0{_MAGIC}\0{flags}\0{pattern}"
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16)
    return digest.hexdigest() + ".sre"


def _read(path: str, pattern: str, flags: int) -> tuple[Any, ...] | None:
    """The `_sre.compile` arguments after the pattern, from the file at `path`, if it is
    trusted and holds `pattern` with `flags`."""
    try:
        handle = os.open(path, _READ_FLAGS)
        try:
            if not is_private(os.fstat(handle)):
                return None
            data = b""
            while chunk := os.read(handle, 1 << 20):
                data += chunk
        finally:
            os.close(handle)
        entry = marshal.loads(data)
    except Exception:  # noqa: BLE001 - missing, unreadable or corrupt: compile afresh
        return None
    if (
        type(entry) is not tuple
        or len(entry) != 8
        or entry[:3] != (_FORMAT, pattern, flags)
        or type(entry[4]) is not list
    ):
        return None
    return entry[3:]


def _parts(pattern: str, flags: int, compiled: re.Pattern[str]) -> tuple[Any, ...] | None:
    """What `_sre.compile` takes after the pattern to build `compiled` (as `re` itself makes
    them), or None when that cannot be had or does not rebuild `compiled` exactly."""
    if _sre is None:
        return None
    try:
        from re import _compiler, _parser  # type: ignore[attr-defined]

        parsed = _parser.parse(pattern, flags)
        code = [int(op) for op in _compiler._code(parsed, flags)]
        groupindex = dict(parsed.state.groupdict)
        indexgroup: list[str | None] = [None] * parsed.state.groups
        for name, index in groupindex.items():
            indexgroup[index] = name
        parts = (
            int(flags | parsed.state.flags),
            code,
            parsed.state.groups - 1,
            groupindex,
            tuple(indexgroup),
        )
        rebuilt = _sre.compile(pattern, *parts)
    except Exception:  # noqa: BLE001 - an `re` whose internals differ: nothing to keep
        return None
    same = (
        rebuilt == compiled
        and rebuilt.groups == compiled.groups
        and dict(rebuilt.groupindex) == dict(compiled.groupindex)
    )
    return parts if same else None


def _write(path: Path, entry: tuple[Any, ...]) -> None:
    """Store `entry` at `path` (atomically; skipped on any error)."""
    import tempfile

    try:
        if not is_private(path.parent.stat()):  # swapped for another's since it was checked
            return
        data = marshal.dumps(entry)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except (OSError, ValueError):
        return
    if not _state.get("pruned"):
        _state["pruned"] = True
        _prune(path.parent)


def _prune(directory: Path) -> None:
    """Keep the directory to about `_FILES` files: past that, the older half goes."""
    try:
        entries = [entry for entry in os.scandir(directory) if entry.name.endswith(".sre")]
        if len(entries) <= _FILES:
            return
        entries.sort(key=lambda entry: entry.stat().st_mtime_ns)
        for entry in entries[: len(entries) - _FILES // 2]:
            os.unlink(entry.path)
    except OSError:
        return
