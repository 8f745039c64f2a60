"""One run of one proposal: levels of the DAG, the per-action pipeline, abort and rollback.

Per level, actions run concurrently, except that a level holding an `abort` action (or a
single action, or declared state writes while a policy reads the state: `dag.runs_in_order`)
runs in order. Actions that run concurrently are still *admitted* one after
the other, in proposal order: each is decided (budget, capability, validation, policies) with
what the ones before it took. A tool call's place in a `max_tool_calls` budget is reserved
when it is admitted (and given back when it ends without a call), and an admitted action is in
`history` with status "running" until it ends, so a budget or a history rule holds within a
level as it does in order. Per action:

    `after` -> budget -> capability -> validation -> policies -> approval -> middleware
    -> idempotency cache -> dispatch (result cache, rate limit, attempts with timeout and
    backoff) -> commit

(CAR's order puts the idempotency cache first; here every gate decides before a cached output
may answer, and the caches are keyed by the run's whole scope: see `Runtime.cache_scope`.)

An action ends in exactly one status and one terminal event, whatever raises. A failure with
`abort` (or `retry` once its attempts are spent) stops the run: what has not run is skipped, the
state is restored to what it was before the proposal (exactly what *this* run wrote: see
state.RunWrites), the results of successes say they were rolled back, and then the
compensations of the succeeded actions run, newest first (the saga; `Runtime(compensate=False)`
keeps CAR's behaviour of leaving the world as it is). A policy or approval refusal follows the
action's failure behaviour too (`retry` counts as `abort`: a refused action is never retried).
A validation or capability rejection does not stop the run, as in CAR: what depended on the
action is rejected in turn; what named it in `after` is skipped.

An exception from outside the pipeline (a tool raising `KeyboardInterrupt`, `SystemExit` or
`asyncio.CancelledError`, an approval gate or middleware that raises) stops the run too: the
action it hit fails, the rest is skipped, the state is rolled back in memory, and only then is
the exception raised again. Compensations do not run then (the host asked to stop); a durable
run's journal stays resumable.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast

from ..capability import touched_keys
from ..dag import build_dag, runs_in_order
from ..decisionlog.schema import DECISION_VERSION, policy_entry
from ..errors import CarlangRuntimeError
from ..ir import (
    Action,
    ActionProposal,
    ActionResult,
    ActionStatus,
    ActionType,
    CompensationResult,
    CostSummary,
    FailureBehavior,
    PolicyEffect,
    ProposalResult,
)
from ..ir._base import construct
from ..paramcheck import validation_errors
from ..policy import RUNNING, Decision, PolicyMatch, PolicySet, history_entry
from ..precondition import check_assertion, check_precondition
from ..redact import Scrubber
from .approval import ApprovalRequest, as_approval
from .events import EventKind, format_time
from .limits import call_key
from .outcome import AFTER_PREFIX, candidate_failure
from .state import MISSING, StateTransition, detached
from .tools import RegisteredTool, ToolContext, ToolError, ToolState, call_arguments

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = [
    "ProposalRun",
    "Resumption",
    "ROLLED_BACK",
    "SKIPPED_ABORT",
    "SKIPPED_EARLIER_ABORT",
    "BUDGET_EXCEEDED",
]

ROLLED_BACK: Final = (
    "proposal aborted; state effects were rolled back; external effects may remain and were"
    " not undone"
)
# CAR's two texts: the rest of the level that aborted, and the levels after it.
SKIPPED_ABORT: Final = "skipped due to abort"
SKIPPED_EARLIER_ABORT: Final = "skipped due to earlier abort"
BUDGET_EXCEEDED: Final = "cost budget exceeded"
#: The reason a run resumed with `rollback=True` gives for its abort.
ROLLED_BACK_ON_RESUME: Final = "rolled back on resume"
#: What the actions that had not ended say then (no abort came before them: a person chose
#: the rollback; one running when the run stopped may have run, at least partly).
SKIPPED_ON_RESUME: Final = (
    "not run: the run was rolled back on resume (an action running when it stopped may have run)"
)

_TOOL_CALL = ActionType.TOOL_CALL
# Events held back to be emitted by the caller, each [kind, redacted data] (plain data: a
# durable step records them with the admission decision that emitted them).
_Deferred = list[list[Any]]
_STATE_WRITE = ActionType.STATE_WRITE
_STATE_READ = ActionType.STATE_READ
_ABORT = FailureBehavior.ABORT
_RETRY = FailureBehavior.RETRY
_SUCCEEDED = ActionStatus.SUCCEEDED
_FAILED = ActionStatus.FAILED
_SKIPPED = ActionStatus.SKIPPED
_REJECTED = ActionStatus.REJECTED
_NO_CHANGES: Final[dict[str, Any]] = {}
_VALIDATED: Final = EventKind.ACTION_VALIDATED.value
_EXECUTING: Final = EventKind.ACTION_EXECUTING.value


class _Outcome:
    """What the dispatch of one action produced."""

    __slots__ = ("ok", "output", "error", "writes", "tool_call", "attempts")

    def __init__(
        self,
        ok: bool,
        output: Any = None,
        error: str | None = None,
        writes: dict[str, Any] = _NO_CHANGES,
        tool_call: bool = False,
        attempts: int = 1,
    ) -> None:
        self.ok = ok
        self.output = output
        self.error = error
        self.writes = writes
        self.tool_call = tool_call
        self.attempts = attempts


class _Abort(Exception):
    """Internal: the run must stop (raised inside a sequential level)."""


class _Interrupted(Exception):
    """Internal: an exception from outside the pipeline stopped an action; the run records the
    original (`ProposalRun.interrupt`), finishes consistently, then raises it again. A plain
    `Exception`, so that it leaves a task of a concurrent level like any error (asyncio lets a
    task's `KeyboardInterrupt` escape the event loop at once, before the run could clean up)."""


def _never_started(result: ActionResult) -> bool:
    """Whether an action that ended so was over before it started (`settled`): skipped for
    an abort, a spent budget, or an `after` predecessor that did not succeed."""
    error = result.error or ""
    return result.status is _SKIPPED and (
        error in (SKIPPED_ABORT, BUDGET_EXCEEDED) or error.startswith(AFTER_PREFIX)
    )


@dataclass
class Resumption:
    """What a journal says of a run being resumed: the results of the actions that finished
    (they do not run again), the writes they committed (replayed), the abort that was under way
    when the process died (None: it was running), the compensations already done, and the
    order in which the actions succeeded."""

    results: Mapping[str, ActionResult] = field(default_factory=dict)
    writes: Sequence[tuple[str, Any, str | None]] = ()
    abort: str | None = None
    compensations: Mapping[str, CompensationResult] = field(default_factory=dict)
    succeeded: Sequence[str] = ()
    #: The tool calls it made (a budget's `max_tool_calls` counts them).
    tool_calls: int = 0


class ProposalRun:
    """Runs one proposal on a runtime; `await run.execute()` gives its result."""

    def __init__(
        self,
        runtime: Runtime,
        proposal: ActionProposal,
        *,
        run_id: str,
        session: str | None,
        scope: Mapping[str, Any],
        cancel: Any,
        resumed: Resumption | None = None,
        all_or_nothing: bool = False,
        refused: str | None = None,
    ) -> None:
        self.rt = runtime
        #: A refusal made before the run (a session's budget, a model's malformed call): every
        #: action is rejected with it, so that the log and `history` hold the attempt.
        self.refused = refused
        self.proposal = proposal
        self.proposal_id = proposal.id
        self.actions = proposal.actions
        self.run_id = run_id
        self.session = session
        self.scope = scope
        # Checked by the runtime before the run started: None or a non-empty string.
        self.tenant: str | None = scope.get("tenant")
        self.cancel = cancel
        self.durable = runtime.durable
        # This run's writes: its rollback undoes them and nothing else.
        self.writes = runtime.state.open_run(run_id, self.tenant)
        self.live = self.writes.data
        self.events = runtime.events
        self.results: list[ActionResult | None] = [None] * len(self.actions)
        # Plain counters, not the pydantic CostSummary, whose attribute writes go through
        # validation on every action. `finish` builds the summary.
        self.tool_calls = 0
        self.retries = 0
        self.duration_ms = 0.0
        self.aborted: str | None = None
        self.interrupt: BaseException | None = None
        self.budget_exceeded = False
        self.started_actions = 0
        # Tool calls admitted and not yet ended: each holds a place in `max_tool_calls`.
        self.reserved: set[int] | None = None
        self.start = runtime.clock()
        self.capability = runtime.capability_for(proposal)
        self.budget = runtime.budget_for(proposal)
        if self.budget is not None and self.budget.max_tool_calls is not None:
            self.reserved = set()
        self.policies = runtime.policy_sets(session)
        # Policies see `history` only if one reads it; otherwise nothing is kept.
        self.history = (
            runtime.history(session, run_id)
            if any(p.reads("history") for p in self.policies)
            else None
        )
        # How many earlier entries that history lacks: the rules that read it fail closed.
        self.dropped = runtime.history_dropped(session) if self.history is not None else 0
        # Whether a level whose actions declare state writes runs in order (`runs_in_order`).
        self.judges_state = any(p.judges_state() for p in self.policies)
        # The `history` entries of admitted actions that have not ended (status "running").
        self.running: dict[int, dict[str, Any]] = {}
        # An unknown session, or another tenant's: every action is rejected (fail closed).
        self.session_problem = (
            runtime.session_problem(session, self.tenant) if session is not None else None
        )
        # Whose cached outputs this run may share: its callers' of the same scope (None: none).
        self.cache_scope = runtime.cache_scope(scope)
        resumed = resumed or Resumption()
        # Actions a resumed run already finished: their results stand, they do not run again;
        # the calls they made and their places in a budget count (`settled`), so a run killed
        # and resumed does not start its budget again.
        self.done = dict(resumed.results)
        self.tool_calls = resumed.tool_calls
        # A resumed run's journaled writes, replayed into this run's writes (an abort undoes them).
        self.replay = resumed.writes
        # An abort the journal shows under way: the resumed run finishes it, nothing more runs.
        self.finish_abort = resumed.abort
        self.compensated = dict(resumed.compensations)
        self.all_or_nothing = all_or_nothing
        # A durable backend's recorder of decisions and tool results (None: in process).
        self.steps = runtime.steps
        self.index_of: dict[str, int] | None = None
        # Succeeded actions that have a compensation, in the order they succeeded.
        self.completed: list[int] = [
            self.index(action_id)
            for action_id in resumed.succeeded
            if action_id in self.done and self.has_compensation(action_id)
        ]
        self.compensations: list[CompensationResult] = []
        # Secret parameter values (and values a policy caught) never leave the run unredacted.
        self.scrub: Scrubber | None = runtime.scrubber(
            proposal, self.policies, self.tenant, session
        )
        self.succeeded_idempotent: list[str] = []
        # Decision records (`policy_decision`), when the runtime keeps them.
        self.log_decisions = bool(self.policies) and runtime.logs_decisions
        # Whether shadow decisions are recorded (not for `Runtime.gate`'s questions).
        self.recording = True
        self.program = runtime.decision_program(self.policies) if self.log_decisions else ""
        # Under a durable backend a tool call's admission decision is a recorded step when a
        # replay could decide differently (a policy reads the time or what ran before, can stop
        # on CEL's wall-clock limit, a rate limit). Otherwise the replay decides again, the
        # same way: one database write fewer per tool call.
        self.records_admission = self.steps is not None and any(
            p.depends_on_time() for p in self.policies
        )
        self.pending_hooks: list[Awaitable[Any]] = []

    # -- the run ---------------------------------------------------------------------------

    async def execute(self) -> ProposalResult:
        """Run every level; abort, roll back, compensate and report as needed. An exception
        from outside the pipeline is raised again once the run is consistent."""
        try:
            result = await self.run()
        finally:
            self.writes.release()
        if self.interrupt is not None:
            raise self.interrupt
        return result

    async def run(self) -> ProposalResult:
        rt, proposal = self.rt, self.proposal
        self.emit(
            EventKind.PROPOSAL_RECEIVED,
            data=rt.proposal_event_data(proposal, self.session, self.policies),
        )
        if self.session is not None:
            self.emit(EventKind.SESSION_SCOPE, data={"session": self.session})
        self.emit(EventKind.STATE_SNAPSHOT, data=rt.snapshot_event_data(self.tenant))
        for key, value, action_id in self.replay:
            if value is MISSING:
                self.writes.delete(key, action_id)
            else:
                self.writes.set(key, value, action_id)
        try:
            await rt.call_hooks("before_proposal", proposal, self.run_id)
            await self.run_levels()
        except BaseException as exc:
            self.stop(exc)
        if self.interrupt is not None:
            self.drop_hooks()
            self.skip_rest(f"interrupted: {_describe(self.interrupt)}")
            self.roll_back(f"interrupted: {_describe(self.interrupt)}")
        elif self.aborted is not None:
            resumed = self.aborted == ROLLED_BACK_ON_RESUME
            self.skip_rest(SKIPPED_ON_RESUME if resumed else SKIPPED_EARLIER_ABORT)
            self.roll_back(self.aborted)
            if rt.compensate:
                try:
                    await self.compensate()
                except BaseException as exc:
                    self.stop(exc)
        result = self.finish()
        if self.interrupt is None:
            try:
                await self.flush_hooks()
                await rt.call_hooks("after_proposal", proposal, result)
            except BaseException as exc:
                self.stop(exc)
        status = "interrupted" if self.interrupt else "aborted" if self.aborted else "completed"
        reason = _describe(self.interrupt) if self.interrupt else self.aborted
        self.emit(EventKind.PROPOSAL_COMPLETED, data={"status": status, "reason": reason})
        return result

    async def run_levels(self) -> None:
        if self.finish_abort is not None:
            # The journal shows an abort under way: finish it, run nothing more.
            self.aborted = self.finish_abort
            for index, action in enumerate(self.actions):
                done = self.done.get(action.id)
                if done is not None:
                    self.results[index] = done
            return
        count_problem = (
            self.capability.count_problem(len(self.actions)) if self.capability else None
        )
        dag = build_dag(self.actions)
        for level in dag.levels:
            if self.cancel is not None and self.cancel.cancelled:
                self.skip_rest(f"canceled: {self.cancel.reason}")
                break
            if self.aborted is not None:
                break
            await self.run_level(level, count_problem)
        if self.aborted is None and self.all_or_nothing:
            # Judged by the outcome: an optional step passed over is not a failure.
            failure = candidate_failure(self.actions, self.results)
            if failure is not None:
                self.aborted = failure

    def stop(self, exc: BaseException) -> None:
        """Record what stopped the run from outside (the first thing wins)."""
        if self.interrupt is None and not isinstance(exc, _Interrupted):
            self.interrupt = exc

    def interrupted(self, index: int, exc: BaseException) -> BaseException:
        """An exception from outside the pipeline hit action `index`: it fails (unless it
        already ended); returns what to raise in its place."""
        self.stop(exc)
        if self.results[index] is None:
            assert self.interrupt is not None
            self.conclude(index, _FAILED, error=f"interrupted: {_describe(self.interrupt)}")
        return exc if isinstance(exc, asyncio.CancelledError) else _Interrupted()

    async def run_level(self, level: list[int], count_problem: str | None) -> None:
        if runs_in_order(self.actions, level, self.judges_state):
            try:
                for index in level:
                    try:
                        pending = self.step(index, count_problem, inline=True)
                        if pending is not None:
                            await pending
                        if self.pending_hooks:
                            await self.flush_hooks()
                    except _Abort:
                        raise
                    except BaseException as exc:
                        raise self.interrupted(index, exc) from None
            except _Abort:
                await self.flush_hooks()
                for index in level:
                    if self.results[index] is None:
                        self.conclude(index, _SKIPPED, error=SKIPPED_ABORT)
            return
        if self.steps is not None:
            await self.run_durable_level(level, count_problem)
            return
        # Admitted one after the other, in proposal order (no waiting: `step` returns what
        # must wait), so each decision sees the budget and history the ones before took; then
        # they wait (approvals, tools) alongside each other.
        tasks: list[asyncio.Future[None]] = []
        waiting: list[Awaitable[None] | None] = []
        try:
            for index in level:
                try:
                    pending = self.step(index, count_problem, inline=False)
                except BaseException as exc:
                    raise self.interrupted(index, exc) from None
                waiting.append(pending)
                tasks.append(asyncio.ensure_future(self.run_action(index, pending)))
            await asyncio.gather(*tasks)
        except BaseException:
            # One action was interrupted (or the run was cancelled): stop the others, and let
            # each end itself before the run goes on to clean up.
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)
            for pending in waiting:  # what a task cancelled before it started never awaited
                if inspect.iscoroutine(pending) and inspect.getcoroutinestate(pending) == (
                    inspect.CORO_CREATED
                ):
                    pending.close()
            raise

    async def run_action(self, index: int, pending: Awaitable[None] | None) -> None:
        """The rest of an admitted action of a level whose actions run alongside each other:
        what it waits for (an approval, middleware, its tool)."""
        try:
            if pending is not None:
                await pending
            if self.pending_hooks:
                await self.flush_hooks()
        except BaseException as exc:
            raise self.interrupted(index, exc) from None

    async def flush_hooks(self) -> None:
        """Await the async `after_action` hooks of what just finished, in order."""
        while self.pending_hooks:
            await self.pending_hooks.pop(0)

    def drop_hooks(self) -> None:
        """Close the hooks an interrupted run will not await."""
        for pending in self.pending_hooks:
            close = getattr(pending, "close", None)
            if close is not None:
                close()
        self.pending_hooks.clear()

    def finish(self) -> ProposalResult:
        results = [r for r in self.results if r is not None]
        cost = CostSummary(
            tool_calls=self.tool_calls,
            actions_executed=sum(
                1 for r in results if r.status is _SUCCEEDED or r.status is _FAILED
            ),
            actions_rejected=sum(1 for r in results if r.status is _REJECTED),
            actions_skipped=sum(1 for r in results if r.status is _SKIPPED),
            retries=self.retries,
            total_duration_ms=self.duration_ms,
        )
        return ProposalResult.model_construct(
            proposal_id=self.proposal.id,
            results=results,
            cost=cost,
            compensations=self.compensations,
        )

    # -- one action ------------------------------------------------------------------------

    def step(self, index: int, count_problem: str | None, inline: bool) -> Awaitable[None] | None:
        """The whole pipeline for one action, as far as it goes without waiting; what must
        wait (an approval, async middleware, a tool that cannot run inline) is returned as
        an awaitable that finishes the job. An in-order level of plain actions never builds
        a coroutine."""
        if self.steps is not None and self.actions[index].type is _TOOL_CALL:
            return self.durable_action(index, count_problem, inline)
        admitted = self.admit(index, count_problem, inline)
        if admitted is None:
            return None
        action, key, asking = admitted
        if asking is not None or self.rt.middleware:
            return self.after_gates(index, key, asking, inline)
        return self.execute_action(index, key, inline)

    async def after_gates(
        self,
        index: int,
        key: str | None,
        asking: tuple[PolicyMatch, ...] | None,
        inline: bool,
    ) -> None:
        refusal = await self.refusal(self.actions[index], asking)
        if refusal is not None:
            self.refuse(index, refusal, inline)
            return
        pending = self.execute_action(index, key, inline)
        if pending is not None:
            await pending

    def execute_action(self, index: int, key: str | None, inline: bool) -> Awaitable[None] | None:
        action = self.actions[index]
        if key is not None:
            # Only now, every gate passed: a cached output never stands in for a decision.
            cached = self.rt.idempotency.get(key, MISSING)
            if cached is not MISSING:
                self.conclude(index, _SUCCEEDED, output=cached, kind=EventKind.ACTION_DEDUPLICATED)
                return None
        # `events.add` directly, not `emit`: this and ACTION_VALIDATED are on every action.
        self.events.add(_EXECUTING, self.run_id, self.proposal_id, action.id, None, time.time())
        started = time.perf_counter()
        outcome = self.dispatch_now(action) if inline else None
        if outcome is None:
            return self.dispatch_and_complete(index, key, started, inline)
        self.complete(index, key, outcome, (time.perf_counter() - started) * 1000.0, inline)
        return None

    async def dispatch_and_complete(
        self, index: int, key: str | None, started: float, inline: bool
    ) -> None:
        outcome = await self.dispatch(self.actions[index], inline)
        self.complete(index, key, outcome, (time.perf_counter() - started) * 1000.0, inline)

    def admit(
        self, index: int, count_problem: str | None, inline: bool
    ) -> tuple[Action, str | None, tuple[PolicyMatch, ...] | None] | None:
        """Everything before dispatch that needs no waiting: a resumed result, `after`, the
        budget, rejections, the policy decision, the claim on the keys it declares it writes.
        None when the action is concluded here; else (action, idempotency key, policies asking
        for approval). The idempotency cache is looked in once the gates have passed
        (`execute_action`)."""
        action = self.actions[index]
        if self.settled(index, action):
            return None
        key = self.idempotency_key(action) if action.idempotent else None
        problems = self.rejections(action, count_problem)
        if problems:
            remembered = not self.malformed(action)
            self.conclude(index, _REJECTED, error="; ".join(problems), remembered=remembered)
            return None
        decision = self.decide(action) if self.policies else None
        return self.admitted(index, action, key, decision, inline)

    def settled(self, index: int, action: Action) -> bool:
        """Whether the action is over before it starts: a resumed result, an `after`
        predecessor that did not succeed, a budget spent. Counts it started otherwise."""
        done = self.done.get(action.id) if self.done else None
        if done is not None:
            self.results[index] = done
            if done.status is _SUCCEEDED and done.duration_ms:
                self.duration_ms += done.duration_ms
            if not _never_started(done):
                self.started_actions += 1
            return True
        if action.depends_on:
            unmet = self.unmet_dependency(action)
            if unmet is not None:
                self.conclude(index, _SKIPPED, error=unmet)
                return True
        if self.budget_exceeded or (self.budget is not None and self.over_budget(action)):
            self.budget_exceeded = True
            self.conclude(index, _SKIPPED, error=BUDGET_EXCEEDED)
            return True
        self.started_actions += 1
        if self.reserved is not None and action.type is _TOOL_CALL:
            self.reserved.add(index)  # its place in the budget, until it ends (`conclude`)
        return False

    def admitted(
        self,
        index: int,
        action: Action,
        key: str | None,
        decision: Decision | None,
        inline: bool,
    ) -> tuple[Action, str | None, tuple[PolicyMatch, ...] | None] | None:
        """A valid action and its policy decision: refused, or admitted once it holds the keys
        it declares it writes (with the policies asking for approval, if any)."""
        self.events.add(_VALIDATED, self.run_id, self.proposal_id, action.id, None, time.time())
        asking = None
        if decision is not None:
            if decision.denied:
                for match in decision.deciding:
                    self.emit(
                        EventKind.POLICY_VIOLATION, action.id, data=self.violation_data(match)
                    )
                self.refuse(index, "policy violation: " + decision.reason(), inline)
                return None
            if decision.needs_approval:
                asking = decision.deciding
        if action.expected_effects or action.type is _STATE_WRITE:
            conflict = self.writes.conflict(action.written_keys())
            if conflict is not None:
                self.refuse(index, str(conflict), inline)
                return None
        if self.history is not None:
            # Admitted: the policies deciding what comes next see it, running, until it ends.
            entry = history_entry(action, RUNNING)
            self.history.append(entry)
            self.running[index] = entry
        return action, key, asking

    # -- durable steps (a backend that records decisions and tool results) ------------------

    async def durable_action(self, index: int, count_problem: str | None, inline: bool) -> None:
        """A tool call under a durable backend (`Runtime.steps`): its admission decision
        (capability, validation, policies: what may depend on time, history or rate limits)
        and its tool's result are each one recorded step, so a replay after a crash neither
        decides differently nor calls the tool again. Everything else is the same pipeline,
        applied to what the steps return."""
        steps = self.steps
        assert steps is not None
        action = self.actions[index]
        if self.settled(index, action):
            return
        verdict = await self.admission(action, count_problem)
        self.log_deciding(action, verdict)
        if not await self.durable_gates(index, verdict, inline):
            return
        self.events.add(_EXECUTING, self.run_id, self.proposal_id, action.id, None, time.time())
        record = await steps.call(self, action)
        self.durable_complete(index, record, inline)

    async def run_durable_level(self, level: list[int], count_problem: str | None) -> None:
        """A level whose actions run alongside each other, under a durable backend. A replay
        must meet the same steps in the same order, and log the same events in the same order,
        whichever step happened to finish first: so every admission step of the level starts in
        the level's order and is applied in that order, then every call step likewise."""
        steps = self.steps
        assert steps is not None
        actions = self.actions
        admitted: list[int] = []
        if self.history is not None or self.reserved is not None:
            # A decision reads what the ones before it admitted (history, the budget): each
            # is made, and applied, before the next is made (the steps start in level order).
            for index in level:
                action = actions[index]
                if action.type is not _TOOL_CALL:
                    pending = self.step(index, count_problem, inline=False)
                    if pending is not None:
                        await pending
                elif not self.settled(index, action):
                    verdict = await self.admission(action, count_problem)
                    self.log_deciding(action, verdict)
                    if await self.durable_gates(index, verdict, False):
                        admitted.append(index)
        else:
            calls = []
            for index in level:
                if actions[index].type is not _TOOL_CALL:
                    pending = self.step(index, count_problem, inline=False)
                    if pending is not None:
                        await pending
                elif not self.settled(index, actions[index]):
                    calls.append(index)
            verdicts = await asyncio.gather(
                *(self.admission(actions[i], count_problem) for i in calls)
            )
            for index, verdict in zip(calls, verdicts, strict=True):  # in the level's order
                self.log_deciding(actions[index], verdict)
            for index, verdict in zip(calls, verdicts, strict=True):
                if await self.durable_gates(index, verdict, False):
                    admitted.append(index)
        for index in admitted:
            action_id = actions[index].id
            self.events.add(_EXECUTING, self.run_id, self.proposal_id, action_id, None, time.time())
        records = await asyncio.gather(*(steps.call(self, actions[i]) for i in admitted))
        for index, record in zip(admitted, records, strict=True):
            self.durable_complete(index, record, False)

    async def durable_gates(self, index: int, verdict: Mapping[str, Any], inline: bool) -> bool:
        """Apply a recorded admission decision, then the approval gate and middleware;
        whether the action may be dispatched."""
        action = self.actions[index]
        if verdict.get("problems"):
            remembered = not self.malformed(action)
            self.conclude(
                index, _REJECTED, error="; ".join(verdict["problems"]), remembered=remembered
            )
            return False
        admitted = self.admitted(index, action, None, _recorded_decision(verdict), inline)
        if admitted is None:
            return False
        asking = admitted[2]
        if asking is not None or self.rt.middleware:
            refusal = await self.refusal(action, asking)
            if refusal is not None:
                self.refuse(index, refusal, inline)
                return False
        return True

    def durable_complete(self, index: int, record: Mapping[str, Any], inline: bool) -> None:
        """Commit or fail a tool call from its recorded outcome."""
        duration = float(record.get("duration_ms", 0.0))
        self.complete(index, None, _recorded_outcome(record), duration, inline)

    async def admission(self, action: Action, count_problem: str | None) -> dict[str, Any]:
        """The admission decision of a tool call under a durable backend: a recorded step
        (`admit <id>`), or made here when a replay would make it the same way (see
        `records_admission`)."""
        if not self.records_admission:
            verdict = self.verdict(action, count_problem)
        else:
            assert self.steps is not None
            verdict = await self.steps.run(
                f"admit {action.id}", self.verdict, action, count_problem
            )
        return verdict

    def log_deciding(self, action: Action, verdict: Mapping[str, Any]) -> None:
        """Log the events deciding `action` emitted (held back in its verdict): from the
        record, on a replay as on the first run, in the order the caller applies verdicts,
        so the log's sequence numbers, which tell a replay what it already holds, stay the
        same."""
        for kind, data in verdict.get("events", ()):
            self.emit(EventKind(kind), action.id, data=data, scrubbed=True)

    def verdict(self, action: Action, count_problem: str | None) -> dict[str, Any]:
        """The admission decision of a tool call as plain data (what a durable step records),
        with the events deciding emits (shadow decisions, the decision record) held back in it:
        `admission` emits them."""
        problems = self.rejections(action, count_problem)
        if problems:
            return {"problems": problems}
        deferred: _Deferred = []
        decision = self.decide(action, deferred) if self.policies else None
        verdict: dict[str, Any] = {"events": deferred} if deferred else {}
        if decision is None:
            return verdict
        return {
            **verdict,
            "effect": decision.effect.value,
            "matches": [
                {
                    "policy": m.policy,
                    "effect": m.effect.value,
                    "reason": m.reason,
                    "explanation": str(m.explanation) if m.explanation is not None else None,
                }
                for m in decision.matches
            ],
        }

    async def call_record(self, action: Action) -> dict[str, Any]:
        """Dispatch a tool call; its outcome as plain data (what a durable step records)."""
        started = time.perf_counter()
        outcome = await self.call_tool(action, False)
        writes = {k: v for k, v in outcome.writes.items() if v is not MISSING}
        output, error = outcome.output, outcome.error
        scrub = self.scrub
        if scrub is not None:
            # Recorded in the runs database: kept out of it as out of every log (the result
            # is made of the same redacted output: `conclude`). The state's writes are kept
            # as they are, as the state keeps them.
            output = scrub.output(output)
            error = scrub.text(error) if error is not None else None
        return {
            "duration_ms": (time.perf_counter() - started) * 1000.0,
            "ok": outcome.ok,
            "output": output,
            "error": error,
            "writes": writes,
            "deleted": [k for k, v in outcome.writes.items() if v is MISSING],
            "tool_call": outcome.tool_call,
            "attempts": outcome.attempts,
        }

    def unmet_dependency(self, action: Action) -> str | None:
        """Why an action must not run because of `after`: a predecessor that did not
        succeed (failed, skipped or rejected), or None."""
        index_of = self.index_of
        if index_of is None:
            index_of = self.index_of = {a.id: i for i, a in enumerate(self.actions)}
        for name in action.depends_on:
            position = index_of.get(name)
            if position is None:
                continue  # the verifier reports unknown names; the DAG ignores them
            result = self.results[position]
            if result is None or result.status is not _SUCCEEDED:
                status = result.status.value if result is not None else "not run"
                return f"{AFTER_PREFIX}{name}, which did not succeed ({status})"
        return None

    def index(self, action_id: str) -> int:
        """The position of an action in the proposal."""
        if self.index_of is None:
            self.index_of = {a.id: i for i, a in enumerate(self.actions)}
        return self.index_of[action_id]

    def has_compensation(self, action_id: str) -> bool:
        return self.actions[self.index(action_id)].compensation is not None

    def refuse(self, index: int, reason: str, inline: bool) -> None:
        """A refusal (policy, approval, middleware, a concurrent writer): rejected, and the
        action's failure behaviour applies, `retry` counting as `abort`."""
        action = self.actions[index]
        if action.failure_behavior is _ABORT or action.failure_behavior is _RETRY:
            why = f"action {action.id} was refused: {reason}"
            self.conclude(index, _REJECTED, error=reason, aborts=why)
            self.abort(why, inline)
        else:
            self.conclude(index, _REJECTED, error=reason)

    def complete(
        self, index: int, key: str | None, outcome: _Outcome, duration: float, inline: bool
    ) -> None:
        """Commit a success, or apply the failure behaviour to a failure."""
        action = self.actions[index]
        self.duration_ms += duration
        if outcome.ok:
            changes = self.commit(action, outcome)
            if key is not None:
                self.rt.idempotency[key] = outcome.output
                self.succeeded_idempotent.append(key)
            if outcome.tool_call:
                self.tool_calls += 1
            if action.compensation is not None:
                self.completed.append(index)
            self.conclude(
                index,
                _SUCCEEDED,
                output=outcome.output,
                changes=changes,
                duration=duration,
                # a cacheable tool's cached output: no call was made (nor counted)
                cached=action.type is _TOOL_CALL and not outcome.tool_call,
            )
            return
        if action.failure_behavior is FailureBehavior.SKIP:
            self.conclude(index, _SKIPPED, error=outcome.error, duration=duration)
            return
        why = f"action {action.id} failed: {outcome.error}"
        self.conclude(index, _FAILED, error=outcome.error, duration=duration, aborts=why)
        self.abort(why, inline)

    def over_budget(self, action: Action) -> bool:
        budget = self.budget
        assert budget is not None
        if budget.max_actions is not None and self.started_actions >= budget.max_actions:
            return True
        if (
            budget.max_tool_calls is not None
            and action.type is _TOOL_CALL
            and self.reserved is not None
            # the calls made, and those admitted that may still make one
            and self.tool_calls + len(self.reserved) >= budget.max_tool_calls
        ):
            return True
        elapsed_ms = (self.rt.clock() - self.start) * 1000.0
        return budget.max_duration_ms is not None and elapsed_ms > budget.max_duration_ms

    def idempotency_key(self, action: Action) -> str | None:
        """The key of an idempotent action's cached output: the caller's scope, the type and
        the call; None when the scope cannot key a cache (nothing is shared then)."""
        if self.cache_scope is None:
            return None
        return f"{self.cache_scope}{action.type.value}:{call_key(action.tool, action.parameters)}"

    def malformed(self, action: Action) -> bool:
        """Whether a rejected call is one no tool could receive (an unknown tool, parameters
        that do not fit its schema): it stays out of `history`, whose rules read the calls'
        parameters (a missing one would make every later decision of such a rule fail)."""
        if action.type is not _TOOL_CALL:
            return False
        tool = self.rt.tools.get(action.tool or "")
        if tool is None:
            return True
        return tool.checker is not None and bool(tool.checker.check(action.parameters))

    def rejections(self, action: Action, count_problem: str | None) -> list[str]:
        """Why the action cannot run at all: session, capability, then CAR's validation (all
        problems, accumulated)."""
        if self.refused is not None:
            return [self.refused]
        if self.session_problem is not None:
            return [self.session_problem]
        problems: list[str] = []
        capability = self.capability
        if capability is not None:
            if count_problem is not None:
                problems.append(count_problem)
            if action.type is _TOOL_CALL and action.tool is not None:
                denied = capability.tool_problem(action.tool)
                if denied is not None:
                    problems.append(denied[1])
            if capability.allowed_keys is not None:
                for key in touched_keys(action):
                    message = capability.key_problem(key)
                    if message is not None:
                        problems.append(message)
            if problems:
                return problems
        live = self.live
        if action.type is _TOOL_CALL:
            tool = self.rt.tools.get(action.tool or "")
            if tool is None:
                problems.append(
                    f"tool '{action.tool}' is not registered"
                    if action.tool
                    else "tool_call action has no 'tool'"
                )
            else:
                checker = tool.checker
                if checker is not None:
                    findings = checker.check(action.parameters)
                    if findings:
                        problems.extend(validation_errors(tool.name, findings))
        elif action.type is _STATE_WRITE and not isinstance(action.parameters.get("key"), str):
            problems.append("state_write needs a string 'key' parameter")
        for pre in action.preconditions:
            failure = check_precondition(pre, live)
            if failure is not None:
                problems.append(failure)
        for key in action.state_dependencies:
            if key not in live:
                problems.append(f"state dependency '{key}' not found")
        return problems

    async def refusal(self, action: Action, asking: tuple[PolicyMatch, ...] | None) -> str | None:
        """Why the approval gate or middleware refuses the action, or None."""
        if asking is not None:
            refused = await self.ask_approval(action, asking)
            if refused is not None:
                return refused
        for hook in self.rt.middleware:
            answer = hook.before_action(action, self.proposal)
            if inspect.isawaitable(answer):
                answer = await answer
            if isinstance(answer, str) and answer:
                return f"refused by {type(hook).__name__}: {answer}"
        return None

    def decide(self, action: Action, deferred: _Deferred | None = None) -> Decision | None:
        """The policies' decision on `action`, its events (shadow decisions, the decision
        record) emitted, or added to `deferred` (redacted) for the caller to emit."""
        if not self.policies:
            return None
        started = time.perf_counter() if self.log_decisions else 0.0
        matches: list[PolicyMatch] = []
        shadows: list[PolicyMatch] = []
        effect = PolicyEffect.ALLOW
        for policies in self.policies:
            decision = policies.evaluate(
                action,
                proposal_id=self.proposal.id,
                state=self.live,
                scope=self.scope,
                history=self.history if self.history is not None else (),
                explain=self.rt.explain_violations,
                dropped=self.dropped,
            )
            if decision.matches:
                matches.extend(decision.matches)
                if _STRENGTH[decision.effect] > _STRENGTH[effect]:
                    effect = decision.effect
            if policies.shadow is not None and self.recording:
                shadows.extend(self.record_shadow(action, policies.shadow, deferred))
        decided = Decision(effect, tuple(matches)) if matches else None
        if self.log_decisions:
            elapsed = (time.perf_counter() - started) * 1e6
            self.log_decision(action, decided, shadows, elapsed, deferred)
        return decided

    def log_decision(
        self,
        action: Action,
        decision: Decision | None,
        shadows: list[PolicyMatch],
        elapsed_us: float,
        deferred: _Deferred | None = None,
    ) -> None:
        """The decision record (`policy_decision`, docs/decision-log.md): redacted as every
        event is."""
        deciding = decision.deciding if decision is not None else ()
        self.emit_or_defer(
            EventKind.POLICY_DECISION,
            action.id,
            deferred,
            {
                "v": DECISION_VERSION,
                "action": action.id,
                "type": action.type.value,
                "tool": action.tool,
                "params": self.logged_parameters(action),
                "tenant": self.tenant,
                "session": self.session,
                "decision": decision.effect.value if decision is not None else "allow",
                "policies": [self.policy_entry(m) for m in deciding],
                "shadow": [self.policy_entry(m, shadow=True) for m in shadows],
                "program": self.program,
                "decided_in_us": round(elapsed_us, 3),
            },
        )

    def logged_parameters(self, action: Action) -> dict[str, Any]:
        """An action's parameters as its decision record holds them: what the proposal's
        logged copy keeps out (`Runtime.redact_document`) is `[REDACTED]` by where it is, a
        secret too short to be searched for in text included."""
        rt = self.rt
        if not (rt.keeps_parameters_out or rt.durable and self.policies):
            return action.parameters
        policies = self.policies if rt.durable else ()
        return rt.written_parameters(action, action.parameters, policies)

    def policy_entry(self, match: PolicyMatch, shadow: bool = False) -> dict[str, Any]:
        for policies in self.policies:
            found = policies.shadow if shadow and policies.shadow is not None else policies
            policy = found.policy(match.policy)
            if policy is not None:
                return policy_entry(match, policy.loc)
        return policy_entry(match, None)

    def record_shadow(
        self, action: Action, shadow: PolicySet, deferred: _Deferred | None = None
    ) -> tuple[PolicyMatch, ...]:
        """What the shadow policies would decide, recorded (`policy_shadowed`, one per
        deciding policy, with the values that decided it) and never enforced."""
        decision = shadow.evaluate(
            action,
            proposal_id=self.proposal.id,
            state=self.live,
            scope=self.scope,
            history=self.history if self.history is not None else (),
            explain=True,
            admit=False,
            dropped=self.dropped,
        )
        if decision.allowed:
            return ()
        for match in decision.deciding:
            data = self.violation_data(match)
            data["effect"] = match.effect.value
            self.emit_or_defer(EventKind.POLICY_SHADOWED, action.id, deferred, data)
        return decision.deciding

    def violation_data(self, match: PolicyMatch) -> dict[str, Any]:
        data: dict[str, Any] = {"policy": match.policy, "reason": match.reason}
        if match.explanation is not None:
            data["explanation"] = str(match.explanation)
        if match.error is not None:
            data["error"] = match.error.message
        return data

    async def ask_approval(self, action: Action, policies: tuple[PolicyMatch, ...]) -> str | None:
        shown = self.rt.shown_parameters(action.tool, action.parameters)
        if self.scrub is not None:  # a secret quoted by another parameter, as events show it
            shown = self.scrub.value(shown)
        request = ApprovalRequest(
            action, self.proposal.id, policies, self.session, self.scope, shown
        )
        # a person may take minutes: nothing written is held back (or keeps a shared journal
        # locked for another process's run) while they do
        self.rt.events.flush()
        answer = self.rt.approval.review(request)
        if inspect.isawaitable(answer):
            answer = await answer
        answer = as_approval(answer)  # a gate's own class may answer anything
        self.emit(
            EventKind.APPROVAL_RECORDED,
            action.id,
            data={
                "approved": answer.approved,
                "reason": answer.reason,
                "approver": answer.approver,
                "expired": answer.expired,
                "policies": [m.policy for m in policies],
            },
        )
        if answer.approved:
            return None
        if answer.expired:
            return f"approval expired ({request.reason}): {answer.reason}"
        return f"approval refused ({request.reason}): {answer.reason}"

    # -- dispatch --------------------------------------------------------------------------

    def dispatch_now(self, action: Action) -> _Outcome | None:
        """Dispatch without waiting when nothing needs the event loop: a state action, or a
        sync tool in an in-order level with no timeout, rate limit, cache or retries. None
        when the action must go through `dispatch`."""
        if action.type is not _TOOL_CALL:
            return self.state_action(action)
        tool = self.rt.tools[action.tool or ""]
        if (
            not tool.inline
            or action.timeout_ms is not None
            or action.failure_behavior is _RETRY
            or tool.fn is None
        ):
            return None
        try:
            output = tool.fn(**call_arguments(tool, action.parameters))
        except ToolError as exc:
            return _Outcome(False, error=str(exc) or type(exc).__name__)
        except Exception as exc:
            return _Outcome(False, error=_describe(exc))
        return _Outcome(True, output, tool_call=True)

    def state_action(self, action: Action) -> _Outcome:
        """A state_write, state_read or assertion."""
        kind = action.type
        params = action.parameters
        if kind is _STATE_WRITE:
            key = params["key"]
            return _Outcome(True, f"written: {key}", writes={key: params.get("value")})
        if kind is _STATE_READ:
            key = params.get("key")
            return _Outcome(True, detached(self.live.get(key)) if isinstance(key, str) else None)
        failure = check_assertion(params, self.live)
        if failure is None:  # CAR's output: the key and the value that held
            key = params["key"]
            return _Outcome(True, {"asserted": key, "value": detached(self.live.get(key))})
        return _Outcome(False, error=f"assertion failed: {failure}")

    async def wait_for_rate(self, action: Action, tool: RegisteredTool) -> None:
        """Wait until the tool's rate limit admits this call, telling the middleware first."""
        delay = self.rt.rate_delay(tool)
        if delay <= 0:
            return
        await self.rt.call_hooks("rate_limited", action, delay)
        await self.rt.sleep(delay)

    async def dispatch(self, action: Action, inline: bool) -> _Outcome:
        if action.type is _TOOL_CALL:
            return await self.call_tool(action, inline)
        return self.state_action(action)

    async def call_tool(self, action: Action, inline: bool) -> _Outcome:
        rt = self.rt
        tool = rt.tools[action.tool or ""]
        if tool.fn is None:
            return _Outcome(
                False,
                error=f"tool '{tool.name}' has no implementation: register one (carlang run"
                " --tools module:attr)",
            )
        ttl = tool.schema.cache_ttl_secs
        scope = self.cache_scope
        cache_key = (
            f"{scope}{call_key(tool.name, action.parameters)}"
            if ttl and scope is not None
            else None
        )
        if cache_key is not None:
            hit, output = rt.result_cache.get(tool.name, cache_key)
            if hit:
                return _Outcome(True, output)
        attempts = action.max_retries + 1 if action.failure_behavior is _RETRY else 1
        error = ""
        for attempt in range(1, attempts + 1):
            await self.wait_for_rate(action, tool)
            state = ToolState(self.writes) if tool.context_param else None
            try:
                output = await self.invoke(tool, action, attempt, state, inline)
            except _DeadlinePassed:
                error = f"timed out after {action.timeout_ms} ms"
            except ToolError as exc:
                error = str(exc) or type(exc).__name__
            except Exception as exc:
                error = _describe(exc)
            else:
                if cache_key is not None and ttl:
                    rt.result_cache.put(tool.name, cache_key, output, float(ttl))
                writes = state.writes if state is not None else _NO_CHANGES
                return _Outcome(True, output, writes=writes, tool_call=True, attempts=attempt)
            if attempt < attempts:
                refused = self.retry_refusal(action)
                if refused is not None:  # a retry calls the tool again: the limits hold
                    return _Outcome(
                        False, error=f"{error}; not retried: {refused}", attempts=attempt
                    )
                self.retries += 1
                delay = rt.retry.delay(attempt)
                self.emit(
                    EventKind.ACTION_RETRYING,
                    action.id,
                    data={"attempt": attempt, "error": error, "delay_ms": delay * 1000.0},
                )
                await rt.sleep(delay)
        return _Outcome(False, error=error, attempts=attempts)

    def retry_refusal(self, action: Action) -> str | None:
        """Why the policies' rate limits refuse another attempt of `action`, or None."""
        for policies in self.policies:
            refused = policies.rate_refusal(action)
            if refused is not None:
                return refused
        return None

    async def invoke(
        self,
        tool: RegisteredTool,
        action: Action,
        attempt: int,
        state: ToolState | None,
        inline: bool,
    ) -> Any:
        """One attempt: inline for a sync tool in an in-order level without a timeout, in a
        worker thread when it must run alongside others or under a timeout."""
        assert tool.fn is not None
        # Never the action's own dict or values: a tool that changes its arguments must not
        # change the proposal.
        kwargs = dict(call_arguments(tool, action.parameters))
        if tool.context_param is not None and state is not None:
            kwargs[tool.context_param] = ToolContext(
                action=action.model_copy(deep=True),
                state=state,
                cancel=self.cancel if self.cancel is not None else self.rt.no_cancel,
                attempt=attempt,
                proposal_id=self.proposal.id,
                run_id=self.run_id,
                session=self.session,
                scope=self.scope,
            )
        timeout = action.timeout_ms / 1000.0 if action.timeout_ms is not None else None
        fn = tool.fn
        if tool.is_async:
            if timeout is None:
                return await fn(**kwargs)
            return await _within(fn(**kwargs), timeout)
        if inline and timeout is None:
            return fn(**kwargs)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.rt.executor, lambda: fn(**kwargs))
        if timeout is None:
            return await future
        return await _within(future, timeout)

    # -- results ---------------------------------------------------------------------------

    def commit(self, action: Action, outcome: _Outcome) -> dict[str, Any]:
        """Write the action's effects: the declared `expected_effects`, then what a
        state_write or the tool itself wrote (so the tool's own write of a key wins), as the
        seed design of CAR's engine does. Returns CAR's `state_changes`."""
        writes = outcome.writes
        effects = action.expected_effects
        if not writes and not effects:
            return _NO_CHANGES
        changes: dict[str, Any] = {}
        transitions: list[StateTransition] = []
        log = self.writes
        for key, value in effects.items():
            # A copy: the proposal's own value must not become the state's (nor the other way).
            transitions.append(log.set(key, detached(value), action.id))
            changes[key] = {"op": "set", "value": value}
        for key, value in writes.items():
            if value is MISSING:
                removed = log.delete(key, action.id)
                if removed is not None:
                    transitions.append(removed)
                    changes[key] = {"op": "delete"}
            else:
                # A state_write's value is the proposal's; a tool's was copied as it was staged.
                transitions.append(log.set(key, detached(value), action.id))
                changes[key] = {"op": "set", "value": value}
        if self.scrub is not None:
            # a secret the state now holds (a tool keeping its token) is kept out of what later
            # runs write down, which do not have it as a parameter
            held = self.scrub.secrets_in([t.new for t in transitions if t.new is not MISSING])
            if held:
                self.rt.remember_state_secrets(self.tenant, held)
        for transition in transitions:
            self.emit(
                EventKind.STATE_CHANGED,
                action.id,
                data={
                    "key": transition.key,
                    "value": None if transition.new is MISSING else transition.new,
                    "deleted": transition.new is MISSING,
                    "tenant": transition.tenant,
                },
            )
        return changes

    def conclude(
        self,
        index: int,
        status: ActionStatus,
        *,
        output: Any = None,
        error: str | None = None,
        changes: dict[str, Any] = _NO_CHANGES,
        duration: float | None = None,
        kind: EventKind | None = None,
        aborts: str | None = None,
        remembered: bool = True,
        cached: bool = False,
    ) -> None:
        """Record an action's result and its one terminal event (`aborts`: the reason the
        run aborts because of it, journaled so that a resumed run finishes the abort;
        `remembered`: whether it goes into `history`; `cached`: a tool call answered from the
        result cache, marked so in the event, which a replay does not count as a call)."""
        action = self.actions[index]
        now = time.time()
        scrub = self.scrub
        if scrub is not None:
            output, changes = scrub.output(output), scrub.value(changes)
            error = scrub.text(error) if error is not None else None
        result = construct(
            ActionResult,
            {
                "action_id": action.id,
                "status": status,
                "output": output,
                "error": error,
                "rolled_back": False,
                "state_changes": changes,
                "duration_ms": duration,
                "timestamp": format_time(now),
            },
            _RESULT_FIELDS,
        )
        self.results[index] = result
        data: dict[str, Any] | None = None
        if error is not None or self.durable or cached:
            data = {"cached": True} if cached else {}
            if error is not None:
                data["error"] = error
            if self.durable:  # what a resumed run needs to stand in for the action
                data["output"] = output
                data["state_changes"] = changes
                if aborts is not None:
                    data["abort"] = scrub.text(aborts) if scrub is not None else aborts
                if self.interrupt is not None:
                    data["interrupted"] = True  # stopped from outside: a resumed run reruns it
        self.events.add(
            kind or _TERMINAL[status],
            self.run_id,
            self.proposal_id,
            action.id,
            data,
            now,
            duration,
        )
        if self.reserved:
            self.reserved.discard(index)  # its call, if it made one, is in `tool_calls` now
        if self.history is not None and remembered:
            entry = self.running.pop(index, None) if self.running else None
            if entry is not None:
                entry["status"] = status.value  # the entry it had since it was admitted
            else:
                self.history.append(history_entry(action, status.value))
        hooks = self.rt.middleware
        if hooks:
            for hook in hooks:
                answer = hook.after_action(action, result)
                if inspect.isawaitable(answer):
                    self.pending_hooks.append(answer)  # awaited right after this step

    def abort(self, reason: str, inline: bool) -> None:
        if self.aborted is None:
            self.aborted = reason
        if inline:
            raise _Abort

    def skip_rest(self, reason: str) -> None:
        for index, result in enumerate(self.results):
            if result is None:
                self.conclude(index, _SKIPPED, error=reason)

    def roll_back(self, reason: str) -> None:
        """Undo what this run wrote (and nothing else), forget its idempotent successes, and
        mark the results of its successes rolled back, as CAR reports them."""
        undone = self.writes.rollback()
        data: dict[str, Any] = {"transitions": len(undone), "reason": reason}
        if self.interrupt is not None:
            data["interrupted"] = True  # the journal stays resumable
        self.emit(EventKind.STATE_ROLLBACK, data=data)
        for key in self.succeeded_idempotent:
            self.rt.idempotency.pop(key, None)
        for index, result in enumerate(self.results):
            if result is not None and result.status is _SUCCEEDED:
                # As CAR reports it: the state changes were undone.
                self.results[index] = result.model_copy(
                    update={"rolled_back": True, "error": ROLLED_BACK, "state_changes": {}}
                )

    # -- sagas -----------------------------------------------------------------------------

    async def compensate(self) -> None:
        """Run the compensations of the succeeded actions, newest success first, each through
        the pipeline (capability, validation, policies, approval, middleware, then the tool
        with retries). One that fails is reported; the others still run."""
        for index in reversed(self.completed):
            action = self.actions[index]
            previous = self.compensated.get(action.id)
            if previous is not None:  # a resumed run: the journal shows it done
                self.compensations.append(previous)
                continue
            self.compensations.append(await self.compensate_one(action))

    def compensation_action(self, action: Action) -> Action | str:
        """The action that undoes `action` (`Action.undo_call`), retried as any undo step is,
        with its tool's defaults; or why there is none to run."""
        undo = action.undo_call(self.action_named)
        if undo is None:
            return "it has no compensation"
        if isinstance(undo, str):
            return undo
        undo = undo.model_copy(update={"failure_behavior": _RETRY})
        return self.rt.filled(undo)  # a call like any: its left-out parameters' defaults

    def action_named(self, action_id: str) -> Action | None:
        """The proposal's action with id `action_id`, or None."""
        if self.index_of is None:
            self.index_of = {a.id: i for i, a in enumerate(self.actions)}
        position = self.index_of.get(action_id)
        return self.actions[position] if position is not None else None

    async def compensate_one(self, action: Action) -> CompensationResult:
        undo = self.compensation_action(action)
        if isinstance(undo, str):
            return self.compensation_ended(action, None, _REJECTED, error=undo)
        self.emit(
            EventKind.COMPENSATION_STARTED,
            action.id,
            data={"tool": undo.tool, "compensation": undo.id},
        )
        if self.steps is not None:  # decided once, as any tool call under a durable backend
            verdict = await self.admission(undo, None)
            self.log_deciding(undo, verdict)
            problems, decision = verdict.get("problems"), _recorded_decision(verdict)
        else:
            problems = self.rejections(undo, None)
            decision = self.decide(undo) if self.policies and not problems else None
        if problems:
            return self.compensation_ended(action, undo, _REJECTED, error="; ".join(problems))
        if decision is not None and decision.denied:
            for match in decision.deciding:
                self.emit(EventKind.POLICY_VIOLATION, undo.id, data=self.violation_data(match))
            return self.compensation_ended(
                action, undo, _REJECTED, error="policy violation: " + decision.reason()
            )
        asking = decision.deciding if decision is not None and decision.needs_approval else None
        try:
            refusal = await self.refusal(undo, asking)
        except Exception as exc:  # a host callback's bug must not stop the other undo steps
            refusal = f"the approval gate or middleware raised {_describe(exc)}"
        if refusal is not None:
            return self.compensation_ended(action, undo, _REJECTED, error=refusal)
        self.events.add(_EXECUTING, self.run_id, self.proposal_id, undo.id, None, time.time())
        if self.steps is not None:
            outcome = _recorded_outcome(await self.steps.call(self, undo))
        else:
            outcome = await self.dispatch(undo, False)
        if outcome.tool_call:
            self.tool_calls += 1
        # What the undo step writes is not committed: the state was already restored to what
        # it was before the proposal, and a compensation changes the world, not that.
        status = _SUCCEEDED if outcome.ok else _FAILED
        return self.compensation_ended(
            action,
            undo,
            status,
            output=outcome.output,
            error=outcome.error,
            attempts=outcome.attempts,
        )

    def compensation_ended(
        self,
        action: Action,
        undo: Action | None,
        status: ActionStatus,
        *,
        output: Any = None,
        error: str | None = None,
        attempts: int = 0,
    ) -> CompensationResult:
        """Record how the compensation of `action` ended: its one end event and its result."""
        scrub = self.scrub
        if scrub is not None:
            output = scrub.output(output)
            error = scrub.text(error) if error is not None else None
        tool = undo.tool or "" if undo is not None else ""
        data: dict[str, Any] = {"tool": tool, "attempts": attempts}
        if undo is not None:
            data["compensation"] = undo.id
        if error is not None:
            data["error"] = error
        if self.durable:
            data["output"] = output
        self.emit(_COMPENSATION_END[status], action.id, data=data)
        if self.history is not None and undo is not None:
            self.history.append(history_entry(undo, status.value))
        return CompensationResult(
            action_id=action.id,
            tool=tool,
            status=status,
            output=output,
            error=error,
            attempts=attempts,
        )

    def emit_or_defer(
        self, kind: EventKind, action_id: str, deferred: _Deferred | None, data: dict[str, Any]
    ) -> None:
        """Emit an event now, or (redacted) add it to `deferred` for the caller to emit."""
        if deferred is None:
            self.emit(kind, action_id, data=data)
        else:
            deferred.append([kind.value, self.scrub.value(data) if self.scrub else data])

    def emit(
        self,
        kind: EventKind,
        action_id: str | None = None,
        *,
        data: dict[str, Any] | None = None,
        timestamp: float | None = None,
        scrubbed: bool = False,
    ) -> None:
        if data is not None and self.scrub is not None and not scrubbed:
            data = self.scrub.value(data)
        self.events.add(
            kind,
            self.run_id,
            self.proposal_id,
            action_id,
            data,
            timestamp if timestamp is not None else time.time(),
        )


