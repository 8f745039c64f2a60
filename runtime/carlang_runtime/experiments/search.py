"""`search`: planner settings that rank a dataset best against its recorded outcomes.

The space is a TOML table of settings (`load_space`):

    cost_weight = [0.1, 0.2, 0.3]                      # these values
    policy_weight = { min = 0.0, max = 1.0, step = 0.25 }   # a range (grid: every step)
    monte_carlo_weight = { min = 0.0, max = 1.0 }      # random search: drawn uniformly

`grid` tries every point; `random` draws `trials` points (seeded); `optuna` has `trials` points
proposed by Optuna's seeded TPE sampler, each judged on the training tasks before the next
(an optional extra, see `tpe`; it takes a `TRAIN:TEST` split, since under `kfold` the points
it proposes would have learnt from the held-out folds). Each point is judged by the
objective (`top1`, `regret`, lower is better, or `spearman`) on the training tasks; the best
(ties: the earlier point) is reported on the held-out tasks. `split` is `TRAIN:TEST` (a seeded
shuffle of the tasks, e.g. `70:30`) or `kfold K`: then each fold is held out in turn, the best
point on the other folds judged on it (the held-out figure is their mean), and the chosen
config is the best on all tasks.

Speed: the candidates' feature values are computed once per distinct value of the settings
that change them (penalties, targets, trials, seed...); the weights (`cost_weight`, the feature
weights, `feedback_weight`) only combine them, so a point that changes only weights is scored in
closed form, exactly as `rank` scores it. Monte Carlo results are kept across points (they do
not depend on the weights). Points are judged in batches of configs, in parallel over the cores
(`workers`); each batch is a plain, picklable unit of work (`SearchBatch`), which a
`SearchBatchRunner` may run elsewhere: `carlang_dbos` sends them to the DBOS workers.

Ablation: the objective of the chosen config with each feature switched off in turn (its weight
set to 0; `cost` sets `cost_weight` to 0), on the held-out tasks as `test` is: under `kfold`, each
fold's best point with the feature off judged on that fold, and the mean over folds (so `none`
is the held-out figure).
"""

from __future__ import annotations

import itertools
import math
import os
import random
import tomllib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..planner import PlannerConfig, ScoredProposal, SettingError, ToolFeedback
from ..planner.config import (
    cost_target_settings,
    setting_position,
    toml_problem,
    unknown_setting,
)
from ..planner.sweep import MAX_POINTS as MAX_VALUES
from ..planner.sweep import values_in_range
from ..suggest import did_you_mean
from ..textfile import read_input
from .dataset import Task, rank_task
from .evaluate import joined, task_scores
from .metrics import mean
from .outcomes import Outcomes

__all__ = [
    "OBJECTIVES",
    "WEIGHTS",
    "ABLATIONS",
    "Dimension",
    "SearchBatch",
    "SearchBatchRunner",
    "SearchResult",
    "load_space",
    "parse_space",
    "points",
    "split_tasks",
    "search",
    "fixed_by_plans",
]

OBJECTIVES = ("top1", "regret", "spearman", "kendall")
#: The settings that only combine feature values: scored in closed form.
WEIGHTS = (
    "cost_weight",
    "feedback_weight",
    "policy_weight",
    "headroom_weight",
    "reversibility_weight",
    "monte_carlo_weight",
)
#: What `--ablate` switches off, and the weight that does it.
ABLATIONS = {
    "cost": "cost_weight",
    "feedback": "feedback_weight",
    "policy": "policy_weight",
    "headroom": "headroom_weight",
    "reversibility": "reversibility_weight",
    "monte_carlo": "monte_carlo_weight",
}
MAX_POINTS = 100_000
_FEATURE_OF = {
    "feedback_weight": "feedback",
    "policy_weight": "policy",
    "headroom_weight": "headroom",
    "reversibility_weight": "reversibility",
    "monte_carlo_weight": "monte_carlo",
}


