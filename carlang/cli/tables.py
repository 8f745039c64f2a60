"""The CLI's tables: `run`'s result table and `rank`'s ranking are drawn by this one renderer
(rich), so they look alike. At a terminal a table fits its width and colours its styled cells;
piped, it keeps its natural width (a script or a test reads whole rows) and has no colour.

Fitting a terminal never cuts a value: headers wrap at their spaces and a column with a
`max_width` (free text) folds, but a name or a number stays whole. A table that cannot be that
narrow is printed at the narrowest it can be, and the terminal wraps its lines (rich alone
shrinks every column alike, and `careful_path` and `0.7357` came out as `care`/`ful_`/`path`
and `0.73`/`57` at 100 columns)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any, Literal, cast

__all__ = ["Column", "print_table", "stdout_console"]

#: The width a piped table may take: wide enough that no row of ours is ever wrapped.
_PIPED_WIDTH = 1000


@dataclass(frozen=True, slots=True)
class Column:
    """A column: its header, how its cells are aligned, and (for long text) the widest it
    may grow before its cells fold."""

    header: str
    justify: Literal["left", "right"] = "left"
    max_width: int | None = None


def stdout_console(width: int | None = None) -> Any:
    """A rich console on standard output that, when the reader closes the pipe (`| head`),
    ends the command as every other carlang output does: quietly, exit 141 (rich's own
    handler exits 1, which reads as "the input has errors")."""
    import os
    import sys

    from rich.console import Console

    from .common import EXIT_PIPE
    from .console import CheckedStdout

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise SystemExit(EXIT_PIPE)

    # (a full disk or an I/O error on stdout: `OutputProblem`, an error, not an internal one)
    stdout = cast("IO[str]", CheckedStdout())  # (a file to rich: write, flush, the rest delegated)
    return _Console(file=stdout, highlight=False, soft_wrap=False, width=width)


def print_table(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], title: str | None = None
) -> None:
    """Print a table to standard output. Cells may carry rich markup (`[red]failed[/]`); any
    other square bracket in a cell must be escaped by the caller (`rich.markup.escape`)."""
    import sys

    from rich.table import Table

    terminal = sys.stdout.isatty()
    console = stdout_console(None if terminal else _PIPED_WIDTH)
    widths: list[int | None] = [None] * len(columns)
    if terminal:
        widths, needed = _fitted(columns, rows, console.width)
        console = stdout_console(max(console.width, needed))
    table = Table(title=title, title_justify="left")
    for column, width in zip(columns, widths, strict=True):
        table.add_column(
            column.header,
            justify=column.justify,
            max_width=column.max_width,
            width=width,
            overflow="fold",
        )
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _fitted(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], room: int
) -> tuple[list[int | None], int]:
    """(each column's content width, the table's width) for a terminal `room` wide: the
    natural widths when they fit; else each column at least its longest word (a `max_width`
    column: its header's) and the rest of the room shared out in proportion to what each
    column could still use."""
    from rich.text import Text

    frame = 3 * len(columns) + 1  # a border before each column and after the last, padding 1+1
    least, most = [], []
    for index, column in enumerate(columns):
        cells = [Text.from_markup(row[index]) for row in rows]
        lines = [line for cell in cells for line in cell.plain.splitlines()]
        words = [word for line in lines for word in line.split()]
        widest = max([len(column.header), *map(len, lines)])
        if column.max_width is not None:
            widest = min(widest, max([column.max_width, *map(len, column.header.split())]))
            words = []
        longest = max([*map(len, column.header.split()), *map(len, words), 1])
        least.append(min(longest, widest))
        most.append(widest)
    if sum(most) + frame <= room:
        return list(most), sum(most) + frame
    spare = max(room - frame - sum(least), 0)
    wants = [m - n for m, n in zip(most, least, strict=True)]
    total = sum(wants) or 1
    fitted = [n + want * spare // total for n, want in zip(least, wants, strict=True)]
    return list(fitted), sum(fitted) + frame
