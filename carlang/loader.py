"""Reading a program: the entry file and everything it imports, each parsed once.

`import "x.car"` resolves relative to the importing file and may not leave the project root.
Imported files come before the files that import them, so a name is declared before use in
reading order; an import cycle is an error that shows the whole chain.
"""

from __future__ import annotations

import errno
import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from carlang_runtime.textfile import IS_A_DIRECTORY, NOT_REGULAR, file_kind, not_a_file

from . import ast
from .diagnostics import Diagnostic, Diagnostics, Label
from .incremental import DeclarationCache
from .parse import ParseResult, parse
from .source import Source, Span

__all__ = [
    "ParsedFile",
    "LoadedProgram",
    "ParseCache",
    "load_program",
    "default_root",
    "display_name",
    "encoding_error",
]


@dataclass
class ParsedFile:
    """One parsed file of a program."""

    path: Path
    source: Source
    module: ast.Module
    comments: list[ast.Comment]
    is_entry: bool = False


@dataclass
class LoadedProgram:
    """All files of a program, imports first, and the diagnostics from reading them."""

    root: Path
    files: list[ParsedFile] = field(default_factory=list)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)

    @property
    def entry(self) -> ParsedFile | None:
        """The file the program was compiled from."""
        return next((f for f in self.files if f.is_entry), None)


class ParseCache:
    """Parsed files kept by path and reused while their text and name are unchanged, so that a
    long-lived caller (the language server) re-parses only the files that were edited."""

    def __init__(self) -> None:
        self._parsed: dict[Path, ParseResult] = {}
        self._pieces: dict[Path, DeclarationCache] = {}

    def parse(self, path: Path, source: Source) -> ParseResult:
        """The parse of `source` (the text of `path`), from the cache when it is unchanged;
        after an edit, only the declarations whose text changed are parsed again."""
        hit = self._parsed.get(path)
        if hit is not None and hit.source.text == source.text and hit.source.name == source.name:
            return hit
        pieces = self._pieces.setdefault(path, DeclarationCache())
        result = self._parsed[path] = pieces.parse(source) or parse(source)
        return result

    def get(self, path: Path) -> ParseResult | None:
        """The last parse of `path`, if any."""
        return self._parsed.get(path)

    def forget(self, path: Path) -> None:
        """Drop `path` (the file was deleted)."""
        self._parsed.pop(path, None)
        self._pieces.pop(path, None)


def encoding_error(name: str, data: bytes) -> tuple[Source, Diagnostic]:
    """The diagnostic for bytes that are not UTF-8 (at the first bad byte), and a source of
    their text with the bad bytes replaced, to show it."""
    try:
        data.decode("utf-8")
        raise ValueError("the data is UTF-8")
    except UnicodeDecodeError as exc:
        start = len(data[: exc.start].decode("utf-8"))
        source = Source(name, data.decode("utf-8", errors="replace"))
        message = f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        label = Label(source, Span(start, start + 1), "not UTF-8")
        return source, Diagnostic("CL0105", "error", message, (label,), "save the file as UTF-8")


def default_root(entry: Path) -> Path:
    """The project root of the entry file: the nearest directory upwards holding a
    `carlang.toml` or a `.git`, else the file's own directory (see `carlang.project`)."""
    from .project import find_project

    return find_project(entry).root


def display_name(path: Path, root: Path) -> str:
    """How diagnostics name a file: relative to the root, with `/` separators."""
    resolved = path.resolve()
    if resolved.is_relative_to(root):
        return resolved.relative_to(root).as_posix()
    return path.as_posix()


