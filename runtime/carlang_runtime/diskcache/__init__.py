"""What carlang computes once and keeps for the next process: where it is kept, and when such
a file may be trusted. The caches: compiled CEL conditions (`carlang_runtime.cel.cache`),
compiled regexes (`regexes`), and the code Python compiles from text at start-up: dataclass
methods and forward references (`pycode`). The last two, for every pattern and class rather
than carlang's own, are installed only by the `carlang` command (`carlang.entry`).

The root is `$CARLANG_CACHE_DIR`, else `$XDG_CACHE_HOME/carlang`, else `~/.cache/carlang`;
`CARLANG_CACHE_DIR=off` (or empty, `0`, `none`) keeps everything in memory. Each cache has its
own directory under the root, used only if this user owns it and no one else may write to it
(made with mode 0700), and reads only files that are this user's and that no one else may
write to: what a cache stores is run or trusted by the next process.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

__all__ = [
    "cache_root",
    "is_private",
    "private_directory",
    "read_private",
    "write_atomically",
    "read_table",
    "save_table",
    "TABLE_BYTES",
    "table_file",
]

_GETUID: Final = getattr(os, "getuid", None)
_READ_FLAGS: Final = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
# What one further read asks for when a file has grown since its size was taken.
_CHUNK: Final = 1 << 16


def cache_root() -> Path | None:
    """The directory under which each cache has its own (None: caches stay in memory)."""
    configured = os.environ.get("CARLANG_CACHE_DIR")
    if configured is not None:
        if configured.lower() in ("", "off", "0", "none"):
            return None
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except (RuntimeError, KeyError):  # no HOME and no passwd entry (containers)
            return None
    return Path(base) / "carlang"


def is_private(found: os.stat_result) -> bool:
    """Whether a file or directory is this user's and no one else may write to it (POSIX;
    elsewhere the operating system's own permissions decide)."""
    return _GETUID is None or (found.st_uid == _GETUID() and not found.st_mode & 0o022)


def private_directory(directory: Path) -> bool:
    """Whether `directory` is this user's alone (made so, with its parents, when missing)."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return is_private(directory.stat())
    except OSError:
        return False


def read_private(path: str) -> bytes | None:
    """The bytes of the file at `path` when it may be trusted (this user's, no one else may
    write to it, not a symbolic link); None when it may not, or cannot be read. os's calls
    rather than pathlib's: a cached CEL compile is mostly this read."""
    try:
        handle = os.open(path, _READ_FLAGS)
        try:
            found = os.fstat(handle)
            if not is_private(found):
                return None
            # One read of the size the file has, and one byte more: os.read allocates what it
            # is asked for, and a short read is the end of a regular file. Only a file that
            # grew since, or a read cut short, takes more reads, their chunks joined once (a
            # bytes object grown read by read is copied whole at each: quadratic, 22 s for a
            # 52 MB condition).
            wanted = found.st_size + 1
            data = os.read(handle, wanted)
            if found.st_size <= len(data) < wanted:
                return data
            chunks = [data]
            total = len(data)
            while data:
                data = os.read(handle, max(wanted - total, _CHUNK))
                chunks.append(data)
                total += len(data)
            return b"".join(chunks)
        finally:
            os.close(handle)
    except OSError:
        return None


def write_atomically(path: Path, data: bytes) -> bool:
    """Replace the file at `path` with `data` (a temporary file renamed over it, so a reader
    sees the old file or the new one), if its directory is still this user's alone; False
    when nothing was written."""
    import tempfile

    try:
        if not is_private(path.parent.stat()):  # swapped for another's since it was checked
            return False
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError:
        return False
    return True


def table_file(kind: str, *versions: object) -> Path | None:
    """The file of cache `kind` (`read_table`) for this interpreter: compiled code may change
    with its exact version (as a .pyc's magic does), with marshal's, and with `versions` (the
    cache's own); None when caches stay in memory."""
    import marshal
    import sys

    root = cache_root()
    if root is None:
        return None
    tag = "-".join(
        map(str, (sys.implementation.cache_tag, f"{sys.hexversion:x}", *versions, marshal.version))
    )
    return root / kind / f"{tag}.bin"


def read_table(path: Path, layout: int) -> dict[Any, Any]:
    """The entries of a cache file of one marshalled `(layout, {key: entry})`, if it may be
    trusted and is whole and of that layout (else none: the cache starts afresh)."""
    import marshal

    data = read_private(os.fspath(path))
    if data is None:
        return {}
    try:
        stored = marshal.loads(data)
    except Exception:  # noqa: BLE001 - corrupt: start afresh
        return {}
    if type(stored) is not tuple or len(stored) != 2 or stored[0] != layout:
        return {}
    entries = stored[1]
    return entries if type(entries) is dict else {}


#: A cache file past this size starts afresh (with what the process writing it used): loading
#: is paid by every process, and patterns or texts that never recur (`tokenize`'s pattern is
#: built from a set, so its text changes with the process's hash seed) must not pile up.
TABLE_BYTES = 4 << 20


def save_table(
    path: Path,
    layout: int,
    new: dict[Any, Any],
    limit: int,
    used: dict[Any, Any] | None = None,
    max_bytes: int = TABLE_BYTES,
) -> bool:
    """Add `new` to the cache file at `path` (`read_table`): what the file holds now (another
    process may have added some) and `new`; past `limit` entries or `max_bytes`, only the
    entries this process `used` and `new`. False when nothing was written."""
    import marshal

    if not new:
        return False
    entries = {**read_table(path, layout), **new}
    try:
        data = marshal.dumps((layout, entries)) if len(entries) <= limit else b""
        if not data or len(data) > max_bytes:
            data = marshal.dumps((layout, {**(used or {}), **new}))
    except ValueError:  # an entry marshal cannot hold: nothing is written
        return False
    return write_atomically(path, data)
