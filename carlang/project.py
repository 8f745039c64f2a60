"""The project a program belongs to: its root and its `carlang.toml` settings, and the
warnings a project accepts (the file's `accept` list and `# carlang: allow CL0521` pragmas: a
pragma accepts the warnings of its line, and of the other lines of the statement it is on when
that statement is written over several, as `carlang fmt` may join or split it).

The root is found as users of ruff or git expect: the nearest directory upwards from the entry
file holding a `carlang.toml` or a `.git`, else the command's working directory when the files
are inside it, else the entry file's own directory (for several files checked together, the
directory they have in common). `--root` still overrides it.
A `carlang.toml`:

    root = "."                 # relative to this file (default: its directory)
    strict = true              # `carlang check` and `carlang test` run as with --strict
    accept = ["CL0521", "CL0522:refunds/*.car"]   # CODE or CODE:GLOB (files under the root)
    capability = "agent"       # what `agent`, `export tools` and `mcp proxy` run under when
                               # no --capability is given
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from carlang_runtime.suggest import did_you_mean

from .diagnostics import ALLOW_PRAGMA, PRAGMA_START, Diagnostic, Label
from .source import Source, Span

if TYPE_CHECKING:
    from carlang_runtime.verify.codes import Code

    from . import ast
    from .compiler import CompileResult
    from .parse import ParseResult

__all__ = [
    "PROJECT_FILE",
    "Accepted",
    "Project",
    "ProjectError",
    "find_project",
    "apply_allowances",
    "car_files_under",
    "expected_by_tests",
]

PROJECT_FILE = "carlang.toml"
STALE_ALLOWANCE = "CL0525"
INVALID_PRAGMA = "CL0107"
_KEYS = {"root", "strict", "accept", "capability"}
T = TypeVar("T")


#: Folders a folder's walk for programs passes over, as ruff and git-aware tools do: other
#: tools' (dependencies, virtual environments, caches) hold files of theirs that only share
#: the `.car` suffix (an IPFS CAR archive under node_modules stopped every check and test).
#: Hidden folders (`.git`, `.venv`) are passed over too.
SKIPPED_FOLDERS = frozenset({"node_modules", "__pycache__", "site-packages", "venv"})


def car_files_under(folder: Path, onerror: Callable[[OSError], None] | None = None) -> list[Path]:
    """The regular .car files under `folder` (`files_under`)."""
    return files_under(folder, (".car",), onerror)


def files_under(
    folder: Path, suffixes: Iterable[str], onerror: Callable[[OSError], None] | None = None
) -> list[Path]:
    """The regular files under `folder` whose names end with one of `suffixes`, sorted,
    passing over hidden files and folders and `SKIPPED_FOLDERS` (symbolic links to folders are
    not followed); `onerror` is told of a folder that cannot be listed."""
    endings = tuple(suffixes)
    found: list[Path] = []
    for top, folders, names in os.walk(folder, onerror=onerror):
        folders[:] = [f for f in folders if not f.startswith(".") and f not in SKIPPED_FOLDERS]
        found.extend(
            Path(top, name) for name in names if name.endswith(endings) and name[:1] != "."
        )
    return sorted(p for p in found if p.is_file())


class ProjectError(Exception):
    """A `carlang.toml` that cannot be used: each of `problems` names the file, where in it,
    and the fix (all of them: fixing one a run at a time was a run per problem)."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Accepted:
    """A warning the project accepts: its code, in the files matching `glob` (all when None)."""

    code: str
    glob: str | None = None

    def matches(self, diagnostic: Diagnostic) -> bool:
        """Whether this entry accepts `diagnostic`."""
        return diagnostic.code == self.code and self.covers(diagnostic.location()[0])

    def covers(self, name: str) -> bool:
        """Whether this entry applies to the file `name` (relative to the project root)."""
        return self.glob is None or fnmatch(name, self.glob)

    def __str__(self) -> str:
        return self.code if self.glob is None else f"{self.code}:{self.glob}"


