"""`carlang mcp proxy`: an MCP server that fronts a program's MCP servers under its policies.

- `tools/list` shows the MCP-bound tools the capability allows, and nothing of the others;
- each `tools/call` is a one-action proposal run by the `Runtime` in this client's own carlang
  session: capability, parameter validation, policies (trace rules see this session's
  history), the budget counted over the session, rate limits, approvals (MCP elicitation when
  the client can answer one, else a denial saying approval is required), dispatch to the
  server, the event log;
- a refusal or failure is a tool result with `isError: true` and carlang's message;
- a successful call returns the server's own result.

Each client session has its own sessions with the servers (`McpSessions`), started on its
first call of a server's tool and closed when it ends, so that a server's per-session state
is never one client's to another; and its runs have the scope `{"mcp_session": <its carlang
session>}`, so that the runtime's caches (`cache`, idempotency) are its own. `max_sessions`
bounds how many client sessions at once may have servers started for them (`ProxyBusy`), and
`max_sessions_per_tenant` how many of them one tenant's may be.

Over HTTP, a proxy given a token per tenant (`HttpAccess.tenants`) knows whose each request is:
a client session belongs to the tenant whose token opened it (a request of another tenant for
it is answered as if it did not exist), and its runs have the tenant in their scope, so that
the state, the history, the caches and the remembered secrets they see are that tenant's.

Over stdio the proxy speaks JSON-RPC itself (`StdioSession`, on the event loop); over
Streamable HTTP it is the official SDK's low-level `Server` (the `mcp` extra).
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import functools
import hmac
import ipaddress
import itertools
import json
import logging
import os
import re
import select
import signal
import socket
import stat
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..agents.specs import input_schema, mcp_annotations, tool_name_from_model, visible_tools
from ..engine.approval import Approval, ApprovalRequest
from ..engine.builtins import is_host_name
from ..engine.limits import (
    BUDGET_OWNER,
    BUDGET_SCOPES,
    SessionBudget,
    session_budget_context,
)
from ..engine.middleware import Middleware
from ..engine.state import check_tenant
from ..engine.tools import ToolError
from ..errors import CarlangRuntimeError
from ..ir import Action, ActionProposal, ActionStatus, Budget, Program, ToolSchema
from ..jsontext import JsonTextError, parse_json
from ..jsonvalue import not_json
from ..paramcheck import json_type_name
from ..policy import RUNNING, history_entry
from ..suggest import with_article
from .client import server_secrets
from .provider import McpSessions

__all__ = [
    "IDLE_TIMEOUT",
    "MAX_SESSIONS",
    "HttpAccess",
    "PolicyProxy",
    "ProxyBusy",
    "bind_http",
    "build_server",
    "call_problem",
    "http_access",
    "invalid_request",
    "is_loopback",
    "request_id_problem",
    "serve_stdio",
    "serve_http",
]


#: How a client session ends, freeing its place (`ProxyBusy`'s messages).
_HOW_SESSIONS_END = "its client closes it, or it is idle too long"


class ProxyBusy(Exception):
    """A call refused because the proxy is at its limit of client sessions with servers of
    their own (`max_sessions`): a JSON-RPC error (`code`), not a tool result, as it says
    nothing about the call itself; nothing of it ran."""

    code = -32000


@dataclass
class _Client:
    """One MCP client session: its carlang session, its own sessions with the servers
    (`downstream`, started on first use), the scope its runs have, its counters against the
    budget, and the lock its calls are admitted under one at a time (they run alongside each
    other)."""

    session: str
    mcp: Any
    downstream: McpSessions
    spent: SessionBudget | None = None
    #: The tenant whose token opened it (over HTTP with a token per tenant), else None: its
    #: runs use the shared state.
    tenant: str | None = None
    ids: Any = field(default_factory=lambda: itertools.count(1))
    admitting: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: Whether it holds one of the proxy's `max_sessions` places (from its first call of a
    #: tool of a server carlang starts, until it ends).
    placed: bool = False
    #: Its MCP-bound tools' functions, calling its own sessions with the servers.
    functions: dict[str, Callable[..., Awaitable[Any]]] = field(default_factory=dict)

    @property
    def scope(self) -> dict[str, Any]:
        """The scope of its runs: what the runtime's caches are keyed by, and its tenant's
        (with no tenant: the runs use the shared state)."""
        if self.tenant is None:
            return {"mcp_session": self.session}
        return {"mcp_session": self.session, "tenant": self.tenant}

    def function(self, schema: ToolSchema) -> Callable[..., Awaitable[Any]]:
        """The function calling `schema`'s tool through this client's own server session."""
        found = self.functions.get(schema.name)
        if found is None:
            found = self.functions[schema.name] = self.downstream.tool_function(schema, raw=True)
        return found


class _Admission:
    """One call on its way in. It holds its session's admission lock from before the budget
    check until the runtime admits it (every gate passed, or a person is asked about it) or
    concludes it (refused), so that the session's next call is decided knowing of this one:
    a call admitted is in the session's `history` with status `running` until its outcome
    replaces it, and counted against the budget from then on. The lock is not held while an
    admitted call waits for its tool's rate limit, or runs."""

    def __init__(
        self,
        client: _Client,
        history: list[dict[str, Any]] | None,
        action: Action,
        progress: Progress | None = None,
    ):
        self.client = client
        self.history = history
        self.action = action
        self.entry: dict[str, Any] | None = None
        #: Whether the call's tool was called (a cancelled call that was counts).
        self.started = False
        self.held = False
        #: How to tell the client how its call is getting on (None: it asked for no progress).
        self.progress = progress
        self._notices = 0

    async def __aenter__(self) -> _Admission:
        await self.client.admitting.acquire()
        self.held = True
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.release()
        if self.entry is not None and self.history is not None:
            # the run put the call's outcome in history when it ended: the entry goes
            for index in range(len(self.history) - 1, -1, -1):
                if self.history[index] is self.entry:
                    del self.history[index]
                    break

    def admitted(self, parameters: Any) -> None:
        """The runtime admitted the call: it goes into history as in flight, and the session's
        next call may be decided."""
        if self.history is not None and self.entry is None and not self._listed():
            self.entry = history_entry(self.action, RUNNING, dict(parameters))
            self.history.append(self.entry)
        self.release()

    def _listed(self) -> bool:
        """Whether the session's history already holds this call (the runtime put it there
        when it admitted it): it is not listed twice, which a rule counting calls would see."""
        assert self.history is not None
        return any(entry.get("id") == self.action.id for entry in reversed(self.history))

    def release(self) -> None:
        if self.held:
            self.held = False
            self.client.admitting.release()

    async def tell(self, message: str) -> None:
        """Send the client a progress notification saying `message`, when it asked for them
        (its request's `_meta.progressToken`); each one's progress is one more than the last,
        as MCP requires."""
        if self.progress is not None:
            self._notices += 1
            try:
                await self.progress(self._notices, message)
            except Exception:  # noqa: BLE001 - news of a wait, not the call: a client gone
                self.progress = None  # (or a stream closed) stops hearing it, the call goes on


#: Sends one progress notification of a call: (progress so far, message).
Progress = Callable[[int, str], Awaitable[None]]


#: The call being admitted, in the task that runs it (read by the tools the proxy registers
#: and by its approval gate, which the runtime calls once it has admitted the call).
_ADMISSION: contextvars.ContextVar[_Admission | None] = contextvars.ContextVar(
    "carlang_proxy_admission", default=None
)


class _AdmittedHook(Middleware):
    """The last gate a call passes before dispatch (middleware runs after the policies and
    the approval gate): from here the call is admitted, and the session's next call need not
    wait while this one waits for its tool's rate limit."""

    def before_action(self, action: Action, proposal: ActionProposal) -> None:
        admission = _ADMISSION.get()
        if admission is not None:
            admission.admitted(action.parameters)

    async def rate_limited(self, action: Action, seconds: float) -> None:
        """A call held by its tool's rate limit is not silent: a client that asked for
        progress hears why it waits, and for how long (so that it does not take the wait for a
        server that hangs, and can reset its own timeout)."""
        admission = _ADMISSION.get()
        if admission is not None:
            await admission.tell(
                f"waiting {seconds:.1f} s for the rate limit of tool '{action.tool}'"
            )


