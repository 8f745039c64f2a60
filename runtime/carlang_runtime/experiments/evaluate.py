"""`evaluate`: how well rankings pick what really works, next to baselines.

Each task's candidates are ranked (carlang with the given config and feedback), and the
ranking is compared with the candidates' real success rates (`Outcomes`): top-1 (ties for best
count), regret, Spearman and Kendall per task, their means over tasks with percentile bootstrap
confidence intervals (tasks resampled, seeded). Candidates with no recorded run are left out of
a task's correlations; a task with none is reported as unjoined. A ranker's winner is its first
candidate, outcomes or not: when that one never ran, whether it was right is unknown, so its
top-1 and regret on the task are undecided (None), left out of their means and counted
(`RankerScore.undecided`); no candidate that ran stands in for it.

Baselines, on the same tasks:
- `car`: car-runtime's `rank_proposals` score: `PlannerConfig.car()` with no feedback, which
  reproduces it exactly (held to it by `tests/runtime/planner/test_car_rank.py` and, on the
  experiment benchmark, against car-runtime itself), on the candidates as CAR reads them
  (without carlang's `depends_on`), in the task's context (tools, state, policies,
  capabilities and budgets);
- `fewest_actions`: fewer actions first (input order among equals);
- `random`: a seeded random order per task.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..ir import ActionProposal
from ..planner import PlannerConfig, ScoredProposal, ToolFeedback
from .dataset import Task, rank_task
from .metrics import bootstrap_ci, kendall_tau_b, mean, regret, spearman, top1
from .outcomes import Outcome, Outcomes

__all__ = [
    "METRICS",
    "BASELINES",
    "TaskScore",
    "RankerScore",
    "Evaluation",
    "evaluate",
    "task_scores",
    "joined",
    "car_ranking",
    "uninformative",
    "coverage_warning",
    "undecided_warning",
]

METRICS = ("top1", "regret", "spearman", "kendall")
BASELINES = ("car", "fewest_actions", "random")

#: A ranking of one task: (candidate id, score) best first.
Ranking = list[tuple[str, float]]


@dataclass(frozen=True)
class TaskScore:
    """One ranker's metrics on one task."""

    task: str
    winner: str
    #: None: the winner never ran (undecided; left out of the mean).
    top1: float | None
    regret: float | None
    spearman: float | None
    kendall: float | None
    #: The winner's mean cost per run, as the outcomes record it (a CSV's `cost`, a log's
    #: wall time in ms); None when the winner never ran or no cost of it was recorded.
    cost: float | None = None

    def metric(self, name: str) -> float | None:
        """One metric by name (`METRICS`)."""
        value: float | None = getattr(self, name)
        return value


@dataclass
class RankerScore:
    """One ranker over the dataset: the per-task scores, means and confidence intervals."""

    name: str
    tasks: list[TaskScore]
    means: dict[str, float | None] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float] | None] = field(default_factory=dict)
    #: The mean over tasks of what the winner cost per run (`TaskScore.cost`): what choosing
    #: by this ranker spends; None when no winner ran.
    mean_cost: float | None = None

    @property
    def undecided(self) -> list[str]:
        """The tasks where this ranker's winner has no recorded run: its top-1 and regret
        there are unknown, and left out of their means."""
        return [t.task for t in self.tasks if t.top1 is None]

    def to_dict(self) -> dict[str, Any]:
        """As JSON data."""
        return {
            "name": self.name,
            "undecided": self.undecided,
            "means": self.means,
            "mean_cost": self.mean_cost,
            "intervals": {k: list(v) if v else None for k, v in self.intervals.items()},
            "tasks": [t.__dict__ for t in self.tasks],
        }


@dataclass
class Evaluation:
    """carlang and the baselines on one dataset."""

    rankers: list[RankerScore]
    tasks: int
    unjoined: list[str]
    #: The recorded runs of the joined tasks' candidates: those the metrics stand on.
    runs: int
    #: Joined tasks where fewer than 2 candidates have outcomes (see `uninformative`).
    single: list[str] = field(default_factory=list)
    #: Whether any outcome recorded a cost (a CSV's `cost` column; a log's run, its wall time
    #: in milliseconds): the report shows each ranker's winners' mean cost then.
    costed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """As JSON data."""
        return {
            "tasks": self.tasks,
            "runs": self.runs,
            "unjoined": self.unjoined,
            "single": self.single,
            "costed": self.costed,
            "rankers": [r.to_dict() for r in self.rankers],
        }


def joined(task: Task, outcomes: Outcomes) -> dict[str, Outcome]:
    """The outcomes of a task's candidates."""
    return outcomes.for_task(task.id, [c.id for c in task.candidates])