@dataclass(frozen=True, slots=True)
class Project:
    """Where a program's project starts and what its `carlang.toml` says (if it has one)."""

    root: Path
    config: Path | None = None
    strict: bool = False
    accept: tuple[Accepted, ...] = field(default=())
    #: The capability commands run under when no `--capability` is given.
    capability: str | None = None

    def capability_line(self) -> int:
        """The line of `carlang.toml` that sets `capability` (1 if it cannot be found)."""
        if self.config is not None:
            lines = self.config.read_text(encoding="utf-8").splitlines()
            for number, text in enumerate(lines, 1):
                if re.match(r"\s*capability\s*=", text):
                    return number
        return 1

    def capability_where(self) -> str:
        """`carlang.toml:line:column` of the `capability` setting's value (its opening quote,
        where `check` reports it; column 1 if it cannot be found)."""
        if self.config is None:
            return PROJECT_FILE
        line = self.capability_line()
        lines = self.config.read_text(encoding="utf-8").splitlines()
        written = lines[line - 1] if line <= len(lines) else ""
        found = written.find(self.capability) if self.capability else -1
        return f"{self.config}:{line}:{max(found, 1)}"


def find_project(entry: Path, *others: Path, working: Path | None = None) -> Project:
    """The project of `entry` (a file or directory), checked together with `others`: see the
    module docstring. `working`: the command's working directory, the root when no marker is
    found and it holds the files (as ruff falls back to it): a copy of the examples checked
    from its top keeps its imports between folders, whichever file is named."""
    start = _directory(entry)
    for directory in (start, *start.parents):
        config = directory / PROJECT_FILE
        if config.is_file():
            return _read_config(config)
        if (directory / ".git").exists():
            return Project(directory)
    shared = Path(os.path.commonpath([start, *map(_directory, others)]))
    if working is not None and shared.is_relative_to(working.resolve()):
        return Project(working.resolve())
    return Project(shared)


def _directory(entry: Path) -> Path:
    entry = entry.resolve()
    return entry if entry.is_dir() else entry.parent


def _read_config(path: Path) -> Project:
    import tomllib  # only a project with a carlang.toml pays for it (~2 ms at start-up)

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{path}: not a readable TOML file ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # (at its line and column, as every position)
        from carlang_runtime.planner.config import toml_problem

        raise ProjectError(toml_problem(path, text, exc, "not valid TOML")) from None
    # (in the file's order; every problem, each at its place)
    problems = [_unknown_setting(path, text, key) for key in data if key not in _KEYS]

    def read(make: Callable[[], T], default: T) -> T:
        try:
            return make()
        except ProjectError as exc:
            problems.extend(exc.problems)
            return default

    written = read(lambda: _setting(path, text, data, "root", str, "."), ".")
    try:
        root = (path.parent / written).resolve()
        is_dir = root.is_dir()
    except (OSError, ValueError):  # (a NUL in the name, a link loop)
        root, is_dir = path.parent.resolve(), False
    if not is_dir:
        shown = written if written.isprintable() else written.encode("unicode_escape").decode()
        problems.append(f"{_where(path, text, 'root')}: root `{shown}` is not a directory")
    entries: list[object] = read(lambda: _setting(path, text, data, "accept", list, []), [])
    accept: list[Accepted] = []
    for item in entries:
        try:
            accept.append(_accepted(path, text, item))
        except ProjectError as exc:
            problems.extend(exc.problems)
    strict = read(lambda: _setting(path, text, data, "strict", bool, False), False)
    capability = read(lambda: _setting(path, text, data, "capability", str, ""), "") or None
    if problems:
        raise ProjectError(*sorted(problems, key=_line_of))
    return Project(root, path, strict, tuple(accept), capability)


def _line_of(problem: str) -> tuple[int, int]:
    """Where in the file a problem is (`path:line:col: ...`), for listing them in order."""
    found = re.match(r".*?:(\d+):(\d+): ", problem)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


#: How each setting's type is named in a message, with an example of one.
_KINDS = {bool: "true or false", str: "a string", list: 'a list, like ["CL0521"]'}


def _setting(
    path: Path, text: str, data: dict[str, object], key: str, kind: type[T], default: T
) -> T:
    value = data.get(key, default)
    if not isinstance(value, kind):
        raise ProjectError(
            f"{_where(path, text, key)}: `{key}` must be {_KINDS.get(kind, kind.__name__)}"
        )
    return value


def _unknown_setting(path: Path, text: str, key: str) -> str:
    """The message for a setting carlang.toml has no such key for, at the key (`strct =`, a
    table `[strct]`, a dotted `strct.x =`), with the setting it may be a misspelling of."""
    written = rf'"?{re.escape(key)}"?'
    found = re.search(rf"(?m)^[ \t]*\[*[ \t]*(?P<key>{written})[ \t]*[=.\]]", text)
    where = _at(path, text, found.start("key")) if found else _where(path, text, key)
    hint = did_you_mean(key, _KEYS, "`") or f"settings: {', '.join(sorted(_KEYS))}"
    return f"{where}: unknown setting `{key}` ({hint})"