def _dispatching(schema: ToolSchema) -> Callable[..., Awaitable[Any]]:
    """An MCP-bound tool's function for the proxy's runtime: it tells the call's admission it
    was admitted, then calls the tool through the calling client's own server session (the
    client is the call's admission's: a call from no client session is refused)."""
    assert schema.mcp is not None
    server, remote = schema.mcp.server, schema.mcp.tool

    async def call_admitted(**arguments: Any) -> Any:
        admission = _ADMISSION.get()
        if admission is None:  # (fail closed: whose server session would it use?)
            raise ToolError(
                f"MCP tool '{remote}' on '{server}' was called outside an MCP client's session"
            )
        admission.started = True
        admission.admitted(arguments)
        return await admission.client.function(schema)(**arguments)

    call_admitted.__doc__ = f"Calls tool '{remote}' on MCP server '{server}' (the client's own)."
    return call_admitted


class PolicyProxy:
    """The proxy's logic, apart from the transport: list and call under the program."""

    def __init__(
        self,
        program: Program,
        runtime: Any,
        *,
        capability: str | None = None,
        budget: str | None = None,
        budget_per: str = "session",
        stderr: Any = None,
        max_sessions: int | None = None,
        max_sessions_per_tenant: int | None = None,
        tenant_capabilities: Mapping[str, str] | None = None,
    ) -> None:
        """`capability`: the tools clients may see and call (None: all); a tenant named in
        `tenant_capabilities` has its own there instead (each tenant's tools and their
        limits, where one program serves several). `budget`: the program's budget each client
        session spends (`budget_per` "tenant": each tenant's sessions together);
        `max_sessions`: how many client sessions
        at once may have servers started for them (None: no limit), and
        `max_sessions_per_tenant` how many of those one tenant's may be (None: all), so that
        one tenant cannot take every place; `stderr`: where the servers' standard error goes
        (and the proxy's warnings), None for nowhere."""
        self.program = program
        self.runtime = runtime
        self.capability = capability
        if budget_per not in BUDGET_SCOPES:
            raise CarlangRuntimeError(
                f"a budget is spent per {' or per '.join(BUDGET_SCOPES)}, not per {budget_per!r}"
            )
        self.budget_per = budget_per
        #: Each tenant's budget spent, when it is spent per tenant (None: the shared state's).
        self._tenant_spent: dict[str | None, SessionBudget] = {}
        #: Whether every call must be some tenant's (over HTTP with a token per tenant, see
        #: `serve_http`): one whose tenant cannot be told is refused, never run untenanted.
        self.tenanted = False
        #: This proxy's own id, in the proposals whose budget a tenant spends: a log that
        #: several proxies (or restarts) append to is replayed with each one's budgets apart.
        self.instance = uuid.uuid4().hex[:12]
        self.budget: Budget | None = None
        if budget is not None:
            self.budget = program.budget(budget)
            if self.budget is None:
                names = ", ".join(b.name for b in program.budgets) or "none"
                raise CarlangRuntimeError(f"no budget '{budget}' (budgets: {names})")
        for option, limit in (
            ("max_sessions", max_sessions),
            ("max_sessions_per_tenant", max_sessions_per_tenant),
        ):
            if limit is not None and limit < 1:
                raise CarlangRuntimeError(f"{option} must be at least 1, not {limit}")
        self.max_sessions = max_sessions
        self.max_sessions_per_tenant = max_sessions_per_tenant
        self.stderr = stderr
        self.servers = {server.name: server for server in program.mcp_servers}
        # (a client may send a server's token as an argument: it is not logged either)
        runtime.keep_out(v for server in program.mcp_servers for v in server_secrets(server))
        #: The servers carlang starts (a command), a process per client session each.
        self._started_here = {n for n, server in self.servers.items() if server.command}
        self.tenant_capabilities = dict(tenant_capabilities or {})
        for tenant in self.tenant_capabilities:
            check_tenant(tenant)
        #: The tools each capability in use allows (None: no capability, every tool).
        self._tools_of: dict[str | None, dict[str, ToolSchema]] = {
            name: self._visible(program, name)
            for name in {capability, *self.tenant_capabilities.values()}
        }
        for schema in program.tools:
            if schema.mcp is not None and schema.mcp.server in self.servers:
                runtime.register_tool(schema.name, _dispatching(schema), schema)
        runtime.on_close(self.close)
        runtime.set_approval_gate(_ElicitationGate(self))
        runtime.use(_AdmittedHook())
        self._clients: dict[int, _Client] = {}
        #: Server sessions of clients gone that are closed with the runtime (`forget`).
        self._left: list[McpSessions] = []
        #: How many client sessions hold a place (`max_sessions`), and whether a warning
        #: said the places are all taken (said again once one is given back).
        self._placed = 0
        self._warned_full = False
        #: The places each tenant's client sessions hold (`max_sessions_per_tenant`), and the
        #: tenants a warning said are at their limit (said again once one of theirs ends).
        self._placed_by_tenant: dict[str, int] = {}
        self._warned_tenants: set[str] = set()

    # -- sessions ------------------------------------------------------------------------------

    def client(self, mcp_session: Any, tenant: str | None = None) -> _Client:
        """The carlang session of an MCP client session, opened on its first call (for
        `tenant`: the tenant whose token opened the MCP session), with its own sessions with
        the servers (each started on its first call of that server's tools); all closed when
        the MCP session ends (`end`, `forget`). A call of another tenant than the session's is
        a `CarlangRuntimeError` (the HTTP transport never lets one through: this is the second
        lock)."""
        key = id(mcp_session)  # (the client holds the session: the id is no other's meanwhile)
        found = self._clients.get(key)
        if found is None:
            spent = self._budget_spent(tenant)
            session = self.runtime.open_session(tenant=tenant)
            whose = f"session {session}" + (f" tenant {tenant}" if tenant is not None else "")
            downstream = McpSessions(
                self.servers.values(),
                stderr=self.stderr,
                keep_out=self.runtime.kept_out,
                whose=whose,
                redactions=self.runtime.redactions,
            )
            found = _Client(session, mcp_session, downstream, spent, tenant=tenant)
            self._clients[key] = found
        elif found.tenant != tenant:
            self.warn(
                f"carlang mcp proxy: a call of tenant {tenant!r} in a session of tenant"
                f" {found.tenant!r} was refused"
            )
            raise CarlangRuntimeError("this MCP session belongs to another tenant")
        return found

    def _budget_spent(self, tenant: str | None) -> SessionBudget | None:
        """What a new client session of `tenant` spends its calls from: a budget of its own,
        or its tenant's (kept for the proxy's life: a tenant's next session does not start
        afresh), or None without a budget."""
        if self.budget is None:
            return None
        if self.budget_per == "session":
            return SessionBudget(self.budget)
        found = self._tenant_spent.get(tenant)
        if found is None:
            # (with no tenant, every client's calls spend the one: per proxy, as it says)
            per = "tenant" if tenant is not None else "proxy"
            found = self._tenant_spent[tenant] = SessionBudget(self.budget, per=per)
        return found

    def forget(self, mcp_session: Any) -> None:
        """Close the carlang session of an MCP session that ended, leaving its sessions with
        the servers to be closed with the runtime: over stdio the client's end is the
        proxy's, and its calls cancelled are recorded as interrupted before their servers
        stop."""
        found = self._detach(mcp_session)
        if found is not None:
            # a server still starting for it is of use to nobody now: its calls in flight
            # (cancelled next) must not wait out the start's timeout
            found.downstream.stop_starting()
            self._left.append(found.downstream)

    async def end(self, mcp_session: Any) -> None:
        """Close the carlang session of an MCP session that ended and its sessions with the
        servers now (a server it started is stopped: its input closed, SIGTERM after 2 s),
        without holding up the event loop meanwhile."""
        found = self._detach(mcp_session)
        if found is not None:
            await asyncio.to_thread(found.downstream.close)

    def _detach(self, mcp_session: Any) -> _Client | None:
        found = self._clients.pop(id(mcp_session), None)
        if found is None:
            return None
        self.runtime.close_session(found.session)
        if found.placed:
            found.placed = False
            self._placed -= 1
            self._warned_full = False
            if found.tenant is not None:
                self._placed_by_tenant[found.tenant] -= 1
                self._warned_tenants.discard(found.tenant)
        return found

    def close(self) -> None:
        """Close every client's sessions with the servers (the runtime closes: the proxy
        stops), side by side: each may wait seconds for its server to stop."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            self.runtime.close_session(client.session)
        left, self._left = self._left, []
        closing = [threading.Thread(target=c.downstream.close) for c in clients]
        closing += [threading.Thread(target=downstream.close) for downstream in left]
        for thread in closing:
            thread.start()
        for thread in closing:
            thread.join()

    def _place(self, client: _Client, tool: str) -> None:
        """Give `client` a place among the `max_sessions` client sessions that may have
        servers started for them, or refuse its call (`ProxyBusy`) when none is left (or
        none of its tenant's: said first, as it holds whatever the others do)."""
        tenant = client.tenant
        if tenant is not None:
            self._place_for_tenant(tenant, tool)
        if self.max_sessions is not None and self._placed >= self.max_sessions:
            limit = self.max_sessions
            if not self._warned_full:
                self._warned_full = True
                self.warn(
                    f"carlang mcp proxy: {limit} client session(s) have MCP servers of their own"
                    f" (--max-sessions {limit}): a new session's calls of their tools are"
                    " refused until one ends"
                )
            raise ProxyBusy(
                f"carlang mcp proxy is busy: {limit} other client session(s) have MCP servers of"
                f" their own, its limit (--max-sessions {limit}); {tool} was not called. Try"
                f" again once one of them ends ({_HOW_SESSIONS_END})"
            )
        if tenant is not None:
            self._placed_by_tenant[tenant] = self._placed_by_tenant.get(tenant, 0) + 1
        client.placed = True
        self._placed += 1

    def _place_for_tenant(self, tenant: str, tool: str) -> None:
        """Refuse a new place to a session of `tenant` (`ProxyBusy`) when its sessions hold
        `max_sessions_per_tenant` already: the other tenants' places are theirs to take."""
        limit = self.max_sessions_per_tenant
        if limit is None or self._placed_by_tenant.get(tenant, 0) < limit:
            return
        if tenant not in self._warned_tenants:
            self._warned_tenants.add(tenant)
            self.warn(
                f"carlang mcp proxy: tenant {tenant!r} has {limit} client session(s) with MCP"
                f" servers of their own (--max-sessions-per-tenant {limit}): its new sessions'"
                " calls of their tools are refused until one ends"
            )
        raise ProxyBusy(
            f"carlang mcp proxy is busy for this tenant: {limit} other session(s) of yours have"
            f" MCP servers of their own, a tenant's limit (--max-sessions-per-tenant {limit});"
            f" {tool} was not called. Try again once one of them ends ({_HOW_SESSIONS_END})"
        )

    def warn(self, message: str) -> None:
        """Write a line to the proxy's standard error (nothing when it has none, or it is
        closed): the operator's log."""
        if self.stderr is not None and hasattr(self.stderr, "write"):
            try:
                self.stderr.write(message + "\n")
                self.stderr.flush()
            except (OSError, ValueError):
                pass

    def _visible(self, program: Program, capability: str | None) -> dict[str, ToolSchema]:
        """The MCP-bound tools of this proxy's servers that `capability` allows."""
        try:
            schemas = visible_tools(program, capability)
        except CarlangRuntimeError as exc:
            owners = sorted(t for t, c in self.tenant_capabilities.items() if c == capability)
            whose = f"tenant {owners[0]!r}: " if owners else ""
            raise CarlangRuntimeError(whose + str(exc)) from None
        return {
            schema.name: schema
            for schema in schemas
            if schema.mcp is not None and schema.mcp.server in self.servers
        }

    def capability_of(self, tenant: str | None) -> str | None:
        """The capability `tenant`'s calls run under: its own, else the proxy's."""
        if tenant is not None and tenant in self.tenant_capabilities:
            return self.tenant_capabilities[tenant]
        return self.capability

    def tools_of(self, tenant: str | None) -> dict[str, ToolSchema]:
        """The tools `tenant`'s clients may see and call (`capability_of`)."""
        return self._tools_of[self.capability_of(tenant)]

    def mcp_session_of(self, session: str | None) -> Any:
        """The MCP session behind a carlang session."""
        return next((c.mcp for c in self._clients.values() if c.session == session), None)

    # -- the two requests ----------------------------------------------------------------------

    def list_tools(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """The tools a client (of `tenant`) may see: name, description, input schema,
        annotations."""
        out = []
        for schema in self.tools_of(tenant).values():
            tool: dict[str, Any] = {
                "name": schema.name,
                "description": schema.description,
                "inputSchema": input_schema(schema),
            }
            annotations = mcp_annotations(schema)
            if annotations:
                tool["annotations"] = annotations
            out.append(tool)
        return out

    async def call_tool(
        self,
        mcp_session: Any,
        name: str,
        arguments: dict[str, Any],
        tenant: str | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Run one call through the runtime's pipeline: the server's result, or an error
        result with carlang's message (`tenant`: whose call it is, see `client`; `progress`:
        how to tell the client why the call waits, when it asked). A session's
        calls are admitted one at a time (the budget checked and a call reserved, the
        policies' decision with the calls in flight in `history`), and run alongside each
        other."""
        if self.tenanted and tenant is None:  # (fail closed: never the shared state)
            raise CarlangRuntimeError(_UNTOLD_TENANT)
        client = self.client(mcp_session, tenant)
        tools = self.tools_of(tenant)
        tool = tool_name_from_model(name, tools)
        schema = tools.get(tool)
        if (
            not client.placed
            and schema is not None
            and schema.mcp is not None
            and schema.mcp.server in self._started_here
        ):
            self._place(client, tool)  # (or ProxyBusy: nothing of the call runs)
        action = Action(
            id=f"call_{next(client.ids)}",
            type="tool_call",
            tool=tool,
            parameters=dict(arguments or {}),
        )
        proposal = ActionProposal(
            id=f"mcp_{client.session}_{action.id}",
            source="mcp-proxy",
            actions=[action],
            capability=self.capability_of(tenant),
            budget=self.budget.name if self.budget is not None else None,  # (named in the log)
            # (the budget is the client session's, or its tenant's: replay counts it so)
            context=self._budget_context() if self.budget is not None else {},
        )
        history = self._history(client.session)
        async with _Admission(client, history, action, progress) as admission:
            # refused here or by the runtime, every call is run through it: the log has them all
            problem: str | None = None
            if tool not in tools:
                problem = f"unknown tool '{name}'"
            elif client.spent is not None:
                problem = client.spent.problem()
            spent = client.spent if problem is None else None
            if spent is not None:
                spent.calls += 1  # counted now: the session's next call is decided knowing it
            started = time.monotonic()
            token = _ADMISSION.set(admission)
            try:
                result = await self.runtime.execute_async(
                    proposal, session=client.session, scope=client.scope, refused=problem
                )
            except BaseException:  # cancelled: a call that may have reached its server counts
                if spent is not None and not admission.started:
                    spent.calls -= 1
                raise
            finally:
                _ADMISSION.reset(token)
            (outcome,) = result.results
            if spent is not None:
                if outcome.status is ActionStatus.REJECTED:  # refused: it spends nothing
                    spent.calls -= 1
                spent.duration_ms += (time.monotonic() - started) * 1000.0
        if problem is not None:
            return _error(problem)
        if outcome.status is ActionStatus.SUCCEEDED and isinstance(outcome.output, dict):
            return {**outcome.output, "isError": False}
        return _error(outcome.error or outcome.status.value)

    def _budget_context(self) -> dict[str, str]:
        """The context of a call's proposal saying what spends its budget (and, for a
        tenant's, which proxy's: see `instance`)."""
        context = session_budget_context(self.budget_per)
        if self.budget_per == "tenant":
            context[BUDGET_OWNER] = self.instance
        return context

    def _history(self, session: str) -> list[dict[str, Any]] | None:
        """The session's history, where calls in flight go, when a policy reads it."""
        policies = self.runtime.policy_sets(session)
        if not self.runtime.has_session(session) or not any(p.reads("history") for p in policies):
            return None
        history: list[dict[str, Any]] = self.runtime.history(session, "")  # (the session's)
        return history


class _Asgi:
    """Wraps an ASGI function so starlette's Route treats it as an app, not a handler."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def _error(message: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": message}], "isError": True}


class _ElicitationGate:
    """Approvals through MCP elicitation: the client's user is asked; a client that cannot be
    asked gets a denial saying approval is required."""

    def __init__(self, proxy: PolicyProxy) -> None:
        self.proxy = proxy

    async def review(self, request: ApprovalRequest) -> Approval:
        admission = _ADMISSION.get()
        if admission is not None:  # admitted, pending the answer: the session goes on
            admission.admitted(request.action.parameters)
        mcp_session = self.proxy.mcp_session_of(request.session)
        if mcp_session is None or not _can_elicit(mcp_session):
            return Approval(
                False,
                "approval required, and this MCP client cannot be asked (it does not support"
                " elicitation)",
                "mcp-proxy",
            )
        try:
            action, content = await _elicit(
                mcp_session,
                f"Approve {request.action.tool} {json.dumps(dict(request.parameters))}?"
                f" {request.reason}",
                {
                    "type": "object",
                    "properties": {"approve": {"type": "boolean", "title": "Approve this call"}},
                    "required": ["approve"],
                },
            )
        except Exception as exc:  # noqa: BLE001 - no answer is a refusal (fail closed)
            return Approval(False, f"asking the MCP client's user failed: {exc}")
        # `true` itself, and nothing else: the schema asks for a boolean, and a client that
        # sends "false" or "no" (non-empty strings, truthy in Python) must not approve
        approved = action == "accept" and (content or {}).get("approve") is True
        reason = (
            "approved by the MCP client's user"
            if approved
            else _NOT_APPROVED.get(action, f"not approved ({action})")
        )
        return Approval(approved, reason, "mcp-elicitation")


#: Why a call the client's user was asked about did not go ahead, by the elicitation's action
#: (`accept` with `approve: false` is the user's "no").
_NOT_APPROVED: dict[str, str] = {
    "accept": "the MCP client's user did not approve it",
    "decline": "the MCP client's user declined it",
    "cancel": "the MCP client's user cancelled the question",
}


def _can_elicit(session: Any) -> bool:
    """Whether the client behind a session (carlang's stdio one, or the SDK's) declared the
    elicitation capability."""
    if isinstance(session, StdioSession):
        return session.can_elicit()
    import mcp.types as types

    return bool(
        session.check_client_capability(
            types.ClientCapabilities(elicitation=types.ElicitationCapability())
        )
    )


async def _elicit(session: Any, message: str, schema: dict[str, Any]) -> tuple[str, Any]:
    if isinstance(session, StdioSession):
        answer = await session.request(
            "elicitation/create", {"message": message, "requestedSchema": schema}
        )
        return str(answer.get("action", "")), answer.get("content")
    result = await session.elicit(message=message, requestedSchema=schema)
    return str(result.action), result.content


class StdioSession:
    """The proxy's own MCP server side over stdio: newline-delimited JSON-RPC on the event
    loop, no threads (the SDK's stdio transport reads through a worker thread, which cost
    milliseconds per call). Answers initialize, ping, tools/list and tools/call, honours
    notifications/cancelled, and sends elicitation requests to the client."""

    def __init__(self, proxy: PolicyProxy, write: Any) -> None:
        self.proxy = proxy
        self.write = write
        self.client_capabilities: dict[str, Any] = {}
        #: Whether the client has sent `initialize`: before it, only `ping` is answered (the
        #: MCP lifecycle: a call must not run in a session that was never set up).
        self.initialized = False
        self._tasks: dict[Any, asyncio.Task[None]] = {}
        self._waiting: dict[Any, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        #: Why the client can no longer answer a request of ours (it closed its output), or
        #: None while it can.
        self.gone: str | None = None

    def can_elicit(self) -> bool:
        """Whether the client declared elicitation."""
        return "elicitation" in self.client_capabilities

    def _progress(self, params: dict[str, Any]) -> Progress | None:
        """How to send progress notifications of a request with `params`: None unless its
        `_meta` holds a progress token (a string or an integer, as MCP has it)."""
        meta = params.get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        if not isinstance(token, (str, int)) or isinstance(token, bool):
            return None

        async def send_progress(progress: int, message: str) -> None:
            values = {"progressToken": token, "progress": progress, "message": message}
            self.send({"jsonrpc": "2.0", "method": "notifications/progress", "params": values})

        return send_progress

    def send(self, message: dict[str, Any]) -> None:
        """Write one message (one line)."""
        self.write(json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n")

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        """Ask the client something and wait for its answer."""
        if self.gone is not None:
            raise ConnectionError(self.gone)
        request_id = f"carlang-{next(self._ids)}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        return await future

    def receive(self, message: Any) -> None:
        """Handle one message from the client. One that is not a JSON-RPC message (not an
        object, a method that is not a string, a request id that is not a string or an
        integer, as MCP asks) is answered with -32600 invalid request (id null when the id
        itself is what is wrong); nothing of it is run."""
        invalid = invalid_request(message)
        if invalid is not None:
            self.send(invalid)
            return
        if "method" not in message:  # an answer to one of ours
            self._answered(message)
            return
        method = message["method"]
        if "id" not in message:
            if method == "notifications/cancelled":
                params = message.get("params")
                cancelled = params.get("requestId") if isinstance(params, dict) else None
                task = self._tasks.get(cancelled) if request_id_problem(cancelled) is None else None
                if task is not None:
                    task.cancel()
            return
        key = message["id"]
        task = asyncio.ensure_future(self._answer(message))
        if key in self._tasks:  # a repeated id: kept apart, so that the end of input waits
            key = (key, id(task))  # for both (a cancellation names the first)
        self._tasks[key] = task
        task.add_done_callback(functools.partial(self._done, key))

    def _answered(self, message: dict[str, Any]) -> None:
        """The client's answer to a request of ours (an elicitation): its result, or an error
        saying what it said (a malformed answer is an error: the question was not answered)."""
        request_id = message.get("id")
        if request_id_problem(request_id) is not None:
            return  # (not an id of ours)
        future = self._waiting.pop(request_id, None)
        if future is None or future.done():
            return  # (an answer to nothing of ours: JSON-RPC answers no answer)
        if "error" in message:
            error = message["error"]
            said = error.get("message") if isinstance(error, dict) else None
            if said is None:
                said = f"a malformed error: {json.dumps(error, default=str)[:200]}"
            future.set_exception(RuntimeError(str(said)))
            return
        result = message.get("result")
        if result is None:
            result = {}
        if isinstance(result, dict):
            future.set_result(result)
        else:
            kind = with_article(json_type_name(result))
            future.set_exception(RuntimeError(f"its answer's result is {kind}, not an object"))

    def _done(self, key: Any, task: asyncio.Task[None]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]

    async def finish(self, broken: Callable[[], bool] | None = None) -> None:
        """The client closed its input: answer every request read, then return. It cannot
        answer a question any more (an approval asked is refused, failing closed). When
        `broken()` says the client's end of the output is gone too (checked every
        `_BROKEN_CHECK` seconds), no answer can be delivered: the calls in flight are
        cancelled (recorded as interrupted, as on SIGTERM) instead of waited for, which
        could be forever."""
        if self.gone != _STDOUT_CLOSED:
            self.gone = "the MCP client closed its input: it cannot answer"
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError(self.gone))
        self._waiting.clear()
        while self._tasks:
            tasks = list(self._tasks.values())
            if broken is None:
                await asyncio.wait(tasks)
                continue
            if self.gone == _STDOUT_CLOSED or broken():
                self.gone = _STDOUT_CLOSED
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks)
                continue
            await asyncio.wait(tasks, timeout=_BROKEN_CHECK)

    async def _answer(self, message: dict[str, Any]) -> None:
        request_id, method = message["id"], message["method"]
        params = message.get("params")
        params = {} if params is None else params
        if not isinstance(params, dict):
            kind = with_article(json_type_name(params))
            self.send(_rpc_error(request_id, -32602, f"params must be a JSON object, not {kind}"))
            return
        if not self.initialized and method not in ("initialize", "ping"):
            early = f"{method} before initialize: send initialize first (MCP lifecycle)"
            self.send(_rpc_error(request_id, -32600, early))
            return
        try:
            if method == "initialize":
                self.initialized = True
                self.client_capabilities = dict(params.get("capabilities") or {})
                requested = params.get("protocolVersion")
                result: dict[str, Any] = {
                    "protocolVersion": requested
                    if requested in SUPPORTED_VERSIONS
                    else SUPPORTED_VERSIONS[0],
                    "capabilities": {"tools": {"listChanged": False}},
                    "serverInfo": {"name": "carlang-proxy", "version": _version()},
                }
            elif method == "ping":
                result = {}
            elif method == "tools/list":
                result = {"tools": self.proxy.list_tools()}
            elif method == "tools/call":
                problem = call_problem(params)
                if problem is not None:
                    self.send(_rpc_error(request_id, -32602, problem))
                    return
                arguments = params.get("arguments") or {}
                progress = self._progress(params)
                result = await self.proxy.call_tool(
                    self, params["name"], arguments, progress=progress
                )
            else:
                self.send(_rpc_error(request_id, -32601, f"method not found: {method}"))
                return
        except asyncio.CancelledError:
            return  # the client cancelled: no answer is sent
        except ProxyBusy as exc:
            self.send(_rpc_error(request_id, exc.code, str(exc)))
            return
        except CarlangRuntimeError as exc:  # refused by the runtime: a tool error, not a crash
            result = _error(str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug must not leave the client waiting
            self.send(_rpc_error(request_id, -32603, f"internal error in carlang: {exc!r}"))
            return
        self.send({"jsonrpc": "2.0", "id": request_id, "result": result})


#: Protocol revisions the stdio server answers in (the client's, when it is one of these).
SUPPORTED_VERSIONS = ("2025-06-18", "2025-11-25", "2025-03-26", "2024-11-05")


def _version() -> str:
    from .._version import __version__

    return str(__version__)


def call_problem(params: dict[str, Any]) -> str | None:
    """What is wrong with a `tools/call` request's params (a JSON-RPC -32602 invalid params
    error), or None: the name missing or not a string, arguments neither left out nor a JSON
    object, or holding what JSON cannot (NaN, an infinity, nesting past 128 levels: an SDK's
    decoder reads them, and such a value would be judged as one thing and sent as another)."""
    if "name" not in params:
        return "tools/call needs the tool's name: params.name is missing"
    name = params["name"]
    if not isinstance(name, str):
        kind = with_article(json_type_name(name))
        return f"params.name must be a string (the tool's name), not {kind}"
    arguments = params.get("arguments")
    if isinstance(arguments, str):
        return "arguments must be a JSON object, not a string: decode it first"
    if arguments is not None and not isinstance(arguments, dict):
        return f"arguments must be a JSON object, not {with_article(json_type_name(arguments))}"
    problem = not_json(arguments) if arguments else None
    if problem is not None:  # (a path inside the arguments, else their depth)
        where = "the arguments are " if problem.startswith("nested") else "arguments."
        return f"arguments are not JSON: {where}{problem}"
    return None


def invalid_request(message: Any) -> dict[str, Any] | None:
    """The JSON-RPC -32600 invalid request answer to a message that is not one, or None: not
    an object (a batch, an array, among them: MCP has none since 2025-06-18), a request id
    that is not a string or an integer (answered with id null), a method that is not a
    string. An answer (no method) is left to its reader."""
    if isinstance(message, list):
        problem = "not a JSON-RPC message: a batch (an array) is not served; send each alone"
        return _rpc_error(None, -32600, problem)
    if not isinstance(message, dict):
        return _rpc_error(None, -32600, "not a JSON-RPC message")
    if "method" not in message:
        return None
    bad_id = request_id_problem(message["id"]) if "id" in message else None
    if bad_id is not None:
        return _rpc_error(None, -32600, bad_id)
    method = message["method"]
    if not isinstance(method, str):
        kind = with_article(json_type_name(method))
        said = f"invalid request: the method must be a string, not {kind}"
        return _rpc_error(message.get("id"), -32600, said)
    return None


def request_id_problem(request_id: Any) -> str | None:
    """What is wrong with a request's id, or None: MCP asks for a string or an integer (not
    null, a fraction, a boolean, an array or an object, which JSON-RPC 2.0 alone allows or
    discourages)."""
    if isinstance(request_id, str) or (
        isinstance(request_id, int) and not isinstance(request_id, bool)
    ):
        return None
    if isinstance(request_id, list | dict):
        kind = with_article(json_type_name(request_id))
    else:  # null, true, 1.5
        kind = json.dumps(request_id)
    return f"invalid request: the id must be a string or an integer (MCP), not {kind}"


def _rpc_error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


class _Connection:
    """One run of the SDK server: one MCP session (the SDK's `ServerSession`, known from its
    first call)."""

    def __init__(self) -> None:
        self.mcp: Any = None


def build_server(proxy: PolicyProxy, name: str = "carlang-proxy") -> Any:
    """The SDK server answering tools/list and tools/call through `proxy`, saying carlang's
    version. A call whose params are wrong (arguments holding NaN or an infinity, which the
    SDK's decoder reads) is a JSON-RPC -32602 error, as over stdio; one refused as the proxy
    is busy (`ProxyBusy`) is -32000. When an MCP session ends (over HTTP: its client deleted
    it, it was idle too long, or the proxy stops), its carlang session and its sessions with
    the servers are closed (the SDK runs the server once per session, in its `lifespan`)."""
    import contextlib
    from collections.abc import AsyncIterator

    import anyio
    import mcp.types as types
    from mcp.server.lowlevel import Server
    from mcp.shared.exceptions import McpError

    @contextlib.asynccontextmanager
    async def per_session(_server: Any) -> AsyncIterator[_Connection]:
        connection = _Connection()
        try:
            yield connection
        finally:
            if connection.mcp is not None:
                with anyio.CancelScope(shield=True):  # (the proxy stopping cancels the run)
                    await proxy.end(connection.mcp)

    server: Any = Server(name, version=_version(), lifespan=per_session)

    @server.list_tools()  # type: ignore[untyped-decorator]
    async def list_tools() -> list[types.Tool]:
        tenant = _request_tenant(server.request_context.request)
        if proxy.tenanted and tenant is None:  # (fail closed, as a call is)
            raise McpError(types.ErrorData(code=-32600, message=_UNTOLD_TENANT))
        return [types.Tool.model_validate(t) for t in proxy.list_tools(tenant)]

    async def call_tool(request: types.CallToolRequest) -> types.ServerResult:
        params = request.params
        problem = call_problem({"name": params.name, "arguments": params.arguments})
        if problem is not None:
            raise McpError(types.ErrorData(code=types.INVALID_PARAMS, message=problem))
        context = server.request_context
        session = context.session
        if isinstance(context.lifespan_context, _Connection):
            context.lifespan_context.mcp = session  # (its end ends the client's session)
        tenant = _request_tenant(context.request)
        token = context.meta.progressToken if context.meta is not None else None
        progress: Progress | None = None
        if token is not None:

            async def progress(done: int, message: str) -> None:
                await session.send_progress_notification(
                    token, done, message=message, related_request_id=context.request_id
                )

        try:
            arguments = params.arguments or {}
            result = await proxy.call_tool(session, params.name, arguments, tenant, progress)
        except ProxyBusy as exc:
            raise McpError(types.ErrorData(code=exc.code, message=str(exc))) from None
        except CarlangRuntimeError as exc:  # refused by the runtime: a tool error
            result = _error(str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug: a JSON-RPC error, not a tool's
            message = f"internal error in carlang: {exc!r}"
            raise McpError(types.ErrorData(code=types.INTERNAL_ERROR, message=message)) from None
        return types.ServerResult(types.CallToolResult.model_validate(result))

    server.request_handlers[types.CallToolRequest] = call_tool
    return server


async def serve_stdio(proxy: PolicyProxy) -> None:
    """Serve one client over standard input and output until it closes its input; every
    request read is answered before this returns, unless the client closed its end of the
    output too (nobody can read an answer: the calls in flight are cancelled, recorded as
    interrupted, and this returns; the runtime's close then stops the servers)."""
    _refuse_unknown_tenants(proxy, ())  # (stdio has no tenants)
    readline = await _stdin_lines()
    out = sys.stdout.buffer
    session: StdioSession

    def write(data: bytes) -> None:
        if session.gone == _STDOUT_CLOSED:
            return
        try:
            out.write(data)
            out.flush()
        except (BrokenPipeError, ValueError):  # the client stopped reading: nobody to answer
            session.gone = _STDOUT_CLOSED

    session = StdioSession(proxy, write)
    try:
        while line := await readline():
            line = line.strip()
            if not line:
                continue
            try:
                message = parse_json(line)
            except JsonTextError as exc:
                session.send(_not_json_error(line, exc))
                continue
            try:
                session.receive(message)
            except Exception as exc:  # noqa: BLE001 - a bug must not end the calls in flight
                given = message.get("id") if isinstance(message, dict) else None
                request_id = given if request_id_problem(given) is None else None
                session.send(_rpc_error(request_id, -32603, f"internal error in carlang: {exc!r}"))
        await session.finish(broken=lambda: _output_broken(out))
    finally:
        proxy.forget(session)


_STDOUT_CLOSED = "the MCP client closed its output"

#: Seconds between checks, once the client closed its input, that it still reads the output.
_BROKEN_CHECK = 0.2


def _output_broken(stream: Any) -> bool:
    """Whether nobody reads `stream` any more: the read end of its pipe is closed (POLLERR)
    or its socket hung up (POLLHUP). A file or a terminal is never broken here; nor is
    anything where `poll` is missing (Windows)."""
    if not hasattr(select, "poll"):
        return False
    try:
        poller = select.poll()
        poller.register(stream.fileno(), select.POLLOUT)
        events = poller.poll(0)
    except (OSError, ValueError):
        return False
    return any(revents & (select.POLLERR | select.POLLHUP) for _fd, revents in events)


def _not_json_error(line: bytes, exc: JsonTextError) -> dict[str, Any]:
    """The answer to a line (or HTTP body) that is not JSON (see `parse_error`)."""
    return _rpc_error(*parse_error(line, exc))


def parse_error(line: bytes, exc: JsonTextError) -> tuple[Any, int, str]:
    """`(id, -32700, message)` for a JSON-RPC line that is not JSON (`exc`): NaN, Infinity, a
    number out of range and nesting past 128 levels are not JSON either, though Python's
    decoder reads them. The id is the request's when that lenient decoder can read it, so that
    its client is not left waiting (the request is not run); else null."""
    where = exc.position
    at = f"column {where.column}" if where.line == 1 else f"{where.line}:{where.column}"
    problem = f"parse error: {exc.message.removeprefix('malformed JSON: ')} at {at}"
    try:
        lenient = json.loads(line)
    except (ValueError, RecursionError):
        lenient = None
    if isinstance(lenient, dict) and "method" in lenient:
        found = lenient.get("id")
        if isinstance(found, str | int) and not isinstance(found, bool):
            return found, -32700, problem + " (the request was not run)"
    return None, -32700, problem


async def _stdin_lines() -> Callable[[], Awaitable[bytes]]:
    """How to read standard input a line at a time (b"" at its end): from the event loop when
    it is a pipe, a socket or a terminal; from a thread when it is a file (`< requests.jsonl`,
    `< /dev/null`), which the loop's selector cannot watch."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError):
        mode = 0
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode) and sys.stdin.isatty():
        reader = asyncio.StreamReader(limit=1 << 26)
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        return reader.readline
    stream = sys.stdin.buffer

    async def from_thread() -> bytes:
        return await asyncio.to_thread(stream.readline)

    return from_thread


#: A request over HTTP with tenants whose tenant cannot be told (no token the proxy knows:
#: the transport refuses those first; this is the second lock).
_UNTOLD_TENANT = "this request's tenant cannot be told: it is refused"


class _ClientGone(logging.Filter):
    """Drops the MCP SDK's report of a client that hung up (`anyio.ClosedResourceError` in
    its SSE writer): an ordinary end of a session, which it logs as an error with a
    traceback after every client."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return type(error).__name__ not in ("ClosedResourceError", "BrokenResourceError")


#: Set, for the rest of a request's handling, once the proxy has said whose a request for
#: another tenant's session was (`_SessionOpeners.said`): the SDK's own line, which names no tenant,
#: is then dropped (`_OwnerRefusalSaid`).
_OWNER_REFUSAL_SAID: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "carlang_owner_refusal_said", default=False
)


