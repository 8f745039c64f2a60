"""A cache of compiled CEL conditions, so that a condition is parsed, checked and turned into
Python once, not at every load of the policies that hold it.

Two levels, keyed by a hash of what decides the result (the source, the declarations, the
container, the limits) and of the code that compiles it (carlang's version, the Python
version, and the size and modification time of each module of this package, so that an edited
checkout never runs stale code):

- in memory, the `Program` itself (bounded, least recently used dropped first);
- on disk, one file per condition holding the folded tree and the generated function's
  marshalled code object, so that a fresh process skips parsing, checking, code generation and
  Python's `compile()`. The directory is `$CARLANG_CACHE_DIR/cel`, else
  `$XDG_CACHE_HOME/carlang/cel`, else `~/.cache/carlang/cel`; `CARLANG_CACHE_DIR=off` turns
  the disk level off. A file that cannot be read or does not decode is ignored and rewritten;
  one that cannot be written is skipped: the cache never makes a compile fail.

A stored condition is code that runs: the disk level is used only in a directory that this
user owns and no one else may write to (made with mode 0700), and a file is read only if it is
this user's and no one else may write to it (checked on the open file, not on its path, so a
directory swapped for another's after the first check gains nothing). Anything else is passed
over and the condition compiled afresh.

Only successful compiles are cached; an expression with errors is compiled (and fails) again.
"""

from __future__ import annotations

import marshal
import os
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from types import CodeType
from typing import Any, Final

from .._version import __version__
from ..digests import blake2b
from ..diskcache import cache_root, private_directory, read_private, write_atomically
from . import codegen
from .functions import compile_regex

__all__ = ["CompileCache", "DEFAULT", "cache_directory", "stored_parts", "restored"]

# Names in a generated namespace that are rebuilt rather than stored.
_REBUILT: Final = frozenset({"_budget", "_resolving"})

# Files written by another layout are never read: the format is part of the key.
_FORMAT: Final = 2
_MEMORY_SIZE: Final = 1024
# At most this many conditions on disk (a few KB each) besides those the process itself uses;
# the count is checked at a process's first write and then every so many writes ...
_DISK_FILES: Final = 8192
_PRUNE_EVERY: Final = 256
# ... or, in a directory of more entries than `_DISK_FILES`, after as many writes as this share
# of them: a check reads every entry, and a process writing 40,000 conditions (all kept) would
# otherwise read its growing directory every 256 writes, quadratic in them.
_SCAN_SHARE: Final = _DISK_FILES // _PRUNE_EVERY


@lru_cache(maxsize=64)
def _limits_text(limits: Any) -> str:
    return repr(limits)


def cache_directory() -> Path | None:
    """Where compiled conditions are stored on disk (None: not on disk)."""
    root = cache_root()
    return None if root is None else root / "cel"


def _code_fingerprint() -> str:
    """carlang's version, the Python that marshals the code, and the files that compile it:
    this package's modules and parser tables, and the modules of the runtime it imports."""
    parts = [str(_FORMAT), __version__, sys.implementation.cache_tag or sys.version]
    package = Path(__file__).resolve().parent
    runtime = package.parent
    used = ("lalr.py", "errors.py", "jsontext.py", "suggest.py", "_version.py")
    try:
        files = [*sorted(package.glob("*.py")), package / "cel_tables.json"]
        for path in [*files, *(runtime / name for name in used)]:
            stat = path.stat()
            parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    except OSError:
        parts.append("unknown")
    return "\n".join(parts)


class _FromEnvironment:
    """The default directory: `cache_directory()`, looked up when first needed."""


_FROM_ENVIRONMENT: Final = _FromEnvironment()


