"""AST -> IR: resolve names across a program's files and build `carlang_runtime.ir.Program`.

Every IR element keeps a `loc`, and the `SourceMap` keeps the AST node behind each one, so that
later findings (verify's, the policy engine's) can point at the exact name, argument or clause.
Problems found here are about names, shapes and types; what verify finds is left to verify.
The models are built with `model_construct` from values checked here (types, ranges, enum
values), not validated again: a model's validator is built on its first use, which cost a
small file's `carlang check` ~20 ms (tests/test_lower.py compares every program with its fully
validated copy).

Lowering rules worth knowing (the README documents them for users):
- a call's parameters are the arguments as written, then the declared defaults of the ones left
  out, so tools and policies see every parameter the signature promises;
- an action inherits `idempotent` and `reversibility` from its tool unless it says otherwise
  (a `read_only` tool's calls are `reversible`: nothing to undo), and `compensate` without a
  reversibility makes it `compensable`;
- `read k` and `assert k ...` read `k`, so they depend on it (`state_dependencies`);
- `assert k == v` is CAR's assertion (`{key, expected}`); other operators add `operator` and
  `value`, which carlang's runtime checks like a precondition.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

from carlang_runtime import ir
from carlang_runtime.environment import misreferences, references_written
from carlang_runtime.ir._base import construct
from carlang_runtime.ir.tools import model_tool_name
from carlang_runtime.paramcheck import parameter_defaults
from carlang_runtime.redact import redaction_problem
from carlang_runtime.suggest import did_you_mean
from carlang_runtime.textfile import not_a_file

from . import ast
from .diagnostics import Diagnostics, Label
from .loader import LoadedProgram, ParsedFile
from .source import Source, Span
from .types import bound_problems, check_value, describe_type, type_schema, unknown_simple_types

__all__ = [
    "Origin",
    "SourceMap",
    "LowerResult",
    "lower",
    "loc_of",
    "new_action",
    "suggest",
    "assertion_parameters",
]

_OPERATORS = {
    "==": "eq",
    "!=": "neq",
    ">": "gt",
    "<": "lt",
    ">=": "gte",
    "<=": "lte",
    "contains": "contains",
    "exists": "exists",
    "not_exists": "not_exists",
}


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an IR element came from: the file and the node."""

    source: Source
    node: Any

    def label(self, message: str = "", span: Span | None = None, primary: bool = True) -> Label:
        """A label on this node (or on `span` inside its file)."""
        return Label(self.source, span if span is not None else self.node.span, message, primary)


# Built once per action: the slots' own setters instead of a frozen dataclass's
# `object.__setattr__` per field (as `Span` does; still frozen to every other assignment).
_set_origin_source = vars(Origin)["source"].__set__
_set_origin_node = vars(Origin)["node"].__set__


def _origin_init(self: Origin, source: Source, node: Any) -> None:
    _set_origin_source(self, source)
    _set_origin_node(self, node)


Origin.__init__ = _origin_init  # type: ignore[method-assign]


@dataclass
class SourceMap:
    """IR names -> the declarations they were lowered from."""

    tools: dict[str, Origin] = field(default_factory=dict)
    mcp_servers: dict[str, Origin] = field(default_factory=dict)
    state: dict[str, Origin] = field(default_factory=dict)
    capabilities: dict[str, Origin] = field(default_factory=dict)
    budgets: dict[str, Origin] = field(default_factory=dict)
    policies: dict[str, Origin] = field(default_factory=dict)
    proposals: dict[str, Origin] = field(default_factory=dict)
    actions: dict[tuple[str, str], Origin] = field(default_factory=dict)
    #: The later actions of a proposal that reuse an id (`actions` holds the first; an error
    #: says so): their findings are placed by their own position (`SourceLoc`).
    redefined: dict[tuple[str, str], list[Origin]] = field(default_factory=dict)
    plans: dict[str, Origin] = field(default_factory=dict)
    tests: list[Origin] = field(default_factory=list)


@dataclass
class LowerResult:
    """The program (always built, even with errors: as much as could be lowered), the source
    map, and which declarations are used by something."""

    program: ir.Program
    source_map: SourceMap
    used: set[tuple[str, str]] = field(default_factory=set)


def loc_of(source: Source, span: Span) -> ir.SourceLoc:
    """The IR location of a span."""
    line, column, end_line, end_column = source.span_line_columns(span)
    # `construct`, not `model_construct`: one per action, and pydantic's per-field default
    # handling was a tenth of a large program's compile
    return construct(
        ir.SourceLoc,
        {
            "file": source.name,
            "line": line,
            "column": column,
            "end_line": end_line,
            "end_column": end_column,
        },
        _LOC_FIELDS,
    )


#: Every field of a `SourceLoc` (`loc_of` gives them all), one set shared by every location.
_LOC_FIELDS = {"file", "line", "column", "end_line", "end_column"}
#: The fields a precondition is built with (all of them), shared the same way.
_PRECONDITION_FIELDS = {"key", "operator", "value", "description"}


def suggest(name: str, choices: Iterable[str]) -> str | None:
    """A "did you mean" for a misspelt name, in the compiler's backtick style."""
    return did_you_mean(name, choices, quote="`")


def _is_plain(text: str) -> bool:
    """`[A-Za-z_][A-Za-z0-9_]*`: an ASCII identifier (two C calls, where a regex cost more)."""
    return text.isascii() and text.isidentifier()


def _is_dotted(text: str) -> bool:
    """Plain names joined by dots."""
    return _DOTTED_NAME(text) is not None


#: The variable's name in a `$` form written in a command line (`${TOKEN}`, `$TOKEN`, `${TOKEN`).
_REFERENCE_NAME = re.compile(r"\$\{?\s*([A-Za-z_][A-Za-z0-9_]*)")
_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*").fullmatch


