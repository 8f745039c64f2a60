"""The language server's model of a project: the files open in the editor over the files on
disk, each parsed once per text (`ParseCache`), the import graph, and each open file compiled as
an entry with the compiler's own pipeline and diagnostics. Nothing here knows the protocol.

An edit re-parses only the edited file; the programs it belongs to (the file and the files that
import it, directly or not) are lowered and checked again from the kept parses. An import
cycle is reported in each file of it, as `carlang check` of the project reports it (`_cycles`).

Each file is compiled under the root `carlang check` would give it (`carlang.project.
find_project`: the nearest folder upwards with a `carlang.toml` or a `.git`), the workspace
folder standing for the command's working directory: an import that leaves that root is the
same error in the editor as on the command line, and files are named from the same place.

The warnings a file's `carlang.toml` accepts, and its `# carlang: allow CODE` pragmas, are taken
out as `carlang check` takes them out (`carlang.project.apply_allowances`).

An unsaved document (`uris.is_unsaved`) is a program on its own: its own root, no
`carlang.toml`, and an import is an error that says why it leads nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .. import ast
from ..cascade import has_syntax_errors
from ..compiler import CompileResult, compile_file, unused_declarations, unused_diagnostic
from ..diagnostics import Diagnostic, Diagnostics
from ..loader import ParseCache, display_name, load_program
from ..parse import ParseResult
from ..project import (
    PROJECT_FILE,
    Accepted,
    ProjectError,
    apply_allowances,
    car_files_under,
    expected_by_tests,
    find_project,
)
from ..project import Project as Settings
from ..source import Source
from .uris import is_unsaved

__all__ = ["Project", "ProjectFile", "MAX_SCANNED_FILES", "import_target"]

#: A workspace with more .car files than this is indexed only as files are opened.
MAX_SCANNED_FILES = 5000


@dataclass(frozen=True)
class ProjectFile:
    """One parsed file of the project."""

    path: Path
    parsed: ParseResult

    @property
    def source(self) -> Source:
        """The file's source (name relative to the root, and text)."""
        return self.parsed.source


