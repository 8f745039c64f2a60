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


def budget_skipped_log(tmp_path: Path) -> tuple[Path, Path]:
    """A real run (`carlang run --force --events`) of four calls under a budget of two tool
    calls, which skips the last two: the program (p.car) and its log (run.jsonl)."""
    from typer.testing import CliRunner

    from carlang.cli import app

    program = tmp_path / "p.car"
    program.write_text(
        "tool t(i: int)\nbudget two { max_tool_calls 2 }\n"
        "proposal four under two { a = t(i: 1)  b = t(i: 2)  c = t(i: 3)  d = t(i: 4) }\n"
    )
    tools = tmp_path / "t_tools.py"
    tools.write_text("TOOLS = {'t': lambda i: i}\n")
    log = tmp_path / "run.jsonl"
    args = ["run", str(program), "--tools", f"{tools}:TOOLS", "--force", "--events", str(log)]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 1, done.output
    return program, log