class _OwnerRefusalSaid(logging.Filter):
    """Drops the MCP SDK's `Rejecting request for session ...: credential does not match`
    once the proxy has said the same with both tenants named (`_SessionOpeners`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        said = _OWNER_REFUSAL_SAID.get()
        return not (said and str(record.msg).startswith("Rejecting request for session"))


class _SessionOpeners:
    """Which tenant opened each client session, as the SDK's answers to `initialize` tell
    (their `Mcp-Session-Id`), to say whose a refused request was (`said`): the SDK refuses
    another tenant's request as for a session that does not exist (404) and logs it naming
    neither, and keeps its own record private. The newest `LIMIT` sessions are kept (a
    proxy bounds its live sessions far below it): an older one is only not named."""

    LIMIT = 100_000

    def __init__(self) -> None:
        self.opener: dict[str, str] = {}

    def watched(self, send: Any, tenant: str) -> Any:
        """`send`, noting the session id of a response to `tenant`'s request that opens one."""

        async def noting(message: Any) -> None:
            if message.get("type") == "http.response.start":
                given = _header(message, b"mcp-session-id")
                if given is not None:
                    self.note(given.decode("latin-1"), tenant)
            await send(message)

        return noting

    def note(self, session_id: str, tenant: str) -> None:
        """`tenant` opened `session_id`."""
        self.opener.setdefault(session_id, tenant)
        if len(self.opener) > self.LIMIT:
            del self.opener[next(iter(self.opener))]

    def said(self, proxy: PolicyProxy, session_id: str, tenant: str) -> None:
        """When `tenant` asks for a session another tenant opened, say which tenants they
        are (and have the SDK's own line dropped, `_OwnerRefusalSaid`)."""
        owner = self.opener.get(session_id)
        if owner is None or owner == tenant:
            return
        proxy.warn(
            f"carlang mcp proxy: a request of tenant {tenant!r} for a session of tenant"
            f" {owner!r} ({session_id[:8]}...) was refused, answered as for a session that"
            " does not exist"
        )
        _OWNER_REFUSAL_SAID.set(True)


