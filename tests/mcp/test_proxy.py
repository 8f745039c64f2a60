"""`carlang mcp proxy` with the official SDK client: tools/list filtered by the capability,
allowed calls answered by the server, denials as isError results with the policy, approvals
by elicitation, budgets and history per client session."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from typer.testing import CliRunner

from carlang.cli import app
from tests.conftest import ROOT
from tests.mcp.conftest import initialize, needs_sdk, toy_command, wait_for_port

# slow: a server as a subprocess per test (the default run stays under three minutes; CI
# runs these)
pytestmark = [needs_sdk, pytest.mark.slow]
runner = CliRunner()

POLICIES = """
capability safe { tools allow toy.add, toy.echo_text }
budget three { max_tool_calls 3 }
policy too_big: deny toy.add when params.a > 100
  message "a is too big"
policy ask_secret: require_approval toy.echo_text when params.text == "secret"
  message "secret text needs a person"
policy echo_once: deny toy.echo_text when history.exists(h, h.tool == "toy.echo_text" && h.status == "succeeded")
  message "one echo per session"
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}"}


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("proxy") / "toy.car"
    result = runner.invoke(
        app, ["mcp", "import", "--name", "toy", "-o", str(path), "--", *toy_command()]
    )
    assert result.exit_code == 0, result.output
    path.write_text(path.read_text() + POLICIES)
    assert runner.invoke(app, ["check", str(path)]).exit_code == 0
    return path


def _text(result: Any) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def _run(scenario: Callable[..., Awaitable[None]], *args: Any) -> None:
    anyio.run(scenario, *args)


async def _with_stdio_proxy(
    program: Path, extra: list[str], body: Callable[[Any], Awaitable[None]], elicit: Any = None
) -> None:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "carlang", "mcp", "proxy", str(program), *extra],
        env=_env(),
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, elicitation_callback=elicit) as session:
            await session.initialize()
            await body(session)


