"""`simulate_monte_carlo`: how often a plan gets through, when tools fail at their known rates.

Each trial walks the DAG level by level as the runtime does. A tool call succeeds with its
tool's success rate per attempt, over `max_retries + 1` attempts when its failure behaviour is
`retry`. A failure, or a rejection (a precondition or state dependency the plan's state does
not meet, because what was to write it failed), aborts the run when the action's behaviour is
`abort` or `retry`, and is passed over when it is `skip`; an abort rolls back every success of
the trial. An action that runs `after` one that did not succeed is passed over, as the runtime skips
it. State writes, reads and assertions are decided by the state, as at run time. A level
holding an `abort` action runs in order (an abort stops the rest of it); any other level's
actions see the state the level started from. No tool is called.

With feedback it simulates more of what the runtime does: each call's rate is its parameter
pattern's where the log shows one differs (`ToolFeedback.action_success_rate`); an action a
policy will ask approval for is granted at the policy's learned grant rate (a refusal is a
rejection: never retried); and with a duration budget, each attempt takes its tool's learned mean
duration, a level as long as its slowest action, and an action that would start after the budget
is spent is skipped, which stops the run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..columns import ASSERTION, TOOL_CALL, Columns
from ..dag import build_dag
from ..ir import ActionProposal, FailureBehavior, load_proposal
from ..precondition import check_assertion
from ..verify.state import apply_effects, is_blocked
from .feedback import ToolFeedback

__all__ = [
    "MonteCarloResult",
    "simulate_monte_carlo",
    "UNKNOWN_TOOL_RATE",
    "BATCH_TRIALS",
    "BatchCounts",
    "BatchRunner",
    "MonteCarloJob",
    "run_batches",
]

#: The success rate of a tool no rate is given for (CAR's planner: 0.5).
UNKNOWN_TOOL_RATE: Final = 0.5

# What one action needs per trial: nothing (it always works), one random draw, or the state.
_ALWAYS, _DRAW, _GENERAL = 0, 1, 2


@dataclass(frozen=True, slots=True)
class MonteCarloResult:
    """What `trials` simulated runs of one proposal came to."""

    trials: int
    seed: int | None
    #: Runs that did not abort (every failure was one the plan tolerates with `skip`).
    success_rate: float
    #: Runs in which every action succeeded.
    full_success_rate: float
    #: The mean share of actions that succeeded and were kept (an aborted run keeps none).
    mean_completion: float
    #: Per action id: the share of runs in which it succeeded and was kept.
    action_success: dict[str, float]
    #: Per action id: how many runs it aborted, most first.
    abort_causes: dict[str, int]


@dataclass(slots=True)
class _Plan:
    levels: list[tuple[list[int], bool]]  # (positions, runs in order)
    mode: list[int]
    chance: list[float]  # per action: the chance that a _DRAW/_GENERAL tool call succeeds
    stops: list[bool]  # a failure or rejection aborts the run
    tracks_state: bool
    # Only with a duration budget: per action, the approval chance, the per-attempt rate,
    # the attempts allowed and one attempt's duration.
    gate: list[float]
    rate: list[float]
    attempts: list[int]
    duration: list[float]
    budget_ms: float | None = None
    #: Per action: the positions it runs `after`; it is passed over (not a failure) unless
    #: all of them succeeded, as the runtime skips it. None when no action has any.
    after: list[list[int]] | None = None


def _plan(
    cols: Columns,
    rate_of: Callable[[int], float],
    gate: list[float],
    durations: list[float],
    budget_ms: float | None,
) -> _Plan:
    actions = cols.actions
    n = len(actions)
    mode, chance, stops = [_ALWAYS] * n, [1.0] * n, [False] * n
    rates, tries = [1.0] * n, [1] * n
    tracks_state = False
    for i, action in enumerate(actions):
        behaviour = action.failure_behavior
        stops[i] = behaviour is not FailureBehavior.SKIP
        checks = bool(cols.preconditions[i] or cols.dependencies[i])
        kind = cols.types[i]
        if kind is TOOL_CALL:
            rate = rates[i] = min(max(rate_of(i), 0.0), 1.0)
            attempts = tries[i] = (
                action.max_retries + 1 if behaviour is FailureBehavior.RETRY else 1
            )
            chance[i] = 1.0 - (1.0 - rate) ** attempts
            mode[i] = _DRAW
        if gate[i] < 1.0:  # approved or refused once, before any attempt
            chance[i] *= gate[i]
            mode[i] = max(mode[i], _DRAW)
        if checks or kind is ASSERTION:
            mode[i] = _GENERAL
            tracks_state = True
    dag = build_dag(cols)
    abort = FailureBehavior.ABORT
    levels = [
        (level, len(level) == 1 or any(actions[i].failure_behavior is abort for i in level))
        for level in dag.levels
    ]
    position = {action.id: i for i, action in enumerate(actions)}
    after = [[position[d] for d in a.depends_on if d in position] for a in actions]
    return _Plan(
        levels,
        mode,
        chance,
        stops,
        tracks_state,
        gate,
        rates,
        tries,
        durations,
        budget_ms,
        after if any(after) else None,
    )


def simulate_monte_carlo(
    proposal: ActionProposal | Mapping[str, Any] | str,
    tool_success_rates: Mapping[str, float] | ToolFeedback,
    trials: int = 1000,
    seed: int | None = None,
    *,
    state: Mapping[str, Any] | None = None,
    unknown_rate: float = UNKNOWN_TOOL_RATE,
    approvals: Mapping[int, Sequence[str]] | None = None,
    budget_ms: float | None = None,
    unknown_approval_rate: float = 1.0,
    batches: BatchRunner | None = None,
) -> MonteCarloResult:
    """Run `trials` simulated executions of `proposal` from `state`, tools failing at
    `tool_success_rates` (per attempt; `unknown_rate` for a tool not listed; with
    `ToolFeedback`, per parameter pattern where it knows one). `approvals`: per action
    position, the policies that will ask approval for it, each granted at its learned rate
    (`unknown_approval_rate` when the feedback has none). `budget_ms`: the duration budget,
    spent at the tools' learned mean durations. The same `seed` gives the same result.

    The trials run in batches of `BATCH_TRIALS`, each from its own seeded random stream
    (`MonteCarloJob`), so that `batches` (a `BatchRunner`: by default one after the other,
    here) may run them anywhere, in any order, and the result stays the same."""
    if trials < 1:
        raise ValueError("trials must be at least 1")
    prop = proposal if isinstance(proposal, ActionProposal) else load_proposal(proposal)
    job = MonteCarloJob(
        prop,
        tool_success_rates,
        trials,
        seed,
        dict(state or {}),
        unknown_rate,
        {int(i): list(p) for i, p in (approvals or {}).items()},
        budget_ms,
        unknown_approval_rate,
    )
    return job.combine((batches or run_batches)(job))


#: Trials per batch: each batch draws from its own stream (the first from `Random(seed)`, as a
#: single-batch estimate always has), so a large estimate splits over processes unchanged.
BATCH_TRIALS: Final = 10_000


@dataclass(frozen=True, slots=True)
class BatchCounts:
    """What one batch of trials counted (summed over batches, they make the result)."""

    trials: int
    kept: list[int]  # per action position: trials in which it succeeded and was kept
    aborts: dict[int, int]  # per action position: trials it aborted
    completed: int  # actions kept, over every trial
    full: int  # trials in which every action succeeded

    def to_document(self) -> dict[str, Any]:
        """As JSON data (`from_document` reads it back)."""
        return {
            "trials": self.trials,
            "kept": self.kept,
            "aborts": [[i, n] for i, n in self.aborts.items()],
            "completed": self.completed,
            "full": self.full,
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> BatchCounts:
        """Counts written by `to_document`."""
        return cls(
            int(document["trials"]),
            [int(n) for n in document["kept"]],
            {int(i): int(n) for i, n in document["aborts"]},
            int(document["completed"]),
            int(document["full"]),
        )


@dataclass(frozen=True)
class MonteCarloJob:
    """One Monte Carlo estimate as plain inputs: split into batches (`batch_sizes`), each run
    on its own (`run_batch`, anywhere: `to_document` ships it), the counts combined
    (`combine`) into exactly the result of running them here one after the other."""

    proposal: ActionProposal
    rates: Mapping[str, float] | ToolFeedback
    trials: int
    seed: int | None
    state: dict[str, Any]
    unknown_rate: float
    approvals: dict[int, list[str]]
    budget_ms: float | None
    unknown_approval_rate: float

    def batch_sizes(self) -> list[int]:
        """The trials of each batch, in order."""
        full, rest = divmod(self.trials, BATCH_TRIALS)
        return [BATCH_TRIALS] * full + ([rest] if rest else [])

    def run_batch(self, index: int) -> BatchCounts:
        """Run batch `index` (its trials, from its own stream)."""
        feedback = self.rates if isinstance(self.rates, ToolFeedback) else None
        cols = Columns.of(self.proposal.actions)
        plan = _plan(
            cols,
            _rates(self.proposal, self.rates, self.unknown_rate),
            _gates(len(cols.actions), self.approvals, feedback, self.unknown_approval_rate),
            _durations(self.proposal, feedback) if self.budget_ms is not None else [],
            self.budget_ms if feedback is not None and feedback.has_durations else None,
        )
        return _count(plan, cols, self.state, self.batch_sizes()[index], _stream(self.seed, index))

    def combine(self, counts: Sequence[BatchCounts]) -> MonteCarloResult:
        """The result of every batch's counts (in batch order)."""
        ids = [action.id for action in self.proposal.actions]
        n, trials = len(ids), self.trials
        kept = [0] * n
        aborts: dict[int, int] = {}
        completed = full = 0
        for batch in counts:
            for i, count in enumerate(batch.kept):
                kept[i] += count
            for i, count in batch.aborts.items():
                aborts[i] = aborts.get(i, 0) + count
            completed += batch.completed
            full += batch.full
        ok = trials - sum(aborts.values())
        return MonteCarloResult(
            trials=trials,
            seed=self.seed,
            success_rate=ok / trials,
            full_success_rate=full / trials,
            mean_completion=completed / (trials * n) if n else 1.0,
            action_success={ids[i]: kept[i] / trials for i in range(n)},
            abort_causes={
                ids[i]: count for i, count in sorted(aborts.items(), key=lambda item: -item[1])
            },
        )

    def to_document(self) -> dict[str, Any]:
        """The job as JSON data (`from_document` reads it back)."""
        rates = self.rates
        return {
            "proposal": self.proposal.model_dump(mode="json"),
            "rates": rates.to_document() if isinstance(rates, ToolFeedback) else dict(rates),
            "feedback": isinstance(rates, ToolFeedback),
            "trials": self.trials,
            "seed": self.seed,
            "state": self.state,
            "unknown_rate": self.unknown_rate,
            "approvals": [[i, p] for i, p in self.approvals.items()],
            "budget_ms": self.budget_ms,
            "unknown_approval_rate": self.unknown_approval_rate,
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> MonteCarloJob:
        """A job written by `to_document`."""
        rates = document["rates"]
        return cls(
            ActionProposal.model_validate(document["proposal"]),
            ToolFeedback.from_document(rates) if document["feedback"] else dict(rates),
            int(document["trials"]),
            document["seed"],
            dict(document["state"]),
            float(document["unknown_rate"]),
            {int(i): list(p) for i, p in document["approvals"]},
            document["budget_ms"],
            float(document["unknown_approval_rate"]),
        )


#: Runs a job's batches, wherever: their counts, in batch order.
BatchRunner = Callable[[MonteCarloJob], Sequence[BatchCounts]]


def run_batches(job: MonteCarloJob) -> list[BatchCounts]:
    """The in-process `BatchRunner`: every batch here, one after the other."""
    return [job.run_batch(index) for index in range(len(job.batch_sizes()))]


def _stream(seed: int | None, index: int) -> Callable[[], float]:
    """Batch `index`'s random draws: the first batch's from `Random(seed)`, the others' from
    a seed derived from both (a string seed is hashed the same way in every process)."""
    if index == 0 or seed is None:
        return random.Random(seed).random
    return random.Random(f"carlang-monte-carlo:{seed}:{index}").random


def _count(
    plan: _Plan, cols: Columns, state: Mapping[str, Any], trials: int, draw: Callable[[], float]
) -> BatchCounts:
    n = len(plan.mode)
    kept = [0] * n
    aborts: dict[int, int] = {}
    completed = full = 0
    initial = dict(state)
    trial = _timed_trial if plan.budget_ms is not None else _trial
    for _ in range(trials):
        live = dict(initial) if plan.tracks_state else initial
        done, cause = trial(plan, cols, live, draw)
        if cause is not None:
            aborts[cause] = aborts.get(cause, 0) + 1
            continue
        for i in done:
            kept[i] += 1
        completed += len(done)
        if len(done) == n:
            full += 1
    return BatchCounts(trials, kept, aborts, completed, full)


def _trial(
    plan: _Plan, cols: Columns, live: dict[str, Any], draw: Any
) -> tuple[list[int], int | None]:
    """One run: the positions that succeeded, and the one that aborted it (or None)."""
    mode, chance, stops, tracks = plan.mode, plan.chance, plan.stops, plan.tracks_state
    after = plan.after
    kept = [False] * len(mode) if after is not None else None
    done: list[int] = []
    for level, in_order in plan.levels:
        if in_order:
            for i in level:
                if kept is not None and not _ready(after, kept, i):
                    continue
                m = mode[i]
                if m is _ALWAYS or (m is _DRAW and draw() < chance[i]):
                    ok = True
                elif m is _DRAW:
                    ok = False
                else:
                    ok = _decide(cols, i, live, chance[i], draw)
                if ok:
                    done.append(i)
                    if kept is not None:
                        kept[i] = True
                    if tracks:
                        apply_effects(cols, i, live)
                elif stops[i]:
                    return done, i
            continue
        # Side by side: every action sees the state the level starts from.
        outcomes = [
            (i, True if mode[i] is _ALWAYS else _decide(cols, i, live, chance[i], draw))
            for i in level
            if kept is None or _ready(after, kept, i)
        ]
        cause = None
        for i, ok in outcomes:
            if ok:
                done.append(i)
                if kept is not None:
                    kept[i] = True
                if tracks:
                    apply_effects(cols, i, live)
            elif stops[i] and cause is None:
                cause = i
        if cause is not None:
            return done, cause
    return done, None


def _rates(
    proposal: ActionProposal,
    rates: Mapping[str, float] | ToolFeedback,
    unknown_rate: float,
) -> Callable[[int], float]:
    actions = proposal.actions
    if isinstance(rates, ToolFeedback):
        feedback = rates

        def learned(i: int) -> float:
            rate = feedback.action_success_rate(actions[i].tool or "", actions[i].parameters)
            return unknown_rate if rate is None else rate

        return learned
    return lambda i: rates.get(actions[i].tool or "", unknown_rate)


def _gates(
    n: int,
    approvals: Mapping[int, Sequence[str]] | None,
    feedback: ToolFeedback | None,
    unknown_approval_rate: float,
) -> list[float]:
    gate = [1.0] * n
    for i, policies in (approvals or {}).items():
        for policy in policies:
            rate = feedback.approval_rate(policy) if feedback is not None else None
            gate[i] *= unknown_approval_rate if rate is None else rate
    return gate


def _durations(proposal: ActionProposal, feedback: ToolFeedback | None) -> list[float]:
    if feedback is None:
        return [0.0] * len(proposal.actions)
    means = [feedback.mean_duration_ms(t) for t in feedback.stats]
    known = [m for m in means if m is not None]
    fallback = sum(known) / len(known) if known else 0.0
    out = []
    for action in proposal.actions:
        mean = feedback.mean_duration_ms(action.tool) if action.tool is not None else None
        out.append((fallback if mean is None else mean) if action.tool is not None else 0.0)
    return out


def _timed_trial(
    plan: _Plan, cols: Columns, live: dict[str, Any], draw: Any
) -> tuple[list[int], int | None]:
    """One run against a duration budget: attempts drawn one by one, each taking its tool's
    mean duration; a level lasts as long as its slowest action; an action that would start
    once the budget is spent is skipped, which stops the run."""
    assert plan.budget_ms is not None
    budget, elapsed = plan.budget_ms, 0.0
    after = plan.after
    kept = [False] * len(plan.mode)
    done: list[int] = []
    for level, in_order in plan.levels:
        slowest = 0.0
        cause = None
        base = dict(live) if plan.tracks_state and not in_order else live
        for i in level:
            if after is not None and not _ready(after, kept, i):
                continue
            started = elapsed + (slowest if in_order else 0.0)
            if started > budget:
                return done, i
            ok, spent = _attempts(plan, cols, i, live if in_order else base, draw)
            slowest = slowest + spent if in_order else max(slowest, spent)
            if ok:
                done.append(i)
                kept[i] = True
                if plan.tracks_state:
                    apply_effects(cols, i, live)
            elif plan.stops[i]:
                if in_order:
                    return done, i
                cause = i if cause is None else cause
        elapsed += slowest
        if cause is not None:
            return done, cause
    return done, None


def _attempts(
    plan: _Plan, cols: Columns, i: int, live: dict[str, Any], draw: Any
) -> tuple[bool, float]:
    """Whether action `i` succeeds, drawing each attempt, and the time its attempts took."""
    if plan.mode[i] is _GENERAL and is_blocked(cols, i, live):
        return False, 0.0
    if cols.types[i] is ASSERTION:
        return check_assertion(cols.parameters[i], live) is None, 0.0
    if plan.gate[i] < 1.0 and draw() >= plan.gate[i]:
        return False, 0.0
    if cols.types[i] is not TOOL_CALL:
        return True, 0.0
    rate, spent = plan.rate[i], 0.0
    for _ in range(plan.attempts[i]):
        spent += plan.duration[i]
        if draw() < rate:
            return True, spent
    return False, spent


def _ready(after: list[list[int]] | None, kept: list[bool], i: int) -> bool:
    """Whether every action `i` runs after succeeded (else the runtime passes it over)."""
    assert after is not None
    return all(kept[j] for j in after[i])


def _decide(cols: Columns, i: int, live: dict[str, Any], chance: float, draw: Any) -> bool:
    """Whether action `i` succeeds against `live`: not rejected, then its own outcome."""
    if is_blocked(cols, i, live):
        return False
    kind = cols.types[i]
    if kind is ASSERTION:
        return check_assertion(cols.parameters[i], live) is None
    if kind is TOOL_CALL or chance < 1.0:  # a tool's outcome, or an approval's
        return bool(draw() < chance)
    return True
