"""Policies judged before anything runs: what each action of a plan will meet at dispatch.

Every action's parameters are written in the plan, so a policy whose verdict depends only on
the action and its parameters decides the same way on every run: such a verdict is *certain*.
One that also reads `state` is judged against the state the plan predicts at that point (the
initial state plus the declared effects of the levels before), as `verify` judges
preconditions: it is *predicted*, since tools may write what they do not declare.

A trace rule (a condition over `history`) is judged twice. Against the actions that come
before the guarded one on every path of the DAG (its ancestors), all taken to have succeeded:
what the plan itself guarantees (a rule that needs a step first is not met by a step that
merely happens to run earlier). And against the history the runtime will hold when it decides
the action: it admits a level's actions one after the other in proposal order, each in
`history` from its admission (status "running" while the others of a level running alongside
it are decided; "succeeded" once its level is done, taken to succeed; "rejected" when a policy
is predicted to deny it), so an unordered sibling is seen too (a "pay once" rule denies the
second of two unordered payments). A deny or require_approval found either way is reported.
A deny even then is certain for the plan (only an earlier run in the same session could change
it). A verdict that depends on the caller's scope or the time cannot be known beforehand and is
left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..columns import Columns
from ..dag import Dag, build_dag, runs_in_order
from ..ir import ActionProposal, PolicyEffect
from ..verify.state import apply_effects
from .activation import RUNNING, history_entry
from .policyset import PolicySet

__all__ = [
    "StaticVerdict",
    "static_verdicts",
    "judged_context",
    "judged_contexts",
    "CERTAIN_READS",
    "PREDICTED_READS",
    "POLICY_DENIES",
    "POLICY_ASKS",
    "POLICY_MAY_DENY",
]

#: What a verdict may depend on and still hold on every run of the same action (history: the
#: plan's own, see the module docstring).
CERTAIN_READS: Final = frozenset({"action", "params", "history"})
#: ...and what it may depend on to be predicted from the plan's declared effects.
PREDICTED_READS: Final = CERTAIN_READS | {"state"}

_NO_SCOPE: Final[Mapping[str, Any]] = {}

#: The codes of the verdicts, wherever they are reported (`carlang check`'s findings on a
#: plan, the planner's): a certain deny, an approval, a deny predicted from the state.
POLICY_DENIES: Final = "CL0520"
POLICY_ASKS: Final = "CL0521"
POLICY_MAY_DENY: Final = "CL0522"


@dataclass(frozen=True, slots=True)
class StaticVerdict:
    """One policy's verdict on one action of a plan: `certain` when it depends on the action
    alone, else predicted from the plan's declared state."""

    index: int
    action_id: str
    policy: str
    effect: PolicyEffect
    reason: str
    certain: bool


def static_verdicts(
    policies: PolicySet | Sequence[PolicySet],
    proposal: ActionProposal,
    state: Mapping[str, Any] | None = None,
    *,
    cols: Columns | None = None,
    dag: Dag | None = None,
) -> list[StaticVerdict]:
    """The deny and require_approval verdicts that `policies` will give the actions of
    `proposal`, in execution order, starting from `state`. A dry run: no rate-limit budget
    is spent. `cols`, `dag`: the proposal's, when they are already made."""
    sets = _sets(policies)
    if not sets:
        return []
    verdicts: list[StaticVerdict] = []
    _walk(sets, proposal, state, cols, dag, verdicts)
    return verdicts


