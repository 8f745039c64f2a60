"""The `carlang` command line. Commands import their machinery lazily, so that a command pays
only for what it uses at start-up: this package imports nothing but the tables below. The typer
app is `carlang.cli.typer_app` (`app`, `build_app` and `main` are found there when first asked
for); `carlang check` with plain arguments runs without typer (`carlang.cli.lean`)."""

from __future__ import annotations

from typing import Any

__all__ = ["app", "build_app", "main", "COMMAND_MODULES"]

#: The modules that register commands, in the order `carlang --help` lists them.
_MODULES = (
    "lang_commands",
    "policy_commands",
    "run_commands",
    "replay_commands",
    "plan_commands",
    "experiment_commands",
    "test_commands",
    "ir_commands",
    "dbos_commands",
    "agent_commands",
    "mcp_commands",
    "editor_commands",
)

#: The module that registers each top-level command: `carlang check ...` imports and builds
#: only `lang_commands`' commands, not all 33 (typer inspects every command's signature when
#: it builds the group; with every module imported that was half of a short command's run).
#: tests/test_cli_startup.py checks this table against what the modules register.
COMMAND_MODULES: dict[str, str] = {
    **dict.fromkeys(("check", "compile", "fmt"), "lang_commands"),
    "explain": "policy_commands",
    **dict.fromkeys(("run", "events"), "run_commands"),
    "replay": "replay_commands",
    "rank": "plan_commands",
    "planner": "experiment_commands",
    "test": "test_commands",
    **dict.fromkeys(("verify", "simulate", "optimize", "schema", "codes"), "ir_commands"),
    **dict.fromkeys(("approve", "deny", "runs", "worker"), "dbos_commands"),
    **dict.fromkeys(("agent", "export"), "agent_commands"),
    "mcp": "mcp_commands",
    **dict.fromkeys(("lsp", "graph", "eval", "repl"), "editor_commands"),
}


def __getattr__(name: str) -> Any:
    # `app` (the whole command line, built when first asked for: tests, embedding hosts),
    # `build_app` and `main` live with typer.
    if name in ("app", "build_app", "main"):
        from . import typer_app

        return getattr(typer_app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
