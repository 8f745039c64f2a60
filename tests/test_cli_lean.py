"""`carlang check` and `carlang verify` with plain arguments run without typer
(`carlang.cli.lean`): they must read their arguments as typer does, hand anything else to
typer, and print, exit and fail exactly as the typer command does."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carlang.cli import app, testing
from carlang.cli.checking import CheckFormat
from carlang.cli.lean import lean_main, plain_arguments
from carlang.cli.verifying import TextOrJson

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
        ["-"],
    ],
)
def test_lean_check_prints_and_exits_as_the_typer_command(
    project: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = lean_main("check", args)
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
        [""],
    ],
)
def test_anything_but_plain_arguments_goes_to_typer(args: list[str]) -> None:
    assert plain_arguments("check", args) is None


def test_plain_arguments_are_read_as_typer_reads_them() -> None:
    assert plain_arguments("check", ["a.car", "--strict", "--format=json", "--root", "r", "b"]) == {
        "paths": [Path("a.car"), Path("b")],
        "strict": True,
        "output": CheckFormat.json,
        "root": Path("r"),
    }
    assert plain_arguments("check", ["--", "-odd.car"]) == {"paths": [Path("-odd.car")]}
    assert plain_arguments("check", []) == {"paths": None}


def test_typer_still_answers_what_the_lean_path_leaves(project: Path) -> None:
    helped = run_carlang("check", "--help", cwd=project)
    assert helped.returncode == 0 and "--strict" in helped.stdout
    bad = run_carlang("check", "--format", "xml", "fails.car", cwd=project)
    assert bad.returncode == 2 and "xml" in bad.stderr


_EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "proposals"
_TOOLS = "fetch,deploy,rollback_deploy"


@pytest.fixture
def proposals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("release.json", "state.json", "tools.json"):
        shutil.copy(_EXAMPLES / name, tmp_path / name)
    plain = {"id": "p", "actions": [{"id": "a", "type": "tool_call", "tool": "fetch"}]}
    (tmp_path / "plain.json").write_text(json.dumps(plain))
    (tmp_path / "broken.json").write_text('{"id": "p",\n "actions": [{"type": "tool_call",]}')
    (tmp_path / "wrong.json").write_text('{"actions": [{"type": "tool_call", "tool": 7}]}')
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "args",
    [
        ["release.json", "--tools", _TOOLS],
        ["release.json", f"--tools={_TOOLS}", "--state", "state.json"],
        ["release.json", "--tool-schemas", "tools.json", "--format", "json"],
        ["plain.json", "--tools", "other", "--max-actions", "0"],
        ["--format=json", "plain.json"],
        ["release.json", "--tools", "fetch", "--tool-schemas", "tools.json"],
        ["broken.json"],
        ["wrong.json"],
        ["no-such.json"],
        ["plain.json", "--state", "no-such.json"],
        ["--", "plain.json"],
    ],
)
def test_lean_verify_prints_and_exits_as_the_typer_command(
    proposals: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = lean_main("verify", args)
    lean = capsys.readouterr()
    typer_run = CliRunner().invoke(app, ["verify", *args])
    assert code is not None
    assert (code, lean.out, lean.err) == (
        typer_run.exit_code,
        typer_run.stdout,
        typer_run.stderr,
    )


def test_lean_verify_reads_a_proposal_from_standard_input(
    proposals: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (proposals / "release.json").read_text()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    code = lean_main("verify", ["-", "--tools", _TOOLS])
    lean = capsys.readouterr()
    typer_run = CliRunner().invoke(app, ["verify", "-", "--tools", _TOOLS], input=text)
    assert (code, lean.out) == (typer_run.exit_code, typer_run.stdout)
    assert lean.out.startswith(("VALID", "INVALID")) and "levels (" in lean.out


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["a.json", "b.json"],
        ["--help"],
        ["--max-actions", "-1", "a.json"],
        ["--max-actions", "1_000", "a.json"],
        ["--max-actions=", "a.json"],
        ["--format", "sarif", "a.json"],
        ["--tools", "a", "--tools", "b", "a.json"],
        ["--strict", "a.json"],
        ["--state"],
    ],
)
def test_anything_but_a_plain_verify_goes_to_typer(args: list[str]) -> None:
    assert plain_arguments("verify", args) is None


def test_plain_verify_arguments_are_read_as_typer_reads_them() -> None:
    assert plain_arguments(
        "verify", ["p.json", "--tools", "a,b", "--max-actions=7", "--format", "json"]
    ) == {
        "proposal": Path("p.json"),
        "tools": "a,b",
        "max_actions": 7,
        "output": TextOrJson.json,
    }
    assert plain_arguments("verify", ["-"]) == {"proposal": Path("-")}


_RELEASE = Path(__file__).resolve().parent.parent / "examples" / "release"
_FAILING_TEST = """import "release.car"

