"""`carlang mcp proxy` stopped by SIGTERM or SIGHUP (how an MCP client stops a server it
started: it closes the server's input, then sends SIGTERM) shuts down as on Ctrl-C: the calls
in flight are recorded as interrupted, and the servers it started are stopped. It used to die
at once, leaving a server in the middle of a call running, orphaned."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from carlang.cli import app
from tests.conftest import ROOT
from tests.mcp.conftest import INITIALIZED, initialize, needs_sdk, toy_command

# slow: the proxy and a real MCP server as subprocesses, seconds per case (the default run
# stays under three minutes; CI runs these)
pytestmark = [
    needs_sdk,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds processes in /proc"),
]
runner = CliRunner()


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("proxy_signals") / "toy.car"
    result = runner.invoke(
        app, ["mcp", "import", "--name", "toy", "-o", str(path), "--", *toy_command()]
    )
    assert result.exit_code == 0, result.output
    # (the toy's switches come from the proxy's environment, as the program names them: a
    # server gets no variable it does not declare)
    passed = (
        'mcp_server toy {\n  env { TOY_STARTED: "${TOY_STARTED}", TOY_BLOCKING: "${TOY_BLOCKING}" }'
    )
    text = path.read_text().replace("mcp_server toy {", passed)
    path.write_text(text + "capability agent { tools allow toy.slow }\n")
    return path


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


#: A call of the toy's tool that lasts an hour: it is in flight when the proxy is stopped.
_SLOW_CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "toy.slow", "arguments": {"seconds": 3600}},
}


@dataclass
class _InCall:
    """The proxy over stdio (with `--events`), its server in the middle of `_SLOW_CALL`; after
    the `with`, `left` says whether the server outlived the proxy."""

    proxy: subprocess.Popen[bytes]
    server: int = 0
    left: bool = False


@contextlib.contextmanager
def _proxy_in_a_call(
    program: Path, tmp_path: Path, *, blocking: bool = False, answers: bool = False
) -> Iterator[_InCall]:
    """Start the proxy, send it initialize and `_SLOW_CALL`, and wait until the toy server
    is in the call (`blocking`: the toy blocks in sync code). `answers`: the proxy's output
    is a pipe to read (else it goes nowhere). Leaving, a proxy still running is killed, and a
    server still alive is killed too (not this test's to leave behind) after noting it in
    `left`. The proxy's standard error goes to tmp_path/stderr (not a pipe: a server left
    running would hold it open), its events to tmp_path/events.jsonl."""
    started = tmp_path / "started"  # (the toy writes it as the call starts)
    with (
        (tmp_path / "stderr").open("wb") as stderr_file,
        subprocess.Popen(
            [sys.executable, "-m", "carlang", "mcp", "proxy", str(program)]
            + ["--events", str(tmp_path / "events.jsonl")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE if answers else subprocess.DEVNULL,
            stderr=stderr_file,
            env={
                **os.environ,
                "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}",
                "TOY_STARTED": str(started),
                "TOY_BLOCKING": "1" if blocking else "0",
            },
        ) as proxy,
    ):
        assert proxy.stdin is not None
        call = _InCall(proxy)
        try:
            for message in (initialize(0), INITIALIZED, _SLOW_CALL):
                proxy.stdin.write(json.dumps(message).encode() + b"\n")
            proxy.stdin.flush()
            if answers:
                assert proxy.stdout is not None
                assert json.loads(proxy.stdout.readline())["id"] == 0
            deadline = time.monotonic() + 30
            while not started.exists():
                assert time.monotonic() < deadline and proxy.poll() is None, "the call never ran"
                time.sleep(0.05)
            (call.server,) = _children(proxy.pid)  # the toy server, in the middle of the call
            yield call
        finally:
            if proxy.poll() is None:
                proxy.kill()
                proxy.wait()
            call.left = _alive(call.server) if call.server else False
            if call.left:
                os.kill(call.server, signal.SIGKILL)


def _assert_stopped_with_the_call_interrupted(call: _InCall, tmp_path: Path, status: int) -> None:
    """The proxy exited with `status`, said no traceback, left no server running, and its
    event log has the call interrupted."""
    stderr = (tmp_path / "stderr").read_text()
    assert call.proxy.returncode == status, stderr
    assert "Traceback" not in stderr, stderr
    assert not call.left  # stopped with the proxy, not left running
    kinds = {e["kind"]: e["data"] for e in _events(tmp_path / "events.jsonl")}
    assert kinds["action_failed"]["interrupted"] is True
    assert kinds["proposal_completed"]["status"] == "interrupted"


@pytest.mark.parametrize(
    ("stop", "close_input", "blocking"),
    [
        (signal.SIGTERM, False, False),
        (signal.SIGHUP, False, False),
        (signal.SIGTERM, True, False),
        (signal.SIGTERM, False, True),
    ],
    ids=["SIGTERM", "SIGHUP", "input closed, then SIGTERM", "SIGTERM, a server that blocks"],
)
def test_a_signal_during_a_call_stops_the_server_and_records_the_call_interrupted(
    program: Path, tmp_path: Path, stop: signal.Signals, close_input: bool, blocking: bool
) -> None:
    """A server that blocks (sync code) does not even see its input close: it is terminated."""
    with _proxy_in_a_call(program, tmp_path, blocking=blocking) as call:
        proxy = call.proxy
        if close_input:  # (the proxy then waits for the call to end: the client does not)
            assert proxy.stdin is not None
            proxy.stdin.close()
            time.sleep(0.3)
            assert proxy.poll() is None
        proxy.send_signal(stop)
        proxy.wait(timeout=30)
    _assert_stopped_with_the_call_interrupted(call, tmp_path, 128 + stop)


def test_a_client_gone_during_a_call_stops_the_proxy_and_its_server(
    program: Path, tmp_path: Path
) -> None:
    """A client that dies in the middle of a call (its input to the proxy at its end, its
    output's reader gone) cannot be answered: the proxy cancels the call (recorded as
    interrupted), stops the server and exits, rather than wait for a call that may never end.
    It used to run on, with its server, for as long as the call did."""
    with _proxy_in_a_call(program, tmp_path, answers=True) as call:
        proxy = call.proxy
        assert proxy.stdin is not None and proxy.stdout is not None
        proxy.stdin.close()
        proxy.stdout.close()
        proxy.wait(timeout=20)
    _assert_stopped_with_the_call_interrupted(call, tmp_path, 0)
