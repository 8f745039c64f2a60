"""`carlang test`: run the tests of carlang programs, with policy coverage."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .common import (
    EXIT_FAILED,
    EXIT_OK,
    RootOption,
    echo,
    echo_err,
    fail_usage,
    guarded,
    painted,
)
from .lang_commands import blocking_errors, collect_sources, compile_all, find_project_of

if TYPE_CHECKING:
    from carlang.compiler import CompileResult

__all__ = ["register"]


class TestFormat(StrEnum):
    """Output formats of `carlang test`."""

    text = "text"
    json = "json"
    junit = "junit"


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
        typer.Option("--threshold", help="Fail when coverage is below this percentage."),
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
    from carlang.render import render_text as render_diagnostics
    from carlang.testreport import render_json, render_junit, render_text, threshold_problem
    from carlang.testrun import Coverage, run_tests

    if threshold is not None and not 0 <= threshold <= 100:
        fail_usage("--threshold is a percentage, from 0 to 100")
    files = collect_sources(paths or [Path(".")])
    if not files:
        fail_usage("no .car files found")
    project = find_project_of(files, root)
    strict = strict or project.strict
    results, diagnostics = compile_all(files, project.root)
    if select is not None:
        results = [_only(result, select) for result in results]
    errors = blocking_errors(diagnostics, proposal_errors_ok=True)
    if errors:
        # CI still gets a well-formed report: an error case per file with errors
        if output is TestFormat.json:
            echo(render_json([], None, None, errors))
        elif output is TestFormat.junit:
            echo(render_junit([], errors=errors))
        echo_err(painted(render_diagnostics(errors), err=True))
        echo_err(f"{len(errors)} error(s): the tests did not run")
        raise typer.Exit(EXIT_FAILED)
    measured = Coverage()
    outcomes = run_tests(results, measured)
    if not outcomes:
        what = f"no tests match `{select}`" if select is not None else "no tests"
        where = ", ".join(str(path) for path in paths or [Path(".")])
        echo_err(f"{'error' if strict else 'warning'}: {what} in {where}")
        if strict:
            raise typer.Exit(EXIT_FAILED)
    shown = measured if coverage or threshold is not None else None
    if output is TestFormat.json:
        echo(render_json(outcomes, shown, threshold))
    elif output is TestFormat.junit:
        echo(render_junit(outcomes, shown, threshold))
    else:
        echo(painted(render_text(outcomes, shown, threshold)))
    failed = any(not r.passed for r in outcomes)
    low = threshold_problem(measured, threshold)
    if low is not None:
        echo_err(f"error: {low}")
    raise typer.Exit(EXIT_FAILED if failed or low is not None else EXIT_OK)


def _only(result: CompileResult, pattern: str) -> CompileResult:
    """`result` with only the tests `-k PATTERN` selects."""
    from dataclasses import replace
    from fnmatch import fnmatchcase

    glob = any(c in pattern for c in "*?[")

    def chosen(name: str) -> bool:
        return fnmatchcase(name, pattern) if glob else pattern in name

    return replace(result, tests=[t for t in result.tests if chosen(t.name)])


def register(app: typer.Typer) -> None:
    """Add `test` to the CLI."""
    app.command("test")(test_command)