def _recorded_outcome(record: Mapping[str, Any]) -> _Outcome:
    """A tool call's outcome from what a durable step recorded (see `ProposalRun.call_record`)."""
    writes = {**record.get("writes", {}), **dict.fromkeys(record.get("deleted", []), MISSING)}
    return _Outcome(
        record["ok"],
        record.get("output"),
        record.get("error"),
        writes,
        record.get("tool_call", False),
        record.get("attempts", 1),
    )


def _recorded_decision(verdict: Mapping[str, Any]) -> Decision | None:
    """A policy decision from what a durable step recorded (see `ProposalRun.verdict`)."""
    if "effect" not in verdict:
        return None
    matches = tuple(
        PolicyMatch(
            m["policy"],
            PolicyEffect(m["effect"]),
            m["reason"],
            explanation=cast(Any, m.get("explanation")),
        )
        for m in verdict["matches"]
    )
    return Decision(PolicyEffect(verdict["effect"]), matches)


class _DeadlinePassed(Exception):
    """The action's `timeout_ms` passed (not a `TimeoutError` the tool raised itself, which
    is its own failure, reported as any exception of its is)."""


async def _within(awaitable: Any, timeout: float) -> Any:
    """`awaitable`'s result, or `_DeadlinePassed` once `timeout` seconds have gone by (the
    attempt is cancelled: a coroutine stops at its next await; a thread cannot be stopped,
    and its result is dropped)."""
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:  # the run was cancelled while it waited
        task.cancel()
        raise
    if not done:
        task.cancel()
        raise _DeadlinePassed
    return task.result()


