"""Rename for the language server: every place a tool, tool parameter, state key, policy,
capability, budget, proposal, action or plan is written, renamed together, and only when the
program still means the same thing after it.

A rename is refused (`RenameRefused`, which the server answers as an LSP error the editor
shows, for prepare-rename too when the name under the cursor cannot be renamed at all) when
the new name is not a name, when it is already the name of another declaration of the same
kind (two declarations would become one name), when it would read as a keyword where it is
written (`context` as an action's name, `in` in a CEL condition), and when the rename would
change what a pattern matches:

- a pattern (`build.*`, `rollback_*`) is not one name: it is not renamed;
- a state key or tool keeps the patterns that match it: `orders.a`, a key of the family
  `orders.*`, may become `orders.shipped`, not `shipped` (which no declaration covers, and
  which `state allow orders.*` no longer allows); `ready` may not become `orders.ready`;
- a parameter read as `params.url` by a condition (or a `redact`) that applies to several
  tools with a `url` is not renamed for one of them (the condition would read another
  parameter for it than for the others); nor one an MCP server's tool is called by;
- a test of a tool's name in a condition (`action.tool.startsWith("fs.")`, `endsWith`,
  `contains`, `matches`) names no one tool: it is never rewritten, and a tool is not renamed
  to a name that would pass it when the old one did not, or fail it when the old one passed
  (`fs.read` may become `fs.load`, not `files.read`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING

from carlang_runtime.cel import CelSyntaxError
from carlang_runtime.cel.build import parse as parse_cel
from carlang_runtime.globs import GlobSet, is_glob
from lsprotocol import types as lsp

from .. import ast
from ..diagnostics import Diagnostics
from ..parse import parse
from ..source import Source, Span
from .positions import to_range
from .symbols import TOOL_TESTS, Occurrence, SymbolKey, passes_tool_test
from .uris import is_unsaved, uri_of

if TYPE_CHECKING:
    from .features import Features
    from .project import ProjectFile

__all__ = ["RENAMEABLE", "RenameRefused", "Renamer"]

#: The kinds of symbol a rename changes, and what a message calls one.
RENAMEABLE = {
    "tool": "tool",
    "param": "parameter",
    "state": "state key",
    "policy": "policy",
    "capability": "capability",
    "budget": "budget",
    "proposal": "proposal",
    "action": "action",
    "plan": "plan",
}
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
#: Kinds whose names may have dotted parts (as the compiler's CL0208 allows).
_DOTTED_KINDS = {"tool", "state"}
#: The CEL function of each kind of test of a tool's name (`tool_prefix`: `startsWith`).
_TOOL_TEST_FUNCTIONS = {kind: function for function, kind in TOOL_TESTS.items()}
#: `under` names a capability or a budget: the two share their names.
_SHARED_NAMES = {"capability": ("capability", "budget"), "budget": ("capability", "budget")}


class RenameRefused(Exception):
    """A rename the server will not make. `message` is for the user; `code` is the LSP error
    code to answer with (InvalidParams for a new name that is not a name, else
    RequestFailed)."""

    def __init__(self, message: str, code: int = lsp.LSPErrorCodes.RequestFailed) -> None:
        super().__init__(message)
        self.message = message
        self.code = int(code)


class Renamer:
    """Rename over the features' project."""

    def __init__(self, features: Features) -> None:
        self.features = features

    def target(self, path: Path, position: lsp.Position) -> tuple[ProjectFile, Occurrence] | None:
        """The renameable name under the cursor, or None. Raises `RenameRefused` for a name
        that cannot be renamed at all: a pattern, `params.url` read from several tools, a
        parameter declared in a JSON Schema."""
        found = self.features.symbol_at(path, position)
        if found is None:
            return None
        file, occurrence = found
        kind, name = occurrence.key
        if kind == "param_use":  # `params.url`: the parameter of the tool(s) it reads
            keys = self.features.keys_of(occurrence, self.features.tools(path))
            if len(keys) > 1:
                tools = _listed(_tool_of(key) for key in keys)
                raise RenameRefused(
                    f"{_where(file, occurrence)} reads the parameter `{name}` of {tools}: "
                    f"renamed for one of them, it would read another parameter for the others; "
                    f"rename them by hand"
                )
            if not keys:
                return None
            occurrence = Occurrence(keys[0], occurrence.span, occurrence.role, occurrence.node)
            kind, name = occurrence.key
        if kind in _TOOL_TEST_FUNCTIONS:  # `action.tool.startsWith("fs.")`
            passing = self.features.keys_of(occurrence, self.features.tools(path))
            tools = _listed(key[1] for key in passing) if passing else "no declared tool"
            raise RenameRefused(
                f"`{_test_text(file, occurrence)}` tests tools' names (it matches {tools}), "
                f"it is not one name: it is not renamed; rename the tools themselves"
            )
        if kind not in RENAMEABLE:
            return None
        if is_glob(name):
            noun = "state keys" if kind == "state" else "tool names"
            raise RenameRefused(
                f"`{name}` is a pattern of {noun}, not one name: renaming it would change what "
                f"it matches; rename the names it matches one by one"
            )
        if kind == "param" and not self.features.definitions_of(path, occurrence.key):
            tool = _tool_of(occurrence.key)
            if not self.features.definitions_of(path, ("tool", tool)):
                return None  # an unknown tool's: its diagnostic says so
            raise RenameRefused(
                f"`{_written(occurrence.key)}` is not in `{tool}`'s signature (its parameters "
                f"come from a JSON Schema): rename it in the schema"
            )
        return file, occurrence

    def prepare(self, path: Path, position: lsp.Position) -> lsp.Range | None:
        """The range of the renameable name under the cursor: editors refuse a rename
        elsewhere before asking for a new name."""
        found = self.target(path, position)
        if found is None:
            return None
        return to_range(found[0].source, found[1].span, self.features.encoding)

    def rename(self, path: Path, position: lsp.Position, new_name: str) -> lsp.WorkspaceEdit | None:
        """The edits renaming the symbol under the cursor to `new_name` everywhere it is
        written; None when there is nothing to rename there. Raises `RenameRefused`."""
        found = self.target(path, position)
        if found is None:
            return None
        key = found[1].key
        old = _written(key)
        _check_shape(key[0], new_name)
        if new_name == old:
            return lsp.WorkspaceEdit(changes={})
        self._check_free(path, key, new_name)
        if key[0] in ("state", "tool"):
            self._check_patterns(path, key, new_name)
        if key[0] == "tool":
            self._check_binding(path, old, new_name)
            self._check_tool_tests(path, old, new_name)
        places = self._places(path, key, old, new_name)
        _check_parses(places, key[0], old, new_name)
        encoding = self.features.encoding
        changes = {
            uri_of(file.path): [
                lsp.TextEdit(range=to_range(file.source, span, encoding), new_text=new_name)
                for span in spans
            ]
            for file, spans in places.values()
        }
        if key[0] in _SHARED_NAMES:
            changes.update(self._settings_edit(path, old, new_name))
        return lsp.WorkspaceEdit(changes=changes)

    def _places(
        self, path: Path, key: SymbolKey, old: str, new_name: str
    ) -> dict[Path, tuple[ProjectFile, list[Span]]]:
        """Where the symbol is written, by file: the spans to replace."""
        # `under` names a capability or a budget: its names are renamed with either.
        kinds = {key[0], "capability|budget"} if key[0] in _SHARED_NAMES else {key[0]}
        tools = self.features.tools(path)
        places: dict[Path, tuple[ProjectFile, list[Span]]] = {}
        for file, occurrence in self.features.all_occurrences(path):
            if occurrence.key[0] == "param_use" and key[0] == "param":
                if not self._reads_param(file, occurrence, key, old, new_name, tools):
                    continue
            elif occurrence.key[0] not in kinds or occurrence.key[1] != key[1]:
                continue
            written = file.source.text[occurrence.span.start : occurrence.span.end]
            if written != old:  # (a name the parser unescaped from a string)
                raise RenameRefused(
                    f"`{old}` is written `{written}` in `{file.source.name}`: rename it there "
                    f"by hand first"
                )
            if occurrence.form == "field" and not _PLAIN.fullmatch(new_name):
                raise RenameRefused(
                    f"{_where(file, occurrence)} reads `{old}` as a field (`.{old}`), where a "
                    f'dotted name cannot be written: write it `state["{old}"]` first'
                )
            places.setdefault(file.path, (file, []))[1].append(occurrence.span)
        return places

    def _reads_param(
        self,
        file: ProjectFile,
        occurrence: Occurrence,
        key: SymbolKey,
        old: str,
        new_name: str,
        tools: dict[str, frozenset[str] | None],
    ) -> bool:
        """Whether `params.NAME` (in a condition or a `redact`) reads the parameter being
        renamed, and so is renamed with it. Refuses when renaming it would change what it
        reads for another tool, or when it reads the new name from this tool already."""
        tool = _tool_of(key)
        applies = self.features.applies_to(occurrence, tools)
        name = occurrence.key[1]
        if tool not in applies or name not in (old, new_name):
            return False
        where = _where(file, occurrence)
        if name == new_name:
            raise RenameRefused(
                f"{where} reads `params.{new_name}`, which `{tool}` has not: renamed, it would "
                f"read `{tool}`'s `{old}` there"
            )
        others = [
            other
            for other in applies
            if other != tool and ((params := tools[other]) is None or {old, new_name} & params)
        ]
        if others:
            fix = (
                f'pin its history entry\'s tool (`.tool == "{tool}"`)'
                if occurrence.over is not None
                else "give the condition its tools"
            )
            raise RenameRefused(
                f"{where} reads `params.{old}` of {_listed(others)} too: renaming `{tool}`'s "
                f"`{old}` there would change what it reads for {_them(others)}; {fix}, or "
                f"rename the parameter of each"
            )
        return True

    def _check_free(self, path: Path, key: SymbolKey, new_name: str) -> None:
        """Refuse a name another declaration of the same kind already has: the two would
        become one name (a duplicate, or references silently pointing elsewhere)."""
        kind = key[0]
        if kind == "action":  # an action's name is its proposal's own
            proposal = key[1].split("/", 1)[0]
            if self.features.definitions_of(path, ("action", f"{proposal}/{new_name}")):
                raise RenameRefused(f"`{new_name}` is already an action in this proposal")
            return
        if kind == "param":
            tool = _tool_of(key)
            if self.features.definitions_of(path, ("param", f"{tool}({new_name})")):
                raise RenameRefused(f"`{new_name}` is already a parameter of `{tool}`")
            return
        for other in _SHARED_NAMES.get(kind, (kind,)):
            taken = [
                found
                for found in self.features.definitions_of(path, (other, new_name))
                if kind != "state" or found[1].key[1] == new_name  # (patterns: below)
            ]
            if taken:
                file, occurrence = taken[0]
                shown = file.source.text[occurrence.span.start : occurrence.span.end]
                named = "" if shown == new_name else f" (`{shown}`)"
                raise RenameRefused(
                    f"`{new_name}` is already {_a(RENAMEABLE[other])}{named}, declared in "
                    f"`{file.source.name}`"
                )
        if kind == "state":  # a key of a family is used, not declared: two keys would be one
            for file, occurrence in self.features.all_occurrences(path):
                if occurrence.key == ("state", new_name):
                    raise RenameRefused(
                        f"`{new_name}` is already a state key, used in `{file.source.name}`"
                    )

    def _check_patterns(self, path: Path, key: SymbolKey, new_name: str) -> None:
        """Refuse a rename that would take the name out of a pattern that matches it, or put
        it under one that does not: a state family (for a key not declared on its own), and
        the lists of names and patterns that allow, deny or target it (`state allow`, `tools
        allow ... deny ...`, a policy's tools, `deny_tool`), the names of the list renamed
        with it."""
        kind, old = key
        declared = any(o.key == key for _f, o in self.features.definitions_of(path, key))
        for file, occurrence in self.features.all_occurrences(path):
            pattern = occurrence.key[1]
            if declared or occurrence.key[0] != kind or not occurrence.is_definition:
                continue
            if is_glob(pattern) and fnmatchcase(old, pattern) != fnmatchcase(new_name, pattern):
                family = f"the state family `{pattern}` (declared in `{file.source.name}`)"
                if fnmatchcase(old, pattern):
                    raise RenameRefused(
                        f"`{old}` is a key of {family}, and `{new_name}` would not be: a key "
                        f"of a family is renamed within it (to a name `{pattern}` matches), "
                        f"or declared on its own first"
                    )
                raise RenameRefused(
                    f"`{new_name}` would be a key of {family}, which `{old}` is not"
                )
        for file in self.features.related_files(path):
            assert file.parsed.module is not None
            for what, names in _name_lists(file.parsed.module, kind):
                texts = [name.text for name in names]
                if not any(is_glob(text) for text in texts):
                    continue  # names only: those that are `old` are renamed with it
                before = GlobSet(texts).matches(old)
                after = GlobSet(new_name if t == old else t for t in texts).matches(new_name)
                if before == after:
                    continue
                where = f"{what} in `{file.source.name}`"
                if before:
                    pattern = next(t for t in texts if is_glob(t) and fnmatchcase(old, t))
                    raise RenameRefused(
                        f"`{old}` is matched by `{pattern}` ({where}), and `{new_name}` would "
                        f"not be: the rename would change what it allows or targets; choose a "
                        f"name `{pattern}` matches"
                    )
                pattern = next(t for t in texts if is_glob(t) and fnmatchcase(new_name, t))
                raise RenameRefused(
                    f"`{new_name}` would be matched by `{pattern}` ({where}), which does not "
                    f"match `{old}`: the rename would change what it allows or targets"
                )

    def _check_tool_tests(self, path: Path, old: str, new_name: str) -> None:
        """Refuse a rename that would change whether the tool passes a test of its name in a
        condition (`action.tool.startsWith("fs.")`, `h.tool.matches("^fs")`): the test names
        no one tool, so it is not rewritten, and the condition would decide otherwise for the
        tool renamed."""
        for file, occurrence in self.features.all_occurrences(path):
            kind, argument = occurrence.key
            before = passes_tool_test(kind, argument, old)
            if before is None or before == passes_tool_test(kind, argument, new_name):
                continue
            test = f"`{_test_text(file, occurrence)}` in {_where(file, occurrence)}"
            if before:
                raise RenameRefused(
                    f"`{old}` passes {test}, and `{new_name}` would not: the condition would "
                    f"decide otherwise for it (a test of tools' names is not renamed); choose "
                    f"a name that passes it, or change the condition first"
                )
            raise RenameRefused(
                f"`{new_name}` would pass {test}, which `{old}` does not: the condition would "
                f"decide otherwise for it (a test of tools' names is not renamed)"
            )

    def _check_binding(self, path: Path, old: str, new_name: str) -> None:
        """Refuse a rename of a tool that changes the MCP server tool it calls: `SERVER.NAME`
        calls `NAME` on `SERVER` (unless `remote "name"` says otherwise)."""
        servers = {name for name, _o, _f in self.features.names(path, "mcp_server")}
        definitions = self.features.definitions_of(path, ("tool", old))
        decl = definitions[0][1].node if definitions else None
        remote = (
            next((i for i in decl.items if isinstance(i, ast.RemoteName)), None)
            if isinstance(decl, ast.ToolDecl)
            else None
        )
        (server, name), (new_server, new_remote) = (
            _binding(old, servers),
            _binding(new_name, servers),
        )
        if server != new_server:
            if server is None:
                raise RenameRefused(
                    f"`{new_name}` would bind the tool to the MCP server `{new_server}` (a tool "
                    f"named `SERVER.NAME` calls that server's tool `NAME`)"
                )
            raise RenameRefused(
                f"`{old}` calls the tool `{name}` of the MCP server `{server}`, by its name: "
                f"`{new_name}` would not"
            )
        if server is not None and remote is None and name != new_remote:
            raise RenameRefused(
                f"`{old}` calls the tool `{name}` of the MCP server `{server}`, by its name: "
                f'renamed, it would call `{new_remote}`; add `remote "{name}"` to it first'
            )

    def _settings_edit(self, path: Path, old: str, new_name: str) -> dict[str, list[lsp.TextEdit]]:
        """The edit of `capability = "old"` in the project's `carlang.toml`, which names what
        `agent`, `export tools` and `mcp proxy` run under."""
        if is_unsaved(path):
            return {}
        settings = self.features.project.settings(path)
        if settings.config is None or settings.capability != old:
            return {}
        try:
            text = settings.config.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return {}
        found = re.search(rf"(?m)^\s*capability\s*=\s*([\"'])({re.escape(old)})\1", text)
        if found is None:
            return {}
        source = Source(settings.config.name, text)
        span = Span(found.start(2), found.end(2))
        edit = lsp.TextEdit(range=to_range(source, span, self.features.encoding), new_text=new_name)
        return {uri_of(settings.config): [edit]}


