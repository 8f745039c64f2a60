"""The Pygments lexer: no error tokens on any example, CEL lexed inside `when`, registered as
the `carlang` entry point."""

from __future__ import annotations

import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from pygments.token import Comment, Error, Keyword, Name, Punctuation, String, Text

from carlang.highlight import CarlangLexer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").rglob("*.car"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_error_tokens_on_any_example(path: Path) -> None:
    text = path.read_text()
    tokens = list(CarlangLexer().get_tokens(text))
    assert [v for t, v in tokens if t in Error] == []
    assert [v for t, v in tokens if t is Text and v.strip()] == []  # nothing left unclassified
    expected = text if text.endswith("\n") else text + "\n"
    assert "".join(v for _t, v in tokens) == expected


def test_tokens_of_a_policy_line() -> None:
    line = 'policy https_only: deny fetch when !params.url.startsWith("https://") # why\n'
    tokens = [(t, v) for t, v in CarlangLexer().get_tokens(line) if v.strip()]
    assert tokens[:3] == [
        (Keyword.Declaration, "policy"),
        (Name.Class, "https_only"),
        (Punctuation, ":"),
    ]
    assert (Name.Builtin, "params") in tokens and (Name.Function, "startsWith") in tokens
    assert (String.Double, '"https://"') in tokens and (Comment.Single, "# why") in tokens


def test_registered_as_an_entry_point() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["pygments.lexers"] == {
        "carlang": "carlang.highlight:CarlangLexer"
    }
    registered = [e for e in entry_points(group="pygments.lexers") if e.name == "carlang"]
    if not registered:
        pytest.skip(
            "the installed carlang predates the entry point (pip install -e . registers it)"
        )
    from pygments.lexers import get_lexer_by_name

    assert type(get_lexer_by_name("carlang")).__name__ == "CarlangLexer"
