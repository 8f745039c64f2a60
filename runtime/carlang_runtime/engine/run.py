"""One run of one proposal: levels of the DAG, the per-action pipeline, abort and rollback.

Per level, actions run concurrently, except that a level holding an `abort` action (or a
single action) runs in order. Per action, in CAR's order:

    idempotency cache -> capability -> validation -> policies -> approval -> middleware
    -> dispatch (result cache, rate limit, attempts with timeout and backoff) -> commit

An action ends in exactly one status and one terminal event. A failure with `abort` (or
`retry` once its attempts are spent) stops the run: what has not run is skipped, the state is
restored to what it was before the proposal, and the results of successes say they were rolled
back. A policy or approval refusal follows the action's failure behaviour too (`retry` counts
as `abort`: a refused action is never retried). A validation or capability rejection does not
stop the run, as in CAR: what depended on the action is rejected in turn.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from ..capability import touched_keys
from ..dag import build_dag
from ..ir import (
    Action,
    ActionProposal,
    ActionResult,
    ActionStatus,
    ActionType,
    CostSummary,
    FailureBehavior,
    PolicyEffect,
    ProposalResult,
)
from ..ir._base import construct
from ..paramcheck import validation_errors
from ..policy import Decision, PolicyMatch
from ..precondition import check_assertion, check_precondition
from .approval import ApprovalRequest
from .events import EventKind, format_time
from .limits import call_key
from .state import MISSING, StateTransition
from .tools import RegisteredTool, ToolContext, ToolError, ToolState

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = [
    "ProposalRun",
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

_TOOL_CALL = ActionType.TOOL_CALL
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

    __slots__ = ("ok", "output", "error", "writes", "tool_call")

    def __init__(
        self,
        ok: bool,
        output: Any = None,
        error: str | None = None,
        writes: dict[str, Any] = _NO_CHANGES,
        tool_call: bool = False,
    ) -> None:
        self.ok = ok
        self.output = output
        self.error = error
        self.writes = writes
        self.tool_call = tool_call


class _Abort(Exception):
    """Internal: the run must stop (raised inside a sequential level)."""


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
        done: Mapping[str, ActionResult] | None = None,
        replay: Sequence[tuple[str, Any, str | None]] = (),
    ) -> None:
        self.rt = runtime
        self.proposal = proposal
        self.proposal_id = proposal.id
        self.actions = proposal.actions
        self.run_id = run_id
        self.session = session
        self.scope = scope
        self.tenant = scope.get("tenant") if isinstance(scope.get("tenant"), str) else None
        self.cancel = cancel
        self.state = runtime.state
        self.durable = runtime.durable
        self.live = runtime.state.data(self.tenant)
        self.events = runtime.events
        self.results: list[ActionResult | None] = [None] * len(self.actions)
        # Plain counters, not the pydantic CostSummary, whose attribute writes go through
        # validation on every action. `finish` builds the summary.
        self.tool_calls = 0
        self.retries = 0
        self.duration_ms = 0.0
        self.aborted: str | None = None
        self.budget_exceeded = False
        self.started_actions = 0
        self.start = runtime.clock()
        self.capability = runtime.capability_for(proposal)
        self.budget = runtime.budget_for(proposal)
        self.policies = runtime.policy_sets(session)
        # Policies see `history` only if one reads it; otherwise nothing is kept.
        self.history = (
            runtime.history(session, run_id)
            if any(p.reads("history") for p in self.policies)
            else None
        )
        self.unknown_session = session is not None and not runtime.has_session(session)
        # Actions a resumed run already finished: their results stand, they do not run again.
        self.done = dict(done or {})
        # A resumed run's journaled writes, applied after the mark so an abort undoes them.
        self.replay = replay
        self.succeeded_idempotent: list[str] = []
        self.pending_hooks: list[Awaitable[Any]] = []

    # -- the run ---------------------------------------------------------------------------

    async def execute(self) -> ProposalResult:
        """Run every level; abort, roll back and report as needed."""
        rt, proposal = self.rt, self.proposal
        self.emit(EventKind.PROPOSAL_RECEIVED, data=rt.proposal_event_data(proposal, self.session))
        if self.session is not None:
            self.emit(EventKind.SESSION_SCOPE, data={"session": self.session})
        mark = self.state.mark()
        self.emit(EventKind.STATE_SNAPSHOT, data=rt.snapshot_event_data(self.tenant))
        for key, value, action_id in self.replay:
            if value is MISSING:
                self.state.delete(key, action_id, tenant=self.tenant)
            else:
                self.state.set(key, value, action_id, tenant=self.tenant)
        await rt.call_hooks("before_proposal", proposal, self.run_id)
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
        if self.aborted is not None:
            self.skip_rest(SKIPPED_EARLIER_ABORT)
            self.roll_back(mark)
        await self.flush_hooks()
        result = self.finish()
        await rt.call_hooks("after_proposal", proposal, result)
        self.emit(
            EventKind.PROPOSAL_COMPLETED,
            data={"status": "aborted" if self.aborted else "completed", "reason": self.aborted},
        )
        return result

    async def run_level(self, level: list[int], count_problem: str | None) -> None:
        actions = self.actions
        sequential = len(level) == 1 or any(actions[i].failure_behavior is _ABORT for i in level)
        if sequential:
            try:
                for index in level:
                    pending = self.step(index, count_problem, inline=True)
                    if pending is not None:
                        await pending
                    if self.pending_hooks:
                        await self.flush_hooks()
            except _Abort:
                await self.flush_hooks()
                for index in level:
                    if self.results[index] is None:
                        self.conclude(index, _SKIPPED, error=SKIPPED_ABORT)
            return
        await asyncio.gather(*(self.run_action(index, count_problem) for index in level))

    async def run_action(self, index: int, count_problem: str | None) -> None:
        """One action of a level whose actions run alongside each other."""
        pending = self.step(index, count_problem, inline=False)
        if pending is not None:
            await pending
        if self.pending_hooks:
            await self.flush_hooks()

    async def flush_hooks(self) -> None:
        """Await the async `after_action` hooks of what just finished, in order."""
        while self.pending_hooks:
            await self.pending_hooks.pop(0)

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
            proposal_id=self.proposal.id, results=results, cost=cost
        )

    # -- one action ------------------------------------------------------------------------

    def step(self, index: int, count_problem: str | None, inline: bool) -> Awaitable[None] | None:
        """The whole pipeline for one action, as far as it goes without waiting; what must
        wait (an approval, async middleware, a tool that cannot run inline) is returned as
        an awaitable that finishes the job. An in-order level of plain actions never builds
        a coroutine."""
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
        """Everything before dispatch that needs no waiting: a resumed result, the budget,
        the idempotency cache, rejections, the policy decision. None when the action is
        concluded here; else (action, idempotency key, policies asking for approval)."""
        action = self.actions[index]
        done = self.done.get(action.id) if self.done else None
        if done is not None:
            self.results[index] = done
            if done.status is _SUCCEEDED and done.duration_ms:
                self.duration_ms += done.duration_ms
            return None
        if self.budget_exceeded or (self.budget is not None and self.over_budget(action)):
            self.budget_exceeded = True
            self.conclude(index, _SKIPPED, error=BUDGET_EXCEEDED)
            return None
        self.started_actions += 1
        key = self.idempotency_key(action) if action.idempotent else None
        if key is not None:
            cached = self.rt.idempotency.get(key, MISSING)
            if cached is not MISSING:
                self.conclude(index, _SUCCEEDED, output=cached, kind=EventKind.ACTION_DEDUPLICATED)
                return None
        problems = self.rejections(action, count_problem)
        if problems:
            self.conclude(index, _REJECTED, error="; ".join(problems))
            return None
        self.events.add(_VALIDATED, self.run_id, self.proposal_id, action.id, None, time.time())
        decision = self.decide(action) if self.policies else None
        if decision is None:
            return action, key, None
        if decision.denied:
            for match in decision.deciding:
                self.emit(EventKind.POLICY_VIOLATION, action.id, data=self.violation_data(match))
            self.refuse(index, "policy violation: " + decision.reason(), inline)
            return None
        return action, key, decision.deciding if decision.needs_approval else None

    def refuse(self, index: int, reason: str, inline: bool) -> None:
        """A refusal (policy, approval, middleware): rejected, and the action's failure
        behaviour applies, `retry` counting as `abort`."""
        action = self.actions[index]
        self.conclude(index, _REJECTED, error=reason)
        if action.failure_behavior is _ABORT or action.failure_behavior is _RETRY:
            self.abort(f"action {action.id} was refused: {reason}", inline)

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
            self.conclude(
                index, _SUCCEEDED, output=outcome.output, changes=changes, duration=duration
            )
            return
        if action.failure_behavior is FailureBehavior.SKIP:
            self.conclude(index, _SKIPPED, error=outcome.error, duration=duration)
            return
        self.conclude(index, _FAILED, error=outcome.error, duration=duration)
        self.abort(f"action {action.id} failed: {outcome.error}", inline)

    def over_budget(self, action: Action) -> bool:
        budget = self.budget
        assert budget is not None
        if budget.max_actions is not None and self.started_actions >= budget.max_actions:
            return True
        if (
            budget.max_tool_calls is not None
            and action.type is _TOOL_CALL
            and self.tool_calls >= budget.max_tool_calls
        ):
            return True
        elapsed_ms = (self.rt.clock() - self.start) * 1000.0
        return budget.max_duration_ms is not None and elapsed_ms > budget.max_duration_ms

    @staticmethod
    def idempotency_key(action: Action) -> str:
        return f"{action.type.value}:{call_key(action.tool, action.parameters)}"

    def rejections(self, action: Action, count_problem: str | None) -> list[str]:
        """Why the action cannot run at all: session, capability, then CAR's validation (all
        problems, accumulated)."""
        if self.unknown_session:
            return [f"unknown session '{self.session}'"]
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

    def decide(self, action: Action) -> Decision | None:
        if not self.policies:
            return None
        matches: list[PolicyMatch] = []
        effect = PolicyEffect.ALLOW
        for policies in self.policies:
            decision = policies.evaluate(
                action,
                proposal_id=self.proposal.id,
                state=self.live,
                scope=self.scope,
                history=self.history if self.history is not None else (),
                explain=self.rt.explain_violations,
            )
            if decision.matches:
                matches.extend(decision.matches)
                if _STRENGTH[decision.effect] > _STRENGTH[effect]:
                    effect = decision.effect
        return Decision(effect, tuple(matches)) if matches else None

    def violation_data(self, match: PolicyMatch) -> dict[str, Any]:
        data: dict[str, Any] = {"policy": match.policy, "reason": match.reason}
        if match.explanation is not None:
            data["explanation"] = str(match.explanation)
        if match.error is not None:
            data["error"] = match.error.message
        return data

    async def ask_approval(self, action: Action, policies: tuple[PolicyMatch, ...]) -> str | None:
        request = ApprovalRequest(action, self.proposal.id, policies, self.session, self.scope)
        answer = self.rt.approval.review(request)
        if inspect.isawaitable(answer):
            answer = await answer
        self.emit(
            EventKind.APPROVAL_RECORDED,
            action.id,
            data={
                "approved": answer.approved,
                "reason": answer.reason,
                "approver": answer.approver,
                "policies": [m.policy for m in policies],
            },
        )
        if answer.approved:
            return None
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
            output = tool.fn(**tool.arguments(action.parameters))
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
            return _Outcome(True, self.live.get(key) if isinstance(key, str) else None)
        failure = check_assertion(params, self.live)
        if failure is None:  # CAR's output: the key and the value that held
            key = params["key"]
            return _Outcome(True, {"asserted": key, "value": self.live.get(key)})
        return _Outcome(False, error=f"assertion failed: {failure}")

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
        cache_key = call_key(tool.name, action.parameters) if ttl else None
        if cache_key is not None:
            hit, output = rt.result_cache.get(cache_key)
            if hit:
                return _Outcome(True, output)
        attempts = action.max_retries + 1 if action.failure_behavior is _RETRY else 1
        error = ""
        for attempt in range(1, attempts + 1):
            await rt.wait_for_rate(tool)
            state = ToolState(self.state, self.tenant) if tool.context_param else None
            try:
                output = await self.invoke(tool, action, attempt, state, inline)
            except TimeoutError:
                error = f"timed out after {action.timeout_ms} ms"
            except ToolError as exc:
                error = str(exc) or type(exc).__name__
            except Exception as exc:
                error = _describe(exc)
            else:
                if cache_key is not None and ttl:
                    rt.result_cache.put(cache_key, output, float(ttl))
                writes = state.writes if state is not None else _NO_CHANGES
                return _Outcome(True, output, writes=writes, tool_call=True)
            if attempt < attempts:
                self.retries += 1
                delay = rt.retry.delay(attempt)
                self.emit(
                    EventKind.ACTION_RETRYING,
                    action.id,
                    data={"attempt": attempt, "error": error, "delay_ms": delay * 1000.0},
                )
                await rt.sleep(delay)
        return _Outcome(False, error=error)

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
        kwargs = dict(tool.arguments(action.parameters))  # never the action's own dict
        if tool.context_param is not None and state is not None:
            kwargs[tool.context_param] = ToolContext(
                action=action,
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
            return await asyncio.wait_for(fn(**kwargs), timeout)
        if inline and timeout is None:
            return fn(**kwargs)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.rt.executor, lambda: fn(**kwargs))
        if timeout is None:
            return await future
        return await asyncio.wait_for(future, timeout)

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
        for key, value in effects.items():
            transitions.append(self.state.set(key, value, action.id, tenant=self.tenant))
            changes[key] = {"op": "set", "value": value}
        for key, value in writes.items():
            if value is MISSING:
                removed = self.state.delete(key, action.id, tenant=self.tenant)
                if removed is not None:
                    transitions.append(removed)
                    changes[key] = {"op": "delete"}
            else:
                transitions.append(self.state.set(key, value, action.id, tenant=self.tenant))
                changes[key] = {"op": "set", "value": value}
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
    ) -> None:
        """Record an action's result and its one terminal event."""
        action = self.actions[index]
        now = time.time()
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
        if error is not None or self.durable:
            data = {}
            if error is not None:
                data["error"] = error
            if self.durable:  # what a resumed run needs to stand in for the action
                data["output"] = output
                data["state_changes"] = changes
        self.events.add(
            kind or _TERMINAL[status],
            self.run_id,
            self.proposal_id,
            action.id,
            data,
            now,
            duration,
        )
        if self.history is not None:
            self.history.append(
                {
                    "id": action.id,
                    "type": action.type.value,
                    "tool": action.tool,
                    "params": action.parameters,
                    "status": status.value,
                }
            )
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

    def roll_back(self, mark: int) -> None:
        undone = self.state.rollback(mark)
        self.emit(
            EventKind.STATE_ROLLBACK,
            data={"transitions": len(undone), "reason": self.aborted},
        )
        for key in self.succeeded_idempotent:
            self.rt.idempotency.pop(key, None)
        for index, result in enumerate(self.results):
            if result is not None and result.status is _SUCCEEDED:
                # As CAR reports it: the state changes were undone.
                self.results[index] = result.model_copy(
                    update={"rolled_back": True, "error": ROLLED_BACK, "state_changes": {}}
                )

    def emit(
        self,
        kind: EventKind,
        action_id: str | None = None,
        *,
        data: dict[str, Any] | None = None,
        timestamp: float | None = None,
    ) -> None:
        self.events.add(
            kind,
            self.run_id,
            self.proposal_id,
            action_id,
            data,
            timestamp if timestamp is not None else time.time(),
        )


def _describe(exc: BaseException) -> str:
    """A tool's exception as an action's error: `RuntimeError: kaboom`."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_RESULT_FIELDS: Final = set(ActionResult.model_fields)
_TERMINAL: Final = {
    _SUCCEEDED: EventKind.ACTION_SUCCEEDED,
    _FAILED: EventKind.ACTION_FAILED,
    _SKIPPED: EventKind.ACTION_SKIPPED,
    _REJECTED: EventKind.ACTION_REJECTED,
}
_STRENGTH: Final = {PolicyEffect.ALLOW: 0, PolicyEffect.REQUIRE_APPROVAL: 1, PolicyEffect.DENY: 2}
