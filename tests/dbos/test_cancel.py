"""Cancelling a run while a tool call runs, on Postgres through real processes: the call
finishes, DBOS refuses to record it (the cancelled execution no longer owns the run), carlang
keeps its result, and `runs resume` continues after it without calling the tool again; the
event log tells the run as it went, with nothing "interrupted" from the cancelled execution."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.dbos.support import (
    NO_DBOS,
    calls,
    cancel,
    event_log,
    marking_tools,
    resume,
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

TOOLS = marking_tools("work", "slow")


def test_a_call_in_flight_at_a_cancel_is_kept_and_not_repeated_by_the_resume(
    tmp_path: Path, postgres_database: str, workers: list[subprocess.Popen[str]]
) -> None:
    from carlang_dbos.records import late_steps

    write_project(tmp_path, PROGRAM, TOOLS)
    database = postgres_database
    start_worker(database, "--id", "w1", cwd=tmp_path, started=workers)
    run_id = submit(database, tmp_path, "--events", "run.db")
    wait_for(lambda: "start slow" in calls(tmp_path))
    cancel(database, run_id, tmp_path)
    (tmp_path / "release").touch()  # the call finishes after the cancel
    wait_for(lambda: late_steps(database, run_id))  # carlang kept what DBOS would not record
    assert show(database, run_id, tmp_path)["status"] == "CANCELLED"
    resumed = resume(database, run_id, tmp_path)
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
    events = event_log(tmp_path, run_id)
    ends = [(e["kind"], e.get("action_id")) for e in events if e["kind"].startswith("action_")]
    assert ("action_succeeded", "s") in ends
    assert not [kind for kind, _ in ends if kind in ("action_failed", "action_skipped")]
    completed = [e["data"]["status"] for e in events if e["kind"] == "run_completed"]
    assert completed == ["completed"]
