"""Commands for authoring: `lsp` (the language server for editors), `graph` (a picture of a
proposal's DAG with what `check` judged on each action), `eval` and `repl` (CEL in a policy's
context)."""

from __future__ import annotations

import importlib.util
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .common import NowOption, RootOption, ScopeOption, echo, fail_usage, guarded, parse_now

if TYPE_CHECKING:
    from carlang_runtime import ir

__all__ = ["register", "GraphFormat", "write_graph"]


class GraphFormat(StrEnum):
    """What `carlang graph` draws."""

    mermaid = "mermaid"
    dot = "dot"
    svg = "svg"
    png = "png"


@guarded
def lsp_command(
    debounce_ms: Annotated[
        int,
        typer.Option("--debounce-ms", help="Edits closer together than this are compiled once."),
    ] = 30,
) -> None:
    """Run the language server on stdin/stdout (for editors; see docs/editors.md)."""
    if importlib.util.find_spec("pygls") is None:
        fail_usage("the language server needs pygls: pip install 'carlang[lsp]'")
    from carlang.lsp.server import serve

    serve(debounce=max(0, debounce_ms) / 1000)


def _chosen(program: ir.Program, proposal: str | None, plan: str | None) -> list[ir.ActionProposal]:
    names = ", ".join(p.id for p in program.proposals) or "none"
    if proposal is not None and plan is not None:
        fail_usage("--proposal and --plan exclude each other")
    if proposal is not None:
        found = program.proposal(proposal)
        if found is None:
            fail_usage(f"no proposal `{proposal}` (proposals: {names})")
        return [found]
    if plan is not None:
        chosen = program.plan(plan)
        if chosen is None:
            plans = ", ".join(p.name for p in program.plans) or "none"
            fail_usage(f"no plan `{plan}` (plans: {plans})")
        return [p for name in chosen.candidates if (p := program.proposal(name)) is not None]
    if not program.proposals:
        fail_usage("the program has no proposals to draw")
    return list(program.proposals)


def write_graph(data: bytes, fmt: GraphFormat, output: Path | None) -> None:
    """Write a picture to `output`, or to standard output (PNG only to a file or a pipe)."""
    if output is None or str(output) == "-":
        if fmt is GraphFormat.png and sys.stdout.isatty():
            fail_usage("PNG is binary: write it to a file with -o graph.png")
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        output.write_bytes(data)
    except OSError as exc:
        fail_usage(f"cannot write {output}: {exc.strerror or exc}")


#: The usual suffix of a file of each format (the one a usage error suggests).
_SUFFIXES = {
    GraphFormat.mermaid: ".mmd",
    GraphFormat.dot: ".dot",
    GraphFormat.svg: ".svg",
    GraphFormat.png: ".png",
}


def graph_format(fmt: GraphFormat | None, output: Path | None) -> GraphFormat:
    """The format asked for, else the output file's suffix, else Mermaid. A usage error when
    `--format` contradicts a suffix that names a format (`-o x.png --format mermaid` wrote
    Mermaid text into x.png); an unknown suffix (x.txt) takes any format."""
    implied = suffix_format(output)
    if fmt is None:
        return implied or GraphFormat.mermaid
    if implied is not None and implied is not fmt:
        fail_usage(
            f"--format {fmt.value} contradicts -o {output} (its suffix says {implied.value}): drop"
            f" --format (the suffix decides), or name a {_SUFFIXES[fmt]} file"
        )
    return fmt


def suffix_format(output: Path | None) -> GraphFormat | None:
    """The format the suffix of `output` names (.mmd, .mermaid, .dot, .gv, .svg, .png), if any."""
    suffix = output.suffix.lstrip(".").lower() if output is not None else ""
    aliases = {"mmd": "mermaid", "gv": "dot"}
    try:
        return GraphFormat(aliases.get(suffix, suffix))
    except ValueError:
        return None


