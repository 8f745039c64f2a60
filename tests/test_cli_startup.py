"""A command builds only its own module's commands: `COMMAND_MODULES` names, for every
top-level command, the module that registers it, and `carlang check` imports no other."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer.main

from carlang.cli import _MODULES, COMMAND_MODULES, build_app


def _names(app: typer.Typer) -> set[str]:
    group = typer.main.get_command(app)
    return set(getattr(group, "commands", {}))


def test_the_table_names_the_module_of_every_command() -> None:
    assert set(COMMAND_MODULES) == _names(build_app())
    for module in _MODULES:
        registered = _names(build_app((module,)))
        assert registered == {c for c, m in COMMAND_MODULES.items() if m == module}, module


def test_check_imports_only_what_it_needs(tmp_path: Path) -> None:
    (tmp_path / "p.car").write_text("tool t(x: int)\n")
    script = (
        "import sys\n"
        f"sys.argv = ['carlang', 'check', {str(tmp_path / 'p.car')!r}]\n"
        "from carlang.entry import main\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "loaded = [m for m in ('asyncio', 'carlang.cli.run_commands', 'carlang.cli.mcp_commands',"
        " 'carlang.cli.plan_commands', 'carlang_runtime.engine') if m in sys.modules]\n"
        "print('LOADED', loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout, done.stdout
