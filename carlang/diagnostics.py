"""Diagnostics are values: collected by every stage, sorted, then rendered by `render.py`.

A diagnostic has a code from the registry (`carlang.codes`), a severity, a one-line message
(lowercase, no final period, user input in backticks), labelled spans in a source, an optional
help line and notes. Nothing here prints.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from .source import Source, Span

#: A `# carlang: allow CL0521, CL0207` pragma: it accepts those warnings on its line (on any
#: line of the statement it ends, for a statement over several lines). The codes in any case
#: (`cl0521` is CL0521), each a whole word (`CL05211` is none).
ALLOW_PRAGMA = re.compile(r"#\s*carlang:\s*allow\s+((?i:CL)\d{4}\b(?:\s*,\s*(?i:CL)\d{4}\b)*)")
#: What starts like a pragma (`# carlang:`, `#Carlang :`): one that `ALLOW_PRAGMA` does not
#: read whole is reported (CL0107), not silently ignored.
PRAGMA_START = re.compile(r"#\s*carlang\s*:", re.IGNORECASE)

__all__ = ["Severity", "Label", "Diagnostic", "Diagnostics", "CarlangError"]

Severity = Literal["error", "warning", "info"]
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True, slots=True)
class Label:
    """A span in a source, with what to say about it. The primary label is where the problem is."""

    source: Source
    span: Span
    message: str = ""
    primary: bool = True


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding, ready to render."""

    code: str
    severity: Severity
    message: str
    labels: tuple[Label, ...] = ()
    help: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def primary(self) -> Label | None:
        """The primary label, if the diagnostic has a position."""
        return next((label for label in self.labels if label.primary), None)

    def location(self) -> tuple[str, int, int]:
        """`(file, line, column)` of the primary label; `("", 0, 0)` when it has none."""
        label = self.primary
        if label is None or not label.span:
            return (label.source.name if label else "", 0, 0)
        line, column = label.source.line_column(label.span.start)
        return label.source.name, line, column

    def sort_key(self) -> tuple[int, str, int, int, str, str]:
        """Order: errors before warnings (the error is what to fix first, and a warning is
        often its consequence), then file, position, code, message."""
        name, line, column = self.location()
        return (_SEVERITY_ORDER[self.severity], name, line, column, self.code, self.message)


@dataclass
class Diagnostics:
    """A collector. Stages `add` findings; callers ask `has_errors` and render `sorted()`."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, diagnostic: Diagnostic) -> None:
        """Record one diagnostic."""
        self.items.append(diagnostic)

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        """Record several diagnostics."""
        self.items.extend(diagnostics)

    def error(
        self,
        code: str,
        message: str,
        source: Source,
        span: Span,
        *,
        label: str = "",
        help: str | None = None,
        related: Iterable[Label] = (),
        notes: Iterable[str] = (),
    ) -> None:
        """Record an error at `span`."""
        self._add("error", code, message, source, span, label, help, related, notes)

    def warning(
        self,
        code: str,
        message: str,
        source: Source,
        span: Span,
        *,
        label: str = "",
        help: str | None = None,
        related: Iterable[Label] = (),
        notes: Iterable[str] = (),
    ) -> None:
        """Record a warning at `span`."""
        self._add("warning", code, message, source, span, label, help, related, notes)

    def _add(
        self,
        severity: Severity,
        code: str,
        message: str,
        source: Source,
        span: Span,
        label: str,
        help: str | None,
        related: Iterable[Label],
        notes: Iterable[str],
    ) -> None:
        labels = (Label(source, span, label), *related)
        self.items.append(Diagnostic(code, severity, message, labels, help, tuple(notes)))

    @property
    def has_errors(self) -> bool:
        """Whether any diagnostic is an error."""
        return any(d.severity == "error" for d in self.items)

    def count(self, severity: Severity) -> int:
        """How many diagnostics have `severity`."""
        return sum(1 for d in self.items if d.severity == severity)

    def sorted(self) -> list[Diagnostic]:
        """All diagnostics in output order, duplicates removed."""
        unique = {(d.sort_key(), _span_key(d)): d for d in self.items}
        return [unique[key] for key in sorted(unique)]

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def _span_key(diagnostic: Diagnostic) -> tuple[int, int]:
    """The first label's span as a sortable pair (spans themselves do not order)."""
    if not diagnostic.labels:
        return (-1, -1)
    span = diagnostic.labels[0].span
    return (span.start, span.end)


class CarlangError(Exception):
    """Raised by the `*_or_raise` conveniences when compilation found errors."""

    def __init__(self, diagnostics: Diagnostics) -> None:
        self.diagnostics = diagnostics
        first = next((d for d in diagnostics.sorted() if d.severity == "error"), None)
        name, line, column = first.location() if first else ("", 0, 0)
        where = f"{name}:{line}:{column}: " if name else ""
        super().__init__(f"{where}{first.message}" if first else "compilation failed")