class CompileCache:
    """Compiled programs in memory (at most `size`) and, with a `directory`, on disk (by
    default the one `cache_directory()` names when first needed; at most about `files`
    besides those this cache read or wrote)."""

    def __init__(
        self,
        directory: Path | str | None | _FromEnvironment = _FROM_ENVIRONMENT,
        size: int = _MEMORY_SIZE,
        files: int = _DISK_FILES,
    ) -> None:
        self._directory = directory
        self.size = size
        self.files = files
        self._writes = 0
        self._next_check = 1  # (the first write checks the count)
        #: The files on disk (by key) this cache read or wrote: it never prunes them.
        self._used: set[str] = set()
        self.memory: OrderedDict[str, Any] = OrderedDict()
        self._fingerprint: str | None = None
        #: (the fingerprint, the hash fed with it): what each file key goes on from.
        self._hashed: tuple[str, Any] | None = None
        self._checked: Path | None = None

    def key(self, source: str, declarations: Any, container: str, limits: Any) -> Any:
        """What names one compile in memory: its inputs (hashable)."""
        if declarations is None:
            return (source, None, container, limits)
        declared = tuple(sorted((name, repr(t)) for name, t in declarations.variables.items()))
        return (source, declared, container, limits)

    def file_key(self, key: Any) -> str:
        """The hash naming one compile on disk: its inputs and the code that compiles them."""
        if self._fingerprint is None:
            self._fingerprint = _code_fingerprint()
        fingerprint = self._fingerprint
        if self._hashed is None or self._hashed[0] is not fingerprint:
            # The fingerprint (a line per module, ~1 KB) fed to the hash once: each key goes
            # on from a copy (the same digest as hashing the joined text whole).
            start = blake2b((fingerprint + "\0").encode("utf-8", "surrogatepass"), digest_size=20)
            self._hashed = (fingerprint, start)
        source, declared, container, limits = key
        limits_text = None if limits is None else _limits_text(limits)
        text = "\0".join((source, repr(declared), container, repr(limits_text)))
        hashed = self._hashed[1].copy()
        hashed.update(text.encode("utf-8", "surrogatepass"))
        return str(hashed.hexdigest())

    def get(self, key: Any, rebuild: Callable[[dict[str, Any]], Any]) -> Any:
        """The cached program for `key`, from memory or else from disk (`rebuild` turns the
        stored parts into a program), or None."""
        program = self.memory.get(key)
        if program is not None:
            try:
                self.memory.move_to_end(key)
            except KeyError:  # another thread dropped it meanwhile: it is still a program
                pass
            return program
        if self.directory is None:
            return None
        name = self.file_key(key)
        parts = self._read(name)
        if parts is None:
            return None
        try:
            program = rebuild(parts)
        except Exception:  # noqa: BLE001 - a stale or foreign file: compile afresh instead
            return None
        self._used.add(name)
        self._remember(key, program)
        return program

    def put(self, key: Any, program: Any, parts: dict[str, Any] | None) -> None:
        """Keep `program` in memory and `parts` (what rebuilds it) on disk."""
        self._remember(key, program)
        if parts is not None and self.directory is not None:
            self._write(self.file_key(key), parts)

    def clear(self) -> None:
        """Forget the programs held in memory (the disk is left as it is)."""
        self.memory.clear()

    @contextmanager
    def bundle(self, name: str) -> Iterator[None]:
        """Compile a set of conditions (a policy set's; `name` tells the set apart, its
        conditions' sources, say) with one file read instead of one per condition: within
        this block, a condition this cache reads from disk is looked for first in the set's
        bundle, a file of every condition the set used the last time; when the block ends
        without an error, a bundle that lacked any of them is written anew. The entries are
        the conditions' own files, by their keys: an entry of another version or input is
        never found, and a bundle that cannot be read or trusted is passed over, as any file
        of this cache. Per thread and task (a context variable): other threads compiling
        meanwhile are not affected."""
        if not name or self.directory is None:  # (a set of no conditions: nothing to read)
            yield
            return
        found = _Bundle(self, name)
        token = _BUNDLE.set(found)
        try:
            yield
        finally:
            _BUNDLE.reset(token)
        if found.missed and found.seen:
            self._write_bundle(found)

    def _remember(self, key: Any, program: Any) -> None:
        self.memory[key] = program
        while len(self.memory) > self.size:
            try:
                self.memory.popitem(last=False)
            except KeyError:  # emptied by another thread
                break

    @property
    def directory(self) -> Path | None:
        """Where the disk level lives (None: no disk level, or a directory that others could
        write to)."""
        if isinstance(self._directory, _FromEnvironment):
            self._directory = cache_directory()
        elif isinstance(self._directory, str):
            self._directory = Path(self._directory)
        if self._directory is not None and not self._trusted(self._directory):
            self._directory = None
        return self._directory

    def _trusted(self, directory: Path) -> bool:
        """Whether `directory` is this user's alone (made so when missing)."""
        if directory is self._checked or directory == self._checked:  # (`is`: no Path.__eq__)
            return True
        if not private_directory(directory):
            return False
        self._checked = directory
        return True

    def _path(self, key: str) -> Path | None:
        directory = self.directory
        return None if directory is None else directory / f"{key}.bin"

    def _read(self, key: str) -> dict[str, Any] | None:
        directory = self.directory
        if directory is None:
            return None
        bundle = _BUNDLE.get()
        if bundle is not None and bundle.cache is not self:
            bundle = None
        data = bundle.entry(directory, key) if bundle is not None else None
        if data is None:
            data = read_private(f"{os.fspath(directory)}{os.sep}{key}.bin")
            if bundle is not None:
                bundle.missed = True
        if data is None:
            return None
        if bundle is not None:
            bundle.seen[key] = data
        try:
            parts = _decoded(data)
            if type(parts) is not dict or parts.get("key") != key:
                return None
            parts["code"] = marshal.loads(parts["code"])
            return parts
        except Exception:  # noqa: BLE001 - a corrupt file is ignored (and rewritten)
            return None

    def _write(self, key: str, parts: dict[str, Any]) -> None:
        path = self._path(key)
        if path is None:
            return
        try:
            data = _encoded({**parts, "key": key})
        except Exception:  # noqa: BLE001 - a constant that does not pickle: memory only
            return
        if not write_atomically(path, data):
            return
        bundle = _BUNDLE.get()
        if bundle is not None and bundle.cache is self:
            bundle.seen[key] = data
            bundle.missed = True
        self._used.add(key)
        self._writes += 1
        if self._writes >= self._next_check:
            self._prune(path.parent)

    def _write_bundle(self, bundle: _Bundle) -> None:
        """Write `bundle`'s file: every condition the set used, as its own file holds it."""
        directory = self.directory
        if directory is None or sum(map(len, bundle.seen.values())) > _BUNDLE_BYTES:
            return
        name = bundle.file_name(self)
        data = _MARSHALLED + marshal.dumps((_BUNDLE_MARK, name, bundle.seen))
        if write_atomically(directory / f"{name}.bin", data):
            self._used.add(name)
            _keep_newest_bundles(directory, _BUNDLES)

    def _prune(self, directory: Path) -> None:
        """Keep the directory to `files` conditions besides those this cache used: past
        that, the older half of the others goes (a language server compiling each keystroke's
        condition would otherwise fill it). What it read or wrote stays, however many: a
        program of more conditions than `files` would otherwise evict its own at each check,
        and the next check would find none of them (each compiled, written, deleted again)."""
        try:
            entries = [entry for entry in os.scandir(directory) if entry.name.endswith(".bin")]
            self._next_check = self._writes + max(_PRUNE_EVERY, len(entries) // _SCAN_SHARE)
            others = [entry for entry in entries if entry.name[:-4] not in self._used]
            if len(others) <= self.files:
                return
            others.sort(key=lambda entry: entry.stat().st_mtime_ns)
            for entry in others[: len(others) - self.files // 2]:
                os.unlink(entry.path)
        except OSError:
            return


#: The first byte of a file whose parts are marshalled; any other is a pickle's.
_MARSHALLED: Final = b"M"
#: What a bundle's file starts with, after `_MARSHALLED`: (this mark, its name, its entries).
_BUNDLE_MARK: Final = "carlang-cel-bundle"
#: A set whose conditions' files add up to more than this is read file by file (a bundle is
#: written whole whenever one of its conditions changes).
_BUNDLE_BYTES: Final = 8 << 20
#: At most this many bundles are kept (the newest): the policy sets of a machine's programs.
_BUNDLES: Final = 64


class _Bundle:
    """The bundle of one set of conditions while it compiles (`CompileCache.bundle`): its
    entries (the conditions' files, by key), read from disk when first needed; the files of
    the conditions it used; and whether any was not in it."""

    def __init__(self, cache: CompileCache, name: str) -> None:
        self.cache = cache
        self.name = name
        self.entries: dict[str, bytes] | None = None
        self.seen: dict[str, bytes] = {}
        self.missed = False

    def file_name(self, cache: CompileCache) -> str:
        """The name of the bundle's file: a hash of the set's name and of the code."""
        return "set-" + cache.file_key(("\0bundle", None, self.name, None))

    def entry(self, directory: Path, key: str) -> bytes | None:
        """The file of the condition `key` as the bundle holds it, or None."""
        if self.entries is None:
            self.entries = self._load(directory)
        found = self.entries.get(key)
        return found if type(found) is bytes else None

    def _load(self, directory: Path) -> dict[str, bytes]:
        name = self.file_name(self.cache)
        data = read_private(f"{os.fspath(directory)}{os.sep}{name}.bin")
        if data is None or data[:1] != _MARSHALLED:
            return {}
        try:
            mark, stored_name, entries = marshal.loads(memoryview(data)[1:])
        except Exception:  # noqa: BLE001 - corrupt, or not a bundle: read file by file
            return {}
        if mark != _BUNDLE_MARK or stored_name != name or type(entries) is not dict:
            return {}
        self.cache._used.add(name)
        return entries


def _keep_newest_bundles(directory: Path, count: int) -> None:
    """Delete all but the `count` bundles last written in `directory`: each edit of a set's
    conditions makes a new one (a set of 200 conditions edited 500 times would leave 500 files
    of ~1 MB), and only the newest are ever read again."""
    try:
        bundles = [entry for entry in os.scandir(directory) if entry.name.startswith("set-")]
        if len(bundles) <= count:
            return
        bundles.sort(key=lambda entry: entry.stat().st_mtime_ns, reverse=True)
        for entry in bundles[count:]:
            os.unlink(entry.path)
    except OSError:  # (another process pruned meanwhile: what is left is still bounded)
        return


#: The bundle being compiled in this thread or task, if any.
_BUNDLE: ContextVar[_Bundle | None] = ContextVar("carlang_cel_bundle", default=None)


def _encoded(parts: dict[str, Any]) -> bytes:
    """`parts` as a file's bytes: marshalled when marshal takes every value (built-in types
    only: most conditions), so that reading it back needs no `pickle` (~2.5 ms of a fresh
    process's start-up to import); else pickled (a constant such as a folded timestamp)."""
    try:
        return _MARSHALLED + marshal.dumps(parts)
    except ValueError:  # (an object of a type marshal does not know)
        import pickle

        return pickle.dumps(parts, protocol=pickle.HIGHEST_PROTOCOL)


def _decoded(data: bytes) -> Any:
    """What `_encoded` made `data` of."""
    if data[:1] == _MARSHALLED:
        return marshal.loads(memoryview(data)[1:])
    import pickle

    return pickle.loads(data)


def stored_parts(generated: codegen.Generated, code: Any) -> dict[str, Any]:
    """What the disk keeps of a generated function: its code and the constants it names that
    the code generator added (the helpers are the same in every process)."""
    constants = {
        name: value
        for name, value in generated.namespace.items()
        if name not in codegen._HELPERS and name not in _REBUILT and name not in generated.patterns
    }
    return {
        "source": generated.source,
        "code": marshal.dumps(code),
        "helpers": sorted(name for name in _global_names(code) if name in codegen._HELPERS),
        "constants": constants,
        "patterns": dict(generated.patterns),
        "variables": generated.variables,
        "has_macros": generated.has_macros,
        "resolving": "_resolving" in generated.namespace,
    }


def _global_names(code: CodeType) -> set[str]:
    """Every name `code` and the functions inside it look up (globals among them)."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, CodeType):
            names |= _global_names(constant)
    return names


def restored(parts: dict[str, Any], limits: Any, resolving: Callable[[], Any]) -> codegen.Generated:
    """The `Generated` that `stored_parts` describes, under `limits` (`resolving` makes its
    name-resolving variant, when it had one)."""
    # Only the helpers the code names: the namespace is copied again at each bind, and all
    # of them (~140) made a restore cost twice what it does.
    helpers = codegen._HELPERS
    namespace = {name: helpers[name] for name in parts["helpers"]}
    namespace.update(parts["constants"])
    namespace["_budget"] = codegen._Budget(limits.max_steps, limits.max_seconds)
    for name, pattern in parts["patterns"].items():
        namespace[name] = compile_regex(pattern).search
    if parts["resolving"]:
        namespace["_resolving"] = resolving()
    return codegen.Generated(
        parts["source"],
        namespace,
        parts["variables"],
        parts["has_macros"],
        patterns=dict(parts["patterns"]),
    )


DEFAULT: Final = CompileCache()
