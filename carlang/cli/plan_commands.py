"""`carlang rank`: score a plan's candidates, explain the ranking, run scoring experiments."""

from __future__ import annotations

import csv
import io
import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import EXIT_FAILED, EXIT_OK, RootOption, echo, echo_err, fail_usage, guarded
from .lang_commands import compile_program

if TYPE_CHECKING:
    from carlang_runtime.ir import Plan, Program
    from carlang_runtime.planner import PlannerConfig, ScoredProposal, ToolFeedback
    from carlang_runtime.planner.sweep import SweepPoint

__all__ = ["register", "SCALAR_FIELDS"]


class RankFormat(StrEnum):
    """Output formats of `carlang rank`."""

    table = "table"
    json = "json"
    csv = "csv"


#: The columns of the CSV output: every number of a score, CAR's fields first.
SCALAR_FIELDS = (
    "index",
    "score",
    "valid",
    "validity",
    "cost_efficiency",
    "historical_confidence",
    "policy_compliance",
    "budget_headroom",
    "reversibility",
    "monte_carlo_success",
    "base_score",
    "error_count",
    "warning_count",
    "action_count",
    "tool_call_count",
    "parallelism_levels",
    "state_keys_written",
    "has_write_conflicts",
    "token_estimate",
    "quality_per_token",
    "approvals",
    "denials",
    "predicted_denials",
    "irreversible_actions",
    "estimated_duration_ms",
)

# (header, field, format) of the table; "-" where a feature has nothing to say.
_TABLE = (
    ("score", "score", ".4f"),
    ("valid", "valid", ""),
    ("validity", "validity", ".3f"),
    ("cost", "cost_efficiency", ".3f"),
    ("history", "historical_confidence", ".3f"),
    ("policy", "policy_compliance", ".3f"),
    ("headroom", "budget_headroom", ".3f"),
    ("revers.", "reversibility", ".3f"),
    ("monte carlo", "monte_carlo_success", ".3f"),
    ("actions", "action_count", ""),
    ("tool calls", "tool_call_count", ""),
    ("levels", "parallelism_levels", ""),
    ("tokens", "token_estimate", ""),
)


@guarded
def rank_command(
    file: Annotated[Path, typer.Argument(help="The program whose plan to rank.")],
    plan: Annotated[
        str | None,
        typer.Option(
            "--plan", help="Which plan (needed if several; without plans: all proposals)."
        ),
    ] = None,
    feedback: Annotated[
        Path | None,
        typer.Option("--feedback", help="Tool history from an event log: events.db or .jsonl."),
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="A planner setting, NAME=VALUE, over the plan's (repeatable)."),
    ] = None,
    sweep: Annotated[
        list[str] | None,
        typer.Option(
            "--sweep",
            help="Rank at each value: NAME=START:STOP:STEP or NAME=V1,V2 (repeatable: a grid).",
        ),
    ] = None,
    output: Annotated[
        RankFormat | None,
        typer.Option("--format", help="table (default), json or csv; a sweep: csv or json."),
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Say why the winner won and why the others lost.")
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot", help="With --sweep over one setting: draw the scores (.svg, .png)."
        ),
    ] = None,
    root: RootOption = None,
) -> None:
    """Score a plan's candidate proposals without running them, best first. Exit 0 when a
    candidate is valid, 1 when none is (or the program has errors), 2 for bad input."""
    from carlang_runtime.planner import PlannerConfig, plan_config

    _, program = compile_program(file, root, proposal_errors_ok=True)
    chosen = _choose_plan(program, plan, file)
    history = _feedback(feedback)
    config = plan_config(chosen, PlannerConfig()).with_settings(_settings(settings or []))
    if sweep:
        if output is RankFormat.table:
            fail_usage("a sweep prints csv or json (--format csv|json)")
        _sweep(program, chosen, config, history, sweep, output or RankFormat.csv, plot)
        raise typer.Exit(EXIT_OK)
    if plot is not None:
        fail_usage("--plot draws a sweep: add --sweep NAME=START:STOP:STEP")
    from carlang_runtime.planner import rank_plan
    from carlang_runtime.planner.explain import render_explanation

    ranked = rank_plan(program, chosen, config=config, feedback=history)
    names = [s.proposal_id for s in ranked]
    explanation = render_explanation(ranked, config, chosen.name) if explain else None
    if output is RankFormat.json:
        document: dict[str, Any] = {
            "plan": chosen.name,
            "config": config.model_dump(),
            "ranking": [s.model_dump(mode="json") for s in ranked],
        }
        if explanation is not None:
            document["explanation"] = explanation.splitlines()
        echo(json.dumps(document, indent=2))
    elif output is RankFormat.csv:
        echo(_csv([({}, i + 1, s) for i, s in enumerate(ranked)], []).rstrip("\n"))
    else:
        echo(_table(ranked, names))
        if explanation is not None:
            echo()
            echo(explanation)
    raise typer.Exit(EXIT_OK if ranked and ranked[0].valid else EXIT_FAILED)


