"""What `carlang check` does, without typer: finding the sources and their project, compiling
each, and reporting. The typer command (`lang_commands.check_command`) and the lean path
(`carlang.cli.lean`, which `carlang check` takes when its arguments are plain) both run
`run_check`; the helpers serve the other commands too."""

from __future__ import annotations

import stat
from collections.abc import Sequence
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .console import (
    EXIT_FAILED,
    EXIT_OK,
    UsageProblem,
    echo,
    fail_usage,
    os_reason,
    painted,
    require_directory,
)

if TYPE_CHECKING:
    from carlang.compiler import CompileResult
    from carlang.diagnostics import Diagnostic
    from carlang.project import Project

__all__ = [
    "CheckFormat",
    "run_check",
    "collect_sources",
    "one_source",
    "project_root",
    "find_project_of",
    "compile_all",
    "blocking_errors",
]


class CheckFormat(StrEnum):
    """Output format of `carlang check`."""

    text = "text"
    json = "json"
    sarif = "sarif"


#: What `-` (standard input, to many tools) gets: a program's imports and diagnostics are
#: relative to its file.
_NOT_STDIN = (
    "-: carlang reads programs from files, not standard input (imports and diagnostics are"
    " relative to the file): save it as a .car file and give its path"
)


def collect_sources(paths: list[Path]) -> list[Path]:
    """The .car files named, and those under the directories named (sorted, no repeats); a
    usage error naming the path and the reason for one that cannot be read (permission
    denied, a symbolic link loop, a folder that cannot be listed)."""
    found: list[Path] = []
    for path in paths:
        if str(path) == "-":
            fail_usage(_NOT_STDIN)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            fail_usage(f"{path}: no such file or directory")
        except OSError as exc:
            fail_usage(f"cannot read {path}: {os_reason(exc)}")
        if stat.S_ISDIR(mode):
            found.extend(_car_files(path))
        elif stat.S_ISREG(mode):
            _refuse_other_formats(path)
            found.append(path)
        else:  # a FIFO, a device: reading it could block for ever
            from carlang_runtime.textfile import NOT_REGULAR

            fail_usage(f"{path}: {NOT_REGULAR}")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        fail_usage(f"no .car files in {', '.join(map(str, paths))}")
    for file in found:  # (before any work: a check or a fmt is all or nothing)
        try:
            with open(file, "rb"):
                pass
        except OSError as exc:
            fail_usage(f"cannot read {file}: {os_reason(exc)}")
    return unique


def _car_files(folder: Path) -> list[Path]:
    """The .car files under `folder` (`car_files_under`: not in hidden folders, nor in
    node_modules and the like); a usage error for a folder in it that cannot be listed."""
    from ..project import car_files_under

    def unreadable(exc: OSError) -> None:
        fail_usage(f"cannot read {exc.filename or folder}: {os_reason(exc)}")

    return car_files_under(folder, unreadable)


#: Files of other kinds named where a program is expected, by suffix: what each is, and what
#: carlang command takes it (else a syntax error at its first word would be all it said).
_OTHER_FORMATS = {
    ".json": (
        "a JSON file",
        "`carlang verify {path}` checks a CAR proposal, and `carlang compile FILE.car` makes"
        " one from a program",
    ),
    ".py": (
        "a Python file",
        "tools written in Python are given to a run: `carlang run FILE.car --tools {path}`",
    ),
    ".md": ("a Markdown file", "carlang programs are .car files"),
    ".toml": ("a TOML file", "a project's settings go in carlang.toml, next to its .car files"),
    ".yaml": ("a YAML file", "carlang programs are .car files"),
    ".yml": ("a YAML file", "carlang programs are .car files"),
}


def _refuse_other_formats(path: Path) -> None:
    """A file of another kind named where a program is expected (a CAR proposal as JSON,
    most likely: `carlang run plan.json`; a tools module): a usage error saying what it is and
    what takes it, rather than a syntax error at its first token."""
    found = _OTHER_FORMATS.get(path.suffix.lower())
    if found is not None:
        kind, instead = found
        fail_usage(f"{path}: {kind}, not a carlang program (.car): {instead.format(path=path)}")


def covers_project(files: list[Path], root: Path) -> bool:
    """Whether `files` (those checked and those they import) are every .car file of the
    project under `root`."""
    from ..project import car_files_under

    checked = {p.resolve() for p in files}
    return all(p.resolve() in checked for p in car_files_under(root))


