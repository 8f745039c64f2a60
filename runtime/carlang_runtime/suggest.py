"""One "did you mean" for every misspelt name the runtime and the compiler report, and the
article messages put before a kind ("an array", "a string")."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["closest", "did_you_mean", "with_article", "plural", "plural_with_verb"]


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The choice closest to `name`, or None when nothing is close enough to be a typo."""
    import difflib  # here: a clean program never needs it, and every start-up would pay

    close = difflib.get_close_matches(name, sorted(set(choices)), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(name: str, choices: Iterable[str], quote: str = "'") -> str | None:
    """`did you mean 'fetch'?` for the choice closest to `name`, or None when nothing is
    close enough. `quote` wraps the suggestion (the compiler's messages use backticks)."""
    close = closest(name, choices)
    return f"did you mean {quote}{close}{quote}?" if close is not None else None


def with_article(kind: str) -> str:
    """`kind` after its indefinite article: "an array", "a string"."""
    return ("an " if kind[:1] in "aeiou" else "a ") + kind


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 file`, `2 files`; `many` for a word that does not just add an s."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def plural_with_verb(count: int, word: str, verb: str) -> str:
    """`1 action exceeds`, `3 actions exceed` (`verb` as it goes with many)."""
    return f"{plural(count, word)} {verb + 's' if count == 1 else verb}"
