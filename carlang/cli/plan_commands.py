"""`carlang rank`: score a plan's candidates, explain the ranking, run scoring experiments."""

from __future__ import annotations

import json
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import (
    EXIT_FAILED,
    EXIT_OK,
    RootOption,
    check_output_path,
    echo,
    echo_err,
    fail_usage,
    guarded,
)
from .dbos_commands import DatabaseOption
from .run_commands import Backend

if TYPE_CHECKING:
    from carlang_runtime.experiments import Task
    from carlang_runtime.planner import PlannerConfig, ScoredProposal, ToolFeedback
    from carlang_runtime.planner.sweep import Axis, SweepPoint

    from carlang_dbos import Experiments

__all__ = ["register"]


class RankFormat(StrEnum):
    """Output formats of `carlang rank`."""

    table = "table"
    json = "json"
    csv = "csv"


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
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Programs, folders (every plan in them), CAR JSON proposals or a JSONL file of"
            " candidate groups (one task per line); - reads JSON or JSONL from stdin."
        ),
    ],
    plan: Annotated[
        str | None,
        typer.Option(
            "--plan",
            help="Only this plan of each program and the JSON/JSONL task of this id"
            " (default: every task).",
        ),
    ] = None,
    feedback: Annotated[
        Path | None,
        typer.Option(
            "--feedback",
            help="Tool history: an event log (events.db, .jsonl) or `planner learn`'s file.",
        ),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config", help="Planner settings: `planner search -o`'s file, or JSON/TOML."
        ),
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
            "--plot",
            help="With --sweep over one setting: draw the scores to this file, in the format of"
            " its suffix (.png, .svg, .pdf or another matplotlib draws; needs matplotlib).",
        ),
    ] = None,
    backend: Annotated[
        Backend,
        typer.Option(
            "--backend",
            help="inprocess (the default) or dbos: a sweep's grid points and a large Monte Carlo"
            " estimate's trials go in batches to `carlang worker`s; the same results.",
        ),
    ] = Backend.inprocess,
    database: DatabaseOption = None,
    batch: Annotated[
        int | None,
        typer.Option(
            "--batch", min=1, help="With --backend dbos: grid points per worker task (default 10)."
        ),
    ] = None,
    program: Annotated[
        Path | None,
        typer.Option(
            "--program",
            help="A .car program that JSON and JSONL candidates are judged against: its tools,"
            " state, policies, and the capabilities and budgets they name.",
        ),
    ] = None,
    root: RootOption = None,
) -> None:
    """Score candidate plans without running them, best first: every task of the inputs, in one
    table. Exit 0 when every task (with --sweep, every point) has a valid candidate, 1 when one
    has none (or a program has errors), 2 for bad input."""
    from .datasets import judged_against, load_config, load_dataset, load_feedback

    check_plot(plot, [("an input", path) for path in (*files, feedback, config_file)])
    tasks = load_dataset(files, plan, root)
    if program is not None:
        tasks = judged_against(tasks, program, root)
    history = load_feedback(feedback, tasks)
    base = load_config(config_file)
    extra = _settings(settings or [])
    if backend is Backend.inprocess and (database is not None or batch is not None):
        fail_usage("--database and --batch go with --backend dbos")
    if backend is Backend.dbos:
        from .dbos_commands import planner_experiments

        with planner_experiments(database) as remote:
            _rank(tasks, base, extra, history, sweep, output, explain, plot, remote, batch)
    else:
        _rank(tasks, base, extra, history, sweep, output, explain, plot)