def one_source(path: Path) -> list[Path]:
    """`[path]`, resolved, for a command that compiles one program (compile, run, rank, ...):
    a directory is refused, naming the .car files in it, rather than its first file taken."""
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.car") if p.is_file())
        listed = ", ".join(inside[:5]) + (", ..." if len(inside) > 5 else "")
        held = f"it holds {listed}" if inside else "it holds no .car file"
        fail_usage(f"{path}: a directory; this command takes one .car file ({held})")
    return collect_sources([path])


def find_project_of(files: list[Path], root: Path | None) -> Project:
    """The project of the first file (its `carlang.toml`, if any); `--root`, when given,
    overrides the root found. Files with no `carlang.toml` or `.git` above them (a copy of
    the examples, sources without git) share one root: the working directory when they are
    inside it, else the directory they have in common, so that an import between sibling
    folders is not taken for one that leaves the project."""
    from carlang.project import ProjectError, find_project

    try:
        project = find_project(files[0], *files[1:], working=Path.cwd())
    except ProjectError as exc:  # (every problem: a report's failure holds them all)
        fail_usage(str(exc))
    if root is not None:
        require_directory("--root", root)
        project = replace(project, root=root.resolve())
    return project


def project_root(files: list[Path], root: Path | None) -> Path:
    """The project root: `--root` when given, else the one found from the first file (the
    nearest directory upwards with a `carlang.toml` or `.git`, else the files' common directory)."""
    return find_project_of(files, root).root


def blocking_errors(
    diagnostics: Sequence[Diagnostic], proposal_errors_ok: bool, *, running_tests: bool = False
) -> list[Diagnostic]:
    """The errors that stop a command using the program. With `proposal_errors_ok`, those
    that only make a proposal invalid (verify's findings, an action a policy will deny) do
    not: ranking, explaining and testing are about exactly those. A `test` block's problems
    (CL0701) stop only `running_tests`: running or ranking a proposal is not about tests."""
    from carlang_runtime.verify import RUNTIME_CODES

    from carlang.codes import TEST_PROBLEM
    from carlang.policycheck import DENIED

    tolerated = {c.code for c in RUNTIME_CODES} | {DENIED} if proposal_errors_ok else set()
    if not running_tests:
        tolerated.add(TEST_PROBLEM)
    return [d for d in diagnostics if d.severity == "error" and d.code not in tolerated]


def compile_all(files: list[Path], root: Path) -> tuple[list[CompileResult], list[Diagnostic]]:
    """Compile each file as an entry; diagnostics merged without repeats, and unused
    declarations reported only when no compiled program uses them."""
    from carlang.cascade import without_repeated_warnings
    from carlang.compiler import compile_file, unused_declarations, unused_diagnostic

    try:
        results = [compile_file(f, root, report_unused=False) for f in files]
    except OSError as exc:  # (read before, by `collect_sources`: changed since)
        fail_usage(f"cannot read {exc.filename}: {os_reason(exc)}")
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


def _strict(
    results: list[CompileResult], diagnostics: list[Diagnostic], capability: str | None
) -> list[Diagnostic]:
    """`--strict`'s own findings: shadowed policies; when there are tests, the policies they
    do not cover (each reported once, however many programs share it), as `carlang test
    --coverage` finds them: under the project's `capability`, from the tests of the programs
    whose tests run (`untestable`). A program with errors stops only its own tests, as in
    `carlang test` (one broken program hid every other's untested policies), and no policy
    of its files is called untested: its tests may be the ones that cover them, and a policy
    whose condition is wrong would be called untested when its condition needs fixing."""
    from carlang.strict import shadowed_policies, untested_policies
    from carlang.testrun import Coverage, run_tests

    found: dict[tuple[Any, ...], Diagnostic] = {}
    for result in results:
        for diagnostic in shadowed_policies(result):
            found.setdefault(diagnostic.sort_key(), diagnostic)
    broken = untestable(results)
    broken_files = {f.source.name for r in broken for f in r.loaded.files}
    runnable = [r for r in results if all(r is not b for b in broken)]
    if any(result.tests for result in runnable):
        coverage = Coverage()
        run_tests(runnable, coverage, capability)
        for diagnostic in untested_policies(runnable, coverage):
            if diagnostic.location()[0] not in broken_files:
                found.setdefault(diagnostic.sort_key(), diagnostic)
    return list(found.values())


