"""The runtime's state: a key-value store per tenant, every write recorded as a transition.

A run marks the log before it starts and, on abort, undoes the transitions made since, newest
first: a rollback costs what the run changed, not the size of the state. With a tenant, reads
and writes go to that tenant's view only; the default view (tenant None) is the shared one.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["StateStore", "StateTransition", "StateView", "MISSING"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


#: The "value" of a key that does not exist, in a transition.
MISSING: Final = _Missing()


@dataclass(frozen=True, slots=True)
class StateTransition:
    """One write: `old`/`new` are `MISSING` when the key did not / does not exist."""

    key: str
    old: Any
    new: Any
    action_id: str | None
    tenant: str | None
    timestamp: float


class StateView(Mapping[str, Any]):
    """One tenant's state as a read-only mapping (what preconditions and policies read)."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str, default: Any = None) -> Any:
        """The value under `key`, or `default`."""
        return self._data.get(key, default)


class StateStore:
    """Thread-safe enough for the runtime (one event loop writes; tools write through their
    context, on that loop). `set`/`delete` record transitions; `mark`/`rollback` undo them."""

    def __init__(self, initial: Mapping[str, Any] | None = None) -> None:
        self._tenants: dict[str | None, dict[str, Any]] = {None: dict(initial or {})}
        self._transitions: list[StateTransition] = []

    # -- reading ---------------------------------------------------------------------------

    def data(self, tenant: str | None = None) -> dict[str, Any]:
        """The live dict of one tenant (the runtime reads it directly; do not keep it)."""
        found = self._tenants.get(tenant)
        if found is None:
            found = self._tenants[tenant] = {}
        return found

    def view(self, tenant: str | None = None) -> StateView:
        """A read-only view of one tenant's state."""
        return StateView(self.data(tenant))

    def get(self, key: str, default: Any = None, *, tenant: str | None = None) -> Any:
        """The value under `key`, or `default`."""
        return self.data(tenant).get(key, default)

    def exists(self, key: str, *, tenant: str | None = None) -> bool:
        """Whether `key` has a value."""
        return key in self.data(tenant)

    def keys(self, *, tenant: str | None = None) -> list[str]:
        """The keys that have values."""
        return list(self.data(tenant))

    def snapshot(self, *, tenant: str | None = None) -> dict[str, Any]:
        """A deep copy of one tenant's state."""
        return copy.deepcopy(self.data(tenant))

    def tenants(self) -> list[str | None]:
        """Every tenant with a view (None first)."""
        return list(self._tenants)

    # -- writing ---------------------------------------------------------------------------

    def set(
        self, key: str, value: Any, action_id: str | None = None, *, tenant: str | None = None
    ) -> StateTransition:
        """Write `value` under `key`, recording the transition."""
        data = self.data(tenant)
        transition = StateTransition(
            key, data.get(key, MISSING), value, action_id, tenant, time.time()
        )
        data[key] = value
        self._transitions.append(transition)
        return transition

    def delete(
        self, key: str, action_id: str | None = None, *, tenant: str | None = None
    ) -> StateTransition | None:
        """Remove `key` (a transition to `MISSING`), or None if it was not there."""
        data = self.data(tenant)
        if key not in data:
            return None
        transition = StateTransition(key, data.pop(key), MISSING, action_id, tenant, time.time())
        self._transitions.append(transition)
        return transition

    def replace(self, values: Mapping[str, Any], *, tenant: str | None = None) -> None:
        """Replace one tenant's state, without transitions (a resumed run's starting point)."""
        self._tenants[tenant] = dict(values)

    def replace_all(self, tenants: Mapping[str | None, Mapping[str, Any]]) -> None:
        """Replace every tenant's state at once, without transitions (a checkpoint restore)."""
        self._tenants = {tenant: dict(values) for tenant, values in tenants.items()}
        self._tenants.setdefault(None, {})
        self._transitions.clear()

    # -- history ---------------------------------------------------------------------------

    @property
    def transitions(self) -> list[StateTransition]:
        """Every write so far (or since the last `replace_all`)."""
        return list(self._transitions)

    def mark(self) -> int:
        """A point to roll back to: the number of transitions so far."""
        return len(self._transitions)

    def transitions_since(self, mark: int) -> list[StateTransition]:
        """The writes made after `mark`."""
        return self._transitions[mark:]

    def forget_before(self, keep: int) -> None:
        """Drop all but the newest `keep` transitions (the runtime calls this between runs,
        so a long-lived store does not grow without bound)."""
        if len(self._transitions) > keep:
            del self._transitions[: len(self._transitions) - keep]

    def rollback(self, mark: int) -> list[StateTransition]:
        """Undo every write made after `mark`, newest first; returns what was undone."""
        undone = self._transitions[mark:]
        for transition in reversed(undone):
            data = self.data(transition.tenant)
            if transition.old is MISSING:
                data.pop(transition.key, None)
            else:
                data[transition.key] = transition.old
        del self._transitions[mark:]
        return undone