def _rank(
    tasks: list[Task],
    base: PlannerConfig,
    extra: dict[str, str],
    history: ToolFeedback | None,
    sweep: list[str] | None,
    output: RankFormat | None,
    explain: bool,
    plot: Path | None,
    remote: Experiments | None = None,
    batch: int | None = None,
) -> None:
    """Rank or sweep, here or (`remote`) on the workers; exits with `rank`'s status."""
    from carlang_runtime.experiments import rank_task, table_rows, write_csv
    from carlang_runtime.planner.explain import invalid_notes, render_explanation

    from .datasets import warn_idle_settings

    if sweep:
        if output is RankFormat.table:
            fail_usage("a sweep prints csv or json (--format csv|json)")
        if len(tasks) != 1:
            fail_usage(f"a sweep ranks one plan; the inputs hold {len(tasks)} (choose with --plan)")
        if explain:  # (it was ignored)
            fail_usage(
                "--explain explains one ranking, and a sweep ranks at every point: drop"
                " --explain, or explain one point with --set NAME=VALUE instead of --sweep"
            )
        axes = _axes(sweep, extra)
        if plot is not None and len(axes) != 1:
            fail_usage("--plot draws a sweep over one setting (give one --sweep)")
        warn_idle_settings([axis.name for axis in axes], history, "sweeping")
        only = tasks[0]
        at = only.config(base).with_settings(extra)
        points = _sweep(only, at, history, axes, output or RankFormat.csv, plot, remote, batch)
        # (as a ranking without a valid candidate exits 1: a point without one does too)
        raise typer.Exit(EXIT_OK if all(p.winner is not None for p in points) else EXIT_FAILED)
    if plot is not None:
        fail_usage("--plot draws a sweep: add --sweep NAME=START:STOP:STEP")
    if explain and output is RankFormat.csv:
        fail_usage("--explain has no place in csv: use --format table or json with it")
    rows: list[dict[str, Any]] = []
    rankings = []
    for task in tasks:
        config = task.config(base).with_settings(extra)
        ranked = rank_task(
            task,
            config,
            history,
            own_settings=False,
            monte_carlo_batches=remote.monte_carlo if remote is not None else None,
        )
        rankings.append((task, config, ranked))
        rows.extend(table_rows(task.id, ranked, config))
    if output is RankFormat.json:
        echo(json.dumps(_json_document(rankings, rows, explain), indent=2))
    elif output is RankFormat.csv:
        echo(write_csv(rows).rstrip("\n"))
    else:
        for number, (task, config, ranked) in enumerate(rankings):
            if len(rankings) > 1:
                echo(("\n" if number else "") + f"== {task.id}")
            _print_ranking(ranked, [s.proposal_id for s in ranked])
            decided = _tie_note(ranked)
            if decided:
                echo(decided)
            if explain:
                echo()
                echo(render_explanation(ranked, config, task.id))
            else:
                for note in invalid_notes(ranked):
                    echo(note)
    every_valid = all(ranked and ranked[0].valid for _, _, ranked in rankings)
    raise typer.Exit(EXIT_OK if every_valid else EXIT_FAILED)


def check_plot(path: Path | None, inputs: Iterable[tuple[str, Path | None]] = ()) -> None:
    """A usage error now, before any work, when `--plot PATH` cannot be drawn: its file
    cannot be written or is one of `inputs` (see `check_output_path`), matplotlib (the `plot`
    extra) is not installed, or its suffix is no format matplotlib draws (it chooses the
    format by the suffix; `x.txt` failed only after the work, its other outputs written)."""
    check_output_path(path, "--plot", inputs)
    if path is None:
        return
    try:
        import matplotlib  # noqa: F401  (first: a cached submodule imports without it)
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        fail_usage("--plot needs matplotlib: pip install 'carlang[plot]'")
    formats = FigureCanvasBase.get_supported_filetypes()
    if path.suffix[1:].lower() not in formats:
        others = ", ".join(f".{name}" for name in sorted(set(formats) - {"png", "svg", "pdf"}))
        given = f"a .{path.suffix[1:]} file" if path.suffix else "a file without a suffix"
        fail_usage(
            f"--plot {path}: matplotlib cannot draw {given} (the suffix gives the format);"
            f" end the name with .png, .svg or .pdf, or {others}"
        )


def _tie_note(ranked: list[ScoredProposal]) -> str | None:
    """A line saying the winner was decided by a tie-break, if it was."""
    from carlang_runtime.experiments import tie_breaks

    rules = tie_breaks(ranked)
    if not rules or not rules[0] or not ranked[0].valid:  # (no winner among invalid ones)
        return None
    return (
        f"tie-break: {ranked[0].proposal_id} and {ranked[1].proposal_id} score the same"
        f" ({ranked[0].score:.4f}); {ranked[0].proposal_id} wins by {rules[0]}"
    )


