"""Durable runs: what a SQLite journal says about a run, to resume it after its process died.

The journal of a run holds its proposal (`proposal_received`), the state before it
(`state_snapshot`), every committed state change, and a terminal event per finished action.
Resuming rebuilds the state from those, keeps the results of actions the journal shows
finished (they are not run again), and runs the rest. An action that was running when the
process died has no terminal event (or one marked `interrupted`): it runs again (at least
once, never lost). A terminal event marked `abort` means the run was aborting: resuming
finishes the abort (rollback, then the compensations the journal does not show ended) and runs
nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import CarlangRuntimeError
from ..ir import ActionProposal, ActionResult, ActionStatus, ActionType, CompensationResult
from .events import EventKind, format_time
from .journal import EventStore, StoredEvent
from .state import MISSING

__all__ = ["JournaledRun", "read_run"]

_COMPENSATION_STATUS = {
    EventKind.COMPENSATION_SUCCEEDED.value: ActionStatus.SUCCEEDED,
    EventKind.COMPENSATION_FAILED.value: ActionStatus.FAILED,
    EventKind.COMPENSATION_REJECTED.value: ActionStatus.REJECTED,
}

#: A compensation that ended so made its call.
_COMPENSATION_CALLED = frozenset(
    {EventKind.COMPENSATION_SUCCEEDED.value, EventKind.COMPENSATION_FAILED.value}
)

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
    #: The ids of the actions that succeeded, in the order they did.
    succeeded: list[str] = field(default_factory=list)
    #: Why the run was aborting when the journal ends (None: it was not).
    abort: str | None = None
    #: Compensations that ended, by the id of the action they compensate.
    compensations: dict[str, CompensationResult] = field(default_factory=dict)
    #: Whether the journal's proposal had secret values replaced (resume needs it again).
    redacted: bool = False
    #: The tool calls the run made (succeeded calls not answered from a cache, and undo
    #: steps): a resumed run's `max_tool_calls` budget counts them.
    tool_calls: int = 0
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
    try:
        proposal = ActionProposal.model_validate(document)
    except ValueError as exc:
        raise CarlangRuntimeError(
            f"run '{run_id}' in {store.path}: the journaled proposal is damaged ({exc})"
        ) from None
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
        redacted=bool(last.data.get("redacted")),
    )
    calls = {a.id for a in proposal.actions if a.type is ActionType.TOOL_CALL}
    for event in events[first:]:
        if event.proposal_id != proposal.id:
            continue
        _read_event(run, event)
        if event.kind in _COMPENSATION_CALLED or (
            event.kind == EventKind.ACTION_SUCCEEDED.value
            and event.action_id in calls
            and not event.data.get("cached")
        ):
            run.tool_calls += 1
    completed = [e for e in events if e.kind == EventKind.RUN_COMPLETED.value]
    if completed:
        run.finished = True
        run.status = completed[-1].data.get("status")
    return run


def _read_event(run: JournaledRun, event: StoredEvent) -> None:
    data = event.data
    if event.kind == EventKind.STATE_CHANGED.value:
        key = data["key"]
        value = MISSING if data.get("deleted") else data.get("value")
        run.writes.append((key, value, event.action_id))
        return
    if event.kind == EventKind.STATE_ROLLBACK.value and not data.get("interrupted"):
        # The abort got as far as the rollback: what follows are its compensations.
        run.abort = run.abort or str(data.get("reason") or "aborted")
        return
    compensation = _COMPENSATION_STATUS.get(event.kind)
    if compensation is not None and event.action_id is not None:
        run.compensations[event.action_id] = CompensationResult.model_construct(
            action_id=event.action_id,
            tool=data.get("tool") or "",
            status=compensation,
            output=data.get("output"),
            error=data.get("error"),
            attempts=data.get("attempts", 0),
        )
        return
    status = _STATUS_OF_KIND.get(event.kind)
    if status is not None and event.action_id is not None:
        if data.get("interrupted"):
            return  # stopped from outside: it runs again
        if data.get("abort"):
            run.abort = run.abort or str(data["abort"])
        if status is ActionStatus.SUCCEEDED:
            run.succeeded.append(event.action_id)
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