class _StoppedNow(logging.Filter):
    """Drops uvicorn's tracebacks of what a second Ctrl-C (or SIGINT to the whole group)
    cancels: the stop the user asked for, not an error (the event log marks the calls it
    interrupted)."""

    #: The last line of a traceback that uvicorn logs as text (a lifespan's shutdown).
    _CANCELLED = ("asyncio.exceptions.CancelledError", "KeyboardInterrupt")

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, (asyncio.CancelledError, KeyboardInterrupt)):
            return False
        message = record.getMessage().rstrip()
        return not (
            message.startswith("Traceback") and message.rpartition("\n")[2] in self._CANCELLED
        )


class _SdkLines(logging.Handler):
    """Writes the MCP SDK's warnings to the proxy's standard error in one form, named as the
    SDK's (`carlang mcp proxy: MCP SDK: Invalid Host header: ...`): Python's fallback wrote
    the first bare and, once anything configured logging, `WARNING:mcp.server...:` after."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.setFormatter(logging.Formatter("carlang mcp proxy: MCP SDK: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # (a closed standard error: nothing to tell)
            pass


class _SessionIdsShortened(logging.Filter):
    """Shortens the session ids in the MCP SDK's own log lines to their first 8 characters
    (`Session 3f2a9c1e... crashed`). Over HTTP a session id is what a client sends to be that
    session again, so the operator's log, often kept and shared, does not hold it whole."""

    _ID = re.compile(
        r"(?<![0-9a-f])([0-9a-f]{8})(?:-?[0-9a-f]{4}){3}-?[0-9a-f]{12}(?![0-9a-f])", re.IGNORECASE
    )

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        shortened = self._ID.sub(r"\1...", message)
        if shortened != message:
            record.msg, record.args = shortened, None
        if record.exc_info and not record.exc_text:  # (a traceback's text may name it too)
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._ID.sub(r"\1...", record.exc_text)
        return True