def _json_document(
    rankings: list[tuple[Task, PlannerConfig, list[ScoredProposal]]],
    rows: list[dict[str, Any]],
    explain: bool,
) -> dict[str, Any]:
    """`--format json`: every task's config, ranking (and explanation), then the table."""
    from carlang_runtime import __version__
    from carlang_runtime.experiments import config_hash
    from carlang_runtime.planner.explain import render_explanation

    tasks = []
    for task, config, ranked in rankings:
        entry: dict[str, Any] = {
            "plan": task.id,
            "config": config.model_dump(),
            "config_hash": config_hash(config),
            "ranking": [s.model_dump(mode="json") for s in ranked],
        }
        if explain:
            entry["explanation"] = render_explanation(ranked, config, task.id).splitlines()
        tasks.append(entry)
    # One task: its keys at the top too (the shape before datasets, which readers rely on).
    document: dict[str, Any] = dict(tasks[0]) if len(tasks) == 1 else {}
    document["tasks"] = tasks
    document["carlang_version"] = __version__
    document["rows"] = rows
    return document


def _axes(specs: list[str], extra: dict[str, str]) -> list[Axis]:
    """The sweep's axes; a usage error for a setting swept twice (its rows would be labelled
    with one value and ranked at another) or also given with --set (the sweep would drop it)."""
    from carlang_runtime.planner.sweep import parse_axis

    axes = [parse_axis(spec) for spec in specs]
    seen: set[str] = set()
    for axis in axes:
        if axis.name in seen:
            fail_usage(
                f"--sweep {axis.name} is given twice: sweep a setting once"
                f" (list every value in one --sweep {axis.name}=V1,V2,...)"
            )
        if axis.name in extra:
            fail_usage(
                f"--set {axis.name} and --sweep {axis.name}: the sweep sets {axis.name} at every"
                f" point; drop one of them"
            )
        seen.add(axis.name)
    return axes


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
    if field == "policy_compliance" and "policy" not in scored.factors:
        return None  # no policies: nothing to judge
    return getattr(scored, field)


def _print_ranking(ranked: list[ScoredProposal], names: list[str]) -> None:
    """The ranking as a table, drawn as `run` draws its results."""
    from rich.markup import escape

    from .tables import Column, print_table

    columns = [
        Column("rank", "right"),
        Column("candidate"),
        *(Column(header, "right") for header, _, _ in _TABLE),
    ]
    rows = [
        [str(i + 1), escape(name), *(_cell(_table_value(s, f), spec) for _, f, spec in _TABLE)]
        for i, (s, name) in enumerate(zip(ranked, names, strict=True))
    ]
    print_table(columns, rows)


def _sweep(
    task: Task,
    config: PlannerConfig,
    history: ToolFeedback | None,
    axes: list[Axis],
    output: RankFormat,
    plot: Path | None = None,
    remote: Experiments | None = None,
    batch: int | None = None,
) -> list[SweepPoint]:
    """Rank at every point of the grid and print it (CSV or JSON; where the winner changes
    on stderr); the points, for the exit status."""
    from carlang_runtime.experiments import rank_task, table_rows, write_csv
    from carlang_runtime.planner.sweep import sweep, winner_changes

    cache: dict[tuple[Any, ...], Any] = {}
    if remote is not None:
        points = remote.sweep(task, config, history, axes, *([batch] if batch else []))
    else:
        points = sweep(
            lambda at: rank_task(task, at, history, cache, own_settings=False), config, axes
        )
    if output is RankFormat.json:
        echo(json.dumps([_point_document(p) for p in points], indent=2))
    else:
        rows = []
        for point in points:
            for row in table_rows(task.id, point.ranked, config.with_settings(point.settings)):
                rows.append({**point.settings, **row})
        echo(write_csv(rows, [a.name for a in axes]).rstrip("\n"))
    for line in winner_changes(points):
        echo_err(line)
    if plot is not None:
        from carlang.graph.plot import plot_sweep

        plot_sweep(points, axes[0].name, plot)
        echo_err(f"wrote {plot}")
    return list(points)


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