class _Lowerer:
    def __init__(self, loaded: LoadedProgram, diagnostics: Diagnostics) -> None:
        self.loaded = loaded
        self.d = diagnostics
        self.map = SourceMap()
        self.used: set[tuple[str, str]] = set()
        self.tool_decls: dict[str, ast.ToolDecl] = {}
        self.state_types: dict[str, ast.TypeExpr] = {}
        self.state_globs: list[tuple[str, ast.TypeExpr]] = []
        #: tool -> parameter -> its (well-typed) default
        self.defaults: dict[str, dict[str, Any]] = {}
        #: tool -> its parameter names (None: the tool's schema does not list them)
        self.tool_params: dict[str, list[str] | None] = {}
        #: tool -> its parameters' JSON Schema
        self.tool_schemas: dict[str, dict[str, Any]] = {}
        self.mcp_names: set[str] = set()
        #: MCP servers declared with an error (said at the server): their tools are bound to
        #: nothing, and nothing more is said of them (not "never used")
        self.mcp_failed: set[str] = set()
        #: (server, the server's tool name) -> the first declaration bound to it
        self.mcp_bound: dict[tuple[str, str], tuple[Source, ast.ToolDecl]] = {}
        #: name -> the first capability or budget declared with it, and which of the two
        self.under_names: dict[str, tuple[str, Origin]] | None = None

    # -- helpers -----------------------------------------------------------------------------

    def declarations(self) -> Iterator[tuple[ParsedFile, ast.Declaration]]:
        for parsed in self.loaded.files:
            for decl in parsed.module.declarations:
                yield parsed, decl

    def declare(self, table: dict[str, Origin], kind: str, name: ast.Name, origin: Origin) -> bool:
        """Register a name; a duplicate is an error pointing at the first. False if taken."""
        first = table.get(name.text)
        if first is not None:
            self.d.error(
                "CL0201",
                f"{kind} `{name.text}` is declared twice",
                origin.source,
                name.span,
                label="declared again here",
                related=[first.label("first declared here", _name_span(first.node), primary=False)],
            )
            return False
        table[name.text] = origin
        return True

    def under_name_free(self, kind: str, name: ast.Name, origin: Origin) -> bool:
        """`under NAME` names a capability or a budget: the two kinds share their names. A
        capability and a budget of one name is an error at the later of the two (`under c`
        would name only one, the other's limits silently left out). False if taken."""
        if self.under_names is None:
            self.under_names = {}
            for parsed, decl in self.declarations():
                if isinstance(decl, ast.CapabilityDecl | ast.BudgetDecl):
                    what = "capability" if isinstance(decl, ast.CapabilityDecl) else "budget"
                    self.under_names.setdefault(decl.name.text, (what, Origin(parsed.source, decl)))
        first_kind, first = self.under_names[name.text]
        if first_kind == kind:
            return True
        self.d.error(
            "CL0201",
            f"{kind} `{name.text}` has the name of {first_kind} `{name.text}`",
            origin.source,
            name.span,
            label="declared again here",
            help=f"rename one of them: `under {name.text}` names a capability or a budget, "
            "not both",
            related=[first.label("first declared here", _name_span(first.node), primary=False)],
        )
        return False

    def bad_rate(self, source: Source, span: Span, calls: int, tool: str) -> None:
        """CL0217 for a rate of no calls or over no time (a tool's `rate` or a
        `rate_limit_tool`), with the fix for each."""
        fix = (
            f"to refuse every call, deny the tool instead (`deny_tool {tool}`); else allow at"
            " least 1 call"
            if calls <= 0
            else "the interval must be longer than 0, like `per 1s` or `per 1m`"
        )
        self.d.error(
            "CL0217",
            "a rate needs at least one call per a non-zero interval",
            source,
            span,
            help=fix,
        )

    def plain(self, source: Source, name: ast.Name, what: str) -> bool:
        if _is_plain(name.text):
            return True
        self.d.error(
            "CL0208",
            f"{what} `{name.text}` must be a plain name",
            source,
            name.span,
            help="names use letters, digits and `_` (no dots or `*`)",
        )
        return False

    def dotted(self, source: Source, name: ast.Name, what: str) -> bool:
        if _is_dotted(name.text):
            return True
        self.d.error(
            "CL0208",
            f"{what} `{name.text}` is not a valid name",
            source,
            name.span,
            help="use letters, digits, `_` and dots between parts (no `*` here)",
        )
        return False

    def no_columns(self, source: Source, value: ast.Value) -> Any:
        """The value, with any `$column` (only meaningful in tests) reported and replaced by
        its text so that nothing downstream trips over it."""
        if type(value.value) in _SCALARS:
            return value.value  # nothing to look into (what `_columns` finds in it: none)
        found = _columns(value.value)
        if not found:
            return value.value
        self.d.error(
            "CL0214", f"`${found[0]}` can only be used in a test table", source, value.span
        )
        return _without_columns(value.value)

    # -- tools -------------------------------------------------------------------------------

    def tools(self) -> list[ir.ToolSchema]:
        out = []
        offered: dict[str, Origin] = {}  # a model's name of each tool -> its declaration
        for parsed, decl in self.declarations():
            if not isinstance(decl, ast.ToolDecl):
                continue
            source = parsed.source
            if not self.dotted(source, decl.name, "tool name"):
                continue
            if not self.declare(self.map.tools, "tool", decl.name, Origin(source, decl)):
                continue
            self.offered_once(offered, Origin(source, decl))
            self.tool_decls[decl.name.text] = decl
            out.append(self.tool(source, decl))
        return out

    def offered_once(self, offered: dict[str, Origin], origin: Origin) -> None:
        """Warn (CL0230) when a model would see this tool under another's name: a `.` is sent
        as `__` (model APIs take no dot), so `fs.echo` and `fs__echo` are one name to a model,
        and `carlang agent` and `export tools` refuse the program."""
        decl = origin.node
        assert isinstance(decl, ast.ToolDecl)
        shown = model_tool_name(decl.name.text)
        first = offered.setdefault(shown, origin)
        if first is origin:
            return
        other = first.node
        assert isinstance(other, ast.ToolDecl)
        self.d.warning(
            "CL0230",
            f"tools `{other.name.text}` and `{decl.name.text}` are one tool to a model,"
            f" `{shown}` (a `.` is sent as `__`): its call could not say which it means",
            origin.source,
            decl.name.span,
            label="the same name to a model",
            related=[first.label("offered as it too", _name_span(other), primary=False)],
            help="rename one of them (carlang agent and export tools refuse the program)",
        )

    def check_type(self, source: Source, type_: ast.TypeExpr) -> None:
        for name in unknown_simple_types(type_):
            self.d.error(
                "CL0204",
                f"unknown type `{name.text}`",
                source,
                name.span,
                help=suggest(name.text, ["string", "int", "float", "bool", "any", "object"])
                or "types: string, int, float, bool, any, object, list[T], map[T], { field: T },"
                ' T | U, "a" | "b"',
            )
        for node, message in bound_problems(type_):
            self.d.error("CL0217", message, source, node.span)
        self.check_fields(source, type_)

    def check_fields(self, source: Source, type_: ast.TypeExpr) -> None:
        """Object types: each field once, defaults of their field's type."""
        if isinstance(type_, ast.ObjectType):
            seen: set[str] = set()
            for field in type_.fields:
                if field.name.text in seen:
                    self.d.error(
                        "CL0215",
                        f"field `{field.name.text}` is declared twice",
                        source,
                        field.name.span,
                    )
                seen.add(field.name.text)
                if field.default is not None:
                    problem = check_value(field.default.value, field.type)
                    if problem:
                        self.d.error(
                            "CL0205",
                            f"default of field `{field.name.text}` does not fit its type:"
                            f" {problem}",
                            source,
                            field.default.span,
                        )
                self.check_fields(source, field.type)
        elif isinstance(type_, (ast.ListType, ast.MapType)):
            self.check_fields(source, type_.item)
        elif isinstance(type_, ast.UnionType):
            for option in type_.options:
                self.check_fields(source, option)

    def tool(self, source: Source, decl: ast.ToolDecl) -> ir.ToolSchema:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for param in decl.params:
            self.plain(source, param.name, "parameter name")
            self.check_type(source, param.type)
            if param.name.text in properties:
                self.d.error(
                    "CL0215",
                    f"parameter `{param.name.text}` is declared twice",
                    source,
                    param.name.span,
                )
                continue
            schema = type_schema(param.type)
            if param.default is not None:
                default = self.no_columns(source, param.default)
                problem = check_value(default, param.type)
                if problem:
                    self.d.error(
                        "CL0205",
                        f"default of `{param.name.text}` does not fit its type: {problem}",
                        source,
                        param.default.span,
                    )
                else:
                    schema["default"] = default
                    self.defaults.setdefault(decl.name.text, {})[param.name.text] = default
            if param.secret:
                # JSON Schema's own mark for a value that is sent and never shown back: the
                # runtime redacts it from events, logs, results and messages.
                schema["writeOnly"] = True
            properties[param.name.text] = schema
            if not param.optional and param.default is None:
                required.append(param.name.text)
        parameters: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            parameters["required"] = required
        # a signature names every parameter: a call from anywhere (a model, JSON) with another
        # is refused, as a call written in a program is (CL0203)
        parameters["additionalProperties"] = False
        tool: dict[str, Any] = {
            "name": decl.name.text,
            "parameters": parameters,
            "loc": loc_of(source, decl.span),
        }
        if decl.returns is not None:
            self.check_type(source, decl.returns)
            tool["returns"] = type_schema(decl.returns)
        seen: dict[type, ast.Node] = {}
        for item in decl.items:
            if type(item) in seen:
                self.d.error(
                    "CL0212",
                    f"`{_item_word(item)}` is given twice in tool `{decl.name.text}`",
                    source,
                    item.span,
                    related=[Label(source, seen[type(item)].span, "first given here", False)],
                )
                continue
            seen[type(item)] = item
            if isinstance(item, ast.Description):
                tool["description"] = item.text.value
            elif isinstance(item, ast.Idempotent):
                tool["idempotent"] = True
            elif isinstance(item, ast.Cache):
                if item.ttl.ms <= 0 or item.ttl.ms % 1000:
                    self.d.error(
                        "CL0213",
                        f"cache TTL `{item.ttl.text}` must be a whole number of seconds",
                        source,
                        item.ttl.span,
                        help="write it in s, m or h (CAR keeps whole seconds)",
                    )
                else:
                    tool["cache_ttl_secs"] = item.ttl.ms // 1000
            elif isinstance(item, ast.Rate):
                if item.calls <= 0 or item.per.ms <= 0:
                    self.bad_rate(source, item.span, item.calls, decl.name.text)
                else:
                    tool["rate_limit"] = ir.ToolRateLimit.model_construct(
                        max_calls=item.calls, interval_secs=item.per.ms / 1000
                    )
            elif isinstance(item, ast.ReversibilityItem):
                tool["reversibility"] = item.word.text
            elif isinstance(item, ast.QueueItem):
                tool["queue"] = item.name.text
            elif isinstance(item, ast.ReadOnly):
                tool["read_only"] = True
            elif isinstance(item, ast.ToolSchemaItem | ast.ToolSchemaFrom):
                given = self.tool_schema(source, decl, item)
                if given is not None:
                    tool["parameters"] = given
                    # calls get the schema's defaults too, as they get a signature's
                    for name, default in parameter_defaults(given).items():
                        self.defaults.setdefault(decl.name.text, {})[name] = default
        if ast.ToolSchemaItem in seen and ast.ToolSchemaFrom in seen:
            self.d.error(
                "CL0219",
                f"tool `{decl.name.text}` has two schemas",
                source,
                seen[ast.ToolSchemaFrom].span,
                related=[Label(source, seen[ast.ToolSchemaItem].span, "first given here", False)],
            )
        binding = self.mcp_binding(source, decl)
        if binding is not None:
            tool["mcp"] = binding
        self.tool_params[decl.name.text] = declared_parameters(tool["parameters"])
        self.tool_schemas[decl.name.text] = tool["parameters"]
        if "reversibility" in tool:
            tool["reversibility"] = ir.Reversibility(tool["reversibility"])
        return ir.ToolSchema.model_construct(**tool)

    def tool_schema(
        self, source: Source, decl: ast.ToolDecl, item: ast.ToolSchemaItem | ast.ToolSchemaFrom
    ) -> dict[str, Any] | None:
        """A tool's parameters from `schema {...}` or `schema from "doc.json#/pointer"`,
        checked to be an object JSON Schema; None (reported) when it is not."""
        if decl.params:
            self.d.error(
                "CL0219",
                f"tool `{decl.name.text}` takes its parameters from its signature or from"
                " `schema`, not both",
                source,
                item.span,
                help="remove the parameters from the signature, or the `schema` line",
            )
            return None
        if isinstance(item, ast.ToolSchemaItem):
            schema = self.no_columns(source, item.schema)
            span = item.schema.span
        else:
            span = item.reference.span
            schema, problem = self.schema_document(source, item.reference.value)
            if problem is not None:
                self.d.error("CL0219", problem, source, span)
                return None
        problem = schema_problem(schema)
        if problem is not None:
            self.d.error(
                "CL0219",
                f"the schema of tool `{decl.name.text}` is not usable: {problem}",
                source,
                span,
                help='write an object JSON Schema: { type: "object", properties: { ... } }',
            )
            return None
        for name, problem in unfit_defaults(schema).items():
            self.d.warning(
                "CL0227",
                f"the default of `{name}` in the schema of tool `{decl.name.text}` does not fit"
                f" the parameter: {problem}",
                source,
                span,
                help=f"a call that leaves `{name}` out gets this default and is refused: fix the"
                f" default (or the server's schema), or have every call pass `{name}`",
            )
        return dict(schema)

    def schema_document(self, source: Source, reference: str) -> tuple[Any, str | None]:
        """The JSON value at `file.json#/json/pointer` (relative to the file that names it,
        inside the project root), or the problem."""
        import json

        path_text, _, pointer = reference.partition("#")
        base = self.folder_of(source)
        target = (base / path_text).resolve()
        if not target.is_relative_to(self.loaded.root):
            return None, f"schema document `{path_text}` leaves the project root"
        unreadable = not_a_file(target)  # (as an import: reading a FIFO would block)
        if unreadable is not None:
            return None, f"cannot read schema document `{path_text}`: {unreadable}"
        try:
            document = json.loads(target.read_text(encoding="utf-8"))
        except OSError as exc:
            return None, f"cannot read schema document `{path_text}`: {exc.strerror or exc}"
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return None, f"schema document `{path_text}` is not JSON: {exc}"
        return resolve_pointer(document, pointer, path_text)

    def mcp_binding(self, source: Source, decl: ast.ToolDecl) -> ir.McpBinding | None:
        """The MCP server a tool is bound to: `server.tool` where `server` is a declared
        `mcp_server` (`remote "name"` gives the server's name for the tool when it differs)."""
        server, dot, rest = decl.name.text.partition(".")
        remote = next((i for i in decl.items if isinstance(i, ast.RemoteName)), None)
        if dot and server in self.mcp_names:
            # a server's tools are its surface for agents and the proxy: not "unused"
            self.used.add(("tool", decl.name.text))
            name = remote.name.value if remote is not None else rest
            self.bound_once(source, decl, server, name)
            return ir.McpBinding.model_construct(server=server, tool=name)
        if dot and server in self.mcp_failed:  # (what is wrong is said at the server)
            self.used.add(("tool", decl.name.text))
            return None
        if remote is not None:
            self.d.error(
                "CL0221",
                f"`remote` names a tool on an MCP server, but `{decl.name.text}` is not bound to"
                " one",
                source,
                remote.span,
                help="name the tool `server.name` after a declared `mcp_server`",
            )
        return None

    def bound_once(self, source: Source, decl: ast.ToolDecl, server: str, name: str) -> None:
        """Warn when a second declaration binds the server's tool `name` (CL0224): policies
        and capabilities name declarations, so a rule on one leaves the other's calls free
        (`deny t.pay when ...` does not see `t.pay_v2`, whose `remote "pay"` calls the same
        tool)."""
        first = self.mcp_bound.setdefault((server, name), (source, decl))
        if first[1] is decl:
            return
        first_source, first_decl = first
        self.d.warning(
            "CL0224",
            f"tool `{decl.name.text}` calls `{name}` on MCP server `{server}`, as"
            f" `{first_decl.name.text}` does: a policy or capability that names one does not"
            " hold for the other's calls",
            source,
            decl.name.span,
            label="the same server tool again",
            related=[Label(first_source, first_decl.name.span, "first bound here", False)],
            help=f"declare `{server}`'s `{name}` once, or name both tools in every policy and"
            f" capability that names one (`deny {first_decl.name.text}, {decl.name.text}"
            " when ...`)",
        )

    # -- MCP servers -------------------------------------------------------------------------

    def mcp_servers(self) -> list[ir.McpServer]:
        out = []
        for parsed, decl in self.declarations():
            if not isinstance(decl, ast.McpServerDecl):
                continue
            source = parsed.source
            if not self.plain(source, decl.name, "MCP server name"):
                continue
            if not self.declare(
                self.map.mcp_servers, "MCP server", decl.name, Origin(source, decl)
            ):
                continue
            server = self.mcp_server(source, decl)
            if server is not None:
                self.mcp_names.add(decl.name.text)
                out.append(server)
            else:
                self.mcp_failed.add(decl.name.text)
        return out

    def mcp_server(self, source: Source, decl: ast.McpServerDecl) -> ir.McpServer | None:
        fields: dict[str, Any] = {"name": decl.name.text, "loc": loc_of(source, decl.span)}
        ok = True

        def bad(setting: ast.McpSetting, message: str) -> None:
            nonlocal ok
            ok = False
            self.d.error("CL0220", message, source, setting.value.span)

        seen: dict[str, ast.McpSetting] = {}
        url_written: ast.Value | None = None  # (a url that may be sent as it is)
        for setting in decl.settings:
            if setting.word in seen:
                self.d.error(
                    "CL0212",
                    f"`{setting.word}` is given twice in MCP server `{decl.name.text}`",
                    source,
                    setting.span,
                    related=[Label(source, seen[setting.word].span, "first given here", False)],
                )
                continue
            seen[setting.word] = setting
            value = setting.value
            if isinstance(value, ast.Duration):
                if value.ms <= 0:
                    bad(setting, "an MCP server's timeout must be longer than 0")
                fields["timeout_ms"] = value.ms
            elif setting.word == "args":
                if not all(isinstance(a, str) for a in value.value):
                    bad(setting, "`args` must be a list of strings")
                else:
                    self.mcp_command_references(source, setting, value.value)
                fields["args"] = value.value
            elif setting.word == "env":
                if not all(isinstance(v, str) for v in value.value.values()):
                    bad(setting, "`env` must map names to strings")
                else:
                    self.mcp_env_references(source, value)
                fields["env"] = value.value
            elif setting.word == "headers":  # (each header is checked below, at its place)
                fields["headers"] = value.value
            elif setting.word == "url":
                from carlang_runtime.mcp.client import url_reference_problem

                in_url = url_reference_problem(value.value)
                if in_url is not None:  # (what `local_url_problem` says first, with help)
                    ok = False
                    self.d.error("CL0220", in_url[0], source, value.span, help=in_url[1])
                elif url_problem := local_url_problem(value.value):
                    bad(setting, url_problem)
                else:  # (what it holds is said below, once the headers are known)
                    url_written = value
                fields["url"] = value.value
            elif setting.word == "cwd":
                directory, problem = self.server_directory(source, value.value)
                if problem:
                    bad(setting, problem)
                fields["cwd"] = directory
            else:
                if setting.word == "command" and not str(value.value).strip():
                    bad(setting, "`command` is empty: name the program that starts the server")
                elif setting.word == "command":
                    self.mcp_command_references(source, setting, [value.value])
                fields[setting.word] = value.value
        if "command" in fields and "url" in fields:
            self.d.error(
                "CL0220",
                f"MCP server `{decl.name.text}` has both a `command` and a `url`",
                source,
                decl.name.span,
                help="a server is started (command) or reached (url), not both",
            )
            return None
        if "command" not in fields and "url" not in fields:
            self.d.error(
                "CL0220",
                f"MCP server `{decl.name.text}` needs a `command` (stdio) or a `url` (HTTP)",
                source,
                decl.name.span,
            )
            return None
        if "url" in fields and any(w in seen for w in ("args", "env", "cwd")):
            self.d.error(
                "CL0220",
                f"MCP server `{decl.name.text}` is reached at a url: `args`, `env` and `cwd`"
                " apply only to a `command`",
                source,
                decl.name.span,
            )
            return None
        if "cwd" not in seen:
            self.mcp_relative_paths(source, seen)
        if url_written is not None:
            self.mcp_url_credentials(source, url_written, fields.get("headers") or {})
        if "headers" in seen and not self.mcp_headers(source, seen["headers"], fields):
            return None
        return ir.McpServer.model_validate(fields) if ok else None

    def mcp_headers(self, source: Source, setting: ast.McpSetting, fields: dict[str, Any]) -> bool:
        """Check an `mcp_server`'s `headers` (CL0225 at the header's name or value), and warn
        of a credential written out in a value (CL0226): whether they can be sent."""
        from carlang_runtime.mcp.client import header_problems, written_out_credential

        headers = fields["headers"]
        # the entry a name is at: the last one written (a key written twice is CL0215 already)
        at = {entry.key.text: entry for entry in setting.entries}
        keyword = Span(setting.span.start, setting.span.start + len("headers"))
        problems = [  # (a url's are said at the url: CL0220)
            problem
            for problem in header_problems(
                headers, url=fields.get("url"), command=fields.get("command")
            )
            if problem.part != "url"
        ]
        for problem in problems:
            entry = at.get(problem.name) if problem.name is not None else None
            if entry is None:
                span = keyword if problem.part == "headers" else setting.value.span
            else:
                span = entry.value.span if problem.part == "value" else entry.key.span
            first = at.get(problem.first) if problem.first is not None else None
            self.d.error(
                "CL0225",
                problem.message,
                source,
                span,
                help=problem.help,
                related=[Label(source, first.key.span, "given first here", False)]
                if first is not None
                else [],
            )
        wrong = {problem.name for problem in problems}
        for entry in at.values():
            name, value = entry.key.text, entry.value.value
            if name in wrong or None in wrong or not isinstance(value, str):
                continue
            self.misreferences(source, entry.value)
            if written_out_credential(name, value):  # (never for a reference miswritten)
                self.d.warning(
                    "CL0226",
                    f"header `{name}` holds a credential written out in the program",
                    source,
                    entry.value.span,
                    label="the secret is in the file",
                    help="take it from carlang's environment when the server is reached,"
                    f" `{credential_reference(name, value)}`: the program then holds the variable's"
                    " name, never the secret",
                )
        return not problems

    def misreferences(self, source: Source, value: ast.Value) -> None:
        """Warn of each form in a `headers` or `env` string value that reads as a variable of
        carlang's environment meant but is not a reference it takes (CL0228, at the value):
        `$TOKEN`, `${TOKEN`, `${ TOKEN }`, `${1BAD}`, `${}` (`misreferences`)."""
        for wrong in misreferences(value.value):
            self.d.warning(
                "CL0228",
                wrong.message(),
                source,
                value.span,
                label="sent as written",
                help=wrong.help(),
            )

    def mcp_command_references(
        self, source: Source, setting: ast.McpSetting, values: list[str]
    ) -> None:
        """Warn (CL0228, at the setting's value) of each `${NAME}` or `$NAME` in an
        `mcp_server`'s `command` or `args`: no shell runs the command, so the server gets them
        as written, not a variable's value (and carlang puts none in a command line, which
        every user of the machine can read)."""
        forms = list(
            dict.fromkeys(
                form
                for value in values
                for form in (*references_written(value), *(m.written for m in misreferences(value)))
            )
        )
        if not forms:
            return
        shown = ", ".join(f"`{form}`" for form in forms)
        if setting.word == "command":
            do = "write the program's path out, or its name to find it on PATH"
        else:
            name = next(
                (m.group(1) for form in forms if (m := _REFERENCE_NAME.search(form))), "NAME"
            )
            do = (
                f'give the server the value in its environment, `env {{ {name}: "${{{name}}}" }}`,'
                " and have it read it there (a command line is visible to every user of the"
                " machine, an environment is not)"
            )
        self.d.warning(
            "CL0228",
            f"`{setting.word}` takes no variable from carlang's environment: {shown}"
            f" {'is' if len(forms) == 1 else 'are'} passed to the server as written",
            source,
            setting.value.span,
            label="passed as written",
            help=f"no shell runs the command, so nothing expands it; {do}",
        )

    def mcp_relative_paths(self, source: Source, seen: dict[str, ast.McpSetting]) -> None:
        """Warn (CL0229, at the setting's value) of the relative paths in the `command` and
        `args` of an `mcp_server` without `cwd`: they are read from wherever the server starts,
        the directory carlang runs in (for `carlang mcp proxy`, the one its client chooses,
        often `/`), so the program works from one directory only."""
        base = self.folder_of(source)
        launcher = seen.get("command")
        runner = (
            Path(str(launcher.value.value)).name
            if launcher is not None and isinstance(launcher.value, ast.Value)
            else ""
        )
        for word in ("command", "args"):
            setting = seen.get(word)
            if setting is None or isinstance(setting.value, ast.Duration):
                continue
            written = setting.value.value
            values = [written] if word == "command" else written
            if not isinstance(values, list):
                continue
            folders = _launcher_folders(values) if word == "args" else None
            if folders is not None:  # (`uv --directory /srv run x.py`: started in /srv)
                paths = [f for f in folders if f and f[0] not in "/~$"]  # (its own, relative)
            else:
                paths = [
                    value
                    for value in values
                    if isinstance(value, str)
                    and _relative_path(value, base, command=word == "command", runner=runner)
                ]
            if not paths:
                continue
            shown = ", ".join(f"`{path}`" for path in dict.fromkeys(paths))
            self.d.warning(
                "CL0229",
                f"`{word}` names {shown}, read from the directory the server starts in, and"
                " this server has no `cwd`",
                source,
                setting.value.span,
                label="found only when carlang runs from the right directory",
                help='add `cwd "."` (this file\'s folder) or the folder it must start in: without'
                " it the server starts where carlang runs, which for `carlang mcp proxy` is"
                " wherever its MCP client starts it (often `/`)",
            )

    def mcp_env_references(self, source: Source, written: ast.Value) -> None:
        """`misreferences` for an `env` map of strings, each at its value (the parser keeps no
        entries for `env`: the map is read again, only when a value needs it)."""
        env: dict[str, str] = written.value
        wrong = {name for name, value in env.items() if misreferences(value)}
        if not wrong:
            return
        # each value at its place; the map's own when it cannot be read again as written
        at = {entry.key.text: entry.value for entry in map_entries(source, written)}
        for name in env:
            if name in wrong:
                found = at.get(name)
                if found is None or found.value != env[name]:
                    found = ast.Value(env[name], span=written.span)
                self.misreferences(source, found)

    def mcp_url_credentials(
        self, source: Source, url_value: ast.Value, headers: dict[str, Any]
    ) -> None:
        """Warn of what in an `mcp_server`'s url (taking no reference, `url_reference_problem`)
        reads as a variable meant (`$PW`: CL0228) or is a credential written out (CL0226): its
        password (unless an `Authorization` header is beside it: CL0225 says so) and the
        values of query parameters named for one, those `shown_url` hides."""
        from carlang_runtime.mcp.client import URL_CREDENTIAL_HELP

        url: str = url_value.value
        at = url_value.span
        for wrong in misreferences(url):
            self.d.warning(
                "CL0228",
                f"`{wrong.written}` is not a reference carlang takes from the environment: a url"
                " takes none",
                source,
                at,
                label="sent as written",
                help=f"{URL_CREDENTIAL_HELP}; as written, `{wrong.written}` is sent as it is",
            )
        authorization = any(name.lower() == "authorization" for name in headers)
        written = [  # (not a `$PW` said above: a variable meant, not a secret)
            credential
            for credential in url_credentials_written(url)
            if not misreferences(credential.value)
            and not (credential.part == "password" and authorization)
        ]
        if not written:
            return
        fixes = "; ".join(credential.fix for credential in written)
        self.d.warning(
            "CL0226",
            "`url` holds a credential written out in the program: "
            + " and ".join(credential.what for credential in written),
            source,
            at,
            label="the secret is in the file",
            help=f"send {'it' if len(written) == 1 else 'them'} in `headers`, taken from"
            f" carlang's environment when the server is reached: {fixes}."
            " The program then holds the variable's name, never the secret",
        )

    def folder_of(self, source: Source) -> Path:
        """The folder of the file `source` is, which its relative paths are read from
        (`import`, `schema from`, an `mcp_server`'s `cwd`); the project's root for a source of
        no file."""
        parsed = next((f for f in self.loaded.files if f.source is source), None)
        return parsed.path.parent if parsed is not None else self.loaded.root

    def server_directory(self, source: Source, written: str) -> tuple[str, str | None]:
        """An `mcp_server`'s `cwd`, absolute: a relative one is read from the folder of the
        file that declares it (as `import` and `schema from` are), not from the directory the
        program happens to run in. With the problem when it is not an existing folder."""
        import os

        if not written.strip():
            return (
                written,
                "`cwd` is empty: name the folder the server starts in (`.`: this file's)",
            )
        base = self.folder_of(source)
        try:
            directory = str((base / written).resolve())
        except (OSError, RuntimeError):  # (a symlink loop)
            directory = os.path.abspath(base / written)
        if os.path.isdir(directory):
            return directory, None
        what = "is not a folder" if os.path.exists(directory) else "does not exist"
        shown = (
            directory
            if os.path.isabs(written)
            else f"`{written}` (from this file's folder: {directory})"
        )
        return directory, f"`cwd` {shown} {what}: the server cannot start there"

    # -- state -------------------------------------------------------------------------------

    def state(self) -> tuple[list[ir.StateDecl], dict[str, Any]]:
        decls: list[ir.StateDecl] = []
        initial: dict[str, Any] = {}
        for parsed, decl in self.declarations():
            if not isinstance(decl, ast.StateDecl):
                continue
            source = parsed.source
            for entry in decl.entries:
                key = entry.key.text
                glob = "*" in key
                if glob and not all(part == "*" or _is_plain(part) for part in key.split(".")):
                    self.d.error(
                        "CL0208",
                        f"state key `{key}` is not a valid key pattern",
                        source,
                        entry.key.span,
                        help="`*` may only stand for a whole part of a dotted key: `build.*`",
                    )
                    continue
                if not glob and not self.dotted(source, entry.key, "state key"):
                    continue
                if not self.declare(self.map.state, "state key", entry.key, Origin(source, entry)):
                    continue
                self.check_type(source, entry.type)
                if glob:
                    self.state_globs.append((key, entry.type))
                else:
                    self.state_types[key] = entry.type
                if entry.default is not None:
                    self.no_columns(source, entry.default)
                    if glob:
                        self.d.error(
                            "CL0205",
                            f"the key pattern `{key}` cannot have an initial value",
                            source,
                            entry.default.span,
                        )
                    else:
                        problem = check_value(entry.default.value, entry.type)
                        if problem:
                            self.d.error(
                                "CL0205",
                                f"initial value of `{key}` does not fit its type: {problem}",
                                source,
                                entry.default.span,
                            )
                        initial[key] = entry.default.value
                decls.append(
                    ir.StateDecl.model_construct(
                        key=key,
                        type=type_schema(entry.type) or None,
                        loc=loc_of(source, entry.span),
                    )
                )
        return decls, initial

    def state_type(self, key: str) -> ast.TypeExpr | None | bool:
        """The declared type of a key; True when declared as `any`-like without a type, False
        when no declaration covers it (None: no state declared at all)."""
        if not self.state_types and not self.state_globs:
            return None
        if key in self.state_types:
            return self.state_types[key]
        for pattern, type_ in self.state_globs:
            if not key.startswith(_literal_head(pattern)):
                continue  # neither test below can hold (and this one is a tenth of the cost)
            prefix = pattern[:-1] if pattern.endswith("*") else pattern
            if (pattern.endswith(".*") and key.startswith(prefix)) or _glob_match(pattern, key):
                return type_
        return False

    def touch_key(self, source: Source, name: ast.Name, value: ast.Value | None = None) -> None:
        """A proposal reads or writes `name`: it should be declared, and a written value should
        fit the declared type."""
        if not self.dotted(source, name, "state key"):
            return
        declared = self.state_type(name.text)
        if declared is None:
            return
        if declared is False:
            known = list(self.state_types) + [p for p, _ in self.state_globs]
            self.d.warning(
                "CL0206",
                f"state key `{name.text}` is not declared",
                source,
                name.span,
                help=suggest(name.text, known) or "declare it in a `state { }` block",
            )
            return
        self.used.add(("state", name.text))
        if value is not None and not isinstance(declared, bool):
            problem = check_value(value.value, declared)
            if problem:
                self.d.error(
                    "CL0205",
                    f"value for `{name.text}` does not fit its declared type: {problem}",
                    source,
                    value.span,
                    help=f"`{name.text}` is declared as {describe_type(declared)}",
                )

    # -- capabilities and budgets ------------------------------------------------------------

    def capabilities(self) -> list[ir.Capability]:
        out = []
        for parsed, decl in self.declarations():
            if not isinstance(decl, ast.CapabilityDecl):
                continue
            source = parsed.source
            if not self.plain(source, decl.name, "capability name"):
                continue
            origin = Origin(source, decl)
            if not self.under_name_free("capability", decl.name, origin):
                continue
            if not self.declare(self.map.capabilities, "capability", decl.name, origin):
                continue
            allowed: list[str] = []
            denied: list[str] = []
            keys: list[str] = []
            max_actions: int | None = None
            for item in decl.items:
                if isinstance(item, ast.ToolsAllow):
                    allowed += [n.text for n in item.allow]
                    denied += [n.text for n in item.deny]
                    self.use_tool_patterns(item.allow + item.deny)
                    self.allows_nothing(source, item.allow)
                elif isinstance(item, ast.ToolsDeny):
                    denied += [n.text for n in item.deny]
                elif isinstance(item, ast.StateAllow):
                    keys += [n.text for n in item.allow]
                    self.allows_no_key(source, item.allow)
                elif isinstance(item, ast.MaxActions):
                    if max_actions is not None:
                        self.d.error("CL0212", "`max_actions` is given twice", source, item.span)
                    max_actions = item.count
            out.append(
                ir.Capability.model_construct(
                    name=decl.name.text,
                    allowed_tools=allowed,
                    denied_tools=denied,
                    allowed_state_keys=keys,
                    max_actions=max_actions,
                    loc=loc_of(source, decl.span),
                )
            )
        return out

    def budgets(self) -> list[ir.Budget]:
        out = []
        for parsed, decl in self.declarations():
            if not isinstance(decl, ast.BudgetDecl):
                continue
            source = parsed.source
            if not self.plain(source, decl.name, "budget name"):
                continue
            origin = Origin(source, decl)
            if not self.under_name_free("budget", decl.name, origin):
                continue
            if not self.declare(self.map.budgets, "budget", decl.name, origin):
                continue
            fields: dict[str, Any] = {"name": decl.name.text, "loc": loc_of(source, decl.span)}
            for item in decl.items:
                if isinstance(item, ast.MaxActions):
                    key, value = "max_actions", item.count
                elif isinstance(item, ast.MaxToolCalls):
                    key, value = "max_tool_calls", item.count
                else:
                    key, value = "max_duration_ms", item.duration.ms
                if key in fields:
                    self.d.error(
                        "CL0212", f"`{_item_word(item)}` is given twice", source, item.span
                    )
                fields[key] = value
            out.append(ir.Budget.model_construct(**fields))
        return out

    def allows_nothing(self, source: Source, names: Iterable[ast.Name]) -> None:
        """A capability allows a name no declared tool has: a misspelling? (Patterns may
        be meant for tools registered at run time.)"""
        for name in names:
            if self.tool_decls and "*" not in name.text and name.text not in self.tool_decls:
                self.d.warning(
                    "CL0223",
                    f"`{name.text}` matches no declared tool",
                    source,
                    name.span,
                    help=suggest(name.text, self.tool_decls),
                )

    def allows_no_key(self, source: Source, names: Iterable[ast.Name]) -> None:
        """A capability allows a state key the `state { }` block does not declare (patterns
        are left alone: they may be meant for keys written at run time)."""
        for name in names:
            if "*" in name.text or self.state_type(name.text) is not False:
                continue
            known = list(self.state_types) + [p for p, _ in self.state_globs]
            self.d.warning(
                "CL0223",
                f"state key `{name.text}` is not declared",
                source,
                name.span,
                help=suggest(name.text, known) or "declare it in a `state { }` block",
            )

    def use_tool_patterns(self, names: Iterable[ast.Name]) -> None:
        """The tools a capability names are used by it: by name, or matched by a glob
        (`allow read_*`, `allow *`), as a policy's targets are."""
        for name in names:
            self.used.update(("tool", tool) for tool in self.tools_matching(name.text))

    def tools_matching(self, pattern: str) -> list[str]:
        """The declared tools a name or a glob names."""
        if pattern in self.tool_decls:  # (a name: looked up; every tool tested was quadratic)
            return [pattern]
        from carlang_runtime.globs import GlobSet

        matcher = GlobSet([pattern])
        return [] if matcher.exact_only else [t for t in self.tool_decls if matcher.matches(t)]

    # -- policies ----------------------------------------------------------------------------

    def approval_timeout(self, source: Source, decl: ast.PolicyDecl) -> int | None:
        """A policy's `approval_timeout` in milliseconds; None (after an error) where it
        cannot apply."""
        timeout = decl.approval_timeout
        assert timeout is not None
        if decl.effect.text != "require_approval":
            self.d.error(
                "CL0504",
                f"`approval_timeout` applies to require_approval policies; `{decl.name.text}`"
                f" is a {decl.effect.text} policy",
                source,
                timeout.span,
                help="remove the approval_timeout line, or make the policy require_approval",
            )
            return None
        if timeout.ms <= 0:
            self.d.error(
                "CL0213",
                "an approval_timeout must be longer than 0",
                source,
                timeout.span,
                help="write how long an approval may wait, like 30m or 2h",
            )
            return None
        return timeout.ms

    def policies(self) -> list[Any]:
        out: list[Any] = []
        keyword_rules = 0
        for parsed, decl in self.declarations():
            source = parsed.source
            written: ast.Value | None = getattr(decl, "message", None)
            message = written.value if written is not None else ""
            loc = loc_of(source, decl.span)
            if isinstance(decl, ast.PolicyDecl):
                if not self.plain(source, decl.name, "policy name"):
                    continue
                if not self.declare(self.map.policies, "policy", decl.name, Origin(source, decl)):
                    continue
                self.check_targets(source, decl.targets)
                policy: dict[str, Any] = {
                    "rule": "cel",
                    "name": decl.name.text,
                    "effect": decl.effect.text,
                    "tools": [t.text for t in decl.targets],
                    "message": message,
                    "loc": loc,
                }
                if decl.shadow:
                    policy["shadow"] = True
                if decl.when is not None:
                    policy["when"] = decl.when.cel
                    policy["when_loc"] = loc_of(source, decl.when.span)
                if decl.approval_timeout is not None:
                    policy["approval_timeout_ms"] = self.approval_timeout(source, decl)
                policy["effect"] = ir.PolicyEffect(policy["effect"])
                out.append(ir.CelPolicy.model_construct(**policy))
            elif isinstance(decl, ast.DenyToolDecl):
                self.check_targets(source, decl.tools)
                for tool in decl.tools:
                    name = ast.Name(f"deny_tool:{tool.text}", span=tool.span)
                    if self.declare(self.map.policies, "rule", name, Origin(source, decl)):
                        out.append(
                            ir.DenyToolRule.model_construct(
                                name=name.text, tool=tool.text, message=message, loc=loc
                            )
                        )
            elif isinstance(decl, ast.DenyKeywordDecl):
                keywords = decl.keywords.value
                if not keywords or not all(isinstance(k, str) and k for k in keywords):
                    self.d.error(
                        "CL0504",
                        "deny_keyword needs a list of non-empty strings",
                        source,
                        decl.keywords.span,
                    )
                    continue
                keyword_rules += 1
                label = "deny_keyword" if keyword_rules == 1 else f"deny_keyword:{keyword_rules}"
                self.map.policies[label] = Origin(source, decl)
                out.append(
                    ir.DenyKeywordRule.model_construct(
                        name=label, keywords=keywords, message=message, loc=loc
                    )
                )
            elif isinstance(
                decl, (ast.DenyToolParamDecl, ast.AllowToolParamDecl, ast.DenyToolParamMatchingDecl)
            ):
                rule = self.param_rule(source, decl, message, loc)
                if rule is not None:
                    out.append(rule)
            elif isinstance(decl, ast.RateLimitToolDecl):
                self.check_targets(source, (decl.tool,))
                name = ast.Name(f"rate_limit_tool:{decl.tool.text}", span=decl.tool.span)
                if decl.calls <= 0 or decl.per.ms <= 0:
                    self.bad_rate(source, decl.span, decl.calls, decl.tool.text)
                elif self.declare(self.map.policies, "rule", name, Origin(source, decl)):
                    out.append(
                        ir.RateLimitToolRule.model_construct(
                            name=name.text,
                            tool=decl.tool.text,
                            max_calls=decl.calls,
                            interval_secs=decl.per.ms / 1000,
                            message=message,
                            loc=loc,
                        )
                    )
            elif isinstance(decl, ast.RequireStateDecl):
                self.no_columns(source, decl.value)
                self.touch_key(source, decl.key)
                name = ast.Name(f"require_state:{decl.key.text}", span=decl.key.span)
                if self.declare(self.map.policies, "rule", name, Origin(source, decl)):
                    out.append(
                        ir.RequireStateRule.model_construct(
                            name=name.text,
                            key=decl.key.text,
                            value=decl.value.value,
                            message=message,
                            loc=loc,
                        )
                    )
        return out

    def check_targets(self, source: Source, targets: Iterable[ast.Name]) -> None:
        """A policy or rule names tools: an error when a name or pattern matches none declared
        (a policy that can never match is a security bug: the action it meant goes unguarded)."""
        for target in targets:
            matched = self.tools_matching(target.text)
            self.used.update(("tool", tool) for tool in matched)
            if not matched and self.tool_decls:
                self.d.error(
                    "CL0502",
                    f"`{target.text}` matches no declared tool",
                    source,
                    target.span,
                    help=suggest(target.text, self.tool_decls),
                )

    def param_rule(self, source: Source, decl: Any, message: str, loc: ir.SourceLoc) -> Any:
        target = decl.target.text
        tool, _, param = target.rpartition(".")
        if not tool or not param:
            self.d.error(
                "CL0504",
                f"`{target}` must name a tool and a parameter: `tool.param`",
                source,
                decl.target.span,
            )
            return None
        self.check_targets(source, (ast.Name(tool, span=decl.target.span),))
        tool_decl = self.tool_decls.get(tool)
        known_params = self.tool_params.get(tool)
        if tool_decl is not None and known_params is not None and param not in known_params:
            self.d.error(
                "CL0502",
                f"tool `{tool}` has no parameter `{param}`",
                source,
                decl.target.span,
                help=suggest(param, known_params),
            )
        if isinstance(decl, ast.DenyToolParamDecl):
            kind, fields = "deny_tool_param", {}
            if decl.test == "equals" and decl.operand is not None:
                fields["equals"] = decl.operand.value
                self.impossible_values(source, decl.operand, tool, param, allow=False)
            elif decl.test == "contains" and decl.operand is not None:
                if not isinstance(decl.operand.value, str):
                    self.d.error("CL0504", "`contains` takes a string", source, decl.operand.span)
                    return None
                fields["contains"] = decl.operand.value
            rule_class: Any = ir.DenyToolParamRule
        elif isinstance(decl, ast.AllowToolParamDecl):
            kind = "allow_tool_param"
            if not isinstance(decl.allowed.value, list) or not decl.allowed.value:
                self.d.error(
                    "CL0504",
                    "allow_tool_param needs a non-empty list of values",
                    source,
                    decl.allowed.span,
                )
                return None
            fields, rule_class = {"allow": decl.allowed.value}, ir.AllowToolParamRule
            self.impossible_values(source, decl.allowed, tool, param, allow=True)
        else:
            kind = "deny_tool_param_matching"
            if not self.valid_regex(source, decl.pattern):
                return None
            fields, rule_class = {"matches": decl.pattern.value}, ir.DenyToolParamMatchingRule
        name = ast.Name(f"{kind}:{tool}.{param}", span=decl.target.span)
        if not self.declare(self.map.policies, "rule", name, Origin(source, decl)):
            return None
        return rule_class.model_construct(
            name=name.text, tool=tool, param=param, message=message, loc=loc, **fields
        )

    def impossible_values(
        self, source: Source, operand: ast.Value, tool: str, param: str, allow: bool
    ) -> None:
        """A value `allow_tool_param` lists or `deny_tool_param ... equals` names that the
        parameter cannot take (outside its enum, of another type): that entry allows or denies
        nothing, and an allow list with no possible value denies every call of the tool."""
        from carlang_runtime.paramcheck import ParamChecker

        schema = self.tool_schemas.get(tool, {})
        properties = schema.get("properties")
        if not isinstance(properties, dict) or not isinstance(properties.get(param), dict):
            return
        # the whole schema (a `$ref` resolves in it), and only this parameter's findings
        checker = ParamChecker(tool, schema)
        values = operand.value if allow else [operand.value]
        problems = []
        for value in values:
            found = checker.check({param: value})
            if any(f.kind == "invalid_schema" for f in found):
                return  # (the tool's schema is reported where it is declared)
            mine = [f for f in found if f.param == param and f.kind != "missing"]
            if mine:
                problems.append((value, mine[0].detail))
        if not problems:
            return
        rule = f"allow_tool_param {tool}.{param}" if allow else f"deny_tool_param {tool}.{param}"
        if allow and len(problems) == len(values):
            self.d.error(
                "CL0512",
                f"`{rule}`: `{param}` can take none of these values ({problems[0][1]}), so"
                f" every call of `{tool}` is denied",
                source,
                operand.span,
                help=f"list values `{param}` can take, or deny the tool: `deny_tool {tool}`",
            )
            return
        from carlang_runtime.redact import REDACTED, is_secret_schema

        secret = is_secret_schema(properties[param])
        shown = ", ".join(REDACTED if secret else json.dumps(value) for value, _ in problems)
        self.d.warning(
            "CL0512",
            f"`{rule}`: `{param}` can never be {shown} ({problems[0][1]}): "
            + ("that entry allows nothing" if allow else "the rule denies nothing"),
            source,
            operand.span,
            help=f"use a value `{param}` can take",
        )

    def valid_regex(self, source: Source, pattern: ast.Value) -> bool:
        # RE2, as the runtime compiles it (the syntax of the regex crate CAR uses).
        from carlang_runtime.cel.functions import compile_regex
        from carlang_runtime.cel.values import CelEvalError

        try:
            compile_regex(pattern.value)
            return True
        except CelEvalError as exc:
            self.d.error(
                "CL0503",
                exc.message,
                source,
                pattern.span,
                help="patterns use RE2 syntax (no backreferences or lookaround)",
            )
            return False

    # -- proposals ---------------------------------------------------------------------------

    def proposals(
        self, capabilities: dict[str, ir.Capability], budgets: dict[str, ir.Budget]
    ) -> list[ir.ActionProposal]:
        out = []
        for parsed, decl in self.declarations():
            if not isinstance(decl, ast.ProposalDecl):
                continue
            source = parsed.source
            if not self.plain(source, decl.name, "proposal name"):
                continue
            if not self.declare(self.map.proposals, "proposal", decl.name, Origin(source, decl)):
                continue
            out.append(self.proposal(source, decl, capabilities, budgets))
        return out

    def proposal(
        self,
        source: Source,
        decl: ast.ProposalDecl,
        capabilities: dict[str, ir.Capability],
        budgets: dict[str, ir.Budget],
    ) -> ir.ActionProposal:
        fields: dict[str, Any] = {
            "id": decl.name.text,
            "source": decl.source.value if decl.source is not None else "unknown",
            "loc": loc_of(source, decl.span),
        }
        for name in decl.under:
            kind = (
                "capability"
                if name.text in capabilities
                else "budget"
                if name.text in budgets
                else None
            )
            if kind is None:
                self.d.error(
                    "CL0202",
                    f"`{name.text}` is neither a capability nor a budget",
                    source,
                    name.span,
                    help=suggest(name.text, [*capabilities, *budgets]),
                )
                continue
            # (named, if twice: "never used" would be one more finding for the same slip)
            self.used.add((kind, name.text))
            if kind in fields:
                other = "budget" if kind == "capability" else "capability"
                self.d.error(
                    "CL0216",
                    f"proposal `{decl.name.text}` runs under two {kind} declarations",
                    source,
                    name.span,
                    help=f"a proposal runs under at most one {kind} and one {other}:"
                    + (
                        f" name `{name.text}` once"
                        if fields[kind] == name.text
                        else f" keep `{fields[kind]}` or `{name.text}`"
                    ),
                )
                continue
            fields[kind] = name.text
        actions = []
        for item in decl.items:
            if isinstance(item, ast.ContextDecl):
                self.no_columns(source, item.data)
                fields["context"] = {**fields.get("context", {}), **item.data.value}
                continue
            if not self.plain(source, item.name, "action name"):
                continue
            first = self.map.actions.setdefault(
                (decl.name.text, item.name.text), Origin(source, item)
            )
            if first.node is not item:
                key = (decl.name.text, item.name.text)
                self.map.redefined.setdefault(key, []).append(Origin(source, item))
                self.d.error(
                    "CL0301",
                    f"action `{item.name.text}` is defined twice in proposal `{decl.name.text}`",
                    source,
                    item.name.span,
                    label="defined again here",
                    help="rename this one (actions refer to each other by name)",
                    related=[first.label("first defined here", first.node.name.span, False)],
                )
            actions.append(self.action(source, item))
        fields["actions"] = actions
        return ir.ActionProposal.model_construct(**{**_proposal_defaults(), **fields})

    def call_parameters(self, source: Source, call: ast.Call) -> dict[str, Any]:
        """A call's arguments, checked against the tool's signature, plus declared defaults."""
        params: dict[str, Any] = {}
        for arg in call.args:
            if arg.name.text in params:
                self.d.error(
                    "CL0215", f"argument `{arg.name.text}` is given twice", source, arg.name.span
                )
            params[arg.name.text] = self.no_columns(source, arg.value)
        decl = self.tool_decls.get(call.tool.text)
        if decl is None:
            return params  # verify reports the unknown tool, with a suggestion
        self.used.add(("tool", decl.name.text))
        declared = self.tool_params.get(decl.name.text)
        for arg in call.args:
            if declared is not None and arg.name.text not in declared:
                self.d.error(
                    "CL0203",
                    f"tool `{decl.name.text}` has no parameter `{arg.name.text}`",
                    source,
                    arg.name.span,
                    help=suggest(arg.name.text, declared) or _signature(decl),
                )
        for name, default in self.defaults.get(decl.name.text, {}).items():
            params.setdefault(name, default)
        return params

    def action(self, source: Source, decl: ast.ActionDecl) -> ir.Action:
        # Every field from the start, in the model's order, set in place: the model is built
        # from this dict as it is (no merge with the defaults, no set of names per action).
        action = _action_defaults()
        action["id"] = decl.name.text
        action["loc"] = loc_of(source, decl.span)
        dependencies: list[str] = []
        kind = decl.kind
        tool_decl: ast.ToolDecl | None = None
        if isinstance(kind, ast.Call):
            action["type"] = ir.ActionType.TOOL_CALL
            action["tool"] = kind.tool.text
            action["parameters"] = self.call_parameters(source, kind)
            tool_decl = self.tool_decls.get(kind.tool.text)
        elif isinstance(kind, ast.SetState):
            self.no_columns(source, kind.value)
            self.touch_key(source, kind.key, kind.value)
            action["type"] = ir.ActionType.STATE_WRITE
            action["parameters"] = {"key": kind.key.text, "value": kind.value.value}
        elif isinstance(kind, ast.ReadState):
            self.touch_key(source, kind.key)
            action["type"] = ir.ActionType.STATE_READ
            action["parameters"] = {"key": kind.key.text}
            dependencies.append(kind.key.text)
        else:
            condition = kind.condition
            self.touch_key(source, condition.key)
            action["type"] = ir.ActionType.ASSERTION
            action["parameters"] = assertion_parameters(condition)
            if condition.value is not None:
                self.no_columns(source, condition.value)
            if condition.op != "not_exists":
                dependencies.append(condition.key.text)
        if decl.after:
            action["depends_on"] = [
                n.text for n in decl.after if self.plain(source, n, "action name")
            ]
        if tool_decl is not None:
            for item in tool_decl.items:
                if isinstance(item, ast.Idempotent):
                    action["idempotent"] = True
                elif isinstance(item, ast.ReversibilityItem):
                    action["reversibility"] = item.word.text
            kinds = {type(item) for item in tool_decl.items}
            if ast.ReadOnly in kinds and ast.ReversibilityItem not in kinds:
                # a call that only reads leaves nothing to undo (unless the tool says otherwise)
                action["reversibility"] = ir.Reversibility.REVERSIBLE
        self.action_items(source, decl, action, dependencies)
        if dependencies:
            action["state_dependencies"] = list(dict.fromkeys(dependencies))
        return construct(ir.Action, action, _ACTION_FIELDS)

    def action_items(
        self, source: Source, decl: ast.ActionDecl, action: dict[str, Any], dependencies: list[str]
    ) -> None:
        preconditions = []
        effects: dict[str, Any] = {}
        reversibility_given = False
        seen: dict[str, ast.Node] = {}
        for item in decl.items or ():
            word = _item_word(item)
            if word in seen and word not in ("requires", "reads", "effects"):
                self.d.error(
                    "CL0212",
                    f"`{word}` is given twice in action `{decl.name.text}`",
                    source,
                    item.span,
                    related=[Label(source, seen[word].span, "first given here", False)],
                )
                continue
            seen[word] = item
            if isinstance(item, ast.Requires):
                condition = item.condition
                self.touch_key(source, condition.key)
                if condition.value is not None:
                    self.no_columns(source, condition.value)
                preconditions.append(
                    construct(
                        ir.Precondition,
                        {
                            "key": condition.key.text,
                            "operator": _OPERATORS[condition.op],
                            "value": condition.value.value if condition.value is not None else None,
                            "description": (
                                item.description.value if item.description is not None else ""
                            ),
                        },
                        _PRECONDITION_FIELDS,
                    )
                )
            elif isinstance(item, ast.Reads):
                for key in item.keys:
                    self.touch_key(source, key)
                    dependencies.append(key.text)
            elif isinstance(item, ast.Effects):
                for effect in item.entries:
                    self.no_columns(source, effect.value)
                    self.touch_key(source, effect.key, effect.value)
                    if effect.key.text in effects:
                        self.d.error(
                            "CL0215",
                            f"effect on `{effect.key.text}` is given twice",
                            source,
                            effect.key.span,
                        )
                    effects[effect.key.text] = effect.value.value
            elif isinstance(item, ast.Retry):
                action["failure_behavior"] = ir.FailureBehavior.RETRY
                action["max_retries"] = item.count
            elif isinstance(item, ast.OnFailure):
                action["failure_behavior"] = ir.FailureBehavior(item.word.text)
            elif isinstance(item, ast.Timeout):
                if item.duration.ms <= 0:
                    self.d.error(
                        "CL0213", "a timeout must be longer than zero", source, item.duration.span
                    )
                action["timeout_ms"] = item.duration.ms
            elif isinstance(item, ast.Idempotent):
                action["idempotent"] = True
            elif isinstance(item, ast.ReversibilityItem):
                action["reversibility"] = ir.Reversibility(item.word.text)
                reversibility_given = True
            elif isinstance(item, ast.Compensate):
                parameters = self.call_parameters(source, item.call)
                action["compensation"] = ir.ToolCompensation.model_construct(
                    tool=item.call.tool.text, parameters=parameters
                )
            elif isinstance(item, ast.CompensateWith):
                action["compensation"] = ir.ActionRefCompensation.model_construct(
                    action_id=item.action.text
                )
            elif isinstance(item, ast.Meta):
                self.no_columns(source, item.data)
                action["metadata"] = item.data.value
            elif isinstance(item, ast.Mode):
                action["invocation_mode"] = ir.InvocationMode(item.word.text)
        if action["compensation"] is not None and not reversibility_given:
            action["reversibility"] = ir.Reversibility.COMPENSABLE
        if preconditions:
            action["preconditions"] = preconditions
        if effects:
            action["expected_effects"] = effects
        if type(action["reversibility"]) is str:  # a tool's, as written
            action["reversibility"] = ir.Reversibility(action["reversibility"])

    # -- plans -------------------------------------------------------------------------------

    def plans(self, proposals: set[str]) -> list[ir.Plan]:
        out = []
        for parsed, decl in self.declarations():
            if not isinstance(decl, ast.PlanDecl):
                continue
            source = parsed.source
            if not self.plain(source, decl.name, "plan name"):
                continue
            if not self.declare(self.map.plans, "plan", decl.name, Origin(source, decl)):
                continue
            candidates: list[str] = []
            target: dict[str, Any] = {}
            settings: dict[str, float] = {}
            given: dict[str, ast.Node] = {}  # each planner setting: where the plan sets it
            for item in decl.items:
                if isinstance(item, ast.Candidates):
                    for name in item.names:
                        if name.text not in proposals:
                            self.d.error(
                                "CL0202",
                                f"no proposal is called `{name.text}`",
                                source,
                                name.span,
                                help=suggest(name.text, proposals),
                            )
                        elif name.text in candidates:
                            self.d.error(
                                "CL0215", f"`{name.text}` is a candidate twice", source, name.span
                            )
                        else:
                            candidates.append(name.text)
                elif isinstance(item, ast.CostWeight):
                    if self.setting_twice(source, decl, given, "cost_weight", item):
                        continue
                    weight = item.value.value
                    if not 0.0 <= float(weight) <= 1.0:
                        self.d.error(
                            "CL0217", "cost_weight must be between 0 and 1", source, item.value.span
                        )
                    else:
                        target["cost_weight"] = float(weight)
                elif isinstance(item, ast.Target):
                    for entry in item.items:
                        kind = "duration_ms" if entry.kind == "duration" else entry.kind
                        if self.setting_twice(source, decl, given, f"target_{kind}", entry):
                            continue
                        if entry.kind == "duration":
                            assert entry.duration is not None
                            target["target_duration_ms"] = float(entry.duration.ms)
                        else:
                            target[f"target_{entry.kind}"] = entry.count
                elif isinstance(item, ast.Setting):
                    if not self.plain(source, item.name, "setting name"):
                        continue
                    if self.setting_twice(source, decl, given, item.name.text, item):
                        continue
                    if self.planner_setting(source, item):
                        settings[item.name.text] = float(item.value.value)
            named = any(isinstance(item, ast.Candidates) and item.names for item in decl.items)
            if not named:  # an unknown candidate is reported as such, not as a missing one
                self.d.error(
                    "CL0217",
                    f"plan `{decl.name.text}` has no candidates",
                    source,
                    decl.name.span,
                    help="add `candidates proposal_a, proposal_b`",
                )
            plan: dict[str, Any] = {
                "name": decl.name.text,
                "candidates": candidates,
                "settings": settings,
                "loc": loc_of(source, decl.span),
            }
            if target:
                plan["cost_target"] = ir.CostTarget.model_construct(**target)
            out.append(ir.Plan.model_construct(**plan))
        return out

    def setting_twice(
        self,
        source: Source,
        decl: ast.PlanDecl,
        given: dict[str, ast.Node],
        name: str,
        node: ast.Node,
    ) -> bool:
        """Whether plan `decl` already sets planner setting `name` (reported at `node`,
        pointing at the first): `cost_weight 0.2` after `set cost_weight = 0.1` would leave
        which one ranks to the order the lowering applies them in."""
        first = given.setdefault(name, node)
        if first is node:
            return False
        self.d.error(
            "CL0212",
            f"`{name}` is given twice in plan `{decl.name.text}`",
            source,
            node.span,
            related=[Label(source, first.span, "first given here", False)],
        )
        return True

    def planner_setting(self, source: Source, item: ast.Setting) -> bool:
        """Whether a plan's `set NAME = VALUE` is one the planner has, with a value it takes;
        reports it if not."""
        from carlang_runtime.planner.config import check_setting, unknown_setting

        name = item.name.text
        unknown = unknown_setting(name)
        if unknown is not None:
            message, _, hint = unknown.partition("; ")
            self.d.error(
                "CL0218",
                message.replace(f"'{name}'", f"`{name}`"),
                source,
                item.name.span,
                help=hint.replace("'", "`") or "see `carlang rank --help` for the settings",
            )
            return False
        problem = check_setting(name, float(item.value.value))
        if problem is not None:
            self.d.error("CL0217", problem, source, item.value.span)
            return False
        return True

    # -- all ---------------------------------------------------------------------------------

    def run(self) -> LowerResult:
        servers = self.mcp_servers()
        tools = self.tools()
        state, initial = self.state()
        capabilities = self.capabilities()
        budgets = self.budgets()
        policies = self.policies()
        proposals = self.proposals({c.name: c for c in capabilities}, {b.name: b for b in budgets})
        plans = self.plans({p.id for p in proposals})
        redactions = self.redactions()
        for parsed, decl in self.declarations():
            if isinstance(decl, ast.TestDecl):
                self.map.tests.append(Origin(parsed.source, decl))
        program = ir.Program.model_construct(
            version=1,
            tools=tools,
            state=state,
            initial_state=initial,
            capabilities=capabilities,
            budgets=budgets,
            policies=policies,
            proposals=proposals,
            plans=plans,
            mcp_servers=servers,
            redactions=redactions,
        )
        return LowerResult(program, self.map, self.used)

    def redactions(self) -> list[str]:
        """`redact params.x.y` paths, checked: `params.` then names or `*` (every item)."""
        paths: list[str] = []
        for parsed, decl in self.declarations():
            if not isinstance(decl, ast.RedactDecl):
                continue
            for name in decl.paths:
                problem = redaction_problem(name.text)
                if problem is not None:
                    self.d.error(
                        "CL0222",
                        f"cannot redact `{name.text}`: {problem}",
                        parsed.source,
                        name.span,
                        help="write a parameter path: `redact params.card_number` or"
                        " `redact params.cards.*.number`",
                    )
                elif name.text not in paths:
                    paths.append(name.text)
        return paths


