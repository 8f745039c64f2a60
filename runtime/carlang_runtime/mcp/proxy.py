"""`carlang mcp proxy`: an MCP server that fronts a program's MCP servers under its policies.

- `tools/list` shows the MCP-bound tools the capability allows, and nothing of the others;
- each `tools/call` is a one-action proposal run by the `Runtime` in this client's own carlang
  session: capability, parameter validation, policies (trace rules see this session's
  history), the budget counted over the session, rate limits, approvals (MCP elicitation when
  the client can answer one, else a denial saying approval is required), dispatch to the
  server, the event log;
- a refusal or failure is a tool result with `isError: true` and carlang's message;
- a successful call returns the server's own result.

The server side is the official SDK's low-level `Server` (the `mcp` extra).
"""

from __future__ import annotations

import itertools
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from ..agents.specs import input_schema, mcp_annotations, tool_name_from_model, visible_tools
from ..engine.approval import Approval, ApprovalRequest
from ..ir import Action, ActionProposal, ActionStatus, Budget, Program, ToolSchema
from .provider import McpSessions

__all__ = ["PolicyProxy", "build_server", "serve_stdio", "serve_http"]


@dataclass
class _Client:
    """One MCP client session: its carlang session, its counters against the budget."""

    session: str
    mcp: Any
    calls: int = 0
    duration_ms: float = 0.0
    ids: Any = field(default_factory=lambda: itertools.count(1))


class PolicyProxy:
    """The proxy's logic, apart from the transport: list and call under the program."""

    def __init__(
        self,
        program: Program,
        runtime: Any,
        *,
        capability: str | None = None,
        budget: str | None = None,
        stderr: Any = None,
    ) -> None:
        self.program = program
        self.runtime = runtime
        self.capability = capability
        self.budget: Budget | None = None
        if budget is not None:
            self.budget = program.budget(budget)
            if self.budget is None:
                from ..errors import CarlangRuntimeError

                names = ", ".join(b.name for b in program.budgets) or "none"
                raise CarlangRuntimeError(f"no budget '{budget}' (budgets: {names})")
        self.sessions = McpSessions(program.mcp_servers, stderr=stderr)
        self.tools: dict[str, ToolSchema] = {}
        for schema in visible_tools(program, capability):
            if schema.mcp is not None and schema.mcp.server in self.sessions.servers:
                self.tools[schema.name] = schema
        for schema in program.tools:
            if schema.mcp is not None and schema.mcp.server in self.sessions.servers:
                runtime.register_tool(
                    schema.name, self.sessions.tool_function(schema, raw=True), schema
                )
        runtime.on_close(self.sessions.close)
        runtime.set_approval_gate(_ElicitationGate(self))
        self._clients: dict[int, _Client] = {}

    # -- sessions ------------------------------------------------------------------------------

    def client(self, mcp_session: Any) -> _Client:
        """The carlang session of an MCP client session, opened on its first request and
        closed when the MCP session goes away."""
        key = id(mcp_session)
        found = self._clients.get(key)
        if found is None:
            found = self._clients[key] = _Client(self.runtime.open_session(), mcp_session)
            weakref.finalize(mcp_session, self._forget, key, found.session)
        return found

    def _forget(self, key: int, session: str) -> None:
        self._clients.pop(key, None)
        self.runtime.close_session(session)

    def mcp_session_of(self, session: str | None) -> Any:
        """The MCP session behind a carlang session."""
        return next((c.mcp for c in self._clients.values() if c.session == session), None)

    # -- the two requests ----------------------------------------------------------------------

    def list_tools(self) -> list[dict[str, Any]]:
        """The tools this client may see: name, description, input schema, annotations."""
        out = []
        for schema in self.tools.values():
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
        self, mcp_session: Any, name: str, arguments: dict[str, Any]
    ) -> dict[str, Any]:
        """Run one call through the runtime's pipeline: the server's result, or an error
        result with carlang's message."""
        client = self.client(mcp_session)
        tool = tool_name_from_model(name, self.tools)
        if tool not in self.tools:
            return _error(f"unknown tool '{name}'")
        problem = self._over_budget(client)
        if problem is not None:
            return _error(problem)
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
            capability=self.capability,
        )
        started = time.monotonic()
        result = await self.runtime.execute_async(proposal, session=client.session)
        client.duration_ms += (time.monotonic() - started) * 1000.0
        (outcome,) = result.results
        if outcome.status is not ActionStatus.REJECTED:
            client.calls += 1
        if outcome.status is ActionStatus.SUCCEEDED and isinstance(outcome.output, dict):
            return {**outcome.output, "isError": False}
        return _error(outcome.error or outcome.status.value)

    def _over_budget(self, client: _Client) -> str | None:
        budget = self.budget
        if budget is None:
            return None
        limit = budget.max_tool_calls if budget.max_tool_calls is not None else budget.max_actions
        if limit is not None and client.calls >= limit:
            return f"budget '{budget.name}' is spent: {limit} tool calls per session"
        if budget.max_duration_ms is not None and client.duration_ms >= budget.max_duration_ms:
            return (
                f"budget '{budget.name}' is spent: {budget.max_duration_ms} ms of calls per session"
            )
        return None


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
        import mcp.types as types

        mcp_session = self.proxy.mcp_session_of(request.session)
        can_ask = mcp_session is not None and mcp_session.check_client_capability(
            types.ClientCapabilities(elicitation=types.ElicitationCapability())
        )
        if not can_ask:
            return Approval(
                False,
                f"approval required ({request.reason}); this MCP client cannot be asked"
                " (it does not support elicitation)",
                "mcp-proxy",
            )
        answer = await mcp_session.elicit(
            message=f"Approve {request.action.tool} {dict(request.parameters)}? {request.reason}",
            requestedSchema={
                "type": "object",
                "properties": {"approve": {"type": "boolean", "title": "Approve this call"}},
                "required": ["approve"],
            },
        )
        approved = answer.action == "accept" and bool((answer.content or {}).get("approve"))
        reason = (
            "approved by the MCP client's user" if approved else f"not approved ({answer.action})"
        )
        return Approval(approved, reason, "mcp-elicitation")


