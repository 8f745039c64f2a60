"""`Runtime`: register tools, set capabilities, budgets and policies, then run proposals.

    rt = Runtime.from_program(program)
    rt.register_tool("fetch", fetch)                 # schema from the program, or from hints
    result = rt.execute(proposal)                    # -> ProposalResult

`execute` is a synchronous facade over `execute_async`; everything else (sessions, scopes,
approvals, middleware, replanning, checkpoints, the event log) hangs off the same object.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import json
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from ..capability import CapabilityCheck
from ..decisionlog.schema import content_hash
from ..errors import CarlangRuntimeError
from ..ir import (
    Action,
    ActionProposal,
    ActionType,
    Budget,
    Capability,
    Policy,
    PolicyEffect,
    ProposalResult,
    ToolSchema,
)
from ..ir.load import load_proposal
from ..paramcheck import with_defaults
from ..policy import HISTORY_LIMIT, PolicySet, keep_history
from ..redact import (
    Scrubber,
    SecretPath,
    redact_parameters,
    redaction_path,
    secret_values,
)
from .approval import ApprovalGate, ApprovalRequest, DenyApprovals, as_gate
from .cancel import CancelToken
from .events import EventKind, EventLog
from .limits import ResultCache, TokenBucket
from .middleware import Middleware
from .outcome import candidate_failure, uncompensated_successes
from .run import (
    BUDGET_EXCEEDED,
    KEYBOARD_INTERRUPT,
    ROLLED_BACK_ON_RESUME,
    ProposalRun,
    Resumption,
)
from .state import StateStore, check_tenant
from .steps import DurableSteps
from .threads import DaemonThreadPool
from .tools import RegisteredTool, subprocess_tool

if TYPE_CHECKING:
    from ..planner import PlannerConfig, ScoredProposal, ToolFeedback

__all__ = ["Runtime", "RetryPolicy", "ReplanConfig", "ReplanContext", "GateDecision"]

T = TypeVar("T")

#: The checkpoint format written: `state` is the shared state, `tenants` each tenant's.
CHECKPOINT_FORMAT = 2
#: A scope as the key of the caches it may share (strict: a value that is not JSON raises).
_SCOPE_KEY = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff between attempts of a `retry` action: `base_delay * factor**(attempt-1)`
    seconds, at most `max_delay` (CAR: 100 ms x 2^k)."""

    base_delay: float = 0.1
    factor: float = 2.0
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return float(min(self.max_delay, self.base_delay * self.factor ** (attempt - 1)))


@dataclass(frozen=True)
class ReplanConfig:
    """Replanning after an abort: at most `max_replans`, after `delay_ms`; with
    `verify_before_execute`, a new proposal that does not verify is rejected unrun."""

    max_replans: int = 0
    delay_ms: int = 0
    verify_before_execute: bool = True


@dataclass
class ReplanContext:
    """What a replan callback gets: the failed actions (tool, error, parameters), the ids
    that completed, the state (after rollback) and how many replans are left."""

    proposal: ActionProposal
    failed_actions: list[dict[str, Any]]
    completed_action_ids: list[str]
    state_snapshot: dict[str, Any]
    attempt: int
    replans_remaining: int


@dataclass(frozen=True)
class GateDecision:
    """What a host loop asks before executing an action: allow, require_approval or deny,
    with the reason."""

    decision: str
    reason: str = ""
    policies: tuple[str, ...] = ()


#: How many distinct kept-out values a session remembers for its later runs (the oldest go
#: first): enough for the tokens and keys of a long session, bounded for a gateway's memory.
SESSION_SECRETS: Final = 1000


@dataclass
class _Session:
    policies: PolicySet
    history: list[dict[str, Any]] = field(default_factory=list)
    #: The tenant whose runs the session holds (`tenant`, once `bound`): its history is theirs.
    tenant: str | None = None
    bound: bool = False
    #: How many of its earliest `history` entries are gone (`keep_history`): a policy that
    #: reads `history` cannot be decided without them, and fails closed.
    dropped: int = 0
    #: The values its runs kept out of what they wrote down (secret parameters, `redact`
    #: paths, what a built-in rule caught), distinct, the last `SESSION_SECRETS`: later runs
    #: of the session keep them out too (a token given to `login` and echoed by a later call).
    secrets: list[Any] = field(default_factory=list)


