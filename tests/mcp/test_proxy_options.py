"""`carlang mcp proxy` options refused before anything starts, saying what is wrong."""

from __future__ import annotations

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