def _written(key: SymbolKey) -> str:
    """How the symbol is written in the source (an action's key has its proposal in front, a
    parameter's its tool around it)."""
    kind, name = key
    if kind == "param":
        return name[name.rindex("(") + 1 : -1]
    return name.split("/", 1)[1] if kind == "action" else name


def _test_text(file: ProjectFile, occurrence: Occurrence) -> str:
    """A test of tools' names as a message shows it: `startsWith("fs.")`."""
    text, span = file.source.text, occurrence.span
    if span.start > 0 and span.end < len(text) and text[span.start - 1] in "'\"":
        span = Span(span.start - 1, span.end + 1)  # the quotes around the text inside them
    return f"{_TOOL_TEST_FUNCTIONS[occurrence.key[0]]}({text[span.start : span.end]})"


def _tool_of(key: SymbolKey) -> str:
    """The tool of a parameter's key, `tool(param)`."""
    return key[1][: key[1].rindex("(")]


def _binding(name: str, servers: set[str]) -> tuple[str | None, str]:
    """The MCP server a tool's name binds it to, and the name of its tool there."""
    server, dot, rest = name.partition(".")
    return (server, rest) if dot and server in servers else (None, name)


def _where(file: ProjectFile, occurrence: Occurrence) -> str:
    """What holds an occurrence, for a message: `policy `p` in `x.car``."""
    node = occurrence.node
    if isinstance(node, ast.RedactDecl):
        what = "`redact`"
    elif isinstance(node, ast.TestDecl):
        what = f"test {node.name.value!r}"
    else:
        name = getattr(node, "name", None)
        noun = type(node).__name__.removesuffix("Decl").lower()
        what = f"{noun} `{name.text}`" if isinstance(name, ast.Name) else f"`{noun}`"
    return f"{what} in `{file.source.name}`"


