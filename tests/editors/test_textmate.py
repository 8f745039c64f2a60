"""The TextMate grammar (editors/vscode) on every example, tokenized by VS Code's own engine
(vscode-textmate + vscode-oniguruma from npm, kept in a cache outside the repository): every
token scoped, no scope left open. Skipped cleanly without node or npm."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .npm_cache import node_modules

ROOT = Path(__file__).resolve().parents[2]
EDITOR = ROOT / "editors" / "vscode"
GRAMMAR = EDITOR / "syntaxes" / "carlang.tmLanguage.json"
CHECK = Path(__file__).with_name("textmate_check.js")
EXAMPLES = sorted((ROOT / "examples").rglob("*.car"))
PACKAGES = ("vscode-textmate@9", "vscode-oniguruma@2")


def _tokenize(*files: Path) -> dict[str, object]:
    done = subprocess.run(
        ["node", str(CHECK), str(node_modules(*PACKAGES)), str(GRAMMAR), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, object] = json.loads(done.stdout)
    return report


def test_every_example_token_is_scoped_and_nothing_stays_open() -> None:
    report = _tokenize(*EXAMPLES)
    assert report["files"] == len(EXAMPLES) and report["tokens"]
    assert report["unscoped"] == []
    assert report["unclosed"] == []
    scopes = report["scopes"]
    assert isinstance(scopes, dict)
    for scope in (
        "storage.type.declaration.carlang",
        "entity.name.function.call.carlang",
        "variable.language.cel",
        "comment.line.number-sign.carlang",
        "constant.numeric.duration.carlang",
    ):
        assert scopes.get(scope), scope


def test_a_condition_left_open_is_reported(tmp_path: Path) -> None:
    broken = tmp_path / "open.car"
    broken.write_text("policy p: deny x when (a &&\n")
    report = _tokenize(broken)
    assert report["unclosed"] and "open.car" in str(report["unclosed"])


def test_the_manifest_wires_the_grammar_and_the_server() -> None:
    manifest = json.loads((EDITOR / "package.json").read_text())
    (language,) = manifest["contributes"]["languages"]
    assert language["extensions"] == [".car"]
    (grammar,) = manifest["contributes"]["grammars"]
    assert (EDITOR / grammar["path"]).resolve() == GRAMMAR
    assert json.loads(GRAMMAR.read_text())["scopeName"] == grammar["scopeName"]
    settings = manifest["contributes"]["configuration"]["properties"]
    assert settings["carlang.server.command"]["default"] == ["carlang", "lsp"]
    configuration = json.loads((EDITOR / language["configuration"]).read_text())
    assert configuration["comments"] == {"lineComment": "#"}
