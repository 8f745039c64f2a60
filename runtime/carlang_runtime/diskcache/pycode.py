"""Code Python compiles from text at every start, compiled once per machine instead.

A dataclass's `__init__`, `__repr__`, `__eq__`, `__hash__` (and, when frozen, `__setattr__`
and `__delattr__`) are written as source text and compiled when the class is defined: ~65 us
per function, ~0.5 ms per frozen class. A `carlang check` defines about 190 dataclasses
(carlang's syntax tree and stages, the runtime's, pydantic's own), so compiling their methods
is ~30 ms of its start-up, for text that is the same at every run; and `typing` compiles each
forward reference it makes (~670 of them, most in pydantic-core's schema types: ~4 ms).
`install()` (which the `carlang` command calls, never the library by itself) gives the
`dataclasses` module an `exec`, and `typing` a `compile`, that look the text up in a cache and
use the code compiled from it, compiling (as they would: no inherited `__future__` flags) and
keeping what they have not seen.

The code is exactly what `exec` or `compile` makes of the same text with this interpreter (the
file is per interpreter version), so a class or a reference is the same with or without the
cache. It is kept in one file, `pycode/<tag>.bin` under carlang's cache root
(`carlang_runtime.diskcache`, which says how to turn it off), trusted as the CEL cache is (this
user's alone: a stored function is code that runs), loaded once, and rewritten at exit when the
process compiled something new. An entry is keyed by its mode and whole text. Anything that
fails (no cache directory, an unreadable or foreign file) leaves them compiling as usual.
"""

from __future__ import annotations

import atexit
import builtins
import marshal
import sys
from pathlib import Path
from types import CodeType
from typing import Any, Final

from . import private_directory, read_table, save_table, table_file

__all__ = ["install", "code_cache_file"]

_FORMAT: Final = 2
# Past this many functions the file starts afresh (many Python or carlang versions).
_ENTRIES: Final = 8192


def code_cache_file() -> Path | None:
    """The file of compiled functions for this interpreter (None: no cache on disk)."""
    return table_file("pycode")


class _CodeCache:
    """The texts compiled so far, by text: `stored` (marshalled, from the file) and `new`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stored: dict[str, bytes] = read_table(path, _FORMAT)
        self.new: dict[str, bytes] = {}
        self.used: dict[str, bytes] = {}  # stored entries this process ran
        self.made: dict[str, CodeType] = {}

    def code(self, text: str, mode: str = "exec") -> CodeType:
        """The code `compile(text, "<string>", mode)` makes, from the cache or compiled now
        (a text that does not compile raises as it would)."""
        key = text if mode == "exec" else f"{mode}\0{text}"
        found = self.made.get(key)
        if found is not None:
            return found
        data = self.stored.get(key)
        code: Any = None
        if data is not None:
            try:
                code = marshal.loads(data)
            except Exception:  # noqa: BLE001 - a damaged entry: compile it again
                code = None
        if type(code) is not CodeType:
            code = compile(text, "<string>", mode, dont_inherit=True)
            self.new[key] = marshal.dumps(code)
        elif data is not None:
            self.used[key] = data
        made: CodeType = code
        self.made[key] = made
        return made

    def save(self) -> None:
        """Write the file again with what this process compiled (kept atomic; on any error,
        nothing is written)."""
        save_table(self.path, _FORMAT, self.new, _ENTRIES, self.used)


def install() -> bool:
    """Give `dataclasses` the caching `exec` and `typing` the caching `compile` (once per
    process); False when there is no cache directory to use."""
    import dataclasses
    import typing

    if isinstance(getattr(dataclasses, "exec", None), _CachingExec):
        return True
    path = code_cache_file()
    if path is None or not private_directory(path.parent):
        return False
    cache = _CodeCache(path)
    dataclasses.exec = _CachingExec(cache)  # type: ignore[attr-defined]
    typing.compile = _CachingCompile(cache)  # type: ignore[attr-defined]
    atexit.register(cache.save)
    return True


class _CachingExec:
    """`exec` for the `dataclasses` module: source text runs as its cached code."""

    def __init__(self, cache: _CodeCache) -> None:
        self.cache = cache

    def __call__(self, source: Any, globals: Any = None, locals: Any = None, /, **kw: Any) -> None:
        if type(source) is str and globals is not None and not kw:
            builtins.exec(self.cache.code(source), globals, locals)
            return
        if globals is None:  # exec's default: the caller's namespaces
            frame = sys._getframe(1)
            globals, locals = frame.f_globals, frame.f_locals if locals is None else locals
        builtins.exec(source, globals, locals, **kw)


class _CachingCompile:
    """`compile` for the `typing` module: an expression's code from the cache."""

    def __init__(self, cache: _CodeCache) -> None:
        self.cache = cache

    def __call__(self, source: Any, filename: Any, mode: str, *args: Any, **kw: Any) -> Any:
        if (
            type(source) is str
            and filename == "<string>"
            and mode == "eval"
            and not args + tuple(kw)
        ):
            return self.cache.code(source, mode)
        return builtins.compile(source, filename, mode, *args, **kw)