def lower(loaded: LoadedProgram, diagnostics: Diagnostics) -> LowerResult:
    """Lower every file of a loaded program into one `ir.Program`, reporting problems."""
    return _Lowerer(loaded, diagnostics).run()


# -- small helpers -----------------------------------------------------------------------------


def declared_parameters(schema: dict[str, Any]) -> list[str] | None:
    """The parameter names a call may pass, or None when the schema allows any (it lists no
    properties, or allows additional ones)."""
    properties = schema.get("properties")
    if not isinstance(properties, dict) or schema.get("additionalProperties", False) is not False:
        return None
    return list(properties)


def schema_problem(schema: Any) -> str | None:
    """What makes `schema` unusable as a tool's parameters, or None: it must be a valid
    JSON Schema (draft 2020-12) describing objects, that calls can be checked against in
    bounded time (patterns RE2 matches, no `$ref` leading back to itself for the same
    value: `schemacheck.check_schema`)."""
    import jsonschema
    from carlang_runtime.schemacheck import check_schema, schema_problem_text

    if not isinstance(schema, dict):
        return "it is not an object"
    if schema.get("type", "object") != "object":
        return f'its type is {schema["type"]!r}, not "object" (parameters are an object)'
    try:
        check_schema(schema, jsonschema.Draft202012Validator)
    except jsonschema.SchemaError as exc:
        return schema_problem_text(exc)
    return _unresolved_reference(schema)