def _where(path: Path, text: str, needle: str) -> str:
    """`path:line:column` of the first `needle` in the file's text (its setting's key, an
    entry's text), or just `path` when it is not found as written."""
    found = re.search(rf"(?m)^\s*{re.escape(needle)}\s*=", text) or re.search(
        re.escape(needle), text
    )
    if found is None:
        return str(path)
    return _at(path, text, found.start() + len(found.group(0)) - len(found.group(0).lstrip()))


def _at(path: Path, text: str, start: int) -> str:
    """`path:line:column` of offset `start` in the file's text."""
    line = text.count("\n", 0, start) + 1
    column = start - (text.rfind("\n", 0, start) + 1) + 1
    return f"{path}:{line}:{column}"


def _accepted(path: Path, text: str, item: object) -> Accepted:
    from .codes import all_codes

    if not isinstance(item, str) or not re.fullmatch(r"CL\d{4}(:.+)?", item):
        needle = json.dumps(item) if isinstance(item, str) else "accept"
        raise ProjectError(
            f"{_where(path, text, needle)}: `accept` entries are codes, optionally with a file"
            f' glob ("CL0521" or "CL0521:refunds/*.car"), not {item!r}'
        )
    code, _, glob = item.partition(":")
    known = {c.code: c for c in all_codes()}
    where = _where(path, text, f'"{item}"')
    if code not in known:
        hint = did_you_mean(code, known, "")
        raise ProjectError(
            f"{where}: `accept` names {code}, which is no carlang code"
            + (f" ({hint})" if hint else " (`carlang codes` lists them)")
        )
    if known[code].severity == "error":
        raise ProjectError(f"{where}: `accept` names {code}, an error: errors are never accepted")
    return Accepted(code, glob or None)


@dataclass(frozen=True, slots=True)
class _Pragma:
    source: Source
    line: int
    #: the code, in capitals
    code: str
    #: where the code is written
    span: Span


def _pragmas(sources: Iterable[Source]) -> list[_Pragma]:
    found = []
    for source in sources:
        if "carlang" not in source.text:
            continue
        # (the lines as `Source` counts them: `splitlines` also splits at \r, \f, ...)
        for number, text in enumerate(source.text.split("\n"), 1):
            # (several on a line: `fmt` gathers the comments of a joined line, in order)
            for match in ALLOW_PRAGMA.finditer(text):
                line_start = source.offset(number, 1)
                for code in _PRAGMA_CODE.finditer(match.group(1)):
                    at = line_start + match.start(1) + code.start()
                    span = Span(at, at + len(code.group(0)))
                    found.append(_Pragma(source, number, code.group(0).upper(), span))
    return found


_PRAGMA_CODE = re.compile(r"(?i:CL)\d{4}")
_WORD = re.compile(r"\s*(\w*)")
_CHUNK = re.compile(r"\s*([^\s,]*)")
_COMMA = re.compile(r"\s*,")
_SHORT_CODE = re.compile(r"(?i:CL)(\d{1,3})")
_PRAGMA_FORM = "`# carlang: allow CL0521` (several codes: `# carlang: allow CL0521, CL0207`)"


def _pragma_problems(source: Source, comments: Iterable[ast.Comment]) -> list[Diagnostic]:
    """CL0107 for each comment that starts like a pragma (`# carlang:`) but is not one
    `ALLOW_PRAGMA` reads whole, or that names a code there is not or an error: a pragma
    that accepts nothing because of how it is written is not silently ignored."""
    from .codes import all_codes

    known = {c.code: c for c in all_codes()}
    found = []
    for comment in comments:
        for start in PRAGMA_START.finditer(comment.text):
            for problem, begin, end, help in _pragma_problem(comment.text, start, known):
                at = comment.span.start
                label = Label(source, Span(at + begin, at + end), "")
                found.append(Diagnostic(INVALID_PRAGMA, "warning", problem, (label,), help))
    return found


