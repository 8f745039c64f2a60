"""MCP-bound tools at run time, against the toy server (the official SDK's FastMCP) and the
real mcp-server-time: import, check, fmt, run, errors, timeouts with cancellation, pinning,
Streamable HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from carlang_runtime.engine import Runtime
from carlang_runtime.ir import ActionStatus
from carlang_runtime.mcp import attach_mcp_servers
from typer.testing import CliRunner

from carlang.cli import app
from carlang.compiler import compile_file
from tests.mcp.conftest import free_port, needs_sdk, server_command, toy_command, wait_for_port

runner = CliRunner()
pytestmark = needs_sdk

PLAN = """
proposal sums {
  one = toy.add(a: 2, b: 3)
  two = toy.echo_text(text: "hi") after one
  three = toy.fail(message: "boom") after two { on_failure skip }
}
"""


def _import(tmp_path: Path, command: list[str], name: str) -> Path:
    out = tmp_path / f"{name}.car"
    result = runner.invoke(app, ["mcp", "import", "--name", name, "-o", str(out), "--", *command])
    assert result.exit_code == 0, result.output
    return out


def _program(path: Path, extra: str) -> object:
    path.write_text(path.read_text() + extra)
    result = compile_file(path, path.parent)
    errors = [d for d in result.diagnostics.items if d.severity == "error"]
    assert not errors, errors
    return result.program


@pytest.fixture(scope="module")
def toy_car(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("toy")
    path = _import(tmp, toy_command(), "toy")
    check = runner.invoke(app, ["check", str(path)])
    assert check.exit_code == 0 and "0 errors, 0 warnings" in check.output
    assert runner.invoke(app, ["fmt", "--check", str(path)]).exit_code == 0
    return path.read_text()


def test_import_writes_every_tool_with_schema_and_sound_hints(toy_car: str) -> None:
    assert 'command "' in toy_car and "toy_server.py" in toy_car
    assert "tool toy.add()" in toy_car and 'remote "echo-text"' in toy_car
    add = toy_car.split("tool toy.add()")[1].split("\n}\n")[0]
    assert "read_only" in add and "reversibility reversible" in add
    assert 'required: ["a", "b"]' in add
    assert "reversibility irreversible" in toy_car.split("tool toy.fail()")[1]


def test_a_plan_runs_through_the_server(tmp_path: Path, toy_car: str) -> None:
    path = tmp_path / "toy.car"
    path.write_text(toy_car)
    program = _program(path, PLAN)
    with Runtime.from_program(program) as runtime:
        sessions = attach_mcp_servers(runtime, program)  # from_program did it too: this wins
        result = runtime.execute(program.proposals[0])
        again = runtime.execute(program.proposals[0])
        assert len(sessions._clients) == 1  # one session per server per runtime
        client = next(iter(sessions._clients.values()))
    by_id = {r.action_id: r for r in result.results}
    assert by_id["one"].status is ActionStatus.SUCCEEDED
    assert by_id["one"].output == {"result": 5}  # structuredContent
    assert by_id["two"].output == {"result": "hi"}  # structuredContent (FastMCP wraps str)
    assert by_id["three"].status is ActionStatus.SKIPPED
    assert "boom" in (by_id["three"].error or "")
    assert [r.status for r in again.results] == [r.status for r in result.results]
    assert not client.alive  # closed with the runtime


@pytest.mark.slow
def test_a_timeout_cancels_the_call_on_the_server(tmp_path: Path, toy_car: str) -> None:
    """(5 s: the timeout bounds the server's start too, and importing the SDK's FastMCP
    alone took the toy 1.2-1.5 s on a loaded CI machine, past the 1 s this test gave it.)"""
    marker = tmp_path / "cancelled.txt"
    text = toy_car.replace(
        "mcp_server toy {",
        f'mcp_server toy {{\n  timeout 5s\n  env {{ TOY_CANCELLED: "{marker}" }}',
    )
    path = tmp_path / "toy.car"
    path.write_text(text)
    program = _program(path, "proposal nap { z = toy.slow(seconds: 30) }")
    started = time.monotonic()
    with Runtime.from_program(program) as runtime:  # MCP-bound tools attached by from_program
        result = runtime.execute(program.proposals[0])
        (outcome,) = result.results
        assert outcome.status is ActionStatus.FAILED
        assert "timed out after 5s (the server was sent notifications/cancelled)" in (
            outcome.error or ""
        )
        deadline = time.monotonic() + 5
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert marker.read_text() == "cancelled\n"
    assert time.monotonic() - started < 15


def test_a_changed_schema_fails_the_call(tmp_path: Path, toy_car: str) -> None:
    text = toy_car.replace("mcp_server toy {", 'mcp_server toy {\n  env { TOY_SCHEMA: "2" }')
    path = tmp_path / "toy.car"
    path.write_text(text)
    program = _program(path, PLAN)
    with Runtime.from_program(program) as runtime:
        attach_mcp_servers(runtime, program)
        result = runtime.execute(program.proposals[0])
    first = result.results[0]
    assert first.status is ActionStatus.FAILED
    assert "changed the schema of tool 'add' since the program was checked" in (first.error or "")
    # a description-only difference is not a change: echo-text still runs in the same session
    assert "verified against another tool" in (first.error or "")


@pytest.fixture
def http_toy() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [*toy_command(), "--http", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, 20)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.slow
def test_streamable_http_server(tmp_path: Path, http_toy: str) -> None:
    out = tmp_path / "toy.car"
    result = runner.invoke(
        app, ["mcp", "import", "--url", http_toy, "--name", "toy", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert f'url "{http_toy}"' in out.read_text()
    program = _program(out, PLAN)
    with Runtime.from_program(program) as runtime:
        attach_mcp_servers(runtime, program)
        outcome = runtime.execute(program.proposals[0])
    assert [r.status for r in outcome.results] == [
        ActionStatus.SUCCEEDED,
        ActionStatus.SUCCEEDED,
        ActionStatus.SKIPPED,
    ]
    assert outcome.results[0].output == {"result": 5}


@pytest.mark.slow
def test_mcp_server_time_import_check_and_run(tmp_path: Path) -> None:
    path = _import(
        tmp_path, [*server_command("mcp-server-time"), "--local-timezone", "UTC"], "time"
    )
    assert runner.invoke(app, ["fmt", "--check", str(path)]).exit_code == 0
    policy = """