class Runtime:
    """The lean interpreter: runs verified IR with CAR's engine semantics."""

    def __init__(
        self,
        *,
        state: Mapping[str, Any] | StateStore | None = None,
        events: EventLog | None = None,
        approval: ApprovalGate | Callable[[ApprovalRequest], Any] | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        explain_violations: bool = True,
        workers: int = 32,
        compensate: bool = True,
        decision_log: bool | None = None,
        history_limit: int = HISTORY_LIMIT,
    ) -> None:
        if type(history_limit) is not int or history_limit < 1:
            raise ValueError(f"history_limit must be a positive int, not {history_limit!r}")
        self.state = state if isinstance(state, StateStore) else StateStore(state)
        self.events = events if events is not None else EventLog()
        self.approval: ApprovalGate = as_gate(approval) if approval else _NO_APPROVAL_GATE
        self.retry = retry or RetryPolicy()
        self.clock = clock
        self.sleep = sleep
        self.explain_violations = explain_violations
        #: Whether an abort runs the compensations of what succeeded (False: CAR's behaviour).
        self.compensate = compensate
        #: A durable backend's recorder of admission decisions and tool results (see
        #: steps.py); None runs everything in process, as it is.
        self.steps: DurableSteps | None = None
        #: Whether every policy decision is a `policy_decision` event (None: when events go
        #: to a sink, so a runtime that keeps nothing pays nothing).
        self.decision_log = decision_log
        #: How many refused and how many other entries a session's `history` keeps (each):
        #: past it, policies that read `history` fail closed for the rest of the session.
        self.history_limit = history_limit
        self.tools: dict[str, RegisteredTool] = {}
        self.policies = PolicySet(clock=clock)
        self.middleware: list[Middleware] = []
        self.idempotency: dict[str, Any] = {}
        self.result_cache = ResultCache(clock)
        self.no_cancel = CancelToken()
        self.executor: concurrent.futures.Executor = DaemonThreadPool(
            max_workers=workers, thread_name_prefix="carlang-tool"
        )
        self._capability: CapabilityCheck | None = None
        self._budget: Budget | None = None
        self._capabilities: dict[str, CapabilityCheck] = {}
        self._budgets: dict[str, Budget] = {}
        #: The capability and budget every proposal runs under, whatever it names (`pin`).
        self._pinned: dict[str, str] = {}
        #: Per tenant (None: the shared state), the secret values runs wrote into the state
        #: (a tool keeping its token): later runs, which do not have them as parameters, keep
        #: them out of what they write down, their state snapshots first (`scrubber`).
        self._state_secrets: dict[str | None, list[Any]] = {}
        #: Secrets the host knows of (`keep_out`): kept out of every run's records.
        self._host_secrets: list[Any] = []
        self._sessions: dict[str, _Session] = {}
        self._run_history: dict[str, list[dict[str, Any]]] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._replan: Callable[[ReplanContext], Any] | None = None
        self._replan_config = ReplanConfig()
        self._closers: list[Callable[[], None]] = []
        self._secret_tools: set[str] = set()
        #: Parameter paths of every tool kept out of what is written down (`redact`).
        self.redactions: tuple[SecretPath, ...] = ()
        #: Which program decided (`program` of `policy_decision` events): set by
        #: `from_program`, else the hash of the policies when a run starts.
        self.program_hash: str | None = None

    # -- building --------------------------------------------------------------------------

    @classmethod
    def from_program(
        cls,
        program: Any,
        *,
        capability: str | None = None,
        budget: str | None = None,
        **options: Any,
    ) -> Runtime:
        """A runtime for a compiled program: its tools declared (schemas, no implementations
        yet, except MCP-bound tools: their servers), its initial state, capabilities, budgets
        and policies. `capability`, `budget`: names of the program's, which every proposal then
        runs under (`pin`): what a host running a model's proposals gives, since a proposal
        names its own otherwise."""
        from ..ir import Program

        if not isinstance(program, Program):
            program = Program.model_validate(program)
        options.setdefault("state", program.initial_state)
        runtime = cls(**options)
        for schema in program.tools:
            runtime.declare_tool(schema)
        runtime.policies = PolicySet(program.policies, tools=program.tools, clock=runtime.clock)
        runtime._capabilities = {c.name: CapabilityCheck(c) for c in program.capabilities}
        runtime._budgets = {b.name: b for b in program.budgets}
        if program.mcp_servers:
            # MCP-bound tools call their servers (sessions start on first use)
            from ..mcp import attach_mcp_servers

            attach_mcp_servers(runtime, program)
        runtime.redact(program.redactions)
        runtime.program_hash = content_hash(program)
        if capability is not None or budget is not None:
            runtime.pin(capability=capability, budget=budget)
        return runtime

    def pin(self, *, capability: str | None = None, budget: str | None = None) -> None:
        """Run every proposal under `capability` and `budget` (names this runtime has, from
        its program): one that names none runs under them, one that names another is refused
        (`CarlangRuntimeError`). A proposal an agent writes may name a capability, and without
        a pin the runtime honours it: an agent would choose its own rights."""
        for kind, name, known in (
            ("capability", capability, self._capabilities),
            ("budget", budget, self._budgets),
        ):
            if name is None:
                continue
            if name not in known:
                raise CarlangRuntimeError(f"no {kind} '{name}' to pin (known: {sorted(known)})")
            self._pinned[kind] = name

    @property
    def logs_decisions(self) -> bool:
        """Whether runs record `policy_decision` events."""
        return self.decision_log if self.decision_log is not None else self.durable

    def decision_program(self, policies: Sequence[PolicySet]) -> str:
        """The content hash a decision record names: the program's, or that of the policies
        of a runtime built by hand."""
        if self.program_hash is not None:
            return self.program_hash
        return content_hash([p.model_dump(mode="json") for s in policies for p in s.declared])

    def redact(self, paths: Iterable[str]) -> None:
        """Keep the parameters at `paths` (`params.card_number`, `params.cards.*.cvv`), of
        every tool, out of every event, sink and result, as secret parameters are."""
        added = tuple(redaction_path(path) for path in paths)
        self.redactions = tuple(dict.fromkeys((*self.redactions, *added)))

    def shown_parameters(self, tool: str | None, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """A call's parameters as a person may see them (an approval prompt, a live view): the
        tool's secret parameters and the program's `redact` paths are `[REDACTED]`."""
        registered = self.tools.get(tool or "")
        paths = (*registered.secrets, *self.redactions) if registered else self.redactions
        return dict(redact_parameters(parameters, paths) if paths else parameters)

    def with_defaults(self, proposal: ActionProposal) -> ActionProposal:
        """The proposal with each tool call's left-out parameters given their declared defaults,
        as the compiler gives them to a call written in a program: the tools, the policies and
        the log all see every parameter the signature promises (the proposal itself when no
        call leaves one out). Every way in fills them: execute, resume, replan, rank, gate."""
        if not any(tool.defaults for tool in self.tools.values()):
            return proposal  # the usual case: nothing to fill, no pass over the actions
        actions = [self.filled(action) for action in proposal.actions]
        if all(new is old for new, old in zip(actions, proposal.actions, strict=True)):
            return proposal
        return proposal.model_copy(update={"actions": actions})

    def filled(self, action: Action) -> Action:
        """`action` with its tool's declared defaults for the parameters it leaves out
        (`paramcheck.with_defaults`); itself when it leaves none out, or is no tool call."""
        if action.type is not ActionType.TOOL_CALL:
            return action
        tool = self.tools.get(action.tool or "")
        if tool is None or not tool.defaults or tool.defaults.keys() <= action.parameters.keys():
            return action
        filled = with_defaults(action.parameters, tool.defaults)
        return action.model_copy(update={"parameters": filled})

    def declare_tool(self, schema: ToolSchema | Mapping[str, Any]) -> None:
        """Make a tool known by its schema, without an implementation yet (calling it fails
        clearly until one is registered)."""
        if not isinstance(schema, ToolSchema):
            schema = ToolSchema.model_validate(schema)
        existing = self.tools.get(schema.name)
        self.tools[schema.name] = RegisteredTool(
            schema.name, schema, existing.fn if existing else None
        )
        self._tool_changed(schema.name)

    def register_tool(
        self,
        name: str,
        fn: Callable[..., Any],
        schema: ToolSchema | Mapping[str, Any] | None = None,
    ) -> None:
        """Register `fn` (sync or async) as tool `name`. Without `schema`, a schema declared
        earlier (by the program) is kept; failing that, one comes from `fn`'s type hints."""
        declared = self.tools.get(name)
        if schema is None and declared is not None:
            schema = declared.schema
        self.tools[name] = RegisteredTool.from_function(name, fn, schema)
        self._tool_changed(name)

    def register_subprocess_tool(
        self,
        name: str,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        schema: ToolSchema | Mapping[str, Any] | None = None,
        inherit_env: Sequence[str] | None = None,
    ) -> None:
        """Register a program as tool `name` (see `subprocess_tool`: its environment is an
        allow-list, `inherit_env` names what it takes from this process's)."""
        tool = subprocess_tool(argv, timeout=timeout, env=env, cwd=cwd, inherit_env=inherit_env)
        declared = self.tools.get(name)
        if schema is None:
            schema = (
                declared.schema
                if declared is not None
                else ToolSchema(name=name, description=f"runs {argv[0]}")
            )
        self.register_tool(name, tool, schema)

    def _tool_changed(self, name: str) -> None:
        self._buckets.pop(name, None)
        self.result_cache.invalidate(name)
        self._secret_tools = {n for n, tool in self.tools.items() if tool.secrets}

    def set_capabilities(self, capability: Capability | None) -> None:
        """The capability for proposals that name none."""
        self._capability = CapabilityCheck(capability) if capability is not None else None

    def set_budget(self, budget: Budget | None) -> None:
        """The hard budget for proposals that name none."""
        self._budget = budget

    def add_policy(self, policy: Policy, *, session: str | None = None) -> None:
        """Add a policy for every run, or for one session's runs only."""
        if session is None:
            self.policies.add(policy)
            return
        found = self._sessions.get(session)
        if found is None:
            raise CarlangRuntimeError(f"unknown session '{session}'")
        found.policies.add(policy)

    def use(self, middleware: Middleware) -> None:
        """Add middleware; hooks run in the order added."""
        self.middleware.append(middleware)

    def set_approval_gate(self, gate: ApprovalGate | Callable[[ApprovalRequest], Any]) -> None:
        """Who decides actions a require_approval policy matched: a gate (`review(request)`),
        or a function of the request (as `CallbackGate` takes it)."""
        self.approval = as_gate(gate)

    def with_replan(
        self, callback: Callable[[ReplanContext], Any], config: ReplanConfig | None = None
    ) -> None:
        """Replan after an abort: `callback(context)` returns a new proposal (or an awaitable
        of one); it runs in place of the failed one, at most `config.max_replans` times."""
        self._replan = callback
        self._replan_config = config or ReplanConfig(max_replans=1)

    # -- sessions --------------------------------------------------------------------------

    def open_session(self, *, tenant: str | None = None) -> str:
        """A new session: its own policies (added to the global ones) and its own history.
        It belongs to one tenant (`tenant`, else the tenant of its first run, None for the
        shared state): a run of another tenant in it is refused (`session_problem`), as its
        history would show one tenant's actions, parameters and all, to another's policies."""
        session = uuid.uuid4().hex[:12]
        found = _Session(PolicySet(tools=self._schemas(), clock=self.clock))
        if tenant is not None:
            found.tenant, found.bound = check_tenant(tenant), True
        self._sessions[session] = found
        return session

    def session_problem(self, session: str, tenant: str | None) -> str | None:
        """Why a run of `tenant` may not run in `session` (None: it may): unknown, or another
        tenant's. The first run binds a session opened without a tenant."""
        found = self._sessions.get(session)
        if found is None:
            return f"unknown session '{session}'"
        if not found.bound:
            found.tenant, found.bound = tenant, True
        if found.tenant != tenant:

            def who(name: str | None) -> str:
                return "the shared state" if name is None else f"tenant '{name}'"

            return f"session '{session}' belongs to {who(found.tenant)}, not {who(tenant)}"
        return None

    def close_session(self, session: str) -> None:
        """End a session; running with its id afterwards rejects every action."""
        self._sessions.pop(session, None)

    def has_session(self, session: str) -> bool:
        """Whether `session` is open."""
        return session in self._sessions

    # -- what runs read --------------------------------------------------------------------

    def capability_for(self, proposal: ActionProposal) -> CapabilityCheck | None:
        """The capability a proposal runs under: the pinned one (`pin`), else the one it
        names, else the default."""
        return _named(proposal, "capability", self._capabilities, self._capability, self._pinned)

    def budget_for(self, proposal: ActionProposal) -> Budget | None:
        """The budget a proposal runs under: the pinned one (`pin`), else the one it names,
        else the default."""
        return _named(proposal, "budget", self._budgets, self._budget, self._pinned)

    def policy_sets(self, session: str | None) -> list[PolicySet]:
        """The policy sets that decide an action: the global one and the session's."""
        sets = [self.policies] if len(self.policies) else []
        found = self._sessions.get(session) if session is not None else None
        if found is not None and len(found.policies):
            sets.append(found.policies)
        return sets

    def history(self, session: str | None, run_id: str) -> list[dict[str, Any]]:
        """The actions already run that a policy's `history` sees: the session's, or this
        run's when there is no session."""
        found = self._sessions.get(session) if session is not None else None
        if found is not None:
            found.dropped += keep_history(found.history, self.history_limit)
            return found.history
        return self._run_history.setdefault(run_id, [])

    def _run_started_data(self, session: str | None, scope: dict[str, Any]) -> dict[str, Any]:
        """What `run_started` records: the session and the scope, and the history limit of a
        session when it is not the default one (replay trims the session's history as this
        runtime did, and so fails closed where it did)."""
        data: dict[str, Any] = {"session": session, "scope": scope}
        if session is not None and self.history_limit != HISTORY_LIMIT:
            data["history_limit"] = self.history_limit
        return data

    def history_dropped(self, session: str | None) -> int:
        """How many earlier entries the session's `history` no longer holds (0 without a
        session: a run's own history is whole)."""
        found = self._sessions.get(session) if session is not None else None
        return found.dropped if found is not None else 0

    def rate_delay(self, tool: RegisteredTool) -> float:
        """Reserve one call of the tool under its rate limit: how many seconds the caller must
        wait before making it (0: at once; backpressure, not a refusal)."""
        limit = tool.schema.rate_limit
        if limit is None:
            return 0.0
        bucket = self._buckets.get(tool.name)
        if bucket is None:
            bucket = self._buckets[tool.name] = TokenBucket(
                limit.max_calls, limit.interval_secs, self.clock
            )
        return bucket.reserve()

    @property
    def durable(self) -> bool:
        """Whether events go anywhere besides memory (then they carry what resume needs)."""
        return bool(self.events.sinks)

    def proposal_event_data(
        self,
        proposal: ActionProposal,
        session: str | None,
        policies: Sequence[PolicySet] = (),
    ) -> dict[str, Any]:
        """What `proposal_received` records: the whole proposal when the log is durable, with
        secret parameters and the values a built-in rule catches replaced by `[REDACTED]`
        (`redacted` then says so: resuming such a run needs the proposal again)."""
        data: dict[str, Any] = {"actions": len(proposal.actions), "source": proposal.source}
        if session is not None:
            data["session"] = session
        if self.durable:
            document = proposal.model_dump(mode="json")
            if self.redact_document(proposal, document, policies):
                data["redacted"] = True
            data["proposal"] = document
        return data

    def redact_document(
        self, proposal: ActionProposal, document: dict[str, Any], policies: Sequence[PolicySet]
    ) -> bool:
        """Redact, in place, the parameters of a proposal's JSON document that must not be
        written down; whether anything was."""
        redacted = False
        for action, entry in zip(proposal.actions, document["actions"], strict=True):
            before = entry.get("parameters", {})
            if action.parameters and isinstance(before, dict):
                entry["parameters"] = self.written_parameters(action, before, policies)
                redacted = redacted or entry["parameters"] is not before
            compensation = entry.get("compensation")
            undo = self._compensation_call(action)
            if isinstance(compensation, dict) and undo is not None:
                # the undo step is a call of its tool like any: the same paths are kept out
                before = compensation.get("parameters", {})
                if isinstance(before, dict) and before:
                    compensation["parameters"] = self.written_parameters(undo, before, policies)
                    redacted = redacted or compensation["parameters"] is not before
        return redacted

    def written_parameters(
        self, action: Action, parameters: dict[str, Any], policies: Sequence[PolicySet]
    ) -> dict[str, Any]:
        """`parameters` (the action's, as a document holds them) as a log may hold them: its
        tool's secret parameters, the `redact` paths and what a policy caught (`deny_keyword`)
        are `[REDACTED]` by where they are, whatever their length (free-text scrubbing skips
        short values); `parameters` itself when nothing is."""
        tool = self.tools.get(action.tool or "")
        paths = (*tool.secrets, *self.redactions) if tool is not None else self.redactions
        caught: set[str] = set()
        for policy_set in policies:
            caught |= policy_set.caught_parameters(action)
        if not (paths or caught):
            return parameters
        shown = redact_parameters(parameters, paths, caught)
        return shown if shown != parameters else parameters

    def _compensation_call(self, action: Action) -> Action | None:
        """The call a `compensate tool(...)` of `action` makes (its undo step, as far as
        what it passes goes: its tool's defaults too, a secret one included), or None (no
        compensation, or one that names an action, which is in the proposal and redacted as
        itself)."""
        if action.compensation is None or action.compensation.type != "tool":
            return None
        undo = action.undo_call(lambda _: None)
        return self.filled(undo) if isinstance(undo, Action) else None

    @property
    def keeps_parameters_out(self) -> bool:
        """Whether some parameter is kept out of what runs write down: a tool has secret
        parameters, or the program `redact`s paths."""
        return bool(self._secret_tools or self.redactions)

    def scrubber(
        self,
        proposal: ActionProposal,
        policies: Sequence[PolicySet] = (),
        tenant: str | None = None,
        session: str | None = None,
    ) -> Scrubber | None:
        """What a run must keep out of everything it writes down: the values of secret
        parameters of its actions (and compensations), the secrets earlier runs wrote into the
        state of `tenant` (`remember_state_secrets`), those earlier runs of `session` kept out
        (remembered here for its later runs), and, when the log is durable, the values a
        built-in rule catches. None when there is nothing (the common case costs a set test
        per run)."""
        held = self._state_secrets.get(tenant)
        found = self._sessions.get(session) if session is not None else None
        if found is not None and (not found.bound or found.tenant != tenant):
            # another tenant's run (refused) neither adds to nor learns from the session's
            # secrets: whether a guess comes back `[REDACTED]` would tell it one
            found = None
        earlier = found.secrets if found is not None else []
        if (
            not self.keeps_parameters_out
            and not (self.durable and policies)
            and not held
            and not earlier
            and not self._host_secrets
        ):
            return None
        values = self._kept_out(proposal, policies if self.durable else ())
        if found is not None and values:
            _remember_distinct(found.secrets, values, SESSION_SECRETS)
        values.extend(earlier)
        if held:
            values.extend(self.state_secrets(tenant))
        values.extend(self._host_secrets)
        scrubber = Scrubber(values)
        return scrubber if scrubber else None

    def keep_out(self, values: Iterable[Any]) -> None:
        """Secrets the host knows of, whatever a run's actions say (a proxy's bearer tokens, its
        MCP servers' credentials): kept out of everything every run writes down or hands back
        (events, results, approval requests, messages), wherever they occur, as the value of
        a secret parameter is: a client that sends one as an argument does not get it logged."""
        _remember_distinct(self._host_secrets, values)

    @property
    def kept_out(self) -> tuple[Any, ...]:
        """The host's secrets given to `keep_out`: for what writes down text the runtime does
        not see (an MCP server's standard error, passed on by the proxy)."""
        return tuple(self._host_secrets)

    def remember_state_secrets(self, tenant: str | None, values: Iterable[Any]) -> None:
        """Secret values a run wrote into the state of `tenant`: kept out of what later runs
        write down (a snapshot of that state above all), as long as the state holds them."""
        _remember_distinct(self._state_secrets.setdefault(tenant, []), values)

    def state_secrets(self, tenant: str | None) -> list[Any]:
        """The remembered secrets the state of `tenant` still holds (the others forgotten)."""
        held = self._state_secrets.get(tenant)
        if not held:
            return []
        state = self.state.snapshot(tenant=tenant)
        still = [secret for secret in held if Scrubber([secret]).output(state) != state]
        if still:
            self._state_secrets[tenant] = still
        else:
            del self._state_secrets[tenant]
        return still

    def _kept_out(self, proposal: ActionProposal, policies: Sequence[PolicySet]) -> list[Any]:
        """The values a run of `proposal` keeps out of what it writes down: its secret
        parameters (and its compensations'), its `redact` paths, and what a built-in rule of
        `policies` catches."""
        values: list[Any] = []
        for action in proposal.actions:
            calls = [action]
            undo = self._compensation_call(action)
            if undo is not None:  # the undo step's call: kept out as any call of its tool
                calls.append(undo)
            for call in calls:
                if self.redactions:
                    values.extend(secret_values(call.parameters, self.redactions))
                tool = self.tools.get(call.tool or "")
                if tool is not None and tool.secrets:
                    values.extend(secret_values(call.parameters, tool.secrets))
                for policy_set in policies:
                    for param in policy_set.caught_parameters(call):
                        values.append(call.parameters[param])
        return values

    def shown_state(
        self,
        proposals: Iterable[ActionProposal],
        *,
        state: Mapping[str, Any] | None = None,
        session: str | None = None,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """The state as output may show it after runs of `proposals` (`state`, or this
        runtime's, of `tenant`): every value a run keeps out of what it writes down (secret
        parameters, `redact` paths, what a built-in rule catches, durable log or not) is
        `[REDACTED]` wherever it occurs, as in the runs' results. A copy."""
        shown = dict(state) if state is not None else self.state.snapshot(tenant=tenant)
        policies = self.policy_sets(session)
        values = [v for proposal in proposals for v in self._kept_out(proposal, policies)]
        values += self.state_secrets(tenant)
        values += self._host_secrets
        scrubber = Scrubber(values)
        return dict(scrubber.value(shown)) if scrubber else shown

    def cache_scope(self, scope: Mapping[str, Any]) -> str | None:
        """Whose cached outputs (the idempotency cache, the result cache) a run may share: the
        runs of callers with the same scope, all of it (tenant, caller, claims, whatever else
        it holds: what policies and tools see), as canonical JSON. None when the scope is not
        JSON (no identity to key by): such a run shares no cached output, either way (fail
        closed). Every gate has decided a call before either cache is looked in."""
        try:
            key = _SCOPE_KEY.encode(dict(scope))
        except (TypeError, ValueError):  # a value JSON cannot hold (no repr stands in for it)
            return None
        # one scope, one key: JSON writes {1: "x"} as {"1": "x"}, and a tuple as a list
        return f"{key}\x1f" if json.loads(key) == dict(scope) else None

    def snapshot_event_data(self, tenant: str | None) -> dict[str, Any]:
        """What `state_snapshot` records: the whole state when the log is durable."""
        data: dict[str, Any] = {"tenant": tenant, "keys": len(self.state.data(tenant))}
        if self.durable:
            data["state"] = self.state.snapshot(tenant=tenant)
        return data

    async def call_hooks(self, name: str, *args: Any) -> None:
        """Run one middleware hook on every middleware, in order."""
        for hook in self.middleware:
            answer = getattr(hook, name)(*args)
            if inspect.isawaitable(answer):
                await answer

    def _schemas(self) -> list[ToolSchema]:
        return [tool.schema for tool in self.tools.values()]

    # -- running ---------------------------------------------------------------------------

    def execute(
        self,
        proposal: ActionProposal | Mapping[str, Any] | str,
        *,
        session: str | None = None,
        scope: Mapping[str, Any] | None = None,
        cancel: CancelToken | None = None,
        refused: str | None = None,
    ) -> ProposalResult:
        """Run a proposal to the end and return its result (see `execute_async`)."""
        return run_sync(
            self.execute_async(
                proposal, session=session, scope=scope, cancel=cancel, refused=refused
            )
        )

    async def execute_async(
        self,
        proposal: ActionProposal | Mapping[str, Any] | str,
        *,
        session: str | None = None,
        scope: Mapping[str, Any] | None = None,
        cancel: CancelToken | None = None,
        run_id: str | None = None,
        refused: str | None = None,
    ) -> ProposalResult:
        """Run a proposal: its DAG level by level, each action through the pipeline, abort
        with rollback and compensations, replanning when configured. Returns the result of
        the proposal that ran last (the original, or its last replan). `scope["tenant"]`,
        when given, must be a non-empty string (`CarlangRuntimeError` otherwise).
        `refused`: a refusal the caller made before running anything (a session's budget, a
        malformed model call): every action is rejected with it, and logged as any
        rejection is (the event log and `history` hold the attempt)."""
        return await self._execute(
            proposal, session=session, scope=scope, cancel=cancel, run_id=run_id, refused=refused
        )

    async def _execute(
        self,
        proposal: ActionProposal | Mapping[str, Any] | str,
        *,
        session: str | None = None,
        scope: Mapping[str, Any] | None = None,
        cancel: CancelToken | None = None,
        run_id: str | None = None,
        resumed: Resumption | None = None,
        all_or_nothing: bool = False,
        refused: str | None = None,
    ) -> ProposalResult:
        current = self._as_proposal(proposal)
        run_id = run_id or uuid.uuid4().hex[:16]
        scope = dict(scope or {})
        check_tenant(scope.get("tenant"))
        # refused before anything is logged: a capability or budget this runtime has not (or
        # not the pinned one) is the caller's error, not a run that failed and may be resumed
        self.capability_for(current)
        self.budget_for(current)
        self.events.emit(
            EventKind.RUN_STARTED,
            run_id=run_id,
            proposal_id=current.id,
            data=self._run_started_data(session, scope),
            timestamp=time.time(),
        )
        replans = self._replan_config.max_replans if self._replan is not None else 0
        attempt = 0
        status = "completed"
        try:
            while True:
                run = ProposalRun(
                    self,
                    current,
                    run_id=run_id,
                    session=session,
                    scope=scope,
                    cancel=cancel,
                    resumed=resumed if attempt == 0 else None,
                    all_or_nothing=all_or_nothing,
                    refused=refused,
                )
                result = await run.execute()
                if run.aborted is None:
                    break
                status = "rolled_back" if run.aborted == ROLLED_BACK_ON_RESUME else "aborted"
                if all_or_nothing or status == "rolled_back":
                    break  # a candidate falls back to the next; a rollback is final
                if replans - attempt <= 0 or (cancel is not None and cancel.cancelled):
                    if replans:
                        self._emit_run(EventKind.REPLAN_EXHAUSTED, run_id, current, {})
                    break
                attempt += 1
                replacement = await self._replan_once(run, result, attempt, replans - attempt)
                if replacement is None:
                    continue
                current = replacement
                status = "completed"
        except Exception:
            status = "failed"  # a bug, or a host callback that raised: resumable
            raise
        except BaseException:
            status = "interrupted"  # KeyboardInterrupt, cancellation: resumable
            raise
        finally:
            self.events.emit(
                EventKind.RUN_COMPLETED,
                run_id=run_id,
                proposal_id=current.id,
                data={"status": status},
                timestamp=time.time(),
            )
            self.events.flush()
            self._run_history.pop(run_id, None)
        return result

    async def _replan_once(
        self, run: ProposalRun, result: ProposalResult, attempt: int, remaining: int
    ) -> ActionProposal | None:
        """Ask the replan callback for a proposal; None when it gave none or it does not
        verify (that attempt is spent)."""
        assert self._replan is not None
        failed = [
            {
                "id": r.action_id,
                "tool": next((a.tool for a in run.actions if a.id == r.action_id), None),
                "error": r.error,
                "parameters": next((a.parameters for a in run.actions if a.id == r.action_id), {}),
            }
            for r in result.results
            if r.status.value in ("failed", "rejected")
        ]
        context = ReplanContext(
            proposal=run.proposal,
            failed_actions=failed,
            completed_action_ids=[
                r.action_id for r in result.results if r.status.value == "succeeded"
            ],
            state_snapshot=self.state.snapshot(tenant=run.tenant),
            attempt=attempt,
            replans_remaining=remaining,
        )
        self._emit_run(EventKind.REPLAN_ATTEMPTED, run.run_id, run.proposal, {"attempt": attempt})
        if self._replan_config.delay_ms:
            await self.sleep(self._replan_config.delay_ms / 1000.0)
        answer = self._replan(context)
        if inspect.isawaitable(answer):
            answer = await answer
        if answer is None:
            self._emit_run(
                EventKind.REPLAN_REJECTED, run.run_id, run.proposal, {"reason": "no proposal"}
            )
            return None
        replacement = self._as_proposal(answer)
        self._emit_run(
            EventKind.REPLAN_PROPOSAL_RECEIVED,
            run.run_id,
            replacement,
            {"attempt": attempt, "actions": len(replacement.actions)},
        )
        if self._replan_config.verify_before_execute:
            problems = self._verify(replacement, run.tenant)
            if problems:
                self._emit_run(
                    EventKind.REPLAN_REJECTED,
                    run.run_id,
                    replacement,
                    {"reason": "does not verify", "issues": problems},
                )
                return None
        return replacement

    def _verify(self, proposal: ActionProposal, tenant: str | None) -> list[str]:
        from ..verify import verify

        try:
            capability = self.capability_for(proposal)
            budget = self.budget_for(proposal)
        except CarlangRuntimeError as exc:  # (one this runtime has not, or not the pinned one)
            return [str(exc)]
        verdict = verify(
            proposal,
            state=self.state.data(tenant),
            tools=self._schemas(),
            capability=capability.capability if capability is not None else None,
            budget=budget,
        )
        return [str(issue) for issue in verdict.issues if issue.severity == "error"]

    def _emit_run(
        self, kind: EventKind, run_id: str, proposal: ActionProposal, data: dict[str, Any]
    ) -> None:
        self.events.emit(
            kind,
            run_id=run_id,
            proposal_id=proposal.id,
            data=data,
            timestamp=time.time(),
        )

    def _as_proposal(self, proposal: ActionProposal | Mapping[str, Any] | str) -> ActionProposal:
        """A proposal given in any form, loaded, with its calls' defaults (`with_defaults`)."""
        if isinstance(proposal, str):
            proposal = load_proposal(proposal)
        elif not isinstance(proposal, ActionProposal):
            proposal = load_proposal(json.dumps(proposal))
        return self.with_defaults(proposal)

    def plan_and_execute(
        self,
        candidates: Sequence[ActionProposal | Mapping[str, Any] | str],
        *,
        session: str | None = None,
        scope: Mapping[str, Any] | None = None,
        cancel: CancelToken | None = None,
        config: PlannerConfig | None = None,
        feedback: ToolFeedback | None = None,
        allow_unsafe_fallback: bool = False,
    ) -> ProposalResult:
        """Run the best candidate; if it does not get through, restore the state and fall
        back to the next, unless it left an effect nothing undid (see
        `plan_and_execute_async`)."""
        return run_sync(
            self.plan_and_execute_async(
                candidates,
                session=session,
                scope=scope,
                cancel=cancel,
                config=config,
                feedback=feedback,
                allow_unsafe_fallback=allow_unsafe_fallback,
            )
        )

    async def plan_and_execute_async(
        self,
        candidates: Sequence[ActionProposal | Mapping[str, Any] | str],
        *,
        session: str | None = None,
        scope: Mapping[str, Any] | None = None,
        cancel: CancelToken | None = None,
        config: PlannerConfig | None = None,
        feedback: ToolFeedback | None = None,
        allow_unsafe_fallback: bool = False,
    ) -> ProposalResult:
        """Rank the candidates (`rank_candidates`) and run them best first until one gets
        through (no action failed or was refused in a way that stops it; an optional `skip`
        step passed over is fine). Each failure is rolled back and its compensations run
        before the next starts. A failed candidate whose tool call succeeded and was not undone
        (`irreversible` or `compensable` without a compensation that succeeded) stops the
        fallback: running another candidate could repeat its effect. Its result is returned
        with `fallback_stopped` saying why, and a `plan_fallback_stopped` event is emitted;
        `allow_unsafe_fallback=True` falls back anyway. Returns the winner's result, or the
        last failure's. With `feedback`, every run is recorded in it."""
        proposals = [self._as_proposal(c) for c in candidates]
        if not proposals:
            raise CarlangRuntimeError("plan_and_execute needs at least one candidate")
        ranked = self.rank_candidates(
            proposals, session=session, scope=scope, config=config, feedback=feedback
        )
        result: ProposalResult | None = None
        for scored in ranked:
            proposal = proposals[scored.index]
            # All or nothing: a candidate that does not fully succeed is rolled back (and its
            # successes compensated) inside its own run, before the next one starts.
            run_id = uuid.uuid4().hex[:16]
            result = await self._execute(
                proposal,
                session=session,
                scope=scope,
                cancel=cancel,
                run_id=run_id,
                all_or_nothing=True,
            )
            if feedback is not None:
                feedback.record(proposal, result)
            failure = candidate_failure(proposal.actions, result.results)
            if failure is None or (cancel is not None and cancel.cancelled):
                return result
            left = uncompensated_successes(proposal, result)
            if left and not allow_unsafe_fallback and scored is not ranked[-1]:
                return self._stop_fallback(run_id, proposal, result, failure, left)
        assert result is not None
        return result

    def _stop_fallback(
        self,
        run_id: str,
        proposal: ActionProposal,
        result: ProposalResult,
        failure: str,
        left: list[str],
    ) -> ProposalResult:
        shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
        reason = (
            f"candidate {proposal.id} failed ({failure}) after {shown} succeeded with effects"
            " nothing undid (irreversible, or no compensation succeeded); falling back could"
            " repeat them (allow_unsafe_fallback=True falls back anyway)"
        )
        self._emit_run(
            EventKind.PLAN_FALLBACK_STOPPED,
            run_id,
            proposal,
            {"reason": reason, "actions": left},
        )
        return result.model_copy(update={"fallback_stopped": reason})

    def rank_candidates(
        self,
        proposals: Sequence[ActionProposal],
        *,
        session: str | None = None,
        scope: Mapping[str, Any] | None = None,
        config: PlannerConfig | None = None,
        feedback: ToolFeedback | None = None,
    ) -> list[ScoredProposal]:
        """The planner's ranking of `proposals` against this runtime: its tools, the state the
        caller's tenant sees, its policies and the session's, its capabilities and budgets."""
        from ..planner import Governance, rank

        tenant = check_tenant((scope or {}).get("tenant"))
        proposals = [self.with_defaults(proposal) for proposal in proposals]
        capabilities = {name: check.capability for name, check in self._capabilities.items()}
        budgets = dict(self._budgets)
        capability = self._capability.capability if self._capability is not None else None
        budget = self._budget
        # pinned (`pin`): every candidate runs under those, one naming another cannot run
        if "capability" in self._pinned:
            pinned = capabilities[self._pinned["capability"]]
            capabilities, capability = {pinned.name: pinned}, pinned
        if "budget" in self._pinned:
            budget = budgets[self._pinned["budget"]]
            budgets = {budget.name: budget}
        governance = Governance(capabilities, budgets, capability, budget)
        return rank(
            proposals,
            self._schemas(),
            self.state.data(tenant),
            config,
            feedback,
            self.policy_sets(session),
            governance=governance,
        )

    # -- durable runs ----------------------------------------------------------------------

    def resume(
        self,
        run_id: str,
        journal: str | Path | None = None,
        *,
        rollback: bool = False,
        session: str | None = None,
        cancel: CancelToken | None = None,
        proposal: ActionProposal | Mapping[str, Any] | str | None = None,
    ) -> ProposalResult:
        """Continue a run whose process died, from its SQLite journal (see `resume_async`)."""
        return run_sync(
            self.resume_async(
                run_id,
                journal,
                rollback=rollback,
                session=session,
                cancel=cancel,
                proposal=proposal,
            )
        )

    async def resume_async(
        self,
        run_id: str,
        journal: str | Path | None = None,
        *,
        rollback: bool = False,
        session: str | None = None,
        cancel: CancelToken | None = None,
        proposal: ActionProposal | Mapping[str, Any] | str | None = None,
    ) -> ProposalResult:
        """Continue run `run_id` from `journal` (default: this runtime's SQLite sink): the
        state is rebuilt from the journal, actions it shows finished are not run again, the
        rest runs (an action that was in flight runs again: at least once). A run whose abort
        was under way finishes the abort (rollback, compensations) and runs nothing more; with
        `rollback`, any run is finished that way. A run that ran in a session needs that
        session (re-opened, with its policies) passed as `session`: its denials must not be
        lost. A journal never keeps secret parameter values: resuming such a run needs its
        `proposal` again (checked against what the journal kept)."""
        from .journal import EventStore, SqliteSink, claim_run
        from .resume import read_run

        path = Path(journal) if journal is not None else None
        if path is None:
            sink = next((s for s in self.events.sinks if isinstance(s, SqliteSink)), None)
            if sink is None:
                raise CarlangRuntimeError("resume needs a SQLite journal (events=run.db)")
            sink.flush()
            path = sink.path
        store = EventStore(path)
        try:
            run = read_run(store, run_id)
        finally:
            store.close()
        if run.finished and run.status not in ("interrupted", "failed"):
            raise CarlangRuntimeError(
                f"run '{run_id}' already finished ({run.status}); there is nothing to resume"
            )
        if run.session is not None and (session is None or not self.has_session(session)):
            raise CarlangRuntimeError(
                f"run '{run_id}' ran in a session: open a session with its policies and pass"
                " it as session=, so that its denials still apply"
            )
        original = self._resumed_proposal(run, proposal)
        self._refuse_unimplemented(original)
        self.capability_for(original)  # (refused now, before the run is taken)
        self.budget_for(original)
        running = claim_run(path, run_id)
        if running is not None:
            raise CarlangRuntimeError(
                f"run '{run_id}' is still running ({running}): resumed now, its actions would"
                " run twice; wait for it to end, or stop that process first"
            )
        self.state.replace(run.initial_state, tenant=run.tenant)
        resumed = Resumption(
            results=run.results,
            writes=run.writes,
            abort=ROLLED_BACK_ON_RESUME if rollback else run.abort,
            compensations=run.compensations,
            succeeded=run.succeeded,
            tool_calls=run.tool_calls,
        )
        return await self._execute(
            original,
            run_id=run_id,
            scope=run.scope,
            session=session,
            cancel=cancel,
            resumed=resumed,
        )

    def _refuse_unimplemented(self, proposal: ActionProposal) -> None:
        """Refuse to resume `proposal` while a tool it calls (or undoes with) is declared here
        but has no implementation: its call would fail and abort the run for good, where a
        resume given the implementations would have finished it."""
        by_id = {action.id: action for action in proposal.actions}
        calls = [*proposal.actions]
        calls += [
            undo for a in proposal.actions if isinstance(undo := a.undo_call(by_id.get), Action)
        ]
        missing = sorted(
            {
                call.tool
                for call in calls
                if call.type is ActionType.TOOL_CALL
                and call.tool is not None
                and (tool := self.tools.get(call.tool)) is not None
                and tool.fn is None
            }
        )
        if missing:
            names = ", ".join(repr(name) for name in missing)
            raise CarlangRuntimeError(
                f"{'tool' if len(missing) == 1 else 'tools'} {names}"
                f" {'has' if len(missing) == 1 else 'have'} no implementation here:"
                " resume with the implementations the run started with (carlang run --tools"
                " module:attr), else its calls would fail and abort the run for good"
            )

    def _resumed_proposal(
        self, run: Any, given: ActionProposal | Mapping[str, Any] | str | None
    ) -> ActionProposal:
        """The proposal a resumed run runs: the journal's, or, when the journal redacted
        secrets out of it, the caller's, which must be the same proposal (a proposal given for
        a journal that kept everything is not needed, and not used)."""
        if given is None or not run.redacted:
            if run.redacted:
                raise CarlangRuntimeError(
                    f"run '{run.run_id}' has secret parameters, which its journal does not keep:"
                    " pass the proposal it ran (resume(..., proposal=...), or carlang run"
                    " --proposal with --resume)"
                )
            return cast(ActionProposal, run.proposal)
        proposal = self._as_proposal(given)
        document: Any = proposal.model_dump(mode="json")
        policies = self.policy_sets(run.session)
        self.redact_document(proposal, document, policies)
        # as the run wrote it down: a secret's text is also out of every other string (a
        # message that quotes the token), not only out of its own parameter
        scrub = self.scrubber(proposal, policies, run.tenant, run.session)
        if scrub is not None:
            document = scrub.value(document)
        recorded = run.proposal.model_dump(mode="json")
        if document != recorded:
            raise CarlangRuntimeError(
                f"the proposal given is not the one run '{run.run_id}' ran (its journal holds"
                f" proposal '{run.proposal.id}' with {len(run.proposal.actions)} actions;"
                f" {_first_difference(document, recorded)}): resume with the program, and the"
                " proposal, the run started with"
            )
        return proposal

    # -- host loops ------------------------------------------------------------------------

    def gate(
        self,
        action: Action,
        *,
        session: str | None = None,
        scope: Mapping[str, Any] | None = None,
        capability: str | None = None,
        budget: str | None = None,
    ) -> GateDecision:
        """What the runtime would say to `action` now, without running it: `deny` (with the
        reason: a budget that allows no such action, unknown tool, capability, validation or
        policy), `require_approval` (the policies asking), or `allow`: what `execute` would
        decide for a proposal of this one action under `capability` and `budget` (names this
        runtime has; None: the defaults, `set_capabilities` and `set_budget`, as for a
        proposal that names none). For agent loops that consult before executing."""
        scope = dict(scope or {})
        check_tenant(scope.get("tenant"))
        action = self.filled(action)
        proposal = ActionProposal(id="gate", actions=[action], capability=capability, budget=budget)
        run = ProposalRun(self, proposal, run_id="gate", session=session, scope=scope, cancel=None)
        run.recording = run.log_decisions = False  # a question, not a decision: no events
        try:
            limit = run.capability.count_problem(1) if run.capability is not None else None
            spent = run.budget is not None and run.over_budget(action)
            problems = [BUDGET_EXCEEDED] if spent else run.rejections(action, limit)
            decision = run.decide(action) if not problems else None
        finally:
            run.writes.release()
        shown = run.scrub.text if run.scrub is not None else str
        if problems:
            return GateDecision("deny", shown("; ".join(problems)))
        if decision is None:
            return GateDecision("allow")
        names = tuple(m.policy for m in decision.deciding)
        if decision.effect is PolicyEffect.DENY:
            return GateDecision("deny", shown(decision.reason()), names)
        if decision.effect is PolicyEffect.REQUIRE_APPROVAL:
            return GateDecision("require_approval", shown(decision.reason()), names)
        return GateDecision("allow")

    # -- checkpoints -----------------------------------------------------------------------

    def save_checkpoint(self, path: str | Path, metadata: Mapping[str, Any] | None = None) -> None:
        """Write the state (the shared state and every tenant's, apart) and the registered
        tools to a JSON file, atomically: a temporary file in the same directory, renamed over
        the target. Temporary files an interrupted save left behind are removed."""
        target = Path(path)
        document = {
            "format": CHECKPOINT_FORMAT,
            "checkpoint_id": uuid.uuid4().hex[:16],
            "created_at": time.time(),
            "state": self.state.data(None),
            "tenants": {
                tenant: self.state.data(tenant)
                for tenant in self.state.tenants()
                if tenant is not None
            },
            "tools": [
                {"schema": tool.schema.model_dump(mode="json"), "origin": tool.origin}
                for tool in self.tools.values()
            ],
            "metadata": dict(metadata or {}),
        }
        text = json.dumps(document, indent=2, default=str)
        directory = target.parent
        _remove_stale_temporaries(directory, target.name)
        descriptor, temporary = tempfile.mkstemp(
            dir=directory, prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp"
        )
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def load_checkpoint(self, path: str | Path, *, trust_tools: bool = False) -> dict[str, Any]:
        """Restore the state of a checkpoint (every tenant apart from the shared state), and
        declare its tools by their schemas; clears the idempotency cache. A checkpoint is data,
        not code: a tool's implementation (a Python reference, a subprocess argv) comes back
        only when this runtime already has that very tool, or with `trust_tools=True` (then a
        reference that cannot be imported is declared by its schema). Returns the metadata."""
        try:
            document = json.loads(Path(path).read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CarlangRuntimeError(f"cannot read checkpoint {path}: {exc}") from None
        if not isinstance(document, dict) or not isinstance(document.get("state"), dict):
            raise CarlangRuntimeError(f"checkpoint {path} has no state")
        tenants = document.get("tenants")
        if document.get("format") == CHECKPOINT_FORMAT and isinstance(tenants, dict):
            states: dict[str | None, Any] = {None: document["state"]}
            states.update(tenants)
        else:  # the first format: tenants by name, the shared state under ""
            states = {(tenant or None): values for tenant, values in document["state"].items()}
        for tenant, values in states.items():
            if not isinstance(values, dict):
                raise CarlangRuntimeError(
                    f"checkpoint {path}: the state of {tenant!r} is not a map"
                )
        try:
            self.state.replace_all(states)
        except CarlangRuntimeError as exc:
            raise CarlangRuntimeError(f"checkpoint {path}: {exc}") from None
        for entry in document.get("tools", []):
            self._restore_tool(entry, trust_tools)
        self.idempotency.clear()
        metadata = document.get("metadata", {})
        return dict(metadata) if isinstance(metadata, dict) else {}

    def _restore_tool(self, entry: Mapping[str, Any], trust_tools: bool) -> None:
        schema = ToolSchema.model_validate(entry["schema"])
        origin = entry.get("origin") or {}
        existing = self.tools.get(schema.name)
        if existing is not None and existing.fn is not None:
            return  # the implementation this runtime has stands
        if trust_tools and origin.get("kind") == "subprocess":
            self.register_subprocess_tool(
                schema.name,
                origin["argv"],
                timeout=origin.get("timeout"),
                env=origin.get("env"),
                cwd=origin.get("cwd"),
                schema=schema,
                inherit_env=origin.get("inherit_env"),
            )
            return
        if trust_tools and origin.get("kind") == "python":
            fn = _import(origin["ref"])
            if fn is not None:
                self.register_tool(schema.name, fn, schema)
                return
        self.declare_tool(schema)

    # -- the end ---------------------------------------------------------------------------

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call `callback` when the runtime closes (tool providers' sessions, say)."""
        self._closers.append(callback)

    def close(self) -> None:
        """Close the event log's sinks and let go of worker threads (a hung tool's thread is
        not waited for)."""
        closers, self._closers = self._closers, []
        for callback in reversed(closers):
            callback()
        self.events.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


#: What decides approvals when nobody was named to: nothing is approved.
_NO_APPROVAL_GATE: Final = DenyApprovals(
    "no approval gate is configured (Runtime(approval=...), or carlang run --auto-approve)"
)


def _named(
    proposal: ActionProposal,
    kind: str,
    known: Mapping[str, T],
    default: T | None,
    pinned: Mapping[str, str],
) -> T | None:
    """The capability or budget (`kind`) a proposal runs under: the pinned one (refusing a
    proposal that names another), else the one it names, else the default."""
    name = getattr(proposal, kind)
    pin = pinned.get(kind)
    if pin is not None:
        if name is not None and name != pin:
            raise CarlangRuntimeError(
                f"proposal {proposal.id} names {kind} '{name}', but this runtime runs every"
                f" proposal under {kind} '{pin}': a proposal does not choose its own"
            )
        return known[pin]
    if name is None:
        return default
    found = known.get(name)
    if found is None:
        raise CarlangRuntimeError(
            f"proposal {proposal.id} runs under {kind} '{name}', which this runtime does not have"
        )
    return found


def _first_difference(given: Mapping[str, Any], recorded: Mapping[str, Any]) -> str:
    """Where a proposal given to resume a run first differs from the one its journal holds,
    in words: `action 's' differs in parameters`, `it has action 'x', the run had none`."""
    ours = {a.get("id"): a for a in given.get("actions") or []}
    theirs = {a.get("id"): a for a in recorded.get("actions") or []}
    for action_id, action in theirs.items():
        if action_id not in ours:
            return f"the run had action '{action_id}', it has none"
        fields = sorted(
            k for k in {*action, *ours[action_id]} if action.get(k) != ours[action_id].get(k)
        )
        if fields:
            return f"action '{action_id}' differs in {', '.join(fields)}"
    extra = [action_id for action_id in ours if action_id not in theirs]
    if extra:
        return f"it has action '{extra[0]}', the run had none"
    fields = sorted(k for k in {*given, *recorded} if given.get(k) != recorded.get(k))
    return f"the proposal differs in {', '.join(fields)}" if fields else "the order differs"


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end on a new event loop (the synchronous facade). Not
    `asyncio.run`: in Python 3.11 it formats the finished task (so the whole result) while
    restoring the SIGINT handler, which costs a millisecond per thousand actions."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coroutine.close()
        raise CarlangRuntimeError(
            "a synchronous Runtime method was called inside a running event loop; await its"
            " _async form instead"
        )
    loop = asyncio.new_event_loop()
    task = loop.create_task(coroutine)
    try:
        return loop.run_until_complete(task)
    except KeyboardInterrupt:
        # Ctrl-C while the loop waited (on an MCP server's answer, say), not inside the
        # coroutine: cancel it and let it end, so that it records the run as interrupted and
        # cancels its calls, before the log it writes to is closed (a second Ctrl-C gives up)
        if not task.done():
            task.cancel(KEYBOARD_INTERRUPT)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                loop.run_until_complete(task)
        raise
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def _import(ref: str) -> Callable[..., Any] | None:
    import importlib

    module_name, _, qualname = ref.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        return None
    return target if callable(target) else None


def _remove_stale_temporaries(directory: Path, name: str) -> None:
    """Remove the temporary files of saves of `name` whose process is gone (a save that was
    interrupted before its rename); those of a live process may be a save under way."""
    for stray in directory.glob(f".{name}.*.tmp"):
        pid = stray.name[len(name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        if pid.isdigit() and int(pid) == os.getpid():
            continue  # another thread of this process may be saving
        stray.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remember_distinct(held: list[Any], values: Iterable[Any], limit: int | None = None) -> None:
    """Add each of `values` not in `held` yet to its end, then keep its last `limit` (None:
    all of them)."""
    for value in values:
        if value not in held:
            held.append(value)
    if limit is not None:
        del held[:-limit]