def build_server(proxy: PolicyProxy, name: str = "carlang-proxy") -> Any:
    """The SDK server answering tools/list and tools/call through `proxy`."""
    import mcp.types as types
    from mcp.server.lowlevel import Server

    server: Any = Server(name)

    @server.list_tools()  # type: ignore[untyped-decorator]
    async def list_tools() -> list[types.Tool]:
        return [types.Tool.model_validate(t) for t in proxy.list_tools()]

    @server.call_tool(validate_input=False)  # type: ignore[untyped-decorator]
    async def call_tool(name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        session = server.request_context.session
        result = await proxy.call_tool(session, name, arguments)
        return types.CallToolResult.model_validate(result)

    return server


async def serve_stdio(proxy: PolicyProxy) -> None:
    """Serve one client over standard input and output until it hangs up."""
    from mcp.server.stdio import stdio_server

    server = build_server(proxy)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def serve_http(proxy: PolicyProxy, port: int, host: str = "127.0.0.1") -> None:
    """Serve clients over Streamable HTTP at http://host:port/mcp, one carlang session per
    MCP session."""
    import contextlib
    from collections.abc import AsyncIterator

    import uvicorn
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from starlette.applications import Starlette
    from starlette.routing import Route

    manager = StreamableHTTPSessionManager(app=build_server(proxy))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        async with manager.run():
            yield

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        await manager.handle_request(scope, receive, send)

    # a plain ASGI callable (not a request handler): starlette passes it scope/receive/send
    app = Starlette(routes=[Route("/mcp", endpoint=_Asgi(endpoint))], lifespan=lifespan)
    uvicorn.run(app, host=host, port=port, log_level="warning")