#: The MCP SDK's modules that log session ids.
_SDK_SESSION_LOGGERS = (
    "mcp.server.streamable_http",
    "mcp.server.streamable_http_manager",
    "mcp.server.sse",
)


def _filter_sdk_logs() -> None:
    """The proxy's filters on the SDK's and uvicorn's loggers, and the SDK's lines' one form
    (once per process: a logger keeps its filters and handlers)."""
    wanted: dict[str, tuple[type[logging.Filter], ...]] = {
        name: (_ClientGone, _SessionIdsShortened) for name in _SDK_SESSION_LOGGERS
    }
    wanted["mcp.server.streamable_http_manager"] += (_OwnerRefusalSaid,)
    wanted["uvicorn.error"] = (_StoppedNow,)
    for name, kinds in wanted.items():
        logger = logging.getLogger(name)
        for kind in kinds:
            if not any(isinstance(f, kind) for f in logger.filters):
                logger.addFilter(kind())
    sdk = logging.getLogger("mcp")
    if not any(isinstance(h, _SdkLines) for h in sdk.handlers):
        sdk.addHandler(_SdkLines())
        sdk.propagate = False


def bind_http(port: int, host: str = "127.0.0.1") -> socket.socket:
    """The listening socket for `serve_http`, bound before anything is served, so that a port
    in use is one clear error (`CarlangRuntimeError`) rather than the server's log line."""
    try:  # the host's own address family: 127.0.0.1, ::1, a name
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise CarlangRuntimeError(f"cannot listen on {host}: {exc.strerror}") from None
    listener = socket.socket(family, kind)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
    except OSError as exc:
        listener.close()
        reason = "it is in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        raise CarlangRuntimeError(
            f"cannot listen on {host}:{port}: {reason}; choose another with --port"
        ) from None
    return listener


