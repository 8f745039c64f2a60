"""Commands over carlang source: `check`, `compile`, `fmt`. `check`'s work, and the helpers that
find and compile sources for every command, are typer-free in `checking`."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .checking import (
    CheckFormat,
    blocking_errors,
    collect_sources,
    compile_all,
    find_project_of,
    one_source,
    project_root,
    run_check,
)
from .common import (
    EXIT_FAILED,
    RootOption,
    echo_err,
    fail_usage,
    guarded,
    same_file,
)
from .console import write_out
from .formatting import run_fmt

if TYPE_CHECKING:
    from carlang_runtime.ir import Program

    from carlang.compiler import CompileResult

__all__ = [
    "register",
    "collect_sources",
    "project_root",
    "find_project_of",
    "compile_program",
    "compile_all",
    "blocking_errors",
]


class Target(StrEnum):
    """What `carlang compile` emits."""

    carlang = "carlang"
    car = "car"


def compile_program(
    file: Path,
    root: Path | None,
    state: dict[str, Any] | None = None,
    *,
    proposal_errors_ok: bool = False,
) -> tuple[CompileResult, Program]:
    """Compile one program for a command that uses it (explain, run, rank): its errors, if
    any, go to stderr and end the command with exit 1 (see `blocking_errors`), with the
    warnings `check` would show (not those a pragma or `accept` in carlang.toml accepts)."""
    from carlang.compiler import compile_file
    from carlang.project import apply_allowances
    from carlang.render import render_text

    files = one_source(file)
    project = find_project_of(files, root)
    result = compile_file(files[0], project.root, state=state)
    errors = blocking_errors(result.diagnostics.items, proposal_errors_ok)
    if errors or result.program is None:
        sources = [f.source for f in result.loaded.files]
        shown, _ = apply_allowances(result.diagnostics.sorted(), sources, project, False)
        echo_err(render_text(shown))
        raise typer.Exit(EXIT_FAILED)
    return result, result.program


@guarded
def check_command(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Files or directories (*.car found recursively; default: .)."),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Also report shadowed policies and policies the tests do not cover; warnings"
            " fail the check too.",
        ),
    ] = False,
    output: Annotated[
        CheckFormat, typer.Option("--format", help="Output format.")
    ] = CheckFormat.text,
    root: RootOption = None,
) -> None:
    """Report every problem in carlang programs. Exit 0 clean (warnings allowed unless
    --strict), 1 errors, 2 bad usage or unreadable input. Warnings accepted by a
    `# carlang: allow CODE` pragma on their line, or by `accept` in carlang.toml, are left out
    (and --strict reports allowances that accept nothing)."""
    raise typer.Exit(run_check(paths, strict, output, root))


@guarded
def compile_command(
    file: Annotated[Path, typer.Argument(help="The program's entry file.")],
    out: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the JSON here instead of stdout.")
    ] = None,
    proposal: Annotated[
        str | None, typer.Option("--proposal", help="Emit only this proposal.")
    ] = None,
    target: Annotated[
        Target, typer.Option("--target", help="carlang: the program IR; car: plain CAR proposals.")
    ] = Target.carlang,
    root: RootOption = None,
) -> None:
    """Compile a program to JSON: the verified IR (--target carlang) or plain CAR proposals
    that car-runtime accepts (--target car). Exit 1 when the program has errors."""
    from carlang.compiler import compile_file
    from carlang.export import to_car_proposal
    from carlang.render import render_text

    files = one_source(file)
    if out is not None and same_file(out, files[0]):
        fail_usage(
            f"-o {out}: that is the program {file} itself; name another file for the JSON"
            f" (like {files[0].with_suffix('.json').name})"
        )
    result = compile_file(files[0], project_root(files, root))
    if result.diagnostics.has_errors or result.program is None:
        echo_err(render_text(result.diagnostics.sorted()))
        raise typer.Exit(EXIT_FAILED)
    program = result.program
    document: Any
    if proposal is not None:
        chosen = program.proposal(proposal)
        if chosen is None:
            names = ", ".join(p.id for p in program.proposals) or "none"
            fail_usage(f"no proposal `{proposal}` in {file} (proposals: {names})")
        document = (
            to_car_proposal(chosen) if target is Target.car else chosen.model_dump(mode="json")
        )
    elif target is Target.car:
        exported = [to_car_proposal(p) for p in program.proposals]
        document = exported[0] if len(exported) == 1 else exported
    else:
        document = program.model_dump(mode="json")
    text = json.dumps(document, indent=2) + "\n"
    if out is None:
        write_out(text)
    else:
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            fail_usage(f"cannot write {out}: {exc.strerror or exc}")


@guarded
def fmt_command(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Files or directories (*.car found recursively; default: .)."),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Change nothing; exit 1 if a file is not formatted.")
    ] = False,
    diff: Annotated[
        bool,
        typer.Option("--diff", help="Change nothing; print a unified diff of what would change."),
    ] = False,
) -> None:
    """Rewrite files in carlang's canonical layout, keeping every comment. With --check, list
    the files that would change and exit 1 if there are any; with --diff, show the changes
    (exit 1 if any). `carlang fmt -` formats standard input to standard output."""
    raise typer.Exit(run_fmt(paths, check, diff))


def register(app: typer.Typer) -> None:
    """Add the language commands to the app."""
    app.command("check")(check_command)
    app.command("compile")(compile_command)
    app.command("fmt")(fmt_command)
