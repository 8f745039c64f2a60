"""Runs seen and steered from any process: list them, answer their approvals, cancel and resume
them. Through a `DBOSClient` on the database, so these need no DBOS launched here."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from carlang_runtime.errors import CarlangRuntimeError
from dbos import DBOSClient

from . import records
from .backend import (
    RUNS_QUEUE,
    TOOL_WORKFLOW,
    WORKFLOW,
    WorkerLook,
    approval_topic,
    check_database,
    expiry,
    explained,
    opening,
    shown_url,
    split_result,
)

__all__ = [
    "RunInfo",
    "list_runs",
    "show_run",
    "unserved_waits",
    "pending_approvals",
    "answer_approval",
    "cancel_run",
    "resume_run",
]


@dataclass(frozen=True)
class RunInfo:
    """One durable run: its id, DBOS status, when it started and last changed, its proposal,
    its error if it failed, the application version that runs it (see `APP_VERSION`),
    carlang's outcome of a run that ended (`outcome`: completed, aborted, rolled_back; and
    why, for an abort), and the worker (DBOS executor id) that runs or ran it."""

    run_id: str
    status: str
    created: str | None
    updated: str | None
    proposal: str | None
    error: str | None = None
    result: Mapping[str, Any] | None = field(default=None, compare=False)
    version: str | None = None
    outcome: str | None = None
    outcome_reason: str | None = None
    worker: str | None = None

    @property
    def shown_status(self) -> str:
        """What to call the run's state: carlang's outcome once the run recorded one (DBOS
        says SUCCESS for an aborted run too), else DBOS's status (PENDING, ENQUEUED,
        CANCELLED, ERROR, ...)."""
        return self.outcome or self.status


@contextmanager
def _client(database: str) -> Iterator[DBOSClient]:
    check_database(database)
    if database.startswith("sqlite:///") and not Path(database[len("sqlite:///") :]).exists():
        raise CarlangRuntimeError(
            f"no runs database at {shown_url(database)} (no run was started there)"
        )
    with opening(database):
        client = DBOSClient(system_database_url=database)
    try:
        yield client
    except CarlangRuntimeError:
        raise
    except Exception as exc:  # a database that is not DBOS's, or not reachable
        reason = explained(database, exc)
        if _NO_RUNS.search(reason):  # (a Postgres database that exists, no run was started)
            raise CarlangRuntimeError(
                f"no runs database at {shown_url(database)} (no run was started there)"
            ) from None
        raise CarlangRuntimeError(
            f"the runs database {shown_url(database)} cannot be read: {reason}"
        ) from None
    finally:
        client.destroy()


#: What a database without DBOS's tables says when they are read: Postgres, and SQLite.
_NO_RUNS = re.compile(
    r'relation "dbos\.\w+" does not exist|no such table: (?:main\.)?workflow_status'
)


def _time(epoch_ms: int | None) -> str | None:
    if epoch_ms is None:
        return None
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="seconds")


def _spec(status: Any) -> Mapping[str, Any] | None:
    """The `RunSpec` a run was started with (DBOS keeps the workflow's arguments)."""
    inputs = getattr(status, "input", None)
    args = inputs.get("args") if isinstance(inputs, Mapping) else getattr(inputs, "args", None)
    if not args or not isinstance(args[0], Mapping):
        return None
    spec: Mapping[str, Any] = args[0]
    return spec


def _proposal_name(status: Any) -> str | None:
    spec = _spec(status)
    wanted = spec.get("proposal") if isinstance(spec, Mapping) else None
    if isinstance(wanted, Mapping):
        return str(wanted.get("id"))
    return None if wanted is None else str(wanted)


def _info(status: Any) -> RunInfo:
    error = getattr(status, "error", None)
    output = getattr(status, "output", None)
    result, outcome = split_result(output) if isinstance(output, Mapping) else (None, None)
    state = str(status.status)
    return RunInfo(
        run_id=status.workflow_id,
        status=state,
        created=_time(status.created_at),
        updated=_time(status.updated_at),
        proposal=_proposal_name(status),
        error=None if error is None else str(error),
        result=result,
        version=status.app_version,
        outcome=None if outcome is None else outcome.get("status"),
        outcome_reason=None if outcome is None else outcome.get("reason"),
        # Who holds it: a queued run is no one's until a worker takes it.
        worker=None if state == "ENQUEUED" else getattr(status, "executor_id", None),
    )


def list_runs(database: str, *, limit: int | None = None, details: bool = True) -> list[RunInfo]:
    """The runs in `database`, newest first (without `details`: no proposal, no result,
    which is much cheaper for many runs)."""
    with _client(database) as client:
        found = client.list_workflows(
            name=WORKFLOW,
            sort_desc=True,
            limit=limit,
            load_input=details,
            load_output=details,
        )
        return [_info(status) for status in found]


def show_run(database: str, run_id: str) -> tuple[RunInfo, list[dict[str, Any]]]:
    """One run and the approvals it is waiting for."""
    with _client(database) as client:
        status = _run_status(client, database, run_id)
        return _info(status), _pending(client, status)


def unserved_waits(database: str, run_id: str) -> list[str]:
    """What run `run_id` waits for on a queue that no worker of its version serves (none seen
    lately: `WorkerLook`), a line each, as the process that waits says it: the run itself
    waiting on its queue for a worker to take it, and each of its tool calls waiting on its
    tool's queue (`run R: no worker serving gpu has been seen ...: its call of render (`r`)
    waits for one (start one with: ...)`). Empty when nothing waits, or every queue is
    served."""
    said: list[str] = []
    try:
        with _client(database) as client:
            status = _run_status(client, database, run_id)
            run_id = status.workflow_id  # (a prefix of it may have named it)
            if str(status.status) == "ENQUEUED" and _served_by_workers(status.queue_name):
                _look(database, status, said.append, f"run {run_id} waits for one")
            if str(status.status) != "PENDING":
                return said
            calls = client.list_workflows(
                parent_workflow_id=run_id, name=TOOL_WORKFLOW, status="ENQUEUED"
            )
            for call in sorted(calls, key=lambda c: c.workflow_id):
                if not _served_by_workers(call.queue_name):
                    continue
                action = _call_action(call)
                action_id = str(action.get("id") or call.workflow_id.removeprefix(f"{run_id}."))
                waiting = f"its call of {action.get('tool') or '?'} (`{action_id}`) waits for one"
                _look(database, call, lambda line: said.append(f"run {run_id}: {line}"), waiting)
    finally:
        records.dispose(database)
    return said


def _served_by_workers(queue: str | None) -> bool:
    """Whether work on `queue` waits for a worker that says it serves it: any queue but
    DBOS's own (`_dbos...`), which every DBOS process takes from."""
    return bool(queue) and not str(queue).startswith("_dbos")


def _look(database: str, status: Any, say: Any, waiting: str) -> None:
    """A `WorkerLook` for the workflow `status` on its queue, at its version (any, when the
    workflow carries none: then any worker of the latest version takes it)."""
    version = getattr(status, "app_version", None)
    look = WorkerLook(
        database, str(status.queue_name), say, version=version, any_version=version is None
    )
    look.look(waiting)


def _call_action(status: Any) -> Mapping[str, Any]:
    """The action (as JSON data) of a tool call's workflow: its third argument."""
    inputs = getattr(status, "input", None)
    args = inputs.get("args") if isinstance(inputs, Mapping) else getattr(inputs, "args", None)
    if args and len(args) > 2 and isinstance(args[2], Mapping):
        action: Mapping[str, Any] = args[2]
        return action
    return {}


def _pending(client: DBOSClient, status: Any) -> list[dict[str, Any]]:
    spec = _spec(status)
    if spec is None or str(status.status) not in ("PENDING", "ENQUEUED"):
        return []
    actions = _action_ids(spec)
    waiting = []
    for action_id in actions:
        event = client.get_event(status.workflow_id, approval_topic(action_id), 0)
        if isinstance(event, Mapping) and not event.get("answered"):
            waiting.append(dict(event))
    return waiting


def _action_ids(spec: Mapping[str, Any]) -> list[str]:
    wanted = spec.get("proposal")
    if isinstance(wanted, Mapping):
        return [str(a.get("id")) for a in wanted.get("actions", [])]
    for proposal in spec.get("program", {}).get("proposals", []):
        if proposal.get("id") == wanted:
            return [str(a.get("id")) for a in proposal.get("actions", [])]
    return []


def pending_approvals(database: str, run_id: str) -> list[dict[str, Any]]:
    """The approvals run `run_id` is waiting for: action, tool, parameters (secrets
    redacted), the policies' reasons and the timeout."""
    return show_run(database, run_id)[1]


def answer_approval(
    database: str,
    run_id: str,
    action_id: str,
    *,
    approved: bool,
    reason: str = "",
    approver: str | None = None,
) -> str:
    """Approve or deny an action a run (named by its id or a unique prefix of it; its id is
    returned) is waiting on. The first answer wins: it is recorded
    (insert-if-absent, `records.record_answer`) and only then sent, so an answer that finds
    one recorded (approved, denied, or expired) is refused, and so is one for a run not
    waiting for that action's approval: `CarlangRuntimeError`, nothing sent. This holds with
    no worker alive (the answer waits as a message) and for answers given at once."""
    try:
        with _client(database) as client:
            status = _run_status(client, database, run_id)
            run_id = status.workflow_id  # (a prefix of it may have named it)
            standing = records.recorded_answer(database, run_id, action_id)
            ours = False
            if standing is None:  # (checked first: an answered run is no longer waiting)
                request = _check_waiting(client, status, action_id)
                answer = {"approved": approved, "reason": reason, "approver": approver}
                if _expired(request):  # (no process was alive to record it at the deadline)
                    answer = expiry(float(request.get("timeout_s") or 0))
                standing, ours = records.record_answer(database, run_id, action_id, answer)
                ours = ours and not answer.get("expired")
            _deliver(client, status, action_id, standing)
            if not ours:
                raise CarlangRuntimeError(
                    f"`{action_id}` of run '{run_id}' is already answered:"
                    f" {records.describe_answer(standing)}"
                )
            return run_id
    finally:
        records.dispose(database)


def _run_status(client: DBOSClient, database: str, run_id: str) -> Any:
    """The run `run_id` names: its id, or a unique prefix of it (as `carlang events --run`
    and a commit's prefix in git take one); else `CarlangRuntimeError` saying which runs a
    prefix names, or that none has it."""
    found = client.list_workflows(workflow_ids=[run_id], name=WORKFLOW)
    if found:
        return found[0]
    if run_id:
        found = client.list_workflows(
            workflow_id_prefix=run_id,
            name=WORKFLOW,
            limit=_SHOWN_MATCHES + 1,
            load_input=False,
            load_output=False,
        )
    if len(found) == 1:
        return client.list_workflows(workflow_ids=[found[0].workflow_id], name=WORKFLOW)[0]
    where = shown_url(database)
    if found:
        ids = ", ".join(s.workflow_id for s in found[:_SHOWN_MATCHES])
        more = ", ..." if len(found) > _SHOWN_MATCHES else ""
        raise CarlangRuntimeError(
            f"run '{run_id}' in {where} may be any of {ids}{more}: give more of its id"
        )
    raise CarlangRuntimeError(
        f"no run '{run_id}' in {where} (`carlang runs list --database ...` lists its runs)"
    )


#: How many runs a prefix that names several lists.
_SHOWN_MATCHES = 5


def _check_waiting(client: DBOSClient, status: Any, action_id: str) -> Mapping[str, Any]:
    """The request the run waits on for `action_id`, or `CarlangRuntimeError`."""
    if str(status.status) in _ENDED:  # (a cancelled run may be resumed, and wait again)
        shown = _info(status).shown_status.lower()
        raise CarlangRuntimeError(
            f"run '{status.workflow_id}' already ended ({shown}): it waits for no approval"
        )
    waiting = {entry["action"]: entry for entry in _pending(client, status)}
    if action_id not in waiting:
        shown = ", ".join(sorted(waiting)) or "none"
        raise CarlangRuntimeError(
            f"run '{status.workflow_id}' is not waiting for an approval of `{action_id}`"
            f" (waiting: {shown})"
        )
    return waiting[action_id]


def _expired(request: Mapping[str, Any]) -> bool:
    """Whether an approval request's time is up: measured from when it was asked, as the
    run's own wait is (never, for a request of an earlier carlang, which carries no deadline)."""
    deadline = request.get("expires_at")
    return isinstance(deadline, (int, float)) and time.time() >= deadline


def _deliver(client: DBOSClient, status: Any, action_id: str, answer: Mapping[str, Any]) -> None:
    """Send the recorded `answer` to the run, once (the idempotency key): sent again by a
    later answer too, in case the one that recorded it died before sending. An expiry is the
    run's own (nothing to send), and a run that ended reads no more messages."""
    if answer.get("expired") or str(status.status) in ("SUCCESS", "ERROR"):
        return
    client.send(
        status.workflow_id,
        {key: answer.get(key) for key in ("approved", "reason", "approver")},
        approval_topic(action_id),
        idempotency_key=f"{status.workflow_id}:{action_id}:answer",
    )


def cancel_run(database: str, run_id: str) -> str:
    """Cancel a run (named by its id or a unique prefix of it; its id is returned): it stops
    at its next step. What ran stays done: a tool call in flight finishes, and its result is
    kept for a resume (`DbosSteps.run`), which does not call it again unless the resume comes
    before the call has finished."""
    with _client(database) as client:
        status = _run_status(client, database, run_id)
        _refuse_ended(status, "cancel", ("CANCELLED",))
        client.cancel_workflow(status.workflow_id)
        return str(status.workflow_id)


def resume_run(database: str, run_id: str) -> RunInfo:
    """Hand a run to a worker again: a cancelled one, or one whose worker died (PENDING, held
    by an executor id no process runs now). It continues from its last recorded step; a
    worker serving the runs queue (`carlang_runs`) takes it. (Not DBOS's own queue, DBOS's
    default for a resume: every DBOS process takes from that one, a foreground `carlang run`
    or a worker of another queue too.) The run as it was before the resume."""
    with _client(database) as client:
        status = _run_status(client, database, run_id)
        _refuse_ended(status, "resume")
        before = _info(status)
        client.resume_workflow(status.workflow_id, queue_name=RUNS_QUEUE)
        return before


#: DBOS's statuses of a run that ended (it runs no more, whatever is asked of it).
_ENDED = ("SUCCESS", "ERROR", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")


def _refuse_ended(status: Any, what: str, also: tuple[str, ...] = ()) -> None:
    """`CarlangRuntimeError` when the run cannot be `what`ed (cancelled, resumed): it ended
    (or is in one of the `also` statuses). DBOS takes either as a no-op, and the command said
    it had done it."""
    if str(status.status) in (*_ENDED, *also):
        shown = _info(status).shown_status.lower()
        raise CarlangRuntimeError(
            f"run '{status.workflow_id}' already ended ({shown}): there is nothing to {what}"
        )
