"""MCP servers as tool providers: one session per server per runtime, started on first use,
closed with the runtime; each MCP-bound tool is registered as an async function that calls
the server. (`carlang mcp proxy` keeps one `McpSessions` per client session instead: see
proxy.py.)

What a call does: the tool's schema the program was checked against is compared with the
server's live `tools/list` (a changed schema fails the call: the plan was verified against
another tool); `tools/call` goes out; `isError` fails the action with the server's text;
otherwise `structuredContent`, else the text content, is the action's output; either has the
server's own secrets (its env values, credential options) as `[REDACTED]`. A server
`timeout` (or the action's own) sends `notifications/cancelled`.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..engine.tools import ToolError
from ..ir import McpServer, Program, ToolSchema
from ..redact import (
    NAMED_SCHEMAS,
    SECRET_MARKS,
    SecretPath,
    is_secret_schema,
    redaction_path,
    secret_paths,
    secret_values,
)
from .client import McpClient, McpError

__all__ = [
    "McpSessions",
    "attach_mcp_servers",
    "same_tool_schema",
    "schema_fingerprint",
    "what_to_check",
    "output_of",
    "result_text",
]

#: JSON Schema keywords that only annotate: a change in them does not change what was checked.
#: (`writeOnly` is not one of them for carlang: it marks a secret, which logs, events and
#: messages hide; a server that marks a parameter the program does not hide has changed the
#: tool, whose value would be written down. The program may mark more than the server does:
#: `_without_added_secret_marks`.)
_ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "examples",
        "$schema",
        "$comment",
        "$id",
        "deprecated",
        "readOnly",
    }
)


def schema_fingerprint(schema: Any) -> Any:
    """A schema without its annotations (titles, descriptions, examples...), keys sorted: two
    schemas with one fingerprint accept the same values. Property names are kept as they are
    (a property may be called `description`)."""
    if isinstance(schema, Mapping):
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key in _ANNOTATIONS:
                continue
            if key in NAMED_SCHEMAS and isinstance(value, Mapping):
                out[key] = {name: schema_fingerprint(v) for name, v in sorted(value.items())}
            elif key == "required" and isinstance(value, list):
                out[key] = sorted(value)
            else:
                out[key] = schema_fingerprint(value)
        if out.get("type") == "object" and not out.get("properties"):
            out.pop("properties", None)
        return dict(sorted(out.items()))
    if isinstance(schema, list):
        return [schema_fingerprint(v) for v in schema]
    return schema


def same_tool_schema(checked: Mapping[str, Any], served: Mapping[str, Any]) -> bool:
    """Whether the schema a server serves for a tool is the one the program was checked
    against (`checked`, the program's): equal but for annotations, the `additionalProperties:
    false` carlang closes a signature's tool with, and the secret marks only the program
    makes (`_without_added_secret_marks`)."""
    checked = checked or {"type": "object"}
    if checked.get("additionalProperties") is False and "additionalProperties" not in served:
        # a tool declared by its signature is closed by carlang (calls pass only what it
        # names): the server's open object is the same tool
        checked = {k: v for k, v in checked.items() if k != "additionalProperties"}
    served = _one_mark(served)
    checked = _without_added_secret_marks(_one_mark(checked), served)
    return bool(schema_fingerprint(served) == schema_fingerprint(checked))


def _without_added_secret_marks(checked: Any, served: Any) -> Any:
    """The program's schema of a tool without the secret marks that the server's lacks at the
    same place (both with their marks made one, `_one_mark`): a parameter the program marks
    secret, where the server does not, is the same tool with its value kept out of more
    (every call failed as "changed"; and a server that drops a mark is kept out as before:
    what carlang hides follows the program). A mark the server has and the program lacks
    still counts as a change."""
    if isinstance(checked, Mapping):
        other = served if isinstance(served, Mapping) else {}
        out: dict[str, Any] = {}
        for key, value in checked.items():
            if key == "writeOnly" and other.get("writeOnly") is not True:
                continue
            inner = other.get(key)
            if key in NAMED_SCHEMAS and isinstance(value, Mapping):
                named = inner if isinstance(inner, Mapping) else {}
                out[key] = {
                    name: _without_added_secret_marks(sub, named.get(name))
                    for name, sub in value.items()
                }
            else:
                out[key] = _without_added_secret_marks(value, inner)
        return out
    if isinstance(checked, list):
        others = served if isinstance(served, list) else []
        return [
            _without_added_secret_marks(v, others[i] if i < len(others) else None)
            for i, v in enumerate(checked)
        ]
    return checked


def _one_mark(schema: Any) -> Any:
    """`schema` with its secret marks made one: `writeOnly: true` wherever `writeOnly` or
    `x-carlang-secret` is true, neither where none is (a `writeOnly: false` marks nothing):
    the server's mark and the program's may be either, and mean the same."""
    if isinstance(schema, Mapping):
        out: dict[str, Any] = {}
        secret = is_secret_schema(schema)
        for key, value in schema.items():
            if key in SECRET_MARKS and isinstance(value, bool):
                continue
            if key in NAMED_SCHEMAS and isinstance(value, Mapping):
                out[key] = {name: _one_mark(sub) for name, sub in value.items()}
            else:
                out[key] = _one_mark(value)
        if secret:
            out["writeOnly"] = True
        return out
    if isinstance(schema, list):
        return [_one_mark(v) for v in schema]
    return schema


def result_text(result: Mapping[str, Any]) -> str:
    """The text content of a `tools/call` result, blocks joined by newlines."""
    parts = [
        str(block.get("text", ""))
        for block in result.get("content") or []
        if isinstance(block, Mapping) and block.get("type") == "text"
    ]
    return "\n".join(parts)


def output_of(result: Mapping[str, Any]) -> Any:
    """A successful call's output: `structuredContent`, else its text, else its content."""
    if result.get("structuredContent") is not None:
        return result["structuredContent"]
    text = result_text(result)
    if text or not result.get("content"):
        return text
    return result["content"]


class McpSessions:
    """The MCP sessions of one runtime (or of one client of the proxy), one per server. Once
    closed, it starts none again: a call still on its way (in a worker thread) fails instead
    of starting a server nobody would stop."""

    def __init__(
        self,
        servers: Iterable[McpServer],
        *,
        stderr: Any = None,
        keep_out: Iterable[Any] = (),
        whose: str = "",
        redactions: Iterable[SecretPath] = (),
    ) -> None:
        """`stderr`: where the servers' standard error goes, each line labelled with its
        server's name and `whose` (`[time session 3f2a9c1e0b7d]`); `keep_out`: the host's
        secrets, kept out of it (and of what the servers say) as each server's own are;
        `redactions`: the program's `redact` paths, whose values in a call's arguments are
        kept out of it too, as a secret parameter's are (a server may log what it is sent)."""
        import subprocess

        self.servers = {s.name: s for s in servers}
        self.stderr = subprocess.DEVNULL if stderr is None else stderr
        self.keep_out = tuple(keep_out)
        self.redactions = tuple(redactions)
        self.whose = whose
        self._clients: dict[str, McpClient] = {}
        self._live: dict[str, dict[str, dict[str, Any]]] = {}
        self._stale: set[str] = set()
        #: Guards the dicts here, held for moments only: never while a server starts.
        self._lock = threading.Lock()
        #: Each server being started, once, in a thread of its own: its future (which every
        #: caller waits on: the event loop without a worker thread held) and its session,
        #: which `close` stops too (the start then fails at once instead of running out its
        #: timeout: Ctrl-C does not wait for it).
        self._starting: dict[str, tuple[concurrent.futures.Future[McpClient], McpClient]] = {}
        #: How many calls of the event loop wait on each server's start (`session`).
        self._waiters: collections.Counter[str] = collections.Counter()
        self._closed = False
        #: (server, tool) -> the pinning verdict against the server's current list
        self._verdicts: dict[tuple[str, str], str | None] = {}

    def client(self, name: str) -> McpClient:
        """The session with server `name`, started (and its tools listed) on first use. It
        blocks while the server starts: a worker thread's call; the event loop awaits
        `session`."""
        found = self._usable(name)
        return found if found is not None else self._start_future(name).result()

    async def session(self, name: str) -> McpClient:
        """`client` for the event loop: a start in progress is awaited, holding no worker
        thread. When the last call waiting on it is cancelled (Ctrl-C, the run stopped), the
        start is stopped: nothing waits out its timeout for a server no one wants any more."""
        found = self._usable(name)
        if found is not None:
            return found
        future = self._start_future(name)
        self._waiters[name] += 1
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if self._waiters[name] == 1:
                await asyncio.shield(asyncio.to_thread(self._stop_start, name, future))
            raise
        finally:
            self._waiters[name] -= 1

    def _usable(self, name: str) -> McpClient | None:
        """The live session with server `name`, if there is one; an error once closed."""
        with self._lock:
            if self._closed:
                raise McpError(f"MCP server '{name}': the session was closed")
            found = self._clients.get(name)
            return found if found is not None and found.alive else None

    def _start_future(self, name: str) -> concurrent.futures.Future[McpClient]:
        """The future of server `name`'s session: the start in progress, else a new one in
        a thread of its own (a live session's, done, when one appeared meanwhile)."""
        with self._lock:
            if self._closed:
                raise McpError(f"MCP server '{name}': the session was closed")
            future: concurrent.futures.Future[McpClient] = concurrent.futures.Future()
            found = self._clients.get(name)
            if found is not None and found.alive:
                future.set_result(found)
                return future
            if name in self._starting:
                return self._starting[name][0]
            server = self.servers.get(name)
            if server is None:
                raise McpError(f"no MCP server '{name}' is declared")
            label = f"[{name}{' ' if self.whose else ''}{self.whose}]"
            client = McpClient(server, stderr=self.stderr, keep_out=self.keep_out, label=label)
            client.on_notification = lambda method, _params: self._notified(name, method)
            future.set_running_or_notify_cancel()  # (a waiter cannot cancel it: only stop it)
            self._starting[name] = (future, client)
        thread = threading.Thread(
            target=self._start, args=(name, server, client, future), name=f"mcp-start-{name}"
        )
        thread.start()
        return future

    def _start(
        self,
        name: str,
        server: McpServer,
        client: McpClient,
        future: concurrent.futures.Future[McpClient],
    ) -> None:
        """Start `client`, the session with `server`, and settle `future` with it or with
        why it could not start."""
        limit = _start_timeout(server)
        try:
            try:
                client.start(limit)
            except TimeoutError:
                said = client.said()
                raise McpError(
                    client.scrubbed(_not_started(client.where, server, limit)) + said
                ) from None
            with self._lock:
                closed = self._closed
                if not closed:
                    self._clients[name] = client
                    self._stale.add(name)
            if closed:  # (closed while it started: nobody would stop it)
                raise McpError(f"MCP server '{name}': the session was closed")
        except BaseException as exc:  # noqa: BLE001 - every failure is the waiters' to see
            client.close()
            future.set_exception(exc)
        else:
            future.set_result(client)
        finally:
            with self._lock:
                self._starting.pop(name, None)

    def stop_starting(self) -> None:
        """Stop every start in progress, each in a thread of its own (this returns at once):
        whoever waits on one hears at once that the session was closed, rather than after the
        server's start timeout. The sessions that started stay as they are."""
        with self._lock:
            starting = [client for _, client in self._starting.values()]
        for client in starting:
            threading.Thread(target=client.close, name="mcp-stop-start").start()

    def _stop_start(self, name: str, future: concurrent.futures.Future[McpClient]) -> None:
        """Stop server `name`'s start of `future`, if it still runs."""
        with self._lock:
            entry = self._starting.get(name)
        if entry is not None and entry[0] is future:
            entry[1].close()

    def _notified(self, server: str, method: str) -> None:
        if method == "notifications/tools/list_changed":
            self._stale.add(server)

    def fresh(self, name: str) -> bool:
        """Whether the server's listed tools are known and still current (its session alive,
        no list_changed since)."""
        client = self._clients.get(name)
        return (
            client is not None and client.alive and name in self._live and name not in self._stale
        )

    def live_tools(self, name: str) -> dict[str, dict[str, Any]]:
        """The server's tools by name, as it lists them now (listed again after it said its
        list changed)."""
        client = self.client(name)
        if name in self._stale or name not in self._live:
            limit = _start_timeout(self.servers[name])
            try:
                listed = client.list_tools(limit)
            except TimeoutError:
                raise McpError(
                    f"{client.where} did not list its tools within {limit:g}s{client.said()}"
                ) from None
            self._live[name] = {t["name"]: t for t in listed}
            self._stale.discard(name)
            for key in [k for k in self._verdicts if k[0] == name]:
                del self._verdicts[key]
        return self._live[name]

    def pinning_problem(self, schema: ToolSchema) -> str | None:
        """Why the server's live tool is not the one the program was checked against."""
        assert schema.mcp is not None
        server, remote = schema.mcp.server, schema.mcp.tool
        live = self.live_tools(server).get(remote)
        if live is None:
            return (
                f"MCP server '{server}' no longer lists tool '{remote}'; the plan was checked"
                " against a tool that is gone (re-import it: carlang mcp import)"
            )
        if not same_tool_schema(schema.parameters, live.get("inputSchema") or {}):
            return (
                f"MCP server '{server}' changed the schema of tool '{remote}' since the program"
                " was checked; the plan was verified against another tool (re-import it:"
                " carlang mcp import)"
            )
        return None

    def tool_function(self, schema: ToolSchema, *, raw: bool = False) -> Callable[..., Any]:
        """The async function the runtime calls for an MCP-bound tool. It returns the call's
        output, or with `raw` the server's whole result (`content`, `structuredContent`), as
        a proxy passes it on."""
        assert schema.mcp is not None
        server_name, remote = schema.mcp.server, schema.mcp.tool
        server = self.servers[server_name]
        limit = server.timeout_ms / 1000.0 if server.timeout_ms else None
        secret = (*secret_paths(schema.parameters), *self.redactions)

        async def call_mcp_tool(**arguments: Any) -> Any:
            key = (server_name, remote)
            client = await self.session(server_name)  # (its start awaited on the loop)
            if key in self._verdicts and self.fresh(server_name):
                problem = self._verdicts[key]  # the list has not changed since: same verdict
            else:
                problem = await asyncio.to_thread(self.pinning_problem, schema)
                self._verdicts[key] = problem
            if problem is not None:
                raise ToolError(problem)
            if not client.alive:  # (it stopped meanwhile: started again)
                client = await self.session(server_name)
            if secret:
                client.keep_out(secret_values(arguments, secret))
            future = client.request("tools/call", {"name": remote, "arguments": arguments})
            try:
                result = await asyncio.wait_for(asyncio.wrap_future(future), limit)
            except TimeoutError:
                client.cancel(future, f"timed out after {limit:g}s")
                raise ToolError(
                    f"MCP tool '{remote}' on '{server_name}' timed out after {limit:g}s"
                    " (the server was sent notifications/cancelled)"
                ) from None
            except asyncio.CancelledError:
                client.cancel(future, "cancelled by carlang (timeout or cancellation)")
                raise
            if result.get("isError"):
                said = result_text(result) or json.dumps(result.get("content"))
                raise ToolError(client.scrubbed(said))
            # (what the server said, its result as its errors, holds none of its own secrets)
            if raw:
                kept = {k: v for k, v in result.items() if k in ("content", "structuredContent")}
                return client.scrubbed_value(kept)
            return client.scrubbed_value(output_of(result))

        call_mcp_tool.__doc__ = f"Calls tool '{remote}' on MCP server '{server_name}'."
        return call_mcp_tool

    def close(self) -> None:
        """End every session, those still starting too; none starts again."""
        with self._lock:
            self._closed = True
            clients = [*self._clients.values(), *(c for _, c in self._starting.values())]
            self._clients = {}
        for client in clients:
            client.close()


#: Seconds a server has to answer `initialize` (and `tools/list`) when it declares no
#: `timeout`.
START_TIMEOUT = 30.0


def _start_timeout(server: McpServer) -> float:
    """How long the server has to start: its `timeout` when it declares one."""
    return server.timeout_ms / 1000.0 if server.timeout_ms else START_TIMEOUT


def _not_started(where: str, server: McpServer, limit: float) -> str:
    """Why a server that never answered `initialize` could not be used, and what to check."""
    whose = "its timeout" if server.timeout_ms else "the default; set its `timeout` to change it"
    return f"{where} did not answer initialize within {limit:g}s ({whose}): {what_to_check(server)}"


def what_to_check(server: McpServer) -> str:
    """What to check of a server that does not answer: its URL is an MCP endpoint that is up,
    or its command starts an MCP server on stdio."""
    if server.url is not None:
        return "check that the URL is an MCP server's Streamable HTTP endpoint and that it is up"
    command = " ".join([server.command or "", *server.args]).strip()
    return (
        f"check that its command (`{command}`) starts an MCP server speaking JSON-RPC on its"
        " standard input and output"
    )


def attach_mcp_servers(runtime: Any, program: Program, *, stderr: Any = None) -> McpSessions:
    """Implement every MCP-bound tool of `program` in `runtime` by its server; the sessions
    start on first use and close with the runtime."""
    redactions = [redaction_path(path) for path in program.redactions]
    sessions = McpSessions(program.mcp_servers, stderr=stderr, redactions=redactions)
    for schema in program.tools:
        if schema.mcp is not None and schema.mcp.server in sessions.servers:
            runtime.register_tool(schema.name, sessions.tool_function(schema), schema)
    runtime.on_close(sessions.close)
    return sessions
