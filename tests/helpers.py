"""Small helpers shared by the compiler tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from carlang_runtime import ir

from carlang.compiler import CompileResult, compile_text
from carlang.render import render_text


def compile_ok(text: str, root: Path | None = None) -> ir.Program:
    """Compile text that must have no diagnostics at all."""
    result = compile_text(text, root=root or Path("/tmp"))
    assert not result.diagnostics.items, render_text(result.diagnostics.sorted())
    assert result.program is not None
    return result.program


def compile_diagnostics(text: str) -> CompileResult:
    """Compile text and return the result, diagnostics included."""
    return compile_text(text, root=Path("/tmp"))


def codes(text: str) -> list[str]:
    """The codes of the diagnostics for `text`, in output order."""
    return [d.code for d in compile_diagnostics(text).diagnostics.sorted()]


def run_carlang(
    *args: str, cwd: Path, timeout: float | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`carlang ARGS...` as a fresh process (as a user runs it), its output captured as text;
    in environment `env` (default: this process's)."""
    return subprocess.run(
        [sys.executable, "-m", "carlang", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
