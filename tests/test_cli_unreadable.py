"""Programs and folders the system will not let carlang read: a usage error (exit 2) naming
the path and the reason, never an internal error, on the lean path and typer's alike."""

from __future__ import annotations

import builtins
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from carlang.cli import app
from carlang.cli.lean import lean_main

runner = CliRunner()

PROGRAM = (
    "tool t(x: int)\nproposal a { s = t(x: 1) }\n"
    'test "t is allowed" {\n  action t(x: 1)\n  expect allow\n}\n'
)


@pytest.fixture
def unreadable(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[Path]]:
    """Paths whose opening fails with EACCES, as a file with mode 000 does for a user who is
    not root (a root test run cannot make one)."""
    refused: set[Path] = set()
    real = io.open

    def guarded_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, os.PathLike)) and Path(file).resolve() in refused:
            raise PermissionError(13, "Permission denied", str(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", guarded_open)
    monkeypatch.setattr(builtins, "open", guarded_open)
    yield refused


def _both(args: list[str], capsys: pytest.CaptureFixture[str]) -> list[tuple[int, str]]:
    """Exit code and error output of `carlang ARGS` on the lean path and through typer."""
    code = lean_main(args[0], args[1:])
    assert code is not None
    lean = (code, capsys.readouterr().err)
    typed = runner.invoke(app, args)
    return [lean, (typed.exit_code, typed.output)]


@pytest.mark.parametrize("command", ["check", "test"])
def test_an_unreadable_program_is_a_usage_error(
    command: str, tmp_path: Path, unreadable: set[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    program = tmp_path / "noperm.car"
    program.write_text(PROGRAM)
    unreadable.add(program.resolve())
    for code, output in _both([command, str(program)], capsys):
        assert code == 2, output
        assert f"error: cannot read {program}: permission denied" in output
        assert "internal" not in output


@pytest.mark.parametrize("command", ["check", "test", "rank"])
def test_a_folder_holding_an_unreadable_program_is_a_usage_error(
    command: str, tmp_path: Path, unreadable: set[Path]
) -> None:
    (tmp_path / "a.car").write_text(PROGRAM)
    (tmp_path / "b.car").write_text(PROGRAM)
    unreadable.add((tmp_path / "b.car").resolve())
    result = runner.invoke(app, [command, str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "cannot read" in result.output and "b.car: permission denied" in result.output
    assert "internal" not in result.output


def test_a_file_in_a_folder_that_cannot_be_entered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "a.car").write_text(PROGRAM)
    locked.chmod(0)
    try:
        if os.access(locked / "a.car", os.F_OK):
            pytest.skip("running as root: a folder with mode 000 can still be entered")
        for code, output in _both(["check", str(locked / "a.car")], capsys):
            assert code == 2 and "permission denied" in output and "internal" not in output
    finally:
        locked.chmod(0o755)


def test_a_symbolic_link_loop_is_named_as_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loop = tmp_path / "loop.car"
    loop.symlink_to(loop)
    for code, output in _both(["check", str(loop)], capsys):
        assert code == 2
        assert f"cannot read {loop}: too many levels of symbolic links" in output
    result = runner.invoke(app, ["compile", str(loop)])
    assert result.exit_code == 2 and "too many levels of symbolic links" in result.output


def test_a_folder_that_cannot_be_listed_is_not_an_empty_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "noxdir"
    folder.mkdir()
    (folder / "a.car").write_text(PROGRAM)
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        if Path(path) == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    for code, output in _both(["check", str(folder)], capsys):
        assert code == 2
        assert f"cannot read {folder}: permission denied" in output
        assert "no .car files" not in output
