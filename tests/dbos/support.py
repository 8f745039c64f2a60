"""What the DBOS tests share besides their fixtures (conftest.py): the skips, programs and
tools to run (a project), `carlang` as a process (a run submitted, shown, cancelled, resumed,
approved; its event log), what carlang says of work no worker serves, workers and other
processes to start and kill, and waiting for a condition."""

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

# -- programs and tools --------------------------------------------------------------------------

#: The tools `work` and `ship` and a policy, `prod`, under which a ship to prod waits for an
#: approval: the start of a program (its proposals follow; `marking_tools` implements both).
SHIP_NEEDS_APPROVAL = """\
tool work(item: string)
tool ship(env: "staging" | "prod")
policy prod: require_approval ship when params.env == "prod"
"""


def approval_timeout(program: str, timeout: str) -> str:
    """`program` (a `SHIP_NEEDS_APPROVAL` one) with the policy prod's `approval_timeout`
    `timeout` (like 1s)."""
    asks = 'when params.env == "prod"\n'
    assert asks in program, program
    return program.replace(asks, f"{asks}  approval_timeout {timeout}\n")


#: A program of one call of `work` (proposal p), and a `--tools` module that implements it.
WORK_PROGRAM = """\
tool work(item: string)
proposal p {
  a = work(item: "a")
}
"""
WORK_TOOLS = 'TOOLS = {"work": lambda item: item.upper()}\n'

#: A program whose run (proposal p) calls `work`, then `render`, a tool bound to the queue gpu;
#: and a `--tools` module that implements both (render(n) is n * 2).
GPU_PROGRAM = """\
tool work(item: string)
tool render(n: int) {
  queue gpu
}
proposal p {
  a = work(item: "a")
  r = render(n: 2) after a
}
"""
GPU_TOOLS = """\
def work(item):
    return item.upper()

def render(n):
    return n * 2

TOOLS = {"work": work, "render": render}
"""

#: The tools `marking_tools` chooses from, each writing its calls to calls.txt beside it.
_MARKING_MODULE = """\
import os, time

HERE = os.path.dirname(__file__)

def _mark(text):
    with open(os.path.join(HERE, "calls.txt"), "a") as file:
        file.write(text + "\\n")

def work(item):
    _mark("work " + item)
    return item.upper()

def ship(env):
    _mark("ship " + env)
    return "shipped " + env

def slow(n):
    _mark("start slow")
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(HERE, "release")) and time.monotonic() < deadline:
        time.sleep(0.1)
    _mark("end slow")
    return n + 1

def boom(how):
    _mark("boom " + how)
    if os.path.exists(os.path.join(HERE, "fixed")):
        return "fine"
    if how == "kbd":
        raise KeyboardInterrupt
    raise SystemExit(3)
"""


def marking_tools(*names: str) -> str:
    """A `--tools` module whose TOOLS are the tools `names` (in that order), each of which
    writes its calls to calls.txt beside it (`calls`: a call's trace that survives the worker
    process that made it). `work(item)` is `item.upper()`, marked `work ITEM`; `ship(env)` is
    "shipped ENV", marked `ship ENV`; `slow(n)` is n + 1 once a file `release` is beside it (a
    minute at most), marked `start slow` and `end slow`; `boom(how)`, marked `boom HOW`,
    raises KeyboardInterrupt (how "kbd") or SystemExit(3), and is "fine" once a file `fixed`
    is beside it; `gpu_boom` is `boom` (under another name, to bind it to a queue)."""
    implementations = {"gpu_boom": "boom"}
    entries = ", ".join(f'"{name}": {implementations.get(name, name)}' for name in names)
    return f"{_MARKING_MODULE}\nTOOLS = {{{entries}}}\n"


#: `marking_tools` of `work` and `ship` (what `SHIP_NEEDS_APPROVAL` declares).
MARKING_TOOLS = marking_tools("work", "ship")


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
    """The lines the tools wrote to calls.txt in `directory` (as `marking_tools` do), in order;
    none before the first call."""
    path = directory / "calls.txt"
    return path.read_text().splitlines() if path.exists() else []


def carlang(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`carlang ARGS...` in `cwd`, its output captured."""
    return run_carlang(*args, cwd=cwd, timeout=120)


#: `carlang` arguments that run the project `write_project` wrote (p.car, with tools.py) on the
#: DBOS backend; `--database` and the rest follow.
DURABLE_RUN = ("run", "p.car", "--tools", "tools.py:TOOLS", "--backend", "dbos")


def detach(database: str, cwd: Path, *more: str) -> subprocess.CompletedProcess[str]:
    """`carlang run p.car --tools tools.py:TOOLS --backend dbos --database DATABASE --detach
    MORE...` in `cwd` (a project `write_project` wrote), its output captured."""
    return carlang(*DURABLE_RUN, "--database", database, "--detach", *more, cwd=cwd)


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
    faulthandler is on, for `exit_code`'s dump of a process that does not end; and Ctrl-C
    reaches it as it reaches a command typed at a terminal (`_sigint_as_at_a_terminal`)."""
    with log.open("w") if log is not None else contextlib.nullcontext(subprocess.DEVNULL) as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "carlang", *args],
            cwd=cwd,
            env={**(os.environ if env is None else env), "PYTHONFAULTHANDLER": "1"},
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
            preexec_fn=_sigint_as_at_a_terminal,
        )
    started.append(process)
    return process


