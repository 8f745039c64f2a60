"""`Governance`: the capabilities and budgets candidate plans run under."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from ..ir import ActionProposal, Budget, Capability, Program

__all__ = ["Governance"]

T = TypeVar("T")


@dataclass(frozen=True)
class Governance:
    """Named capabilities and budgets (a candidate names the ones it runs under, as a
    program's proposals do), and the defaults for a candidate that names none."""

    capabilities: Mapping[str, Capability] = field(default_factory=dict)
    budgets: Mapping[str, Budget] = field(default_factory=dict)
    capability: Capability | None = None
    budget: Budget | None = None

    @classmethod
    def of(
        cls,
        capabilities: Iterable[Capability] = (),
        budgets: Iterable[Budget] = (),
        *,
        capability: Capability | None = None,
        budget: Budget | None = None,
    ) -> Governance:
        """Governance from lists of capabilities and budgets (looked up by name)."""
        return cls(
            {c.name: c for c in capabilities}, {b.name: b for b in budgets}, capability, budget
        )

    @classmethod
    def from_program(cls, program: Program) -> Governance:
        """A program's capabilities and budgets."""
        return cls.of(program.capabilities, program.budgets)

    def capability_for(self, proposal: ActionProposal) -> Capability | None:
        """The capability `proposal` runs under; raises `LookupError` for an unknown name."""
        return _named(proposal.capability, "capability", self.capabilities, self.capability)

    def budget_for(self, proposal: ActionProposal) -> Budget | None:
        """The budget `proposal` runs under; raises `LookupError` for an unknown name."""
        return _named(proposal.budget, "budget", self.budgets, self.budget)


def _named(name: str | None, kind: str, known: Mapping[str, T], default: T | None) -> T | None:
    if name is None:
        return default
    found = known.get(name)
    if found is None:
        raise LookupError(f"it runs under {kind} '{name}', which is not given")
    return found
