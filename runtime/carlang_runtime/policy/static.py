"""Policies judged before anything runs: what each action of a plan will meet at dispatch.

Every action's parameters are written in the plan, so a policy whose verdict depends only on
the action and its parameters decides the same way on every run: such a verdict is *certain*.
One that also reads `state` is judged against the state the plan predicts at that point (the
initial state plus the declared effects of the levels before), as `verify` judges
preconditions: it is *predicted*, since tools may write what they do not declare. A verdict
that depends on the caller's scope, the session's history or the time cannot be known
beforehand and is left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..columns import Columns
from ..dag import build_dag
from ..ir import ActionProposal, PolicyEffect
from ..verify.state import apply_effects
from .policyset import PolicySet

__all__ = ["StaticVerdict", "static_verdicts", "CERTAIN_READS", "PREDICTED_READS"]

#: What a verdict may depend on and still hold on every run of the same action.
CERTAIN_READS: Final = frozenset({"action", "params"})
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
) -> list[StaticVerdict]:
    """The deny and require_approval verdicts that `policies` will give the actions of
    `proposal`, in execution order, starting from `state`. A dry run: no rate-limit budget
    is spent."""
    sets = [policies] if isinstance(policies, PolicySet) else list(policies)
    sets = [s for s in sets if len(s)]
    if not sets:
        return []
    reads_state = any(s.reads("state") for s in sets)
    cols = Columns.of(proposal.actions)
    current = dict(state or {})
    verdicts: list[StaticVerdict] = []
    for level in build_dag(cols).levels:
        # Actions of one level run side by side: each sees the state the level starts from.
        for index in level:
            _judge(sets, proposal, index, current, verdicts)
        if reads_state:
            for index in level:
                apply_effects(cols, index, current)
    return verdicts


def _judge(
    sets: list[PolicySet],
    proposal: ActionProposal,
    index: int,
    state: Mapping[str, Any],
    out: list[StaticVerdict],
) -> None:
    action = proposal.actions[index]
    for policies in sets:
        decision = policies.evaluate(
            action, proposal_id=proposal.id, state=state, scope=_NO_SCOPE, admit=False
        )
        for match in decision.matches:
            if match.effect is PolicyEffect.ALLOW or not match.reads <= PREDICTED_READS:
                continue
            certain = match.reads <= CERTAIN_READS
            out.append(
                StaticVerdict(index, action.id, match.policy, match.effect, match.reason, certain)
            )