def unfit_defaults(schema: dict[str, Any]) -> dict[str, str]:
    """The top-level parameters of a usable tool schema (`schema_problem`) whose `default`
    the parameter's own schema refuses, each with the problem: the runtime fills a default in
    for a call that leaves its parameter out (`paramcheck.with_defaults`), so every such call
    is refused."""
    from carlang_runtime.paramcheck import ParamChecker, parameter_defaults

    defaults = parameter_defaults(schema)
    if not defaults:
        return {}
    findings = ParamChecker("", schema).check(defaults)
    return {f.param: f.detail for f in findings if f.param in defaults and f.kind != "missing"}


def _unresolved_reference(schema: dict[str, Any]) -> str | None:
    """The first `$ref` in `schema` that does not point inside it, said as a problem: the
    validator the runtime checks calls with resolves only those (it fetches nothing), and
    would fail on every call."""
    from carlang_runtime.schemacheck import unresolved_ref

    found = unresolved_ref(schema)
    if found is None:
        return None
    where, ref = found
    base, _, fragment = ref.partition("#")
    own = schema.get("$id")
    if base and not (isinstance(own, str) and own.partition("#")[0] == base):
        problem = "points outside the schema (only `#...` and the schema's own `$id` resolve)"
    elif not fragment or fragment.startswith("/"):
        problem = "points at nothing in the schema"
    else:
        problem = "names no `$anchor` of the schema"
    return f"`$ref` {ref!r} {problem} (at {'/'.join(map(str, where))})"


