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
    project_root,
    run_check,
)
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    RootOption,
    echo,
    echo_err,
    fail_usage,
    guarded,
)

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
    any, go to stderr and end the command with exit 1 (see `blocking_errors`)."""
    from carlang.compiler import compile_file
    from carlang.render import render_text

    files = collect_sources([file])
    result = compile_file(files[0], project_root(files, root), state=state)
    errors = blocking_errors(result.diagnostics.items, proposal_errors_ok)
    if errors or result.program is None:
        echo_err(render_text(result.diagnostics.sorted()))
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

    files = collect_sources([file])
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
        typer.echo(text, nl=False)
    else:
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            fail_usage(f"cannot write {out}: {exc.strerror or exc}")


@guarded
def fmt_command(
    paths: Annotated[
        list[Path], typer.Argument(help="Files or directories (*.car found recursively).")
    ],
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
    if [str(p) for p in paths] == ["-"]:
        _fmt_stdin(check)
        return
    check = check or diff
    from carlang.fmt import NotFormattable, format_source
    from carlang.loader import display_name, encoding_error
    from carlang.render import render_text
    from carlang.source import Source

    from .common import EXIT_INTERNAL, read_bytes

    changed: list[str] = []
    failed = internal = False
    root = Path.cwd().resolve()
    for path in collect_sources(paths):
        name = display_name(path, root)
        data = read_bytes(path)
        try:
            source = Source(name, data.decode("utf-8"))
        except UnicodeDecodeError:
            echo_err(render_text([encoding_error(name, data)[1]]))
            failed = True
            continue
        try:
            formatted = format_source(source)
        except NotFormattable as exc:
            echo_err(render_text(exc.diagnostics.sorted()))
            failed = True
            continue
        except Exception as exc:  # noqa: BLE001 - FormatError, or a bug: never write then
            echo_err(
                f"internal error: {name}: {type(exc).__name__}: {exc} (the file is unchanged;"
                " this is a bug in carlang, please report it)"
            )
            internal = True
            continue
        if formatted != source.text:
            changed.append(name)
            if diff:
                echo(_unified_diff(source.text, formatted, name).rstrip("\n"))
            elif not check:
                replace_file(path, formatted)
    for name in changed if not diff else []:
        echo(f"{'would reformat' if check else 'reformatted'} {name}")
    if internal:
        raise typer.Exit(EXIT_INTERNAL)
    if failed or (check and changed):
        raise typer.Exit(EXIT_FAILED)


def replace_file(path: Path, text: str) -> None:
    """Replace `path`'s content with `text` atomically: the whole text goes to a temporary file
    beside it (same directory, so same file system), which then takes the file's place. On any
    failure the original is left exactly as it was, and the temporary file is removed."""
    import os
    import tempfile

    data = text.encode("utf-8")  # fails here, before anything is written, if it cannot
    directory = path.resolve().parent
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, path.stat().st_mode & 0o7777)
        os.replace(temporary, path.resolve())
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            fail_usage(f"cannot write {path}: {exc.strerror or exc}; the file is unchanged")
        raise


def _unified_diff(before: str, after: str, name: str) -> str:
    import difflib

    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), name, name
    )
    return "".join(lines)


def _fmt_stdin(check: bool) -> None:
    """`carlang fmt -`: standard input formatted to standard output (what editors call)."""
    import sys

    from carlang.fmt import NotFormattable, format_source
    from carlang.render import render_text
    from carlang.source import Source

    from .common import read_text

    source = Source("<stdin>", read_text(Path("-"), "standard input"))
    try:
        formatted = format_source(source)
    except NotFormattable as exc:
        echo_err(render_text(exc.diagnostics.sorted()))
        raise typer.Exit(EXIT_FAILED) from None
    if check:
        raise typer.Exit(EXIT_FAILED if formatted != source.text else EXIT_OK)
    sys.stdout.write(formatted)


def register(app: typer.Typer) -> None:
    """Add the language commands to the app."""
    app.command("check")(check_command)
    app.command("compile")(compile_command)
    app.command("fmt")(fmt_command)
