"""`carlang test`: run the tests of carlang programs, with policy coverage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import RootOption, guarded, percentage
from .testing import TestFormat, run_test

__all__ = ["register"]


@guarded
def test_command(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Files or directories (*.car found recursively; default: .)."),
    ] = None,
    coverage: Annotated[
        bool, typer.Option("--coverage", help="Report which policy outcomes the tests reached.")
    ] = False,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            parser=percentage,
            help="Fail when coverage is below this percentage.",
            metavar="PERCENT",
        ),
    ] = None,
    output: Annotated[TestFormat, typer.Option("--format", help="Output format.")] = (
        TestFormat.text
    ),
    select: Annotated[
        str | None,
        typer.Option(
            "-k",
            "--run",
            help="Run only the tests whose name contains PATTERN (a glob when it has * ? [).",
            metavar="PATTERN",
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail (exit 1) when there are no tests to run.")
    ] = False,
    root: RootOption = None,
) -> None:
    """Run every `test` block. Exit 0 when all pass (and coverage meets --threshold), 1 on a
    failure, a program error or low coverage, 2 for bad usage."""
    raise typer.Exit(run_test(paths, coverage, threshold, output, select, strict, root))


def register(app: typer.Typer) -> None:
    """Add `test` to the CLI."""
    app.command("test")(test_command)
