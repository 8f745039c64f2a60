"""Glob patterns for tool names and state keys (`rollback_*`, `build.*`).

`*` matches any run of characters (dots included), `?` one character, `[...]` a class, as in
`fnmatch`, always case-sensitive. Plain names are matched by set lookup, patterns by one
compiled regex, so matching stays cheap when a capability lists many names.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from functools import lru_cache

__all__ = ["GlobSet", "is_glob"]

_GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    """Whether `pattern` contains glob syntax."""
    return not _GLOB_CHARS.isdisjoint(pattern)


@lru_cache(maxsize=4096)
def _compiled(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for the glob patterns among `patterns`, made once per set of patterns: a
    program's capabilities and policies are built again for every proposal it verifies, and
    `fnmatch.translate` keeps no cache of its own."""
    globs = [fnmatch.translate(p) for p in patterns if is_glob(p)]
    return re.compile("|".join(f"(?:{g})" for g in globs)) if globs else None


class GlobSet:
    """A set of names and glob patterns; `matches(name)` if any of them matches."""

    __slots__ = ("patterns", "_exact", "_regex")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        self._exact = frozenset(p for p in self.patterns if not is_glob(p))
        self._regex = _compiled(self.patterns)

    def matches(self, name: str) -> bool:
        """True when `name` equals a listed name or matches a listed pattern."""
        if name in self._exact:
            return True
        return self._regex is not None and self._regex.match(name) is not None

    @property
    def exact_only(self) -> bool:
        """Whether every entry is a name, no pattern: `matches` is then a set lookup, and
        the names matched can be looked up rather than every name tested."""
        return self._regex is None

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def __repr__(self) -> str:
        return f"GlobSet({list(self.patterns)!r})"