@guarded
def graph_command(
    file: Annotated[Path, typer.Argument(help="The program whose proposals to draw.")],
    proposal: Annotated[
        str | None, typer.Option("--proposal", help="Draw this proposal (default: all).")
    ] = None,
    plan: Annotated[
        str | None, typer.Option("--plan", help="Draw this plan's candidate proposals.")
    ] = None,
    fmt: Annotated[
        GraphFormat | None,
        typer.Option("--format", help="mermaid, dot, or svg/png (Graphviz). Default: from -o."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write here (default: stdout).")
    ] = None,
    root: RootOption = None,
) -> None:
    """Draw a proposal's DAG by levels: `after` and state edges, compensations, and what
    `check` judged on each action (denied: red; needs approval: amber; failing precondition)."""
    from carlang.graph import graph_of_compile, render

    from .lang_commands import compile_program

    fmt = graph_format(fmt, output)  # (first: a contradiction with -o costs no compile)
    result, program = compile_program(file, root, proposal_errors_ok=True)
    chosen = _chosen(program, proposal, plan)
    graphs = [
        graph_of_compile(p, result.policy_findings.get(p.id), result.verify_results.get(p.id))
        for p in chosen
    ]
    write_graph(render(graphs, fmt.value), fmt, output)
    if output is not None and str(output) != "-":
        echo(f"wrote {output} ({fmt.value}, {len(graphs)} proposal{'s' * (len(graphs) != 1)})")


ToolOption = Annotated[
    str | None, typer.Option("--tool", help="Decide a call of this tool (default: any action).")
]
ParamsOption = Annotated[
    str | None, typer.Option("--params", help="The call's parameters, a JSON object.")
]
StateOption = Annotated[
    str | None,
    typer.Option("--state", help="The state over the program's: a JSON file, or a JSON object."),
]


@guarded
def eval_command(
    file: Annotated[Path, typer.Argument(help="The program (its tools and state).")],
    expression: Annotated[str, typer.Argument(help="A CEL expression.")],
    tool: ToolOption = None,
    params: ParamsOption = None,
    state: StateOption = None,
    now: NowOption = None,
    scope: ScopeOption = None,
    history: Annotated[
        str | None,
        typer.Option("--history", help="The run's earlier actions, a JSON array of entries."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON document.")] = False,
    root: RootOption = None,
) -> None:
    """Evaluate a CEL expression as a policy condition would see it: its type and value.
    Exit 0 when it evaluates, 1 when it has errors, 2 for bad input."""
    import json

    from carlang.evaluate import eval_context, evaluate, parse_history, parse_json_object
    from carlang.repl import render_outcome

    from .common import EXIT_FAILED, EXIT_OK
    from .inputs import load_state_option
    from .lang_commands import compile_program

    at = parse_now(now)
    _, program = compile_program(file, root, proposal_errors_ok=True)
    context = eval_context(
        program,
        tool,
        parse_json_object(params, "--params") if params else None,
        load_state_option(state) if state else None,
        parse_json_object(scope, "--scope") if scope else None,
        parse_history(history) if history else None,
        now=at,
    )
    outcome = evaluate(context, expression)
    echo(json.dumps(outcome.document(), indent=2) if as_json else render_outcome(outcome))
    raise typer.Exit(EXIT_OK if outcome.ok else EXIT_FAILED)


@guarded
def repl_command(
    file: Annotated[Path, typer.Argument(help="The program (its tools and state).")],
    tool: ToolOption = None,
    root: RootOption = None,
) -> None:
    """Evaluate CEL expressions interactively in a policy's context (:help lists commands)."""
    from carlang.repl import Repl, interactive, piped

    from .lang_commands import compile_program

    _, program = compile_program(file, root, proposal_errors_ok=True)
    repl = Repl(program, tool)
    if sys.stdin.isatty():
        echo(f"carlang repl: {len(program.tools)} tools; :help for commands, :quit to leave")
        interactive(repl, Path.home() / ".carlang_history")
    else:
        piped(repl, sys.stdin, echo)


def register(app: typer.Typer) -> None:
    """Add the authoring commands to the CLI."""
    app.command("lsp")(lsp_command)
    app.command("graph")(graph_command)
    app.command("eval")(eval_command)
    app.command("repl")(repl_command)
