"""`carlang check` judges `carlang.toml`'s default `capability` as the commands that run under
it do: one no checked program declares is an error at its line, in every output format."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from carlang.cli import app

PROGRAM = "tool read_note(id: string)\ncapability reader { tools allow read_note }\n"


def check(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["check", *args])
    return result.exit_code, result.output


def test_an_undeclared_default_capability_is_an_error_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "p.car").write_text(PROGRAM)
    (tmp_path / "carlang.toml").write_text('# the project\ncapability = "readr"\n')
    code, out = check(str(tmp_path))
    assert code == 1, out
    assert out.startswith("carlang.toml:2:14: error[CL0202]: capability `readr` is not declared")
    assert "did you mean `reader`?" in out
    code, out = check(str(tmp_path), "--format", "json")
    (found,) = json.loads(out)["diagnostics"]
    assert (found["code"], found["labels"][0]["line"]) == ("CL0202", 2)
    (tmp_path / "carlang.toml").write_text('capability = "reader"\n')
    assert check(str(tmp_path)) == (0, "0 errors, 0 warnings in 1 file\n")


def test_checking_some_files_does_not_judge_it(tmp_path: Path) -> None:
    """A pre-commit hook passes the changed files: the capability may be declared in another,
    so it is judged only when the whole project is checked."""
    (tmp_path / "p.car").write_text(PROGRAM)
    (tmp_path / "tools.car").write_text("tool other()\n")
    (tmp_path / "carlang.toml").write_text('capability = "reader"\n')
    code, out = check(str(tmp_path / "tools.car"))
    assert code == 0, out