def _name_lists(module: ast.Module, kind: str) -> Iterator[tuple[str, tuple[ast.Name, ...]]]:
    """The lists of names and patterns of tools or of state keys in a module, each matched
    as one (`tools allow` and its `deny` are two), with what holds it, for a message."""
    for decl in module.declarations:
        if isinstance(decl, ast.CapabilityDecl):
            held = f"capability `{decl.name.text}`"
            for item in decl.items:
                if kind == "state" and isinstance(item, ast.StateAllow):
                    yield f"`state allow` of {held}", item.allow
                elif kind == "tool" and isinstance(item, ast.ToolsAllow):
                    yield f"`tools allow` of {held}", item.allow
                    yield f"`tools ... deny` of {held}", item.deny
                elif kind == "tool" and isinstance(item, ast.ToolsDeny):
                    yield f"`tools deny` of {held}", item.deny
        elif kind == "tool" and isinstance(decl, ast.PolicyDecl):
            yield f"the tools of policy `{decl.name.text}`", decl.targets
        elif kind == "tool" and isinstance(decl, ast.DenyToolDecl):
            yield "`deny_tool`", decl.tools


def _listed(names: Iterable[str]) -> str:
    shown = [f"`{name}`" for name in names]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} and {shown[-1]}"


def _them(names: list[str]) -> str:
    return "it" if len(names) == 1 else "them"


