"""CEL optionals and backtick-quoted field names end to end: a policy written with them is
checked (its mistakes found at their column) and decides `carlang test`."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from carlang.cli import app

runner = CliRunner()

PROGRAM = """\
tool fetch(url: string, headers: map[string] = {})

policy json_only: deny fetch when params.headers.?`content-type`.orValue("application/json") != "application/json"
  message "fetch JSON only"
policy host: deny fetch when [?params.url.split("/")[?2]].first().orValue("") == "evil.com"
  message "no evil"

test "json by default" {
  action fetch(url: "https://a.com/x")
  expect allow
}
test "xml denied" {
  action fetch(url: "https://a.com/x", headers: {"content-type": "text/xml"})
  expect deny by json_only
}
test "evil denied" {
  action fetch(url: "https://evil.com/x")
  expect deny by host
}
test "no host" {
  action fetch(url: "x")
  expect allow
}
"""


def test_policies_with_optionals_decide(tmp_path: Path) -> None:
    path = tmp_path / "p.car"
    path.write_text(PROGRAM)
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 0, result.stdout
    result = runner.invoke(app, ["test", str(path)])
    assert result.exit_code == 0, result.stdout
    assert result.stdout.splitlines()[-1] == "4 passed, 0 failed"


def test_a_misused_optional_is_found_at_its_column(tmp_path: Path) -> None:
    path = tmp_path / "p.car"
    path.write_text("tool fetch(url: string)\n\npolicy p: deny fetch when params.?url.size() > 3\n")
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    assert "p.car:3:27: error" in result.stdout
    assert "`size` does not take (optional_type(string))" in result.stdout
