"""`carlang mcp proxy` options refused before anything starts, saying what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from carlang.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (None, "the environment variable PROXY_TOKEN_T is not set"),
        ("", "the environment variable PROXY_TOKEN_T is empty: set it to the token"),
        ("  \n", "the environment variable PROXY_TOKEN_T is only white space: set it to"),
    ],
)
def test_a_token_variable_unset_or_empty_is_said_as_it_is(
    monkeypatch: pytest.MonkeyPatch, value: str | None, said: str
) -> None:
    """An empty variable was said to be "not set", which sent its user looking for a typo."""
    if value is None:
        monkeypatch.delenv("PROXY_TOKEN_T", raising=False)
    else:
        monkeypatch.setenv("PROXY_TOKEN_T", value)
    refused = runner.invoke(
        app,
        ["mcp", "proxy", "no.car", "--transport", "http", "--token-env", "PROXY_TOKEN_T"],
    )
    assert refused.exit_code == 2
    assert said in " ".join(refused.output.split()), refused.output


def test_the_proxy_says_at_start_that_its_program_has_warnings(tmp_path: Path) -> None:
    """A gateway's user may never run `check`: a miswritten reference (CL0228) or a scope
    typo (CL0507, a policy that fails closed on every call) was not said at all."""
    path = tmp_path / "gw.car"
    path.write_text(
        'mcp_server toy { command "no-such-server" args ["${TOKEN}"] }\n'
        'tool toy.x() { description "x" }\n'
        'policy p: deny toy.x when scope.tennant == "a"\n'
    )
    started = runner.invoke(app, ["mcp", "proxy", str(path)], input="")
    assert started.exit_code == 0, started.output
    said = " ".join(started.stderr.split())
    assert (
        f"warning: {path} has 2 warnings (CL0228 x1, CL0507 x1): see them with"
        f" `carlang check {path}`" in said
    ), said
    path.write_text(
        'mcp_server toy { command "no-such-server" }\ntool toy.x() { description "x" }\n'
    )
    quiet = runner.invoke(app, ["mcp", "proxy", str(path)], input="")
    assert "has 1 warning" not in quiet.stderr and "see them with" not in quiet.stderr