policy no_tokyo: deny time.get_current_time when params.timezone == "Asia/Tokyo"
  message "not Tokyo"
"""
    denied = tmp_path / "denied.car"
    denied.write_text(
        path.read_text()
        + policy
        + 'proposal p { t = time.get_current_time(timezone: "Asia/Tokyo") }'
    )
    check = runner.invoke(app, ["check", str(denied)])
    assert check.exit_code == 1 and "will be denied by no_tokyo: not Tokyo" in check.output
    path.write_text(
        path.read_text() + policy + 'proposal now { utc = time.get_current_time(timezone: "UTC") }'
    )
    run = runner.invoke(app, ["run", str(path), "--format", "json"])
    assert run.exit_code == 0, run.output
    (result,) = json.loads(run.stdout)["result"]["results"]
    assert result["status"] == "succeeded"
    assert json.loads(result["output"])["timezone"] == "UTC"  # the server's text content


def test_a_tool_whose_schema_cannot_be_used_is_left_out_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The imported file always passes `carlang check`: a tool whose input schema no
    validator can use (a `$ref` to nowhere) is left out, with a comment and a warning."""
    monkeypatch.setenv("TOY_BROKEN", "1")
    out = tmp_path / "toy.car"
    result = runner.invoke(
        app,
        ["mcp", "import", "--name", "toy", "--env", "TOY_BROKEN", "-o", str(out)]
        + ["--", *toy_command()],
    )
    assert result.exit_code == 0, result.output
    assert "warning: tool `broken` not imported: its input schema is not usable: `$ref`" in (
        result.stderr
    )
    assert "with 4 tools" in result.stderr
    text = out.read_text()
    assert "# not imported: `broken`: its input schema is not usable" in text
    assert "tool toy.broken" not in text and "tool toy.add" in text
    # --env passes the variable by name: the file holds the reference, never the value
    assert 'env { TOY_BROKEN: "${TOY_BROKEN}" }' in text
    check = runner.invoke(app, ["check", str(out)])
    assert check.exit_code == 0 and "0 errors" in check.output


