"""What the language server answers, over a `Project`: diagnostics in LSP form, hover, go to
definition, references, completion, formatting, the outline, code actions and rename.

Every answer comes from the compiler's own data: the parsed files (`symbols.py`), the compile
(`CompileResult`, its diagnostics and IR), the code registry, `fmt` and the CEL checker.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from carlang_runtime import ir
from carlang_runtime.cel import CelSyntaxError
from carlang_runtime.cel import nodes as cel_nodes
from carlang_runtime.cel.build import parse as parse_cel
from carlang_runtime.cel.checker import check as check_cel
from carlang_runtime.dag import build_dag
from carlang_runtime.globs import GlobSet
from carlang_runtime.policy import policy_declarations
from lsprotocol import types as lsp

from .. import ast
from ..codes import all_codes
from ..conditions import declarations_of
from ..diagnostics import Diagnostic
from ..fmt import FormatError, format_source
from ..loader import display_name
from ..source import Source, Span
from ..types import describe_type, value_kind
from .completion import Completer
from .linediff import changed_by_characters, changed_lines
from .positions import to_offset, to_position, to_range
from .project import Project, ProjectFile, import_target
from .rename import Renamer
from .symbols import (
    ANY_TOOL,
    TOOL_TESTS,
    Occurrence,
    SymbolKey,
    occurrence_at,
    occurrences,
    passes_tool_test,
    state_key_matches,
)
from .text import code_block, first_line, markdown, source_slice
from .uris import is_unsaved, path_of_uri, uri_of

__all__ = ["Features", "TOKEN_LEGEND", "uri_of", "path_of_uri"]

_SEVERITY = {
    "error": lsp.DiagnosticSeverity.Error,
    "warning": lsp.DiagnosticSeverity.Warning,
    "info": lsp.DiagnosticSeverity.Information,
}
_TOOL_TEST_KINDS = frozenset(TOOL_TESTS.values())
_DID_YOU_MEAN = re.compile(r"did you mean `([^`]+)`\?")
#: The field an unknown-field diagnostic names ("`params` has no field `ulr`").
_UNKNOWN_FIELD = re.compile(r"has no field `([^`]+)`")
_SYMBOL_KINDS = {
    "tool": lsp.SymbolKind.Function,
    "state": lsp.SymbolKind.Struct,
    "capability": lsp.SymbolKind.Interface,
    "budget": lsp.SymbolKind.Constant,
    "policy": lsp.SymbolKind.Event,
    "proposal": lsp.SymbolKind.Module,
    "plan": lsp.SymbolKind.Namespace,
    "test": lsp.SymbolKind.Method,
    "rule": lsp.SymbolKind.Event,
}
#: Semantic token types, in the legend's order, by symbol kind.
TOKEN_LEGEND = lsp.SemanticTokensLegend(
    token_types=["function", "parameter", "property", "event", "interface", "enum", "class",
                 "variable", "namespace", "string"],
    token_modifiers=["declaration", "modification"],
)  # fmt: skip
_TOKEN_TYPES = {
    "tool": 0,
    "param": 1,
    "state": 2,
    "policy": 3,
    "capability": 4,
    "capability|budget": 4,
    "budget": 5,
    "proposal": 6,
    "action": 7,
    "plan": 8,
    "import": 9,
}


class Features:
    """The answers to the editor's requests, for one project."""

    def __init__(self, project: Project, encoding: str = "utf-16") -> None:
        self.project = project
        self.encoding = encoding
        self.codes = {code.code: code for code in all_codes()}

    # -- plumbing ----------------------------------------------------------------------------

    def file_at(self, path: Path) -> ProjectFile | None:
        """The parsed file at `path` (None when it cannot be read)."""
        return self.project.file(path)

    def offset_at(self, file: ProjectFile, position: lsp.Position) -> int:
        """The character offset of an LSP position in `file`."""
        return to_offset(file.source, position, self.encoding)

    def _range(self, source: Source, span: Span) -> lsp.Range:
        return to_range(source, span, self.encoding)

    def _location(self, file: ProjectFile, span: Span) -> lsp.Location:
        return lsp.Location(uri=uri_of(file.path), range=self._range(file.source, span))

    def related_files(self, path: Path) -> list[ProjectFile]:
        """The parsed files related to `path` (see `Project.related_files`)."""
        return self._related(path)

    def _related(self, path: Path) -> list[ProjectFile]:
        files = (self.file_at(p) for p in self.project.related_files(path))
        return [f for f in files if f is not None and f.parsed.module is not None]

    def all_occurrences(self, path: Path) -> Iterable[tuple[ProjectFile, Occurrence]]:
        """Every name in the files related to `path` (see `Project.related_files`)."""
        for file in self._related(path):
            assert file.parsed.module is not None
            for occurrence in occurrences(file.parsed.module, file.source.text):
                yield file, occurrence

    def _resolve(self, path: Path, key: SymbolKey) -> SymbolKey:
        """`under` names a capability or a budget: settle which from the definitions."""
        if key[0] != "capability|budget":
            return key
        for _file, occurrence in self.all_occurrences(path):
            if occurrence.is_definition and occurrence.key in (
                ("capability", key[1]),
                ("budget", key[1]),
            ):
                return occurrence.key
        return ("capability", key[1])

    def symbol_at(
        self, path: Path, position: lsp.Position
    ) -> tuple[ProjectFile, Occurrence] | None:
        """The name under the cursor and its file (None when there is no name there)."""
        file = self.file_at(path)
        if file is None or file.parsed.module is None:
            return None
        found = occurrence_at(file.parsed.module, self.offset_at(file, position), file.source.text)
        if found is None:
            return None
        key = self._resolve(path, found.key)
        return file, Occurrence(key, found.span, found.role, found.node, found.form)

    def tools(self, path: Path) -> dict[str, frozenset[str] | None]:
        """The tools declared in the files related to `path`, with the names of their
        parameters (None when they are not known here: a schema read from a file)."""
        found: dict[str, frozenset[str] | None] = {}
        for file in self._related(path):
            assert file.parsed.module is not None
            for decl in file.parsed.module.declarations:
                if isinstance(decl, ast.ToolDecl):
                    found.setdefault(decl.name.text, _param_names(decl))
        return found

    def applies_to(
        self, occurrence: Occurrence, tools: dict[str, frozenset[str] | None]
    ) -> list[str]:
        """The declared tools whose parameter a `param_use` reads: those it is read from
        (`h.params.url`: `Occurrence.over`), else its policy's targets (names or globs), every
        tool for a policy without targets and for `redact`."""
        node = occurrence.node
        if occurrence.over == ANY_TOOL:
            return list(tools)
        if occurrence.over is not None:
            # names compared with `h.tool ==`: exact, a `*` in one is no pattern
            return [tool for tool in tools if tool in occurrence.over]
        if isinstance(node, ast.PolicyDecl) and node.targets:
            targets = GlobSet(t.text for t in node.targets)
            return [tool for tool in tools if targets.matches(tool)]
        return list(tools)

    def keys_of(
        self, occurrence: Occurrence, tools: dict[str, frozenset[str] | None]
    ) -> list[SymbolKey]:
        """The symbols an occurrence names: one, except `params.url` (`param_use`), which is
        the parameter `url` of each tool it applies to that has one (a tool whose parameters
        are not known here may have it), and a test of a tool's name in a condition
        (`action.tool.startsWith("fs.")`), which names each declared tool that passes it."""
        kind, name = occurrence.key
        if kind in _TOOL_TEST_KINDS:
            return [("tool", tool) for tool in tools if passes_tool_test(kind, name, tool)]
        if kind != "param_use":
            return [occurrence.key]
        return [
            ("param", f"{tool}({name})")
            for tool in self.applies_to(occurrence, tools)
            if (params := tools[tool]) is None or name in params
        ]

    def _same_symbol(self, wanted: SymbolKey, other: SymbolKey) -> bool:
        if wanted[0] == "capability" or wanted[0] == "budget":
            return other in (wanted, ("capability|budget", wanted[1]))
        if wanted[0] != other[0]:
            return False
        if wanted[0] == "state":
            return wanted[1] == other[1] or state_key_matches(wanted[1], other[1])
        return wanted[1] == other[1]

    def names(self, path: Path, kind: str) -> list[tuple[str, Occurrence, ProjectFile]]:
        """The declared names of `kind` the file can refer to: `(name, definition, file)`."""
        seen: dict[str, tuple[str, Occurrence, ProjectFile]] = {}
        for file, occurrence in self.all_occurrences(path):
            if occurrence.is_definition and occurrence.key[0] == kind:
                seen.setdefault(occurrence.key[1], (occurrence.key[1], occurrence, file))
        return list(seen.values())

    # -- diagnostics -------------------------------------------------------------------------

    def diagnostics(self, path: Path) -> list[lsp.Diagnostic]:
        """What `carlang check` says about the file, as LSP diagnostics."""
        return [self.to_lsp(d, path) for d in self.project.diagnostics(path)]

    def to_lsp(self, diagnostic: Diagnostic, entry: Path) -> lsp.Diagnostic:
        """One diagnostic of the compile of `entry` in LSP form: code, help, notes, related
        locations."""
        primary = diagnostic.primary
        where = (
            self._range(primary.source, primary.span)
            if primary is not None
            else lsp.Range(
                start=lsp.Position(line=0, character=0), end=lsp.Position(line=0, character=0)
            )
        )
        message = diagnostic.message
        if primary is not None and primary.message:
            message += f" ({primary.message})"
        if diagnostic.help:
            message += f"\nhelp: {diagnostic.help}"
        for note in diagnostic.notes:
            message += f"\nnote: {note}"
        related = [
            lsp.DiagnosticRelatedInformation(
                location=lsp.Location(
                    uri=uri_of(self.project.path_of(label.source.name, entry)),
                    range=self._range(label.source, label.span),
                ),
                message=label.message or diagnostic.message,
            )
            for label in diagnostic.labels
            if not label.primary
        ]
        return lsp.Diagnostic(
            range=where,
            message=message,
            severity=_SEVERITY[diagnostic.severity],
            code=diagnostic.code,
            source="carlang",
            related_information=related or None,
            data={"help": diagnostic.help} if diagnostic.help else None,
        )

    # -- hover -------------------------------------------------------------------------------

    def hover(self, path: Path, position: lsp.Position) -> lsp.Hover | None:
        """A tool's signature, a state key's type and writers, a policy's text, a CEL
        sub-expression's type, or a diagnostic's explanation."""
        file = self.file_at(path)
        if file is None or position.line >= file.source.line_count():
            return None  # (past the text: the position would be clamped to its end)
        offset = self.offset_at(file, position)
        parts: list[str] = []
        found = self.symbol_at(path, position)
        if found is not None and _in_condition(found[1]):
            found = None  # a name in a condition: its CEL type, below
        span: Span | None = None
        if found is not None:
            occurrence = found[1]
            keys = self.keys_of(occurrence, self.tools(path))
            parts.extend(
                self._describe(
                    path, Occurrence(key, occurrence.span, occurrence.role, occurrence.node)
                )
                for key in keys
            )
            span = occurrence.span
        else:
            cel = self._cel_hover(path, file, offset)
            if cel is not None:
                text, span = cel
                parts.append(text)
        parts.extend(self._diagnostic_help(path, file, offset))
        if not any(parts):
            return None
        return lsp.Hover(
            contents=markdown(*parts),
            range=self._range(file.source, span) if span is not None else None,
        )

    def definitions_of(self, path: Path, key: SymbolKey) -> list[tuple[ProjectFile, Occurrence]]:
        """Where the symbol `key` is declared, in the files related to `path` (a state key:
        also the patterns that cover it)."""
        found = []
        for file, occurrence in self.all_occurrences(path):
            if not occurrence.is_definition or occurrence.key[0] != key[0]:
                continue
            if occurrence.key == key or (
                key[0] == "state" and state_key_matches(occurrence.key[1], key[1])
            ):
                found.append((file, occurrence))
        return found

    def _describe(self, path: Path, occurrence: Occurrence) -> str:
        kind, name = occurrence.key
        if kind == "import":
            if is_unsaved(path):
                return f"imports `{name}` (an unsaved document is in no folder to import from)"
            target = import_target(path, name)
            if target is None:
                return f"imports `{name}` (not a path a file can have)"
            shown = display_name(target, self.project.root_of(path))
            state = "" if self._imported(path, name) else " (no such file)"
            return f"imports `{shown}`{state}"
        definitions = self.definitions_of(path, occurrence.key)
        if not definitions:
            return f"{kind} `{name}` (not declared)"
        file, definition = definitions[0]
        node = definition.node
        source = file.source
        where = f"declared in `{source.name}`"
        if kind == "param" and isinstance(node, ast.ToolDecl):
            param = next(p for p in node.params if p.name.span == definition.span)
            optional = "optional " if param.optional or param.default is not None else ""
            default = (
                f" = {source_slice(source, param.default)}" if param.default is not None else ""
            )
            return "\n\n".join(
                [
                    code_block(f"{param.name.text}: {describe_type(param.type)}{default}"),
                    f"{optional}parameter of tool `{node.name.text}`; {where}",
                ]
            )
        if isinstance(node, ast.ToolDecl):
            return "\n\n".join(
                [code_block(source_slice(source, node)), self.tool_summary(node), where]
            )
        if isinstance(node, ast.StateEntry):
            writers, readers = self._state_users(path, name)
            return "\n\n".join(
                [
                    code_block(f"state {{ {source_slice(source, node)} }}"),
                    f"type `{describe_type(node.type)}`; {where}",
                    f"written by: {', '.join(writers) or 'no action'}",
                    f"read by: {', '.join(readers) or 'no action'}",
                ]
            )
        if isinstance(node, ast.PolicyDecl):
            targets = ", ".join(f"`{t.text}`" for t in node.targets) or "every action"
            return "\n\n".join(
                [code_block(source_slice(source, node)), f"applies to {targets}", where]
            )
        return "\n\n".join([code_block(first_line(source_slice(source, node))), where])

    def tool_summary(self, decl: ast.ToolDecl) -> str:
        """A tool's parameters, reversibility and idempotence, as Markdown lines."""
        params = ", ".join(
            f"`{p.name.text}{'?' if p.optional or p.default else ''}: {describe_type(p.type)}`"
            for p in decl.params
        )
        read_only = any(isinstance(i, ast.ReadOnly) for i in decl.items)
        # (as `carlang.lower` gives its calls: a read_only tool's are reversible unless it
        # says otherwise; the hover said "irreversible (not declared)")
        reversibility = next(
            (i.word.text for i in decl.items if isinstance(i, ast.ReversibilityItem)),
            "reversible (read_only)" if read_only else "irreversible (not declared)",
        )
        lines = [f"parameters: {params or 'none'}", f"reversibility: {reversibility}"]
        if read_only:
            lines.append("read_only")
        if any(isinstance(i, ast.Idempotent) for i in decl.items):
            lines.append("idempotent")
        return "  \n".join(lines)

    def _state_users(self, path: Path, key: str) -> tuple[list[str], list[str]]:
        writers: list[str] = []
        readers: list[str] = []
        for _file, occurrence in self.all_occurrences(path):
            if occurrence.key[0] != "state" or not state_key_matches(key, occurrence.key[1]):
                continue
            node = occurrence.node
            label = f"`{node.name.text}`" if isinstance(node, ast.ActionDecl) else ""
            if occurrence.role == "write" and label and label not in writers:
                writers.append(label)
            elif occurrence.role == "read" and label and label not in readers:
                readers.append(label)
        return writers, readers

    def _diagnostic_help(self, path: Path, file: ProjectFile, offset: int) -> list[str]:
        found = []
        for diagnostic in self.project.diagnostics(path):
            primary = diagnostic.primary
            if primary is None or not primary.span.start <= offset <= primary.span.end:
                continue
            code = self.codes.get(diagnostic.code)
            explanation = f"**{diagnostic.code}** {code.name}: {code.summary}" if code else ""
            help = f"help: {diagnostic.help}" if diagnostic.help else ""
            found.append("  \n".join(p for p in (f"{diagnostic.message}", explanation, help) if p))
        return found

    # -- CEL ---------------------------------------------------------------------------------

    def policy_at(self, file: ProjectFile, offset: int) -> ast.PolicyDecl | None:
        """The policy whose `when` condition holds `offset`, if any."""
        module = file.parsed.module
        for decl in module.declarations if module else ():
            if isinstance(decl, ast.PolicyDecl) and decl.when is not None:
                if decl.when.span.start <= offset <= decl.when.span.end:
                    return decl
        return None

    def cel_declarations(self, path: Path, decl: ast.PolicyDecl) -> Any:
        """The CEL variables and types a policy's condition sees (from its targeted tools)."""
        program = self.project.compile(path).program
        policy = next(
            (
                p
                for p in (program.policies if program else [])
                if isinstance(p, ir.CelPolicy) and p.name == decl.name.text
            ),
            None,
        )
        if program is None or policy is None:
            return policy_declarations(None)
        return declarations_of(program, policy)

    def _cel_hover(self, path: Path, file: ProjectFile, offset: int) -> tuple[str, Span] | None:
        decl = self.policy_at(file, offset)
        if decl is None or decl.when is None:
            return None
        text = decl.when.cel
        inner = offset - decl.when.span.start
        try:
            tree = parse_cel(text)
        except CelSyntaxError:
            return None
        node = _smallest_at(tree, inner)
        if node is None:
            return None
        expression = text[node.start : node.end]
        try:
            kind = check_cel(expression, self.cel_declarations(path, decl)).type
        except CelSyntaxError:
            return None
        start = decl.when.span.start
        return f"`{expression}`: `{kind}`", Span(start + node.start, start + node.end)

    # -- navigation --------------------------------------------------------------------------

    def definition(self, path: Path, position: lsp.Position) -> list[lsp.Location]:
        """Where the name under the cursor is declared (an import: the imported file)."""
        found = self.symbol_at(path, position)
        if found is None:
            return []
        _file, occurrence = found
        if occurrence.key[0] == "import":
            # a missing file is no place to go (its diagnostic says it is missing)
            target = self._imported(path, occurrence.key[1])
            if target is None:
                return []
            start = lsp.Position(line=0, character=0)
            return [lsp.Location(uri=uri_of(target), range=lsp.Range(start=start, end=start))]
        locations: list[lsp.Location] = []
        for key in self.keys_of(occurrence, self.tools(path)):
            for file, definition in self.definitions_of(path, key):
                location = self._location(file, definition.span)
                if location not in locations:
                    locations.append(location)
        return locations

    def _imported(self, path: Path, name: str) -> Path | None:
        """The file `import "name"` in `path` reads, when there is one (open in the editor or
        on disk); an unsaved document imports nothing."""
        target = None if is_unsaved(path) else import_target(path, name)
        return target if target is not None and self.project.text(target) is not None else None

    def references(
        self, path: Path, position: lsp.Position, include_declaration: bool = True
    ) -> list[lsp.Location]:
        """Every place the name under the cursor is written, across the project."""
        return [
            self._location(file, occurrence.span)
            for file, occurrence in self.uses(path, position)
            if include_declaration or not occurrence.is_definition
        ]

    def uses(self, path: Path, position: lsp.Position) -> list[tuple[ProjectFile, Occurrence]]:
        """Every occurrence of the symbol under the cursor (`params.url` in a condition: of
        the parameters it reads), across the project."""
        found = self.symbol_at(path, position)
        if found is None:
            return []
        tools = self.tools(path)
        wanted = self.keys_of(found[1], tools)
        return [
            (file, occurrence)
            for file, occurrence in self.all_occurrences(path)
            if any(
                self._same_symbol(key, other)
                for key in wanted
                for other in self.keys_of(occurrence, tools)
            )
        ]

    def highlights(self, path: Path, position: lsp.Position) -> list[lsp.DocumentHighlight]:
        """The places in this file that name the symbol under the cursor: writes (of a state
        key) as writes, reads and references as reads, declarations as text."""
        file = self.file_at(path)
        if file is None:
            return []
        kinds = {
            "write": lsp.DocumentHighlightKind.Write,
            "definition": lsp.DocumentHighlightKind.Text,
        }
        return [
            lsp.DocumentHighlight(
                range=self._range(file.source, occurrence.span),
                kind=kinds.get(occurrence.role, lsp.DocumentHighlightKind.Read),
            )
            for other, occurrence in self.uses(path, position)
            if other.path == file.path
        ]

    # -- rename ------------------------------------------------------------------------------

    def prepare_rename(self, path: Path, position: lsp.Position) -> lsp.Range | None:
        """The range of a renameable name under the cursor (see `rename.py`)."""
        return Renamer(self).prepare(path, position)

    def rename(self, path: Path, position: lsp.Position, new_name: str) -> lsp.WorkspaceEdit | None:
        """Rename a tool, tool parameter, state key, policy, capability, budget, proposal,
        action or plan everywhere it is written or read; `RenameRefused` when the new name
        cannot be used or would change what the program means."""
        return Renamer(self).rename(path, position, new_name)

    # -- outline -----------------------------------------------------------------------------

    def symbols(self, path: Path) -> list[lsp.DocumentSymbol]:
        """The file's declarations, with tools' parameters, state keys and proposals' actions
        as children."""
        file = self.file_at(path)
        if file is None or file.parsed.module is None:
            return []
        return [s for s in (self._symbol(file, d) for d in file.parsed.module.declarations) if s]

    def _symbol(self, file: ProjectFile, decl: ast.Declaration) -> lsp.DocumentSymbol | None:
        source = file.source

        def symbol(
            name: str, kind: str, node: ast.Node, at: Span, children: list[lsp.DocumentSymbol]
        ) -> lsp.DocumentSymbol:
            return lsp.DocumentSymbol(
                name=name,
                kind=_SYMBOL_KINDS.get(kind, lsp.SymbolKind.Object),
                range=self._range(source, node.span),
                selection_range=self._range(source, at),
                detail=kind,
                children=children or None,
            )

        if isinstance(decl, ast.ToolDecl):
            params = [symbol(p.name.text, "param", p, p.name.span, []) for p in decl.params]
            for child in params:
                child.kind = lsp.SymbolKind.Variable
            return symbol(decl.name.text, "tool", decl, decl.name.span, params)
        if isinstance(decl, ast.StateDecl):
            entries = [symbol(e.key.text, "state", e, e.key.span, []) for e in decl.entries]
            for child in entries:
                child.kind = lsp.SymbolKind.Field
            return symbol("state", "state", decl, _leading_word(source, decl.span), entries)
        if isinstance(decl, ast.ProposalDecl):
            actions = [
                symbol(a.name.text, "action", a, a.name.span, [])
                for a in decl.items
                if isinstance(a, ast.ActionDecl)
            ]
            for child in actions:
                child.kind = lsp.SymbolKind.Event
            return symbol(decl.name.text, "proposal", decl, decl.name.span, actions)
        if isinstance(decl, ast.TestDecl):
            return symbol(str(decl.name.value), "test", decl, decl.name.span, [])
        if isinstance(decl, (ast.CapabilityDecl, ast.BudgetDecl, ast.PolicyDecl, ast.PlanDecl)):
            kind = type(decl).__name__.removesuffix("Decl").lower()
            return symbol(decl.name.text, kind, decl, decl.name.span, [])
        name = first_line(source_slice(source, decl))
        return symbol(name, "rule", decl, _leading_word(source, decl.span), [])

    # -- completion --------------------------------------------------------------------------

    def completion(self, path: Path, position: lsp.Position) -> lsp.CompletionList:
        """Completions that fit where the cursor is (see `completion.py`)."""
        return Completer(self).completion(path, position)

    # -- semantic tokens ---------------------------------------------------------------------

    def semantic_tokens(self, path: Path) -> lsp.SemanticTokens:
        """The names of the file by what they name (keywords, strings and CEL are left to the
        TextMate grammar): tools as functions, parameters, state keys as properties, ..."""
        file = self.file_at(path)
        data: list[int] = []
        if file is None or file.parsed.module is None:
            return lsp.SemanticTokens(data=data)
        source = file.source
        previous_line, previous_start = 0, 0
        for occurrence in occurrences(file.parsed.module, source.text):
            kind = occurrence.key[0]
            if kind not in _TOKEN_TYPES or not occurrence.span:
                continue
            if occurrence.form == "string" or _in_condition(occurrence):
                continue  # strings and CEL are the TextMate grammar's
            if kind == "capability|budget":  # `under x`: coloured as what `x` is declared as
                kind = self._resolve(path, occurrence.key)[0]
            start = to_position(source, occurrence.span.start, self.encoding)
            end = to_position(source, occurrence.span.end, self.encoding)
            if end.line != start.line:
                continue
            delta_line = start.line - previous_line
            delta_start = start.character - previous_start if delta_line == 0 else start.character
            modifiers = 1 if occurrence.is_definition else 0
            if occurrence.role == "write":
                modifiers |= 2
            data += [
                delta_line,
                delta_start,
                end.character - start.character,
                _TOKEN_TYPES[kind],
                modifiers,
            ]
            previous_line, previous_start = start.line, start.character
        return lsp.SemanticTokens(data=data)

    # -- formatting --------------------------------------------------------------------------

    def formatting(self, path: Path, within: lsp.Range | None = None) -> list[lsp.TextEdit]:
        """`carlang fmt`'s edits, by changed lines (only those of the lines of `within` when
        given: a range that ends at the start of a line leaves that line out); none when the
        file does not parse."""
        file = self.file_at(path)
        if file is None:
            return []
        try:
            formatted = format_source(file.source)
        except (ValueError, FormatError):
            return []
        # lines as positions count them: `\n` ends one (not U+2028, a form feed, ...)
        old = _lines(file.source.text)
        new = _lines(formatted)
        if within is None:
            first, last = 0, len(old)
        else:
            first, last = within.start.line, within.end.line
            if within.end.character == 0 and last > first:
                last -= 1
        blocks = changed_lines(old, new, first, last)
        if within is not None and not _keeps_meaning(file.source, old, new, blocks, formatted):
            # (a range's edits that lose or repeat a line are never offered: the lines paired
            # the other way, or nothing)
            blocks = changed_lines(old, new, first, last, bare=False)
            if not _keeps_meaning(file.source, old, new, blocks, formatted):
                blocks = changed_by_characters(old, new, first, last)
                if not _keeps_meaning(file.source, old, new, blocks, formatted):
                    return []
        edits = [
            lsp.TextEdit(
                range=lsp.Range(
                    start=lsp.Position(line=a1, character=0),
                    end=lsp.Position(line=a2, character=0),
                ),
                new_text="".join(new[b1:b2]),
            )
            for a1, a2, b1, b2 in blocks
        ]
        if edits and not file.source.text.endswith("\n") and within is None:
            return [self._whole(file, formatted)]
        return edits

    def _whole(self, file: ProjectFile, text: str) -> lsp.TextEdit:
        end = to_position(file.source, len(file.source.text), self.encoding)
        return lsp.TextEdit(
            range=lsp.Range(start=lsp.Position(line=0, character=0), end=end), new_text=text
        )

    # -- code actions ------------------------------------------------------------------------

    def code_actions(self, path: Path, within: lsp.Range) -> list[lsp.CodeAction]:
        """Quick fixes for the diagnostics in `within` (apply a did-you-mean, declare an unknown
        tool) and `reads` or `after` for state an action requires that another action writes."""
        file = self.file_at(path)
        if file is None:
            return []
        start = self.offset_at(file, within.start)
        end = self.offset_at(file, within.end)
        uri = uri_of(path)
        actions: list[lsp.CodeAction] = []
        for diagnostic in self.project.diagnostics(path):
            primary = diagnostic.primary
            if primary is None or primary.span.end < start or primary.span.start > end:
                continue
            if primary.source is not file.source:
                continue
            as_lsp = self.to_lsp(diagnostic, path)
            match = _DID_YOU_MEAN.search(diagnostic.help or "")
            if match:
                where = self._misspelt(file, diagnostic, primary.span) or as_lsp.range
                edit = lsp.TextEdit(range=where, new_text=match.group(1))
                actions.append(
                    _quickfix(f"Change to `{match.group(1)}`", uri, [edit], as_lsp, preferred=True)
                )
            if diagnostic.code == "CL0306":
                stub = self._tool_stub(file, primary.span)
                if stub is not None:
                    actions.append(_quickfix(stub[0], uri, [stub[1]], as_lsp))
        actions.extend(self._ordering_fixes(path, file, start, end, uri))
        return actions

    def _misspelt(self, file: ProjectFile, diagnostic: Diagnostic, span: Span) -> lsp.Range | None:
        """Where the misspelt name is in a diagnostic's span, when the span holds more than
        the name: an unknown CEL field is reported on the whole selection (`params.ulr`,
        `has(params.ulr)`, `params["ulr"]`), and its did-you-mean replaces only the field."""
        named = _UNKNOWN_FIELD.search(diagnostic.message)
        if named is None:
            return None
        text = file.source.text[span.start : span.end]
        at = text.rfind(named.group(1))
        if at < 0 or text == named.group(1):
            return None
        start = span.start + at
        return lsp.Range(
            start=to_position(file.source, start, self.encoding),
            end=to_position(file.source, start + len(named.group(1)), self.encoding),
        )

    def _tool_stub(self, file: ProjectFile, span: Span) -> tuple[str, lsp.TextEdit] | None:
        module = file.parsed.module
        if module is None:
            return None
        name = file.source.text[span.start : span.end]
        call = next((c for c in _calls(module) if c.tool.span == span), None)
        params = (
            ", ".join(f"{arg.name.text}: {_type_of_value(arg.value.value)}" for arg in call.args)
            if call
            else ""
        )
        line = module.declarations[0].span.start if module.declarations else len(file.source.text)
        position = to_position(file.source, line, self.encoding)
        position = lsp.Position(line=position.line, character=0)
        text = f'tool {name}({params}) {{\n  description "TODO: what {name} does"\n}}\n'
        edit = lsp.TextEdit(range=lsp.Range(start=position, end=position), new_text=text)
        return f"Declare tool `{name}`", edit

    def _ordering_fixes(
        self, path: Path, file: ProjectFile, start: int, end: int, uri: str
    ) -> list[lsp.CodeAction]:
        """For an action that `requires` a key another action of its proposal writes, and
        does not run after that writer: the edit that orders it after the writer (the last one,
        which the key's readers wait for). `reads KEY` when the writer comes earlier in the
        proposal (a state dependency only waits for an earlier writer); `after WRITER` when it
        comes later. Not offered when the action runs after the writer already, nor when the
        writer runs after the action (ordering them would close a cycle)."""
        module = file.parsed.module
        actions: list[lsp.CodeAction] = []
        for proposal in module.declarations if module else ():
            if not isinstance(proposal, ast.ProposalDecl):
                continue
            decls = [i for i in proposal.items if isinstance(i, ast.ActionDecl)]
            before: list[set[int]] | None = None
            for position, action in enumerate(decls):
                if action.span.end < start or action.span.start > end:
                    continue
                own = _writes(action)
                read = {
                    k.text for i in action.items or () if isinstance(i, ast.Reads) for k in i.keys
                }
                needed = [
                    i.condition.key.text
                    for i in action.items or ()
                    if isinstance(i, ast.Requires) and i.condition.key.text not in own
                ]
                for key in dict.fromkeys(needed):
                    writers = [
                        j for j, a in enumerate(decls) if j != position and key in _writes(a)
                    ]
                    if not writers:
                        continue
                    writer = writers[-1]
                    if before is None:
                        before = self._runs_after(path, proposal, decls)
                    if writer in before[position] or position in before[writer]:
                        continue  # ordered already, or ordering it would close a cycle
                    name = decls[writer].name.text
                    if writer < position and key not in read:
                        edit = self._add_item(file, action, f"reads {key}")
                        title = f"Add `reads {key}` (run after the action that writes it)"
                    else:
                        edit = self._add_after(file, action, name)
                        title = f"Add `after {name}` (run after the action that writes `{key}`)"
                    actions.append(
                        lsp.CodeAction(
                            title=title,
                            kind=lsp.CodeActionKind.QuickFix,
                            edit=lsp.WorkspaceEdit(changes={uri: [edit]}),
                        )
                    )
        return actions

    def _runs_after(
        self, path: Path, proposal: ast.ProposalDecl, decls: list[ast.ActionDecl]
    ) -> list[set[int]]:
        """Per action of `proposal` (by position), the actions it runs after: its dependency
        graph's (`after`, state dependencies, write barriers; `carlang_runtime.dag`) from the
        compiled proposal, or from the `after`s alone when it was not compiled as written."""
        names = [a.name.text for a in decls]
        program = self.project.compile(path).program
        compiled = next(
            (
                p
                for p in (program.proposals if program is not None else ())
                if p.id == proposal.name.text and [a.id for a in p.actions] == names
            ),
            None,
        )
        if compiled is not None:
            parents = [list(d) for d in build_dag(compiled.actions).deps]
        else:
            first: dict[str, int] = {}
            for index, name in enumerate(names):
                first.setdefault(name, index)
            parents = [[first[n.text] for n in a.after if n.text in first] for a in decls]
        found: list[set[int]] = []
        for index in range(len(decls)):
            seen: set[int] = set()
            todo = list(parents[index])
            while todo:
                parent = todo.pop()
                if parent not in seen:
                    seen.add(parent)
                    todo.extend(parents[parent])
            found.append(seen)
        return found

    def _add_after(self, file: ProjectFile, action: ast.ActionDecl, name: str) -> lsp.TextEdit:
        """`after NAME` on `action` (`, NAME` when it has an `after` already)."""
        if action.after:
            at, text = action.after[-1].span.end, f", {name}"
        else:
            at, text = action.kind.span.end, f" after {name}"
        position = to_position(file.source, at, self.encoding)
        return lsp.TextEdit(range=lsp.Range(start=position, end=position), new_text=text)

    def _add_item(self, file: ProjectFile, action: ast.ActionDecl, item: str) -> lsp.TextEdit:
        source = file.source
        line, _ = source.line_column(action.span.start)
        indent = re.match(r"\s*", source.line_text(line))
        pad = indent.group(0) if indent else ""
        if action.items is None:
            at = to_position(source, action.span.end, self.encoding)
            text = f" {{\n{pad}  {item}\n{pad}}}"
        else:
            close = source.text.rfind("}", action.span.start, action.span.end)
            before = source.text[:close].rstrip(" \t")
            if before.endswith("\n"):  # a block over lines: the item on a line of its own
                at = to_position(source, close, self.encoding)
                text = f"  {item}\n{pad}"
            else:  # a one-line block: after its last item, one space either side
                at = to_position(source, len(before), self.encoding)
                text = f" {item}" if close > len(before) else f" {item} "
        return lsp.TextEdit(range=lsp.Range(start=at, end=at), new_text=text)


