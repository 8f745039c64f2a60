"""`carlang mcp import --header 'NAME: VALUE'`: what it refuses before it reaches anything
(the import of a real authenticated server is in test_mcp_headers_http.py)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from carlang.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("given", "says"),
    [
        (["Authorization Bearer x"], "write it as 'NAME: VALUE'"),
        ([": x"], "write it as 'NAME: VALUE'"),
        (["X A: 1"], "`X A` is not an HTTP header name"),
        (["Content-Type: text/plain"], "carlang sends `Content-Type` itself"),
        (["X-A: 1", "X-A: 2"], "--header X-A is given twice"),
        (["X-A: 1", "x-a: 2"], "header `x-a` is given twice"),
    ],
)
def test_import_refuses_a_header_that_cannot_be_sent(given: list[str], says: str) -> None:
    args = [arg for text in given for arg in ("--header", text)]
    result = runner.invoke(app, ["mcp", "import", "--url", "http://127.0.0.1:9/mcp", *args])
    assert result.exit_code == 2, result.output
    assert says in result.output


def test_import_refuses_a_header_for_a_started_server() -> None:
    result = runner.invoke(app, ["mcp", "import", "--header", "A: 1", "--", "srv"])
    assert result.exit_code == 2
    assert "--header is for a server at --url (HTTP)" in result.output


def test_import_with_an_unset_variable_says_which(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMPORT_TOKEN_UNSET", raising=False)
    result = runner.invoke(
        app,
        ["mcp", "import", "--url", "http://127.0.0.1:9/mcp"]
        + ["--header", "Authorization: Bearer ${IMPORT_TOKEN_UNSET}"],
    )
    assert result.exit_code == 2
    assert "its headers name ${IMPORT_TOKEN_UNSET}" in result.output


def test_import_warns_of_a_reference_the_shell_or_a_typo_left_miswritten() -> None:
    """`--header "Authorization: Bearer $T"` in double quotes, or `${T` mistyped: said at
    once (it was said only by a later `carlang check`, after a 401), not as a credential."""
    for header, written, fix in (
        ("Authorization: Bearer $SRV_TOKEN", "$SRV_TOKEN", "${SRV_TOKEN}"),
        ("Authorization: Bearer ${SRV_TOKEN", "${SRV_TOKEN", "${SRV_TOKEN}"),
    ):
        result = runner.invoke(
            app, ["mcp", "import", "--url", "http://127.0.0.1:9/mcp", "--header", header]
        )
        said = result.stderr
        assert f"warning: --header Authorization: `{written}` is not a reference" in said, said
        assert f"write `{fix}`, in single quotes" in said, said
        assert "is a credential" not in said  # (a variable's name, not a secret)
        assert result.exit_code == 2 and "connection refused" in said.lower(), said