def test_import_usage_errors(tmp_path: Path) -> None:
    neither = runner.invoke(app, ["mcp", "import"])
    assert neither.exit_code == 2 and "give the server's command" in neither.output
    bad_env = runner.invoke(app, ["mcp", "import", "--env", "A-B", "--", *toy_command()])
    assert bad_env.exit_code == 2 and "--env A-B: give the name of an environment" in (
        bad_env.output
    )
    far = runner.invoke(app, ["mcp", "import", "--url", "http://example.com/mcp"])
    assert far.exit_code == 2 and "must be on this machine" in far.output
    missing = runner.invoke(app, ["mcp", "import", "--", "/no/such/server"])
    assert missing.exit_code == 2 and "cannot start /no/such/server" in missing.output
    gone = runner.invoke(app, ["mcp", "import", "--", sys.executable, "-c", "pass"])
    assert gone.exit_code == 2 and "exited" in gone.output


SLOW_SERVER = """
import json, sys, time
for line in sys.stdin:
    message = json.loads(line)
    if "id" not in message:
        continue
    time.sleep(1.0)
    result = {"tools": []}
    if message["method"] == "initialize":
        result = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                  "serverInfo": {"name": "slow", "version": "1"}}
    print(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}), flush=True)
"""


@pytest.mark.slow
def test_import_timeout_bounds_starting_and_listing_together() -> None:
    """`--timeout 1.5` is the whole wait: a server that takes 1 s to start and 1 s to list
    is too slow (each step alone was given the full timeout, so it took twice as long)."""
    done = runner.invoke(
        app, ["mcp", "import", "--timeout", "1.5", "--", sys.executable, "-c", SLOW_SERVER]
    )
    assert done.exit_code == 2 and "did not answer within 1.5s" in done.output, done.output


@pytest.mark.slow
def test_import_says_what_a_failing_server_said() -> None:
    """A server that dies at start, or writes something other than MCP to stdout: the error
    carries its own words (its stderr's end, or the stray stdout line)."""
    dying = "import sys; print('boom: no API key set', file=sys.stderr); sys.exit(2)"
    done = runner.invoke(app, ["mcp", "import", "--", sys.executable, "-c", dying])
    assert done.exit_code == 2
    assert "exited (status 2); it said: boom: no API key set" in done.output
    chatty = "import sys, time; print('hello, not MCP', flush=True); time.sleep(30)"
    done = runner.invoke(
        app, ["mcp", "import", "--timeout", "2", "--", sys.executable, "-c", chatty]
    )
    assert done.exit_code == 2
    said = " ".join(done.output.split())
    assert "did not answer within 2s (--timeout): check that its command (`" in said
    assert "starts an MCP server speaking JSON-RPC on its standard input and output" in said
    assert said.endswith("; it wrote, where MCP messages go: 'hello, not MCP'")


