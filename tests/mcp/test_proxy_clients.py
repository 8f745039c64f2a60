"""`carlang mcp proxy --transport http` keeps its clients apart: each client session has its
own sessions with the servers (a server's per-session state is never another client's) and
its own scope (a cached output is never another client's), its servers are stopped when it
ends (deleted by its client, or idle too long), and `--max-sessions` bounds how many client
sessions have servers of their own at once. With the official SDK's client against a real
FastMCP server that keeps a note per MCP session (tests/mcp/notes_server.py).

It used to hold one session per server for the whole proxy: client B recalled client A's
note, and was answered from A's cached outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.conftest import ROOT
from tests.mcp.conftest import INITIALIZED, initialize, needs_sdk, wait_for_port

# slow: the proxy and its servers as subprocesses, seconds per test (the default run stays
# under three minutes; CI runs these)
pytestmark = [
    needs_sdk,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds processes in /proc"),
]

NOTES = Path(__file__).resolve().parent / "notes_server.py"


@pytest.fixture
def program(tmp_path: Path) -> Path:
    path = tmp_path / "notes.car"
    counter = tmp_path / "ticks.txt"
    path.write_text(
        f"""
mcp_server notes {{
  command {json.dumps(sys.executable)}
  args [{json.dumps(str(NOTES))}, {json.dumps(str(counter))}]
}}
tool notes.remember(text: string) -> string {{ description "remember a note" }}
tool notes.recall() -> string {{ description "this session's note" read_only }}
tool notes.tick() -> int {{
  description "count the calls"
  cache 60s
}}
capability agent {{ tools allow notes.* }}
"""
    )
    return path


@contextmanager
def _proxy(
    program: Path, *options: str, sigint: Any = signal.SIG_DFL, own_group: bool = False
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The proxy over HTTP on a free port, and its URL; its standard error is in
    `process.said` once it has stopped. `sigint`: SIGINT's disposition it starts with (a
    shell's background job starts with it ignored); `own_group`: it leads a process group of
    its own, as a terminal's foreground job does (a Ctrl-C there is SIGINT to the group)."""

    def prepare() -> None:
        signal.signal(signal.SIGINT, sigint)
        if own_group:
            os.setpgrp()

    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "carlang", "mcp", "proxy", str(program), "--capability", "agent"]
        + ["--transport", "http", "--port", "0", *options],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=prepare,
    )
    try:
        assert process.stderr is not None
        ready = process.stderr.readline()
        assert "http://127.0.0.1:" in ready, ready
        port = int(ready.split("http://127.0.0.1:")[1].split("/")[0])
        wait_for_port(port)
        yield process, f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        _, said = process.communicate(timeout=20)
        process.said = said  # type: ignore[attr-defined]


