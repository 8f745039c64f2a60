"""A server that never finishes starting stalls only the calls of its own tools: the proxy's
other servers answer meanwhile, and a Ctrl-C stops the proxy (and the starting server) at
once rather than after the start's timeout. `carlang mcp import` stopped by SIGTERM or SIGHUP
stops the server it started, as on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from carlang.cli import app
from tests.conftest import ROOT
from tests.mcp.conftest import initialize, needs_sdk, toy_command

# slow: the proxy as a subprocess with real MCP servers (CI runs these)
pytestmark = [needs_sdk, pytest.mark.slow]
runner = CliRunner()

#: A "server" that adds its process id to a file (a line per start), then never answers
#: `initialize`.
HANGING = "import os, sys, time; open(sys.argv[1], 'a').write(f'{os.getpid()}\\n'); time.sleep(120)"


@pytest.fixture
def program(tmp_path: Path) -> Path:
    toy = tmp_path / "toy.car"
    result = runner.invoke(
        app, ["mcp", "import", "--name", "toy", "-o", str(toy), "--", *toy_command()]
    )
    assert result.exit_code == 0, result.output
    hang = tmp_path / "hang.car"
    arguments = json.dumps(["-c", HANGING, str(tmp_path / "hang.pid")])
    hang.write_text(
        f"mcp_server hang {{\n  command {json.dumps(sys.executable)}\n  args {arguments}\n"
        '  timeout 60s\n}\ntool hang.t() { schema { type: "object", properties: {} } }\n'
    )
    path = tmp_path / "both.car"
    path.write_text('import "toy.car"\nimport "hang.car"\n')
    checked = runner.invoke(app, ["check", str(path)])
    assert checked.exit_code == 0, checked.output
    return path


def _message(request_id: Any, method: str, params: dict[str, Any]) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_server_that_never_starts_stalls_no_other_server_nor_ctrl_c(
    program: Path, stop: signal.Signals
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "carlang", "mcp", "proxy", str(program)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}"},
        # SIGINT as a terminal's foreground job has it: a script's background job (how CI
        # may run these tests) passes it on ignored, and Ctrl-C would then mean nothing
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stdin is not None and process.stdout is not None
    initialized = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"})
    # more calls of the hanging server than asyncio's default pool has threads (min(32,
    # CPUs + 4)): waiting on its start holds none of them
    waiting = [
        _message(100 + n, "tools/call", {"name": "hang.t", "arguments": {}})
        for n in range(min(32, (os.cpu_count() or 1) + 4) + 2)
    ]
    lines = [
        json.dumps(initialize()),
        initialized,
        *waiting,
        _message(2, "tools/call", {"name": "toy.add", "arguments": {"a": 2, "b": 3}}),
    ]
    pid_file = program.parent / "hang.pid"
    try:
        process.stdin.write("".join(line + "\n" for line in lines).encode())
        process.stdin.flush()
        assert json.loads(process.stdout.readline())["id"] == "init"
        started = time.monotonic()
        answer = json.loads(process.stdout.readline())  # toy.add's, while hang still starts
        waited = time.monotonic() - started
        assert answer["id"] == 2 and answer["result"]["structuredContent"] == {"result": 5}
        assert waited < 30, waited  # (hang's start runs for 60 s)
        _wait_for(pid_file.exists, 30)
        stopping = time.monotonic()
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=90)
        assert time.monotonic() - stopping < 15  # (not the start's 60 s)
        (hang_pid,) = map(int, pid_file.read_text().split())  # (started once, for all its calls)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    _assert_stopped(process, stop, stderr, hang_pid, "the server that was starting")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
def test_import_stopped_by_a_signal_stops_the_server_it_started(
    tmp_path: Path, stop: signal.Signals
) -> None:
    pid_file = tmp_path / "hang.pid"
    process = subprocess.Popen(
        [sys.executable, "-m", "carlang", "mcp", "import", "--"]
        + [sys.executable, "-c", HANGING, str(pid_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}"},
    )
    try:
        _wait_for(pid_file.exists, 30)
        hang_pid = int(pid_file.read_text())
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    _assert_stopped(process, stop, stderr, hang_pid, "the server import started")


def _wait_for(done: Callable[[], bool], seconds: float) -> None:
    """Poll `done` until it is true or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)


def _assert_stopped(
    process: subprocess.Popen[bytes], stop: int, stderr: bytes, server_pid: int, server: str
) -> None:
    """It exited as `stop` makes it (128 + the signal), without a traceback, and the hung
    server (`server_pid`) is gone soon after."""
    assert process.returncode == 128 + stop, stderr.decode()
    assert b"Traceback" not in stderr, stderr.decode()
    _wait_for(lambda: not _alive(server_pid), 10)
    assert not _alive(server_pid), f"{server} was left running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # (a zombie, reaped by no one yet, counts as gone)
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "zombie" not in status.read_text()
