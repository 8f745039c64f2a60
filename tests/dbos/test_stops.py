"""Runs stopped before they end, through real processes (SQLite): by Ctrl-C or SIGTERM in the
foreground, by a worker stopped cleanly, by a tool that raises KeyboardInterrupt or SystemExit,
by `carlang runs cancel` on a foreground run, by tools that do not load on the worker. Each
stays resumable (PENDING, or CANCELLED), the process says which run stopped and how to take it
up again, and the event log holds every event of the execution that takes it up. An approval
whose time ran out while no process was alive is refused."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.dbos.support import (
    DURABLE_RUN,
    NO_DBOS,
    SHIP_NEEDS_APPROVAL,
    approve,
    calls,
    cancel,
    carlang,
    ended,
    event_log,
    exit_code,
    marking_tools,
    resume,
    runs_listed,
    said_by,
    show,
    skip_without_sqlite,
    sqlite_url,
    start_carlang,
    start_worker,
    submit,
    wait_for,
    wait_for_approval,
    write_project,
)

pytest.importorskip("dbos", reason=NO_DBOS)
pytestmark = pytest.mark.slow

skip_without_sqlite()

PROGRAM = (
    SHIP_NEEDS_APPROVAL
    + """\
tool slow(n: int)
tool boom(how: string)
tool gpu_boom(how: string) {
  queue gpu
}
proposal call {
  a = work(item: "a")
  s = slow(n: 1) after a
  b = work(item: "b") after s
}
proposal approval {
  a = work(item: "a")
  s = ship(env: "prod") after a
}
proposal kbd {
  a = work(item: "a")
  x = boom(how: "kbd") after a
  b = work(item: "b") after x
}
proposal queued {
  x = gpu_boom(how: "kbd")
}
proposal exit {
  x = boom(how: "exit")
}
proposal plain {
  a = work(item: "plain")
}
"""
)

TOOLS = marking_tools("work", "slow", "ship", "boom", "gpu_boom")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path, PROGRAM, TOOLS)


def _foreground(
    project: Path, proposal: str, started: list[subprocess.Popen[str]], *more: str
) -> tuple[subprocess.Popen[str], Path]:
    """`carlang run p.car --proposal PROPOSAL` on the DBOS backend in the foreground, with its
    events in run.db; the process and the file its stderr goes to."""
    err = project / f"{proposal}.err"
    process = start_carlang(
        *DURABLE_RUN, "--proposal", proposal, "--database", sqlite_url(project), "--events",
        "run.db", *more, cwd=project, started=started, log=err,
    )  # fmt: skip
    return process, err


def _waiting_for_approval(err: Path) -> bool:
    return err.exists() and "is waiting for approval of `s`" in err.read_text()


def _run_id(err: Path) -> str:
    found = re.search(r"run ([0-9a-f]{16})", err.read_text())
    assert found is not None, err.read_text()
    return found.group(1)


def _only_run(project: Path) -> str:
    """The id of the one run in the project's runs database."""
    [run] = runs_listed(sqlite_url(project), project)
    run_id: str = run["run_id"]
    return run_id


def _approve(project: Path, run_id: str) -> None:
    """Approve the ship of run `run_id` of the project, once it waits for that."""
    wait_for_approval(sqlite_url(project), run_id, project)
    approve(sqlite_url(project), run_id, project)


def _completed(project: Path, run_id: str) -> dict[str, Any]:
    return ended(sqlite_url(project), run_id, project)


def _events(project: Path, run_id: str) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """The run's line of `carlang events run.db`, and its events (kind, action)."""
    runs = carlang("events", "run.db", "--format", "json", cwd=project)
    [summary] = [r for r in json.loads(runs.stdout) if r["run_id"] == run_id]
    return summary, [(e["kind"], e.get("action_id")) for e in event_log(project, run_id)]


def _resume(project: Path, run_id: str) -> None:
    resume(sqlite_url(project), run_id, project)