# -- helpers -----------------------------------------------------------------------------------


def _quickfix(
    title: str,
    uri: str,
    edits: list[lsp.TextEdit],
    diagnostic: lsp.Diagnostic,
    preferred: bool = False,
) -> lsp.CodeAction:
    return lsp.CodeAction(
        title=title,
        kind=lsp.CodeActionKind.QuickFix,
        diagnostics=[diagnostic],
        edit=lsp.WorkspaceEdit(changes={uri: edits}),
        is_preferred=preferred or None,
    )


def _param_names(decl: ast.ToolDecl) -> frozenset[str] | None:
    """The names of a tool's parameters: its signature's, its inline schema's properties, or
    None for a schema read from a file (not known here)."""
    names = {p.name.text for p in decl.params}
    for item in decl.items:
        if isinstance(item, ast.ToolSchemaFrom):
            return None
        if isinstance(item, ast.ToolSchemaItem) and isinstance(item.schema.value, dict):
            properties = item.schema.value.get("properties")
            if isinstance(properties, dict):
                names |= {str(name) for name in properties}
    return frozenset(names)


def _in_condition(occurrence: Occurrence) -> bool:
    """Whether the name is read in a policy's `when` condition."""
    node = occurrence.node
    if not isinstance(node, ast.PolicyDecl) or node.when is None:
        return False
    return node.when.span.start <= occurrence.span.start <= node.when.span.end


