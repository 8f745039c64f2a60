"""`carlang planner eval|search` on bad input found in a user trial: a search space whose grid
is too large is refused at once (at its line:col, with `rank --sweep`'s limit), and a corrupt
line of an `--outcomes` event log is refused as `planner learn` refuses it, not passed over."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from carlang_runtime.planner.sweep import MAX_POINTS
from typer.testing import CliRunner

from carlang.cli import app
from tests.conftest import ROOT

runner = CliRunner()
EXPERIMENTS = ROOT / "examples" / "experiments"
TASKS = EXPERIMENTS / "tasks.jsonl"
RUNS = EXPERIMENTS / "runs.jsonl"


def _search_in_a_subprocess(space: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`carlang planner search` with `space`, in a process that cannot outlive 20 seconds (a
    space too large to search made it hang, taking memory without bound)."""
    args = [sys.executable, "-m", "carlang", "planner", "search", str(TASKS)]
    args += ["--outcomes", str(RUNS), "--space", str(space), "--workers", "1", *extra]
    try:
        return subprocess.run(
            args, capture_output=True, text=True, timeout=20, env=os.environ.copy(), check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail("planner search worked on a space too large to search instead of refusing it")


@pytest.mark.slow  # (a fresh carlang process per case, so that the old hang times out)
@pytest.mark.parametrize(
    ("spec", "extra", "many"),
    [
        ("cost_weight = { min = 0, max = 1, step = 1e-9 }", (), "1000000000 values"),
        ("cost_weight = { min = 0, max = 1, step = 1e-9 }", ("--method", "random"), "values"),
        ("cost_weight = { min = 0, max = 1, step = 5e-324 }", (), "more values than can be"),
    ],
)
def test_a_space_too_large_to_search_is_a_usage_error_at_its_line(
    tmp_path: Path, spec: str, extra: tuple[str, ...], many: str
) -> None:
    space = tmp_path / "space.toml"
    space.write_text(f"# a typo'd step\n{spec}\n")
    done = _search_in_a_subprocess(space, *extra)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(f"{space}:2:15: error: cost_weight: min 0 to max 1 by step "), line
    assert many in line
    assert f"; at most {MAX_POINTS}: raise the step or narrow min and max" in line


def test_a_range_within_the_limit_is_still_searched(tmp_path: Path) -> None:
    space = tmp_path / "space.toml"
    space.write_text("cost_weight = { min = 0, max = 1, step = 0.25 }\n")
    args = ["planner", "search", str(TASKS), "--outcomes", str(RUNS), "--space", str(space)]
    result = runner.invoke(app, [*args, "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert '"cost_weight": 0.75' in result.stdout


def _with_garbage(tmp_path: Path, garbage: str) -> Path:
    """The example's event log with `garbage` as its line 11 (of many: not the last)."""
    lines = RUNS.read_text().splitlines(keepends=True)
    log = tmp_path / "runs.jsonl"
    log.write_text("".join([*lines[:10], garbage + "\n", *lines[10:]]))
    return log


@pytest.mark.parametrize(
    ("garbage", "problem"),
    [
        ("this is garbage", ":11:1: error: malformed JSON"),
        ('{"seq": 11, "kind": "action_executing", "trace_id": "0a', ":11:"),
        (
            '{"seq": "eleven", "kind": "action_executing"}',
            ":11:9: error: not a valid event: seq must be",
        ),
    ],
)
@pytest.mark.parametrize("command", ["eval", "search"])
def test_a_corrupt_line_of_an_outcomes_log_is_refused_as_learn_refuses_it(
    tmp_path: Path, command: str, garbage: str, problem: str
) -> None:
    log = _with_garbage(tmp_path, garbage)
    learned = runner.invoke(app, ["planner", "learn", str(log), "-o", str(tmp_path / "f.json")])
    assert learned.exit_code == 2, learned.output
    refusal = learned.stderr.strip().splitlines()[-1]
    assert refusal.startswith(f"{log}{problem}"), refusal

    args = ["planner", command, str(TASKS), "--outcomes", str(log)]
    if command == "eval":
        args += ["--resamples", "0"]
    else:
        space = tmp_path / "space.toml"
        space.write_text("cost_weight = [0.1, 0.5]\n")
        args += ["--space", str(space), "--workers", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.strip().splitlines()[-1] == refusal


def test_trials_with_a_grid_search_and_a_value_swept_twice_are_usage_errors(
    tmp_path: Path,
) -> None:
    """A trial: `planner search --method grid --trials 5` ignored --trials without a word,
    and `rank --sweep cost_weight=0.1,0.1` wrote every row twice."""
    space = tmp_path / "space.toml"
    space.write_text("cost_weight = [0.1, 0.5]\n")
    args = ["planner", "search", str(TASKS), "--outcomes", str(RUNS), "--space", str(space)]
    for method in ((), ("--method", "grid")):
        refused = runner.invoke(app, [*args, *method, "--trials", "5"])
        assert (refused.exit_code, refused.stdout) == (2, ""), refused.output
        assert refused.stderr == (
            "error: --trials counts the points of --method random or optuna; a grid search"
            " tries every point of the space: drop --trials, or choose --method random\n"
        )
    program = ROOT / "examples" / "planning" / "deploy_plans.car"
    swept = runner.invoke(app, ["rank", str(program), "--sweep", "cost_weight=0.1,0.2,0.1"])
    assert (swept.exit_code, swept.stdout) == (2, ""), swept.output
    assert "--sweep cost_weight=0.1,0.2,0.1: 0.1 is given twice; give each value once" in (
        swept.stderr
    )
    fine = runner.invoke(app, ["rank", str(program), "--sweep", "cost_weight=0:1e-9:1e-11"])
    assert (fine.exit_code, fine.stdout) == (2, ""), fine.output
    assert "the step is finer than settings are written (10 decimals)" in fine.stderr


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        (["learn", "{log}", "-o", "{log}"], "that is the event log"),
        (["learn", "{log}", "-o", "{dir}/fb.txt"], "name a .json file (like fb.json)"),
        (
            ["search", "{tasks}", "--outcomes", "{log}", "--space", "{space}", "-o", "{tasks}"],
            "that is the dataset",
        ),
        (
            [
                "search",
                "{tasks}",
                "--outcomes",
                "{log}",
                "--space",
                "{space}",
                "-o",
                "{dir}/b.toml",
            ],
            "the chosen config is written as JSON",
        ),
        (
            ["search", "{tasks}", "--outcomes", "{log}", "--space", "{space}"]
            + ["--config", "{config}", "-o", "{dir}/../{dir_name}/config.json"],
            "that is the config",
        ),
        (
            ["search", "{tasks}", "--outcomes", "{log}", "--space", "{space}"]
            + ["--plot", "{dir}/space.toml"],
            "that is the search space",
        ),
    ],
)
def test_an_output_never_replaces_an_input(
    tmp_path: Path, command: list[str], problem: str
) -> None:
    """`planner learn runs.jsonl -o runs.jsonl` replaced the event log with the feedback;
    `search -o tasks.jsonl` the dataset; `-o best.toml` wrote JSON that `rank --config`
    could not read back (it reads .toml as TOML). Each is refused before any work, every
    input left as it was."""
    names = {
        "log": "runs.jsonl",
        "tasks": "tasks.jsonl",
        "space": "space.toml",
        "config": "config.json",
    }
    for name in names.values():
        (tmp_path / name).write_text(
            (EXPERIMENTS / name).read_text() if name != "config.json" else '{"cost_weight": 0.3}\n'
        )
    before = {name: (tmp_path / name).read_bytes() for name in names.values()}
    values = {key: str(tmp_path / name) for key, name in names.items()}
    values |= {"dir": str(tmp_path), "dir_name": tmp_path.name}
    args = ["planner", *(part.format(**values) for part in command)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert problem in result.stderr
    assert {name: (tmp_path / name).read_bytes() for name in names.values()} == before


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ('{"monte_carlo_trials": true}', "monte_carlo_trials = true: input should be a valid"),
        ('{"cost_weight": "2"}', 'cost_weight = "2": input should be a valid number'),
    ],
)
def test_a_config_files_values_keep_their_types(
    tmp_path: Path, document: str, problem: str
) -> None:
    """`{"monte_carlo_trials": true}` ran 1 trial and `"2"` was a number: a config file's
    values are typed, so they are taken as written (`--set`'s text is converted)."""
    config = tmp_path / "c.json"
    config.write_text(document)
    result = runner.invoke(app, ["rank", str(TASKS), "--config", str(config)])
    assert result.exit_code == 2
    assert f"{config}:1:" in result.stderr and problem in result.stderr
    fine = runner.invoke(app, ["rank", str(TASKS), "--set", "cost_weight=0.5"])
    assert fine.exit_code in (0, 1), fine.output
