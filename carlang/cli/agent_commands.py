"""Commands for agents: `agent` (the assistant loop over a program) and `export tools` (the
tool list a model or MCP client sees)."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from carlang.render import plural

from .checking import one_source
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    AutoApproveOption,
    DenyApprovalsOption,
    RootOption,
    echo,
    echo_err,
    fail_usage,
    guarded,
)
from .console import terminal_text
from .lang_commands import project_root

if TYPE_CHECKING:
    from carlang_runtime import ir

__all__ = ["register", "load_program"]


class SpecFormat(StrEnum):
    """Tool list formats of `carlang export tools`."""

    openai = "openai"
    openai_responses = "openai-responses"
    anthropic = "anthropic"
    mcp = "mcp"


class TurnFormat(StrEnum):
    """Assistant-turn formats a script may be written in."""

    openai = "openai"
    openai_responses = "openai-responses"
    anthropic = "anthropic"
    langchain = "langchain"


class OutputFormat(StrEnum):
    """Output formats of `carlang agent`."""

    text = "text"
    json = "json"


def load_program(file: Path, root: Path | None, *, tell_warnings: bool = False) -> ir.Program:
    """Compile a program; its errors are printed and end the command with exit 1.
    `tell_warnings`: say in one line how many warnings it has, of which codes, and how to see
    them (a long-running command, like the proxy, whose user may never run `check`)."""
    from carlang.compiler import compile_file
    from carlang.render import render_text

    files = one_source(file)
    result = compile_file(files[0], project_root(files, root))
    found = result.diagnostics.sorted()
    errors = [d for d in found if d.severity == "error"]
    if result.program is None or errors:
        echo_err(render_text(errors or found))
        raise typer.Exit(EXIT_FAILED)
    warnings = Counter(d.code for d in found if d.severity == "warning")
    if tell_warnings and warnings:
        codes = ", ".join(f"{code} x{count}" for code, count in sorted(warnings.items()))
        echo_err(
            f"warning: {file} has {plural(warnings.total(), 'warning')} ({codes}): see them"
            f" with `carlang check {file}`"
        )
    return result.program


CapabilityOption = Annotated[
    str | None,
    typer.Option(
        "--capability",
        help="Only the tools this capability allows (default: carlang.toml's `capability`).",
    ),
]


def chosen_capability(
    file: Path, root: Path | None, given: str | None, program: ir.Program
) -> str | None:
    """`--capability` when given, else the project's default (`capability` in its
    carlang.toml), which must name a capability the program declares."""
    from carlang_runtime.suggest import did_you_mean

    from .lang_commands import find_project_of

    if given is not None:
        return given
    project = find_project_of(one_source(file), root)
    name = project.capability
    if name is None or program.capability(name) is not None:
        return name
    declared = [c.name for c in program.capabilities]
    if declared:
        hint = did_you_mean(name, declared, "`") or f"capabilities: {', '.join(declared)}"
        fix = "name one it declares in carlang.toml, or give --capability NAME"
    else:  # (no --capability can help)
        hint = "it declares none"
        fix = f"declare it in {file} (or import the file that does), or remove this setting"
    fail_usage(
        f"{project.capability_where()}: capability `{name}` is not declared by {file} ({hint}):"
        f" {fix}"
    )


@guarded
def export_tools_command(
    file: Annotated[Path, typer.Argument(help="The program whose tools to export.")],
    output: Annotated[
        SpecFormat, typer.Option("--format", help="Tool list format.")
    ] = SpecFormat.openai,
    capability: CapabilityOption = None,
    root: RootOption = None,
) -> None:
    """Print the tool list a model (OpenAI, Anthropic) or an MCP client sees, as JSON: only
    the tools the capability allows."""
    from carlang_runtime.agents import tool_specs

    program = load_program(file, root)
    capability = chosen_capability(file, root, capability, program)
    echo(json.dumps(tool_specs(program, output.value, capability=capability), indent=2))


@guarded
def agent_command(
    file: Annotated[Path, typer.Argument(help="The program: tools, capabilities, policies.")],
    script: Annotated[
        Path | None, typer.Option("--script", help="Replay these assistant turns (JSON).")
    ] = None,
    script_format: Annotated[
        TurnFormat | None,
        typer.Option(
            "--turn-format",
            help="The script's format (else its \"format\", else the one its turns' tool calls"
            " are written in; openai if they have none). A turn in another is an error.",
        ),
    ] = None,
    model_url: Annotated[
        str | None,
        typer.Option("--model-url", help="An OpenAI-compatible API base URL (…/v1)."),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="The model name.")] = None,
    api_key_env: Annotated[
        str, typer.Option("--api-key-env", help="Environment variable holding the API key.")
    ] = "OPENAI_API_KEY",
    prompt: Annotated[str, typer.Option("--prompt", help="The user's request.")] = "",
    system: Annotated[str | None, typer.Option("--system", help="A system prompt.")] = None,
    capability: CapabilityOption = None,
    budget: Annotated[str | None, typer.Option("--budget", help="The budget to run under.")] = None,
    max_turns: Annotated[int, typer.Option("--max-turns", min=1, help="Turns at most.")] = 10,
    tools: Annotated[
        list[str] | None,
        typer.Option("--tools", help="Tool implementations, as for `carlang run` (repeatable)."),
    ] = None,
    builtins: Annotated[
        bool, typer.Option("--builtins", help="carlang's own tools, as for `carlang run`.")
    ] = False,
    files_root: Annotated[
        Path | None,
        typer.Option("--files-root", help="Where the built-in file tools may read and write."),
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option("--events", help="Log events to run.jsonl, or to run.db (SQLite)."),
    ] = None,
    auto_approve: AutoApproveOption = False,
    deny_approvals: DenyApprovalsOption = False,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="Output format.")
    ] = OutputFormat.text,
    root: RootOption = None,
) -> None:
    """Run the assistant loop: a model (a --script of turns, or --model-url/--model) proposes
    tool calls, the program's capability, budget and policies decide, the tools run, the
    results go back, until a final answer. Exit 0 on success, 1 otherwise."""
    from carlang_runtime.agents import AgentLoop, OpenAIChatGenerator, ScriptedGenerator
    from carlang_runtime.engine import Runtime
    from carlang_runtime.errors import CarlangRuntimeError

    from .run_commands import (
        _approval_gate,
        _refuse_builtin_options,
        _register_builtins,
        _register_tools,
        _set_up_log,
    )

    if (script is None) == (model_url is None):
        fail_usage("give either --script FILE or --model-url URL (with --model NAME)")
    if script_format is not None and script is None:
        # (said, not ignored: it does not make the model's server answer in that format)
        fail_usage(
            "--turn-format is the format of a --script's turns; a --model-url model is asked"
            " in OpenAI's chat-completions format"
        )
    if auto_approve and deny_approvals:
        fail_usage("--auto-approve and --deny-approvals exclude each other")
    _refuse_builtin_options(builtins, files_root)
    generator: Any
    if script is not None:
        from .inputs import require_file

        require_file(script)
        generator = ScriptedGenerator.from_file(
            script, script_format.value if script_format else None
        )
    else:
        if not model:
            fail_usage("--model-url needs --model NAME")
        if not prompt:
            fail_usage("--model-url needs --prompt TEXT")
        assert model_url is not None
        api_key = os.environ.get(api_key_env)
        try:
            generator = OpenAIChatGenerator(model_url, model, api_key=api_key)
        except CarlangRuntimeError as exc:
            fail_usage(f"--model-url: {exc}")
        if not api_key:  # (after the usage errors: a warning before one is noise)
            echo_err(f"warning: ${api_key_env} is not set: the model is asked without an API key")
    program = load_program(file, root)
    capability = chosen_capability(file, root, capability, program)
    if budget is not None and program.budget(budget) is None:
        names = ", ".join(b.name for b in program.budgets) or "none"
        fail_usage(f"--budget {budget}: {file} declares no such budget (budgets: {names})")
    if capability is None and program.capabilities:
        echo_err(
            "warning: no capability: the model is offered every tool of the program"
            " (choose some with --capability NAME, or `capability` in carlang.toml)"
        )
    with _set_up_log(events) as log:
        runtime = Runtime.from_program(
            program,
            events=log,
            approval=_approval_gate(auto_approve, deny_approvals, program)
            if auto_approve or deny_approvals or sys.stdin.isatty()
            else _NoOneToAsk(),
        )
        if builtins:
            _register_builtins(runtime, files_root or Path.cwd(), [])
        _register_tools(runtime, program, tools or [])
    _warn_unimplemented(runtime, program, capability)
    live = _live_view if output is OutputFormat.text else None
    try:
        loop = AgentLoop(
            runtime,
            generator,
            capability=capability,
            budget=budget,
            max_turns=max_turns,
            on_event=live,
            system=system,
        )
        outcome = loop.run(prompt)
    finally:
        runtime.close()
    if output is OutputFormat.json:
        echo(json.dumps(outcome.to_dict(), indent=2))
    else:
        called = ", ".join(outcome.tools_called) or "none"
        echo(f"{outcome.status} after {plural(outcome.turns, 'turn')}; tools called: {called}")
    raise typer.Exit(EXIT_OK if outcome.status == "success" else EXIT_FAILED)


class _NoOneToAsk:
    """The approval gate of a run with no terminal to ask at: the model hears that approval
    was not given, and only that; how to give it is for the operator, on stderr."""

    def review(self, request: Any) -> Any:
        """No, saying why to the operator."""
        from carlang_runtime.engine import Approval

        echo_err(
            f"approval needed for {terminal_text(request.action.tool or '')}"
            f" ({terminal_text(request.reason)}): refused"
            " (run with --auto-approve, or at a terminal to be asked)"
        )
        return Approval(False, "approval was not given")


def _warn_unimplemented(runtime: Any, program: Any, capability: str | None) -> None:
    """Say which of the tools offered to the model have no implementation: each call of one
    fails, and a run that only fails its calls can still end in `success`."""
    from carlang_runtime.agents.specs import visible_tools

    missing = [
        tool.name
        for tool in visible_tools(program, capability=capability)
        if tool.mcp is None and getattr(runtime.tools.get(tool.name), "fn", None) is None
    ]
    if missing:
        echo_err(
            f"warning: no implementation for {', '.join(missing)}: every call of "
            + ("it" if len(missing) == 1 else "them")
            + " fails (give --tools tools.py or module:attr, or --builtins)"
        )


def _live_view(event: Any) -> None:
    """One line per loop event, as it happens."""
    data = event.data
    # (what a model or a tool wrote: no escape sequence reaches the terminal to hide or fake
    # the lines after it, such as an approval question)
    if event.kind == "text":
        echo(f"assistant: {terminal_text(data['text'], newlines=True)}")
    elif event.kind == "tool_call":
        params = json.dumps(data["params"]) if data["params"] is not None else "(malformed)"
        echo(f"  -> {terminal_text(data['name'] or '(no tool name)')} {_short(params)}")
    elif event.kind == "tool_result":
        mark = "ok" if data["ok"] else "refused/failed"
        echo(f"  <- {terminal_text(data['name'])} {mark}: {_short(data['content'])}")
    elif event.kind == "error":
        print(f"error: {terminal_text(data['message'])}", file=sys.stderr)


def _short(text: str, limit: int = 200) -> str:
    text = terminal_text(text.replace("\n", " "))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def register(app: typer.Typer) -> None:
    """Add `agent` and `export tools` to the CLI."""
    app.command("agent")(agent_command)
    export = typer.Typer(
        help="Export what a program declares for other tools.", no_args_is_help=True
    )
    export.command("tools")(export_tools_command)
    app.add_typer(export, name="export")
