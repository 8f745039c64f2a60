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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import TypeVar

from carlang_runtime.suggest import did_you_mean

from .diagnostics import ALLOW_PRAGMA, Diagnostic, Label
from .source import Source, Span

__all__ = [
    "PROJECT_FILE",
    "Accepted",
    "Project",
    "ProjectError",
    "find_project",
    "apply_allowances",
]

PROJECT_FILE = "carlang.toml"
STALE_ALLOWANCE = "CL0525"
_KEYS = {"root", "strict", "accept", "capability"}
T = TypeVar("T")


class ProjectError(Exception):
    """A `carlang.toml` that cannot be used: the message names the file and the fix."""


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
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProjectError(f"{path}: not a readable TOML file ({exc})") from None
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ProjectError(
            f"{path}: unknown setting `{unknown[0]}` (settings: {', '.join(sorted(_KEYS))})"
        )
    root = (path.parent / _setting(path, text, data, "root", str, ".")).resolve()
    if not root.is_dir():
        where = _where(path, text, "root")
        raise ProjectError(f"{where}: root `{data['root']}` is not a directory")
    entries = _setting(path, text, data, "accept", list, [])
    accept = [_accepted(path, text, item) for item in entries]
    strict = _setting(path, text, data, "strict", bool, False)
    capability = _setting(path, text, data, "capability", str, "") or None
    return Project(root, path, strict, tuple(accept), capability)


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


def _where(path: Path, text: str, needle: str) -> str:
    """`path:line:column` of the first `needle` in the file's text (its setting's key, an
    entry's text), or just `path` when it is not found as written."""
    found = re.search(rf"(?m)^\s*{re.escape(needle)}\s*=", text) or re.search(
        re.escape(needle), text
    )
    if found is None:
        return str(path)
    start = found.start() + len(found.group(0)) - len(found.group(0).lstrip())
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
    code: str


def _pragmas(sources: Iterable[Source]) -> list[_Pragma]:
    found = []
    for source in sources:
        for number, text in enumerate(source.text.splitlines(), 1):
            # (several on a line: `fmt` gathers the comments of a joined line, in order)
            for match in ALLOW_PRAGMA.finditer(text):
                for code in re.split(r"\s*,\s*", match.group(1)):
                    found.append(_Pragma(source, number, code))
    return found


def _statement_lines(source: Source) -> dict[int, tuple[int, int]]:
    """For each line of a statement written over several lines (`carlang.fmt.
    statement_spans`: a declaration, a block's item, a block's head up to its `{`), the
    statement's first and last lines."""
    from .fmt import statement_spans
    from .parse import parse

    parsed = parse(source)
    if parsed.module is None:
        return {}
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
    pre-commit hook passes the changed ones), the warning it accepts may be in another."""
    pragmas = _pragmas(sources)
    # (only a file with pragmas is read for its statements)
    with_pragmas = {id(p.source): p.source for p in pragmas}
    lines = {key: _statement_lines(source) for key, source in with_pragmas.items()}

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
    stale = [_stale_pragma(p) for p in pragmas if p not in used_pragmas]
    if whole_project:
        stale += [_stale_entry(a, project) for a in project.accept if a not in used_entries]
    return kept, stale


def _stale_pragma(pragma: _Pragma) -> Diagnostic:
    start = pragma.source.offset(pragma.line, 1)
    end = start + len(pragma.source.line_text(pragma.line))
    return Diagnostic(
        STALE_ALLOWANCE,
        "warning",
        f"`# carlang: allow {pragma.code}` accepts nothing: no {pragma.code} on this line"
        " or the rest of its statement",
        (Label(pragma.source, Span(start, end), "nothing to allow here"),),
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