@dataclass(frozen=True)
class Dimension:
    """One setting of the space: its values, or a range."""

    name: str
    values: tuple[float, ...] = ()
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    where: str = "space"  # the space's file, for errors

    @property
    def integer(self) -> bool:
        """Whether the setting takes whole numbers (`seed`, `monte_carlo_trials`): its values
        are then ints, and a random draw from a range without a step is a whole number."""
        return PlannerConfig.model_fields[self.name].annotation is int

    def grid(self) -> tuple[float, ...]:
        """Every value a grid tries."""
        if self.values:
            return self.values
        if self.step is None:
            raise SettingError(
                f"{self.where}: {self.name} is a range without a step: a grid needs one"
            )
        count = self.size()
        if self.integer:
            return tuple(int(self.low + i * self.step) for i in range(count))
        return tuple(round(self.low + i * self.step, 10) for i in range(count))

    def size(self) -> int:
        """How many values a range with a step has (min and max included), counted as
        `rank --sweep` counts a range's; a `SettingError` past its limit (`MAX_VALUES`), as
        `--sweep` refuses one: a step that fine is more likely a typo than a search."""
        assert self.step is not None
        count = values_in_range(self.low, self.high, self.step)
        if count is None or count > MAX_VALUES:
            many = f"{count} values" if count is not None else "more values than can be counted"
            raise SettingError(
                f"{self.where}: {self.name}: min {self.low:g} to max {self.high:g} by step"
                f" {self.step:g} is {many}; at most {MAX_VALUES}: raise the step or narrow min"
                " and max (or leave the step out and search with --method random)"
            )
        return count

    def draw(self, rng: random.Random) -> float:
        """One value for a random search."""
        if self.values:
            return rng.choice(self.values)
        if self.step is not None:
            return rng.choice(self.grid())
        if self.integer:
            return rng.randint(int(self.low), int(self.high))
        return round(rng.uniform(self.low, self.high), 10)


def parse_space(
    document: Mapping[str, Any], where: str = "space", text: str | None = None
) -> list[Dimension]:
    """The dimensions of a space document (see the module's docstring); `text`, its TOML,
    places a setting's error at its `file:line:col`."""

    def at(name: str) -> str:
        position = setting_position(text, name, toml=True) if text is not None else None
        return f"{where}:{position}" if position else where

    table = document.get("space", document)
    if not isinstance(table, Mapping) or not table:
        raise SettingError(f"{where}: the space names no setting")
    dimensions = []
    for name, spec in table.items():
        problem = unknown_setting(name)
        if problem is not None:
            raise SettingError(f"{at(name)}: {problem}")
        integer = PlannerConfig.model_fields[name].annotation is int
        if isinstance(spec, list) and spec and all(_is_number(v) for v in spec):
            if integer and not all(float(v).is_integer() for v in spec):
                raise SettingError(f"{at(name)}: {name} takes whole numbers, like [100, 200]")
            number = int if integer else float
            dimension = Dimension(name, values=tuple(number(v) for v in spec), where=at(name))
        elif (
            isinstance(spec, Mapping)
            and _is_number(spec.get("min"))
            and _is_number(spec.get("max"))
        ):
            extra = sorted(set(spec) - {"min", "max", "step"})
            if extra:  # `stpe = 0.1` would quietly search without a step
                hint = did_you_mean(extra[0], ("min", "max", "step"), "")
                raise SettingError(
                    f"{at(name)}: {name}: no `{extra[0]}` in a range"
                    + (f" ({hint})" if hint else " (it takes min, max and step)")
                )
            step = spec.get("step")
            if step is not None and (not _is_number(step) or step <= 0):
                raise SettingError(f"{at(name)}: {name}: step must be a number above 0")
            if spec["max"] < spec["min"]:
                raise SettingError(f"{at(name)}: {name}: max is below min")
            if integer and not all(float(spec.get(k, 1)).is_integer() for k in spec):
                raise SettingError(
                    f"{at(name)}: {name} takes whole numbers: min, max and step must be whole"
                )
            dimension = Dimension(
                name, low=float(spec["min"]), high=float(spec["max"]), step=step, where=at(name)
            )
            if step is not None:
                dimension.size()  # refused before any value is made
        else:
            raise SettingError(
                f"{at(name)}: {name}: write a list of numbers"
                " or { min = .., max = .., step = .. }"
            )
        for value in dimension.values or (dimension.low, dimension.high):
            try:
                PlannerConfig().with_settings({name: int(value) if integer else value})
            except SettingError as exc:  # out of range
                raise SettingError(f"{at(name)}: {exc}") from None
        dimensions.append(dimension)
    return dimensions