def uninformative(tasks: Sequence[Task], outcomes: Outcomes) -> list[str]:
    """The tasks with outcomes for exactly one candidate: there every ranking, random too,
    picks the only candidate judged, so its top-1 is 1 and its regret 0 whatever it does."""
    return [task.id for task in tasks if len(joined(task, outcomes)) == 1]


def coverage_warning(single: Sequence[str], joined_tasks: int) -> str | None:
    """A line saying how many joined tasks cannot tell rankers apart (`uninformative`) and
    how many that leaves, or None when every one can."""
    if not single:
        return None
    shown = ", ".join(single[:3]) + (f" and {len(single) - 3} more" if len(single) > 3 else "")
    return (
        f"{len(single)} of {joined_tasks} task(s) have outcomes for only one candidate ({shown}):"
        f" there every ranker that picks it, random too, scores top-1 1 and regret 0; that leaves"
        f" {joined_tasks - len(single)} informative task(s) (record runs of at least 2"
        f" candidates per task)"
    )


def task_scores(
    task: str,
    ranking: Ranking,
    actual: dict[str, float],
    costs: Mapping[str, float] | None = None,
) -> TaskScore | None:
    """The metrics of one ranking against the actual success rates of its candidates (those
    without an outcome are left out of the correlations; a winner without one leaves top-1
    and regret undecided, None), and the winner's mean cost per run (`costs`, by candidate);
    None when no candidate has an outcome."""
    kept = [(name, score) for name, score in ranking if name in actual]
    if not kept:
        return None
    rates = [actual[name] for name, _ in kept]
    scores = [score for _, score in kept]
    winner = ranking[0][0]
    ran = winner in actual
    return TaskScore(
        task=task,
        winner=winner,
        top1=top1(actual[winner], rates) if ran else None,
        regret=regret(actual[winner], rates) if ran else None,
        spearman=spearman(scores, rates),
        kendall=kendall_tau_b(scores, rates),
        cost=costs.get(winner) if costs is not None and ran else None,
    )


def _ranking(ranked: Sequence[ScoredProposal]) -> Ranking:
    # Invalid candidates score 0 and come last; the order of `ranked` is the decision.
    return [(s.proposal_id, s.score) for s in ranked]


def car_ranking(task: Task) -> Ranking:
    """car-runtime's `rank_proposals` on a task: CAR's score and order, judged in the task's
    context (tools, state, policies, capabilities and budgets, as carlang ranks it); without
    feedback. The candidates are ranked as CAR reads them: without carlang's `depends_on`,
    which CAR drops (its levels and token estimates counted the ordering CAR never sees)."""
    seen_by_car = replace(task, candidates=[_as_car_reads(c) for c in task.candidates])
    return _ranking(rank_task(seen_by_car, PlannerConfig.car(), own_settings=False))


def _as_car_reads(proposal: ActionProposal) -> ActionProposal:
    """`proposal` without its actions' `depends_on` (itself when none has one)."""
    if not any(action.depends_on for action in proposal.actions):
        return proposal
    actions = [
        action.model_copy(update={"depends_on": []}) if action.depends_on else action
        for action in proposal.actions
    ]
    return proposal.model_copy(update={"actions": actions})


def _fewest_actions(task: Task) -> Ranking:
    order = sorted(enumerate(task.candidates), key=lambda item: (len(item[1].actions), item[0]))
    return [(c.id, -float(len(c.actions))) for _, c in order]


def _random(task: Task, seed: int) -> Ranking:
    draw = random.Random(f"{seed}:{task.id}")
    scores = [(c.id, draw.random()) for c in task.candidates]
    return sorted(scores, key=lambda item: -item[1])


def _summarise(name: str, scores: list[TaskScore], resamples: int, seed: int) -> RankerScore:
    result = RankerScore(name, scores)
    for metric in METRICS:
        values = [s.metric(metric) for s in scores]
        result.means[metric] = mean(values)
        result.intervals[metric] = bootstrap_ci(values, resamples, seed)
    result.mean_cost = mean([s.cost for s in scores])
    return result


