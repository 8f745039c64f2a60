"""Test results as text (failures, coverage, `N passed, N failed` last), JSON or JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from .testrun import CaseResult, Coverage

__all__ = ["render_text", "render_json", "render_junit", "summary"]


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
    if threshold is not None and coverage.percent < threshold:
        lines.append(f"coverage {coverage.percent:.1f}% is below the threshold of {threshold:g}%")
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


def render_json(
    results: Sequence[CaseResult], coverage: Coverage | None, threshold: float | None
) -> str:
    """Every case with its outcome, and coverage when asked for."""
    failed = sum(1 for r in results if not r.passed)
    document: dict[str, Any] = {
        "passed": len(results) - failed,
        "failed": failed,
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
    if coverage is not None:
        document["coverage"] = {
            "percent": coverage.percent,
            "threshold": threshold,
            "policies": {
                key: {"true": True in seen, "false": False in seen}
                for key, seen in coverage.outcomes.items()
            },
        }
    return json.dumps(document, indent=2)


def render_junit(results: Sequence[CaseResult]) -> str:
    """JUnit XML: a test suite per file, a test case per case, a failure element with the
    problems and the explanation."""
    root = ET.Element("testsuites", name="carlang test")
    by_file: dict[str, list[CaseResult]] = {}
    for result in results:
        by_file.setdefault(result.file, []).append(result)
    root.set("tests", str(len(results)))
    root.set("failures", str(sum(1 for r in results if not r.passed)))
    root.set("time", f"{sum(r.seconds for r in results):.6f}")
    for file, cases in by_file.items():
        suite = ET.SubElement(root, "testsuite", name=file)
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for r in cases if not r.passed)))
        suite.set("errors", "0")
        suite.set("skipped", "0")
        suite.set("time", f"{sum(r.seconds for r in cases):.6f}")
        for result in cases:
            case = ET.SubElement(suite, "testcase", name=result.case.name, classname=file)
            case.set("file", file)
            case.set("line", str(result.case.loc.line))
            case.set("time", f"{result.seconds:.6f}")
            if not result.passed:
                failure = ET.SubElement(case, "failure", message=result.problems[0])
                failure.set("type", "expectation")
                failure.text = "\n".join([*result.problems, *result.details])
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")