#: The names a client on this machine reaches a loopback listener by.
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_WILDCARDS = ("", "0.0.0.0", "::")


def is_loopback(address: str) -> bool:
    """Whether a listener's address (what `getsockname` says) is this machine's only."""
    try:
        return ipaddress.ip_address(address.strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return address == "localhost"


@dataclass(frozen=True)
class HttpAccess:
    """Who the HTTP proxy answers. `hosts` and `origins`: the Host and Origin header values
    it accepts (DNS rebinding protection, as the MCP specification asks: another Host is
    421, another Origin 403; a request with no Origin, from no browser, is fine). `token`:
    when set, a request must carry `Authorization: Bearer <token>` (else 401). `tenants`:
    when any, a request must carry one of their tokens, which says whose it is (each pair is
    a tenant and its token)."""

    hosts: tuple[str, ...]
    origins: tuple[str, ...]
    token: str | None = field(default=None, repr=False)
    tenants: tuple[tuple[str, str], ...] = field(default=(), repr=False)


def _host_and_port(value: str) -> tuple[str, str, str]:
    """A Host header's value split as `str.rpartition(":")` splits it, on the colon before a
    port only (not inside a bracketed IPv6 address)."""
    if value.count(":") == 1 or (value.startswith("[") and "]:" in value):
        return value.rpartition(":")
    return value, "", ""


def _is_port_or_any(text: str) -> bool:
    """Whether `text` is a TCP port (1-65535) or `*`, any port."""
    return text == "*" or (text.isascii() and text.isdigit() and 0 < int(text) <= 65535)


def http_access(
    host: str,
    port: int,
    *,
    allow_hosts: Iterable[str] = (),
    allow_origins: Iterable[str] = (),
    token: str | None = None,
    tenants: Mapping[str, str] | None = None,
) -> HttpAccess:
    """The access of a proxy listening on `host`:`port`: this machine's names for it
    (localhost, 127.0.0.1, [::1]) and the address it listens on, at that port, and what
    `allow_hosts` and `allow_origins` add. A host given without a port is allowed at the
    proxy's port and with none (as a reverse proxy in front may send it); `NAME:*` allows any
    port. An origin is `scheme://host[:port]` (`:*` for any port). `token`, or `tenants`
    (each tenant's token), is the bearer token requests need. `CarlangRuntimeError` for a
    value that cannot be one."""
    names = list(_LOOPBACK_NAMES)
    if host not in _WILDCARDS and host.strip("[]") not in ("127.0.0.1", "localhost", "::1"):
        names.append(f"[{host}]" if ":" in host and not host.startswith("[") else host)
    hosts = [f"{name}:{port}" for name in names]
    origins = [f"http://{name}:{port}" for name in names]
    for given in allow_hosts:
        value = given.strip().lower()
        name, colon, port_given = _host_and_port(value)
        name = name.rstrip(".")  # (a Host header names the host without its root's dot)
        if not is_host_name(name) or (colon and not _is_port_or_any(port_given)):
            raise CarlangRuntimeError(
                f"--allow-host {given!r}: give a host name or address, optionally with"
                " :PORT or :* (like app.example.com, 10.0.0.5:8765, [fe80::1]:*)"
            )
        if colon:  # (as a Host header writes the port: `080` is `80`)
            hosts.append(f"{name}:{port_given if port_given == '*' else int(port_given)}")
        else:
            hosts.extend((name, f"{name}:{port}"))
    for given in allow_origins:
        value = given.strip().rstrip("/").lower()
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            raise CarlangRuntimeError(
                f"--allow-origin {given!r}: give an origin as a browser sends it,"
                " scheme://host[:port] (like https://app.example.com, http://localhost:*)"
            )
        origins.append(value)
    pairs = _tenant_tokens(tenants or {}, token)
    return HttpAccess(tuple(dict.fromkeys(hosts)), tuple(dict.fromkeys(origins)), token, pairs)


def _tenant_tokens(tenants: Mapping[str, str], token: str | None) -> tuple[tuple[str, str], ...]:
    """`tenants` as `HttpAccess.tenants`, once checked: each a tenant (`check_tenant`) with
    a token of its own, and not alongside one `token` for all (whose would its calls be?)."""
    if tenants and token is not None:
        raise CarlangRuntimeError(
            "give one token for every client or a token per tenant, not both: with tenants,"
            " every client uses its tenant's token"
        )
    if token is not None:
        _check_token("the token", token)
    owners: dict[str, str] = {}
    for tenant, secret in tenants.items():
        check_tenant(tenant)
        if not _TENANT_NAME.fullmatch(tenant):
            raise CarlangRuntimeError(
                f"tenant {tenant!r}: a tenant's name is letters, digits and . _ - : @ (it is"
                " what policies see as scope.tenant and the event log names)"
            )
        if not secret:
            raise CarlangRuntimeError(f"tenant '{tenant}' has an empty token: give it one")
        _check_token(f"the token of tenant '{tenant}'", secret)
        if secret in owners:
            raise CarlangRuntimeError(
                f"tenants '{owners[secret]}' and '{tenant}' have the same token: a token must"
                " say whose a request is, so give each tenant its own"
            )
        owners[secret] = tenant
    return tuple(tenants.items())


def _header(scope: Any, wanted: bytes) -> bytes | None:
    """The value of a request's first header named `wanted` (lowercase), or None."""
    for name, value in scope.get("headers") or ():
        if name.lower() == wanted:
            return bytes(value)
    return None


#: A tenant's name: what policies read as `scope.tenant` and logs show, plainly.
_TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]*")
#: What a bearer token may hold: visible ASCII (a header carries nothing else as it is).
_TOKEN_TEXT = re.compile(r"[\x21-\x7e]+")


