"""What `carlang mcp proxy` keeps per client session, without starting a server (their
commands do not exist, their URLs answer nothing): each client's runs have a scope naming its
session and no tenant, so that the runtime's caches are its own; `max_sessions` counts the
client sessions with servers carlang starts for them (-32000 past it, until one ends); an
MCP-bound tool called from no client session is refused; a closed set of server sessions
starts no server again. (The same with real servers and the SDK's client over HTTP:
test_proxy_clients.py.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from carlang_runtime.engine import Runtime
from carlang_runtime.errors import CarlangRuntimeError
from carlang_runtime.ir import ActionStatus
from carlang_runtime.mcp import McpError, McpSessions
from carlang_runtime.mcp.proxy import PolicyProxy, ProxyBusy, StdioSession
from typer.testing import CliRunner

from carlang.cli import app
from carlang.compiler import compile_text
from tests.mcp.conftest import initialize

runner = CliRunner()

PROGRAM = """
mcp_server here {
  command "no-such-mcp-server-here"
}
mcp_server there {
  url "http://127.0.0.1:9/mcp"
}
tool here.add(a: int) -> int { description "add" }
tool there.add(a: int) -> int { description "add" }
capability agent { tools allow here.add, there.add }
"""


@pytest.fixture
def runtime(tmp_path: Path) -> Any:
    result = compile_text(PROGRAM, root=tmp_path)
    errors = [d for d in result.diagnostics.items if d.severity == "error"]
    assert not errors and result.program is not None, errors
    runtime = Runtime.from_program(result.program)
    runtime.program = result.program  # type: ignore[attr-defined]
    yield runtime
    runtime.close()


def _proxy(runtime: Any, **options: Any) -> PolicyProxy:
    return PolicyProxy(runtime.program, runtime, capability="agent", **options)


class _Client:
    """A client over stdio (carlang's own server side), its answers by id."""

    def __init__(self, proxy: PolicyProxy) -> None:
        self.answers: dict[Any, dict[str, Any]] = {}
        self.session = StdioSession(proxy, self._written)
        self.session.receive(initialize(0))
        self.ids = iter(range(1, 1000))

    def _written(self, data: bytes) -> None:
        message = json.loads(data)
        self.answers[message.get("id")] = message

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        request_id = next(self.ids)
        params = {"name": tool, "arguments": arguments}
        self.session.receive(
            {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
        )
        while request_id not in self.answers:
            await asyncio.sleep(0.001)
        return self.answers[request_id]


def _said(answer: dict[str, Any]) -> str:
    return str(answer["result"]["content"][0]["text"])


def test_each_clients_runs_have_a_scope_of_their_own_and_no_tenant(runtime: Any) -> None:
    proxy = _proxy(runtime)

    async def scenario() -> None:
        first, second = _Client(proxy), _Client(proxy)
        for client in (first, second, first):
            answer = await client.call("here.add", a=1)
            assert "cannot start no-such-mcp-server-here" in _said(answer), answer

    asyncio.run(scenario())
    started = [e.data for e in runtime.events if e.kind == "run_started"]
    assert len(started) == 3
    for data in started:
        assert data["scope"] == {"mcp_session": data["session"]}  # (no tenant: shared state)
    assert started[0]["session"] == started[2]["session"] != started[1]["session"]


def test_max_sessions_counts_the_clients_with_servers_carlang_starts(
    runtime: Any, tmp_path: Path
) -> None:
    stderr = (tmp_path / "stderr.txt").open("w")
    proxy = _proxy(runtime, max_sessions=1, stderr=stderr)

    async def scenario() -> None:
        first, second = _Client(proxy), _Client(proxy)
        # a server reached by URL starts no process: no place is taken for it
        assert "isError" in (await second.call("there.add", a=1))["result"]
        assert "cannot start" in _said(await first.call("here.add", a=1))  # its place
        assert "cannot start" in _said(await first.call("here.add", a=2))  # still its own
        for n in range(2):
            busy = await second.call("here.add", a=n)
            assert "result" not in busy and busy["error"]["code"] == -32000, busy
            said = busy["error"]["message"]
            assert "--max-sessions 1" in said and "here.add was not called" in said, said
        await first.session.finish()
        proxy.forget(first.session)  # the first client is gone: its place is free
        assert "cannot start" in _said(await second.call("here.add", a=3))
        third = _Client(proxy)
        assert (await third.call("here.add", a=4))["error"]["code"] == -32000

    with stderr:
        asyncio.run(scenario())
    # the refusals ran nothing: only the calls that were let in are in the event log
    assert sum(e.kind == "run_started" for e in runtime.events) == 4
    warned = [line for line in (tmp_path / "stderr.txt").read_text().splitlines() if line]
    assert len(warned) == 2 and all("--max-sessions 1" in w for w in warned), warned


def test_max_sessions_is_at_least_one(runtime: Any) -> None:
    with pytest.raises(CarlangRuntimeError, match="at least 1"):
        _proxy(runtime, max_sessions=0)
    with pytest.raises(CarlangRuntimeError, match="max_sessions_per_tenant must be at least 1"):
        _proxy(runtime, max_sessions_per_tenant=0)


def test_one_tenant_cannot_take_every_place(runtime: Any, tmp_path: Path) -> None:
    stderr = (tmp_path / "stderr.txt").open("w")
    proxy = _proxy(runtime, max_sessions=3, max_sessions_per_tenant=2, stderr=stderr)
    proxy.tenanted = True
    sessions = {name: object() for name in ("a1", "a2", "a3", "b1", "b2")}

    async def call(session: str, tenant: str) -> dict[str, Any]:
        return await proxy.call_tool(sessions[session], "here.add", {"a": 1}, tenant=tenant)

    async def scenario() -> None:
        for session in ("a1", "a2"):
            assert "cannot start" in _said_of(await call(session, "acme"))
        for _ in range(2):  # acme's third session: its tenant's two places are taken
            with pytest.raises(ProxyBusy, match="--max-sessions-per-tenant 2") as busy:
                await call("a3", "acme")
            assert "here.add was not called" in str(busy.value)
        # a place is left for globex, and past it the proxy's own limit speaks
        assert "cannot start" in _said_of(await call("b1", "globex"))
        with pytest.raises(ProxyBusy, match="--max-sessions 3"):
            await call("b2", "globex")
        await proxy.end(sessions["a1"])  # one of acme's ends: acme's third may start
        assert "cannot start" in _said_of(await call("a3", "acme"))
        with pytest.raises(ProxyBusy, match="--max-sessions-per-tenant 2"):
            await call("a1", "acme")  # (a new session: the old one ended)

    with stderr:
        asyncio.run(scenario())
    warned = [line for line in (tmp_path / "stderr.txt").read_text().splitlines() if line]
    assert len(warned) == 3, warned  # acme's limit (twice: it ended one), the proxy's once
    assert sum("tenant 'acme'" in w and "--max-sessions-per-tenant 2" in w for w in warned) == 2
    # the refusals ran nothing: the log has the five calls let in
    assert sum(e.kind == "run_started" for e in runtime.events) == 4


def _said_of(result: dict[str, Any]) -> str:
    return str(result["content"][0]["text"])


def test_a_tool_called_from_no_client_session_is_refused(runtime: Any) -> None:
    _proxy(runtime)
    proposal = {
        "id": "p",
        "source": "test",
        "actions": [{"id": "a", "type": "tool_call", "tool": "here.add", "parameters": {"a": 1}}],
    }
    (outcome,) = runtime.execute(proposal).results
    assert outcome.status is ActionStatus.FAILED
    assert "outside an MCP client's session" in (outcome.error or ""), outcome.error


def test_closed_server_sessions_start_no_server_again(runtime: Any) -> None:
    sessions = McpSessions(runtime.program.mcp_servers)
    sessions.close()
    with pytest.raises(McpError, match="the session was closed"):
        sessions.client("here")


@pytest.mark.parametrize(
    "option",
    [["--max-sessions", "4"], ["--max-sessions-per-tenant", "2"], ["--idle-timeout", "60"]],
)
def test_the_session_limits_are_for_http(tmp_path: Path, option: list[str]) -> None:
    path = tmp_path / "p.car"
    path.write_text(PROGRAM)
    result = runner.invoke(app, ["mcp", "proxy", str(path), *option])
    assert result.exit_code == 2
    assert f"{option[0]} is for --transport http" in result.output, result.output