def _sigint_as_at_a_terminal() -> None:
    """In the child, before it runs: SIGINT's default disposition. A shell's background job
    (`cmd &` in a script: how CI may run these tests) inherits SIGINT ignored, and a Python
    started with it ignored never raises KeyboardInterrupt: a test's Ctrl-C would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
        raise AssertionError(f"not ended after {seconds} s:\n{_stacks(process, log)}") from None


def said_by(process: subprocess.Popen[str], log: Path, text: str, seconds: float = 60.0) -> str:
    """What `process` (`start_carlang`'s, stderr to `log`) has said once `text` is in it; if
    not within `seconds`, AssertionError with its stderr and every thread's stack: what it was
    doing instead (a run a worker never picked up, a step that hung)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        said = log.read_text()
        if text in said:
            return said
        if process.poll() is not None:
            raise AssertionError(f"ended ({process.returncode}) before saying {text!r}:\n{said}")
        time.sleep(0.3)
    raise AssertionError(f"{text!r} not said after {seconds} s:\n{_stacks(process, log)}")


def _stacks(process: subprocess.Popen[str], log: Path) -> str:
    """Stop `process` with SIGABRT, whose faulthandler writes every thread's stack to its
    stderr (`log`): that stderr."""
    process.send_signal(signal.SIGABRT)
    process.wait(timeout=30)
    return log.read_text()


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


def show_in(project: Path, run_id: str) -> dict[str, Any]:
    """`show` of a run of the SQLite runs database in `project` (`sqlite_url`)."""
    return show(sqlite_url(project), run_id, project)


def runs_listed(database: str, cwd: Path) -> list[dict[str, Any]]:
    """`carlang runs list --json --database ...`, read; none while it fails (no run yet)."""
    listed = carlang("runs", "list", "--json", "--database", database, cwd=cwd)
    if listed.returncode != 0:
        return []
    runs: list[dict[str, Any]] = json.loads(listed.stdout)
    return runs


def ended(database: str, run_id: str, cwd: Path) -> dict[str, Any]:
    """`show` of run `run_id` once it has carlang's outcome (completed or aborted)."""
    wait_for(lambda: show(database, run_id, cwd)["status"] in ("completed", "aborted"))
    return show(database, run_id, cwd)


def wait_for_approval(database: str, run_id: str, cwd: Path, seconds: float = 60.0) -> None:
    """Wait until run `run_id` is shown waiting for an approval."""
    wait_for(lambda: show(database, run_id, cwd)["waiting_for_approval"], seconds)


def approve(database: str, run_id: str, cwd: Path) -> None:
    """`carlang approve RUN s --database ...` (the ship of `SHIP_NEEDS_APPROVAL`'s programs),
    accepted."""
    approved = carlang("approve", run_id, "s", "--database", database, cwd=cwd)
    assert approved.returncode == 0, approved.stderr


def cancel(database: str, run_id: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`carlang runs cancel RUN --database ...`, accepted; its output."""
    cancelled = carlang("runs", "cancel", run_id, "--database", database, cwd=cwd)
    assert cancelled.returncode == 0, cancelled.stderr
    return cancelled


def resume(database: str, run_id: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`carlang runs resume RUN --database ...`, accepted; its output (what it says on
    stderr)."""
    resumed = carlang("runs", "resume", run_id, "--database", database, cwd=cwd)
    assert resumed.returncode == 0, resumed.stderr
    return resumed


def event_log(cwd: Path, run_id: str) -> list[dict[str, Any]]:
    """The events of run `run_id` in the event log run.db in `cwd` (`carlang events --run
    RUN --format json`), in order."""
    logged = carlang("events", "run.db", "--run", run_id, "--format", "json", cwd=cwd)
    events: list[dict[str, Any]] = json.loads(logged.stdout)
    return events


# -- what is said of work no worker serves -------------------------------------------------------


def unserved_at_detach(database: str, run_id: str) -> list[str]:
    """What `run --detach` says (its notices) of run `run_id` of `GPU_PROGRAM` when no worker
    serving carlang_runs, nor one serving gpu, has been seen on `database`."""
    start = f"start one with: carlang worker --database {database}"
    return [
        f"no worker serving carlang_runs has been seen on {database} in the last 15s:"
        f" run {run_id} waits for one ({start})",
        f"no worker serving gpu has been seen on {database} in the last 15s:"
        f" run {run_id}'s calls of render will wait for one ({start} --queue gpu)",
    ]


def unserved_render(database: str, run_id: str) -> str:
    """What the process running run `run_id` says when its call of render (`r`, bound to the
    queue gpu) has waited a while and no worker serving gpu has been seen on `database`."""
    return (
        f"run {run_id}: no worker serving gpu has been seen on {database} in the last 15s:"
        f" its call of render (`r`) waits for one (start one with: carlang worker --database"
        f" {database} --queue gpu)"
    )


def wait_for(predicate: Callable[[], Any], seconds: float = 60.0) -> None:
    """Poll `predicate` until it holds; AssertionError after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError("timed out waiting")
