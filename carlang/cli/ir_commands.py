"""Commands over CAR-format IR: `verify`, `simulate`, `optimize`, `schema`, `codes`."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import EXIT_FAILED, EXIT_OK, echo, fail_usage, guarded
from .inputs import load_file

if TYPE_CHECKING:
    from carlang_runtime.ir import ActionProposal
    from carlang_runtime.ir.fastload import PlainColumns
    from carlang_runtime.verify import VerifyResult

__all__ = ["register"]


class TextOrJson(StrEnum):
    """Output format of the IR commands."""

    text = "text"
    json = "json"


_MARKS = {"error": "X", "warning": "!", "info": "i"}


def render_verify_text(result: VerifyResult) -> str:
    """`car verify`'s layout: verdict, issues (errors first, then in verify's order: the
    order of the actions), conflicts, levels, simulated key count. `--format json` keeps the
    issues in CAR's order."""
    lines = ["VALID" if result.valid else "INVALID"]
    for issue in sorted(result.issues, key=lambda i: i.severity != "error"):
        where = f"{issue.loc}: " if issue.loc else ""
        lines.append(
            f"  [{_MARKS[issue.severity]}] {where}{issue.action_id}: {issue.message}"
            f"  [{issue.code} {issue.check}]"
        )
    if result.conflicts:
        lines.append("conflicts:")
        lines.extend(f"  {a} <-> {b} on key '{key}'" for a, b, key in result.conflicts)
    lines.append(f"levels ({len(result.execution_levels)}):")
    lines.extend(f"  {n}: {', '.join(ids)}" for n, ids in enumerate(result.execution_levels))
    lines.append(f"simulated state: {len(result.simulated_state)} keys")
    return "\n".join(lines)


def _tools_argument(tools: str | None, tool_schemas: Path | None) -> Any:
    from carlang_runtime.ir import load_tools

    if tools is not None and tool_schemas is not None:
        fail_usage("give --tools or --tool-schemas, not both")
    if tool_schemas is not None:
        return load_file(tool_schemas, load_tools, "tool list")
    if tools is not None:
        return [t.strip() for t in tools.split(",") if t.strip()]
    return None


ProposalArg = Annotated[
    Path, typer.Argument(help='A CAR proposal (JSON; bare or {"proposal": ...}); - reads stdin.')
]
StateOpt = Annotated[Path | None, typer.Option("--state", help="Initial state: a JSON object.")]
FormatOpt = Annotated[TextOrJson, typer.Option("--format", help="Output format.")]


def _proposal_to_verify(text: str) -> ActionProposal | PlainColumns:
    """A proposal's JSON text loaded for `verify`: by columns when its actions are plain (no
    model per action), else as a model (with pydantic's exact errors)."""
    from carlang_runtime.ir.fastload import load_fresh

    return load_fresh(text)


@guarded
def verify_command(
    proposal: ProposalArg,
    state: StateOpt = None,
    tools: Annotated[
        str | None,
        typer.Option("--tools", help="Registered tool names, comma-separated (existence only)."),
    ] = None,
    tool_schemas: Annotated[
        Path | None,
        typer.Option("--tool-schemas", help="Tool schemas (JSON list): existence and parameters."),
    ] = None,
    max_actions: Annotated[
        int | None, typer.Option("--max-actions", min=0, help="Resource bound (default 30).")
    ] = None,
    output: FormatOpt = TextOrJson.text,
) -> None:
    """Statically verify a CAR proposal. Exit 0 valid, 1 invalid, 2 bad input."""
    from carlang_runtime.verify import load_state, verify

    loaded = load_file(proposal, _proposal_to_verify, "proposal")
    initial = load_file(state, load_state, "state") if state is not None else None
    result = verify(loaded, initial, _tools_argument(tools, tool_schemas), max_actions)
    if output is TextOrJson.json:
        echo(result.model_dump_json(indent=2))
    else:
        echo(render_verify_text(result))
    raise typer.Exit(EXIT_OK if result.valid else EXIT_FAILED)


@guarded
def simulate_command(
    proposal: ProposalArg, state: StateOpt = None, output: FormatOpt = TextOrJson.text
) -> None:
    """Print the state a proposal's declared effects leave (no tool is called)."""
    from carlang_runtime.ir import load_proposal
    from carlang_runtime.verify import load_state, simulate

    loaded = load_file(proposal, load_proposal, "proposal")
    initial = load_file(state, load_state, "state") if state is not None else None
    final = simulate(loaded, initial)
    if output is TextOrJson.json:
        echo(json.dumps(final, indent=2, sort_keys=True))
    else:
        for key in sorted(final):
            echo(f"{key}: {json.dumps(final[key])}")


@guarded
def optimize_command(proposal: ProposalArg) -> None:
    """Print the proposal without phantom state dependencies (wider parallelism)."""
    from carlang_runtime.ir import load_proposal
    from carlang_runtime.verify import optimize

    echo(optimize(load_file(proposal, load_proposal, "proposal")).model_dump_json(indent=2))


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
        typer.Argument(help="Explain this code at length, with an example."),
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
