"""The runtime's state: a key-value store per tenant, and the writes of each run.

Every run writes through its own `RunWrites`: it records the run's transitions, so that an
abort undoes exactly what this run changed (newest first), and it claims each key it writes for
the run's lifetime, so that two runs in flight on one tenant never both write a key: the second
writer gets a `StateConflict` (the runtime rejects or fails its action) instead of a silent
merge that a rollback would then tear apart. Runs on different tenants never meet: each tenant
is its own dict, and the default view (tenant None) is the shared one.

Values are never shared with the outside by reference where that could change the state behind
the runtime's back: what a tool reads through its context is a copy (see `detached`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ..errors import CarlangRuntimeError

__all__ = [
    "StateStore",
    "StateTransition",
    "StateView",
    "RunWrites",
    "StateConflict",
    "MISSING",
    "check_tenant",
    "detached",
]


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


def check_tenant(tenant: object) -> str | None:
    """`tenant` if it names a tenant (a non-empty string) or is None (the shared state);
    anything else is a `CarlangRuntimeError`: a wrong tenant must never fall back to the shared
    state silently."""
    if tenant is None or (isinstance(tenant, str) and tenant):
        return tenant
    shown = "an empty string" if tenant == "" else f"a {type(tenant).__name__}"
    raise CarlangRuntimeError(
        f"a tenant must be a non-empty string, not {shown}: pass scope={{'tenant': 'acme'}},"
        " or no tenant for the shared state"
    )


_IMMUTABLE: Final = (str, int, float, bool, type(None), bytes)


def detached(value: Any) -> Any:
    """`value`, or a deep copy of it when it could be changed in place (a list, a dict): what
    leaves the store, or enters it, is never the same mutable object on both sides."""
    if isinstance(value, _IMMUTABLE):
        return value
    return copy.deepcopy(value)


class StateConflict(CarlangRuntimeError):
    """A run tried to write a key that another run in flight on the same tenant has written."""

    def __init__(self, key: str, tenant: str | None, holder: str) -> None:
        self.key = key
        self.tenant = tenant
        self.holder = holder
        where = f" of tenant '{tenant}'" if tenant is not None else ""
        super().__init__(
            f"state key '{key}'{where} is being written by run {holder}, still in flight: runs"
            " that write the same key are never merged; retry when it has finished"
        )


class StateStore:
    """The state of every tenant. Runs write through `open_run`; `set`/`delete` write directly
    (for hosts and tests), recording nothing."""

    def __init__(self, initial: Mapping[str, Any] | None = None) -> None:
        self._tenants: dict[str | None, dict[str, Any]] = {None: dict(initial or {})}
        # (tenant, key) -> the label of the run in flight that wrote it
        self._claims: dict[tuple[str | None, str], str] = {}

    # -- reading ---------------------------------------------------------------------------

    def data(self, tenant: str | None = None) -> dict[str, Any]:
        """The live dict of one tenant (the runtime reads it directly; do not keep it)."""
        found = self._tenants.get(tenant)
        if found is None:
            # `setdefault`, one step (atomic on a dict): two threads meeting a new tenant at
            # once get the same dict (two made, one replacing the other, lost a run's writes)
            found = self._tenants.setdefault(check_tenant(tenant), {})
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

    def set(self, key: str, value: Any, *, tenant: str | None = None) -> None:
        """Write `value` under `key` directly (no run, no claim)."""
        self.data(tenant)[key] = value

    def delete(self, key: str, *, tenant: str | None = None) -> None:
        """Remove `key` directly, if it is there."""
        self.data(tenant).pop(key, None)

    def replace(self, values: Mapping[str, Any], *, tenant: str | None = None) -> None:
        """Replace one tenant's state (a resumed run's starting point)."""
        self._tenants[check_tenant(tenant)] = dict(values)

    def replace_all(self, tenants: Mapping[str | None, Mapping[str, Any]]) -> None:
        """Replace every tenant's state at once (a checkpoint restore)."""
        self._tenants = {check_tenant(t): dict(values) for t, values in tenants.items()}
        self._tenants.setdefault(None, {})

    # -- runs ------------------------------------------------------------------------------

    def open_run(self, label: str, tenant: str | None) -> RunWrites:
        """The write log of one run on one tenant (close it with `release`)."""
        return RunWrites(self, label, tenant)

    def holder(self, key: str, *, tenant: str | None = None) -> str | None:
        """The run in flight that has written `key`, if any."""
        return self._claims.get((tenant, key))


class RunWrites:
    """One run's writes: the transitions it made, newest last, and the keys it holds until
    `release`. Claiming is `dict.setdefault`, atomic under the GIL, so tools writing from
    worker threads claim safely."""

    __slots__ = ("store", "label", "tenant", "data", "transitions", "_claims", "_held")

    def __init__(self, store: StateStore, label: str, tenant: str | None) -> None:
        self.store = store
        self.label = label
        self.tenant = tenant
        self.data = store.data(tenant)
        self.transitions: list[StateTransition] = []
        self._claims = store._claims
        self._held: set[str] = set()

    def claim(self, key: str) -> None:
        """Hold `key` for this run; `StateConflict` when another run in flight holds it."""
        if key in self._held:
            return
        holder = self._claims.setdefault((self.tenant, key), self.label)
        if holder != self.label:
            raise StateConflict(key, self.tenant, holder)
        self._held.add(key)

    def conflict(self, keys: list[str]) -> StateConflict | None:
        """Claim every key of `keys`; the first conflict, or None."""
        try:
            for key in keys:
                self.claim(key)
        except StateConflict as conflict:
            return conflict
        return None

    def set(self, key: str, value: Any, action_id: str | None) -> StateTransition:
        """Write `value` under `key`, recording the transition."""
        self.claim(key)
        data = self.data
        transition = StateTransition(
            key, data.get(key, MISSING), value, action_id, self.tenant, time.time()
        )
        data[key] = value
        self.transitions.append(transition)
        return transition

    def delete(self, key: str, action_id: str | None) -> StateTransition | None:
        """Remove `key` (a transition to `MISSING`), or None if it was not there."""
        self.claim(key)
        data = self.data
        if key not in data:
            return None
        transition = StateTransition(
            key, data.pop(key), MISSING, action_id, self.tenant, time.time()
        )
        self.transitions.append(transition)
        return transition

    def rollback(self) -> list[StateTransition]:
        """Undo this run's writes, newest first; returns what was undone. The keys are still
        held (no other run wrote them since), so what comes back is exactly what was there."""
        undone = self.transitions
        data = self.data
        for transition in reversed(undone):
            if transition.old is MISSING:
                data.pop(transition.key, None)
            else:
                data[transition.key] = transition.old
        self.transitions = []
        return undone

    def release(self) -> None:
        """Let other runs write this run's keys again (the run has ended)."""
        claims, label, tenant = self._claims, self.label, self.tenant
        for key in self._held:
            if claims.get((tenant, key)) == label:
                del claims[(tenant, key)]
        self._held.clear()
