"""The walk-through of examples/experiments/README.md runs, command by command."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carlang.cli import app

FOLDER = Path(__file__).resolve().parent.parent / "examples" / "experiments"


def commands() -> list[str]:
    """The `$ ...` lines of the README's console blocks, in order."""
    return [
        line[2:]
        for line in (FOLDER / "README.md").read_text().splitlines()
        if line.startswith("$ ")
    ]


def test_the_readme_walk_through_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("tasks.jsonl", "runs.jsonl", "space.toml", "generate.py"):
        shutil.copy(FOLDER / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    steps = commands()
    assert [s.split()[:3] for s in steps if s.startswith("carlang planner")] == [
        ["carlang", "planner", "learn"],
        ["carlang", "planner", "eval"],
        ["carlang", "planner", "search"],
        ["carlang", "planner", "search"],
    ]
    runner = CliRunner()
    for step in steps:
        argv = shlex.split(step)
        if argv[0] == "python":
            done = subprocess.run(
                [sys.executable, *argv[1:]], capture_output=True, text=True, check=False
            )
            assert done.returncode == 0, (step, done.stderr)
            continue
        result = runner.invoke(app, [*argv[1:], "--workers", "1"] if "search" in argv else argv[1:])
        assert result.exit_code == 0, (step, result.output)
    assert (tmp_path / "regenerated" / "tasks.jsonl").exists()
    assert (tmp_path / "feedback.json").exists() and (tmp_path / "best.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["learn", "runs.jsonl", "-o", "{missing}/fb.json"],
            "-o {missing}/fb.json: there is no folder",
        ),
        (["learn", "runs.jsonl", "-o", "{tmp}"], "that is a folder; name a file"),
        (
            [
                "search",
                "tasks.jsonl",
                "--outcomes",
                "runs.jsonl",
                "--space",
                "space.toml",
                "-o",
                "{missing}/best.json",
            ],
            "-o {missing}/best.json: there is no folder",
        ),
        (
            [
                "search",
                "tasks.jsonl",
                "--outcomes",
                "runs.jsonl",
                "--space",
                "space.toml",
                "--plot",
                "{missing}/p.png",
            ],
            "--plot {missing}/p.png: there is no folder",
        ),
    ],
)
def test_an_output_that_cannot_be_written_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(FOLDER)
    missing = str(tmp_path / "missing")
    filled = [a.format(missing=missing, tmp=tmp_path) for a in args]
    result = CliRunner().invoke(app, ["planner", *filled])
    assert result.exit_code == 2, result.output
    assert message.format(missing=missing) in result.output


def test_a_dataset_given_where_an_event_log_goes_is_named_for_what_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(FOLDER)
    for args in (
        ["planner", "learn", "tasks.jsonl", "-o", "unused.json"],
        ["rank", "tasks.jsonl", "--feedback", "tasks.jsonl"],
    ):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "tasks.jsonl:1:1: error: not an event" in result.output
        assert "it looks like a task of a dataset" in result.output
    assert not (FOLDER / "unused.json").exists()


def test_a_bad_config_or_space_names_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(FOLDER)
    (tmp_path / "broken.json").write_text('{"cost_weight": 0.1\n')
    (tmp_path / "range.json").write_text('{"cost_weight": 7}')
    (tmp_path / "space.toml").write_text("cost_weight = [0, 2]\n")
    runner = CliRunner()
    broken = runner.invoke(app, ["rank", "tasks.jsonl", "--config", str(tmp_path / "broken.json")])
    assert broken.exit_code == 2 and f"{tmp_path / 'broken.json'}:2:1: error: not a config" in (
        broken.output
    )
    ranged = runner.invoke(app, ["rank", "tasks.jsonl", "--config", str(tmp_path / "range.json")])
    assert ranged.exit_code == 2
    assert f"{tmp_path / 'range.json'}:1:17: error: setting cost_weight = 7" in ranged.output
    space = runner.invoke(
        app,
        [
            "planner",
            "search",
            "tasks.jsonl",
            "--outcomes",
            "runs.jsonl",
            "--space",
            str(tmp_path / "space.toml"),
        ],
    )
    assert space.exit_code == 2
    assert f"{tmp_path / 'space.toml'}:1:15: error: setting cost_weight = 2.0" in space.output


def test_the_folder_ranks_as_a_whole_its_event_log_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(FOLDER)
    result = CliRunner().invoke(app, ["rank", ".", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1 + 36  # the header, every candidate of tasks.jsonl
    assert "note: skipped runs.jsonl: an event log of recorded runs" in result.stderr


def test_a_broken_toml_config_and_outcome_cells_say_where_and_what(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(FOLDER)
    runner = CliRunner()
    config = tmp_path / "c.toml"
    config.write_text("cost_weight = 0.5\npolicy_weight = \n")
    result = runner.invoke(app, ["rank", "tasks.jsonl", "--config", str(config)])
    assert (result.exit_code, result.stdout) == (2, "")
    # the form of the JSON config's error (and every diagnostic), not "(at line 2, column 17)"
    assert result.stderr == f"{config}:2:17: error: not a config (TOML): invalid value\n"
    outcomes = tmp_path / "oc.csv"
    for rows, said in [
        ("t0,t0c0,1,2.5", "column `runs`: '2.5' is not a whole number of runs, 1 or more"),
        ("t0,t0c0,1,0", "column `runs`: '0' is not a whole number of runs, 1 or more"),
        ("t0,t0c0,yes,1", "column `success`: 'yes' is not a number between 0 and 1"),
        ("t0,t0c0,1.5,1", "column `success`: '1.5' is not a number between 0 and 1"),
        ("t0,t0c0,,1", "column `success` is empty; it needs a number between 0 and 1"),
        ("t0,t0c0,1,1,x", "column `cost`: 'x' is not a number (the mean cost of a run)"),
        (
            '"t0,t0c0,1,1',
            'a quoted cell is never closed: the `"` that opens it needs another to close it'
            ' (a quote inside a quoted cell is written twice: `""`)',
        ),
    ]:
        outcomes.write_text(f"task,candidate,success,runs,cost\nt0,t0c1,0,1,\n{rows}\n")
        result = runner.invoke(app, ["planner", "eval", "tasks.jsonl", "--outcomes", str(outcomes)])
        assert (result.exit_code, result.stdout) == (2, "")
        assert result.stderr == f"error: {outcomes}:3: {said}\n"


@pytest.mark.slow  # (a process per case)
@pytest.mark.parametrize("args", [["--tasks", "-2"], ["--runs", "0"], ["--tasks", "x"]])
def test_the_generator_refuses_counts_below_one(tmp_path: Path, args: list[str]) -> None:
    """`generate.py --tasks -2` printed `0 tasks, 0 runs recorded` and exited 0 (a trial)."""
    done = subprocess.run(
        [sys.executable, str(FOLDER / "generate.py"), *args, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and f"argument {args[0]}: " in done.stderr, done.stderr
    assert not (tmp_path / "tasks.jsonl").exists()
