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

__all__ = ["MonteCarloResult", "simulate_monte_carlo", "UNKNOWN_TOOL_RATE"]

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
) -> MonteCarloResult:
    """Run `trials` simulated executions of `proposal` from `state`, tools failing at
    `tool_success_rates` (per attempt; `unknown_rate` for a tool not listed; with
    `ToolFeedback`, per parameter pattern where it knows one). `approvals`: per action
    position, the policies that will ask approval for it, each granted at its learned rate
    (`unknown_approval_rate` when the feedback has none). `budget_ms`: the duration budget,
    spent at the tools' learned mean durations. The same `seed` gives the same result."""
    if trials < 1:
        raise ValueError("trials must be at least 1")
    prop = proposal if isinstance(proposal, ActionProposal) else load_proposal(proposal)
    feedback = tool_success_rates if isinstance(tool_success_rates, ToolFeedback) else None
    cols = Columns.of(prop.actions)
    plan = _plan(
        cols,
        _rates(prop, tool_success_rates, unknown_rate),
        _gates(len(prop.actions), approvals, feedback, unknown_approval_rate),
        _durations(prop, feedback) if budget_ms is not None else [],
        budget_ms if feedback is not None and feedback.has_durations else None,
    )
    n = len(prop.actions)
    draw = random.Random(seed).random
    kept = [0] * n
    aborts: dict[int, int] = {}
    completed = full = 0
    initial = dict(state or {})
    for _ in range(trials):
        live = dict(initial) if plan.tracks_state else initial
        trial = _timed_trial if plan.budget_ms is not None else _trial
        done, cause = trial(plan, cols, live, draw)
        if cause is not None:
            aborts[cause] = aborts.get(cause, 0) + 1
            continue
        for i in done:
            kept[i] += 1
        completed += len(done)
        if len(done) == n:
            full += 1
    ids = cols.ids
    ok = trials - sum(aborts.values())
    return MonteCarloResult(
        trials=trials,
        seed=seed,
        success_rate=ok / trials,
        full_success_rate=full / trials,
        mean_completion=completed / (trials * n) if n else 1.0,
        action_success={ids[i]: kept[i] / trials for i in range(n)},
        abort_causes={
            ids[i]: count for i, count in sorted(aborts.items(), key=lambda item: -item[1])
        },
    )


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
