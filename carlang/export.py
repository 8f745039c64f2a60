"""Exporting compiled proposals as plain CAR documents (`carlang compile --target car`).

CAR orders actions only through state keys, so each explicit `depends_on` edge becomes a
synthetic key: the dependency declares `expected_effects["__done.<id>"] = true` and the
dependent lists it in `state_dependencies`. CAR only links a dependency to an *earlier*
writer, so actions are emitted in execution-level order, which puts every dependency first.
carlang's own keys (`depends_on`, `loc`, `capability`, `budget`) are left out.
"""

from __future__ import annotations

from typing import Any

from carlang_runtime.dag import build_dag
from carlang_runtime.ir import ActionProposal

__all__ = ["DONE_PREFIX", "to_car_proposal"]

DONE_PREFIX = "__done."


def to_car_proposal(proposal: ActionProposal) -> dict[str, Any]:
    """`proposal` as a CAR ActionProposal JSON object."""
    dag = build_dag(proposal.actions)
    needed = {name for action in proposal.actions for name in action.depends_on}
    actions = []
    for index in dag.order():
        action = proposal.actions[index]
        data = action.model_dump(mode="json", exclude={"depends_on", "loc"})
        if action.id in needed:
            data["expected_effects"] = {**data["expected_effects"], DONE_PREFIX + action.id: True}
        if action.depends_on:
            extra = [DONE_PREFIX + name for name in action.depends_on]
            data["state_dependencies"] = list(dict.fromkeys([*data["state_dependencies"], *extra]))
        actions.append(data)
    document = proposal.model_dump(mode="json", exclude={"actions", "capability", "budget", "loc"})
    return {
        "id": document.pop("id"),
        "source": document.pop("source"),
        "actions": actions,
        **document,
    }
