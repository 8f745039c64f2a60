"""`carlang replay`'s report: text, JSON, SARIF (results at the policy lines that change
decisions), JUnit XML (a test case per tool) and CSV (a row per changed decision)."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from carlang_runtime.engine.events import format_time
from carlang_runtime.replay import Change, ReplayReport, Unjudged, Verdict

from carlang import __version__

from .render import plural, sarif_artifact, sarif_base

__all__ = ["render_replay"]


def render_replay(
    report: ReplayReport, output: str, examples: int, fail_on: list[str], root: Path | None = None
) -> str:
    """The report in `output` format (text, json, sarif, junit or csv). `root`: the root of
    the candidate's project, which its policies' positions are relative to (SARIF's URIs are
    then relative to the repository holding it, as `check`'s are)."""
    if output == "sarif":
        return _sarif(report, examples, fail_on, root)
    renderers = {"text": _text, "json": _json, "junit": _junit, "csv": _csv}
    return renderers[output](report, examples, fail_on)


def _examples(report: ReplayReport, examples: int) -> dict[str, list[Change]]:
    shown: dict[str, list[Change]] = defaultdict(list)
    for change in report.changes:
        if len(shown[change.category]) < examples:
            shown[change.category].append(change)
    return shown


def _where(loc: dict[str, Any] | None) -> str:
    return f"{loc['file']}:{loc['line']}:{loc['column']}" if loc else ""


def _text(report: ReplayReport, examples: int, fail_on: list[str]) -> str:
    changed = len(report.changes)
    lines = [
        f"replayed {plural(report.actions, 'decision')} of {plural(report.judged_runs, 'run')}"
        f" (against {report.baseline}): {plural(changed, 'change')},"
        f" {report.unchanged} unchanged"
    ]
    categories = report.categories()
    by_policy, by_tool = report.by_policy(), report.by_tool()
    shown = _examples(report, examples)
    for category, count in categories.most_common():
        lines.append("")
        lines.append(f"{category}: {count} of {report.actions}")
        for (cat, policy), n in sorted(by_policy.items(), key=lambda i: -i[1]):
            if cat == category:
                lines.append(f"  policy {policy}: {n}")
        for (cat, tool), n in sorted(by_tool.items(), key=lambda i: -i[1]):
            if cat == category:
                lines.append(f"  tool {tool}: {n}")
        for change in shown[category]:
            responsible = change.responsible
            lines.append(
                f"  e.g. run {change.run_id} action {change.action_id}"
                f" ({change.tool or 'no tool'}"
                + (f", tenant {change.tenant}" if change.tenant else "")
                + f", {format_time(change.time)})"
            )
            if responsible.policy:
                deciding = ", ".join(
                    f"{policy} at {_where(loc)}" if (loc := responsible.loc_of(policy)) else policy
                    for policy in responsible.policies
                )
                lines.append(
                    f"       by {deciding}"
                    + (f": {responsible.reason}" if responsible.reason else "")
                )
            if responsible.explanation:
                lines.append(f"       because {responsible.explanation}")
    if report.shadow:
        lines.append("")
        lines.append("shadow policies (recorded, not enforced):")
        for (policy, tool), n in report.shadow.most_common():
            lines.append(f"  {policy} would decide {plural(n, 'call')} of {tool or 'no tool'}")
    if report.unjudged:
        lines.append("")
        count = len(report.unjudged)
        lines.append(f"{count} {'run' if count == 1 else 'runs'} could not be judged:")
        for unjudged in report.unjudged[:20]:
            lines.append(f"  run {unjudged.run_id} ({unjudged.proposal_id}): {unjudged.reason}")
        if len(report.unjudged) > 20:
            lines.append(f"  ... and {len(report.unjudged) - 20} more")
    if report.notes:
        lines.append("")
        lines.append("not reconstructed:")
        for note, n in report.notes.most_common():
            lines.append(f"  {n} {_counted(n, note)}")
    problems = report.gate_problems(fail_on)
    lines.append("")
    lines.append(
        f"fails --fail-on {','.join(fail_on)}: {'; '.join(problems)}"
        if problems
        else f"nothing --fail-on {','.join(fail_on)} names changes"
    )
    return "\n".join(lines)


def _verdict(verdict: Verdict) -> dict[str, Any]:
    document: dict[str, Any] = {"decision": verdict.decision}
    if verdict.policy is not None:
        document["policy"] = verdict.policy
    if verdict.also:  # the other policies that decided it too
        document["also"] = list(verdict.also)
    if verdict.reason:
        document["reason"] = verdict.reason
    if verdict.explanation:
        document["explanation"] = verdict.explanation
    if verdict.loc:
        document["loc"] = verdict.loc
    return document


def _change(change: Change) -> dict[str, Any]:
    return {
        "run_id": change.run_id,
        "proposal_id": change.proposal_id,
        "action_id": change.action_id,
        "tool": change.tool,
        "tenant": change.tenant,
        "time": format_time(change.time),
        "category": change.category,
        "before": _verdict(change.before),
        "after": _verdict(change.after),
    }


def _json(report: ReplayReport, examples: int, fail_on: list[str]) -> str:
    shown = _examples(report, examples)
    document = {
        "version": 1,
        "baseline": report.baseline,
        "runs": report.runs,
        "judged_runs": report.judged_runs,
        "decisions": report.actions,
        "unchanged": report.unchanged,
        "changes": len(report.changes),
        "failing": len(report.failing(fail_on)),
        # why the gate fails (empty: it passes), as the exit status says
        "gate": report.gate_problems(fail_on),
        "categories": [
            {
                "category": category,
                "count": count,
                "by_policy": {
                    p: n for (c, p), n in report.by_policy().most_common() if c == category
                },
                "by_tool": {t: n for (c, t), n in report.by_tool().most_common() if c == category},
                "examples": [_change(change) for change in shown[category]],
            }
            for category, count in report.categories().most_common()
        ],
        "shadow": [
            {"policy": p, "tool": t, "count": n} for (p, t), n in report.shadow.most_common()
        ],
        "unjudged": [
            {
                "run_id": u.run_id,
                "proposal_id": u.proposal_id,
                "reason": u.reason,
                # the candidate (or baseline) dropped what it uses: its calls would be refused
                "dropped": u.dropped,
            }
            for u in report.unjudged
        ],
        "not_reconstructed": dict(report.notes),
    }
    return json.dumps(document, indent=2)


def _sarif(report: ReplayReport, examples: int, fail_on: list[str], root: Path | None) -> str:
    base, under = sarif_base(root) if root is not None else (None, "")
    failing = {id(c) for c in report.failing(fail_on)}
    groups: dict[tuple[str, str], list[Change]] = defaultdict(list)
    for change in report.changes:  # under each policy that decided it
        for policy in change.responsible.policies or ("(no policy)",):
            groups[(policy, change.category)].append(change)
    rules: dict[str, str] = {}  # id -> description
    results = []
    for (policy, category), changes in groups.items():
        rule = "replay/" + category.replace(" -> ", "-to-").replace("require_approval", "approval")
        rules.setdefault(rule, f"decision changes: {rule[7:]}")
        first = changes[0]
        verb = {
            "deny": "denied",
            "require_approval": "asked approval for",
            "allow": "allowed",
        }[first.after.decision]
        tools = {c.tool or "(no tool)" for c in changes}
        (tool,) = tools if len(tools) == 1 else (None,)
        # (of the tool's calls when the changes are all of one: "1 of 3" counted a state
        # write and another tool's call beside the one charge)
        among = (
            f"{report.tools[tool]} recorded calls of {tool}"
            if tool is not None and report.tools.get(tool)
            else f"{report.actions} recorded calls"
        )
        message = f"{_named(policy)} would have {verb} {len(changes)} of {among} ({category})"
        example = next((c for c in changes if c.responsible.explanation), first)
        if example.responsible.explanation:
            message += f"; e.g. action {example.action_id}: {example.responsible.explanation}"
        loc = next(
            (c.responsible.loc_of(policy) for c in changes if c.responsible.loc_of(policy)), None
        )
        results.append(
            _sarif_result(
                rule,
                any(id(c) in failing for c in changes),
                message,
                (sarif_artifact(loc["file"], under), loc["line"], loc["column"]) if loc else None,
            )
        )
    # the runs it could not judge, a result per cause: at the program that dropped what they
    # use (their calls would now be refused), or at the log
    failing_runs = {id(u) for u in report.failing_runs(fail_on)}
    unjudged: dict[tuple[bool, str, str | None, bool], list[Unjudged]] = defaultdict(list)
    for run in report.unjudged:
        unjudged[(run.dropped, run.cause or run.reason, run.file, run.in_program)].append(run)
    for (dropped, cause, file, in_program), runs in unjudged.items():
        rule = "replay/dropped" if dropped else "replay/not-judged"
        rules.setdefault(
            rule,
            "recorded runs the candidate cannot run (it dropped what they use)"
            if dropped
            else "recorded runs that cannot be judged",
        )
        message = f"{plural(len(runs), 'recorded run')} cannot be judged: {cause}"
        if dropped:
            message += " (their calls would now be refused)"
        error = any(id(u) in failing_runs for u in runs)
        where = None
        if file:  # a program's name is relative to its root; a log's, to the cwd
            artifact = sarif_artifact(file, under) if in_program else _log_artifact(file, base)
            where = (artifact, 1, 1)
        results.append(_sarif_result(rule, error, message, where))
    problems = report.gate_problems(fail_on)
    if problems and not any(r["level"] == "error" for r in results):  # (no run, say)
        rules.setdefault("replay/gate", "the replay gate fails")
        results.append(_sarif_result("replay/gate", True, f"fails: {'; '.join(problems)}", None))
    ids = list(rules)
    for result in results:
        result["ruleIndex"] = ids.index(result["ruleId"])
    document: dict[str, Any] = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "carlang-replay",
                        "version": __version__,
                        "rules": [
                            {"id": rule, "shortDescription": {"text": text}}
                            for rule, text in rules.items()
                        ],
                    }
                },
                "columnKind": "unicodeCodePoints",  # as `check`'s SARIF (render.py) says
                "results": results,
            }
        ],
    }
    if base is not None:  # (as `check`'s SARIF: what the URIs are relative to)
        document["runs"][0]["originalUriBaseIds"] = {"%SRCROOT%": {"uri": base.as_uri() + "/"}}
    return json.dumps(document, indent=2)


