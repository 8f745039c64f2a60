"""What `carlang test` does, without typer: compiling the programs, running their `test`
blocks, and reporting (text, JSON or JUnit, with policy coverage). The typer command
(`test_commands.test_command`) and the lean path (`carlang.cli.lean`, which `carlang test`
takes when its arguments are plain) both run `run_test`: policy CI runs it once per build."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from carlang.project import expected_by_tests

from .checking import (
    blocking_errors,
    collect_sources,
    compile_all,
    find_project_of,
    unknown_project_capability,
    untestable,
    whole_project,
)
from .console import (
    EXIT_FAILED,
    EXIT_OK,
    PERCENTAGE,
    UsageProblem,
    echo,
    echo_err,
    fail_usage,
    painted,
    terminal_text,
)

if TYPE_CHECKING:
    from carlang.compiler import CompileResult
    from carlang.diagnostics import Diagnostic
    from carlang.project import Project

__all__ = ["TestFormat", "run_test"]


class TestFormat(StrEnum):
    """Output formats of `carlang test`."""

    text = "text"
    json = "json"
    junit = "junit"


def run_test(
    paths: list[Path] | None,
    coverage: bool = False,
    threshold: float | None = None,
    output: TestFormat = TestFormat.text,
    select: str | None = None,
    strict: bool = False,
    root: Path | None = None,
) -> int:
    """`carlang test`'s work (see its help): every test run and reported, and the exit code:
    0 when all pass (and coverage meets `threshold`), 1 on a failure, a program error or low
    coverage. Input it cannot use raises `UsageProblem`, after a JSON or JUnit report saying
    so (CI's report step must find one)."""
    try:
        if threshold is not None and not 0 <= threshold <= 100:
            given = repr(threshold).removesuffix(".0")  # (every digit: `100.00000000000001`)
            fail_usage(f"--threshold {given}: {PERCENTAGE}")
        files = collect_sources(paths or [Path(".")])
        if not files:
            fail_usage("no .car files found")
        project = find_project_of(files, root)
    except UsageProblem as exc:
        _report_unrun(output, f"error: {exc}")
        raise
    results, diagnostics = compile_all(files, project.root)
    # (a proposal a test expects refused is its fixture: its errors, notes, as `check` says)
    diagnostics = expected_by_tests(results, diagnostics)
    if select is not None:
        results = [_only(result, select) for result in results]
    # (carlang.toml naming a capability no program declares: an error, as `check` says)
    whole = whole_project(results, project)
    unknown = unknown_project_capability(results, project) if whole else None
    return _tested(
        results,
        diagnostics,
        _doubtful(results, diagnostics, project, select is not None),
        [unknown] if unknown is not None else [],
        project.capability,
        strict or project.strict,
        (paths, coverage, threshold, output, select),
    )


def _report_unrun(output: TestFormat, reason: str) -> None:
    """The JSON or JUnit report of a run in which no test ran, for `reason` (text: nothing:
    the reason is on standard error)."""
    from carlang.testreport import render_json, render_junit

    if output is TestFormat.json:
        echo(render_json([], None, None, unrun=reason))
    elif output is TestFormat.junit:
        echo(render_junit([], unrun=reason))


def _doubtful(
    results: list[CompileResult], diagnostics: list[Diagnostic], project: Project, selected: bool
) -> list[Diagnostic]:
    """The tests' own warnings (a table column no `$column` uses, a test that reads the
    clock), which `carlang test` shows: a test that passes for the wrong reason is what a
    test run must not hide. Those a pragma or carlang.toml's `accept` accepts are left out,
    as `check` leaves them out; `selected` (`-k`): those of the tests that run alone."""
    from carlang.project import apply_allowances
    from carlang.testcases import TEST_WARNINGS

    found = [d for d in diagnostics if d.severity == "warning" and d.code in TEST_WARNINGS]
    if selected:
        cases = [case for result in results for case in result.tests]
        found = [d for d in found if any(case.holds(*d.location()[:2]) for case in cases)]
    if not found:
        return []
    sources = {f.source.name: f.source for r in results for f in r.loaded.files}
    kept, _stale = apply_allowances(found, sources.values(), project)
    return [d for d in kept if d.code in TEST_WARNINGS]


def _tested(
    results: list[CompileResult],
    diagnostics: list[Diagnostic],
    doubtful: list[Diagnostic],
    project_errors: list[Diagnostic],
    capability: str | None,
    strict: bool,
    asked: tuple[list[Path] | None, bool, float | None, TestFormat, str | None],
) -> int:
    """Run the tests of the programs that compile and report them with the errors of those
    that do not (a broken file no longer keeps every other program's tests from running: the
    pre-commit hook runs `carlang test` on the whole folder); the exit code."""
    from carlang.render import plural
    from carlang.render import render_text as render_diagnostics
    from carlang.testreport import render_json, render_junit, render_text, threshold_problem
    from carlang.testrun import Coverage, run_tests

    paths, coverage, threshold, output, select = asked
    broken = untestable(results)
    stops = {
        id(d) for d in blocking_errors(diagnostics, proposal_errors_ok=True, running_tests=True)
    }
    # every error of a program whose tests cannot run, as `check` reports them: a proposal's
    # (which alone would not stop the tests) is one more round of CI saved
    names = {f.source.name for r in broken for f in r.loaded.files}
    errors = [
        d
        for d in blocking_errors(diagnostics, proposal_errors_ok=False, running_tests=True)
        if d.location()[0] in names
    ]
    runnable = [r for r in results if all(r is not b for b in broken)]
    if doubtful or project_errors:  # (the project's errors stop no test, but fail the run)
        echo_err(painted(render_diagnostics([*project_errors, *doubtful]), err=True))
    if errors:
        echo_err(painted(render_diagnostics(errors), err=True))
        skipped = ", ".join(r.loaded.entry.source.name for r in broken if r.loaded.entry)
        whose = f"the tests of {skipped}" if runnable else "the tests"
        stopping = [e for e in errors if id(e) in stops]
        why = (
            ""
            if not stopping or len(stopping) == len(errors)
            else f" ({_named(stopping)} stopped them; a proposal's findings alone would not)"
        )
        echo_err(f"{plural(len(errors), 'error')}: {whose} did not run{why}")
        if not runnable:
            if output is TestFormat.json:
                echo(render_json([], None, None, errors))
            elif output is TestFormat.junit:
                echo(render_junit([], errors=errors))
            return EXIT_FAILED
    measured = Coverage()
    outcomes = run_tests(runnable, measured, capability)
    none_ran = None  # (why no test ran, in a run that does not fail for it)
    if not outcomes and not errors:
        # a pattern that selects nothing is a mistake (a typo in CI would pass silently); a
        # project without tests only a warning, unless strict
        what = f"no tests match `{select}`" if select is not None else "no tests"
        where = ", ".join(str(path) for path in paths or [Path(".")])
        failing = strict or select is not None
        echo_err(f"{'error' if failing else 'warning'}: {what} in {where}")
        none_ran = f"{what} in {where}"
        if failing:
            # still a well-formed report saying so: `> carlang-tests.xml` in CI must parse
            _report_unrun(output, f"{what} in {where}")
            return EXIT_FAILED
    shown = measured if coverage or threshold is not None else None
    if output is TestFormat.json:
        echo(render_json(outcomes, shown, threshold, [*project_errors, *errors], skipped=none_ran))
    elif output is TestFormat.junit:
        echo(render_junit(outcomes, shown, threshold, [*project_errors, *errors], skipped=none_ran))
    else:
        text = render_text(outcomes, shown, threshold)
        if broken:  # (the counts alone would read as a green run)
            text += f"; {plural(len(broken), 'program')} with errors not tested"
        if project_errors:
            text += f"; {plural(len(project_errors), 'error')} in carlang.toml"
        # (a test's name or a policy's message holding ESC would write to the terminal)
        echo(painted(terminal_text(text, newlines=True)))
    failed = any(not r.passed for r in outcomes) or bool(errors) or bool(project_errors)
    low = threshold_problem(measured, threshold)
    if low is not None and output is not TestFormat.text:  # (the text report says it)
        echo_err(f"error: {low}")
    return EXIT_FAILED if failed or low is not None else EXIT_OK


def _only(result: CompileResult, pattern: str) -> CompileResult:
    """`result` with only the tests `-k PATTERN` selects."""
    from dataclasses import replace
    from fnmatch import fnmatchcase

    glob = any(c in pattern for c in "*?[")

    def chosen(name: str) -> bool:
        # the name as shown selects it too: a table row's `... [row 2]` reads as a glob
        return pattern in name or (glob and fnmatchcase(name, pattern))

    return replace(result, tests=[t for t in result.tests if chosen(t.name)])


def _named(errors: list[Diagnostic]) -> str:
    """The errors that stopped the tests, by code and place (`CL0205 at q.car:27:16`): the
    others listed with them are a proposal's, and the reader should know which to fix."""
    shown = []
    for error in errors[:3]:
        name, line, column = error.location()
        shown.append(f"{error.code} at {name}:{line}:{column}" if line else error.code)
    more = f" and {len(errors) - 3} more" if len(errors) > 3 else ""
    return ", ".join(shown) + more
