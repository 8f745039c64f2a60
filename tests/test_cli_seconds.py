"""Options that are a number of seconds take a finite number above 0 (at most a year): `inf`
and `1e308` overflowed the system's timers (internal OverflowError), `nan` and `-1` were
taken (`did not answer within nans`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from carlang.cli import app
from tests.conftest import ROOT

runner = CliRunner()
NOTES = str(ROOT / "examples" / "files" / "notes.car")


@pytest.mark.parametrize("value", ["inf", "1e308", "nan", "-1", "0", "-inf"])
@pytest.mark.parametrize(
    "args",
    [
        ["mcp", "import", "--timeout", "{}", "--", "sleep", "100"],
        ["mcp", "proxy", NOTES, "--idle-timeout", "{}"],
    ],
)
def test_seconds_must_be_a_finite_number_above_0(
    args: list[str], value: str, tmp_path: Path
) -> None:
    result = runner.invoke(app, [arg.format(value) for arg in args])
    assert result.exit_code == 2, result.output
    assert "internal" not in result.output
    assert "above 0" in result.output or "greater than or equal to 1" in result.output
