"""`carlang replay`: would this policy change break production? Recorded decisions re-decided
by a candidate program."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from carlang_runtime import ir

if TYPE_CHECKING:
    from carlang_runtime.replay import Judge

from .common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    RootOption,
    echo,
    echo_err,
    fail_usage,
    guarded,
)

__all__ = ["register"]


class ReplayFormat(StrEnum):
    """Output formats of `carlang replay`."""

    text = "text"
    json = "json"
    sarif = "sarif"
    junit = "junit"
    csv = "csv"


class FailOn(StrEnum):
    """Which changes fail the replay."""

    deny = "deny"
    approval = "approval"
    allow = "allow"
    any = "any"


@guarded
def replay_command(
    logs: Annotated[
        list[Path], typer.Argument(help="Event logs: run.db (SQLite) or run.jsonl, several.")
    ],
    program: Annotated[Path, typer.Option("--program", help="The candidate program.")],
    baseline: Annotated[
        Path | None,
        typer.Option("--baseline", help="Compare with this program instead of the log."),
    ] = None,
    output: Annotated[
        ReplayFormat, typer.Option("--format", help="Output format.")
    ] = ReplayFormat.text,
    fail_on: Annotated[
        list[FailOn] | None,
        typer.Option("--fail-on", help="Changes that fail: to deny, approval, allow, or any."),
    ] = None,
    run: Annotated[list[str] | None, typer.Option("--run", help="Only this run.")] = None,
    tool: Annotated[list[str] | None, typer.Option("--tool", help="Only this tool's.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only decisions at or after (RFC 3339).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Only decisions at or before (RFC 3339).")
    ] = None,
    examples: Annotated[
        int, typer.Option("--examples", help="Examples shown per change category.")
    ] = 5,
    root: RootOption = None,
) -> None:
    """Re-decide every action recorded in event logs with the candidate program's policies,
    capabilities and budgets (the state, scope and history each had), and report the decisions
    that change. Exit 0 when nothing --fail-on names changes (default: any), 1 otherwise (and
    when the candidate drops a tool, capability or budget the runs use, under `deny` or
    `any`, or no run could be judged), 2 for bad input."""
    from carlang_runtime.engine import EventLogError
    from carlang_runtime.replay import read_runs, replay

    from carlang.render import plural
    from carlang.replayreport import render_replay

    _check_examples(examples)
    chosen_fail_on = [f.value for f in (fail_on or [FailOn.any])]
    start, end = _time(since, "--since"), _time(until, "--until")
    if start is not None and end is not None and start > end:  # (it judged none, and passed)
        fail_usage(
            f"--since {since} is after --until {until}: no decision can be in that window;"
            " give the earlier time to --since (swap them)"
        )
    candidate = _judge(program, root)
    reference = _judge(baseline, root) if baseline is not None else None
    try:
        # a log given twice (or copies that overlap) counts each run once, said on stderr
        runs = read_runs(logs, lambda text: echo_err(f"note: {text}"))
    except EventLogError as exc:
        fail_usage(str(exc))
    # the runs --run leaves out are replayed all the same: they make the session's history
    # and budget the chosen ones are judged with
    chosen = _known_runs(run, runs, logs) if run else []
    if tool:
        _known_tools(tool, runs, [candidate, *([reference] if reference else [])])
    report = replay(
        runs,
        candidate,
        reference,
        tools=tool or (),
        since=start,
        until=end,
        run_ids=chosen,
        examples=examples,
    )
    from carlang.cli.checking import one_source, project_root

    where = project_root(one_source(program), root)  # what the policies' positions are under
    echo(render_replay(report, output.value, examples, chosen_fail_on, where))
    if report.actions == 0:  # a gate that judged nothing passes only by saying so
        why = (
            "--tool, --since or --until left none"
            if report.judged_runs and (tool or since or until)
            else f"{report.judged_runs} of them could be judged"
        )
        echo_err(
            f"warning: no decision was judged ({plural(report.runs, 'run')} read; {why}):"
            " nothing here shows the program's effect"
        )
    # a gate that could judge none of the runs it was given, or whose candidate dropped a
    # tool production calls, must not pass: nothing shows the change is safe
    raise typer.Exit(EXIT_FAILED if report.gate_problems(chosen_fail_on) else EXIT_OK)


def _check_examples(examples: int) -> None:
    """A usage error for a negative `--examples` (it was taken, and showed none)."""
    if examples < 0:
        fail_usage(
            f"--examples {examples}: give 0 or more examples per change category (0: counts only)"
        )


def _known_runs(wanted: list[str], runs: list[Any], logs: list[Path]) -> list[str]:
    """The run ids `--run` names (a unique prefix names its run, as `carlang events --run`
    takes it); a usage error for one no log holds (each one: a typo'd id among several would
    quietly leave its run out), with the closest id or the ids there are."""
    from carlang_runtime.suggest import did_you_mean

    recorded = list(dict.fromkeys(r.run_id for r in runs))
    found = []
    for run_id in wanted:
        if run_id in recorded:
            found.append(run_id)
            continue
        starting = [r for r in recorded if r.startswith(run_id)]
        if len(starting) == 1:
            found.append(starting[0])
            continue
        if len(starting) > 1:
            shown = ", ".join(starting[:5])
            fail_usage(f"--run {run_id} names several runs ({shown}): give more of the id")
        hint = did_you_mean(run_id, recorded, "")
        if hint is None:
            shown = ", ".join(recorded[:5]) + (", ..." if len(recorded) > 5 else "")
            hint = f"the runs: {shown}" if recorded else "the logs hold no runs"
        fail_usage(f"no run {run_id} in {', '.join(map(str, logs))} ({hint})")
    return found


def _known_tools(wanted: list[str], runs: list[Any], judges: list[Any]) -> None:
    """Refuse a `--tool` that neither program declares and no recorded action calls: a
    typo would filter every decision out, and the gate would pass judging nothing."""
    from carlang_runtime.suggest import did_you_mean

    known = set().union(*(judge.tools for judge in judges))
    for run in runs:
        for action in (run.document or {}).get("actions") or ():
            if isinstance(action, dict) and isinstance(action.get("tool"), str):
                known.add(action["tool"])
    for name in wanted:
        if name not in known:
            hint = did_you_mean(name, sorted(known), "`")
            fail_usage(
                f"--tool {name}: no recorded action calls it and the program does not"
                f" declare it" + (f" ({hint})" if hint else "")
            )


def _program(path: Path, root: Path | None) -> tuple[ir.Program, str]:
    """The program at `path` and its file as its positions name it, or exit 2 with its
    errors: those that stop `carlang run` stop replay (a policy naming no declared tool, a
    condition on a field that does not exist would decide nothing, and the gate pass on
    it). What verification finds in the program's own proposals (a proposal the new policy
    denies) is no reason not to replay."""
    from carlang.cli.checking import blocking_errors, one_source
    from carlang.cli.lang_commands import project_root
    from carlang.compiler import compile_file
    from carlang.render import render_text

    files = one_source(path)
    result = compile_file(files[0], project_root(files, root))
    errors = blocking_errors(result.diagnostics.sorted(), proposal_errors_ok=True)
    if result.program is None or errors:
        echo_err(render_text(errors or result.diagnostics.sorted()))
        echo_err(f"{path}: the program has errors; fix them to replay with it")
        raise typer.Exit(EXIT_USAGE)
    entry = result.loaded.entry
    return result.program, entry.source.name if entry is not None else str(path)


def _judge(path: Path, root: Path | None) -> Judge:
    from carlang_runtime.policy import PolicyLoadError
    from carlang_runtime.replay import Judge

    try:
        program, file = _program(path, root)
        return Judge(program, path.name, file)
    except PolicyLoadError as exc:
        fail_usage(f"{path}: {exc}")


def _time(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail_usage(f"{option} {text}: not a date or time (use RFC 3339: 2026-12-01T00:00:00Z)")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def register(app: typer.Typer) -> None:
    """Add `replay` to the CLI."""
    app.command("replay")(replay_command)