def evaluate(
    tasks: Sequence[Task],
    outcomes: Outcomes,
    config: PlannerConfig | None = None,
    feedback: ToolFeedback | None = None,
    *,
    baselines: Sequence[str] = BASELINES,
    resamples: int = 1000,
    seed: int = 0,
    ranker: Callable[[Task], Ranking] | None = None,
) -> Evaluation:
    """carlang's rankings (with `config` and `feedback`) and the `baselines` against the
    recorded outcomes. `ranker` replaces carlang's ranking (for experiments)."""
    config = config or PlannerConfig()
    rankers: dict[str, Callable[[Task], Ranking]] = {
        "carlang": ranker or (lambda t: _ranking(rank_task(t, config, feedback))),
        "car": car_ranking,
        "fewest_actions": _fewest_actions,
        "random": lambda t: _random(t, seed),
    }
    unknown = set(baselines) - set(BASELINES)
    if unknown:
        raise ValueError(f"unknown baseline(s): {', '.join(sorted(unknown))}")
    chosen = ["carlang", *baselines]
    outcomes = outcomes.resolve(tasks)  # (runs without a task, where their task is clear)
    per: dict[str, list[TaskScore]] = {name: [] for name in chosen}
    unjoined = []
    costed = False
    for task in tasks:
        found = joined(task, outcomes)
        actual = {name: o.success_rate for name, o in found.items()}
        if not actual:
            unjoined.append(task.id)
            continue
        costs = {name: o.mean_cost for name, o in found.items() if o.mean_cost is not None}
        costed = costed or bool(costs)
        for name in chosen:
            score = task_scores(task.id, rankers[name](task), actual, costs)
            assert score is not None
            per[name].append(score)
    return Evaluation(
        [_summarise(name, per[name], resamples, seed) for name in chosen],
        tasks=len(tasks) - len(unjoined),
        unjoined=unjoined,
        runs=sum(o.runs for task in tasks for o in joined(task, outcomes).values()),
        single=uninformative(tasks, outcomes),
        costed=costed,
    )


def render_tasks(evaluation: Evaluation) -> str:
    """Per task: each ranker's winner and metrics (`-` where a correlation is undefined)."""
    costed = evaluation.costed
    lines = [
        f"{'task':<16}{'ranker':<16}{'winner':<20}"
        + "".join(f"{m:>10}" for m in METRICS)
        + (f"{'cost':>10}" if costed else "")
    ]
    for position in range(evaluation.tasks):
        for ranker in evaluation.rankers:
            score = ranker.tasks[position]
            cells = "".join(
                f"{'-' if score.metric(m) is None else format(score.metric(m), '.3f'):>10}"
                for m in (*METRICS, *(("cost",) if costed else ()))
            )
            winner = score.winner + (" (no runs)" if score.top1 is None else "")
            lines.append(f"{score.task:<16}{ranker.name:<16}{winner:<20}{cells}")
    return "\n".join(lines)


def undecided_warning(evaluation: Evaluation, ranker: str = "carlang") -> str | None:
    """A line saying in how many tasks `ranker`'s winner never ran (its top-1 and regret
    there undecided, left out), or None when it ran in every one."""
    [scores] = [r for r in evaluation.rankers if r.name == ranker]
    undecided = [t for t in scores.tasks if t.top1 is None]
    if not undecided:
        return None
    shown = ", ".join(f"{t.task}: {t.winner}" for t in undecided[:3])
    more = f" and {len(undecided) - 3} more" if len(undecided) > 3 else ""
    return (
        f"{ranker}'s winner has no recorded run in {len(undecided)} of {evaluation.tasks}"
        f" task(s) ({shown}{more}): whether it was right is unknown, so its top-1 and regret"
        f" leave those tasks out (record runs of those candidates)"
    )


def render(evaluation: Evaluation) -> str:
    """A text report: one line per ranker, each metric's mean and 95% interval."""
    lines = [
        f"{evaluation.tasks} task(s) joined with {evaluation.runs} recorded run(s)"
        + (f"; no outcome for {len(evaluation.unjoined)}" if evaluation.unjoined else "")
    ]
    header = f"{'ranker':<16}" + "".join(f"{m:>24}" for m in METRICS)
    lines.append(header + (f"{'winner cost':>14}" if evaluation.costed else ""))
    for ranker in evaluation.rankers:
        cells = []
        for metric in METRICS:
            value = ranker.means[metric]
            interval = ranker.intervals[metric]
            text = "-" if value is None else f"{value:.3f}"
            if interval is not None:
                text += f" [{interval[0]:.3f}, {interval[1]:.3f}]"
            cells.append(f"{text:>24}")
        if evaluation.costed:  # (what choosing by this ranker spends per run, on average)
            cost = ranker.mean_cost
            cells.append(f"{'-' if cost is None else format(cost, '.3f'):>14}")
        lines.append(f"{ranker.name:<16}" + "".join(cells))
    undecided = [f"{r.name} {len(r.undecided)}" for r in evaluation.rankers if r.undecided]
    if undecided:
        lines.append(
            "top1 and regret leave out the tasks whose winner never ran: "
            + ", ".join(undecided)
            + " task(s)"
        )
    return "\n".join(lines)
