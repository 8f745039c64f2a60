"""Commands about policies: `explain`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import NowOption, RootOption, ScopeOption, echo, fail_usage, guarded, parse_now
from .inputs import load_state_option
from .lang_commands import compile_program

if TYPE_CHECKING:
    from carlang_runtime.ir import Program, ToolSchema

__all__ = ["register"]


class ExplainFormat(StrEnum):
    """Output formats of `carlang explain`."""

    text = "text"
    json = "json"


def _json_object(text: str | None, option: str) -> dict[str, Any]:
    if text is None:
        return {}
    from carlang_runtime.jsontext import JsonTextError, parse_json

    try:
        value = parse_json(text)
    except JsonTextError as exc:
        problem = exc.message.removeprefix("malformed JSON: ")
        fail_usage(f"{option} is not JSON: {problem} at column {exc.position.column}")
    if not isinstance(value, dict):
        fail_usage(f'{option} must be a JSON object, like \'{{"url": "https://x"}}\'')
    return value


@guarded
def explain_command(
    file: Annotated[Path, typer.Argument(help="The program whose policies decide.")],
    proposal: Annotated[
        str | None, typer.Option("--proposal", help="Take the action from this proposal...")
    ] = None,
    action_id: Annotated[str | None, typer.Option("--action", help="...with this id.")] = None,
    tool: Annotated[
        str | None, typer.Option("--tool", help="Or decide a call of this tool...")
    ] = None,
    params: Annotated[
        str | None, typer.Option("--params", help="...with these parameters (a JSON object).")
    ] = None,
    state: Annotated[
        str | None,
        typer.Option("--state", help="State over the program's: a JSON file, or a JSON object."),
    ] = None,
    scope: ScopeOption = None,
    capability: Annotated[
        str | None,
        typer.Option(
            "--capability",
            help="Decide under this capability (default: the proposal's, else carlang.toml's"
            " `capability`).",
        ),
    ] = None,
    now: NowOption = None,
    output: Annotated[
        ExplainFormat, typer.Option("--format", help="Output format.")
    ] = ExplainFormat.text,
    root: RootOption = None,
) -> None:
    """The full policy decision for one action: every policy, matched or not, with the values
    that decided its condition. Exit 0 whatever the decision; 1 if the program has errors."""
    from carlang_runtime import ir
    from carlang_runtime.paramcheck import filled_parameters
    from carlang_runtime.policy import PolicySet, state_problem
    from carlang_runtime.policy.static import judged_context
    from carlang_runtime.suggest import did_you_mean

    from carlang.explain import (
        capability_problem,
        describe_action,
        redacted,
        render_json,
        render_text,
        under_capability,
    )

    if (proposal is None) == (tool is None):
        fail_usage("give either --proposal NAME --action ID, or --tool NAME [--params JSON]")
    if proposal is not None and action_id is None:
        fail_usage("--proposal needs --action ID: which of its actions to explain")
    at = parse_now(now)
    _, program = compile_program(file, root, proposal_errors_ok=True)
    chosen: ir.ActionProposal | None = None
    if proposal is not None:
        chosen = program.proposal(proposal)
        if chosen is None:
            names = [p.id for p in program.proposals]
            hint = did_you_mean(proposal, names, "`") or f"proposals: {', '.join(names) or 'none'}"
            fail_usage(f"no proposal `{proposal}` in {file} ({hint})")
        action = next((a for a in chosen.actions if a.id == action_id), None)
        if action is None:
            ids = [a.id for a in chosen.actions]
            hint = did_you_mean(action_id or "", ids, "`") or f"actions: {', '.join(ids)}"
            fail_usage(f"proposal `{proposal}` has no action `{action_id}` ({hint})")
    else:
        arguments = _json_object(params, "--params")
        declared = _check_call(program, file, tool or "", arguments)
        # the call as the runtime makes it: left-out parameters get their declared defaults
        filled = filled_parameters(arguments, declared.parameters)
        action = ir.Action(id="call", type="tool_call", tool=tool, parameters=filled)
    given = load_state_option(state) if state is not None else {}
    problem = state_problem(program.state, given)
    if problem is not None:
        fail_usage(f"--state: {problem}")
    current: dict[str, Any] = {**program.initial_state, **given}
    history: list[dict[str, Any]] = []
    policies = PolicySet(program.policies, tools=program.tools)
    if chosen is not None:
        # what `check` judged: the state the plan predicts at the action, and the history
        # that decided (its ancestors done, or the siblings admitted before it)
        index = chosen.actions.index(action)
        current, history = judged_context(chosen, index, current, policies)
    name = capability if capability is not None else (chosen.capability if chosen else None)
    if name is None:
        from .agent_commands import chosen_capability

        name = chosen_capability(file, root, None, program)  # carlang.toml's, if any
    refused = capability_problem(program, action, name, str(file))
    if name is not None and program.capability(name) is None:
        fail_usage(f"--capability: {refused}")
    decision, traces = policies.trace(
        action,
        proposal_id=proposal or "",
        state=current,
        scope=_json_object(scope, "--scope"),
        history=history,
        now=at,
    )
    decision = under_capability(decision, refused, name)
    if output is ExplainFormat.json:
        text = render_json(action, decision, traces)
    else:
        text = render_text(describe_action(action, proposal), decision, traces)
    echo(redacted(text, program, action))


def _check_call(program: Program, file: Path, tool: str, params: dict[str, Any]) -> ToolSchema:
    """`program`'s tool `tool`; a usage error, worded as `check` words it, unless `program`
    declares it and `params` fit its parameter schema."""
    from carlang.explain import call_problems

    declared, problems = call_problems(program, tool, params, str(file))
    if declared is None:
        fail_usage(problems[0])
    if problems:
        fail_usage("--params: " + "; ".join(problems))
    return declared


def register(app: typer.Typer) -> None:
    """Add the policy commands to the CLI."""
    app.command("explain")(explain_command)
