"""Small problems a user trial found, each reproduced here as it was met: a message in another
tool's words, a count in the wrong number, a hint that was no near miss, an error said twice."""

from __future__ import annotations

from pathlib import Path

from carlang_runtime.engine import EventLog, JsonlSink, Runtime
from typer.testing import CliRunner

from carlang.cli import app
from tests.runtime.engine.support import proposal, write

runner = CliRunner()


# -- events: one run, one event -------------------------------------------------------------


def test_events_counts_one_run_and_one_event_in_the_singular(tmp_path: Path) -> None:
    """`carlang events run.jsonl` ended with "1 runs", and a listing of one event "1 events"."""
    log = tmp_path / "run.jsonl"
    rt = Runtime(events=EventLog([JsonlSink(log)]))
    rt.execute(proposal(write("w", "k", 1)))
    rt.close()
    runs = runner.invoke(app, ["events", str(log)])
    assert runs.exit_code == 0, runs.output
    assert runs.stdout.endswith("\n1 run\n")
    one = runner.invoke(app, ["events", str(log), "--kind", "run_completed"])
    assert one.exit_code == 0 and one.stdout.endswith("\n1 event\n"), one.output