def _leading_word(source: Source, span: Span) -> Span:
    """The keyword a declaration starts with (`state`, `deny_tool`): what the outline selects
    of a declaration that has no name."""
    match = re.compile(r"[A-Za-z_]\w*").match(source.text, span.start, span.end)
    return Span(span.start, match.end()) if match else span


def _smallest_at(tree: cel_nodes.Expr, offset: int) -> cel_nodes.Expr | None:
    best: cel_nodes.Expr | None = None
    for node in cel_nodes.walk(tree):
        if node.start <= offset <= node.end and (
            best is None or node.end - node.start < best.end - best.start
        ):
            best = node
    return best


def _calls(module: ast.Module) -> Iterable[ast.Call]:
    for decl in module.declarations:
        if isinstance(decl, ast.ProposalDecl):
            for item in decl.items:
                if isinstance(item, ast.ActionDecl):
                    if isinstance(item.kind, ast.Call):
                        yield item.kind
                    for body in item.items or ():
                        if isinstance(body, ast.Compensate):
                            yield body.call
        elif isinstance(decl, ast.TestDecl):
            for given in decl.items:
                if isinstance(given, ast.GivenAction) and isinstance(given.kind, ast.Call):
                    yield given.kind


def _writes(action: ast.ActionDecl) -> set[str]:
    keys = {action.kind.key.text} if isinstance(action.kind, ast.SetState) else set()
    for item in action.items or ():
        if isinstance(item, ast.Effects):
            keys |= {e.key.text for e in item.entries}
    return keys


def _keeps_meaning(
    source: Source,
    old: list[str],
    new: list[str],
    blocks: list[tuple[int, int, int, int]],
    formatted: str,
) -> bool:
    """Whether the text with only `blocks` formatted formats as the whole does: a partial
    edit that lost, moved or repeated a line would not."""
    lines = list(old)
    for a1, a2, b1, b2 in reversed(blocks):
        lines[a1:a2] = new[b1:b2]
    try:
        return format_source(Source(source.name, "".join(lines))) == formatted
    except (ValueError, FormatError):
        return False


def _lines(text: str) -> list[str]:
    """`text`'s lines, each with its `\n` (the last has none when the text does not end in
    one)."""
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    return lines if lines[-1] else lines[:-1]


def _type_of_value(value: Any) -> str:
    """The parameter type a stub declares for a value given in a call."""
    kind = value_kind(value)
    return {"list": "list[any]", "map": "object", "null": "any"}.get(kind, kind)