@pytest.mark.slow
def test_a_server_that_answers_initialize_with_an_error_is_named() -> None:
    """A trial: `error: database is down`, naming neither the server nor what failed; and
    for `cat`, carlang's own refusal echoed back: `error: carlang does not serve initialize`."""
    refusing = (
        "import sys, json\n"
        "for line in sys.stdin:\n"
        "    m = json.loads(line)\n"
        "    if m.get('id') is not None:\n"
        "        e = {'code': -32603, 'message': 'database is down'}\n"
        "        print(json.dumps({'jsonrpc': '2.0', 'id': m['id'], 'error': e}), flush=True)\n"
    )
    done = runner.invoke(app, ["mcp", "import", "--", sys.executable, "-c", refusing])
    assert done.exit_code == 2
    said = done.output.strip()
    assert said.startswith("error: MCP server '")
    assert "answered initialize with an error: database is down (is `" in said
    assert said.endswith("` an MCP server?)")
    # the command shown holds none of the server's secrets, even one that quoting would
    # split (a review: `'` is quoted as '"'"', and the pieces were not found)
    from carlang_runtime.ir import McpServer
    from carlang_runtime.mcp import McpClient, McpError

    secret = "it's-SECRET-77"
    server = McpServer(
        name="db",
        command=sys.executable,
        args=["-W", secret, "-c", refusing],  # (an ignored warning filter: shown first)
        env={"KEY": secret},
    )
    client = McpClient(server)
    try:
        with pytest.raises(McpError) as caught:
            client.start(30)
    finally:
        client.close()
    assert "SECRET" not in str(caught.value) and "[REDACTED]" in str(caught.value)


def test_a_secret_mark_a_server_drops_is_a_changed_schema() -> None:
    """`writeOnly` is an annotation to JSON Schema, but to carlang it hides a value from every
    log: a server that stops marking a parameter secret has changed what was checked."""
    from carlang_runtime.mcp.provider import schema_fingerprint

    marked = {"type": "object", "properties": {"key": {"type": "string", "writeOnly": True}}}
    plain = {"type": "object", "properties": {"key": {"type": "string"}}}
    assert schema_fingerprint(marked) != schema_fingerprint(plain)
    described = {"type": "object", "properties": {"key": {"type": "string", "title": "K"}}}
    assert schema_fingerprint(described) == schema_fingerprint(plain)


@pytest.mark.parametrize(
    ("program", "server", "same"),
    [
        ({"writeOnly": True}, {}, True),  # the program hides more: the same tool
        ({"writeOnly": True}, {"writeOnly": False}, True),  # (false marks nothing)
        ({"writeOnly": True}, {"x-carlang-secret": True}, True),  # one flag, two spellings
        ({"x-carlang-secret": True}, {"writeOnly": True}, True),
        ({}, {"writeOnly": True}, False),  # the server hides what the program shows: changed
        ({}, {"x-carlang-secret": True}, False),
    ],
)
def test_secret_marks_in_schema_pinning(
    program: dict[str, Any], server: dict[str, Any], same: bool
) -> None:
    """A review: `writeOnly: false` on the server's side, or its `x-carlang-secret` where the
    program (whose compiler writes `writeOnly`) marks the parameter too, failed every call
    as a changed tool."""
    from carlang_runtime.mcp.provider import same_tool_schema

    def schema(marks: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "properties": {"pin": {"type": "string", **marks}}}

    assert same_tool_schema(schema(program), schema(server)) is same


def test_a_bad_server_url_is_shown_without_its_password(tmp_path: Path) -> None:
    text = 'mcp_server fs { url "ftp://user:hunter2@localhost/mcp" }\n'
    result = compile_file(_write(tmp_path, text), tmp_path)
    shown = "\n".join(d.message for d in result.diagnostics.items)
    assert "is not an http:// URL" in shown and "hunter2" not in shown
    # an IPv6 address left open: urllib raises, which was an internal error
    result = compile_file(
        _write(tmp_path, 'mcp_server s { url "http://[::1:8000/mcp" }\n'), tmp_path
    )
    assert [d.code for d in result.diagnostics.items] == ["CL0220"]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.car"
    path.write_text(text)
    return path


