"""Packaging rules: the runtime imports without the compiler's dependencies."""

from __future__ import annotations

import subprocess
import sys


def test_runtime_imports_without_compiler_dependencies() -> None:
    code = (
        "import sys, carlang_runtime, carlang_runtime.ir, carlang_runtime.verify\n"
        "carlang_runtime.verify.verify({'actions': [{'type': 'tool_call', 'tool': 't'}]}, tools=['t'])\n"
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
