"""Cancelling a run while a tool call runs, on Postgres through real processes: the call
finishes, DBOS refuses to record it (the cancelled execution no longer owns the run), carlang
keeps its result, and `runs resume` continues after it without calling the tool again; the
event log tells the run as it went, with nothing "interrupted" from the cancelled execution."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.dbos.support import (
    NO_DBOS,
    calls,
    carlang,
    show,
    start_worker,
    submit,
    wait_for,
    write_project,
)

pytest.importorskip("dbos", reason=NO_DBOS)
pytestmark = pytest.mark.slow

PROGRAM = """\
tool work(item: string)
tool slow(n: int)
proposal p {
  a = work(item: "a")
  s = slow(n: 1) after a
  b = work(item: "b") after s
}
"""

TOOLS = """\
import os, time

HERE = os.path.dirname(__file__)

def _mark(text):
    with open(os.path.join(HERE, "calls.txt"), "a") as file:
        file.write(text + "\\n")

def work(item):
    _mark("work " + item)
    return item.upper()

def slow(n):
    _mark("start slow")
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(HERE, "release")) and time.monotonic() < deadline:
        time.sleep(0.1)
    _mark("end slow")
    return n + 1

TOOLS = {"work": work, "slow": slow}
"""


def test_a_call_in_flight_at_a_cancel_is_kept_and_not_repeated_by_the_resume(
    tmp_path: Path, postgres_database: str, workers: list[subprocess.Popen[str]]
) -> None:
    from carlang_dbos.records import late_steps

    write_project(tmp_path, PROGRAM, TOOLS)
    database = postgres_database
    start_worker(database, "--id", "w1", cwd=tmp_path, started=workers)
    run_id = submit(database, tmp_path, "--events", "run.db")
    wait_for(lambda: "start slow" in calls(tmp_path))
    cancelled = carlang("runs", "cancel", run_id, "--database", database, cwd=tmp_path)
    assert cancelled.returncode == 0, cancelled.stderr
    (tmp_path / "release").touch()  # the call finishes after the cancel
    wait_for(lambda: late_steps(database, run_id))  # carlang kept what DBOS would not record
    assert show(database, run_id, tmp_path)["status"] == "CANCELLED"
    resumed = carlang("runs", "resume", run_id, "--database", database, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    wait_for(lambda: "work b" in calls(tmp_path))
    assert calls(tmp_path) == ["work a", "start slow", "end slow", "work b"]
    assert "at least once" in resumed.stderr  # a call still running then would run again
    wait_for(lambda: show(database, run_id, tmp_path)["status"] == "completed")
    result = show(database, run_id, tmp_path)["result"]
    assert [(r["action_id"], r["status"], r.get("output")) for r in result["results"]] == [
        ("a", "succeeded", "A"),
        ("s", "succeeded", 2),
        ("b", "succeeded", "B"),
    ]
    logged = carlang("events", "run.db", "--run", run_id, "--format", "json", cwd=tmp_path)
    events = json.loads(logged.stdout)
    ends = [(e["kind"], e.get("action_id")) for e in events if e["kind"].startswith("action_")]
    assert ("action_succeeded", "s") in ends
    assert not [kind for kind, _ in ends if kind in ("action_failed", "action_skipped")]
    completed = [e["data"]["status"] for e in events if e["kind"] == "run_completed"]
    assert completed == ["completed"]