def _choose_plan(program: Program, name: str | None, file: Path) -> Plan:
    from carlang_runtime.ir import Plan

    if name is not None:
        found = program.plan(name)
        if found is None:
            names = ", ".join(p.name for p in program.plans) or "none"
            fail_usage(f"no plan `{name}` in {file} (plans: {names})")
        return found
    if len(program.plans) == 1:
        return program.plans[0]
    if program.plans:
        names = ", ".join(p.name for p in program.plans)
        fail_usage(f"{file} has several plans; choose one with --plan ({names})")
    if not program.proposals:
        fail_usage(f"{file} has no plans and no proposals to rank")
    return Plan(name="(all proposals)", candidates=[p.id for p in program.proposals])


def _feedback(path: Path | None) -> ToolFeedback | None:
    if path is None:
        return None
    from carlang_runtime.planner import ToolFeedback

    return ToolFeedback.from_log(path)


def _settings(pairs: list[str]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip() or not value.strip():
            fail_usage(f"--set {pair}: write NAME=VALUE, like --set cost_weight=0.3")
        settings[name.strip()] = value.strip()
    return settings


def _cell(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return format(value, spec) if spec else str(value)


def _table_value(scored: ScoredProposal, field: str) -> Any:
    if field == "historical_confidence" and "feedback" not in scored.factors:
        return None  # CAR's 1.0 without feedback: nothing was learned
    return getattr(scored, field)


def _table(ranked: list[ScoredProposal], names: list[str]) -> str:
    headers = ["rank", "candidate", *(h for h, _, _ in _TABLE)]
    rows = [
        [str(i + 1), name, *(_cell(_table_value(s, f), spec) for _, f, spec in _TABLE)]
        for i, (s, name) in enumerate(zip(ranked, names, strict=True))
    ]
    widths = [max(len(row[c]) for row in [headers, *rows]) for c in range(len(headers))]

    def line(cells: list[str]) -> str:
        first = [cells[0].rjust(widths[0]), cells[1].ljust(widths[1])]
        rest = [cell.rjust(width) for cell, width in zip(cells[2:], widths[2:], strict=True)]
        return "  ".join(first + rest).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def _csv(rows: list[tuple[dict[str, float], int, ScoredProposal]], axes: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*axes, "rank", "candidate", *SCALAR_FIELDS])
    for settings, place, scored in rows:
        values = [getattr(scored, name) for name in SCALAR_FIELDS]
        writer.writerow(
            [
                *(settings[a] for a in axes),
                place,
                scored.proposal_id,
                *("" if v is None else v for v in values),
            ]
        )
    return buffer.getvalue()


def _sweep(
    program: Program,
    plan: Plan,
    config: PlannerConfig,
    history: ToolFeedback | None,
    specs: list[str],
    output: RankFormat,
    plot: Path | None = None,
) -> None:
    from carlang_runtime.planner import rank_plan
    from carlang_runtime.planner.sweep import parse_axis, sweep, winner_changes

    axes = [parse_axis(spec) for spec in specs]
    points = sweep(lambda at: rank_plan(program, plan, config=at, feedback=history), config, axes)
    if output is RankFormat.json:
        echo(json.dumps([_point_document(p) for p in points], indent=2))
    else:
        rows = [(p.settings, i + 1, s) for p in points for i, s in enumerate(p.ranked)]
        echo(_csv(rows, [a.name for a in axes]).rstrip("\n"))
    for line in winner_changes(points):
        echo_err(line)
    if plot is not None:
        from carlang.graph.plot import plot_sweep

        if len(axes) != 1:
            fail_usage("--plot draws a sweep over one setting (give one --sweep)")
        plot_sweep(points, axes[0].name, plot)
        echo_err(f"wrote {plot}")


def _point_document(point: SweepPoint) -> dict[str, Any]:
    winner = point.winner
    return {
        "settings": point.settings,
        "winner": winner.proposal_id if winner is not None else None,
        "ranking": [s.model_dump(mode="json") for s in point.ranked],
    }


def register(app: typer.Typer) -> None:
    """Add the planning commands to the CLI."""
    app.command("rank")(rank_command)
