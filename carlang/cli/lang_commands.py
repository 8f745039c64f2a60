"""Commands over carlang source: `check`, `compile`, `fmt`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import (
    EXIT_FAILED,
    EXIT_OK,
    RootOption,
    echo,
    echo_err,
    fail_usage,
    guarded,
    painted,
)

if TYPE_CHECKING:
    from carlang_runtime.ir import Program

    from carlang.compiler import CompileResult
    from carlang.diagnostics import Diagnostic
    from carlang.project import Project

__all__ = [
    "register",
    "collect_sources",
    "project_root",
    "find_project_of",
    "compile_program",
    "compile_all",
    "blocking_errors",
]


class CheckFormat(StrEnum):
    """Output format of `carlang check`."""

    text = "text"
    json = "json"
    sarif = "sarif"


class Target(StrEnum):
    """What `carlang compile` emits."""

    carlang = "carlang"
    car = "car"


def collect_sources(paths: list[Path]) -> list[Path]:
    """The .car files named, and those under the directories named (sorted, no repeats)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.car") if p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            fail_usage(f"{path}: no such file or directory")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        fail_usage("no .car files to check")
    return unique


def find_project_of(files: list[Path], root: Path | None) -> Project:
    """The project of the first file (its `carlang.toml`, if any); `--root`, when given,
    overrides the root found."""
    from carlang.project import ProjectError, find_project

    try:
        project = find_project(files[0])
    except ProjectError as exc:
        fail_usage(str(exc))
    if root is not None:
        if not root.is_dir():
            fail_usage(f"--root {root}: not a directory")
        project = replace(project, root=root.resolve())
    return project


def project_root(files: list[Path], root: Path | None) -> Path:
    """The project root: `--root` when given, else the one found from the first file (the
    nearest directory upwards with a `carlang.toml` or `.git`, else the file's directory)."""
    return find_project_of(files, root).root


def blocking_errors(
    diagnostics: Sequence[Diagnostic], proposal_errors_ok: bool
) -> list[Diagnostic]:
    """The errors that stop a command using the program. With `proposal_errors_ok`, those
    that only make a proposal invalid (verify's findings, an action a policy will deny) do
    not: ranking, explaining and testing are about exactly those."""
    from carlang_runtime.verify import RUNTIME_CODES

    from carlang.policycheck import DENIED

    tolerated = {c.code for c in RUNTIME_CODES} | {DENIED} if proposal_errors_ok else set()
    return [d for d in diagnostics if d.severity == "error" and d.code not in tolerated]


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


def compile_all(files: list[Path], root: Path) -> tuple[list[CompileResult], list[Diagnostic]]:
    """Compile each file as an entry; diagnostics merged without repeats, and unused
    declarations reported only when no compiled program uses them."""
    from carlang.cascade import without_repeated_warnings
    from carlang.compiler import compile_file, unused_declarations, unused_diagnostic

    results = [compile_file(f, root, report_unused=False) for f in files]
    seen: dict[tuple[Any, ...], Diagnostic] = {}
    for result in results:
        for diagnostic in result.diagnostics.items:
            seen.setdefault(diagnostic.sort_key(), diagnostic)
    unused: dict[tuple[str, str, str], Any] = {}
    used_anywhere: set[tuple[str, str, str]] = set()
    for result in results:
        names = {f.source.name for f in result.loaded.files}
        found = {
            (kind, name, origin.source.name): origin
            for kind, name, origin in unused_declarations(result)
        }
        for kind, name in result.used:
            for file in names:
                used_anywhere.add((kind, name, file))
        unused.update(found)
    for (kind, name, file), origin in unused.items():
        if (kind, name, file) not in used_anywhere:
            diagnostic = unused_diagnostic(kind, name, origin)
            seen.setdefault(diagnostic.sort_key(), diagnostic)
    ordered = sorted(without_repeated_warnings(list(seen.values())), key=lambda d: d.sort_key())
    return results, ordered


def _strict(results: list[CompileResult]) -> list[Diagnostic]:
    """`--strict`'s own findings: shadowed policies; when there are tests, the policies they
    do not cover (each reported once, however many programs share it)."""
    from carlang.strict import shadowed_policies, untested_policies
    from carlang.testrun import Coverage, run_tests

    found: dict[tuple[Any, ...], Diagnostic] = {}
    for result in results:
        for diagnostic in shadowed_policies(result):
            found.setdefault(diagnostic.sort_key(), diagnostic)
    if any(result.tests for result in results):
        coverage = Coverage()
        run_tests(results, coverage)
        for diagnostic in untested_policies(results, coverage):
            found.setdefault(diagnostic.sort_key(), diagnostic)
    return list(found.values())


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
    from carlang.project import apply_allowances
    from carlang.render import render_json, render_sarif, render_text, summary_line

    files = collect_sources(paths or [Path(".")])
    project = find_project_of(files, root)
    results, diagnostics = compile_all(files, project.root)
    strict = strict or project.strict
    if strict:
        diagnostics = [*diagnostics, *_strict(results)]
    sources = {f.source.name: f.source for r in results for f in r.loaded.files}
    diagnostics, stale = apply_allowances(diagnostics, sources.values(), project)
    if strict:
        diagnostics = sorted([*diagnostics, *stale], key=lambda d: d.sort_key())
    if output is CheckFormat.json:
        echo(render_json(diagnostics))
    elif output is CheckFormat.sarif:
        echo(render_sarif(diagnostics))
    else:
        if diagnostics:
            echo(painted(render_text(diagnostics)))
            echo()
        echo(painted(summary_line(diagnostics, len(files))))
    failed = any(d.severity == "error" for d in diagnostics) or (
        strict and any(d.severity == "warning" for d in diagnostics)
    )
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


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