def test_proxy_lists_allowed_tools_and_enforces_policies(program: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"

    async def body(session: Any) -> None:
        listed = await session.list_tools()
        assert sorted(t.name for t in listed.tools) == ["toy.add", "toy.echo_text"]
        ok = await session.call_tool("toy.add", {"a": 2, "b": 3})
        assert not ok.isError and ok.structuredContent == {"result": 5}
        denied = await session.call_tool("toy.add", {"a": 200, "b": 1})
        assert denied.isError and "too_big" in _text(denied) and "a is too big" in _text(denied)
        assert "200" not in _text(denied)
        hidden = await session.call_tool("toy.fail", {"message": "x"})
        assert hidden.isError and _text(hidden) == "unknown tool 'toy.fail'"
        invalid = await session.call_tool("toy.add", {"a": "two", "b": 3})
        assert invalid.isError and "expected integer, got string (at /a)" in _text(invalid)
        asks = await session.call_tool("toy.echo_text", {"text": "secret"})
        assert asks.isError and "approval required" in _text(asks) and "ask_secret" in _text(asks)
        again = await session.call_tool("toy.echo_text", {"text": "hello"})
        assert not again.isError and again.structuredContent == {"result": "hello"}
        twice = await session.call_tool("toy.echo_text", {"text": "hello"})
        assert twice.isError and "echo_once: one echo per session" in _text(twice)

    _run(_with_stdio_proxy, program, ["--capability", "safe", "--events", str(events)], body)
    logged = events.read_text()
    assert '"policy_violation"' in logged and "too_big" in logged and '"action_succeeded"' in logged
    # the proxy's own refusal (a tool the client may not see) is logged like the others
    assert '"error": "unknown tool \'toy.fail\'"' in logged


def test_history_limit_trims_a_session_and_its_history_rules_fail_closed(program: Path) -> None:
    """`--history-limit N`: past N calls the first leave `history`, and `echo_once` then
    cannot be decided: it refuses, saying why, instead of forgetting the first echo."""

    async def body(session: Any) -> None:
        first = await session.call_tool("toy.echo_text", {"text": "hello"})
        assert not first.isError
        for _ in range(2):
            assert not (await session.call_tool("toy.add", {"a": 1, "b": 1})).isError
        again = await session.call_tool("toy.echo_text", {"text": "hello"})
        assert again.isError and "echo_once" in _text(again)
        assert "earlier call(s) of this session are no longer kept" in _text(again)

    _run(_with_stdio_proxy, program, ["--capability", "safe", "--history-limit", "2"], body)


def test_approval_by_elicitation_and_budget_per_session(program: Path, tmp_path: Path) -> None:
    import mcp.types as types

    events = tmp_path / "events.jsonl"

    asked: list[str] = []

    async def elicit(context: Any, params: Any) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": True})

    async def body(session: Any) -> None:
        approved = await session.call_tool("toy.echo_text", {"text": "secret"})
        assert not approved.isError, _text(approved)
        for n in range(2):
            assert not (await session.call_tool("toy.add", {"a": n, "b": 1})).isError
        spent = await session.call_tool("toy.add", {"a": 1, "b": 1})
        assert spent.isError and "budget 'three' is spent: 3 tool calls per session" in _text(spent)

    extra = ["--capability", "safe", "--budget", "three", "--events", str(events)]
    _run(_with_stdio_proxy, program, extra, body, elicit)
    assert len(asked) == 1 and "ask_secret" in asked[0]
    # the spent budget's refusal is in the log, under the budget the calls ran with
    assert "budget 'three' is spent: 3 tool calls per session" in events.read_text()
    assert '"budget": "three"' in events.read_text()


def test_an_approval_prompt_shows_no_redacted_value_and_a_no_says_so(
    program: Path, tmp_path: Path
) -> None:
    import mcp.types as types

    redacting = tmp_path / "redacting.car"
    redacting.write_text(program.read_text() + "redact params.text\n")
    asked: list[str] = []
    # a "no", then answers that are not the boolean `true` the schema asks for: all refusals
    answers = [
        types.ElicitResult(action="decline"),
        types.ElicitResult(action="accept", content={"approve": "false"}),
        types.ElicitResult(action="accept", content={"approve": "yes"}),
        types.ElicitResult(action="accept", content={}),
    ]

    async def elicit(context: Any, params: Any) -> types.ElicitResult:
        asked.append(params.message)
        return answers[len(asked) - 1]

    async def body(session: Any) -> None:
        refused = await session.call_tool("toy.echo_text", {"text": "secret"})
        assert refused.isError and "the MCP client's user declined it" in _text(refused)
        for _ in answers[1:]:
            refused = await session.call_tool("toy.echo_text", {"text": "secret"})
            assert refused.isError and "did not approve it" in _text(refused), _text(refused)

    _run(_with_stdio_proxy, redacting, ["--capability", "safe"], body, elicit)
    assert len(asked) == len(answers)
    prompt = asked[0]
    assert prompt.startswith('Approve toy.echo_text {"text": "[REDACTED]"}?'), prompt
    assert "secret text needs a person" in prompt and '"secret"' not in prompt


@pytest.mark.slow
def test_concurrent_http_clients_have_their_own_sessions(program: Path) -> None:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "carlang",
            "mcp",
            "proxy",
            str(program),
            "--capability",
            "safe",
            "--budget",
            "three",
            "--transport",
            "http",
            "--port",
            "0",  # any free port: the first line says which
        ],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        ready = process.stderr.readline()  # printed once the port is bound
        port = int(ready.split("http://127.0.0.1:")[1].split("/")[0])
        wait_for_port(port)

        async def client(calls: int, results: list[bool]) -> None:
            async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write, _):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    echo = await session.call_tool("toy.echo_text", {"text": "hi"})
                    assert not echo.isError, echo  # history is this session's: one echo each
                    for n in range(calls - 1):
                        result = await session.call_tool("toy.add", {"a": n, "b": 1})
                        results.append(not result.isError)

        async def both() -> None:
            first: list[bool] = []
            second: list[bool] = []
            async with anyio.create_task_group() as group:
                group.start_soon(client, 4, first)
                group.start_soon(client, 3, second)
            assert first == [True, True, False]  # an echo and two adds: its budget of three
            assert second == [True, True]  # not spent by the other client

        anyio.run(both)
        # a second proxy on the same port: one clear error, exit 2
        # (and leaves no event log behind: it never served)
        log = program.parent / "second-proxy.db"
        http = ["--transport", "http", "--port", str(port), "--events", str(log)]
        taken = runner.invoke(app, ["mcp", "proxy", str(program), *http])
        assert taken.exit_code == 2
        assert f"cannot listen on 127.0.0.1:{port}: it is in use" in taken.output
        assert not log.exists()
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    # where it listens, said once; clients hanging up are not errors with tracebacks
    assert f"at http://127.0.0.1:{port}/mcp" in ready and port != 0
    assert "Traceback" not in stderr and "Error in standalone SSE writer" not in stderr, stderr


