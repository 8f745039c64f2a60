"""`carlang planner eval|learn|search`: planner experiments against recorded outcomes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import (
    EXIT_OK,
    RootOption,
    check_output_path,
    echo,
    echo_err,
    fail_usage,
    guarded,
    write_output,
)
from .datasets import load_config, load_dataset, load_feedback, warn_idle_settings
from .dbos_commands import DatabaseOption
from .plan_commands import check_plot
from .run_commands import Backend

if TYPE_CHECKING:
    from carlang_runtime.experiments import Outcomes, Task
    from carlang_runtime.experiments.search import SearchResult

__all__ = ["register"]

planner_app = typer.Typer(
    name="planner",
    help="Planner experiments: evaluate rankings against real outcomes, learn, search.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

Dataset = Annotated[
    list[Path],
    typer.Argument(help="Programs, folders, CAR JSON proposals or JSONL candidate groups."),
]
OutcomesOption = Annotated[
    list[Path],
    typer.Option(
        "--outcomes",
        help="Recorded runs: event logs (.db, .jsonl; runs with scope task=ID) or a CSV of"
        " task,candidate,success[,runs,cost] (repeatable).",
    ),
]
FeedbackOption = Annotated[
    Path | None,
    typer.Option("--feedback", help="Tool history: `planner learn`'s file or an event log."),
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="Planner settings (JSON/TOML, or a search's).")
]
PlanOption = Annotated[
    str | None,
    typer.Option(
        "--plan", help="Only this plan of each program and the JSON/JSONL task of this id."
    ),
]
SeedOption = Annotated[
    int, typer.Option("--seed", help="Seed of the bootstrap intervals and the random baseline.")
]
SearchSeedOption = Annotated[
    int,
    typer.Option(
        "--seed",
        help="Seed of the split's shuffle and of the random or optuna points (Monte Carlo's is"
        " the `seed` setting).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


@planner_app.command("eval")
@guarded
def eval_command(
    dataset: Dataset,
    outcomes: OutcomesOption,
    feedback: FeedbackOption = None,
    config: ConfigOption = None,
    plan: PlanOption = None,
    resamples: Annotated[
        int,
        typer.Option(
            "--resamples",
            help="Bootstrap resamples for the 95% intervals (100-100000; 0: no intervals).",
        ),
    ] = 1000,
    seed: SeedOption = 0,
    per_task: Annotated[
        bool, typer.Option("--per-task", help="Also print every task's winner and metrics.")
    ] = False,
    as_json: JsonOption = False,
    root: RootOption = None,
) -> None:
    """Rank every task and compare with what really happened: top-1 (ties for best count),
    regret, Spearman and Kendall, per task and overall with bootstrap intervals, next to CAR's
    score, fewest actions and random."""
    from carlang_runtime.experiments import evaluate
    from carlang_runtime.experiments.evaluate import (
        coverage_warning,
        render,
        render_tasks,
        undecided_warning,
    )

    _check_resamples(resamples)
    tasks = load_dataset(dataset, plan, root)
    recorded = _load_outcomes(outcomes, tasks, plan)
    history = load_feedback(feedback, tasks)
    result = evaluate(tasks, recorded, load_config(config), history, resamples=resamples, seed=seed)
    if as_json:
        echo(json.dumps(result.to_dict(), indent=2))
    else:
        echo(render(result))
        if per_task:
            echo()
            echo(render_tasks(result))
    for problem in (coverage_warning(result.single, result.tasks), undecided_warning(result)):
        if problem is not None:
            echo_err(f"warning: {problem}")
    if result.tasks == 0:
        echo_err("no task has recorded outcomes (runs carry scope task=ID, or use a CSV)")
        raise typer.Exit(1)
    raise typer.Exit(EXIT_OK)


#: The most bootstrap resamples `eval` takes: far more than a 95% interval needs (the default
#: 1000 is plenty), and each interval then takes about a second per 100 tasks (one per metric and
#: ranker); unbounded, `--resamples 10000000` ran for minutes, and a larger count for ever or
#: out of memory (every resample's mean is kept).
MAX_RESAMPLES = 100_000


def _check_resamples(resamples: int) -> None:
    """A usage error unless `--resamples` is 0 (no intervals) or `MIN_RESAMPLES` to
    `MAX_RESAMPLES`."""
    from carlang_runtime.experiments.metrics import MIN_RESAMPLES

    if not 0 <= resamples <= MAX_RESAMPLES:
        fail_usage(
            f"--resamples {resamples}: give 0 to {MAX_RESAMPLES} bootstrap resamples"
            " (0: no intervals; the default is 1000)"
        )
    if 0 < resamples < MIN_RESAMPLES:  # (1 gave a "95% interval" without the mean in it)
        fail_usage(
            f"--resamples {resamples}: a 95% interval needs at least {MIN_RESAMPLES} bootstrap"
            " resamples (0: no intervals; the default is 1000)"
        )


#: What `planner learn` takes, said when a file is none.
_LEARN_TAKES = "planner learn takes event logs of recorded runs (.db, .jsonl)"


@planner_app.command("learn")
@guarded
def learn_command(
    logs: Annotated[list[Path], typer.Argument(help="Event logs (.db, .jsonl) to learn from.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The feedback file to write.")],
) -> None:
    """Learn from event logs what fails: success rates per tool and per parameter pattern
    (where they differ), approval grant rates per policy, durations; saved for `--feedback`."""
    from carlang_runtime.experiments.outcomes import read_log, repeated_note, unseen_runs
    from carlang_runtime.planner import ToolFeedback

    check_output_path(output, "-o", [("the event log", log) for log in logs])
    if output.suffix.lower() != ".json":  # (--feedback reads any other file as an event log)
        fail_usage(
            f"-o {output}: the feedback file is JSON, read back by its .json suffix;"
            f" name a .json file (like {output.with_suffix('.json').name})"
        )
    learned = ToolFeedback()
    seen: set[str] = set()
    for log in logs:  # (read as eval and search read --outcomes: the same refusals)
        events, repeated = unseen_runs(read_log(log, _LEARN_TAKES), seen)
        if repeated:
            echo_err(f"note: {repeated_note(str(log), repeated)}")
        learned.merge(ToolFeedback.from_events(events))
    try:
        learned.save(output)
    except OSError as exc:
        fail_usage(f"cannot write {output}: {exc.strerror or exc}")
    for tool, stats in sorted(learned.stats.items()):
        mean = stats.mean_duration_ms
        took = f", {mean:.1f} ms" if mean is not None else ""
        echo(f"tool {tool}: {stats.success_rate:.1%} of {stats.attempts} attempts{took}")
    for tool, patterns in sorted(learned.distinct_patterns().items()):
        for (_, name, value), rate in patterns:
            echo(f"  {tool} with {name} = {value}: {rate:.1%} (differs from the rest)")
    for policy, (asked, granted) in sorted(learned.approvals.items()):
        echo(f"policy {policy}: {granted} of {asked} approvals granted")
    echo(f"saved to {output}")


@planner_app.command("search")
@guarded
def search_command(
    dataset: Dataset,
    outcomes: OutcomesOption,
    space: Annotated[Path, typer.Option("--space", help="The settings to search (TOML).")],
    feedback: FeedbackOption = None,
    config: ConfigOption = None,
    plan: PlanOption = None,
    method: Annotated[
        str,
        typer.Option(
            "--method", help="grid, random or optuna (TPE; pip install 'carlang[optuna]')."
        ),
    ] = "grid",
    trials: Annotated[
        int | None,
        typer.Option("--trials", help="Points of a random or optuna search (default 50)."),
    ] = None,
    split: Annotated[
        str, typer.Option("--split", help="TRAIN:TEST (like 70:30) or 'kfold K'.")
    ] = "50:50",
    objective: Annotated[
        str, typer.Option("--objective", help="top1, regret, spearman or kendall.")
    ] = "top1",
    seed: SearchSeedOption = 0,
    ablate: Annotated[
        bool, typer.Option("--ablate", help="Report the objective with each feature off.")
    ] = False,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Processes (default: the cores).")
    ] = None,
    batch: Annotated[
        int, typer.Option("--batch", min=1, help="Configs judged per batch (a unit of work).")
    ] = 64,
    backend: Annotated[
        Backend,
        typer.Option(
            "--backend",
            help="inprocess (the default, over --workers processes) or dbos: the batches of"
            " configs go to `carlang worker`s; the same results.",
        ),
    ] = Backend.inprocess,
    database: DatabaseOption = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the chosen config here (JSON).")
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Draw the search (and ablation) to this file, in the format of its suffix"
            " (.png, .svg, .pdf or another matplotlib draws; needs matplotlib).",
        ),
    ] = None,
    as_json: JsonOption = False,
    root: RootOption = None,
) -> None:
    """Find the planner settings that rank best on the training tasks and report them on the
    held-out ones; the chosen config is written for `rank --config`."""
    from carlang_runtime.experiments.search import load_space, search

    if workers is not None and workers < 1:
        fail_usage("--workers must be at least 1")
    if trials is not None and method == "grid":  # (it was ignored)
        fail_usage(
            "--trials counts the points of --method random or optuna; a grid search tries"
            " every point of the space: drop --trials, or choose --method random"
        )
    inputs = [
        *(("the dataset", path) for path in dataset),
        *(("the outcomes", path) for path in outcomes),
        ("the search space", space),
        ("the feedback", feedback),
        ("the config", config),
    ]
    check_output_path(output, "-o", [*inputs, ("the --plot file", plot)])
    if output is not None and output.suffix.lower() != ".json":
        fail_usage(
            f"-o {output}: the chosen config is written as JSON (read by rank --config);"
            f" name a .json file (like {output.with_suffix('.json').name})"
        )
    check_plot(plot, inputs)
    if backend is Backend.inprocess and database is not None:
        fail_usage("--database goes with --backend dbos")
    if backend is Backend.dbos and workers is not None:
        fail_usage(
            "--workers goes with --backend inprocess (the DBOS workers are `carlang worker`s)"
        )
    dimensions = load_space(space)  # (first: a space too large to search is refused at once)
    tasks = load_dataset(dataset, plan, root)
    recorded = _load_outcomes(outcomes, tasks, plan)
    _warn_coverage(tasks, recorded)
    _warn_fixed(tasks, recorded, [d.name for d in dimensions])

    history = load_feedback(feedback, tasks)
    warn_idle_settings([d.name for d in dimensions], history, "searching")

    def run(runner: Any = None) -> SearchResult:
        return search(
            tasks,
            recorded,
            dimensions,
            base=load_config(config),
            feedback=history,
            method=method,
            trials=trials if trials is not None else DEFAULT_TRIALS,
            split=split,
            objective=objective,
            seed=seed,
            ablate=ablate,
            workers=workers,
            batch=batch,
            runner=runner,
        )

    if backend is Backend.dbos:
        from .dbos_commands import planner_experiments

        with planner_experiments(database) as remote:
            result = run(remote.search)
    else:
        result = run()
    if output is not None:
        write_output(output, json.dumps(result.to_dict(), indent=1) + "\n")
    if as_json:
        echo(json.dumps(result.to_dict(), indent=2))
    else:
        echo(_render(result, output))
    if plot is not None:
        _plot(result, plot)
    raise typer.Exit(EXIT_OK)


#: The points a random or optuna search tries without `--trials`.
DEFAULT_TRIALS = 50


def _load_outcomes(paths: list[Path], tasks: list[Task], plan: str | None) -> Outcomes:
    """`--outcomes`, runs without a task joined where their task is clear (`resolve`), with
    a warning for each kind of outcome that joins no task's candidate (with `--plan`, the
    runs of the tasks it left out are only counted, in a note: leaving them out was asked)."""
    from carlang_runtime.experiments import Outcomes
    from carlang_runtime.experiments.outcomes import repeated_note

    recorded = Outcomes.load(paths)
    for log, runs in recorded.repeated:
        echo_err(f"note: {repeated_note(log, runs)}")
    for table in recorded.tables_again:
        echo_err(f"note: {table} is given more than once: its rows are counted once")
    for log, runs in recorded.unfinished:
        echo_err(
            f"note: {log}: {runs} run(s) never ended (no proposal_completed: interrupted, cut"
            " short or still running) and are not counted"
        )
    chosen = plan is not None
    others = recorded.of_other_tasks(tasks) if chosen else 0
    if others:
        echo_err(f"note: {others} recorded run(s) of other tasks than --plan {plan} left out")
    for problem in recorded.warnings(tasks, chosen=chosen):
        echo_err(f"warning: {problem}")
    return recorded.resolve(tasks)


def _warn_coverage(tasks: list[Task], recorded: Outcomes) -> None:
    """Warn about the tasks whose outcomes cannot tell rankings apart (one candidate ran),
    and those where a point's winner may be a candidate that never ran (then its top-1 and
    regret there are undecided, and the task is left out of the objective's mean)."""
    from carlang_runtime.experiments.evaluate import coverage_warning, joined, uninformative

    judged = [task for task in tasks if joined(task, recorded)]
    coverage = coverage_warning(uninformative(tasks, recorded), len(judged))
    if coverage is not None:
        echo_err(f"warning: {coverage}")
    partly = [t.id for t in judged if len(joined(t, recorded)) < len(t.candidates)]
    if partly:
        shown = ", ".join(partly[:3]) + (f" and {len(partly) - 3} more" if len(partly) > 3 else "")
        echo_err(
            f"warning: {len(partly)} of {len(judged)} task(s) have candidates that never ran"
            f" ({shown}): where a point's winner is one of them, its top-1 and regret there are"
            " unknown and the task is left out of the objective (record runs of every candidate)"
        )


