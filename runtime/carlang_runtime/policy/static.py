"""Policies judged before anything runs: what each action of a plan will meet at dispatch.

Every action's parameters are written in the plan, so a policy whose verdict depends only on
the action and its parameters decides the same way on every run: such a verdict is *certain*.
One that also reads `state` is judged against the state the plan predicts at that point (the
initial state plus the declared effects of the levels before), as `verify` judges
preconditions: it is *predicted*, since tools may write what they do not declare.

A trace rule (a condition over `history`) is judged against the actions that come before the
guarded one on every path of the DAG (its ancestors), all taken to have succeeded: the best
the plan itself can do. A deny even then is certain for the plan (only an earlier run in the
same session could change it). A verdict that depends on the caller's scope or the time cannot
be known beforehand and is left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..columns import Columns
from ..dag import Dag, build_dag
from ..ir import ActionProposal, PolicyEffect
from ..verify.state import apply_effects
from .policyset import PolicySet

__all__ = [
    "StaticVerdict",
    "static_verdicts",
    "judged_context",
    "CERTAIN_READS",
    "PREDICTED_READS",
]

#: What a verdict may depend on and still hold on every run of the same action (history: the
#: plan's own, see the module docstring).
CERTAIN_READS: Final = frozenset({"action", "params", "history"})
#: ...and what it may depend on to be predicted from the plan's declared effects.
PREDICTED_READS: Final = CERTAIN_READS | {"state"}

_NO_SCOPE: Final[Mapping[str, Any]] = {}


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
    sets = [policies] if isinstance(policies, PolicySet) else list(policies)
    sets = [s for s in sets if len(s)]
    if not sets:
        return []
    reads_state = any(s.reads("state") for s in sets)
    if cols is None:
        cols = Columns.of(proposal.actions)
    if dag is None:
        dag = build_dag(cols)
    before = _ancestors(dag) if any(s.reads("history") for s in sets) else None
    current = dict(state or {})
    verdicts: list[StaticVerdict] = []
    for level in dag.levels:
        # Actions of one level run side by side: each sees the state the level starts from.
        for index in level:
            history = _history(proposal, before[index]) if before is not None else ()
            _judge(sets, proposal, index, current, history, verdicts)
        if reads_state:
            for index in level:
                apply_effects(cols, index, current)
    return verdicts


def judged_context(
    proposal: ActionProposal, index: int, state: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The state and history `static_verdicts` judges action `index` of `proposal` with: the
    state the plan predicts when its level starts (from `state`), and its ancestors, all
    succeeded. (`explain` of a plan's action shows what `check` judged.) An action in a
    cycle is in no level: it gets `state` and no history."""
    cols = Columns.of(proposal.actions)
    dag = build_dag(cols)
    before = _ancestors(dag)
    current = dict(state or {})
    for level in dag.levels:
        if index in level:
            return current, _history(proposal, before[index])
        for other in level:
            apply_effects(cols, other, current)
    return dict(state or {}), []


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
            action = proposal.actions[index]
            entries.append(
                {
                    "id": action.id,
                    "type": action.type.value,
                    "tool": action.tool,
                    "params": action.parameters,
                    "status": "succeeded",
                }
            )
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
) -> None:
    action = proposal.actions[index]
    for policies in sets:
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
            certain = match.reads <= CERTAIN_READS
            out.append(
                StaticVerdict(index, action.id, match.policy, match.effect, match.reason, certain)
            )