def load_space(path: Path) -> list[Dimension]:
    """A space from a TOML file; raises `SettingError` saying what is wrong."""
    text = read_input(path)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingError(toml_problem(path, text, exc, "invalid TOML")) from None
    return parse_space(document, str(path), text)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def points(
    dimensions: Sequence[Dimension], method: str, trials: int, seed: int
) -> list[dict[str, float]]:
    """The settings to try: every grid point, or `trials` seeded random draws."""
    if method == "grid":
        size = math.prod(len(d.grid()) for d in dimensions)
        if size > MAX_POINTS:
            raise SettingError(f"the grid has {size} points; at most {MAX_POINTS}")
        return [
            dict(zip((d.name for d in dimensions), values, strict=True))
            for values in itertools.product(*(d.grid() for d in dimensions))
        ]
    if method == "random":
        if not 1 <= trials <= MAX_POINTS:
            raise SettingError(f"--trials must be between 1 and {MAX_POINTS}")
        rng = random.Random(seed)
        return [{d.name: d.draw(rng) for d in dimensions} for _ in range(trials)]
    raise SettingError(f"unknown search method '{method}' (grid, random or optuna)")


def split_tasks(
    tasks: Sequence[Task], split: str, seed: int
) -> list[tuple[list[Task], list[Task]]]:
    """(train, test) pairs: one for `TRAIN:TEST`, K for `kfold K` (seeded shuffles). A
    `SettingError` for a split that is not one, or whose part is 0 or less."""
    order = list(tasks)
    random.Random(seed).shuffle(order)
    text = split.strip()
    if text.startswith("kfold"):
        return _folds(order, split, text[5:])
    cut = _cut(len(order), _train_share(split))
    return [(order[:cut], order[cut:])]


def _folds(order: list[Task], split: str, k_text: str) -> list[tuple[list[Task], list[Task]]]:
    """`kfold K`'s (train, test) pairs: each of K folds held out in turn."""
    try:
        k = int(k_text.strip())
    except ValueError:
        raise SettingError(f"--split {split}: write kfold K, like kfold 5") from None
    if not 2 <= k <= len(order):
        raise SettingError(f"--split {split}: K must be between 2 and the tasks ({len(order)})")
    folds = [order[i::k] for i in range(k)]
    return [([t for j, f in enumerate(folds) if j != i for t in f], folds[i]) for i in range(k)]


def _train_share(split: str) -> float:
    """The share of the tasks `TRAIN:TEST` trains on. Both parts must be finite and above 0:
    a part of 0 leaves it empty (100:0 searched with nothing held out), and nan or inf made
    the share nan (an internal error)."""
    train_text, sep, test_text = split.strip().partition(":")
    usage = f"--split {split}: write TRAIN:TEST with two numbers (like 70:30) or kfold K"
    try:
        train, test = float(train_text), float(test_text)
    except ValueError:
        raise SettingError(usage) from None
    if not sep or not math.isfinite(train) or not math.isfinite(test):
        raise SettingError(usage)
    if train <= 0:
        raise SettingError(
            f"--split {split}: the train part is {train:g}, so there would be nothing to search"
            " on; give both parts above 0 (like 70:30)"
        )
    if test <= 0:
        raise SettingError(
            f"--split {split}: the test part is {test:g}, so no task would be held out; give"
            " both parts above 0 (like 70:30), or kfold K to choose on every task and still"
            " report held-out figures"
        )
    return 1 / (1 + test / train)  # (not train / (train + test): the sum may overflow)


def _cut(count: int, share: float) -> int:
    """Where `count` shuffled tasks are cut: the nearest to `share` that leaves each part a
    task (95:5 of 10 tasks rounded the test part to none), except that a single task can only
    be trained on."""
    return min(max(round(count * share), 1), max(count - 1, 1))


