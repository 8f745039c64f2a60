"""The JSON and JSONL inputs of the CLI (event logs, feedback files, configs, outcomes): bad
input is a usage error (exit 2) saying where and what, never an internal error."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from carlang.cli import app

runner = CliRunner()

ROOT = Path(__file__).resolve().parent.parent
PLANS = str(ROOT / "examples" / "planning" / "deploy_plans.car")


def carlang(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


DEEP_COMMANDS = [
    ("events", "{}"),
    ("replay", "{} --program " + PLANS),
    ("planner learn", "{} -o {out}"),
    ("rank", PLANS + " --config {}"),
    ("rank", PLANS + " --feedback {}"),
    ("planner eval", PLANS + " --outcomes {}"),
]


@pytest.mark.parametrize(("command", "args"), DEEP_COMMANDS)
@pytest.mark.parametrize("name", ["deep.json", "deep.jsonl"])
def test_deep_nesting_is_a_located_usage_error(
    tmp_path: Path, command: str, args: str, name: str
) -> None:
    deep = tmp_path / name
    deep.write_text("[" * 100_000 + ("\n" if name.endswith("l") else ""))
    argv = command.split() + args.format(str(deep), out=str(tmp_path / "out.json")).split()
    code, output = carlang(*argv)
    assert code == 2, output
    assert f"{deep}:1:129:" in output and "nested too deeply (more than 128 levels)" in output
    assert "cut short" not in output