def judged_context(
    proposal: ActionProposal,
    index: int,
    state: Mapping[str, Any] | None = None,
    policies: PolicySet | Sequence[PolicySet] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The state and history `static_verdicts` judges action `index` of `proposal` with: the
    state the plan predicts when its level starts (from `state`), and its ancestors, all
    succeeded; or, given the `policies` and when they deny it (or ask for approval) only with
    the history the runtime will hold (the siblings admitted before it: see the module's
    docstring), that one. (`explain` of a plan's action shows what `check` judged.) An action
    in a cycle is in no level: it gets `state` and no history."""
    sets = _sets(policies) if policies is not None else []
    found = _walk(sets, proposal, state, None, None, [], stop=index)
    if found is not None:
        return found
    return dict(state or {}), []


def judged_contexts(
    proposal: ActionProposal,
    state: Mapping[str, Any] | None = None,
    policies: PolicySet | Sequence[PolicySet] | None = None,
) -> dict[int, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """`judged_context` of every action of `proposal` that is in a level, by index, from one
    walk (asking for each in turn walks the plan again each time)."""
    found: dict[int, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    sets = _sets(policies) if policies is not None else []

    def visit(index: int, seen: dict[str, Any], history: list[dict[str, Any]]) -> None:
        found[index] = (seen, history)

    _walk(sets, proposal, state, None, None, [], visit=visit)
    return found


def _sets(policies: PolicySet | Sequence[PolicySet]) -> list[PolicySet]:
    sets = [policies] if isinstance(policies, PolicySet) else list(policies)
    return [s for s in sets if len(s)]


def _walk(
    sets: list[PolicySet],
    proposal: ActionProposal,
    state: Mapping[str, Any] | None,
    cols: Columns | None,
    dag: Dag | None,
    out: list[StaticVerdict],
    stop: int | None = None,
    visit: Callable[[int, dict[str, Any], list[dict[str, Any]]], None] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """Judge the actions level by level, as the runtime will decide them, adding verdicts to
    `out`; with `stop`, the state and history action `stop` was judged with, once it is (the
    walk ends there: None when it is in no level); `visit` is given those of every action."""
    if cols is None:
        cols = Columns.of(proposal.actions)
    if dag is None:
        dag = build_dag(cols)
    judging = stop is None or bool(sets)
    judges_state = any(s.judges_state() for s in sets)
    contexts = stop is not None or visit is not None
    reads_state = contexts or judges_state
    reads_history = contexts or any(s.reads("history") for s in sets)
    before = _ancestors(dag) if reads_history else None
    # The runtime's history: every action admitted so far, in admission order.
    admitted: list[dict[str, Any]] = []
    actions = proposal.actions
    current = dict(state or {})
    for level in dag.levels:
        # Some levels run in order: each action ends (and writes) before the next is judged.
        in_order = runs_in_order(actions, level, judges_state)
        running: list[dict[str, Any]] = []
        for index in level:
            # Actions of one level that run side by side see the state the level starts from;
            # in order, each sees the writes of the ones before it (taken to have succeeded).
            history = _history(proposal, before[index]) if before is not None else []
            start = len(out)
            if judging:
                _judge(sets, proposal, index, current, history, out)
            judged_on = dict(current) if visit is not None else current  # (before its writes)
            if in_order and reads_state and index != stop:
                apply_effects(cols, index, current)
            if before is None:
                if index == stop:
                    return current, history
                if visit is not None:
                    visit(index, judged_on, history)
                continue
            seen = {(v.policy, v.effect) for v in out[start:]}
            if judging:
                _judge(
                    sets, proposal, index, judged_on, admitted, out, history_only=True, seen=seen
                )
            if index == stop or visit is not None:
                only_admitted = any((v.policy, v.effect) not in seen for v in out[start:])
                chosen = list(admitted) if only_admitted else history
                if index == stop:
                    return current, chosen
                assert visit is not None
                visit(index, judged_on, chosen)
            denied = any(v.effect is PolicyEffect.DENY for v in out[start:])
            status = "rejected" if denied else "succeeded" if in_order else RUNNING
            entry = history_entry(proposal.actions[index], status)
            admitted.append(entry)
            if status == RUNNING:
                running.append(entry)
        for entry in running:  # the level is done: taken to have succeeded
            entry["status"] = "succeeded"
        if reads_state and not in_order:
            for index in level:
                apply_effects(cols, index, current)
    return None


def _ancestors(dag: Dag) -> list[int]:
    """Per action, a bit set of the actions before it on every path (its DAG ancestors)."""
    found = [0] * len(dag.deps)
    for level in dag.levels:
        for index in level:
            bits = 0
            for dep in dag.deps[index]:
                bits |= found[dep] | (1 << dep)
            found[index] = bits
    return found


def _history(proposal: ActionProposal, bits: int) -> list[dict[str, Any]]:
    """The history entries (as the runtime records them) of the actions in `bits`, all
    succeeded, in proposal order."""
    entries = []
    index = 0
    while bits:
        if bits & 1:
            entries.append(history_entry(proposal.actions[index], "succeeded"))
        bits >>= 1
        index += 1
    return entries


def _judge(
    sets: list[PolicySet],
    proposal: ActionProposal,
    index: int,
    state: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    out: list[StaticVerdict],
    *,
    history_only: bool = False,
    seen: set[tuple[str, PolicyEffect]] | None = None,
) -> None:
    """Add the verdicts of `sets` on action `index` to `out`; `history_only`: only those of
    policies that read `history` and are not in `seen` (a second judgement, with another
    history)."""
    action = proposal.actions[index]
    for policies in sets:
        if history_only and not policies.reads("history"):
            continue
        decision = policies.evaluate(
            action,
            proposal_id=proposal.id,
            state=state,
            scope=_NO_SCOPE,
            history=history,
            admit=False,
        )
        for match in decision.matches:
            if match.effect is PolicyEffect.ALLOW or not match.reads <= PREDICTED_READS:
                continue
            if history_only and (
                "history" not in match.reads or (match.policy, match.effect) in (seen or ())
            ):
                continue
            certain = match.reads <= CERTAIN_READS
            out.append(
                StaticVerdict(index, action.id, match.policy, match.effect, match.reason, certain)
            )