# -- scoring in closed form -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Candidate:
    name: str
    valid: bool
    actions: int
    index: int
    validity: float
    efficiency: float
    values: tuple[tuple[str, float], ...]  # (feature, value) for the features present


@dataclass(frozen=True, slots=True)
class _TaskFeatures:
    task: str
    candidates: tuple[_Candidate, ...]
    actual: tuple[tuple[str, float], ...]
    plan_settings: tuple[tuple[str, Any], ...]  # the plan's own weights, which win


def _values(scored: ScoredProposal) -> tuple[tuple[str, float], ...]:
    present = []
    if "feedback" in scored.factors:
        present.append(("feedback", scored.historical_confidence))
    present.append(("policy", scored.policy_compliance))
    if scored.budget_headroom is not None:
        present.append(("headroom", scored.budget_headroom))
    present.append(("reversibility", scored.reversibility))
    if scored.monte_carlo_success is not None:
        present.append(("monte_carlo", scored.monte_carlo_success))
    return tuple(present)


def _features(
    tasks: Sequence[Task],
    base: PlannerConfig,
    feedback: ToolFeedback | None,
    outcomes: Any,
    cache: dict[tuple[Any, ...], Any],
) -> list[_TaskFeatures]:
    # Scored with every weight on, so that every value is computed (Monte Carlo runs only
    # when its weight is above 0); the weights are applied afterwards.
    full = base.with_settings({name: 1.0 for name in _FEATURE_OF} | {"cost_weight": 0.5})
    out = []
    for task in tasks:
        actual = {name: o.success_rate for name, o in joined(task, outcomes).items()}
        if not actual:
            continue
        ranked = rank_task(task, full.with_settings(_plan_non_weights(task)), feedback, cache)
        ranked.sort(key=lambda s: s.index)
        out.append(
            _TaskFeatures(
                task.id,
                tuple(
                    _Candidate(
                        s.proposal_id,
                        s.valid,
                        s.action_count,
                        s.index,
                        s.validity,
                        s.cost_efficiency,
                        _values(s),
                    )
                    for s in ranked
                ),
                tuple(actual.items()),
                tuple(_plan_weights(task).items()),
            )
        )
    return out


def _plan_settings(task: Task) -> dict[str, Any]:
    if task.plan is None:
        return {}
    settings: dict[str, Any] = dict(task.plan.settings)
    if task.plan.cost_target is not None:
        settings.update(cost_target_settings(task.plan.cost_target))
    return settings


def fixed_by_plans(tasks: Sequence[Task], names: Sequence[str]) -> dict[str, list[str]]:
    """For each setting of `names` that some task's plan sets itself (its `cost_weight`,
    `target` or `set` lines), the ids of those tasks. A plan's own settings win over the
    search's point, as they win over `--config` (the search judges what `rank --config`
    will do with the config it writes), so there the setting is not searched."""
    fixed: dict[str, list[str]] = {}
    for task in tasks:
        for name in _plan_settings(task).keys() & set(names):
            fixed.setdefault(name, []).append(task.id)
    return {name: fixed[name] for name in names if name in fixed}


def _check_searchable(tasks: Sequence[Task], dimensions: Sequence[Dimension]) -> None:
    """Refuse a searched setting that every task's plan sets itself: no point changes it."""
    fixed = fixed_by_plans(tasks, [d.name for d in dimensions])
    for name, ids in fixed.items():
        if len(ids) == len(tasks):
            shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
            raise SettingError(
                f"space: {name} is set by the plan of every task ({shown}), and a plan's own "
                f"settings win over the search's point (as over --config): no point would "
                f"change it; take {name} out of the space, or out of the plan"
            )


def _plan_weights(task: Task) -> dict[str, Any]:
    return {k: v for k, v in _plan_settings(task).items() if k in WEIGHTS}


def _plan_non_weights(task: Task) -> dict[str, Any]:
    return {k: v for k, v in _plan_settings(task).items() if k not in WEIGHTS}


def _score(candidate: _Candidate, weights: Mapping[str, float]) -> float:
    if not candidate.valid:
        return 0.0
    cost = weights["cost_weight"]
    score = candidate.validity * (1.0 - cost) + candidate.efficiency * cost
    for feature, value in candidate.values:
        weight = weights[feature]
        score *= 1.0 - weight + weight * value
    return score