#: What a run cancelled by a Ctrl-C says (`run_sync` cancels its task with it).
KEYBOARD_INTERRUPT = "KeyboardInterrupt"


def _describe(exc: BaseException) -> str:
    """A tool's exception as an action's error: `RuntimeError: kaboom`; one of carlang's own
    (an MCP server's answer, a subprocess tool's exit) is worded already, and keeps its
    message alone, as a `ToolError` does. A cancellation is `CancelledError` alone: what anyio
    says with it (`Cancelled via cancel scope 7f3a...`) is an address, nothing for a reader."""
    if isinstance(exc, asyncio.CancelledError):
        # (`run_sync` cancels a run with this message on a Ctrl-C: said as a local tool's is)
        return KEYBOARD_INTERRUPT if exc.args == (KEYBOARD_INTERRUPT,) else "CancelledError"
    text = str(exc)
    if isinstance(exc, CarlangRuntimeError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_RESULT_FIELDS: Final = set(ActionResult.model_fields)
_TERMINAL: Final = {
    _SUCCEEDED: EventKind.ACTION_SUCCEEDED,
    _FAILED: EventKind.ACTION_FAILED,
    _SKIPPED: EventKind.ACTION_SKIPPED,
    _REJECTED: EventKind.ACTION_REJECTED,
}
_COMPENSATION_END: Final = {
    _SUCCEEDED: EventKind.COMPENSATION_SUCCEEDED,
    _FAILED: EventKind.COMPENSATION_FAILED,
    _REJECTED: EventKind.COMPENSATION_REJECTED,
}
_STRENGTH: Final = {PolicyEffect.ALLOW: 0, PolicyEffect.REQUIRE_APPROVAL: 1, PolicyEffect.DENY: 2}
