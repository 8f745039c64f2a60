"""`CARLANG_DEBUG`: only 1, true or yes (any case) turn it on; with it on an internal error
prints its traceback and still exits 101."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from carlang.cli import app, checking
from carlang.cli.lean import lean_main

runner = CliRunner()


@pytest.fixture
def broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A program whose check hits a bug in carlang."""

    def bug(*_: object, **__: object) -> None:
        raise RuntimeError("a planted bug")

    monkeypatch.setattr(checking, "compile_all", bug)
    program = tmp_path / "p.car"
    program.write_text("tool t(x: int)\n")
    return program


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "Yes"])
def test_debug_on_prints_the_traceback_and_still_exits_101(
    value: str, broken: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CARLANG_DEBUG", value)
    assert lean_main("check", [str(broken)]) == 101
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "RuntimeError: a planted bug" in err
    assert "internal error: RuntimeError: a planted bug" in err
    result = runner.invoke(app, ["check", str(broken), "--strict"])
    assert result.exit_code == 101 and "Traceback" in result.output


@pytest.mark.parametrize("value", ["", "0", "false", "no", "off"])
def test_debug_off_values_leave_it_off(
    value: str, broken: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CARLANG_DEBUG", value)
    assert lean_main("check", [str(broken)]) == 101
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("internal error: RuntimeError")