def _warn_fixed(tasks: list[Task], recorded: Outcomes, names: list[str]) -> None:
    """Warn about searched settings that some (not all) judged tasks' plans set themselves:
    there the plan's value applies, whatever the point (all of them: `search` refuses)."""
    from carlang_runtime.experiments.evaluate import joined
    from carlang_runtime.experiments.search import fixed_by_plans

    judged = [task for task in tasks if joined(task, recorded)]
    for name, ids in fixed_by_plans(judged, names).items():
        if len(ids) < len(judged):
            shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
            echo_err(
                f"warning: {name} is set by the plan of {len(ids)} of {len(judged)} task(s)"
                f" ({shown}): there the plan's value applies, not the search's point"
            )


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _render(result: SearchResult, output: Path | None) -> str:
    held = "held-out" if result.folds == 1 else f"held-out (mean of {result.folds} folds)"
    lines = [
        f"{len(result.tried)} point(s) tried ({result.method}); objective {result.objective}",
        "best: " + ", ".join(f"{k}={v:g}" for k, v in result.best.items()),
        f"  train {_number(result.train)}, {held} {_number(result.test)}",
    ]
    if result.ablation:
        lines.append("ablation (each feature off in turn):")
        for name, value in result.ablation.items():
            lines.append(f"  {name:<14} {_number(value)}{_already_off(result, name)}")
    if output is not None:
        lines.append(f"config written to {output} (carlang rank --config {output})")
    return "\n".join(lines)