def _log_artifact(file: str, base: Path | None) -> dict[str, str]:
    """The SARIF location of an event log, named as the command line named it (relative to
    the working folder, not to the project as a program's positions are): relative to the
    report's `base` when inside it, else by its absolute `file:` URI."""
    path = Path(file).resolve()
    if base is not None and path.is_relative_to(base):
        return sarif_artifact(path.relative_to(base).as_posix())
    return sarif_artifact(str(path))


def _sarif_result(
    rule: str, error: bool, message: str, where: tuple[dict[str, str], int, int] | None
) -> dict[str, Any]:
    """A SARIF result: `error` when the gate fails by it, else `note`; at `where`, an
    (artifactLocation, line, column), if known."""
    result: dict[str, Any] = {
        "ruleId": rule,
        "level": "error" if error else "note",
        "message": {"text": message},
    }
    if where is not None:
        artifact, line, column = where
        result["locations"] = [
            {
                "physicalLocation": {
                    "artifactLocation": artifact,
                    "region": {"startLine": line, "startColumn": column},
                }
            }
        ]
    return result


def _named(policy: str) -> str:
    """How a message names what decided: `policy NAME`, `budget NAME`, `capability NAME`."""
    kind, colon, name = policy.partition(":")
    return f"{kind} {name}" if colon and kind in ("budget", "capability") else f"policy {policy}"