def test_the_stdio_proxy_answers_bad_messages_with_json_rpc_errors(
    program: Path, tmp_path: Path
) -> None:
    """Over stdin from a file (`< requests.jsonl`: no pipe for the event loop to watch), a
    call before initialize is refused, and bad messages get JSON-RPC errors."""
    import json

    lines = [
        {"jsonrpc": "2.0", "id": 10, "method": "ping"},
        {"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": {"name": "toy.add"}},
        initialize(1),
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "ping"},
        {"jsonrpc": "2.0", "id": 3, "method": "resources/list"},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": 7}},
    ]
    text = "\n".join(json.dumps(line) for line in lines[:4]) + "\n{not json\n"
    text += "\n".join(json.dumps(line) for line in lines[4:]) + "\n"
    requests = tmp_path / "requests.jsonl"
    requests.write_text(text)
    with requests.open("rb") as stdin:
        done = subprocess.run(
            [sys.executable, "-m", "carlang", "mcp", "proxy", str(program)],
            stdin=stdin,
            capture_output=True,
            env=_env(),
            timeout=60,
        )
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    assert b"warning: no capability: clients see every tool" in done.stderr
    answers = [json.loads(line) for line in done.stdout.decode().splitlines()]
    by_id = {a.get("id"): a for a in answers}
    assert by_id[10]["result"] == {}
    assert by_id[11]["error"]["code"] == -32600
    assert "before initialize" in by_id[11]["error"]["message"]
    assert by_id[1]["result"]["protocolVersion"] == "2025-06-18"
    assert by_id[1]["result"]["serverInfo"]["name"] == "carlang-proxy"
    assert by_id[None]["error"]["code"] == -32700
    assert by_id[2]["result"] == {}
    assert by_id[3]["error"]["code"] == -32601
    assert by_id[4]["error"]["code"] == -32602
    assert done.returncode == 0


def test_a_port_out_of_range_is_a_usage_error(program: Path) -> None:
    out_of_range = runner.invoke(
        app, ["mcp", "proxy", str(program), "--transport", "http", "--port", "99999"]
    )
    assert out_of_range.exit_code == 2 and "--port" in out_of_range.output


def test_a_server_command_that_cannot_be_found_is_said_at_start_up(
    program: Path, tmp_path: Path
) -> None:
    """The gateway starts (the server may be installed later), but says which server's
    command is missing rather than failing every call of its tools in silence."""
    import re

    text = program.read_text()
    start = text.index("mcp_server toy")
    moved = re.sub(r'command "[^"]*"', 'command "no-such-mcp-server-xyz"', text[start:], count=1)
    broken = tmp_path / "broken.car"
    broken.write_text(text[:start] + moved)
    done = subprocess.run(
        [sys.executable, "-m", "carlang", "mcp", "proxy", str(broken)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=_env(),
        timeout=60,
    )
    assert (
        b"warning: mcp_server `toy`: its command `no-such-mcp-server-xyz` is not found"
        in done.stderr
    ), done.stderr.decode()
    assert done.returncode == 0 and b"Traceback" not in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "carlang", "mcp", "proxy", str(program)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=_env(),
        timeout=60,
    )
    assert b"is not found" not in done.stderr
