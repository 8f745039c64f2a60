"""The CLI's tables: `run`'s result table and `rank`'s ranking are drawn by this one renderer
(rich), so they look alike. At a terminal a table fits its width and colours its styled cells;
piped, it keeps its natural width (a script or a test reads whole rows) and has no colour."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["Column", "print_table"]

#: The width a piped table may take: wide enough that no row of ours is ever wrapped.
_PIPED_WIDTH = 1000


@dataclass(frozen=True, slots=True)
class Column:
    """A column: its header, how its cells are aligned, and (for long text) the widest it
    may grow before its cells fold."""

    header: str
    justify: Literal["left", "right"] = "left"
    max_width: int | None = None


def print_table(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], title: str | None = None
) -> None:
    """Print a table to standard output. Cells may carry rich markup (`[red]failed[/]`); any
    other square bracket in a cell must be escaped by the caller (`rich.markup.escape`)."""
    import sys

    from rich.console import Console
    from rich.table import Table

    terminal = sys.stdout.isatty()
    console = Console(highlight=False, soft_wrap=False, width=None if terminal else _PIPED_WIDTH)
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(
            column.header, justify=column.justify, max_width=column.max_width, overflow="fold"
        )
    for row in rows:
        table.add_row(*row)
    console.print(table)
