"""`simulate`, `equivalent` and `optimize`: CAR's other static tools.

`simulate` differs from `verify` on purpose: verify applies the effects of an action that would
be blocked (so one root cause is reported once), simulate skips them, as the runtime would
reject the action (car#622).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..columns import Columns
from ..dag import build_dag
from ..ir import ActionProposal, load_proposal
from ..jsonvalue import json_equal
from .state import apply_effects, is_blocked

__all__ = ["simulate", "equivalent", "optimize", "PROBE_STATES"]

#: The states `equivalent` compares on when none are given (CAR's defaults). It samples: two
#: proposals that agree here may still differ elsewhere.
PROBE_STATES: tuple[dict[str, Any], ...] = ({}, {"x": 1, "y": 2})


def simulate(
    proposal: ActionProposal | Mapping[str, Any] | str | bytes,
    state: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The state after the proposal's declared effects, skipping actions the runtime would
    reject (a failing precondition or an unavailable dependency). No tool is called."""
    cols = Columns.of(load_proposal(proposal).actions)
    current = dict(state or {})
    for index in build_dag(cols).order():
        if not is_blocked(cols, index, current):
            apply_effects(cols, index, current)
    return current


def equivalent(
    first: ActionProposal | Mapping[str, Any] | str | bytes,
    second: ActionProposal | Mapping[str, Any] | str | bytes,
    test_states: Sequence[Mapping[str, Any]] | None = None,
) -> bool:
    """Whether both proposals leave the same simulated state on every test state."""
    states = PROBE_STATES if test_states is None else test_states
    a, b = load_proposal(first), load_proposal(second)
    return all(json_equal(simulate(a, s), simulate(b, s)) for s in states)


def optimize(proposal: ActionProposal | Mapping[str, Any] | str | bytes) -> ActionProposal:
    """A copy without "phantom" state dependencies (keys no action writes), which only narrow
    parallelism. Actions are never reordered or removed."""
    prop = load_proposal(proposal)
    written = {key for action in prop.actions for key in action.written_keys()}
    actions = [
        a.model_copy(
            update={"state_dependencies": [k for k in a.state_dependencies if k in written]}
        )
        if any(k not in written for k in a.state_dependencies)
        else a
        for a in prop.actions
    ]
    return prop.model_copy(update={"actions": actions})