def _weights(config: Mapping[str, Any]) -> dict[str, float]:
    out = {"cost_weight": float(config["cost_weight"])}
    for name, feature in _FEATURE_OF.items():
        out[feature] = float(config[name])
    return out


def _objective_on(
    features: Sequence[_TaskFeatures], settings: Mapping[str, Any], objective: str
) -> float | None:
    values = []
    for task in features:
        weights = _weights({**settings, **dict(task.plan_settings)})
        scored = [(c, _score(c, weights)) for c in task.candidates]
        scored.sort(key=lambda item: (not item[0].valid, -item[1], item[0].actions, item[0].index))
        ranking = [(c.name, s) for c, s in scored]
        result = task_scores(task.task, ranking, dict(task.actual))
        if result is not None:
            values.append(result.metric(objective))
    value = mean(values)
    if value is not None and objective == "regret":
        return -value  # maximised
    return value


@dataclass(frozen=True)
class SearchBatch:
    """A batch of configs (full settings) judged on one feature table: the search's unit of
    work, plain data that a process pool pickles and `to_document` turns into JSON for other
    machines (the DBOS workers)."""

    features: tuple[_TaskFeatures, ...]
    configs: tuple[dict[str, Any], ...]
    objective: str

    def run(self) -> list[float | None]:
        """Each config's objective on the feature table (None: no task could be judged)."""
        return [_objective_on(self.features, config, self.objective) for config in self.configs]

    def to_document(self) -> dict[str, Any]:
        """As JSON data (`from_document` reads it back, exactly)."""
        return {
            "features": [
                {
                    "task": row.task,
                    "candidates": [
                        [c.name, c.valid, c.actions, c.index, c.validity, c.efficiency, c.values]
                        for c in row.candidates
                    ],
                    "actual": row.actual,
                    "plan_settings": row.plan_settings,
                }
                for row in self.features
            ],
            "configs": list(self.configs),
            "objective": self.objective,
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> SearchBatch:
        """A batch written by `to_document`."""
        return cls(
            tuple(
                _TaskFeatures(
                    row["task"],
                    tuple(
                        _Candidate(name, valid, actions, index, validity, efficiency, _pairs(v))
                        for name, valid, actions, index, validity, efficiency, v in row[
                            "candidates"
                        ]
                    ),
                    _pairs(row["actual"]),
                    _pairs(row["plan_settings"]),
                )
                for row in document["features"]
            ),
            tuple(dict(config) for config in document["configs"]),
            document["objective"],
        )


def _pairs(items: Sequence[Sequence[Any]]) -> tuple[tuple[Any, Any], ...]:
    return tuple((name, value) for name, value in items)


#: Runs a search's batches somewhere else (on the DBOS workers, say: `carlang_dbos`), their
#: results in order; by default they run here, over a process pool.
SearchBatchRunner = Callable[[Sequence[SearchBatch]], Sequence[Sequence[float | None]]]


def _run_batch(batch: SearchBatch) -> list[float | None]:
    return batch.run()


# -- the search --------------------------------------------------------------------------------


@dataclass
class SearchResult:
    """What a search found."""

    objective: str
    method: str
    tried: list[dict[str, Any]]  # settings, train (and per fold) objective
    best: dict[str, float]
    config: PlannerConfig
    train: float | None
    test: float | None
    folds: int
    ablation: dict[str, float | None] = field(default_factory=dict)
    #: For each feature whose weight is 0 at the best point its ablation judged (each
    #: fold's, under kfold), at how many of them: turned off where it is off already, it
    #: changes nothing there (at all of them, its figure is the `none` one).
    already_off: dict[str, int] = field(default_factory=dict)
    #: How many best points the ablation judged: one, or one per fold that had outcomes to
    #: train on (a fold without is not judged).
    ablation_points: int = 0
    #: Each fold's tasks (ids), as the seeded split made them: `train` searched on, `test`
    #: held out (empty with one task), so that a result can be checked and reproduced.
    splits: list[dict[str, list[str]]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """As JSON data."""
        return {
            "objective": self.objective,
            "method": self.method,
            "best": self.best,
            "train": self.train,
            "test": self.test,
            "folds": self.folds,
            "ablation": self.ablation,
            "ablation_already_off": self.already_off,
            "ablation_points": self.ablation_points,
            "splits": self.splits,
            "tried": self.tried,
            "config": self.config.model_dump(),
        }


#: How much better an objective must be to count as better: means of the same figures
#: summed in another order differ in their last bits (0.05238095238095237 against ...236),
#: and a tie goes to the earlier point, not to the rounding.
_TIE = 1e-9


def _better(value: float | None, than: float | None) -> bool:
    if value is None or than is None:
        return value is not None
    return value > than + (_TIE * max(1.0, abs(than)) if math.isfinite(than) else 0.0)


def _signed(value: float | None, objective: str) -> float | None:
    return -value if value is not None and objective == "regret" else value


class _Judge:
    """Judges settings on task subsets, caching feature tables and Monte Carlo results."""

    def __init__(
        self,
        tasks: Sequence[Task],
        outcomes: Any,
        base: PlannerConfig,
        feedback: ToolFeedback | None,
        objective: str,
        workers: int,
        batch: int,
        runner: SearchBatchRunner | None = None,
    ) -> None:
        self.tasks, self.outcomes, self.base, self.feedback = tasks, outcomes, base, feedback
        self.objective, self.workers, self.batch = objective, workers, batch
        self.runner = runner
        self.cache: dict[tuple[Any, ...], Any] = {}
        self.tables: dict[tuple[Any, ...], dict[str, _TaskFeatures]] = {}

    def table(self, settings: Mapping[str, Any]) -> dict[str, _TaskFeatures]:
        key = tuple(sorted((k, v) for k, v in settings.items() if k not in WEIGHTS))
        found = self.tables.get(key)
        if found is None:
            base = self.base.with_settings(dict(key))
            rows = _features(self.tasks, base, self.feedback, self.outcomes, self.cache)
            found = self.tables[key] = {row.task: row for row in rows}
        return found

    def judge(
        self, settings_list: Sequence[Mapping[str, Any]], subset: Sequence[Task]
    ) -> list[float | None]:
        names = [t.id for t in subset]
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, settings in enumerate(settings_list):
            key = tuple(sorted((k, v) for k, v in settings.items() if k not in WEIGHTS))
            groups.setdefault(key, []).append(i)
        results: list[float | None] = [None] * len(settings_list)
        jobs: list[SearchBatch] = []
        slots = []
        for key, members in groups.items():
            table = self.table(dict(key))
            features = [table[name] for name in names if name in table]
            for start in range(0, len(members), self.batch):
                chunk = members[start : start + self.batch]
                configs = [
                    self.base.with_settings(dict(settings_list[i])).model_dump() for i in chunk
                ]
                jobs.append(SearchBatch(tuple(features), tuple(configs), self.objective))
                slots.append(chunk)
        answers: Sequence[Sequence[float | None]]
        if self.runner is not None:
            answers = self.runner(jobs)
        elif self.workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(max_workers=self.workers) as pool:
                answers = list(pool.map(_run_batch, jobs))
        else:
            answers = [job.run() for job in jobs]
        for chunk, answer in zip(slots, answers, strict=True):
            for i, value in zip(chunk, answer, strict=True):
                results[i] = value
        return results


def search(
    tasks: Sequence[Task],
    outcomes: Outcomes,
    dimensions: Sequence[Dimension],
    *,
    base: PlannerConfig | None = None,
    feedback: ToolFeedback | None = None,
    method: str = "grid",
    trials: int = 50,
    split: str = "50:50",
    objective: str = "top1",
    seed: int = 0,
    ablate: bool = False,
    workers: int | None = None,
    batch: int = 64,
    runner: SearchBatchRunner | None = None,
) -> SearchResult:
    """Search the space for the settings that maximise `objective` on the training tasks and
    report them on the held-out ones (see the module's docstring). Deterministic for a seed,
    whatever `workers`; `runner` runs the batches of configs elsewhere (the same results)."""
    if objective not in OBJECTIVES:
        raise SettingError(f"unknown objective '{objective}' ({', '.join(OBJECTIVES)})")
    base = base or PlannerConfig()
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if batch < 1:
        raise SettingError("--batch must be at least 1")
    outcomes = outcomes.resolve(tasks)  # (runs without a task, where their task is clear)
    _check_searchable([t for t in tasks if joined(t, outcomes)], dimensions)
    judge = _Judge(tasks, outcomes, base, feedback, objective, workers, batch, runner)
    parts = split_tasks(tasks, split, seed)
    if method == "optuna":
        tried_settings = _optuna_points(dimensions, trials, seed, judge, parts)
    else:
        tried_settings = points(dimensions, method, trials, seed)
    tried: list[dict[str, Any]] = [{"settings": s} for s in tried_settings]
    held_out = []
    fold_bests: list[tuple[dict[str, Any], list[Task]]] = []  # (a fold's best, its held-out)
    for train, test in parts:
        values = judge.judge(tried_settings, train)
        best_index = _best(values)
        for entry, value in zip(tried, values, strict=True):
            entry.setdefault("train", []).append(_signed(value, objective))
        if best_index is not None and test:
            [value] = judge.judge([tried_settings[best_index]], test)
            held_out.append(_signed(value, objective))
            fold_bests.append((tried_settings[best_index], test))
            if len(parts) == 1:
                tried[best_index]["test"] = held_out[-1]
    if len(parts) == 1:
        final_values = [entry["train"][0] for entry in tried]
        best_index = _best([_signed(v, objective) for v in final_values])
    else:
        every = judge.judge(tried_settings, tasks)
        best_index = _best(every)
        for entry, value in zip(tried, every, strict=True):
            entry["all"] = _signed(value, objective)
    if best_index is None:
        raise SettingError("no task has recorded outcomes: nothing to search on")
    best = dict(tried_settings[best_index])
    config = base.with_settings(best)
    train_value = tried[best_index]["train"][0] if len(parts) == 1 else tried[best_index]["all"]
    result = SearchResult(
        objective=objective,
        method=method,
        tried=tried,
        best=best,
        config=config,
        train=train_value,
        test=mean(held_out) if held_out else None,
        folds=len(parts),
        splits=[
            {"train": [t.id for t in train], "test": [t.id for t in test]} for train, test in parts
        ],
    )
    if ablate:
        # On the held-out tasks, as `test` is: each fold's best point with each feature off,
        # judged on that fold, then the mean over folds (a single task: only trained on).
        folds: list[list[float | None]] = []
        chosen = fold_bests or [(best, list(tasks))]
        for settings, held in chosen:
            variants = [settings] + [{**settings, weight: 0.0} for weight in ABLATIONS.values()]
            folds.append([_signed(v, objective) for v in judge.judge(variants, held)])
        for position, name in enumerate(["none", *ABLATIONS]):
            result.ablation[name] = mean([fold[position] for fold in folds])
        result.ablation_points = len(chosen)
        for name, weight in ABLATIONS.items():
            off = sum(getattr(base.with_settings(point), weight) == 0 for point, _ in chosen)
            if off:
                result.already_off[name] = off
    return result


def _optuna_points(
    dimensions: Sequence[Dimension],
    trials: int,
    seed: int,
    judge: _Judge,
    parts: Sequence[tuple[list[Task], list[Task]]],
) -> list[dict[str, Any]]:
    from .tpe import tpe_points

    if len(parts) != 1:
        raise SettingError(
            "--method optuna takes a TRAIN:TEST split (like 70:30), not kfold: the points it "
            "proposes learn from the objective, so under kfold they would have seen the "
            "held-out folds"
        )
    if not 1 <= trials <= MAX_POINTS:
        raise SettingError(f"--trials must be between 1 and {MAX_POINTS}")
    train = parts[0][0]
    return tpe_points(dimensions, trials, seed, lambda settings: judge.judge([settings], train)[0])


def _best(values: Sequence[float | None]) -> int | None:
    best: int | None = None
    for i, value in enumerate(values):
        if _better(value, values[best] if best is not None else None):
            best = i
    return best