def _pragma_problem(
    text: str, start: re.Match[str], known: dict[str, Code]
) -> list[tuple[str, int, int, str]]:
    """What is wrong with the pragma `start` begins in the comment `text`: (message, start,
    end in `text`, help) for each problem (none for a pragma that is right)."""
    word = _WORD.match(text, start.end())
    assert word is not None  # (`\w*` matches the empty text)
    if word.group(1) != "allow":
        written = _CHUNK.match(text, start.end())
        assert written is not None
        what = f"`{written.group(1)}`" if written.group(1) else "nothing"
        message = f"pragma not read: `# carlang:` is followed by {what}, not `allow`"
        return [(message, start.start(), max(word.end(), written.end()), f"write {_PRAGMA_FORM}")]
    codes: list[tuple[str, int, int]] = []
    at = word.end()
    while True:
        code = _WORD.match(text, at)
        assert code is not None
        written = _CHUNK.match(text, at)
        assert written is not None
        if not _PRAGMA_CODE.fullmatch(code.group(1)) or (
            not codes and code.start(1) == word.end()  # (`allowCL0521`)
        ):
            after = "`allow`" if not codes else "`,`"
            if not written.group(1):
                problem = f"no code after {after}"
            else:
                problem = f"`{written.group(1)}` after {after} is not a code (`CL` and four digits)"
            short = _SHORT_CODE.fullmatch(code.group(1))
            meant = f"CL{short.group(1).zfill(4)}" if short is not None else ""
            help = (
                f"write the code `{meant}`"
                if meant in known
                else f"write {_PRAGMA_FORM}; `carlang codes` lists the codes"
            )
            if not codes:
                return [(f"pragma not read: {problem}", start.start(), written.end(), help)]
            # (the codes before it are read: the pragma accepts them)
            begin = written.start(1) if written.group(1) else code.start()
            message = f"{problem}: the pragma reads only the codes before it"
            return [(message, begin, max(written.end(), begin + 1), help)]
        codes.append((code.group(1).upper(), code.start(1), code.end(1)))
        comma = _COMMA.match(text, code.end())
        if comma is None:
            break
        at = comma.end()
    whole = ALLOW_PRAGMA.match(text, start.start())
    if whole is None or len(_PRAGMA_CODE.findall(whole.group(1))) != len(codes):
        message = f"pragma not read: `{start.group(0)}` is not written `# carlang:`"
        help = "write `carlang` in lowercase, the `:` right after it"
        return [(message, start.start(), start.end(), help)]
    problems = []
    for name, begin, end in codes:
        entry = known.get(name)
        if entry is None:
            message = f"`{name}` is no carlang code: the pragma accepts nothing for it"
            problems.append((message, begin, end, "`carlang codes` lists the codes"))
        elif entry.severity == "error":
            message = f"`{name}` is an error: a pragma accepts warnings, never errors"
            problems.append((message, begin, end, "fix the error instead"))
    return problems


def _statement_lines(parsed: ParseResult) -> dict[int, tuple[int, int]]:
    """For each line of a statement written over several lines (`carlang.fmt.
    statement_spans`: a declaration, a block's item, a block's head up to its `{`), the
    statement's first and last lines."""
    from .fmt import statement_spans

    if parsed.module is None:
        return {}
    source = parsed.source
    lines: dict[int, tuple[int, int]] = {}
    for span in statement_spans(source, parsed.module, parsed.comments):
        first = source.line_column(span.start)[0]
        last = source.line_column(max(span.start, span.end - 1))[0]
        for number in range(first, last + 1) if last > first else ():
            lines[number] = (first, last)
    return lines


def apply_allowances(
    diagnostics: Sequence[Diagnostic],
    sources: Iterable[Source],
    project: Project,
    whole_project: bool = True,
) -> tuple[list[Diagnostic], list[Diagnostic]]:
    """(the diagnostics left once the accepted warnings are taken out, one CL0525 warning for
    each pragma or `accept` entry that accepts nothing). Errors are never accepted. An
    `accept` entry is judged only on the `whole_project`: checking some of its files (a
    pre-commit hook passes the changed ones), the warning it accepts may be in another.
    A comment that starts like a pragma but is not one that accepts anything (misspelt, a
    code there is not) is a CL0107 warning among the diagnostics (with or without --strict:
    the warnings it was meant to accept are still reported)."""
    from .parse import parse

    sources = list(sources)
    pragmas = _pragmas(sources)
    # (only a file that may have pragmas is parsed again: for its comments and statements)
    parsed = {
        id(source): parse(source)
        for source in sources
        if "carlang" in source.text.lower() and PRAGMA_START.search(source.text) is not None
    }
    diagnostics = [
        *diagnostics,
        *(d for p in parsed.values() for d in _pragma_problems(p.source, p.comments)),
    ]
    lines = {id(p.source): _statement_lines(parsed[id(p.source)]) for p in pragmas}

    def on(pragma: _Pragma, name: str, line: int) -> bool:
        """Whether `pragma` is on `line` of the file `name`, or on another line of the
        statement written over several that holds it (as `fmt` may join it, or split it)."""
        if pragma.source.name != name:
            return False
        first, last = lines[id(pragma.source)].get(pragma.line, (pragma.line, pragma.line))
        return first <= line <= last

    used_pragmas: set[_Pragma] = set()
    used_entries: set[Accepted] = set()
    kept = []
    for diagnostic in diagnostics:
        if diagnostic.severity == "error":
            kept.append(diagnostic)
            continue
        name, line, _ = diagnostic.location()
        # (a statement's lines are one line: each of its pragmas for this code accepts it, as
        # several on one line do, whichever lines `fmt` puts them on)
        covering = [p for p in pragmas if p.code == diagnostic.code and on(p, name, line)]
        entry = next((a for a in project.accept if a.matches(diagnostic)), None)
        if covering:
            used_pragmas.update(covering)
        elif entry is not None:
            used_entries.add(entry)
        else:
            kept.append(diagnostic)
    # (a code there is not, or an error's, is reported as CL0107 already)
    warnings = _warning_codes()
    stale = [_stale_pragma(p) for p in pragmas if p not in used_pragmas and p.code in warnings]
    if whole_project:
        stale += [_stale_entry(a, project) for a in project.accept if a not in used_entries]
    return kept, stale


