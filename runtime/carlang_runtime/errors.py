"""The runtime's exception types. Every error a caller can cause derives from `CarlangRuntimeError`;
anything else escaping the runtime is an internal error (a bug)."""

from __future__ import annotations

from dataclasses import dataclass

from .jsontext import JsonPosition

__all__ = ["CarlangRuntimeError", "LoadProblem", "IRLoadError"]


class CarlangRuntimeError(Exception):
    """Base of the errors the runtime raises for bad input or refused operations."""


@dataclass(frozen=True, slots=True)
class LoadProblem:
    """One reason a document failed to load: where (`path`, and `position` in JSON text when
    the document was text) and what is wrong."""

    path: str
    message: str
    position: JsonPosition | None = None

    def __str__(self) -> str:
        where = f"{self.position.line}:{self.position.column}: " if self.position else ""
        subject = f"{self.path}: " if self.path else ""
        return f"{where}{subject}{self.message}"


class IRLoadError(CarlangRuntimeError, ValueError):
    """A document that is not a valid IR object (malformed JSON, or wrong keys or types)."""

    def __init__(self, what: str, problems: list[LoadProblem]) -> None:
        self.what = what
        self.problems = problems
        first = problems[0] if problems else LoadProblem("", "invalid")
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"invalid {what}: {first}{more}")
