"""CLI options that took values they should refuse, found in a user trial: each is now a usage
error (exit 2) saying what is wrong and what to give, before any work, never a traceback."""

from __future__ import annotations

from pathlib import Path

from carlang_runtime.engine import EventLog, JsonlSink, Runtime, SqliteSink
from carlang_runtime.experiments.generate import generate_tasks, write_groups
from typer.testing import CliRunner

from carlang.cli import app
from tests.conftest import ROOT
from tests.runtime.engine.support import proposal, write

runner = CliRunner()
EXAMPLES = ROOT / "examples"


def _one_run(log: Path) -> None:
    """Record one short run in `log` (JSONL or SQLite, by its suffix)."""
    sink = SqliteSink(log) if log.suffix == ".db" else JsonlSink(log)
    rt = Runtime(events=EventLog([sink]))
    rt.execute(proposal(write("w", "k", 1)))
    rt.close()


# -- replay --examples ---------------------------------------------------------------------


def test_replay_refuses_a_negative_examples_count(tmp_path: Path) -> None:
    """`--examples -1` was taken (as 0); a count of examples is 0 or more."""
    log = tmp_path / "run.jsonl"
    _one_run(log)
    program = EXAMPLES / "finance" / "finance.car"
    args = ["replay", str(log), "--program", str(program), "--examples", "-1"]
    result = runner.invoke(app, args)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "error: --examples -1: give 0 or more examples per change category (0: counts only)\n"
    )
    result = runner.invoke(app, [*args[:-1], "0"])  # the counts, no example
    assert result.exit_code == 1 and "allow -> deny: 1 of 1" in result.stdout, result.output


# -- planner eval --resamples --------------------------------------------------------------


def test_planner_eval_refuses_resamples_beyond_the_bound(tmp_path: Path) -> None:
    """`--resamples 10000000` ran for minutes, and larger counts for ever (or out of memory);
    the check comes first, so a refused count costs nothing."""
    resamples = "100001"
    tasks = tmp_path / "tasks.jsonl"
    write_groups(generate_tasks(2, seed=1, candidates=(2, 2)), tasks)
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text("task,candidate,success\nt0,t0c0,1\nt0,t0c1,0\n")
    args = ["planner", "eval", str(tasks), "--outcomes", str(outcomes), "--resamples"]
    result = runner.invoke(app, [*args, resamples])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: --resamples {resamples}: give 0 to 100000 bootstrap resamples"
        " (0: no intervals; the default is 1000)\n"
    )
    assert runner.invoke(app, [*args, "-1"]).stderr.startswith("error: --resamples -1: give 0")
    # the bound itself is taken (outcomes of no task here: nothing to resample, so quick)
    outcomes.write_text("task,candidate,success\nzz,zzc0,1\n")
    result = runner.invoke(app, [*args, "100000"])
    assert result.exit_code == 1 and "no task has recorded outcomes" in result.stderr
