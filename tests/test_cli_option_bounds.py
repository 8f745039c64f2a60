"""CLI options that took values they should refuse, found in a user trial: each is now a usage
error (exit 2) saying what is wrong and what to give, before any work, never a traceback."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from carlang_runtime.engine import EventLog, EventStore, JsonlSink, Runtime, SqliteSink
from carlang_runtime.experiments.generate import generate_tasks, write_groups
from carlang_runtime.experiments.search import split_tasks
from carlang_runtime.planner import SettingError
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


# -- planner search --split ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("split", "message"),
    [
        ("100:0", "the test part is 0, so no task would be held out"),
        ("0:100", "the train part is 0, so there would be nothing to search on"),
        ("0:0", "the train part is 0, so there would be nothing to search on"),
        ("-1:2", "the train part is -1, so there would be nothing to search on"),
        ("nan:1", "write TRAIN:TEST with two numbers (like 70:30) or kfold K"),
        ("inf:1", "write TRAIN:TEST with two numbers (like 70:30) or kfold K"),
    ],
)
def test_a_split_with_an_empty_part_is_refused(split: str, message: str) -> None:
    """`--split 100:0` searched with nothing held out (`held-out -`); nan and inf were an
    internal error."""
    tasks = generate_tasks(4, seed=1, candidates=(2, 2))
    with pytest.raises(SettingError) as caught:
        split_tasks(tasks, split, 0)
    assert str(caught.value).startswith(f"--split {split}: {message}")


def test_a_split_gives_each_part_at_least_one_task() -> None:
    """95:5 of 10 tasks rounded the test part to none; it now holds one out (as 5:95 already
    kept one to train on). Huge parts are still a ratio (1e308:1e308 was an internal error)."""
    tasks = generate_tasks(10, seed=1, candidates=(2, 2))
    for split, sizes in [("95:5", (9, 1)), ("5:95", (1, 9)), ("1e308:1e308", (5, 5))]:
        [(train, test)] = split_tasks(tasks, split, 0)
        assert (len(train), len(test)) == sizes, split
    # a single task can only be trained on (the held-out figure is then `-`)
    assert split_tasks(tasks[:1], "50:50", 0) == [(tasks[:1], [])]


def test_planner_search_refuses_a_split_that_holds_out_nothing(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    write_groups(generate_tasks(4, seed=1, candidates=(2, 2)), tasks)
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text(
        "task,candidate,success\n" + "".join(f"t{n},t{n}c0,1\nt{n},t{n}c1,0\n" for n in range(4))
    )
    space = tmp_path / "space.toml"
    space.write_text("cost_weight = [0.0, 1.0]\n")
    best = tmp_path / "best.json"
    args = ["planner", "search", str(tasks), "--outcomes", str(outcomes), "--space", str(space)]
    result = runner.invoke(app, [*args, "--workers", "1", "--split", "100:0", "-o", str(best)])
    assert (result.exit_code, result.stdout) == (2, ""), result.output
    assert result.stderr.startswith(
        "error: --split 100:0: the test part is 0, so no task would be held out;"
    )
    assert not best.exists()


# -- graph --format and -o -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "name", "message"),
    [
        (
            "mermaid",
            "x.png",
            "--format mermaid contradicts -o x.png (its suffix says png): drop --format (the suffix"
            " decides), or name a .mmd file",
        ),
        (
            "dot",
            "x.svg",
            "--format dot contradicts -o x.svg (its suffix says svg): drop --format (the suffix"
            " decides), or name a .dot file",
        ),
        (
            "svg",
            "x.gv",
            "--format svg contradicts -o x.gv (its suffix says dot): drop --format (the suffix"
            " decides), or name a .svg file",
        ),
    ],
)
def test_graph_refuses_a_format_the_output_suffix_contradicts(
    tmp_path: Path, fmt: str, name: str, message: str
) -> None:
    """`-o x.png --format mermaid` wrote Mermaid text into x.png."""
    output = tmp_path / name
    program = str(EXAMPLES / "release" / "release.car")
    args = ["graph", program, "--root", str(EXAMPLES), "--format", fmt, "-o", str(output)]
    result = runner.invoke(app, args)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"error: {message.replace(name, str(output))}\n"
    assert not output.exists()


@pytest.mark.parametrize("name", ["x.mmd", "x.MERMAID", "x.txt", "x", "-"])
def test_graph_takes_a_format_the_output_suffix_agrees_with_or_does_not_know(
    tmp_path: Path, name: str
) -> None:
    output = name if name == "-" else str(tmp_path / name)
    program = str(EXAMPLES / "release" / "release.car")
    args = ["graph", program, "--root", str(EXAMPLES), "--format", "mermaid", "-o", output]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    written = result.stdout if name == "-" else Path(output).read_text()
    assert written.startswith("flowchart TB")


# -- events on a SQLite log ----------------------------------------------------------------


def _side_files(log: Path) -> list[str]:
    return sorted(p.name for p in log.parent.iterdir() if p.name != log.name)


def test_events_leaves_no_files_beside_the_log_it_reads(tmp_path: Path) -> None:
    """Reading a journal (read-only, it was) left run.db-wal and run.db-shm behind."""
    log = tmp_path / "run.db"
    _one_run(log)
    assert _side_files(log) == []
    before = log.read_bytes()
    result = runner.invoke(app, ["events", str(log)])
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("1 run\n")
    assert _side_files(log) == [] and log.read_bytes() == before
    store = EventStore(log)  # (it may write, to remove the WAL files: it is refused any write)
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store._connection.execute("DELETE FROM events")
    finally:
        store.close()
    assert _side_files(log) == [] and log.read_bytes() == before


def test_events_reads_a_log_a_live_run_is_writing(tmp_path: Path) -> None:
    """A run still writing the journal: what it committed is read, its WAL is left to it, and
    it goes on writing after the read."""
    log = tmp_path / "run.db"
    rt = Runtime(events=EventLog([SqliteSink(log)]))
    rt.execute(proposal(write("w", "k", 1)))  # (committed at the run's end; the sink stays open)
    result = runner.invoke(app, ["events", str(log)])
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("1 run\n")
    assert _side_files(log) == ["run.db-shm", "run.db-wal"]  # the writer's, still open
    rt.execute(proposal(write("w", "k", 2)))
    rt.close()
    assert _side_files(log) == []
    result = runner.invoke(app, ["events", str(log)])
    assert result.stdout.endswith("2 runs\n")