def _check_token(what: str, token: str) -> None:
    """Refuse a token no client could send in `Authorization: Bearer <token>`."""
    if not _TOKEN_TEXT.fullmatch(token):
        raise CarlangRuntimeError(
            f"{what} holds a space, a control character or a non-ASCII one, which a client"
            " cannot send in an Authorization header: use visible ASCII (like `openssl rand"
            " -hex 32`)"
        )


def _authorized(scope: Any, token: str) -> bool:
    """Whether a request carries `Authorization: Bearer <token>` (compared in constant
    time)."""
    return _tenant_of(scope, (("", token),)) is not None


def _tenant_of(scope: Any, tenants: Iterable[tuple[str, str]]) -> str | None:
    """The tenant whose token a request carries as `Authorization: Bearer <token>`, or None.
    Every token is compared, each in constant time: how long it takes says nothing of which
    one, or how much of one, matched."""
    scheme, _, given = (_header(scope, b"authorization") or b"").partition(b" ")
    given = given.strip()
    found = None
    for tenant, token in tenants:
        if hmac.compare_digest(given, token.encode()) and scheme.lower() == b"bearer":
            found = tenant
    return found


def _as_tenant(scope: Any, tenant: str) -> None:
    """Mark a request as `tenant`'s, for the SDK and for the proxy's calls: the SDK binds a
    session to the user of the request that opened it, and answers a request of another user
    for it as for a session that does not exist (404); `_request_tenant` reads it back."""
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.auth.provider import AccessToken

    # (the token itself is not kept: the tenant's name is who the request is)
    scope["user"] = AuthenticatedUser(
        AccessToken(token="", client_id=tenant, subject=tenant, scopes=[])
    )


