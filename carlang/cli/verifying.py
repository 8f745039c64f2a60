"""What `carlang verify` does, without typer: loading a proposal (and its state and tools) from
files, verifying it, and reporting. The typer command (`ir_commands.verify_command`) and the
lean path (`carlang.cli.lean`, which `carlang verify` takes when its arguments are plain) both
run `run_verify`: agents and gateways call `carlang verify` once per proposal, so its start-up
is most of its wall time."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .console import EXIT_FAILED, EXIT_OK, echo, fail_usage
from .inputs import load_file, load_state_option

if TYPE_CHECKING:
    from carlang_runtime.ir import ActionProposal
    from carlang_runtime.ir.fastload import PlainColumns
    from carlang_runtime.verify import VerifyResult

__all__ = ["TextOrJson", "render_verify_text", "run_verify"]


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
    """`verify`'s `tools` from `--tools a,b` or `--tool-schemas FILE` (at most one of them)."""
    from carlang_runtime.ir import load_tools

    if tools is not None and tool_schemas is not None:
        fail_usage("give --tools or --tool-schemas, not both")
    if tool_schemas is not None:
        return load_file(tool_schemas, load_tools, "tool list")
    if tools is not None:
        names = [t.strip() for t in tools.split(",") if t.strip()]
        files = [n for n in names if n.endswith(".json") or Path(n).is_file()]
        if files:  # (a tool is never called `tools.json`: the file was meant)
            fail_usage(
                f"--tools takes tool names (a,b,c); for the file {files[0]}, use"
                f" --tool-schemas {files[0]}"
            )
        return names
    return None


def _proposal_to_verify(text: str) -> ActionProposal | PlainColumns:
    """A proposal's JSON text loaded for `verify`: by columns when its actions are plain (no
    model per action), else as a model (with pydantic's exact errors)."""
    from carlang_runtime.ir.fastload import load_fresh

    return load_fresh(text)


def run_verify(
    proposal: Path,
    state: Path | None = None,
    tools: str | None = None,
    tool_schemas: Path | None = None,
    max_actions: int | None = None,
    output: TextOrJson = TextOrJson.text,
) -> int:
    """Verify the proposal in file `proposal` (`-`: standard input), print the result, and
    return the exit code: 0 valid, 1 invalid. Bad input raises (`console.UsageProblem`, or
    `console.Reported` once its problems are printed at their positions)."""
    from carlang_runtime.verify import verify

    if proposal.suffix == ".car":  # (JSON's "expecting value" at 1:1 would not say this)
        fail_usage(
            f"{proposal}: `carlang verify` takes a CAR JSON proposal; a .car program is"
            f" verified by `carlang check {proposal}` (or made JSON by `carlang compile`)"
        )
    loaded = load_file(proposal, _proposal_to_verify, "proposal")
    initial = load_state_option(state) if state is not None else None
    result = verify(loaded, initial, _tools_argument(tools, tool_schemas), max_actions)
    if output is TextOrJson.json:
        echo(result.model_dump_json(indent=2))
    else:
        echo(render_verify_text(result))
    return EXIT_OK if result.valid else EXIT_FAILED
