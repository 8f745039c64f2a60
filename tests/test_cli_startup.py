"""A command builds only its own module's commands: `COMMAND_MODULES` names, for every
top-level command, the module that registers it; `carlang check` imports no command module,
nor typer, nor anything else it does not use."""

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


#: What `carlang check` on a plain program has no use for: typer and the typer app, the
#: runtime's engine and asyncio (run), lark (the parser tables are checked in), and pydantic's
#: validators (lowering constructs the models; building a first validator looks for plugins
#: with importlib.metadata).
_UNNEEDED_BY_CHECK = {
    "typer",
    "carlang.cli.typer_app",
    "asyncio",
    "carlang_runtime.engine",
    "lark",
    "importlib.metadata",
}


def test_check_imports_only_what_it_needs(tmp_path: Path) -> None:
    (tmp_path / "p.car").write_text("tool t(x: int)\n")
    script = (
        "import sys\n"
        f"UNNEEDED = {sorted(_UNNEEDED_BY_CHECK)!r}\n"
        f"sys.argv = ['carlang', 'check', {str(tmp_path / 'p.car')!r}]\n"
        "from carlang.entry import main\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "loaded = [m for m in sys.modules if m in UNNEEDED or m.endswith('_commands')]\n"
        "print('LOADED', loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout, done.stdout