def _read(path: Path) -> str | bytes | OSError:
    """The file's text; its bytes when they are not UTF-8; the error when it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def _reason(error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, IsADirectoryError):
        return IS_A_DIRECTORY
    return (error.strerror or str(error)).lower()


#: How many files a "did you mean" for an import path looks at, at most.
_SUGGESTION_FILES = 2000


def _path_suggestion(raw: str, importer: Path, root: Path) -> str | None:
    """`did you mean "lib/support_tools.car"?` for an import path naming no file: a path
    that differs only in case first, else the closest ignoring case; never the importing file
    itself (an import cycle)."""
    from itertools import islice

    base = importer.parent
    try:
        itself = importer.resolve()
        found = islice((p for p in root.rglob("*.car") if p.is_file()), _SUGGESTION_FILES)
        choices = [
            os.path.relpath(p, base).replace(os.sep, "/") for p in found if p.resolve() != itself
        ]
    except (OSError, ValueError):
        return None
    by_case: dict[str, str] = {}
    for choice in choices:  # (two files differing only in case: the first)
        by_case.setdefault(posixpath.normpath(choice).lower(), choice)
    wanted = posixpath.normpath(raw).lower()
    close = by_case.get(wanted) or by_case.get(_near_miss(wanted, by_case) or "")
    return f'did you mean "{close}"?' if close is not None else None


def _near_miss(wanted: str, paths: Iterable[str]) -> str | None:
    """The path of `paths` that `wanted` is a misspelling of, by `closest`'s measure, or None.
    Judged without the `.car` every path ends with, and the file's own name must be a near
    miss too (or the same): a shared suffix or folder counts as likeness, and made "nope.car"
    look like "eof.car"."""
    from carlang_runtime.suggest import closest

    stems = {path.removesuffix(".car"): path for path in paths}
    stem = wanted.removesuffix(".car")
    close = closest(stem, stems)
    if close is None:
        return None
    name, close_name = posixpath.basename(stem), posixpath.basename(close)
    if name != close_name and closest(name, [close_name]) is None:
        return None
    return stems[close]


class _Loader:
    def __init__(self, root: Path, texts: dict[Path, str] | None, cache: ParseCache | None) -> None:
        self.program = LoadedProgram(root.resolve())
        self.texts = texts or {}
        self.cache = cache
        self.done: set[Path] = set()
        self.stack: list[Path] = []

    def text_of(self, path: Path) -> str | bytes | OSError:
        return self.texts[path] if path in self.texts else _read(path)

    def load(self, path: Path, text: str | bytes, is_entry: bool) -> None:
        root = self.program.root
        if isinstance(text, bytes):
            self.not_utf8(path, text, is_entry)
            return
        source = Source(display_name(path, root), text)
        result = self.cache.parse(path, source) if self.cache else parse(source)
        source = result.source
        self.program.diagnostics.extend(result.diagnostics)
        module = result.module or ast.Module((), ())
        self.stack.append(path)
        for imported in module.imports:
            self.follow(imported, path, source)
        self.stack.pop()
        self.done.add(path)
        self.program.files.append(ParsedFile(path, source, module, result.comments, is_entry))

    def not_utf8(self, path: Path, data: bytes, is_entry: bool) -> None:
        """A file that is not UTF-8: one error at the first bad byte, and nothing parsed."""
        source, diagnostic = encoding_error(display_name(path, self.program.root), data)
        self.program.diagnostics.add(diagnostic)
        self.done.add(path)
        self.program.files.append(ParsedFile(path, source, ast.Module((), ()), [], is_entry))

    def follow(self, imported: ast.Import, importer: Path, source: Source) -> None:
        diagnostics, root = self.program.diagnostics, self.program.root
        raw = imported.path.value
        span = imported.path.span
        shown = raw.replace("\0", "\\u0000")

        def cannot(reason: str, help: str | None = None, looked: str | None = None) -> None:
            diagnostics.error(
                "CL0209",
                f"cannot import `{shown}`: {reason}",
                source,
                span,
                label=f"looked for {looked}" if looked else "",
                help=help,
            )

        if "\0" in raw:
            cannot("a path cannot hold a NUL character")
            return
        try:
            target = (importer.parent / raw).resolve()
        except (OSError, ValueError) as exc:
            cannot(_reason(exc) if isinstance(exc, OSError) else str(exc))
            return
        except RuntimeError:  # (Python before 3.13 raises this for a loop of symlinks)
            cannot("too many levels of symbolic links (they lead to each other)")
            return
        if not target.is_relative_to(root):
            diagnostics.error(
                "CL0211",
                f"import `{raw}` leaves the project root",
                source,
                span,
                label=(
                    "this path is outside the project root"
                    if Path(raw).is_absolute()
                    else "this path climbs out of the project root"
                ),
                help=_outside_root_help(root, target),
            )
            return
        if target in self.stack:
            chain = [display_name(p, root) for p in self.stack[self.stack.index(target) :]]
            chain.append(display_name(target, root))
            diagnostics.error(
                "CL0210",
                f"import cycle: {' -> '.join(chain)}",
                source,
                span,
                label="this import closes the cycle",
            )
            return
        if target in self.done:
            return
        looked = display_name(target, root)
        if target not in self.texts:
            # Only .car files, and only regular ones: another file's first word would show
            # in a syntax error (an agent's `mcp serve` call could read a secret this way),
            # and reading a FIFO or a device blocks
            kind = file_kind(target)
            if kind == "directory":
                cannot(IS_A_DIRECTORY, looked=looked)
                return
            if target.suffix != ".car":
                named = file_kind(target.with_name(target.name + ".car")) == "file"
                hint = f'did you mean "{raw}.car"?' if named else None
                cannot("only .car files can be imported", hint, looked)
                return
            if kind == "other":
                cannot(NOT_REGULAR, looked=looked)
                return
        text = self.text_of(target)
        if isinstance(text, OSError):
            missing = isinstance(text, FileNotFoundError)
            hint = _path_suggestion(raw, importer, root) if missing else None
            cannot(_reason(text), hint, looked)
            return
        if isinstance(text, bytes):
            problem = encoding_error(looked, text)[1]
            cannot(problem.message, "save it as UTF-8", looked)
            self.done.add(target)
            return
        self.load(target, text, is_entry=False)


def load_program(
    entry: Path,
    root: Path | None = None,
    text: str | None = None,
    texts: dict[Path, str] | None = None,
    cache: ParseCache | None = None,
) -> LoadedProgram:
    """Parse `entry` (whose text may be given) and its imports. `texts` maps resolved paths to
    text for files that should not be read from disk (tests, editors); `cache` keeps parses
    between calls."""
    entry = entry.resolve()
    loader = _Loader(root if root is not None else default_root(entry), texts, cache)
    if text is None and entry not in loader.texts:
        problem = not_a_file(entry)
        if problem == IS_A_DIRECTORY:
            raise IsADirectoryError(errno.EISDIR, problem, str(entry))
        if problem is not None:  # (a FIFO would block the read below)
            raise OSError(errno.EINVAL, problem, str(entry))
    content = loader.text_of(entry) if text is None else text
    if isinstance(content, OSError):
        raise content
    loader.load(entry, content, is_entry=True)
    return loader.program


def _outside_root_help(root: Path, target: Path) -> str:
    """How to let an import reach `target`, outside the project `root`. A root below the
    project that holds both (a `--root` given inside it: `--root policies`) is named with the
    project's top; else, where the root comes from."""
    for folder in root.parents:
        marker = next((m for m in ("carlang.toml", ".git") if (folder / m).exists()), None)
        if marker is None:
            continue
        if not target.is_relative_to(folder):
            break
        return (
            f"the project root is {_shown(root)}, a folder inside the project at"
            f" {_shown(folder)} (its {marker}), which holds the imported file: give"
            f" --root {_shown(folder)}, or leave --root out"
        )
    return (
        "imports stay inside the project root (the nearest folder above with a carlang.toml"
        " or .git): put a carlang.toml at the project's top, or give --root"
    )


def _shown(folder: Path) -> str:
    """`folder` as a command line would name it: relative to the working folder, unless that
    climbs more than two levels."""
    try:
        relative = os.path.relpath(folder)
    except (OSError, ValueError):  # (no working folder any more)
        return str(folder)
    return str(folder) if relative.startswith(("../../..", "..\\..\\..")) else relative