class Project:
    """Open documents, parses, the import graph and the last compile of each open file."""

    def __init__(self, root: Path) -> None:
        #: The workspace folder: what is scanned, and the working directory `carlang check`
        #: would run in (a file's own root is `root_of`).
        self.root = root.resolve()
        self.cache = ParseCache()
        #: Unsaved texts of the files open in the editor, by resolved path.
        self.open: dict[Path, str] = {}
        #: Each known file's direct imports (resolved paths), from its last parse.
        self.imports: dict[Path, set[Path]] = {}
        self._results: dict[Path, CompileResult] = {}
        self._lowered: dict[Path, CompileResult] = {}
        #: What each file's last compile used, and the uses each file's unused warnings were
        #: judged on.
        self._last_used: dict[Path, set[tuple[str, str]]] = {}
        self._judged_uses: dict[Path, set[tuple[str, str]]] = {}
        #: Why a `carlang.toml` cannot be used, by the folder of the files it was last read
        #: for (none when it can, or there is none): the server tells the user, as
        #: `carlang check` would refuse to run.
        self.settings_problems: dict[Path, str] = {}
        #: The root of the files of each folder, as last found (`root_of`).
        self._roots: dict[Path, Path] = {}

    # -- files -------------------------------------------------------------------------------

    def scan(self) -> int:
        """Parse every .car file under the root (for references, rename and dependants); the
        number of files found."""
        found = 0
        for path in car_files_under(self.root):
            if found >= MAX_SCANNED_FILES:
                break
            self.file(path.resolve())
            found += 1
        return found

    def text(self, path: Path) -> str | None:
        """The file's text: the editor's if it is open, else the disk's (None if unreadable)."""
        if path in self.open:
            return self.open[path]
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def file(self, path: Path) -> ProjectFile | None:
        """The parsed file (None when it cannot be read)."""
        text = self.text(path)
        if text is None:
            return None
        parsed = self.cache.parse(path, Source(display_name(path, self.root_of(path)), text))
        self._note_imports(path, parsed)
        return ProjectFile(path, parsed)

    def root_of(self, path: Path) -> Path:
        """The root `path` is compiled under and named from: its project's, as `carlang check`
        finds it (`settings`), or an unsaved document's own. Kept per folder (every parse
        asks), found again when a `carlang.toml` changes or the file is diagnosed."""
        if is_unsaved(path):
            return path.parent
        root = self._roots.get(path.parent)
        if root is None:
            root = self._roots[path.parent] = self._find(path)[0].root
        return root

    def known_files(self) -> list[Path]:
        """Every file the project has parsed, sorted."""
        return sorted(self.imports)

    def set_text(self, path: Path, text: str) -> list[Path]:
        """Record the editor's text of `path`; the open files to diagnose again."""
        self.open[path] = text
        return self._invalidate(path)

    def close(self, path: Path) -> list[Path]:
        """The editor closed `path` (its disk text counts again); open files to diagnose."""
        self.open.pop(path, None)
        self._results.pop(path, None)
        if is_unsaved(path):  # gone for good: nothing on disk stands for it
            self.cache.forget(path)
            self.imports.pop(path, None)
            return []
        return self._invalidate(path)

    def disk_changed(self, path: Path) -> list[Path]:
        """A file changed (or went) on disk; the open files to diagnose again."""
        if path.name == PROJECT_FILE:  # every file's root and what it accepts may change
            self._roots.clear()
            return sorted(self.open)
        if not path.exists():
            self.cache.forget(path)
            self.imports.pop(path, None)
        return self._invalidate(path)

    def _invalidate(self, path: Path) -> list[Path]:
        before = self.cache.get(path)
        imported_before = self.imports.get(path, set())
        after = self.file(path)
        touched = {path}
        # Files importing this one are compiled again only when what they can see of it may
        # have changed: what it declares (AST equality ignores spans), or, while it has syntax
        # errors, any of its text (the importers' findings about names the parser skipped
        # over are judged on that text: `cascade.skipped_text`). An edit to comments or
        # layout of a file that parses moves positions in this file alone, but for the
        # importers' findings that point into it ("first declared here").
        text_changed = (
            before is None or after is None or before.source.text != after.parsed.source.text
        )
        if (
            before is None
            or after is None
            or before.module != after.parsed.module
            or len(before.diagnostics) != len(after.parsed.diagnostics)
            or (text_changed and (_broken(before) or _broken(after.parsed)))
        ):
            touched |= self.dependants(path)
            if _has_tests(before) or (after is not None and _has_tests(after.parsed)):
                # its tests may expect other findings of the files it imports (a fixture's)
                touched |= self.program_files(path)
        elif text_changed:
            touched |= {d for d in self.dependants(path) if self._points_into(d, path)}
        if self.imports.get(path, set()) != imported_before:
            # Which import closes a cycle depends on the file the program is read from: the
            # files of a cycle this file reaches, now or before, may see another (`_cycles`).
            reached = self.program_files(path)
            for target in imported_before:
                reached |= self.program_files(target)
            touched |= {p for p in reached if p in self.open and self._in_cycle(p)}
        for stale in touched:
            self._results.pop(stale, None)
            self._lowered.pop(stale, None)
        return sorted(p for p in touched if p in self.open)

    def _note_imports(self, path: Path, parsed: ParseResult) -> None:
        self.imports[path] = _imports_of(parsed, path)

    def _points_into(self, dependant: Path, path: Path) -> bool:
        """Whether a finding of `dependant`'s kept compile has a label in `path` (whose
        positions an edit of `path` moves)."""
        result = self._results.get(dependant)
        if result is None:
            return False
        names = {f.source.name for f in result.loaded.files if f.path == path}
        return any(
            label.source.name in names for d in result.diagnostics.items for label in d.labels
        )

    # -- the import graph --------------------------------------------------------------------

    def dependants(self, path: Path) -> set[Path]:
        """The files that import `path`, directly or through others."""
        importers: dict[Path, set[Path]] = {}
        for importer, targets in self.imports.items():
            for target in targets:
                importers.setdefault(target, set()).add(importer)
        found: set[Path] = set()
        todo = [path]
        while todo:
            for importer in importers.get(todo.pop(), ()):
                if importer not in found and importer != path:
                    found.add(importer)
                    todo.append(importer)
        return found

    def program_files(self, path: Path) -> set[Path]:
        """`path` and everything it imports, directly or not."""
        found = {path}
        todo = [path]
        while todo:
            for target in self.imports.get(todo.pop(), ()):
                if target not in found:
                    found.add(target)
                    todo.append(target)
        return found

    def _in_cycle(self, path: Path) -> bool:
        """Whether `path` imports, directly or not, a file that imports it."""
        seen: set[Path] = set()
        todo = list(self.imports.get(path, ()))
        while todo:
            target = todo.pop()
            if target == path:
                return True
            if target not in seen:
                seen.add(target)
                todo.extend(self.imports.get(target, ()))
        return False

    def _cycles(self, path: Path) -> list[Diagnostic]:
        """The import cycles `carlang check` reports in `path` when it checks the project:
        each file is read as an entry, and the import that closes a cycle is the one met
        last from that entry, so the cycle found in `path` is found reading another file
        (one of the cycle, or one importing it). Each of those files is read again (parses
        kept), only while `path` is in a cycle."""
        if is_unsaved(path) or not self._in_cycle(path):
            return []
        root = self.root_of(path)
        name = display_name(path, root)
        found: list[Diagnostic] = []
        for entry in sorted(self.dependants(path)):
            if is_unsaved(entry) or self.root_of(entry) != root:
                continue
            try:
                loaded = load_program(entry, root, texts=self.open, cache=self.cache)
            except OSError:  # (gone, or not a file, since it was parsed)
                continue
            found += [
                d for d in loaded.diagnostics.items if d.code == _CYCLE and _file_of(d) == name
            ]
        return found

    def related_files(self, path: Path) -> list[Path]:
        """The files whose names can refer to `path`'s declarations or be referred to by it:
        its program and the programs of its dependants."""
        found = self.program_files(path)
        for dependant in self.dependants(path):
            found |= self.program_files(dependant)
        return sorted(p for p in found if self.text(p) is not None)

    # -- compiling ---------------------------------------------------------------------------

    def compile(self, path: Path) -> CompileResult:
        """The compile of `path` as an entry (kept until it, an import of it or its root
        changes)."""
        result = self._results.get(path)
        if result is None or not self._current(path, result):
            result = self._results[path] = self._compile(path, check=True)
        return result

    def _current(self, path: Path, result: CompileResult) -> bool:
        """Whether `result` was compiled under the root `path` has now (a `carlang.toml` that
        appears, goes or moves `root` changes which imports leave it, and every name)."""
        return result.loaded.root == self.root_of(path)

    def _compile(self, path: Path, check: bool) -> CompileResult:
        result = compile_file(
            path,
            self.root_of(path),
            texts=self.open,
            cache=self.cache,
            check=check,
            report_unused=False,
        )
        for parsed in result.loaded.files:
            cached = self.cache.get(parsed.path)
            if cached is not None:
                self._note_imports(parsed.path, cached)
        self._last_used[path] = result.used
        return result

    def _uses_of(self, dependant: Path) -> set[tuple[str, str]]:
        result = self._results.get(dependant) or self._lowered.get(dependant)
        if result is not None and self._current(dependant, result):
            return result.used
        # An open file is about to be diagnosed again: until then its last compile says what
        # it uses (`stale_unused` tells when that turns out to have changed). A file that is
        # not open is only lowered, which is all `used` needs.
        last = self._last_used.get(dependant)
        if dependant in self.open and last is not None:
            return last
        result = self._lowered[dependant] = self._compile(dependant, check=False)
        return result.used

    def _testing(self, path: Path) -> list[CompileResult]:
        """The compiles of the files importing `path` that hold tests (which may expect its
        proposals refused); the others, most, are not compiled for this."""
        testing = []
        for dependant in sorted(self.dependants(path)):
            lowered = self._results.get(dependant) or self._lowered.get(dependant)
            if lowered is None or not self._current(dependant, lowered):
                # (not `_uses_of`: for an open file it answers from the last compile's uses,
                # and lowers nothing, so an edit of the fixture lost its tests' say)
                lowered = self._lowered[dependant] = self._compile(dependant, check=False)
            if lowered.source_map.tests:
                testing.append(self.compile(dependant))
        return testing

    def _used_elsewhere(self, path: Path) -> set[tuple[str, str]]:
        used: set[tuple[str, str]] = set()
        for dependant in self.dependants(path):
            used |= self._uses_of(dependant)
        return used

    def stale_unused(self, published: list[Path]) -> list[Path]:
        """The open files whose unused declarations, as last reported, were judged on uses
        that have changed since (to diagnose again): among the files just published and the
        files they import."""
        candidates: set[Path] = set()
        for path in published:
            candidates |= self.program_files(path)
        stale = []
        for path in sorted(candidates):
            judged = self._judged_uses.get(path)
            if path in self.open and judged is not None and judged != self._used_elsewhere(path):
                stale.append(path)
        return stale

    def diagnostics(self, path: Path) -> list[Diagnostic]:
        """What `carlang check` says about `path`: the diagnostics of its compile that are in
        this file, and its unused declarations (unless a file importing it uses them)."""
        settings = self.settings(path)  # first: it finds the file's root again
        result = self.compile(path)
        entry = result.loaded.entry
        if entry is None:
            return []
        name = entry.source.name
        # (and the import cycles that reading another file finds in this one)
        everything = Diagnostics([*result.diagnostics.items, *self._cycles(path)])
        found = [d for d in everything.sorted() if _file_of(d) in (name, "")]
        used_elsewhere = self._judged_uses[path] = self._used_elsewhere(path)
        for kind, declared, origin in unused_declarations(result, entry_only=True):
            if (kind, declared) not in used_elsewhere:
                found.append(unused_diagnostic(kind, declared, origin))
        if is_unsaved(path):
            found = [_unsaved_import(d) for d in found]
        # a negative test's fixture, as check shows it: a proposal of this file that a test
        # here, or in a file importing this one (`deploy_test.car`), expects refused
        found = expected_by_tests([result, *self._testing(path)], found)
        return self._allowed(settings, entry.source, found)

    def _allowed(
        self, settings: Settings, source: Source, found: list[Diagnostic]
    ) -> list[Diagnostic]:
        """`found` without the warnings the project accepts; with `strict`, the file's pragmas
        that accept nothing are reported, as `carlang check` reports them. An `accept` entry
        that accepts nothing is not: it is judged on every file checked together, and the
        editor sees one file."""
        kept, stale = apply_allowances(found, [source], settings)
        if settings.strict:
            kept += [d for d in stale if _file_of(d) == source.name]
        return kept

    def settings(self, path: Path) -> Settings:
        """The `carlang.toml` settings `carlang check` uses for `path` (see `_find`), keeping
        only the `accept` entries that apply to this file. Read at each call, so an edit to
        it counts at once (the root it sets too: `root_of` is updated). A `carlang.toml`
        that cannot be used counts as none (`settings_problems` says why)."""
        if is_unsaved(path):  # in no folder: no carlang.toml
            return Settings(path.parent)
        found, problem = self._find(path)
        if problem is None:
            self.settings_problems.pop(path.parent, None)
        else:
            self.settings_problems[path.parent] = problem
        self._roots[path.parent] = found.root
        # The globs are relative to the project's root: settle them here, for this one file.
        name = display_name(path, found.root)
        accept = tuple(Accepted(a.code) for a in found.accept if a.covers(name))
        return replace(found, accept=accept)

    def _find(self, path: Path) -> tuple[Settings, str | None]:
        """The project `carlang check` finds for `path` (`find_project`, the workspace folder
        standing for the working directory), and why its `carlang.toml` cannot be used, if it
        cannot (the project is then the workspace folder, with no settings)."""
        try:
            return find_project(path, working=self.root), None
        except ProjectError as exc:
            return Settings(self.root), str(exc)

    def path_of(self, name: str, entry: Path) -> Path:
        """The path of a file named (as the diagnostics of `entry` name it) relative to the
        entry's root, or of the unsaved document of that name."""
        unsaved = next((p for p in self.open if is_unsaved(p) and p.name == name), None)
        if unsaved is not None:
            return unsaved
        path = Path(name)
        return path if path.is_absolute() else (self.root_of(entry) / path).resolve()