def _servers(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (the servers the proxy started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return sorted(found)


async def _until(check: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await anyio.sleep(0.05)


def _text(result: Any) -> str:
    assert not result.isError, result
    return "\n".join(block.text for block in result.content if block.type == "text")


async def _session(url: str, body: Callable[[Any], Awaitable[None]]) -> None:
    """Open an MCP session with the SDK's client, run `body` in it, end it (the client
    deletes the session as it closes)."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with streamable_http_client(url) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            await body(session)


def test_each_client_has_its_own_servers_and_cached_outputs(program: Path) -> None:
    with _proxy(program) as (process, url):

        async def scenario() -> None:
            b_ended = anyio.Event()

            async def client_a(a: Any) -> None:
                assert _text(await a.call_tool("notes.remember", {"text": "A-private"})) == "ok"
                assert _text(await a.call_tool("notes.tick", {})) == "1"
                assert len(_servers(process.pid)) == 1  # started on A's first call

                async def client_b(b: Any) -> None:
                    assert _servers(process.pid) and len(_servers(process.pid)) == 1
                    # B's own server session: A's note is not there
                    assert _text(await b.call_tool("notes.recall", {})) == "<nothing>"
                    assert len(_servers(process.pid)) == 2
                    # not A's cached output: the tool ran (the count moved)
                    assert _text(await b.call_tool("notes.tick", {})) == "2"
                    assert _text(await b.call_tool("notes.tick", {})) == "2"  # B's cache
                    assert _text(await b.call_tool("notes.remember", {"text": "B"})) == "ok"
                    assert _text(await b.call_tool("notes.recall", {})) == "B"

                both = _servers(process.pid)
                await _session(url, client_b)
                b_ended.set()
                # B deleted its session: its server is stopped, A's goes on
                await _until(lambda: len(_servers(process.pid)) == 1)
                assert _servers(process.pid)[0] in both
                assert _text(await a.call_tool("notes.recall", {})) == "A-private"
                assert _text(await a.call_tool("notes.tick", {})) == "1"  # A's cache

            await _session(url, client_a)
            assert b_ended.is_set()
            await _until(lambda: not _servers(process.pid))  # A's is stopped too

        anyio.run(scenario)
    said = process.said  # type: ignore[attr-defined]
    assert "Traceback" not in said and "max-sessions" not in said, said


def test_max_sessions_bounds_the_clients_with_servers_of_their_own(program: Path) -> None:
    from mcp.shared.exceptions import McpError

    with _proxy(program, "--max-sessions", "1") as (process, url):

        async def scenario() -> None:
            from mcp import ClientSession
            from mcp.client.streamable_http import streamable_http_client

            async with streamable_http_client(url) as (read, write, _):
                async with ClientSession(read, write) as b:
                    await b.initialize()

                    async def client_a(a: Any) -> None:
                        assert _text(await a.call_tool("notes.remember", {"text": "A"})) == "ok"
                        # A holds the one place: B sees the tools, its calls are refused
                        listed = await b.list_tools()
                        assert {t.name for t in listed.tools} >= {"notes.recall"}
                        for _ in range(2):
                            with pytest.raises(McpError) as refused:
                                await b.call_tool("notes.recall", {})
                            assert refused.value.error.code == -32000
                            said = refused.value.error.message
                            assert "--max-sessions 1" in said and "notes.recall" in said, said
                        assert len(_servers(process.pid)) == 1
                        assert _text(await a.call_tool("notes.recall", {})) == "A"

                    await _session(url, client_a)
                    # A ended: its place is B's
                    await _until(lambda: not _servers(process.pid))
                    assert _text(await b.call_tool("notes.recall", {})) == "<nothing>"
                    assert len(_servers(process.pid)) == 1

        anyio.run(scenario)
    said = process.said  # type: ignore[attr-defined]
    assert said.count("--max-sessions 1") == 1, said  # the warning, said once
    assert "Traceback" not in said, said


def _post(url: str, message: dict[str, Any], session: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if session is not None:
        headers["Mcp-Session-Id"] = session
    return httpx.post(url, content=json.dumps(message), headers=headers, timeout=30)


def test_an_idle_session_ends_and_its_servers_stop(program: Path) -> None:
    with _proxy(program, "--idle-timeout", "1") as (process, url):
        opened = _post(url, initialize(1))
        session = opened.headers["mcp-session-id"]
        _post(url, INITIALIZED, session)
        call = {"name": "notes.remember", "arguments": {"text": "x"}}
        answer = _post(
            url, {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call}, session
        )
        assert answer.status_code == 200 and '"ok"' in answer.text, answer.text
        assert len(_servers(process.pid)) == 1
        # no request and no open stream for a second: the session ends, its server stops
        anyio.run(_until, lambda: not _servers(process.pid))
        again = _post(url, {"jsonrpc": "2.0", "id": 3, "method": "ping"}, session)
        assert again.status_code == 404


def test_the_stdio_proxy_keeps_one_server_session_for_its_client(program: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "carlang", "mcp", "proxy", str(program), "--capability", "agent"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None

    def call(request_id: int, name: str, arguments: dict[str, Any]) -> str:
        params = {"name": name, "arguments": arguments}
        request = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        answer = json.loads(process.stdout.readline())
        assert answer["id"] == request_id and not answer["result"]["isError"], answer
        return str(answer["result"]["content"][0]["text"])

    try:
        process.stdin.write(json.dumps(initialize(0)) + "\n" + json.dumps(INITIALIZED) + "\n")
        process.stdin.flush()
        assert json.loads(process.stdout.readline())["id"] == 0
        assert call(1, "notes.remember", {"text": "mine"}) == "ok"
        assert call(2, "notes.recall", {}) == "mine"  # the same server session
        assert call(3, "notes.tick", {}) == "1" and call(4, "notes.tick", {}) == "1"
        assert len(_servers(process.pid)) == 1
        process.stdin.close()
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        process.stdout.close()
        assert process.stderr is not None
        said = process.stderr.read()
        process.stderr.close()
    assert "Traceback" not in said, said


@pytest.mark.parametrize("sigint", [signal.SIG_DFL, signal.SIG_IGN], ids=["default", "ignored"])
def test_sigint_stops_the_proxy_with_ctrl_c_s_status(program: Path, sigint: Any) -> None:
    """Started by a script in the background, the proxy has SIGINT ignored; uvicorn stopped
    on it all the same, but the proxy exited 0, as if it had ended by itself (found by a user
    trial): a supervisor could not tell. Either way it is now 130, as after Ctrl-C."""
    with _proxy(program, sigint=sigint) as (process, _url):
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
    assert process.returncode == 130, process.said  # type: ignore[attr-defined]
    assert "Traceback" not in process.said  # type: ignore[attr-defined]


#: How long after the first Ctrl-C the second comes: while uvicorn stops, while the servers
#: stop, and while the interpreter tears down (Python's handler is then reset to the default,
#: and a Ctrl-C there killed the process by the signal: status -2, not 130).
@pytest.mark.parametrize("second_after", [0.05, 0.3, 1.0])
def test_ctrl_c_at_a_terminal_twice_stops_the_proxy_quietly(
    program: Path, second_after: float
) -> None:
    """At a terminal a Ctrl-C is SIGINT to the whole process group: it reached every server
    the proxy had started, each dying with a traceback, and a second one made uvicorn print
    ~120 lines of tracebacks of the calls it cancelled (a gateway trial). Now the servers have
    groups of their own and are stopped in order, and what a forced stop cancels is not
    reported as an error."""
    import threading

    called = threading.Event()

    def client(url: str) -> None:
        async def hold() -> None:
            from mcp import ClientSession
            from mcp.client.streamable_http import streamable_http_client

            with anyio.move_on_after(30):
                async with (
                    streamable_http_client(url) as (read, write, _),
                    ClientSession(read, write) as session,
                ):
                    await session.initialize()
                    await session.call_tool("notes.recall", {})
                    called.set()
                    await anyio.sleep(30)

        try:
            anyio.run(hold)
        except BaseException:  # noqa: BLE001 - (the proxy going away ends it: not the point)
            pass

    with _proxy(program, own_group=True) as (process, url):
        holder = threading.Thread(target=client, args=(url,), daemon=True)
        holder.start()
        assert called.wait(30)
        servers = _servers(process.pid)
        assert servers and all(os.getpgid(pid) != process.pid for pid in servers)
        os.killpg(process.pid, signal.SIGINT)
        time.sleep(second_after)
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)
    said = process.said  # type: ignore[attr-defined]
    assert process.returncode == 130, said
    assert "Traceback" not in said and "KeyboardInterrupt" not in said, said