def resolve_pointer(document: Any, pointer: str, name: str) -> tuple[Any, str | None]:
    """The value at a JSON pointer (RFC 6901) in `document`, or the problem."""
    if not pointer:
        return document, None
    if not pointer.startswith("/"):
        return None, f"`#{pointer}` in `{name}` is not a JSON pointer (it starts with `/`)"
    node = document
    for raw in pointer[1:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None, f"`{name}` has nothing at `#{pointer}` (no `{part}`)"
    return node, None


def credential_reference(name: str, value: str) -> str:
    """The value a header holding a written-out credential could have instead: its scheme
    kept, the secret taken from a variable (`"Bearer ${TOKEN}"`, `"${X_API_KEY}"`)."""
    words = value.split()
    scheme = f"{words[0]} " if len(words) > 1 else ""
    variable = "TOKEN" if name.lower() == "authorization" else re.sub(r"\W", "_", name).upper()
    return f'"{scheme}${{{variable}}}"'


class UrlCredential(NamedTuple):
    """A credential written out in a url: the `part` it is, what a message calls it, its
    `value` as written, and the header to send it in instead (`fix`)."""

    part: Literal["password", "query"]
    what: str
    value: str
    fix: str


def url_credentials_written(url: str) -> list[UrlCredential]:
    """The credentials written out in `url`: its password (`user:password@`) and the values of
    the query parameters named for a credential (`?api_key=...`), those `shown_url` shows as
    `***`."""
    from urllib.parse import unquote, urlsplit

    from carlang_runtime.redact import shown_url

    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return []
    found = []
    if password:
        who = unquote(user or "")
        found.append(
            UrlCredential(
                "password",
                f"the password of `{who}`",
                password,
                f'the password as `"Authorization": "Basic ${{B64}}"` (B64: the base64 of'
                f" `{who}:PASSWORD`), left out of the url",
            )
        )
    for pair in parts.query.split("&"):
        name, equals, value = pair.partition("=")
        if equals and value and shown_url(f"http://h/?{name}={value}").endswith("=***"):
            name = unquote(name)
            variable = re.sub(r"\W", "_", name).upper()
            header = (
                f'"Authorization": "Bearer ${{{variable}}}"'
                if re.search("token|auth", name, re.IGNORECASE)
                else f'"X-Api-Key": "${{{variable}}}"'
            )
            found.append(
                UrlCredential(
                    "query",
                    f"the value of `{name}` in its query",
                    value,
                    f"`{name}` in a header the server reads it from, like `{header}`",
                )
            )
    return found


def map_entries(source: Source, value: ast.Value) -> list[ast.MapEntry]:
    """The entries of the map `value` as written in `source`, each at its place: the map's
    text parsed again as an `mcp_server`'s `headers` (whose entries the parser keeps)."""
    from .parse import parse

    lead = "mcp_server m {\n  headers "
    text = source.text[value.span.start : value.span.end]
    module = parse(Source(source.name, f"{lead}{text}\n}}\n")).module
    if module is None or not module.declarations:
        return []
    (decl, *_) = module.declarations
    settings = decl.settings if isinstance(decl, ast.McpServerDecl) else ()
    shift = value.span.start - len(lead)

    def moved(span: Span) -> Span:
        return Span(span.start + shift, span.end + shift)

    return [
        ast.MapEntry(
            ast.Name(entry.key.text, span=moved(entry.key.span)),
            ast.Value(entry.value.value, span=moved(entry.value.span)),
            span=moved(entry.span),
        )
        for setting in settings[:1]
        for entry in setting.entries
    ]


def local_url_problem(url: str) -> str | None:
    """Why `url` is not an HTTP(S) URL on this machine (or holds `${...}`, which a url does not
    take: `url_reference_problem`), or None."""
    from urllib.parse import urlsplit

    from carlang_runtime.mcp.client import url_reference_problem
    from carlang_runtime.redact import shown_url

    in_url = url_reference_problem(url)
    if in_url is not None:
        return in_url[0]
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # (`http://[::1:8000/mcp`: an IPv6 address left open)
        return f"`{shown_url(url)}` is not an http:// URL"
    if parts.scheme not in ("http", "https") or not host:
        return f"`{shown_url(url)}` is not an http:// URL"
    if host not in ("localhost", "127.0.0.1", "::1"):
        return (
            f"MCP servers over HTTP must be on this machine (localhost, 127.0.0.1 or [::1]),"
            f" not {host}"
        )
    return None


def new_action(fields: dict[str, Any]) -> ir.Action:
    """An IR action of `fields` (values already checked) and every other field at its
    default: what `model_construct` makes, without pydantic's default handling (one call per
    action; and its first default factory reads a builtin's signature, which compiles the
    tokenizer's regexes: ~5 ms of a check that builds test actions)."""
    return construct(ir.Action, {**_action_defaults(), **fields})


def _action_defaults() -> dict[str, Any]:
    # Every field, in the model's order (what `model_construct` would make): `construct`
    # skips validation (the compiler builds valid values) and pydantic's default handling.
    # New lists and dicts for every action: nothing is shared between two models.
    return {
        "id": "",
        "type": _TOOL_CALL,
        "tool": None,
        "parameters": {},
        "preconditions": [],
        "expected_effects": {},
        "state_dependencies": [],
        "read_set": [],
        "write_set": [],
        "assumptions": [],
        "invocation_mode": _ONE_SHOT,
        "reversibility": _IRREVERSIBLE,
        "compensation": None,
        "idempotent": False,
        "max_retries": 3,
        "failure_behavior": _ABORT,
        "timeout_ms": None,
        "metadata": {},
        "depends_on": [],
        "loc": None,
    }


# The enum members every action's defaults name, bound once (an enum member lookup costs more
# than a global's).
_TOOL_CALL = ir.ActionType.TOOL_CALL
_ONE_SHOT = ir.InvocationMode.ONE_SHOT
_IRREVERSIBLE = ir.Reversibility.IRREVERSIBLE
_ABORT = ir.FailureBehavior.ABORT
#: Every field of an `Action` (`_action_defaults` names them all), one set shared by all.
_ACTION_FIELDS = set(_action_defaults())


def _proposal_defaults() -> dict[str, Any]:
    return {
        "source": "unknown",
        "timestamp": None,
        "context": {},
        "capability": None,
        "budget": None,
        "loc": None,
    }


def assertion_parameters(condition: ast.Condition) -> dict[str, Any]:
    """The parameters of an assertion of `condition` (CAR's `expected` for `==`)."""
    value = condition.value.value if condition.value is not None else None
    if condition.op == "==":
        return {"key": condition.key.text, "expected": value}
    params: dict[str, Any] = {"key": condition.key.text, "operator": _OPERATORS[condition.op]}
    if condition.value is not None:
        params["value"] = value
    return params


def _columns(value: Any) -> list[str]:
    if isinstance(value, ast.Column):
        return [value.name]
    if isinstance(value, list):
        return [c for item in value for c in _columns(item)]
    if isinstance(value, dict):
        return [c for item in value.values() for c in _columns(item)]
    return []


def _without_columns(value: Any) -> Any:
    if isinstance(value, ast.Column):
        return f"${value.name}"
    if isinstance(value, list):
        return [_without_columns(item) for item in value]
    if isinstance(value, dict):
        return {key: _without_columns(item) for key, item in value.items()}
    return value


_GLOB_SPECIAL = re.compile(r"[*?\[]")
#: Values with nothing inside them (no `$column` can hide in one).
_SCALARS = frozenset({str, int, float, bool, type(None)})


@lru_cache(maxsize=256)
def _literal_head(pattern: str) -> str:
    """The start of a glob pattern before its first wildcard: what every match starts with."""
    special = _GLOB_SPECIAL.search(pattern)
    return pattern if special is None else pattern[: special.start()]


def _glob_match(pattern: str, key: str) -> bool:
    from fnmatch import fnmatchcase

    return fnmatchcase(key, pattern)


def _name_span(node: Any) -> Span:
    name = getattr(node, "name", None) or getattr(node, "key", None)
    return name.span if isinstance(name, ast.Name) else node.span


def _signature(decl: ast.ToolDecl) -> str:
    params = ", ".join(p.name.text + ("?" if p.optional else "") for p in decl.params)
    return f"the signature is {decl.name.text}({params})"


_ITEM_WORDS = {
    ast.Description: "description",
    ast.Idempotent: "idempotent",
    ast.Cache: "cache",
    ast.Rate: "rate",
    ast.ReversibilityItem: "reversibility",
    ast.QueueItem: "queue",
    ast.ReadOnly: "read_only",
    ast.ToolSchemaItem: "schema",
    ast.ToolSchemaFrom: "schema",
    ast.RemoteName: "remote",
    ast.MaxActions: "max_actions",
    ast.MaxToolCalls: "max_tool_calls",
    ast.MaxDuration: "max_duration",
    ast.Requires: "requires",
    ast.Reads: "reads",
    ast.Effects: "effects",
    ast.Retry: "retry",
    ast.OnFailure: "on_failure",
    ast.Timeout: "timeout",
    ast.Compensate: "compensate",
    ast.CompensateWith: "compensate",
    ast.Meta: "meta",
    ast.Mode: "mode",
}


def _item_word(item: ast.Node) -> str:
    return _ITEM_WORDS.get(type(item)) or type(item).__name__.lower()


#: Arguments with these endings are files a server's interpreter runs (`python server.py`).
_SCRIPT_SUFFIXES = (".py", ".js", ".mjs", ".cjs", ".ts", ".rb", ".pl", ".sh", ".jar")


def _relative_path(value: str, base: Path, *, command: bool, runner: str = "") -> bool:
    """Whether an `mcp_server`'s `command` or argument is a relative path. A command is one
    when it holds a `/` (`./bin/serve`; a bare name is looked for on PATH); an argument when it
    is a script's name (`server.py`; not for a package runner, `runner`, whose arguments name
    packages) or what exists under `base`, the declaring file's folder (`data`,
    `./config.json`), or an option's value that is one (`--config=conf.json`). Options
    (`-m`), packages (`@scope/server`), URLs, `~` and `$` forms (CL0228) are not."""
    if value.startswith("-") and "=" in value and not command:
        value = value.partition("=")[2]  # (`--config=conf.json`: the value is the path)
    if not value or value[0] in "-@~$" or "://" in value or Path(value).is_absolute():
        return False
    if command:
        return "/" in value
    scripted = " " not in value and value.lower().endswith(_SCRIPT_SUFFIXES)  # (not `sh -c`'s)
    if runner not in _PACKAGE_RUNNERS and scripted:
        return True
    try:
        return (base / value).exists()
    except (OSError, ValueError):
        return False


#: Launchers whose arguments name packages to fetch and run, not files (`npx -y x.js`).
_PACKAGE_RUNNERS = frozenset({"npx", "uvx", "bunx", "pnpx", "pipx", "dlx"})
#: Launcher options that start the server in a folder of their own (`uv --directory /srv`).
_DIRECTORY_OPTIONS = ("--directory", "--cwd", "--project", "--prefix", "-C")


def _launcher_folders(args: list[Any]) -> list[str] | None:
    """The folders `args` give the launcher to start the server in (`--directory DIR`,
    `--directory=DIR`, `-C DIR`), or None when they give none: the server's relative paths are
    read from those, and a relative one of those from where carlang runs."""
    found: list[str] = []
    given = False
    for index, arg in enumerate(args):
        if not isinstance(arg, str):
            continue
        name, equals, value = arg.partition("=")
        if name not in _DIRECTORY_OPTIONS:
            continue
        given = True
        if equals:
            found.append(value)
        elif index + 1 < len(args) and isinstance(args[index + 1], str):
            found.append(args[index + 1])
    return found if given else None
