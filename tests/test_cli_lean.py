"""`carlang check` with plain arguments runs without typer (`carlang.cli.lean`): it must read
its arguments as typer does, hand anything else to typer, and print, exit and fail exactly as
the typer command does."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from carlang.cli import app
from carlang.cli.checking import CheckFormat
from carlang.cli.lean import check_arguments, check_main

from .helpers import run_carlang

_CLEAN = "tool t(x: int)\nproposal p {\n  a = t(x: 1)\n}\n"
_WARNS = "tool t(x: int)\ntool unused(y: string)\nproposal p {\n  a = t(x: 1)\n}\n"
_FAILS = "tool t(x: int)\nproposal p {\n  a = t(x: 1)\n  b = nope(x: 2) after a\n}\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "clean.car").write_text(_CLEAN)
    (tmp_path / "warns.car").write_text(_WARNS)
    (tmp_path / "fails.car").write_text(_FAILS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "args",
    [
        ["src/clean.car"],
        ["fails.car"],
        ["warns.car", "--strict"],
        ["--format", "json", "fails.car"],
        ["--format=sarif", "warns.car"],
        ["--root", "src", "src/clean.car"],
        ["src"],
        [],
        ["--", "fails.car"],
        ["no-such.car"],
        ["--root=no-such-dir", "fails.car"],
    ],
)
def test_lean_check_prints_and_exits_as_the_typer_command(
    project: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = check_main(args)
    lean = capsys.readouterr()
    typer_run = CliRunner().invoke(app, ["check", *args])
    assert code is not None
    assert (code, lean.out, lean.err) == (
        typer_run.exit_code,
        typer_run.stdout,
        typer_run.stderr,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["-h"],
        ["--bogus", "a.car"],
        ["--format", "xml", "a.car"],
        ["--format"],
        ["--format="],
        ["--root"],
        ["--root", "--strict", "a.car"],
        ["--strict", "--strict", "a.car"],
        ["--strict=yes", "a.car"],
        ["-"],
        [""],
    ],
)
def test_anything_but_plain_arguments_goes_to_typer(args: list[str]) -> None:
    assert check_arguments(args) is None


def test_plain_arguments_are_read_as_typer_reads_them() -> None:
    assert check_arguments(["a.car", "--strict", "--format=json", "--root", "r", "b"]) == {
        "paths": [Path("a.car"), Path("b")],
        "strict": True,
        "output": CheckFormat.json,
        "root": Path("r"),
    }
    assert check_arguments(["--", "-odd.car"]) == {
        "paths": [Path("-odd.car")],
        "strict": False,
        "output": CheckFormat.text,
        "root": None,
    }
    assert check_arguments([])["paths"] is None  # type: ignore[index]


def test_typer_still_answers_what_the_lean_path_leaves(project: Path) -> None:
    helped = run_carlang("check", "--help", cwd=project)
    assert helped.returncode == 0 and "--strict" in helped.stdout
    bad = run_carlang("check", "--format", "xml", "fails.car", cwd=project)
    assert bad.returncode == 2 and "xml" in bad.stderr
