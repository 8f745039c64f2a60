"""What `carlang verify` does, without typer: loading a proposal (and its state and tools) from
files, verifying it, and reporting. The typer command (`ir_commands.verify_command`) and the
lean path (`carlang.cli.lean`, which `carlang verify` takes when its arguments are plain) both
run `run_verify`: agents and gateways call `carlang verify` once per proposal, so its start-up
is most of its wall time."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .console import EXIT_FAILED, EXIT_OK, echo, echo_err, fail_usage
from .inputs import load_file, load_json_option, load_state_option

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
    order of the actions; each with carlang's help below it, if any), conflicts, levels,
    simulated key count. `--format json` keeps the
    issues in CAR's order."""
    lines = ["VALID" if result.valid else "INVALID"]
    for issue in sorted(result.issues, key=lambda i: i.severity != "error"):
        where = f"{issue.loc}: " if issue.loc else ""
        lines.append(
            f"  [{_MARKS[issue.severity]}] {where}{issue.action_id}: {issue.message}"
            f"  [{issue.code} {issue.check}]"
        )
        if issue.help:  # (carlang's: CAR's message stays word for word above it)
            lines.append(f"      help: {issue.help}")
    if result.conflicts:
        lines.append("conflicts:")
        lines.extend(f"  {a} <-> {b} on key '{key}'" for a, b, key in result.conflicts)
    lines.append(f"levels ({len(result.execution_levels)}):")
    lines.extend(f"  {n}: {', '.join(ids)}" for n, ids in enumerate(result.execution_levels))
    lines.append(f"simulated state: {len(result.simulated_state)} keys")
    return "\n".join(lines)


def _tools_argument(tools: str | None, tool_schemas: str | None) -> Any:
    """`verify`'s `tools` from `--tools a,b` or `--tool-schemas FILE` (at most one of them)."""
    from carlang_runtime.ir import load_tools

    if tools is not None and tool_schemas is not None:
        fail_usage("give --tools or --tool-schemas, not both")
    if tool_schemas is not None:
        return load_json_option(tool_schemas, load_tools, "tool list", "--tool-schemas", "[")
    if tools is not None:
        names = [t.strip() for t in tools.split(",") if t.strip()]
        files = [n for n in names if n.endswith((".json", ".py")) or Path(n).is_file()]
        if files:  # (a tool is never called `tools.json`: the file was meant)
            instead = (
                "verify checks, it runs nothing: to check against the tools a program"
                " declares, give --program FILE.car"
                if files[0].endswith(".py")
                else f"for the file {files[0]}, use --tool-schemas {files[0]}"
            )
            fail_usage(f"--tools takes tool names (a,b,c); {instead}")
        return names
    return None


def _proposal_to_verify(text: str) -> ActionProposal | PlainColumns:
    """A proposal's JSON text loaded for `verify`: by columns when its actions are plain (no
    model per action), else as a model (with pydantic's exact errors)."""
    from carlang_runtime.errors import IRLoadError, LoadProblem
    from carlang_runtime.ir.fastload import load_fresh

    try:
        return load_fresh(text)
    except IRLoadError:
        if not _is_compiled_program(text):
            raise
    problem = (
        "this is a compiled program (`carlang compile`), not a proposal: `carlang compile"
        " FILE.car --target car` writes its proposals as CAR proposals, and `carlang verify"
        " P.json --program FILE.car` verifies one against the program"
    )
    raise IRLoadError("proposal", [LoadProblem("", problem)]) from None


def _is_compiled_program(text: str) -> bool:
    """Whether `text` is the JSON of a compiled program (what `carlang compile` writes)."""
    import json

    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and "actions" not in data and {"proposals", "tools"} <= set(data)


