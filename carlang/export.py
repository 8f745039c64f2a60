"""Exporting compiled proposals as plain CAR documents (`carlang compile --target car`).

CAR orders actions only through state keys, so each explicit `depends_on` edge becomes a
synthetic key: the dependency declares `expected_effects["__done.<id>"] = true` and the
dependent lists it in `state_dependencies`. CAR only links a dependency to an *earlier*
writer, so actions are emitted in execution-level order, which puts every dependency first.
carlang's own keys (`depends_on`, `loc`, `capability`, `budget`) are left out.

Two writers of one key ordered by `after` do not conflict for carlang; CAR only knows an order
through the key itself. So an action that writes a key which an action it (transitively)
comes after also writes lists that key in `state_dependencies` too: CAR then sees the pair
ordered, and `check` and CAR report the same write conflicts.
"""

from __future__ import annotations

from typing import Any

from carlang_runtime.dag import build_dag
from carlang_runtime.ir import Action, ActionProposal, ActionType

__all__ = ["DONE_PREFIX", "to_car_proposal"]

DONE_PREFIX = "__done."


def to_car_proposal(proposal: ActionProposal) -> dict[str, Any]:
    """`proposal` as a CAR ActionProposal JSON object."""
    dag = build_dag(proposal.actions)
    needed = {name for action in proposal.actions for name in action.depends_on}
    written_before = _written_by_ancestors(proposal, dag.order(), dag.explicit)
    actions = []
    for index in dag.order():
        action = proposal.actions[index]
        data = action.model_dump(mode="json", exclude={"depends_on", "loc"})
        if action.id in needed:
            data["expected_effects"] = {**data["expected_effects"], DONE_PREFIX + action.id: True}
        if action.depends_on:
            extra = [DONE_PREFIX + name for name in action.depends_on]
            rewritten = [k for k in _written(action) if k in written_before[index]]
            data["state_dependencies"] = list(
                dict.fromkeys([*data["state_dependencies"], *extra, *rewritten])
            )
        actions.append(data)
    document = proposal.model_dump(mode="json", exclude={"actions", "capability", "budget", "loc"})
    return {
        "id": document.pop("id"),
        "source": document.pop("source"),
        "actions": actions,
        **document,
    }


def _written(action: Action) -> list[str]:
    """The state keys an action writes (its `set` key and its declared effects)."""
    keys = list(action.expected_effects)
    key = action.parameters.get("key") if action.type is ActionType.STATE_WRITE else None
    return [key, *keys] if isinstance(key, str) else keys


def _written_by_ancestors(
    proposal: ActionProposal, order: list[int], explicit: list[list[int]]
) -> list[frozenset[str]]:
    """Per action, the keys written by the actions it comes after through `depends_on`."""
    found: list[frozenset[str]] = [frozenset()] * len(proposal.actions)
    for index in order:
        keys: set[str] = set()
        for dep in explicit[index]:
            keys |= found[dep]
            keys.update(_written(proposal.actions[dep]))
        found[index] = frozenset(keys)
    return found