def _check_shape(kind: str, new_name: str) -> None:
    noun = RENAMEABLE[kind]
    dotted = kind in _DOTTED_KINDS
    if (_DOTTED if dotted else _PLAIN).fullmatch(new_name):
        return
    shown = f"`{new_name}`" if new_name else "an empty name"
    rule = "a name is ASCII letters, digits and `_`, not starting with a digit"
    if dotted:
        rule += ", in parts joined by `.`"
    raise RenameRefused(f"{shown} is not a valid {noun} name: {rule}", lsp.ErrorCodes.InvalidParams)


def _check_parses(
    places: dict[Path, tuple[ProjectFile, list[Span]]], kind: str, old: str, new_name: str
) -> None:
    """Refuse a name that reads as a keyword where it would be written, or that is already a
    key of the map (or an argument of the call) it would be written in: each renamed file is
    parsed again, and must have no more syntax errors than it had, in its CEL conditions
    too."""
    for file, spans in places.values():
        text = _replaced(file.source.text, spans, new_name)
        before = _syntax_errors(file.parsed.diagnostics)
        parsed = parse(Source(file.source.name, text))
        if _syntax_errors(parsed.diagnostics, "CL0215") > _syntax_errors(
            file.parsed.diagnostics, "CL0215"
        ):  # (a history entry's `params` may hold a key its tool does not declare)
            raise RenameRefused(
                f"`{new_name}` is already a key or argument written beside the "
                f"{RENAMEABLE[kind]} `{old}` in `{file.source.name}`: it would be written twice"
            )
        if _syntax_errors(parsed.diagnostics) > before or (
            parsed.module is not None
            and file.parsed.module is not None
            and _cel_errors(parsed.module) > _cel_errors(file.parsed.module)
        ):
            raise RenameRefused(
                f"`{new_name}` is a keyword where the {RENAMEABLE[kind]} `{old}` is written: "
                f"it cannot name it"
            )


def _cel_errors(module: ast.Module) -> int:
    """How many of the module's policy conditions are not valid CEL."""
    count = 0
    for decl in module.declarations:
        if isinstance(decl, ast.PolicyDecl) and decl.when is not None:
            try:
                parse_cel(decl.when.cel)
            except (CelSyntaxError, RecursionError):
                count += 1
    return count


def _replaced(text: str, spans: list[Span], new_name: str) -> str:
    for span in sorted(spans, key=lambda s: s.start, reverse=True):
        text = text[: span.start] + new_name + text[span.end :]
    return text


def _syntax_errors(diagnostics: Diagnostics, code: str | None = None) -> int:
    return sum(
        1 for d in diagnostics.items if d.severity == "error" and (code is None or d.code == code)
    )


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"