@pytest.mark.parametrize(
    ("signum", "proposal"), [(signal.SIGINT, "call"), (signal.SIGTERM, "approval")]
)
def test_a_foreground_run_stopped_by_ctrl_c_or_sigterm_waits_to_be_resumed(
    project: Path, workers: list[subprocess.Popen[str]], signum: int, proposal: str
) -> None:
    database = sqlite_url(project)
    process, err = _foreground(project, proposal, workers)
    if proposal == "call":  # stopped during a tool call
        wait_for(lambda: "start slow" in calls(project))
    else:  # stopped while it waits for an approval
        wait_for(lambda: _waiting_for_approval(err))
    process.send_signal(signum)
    assert exit_code(process, err) == 128 + signum
    run_id = _run_id(err)
    said = err.read_text()
    assert f"interrupted: run {run_id} stopped" in said, said
    assert f"`carlang runs resume {run_id} --database {database}`" in said, said
    assert show(database, run_id, project)["status"] == "PENDING"  # (was ERROR: lost for good)
    (project / "release").touch()
    _resume(project, run_id)
    start_worker(database, "--id", "w1", cwd=project, started=workers)
    if proposal == "approval":
        _approve(project, run_id)
    assert _completed(project, run_id)["status"] == "completed"
    summary, events = _events(project, run_id)
    assert (summary["status"], summary["interrupted"], summary["failed"]) == ("completed", 1, 0)
    # every event of the execution that took the run up (they were dropped: the stopped one's
    # last events had taken their sequence numbers)
    if proposal == "call":
        assert events.count(("action_executing", "s")) == 2
        assert ("action_succeeded", "s") in events and ("action_succeeded", "b") in events
    else:
        assert ("approval_recorded", "s") in events and ("action_succeeded", "s") in events
    assert events[-1] == ("run_completed", None)


def test_a_run_of_a_worker_stopped_cleanly_is_logged_whole_by_the_worker_that_takes_it_up(
    project: Path, workers: list[subprocess.Popen[str]]
) -> None:
    database = sqlite_url(project)
    first = project / "w1.err"
    worker = start_worker(database, "--id", "w1", cwd=project, started=workers, log=first)
    run_id = submit(database, project, "--proposal", "approval", "--events", "run.db")
    wait_for_approval(database, run_id, project)
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=60)
    again = project / "w1-again.err"
    start_worker(database, "--id", "w1", cwd=project, started=workers, log=again)
    _approve(project, run_id)
    assert _completed(project, run_id)["status"] == "completed"
    assert calls(project) == ["work a", "ship prod"]
    summary, events = _events(project, run_id)
    assert (summary["status"], summary["interrupted"]) == ("completed", 1)
    for event in [("approval_recorded", "s"), ("action_executing", "s"), ("action_succeeded", "s")]:
        assert event in events
    # and the worker said nothing of DBOS's internals as it stopped
    assert "object at 0x" not in first.read_text() + again.read_text()


def _interrupted_on_a_worker(
    project: Path, started: list[subprocess.Popen[str]], *more: str
) -> tuple[str, str]:
    """A run submitted with `more` (its proposal) to a worker, w1, until the worker says it
    was interrupted: its id, and what the worker said (its stderr)."""
    err = project / "w1.err"
    worker = start_worker(sqlite_url(project), "--id", "w1", cwd=project, started=started, log=err)
    stopped = submit(sqlite_url(project), project, *more)
    return stopped, said_by(worker, err, f"run {stopped} was interrupted")


def _plain_completes(project: Path) -> None:
    """A plain run submitted now completes: the worker still serves."""
    plain = submit(sqlite_url(project), project, "--proposal", "plain")
    assert _completed(project, plain)["status"] == "completed"


def test_a_tool_that_raises_keyboard_interrupt_stops_its_run_and_the_worker_goes_on(
    project: Path, workers: list[subprocess.Popen[str]]
) -> None:
    database = sqlite_url(project)
    stopped, said = _interrupted_on_a_worker(
        project, workers, "--proposal", "kbd", "--events", "run.db"
    )
    assert "the tool of `x` (boom) raised KeyboardInterrupt" in said
    assert f"carlang runs resume {stopped} --database {database}" in said
    assert "Traceback" not in said and "Event loop is closed" not in said
    _plain_completes(project)
    assert show(database, stopped, project)["status"] == "PENDING"
    _, events = _events(project, stopped)
    assert ("action_failed", "x") in events
    (project / "fixed").touch()
    _resume(project, stopped)
    assert _completed(project, stopped)["status"] == "completed"
    assert calls(project) == ["work a", "boom kbd", "work plain", "boom kbd", "work b"]
    logged = carlang("events", "run.db", "--run", stopped, "--kind", "action_failed", cwd=project)
    assert "interrupted: KeyboardInterrupt" in logged.stdout


def test_a_tool_on_a_queue_that_raises_keyboard_interrupt_stops_its_run_too(
    project: Path, workers: list[subprocess.Popen[str]]
) -> None:
    _, said = _interrupted_on_a_worker(project, workers, "--proposal", "queued")
    assert "the tool of `x` (gpu_boom) raised KeyboardInterrupt" in said, said
    assert "Traceback" not in said
    _plain_completes(project)


def test_a_tool_that_raises_system_exit_in_the_foreground_says_so_and_exits(
    project: Path, workers: list[subprocess.Popen[str]]
) -> None:
    process, err = _foreground(project, "exit", workers)
    assert exit_code(process, err) == 1  # (it hung until killed)
    run_id = _run_id(err)
    said = err.read_text()
    assert (
        f"run {run_id} was interrupted: the tool of `x` (boom) raised SystemExit: 3; resume"
        f" with `carlang runs resume {run_id} --database {sqlite_url(project)}`"
    ) in said, said
    assert show(sqlite_url(project), run_id, project)["status"] == "PENDING"


