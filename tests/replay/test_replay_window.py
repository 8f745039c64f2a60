"""`carlang replay --since A --until B` with A after B: no decision can be in that window, so
it is a usage error (it replayed none and passed, so a CI gate with its window inverted passed
whatever the program changed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from carlang.cli import app
from tests.conftest import ROOT

FINANCE = ROOT / "examples" / "finance" / "finance.car"
TOOLS = str(ROOT / "tests" / "replay" / "finance_tools.py") + ":TOOLS"


@pytest.fixture(scope="module")
def finance_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real run of the finance example."""
    log = tmp_path_factory.mktemp("window") / "runs.jsonl"
    args = ["run", str(FINANCE), "--tools", TOOLS, "--events", str(log), "--auto-approve"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return log


def replay(log: Path, *window: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["replay", str(log), "--program", str(FINANCE), *window])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("since", "until"),
    [
        ("2030-01-01T00:00:00Z", "2020-01-01T00:00:00Z"),
        ("2026-12-01T00:00:01+00:00", "2026-12-01T01:00:00+02:00"),  # (23:00 the day before)
    ],
)
def test_an_inverted_window_is_a_usage_error(finance_log: Path, since: str, until: str) -> None:
    code, out, err = replay(finance_log, "--since", since, "--until", until)
    assert code == 2, out + err
    assert out == ""
    assert err.strip() == (
        f"error: --since {since} is after --until {until}: no decision can be in that window;"
        " give the earlier time to --since (swap them)"
    )


def test_a_window_the_right_way_round_replays(finance_log: Path) -> None:
    code, out, err = replay(
        finance_log, "--since", "2020-01-01T00:00:00Z", "--until", "2999-01-01T00:00:00Z"
    )
    assert code == 0, out + err
    assert "warning: no decision was judged" not in err


def test_a_window_of_one_instant_is_no_error(finance_log: Path) -> None:
    # (both ends are included: a window of one instant is not inverted)
    code, _, err = replay(finance_log, "--since", "2020-01-01T00:00:00Z", "--until", "2020-01-01")
    assert code == 0, err
    assert "warning: no decision was judged" in err
