"""Test results as text (failures, coverage, `N passed, N failed` last), JSON or JUnit XML."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from .diagnostics import Diagnostic
from .render import render_text as render_diagnostics
from .testrun import CaseResult, Coverage

__all__ = ["render_text", "render_json", "render_junit", "summary", "threshold_problem"]


def summary(results: Sequence[CaseResult]) -> str:
    """`N passed, N failed`."""
    failed = sum(1 for r in results if not r.passed)
    return f"{len(results) - failed} passed, {failed} failed"


def _coverage_lines(coverage: Coverage, threshold: float | None) -> list[str]:
    lines = [f"policy coverage: {coverage.percent:.1f}% of true/false outcomes reached"]
    for key in coverage.outcomes:
        missing = coverage.missing(key)
        if missing is not None:
            lines.append(f"  {key}: {missing}")
    problem = threshold_problem(coverage, threshold)
    if problem is not None:
        lines.append(problem)
    return lines


def render_text(
    results: Sequence[CaseResult], coverage: Coverage | None, threshold: float | None
) -> str:
    """Each failure with what was expected, what was decided and why; then coverage (when
    asked for); the counts last."""
    lines = []
    for result in results:
        if result.passed:
            continue
        lines.append(f"FAIL {result.case.name}  ({result.case.loc.file}:{result.case.loc.line})")
        lines.extend(f"  {problem}" for problem in result.problems)
        lines.extend(f"    {detail}" for detail in result.details)
    if coverage is not None:
        if lines:
            lines.append("")
        lines.extend(_coverage_lines(coverage, threshold))
    lines.append(summary(results))
    return "\n".join(lines)


def threshold_problem(coverage: Coverage | None, threshold: float | None) -> str | None:
    """The line saying coverage is below `--threshold`, or None when it is met (or not set)."""
    if coverage is None or threshold is None or coverage.percent >= threshold:
        return None
    return (
        f"coverage {_below(coverage.percent, threshold)}% is below the threshold of {threshold:g}%"
    )


def _below(percent: float, threshold: float) -> str:
    """`percent` with as many decimals as show it below `threshold` (86.67, not 86.7, below
    a threshold of 86.7: the message contradicted itself)."""
    digits = 1
    while round(percent, digits) >= threshold and digits < 12:
        digits += 1
    return f"{percent:.{digits}f}"


def _error_entries(errors: Sequence[Diagnostic]) -> list[dict[str, Any]]:
    entries = []
    for d in errors:
        file, line, column = d.location()
        entries.append(
            {"file": file, "line": line, "column": column, "code": d.code, "message": d.message}
        )
    return entries


def render_json(
    results: Sequence[CaseResult],
    coverage: Coverage | None,
    threshold: float | None,
    errors: Sequence[Diagnostic] = (),
    unrun: str | None = None,
    skipped: str | None = None,
) -> str:
    """Every case with its outcome, the program errors that kept the tests from running (each
    at its file, line and column), coverage when asked for, with whether it met
    `--threshold`, and `unrun`: why no test ran at all, when none did for a reason of the
    run's own (`no tests match ...`, input the command could not use); `skipped`: why none
    ran in a run that does not fail for it (a project without tests)."""
    failed = sum(1 for r in results if not r.passed)
    document: dict[str, Any] = {
        "passed": len(results) - failed,
        "failed": failed,
        "errors": _error_entries(errors),
        "tests": [
            {
                "name": r.case.name,
                "file": r.case.loc.file,
                "line": r.case.loc.line,
                "passed": r.passed,
                "problems": r.problems,
                "details": r.details,
                "expect": [str(e) for e in r.case.expectations],
                "seconds": r.seconds,
            }
            for r in results
        ],
    }
    if unrun is not None:
        document["unrun"] = unrun
    if skipped is not None:
        document["skipped"] = skipped
    if coverage is not None:
        problem = threshold_problem(coverage, threshold)
        document["coverage"] = {
            "percent": coverage.percent,
            "threshold": threshold,
            "met": problem is None,
            "problem": problem,
            # (an outcome a policy cannot have, a rate limit's true in a dry run, is null)
            "policies": {
                key: {
                    str(outcome).lower(): (outcome in seen) if outcome in possible else None
                    for outcome in (True, False)
                }
                for key, seen in coverage.outcomes.items()
                for possible in [coverage.possible.get(key, frozenset({True, False}))]
            },
        }
    return json.dumps(document, indent=2)


def _seconds(value: float) -> str:
    # the common JUnit schema (Jenkins' junit-10.xsd) allows at most 3 decimals
    return f"{value:.3f}"


def render_junit(
    results: Sequence[CaseResult],
    coverage: Coverage | None = None,
    threshold: float | None = None,
    errors: Sequence[Diagnostic] = (),
    unrun: str | None = None,
    skipped: str | None = None,
) -> str:
    """JUnit XML valid under Jenkins' junit-10.xsd: a test suite per file, a test case per
    case (per table row), a failure with the problems and the explanation, located at
    `file:line`; a program error is an error case of its file, coverage below `--threshold`
    a failed `policy coverage` case, and `unrun` (why no test ran: `no tests match ...`) an
    error case of its own (a report of no tests and no failure read as a green run).
    `skipped`: why no test ran in a run that does not fail for it (a project without tests, a
    warning): a skipped case saying so, not an empty report."""
    if unrun is not None:
        return _xml_text(_unrun_junit(unrun))
    root = ET.Element("testsuites", name="carlang test")
    by_file: dict[str, list[CaseResult]] = {}
    for result in results:
        by_file.setdefault(result.file, []).append(result)
    errors_by_file: dict[str, list[Diagnostic]] = {}
    for error in errors:
        errors_by_file.setdefault(error.location()[0], []).append(error)
    problem = threshold_problem(coverage, threshold)
    failures = sum(1 for r in results if not r.passed) + (problem is not None)
    total = len(results) + len(errors_by_file) + (problem is not None)
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("errors", str(len(errors_by_file)))
    root.set("time", _seconds(sum(r.seconds for r in results)))
    for file in sorted(errors_by_file):
        suite = _suite(root, file, tests=1, failures=0, errors=1, seconds=0.0)
        case = ET.SubElement(suite, "testcase", name="compile", classname=file, time="0.000")
        found = errors_by_file[file]
        element = ET.SubElement(case, "error", message=f"{found[0].message} (tests did not run)")
        element.set("type", found[0].code)
        element.text = render_diagnostics(found)
    for file, cases in by_file.items():
        failed = sum(1 for r in cases if not r.passed)
        seconds = sum(r.seconds for r in cases)
        suite = _suite(root, file, tests=len(cases), failures=failed, errors=0, seconds=seconds)
        for result in cases:
            case = ET.SubElement(suite, "testcase", name=result.case.name, classname=file)
            case.set("time", _seconds(result.seconds))
            if not result.passed:
                where = f"{result.case.loc.file}:{result.case.loc.line}"
                failure = ET.SubElement(case, "failure", message=f"{where}: {result.problems[0]}")
                failure.set("type", "expectation")
                failure.text = "\n".join([where, *result.problems, *result.details])
    if skipped is not None and total == 0:
        root.set("tests", "1")
        suite = _suite(root, "carlang test", tests=1, failures=0, errors=0, seconds=0.0)
        suite.set("skipped", "1")
        case = ET.SubElement(suite, "testcase", name="tests", classname="carlang test")
        case.set("time", "0.000")
        ET.SubElement(case, "skipped", message=skipped)
    if problem is not None:
        suite = _suite(root, "coverage", tests=1, failures=1, errors=0, seconds=0.0)
        case = ET.SubElement(suite, "testcase", name="policy coverage", classname="coverage")
        case.set("time", "0.000")
        failure = ET.SubElement(case, "failure", message=problem, type="threshold")
        failure.text = "\n".join(_coverage_lines(coverage, threshold)) if coverage else problem
    return _xml_text(root)


def _unrun_junit(reason: str) -> ET.Element:
    """The report of a run in which no test ran for `reason`: one error case."""
    root = ET.Element("testsuites", name="carlang test", tests="1", failures="0", errors="1")
    root.set("time", "0.000")
    suite = _suite(root, "carlang test", tests=1, failures=0, errors=1, seconds=0.0)
    case = ET.SubElement(suite, "testcase", name="tests", classname="carlang test")
    case.set("time", "0.000")
    ET.SubElement(case, "error", message=reason, type="no-tests").text = reason
    return root


#: What XML 1.0 cannot hold, even escaped: the C0 controls but tab, newline and carriage
#: return, and U+FFFE/U+FFFF (a test name or a policy's message may hold them).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(root: ET.Element) -> str:
    """The document, indented, with each character XML cannot hold written `\\uXXXX`
    (a test named with a control character made a file no parser reads)."""
    ET.indent(root)
    text = ET.tostring(root, encoding="unicode")
    text = _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + text


def _suite(
    root: ET.Element, name: str, *, tests: int, failures: int, errors: int, seconds: float
) -> ET.Element:
    suite = ET.SubElement(root, "testsuite", name=name)
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", "0")
    suite.set("time", _seconds(seconds))
    return suite
