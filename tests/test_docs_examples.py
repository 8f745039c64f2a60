"""Every example in the README and docs/ is checked, so that none can rot.

Each fenced block names its language. `car`: carlang source, which must parse; a block after
`<!-- example: run with FILE -->` is a complete example: it is compiled with FILE (a program
under examples/) and `carlang check` and `carlang test` must pass on it. `console`: each
`$ ...` command line is run by bash, in order, in a directory holding a copy of examples/
(`carlang` being this checkout's), and must print the lines shown.
`python`: must be valid Python. `sh` (the quick start) runs in .ci/run exactly as written;
`text` is output or a diagram.
"""

from __future__ import annotations

import ast as python_ast
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from carlang.parse import parse
from carlang.source import Source
from tests.conftest import ROOT
from tests.helpers import run_carlang

LANGUAGES = {"car", "console", "python", "sh", "text", "yaml", "json", "lua", "toml"}
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
_RUN_WITH = re.compile(r"<!-- example: run with (\S+) -->\s*\Z")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its text, its context file (if any)."""

    file: str
    line: int
    language: str
    text: str
    run_with: str | None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        for match in _FENCE.finditer(text):
            before = text[: match.start()]
            context = _RUN_WITH.search(before)
            found.append(
                Block(
                    path.relative_to(ROOT).as_posix(),
                    before.count("\n") + 1,
                    match.group(1),
                    match.group(2),
                    context.group(1) if context else None,
                )
            )
    return found


ALL = blocks()


def of(language: str) -> list[Block]:
    return [b for b in ALL if b.language == language]


def test_every_block_names_its_language() -> None:
    untagged = [str(b) for b in ALL if b.language not in LANGUAGES]
    assert not untagged, f"tag these fences with one of {sorted(LANGUAGES)}: {untagged}"


@pytest.mark.parametrize("block", of("car"), ids=str)
def test_carlang_examples_parse(block: Block) -> None:
    result = parse(Source(str(block), block.text))
    errors = [f"{d.location()}: {d.message}" for d in result.diagnostics if d.severity == "error"]
    assert not errors


@pytest.mark.parametrize("block", [b for b in of("car") if b.run_with], ids=str)
def test_complete_examples_check_and_their_tests_pass(block: Block, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    context = tmp_path / block.run_with  # type: ignore[operator]
    example = context.parent / "doc_example.car"
    example.write_text(f'import "{context.name}"\n\n{block.text}')
    for command in (["check"], ["test"]):
        proc = carlang(*command, str(example), "--root", str(tmp_path), cwd=tmp_path)
        assert proc.returncode == 0, f"{block}: carlang {command[0]}\n{proc.stdout}{proc.stderr}"


def carlang(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return run_carlang(*args, cwd=cwd)


def _commands(block: Block) -> list[tuple[str, list[str]]]:
    """Each `$ ...` command line with the output lines shown after it."""
    found: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if found and not found[-1][1] and found[-1][0].endswith("\\"):
            found[-1] = (f"{found[-1][0][:-1].rstrip()} {line.strip()}", [])  # continued
        elif line.startswith("$ "):
            found.append((line[2:], []))
        elif found:
            found[-1][1].append(line)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("block", of("console"), ids=str)
def test_console_examples_print_what_they_show(block: Block, tmp_path: Path) -> None:
    commands = _commands(block)
    assert commands, f"{block}: a console block shows `$ ...` command lines"
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copy(ROOT / "carlang.toml", tmp_path)
    prelude = f'carlang() {{ "{sys.executable}" -m carlang "$@"; }}\n'
    for command, shown in commands:
        proc = subprocess.run(
            ["bash", "-c", prelude + command],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}"},
        )
        printed = {_squash(line) for line in (proc.stdout + proc.stderr).splitlines()}
        for line in shown:
            if line.strip() and "..." not in line:
                assert _squash(line) in printed, f"{block}: `{command}` did not print {line!r}"
        if not shown:
            assert proc.returncode == 0, f"{block}: `{command}`: {proc.stderr}"


def _squash(line: str) -> str:
    return " ".join(line.split())


@pytest.mark.parametrize("block", of("python"), ids=str)
def test_python_examples_are_valid_python(block: Block) -> None:
    python_ast.parse(block.text, filename=str(block))