def run_verify(
    proposal: Path,
    state: str | None = None,
    tools: str | None = None,
    tool_schemas: str | None = None,
    max_actions: int | None = None,
    output: TextOrJson = TextOrJson.text,
    program: Path | None = None,
    capability: str | None = None,
    budget: str | None = None,
    root: Path | None = None,
) -> int:
    """Verify the proposal in file `proposal` (`-`: standard input), print the result, and
    return the exit code: 0 valid, 1 invalid. With `program` (a .car file), against its
    tools, capability, budget, state and policies (`verify_against`). Bad input raises
    (`console.UsageProblem`, or `console.Reported` once its problems are printed at their
    positions)."""
    from carlang_runtime.verify import verify

    if program is not None:
        if tools is not None or tool_schemas is not None:
            fail_usage("--program gives the tools: leave out --tools and --tool-schemas")
        return verify_against(
            proposal, program, state, max_actions, output, capability, budget, root
        )
    if capability is not None or budget is not None:
        fail_usage("--capability and --budget name a program's: give it with --program FILE.car")

    # (JSON's "expecting value" at 1:1 would not say this; a folder says so when it is read)
    if proposal.suffix == ".car" and not proposal.is_dir():
        fail_usage(
            f"{proposal}: `carlang verify` takes a CAR JSON proposal; a .car program is"
            f" verified by `carlang check {proposal}` (or made JSON by `carlang compile`)"
        )
    loaded = load_file(proposal, _proposal_to_verify, "proposal")
    _warn_ungoverned(loaded)
    initial = load_state_option(state) if state is not None else None
    result = verify(loaded, initial, _tools_argument(tools, tool_schemas), max_actions)
    if output is TextOrJson.json:
        echo(result.model_dump_json(indent=2))
    else:
        echo(render_verify_text(result))
    return EXIT_OK if result.valid else EXIT_FAILED


def _warn_ungoverned(loaded: ActionProposal | PlainColumns) -> None:
    """Say on stderr that the capability and budget the proposal names are not checked: they
    are a program's, and without one a valid verdict says nothing about them (`rank`, which
    cannot judge such a candidate either, calls it invalid)."""
    from carlang_runtime.ir import ActionProposal

    proposal = loaded if isinstance(loaded, ActionProposal) else loaded.proposal
    named = [
        f"{kind} '{name}'"
        for kind, name in (("capability", proposal.capability), ("budget", proposal.budget))
        if name
    ]
    if named:
        echo_err(
            f"warning: the proposal runs under {' and '.join(named)}, which this verify does"
            " not check: give the program that declares them with --program FILE.car"
        )


def verify_against(
    proposal: Path,
    program: Path,
    state: str | None,
    max_actions: int | None,
    output: TextOrJson,
    capability: str | None,
    budget: str | None,
    root: Path | None,
) -> int:
    """Verify a CAR proposal (an agent's, as JSON) against a program, as `carlang check`
    judges the program's own plans: its tools and their schemas, the capability and budget
    (given, else the proposal's, else carlang.toml's capability), its state, its `redact`
    paths, and what its policies will say to each action (a certain deny is an error)."""
    import json

    from carlang_runtime.ir import load_proposal
    from carlang_runtime.suggest import did_you_mean
    from carlang_runtime.verify import VerifyResult, verify

    from carlang.policycheck import judged_verdict

    from .agent_commands import chosen_capability
    from .lang_commands import compile_program

    _, compiled = compile_program(program, root, proposal_errors_ok=True)
    loaded = load_file(proposal, load_proposal, "proposal")
    given = load_state_option(state) if state is not None else {}
    cap_name = capability or loaded.capability or chosen_capability(program, root, None, compiled)
    budget_name = budget or loaded.budget
    cap = compiled.capability(cap_name) if cap_name else None
    bud = compiled.budget(budget_name) if budget_name else None
    for kind, kinds, name, found, names in (
        ("capability", "capabilities", cap_name, cap, [c.name for c in compiled.capabilities]),
        ("budget", "budgets", budget_name, bud, [b.name for b in compiled.budgets]),
    ):
        if name and found is None:
            hint = did_you_mean(name, names, "`") or f"{kinds}: {', '.join(names) or 'none'}"
            fail_usage(f"{program} declares no {kind} `{name}` ({hint})")
    initial = {**compiled.initial_state, **given}
    result = verify(
        loaded,
        initial,
        compiled.tools,
        max_actions,
        capability=cap,
        budget=bud,
        redact=compiled.redactions,
    )
    data = judged_verdict(result, compiled, loaded, given)
    if output is TextOrJson.json:
        echo(json.dumps(data, indent=2))
    else:
        echo(render_verify_text(VerifyResult.model_validate(data)))
    return EXIT_OK if data["valid"] else EXIT_FAILED