def test_a_servers_error_does_not_show_its_own_secrets(tmp_path: Path, toy_car: str) -> None:
    """The server's environment holds its key; its error quotes it (`invalid key ...`): the
    action's error, which the event log and the terminal show, hides it."""
    text = toy_car.replace(
        "mcp_server toy {", 'mcp_server toy {\n  env { TOY_KEY: "sk-live-9f8e7d" }'
    )
    path = tmp_path / "toy.car"
    path.write_text(text)
    program = _program(path, 'proposal p { f = toy.fail(message: "invalid key sk-live-9f8e7d") }')
    with Runtime.from_program(program) as runtime:
        (outcome,) = runtime.execute(program.proposals[0]).results
    assert outcome.status is ActionStatus.FAILED
    assert "invalid key" in (outcome.error or "") and "sk-live-9f8e7d" not in (outcome.error or "")


def test_a_tool_declared_by_its_signature_is_the_servers_open_tool(
    tmp_path: Path, toy_car: str
) -> None:
    """A signature compiles to a closed object (`additionalProperties: false`: calls pass
    only what it names); the server's tool, an open object with the same parameters, is the
    same tool: the call is made, not refused as a changed schema."""
    header = toy_car.split("\ntool ", 1)[0]  # the mcp_server declaration alone
    path = tmp_path / "signed.car"
    path.write_text(header + "\ntool toy.add(a: int, b: int)\n")
    program = _program(path, "proposal p { s = toy.add(a: 2, b: 3) }")
    (tool,) = [t for t in program.tools if t.name == "toy.add"]
    assert tool.parameters["additionalProperties"] is False
    with Runtime.from_program(program) as runtime:
        result = runtime.execute(program.proposals[0])
    (outcome,) = result.results
    assert outcome.status is ActionStatus.SUCCEEDED, outcome.error


@pytest.mark.slow
def test_a_server_that_never_answers_initialize_is_bounded_by_its_timeout(
    tmp_path: Path,
) -> None:
    """The server's `timeout` bounds its start too: one that never answers `initialize` was
    waited for 30 s whatever it declared, then failed the call with a bare `TimeoutError`.
    The error names the server, the wait and what to check."""
    from carlang_runtime.ir import McpServer
    from carlang_runtime.mcp import McpError
    from carlang_runtime.mcp.provider import McpSessions

    server = McpServer(
        name="hangy",
        command=sys.executable,
        args=["-c", "import time; time.sleep(60)"],
        timeout_ms=1000,
    )
    sessions = McpSessions([server])
    started = time.monotonic()
    try:
        with pytest.raises(McpError) as caught:
            sessions.client("hangy")
    finally:
        sessions.close()
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert message.startswith(
        "MCP server 'hangy' did not answer initialize within 1s (its timeout): check that its"
        f" command (`{sys.executable} -c import time; time.sleep(60)`) starts an MCP server"
    ), message


#: An MCP server with no tools capability (resources only): it answers tools/list -32601.
NO_TOOLS_SERVER = """
import anyio, mcp.server.stdio
from mcp.server.lowlevel import Server
s = Server("res-only")
@s.list_resources()
async def lr(): return []
async def main():
    async with mcp.server.stdio.stdio_server() as (r, w):
        await s.run(r, w, s.create_initialization_options())
anyio.run(main)
"""


@pytest.mark.slow
def test_a_server_without_tools_says_so_in_import_and_at_run_time(tmp_path: Path) -> None:
    """A server that serves no tools answers tools/list -32601: `carlang mcp import` and a
    call through the proxy said a bare `Method not found`."""
    from carlang_runtime.ir import McpServer
    from carlang_runtime.mcp import McpError
    from carlang_runtime.mcp.provider import McpSessions

    said = "MCP server 'res' does not serve tools (tools/list: method not found)"
    result = runner.invoke(
        app,
        ["mcp", "import", "--name", "res", "--timeout", "20", "--"]
        + [sys.executable, "-c", NO_TOOLS_SERVER],
    )
    assert result.exit_code == 2, result.output
    assert said in result.stderr, result.stderr
    server = McpServer(name="res", command=sys.executable, args=["-c", NO_TOOLS_SERVER])
    sessions = McpSessions([server])
    try:
        with pytest.raises(McpError, match=r"^MCP server 'res' does not serve tools \("):
            sessions.live_tools("res")
    finally:
        sessions.close()