def _warning_codes() -> set[str]:
    from .codes import all_codes

    return {c.code for c in all_codes() if c.severity != "error"}


def _stale_pragma(pragma: _Pragma) -> Diagnostic:
    return Diagnostic(
        STALE_ALLOWANCE,
        "warning",
        f"`# carlang: allow {pragma.code}` accepts nothing: no {pragma.code} on this line"
        " or the rest of its statement",
        (Label(pragma.source, pragma.span, "nothing to allow here"),),
        help="remove the pragma, or move it to the line the warning points at",
    )


def _stale_entry(entry: Accepted, project: Project) -> Diagnostic:
    config = project.config or project.root / PROJECT_FILE
    text = config.read_text(encoding="utf-8") if config.is_file() else ""
    source = Source(config.name, text)
    offset = text.find(f'"{entry}"')
    span = Span(offset, offset + len(str(entry)) + 2) if offset >= 0 else Span(0, 0)
    return Diagnostic(
        STALE_ALLOWANCE,
        "warning",
        f"accepted warning `{entry}` matches nothing",
        (Label(source, span, "accepts nothing"),),
        help=f"remove it from `accept` in {PROJECT_FILE}",
    )


def expected_by_tests(
    results: Iterable[CompileResult], diagnostics: Sequence[Diagnostic]
) -> list[Diagnostic]:
    """`diagnostics`, with each finding a test expects of a proposal made a note (`info`)
    saying so: an error of a proposal a test expects `invalid`, or a finding whose code a
    test expects (`expect codes CL0520`). Such a proposal is the test's fixture, written to
    be refused: its errors failed every `carlang check`, and no pragma or `accept` may
    accept an error (a trial: negative tests could never pass CI's check step)."""
    expected: list[tuple[Source, Span, str, frozenset[str] | None]] = []
    for result in results:
        for case in result.tests:
            origin = result.source_map.proposals.get(case.proposal or "")
            if origin is None:
                continue
            for wanted in case.expectations:
                if wanted.kind == "validity" and wanted.word == "invalid":
                    expected.append((origin.source, origin.node.span, case.name, None))
                elif wanted.kind == "codes":
                    codes = frozenset(wanted.codes)
                    expected.append((origin.source, origin.node.span, case.name, codes))
    if not expected:
        return list(diagnostics)
    return [_as_expected(d, expected) for d in diagnostics]


def _as_expected(
    diagnostic: Diagnostic, expected: Sequence[tuple[Source, Span, str, frozenset[str] | None]]
) -> Diagnostic:
    """`diagnostic` as a note when a test expects it (see `expected_by_tests`)."""
    from .testrun import checks_of

    label = diagnostic.primary
    if label is None or not label.span or diagnostic.severity == "info":
        return diagnostic
    # (by the file's name: `check` keeps one copy of a finding two compiles made, and that
    # may be the one of the proposal's own file, not of the test's that imports it)
    named = {diagnostic.code, checks_of().get(diagnostic.code, "")}
    for source, span, test, codes in expected:
        inside = label.source.name == source.name and span.start <= label.span.start < span.end
        if not inside:
            continue
        if codes is None and diagnostic.severity == "error" or codes and named & codes:
            return replace(
                diagnostic,
                severity="info",
                message=f'{diagnostic.message} (as test "{test}" expects)',
            )
    return diagnostic
