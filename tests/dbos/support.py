"""What the DBOS tests share besides their fixtures (conftest.py): the skips, a project to run,
`carlang` as a process (a run submitted, one shown), workers and other processes to start and
kill, and waiting for a condition."""

from __future__ import annotations

import contextlib
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

from tests.helpers import run_carlang

#: Why a module of DBOS tests is skipped where DBOS is not installed (`pytest.importorskip`).
NO_DBOS = "the DBOS backend needs the dbos package (carlang[dbos])"

#: A `--tools` module whose tools write each call to calls.txt beside it (a call's trace that
#: survives the worker process that made it).
MARKING_TOOLS = """\
import os

def _mark(text):
    with open(os.path.join(os.path.dirname(__file__), "calls.txt"), "a") as file:
        file.write(text + "\\n")

def work(item):
    _mark("work " + item)
    return item.upper()

def ship(env):
    _mark("ship " + env)
    return "shipped " + env

TOOLS = {"work": work, "ship": ship}
"""


def skip_without_sqlite() -> None:
    """Skip the test (or, called at a module's top, the module) where DBOS cannot keep its runs
    in SQLite here, saying why in one line."""
    from carlang_dbos.backend import sqlite_problem

    problem = sqlite_problem()
    if problem is not None:
        pytest.skip(problem, allow_module_level=True)


def sqlite_url(directory: Path) -> str:
    """The URL of the SQLite runs database runs.db in `directory`."""
    return f"sqlite:///{directory / 'runs.db'}"


def write_project(directory: Path, program: str, tools: str) -> Path:
    """`directory`, with `program` in p.car and `tools` in tools.py (for `--tools
    tools.py:TOOLS`)."""
    (directory / "p.car").write_text(program)
    (directory / "tools.py").write_text(tools)
    return directory


def calls(directory: Path) -> list[str]:
    """The lines the tools wrote to calls.txt in `directory` (as MARKING_TOOLS do), in order;
    none before the first call."""
    path = directory / "calls.txt"
    return path.read_text().splitlines() if path.exists() else []


def carlang(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`carlang ARGS...` in `cwd`, its output captured."""
    return run_carlang(*args, cwd=cwd, timeout=120)


def detach(database: str, cwd: Path, *more: str) -> subprocess.CompletedProcess[str]:
    """`carlang run p.car --tools tools.py:TOOLS --backend dbos --database DATABASE --detach
    MORE...` in `cwd` (a project `write_project` wrote), its output captured."""
    args = ["p.car", "--tools", "tools.py:TOOLS", "--backend", "dbos", "--database", database]
    return carlang("run", *args, "--detach", *more, cwd=cwd)


def submit(database: str, cwd: Path, *more: str) -> str:
    """The id of the run `detach` queued; AssertionError (with its stderr) if it did not."""
    submitted = detach(database, cwd, *more)
    assert submitted.returncode == 0, submitted.stderr
    return submitted.stdout.strip()


def start_carlang(
    *args: str,
    cwd: Path,
    started: list[subprocess.Popen[str]],
    log: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """`carlang ARGS...` in the background in `cwd`, added to `started` (to kill at the end):
    its stdout discarded, its stderr written to the file `log` (discarded without one). Its
    faulthandler is on, for `exit_code`'s dump of a process that does not end."""
    with log.open("w") if log is not None else contextlib.nullcontext(subprocess.DEVNULL) as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "carlang", *args],
            cwd=cwd,
            env={**(os.environ if env is None else env), "PYTHONFAULTHANDLER": "1"},
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )
    started.append(process)
    return process


def start_worker(
    database: str,
    *options: str,
    cwd: Path,
    started: list[subprocess.Popen[str]],
    log: Path | None = None,
) -> subprocess.Popen[str]:
    """`carlang worker --database DATABASE OPTIONS...`, as `start_carlang` starts it."""
    return start_carlang(
        "worker", "--database", database, *options, cwd=cwd, started=started, log=log
    )


def exit_code(process: subprocess.Popen[str], log: Path, seconds: float = 60.0) -> int:
    """The exit code of `process` (`start_carlang`'s, stderr to `log`) once it ends; if it has
    not ended within `seconds`, AssertionError with its stderr, where SIGABRT had its
    faulthandler write every thread's stack: what it waited for."""
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        process.wait(timeout=30)
        raise AssertionError(f"not ended after {seconds} s:\n{log.read_text()}") from None


def stop_all(started: list[subprocess.Popen[str]]) -> None:
    """Kill every process in `started` that still runs."""
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def show(database: str, run_id: str, cwd: Path) -> dict[str, Any]:
    """`carlang runs show RUN --database ...`, read."""
    shown = carlang("runs", "show", run_id, "--database", database, cwd=cwd)
    assert shown.returncode == 0, shown.stderr
    document: dict[str, Any] = json.loads(shown.stdout)
    return document


def wait_for(predicate: Callable[[], Any], seconds: float = 60.0) -> None:
    """Poll `predicate` until it holds; AssertionError after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError("timed out waiting")