def _junit(report: ReplayReport, examples: int, fail_on: list[str]) -> str:
    """JUnit XML valid under Jenkins' junit-10.xsd (as `carlang test`'s): a test case per
    tool judged, failing when its decisions change as `--fail-on` names; a case per run not
    judged, failing when that fails the gate (the candidate dropped what it uses, or no run
    could be judged), else skipped; a failing `replay gate` case when the gate fails for
    nothing else shown (no run at all)."""
    failing = report.failing(fail_on)
    per_tool: dict[str, list[Change]] = defaultdict(list)
    for change in failing:
        per_tool[change.tool or "(no tool)"].append(change)
    suite = ET.Element("testsuite", name="carlang replay")
    for tool in sorted(set(report.tools) | set(per_tool)):
        case = _case(suite, f"decisions of {tool} unchanged")
        changes = per_tool.get(tool, [])
        if changes:
            lines = [
                f"{c.category}: run {c.run_id} action {c.action_id}"
                f" by {c.responsible.policy or '?'}"
                + (f" at {_where(c.responsible.loc)}" if c.responsible.loc else "")
                for c in changes[: max(examples, 1) * 4]
            ]
            count = len(changes)
            text = f"{count} {'decision changes' if count == 1 else 'decisions change'}"
            _failure(case, text, "decision-change", "\n".join(lines))
    failing_runs = {id(u) for u in report.failing_runs(fail_on)}
    for run in report.unjudged:
        case = _case(suite, f"run {run.run_id} judged")
        if id(run) in failing_runs:
            kind = "dropped" if run.dropped else "not-judged"
            _failure(case, run.reason, kind, f"run {run.run_id} ({run.proposal_id}): {run.reason}")
        else:
            ET.SubElement(case, "skipped", message=run.reason)
    problems = report.gate_problems(fail_on)
    if problems and suite.find("testcase/failure") is None:
        _failure(_case(suite, "replay gate"), f"fails: {'; '.join(problems)}", "gate", "")
    if not len(suite):  # (nothing judged, and nothing fails: a suite holds a case)
        _case(suite, "decisions unchanged")
    tests = len(suite)
    failures = len(suite.findall("testcase/failure"))
    skipped = len(suite.findall("testcase/skipped"))
    root = ET.Element("testsuites", name="carlang replay")
    for element in (root, suite):
        element.set("tests", str(tests))
        element.set("failures", str(failures))
        element.set("errors", "0")
        element.set("time", "0.000")
    suite.set("skipped", str(skipped))
    suite.set("timestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def _case(suite: ET.Element, name: str) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname="replay", name=name, time="0.000")


def _failure(case: ET.Element, message: str, kind: str, text: str) -> None:
    failure = ET.SubElement(case, "failure", message=message, type=kind)
    failure.text = text or None


def _csv(report: ReplayReport, examples: int, fail_on: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "run_id",
            "proposal_id",
            "action_id",
            "tool",
            "tenant",
            "time",
            "before",
            "after",
            "policy",
            "policy_loc",
            "reason",
            "explanation",
        ]
    )
    for change in report.changes:
        responsible = change.responsible
        writer.writerow(
            [
                change.run_id,
                change.proposal_id,
                change.action_id,
                change.tool or "",
                change.tenant or "",
                format_time(change.time),
                change.before.decision,
                change.after.decision,
                responsible.policy or "",
                _where(responsible.loc),
                responsible.reason,
                responsible.explanation or "",
            ]
        )
    return out.getvalue().rstrip("\n")


def _counted(count: int, note: str) -> str:
    """A note (written for many: "runs with ...") for `count` of them: its first word
    singular for one ("1 run with ...")."""
    first, space, rest = note.partition(" ")
    if count == 1 and first in ("runs", "decisions", "actions"):
        return first[:-1] + space + rest
    return note
