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


EVENT = {
    "seq": 1,
    "kind": "run_started",
    "trace_id": "r1",
    "proposal_id": "p",
    "timestamp": "2024-01-01T00:00:00Z",
    "data": {},
}
EVENT_COMMANDS = [
    ("events", "{}"),
    ("replay", "{} --program " + PLANS),
    ("planner learn", "{} -o {out}"),
    ("rank", PLANS + " --feedback {}"),
    ("planner eval", PLANS + " --outcomes {}"),
]


@pytest.mark.parametrize(("command", "args"), EVENT_COMMANDS)
@pytest.mark.parametrize(
    ("field", "value", "said"),
    [("proposal_id", {"x": 1}, "a string or null, not an object"), ("data", [1], "an object")],
)
def test_a_wrongly_typed_event_field_is_a_located_usage_error(
    tmp_path: Path, command: str, args: str, field: str, value: object, said: str
) -> None:
    import json

    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({**EVENT, field: value}) + "\n")
    argv = command.split() + args.format(str(log), out=str(tmp_path / "out.json")).split()
    code, output = carlang(*argv)
    column = json.dumps({**EVENT, field: value}).index(json.dumps(value)) + 1
    assert code == 2, output
    assert f"{log}:1:{column}: error: not a valid event: {field} must be {said}" in output
