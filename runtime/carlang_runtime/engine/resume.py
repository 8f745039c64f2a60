"""Durable runs: what a SQLite journal says about a run, to resume it after its process died.

The journal of a run holds its proposal (`proposal_received`), the state before it
(`state_snapshot`), every committed state change, and a terminal event per finished action.
Resuming rebuilds the state from those, keeps the results of actions the journal shows
succeeded (they are not run again), and runs the rest. An action that was running when the
process died has no terminal event: it runs again (at least once, never lost).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import CarlangRuntimeError
from ..ir import ActionProposal, ActionResult, ActionStatus
from .events import EventKind, format_time
from .journal import EventStore, StoredEvent
from .state import MISSING

__all__ = ["JournaledRun", "read_run"]

_STATUS_OF_KIND = {
    EventKind.ACTION_SUCCEEDED.value: ActionStatus.SUCCEEDED,
    EventKind.ACTION_DEDUPLICATED.value: ActionStatus.SUCCEEDED,
    EventKind.ACTION_FAILED.value: ActionStatus.FAILED,
    EventKind.ACTION_SKIPPED.value: ActionStatus.SKIPPED,
    EventKind.ACTION_REJECTED.value: ActionStatus.REJECTED,
}


@dataclass
class JournaledRun:
    """A run as its journal tells it."""

    run_id: str
    proposal: ActionProposal
    scope: dict[str, Any]
    session: str | None
    tenant: str | None
    #: The state before the proposal ran.
    initial_state: dict[str, Any]
    #: Committed writes since, in order: (key, value or MISSING, action id).
    writes: list[tuple[str, Any, str | None]] = field(default_factory=list)
    #: Results of the actions that finished (any status), by action id: they do not run again.
    results: dict[str, ActionResult] = field(default_factory=dict)
    finished: bool = False
    status: str | None = None


def read_run(store: EventStore, run_id: str) -> JournaledRun:
    """Everything the journal knows of run `run_id`; raises `CarlangRuntimeError` when it has
    no such run or the run was not logged durably."""
    events = store.events(run_id)
    if not events:
        raise CarlangRuntimeError(f"no run '{run_id}' in {store.path}")
    started = next((e for e in events if e.kind == EventKind.RUN_STARTED.value), None)
    received = [i for i, e in enumerate(events) if e.kind == EventKind.PROPOSAL_RECEIVED.value]
    if started is None or not received:
        raise CarlangRuntimeError(f"run '{run_id}' in {store.path} has no proposal")
    # The last proposal is the one that ran last (a replan replaces the original); a resumed
    # run logs it again, with the same snapshot, so its earlier segments count too.
    last = events[received[-1]]
    document = last.data.get("proposal")
    if document is None:
        raise CarlangRuntimeError(
            f"run '{run_id}' was not logged durably (its journal lacks the proposal)"
        )
    proposal = ActionProposal.model_validate(document)
    segments = [i for i in received if events[i].proposal_id == proposal.id]
    first = segments[0]
    snapshot = next(
        (
            e
            for e in events[first:]
            if e.kind == EventKind.STATE_SNAPSHOT.value and e.proposal_id == proposal.id
        ),
        None,
    )
    if snapshot is None or "state" not in snapshot.data:
        raise CarlangRuntimeError(f"run '{run_id}' has no state snapshot to start from")
    scope = dict(started.data.get("scope") or {})
    run = JournaledRun(
        run_id=run_id,
        proposal=proposal,
        scope=scope,
        session=started.data.get("session"),
        tenant=snapshot.data.get("tenant"),
        initial_state=dict(snapshot.data["state"]),
    )
    for event in events[first:]:
        if event.proposal_id != proposal.id:
            continue
        _read_event(run, event)
    completed = [e for e in events if e.kind == EventKind.RUN_COMPLETED.value]
    if completed:
        run.finished = True
        run.status = completed[-1].data.get("status")
    elif any(e.kind == EventKind.STATE_ROLLBACK.value for e in events[first:]):
        # Aborted and rolled back, then the process died before saying so: it is over.
        run.finished = True
        run.status = "aborted"
    return run


def _read_event(run: JournaledRun, event: StoredEvent) -> None:
    if event.kind == EventKind.STATE_CHANGED.value:
        key = event.data["key"]
        value = MISSING if event.data.get("deleted") else event.data.get("value")
        run.writes.append((key, value, event.action_id))
        return
    status = _STATUS_OF_KIND.get(event.kind)
    if status is not None and event.action_id is not None:
        data = event.data
        run.results[event.action_id] = ActionResult.model_construct(
            action_id=event.action_id,
            status=status,
            output=data.get("output"),
            error=data.get("error"),
            rolled_back=False,
            state_changes=data.get("state_changes") or {},
            duration_ms=data.get("duration_ms"),
            timestamp=format_time(event.timestamp),
        )
