"""Cancelling a run while a tool call runs, on Postgres through real processes: the call
finishes, DBOS refuses to record it (the cancelled execution no longer owns the run), carlang
keeps its result, and `runs resume` continues after it without calling the tool again; the
event log tells the run as it went, with nothing "interrupted" from the cancelled execution."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.dbos.support import carlang, show, start_worker, wait_for

pytest.importorskip("dbos", reason="the DBOS backend needs the dbos package (carlang[dbos])")
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


def _calls(project: Path) -> list[str]:
    path = project / "calls.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_a_call_in_flight_at_a_cancel_is_kept_and_not_repeated_by_the_resume(
    tmp_path: Path, postgres_database: str, workers: list[subprocess.Popen[str]]
) -> None:
    from carlang_dbos.records import late_steps

    (tmp_path / "p.car").write_text(PROGRAM)
    (tmp_path / "tools.py").write_text(TOOLS)
    database = postgres_database
    start_worker(database, "--id", "w1", cwd=tmp_path, started=workers)
    args = ["p.car", "--tools", "tools.py:TOOLS", "--backend", "dbos", "--database", database]
    submitted = carlang("run", *args, "--events", "run.db", "--detach", cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.strip()
    wait_for(lambda: "start slow" in _calls(tmp_path))
    cancelled = carlang("runs", "cancel", run_id, "--database", database, cwd=tmp_path)
    assert cancelled.returncode == 0, cancelled.stderr
    (tmp_path / "release").touch()  # the call finishes after the cancel
    wait_for(lambda: late_steps(database, run_id))  # carlang kept what DBOS would not record
    assert show(database, run_id, tmp_path)["status"] == "CANCELLED"
    resumed = carlang("runs", "resume", run_id, "--database", database, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    wait_for(lambda: "work b" in _calls(tmp_path))
    assert _calls(tmp_path) == ["work a", "start slow", "end slow", "work b"]
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
