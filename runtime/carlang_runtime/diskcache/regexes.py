"""Regular expressions compiled once per machine, not once per process.

Python compiles a regex in two steps: parsing the pattern and generating the matcher's code (in
Python: nearly all the cost), then building the pattern object from that code (`_sre.compile`,
in C: microseconds). This module keeps the code (a list of integers) of the patterns compiled
through it, in one file per interpreter version, and builds those patterns from it in later
processes. The code is kept as the bytes of an array of 32-bit integers, so that loading the
file costs a copy, not an integer object per instruction (~9 ms for 400 patterns). Two users:

- the parse engines' lexers (`carlang_runtime.lalr`), regexes of every terminal a parser state
  takes, thousands of characters long, through `compile_cached`: compiling those a small
  file's check needs was ~10 ms of every `carlang check`;
- in the `carlang` command's process only (`install()`), every pattern `re` compiles: the
  modules carlang and its dependencies import compile ~60 small ones at start-up (~6 ms).

The file is `regex/<interpreter>.bin` under carlang's cache root (`carlang_runtime.diskcache`,
which says how to turn it off), trusted as the CEL cache's is: this user's alone, read only if
it is this user's and no one else may write to it. It is loaded on first use and rewritten at
exit when new patterns were compiled. The interpreter validates the code it is given (an
invalid code is an error, never a crash), an entry is found by its exact pattern and flags,
and it is stored only when the pattern built from it equals what `re` makes (same code, flags
and groups). Anything that fails falls back to `re`: the cache can make a compile faster,
never different or failing.
"""

from __future__ import annotations

import atexit
import re
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from . import private_directory, read_table, save_table, table_file

__all__ = ["compile_cached", "install", "regex_cache_file"]

# Files of another layout are never read.
_FORMAT: Final = 3
# Past this many patterns the file starts afresh (one per lexer regex of a grammar version and
# per pattern of the modules a command imports: only many versions get there).
_ENTRIES: Final = 4096
# Past this size too: carlang's own patterns take ~60 KB, and a pattern that never recurs
# (tokenize's, ~15 KB: pydantic tokenizes `list`'s signature when it builds a validator) is
# added by every process that compiles it; the file is read by every command and rewritten by
# each of those, so it is kept small (~1 ms either way).
_BYTES: Final = 1 << 20

try:
    import _sre  # type: ignore[import-not-found]

    _MAGIC: object = _sre.MAGIC
except (ImportError, AttributeError):  # another implementation: no code to keep
    _sre = None
    _MAGIC = None

# `re`'s own compiler, whatever `install` puts in its place.
_COMPILE: Final[Callable[[Any, int], Any]] = re._compiler.compile  # type: ignore[attr-defined]

#: What `_sre.compile` takes after the pattern: (flags, code, groups, groupindex, indexgroup),
#: the code as the bytes of an array of this type (`_code_bytes`).
Parts = tuple[Any, ...]
_CODE_TYPE: Final = "I"


def regex_cache_file() -> Path | None:
    """The file of compiled patterns for this interpreter (None: not on disk)."""
    return None if _sre is None else table_file("regex", _MAGIC)


class _Store:
    """The patterns' code: `stored` (from the file) and `new` (compiled by this process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stored: dict[tuple[str, int], Parts] = read_table(path, _FORMAT)
        self.new: dict[tuple[str, int], Parts] = {}
        self.used: dict[tuple[str, int], Parts] = {}  # stored entries this process built

    def compile(self, pattern: str, flags: int) -> re.Pattern[str]:
        """The pattern, built from its kept code, or compiled by `re` (and its code kept)."""
        key = (pattern, flags)
        parts = self.stored.get(key) or self.new.get(key)
        if parts is not None:
            try:
                own_flags, code, *rest = parts
                built: re.Pattern[str] = _sre.compile(
                    pattern, own_flags, array(_CODE_TYPE, code).tolist(), *rest
                )
            except Exception:  # noqa: BLE001 - a stale or foreign entry: compile afresh
                pass
            else:
                if key in self.stored:
                    self.used[key] = parts
                return built
        compiled: re.Pattern[str] = _COMPILE(pattern, flags)
        parts = _parts(pattern, flags, compiled)
        if parts is not None:
            self.new[key] = parts
        return compiled

    def save(self) -> None:
        """Write the file again with what this process compiled (atomically; on any error,
        nothing is written)."""
        if save_table(self.path, _FORMAT, self.new, _ENTRIES, self.used, _BYTES):
            self.new.clear()


# The process's store, made on first use (None: no cache directory).
_state: dict[str, _Store | None] = {}


def _store() -> _Store | None:
    if "store" not in _state:
        path = regex_cache_file()
        store = None
        if path is not None and private_directory(path.parent):
            store = _Store(path)
            atexit.register(store.save)
        _state["store"] = store
    return _state["store"]


def compile_cached(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """`re.compile(pattern, flags)`, built from the code kept on disk when there is one (see
    the module's docstring); a pattern compiled now has its code kept for the next process."""
    store = _store()
    if store is None:
        return re.compile(pattern, flags)
    return store.compile(pattern, int(flags))


def _parts(pattern: str, flags: int, compiled: re.Pattern[str]) -> Parts | None:
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
        kept = array(_CODE_TYPE, code)
        parts = (
            int(flags | parsed.state.flags),
            kept.tobytes(),
            parsed.state.groups - 1,
            groupindex,
            tuple(indexgroup),
        )
        rebuilt = _sre.compile(pattern, parts[0], kept.tolist(), *parts[2:])
    except Exception:  # noqa: BLE001 - an `re` whose internals differ: nothing to keep
        return None
    same = (
        rebuilt == compiled
        and rebuilt.groups == compiled.groups
        and dict(rebuilt.groupindex) == dict(compiled.groupindex)
    )
    return parts if same else None


def _compile_for_re(pattern: Any, flags: int = 0) -> Any:
    """`re`'s compiler, with text patterns from the store (debug output, bytes and parsed
    patterns go to `re` itself)."""
    if type(pattern) is str and type(flags) is int and not flags & re.DEBUG:
        store = _store()
        if store is not None:
            return store.compile(pattern, flags)
    return _COMPILE(pattern, flags)


def install() -> bool:
    """Have `re` compile every text pattern through the store (for the `carlang` command's
    process; the library never does this by itself). False when there is no cache directory."""
    if _store() is None:
        return False
    re._compiler.compile = _compile_for_re  # type: ignore[attr-defined]
    return True
