"""carlang runs as DBOS workflows.

A run is one DBOS workflow (`carlang_run`, its id the run id). It builds the runtime from a
`RunSpec` (the compiled program as IR, the proposal, the tool implementations by name, the
scope, where carlang's own event log goes), sets `Runtime.steps` to `DbosSteps`, so that every
tool call's result is a DBOS step (and its admission decision, when a replay could decide
otherwise: see `ProposalRun.records_admission`), and its approval gate to
`DurableApprovals`, so that an approval parks the workflow (DBOS `recv`) until `carlang approve`
or `carlang deny` answers or it expires. After a crash DBOS recovers the workflow: it runs the
same code again, the steps it recorded return their records instead of running, and the run
ends as it would have, every tool step's effect having happened once.

Events still go to carlang's event log (the DBOS tables are never the only record). A
recovered workflow runs its prefix again, deterministically: the events it would log again are
the ones the log already has (same sequence numbers), and are not written twice.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import math
import os
import re
import shlex
import socket
import sqlite3
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypedDict

import sqlalchemy
from carlang_runtime._version import __version__
from carlang_runtime.engine import (
    Approval,
    ApprovalRequest,
    Event,
    EventLog,
    JsonlSink,
    Runtime,
    SqliteSink,
)
from carlang_runtime.engine.events import EventSink
from carlang_runtime.engine.journal import SQLITE_SUFFIXES, use_write_ahead_log
from carlang_runtime.engine.loading import register_tool_spec
from carlang_runtime.engine.run import ProposalRun
from carlang_runtime.engine.state import check_tenant
from carlang_runtime.errors import CarlangRuntimeError
from carlang_runtime.ir import (
    Action,
    ActionProposal,
    CelPolicy,
    Program,
    ProposalResult,
    ToolCompensation,
)
from carlang_runtime.redact import shown_url
from dbos import DBOS, DBOSClient, SetWorkflowID
from dbos import error as dbos_error

from . import records

__all__ = [
    "APP_NAME",
    "WORKFLOW",
    "DEFAULT_DATABASE",
    "RunSpec",
    "RunStopped",
    "ToolInterrupted",
    "resume_command",
    "run_status",
    "make_spec",
    "DbosSteps",
    "DurableApprovals",
    "approval_topic",
    "expiry",
    "launch",
    "shutdown",
    "start_run",
    "submit",
    "submit_many",
    "run",
    "RUNS_QUEUE",
    "DATABASE_FORMS",
    "check_database",
    "database_file",
    "has_password",
    "shown_url",
    "check_approval_timeout",
    "check_tools",
    "quiet_dbos",
    "opening",
    "migrate",
    "prepare_database",
    "ApprovalWatcher",
    "WorkerLook",
    "app_version",
    "default_worker_id",
    "foreground_id",
    "start_a_worker",
    "notice",
    "unserved_queues",
    "UNSERVED_AFTER_S",
    "SEEN_WITHIN_S",
]

#: The DBOS application every carlang process joins (workers, submitters, the CLI).
APP_NAME = "carlang"
#: The name of the run workflow in the DBOS tables.
WORKFLOW = "carlang_run"
#: The workflow of one tool call sent to a queue's workers.
TOOL_WORKFLOW = "carlang_tool_call"
#: Where runs are kept when no database is named: a SQLite file in the working directory.
DEFAULT_DATABASE = "sqlite:///carlang-runs.db"
#: The sequence of steps a run records (which step names, in which order). A recovered run must
#: meet its recorded steps in the order it records them again, so a change of the sequence
#: (layout 2: a tool call's admission is a step only when a replay could decide otherwise;
#: layout 3: a level whose actions declare state writes runs in order when a policy reads the
#: state, each admission then followed by its call) bumps this number. It is part of the DBOS
#: application version (`application_version`): runs started under another layout are
#: recovered only by processes of that layout, never by these, which would fail them ("step 1
#: was recorded when ... was expected").
STEP_LAYOUT = 3
#: The DBOS application version of this process's runs (`DBOS__APPVERSION` overrides it:
#: see `app_version`).
APP_VERSION = f"carlang-{__version__}-steps{STEP_LAYOUT}"


def app_version() -> str:
    """The DBOS application version this process runs and tags the work it queues with:
    `DBOS__APPVERSION` when set, else `APP_VERSION`. A worker takes only work of its own
    version (DBOS dequeues by version), so this is also the version a worker must have to be
    counted as serving that work (`WorkerLook`)."""
    return os.environ.get("DBOS__APPVERSION") or APP_VERSION


def default_worker_id() -> str:
    """The executor id of a worker started without one: `DBOS__VMID` when set, else this
    machine's host name. Stable across restarts on one machine, so a worker started again
    there recovers the runs it left unfinished; two workers on one machine need an id each
    (`launch` refuses a second one while the first still beats)."""
    return os.environ.get("DBOS__VMID") or socket.gethostname() or "local"


def foreground_id(run_id: str) -> str:
    """The executor id of a foreground `carlang run --backend dbos`: its own, never a
    worker's, so that no process recovers another's runs as its own. The run it holds is
    finished by it or, if it stops first, by `carlang runs resume` (no process starts with
    this id again, so none recovers the run by itself)."""
    return f"foreground-{run_id}"


#: The queue that detached runs wait on until a worker takes them.
RUNS_QUEUE = "carlang_runs"
#: The queue that planner experiments' batches wait on (see `carlang_dbos.experiments`).
PLANNER_QUEUE = "carlang_planner"
#: How often a worker looks for work on a queue, in seconds (DBOS's default: 1). Planner
#: batches take a fraction of a second each: a second's wait between them would dominate.
POLLING_INTERVAL = {PLANNER_QUEUE: 0.2}


class RunSpec(TypedDict, total=False):
    """What a run workflow needs, as JSON-ready data (it is the workflow's input)."""

    program: dict[str, Any]  # the compiled program (IR)
    proposal: str | dict[str, Any]  # a proposal of the program by name, or a CAR proposal
    tools: list[str]  # tool implementations: module:attr or path/to/file.py:attr
    scope: dict[str, Any]
    events: str | None  # carlang's event log: run.db or run.jsonl
    approval_timeout: float | None  # seconds an approval may wait (None: a day)
    compensate: bool
    state: dict[str, Any] | None  # initial state over the program's
    queues: dict[str, str]  # tool -> the queue whose workers run its calls (over the program's)


def make_spec(
    program: Program,
    proposal: str | ActionProposal,
    *,
    tools: Sequence[str] = (),
    scope: Mapping[str, Any] | None = None,
    events: str | Path | None = None,
    approval_timeout: float | None = None,
    compensate: bool = True,
    state: Mapping[str, Any] | None = None,
    queues: Mapping[str, str] | None = None,
) -> RunSpec:
    """The spec of a run of `proposal` (a name in `program`, or a CAR proposal). Checked as
    the in-process engine checks its run before anything is recorded: `tools` must load
    (`check_tools`) and `approval_timeout` be a positive number of seconds;
    `CarlangRuntimeError` otherwise, so a run that cannot work is never queued."""
    if approval_timeout is not None:
        check_approval_timeout(approval_timeout)
    check_tools(program, tools)
    return {
        "program": program.model_dump(mode="json"),
        "proposal": proposal if isinstance(proposal, str) else proposal.model_dump(mode="json"),
        "tools": [_portable(spec) for spec in tools],
        "scope": dict(scope or {}),
        "events": str(Path(events).resolve()) if events is not None else None,
        "approval_timeout": approval_timeout,
        "compensate": compensate,
        "state": dict(state) if state is not None else None,
        "queues": dict(queues or {}),
    }


def check_approval_timeout(seconds: float, option: str = "approval_timeout") -> float:
    """`seconds` if an approval can wait that long: a finite number above 0 and at most a
    year; else `CarlangRuntimeError` naming `option` (0 or less would expire every approval at
    once; 1e308 overflows the clock)."""
    if not (math.isfinite(seconds) and 0 < seconds <= _YEAR_S):
        raise CarlangRuntimeError(
            f"{option} {seconds:g}: give the seconds an approval may wait, a number above 0"
            f" and at most a year, {_YEAR_S} (like 600)"
        )
    return seconds


_YEAR_S = 365 * 24 * 3600


def check_tools(program: Program, tools: Sequence[str]) -> None:
    """Load every tool spec as the in-process engine does before its run (`--tools
    nope.py:TOOLS` is its error here, not a failed run on a worker later):
    `CarlangRuntimeError` for a spec that names nothing usable."""
    runtime = Runtime.from_program(program)
    try:
        for spec in tools:
            register_tool_spec(runtime, spec)
    finally:
        runtime.close()


def _portable(spec: str) -> str:
    """A tool spec that a worker in another directory can load too."""
    target, _, attr = spec.rpartition(":")
    if target.endswith(".py"):
        return f"{Path(target).resolve()}:{attr}"
    if not target and attr.endswith(".py"):  # (a file named alone: `--tools tools.py`)
        return str(Path(attr).resolve())
    return spec


class DbosSteps:
    """`Runtime.steps` on DBOS: each step is a DBOS step of the current workflow; a call of a
    tool bound to a queue (`queue gpu` in its declaration, or the spec's `queues`) is a child
    workflow on that queue instead, run by whichever worker serves it."""

    def __init__(
        self,
        spec: RunSpec,
        run_id: str,
        queues: Mapping[str, str],
        database: str | None = None,
    ) -> None:
        self.spec = spec
        self.run_id = run_id
        self.queues = queues
        #: Where late step results are kept (`carlang_dbos.records`); None: nowhere.
        self.database = database
        self._late: dict[int, tuple[str, Any]] | None = None
        self.ownership = Ownership()
        #: The calls waiting on each queue (action id -> tool), and the task that looks for
        #: a worker serving that queue while any waits (`_look_for_workers`).
        self._waiting: dict[str, dict[str, str]] = {}
        self._looks: dict[str, asyncio.Task[None]] = {}

    async def run(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` once as a DBOS step named `name`; on a replay, its record.

        A step that finishes after its run was cancelled is not recorded by DBOS (the
        cancelled execution's writes are refused): its result is kept in carlang's own
        records instead, and the resumed run's step returns it rather than running `fn`
        again. (A step still running when the run is resumed runs twice: at least once.)"""
        if self.database is None:
            try:
                with self.ownership.watch():
                    return await DBOS.run_step_async({"name": name}, fn, *args)
            except _StepInterrupted as stopped:
                raise stopped.interrupt from None
        finished: list[tuple[int, Any]] = []
        step = self._async_step if inspect.iscoroutinefunction(fn) else self._sync_step
        try:
            with self.ownership.watch():
                return await DBOS.run_step_async({"name": name}, step, name, fn, args, finished)
        except _StepInterrupted as stopped:
            raise stopped.interrupt from None
        except BaseException:
            if finished:  # `fn` ran, yet DBOS did not record it: keep it ourselves
                await asyncio.to_thread(self._keep_late, name, *finished[0])
            raise

    def _sync_step(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], finished: list[Any]
    ) -> Any:
        step_id = DBOS.step_id
        if step_id is not None:
            late = self._late_result(step_id, name)
            if late is not None:
                return late[0]
        result = fn(*args)
        finished.append((step_id, result))
        return result

    async def _async_step(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], finished: list[Any]
    ) -> Any:
        step_id = DBOS.step_id
        if step_id is not None:
            late = await asyncio.to_thread(self._late_result, step_id, name)
            if late is not None:
                return late[0]
        result = await fn(*args)
        finished.append((step_id, result))
        return result

    def _late_result(self, step_id: int, name: str) -> tuple[Any] | None:
        """The kept result of step `step_id` (as a 1-tuple: a result may be None), or None.
        Read once per execution of the run: rows are never changed, so a replay reads the
        same ones (and a step DBOS recorded never gets here)."""
        assert self.database is not None
        if self._late is None:
            self._late = records.late_steps(self.database, self.run_id)
        found = self._late.get(step_id)
        return (found[1],) if found is not None and found[0] == name else None

    def _keep_late(self, name: str, step_id: int | None, result: Any) -> None:
        assert self.database is not None
        if step_id is None:
            return
        try:
            records.record_late_step(self.database, self.run_id, step_id, name, result)
        except Exception:  # noqa: BLE001 - the step then runs again on resume: at least once
            logging.getLogger(__name__).warning(
                "run %s: the result of step %s (%s) could not be kept; a resume repeats it",
                self.run_id,
                step_id,
                name,
                exc_info=True,
            )

    async def call(self, run: ProposalRun, action: Action) -> dict[str, Any]:
        """The tool call, once: here as a step, or on its queue's workers."""
        queue = self.queues.get(action.tool or "")
        if queue is None:
            call = _unrecorded_if_interrupted(run.call_record)
            record: dict[str, Any] = await self.run(f"call {action.id}", call, action)
            return record
        with self.ownership.watch():
            # Created if missing; its limits are the workers' (see `launch`), never reset here.
            await DBOS.register_queue_async(queue, on_conflict="never_update")
            with SetWorkflowID(f"{self.run_id}.{action.id}"):
                handle = await DBOS.enqueue_workflow_async(
                    queue,
                    carlang_tool_call,
                    self.spec,
                    self.run_id,
                    action.model_dump(mode="json"),
                    dict(run.live),
                )
            result: dict[str, Any] = await self._result_of(queue, action, handle)
        if INTERRUPTED in result:  # (the call's worker recorded it so: a resume meets it again)
            raise ToolInterrupted(str(result[INTERRUPTED]), action.id, action.tool or "")
        return result

    async def _result_of(self, queue: str, action: Action, handle: Any) -> Any:
        """The result of a call sent to `queue`, once a worker made it; while it waits, a
        look for a worker serving the queue (one per queue for all its calls waiting), which
        says so when none is seen (`WorkerLook`). The look is no DBOS operation: a replay
        meets the same steps whatever it saw."""
        waiting = self._waiting.setdefault(queue, {})
        waiting[action.id] = action.tool or action.id
        if self.database is not None and queue not in self._looks:
            self._looks[queue] = asyncio.create_task(self._look_for_workers(queue))
        try:
            return await handle.get_result()
        finally:
            waiting.pop(action.id, None)
            if not waiting:
                self._waiting.pop(queue, None)
                look = self._looks.pop(queue, None)
                if look is not None:
                    look.cancel()

    async def _look_for_workers(self, queue: str) -> None:
        """While calls wait on `queue`: after `UNSERVED_AFTER_S`, and then at every
        heartbeat, whether a worker serving it is seen; said (`notice`) when that changes."""
        assert self.database is not None
        look = WorkerLook(self.database, queue, lambda line: notice(f"run {self.run_id}: {line}"))
        try:
            await asyncio.sleep(UNSERVED_AFTER_S)
            while self._waiting.get(queue):
                await asyncio.to_thread(look.look, _calls_waiting(self._waiting[queue]))
                await asyncio.sleep(records.HEARTBEAT_S)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a notice that cannot be said leaves the run be
            logging.getLogger(__name__).debug("looking for workers failed", exc_info=True)


def _calls_waiting(waiting: Mapping[str, str]) -> str:
    """What waits on a queue, said in a notice: `s` (render), or 6 calls of render."""
    if len(waiting) == 1:
        [(action_id, tool)] = waiting.items()
        return f"its call of {tool} (`{action_id}`) waits for one"
    return f"{len(waiting)} calls of {', '.join(sorted(set(waiting.values())))} wait for one"


class ToolInterrupted(CarlangRuntimeError):
    """A tool raised `KeyboardInterrupt` or `SystemExit`: raised in its place (its message
    is what the runtime reports, `interrupted: KeyboardInterrupt`), naming the action whose
    call it was (`action`, `tool`). Never let through as it is: asyncio lets a task's
    `KeyboardInterrupt` or `SystemExit` escape the event loop, which stopped DBOS's loop, and
    with it every later run of the process."""

    def __init__(self, message: str, action: str = "", tool: str = "") -> None:
        super().__init__(message)
        self.action = action
        self.tool = tool

    def __reduce__(self) -> tuple[Any, ...]:  # (DBOS pickles a queued call's outcome)
        return (type(self), (str(self), self.action, self.tool))

    def said(self) -> str:
        """What stopped the run, in words: `the tool of `x` (boom) raised KeyboardInterrupt`."""
        return f"the tool of `{self.action}` ({self.tool}) raised {self}"


class _StepInterrupted(asyncio.CancelledError):
    """Carries a `ToolInterrupted` out of a DBOS step without DBOS recording it (DBOS records
    no step that ends in a cancellation): the run stops, and a resume calls the tool again,
    as the in-process engine's resume does after an interruption."""

    def __init__(self, interrupt: ToolInterrupted) -> None:
        super().__init__(str(interrupt))
        self.interrupt = interrupt


def _interruption(exc: BaseException, action: Action) -> ToolInterrupted:
    """`exc`, raised by `action`'s tool, as the runtime words an interruption:
    `KeyboardInterrupt`, `SystemExit: 3`."""
    text = str(exc)
    message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return ToolInterrupted(message, action.id, action.tool or "")


def _unrecorded_if_interrupted(
    call: Callable[[Action], Coroutine[Any, Any, dict[str, Any]]],
) -> Callable[[Action], Coroutine[Any, Any, dict[str, Any]]]:
    """`call` (a tool call's step), with a tool's `KeyboardInterrupt` or `SystemExit` a
    `_StepInterrupted` (see `DbosSteps.run`)."""

    async def step(action: Action) -> dict[str, Any]:
        try:
            return await call(action)
        except (KeyboardInterrupt, SystemExit) as exc:
            raise _StepInterrupted(_interruption(exc, action)) from None

    return step


def approval_topic(action_id: str) -> str:
    """The DBOS topic on which the answer for one action's approval arrives."""
    return f"approval:{action_id}"


#: Told, in the process that runs the workflow, when a run starts waiting for an approval:
#: the run id and the request as `carlang runs show` lists it.
ApprovalWatcher = Callable[[str, Mapping[str, Any]], None]

#: The watchers of the runs this process started and waits for (`run(..., on_approval=)`).
_watchers: dict[str, ApprovalWatcher] = {}


class DurableApprovals:
    """An approval gate that parks the workflow until someone answers: it publishes the
    request (a DBOS event `approval:<action>`, what `carlang runs show` lists) and waits for a
    message on the action's topic. No answer in time is an expired approval: refused, and
    reported as expired, not as a denial. In time: within the `approval_timeout` of the
    policies that asked (the shortest, when several give one), else `timeout` seconds (the
    runtime's; None: a day).

    The first answer wins: `carlang approve`/`deny` record theirs with an insert-if-absent
    (`records.record_answer`) before sending it, and only the one that recorded it sends; the
    expiry is recorded the same way, so an answer that lands as the wait times out is either
    the one that stands or refused, never accepted and then ignored."""

    def __init__(self, timeout: float | None, policies: Mapping[str, float] | None = None) -> None:
        self.timeout = timeout if timeout is not None else 86_400.0
        self.policies = dict(policies or {})
        self.ownership = Ownership()

    @classmethod
    def for_program(cls, program: Program, timeout: float | None) -> DurableApprovals:
        """The gate of `program`'s runs: its policies' `approval_timeout`s over `timeout`."""
        return cls(
            timeout,
            {
                policy.name: policy.approval_timeout_ms / 1000
                for policy in program.policies
                if isinstance(policy, CelPolicy) and policy.approval_timeout_ms is not None
            },
        )

    def timeout_for(self, request: ApprovalRequest) -> float:
        """Seconds `request` may wait: its policies' timeout, else the runtime's."""
        given = [self.policies[m.policy] for m in request.policies if m.policy in self.policies]
        return min(given) if given else self.timeout

    async def review(self, request: ApprovalRequest) -> Approval:
        """Wait (durably) for `carlang approve` / `carlang deny`."""
        action_id = request.action.id
        run_id = DBOS.workflow_id or ""
        timeout = self.timeout_for(request)
        waiting = {
            "action": action_id,
            "tool": request.action.tool,
            "parameters": dict(request.parameters),
            "policies": [match.policy for match in request.policies],
            "reason": request.reason,
            "timeout_s": timeout,
            # When it expires (epoch seconds, this clock): `carlang approve` refuses an answer
            # after it, whether or not a process was alive then to record the expiry. (On a
            # replay the event stands as first published, with the first deadline, which is
            # the one DBOS's durable wait keeps too.)
            "expires_at": time.time() + timeout,
        }
        with self.ownership.watch():
            await DBOS.set_event_async(approval_topic(action_id), waiting)
            watcher = _watchers.get(run_id)
            if watcher is not None:
                watcher(run_id, waiting)
            answer = await _received(run_id, approval_topic(action_id), timeout)
            if not isinstance(answer, Mapping):
                answer = await asyncio.to_thread(_settle_expiry, run_id, action_id, timeout)
            await DBOS.set_event_async(approval_topic(action_id), {"answered": True})
        return Approval(
            answer.get("approved") is True,  # fail closed on anything but a recorded yes
            str(answer.get("reason") or ""),
            answer.get("approver"),
            bool(answer.get("expired")),
        )


def _settle_expiry(run_id: str, action_id: str, timeout: float) -> Mapping[str, Any]:
    """The answer that stands when the wait timed out: the expiry, unless an answer was
    recorded first (it is sent after it is recorded: it may not have arrived yet). Not a DBOS
    step: the row never changes once written, so a replay settles the same way."""
    if not _launched:  # (a gate used without `launch`: nothing to record the expiry in)
        return expiry(timeout)
    standing, _ = records.record_answer(_launched[0], run_id, action_id, expiry(timeout))
    return standing


def expiry(timeout: float) -> dict[str, Any]:
    """The answer to an approval that waited `timeout` seconds without one."""
    return {
        "approved": False,
        "expired": True,
        "reason": f"approval expired after {timeout:g}s without an answer",
        "approver": None,
    }


#: How often the runs that wait in a process for an approval are looked at, in seconds:
#: whether each is still its execution's there (no DBOS call ends that wait when the run is
#: cancelled).
CANCEL_LOOK_S = 1.0


async def _received(run_id: str, topic: str, timeout: float) -> Any:
    """`DBOS.recv_async(topic, timeout)` in run `run_id`'s workflow: the message, or None
    after `timeout` seconds; unless the execution stops owning the run while it waits (see
    `_Parked`): then `DBOSWorkflowCancelledError`, what DBOS's next call would raise, so the
    run unwinds and this execution of it ends. (It waited until the approval expired, a day by
    default: on a worker, holding a place of its queue's `--concurrency` all along.) A resume
    of the run waits again, until the same deadline: DBOS keeps the first one."""
    received = asyncio.ensure_future(DBOS.recv_async(topic, timeout_seconds=timeout))
    with _parked_here().waiting(run_id) as lost:
        try:
            await asyncio.wait({received, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not received.done():
                received.cancel()
                await asyncio.wait({received})
    if not received.cancelled():
        return received.result()
    raise dbos_error.DBOSWorkflowCancelledError(
        f"run {run_id} was cancelled, or handed on, while it waited for an approval"
    )


class _Parked:
    """The runs that wait for an approval's answer on one event loop (`_received`), looked at
    together every `CANCEL_LOOK_S` seconds, in one query: a run that is no longer PENDING on
    this process's executor (cancelled by `carlang runs cancel`, handed to a queue or to
    another worker by `carlang runs resume`) is no longer its execution's here, and its wait is
    told so (its `lost` future resolves)."""

    def __init__(self) -> None:
        self._lost: dict[str, set[asyncio.Future[None]]] = {}
        self._look: asyncio.Task[None] | None = None

    @contextmanager
    def waiting(self, run_id: str) -> Iterator[asyncio.Future[None]]:
        """While run `run_id` waits in the block: a future that resolves if it is lost."""
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._lost.setdefault(run_id, set()).add(lost)
        if self._look is None or self._look.done():
            # In a context of its own: its queries are no steps of the run that started it.
            self._look = contextvars.Context().run(asyncio.create_task, self._looking())
            self._look.add_done_callback(self._looked)
        try:
            yield lost
        finally:
            lost.cancel()
            waits = self._lost.get(run_id, set())
            waits.discard(lost)
            if not waits:
                self._lost.pop(run_id, None)

    def _looked(self, look: asyncio.Task[None]) -> None:
        if self._look is look:  # (a task done keeps its loop alive: see `_parked`)
            self._look = None

    async def _looking(self) -> None:
        while True:
            await asyncio.sleep(CANCEL_LOOK_S)
            # Only the waits that began before the query: a run resumed here since a query
            # saw it cancelled is not told it was.
            looked = {run_id: set(waits) for run_id, waits in self._lost.items()}
            if not looked:
                return
            try:
                gone = await asyncio.to_thread(_not_owned_here, list(looked))
            except Exception:  # noqa: BLE001 - looked at again next time
                logging.getLogger(__name__).debug("looking at waiting runs failed", exc_info=True)
                continue
            for run_id in gone:
                for lost in looked[run_id]:
                    if not lost.done():
                        lost.set_result(None)


def _not_owned_here(run_ids: list[str]) -> set[str]:
    """Which of the runs `run_ids` no execution in this process owns now: not PENDING
    (CANCELLED, ENQUEUED again by a resume, ended), or PENDING on another executor."""
    here = DBOS.executor_id
    statuses = DBOS.list_workflows(workflow_ids=run_ids, load_input=False, load_output=False)
    return {s.workflow_id for s in statuses if s.status != "PENDING" or s.executor_id != here}


#: The runs waiting for an approval on each event loop of this process.
_parked: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Parked] = weakref.WeakKeyDictionary()


def _parked_here() -> _Parked:
    """The runs waiting for an approval on the running event loop."""
    loop = asyncio.get_running_loop()
    parked = _parked.get(loop)
    if parked is None:
        parked = _parked[loop] = _Parked()
    return parked


class Ownership:
    """Whether this execution of a run still owns it. A cancelled execution (or one whose run
    was handed to another worker) learns it from the DBOS call that refuses it, and unwinds;
    what the runtime logs on the way out (the actions and the run "interrupted") is not what
    happens to the run, which a resume continues and logs itself: so the run's event log
    takes no more events from this execution (see `_Owned`). (A run waiting for an approval
    is told by `_received`, which raises as DBOS would.)"""

    def __init__(self) -> None:
        self.lost = False

    @contextmanager
    def watch(self) -> Iterator[None]:
        """Note a refusal of the DBOS calls in the block (and let it unwind the run)."""
        try:
            yield
        except (dbos_error.DBOSWorkflowCancelledError, dbos_error.DBOSWorkflowConflictIDError):
            self.lost = True
            raise


class _Owned:
    """A sink that takes events only while its execution owns the run (`Ownership`)."""

    def __init__(self, sink: EventSink, ownership: Ownership) -> None:
        self.sink = sink
        self.ownership = ownership

    def write(self, event: Event) -> None:
        if not self.ownership.lost:
            self.sink.write(event)

    def flush(self) -> None:
        self.sink.flush()

    def close(self) -> None:
        self.sink.close()


class _AfterSeq:
    """A sink that skips what it already holds: the first `held` events of an execution,
    which a recovered workflow logs again (see `_replayed`)."""

    def __init__(self, sink: EventSink, held: int) -> None:
        self.sink = sink
        self.held = held

    def write(self, event: Event) -> None:
        if event.seq > self.held:
            self.sink.write(event)

    def flush(self) -> None:
        self.sink.flush()

    def close(self) -> None:
        self.sink.close()


def _event_log(target: str | None, run_id: str, ownership: Ownership) -> EventLog:
    if target is None:
        return EventLog()
    return EventLog([_Owned(_sink(target, run_id), ownership)])


def _sink(target: str, run_id: str) -> EventSink:
    path = Path(target)
    if path.suffix in SQLITE_SUFFIXES:
        return _AfterSeq(SqliteSink(path), _replayed(path, run_id) if path.exists() else 0)
    return JsonlSink(path)


def _replayed(path: Path, run_id: str) -> int:
    """How many of the events of run `run_id` that the SQLite log `path` holds its next
    execution logs again (an execution numbers its events from 1, and a replay logs the same
    ones in the same order): every one but those of an execution that stopped without an
    outcome (its process stopped cleanly, a tool interrupted it) that no replay logs again.
    Those are what it logged as it stopped (`_logged_as_it_stopped`), and the
    `action_executing` of the calls it stopped, right before: the next execution makes those
    calls again, and logs them as it makes them. Counting them (the largest sequence number,
    as before) dropped the recovered execution's events that took their numbers."""
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            "SELECT kind, data FROM events WHERE run_id = ? ORDER BY id", (run_id,)
        ).fetchall()
    except sqlite3.Error:
        return 0
    finally:
        connection.close()
    kinds = [str(kind) for kind, _ in rows]
    stopped = [
        _logged_as_it_stopped(kind, data) for kind, (_, data) in zip(kinds, rows, strict=True)
    ]
    for index in range(len(stopped)):
        if stopped[index] and (index == 0 or not stopped[index - 1]):
            before = index - 1
            while before >= 0 and kinds[before] == "action_executing" and not stopped[before]:
                stopped[before] = True
                before -= 1
    return stopped.count(False)


def _logged_as_it_stopped(kind: str, data: Any) -> bool:
    """Whether an event (its kind and JSON data) is one an execution logs as it stops
    without an outcome (see `_replayed`)."""
    try:
        document = json.loads(data) if isinstance(data, str) else None
    except ValueError:
        return False
    if not isinstance(document, dict):
        return False
    if kind == "run_completed":
        return document.get("status") in ("interrupted", "failed")
    if kind == "proposal_completed":
        return document.get("status") == "interrupted"
    return document.get("interrupted") is True


def build_runtime(
    spec: RunSpec, run_id: str, ownership: Ownership | None = None
) -> tuple[Runtime, ActionProposal]:
    """The runtime and the proposal of one run, from its spec (`ownership`: of the execution
    that runs it)."""
    program = Program.model_validate(spec["program"])
    ownership = ownership if ownership is not None else Ownership()
    approvals = DurableApprovals.for_program(program, spec.get("approval_timeout"))
    approvals.ownership = ownership
    runtime = Runtime.from_program(
        program,
        events=_event_log(spec.get("events"), run_id, ownership),
        approval=approvals,
        compensate=spec.get("compensate", True),
    )
    state = spec.get("state")
    if state:
        runtime.state.replace({**program.initial_state, **state})
    for tool_spec in spec.get("tools", []):
        register_tool_spec(runtime, tool_spec)
    queues = {t.name: t.queue for t in program.tools if t.queue is not None}
    queues.update(spec.get("queues") or {})
    steps = DbosSteps(spec, run_id, queues, _launched[0] if _launched else None)
    steps.ownership = ownership
    runtime.steps = steps
    wanted = spec["proposal"]
    if isinstance(wanted, str):
        found = program.proposal(wanted)
        if found is None:
            raise CarlangRuntimeError(f"the program has no proposal `{wanted}`")
        return runtime, found
    return runtime, ActionProposal.model_validate(wanted)


@DBOS.workflow(name=WORKFLOW)
async def carlang_run(spec: RunSpec) -> dict[str, Any]:
    """One carlang run, durably (see the module's docstring). A run that cannot start here
    (its tools do not load on this worker, its event log cannot be opened) or that a tool
    interrupted (`ToolInterrupted`) stops without an outcome: it stays PENDING, and `carlang
    runs resume` (or this worker started again) takes it up once what stopped it is fixed."""
    run_id = DBOS.workflow_id or ""
    ownership = Ownership()
    try:
        runtime, proposal = build_runtime(spec, run_id, ownership)
    except Exception as exc:  # noqa: BLE001 - said in one line; the run waits for a fix
        _stop(run_id, f"cannot start here: {_problem(exc)}")
    try:
        result = await runtime.execute_async(proposal, scope=spec.get("scope"), run_id=run_id)
        outcome = _outcome(runtime, run_id)
    except ToolInterrupted as exc:
        _stop(run_id, f"was interrupted: {exc.said()}")
    finally:
        runtime.close()
    return {**result.model_dump(mode="json"), OUTCOME: outcome}


#: The runs this process runs in the foreground (`run`), and why each stopped, if it did.
_foreground: dict[str, str | None] = {}


def _problem(exc: Exception) -> str:
    """An exception in one line: carlang's own say what is wrong; others add their type."""
    if isinstance(exc, CarlangRuntimeError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _stop(run_id: str, reason: str) -> NoReturn:
    """End this execution of run `run_id` without an outcome (DBOS records none for a
    workflow that ends cancelled): the run stays PENDING, resumable. Said by the process that
    waits for the run (a foreground `run`), else on this process's notices (a worker's
    stderr)."""
    if run_id in _foreground:
        _foreground[run_id] = reason
    else:
        notice(
            f"run {run_id} {reason}; it stays pending: once that is fixed, take it up again"
            f" with `{resume_command(run_id)}` (or start this worker again)"
        )
    raise asyncio.CancelledError(reason)


def resume_command(run_id: str, database: str | None = None) -> str:
    """The command that resumes run `run_id` of `database` (None: the one this process
    serves), its password left to the environment, never shown."""
    where = database if database is not None else (_launched[0] if _launched else None)
    command = f"carlang runs resume {shlex.quote(run_id)}"
    if where is None:
        return command
    if has_password(where):
        return f"{command} (with CARLANG_DATABASE set to the runs database's URL)"
    return f"{command} --database {shlex.quote(where)}"


#: The key of a run's result document that holds carlang's outcome of the run (`_outcome`):
#: DBOS says SUCCESS for every run that returned, aborted ones included.
OUTCOME = "carlang_outcome"


def _outcome(runtime: Runtime, run_id: str) -> dict[str, Any]:
    """How the run ended in carlang's terms: `status` completed, aborted or rolled_back (what
    `run_completed` logs) and, for an abort, the `reason` its proposal gave."""
    ended = runtime.events.query("run_completed", run_id=run_id)
    proposals = runtime.events.query("proposal_completed", run_id=run_id)
    status = (ended[-1].data or {}).get("status") if ended else None
    reason = (proposals[-1].data or {}).get("reason") if proposals else None
    document: dict[str, Any] = {"status": status or "completed"}
    if reason:
        document["reason"] = reason
    return document


def split_result(document: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A run workflow's output as (the `ProposalResult` document, carlang's outcome or None:
    runs recorded before the outcome was)."""
    result = {key: value for key, value in document.items() if key != OUTCOME}
    outcome = document.get(OUTCOME)
    return result, dict(outcome) if isinstance(outcome, Mapping) else None


@DBOS.workflow(name=TOOL_WORKFLOW)
async def carlang_tool_call(
    spec: RunSpec, run_id: str, action: dict[str, Any], state: dict[str, Any]
) -> dict[str, Any]:
    """One tool call of run `run_id`, on a worker of the tool's queue: the call is a step of
    this workflow (done once), made with the run's state as it was when the call was sent."""
    runtime, _ = build_runtime({**spec, "events": None}, run_id)
    call = Action.model_validate(action)
    runtime.state.replace(state, tenant=check_tenant((spec.get("scope") or {}).get("tenant")))
    run = ProposalRun(
        runtime,
        ActionProposal(id=f"{run_id}.{call.id}", actions=[call]),
        run_id=run_id,
        session=None,
        scope=spec.get("scope") or {},
        cancel=None,
    )
    try:
        record: dict[str, Any] = await DBOS.run_step_async(
            {"name": f"call {call.id}"}, _interruptions_recorded(run.call_record), call
        )
        return record
    finally:
        run.writes.release()
        runtime.close()


def _interruptions_recorded(
    call: Callable[[Action], Coroutine[Any, Any, dict[str, Any]]],
) -> Callable[[Action], Coroutine[Any, Any, dict[str, Any]]]:
    """`call` (a tool call on a queue's worker), with a tool's `KeyboardInterrupt` or
    `SystemExit` recorded as the call's outcome (`{"interrupted": "KeyboardInterrupt"}`),
    which the run that sent it then meets, and stops on (`DbosSteps.call`); the worker's
    event loop goes on."""

    async def step(action: Action) -> dict[str, Any]:
        try:
            return await call(action)
        except (KeyboardInterrupt, SystemExit) as exc:
            return {INTERRUPTED: str(_interruption(exc, action))}

    return step


#: The key of a queued call's outcome that says its tool interrupted it (and how).
INTERRUPTED = "interrupted"


_launched: list[str] = []


def launch(
    database: str = DEFAULT_DATABASE,
    *,
    queues: Sequence[str] | None = None,
    executor: str | None = None,
    concurrency: int | None = None,
    global_concurrency: Mapping[str, int] | None = None,
    create: bool = True,
    notices: Callable[[str], None] | None = None,
) -> None:
    """Start DBOS in this process on `database` (a SQLite or Postgres URL), once: a Postgres
    database that does not exist is created if `create`, else refused (`prepare_database`:
    `carlang worker` creates the database it serves, a foreground `carlang run` does not).

    A worker names the `queues` it serves (None: carlang's and every other; an empty list:
    none, a process that runs only the runs it starts itself, as a foreground `carlang run`
    does), its `executor` id (None: `default_worker_id`; a process that starts with an id
    recovers the runs that id left unfinished: give each worker a stable one of its own), how
    many workflows of each of its queues one worker runs at once (`concurrency`) and, per
    queue, how many run at once across every worker (`global_concurrency`). `notices` is told
    what the runs here wait for (a call on a queue no worker serves: see `WorkerLook`); None:
    the `carlang_dbos` logger.

    A process that serves queues says so in the database (its heartbeat: what `WorkerLook`
    reads), and does not start while another process serving the database with the same id
    still beats (`CarlangRuntimeError`): the two would recover each other's runs.

    A queue's limits live in the database, one row per queue that every process reads: a
    process that gives limits sets them for all (the last one started wins, so give every
    worker of a queue the same); one that gives none keeps those stored."""
    if _launched:
        if _launched[0] != database:
            raise CarlangRuntimeError(
                f"DBOS already runs here on {_launched[0]}; one process serves one database"
            )
        return
    check_database(database)
    limits = dict(global_concurrency or {})
    served = list(queues) if queues is not None else [RUNS_QUEUE, PLANNER_QUEUE]
    not_served = sorted(set(limits) - set(served)) if queues is not None else []
    if not_served:
        raise CarlangRuntimeError(
            f"a global concurrency for {', '.join(not_served)}, which this worker does not"
            " serve: add --queue for it"
        )
    worker = executor if executor is not None else default_worker_id()
    version = app_version()
    config: dict[str, Any] = {
        "name": APP_NAME,
        "system_database_url": database,
        "log_level": "WARNING",
        "notification_listener_polling_interval_sec": 0.2,
        "application_version": version,
        "executor_id": worker,
    }
    if database.startswith("sqlite:"):
        problem = sqlite_problem()
        if problem is not None:
            raise CarlangRuntimeError(problem)
        config["system_database_engine"] = _sqlite_engine(database)
    prepare_database(database, create=create)
    del _notices[1:]
    if notices is not None:
        _notices.append(notices)
    served_queues = list(queues) if queues else None
    instance = uuid.uuid4().hex
    heartbeat = None
    if served:
        # Before DBOS launches: it recovers, as it starts, every unfinished run of its id.
        with opening(database):
            _claim_id(database, worker, instance)
            # Beating from the claim on, not from the end of the launch: a launch that takes
            # longer than SILENT_AFTER_S (a slow database, many runs to recover) must not let
            # a worker started meanwhile with this id take it over. Seen by the commands that
            # queue work and wait for it (`records.workers_seen`).
            heartbeat = _Heartbeat(database, worker, served_queues, version, instance)
    # Set first: the runs DBOS recovers as it launches read it (`build_runtime`).
    _launched.append(database)
    log = _DbosLog(database)
    logging.getLogger("dbos").addFilter(log)
    _dbos_logs.append(log)
    try:
        _launch_on(database, config, queues)
    except BaseException:
        _launched.clear()
        _forget_dbos_logs()
        if heartbeat is not None:
            heartbeat.stop()  # (which frees the id)
        raise
    for queue in dict.fromkeys([*served, *limits]):
        limit = limits.get(queue)
        given = concurrency is not None or limit is not None
        DBOS.register_queue(
            queue,
            # DBOS refuses a per-worker limit above the global one; the global one is the cap.
            worker_concurrency=min(concurrency, limit) if concurrency and limit else concurrency,
            global_concurrency=limit,
            polling_interval_sec=POLLING_INTERVAL.get(queue, 1.0),
            on_conflict="always_update" if given else "never_update",
        )
    if heartbeat is not None:
        _heartbeats.append(heartbeat)
        heartbeat.log = log


#: A worker that has not said it is alive for this many seconds (two heartbeats missed) has
#: stopped: a worker may then start with its id.
SILENT_AFTER_S = 2 * records.HEARTBEAT_S


def _wait_for_id(database: str, worker: str) -> None:
    """Return once no other process serving `database` as worker `worker` is alive: at once
    when none beat lately; else after its heartbeats have stopped for `SILENT_AFTER_S` (a
    worker killed a moment ago, now started again), or `CarlangRuntimeError` as soon as one
    beats again (a live worker with that id: the two would recover each other's runs)."""
    alive = {
        instance: seen
        for instance, (seen, age) in records.instances_of(database, worker).items()
        if age < SILENT_AFTER_S
    }
    if not alive:
        return
    ages = [age for seen, age in records.instances_of(database, worker).values()]
    notice(
        f"worker id {worker} was seen on {shown_url(database)} {min(ages):.0f}s ago: waiting"
        f" up to {SILENT_AFTER_S:g}s to see whether that worker still runs"
    )
    while alive:
        time.sleep(0.5)
        now = records.instances_of(database, worker)
        for instance, seen in list(alive.items()):
            last, age = now.get(instance, (seen, math.inf))
            if last != seen:  # it beat since: alive
                raise CarlangRuntimeError(_id_taken(worker, database))
            if age >= SILENT_AFTER_S:  # it stopped (its row removed), or has been silent
                alive.pop(instance)


def _claim_id(database: str, worker: str, instance: str) -> None:
    """Claim worker id `worker` for this process (`instance`) once no other live process
    holds it (`_wait_for_id`), or `CarlangRuntimeError`. A holder that claimed the id but has
    not beaten yet is either starting now (it beats in a moment: then refused) or was killed
    while starting (its claim lapses after `SILENT_AFTER_S`: then taken over), so it is waited
    for rather than refused at once."""
    deadline = time.monotonic() + SILENT_AFTER_S + records.HEARTBEAT_S
    told = False
    while True:
        _wait_for_id(database, worker)
        holder = records.claim_worker_id(database, worker, instance, SILENT_AFTER_S)
        if holder is None:
            return
        if holder in records.instances_of(database, worker) or time.monotonic() > deadline:
            raise CarlangRuntimeError(_id_taken(worker, database))
        if not told:
            notice(
                f"worker id {worker} was claimed on {shown_url(database)} by a worker that has"
                f" not started serving: waiting up to {SILENT_AFTER_S:g}s to see whether it does"
            )
            told = True
        time.sleep(0.5)


def _id_taken(worker: str, database: str) -> str:
    return (
        f"worker id {worker} is taken: a worker with that id serves {shown_url(database)} now;"
        " give this one an id of its own (--id), since a worker recovers every unfinished run"
        " of its id"
    )


class _Heartbeat:
    """Says every `records.HEARTBEAT_S` seconds, in the runs database, that this process
    serves its queues (`records.beat`), from a thread of its own, until `stop`."""

    def __init__(
        self,
        database: str,
        worker: str,
        queues: list[str] | None,
        version: str,
        instance: str | None = None,
    ) -> None:
        self.database = database
        # (the process that claimed the worker id: `records.claim_worker_id`)
        self.instance = instance if instance is not None else uuid.uuid4().hex
        self.worker = worker
        self.queues = queues
        self.version = version
        self._stopping = threading.Event()
        #: Told whether each beat reached the database (`_DbosLog`: said when that changes).
        self.log: _DbosLog | None = None
        self._beat()  # seen from the start (a submitter may look right away)
        self._thread = threading.Thread(target=self._run, name="carlang-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        try:
            records.beat(self.database, self.instance, self.worker, self.queues, self.version)
        except Exception as exc:  # noqa: BLE001 - a missed beat is retried; the work goes on
            logging.getLogger(__name__).debug("heartbeat failed", exc_info=True)
            if self.log is not None and isinstance(exc, sqlalchemy.exc.OperationalError):
                self.log.lost(database_error(exc))
        else:
            if self.log is not None:
                self.log.back()

    def _run(self) -> None:
        while not self._stopping.wait(records.HEARTBEAT_S):
            self._beat()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)
        try:
            records.forget_worker(self.database, self.instance)
        except Exception:  # noqa: BLE001 - then it is seen for HEARTBEAT_S more, no longer
            logging.getLogger(__name__).debug("heartbeat not removed", exc_info=True)


_heartbeats: list[_Heartbeat] = []


# -- whether anyone serves a queue --------------------------------------------------------------

#: How long work waits on a queue before its waiter looks for a worker serving it, in seconds.
UNSERVED_AFTER_S = 10.0
#: A worker counts as serving its queues while seen within this many seconds (it says it is
#: alive every `records.HEARTBEAT_S`).
SEEN_WITHIN_S = 3 * records.HEARTBEAT_S


def start_a_worker(database: str, queue: str | None = None) -> str:
    """The command that starts a worker on `database` (its password left to the environment,
    never shown), serving `queue` only when it is not one of carlang's own (a worker with no
    `--queue` serves every queue)."""
    own = queue is None or queue in (RUNS_QUEUE, PLANNER_QUEUE)
    queues = "" if own else f" --queue {shlex.quote(str(queue))}"
    if has_password(database):
        return f"carlang worker{queues}, CARLANG_DATABASE set to the runs database's URL"
    return f"carlang worker --database {shlex.quote(database)}{queues}"


class WorkerLook:
    """Looks whether a worker serving `queue` on `database` at DBOS application version
    `version` (None: at any version) was seen in the last `within` seconds (the workers'
    heartbeats: `records.workers_serving`), and says so (`say`) when that changes: once when
    none is, and when one is again after that. Only a worker of the work's version counts: DBOS
    gives a worker only work of its own version, so one of another version (an older worker
    left running after an upgrade) serves the queue but never this work; the line that says
    none is names those, if any. What the commands that queue work share: a planner
    experiment's wait, a detached run, a run's call on a queue, `carlang runs show`."""

    def __init__(
        self,
        database: str,
        queue: str,
        say: Callable[[str], None],
        within: float = SEEN_WITHIN_S,
        version: str | None = None,
        *,
        any_version: bool = False,
    ) -> None:
        self.database = database
        self.queue = queue
        self.say = say
        self.within = within
        #: The version of the work waiting (None with `any_version`: every worker counts).
        self.version = None if any_version else (version or app_version())
        self.unserved = False  # whether the last look found none (and said so)

    def look(self, waiting: str) -> bool:
        """Whether no worker serving the queue has been seen lately; `waiting` says what
        waits for one ("3 task(s) wait for one"), in the line that says none is."""
        try:
            serving = records.workers_serving(self.database, self.queue, within=self.within)
        except Exception:  # noqa: BLE001 - a look that fails is no news; the wait goes on
            return self.unserved
        seen = sorted({w for w, v in serving if self.version is None or v == self.version})
        if not seen and not self.unserved:
            self.say(self.none_seen(waiting, [(w, v) for w, v in serving if w not in seen]))
        elif seen and self.unserved:
            self.say(f"a worker now serves {self.queue} ({', '.join(seen)}); waiting for it")
        self.unserved = not seen
        return self.unserved

    def none_seen(self, waiting: str, others: Sequence[tuple[str, str | None]] = ()) -> str:
        """The line that says no worker serves the queue; `others`: the workers of other
        versions that do (named, with their versions)."""
        where = f"on {shown_url(self.database)} in the last {self.within:g}s"
        start = start_a_worker(self.database, self.queue)
        if not others:
            return (
                f"no worker serving {self.queue} has been seen {where}: {waiting}"
                f" (start one with: {start})"
            )
        named = ", ".join(f"{w} at {v or 'a version it does not say'}" for w, v in others)
        return (
            f"no worker serving {self.queue} at version {self.version} has been seen {where},"
            f" only of other versions, which do not take this work ({named}): {waiting}"
            f" (start one of this version with: {start})"
        )


def _log_notice(line: str) -> None:
    logging.getLogger("carlang_dbos").warning("%s", line)


#: Where this process says what its runs wait for (`launch(notices=)`).
_notices: list[Callable[[str], None]] = [_log_notice]


def notice(line: str) -> None:
    """Say `line` where this process says what its runs wait for: the `notices` given to
    `launch` (the CLI: stderr), else the `carlang_dbos` logger, as a warning."""
    _notices[-1](line)


def _launch_on(database: str, config: Mapping[str, Any], queues: Sequence[str] | None) -> None:
    """`DBOS(config)` and `DBOS.launch()`, with a database it cannot open or reach (a bad
    path, a refused connection, a file that is not a database) reported as one line naming
    it: DBOS would log the driver's traceback and raise the driver's own error, SQL statement
    and all."""
    try:
        with opening(database):
            DBOS(config=config)  # type: ignore[arg-type]
            if queues is not None:
                DBOS.listen_queues(list(queues))
            DBOS.launch()
    except CarlangRuntimeError:
        DBOS.destroy(destroy_registry=False)
        raise


#: The runs database URLs carlang accepts, for the errors that name a wrong one.
DATABASE_FORMS = (
    "sqlite:///runs.db (a file here), sqlite:////abs/path/runs.db, or"
    " postgresql://user@host[:port]/dbname"
)


#: A Postgres URL as SQLAlchemy (and so DBOS) reads it: user, password up to the first `@`,
#: then the host and port (taken apart by `_host_problem`), the database, the query.
_POSTGRES_URL = re.compile(
    r"(?P<scheme>[\w+]+)://"
    r"(?:(?P<user>[^:/]*)(?::(?P<password>[^@]*))?@)?"
    r"(?P<hostport>[^/?]*)"
    r"(?:/(?P<database>[^?]*))?"
    r"(?:\?(?P<query>.*))?",
    re.DOTALL,
)


def database_file(database: str) -> Path | None:
    """The file of a SQLite runs database URL (relative to this directory, as SQLite opens
    it), or None for another database."""
    if not database.startswith("sqlite:"):
        return None
    name = sqlalchemy.make_url(database).database
    return Path(name) if name else None


def has_password(database: str) -> bool:
    """Whether the URL holds a password (then it is better given as $CARLANG_DATABASE)."""
    return shown_url(database) != database


def check_database(database: str) -> str:
    """`database` when it is a runs database URL carlang can use (SQLite with a file, or
    Postgres with a host, a port from 1 to 65535 if any, and a database name); else
    `CarlangRuntimeError` saying what is wrong and the accepted forms. Checked before DBOS
    sees it: DBOS reads any other scheme as Postgres, and fails on a malformed URL with an
    error of its own (a port that is not a number was a `ValueError` from deep inside)."""
    problem = _database_problem(database)
    if problem is not None:
        raise CarlangRuntimeError(
            f"--database {shown_url(database)}: {problem}; give {DATABASE_FORMS}"
        )
    return database


def _database_problem(database: str) -> str | None:
    scheme, separator, _ = database.partition("://")
    if not separator or not re.fullmatch(r"[\w+]+", scheme):
        return "not a database URL"
    scheme = scheme.partition("+")[0].lower()
    if scheme == "sqlite":
        try:
            url = sqlalchemy.make_url(database)
        except (sqlalchemy.exc.ArgumentError, ValueError):
            url = None
        if url is None or url.host or not url.database or url.database == ":memory:":
            return "a SQLite URL names a file after three slashes (four for an absolute path)"
        return None
    if scheme not in ("postgresql", "postgres"):
        return f"{scheme}:// is not a database carlang keeps runs in (SQLite or Postgres)"
    parts = _POSTGRES_URL.fullmatch(database)
    if parts is None:
        return "not a database URL"
    problem = _host_problem(parts["hostport"], parts["query"] or "")
    if problem is not None:
        return problem
    if not parts["database"]:
        return "the Postgres URL names no database (add /dbname)"
    try:
        sqlalchemy.make_url(database)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return "not a database URL"
    return None


def _host_problem(hostport: str, query: str) -> str | None:
    """What is wrong with the `host[:port]` of a Postgres URL, or None."""
    if "@" in hostport:  # `user:p@ss@host`: the driver would take `ss@host` for the host
        return "it has more than one @ (write an @ in the user name or password as %40)"
    if hostport.startswith("["):
        host, closed, after = hostport[1:].partition("]")
        if not closed:
            return "an IPv6 address needs its closing ] (like [::1]:5432)"
        if after and not after.startswith(":"):
            return "after an IPv6 address's ] comes :port or nothing (like [::1]:5432)"
        port: str | None = after[1:] if after else None
    else:
        if hostport.count(":") > 1:
            return "an IPv6 address goes in brackets (like [::1]:5432)"
        host, colon, given = hostport.partition(":")
        port = given if colon else None
    if not host and "host=" not in query:
        return (
            "the Postgres URL names no host (postgresql://user@HOST/dbname; for a Unix socket,"
            " add ?host=/its/directory)"
        )
    if port is not None and not (port.isascii() and port.isdigit()):
        return "the port is not a number (like host:5432)"  # (not shown: see `shown_url`)
    if port is not None and not 1 <= int(port) <= 65535:
        return f"the port {int(port)} is not from 1 to 65535"
    return None


class _Silence(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextmanager
def quiet_dbos() -> Iterator[None]:
    """Keep DBOS's own log lines ("Error connecting to the DBOS system database: ...", a
    workflow's traceback) off stderr while in the block: carlang reports what went wrong in
    one line of its own. (A filter, not a level: DBOS sets its logger's level as it starts.)"""
    dbos_log = logging.getLogger("dbos")
    silence = _Silence()
    dbos_log.addFilter(silence)
    try:
        yield
    finally:
        dbos_log.removeFilter(silence)


#: How many runs handed on while this worker ran them `_DbosLog` remembers (a worker runs
#: for months: the set of them must not grow for ever).
_WAITING_KEPT = 10_000


class _DbosLog(logging.Filter):
    """What DBOS logs in a process that serves queues (a worker), made fit to read: the
    warning a workflow or step cancelled as the process stops gives (object reprs, nothing to
    do) is dropped; a run cancelled (`carlang runs cancel`) while this worker ran it is one line
    saying so and how to resume it, instead of DBOS's warning and the error, with its
    traceback, that ends its execution here (`cancelled`); and while the database cannot be
    reached, the ~150 lines a second of DBOS's threads failing to connect (queues,
    notifications, schedules, each with the driver's traceback) are one line, `lost`, then
    one when it is `back` (the heartbeat reaches it again)."""

    def __init__(self, database: str) -> None:
        super().__init__()
        self.database = database
        self.down = False
        self._lock = threading.Lock()
        #: The runs whose execution here waits for the outcome of the one that owns them (in
        #: the order seen, the oldest forgotten past `_WAITING_KEPT`: a run handed on to
        #: another worker ends there, and is never said here).
        self._waiting: dict[str, None] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Asyncio task cancelled for workflow or step"):
            return False
        if self.cancelled(message, record.exc_info):
            return False
        reason = _unreachable(message, record.exc_info)
        if reason is None:
            return True
        self.lost(reason)
        return False

    def cancelled(self, message: str, exc_info: Any) -> bool:
        """Whether a DBOS log line tells of a run cancelled while this worker ran it: the
        warning that its execution here no longer owns it (found cancelled, or refused a
        write), and waits for the outcome its owner records; then, if the run was cancelled
        (it will have none), the error that ends that wait, said in a line of carlang's. (A
        run that another execution took over, `carlang runs resume` while this one ran it,
        ends when that one does: nothing more is said here.)"""
        found = _NO_LONGER_OWNED.match(message)
        if found is not None:
            with self._lock:
                self._waiting[found.group(1)] = None
                while len(self._waiting) > _WAITING_KEPT:
                    del self._waiting[next(iter(self._waiting))]
            return True
        error = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) > 1 else None
        if not isinstance(error, dbos_error.DBOSAwaitedWorkflowCancelledError):
            return False
        run_id = error.workflow_id
        with self._lock:
            if run_id not in self._waiting:
                return False  # (a workflow it awaited was cancelled: its own error)
            del self._waiting[run_id]
        notice(f"run {run_id} was cancelled; resume with `{resume_command(run_id)}`")
        return True

    def lost(self, reason: str) -> None:
        """The database cannot be reached (`reason`): said once until it is `back`."""
        with self._lock:
            if self.down:
                return
            self.down = True
        notice(
            f"the runs database {shown_url(self.database)} cannot be reached ({reason}):"
            " retrying; the runs here wait for it"
        )

    def back(self) -> None:
        """The database was reached: said if it could not be before."""
        with self._lock:
            if not self.down:
                return
            self.down = False
        notice(f"the runs database {shown_url(self.database)} is reachable again")


#: DBOS's warning that an execution no longer owns its workflow (a run): it found it
#: cancelled, or its write was refused (cancelled, or taken over by another execution).
_NO_LONGER_OWNED = re.compile(
    r"Workflow (\S+) (?:was cancelled during execution|is no longer owned by this execution)"
)

#: What a database error that means "cannot reach the database" looks like, in DBOS's log
#: lines (which carry the driver's message, or its traceback).
_CONNECTION_LOST = re.compile(
    r"OperationalError|server closed the connection|consuming input failed|connection"
    r" (?:failed|refused|timed out)|could not connect|terminating connection|the database"
    r" system is (?:shutting down|starting up|in recovery mode)",
    re.IGNORECASE,
)


def _unreachable(message: str, exc_info: Any) -> str | None:
    """Why the database cannot be reached, in one line, if a DBOS log line (`message`, and
    the exception it logs) says it cannot; else None."""
    error = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) > 1 else None
    if error is not None and isinstance(error, sqlalchemy.exc.OperationalError):
        return database_error(error)
    if not _CONNECTION_LOST.search(message):
        return None
    first = message.strip().splitlines()[0] if message.strip() else message
    wrapped = re.search(r"\((?:\w+\.)*OperationalError\)\s*(.*)", first)
    return (wrapped.group(1) if wrapped else first.rpartition(": ")[2] or first).strip()


_dbos_logs: list[_DbosLog] = []


@contextmanager
def opening(database: str) -> Iterator[None]:
    """Open `database` (DBOS, a client, the migrations) in the block: quietly (`quiet_dbos`),
    and with any failure (a bad path, a refused connection, a file that is not a database)
    one `CarlangRuntimeError` naming the database and the driver's reason."""
    with quiet_dbos():
        try:
            yield
        except CarlangRuntimeError:
            raise
        except Exception as exc:  # the driver's (or DBOS's) own errors: say which database
            reason = explained(database, exc)
            missing = _MISSING_DATABASE.search(reason)
            if missing is not None:
                reason = f"{missing.group()}; {_how_to_create(database)}"
            raise CarlangRuntimeError(
                f"cannot open the runs database {shown_url(database)}: {reason}"
            ) from None


#: What Postgres says when the database of a URL does not exist.
_MISSING_DATABASE = re.compile(r'database "[^"]*" does not exist')
#: What SQLite says when it cannot open or write a file, whatever the cause.
_SQLITE_REFUSED = re.compile(r"unable to open database file|readonly database|disk I/O error")


def explained(database: str, exc: BaseException) -> str:
    """A database error in one line (`database_error`); for a SQLite runs database that
    SQLite could not open or write ("unable to open database file" says nothing of why), why
    this process cannot use it (`sqlite_access_problem`), when that can be seen."""
    reason = database_error(exc)
    if _SQLITE_REFUSED.search(reason):
        return sqlite_access_problem(database) or reason
    return reason


def sqlite_access_problem(database: str) -> str | None:
    """Why this process cannot use the SQLite runs database `database`: its directory is
    missing, or it or its file cannot be read or written (a read-only file system, or this
    user's permissions); None when nothing of the kind is seen."""
    path = database_file(database)
    if path is None:
        return None
    folder = path.parent
    if not folder.is_dir():
        return f"there is no directory {folder}: create it, or name a file in one that exists"
    if path.exists() and not os.access(path, os.R_OK):
        return f"{path} cannot be read by this user: give it read permission, or use a copy"
    if not os.access(folder, os.W_OK):
        return (
            f"its directory {folder} is not writable ({_why_not_writable(folder)}): SQLite"
            " writes its journal files (-wal, -shm) beside the database, to read it too;"
            " keep the runs database in a directory this user can write in"
        )
    if path.exists() and not os.access(path, os.W_OK):
        return (
            f"{path} is not writable ({_why_not_writable(path)}): the runs database is"
            " written to, to read it too (DBOS keeps its queues there)"
        )
    return None


def _why_not_writable(path: Path) -> str:
    try:
        read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    return "a read-only file system" if read_only else "this user may not write to it"


def _how_to_create(database: str) -> str:
    """What to do about a Postgres database that does not exist: check the name, or create it
    (the `createdb` command, with the URL's host, port and user; never its password)."""
    url = sqlalchemy.make_url(database)
    command = ["createdb"]
    for flag, value in (("-h", url.host), ("-p", url.port), ("-U", url.username)):
        if value:
            command += [flag, str(value)]
    command.append(str(url.database))
    return (
        f"check its name, or create it ({shlex.join(command)}; or start `carlang worker` on"
        " it, which creates the database it serves)"
    )


def prepare_database(database: str, *, create: bool = False) -> bool:
    """Check that the runs database `database` exists before anything uses it: a Postgres
    database that does not exist is `CarlangRuntimeError` (`cannot open the runs database
    ...: database "x" does not exist; check its name, or create it ...`), unless `create`,
    when it is created (and True returned). DBOS would create it silently, whoever opens it:
    a mistyped name then became a new, empty database that no worker serves, and a command
    that queued work there waited forever. A SQLite file is created where it is named."""
    if not database.startswith(("postgresql", "postgres")):
        return False
    with opening(database):
        engine = _postgres_engine(database)
        try:
            with engine.connect():
                return False
        except sqlalchemy.exc.OperationalError as exc:
            if not create or not _MISSING_DATABASE.search(database_error(exc)):
                raise
        finally:
            engine.dispose()
    try:
        with opening(database):
            return _create_database(database)
    except CarlangRuntimeError as exc:
        raise CarlangRuntimeError(str(exc).replace("cannot open", "cannot create", 1)) from None


def _postgres_engine(database: str, name: str | None = None) -> Any:
    """A one-connection engine on `database` (or on its server's database `name`), through
    the driver DBOS uses (psycopg 3)."""
    url = sqlalchemy.make_url(database).set(drivername="postgresql+psycopg")
    if name is not None:
        url = url.set(database=name)
    return sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)


def _create_database(database: str) -> bool:
    """CREATE DATABASE for `database`, from its server's maintenance database (`postgres`,
    else `template1`); False when another process created it first."""
    name = str(sqlalchemy.make_url(database).database)
    for maintenance in ("postgres", "template1"):
        engine = _postgres_engine(database, maintenance)
        try:
            with engine.connect() as connection:
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
                quoted = connection.dialect.identifier_preparer.quote_identifier(name)
                connection.execute(sqlalchemy.text(f"CREATE DATABASE {quoted}"))
                return True
        except (sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.IntegrityError) as exc:
            # Created by another process just now: "already exists", or a unique violation
            # of the catalog when both got past the check at once.
            if isinstance(exc, sqlalchemy.exc.IntegrityError) or "already exists" in str(exc):
                return False
            raise
        except sqlalchemy.exc.OperationalError as exc:
            if maintenance == "template1" or not _MISSING_DATABASE.search(database_error(exc)):
                raise
        finally:
            engine.dispose()
    return False


def migrate(database: str) -> None:
    """Give `database` DBOS's tables (a fresh one; a no-op on one that has them), or
    `CarlangRuntimeError`. (Not `run_dbos_database_migrations`: it prints the driver's error
    and exits the process.)"""
    with opening(check_database(database)):
        DBOS.migrate(database)


def database_error(exc: BaseException) -> str:
    """A database error in one line: the driver's own message (SQLAlchemy wraps it with the
    statement and its parameters, which say nothing to the user and may hold their data)."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


def sqlite_problem() -> str | None:
    """Why DBOS cannot keep its tables in SQLite under this Python, or None. Under Python 3.12+
    DBOS's SQLite tables default their timestamps to `unixepoch('subsec')`, which SQLite before
    3.42 evaluates to NULL: every run would fail on a NOT NULL constraint deep inside DBOS."""
    if sys.version_info >= (3, 12) and sqlite3.sqlite_version_info < (3, 42, 0):
        return (
            "DBOS on SQLite needs SQLite 3.42 or newer under Python 3.12+ (this Python links"
            f" SQLite {sqlite3.sqlite_version}): use Postgres (--database postgresql://...),"
            " or Python 3.11"
        )
    return None


#: How long a SQLite runs database's statement waits for another process's write.
_SQLITE_BUSY_SECONDS = 30


def _sqlite_engine(database: str) -> Any:
    """A SQLite engine in WAL mode with synchronous=NORMAL: a commit survives the process
    dying (what durability is for here) without three fsyncs per step; SQLite's default
    rollback journal made every step cost tens of milliseconds.

    Its connections are also set up as DBOS sets up the SQLite engines it makes itself, which
    it does not do for an engine it is given: writes in IMMEDIATE transactions (DBOS's
    choice, to serialise writers), a busy timeout of 30 s (`timeout` sets it too), and
    foreign keys enforced (DBOS's tables delete a run's rows by cascade, and refuse a message
    to a run that does not exist). carlang's own tables (`records`) share the engine."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(
        database, connect_args={"check_same_thread": False, "timeout": _SQLITE_BUSY_SECONDS}
    )

    def pragmas(connection: Any, _record: Any) -> None:
        connection.isolation_level = "IMMEDIATE"
        cursor = connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(_SQLITE_BUSY_SECONDS * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        use_write_ahead_log(connection, _SQLITE_BUSY_SECONDS)

    sqlalchemy.event.listen(engine, "connect", pragmas)
    return engine


def shutdown(wait_s: float | None = None) -> None:
    """Stop DBOS in this process (what it was running is recovered by the next launch):
    waiting for its threads to end, for at most `wait_s` seconds when given (a process
    stopped by Ctrl-C that ends anyway: DBOS joins each of its threads for up to 10 s, and a
    run of its own left nothing it must wait for)."""
    if _launched:
        while _heartbeats:
            _heartbeats.pop().stop()
        if wait_s is None:
            DBOS.destroy(destroy_registry=False)
        else:
            stopping = threading.Thread(
                target=DBOS.destroy, kwargs={"destroy_registry": False}, daemon=True
            )
            stopping.start()
            stopping.join(wait_s)
        records.dispose(_launched[0])
        _launched.clear()
        _forget_dbos_logs()
        del _notices[1:]


def _forget_dbos_logs() -> None:
    """Take `launch`'s filter off DBOS's logger."""
    while _dbos_logs:
        logging.getLogger("dbos").removeFilter(_dbos_logs.pop())


def start_run(spec: RunSpec, run_id: str) -> Any:
    """Start a run in the background; its handle (`get_result()` waits for the result)."""
    with SetWorkflowID(run_id):
        return DBOS.start_workflow(carlang_run, spec)


def submit(database: str, spec: RunSpec, run_id: str) -> None:
    """Queue a run for a worker (`carlang worker`) without running it here: nothing in this
    process has to stay up for it."""
    submit_many(database, [(spec, run_id)])


def submit_many(database: str, runs: Sequence[tuple[RunSpec, str]]) -> None:
    """Queue several runs at once (one connection), in a database that exists
    (`prepare_database`: a mistyped Postgres database name is refused, not created)."""
    prepare_database(check_database(database))
    migrate(database)  # a fresh database gets DBOS's tables first
    with opening(database):
        client = DBOSClient(system_database_url=database)
    version = app_version()
    try:
        client.register_queue(RUNS_QUEUE, on_conflict="never_update")
        for spec, run_id in runs:
            # Tagged with this version: only a worker of it takes the run (and recovers it),
            # the one whose steps the run records (see `STEP_LAYOUT`).
            client.enqueue(
                {
                    "workflow_name": WORKFLOW,
                    "queue_name": RUNS_QUEUE,
                    "workflow_id": run_id,
                    "app_version": version,
                },
                spec,
            )
    finally:
        client.destroy()


def unserved_queues(database: str, spec: RunSpec, run_id: str) -> list[str]:
    """What a run queued for the workers (`submit`) will wait for: a line for the runs queue
    when no worker of this version serving it has been seen lately (`WorkerLook`), and one
    for each queue the run's tools are bound to that none serves (their calls would wait
    there). Empty when every queue is served."""
    program = Program.model_validate(spec["program"])
    wanted = spec["proposal"]
    proposal = (
        program.proposal(wanted)
        if isinstance(wanted, str)
        else ActionProposal.model_validate(wanted)
    )
    called = set()
    for action in proposal.actions if proposal is not None else []:
        called.add(action.tool)
        if isinstance(action.compensation, ToolCompensation):
            called.add(action.compensation.tool)
    routes = {t.name: t.queue for t in program.tools if t.queue is not None}
    routes.update(spec.get("queues") or {})
    bound: dict[str, list[str]] = {}
    for tool, queue in sorted(routes.items()):
        if tool in called and queue != RUNS_QUEUE:
            bound.setdefault(queue, []).append(tool)
    said: list[str] = []
    WorkerLook(database, RUNS_QUEUE, said.append).look(f"run {run_id} waits for one")
    for queue, tools in bound.items():
        calls = f"run {run_id}'s calls of {', '.join(tools)} will wait for one"
        WorkerLook(database, queue, said.append).look(calls)
    return said


class RunStopped(CarlangRuntimeError):
    """A run `run` waited for stopped before it ended, and waits to be resumed (`carlang
    runs resume`): cancelled (`cancelled`), or stopped by what `reason` says."""

    def __init__(self, run_id: str, reason: str, *, cancelled: bool = False) -> None:
        super().__init__(f"run {run_id} {reason}")
        self.run_id = run_id
        self.reason = reason
        self.cancelled = cancelled


def run(
    spec: RunSpec, run_id: str, *, on_approval: ApprovalWatcher | None = None
) -> ProposalResult:
    """Run to the end (or pick up the run already under that id) in this process, and return
    its result; `on_approval` is told each time the run starts waiting for an approval. Not
    from a running event loop: the run is a task of a loop of its own.

    A run that stops before it ends is `RunStopped` (cancelled by `carlang runs cancel`, a
    tool that raised `KeyboardInterrupt`), and a `KeyboardInterrupt` here (Ctrl-C) stops it
    and is raised again: either way the run is left as a worker that stops leaves its runs,
    PENDING (or CANCELLED) without an outcome, for `carlang runs resume`. (DBOS records no
    outcome for a workflow task that ends cancelled; run from a thread, as `start_run` does,
    its cancellation is recorded as an error that ends the run for good.)"""
    if on_approval is not None:
        _watchers[run_id] = on_approval
    _foreground[run_id] = None
    try:
        try:
            document = asyncio.run(_run_here(spec, run_id))
        except asyncio.CancelledError:
            # (Ctrl-C cancels the run's task; asyncio says KeyboardInterrupt only when nothing
            # else cancelled it too: a cancellation that reaches here is the same stop)
            raise KeyboardInterrupt from None
    finally:
        _watchers.pop(run_id, None)
        _foreground.pop(run_id, None)
    result, _ = split_result(document)
    return ProposalResult.model_validate(result)


async def _run_here(spec: RunSpec, run_id: str) -> dict[str, Any]:
    """Start run `run_id` as a task of this loop and wait for its result (see `run`)."""
    with SetWorkflowID(run_id):
        handle = await DBOS.start_workflow_async(carlang_run, spec)
    try:
        document: dict[str, Any] = await handle.get_result()
        return document
    except dbos_error.DBOSAwaitedWorkflowCancelledError:
        raise RunStopped(run_id, "was cancelled", cancelled=True) from None
    except asyncio.CancelledError:
        reason = _foreground.get(run_id)
        if reason is None:  # (this process is stopping: Ctrl-C)
            raise
        raise RunStopped(run_id, reason) from None


def run_status(run_id: str) -> str | None:
    """DBOS's status of run `run_id` in the database this process serves (PENDING, CANCELLED,
    SUCCESS, ...), or None: no such run, or DBOS is not launched here."""
    if not _launched:
        return None
    try:
        status = DBOS.get_workflow_status(run_id)
    except Exception:  # noqa: BLE001 - not known is all the caller needs
        return None
    return None if status is None else str(status.status)
