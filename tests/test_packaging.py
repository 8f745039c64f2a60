"""Packaging rules: the runtime imports without the compiler's dependencies."""

from __future__ import annotations

import subprocess
import sys


def test_runtime_imports_without_compiler_dependencies() -> None:
    code = (
        "import sys, carlang_runtime, carlang_runtime.ir, carlang_runtime.verify\n"
        "carlang_runtime.verify({'actions': [{'type': 'tool_call', 'tool': 't'}]}, tools=['t'])\n"
        "bad = [m for m in ('lark', 'typer', 'carlang', 'click', 'rich') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""


def test_grammar_is_found_by_the_package() -> None:
    from importlib import resources

    from carlang.grammar import grammar_text

    assert "start" in grammar_text()
    assert resources.files("carlang") is not None


def test_release_metadata_ships_types_licence_and_index_safe_links() -> None:
    import re
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    # PEP 561: without the marker, `mypy --strict` on a user's import fails with import-untyped
    assert (root / "carlang" / "py.typed").is_file()
    assert (root / "runtime" / "carlang_runtime" / "py.typed").is_file()
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert "Apache License" in (root / "LICENSE").read_text()[:200]
    assert project["classifiers"] and project["keywords"]
    # carlang imports re2 itself: a direct, declared dependency; cel-python is bounded
    assert any(d.startswith("google-re2") for d in project["dependencies"])
    assert any(d.startswith("cel-python") and "<" in d for d in project["dependencies"])
    # a package index renders the README without the repository: no relative links
    readme = (root / "README.md").read_text()
    assert not [m for m in re.findall(r"\]\(([^)]+)\)", readme) if "://" not in m]