def test_an_approval_after_its_timeout_is_refused_though_no_process_was_alive(
    project: Path, workers: list[subprocess.Popen[str]]
) -> None:
    database = sqlite_url(project)
    process, err = _foreground(project, "approval", workers, "--approval-timeout", "3")
    wait_for(lambda: _waiting_for_approval(err))
    asked = time.monotonic()
    process.kill()  # no process is alive at the deadline
    process.wait()
    run_id = _run_id(err)
    time.sleep(max(0.0, asked + 4 - time.monotonic()))
    late = carlang("approve", run_id, "s", "--database", database, cwd=project)
    assert late.returncode == 2
    assert "is already answered: approval expired after 3s without an answer" in late.stderr
    _resume(project, run_id)
    start_worker(database, "--id", "w1", cwd=project, started=workers)
    shown = _completed(project, run_id)
    assert shown["status"] == "aborted" and "approval expired" in shown["reason"]
    assert calls(project) == ["work a"]  # never shipped


@pytest.mark.parametrize("proposal", ["approval", "call"])
def test_cancelling_a_foreground_run_ends_it_saying_how_to_resume(
    project: Path, workers: list[subprocess.Popen[str]], proposal: str
) -> None:
    database = sqlite_url(project)
    process, err = _foreground(project, proposal, workers)
    if proposal == "call":
        wait_for(lambda: "start slow" in calls(project))
    else:
        wait_for(lambda: _waiting_for_approval(err))
    run_id = _only_run(project)
    cancel(database, run_id, project)
    (project / "release").touch()  # (the call in flight ends)
    assert exit_code(process, err) == 1  # (it waited for ever, or was an internal error)
    said = err.read_text()
    assert (
        f"run {run_id} was cancelled; resume with `carlang runs resume {run_id} --database"
        f" {database}`"
    ) in said, said
    assert "internal error" not in said
    assert show(database, run_id, project)["status"] == "CANCELLED"


def test_a_run_cancelled_while_it_waits_for_an_approval_frees_its_workers_slot(
    project: Path, workers: list[subprocess.Popen[str]]
) -> None:
    """A worker that runs one run at a time takes the next queued run as soon as the run it
    holds, waiting for an approval, is cancelled: not when the approval expires (it held the
    slot until then, a day by default)."""
    database = sqlite_url(project)
    err = project / "w1.err"
    options = ["--id", "w1", "--concurrency", "1"]
    start_worker(database, *options, cwd=project, started=workers, log=err)
    waiting = submit(database, project, "--proposal", "approval", "--approval-timeout", "600")
    wait_for_approval(database, waiting, project, seconds=120)  # (a worker starting, loaded)
    cancel(database, waiting, project)
    plain = submit(database, project, "--proposal", "plain")
    # taken at once (well within the approval's 600 s; it waited for them)
    wait_for(lambda: show(database, plain, project)["status"] == "completed", seconds=30)
    assert show(database, waiting, project)["status"] == "CANCELLED"
    assert calls(project) == ["work a", "work plain"]
    _resume(project, waiting)  # and the cancelled run is taken up again, where it stopped
    _approve(project, waiting)
    assert _completed(project, waiting)["status"] == "completed"
    assert calls(project) == ["work a", "work plain", "ship prod"]
    said = err.read_text()  # the cancel in a line, not DBOS's warning and traceback
    assert f"run {waiting} was cancelled; resume with `carlang runs resume {waiting}" in said
    assert "Traceback" not in said and "WARNING" not in said, said


def test_a_run_whose_tools_do_not_load_on_its_worker_waits_for_them(
    project: Path, workers: list[subprocess.Popen[str]]
) -> None:
    database = sqlite_url(project)
    (project / "mytools.py").write_text(TOOLS)
    elsewhere = project / "elsewhere"
    elsewhere.mkdir()
    submitted = carlang(
        "run", "p.car", "--proposal", "plain", "--tools", "mytools:TOOLS", "--backend", "dbos",
        "--database", database, "--detach", cwd=project,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.strip()
    err = project / "w1.err"
    worker = start_worker(database, "--id", "w1", cwd=elsewhere, started=workers, log=err)
    said = said_by(worker, err, f"run {run_id} cannot start here")
    assert "No module named 'mytools'" in said and "Traceback" not in said, said
    assert len(said.strip().splitlines()) == 1
    assert show(database, run_id, project)["status"] == "PENDING"  # (was ERROR, for good)
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=60)
    start_worker(database, "--id", "w1", cwd=project, started=workers)  # where they load
    assert _completed(project, run_id)["status"] == "completed"
    assert calls(project) == ["work plain"]