test "fetches over http are allowed (they are not)" {
  action fetch(url: "http://ci.example/b/1")
  expect allow
}
"""


@pytest.fixture
def policies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(_RELEASE, tmp_path / "release")
    shutil.copytree(_RELEASE.parent / "shared", tmp_path / "shared")  # (release imports it)
    (tmp_path / "failing").mkdir()
    shutil.copy(_RELEASE / "release.car", tmp_path / "failing" / "release.car")
    (tmp_path / "failing" / "failing_test.car").write_text(_FAILING_TEST)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "none.car").write_text("tool t(x: int)\n")
    (tmp_path / "carlang.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _untimed(text: str) -> str:
    """Reports carry run times (JUnit's `time`, JSON's `seconds`): the report, times zeroed."""
    text = re.sub(r'time="[0-9.]+"', 'time="0"', text)
    return re.sub(r'"seconds": [0-9.e-]+', '"seconds": 0', text)


@pytest.mark.parametrize(
    "args",
    [
        ["release"],
        ["release", "--coverage"],
        ["release", "--format", "json", "--coverage"],
        ["--format=junit", "release"],
        ["release", "-k", "production"],
        ["release", "--run=*deploys*"],
        ["release", "--threshold", "50"],
        ["release", "--threshold=99.5"],
        ["release", "--threshold", "150"],
        ["failing"],
        ["failing", "--format", "junit"],
        ["empty"],
        ["empty", "--strict"],
        ["release", "-k", "no such test"],
        ["no-such-dir"],
        ["release", "--root", "."],
    ],
)
def test_lean_test_prints_and_exits_as_the_typer_command(
    policies: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = lean_main("test", args)
    lean = capsys.readouterr()
    typer_run = CliRunner().invoke(app, ["test", *args])
    assert code is not None and "error(s): the tests did not run" not in lean.err
    assert (code, _untimed(lean.out), lean.err) == (
        typer_run.exit_code,
        _untimed(typer_run.stdout),
        typer_run.stderr,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["-k=deploys", "release"],
        ["--threshold", "1e2", "release"],
        ["--threshold", ".5", "release"],
        ["--coverage=yes", "release"],
        ["--format", "xml", "release"],
        ["-k", "a", "--run", "b", "release"],
        ["--help"],
    ],
)
def test_anything_but_a_plain_test_run_goes_to_typer(args: list[str]) -> None:
    assert plain_arguments("test", args) is None


def test_plain_test_arguments_are_read_as_typer_reads_them() -> None:
    assert plain_arguments("test", ["a", "--coverage", "--threshold", "80", "-k", "x"]) == {
        "paths": [Path("a")],
        "coverage": True,
        "threshold": 80.0,
        "select": "x",
    }
    assert plain_arguments("test", ["--format=junit"]) == {
        "paths": None,
        "output": testing.TestFormat.junit,
    }


_UNFORMATTED = "tool t(x:int)\nproposal p {\n    a = t(x: 1)\n}\n"
_BROKEN = "proposal p {\n  a = \n"


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "clean.car").write_text(_CLEAN)
    (tmp_path / "messy.car").write_text(_UNFORMATTED)
    (tmp_path / "broken.car").write_text(_BROKEN)
    (tmp_path / "latin1.car").write_bytes("# caf\xe9\n".encode("latin-1"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "args",
    [
        ["--check", "clean.car"],
        ["--check", "messy.car"],
        ["--diff", "messy.car", "clean.car"],
        ["--check", "broken.car"],
        ["--check", "latin1.car"],
        ["--check", "."],
        ["--check", "no-such.car"],
        ["--", "clean.car"],
    ],
)
def test_lean_fmt_prints_and_exits_as_the_typer_command(
    sources: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = lean_main("fmt", args)
    lean = capsys.readouterr()
    typer_run = CliRunner().invoke(app, ["fmt", *args])
    assert code is not None
    assert (code, lean.out, lean.err) == (
        typer_run.exit_code,
        typer_run.stdout,
        typer_run.stderr,
    )


def test_lean_fmt_rewrites_files_as_the_typer_command(sources: Path) -> None:
    assert lean_main("fmt", ["messy.car"]) == 0
    lean = (sources / "messy.car").read_text()
    (sources / "messy.car").write_text(_UNFORMATTED)
    assert CliRunner().invoke(app, ["fmt", "messy.car"]).exit_code == 0
    assert lean == (sources / "messy.car").read_text() != _UNFORMATTED


def test_lean_fmt_formats_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(_UNFORMATTED.encode())))
    assert lean_main("fmt", ["-"]) == 0
    formatted = capsys.readouterr().out
    assert formatted == CliRunner().invoke(app, ["fmt", "-"], input=_UNFORMATTED).stdout
    assert "tool t(x: int)" in formatted


@pytest.mark.parametrize("args", [["--check=yes", "a.car"], ["-c", "a.car"]])
def test_anything_but_a_plain_fmt_goes_to_typer(args: list[str]) -> None:
    assert plain_arguments("fmt", args) is None


def test_fmt_without_paths_formats_the_folder_it_runs_in_as_check_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert plain_arguments("fmt", ["--check"]) == {"check": True, "paths": None}
    (tmp_path / "messy.car").write_text(_UNFORMATTED)
    monkeypatch.chdir(tmp_path)
    assert lean_main("fmt", ["--check"]) == 1
    assert CliRunner().invoke(app, ["fmt"]).exit_code == 0
    assert lean_main("fmt", ["--check"]) == 0
