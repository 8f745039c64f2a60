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
from typing import Final

__all__ = ["cache_root", "is_private", "private_directory"]

_GETUID: Final = getattr(os, "getuid", None)


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
