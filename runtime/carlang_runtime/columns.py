"""A columnar view of a proposal's actions, for the passes that touch every action.

Reading a field of a pydantic model costs about twice a dict lookup, and verification reads
each field of every action several times. Pulling each field into a plain list once (a C-level
`map` of an attribute getter) and running the passes over those lists keeps per-action cost
low enough for proposals of 100,000 actions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from .ir import Action, ActionType, Compensation, Precondition, Reversibility, SourceLoc
from .ir.fastload import PlainColumns

__all__ = ["Columns", "STATE_WRITE", "TOOL_CALL", "STATE_READ", "ASSERTION"]

# Enum members bound once: looking them up on the class costs ~100 ns each.
TOOL_CALL = ActionType.TOOL_CALL
STATE_WRITE = ActionType.STATE_WRITE
STATE_READ = ActionType.STATE_READ
ASSERTION = ActionType.ASSERTION

_FIELDS = (
    "id",
    "type",
    "tool",
    "parameters",
    "expected_effects",
    "state_dependencies",
    "depends_on",
    "preconditions",
    "compensation",
    "reversibility",
    "loc",
)
_GETTERS = {name: itemgetter(name) for name in _FIELDS}


@dataclass(slots=True)
class Columns:
    """One list per action field, indexed by action position."""

    actions: Sequence[Action]
    ids: list[str]
    types: list[ActionType]
    tools: list[str | None]
    parameters: list[dict[str, Any]]
    effects: list[dict[str, Any]]
    dependencies: list[list[str]]
    depends_on: list[list[str]]
    preconditions: list[list[Precondition]]
    compensations: list[Compensation | None]
    reversibility: list[Reversibility]
    locs: list[SourceLoc | None]

    @classmethod
    def of(cls, actions: Sequence[Action]) -> Columns:
        """Extract the columns of `actions`."""
        # A pydantic model keeps its field values in the instance __dict__; reading them from
        # there skips BaseModel's slower attribute hook (about half the cost).
        fields = list(map(vars, actions))
        g = _GETTERS
        return cls(
            actions,
            list(map(g["id"], fields)),
            list(map(g["type"], fields)),
            list(map(g["tool"], fields)),
            list(map(g["parameters"], fields)),
            list(map(g["expected_effects"], fields)),
            list(map(g["state_dependencies"], fields)),
            list(map(g["depends_on"], fields)),
            list(map(g["preconditions"], fields)),
            list(map(g["compensation"], fields)),
            list(map(g["reversibility"], fields)),
            list(map(g["loc"], fields)),
        )

    @classmethod
    def of_plain(cls, plain: PlainColumns) -> Columns:
        """The columns of a proposal checked a column at a time (`ir.fastload`); its actions
        have no preconditions, compensation or location."""
        v = plain.values
        n = len(v["id"])
        empty: list[Any] = []  # read only, shared: no plain action has preconditions
        return cls(
            plain.proposal.actions,
            v["id"],
            v["type"],
            v["tool"],
            v["parameters"],
            v["expected_effects"],
            v["state_dependencies"],
            v["depends_on"],
            [empty] * n,
            [None] * n,
            v["reversibility"],
            [None] * n,
        )

    def __len__(self) -> int:
        return len(self.ids)

    def by_field(self) -> dict[str, list[Any]]:
        """The columns by the name of the `Action` field each holds."""
        return dict(
            zip(
                _FIELDS,
                (
                    self.ids,
                    self.types,
                    self.tools,
                    self.parameters,
                    self.effects,
                    self.dependencies,
                    self.depends_on,
                    self.preconditions,
                    self.compensations,
                    self.reversibility,
                    self.locs,
                ),
                strict=True,
            )
        )

    def state_write_key(self, index: int) -> str | None:
        """The key a state_write writes, or None (not a state_write, or no string key)."""
        if self.types[index] is not STATE_WRITE:
            return None
        key = self.parameters[index].get("key")
        return key if isinstance(key, str) else None

    def written_keys(self, index: int) -> list[str]:
        """Keys action `index` writes: its state_write key, then its expected effects."""
        key = self.state_write_key(index)
        keys = [key] if key is not None else []
        for effect in self.effects[index]:
            if effect != key:
                keys.append(effect)
        return keys