def _already_off(result: SearchResult, name: str) -> str:
    """The note on an ablated feature whose weight the best point (each fold's) sets to 0."""
    off = result.already_off.get(name, 0)
    points = result.ablation_points  # (the folds judged: one without outcomes is not)
    if not off:
        return ""
    if off < points:
        return f"  (off already at {off} of the {points} folds' best points)"
    where = "every fold's best point" if result.folds > 1 else "the best point"
    return f"  (off already at {where}: the same as none)"


def _plot(result: SearchResult, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # (checked before the search: `check_plot`)
        fail_usage("--plot needs matplotlib: pip install 'carlang[plot]'")
    panels = 2 if result.ablation else 1
    figure, axes_list = plt.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)
    axes = axes_list[0]
    train = [entry["train"][0] for entry in result.tried]
    axes[0].plot(range(len(train)), [float("nan") if v is None else v for v in train], ".")
    axes[0].set_xlabel("point")
    axes[0].set_ylabel(f"{result.objective} (train)")
    axes[0].set_title("search")
    if result.ablation:
        names = list(result.ablation)
        values: list[Any] = [result.ablation[n] or 0.0 for n in names]
        axes[1].bar(names, values)
        axes[1].set_title(f"ablation ({result.objective})")
        axes[1].tick_params(axis="x", rotation=45)
    figure.tight_layout()
    try:
        figure.savefig(path)
    except (OSError, ValueError) as exc:  # ValueError: a suffix matplotlib cannot draw
        fail_usage(f"cannot write {path}: {exc}")
    finally:
        plt.close(figure)
    echo_err(f"plot written to {path}")


def register(app: typer.Typer) -> None:
    """Add `carlang planner ...` to the CLI."""
    app.add_typer(planner_app)
