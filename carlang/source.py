"""Source files and positions: a `Source` is a file's name and text; a `Span` is a range of
character offsets into one. Lines and columns (1-based, counted in characters) are computed on
demand from a table of line starts, so the parser only ever tracks offsets."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate

__all__ = ["Source", "Span", "NO_SPAN"]


@dataclass(frozen=True, slots=True)
class Span:
    """Characters `start` (inclusive) to `end` (exclusive) of one source."""

    start: int
    end: int

    def cover(self, other: Span) -> Span:
        """The smallest span covering both."""
        return Span(min(self.start, other.start), max(self.end, other.end))

    def __bool__(self) -> bool:
        return self.end >= 0


# A frozen dataclass's `__init__` sets each field through `object.__setattr__`; the slots' own
# descriptors do the same (still frozen to every other assignment) in half the time, and the
# parser makes a span for every name and every node.
_set_start = vars(Span)["start"].__set__
_set_end = vars(Span)["end"].__set__


def _span_init(self: Span, start: int, end: int) -> None:
    _set_start(self, start)
    _set_end(self, end)


Span.__init__ = _span_init  # type: ignore[method-assign]


#: The span of things that have no position in any source (synthesised nodes).
NO_SPAN = Span(-1, -1)


@dataclass(eq=False)
class Source:
    """A named text. `name` is what diagnostics print: a path relative to the project root."""

    name: str
    text: str
    _line_starts: list[int] = field(default_factory=list, repr=False)

    def _starts(self) -> list[int]:
        if not self._line_starts:
            # 0, then one past each newline: the running sum of the lines' lengths with their
            # newlines (every line but the last has one), at C speed
            lines = self.text.split("\n")
            self._line_starts = list(accumulate(map((1).__add__, map(len, lines[:-1])), initial=0))
        return self._line_starts

    def line_column(self, offset: int) -> tuple[int, int]:
        """1-based line and column of a character offset (clamped to the text)."""
        if not 0 <= offset <= len(self.text):
            offset = max(0, min(offset, len(self.text)))
        starts = self._line_starts or self._starts()  # lowering asks once per action
        line = bisect_right(starts, offset)
        return line, offset - starts[line - 1] + 1

    def span_line_columns(self, span: Span) -> tuple[int, int, int, int]:
        """`line_column` of a span's start and of its end, at once (lowering asks it for every
        action)."""
        starts = self._line_starts or self._starts()
        size = len(self.text)
        start, end = span.start, span.end
        if not 0 <= start <= size:
            start = max(0, min(start, size))
        if not 0 <= end <= size:
            end = max(0, min(end, size))
        line = bisect_right(starts, start)
        end_line = bisect_right(starts, end)
        return line, start - starts[line - 1] + 1, end_line, end - starts[end_line - 1] + 1

    def line_count(self) -> int:
        """How many lines the text has (an empty text, or one ending in a newline, has an
        empty last line)."""
        return len(self._line_starts or self._starts())

    def line_text(self, line: int) -> str:
        """The text of 1-based line `line`, without its newline."""
        starts = self._starts()
        if not 1 <= line <= len(starts):
            return ""
        end = self.text.find("\n", starts[line - 1])
        return self.text[starts[line - 1] : end if end != -1 else len(self.text)]

    def offset(self, line: int, column: int) -> int:
        """The character offset of a 1-based line and column."""
        starts = self._starts()
        line = max(1, min(line, len(starts)))
        return min(starts[line - 1] + column - 1, len(self.text))
