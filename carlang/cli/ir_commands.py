"""Commands over CAR-format IR: `verify`, `simulate`, `optimize`, `schema`, `codes`."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import echo, echo_err, fail_usage, guarded
from .inputs import load_file, load_state_option
from .verifying import TextOrJson, run_verify

__all__ = ["register"]


ProposalArg = Annotated[
    Path, typer.Argument(help='A CAR proposal (JSON; bare or {"proposal": ...}); - reads stdin.')
]
# (`str`, not `Path`: a Path tidies `//` to `/`, which would change a JSON value given inline)
StateOpt = Annotated[
    str | None,
    typer.Option("--state", help="Initial state: a JSON file, or a JSON object."),
]
FormatOpt = Annotated[TextOrJson, typer.Option("--format", help="Output format.")]


@guarded
def verify_command(
    proposal: ProposalArg,
    state: StateOpt = None,
    tools: Annotated[
        str | None,
        typer.Option("--tools", help="Registered tool names, comma-separated (existence only)."),
    ] = None,
    tool_schemas: Annotated[
        str | None,
        typer.Option(
            "--tool-schemas",
            help="Tool schemas, a JSON file of a list or the list itself: existence and"
            " parameters.",
        ),
    ] = None,
    max_actions: Annotated[
        int | None, typer.Option("--max-actions", min=0, help="Resource bound (default 30).")
    ] = None,
    output: FormatOpt = TextOrJson.text,
    program: Annotated[
        Path | None,
        typer.Option(
            "--program",
            help="A .car program: verify against its tools, capability, budget, state and"
            " policies, as check judges its own plans.",
        ),
    ] = None,
    capability: Annotated[
        str | None,
        typer.Option(
            "--capability",
            help="With --program: under this capability (default: the proposal's, else"
            " carlang.toml's).",
        ),
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option(
            "--budget", help="With --program: within this budget (default: the proposal's)."
        ),
    ] = None,
    root: Annotated[
        Path | None, typer.Option("--root", help="With --program: its project root.")
    ] = None,
) -> None:
    """Statically verify a CAR proposal (an agent's plan, as JSON), alone or against a
    program. Exit 0 valid, 1 invalid, 2 bad input."""
    raise typer.Exit(
        run_verify(
            proposal,
            state,
            tools,
            tool_schemas,
            max_actions,
            output,
            program,
            capability,
            budget,
            root,
        )
    )


@guarded
def simulate_command(
    proposal: ProposalArg, state: StateOpt = None, output: FormatOpt = TextOrJson.text
) -> None:
    """Print the state a proposal's declared effects leave (no tool is called)."""
    from carlang_runtime.ir import load_proposal
    from carlang_runtime.verify import simulate

    loaded = load_file(proposal, load_proposal, "proposal")
    initial = load_state_option(state) if state is not None else None
    _warn_unverified(loaded, initial, "its blocked actions are skipped, their effects not applied")
    final = simulate(loaded, initial)
    if output is TextOrJson.json:
        echo(json.dumps(final, indent=2, sort_keys=True))
    elif not final:  # (nothing printed read as a failure, or as a proposal not read)
        echo_err(
            "no state: no effect was applied (none declared, or each one blocked) and the"
            " initial state is empty"
        )
    else:
        for key in sorted(final):
            echo(f"{key}: {json.dumps(final[key])}")


@guarded
def optimize_command(proposal: ProposalArg, state: StateOpt = None) -> None:
    """Print the proposal without phantom state dependencies (wider parallelism). `--state`:
    the state it starts from (as verify and simulate take it), for the warning when it does
    not verify."""
    from carlang_runtime.ir import load_proposal
    from carlang_runtime.verify import optimize

    optimized = optimize(load_file(proposal, load_proposal, "proposal"))
    initial = load_state_option(state) if state is not None else None
    _warn_unverified(optimized, initial, "the runtime would not run it")
    echo(optimized.model_dump_json(indent=2))


#: How many of a proposal's errors `_warn_unverified` lists.
_ERRORS_SHOWN = 5


def _warn_unverified(proposal: Any, state: dict[str, Any] | None, consequence: str) -> None:
    """Say on stderr when `proposal` does not verify (from `state`), with its first errors:
    `simulate` and `optimize` answer for it all the same, as CAR's do, and a user should not
    take that answer for a plan that runs."""
    from carlang_runtime.verify import verify

    errors = [i for i in verify(proposal, state).issues if i.severity == "error"]
    if not errors:
        return
    echo_err(f"warning: the proposal does not verify ({len(errors)} error(s)): {consequence}")
    for issue in errors[:_ERRORS_SHOWN]:
        echo_err(f"  {issue.action_id}: {issue.message}  [{issue.code}]")
    if len(errors) > _ERRORS_SHOWN:
        echo_err(f"  ... and {len(errors) - _ERRORS_SHOWN} more: `carlang verify` lists them all")


class SchemaName(StrEnum):
    """Which JSON Schema `carlang schema` prints."""

    program = "program"
    proposal = "proposal"


@guarded
def schema_command(
    name: Annotated[SchemaName, typer.Argument(help="program or proposal.")] = SchemaName.program,
) -> None:
    """Print the JSON Schema of the IR (`program`: a compiled carlang program; `proposal`: a
    CAR ActionProposal)."""
    from carlang_runtime.ir.schema import schema_text

    echo(schema_text(name.value).rstrip("\n"))


@guarded
def codes_command(
    code: Annotated[
        str | None,
        typer.Argument(help="Explain this code at length, with an example where one is on record."),
    ] = None,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="As the Markdown table of docs/codes.md.")
    ] = False,
) -> None:
    """List every diagnostic code with its check, severity and meaning; or explain one
    (`carlang codes CL0521`)."""
    from carlang.codes import all_codes, codes_markdown, explain_code

    if code is not None:
        text = explain_code(code)
        if text is None:
            from carlang_runtime.suggest import did_you_mean

            hint = did_you_mean(code.upper(), [c.code for c in all_codes()], "")
            fail_usage(f"no diagnostic code {code}" + (f" ({hint})" if hint else ""))
        echo(text)
        return
    if markdown:
        echo(codes_markdown().rstrip("\n"))
        return
    for entry in all_codes():
        echo(f"{entry.code}  {entry.severity:<7}  {entry.name:<28} {entry.summary}")


def register(app: typer.Typer) -> None:
    """Add the IR commands to the app."""
    app.command("verify")(verify_command)
    app.command("simulate")(simulate_command)
    app.command("optimize")(optimize_command)
    app.command("schema")(schema_command)
    app.command("codes")(codes_command)
