"""One "did you mean" for every misspelt name the runtime and the compiler report."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean"]


def did_you_mean(name: str, choices: Iterable[str], quote: str = "'") -> str | None:
    """`did you mean 'fetch'?` for the choice closest to `name`, or None when nothing is
    close enough. `quote` wraps the suggestion (the compiler's messages use backticks)."""
    close = difflib.get_close_matches(name, sorted(set(choices)), n=1, cutoff=0.6)
    return f"did you mean {quote}{close[0]}{quote}?" if close else None