def import_target(importer: Path, raw: str) -> Path | None:
    """The file `import "raw"` in `importer` names; None for a path no file can have (a NUL
    byte, a lone surrogate, one the system cannot resolve): the loader reports it, and there
    is nothing to follow."""
    try:
        return (importer.parent / raw).resolve()
    except (OSError, ValueError):  # `Path.resolve` raises ValueError on a NUL byte
        return None


def _broken(parsed: ParseResult) -> bool:
    """Whether the parser skipped text of the file (a syntax error)."""
    return has_syntax_errors(parsed.diagnostics)


def _imports_of(parsed: ParseResult, path: Path) -> set[Path]:
    """The files `parsed` (the text of `path`) imports."""
    imports = parsed.module.imports if parsed.module else ()
    targets = (import_target(path, i.path.value) for i in imports)
    return {t for t in targets if t is not None}


def _file_of(diagnostic: Diagnostic) -> str:
    return diagnostic.location()[0]


#: An import cycle (the loader's).
_CYCLE = "CL0210"


#: What the loader says of an import it cannot follow: no such file, or out of the root.
_IMPORT_CODES = {"CL0209", "CL0211"}


def _unsaved_import(diagnostic: Diagnostic) -> Diagnostic:
    """An unsaved document's import, said as what it is: it has no folder to be relative to
    (the loader would say that the file is missing, or outside the root)."""
    primary = diagnostic.primary
    if diagnostic.code not in _IMPORT_CODES or primary is None:
        return diagnostic
    imported = primary.source.text[primary.span.start : primary.span.end]
    return replace(
        diagnostic,
        code="CL0209",
        message=f"cannot import {imported}: an unsaved document is in no folder to import from",
        labels=(replace(primary, message="imported relative to nothing"),),
        help="save the file in the project: its imports are relative to where it is saved",
    )


def _has_tests(parsed: ParseResult | None) -> bool:
    """Whether a parse holds a `test` block."""
    module = parsed.module if parsed is not None else None
    return module is not None and any(isinstance(d, ast.TestDecl) for d in module.declarations)