def _request_tenant(request: Any) -> str | None:
    """The tenant `_as_tenant` marked the HTTP request of a call as, or None (stdio; a
    proxy with no token per tenant)."""
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    token = getattr(user, "access_token", None)
    tenant = getattr(token, "client_id", None)
    return tenant if isinstance(tenant, str) else None


def _too_large(scope: Any, limit: int) -> dict[str, Any] | None:
    """The JSON-RPC -32600 answer to a request whose Content-Length is over `limit` bytes, or
    None (no length, or within it)."""
    given = _header(scope, b"content-length")
    try:
        size = int(given) if given is not None else 0
    except ValueError:
        return None  # (the server refuses a malformed length itself)
    if size <= limit:
        return None
    return _rpc_error(
        None,
        -32600,
        f"the request is {size} bytes, over this proxy's limit of {limit} bytes"
        f" ({limit // 2**20} MiB): send less in one call (a large content by reference)",
    )


def _invalid_call(message: Any) -> dict[str, Any] | None:
    """The JSON-RPC -32602 answer to a `tools/call` request whose params are wrong
    (`call_problem`), or None. Nothing of the request is run."""
    if not isinstance(message, dict) or message.get("method") != "tools/call":
        return None
    params = message.get("params")
    problem = call_problem(params) if isinstance(params, dict) else None
    return _rpc_error(message.get("id"), -32602, problem) if problem is not None else None


async def _buffered(receive: Any) -> tuple[bytes, Callable[[], Awaitable[Any]]]:
    """A request's whole body, and a `receive` that gives it again (then what follows)."""
    chunks: list[bytes] = []
    queued: list[Any] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            queued.append(message)
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    queued.insert(0, {"type": "http.request", "body": body, "more_body": False})

    async def replay() -> Any:
        return queued.pop(0) if queued else await receive()

    return body, replay


async def _unauthorized(scope: Any, receive: Any, send: Any) -> None:
    from starlette.responses import Response

    response = Response(
        "Unauthorized: this MCP proxy needs the header Authorization: Bearer <its token>\n",
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="carlang mcp proxy"'},
    )
    await response(scope, receive, send)


#: Seconds an HTTP session may stay idle before it ends (the SDK's default: 30 minutes).
IDLE_TIMEOUT = 30 * 60.0

#: How many client sessions at once may have servers started for them, by default (over
#: HTTP: `carlang mcp proxy --max-sessions`).
MAX_SESSIONS = 32


def _refuse_unknown_tenants(proxy: PolicyProxy, tenants: Iterable[str]) -> None:
    """`CarlangRuntimeError` when a capability is given to a tenant that no client can be
    (a name mistyped): its clients would get the proxy's capability, all tools without one,
    so the proxy does not start (fail closed)."""
    unknown = sorted(set(proxy.tenant_capabilities) - set(tenants))
    if unknown:
        known = ", ".join(sorted(set(tenants))) or "none"
        raise CarlangRuntimeError(
            f"a capability for tenant(s) {', '.join(unknown)}, who have no token here"
            f" (tenants: {known})"
        )


def serve_http(
    proxy: PolicyProxy,
    port: int,
    host: str = "127.0.0.1",
    *,
    listener: socket.socket | None = None,
    access: HttpAccess | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
) -> None:
    """Serve clients over Streamable HTTP at http://host:port/mcp, one carlang session per
    MCP session (on `listener` when given: see `bind_http`), answering only what `access`
    allows (default: this machine's names for the listener, no token). A session with no
    request in flight (and no open stream) for `idle_timeout` seconds ends, as one its client
    deletes: its sessions with the servers are closed."""
    import contextlib
    from collections.abc import AsyncIterator

    import uvicorn
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from mcp.server.transport_security import (
        DEFAULT_MAX_REQUEST_BODY_SIZE,
        RequestBodyLimitMiddleware,
        TransportSecurityMiddleware,
        TransportSecuritySettings,
    )
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    _refuse_unknown_tenants(proxy, (t for t, _ in access.tenants) if access is not None else ())
    listener = listener if listener is not None else bind_http(port, host)
    if access is None:
        bound_host, bound_port = listener.getsockname()[:2]
        access = http_access(bound_host, bound_port)
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(access.hosts),
        allowed_origins=list(access.origins),
    )
    manager = StreamableHTTPSessionManager(
        app=build_server(proxy), security_settings=security, session_idle_timeout=idle_timeout
    )
    guard = TransportSecurityMiddleware(security)
    token = access.token
    # (a client may send a token as an argument, its own or another tenant's: never logged)
    proxy.runtime.keep_out([*([token] if token else []), *(t for _, t in access.tenants)])
    proxy.tenanted = bool(access.tenants)
    openers = _SessionOpeners()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        async with manager.run():
            yield

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        if token is not None and not _authorized(scope, token):
            await _unauthorized(scope, receive, send)
            return
        if access.tenants:
            tenant = _tenant_of(scope, access.tenants)
            if tenant is None:
                await _unauthorized(scope, receive, send)
                return
            _as_tenant(scope, tenant)
        post = scope.get("method") == "POST"
        refusal = await guard.validate_request(Request(scope, receive), is_post=post)
        if refusal is not None:  # (checked before the body is read; the SDK checks again)
            await refusal(scope, receive, send)
            return
        if post:  # JSON as it is: the SDK's decoder reads NaN, and hands it on as null
            body, receive = await _buffered(receive)
            try:
                message = parse_json(body)
            except JsonTextError as exc:
                answer = JSONResponse(_not_json_error(body, exc), status_code=400)
                await answer(scope, receive, send)
                return
            refused = invalid_request(message)
            if refused is not None:  # said as over stdio, not as the SDK's pydantic dump
                await JSONResponse(refused, status_code=400)(scope, receive, send)
                return
            invalid = _invalid_call(message) if _header(scope, b"mcp-session-id") else None
            if invalid is not None:  # said as over stdio, not as the SDK's generic -32602
                await JSONResponse(invalid)(scope, receive, send)
                return
        tenant = _request_tenant(Request(scope, receive)) if access.tenants else None
        if tenant is not None:  # (a request the SDK will answer)
            session_id = _header(scope, b"mcp-session-id")
            if session_id is None:
                send = openers.watched(send, tenant)
            else:
                openers.said(proxy, session_id.decode("latin-1"), tenant)
        await manager.handle_request(scope, receive, send)

    # a plain ASGI callable (not a request handler): starlette passes it scope/receive/send
    limited = RequestBodyLimitMiddleware(endpoint, DEFAULT_MAX_REQUEST_BODY_SIZE)

    async def sized(scope: Any, receive: Any, send: Any) -> None:
        # a body its Content-Length says is too large gets a JSON-RPC error, as every other
        # refusal does (the SDK's middleware answers in plain text; it still bounds a body
        # sent without a length)
        refusal = _too_large(scope, DEFAULT_MAX_REQUEST_BODY_SIZE)
        if refusal is not None:
            await JSONResponse(refusal, status_code=413)(scope, receive, send)
            return
        await limited(scope, receive, send)

    app = Starlette(routes=[Route("/mcp", endpoint=_Asgi(sized))], lifespan=lifespan)
    _filter_sdk_logs()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[listener])
    stopped_by = getattr(server, "_captured_signals", ())  # (uvicorn's: the signals it caught)
    if signal.SIGINT in stopped_by and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # uvicorn stopped on a SIGINT this process was started ignoring (in the background, by
        # a script) and raising it again did nothing: stop as on Ctrl-C, whose status it is
        raise KeyboardInterrupt