def untestable(results: Sequence[CompileResult]) -> list[CompileResult]:
    """The programs whose tests cannot run: each with an error of its own that stops them,
    a proposal a test (of any of `results`) expects refused being that test's fixture, not
    an error (see `project.expected_by_tests`)."""
    from carlang.project import expected_by_tests

    return [
        result
        for result in results
        if blocking_errors(
            expected_by_tests(results, result.diagnostics.items), True, running_tests=True
        )
    ]


def whole_project(results: Sequence[CompileResult], project: Project) -> bool:
    """Whether the programs compiled are all of the project's (not some of its files, as a
    pre-commit hook passes the changed ones): only then is what no file uses, accepts or
    declares known."""
    loaded = [f.path for r in results for f in r.loaded.files]
    return project.config is None or covers_project(loaded, project.root)


def unknown_project_capability(
    results: Sequence[CompileResult], project: Project
) -> Diagnostic | None:
    """CL0202 at `carlang.toml`'s `capability` line when no program checked declares the
    capability it names (what `agent`, `export tools` and `mcp proxy` refuse to run under),
    or None. Not judged when a program did not compile: it may be the one declaring it."""
    from carlang_runtime.suggest import did_you_mean

    from carlang.diagnostics import Diagnostic, Label
    from carlang.source import Source, Span

    name = project.capability
    if name is None or project.config is None or not results:
        return None
    if any(r.program is None for r in results):
        return None
    declared = sorted({c.name for r in results if r.program for c in r.program.capabilities})
    if name in declared:
        return None
    text = project.config.read_text(encoding="utf-8")
    source = Source(project.config.name, text)
    line = project.capability_line()
    start = source.offset(line, 1)
    quoted = text.find(f'"{name}"', start)
    span = Span(quoted, quoted + len(name) + 2) if quoted >= 0 else Span(start, start)
    hint = did_you_mean(name, declared, "`") or f"capabilities: {', '.join(declared) or 'none'}"
    return Diagnostic(
        "CL0202",
        "error",
        f"capability `{name}` is not declared by the programs checked ({hint})",
        (Label(source, span, "no such capability"),),
        help="declare it, or name a declared one (commands run under it by default)",
    )


def run_check(
    paths: list[Path] | None,
    strict: bool = False,
    output: CheckFormat = CheckFormat.text,
    root: Path | None = None,
) -> int:
    """`carlang check`'s work (see its help): every problem of the programs written out, and
    the exit code: 0 clean, 1 errors (or warnings, with `strict`). Input it cannot use raises
    `UsageProblem`."""
    from carlang.cascade import UNUSED
    from carlang.project import apply_allowances, expected_by_tests
    from carlang.render import render_json, render_sarif, render_text, summary_line

    try:
        files = collect_sources(paths or [Path(".")])
        project = find_project_of(files, root)
    except UsageProblem as exc:  # a machine reader still gets a document that says so
        if output is CheckFormat.json:
            echo(render_json([], failure=str(exc)))
        elif output is CheckFormat.sarif:
            echo(render_sarif([], failure=str(exc)))
        raise
    results, diagnostics = compile_all(files, project.root)
    diagnostics = expected_by_tests(results, diagnostics)
    strict = strict or project.strict
    if strict:
        diagnostics = [*diagnostics, *_strict(results, diagnostics, project.capability)]
    sources = {f.source.name: f.source for r in results for f in r.loaded.files}
    # Some of a project's files (a pre-commit hook passes the changed ones): what another
    # file may use or hold is not known, so neither "never used" nor "accepts nothing" is.
    whole = whole_project(results, project)
    if not whole:
        diagnostics = [d for d in diagnostics if d.code != UNUSED]
    diagnostics, stale = apply_allowances(diagnostics, sources.values(), project, whole)
    unknown = unknown_project_capability(results, project) if whole else None
    if unknown is not None:
        diagnostics = [unknown, *diagnostics]
    if strict:
        diagnostics = sorted([*diagnostics, *stale], key=lambda d: d.sort_key())
    if output is CheckFormat.json:
        echo(render_json(diagnostics))
    elif output is CheckFormat.sarif:
        echo(render_sarif(diagnostics, root=project.root))
    else:
        if diagnostics:
            echo(painted(render_text(diagnostics)))
            echo()
        # every file read counts, the imported ones too: an error in an import is in a file
        echo(painted(summary_line(diagnostics, len(sources))))
    failed = any(d.severity == "error" for d in diagnostics) or (
        strict and any(d.severity == "warning" for d in diagnostics)
    )
    return EXIT_FAILED if failed else EXIT_OK
