"""Source text -> `ast.Module`, with syntax errors as diagnostics in words users know.

`AstBuilder` has one method per grammar rule (same name), called by the parse engine for each
reduction with `self.span` set to the characters the rule covers. Literal problems (a bad
escape, a number JSON cannot hold) are reported here too; everything about names and meaning
is for `lower.py`.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import lru_cache
from typing import Any

from carlang_runtime.jsontext import NESTING_LIMIT, lone_surrogate, shorten, too_deep
from carlang_runtime.lalr import BRACKET_CLOSERS, END, Recovery, Token, shown_character
from carlang_runtime.lalr import Problem as SyntaxProblem
from carlang_runtime.suggest import did_you_mean

from . import ast
from .diagnostics import Diagnostic, Diagnostics, Label
from .source import Source, Span
from .syntax import DECLARATION_KEYWORDS, engine

__all__ = ["ParseResult", "parse", "TERMINAL_WORDS"]

#: Milliseconds per unit, for naming a duration's range in the unit the user wrote.
_DURATION_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
_U32 = 2**32 - 1
_U64 = 2**64 - 1
#: The largest whole number each counting field holds (CAR's types: u32 counts).
_COUNT_LIMITS = {
    "rate": _U32,
    "rate_limit_tool": _U32,
    "max_actions": _U32,
    "max_tool_calls": _U32,
    "retry": _U32,
    "target tool_calls": _U32,
    "target actions": _U32,
}
#: Durations are held in milliseconds as CAR's u64, and read as CEL reads them: CEL's range
#: (10,000 years) is the smaller, so it is the limit.
_MAX_DURATION_MS = 315_576_000_000 * 1000
#: Python refuses to convert longer digit strings to int (and no field holds such a number).
_MAX_DIGITS = 400

#: How expected terminals are named to users (never lark's internal names).
TERMINAL_WORDS = {
    "IDENT": "a name",
    "STRING": 'a string ("...")',
    "NUMBER": "a number",
    "INT": "a whole number",
    "DURATION": "a duration (250ms, 5s, 1m30s, 1h)",
    "CEL_TEXT": "a CEL condition",
    "COLUMN": "a column reference ($name)",
    "EMPTY_CELL": "an empty cell",
    "$END": "the end of the file",
}


@dataclass
class ParseResult:
    """A parsed file: the module (None when nothing could be built), its comments, and the
    diagnostics found while parsing."""

    source: Source
    module: ast.Module | None
    comments: list[ast.Comment] = field(default_factory=list)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)


#: A map entry as parsed: its key, its value, and where the key is written.
_Entry = tuple[str, ast.Value, Span]

#: A string literal with no escape and no control character: its value is its inside.
_PLAIN_STRING = re.compile(r'"[^"\\\x00-\x1f]*"').fullmatch


def _unquote(text: str) -> str:
    return json.loads(text)  # type: ignore[no-any-return]


@lru_cache(maxsize=1024)
def _duration_milliseconds(text: str) -> float:
    """A duration literal's milliseconds as CEL reads it (infinite when CEL cannot hold it);
    kept per text, since a program writes the same few durations many times."""
    from carlang_runtime.cel.values import CelEvalError, parse_duration

    try:
        return parse_duration(text).nanos / 1_000_000
    except CelEvalError:
        return math.inf


class AstBuilder:
    """Builds AST nodes; one method per grammar rule, called with the rule's children as
    arguments (after lark's shaping). `span` is set by the engine before each call."""

    def __init__(self, source: Source, diagnostics: Diagnostics) -> None:
        self.file = source  # not `source`: that is a rule name (a proposal's `from`)
        self.diagnostics = diagnostics
        self.span: tuple[int, int] = (0, 0)
        #: Where each policy condition's CEL text is: a bidirectional control character
        #: there is an error (`_direction_controls`).
        self.conditions: list[tuple[int, int]] = []
        #: The map built last, with its entries as written (`mcp_headers` reads them).
        self._last_map: tuple[ast.Value | None, tuple[_Entry | None, ...]] = (None, ())

    # helpers --------------------------------------------------------------------------------

    def _here(self) -> Span:
        return Span(*self.span)

    @staticmethod
    def _name(token: Token) -> ast.Name:
        return ast.Name(token[1], span=Span(token[2], token[3]))

    def _literal_error(self, token: Token, message: str, help: str | None = None) -> None:
        self.diagnostics.error("CL0104", message, self.file, Span(token[2], token[3]), help=help)

    def _range_error(self, token: Token, message: str) -> None:
        self.diagnostics.error("CL0217", message, self.file, Span(token[2], token[3]))

    def _string_value(self, token: Token) -> str:
        if _PLAIN_STRING(token[1]):
            return token[1][1:-1]
        surrogate = lone_surrogate(token[1])
        if surrogate is not None:
            escape = token[1][surrogate : surrogate + 6]
            start = token[2] + surrogate
            self.diagnostics.error(
                "CL0104",
                f"`{escape}` is half of a UTF-16 surrogate pair, not a character",
                self.file,
                Span(start, start + 6),
                help="write the character itself, or both halves of its pair (JSON rejects "
                "a lone half)",
            )
            return "\ufffd"
        control = next((i for i, c in enumerate(token[1]) if ord(c) < 0x20), None)
        if control is not None:  # a tab typed into a string: JSON wants it escaped
            char = token[1][control]
            named = {"\t": ("a tab", "\\t"), "\r": ("a carriage return", "\\r")}
            what, escape = named.get(char, (f"control character U+{ord(char):04X}", ""))
            escape = escape or f"\\u{ord(char):04x}"
            start = token[2] + control
            self.diagnostics.error(
                "CL0104",
                f"{what} cannot be written as itself in a string",
                self.file,
                Span(start, start + 1),
                help=f"write `{escape}` instead",
            )
            return token[1][1:-1]
        try:
            return _unquote(token[1])
        except ValueError:
            self._literal_error(
                token,
                f"invalid escape in string {token[1]}",
                help=r"use JSON escapes: \" \\ \n \t \uXXXX",
            )
            return token[1][1:-1]

    def _count(self, token: Token, field: str) -> int:
        """A whole number for `field`, checked against the field's range (the largest value
        in range after reporting one that is not, so later stages see a valid program)."""
        limit = _COUNT_LIMITS[field]
        text = token[1]
        if len(text) <= _MAX_DIGITS and int(text) <= limit:
            return int(text)
        self._range_error(token, f"{shorten(text)} is out of range for {field} (0..{limit})")
        return limit

    def _duration(self, token: Token, field: str) -> ast.Duration:
        """A duration in CEL's grammar and arithmetic (`1m30s`, `1.5s`, `250ms`), checked to be
        whole milliseconds within range (the largest in range after reporting one that is not)."""
        span = Span(token[2], token[3])
        milliseconds = _duration_milliseconds(token[1])
        if milliseconds > _MAX_DURATION_MS:
            unit = re.search(r"[a-zµ]+$", token[1])
            scale = _DURATION_UNITS.get(unit.group(0) if unit else "ms", 1)
            name = unit.group(0) if unit and unit.group(0) in _DURATION_UNITS else "ms"
            limit = f"0{name}..{_MAX_DURATION_MS // scale}{name}"
            self._range_error(token, f"{shorten(token[1])} is out of range for {field} ({limit})")
            return ast.Duration(token[1], _MAX_DURATION_MS // scale * scale, span=span)
        if milliseconds != int(milliseconds):
            self._literal_error(
                token,
                f"duration {token[1]} is not a whole number of milliseconds",
                help="durations count whole milliseconds: write 1ms or more, like 250ms",
            )
        return ast.Duration(token[1], int(milliseconds), span=span)

    @staticmethod
    def _values(items: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(item for item in items if item is not None)

    # module ---------------------------------------------------------------------------------

    def start(self, *items: Any) -> ast.Module:
        imports = tuple(i for i in items if isinstance(i, ast.Import))
        declarations = tuple(i for i in items if i is not None and not isinstance(i, ast.Import))
        return ast.Module(imports, declarations, span=self._here())

    def import_decl(self, path: Token) -> ast.Import:
        return ast.Import(
            ast.Value(self._string_value(path), span=Span(path[2], path[3])), span=self._here()
        )

    # values ---------------------------------------------------------------------------------

    def string(self, token: Token) -> ast.Value:
        text = token[1]
        if _PLAIN_STRING(text):  # `_string_value`'s common case, without its call
            return ast.Value(text[1:-1], span=Span(*self.span))
        return ast.Value(self._string_value(token), span=Span(*self.span))

    def number(self, token: Token) -> ast.Value:
        text = token[1]
        if "." in text or "e" in text or "E" in text:
            value: float | int = float(text)
            if value in (float("inf"), float("-inf")):
                self._literal_error(token, f"number {text} is too large")
                value = 0.0
        else:
            value = int(text) if len(text) <= _MAX_DIGITS else 2**64
            if not -(2**63) <= value < 2**64:
                self._literal_error(
                    token,
                    f"integer {shorten(text)} is out of range",
                    help="JSON numbers fit in 64 bits",
                )
                value = 0
        return ast.Value(value, span=Span(*self.span))

    def true(self) -> ast.Value:
        return ast.Value(True, span=Span(*self.span))

    def false(self) -> ast.Value:
        return ast.Value(False, span=Span(*self.span))

    def null(self) -> ast.Value:
        return ast.Value(None, span=self._here())

    def column(self, token: Token) -> ast.Value:
        return ast.Value(ast.Column(token[1][1:], span=Span(token[2], token[3])), span=self._here())

    def list_value(self, *items: ast.Value | None) -> ast.Value:
        written = tuple(item for item in items if item is not None)
        return ast.Value([item.value for item in written], span=self._here(), parts=written)

    def map_value(self, *entries: _Entry | None) -> ast.Value:
        data: dict[str, Any] = {}
        parts: dict[str, ast.Value] = {}
        for entry in entries:
            if entry is None:
                continue
            key, value, _ = entry
            if key in data:
                self.diagnostics.error(
                    "CL0215",
                    f"duplicate key `{key}` in map",
                    self.file,
                    value.span,
                    label="written again here",
                )
            data[key] = value.value
            parts[key] = value
        built = ast.Value(data, span=self._here(), parts=parts)
        # (a rule whose map's entries are checked one by one takes them: `mcp_headers`)
        self._last_map = (built, entries)
        return built

    def map_entry(self, key: Token, value: ast.Value) -> _Entry:
        text = self._string_value(key) if key[0] == "STRING" else key[1]
        return text, value, Span(key[2], key[3])

    # tools ----------------------------------------------------------------------------------

    def tool_decl(self, name: Token, *rest: Any) -> ast.ToolDecl:
        params = self._values(rest[:-2])
        returns, body = rest[-2], rest[-1]
        return ast.ToolDecl(self._name(name), params, returns, tuple(body or ()), span=self._here())

    def param(
        self,
        name: Token,
        optional: Token | None,
        type_: ast.TypeExpr,
        secret: Token | None,
        default: ast.Value | None,
    ) -> ast.Param:
        return ast.Param(
            self._name(name),
            optional is not None,
            type_,
            default,
            secret=secret is not None,
            span=self._here(),
        )

    def param_default(self, value: ast.Value) -> ast.Value:
        return value

    def returns(self, type_: ast.TypeExpr) -> ast.TypeExpr:
        return type_

    def tool_body(self, *items: Any) -> tuple[Any, ...]:
        return items

    def description(self, text: Token) -> ast.Description:
        return ast.Description(
            ast.Value(self._string_value(text), span=Span(text[2], text[3])), span=self._here()
        )

    def idempotent(self) -> ast.Idempotent:
        return ast.Idempotent(span=self._here())

    def cache(self, ttl: Token) -> ast.Cache:
        return ast.Cache(self._duration(ttl, "cache"), span=self._here())

    def rate(self, calls: Token, per: Token) -> ast.Rate:
        return ast.Rate(self._count(calls, "rate"), self._duration(per, "rate"), span=self._here())

    def reversibility(self, word: ast.Name) -> ast.ReversibilityItem:
        return ast.ReversibilityItem(word, span=self._here())

    def queue(self, name: Token) -> ast.QueueItem:
        return ast.QueueItem(self._name(name), span=self._here())

    def read_only(self) -> ast.ReadOnly:
        return ast.ReadOnly(span=self._here())

    def tool_schema(self, schema: ast.Value) -> ast.ToolSchemaItem:
        return ast.ToolSchemaItem(schema, span=self._here())

    def tool_schema_from(self, reference: Token) -> ast.ToolSchemaFrom:
        value = ast.Value(self._string_value(reference), span=Span(reference[2], reference[3]))
        return ast.ToolSchemaFrom(value, span=self._here())

    def remote_name(self, name: Token) -> ast.RemoteName:
        value = ast.Value(self._string_value(name), span=Span(name[2], name[3]))
        return ast.RemoteName(value, span=self._here())

    # MCP servers ----------------------------------------------------------------------------

    def mcp_server_decl(self, name: Token, *settings: ast.McpSetting) -> ast.McpServerDecl:
        return ast.McpServerDecl(self._name(name), settings, span=self._here())

    def _mcp_string(self, word: str, token: Token) -> ast.McpSetting:
        value = ast.Value(self._string_value(token), span=Span(token[2], token[3]))
        return ast.McpSetting(word, value, span=self._here())

    def mcp_command(self, token: Token) -> ast.McpSetting:
        return self._mcp_string("command", token)

    def mcp_cwd(self, token: Token) -> ast.McpSetting:
        return self._mcp_string("cwd", token)

    def mcp_url(self, token: Token) -> ast.McpSetting:
        return self._mcp_string("url", token)

    def mcp_args(self, value: ast.Value) -> ast.McpSetting:
        return ast.McpSetting("args", value, span=self._here())

    def mcp_env(self, value: ast.Value) -> ast.McpSetting:
        return ast.McpSetting("env", value, span=self._here())

    def mcp_headers(self, value: ast.Value) -> ast.McpSetting:
        built, written = self._last_map  # (the map just built is this one's: its only child)
        entries = tuple(
            ast.MapEntry(ast.Name(key, span=at), item, span=Span(at.start, item.span.end))
            for key, item, at in (e for e in written if e is not None)
        )
        return ast.McpSetting(
            "headers", value, entries if built is value else (), span=self._here()
        )

    def mcp_timeout(self, token: Token) -> ast.McpSetting:
        return ast.McpSetting("timeout", self._duration(token, "timeout"), span=self._here())

    def simple_type(self, name: Token, bounds: Any = None) -> ast.SimpleType:
        return ast.SimpleType(self._name(name), tuple(bounds or ()), span=self._here())

    def type_bounds(self, *bounds: tuple[ast.Name, ast.Value] | None) -> tuple[Any, ...]:
        return tuple(b for b in bounds if b is not None)

    def type_bound(self, name: Token, value: ast.Value) -> tuple[ast.Name, ast.Value]:
        return self._name(name), value

    def object_type(self, *fields: ast.Param | None) -> ast.ObjectType:
        return ast.ObjectType(tuple(f for f in fields if f is not None), span=self._here())

    def literal_type(self, option: Token) -> ast.EnumType:
        value = ast.Value(self._string_value(option), span=Span(option[2], option[3]))
        return ast.EnumType((value,), span=self._here())

    def union_type(self, *options: ast.TypeExpr) -> ast.TypeExpr:
        enums = [o for o in options if isinstance(o, ast.EnumType)]
        if len(enums) == len(options):  # "a" | "b": one enum
            return ast.EnumType(tuple(v for o in enums for v in o.options), span=self._here())
        return ast.UnionType(options, span=self._here())

    def list_type(self, item: ast.TypeExpr) -> ast.ListType:
        return ast.ListType(item, span=self._here())

    def map_type(self, item: ast.TypeExpr) -> ast.MapType:
        return ast.MapType(item, span=self._here())

    # state, capabilities, budgets -----------------------------------------------------------

    def state_decl(self, *entries: ast.StateEntry) -> ast.StateDecl:
        return ast.StateDecl(entries, span=self._here())

    def state_entry(
        self, key: Token, type_: ast.TypeExpr, default: ast.Value | None
    ) -> ast.StateEntry:
        return ast.StateEntry(self._name(key), type_, default, span=self._here())

    def capability_decl(self, name: Token, *items: Any) -> ast.CapabilityDecl:
        return ast.CapabilityDecl(self._name(name), items, span=self._here())

    def tools_allow(
        self, allow: tuple[ast.Name, ...], deny: tuple[ast.Name, ...] | None
    ) -> ast.ToolsAllow:
        return ast.ToolsAllow(allow, deny or (), span=self._here())

    def tools_deny(self, deny: tuple[ast.Name, ...]) -> ast.ToolsDeny:
        return ast.ToolsDeny(deny, span=self._here())

    def state_allow(self, allow: tuple[ast.Name, ...]) -> ast.StateAllow:
        return ast.StateAllow(allow, span=self._here())

    def pattern_list(self, *names: Token) -> tuple[ast.Name, ...]:
        return tuple(self._name(n) for n in names)

    def budget_decl(self, name: Token, *items: Any) -> ast.BudgetDecl:
        return ast.BudgetDecl(self._name(name), items, span=self._here())

    def max_actions(self, count: Token) -> ast.MaxActions:
        return ast.MaxActions(self._count(count, "max_actions"), span=self._here())

    def max_tool_calls(self, count: Token) -> ast.MaxToolCalls:
        return ast.MaxToolCalls(self._count(count, "max_tool_calls"), span=self._here())

    def max_duration(self, duration: Token) -> ast.MaxDuration:
        return ast.MaxDuration(self._duration(duration, "max_duration"), span=self._here())

    # policies -------------------------------------------------------------------------------

    def policy_decl(
        self,
        name: Token,
        shadow: ast.Name | None,
        effect: ast.Name,
        targets: tuple[ast.Name, ...] | None,
        when: ast.CelText | None,
        approval_timeout: ast.Duration | None,
        message: ast.Value | None,
    ) -> ast.PolicyDecl:
        return ast.PolicyDecl(
            self._name(name),
            effect,
            targets or (),
            when,
            message,
            shadow is not None,
            approval_timeout,
            span=self._here(),
        )

    def approval_timeout(self, duration: Token) -> ast.Duration:
        return self._duration(duration, "approval_timeout")

    def when(self, text: Token) -> ast.CelText:
        self.conditions.append((text[2], text[3]))
        stripped = text[1].rstrip()
        return ast.CelText(stripped, span=Span(text[2], text[2] + len(stripped)))

    def message(self, text: Token) -> ast.Value:
        return ast.Value(self._string_value(text), span=Span(text[2], text[3]))

    def redact_decl(self, *paths: Token) -> ast.RedactDecl:
        return ast.RedactDecl(tuple(self._name(p) for p in paths), span=self._here())

    def deny_tool(self, tools: tuple[ast.Name, ...], message: ast.Value | None) -> ast.DenyToolDecl:
        return ast.DenyToolDecl(tools, message, span=self._here())

    def deny_keyword(self, keywords: ast.Value, message: ast.Value | None) -> ast.DenyKeywordDecl:
        return ast.DenyKeywordDecl(keywords, message, span=self._here())

    def deny_tool_param(
        self, target: Token, test: tuple[str, ast.Value] | None, message: ast.Value | None
    ) -> ast.DenyToolParamDecl:
        kind, operand = test if test is not None else (None, None)
        return ast.DenyToolParamDecl(self._name(target), kind, operand, message, span=self._here())

    def param_equals(self, value: ast.Value) -> tuple[str, ast.Value]:
        return "equals", value

    def param_contains(self, value: ast.Value) -> tuple[str, ast.Value]:
        return "contains", value

    def allow_tool_param(
        self, target: Token, allowed: ast.Value, message: ast.Value | None
    ) -> ast.AllowToolParamDecl:
        return ast.AllowToolParamDecl(self._name(target), allowed, message, span=self._here())

    def deny_tool_param_matching(
        self, target: Token, pattern: Token, message: ast.Value | None
    ) -> ast.DenyToolParamMatchingDecl:
        regex = ast.Value(self._string_value(pattern), span=Span(pattern[2], pattern[3]))
        return ast.DenyToolParamMatchingDecl(self._name(target), regex, message, span=self._here())

    def rate_limit_tool(
        self, tool: Token, calls: Token, per: Token, message: ast.Value | None
    ) -> ast.RateLimitToolDecl:
        return ast.RateLimitToolDecl(
            self._name(tool),
            self._count(calls, "rate_limit_tool"),
            self._duration(per, "rate_limit_tool"),
            message,
            span=self._here(),
        )

    def require_state(
        self, key: Token, value: ast.Value, message: ast.Value | None
    ) -> ast.RequireStateDecl:
        return ast.RequireStateDecl(self._name(key), value, message, span=self._here())

    # proposals ------------------------------------------------------------------------------

    def proposal_decl(
        self, name: Token, source: ast.Value | None, under: tuple[ast.Name, ...] | None, *items: Any
    ) -> ast.ProposalDecl:
        return ast.ProposalDecl(self._name(name), source, under or (), items, span=self._here())

    def source(self, text: Token) -> ast.Value:
        return ast.Value(self._string_value(text), span=Span(text[2], text[3]))

    def under(self, *names: Token) -> tuple[ast.Name, ...]:
        return tuple(self._name(n) for n in names)

    def context(self, data: ast.Value) -> ast.ContextDecl:
        return ast.ContextDecl(data, span=self._here())

    def action(
        self,
        name: Token,
        kind: ast.ActionKind,
        after: tuple[ast.Name, ...] | None,
        body: tuple[Any, ...] | None,
    ) -> ast.ActionDecl:
        return ast.ActionDecl(
            ast.Name(name[1], span=Span(name[2], name[3])),
            kind,
            after or (),
            body,
            span=Span(*self.span),
        )

    def call(self, tool: Token, *args: ast.Arg | None) -> ast.Call:
        for arg in args:
            if arg is None:  # `()`: no arguments, a placeholder
                args = self._values(args)
                break
        name = ast.Name(tool[1], span=Span(tool[2], tool[3]))
        return ast.Call(name, args, span=Span(*self.span))  # type: ignore[arg-type]

    def arg(self, name: Token, value: ast.Value) -> ast.Arg:
        return ast.Arg(ast.Name(name[1], span=Span(name[2], name[3])), value, span=Span(*self.span))

    def set_state(self, key: Token, value: ast.Value) -> ast.SetState:
        return ast.SetState(self._name(key), value, span=self._here())

    def read_state(self, key: Token) -> ast.ReadState:
        return ast.ReadState(self._name(key), span=self._here())

    def assert_state(self, condition: ast.Condition) -> ast.AssertState:
        return ast.AssertState(condition, span=self._here())

    def after(self, *names: Token) -> tuple[ast.Name, ...]:
        return tuple([ast.Name(n[1], span=Span(n[2], n[3])) for n in names])

    def action_body(self, *items: Any) -> tuple[Any, ...]:
        return tuple(
            [
                ast.ReversibilityItem(item, span=item.span) if type(item) is ast.Name else item
                for item in items
            ]
        )

    def requires(self, condition: ast.Condition, description: Token | None) -> ast.Requires:
        text = None
        if description is not None:
            text = ast.Value(
                self._string_value(description), span=Span(description[2], description[3])
            )
        return ast.Requires(condition, text, span=self._here())

    def reads(self, *keys: Token) -> ast.Reads:
        return ast.Reads(tuple(self._name(k) for k in keys), span=self._here())

    def effects(self, *entries: ast.Effect) -> ast.Effects:
        return ast.Effects(entries, span=Span(*self.span))

    def effect(self, key: Token, value: ast.Value) -> ast.Effect:
        return ast.Effect(ast.Name(key[1], span=Span(key[2], key[3])), value, span=Span(*self.span))

    def retry(self, count: Token) -> ast.Retry:
        return ast.Retry(self._count(count, "retry"), span=Span(*self.span))

    def on_failure(self, word: ast.Name) -> ast.OnFailure:
        return ast.OnFailure(word, span=Span(*self.span))

    def timeout(self, duration: Token) -> ast.Timeout:
        return ast.Timeout(self._duration(duration, "timeout"), span=Span(*self.span))

    def compensate(self, call: ast.Call) -> ast.Compensate:
        return ast.Compensate(call, span=self._here())

    def compensate_with(self, name: Token) -> ast.CompensateWith:
        return ast.CompensateWith(self._name(name), span=self._here())

    def meta(self, data: ast.Value) -> ast.Meta:
        return ast.Meta(data, span=self._here())

    def mode(self, word: ast.Name) -> ast.Mode:
        return ast.Mode(word, span=self._here())

    def compare(self, key: Token, op: ast.Name, value: ast.Value) -> ast.Condition:
        name = ast.Name(key[1], span=Span(key[2], key[3]))
        return ast.Condition(name, op.text, value, span=Span(*self.span))

    def contains(self, key: Token, value: ast.Value) -> ast.Condition:
        return ast.Condition(self._name(key), "contains", value, span=self._here())

    def exists(self, key: Token) -> ast.Condition:
        return ast.Condition(self._name(key), "exists", None, span=self._here())

    def not_exists(self, key: Token) -> ast.Condition:
        return ast.Condition(self._name(key), "not_exists", None, span=self._here())

    # plans ----------------------------------------------------------------------------------

    def plan_decl(self, name: Token, *items: Any) -> ast.PlanDecl:
        return ast.PlanDecl(self._name(name), items, span=self._here())

    def candidates(self, *names: Token) -> ast.Candidates:
        return ast.Candidates(tuple(self._name(n) for n in names), span=self._here())

    def cost_weight(self, value: Token) -> ast.CostWeight:
        if 0.0 <= float(value[1]) <= 1.0:
            weight = self.number(value)
        else:
            self._range_error(value, f"{shorten(value[1])} is out of range for cost_weight (0..1)")
            weight = ast.Value(0.0, span=Span(value[2], value[3]))
        return ast.CostWeight(weight, span=self._here())

    def target(self, *items: ast.TargetItem) -> ast.Target:
        return ast.Target(items, span=self._here())

    def target_tool_calls(self, count: Token) -> ast.TargetItem:
        return ast.TargetItem(
            "tool_calls", self._count(count, "target tool_calls"), None, span=self._here()
        )

    def target_actions(self, count: Token) -> ast.TargetItem:
        return ast.TargetItem(
            "actions", self._count(count, "target actions"), None, span=self._here()
        )

    def target_duration(self, duration: Token) -> ast.TargetItem:
        return ast.TargetItem(
            "duration", None, self._duration(duration, "target duration"), span=self._here()
        )

    def setting(self, name: Token, value: Token) -> ast.Setting:
        span = self.span
        self.span = (value[2], value[3])  # the number's own span, for errors about its value
        number = self.number(value)
        self.span = span
        return ast.Setting(self._name(name), number, span=self._here())

    # tests ----------------------------------------------------------------------------------

    def test_decl(self, name: Token, *items: Any) -> ast.TestDecl:
        title = ast.Value(self._string_value(name), span=Span(name[2], name[3]))
        return ast.TestDecl(title, items, span=self._here())

    def given_action(self, kind: ast.ActionKind) -> ast.GivenAction:
        return ast.GivenAction(kind, span=self._here())

    def given_state(self, data: ast.Value) -> ast.GivenState:
        return ast.GivenState(data, span=self._here())

    def given_scope(self, data: ast.Value) -> ast.GivenScope:
        return ast.GivenScope(data, span=self._here())

    def given_now(self, token: Token) -> ast.GivenNow:
        span = Span(token[2], token[3])
        if token[0] == "COLUMN":
            column = ast.Value(ast.Column(token[1][1:], span=span), span=span)
            return ast.GivenNow(column, span=self._here())
        return ast.GivenNow(ast.Value(self._string_value(token), span=span), span=self._here())

    def given_history(self, data: ast.Value) -> ast.GivenHistory:
        return ast.GivenHistory(data, span=self._here())

    def given_proposal(self, name: Token) -> ast.GivenProposal:
        return ast.GivenProposal(self._name(name), span=self._here())

    def given_plan(self, name: Token) -> ast.GivenPlan:
        return ast.GivenPlan(self._name(name), span=self._here())

    def expect(self, expectation: ast.Expect) -> ast.Expect:
        return ast.Expect(
            expectation.kind,
            expectation.word,
            expectation.by,
            expectation.codes,
            expectation.shadow,
            span=self._here(),
        )

    def _word(self, item: ast.Name | Token) -> ast.Name | ast.Column:
        if isinstance(item, ast.Name):
            return item
        if item[0] == "COLUMN":
            return ast.Column(item[1][1:], span=Span(item[2], item[3]))
        if item[0] == "STRING":
            return ast.Name(self._string_value(item), span=Span(item[2], item[3]))
        return self._name(item)

    def decision_expectation(
        self,
        shadow: ast.Name | None,
        word: ast.Name | Token,
        by: ast.Name | ast.Column | None,
    ) -> ast.Expect:
        return ast.Expect(
            "decision", self._word(word), by, shadow=shadow is not None, span=self._here()
        )

    def by(self, item: Token) -> ast.Name | ast.Column:
        return self._word(item)

    def valid_expectation(self, word: ast.Name) -> ast.Expect:
        return ast.Expect("validity", word, span=self._here())

    def codes_expectation(self, *codes: Token) -> ast.Expect:
        return ast.Expect("codes", codes=tuple(self._name(c) for c in codes), span=self._here())

    def winner_expectation(self, item: Token) -> ast.Expect:
        return ast.Expect("winner", self._word(item), span=self._here())

    def where(self, *rows: tuple[ast.Value | ast.Name, ...]) -> ast.Where:
        return ast.Where(rows, span=self._here())

    def table_row(self, *cells: ast.Value | Token) -> tuple[ast.Value | ast.Name, ...]:
        return tuple(c if isinstance(c, ast.Value) else self._cell_name(c) for c in cells)

    def _cell_name(self, token: Token) -> ast.Name:
        if token[0] == "EMPTY_CELL":  # `|   |`: a name with no text, null as a value
            return ast.Name("", span=Span(token[2] + 1, token[3]))
        return self._name(token)

    # keyword sets ---------------------------------------------------------------------------

    def _keyword(self, token: Token) -> ast.Name:
        return ast.Name(token[1], span=Span(token[2], token[3]))

    policy_effect = decision_word = validity_word = reversibility_word = _keyword
    failure_word = mode_word = comparison = shadow_word = _keyword


# -- syntax errors -----------------------------------------------------------------------------


def _describe(name: str, literal: dict[str, str]) -> str:
    if name in TERMINAL_WORDS:
        return TERMINAL_WORDS[name]
    if name in literal:
        return f"`{literal[name]}`"
    return name.lower()


def _expected_words(expected: frozenset[str], literal: dict[str, str]) -> str:
    starts = {name for name in expected if literal.get(name) in DECLARATION_KEYWORDS}
    words = sorted({_describe(name, literal) for name in expected - starts})
    if len(starts) >= 3:  # "or a new declaration" instead of every top-level keyword
        words.append("a new declaration")
    else:
        words = sorted(words + [_describe(name, literal) for name in starts])
    if len(words) > 8:
        words = words[:8] + ["..."]
    return ", ".join(words)


def _token_words(token: Token) -> str:
    kind, text = token[0].removeprefix("misplaced:"), _shortened(token[1])
    if kind == "$END":
        return "end of file"
    if kind in ("IDENT",):
        return f"name `{text}`"
    if kind == "STRING":
        return f"string {text}"
    return f"`{text}`"


#: The most characters of a token a message quotes (the source line shows the rest).
_QUOTED = 60


def _shortened(text: str) -> str:
    """`text`, its middle cut to `...` past `_QUOTED` characters (its end, a string's closing
    quote, stays)."""
    if len(text) <= _QUOTED:
        return text
    return f"{text[: _QUOTED - 13]}...{text[-10:]}"


#: What a line of a condition cannot end with, were the condition to end there: a binary
#: operator (the condition goes on, on the next line, as a person writes it).
_DANGLING = re.compile(r"(&&|\|\||==|!=|<=|>=|[<>+*/%?:,(\[-]|\bin)[ \t]*$")


def _continued_condition(source: Source, token: Token) -> str | None:
    """The help for a token that starts a line after a policy's condition whose line ends in
    an operator (`when params.n > 1 &&`, then `params.n < 10`): the condition ended with its
    line, and this line is read as a new statement."""
    start = source.text.rfind("\n", 0, token[2]) + 1
    if source.text[start : token[2]].strip() or start == 0:
        return None  # (not the first thing on its line)
    previous = source.text[source.text.rfind("\n", 0, start - 1) + 1 : start - 1]
    dangling = _DANGLING.search(previous.split("#", 1)[0].rstrip())
    if " when " not in f" {previous} " or dangling is None:
        return None
    return (
        f"the line before ends with `{dangling.group(1)}`: a condition ends with its line;"
        " wrap a long one in ( ) to continue it"
    )


#: The words of `reversibility WORD` (`reversibility_word` in the grammar).
_REVERSIBILITIES = frozenset(("reversible", "compensable", "irreversible"))


def _previous_words(source: Source, token: Token, count: int) -> list[str]:
    """The `count` words written before `token` (fewer at the start of the file)."""
    return source.text[: token[2]].split()[-count:]


def _syntax_help(problem: SyntaxProblem, source: Source, literal: dict[str, str]) -> str | None:
    """A hint for the mistakes people make most often, when this problem looks like one."""
    token = problem.token
    expected_text = {literal[name] for name in problem.expected if name in literal}
    if token is None:
        char = source.text[problem.position : problem.position + 1]
        if char == "'":
            return 'strings use double quotes: "..."'
        return None
    text, kind = token[1], token[0].removeprefix("misplaced:")
    continued = _continued_condition(source, token)
    if continued is not None:
        return continued
    if text == "=" and "==" in expected_text:
        return "comparisons use `==`"
    if text in _REVERSIBILITIES and "reversibility" in expected_text:
        return f"a tool's reversibility is an item: `reversibility {text}`"
    if text == "," and "expect" in expected_text:  # (`action t(n: 6), expect deny`)
        return "a test's items go one a line, without `,`"
    if text == "if" and "when" in expected_text:  # (`deny refund if params.amount > 5`)
        return "a policy's condition follows `when`: `deny TOOLS when CONDITION`"
    if kind == "IDENT" and _previous_words(source, token, 2) == ["by", "policy"]:
        return f"`by` takes the policy's name alone: `by {_shortened(text)}`"
    if kind == "IDENT" and "STRING" in problem.expected and "IDENT" not in problem.expected:
        return f'strings need double quotes: "{_shortened(text)}"'
    if "," in expected_text and kind in ("IDENT", "STRING", "NUMBER") and problem.after is not None:
        return "separate items with `,`"
    if text == "import":
        return "imports must come before all declarations"
    if text == "approval_timeout":  # (after the policy's `message`, or given twice)
        return "a policy's `approval_timeout` comes once, before its `message`"
    after = problem.after
    if text == ":" and after is not None and after[0] == "IDENT":
        before = source.text[: after[2]].rstrip()
        if before.endswith("by") and not before[-3:-2].isidentifier():  # `by deny_tool:shell`
            rest = source.text[problem.position + 1 :].split(None, 1)
            name = f"{after[1]}:{rest[0] if rest else '...'}"
            return f'a rule\'s name holds a `:`: write it in quotes, by "{_shortened(name)}"'
    keywords = [word for word in expected_text if word.isidentifier()]
    if kind == "IDENT" and keywords:
        return did_you_mean(text, keywords, quote="`")  # `retyr 3`: a misspelt keyword
    if after is not None and after[0] == "IDENT" and kind in ("IDENT", "NUMBER", "STRING"):
        words = [word for word in literal.values() if word.isidentifier()]
        if after[1] in words:  # a keyword used as a name is spelt right: no suggestion
            return None
        return did_you_mean(after[1], words, quote="`")  # `asert k == 1`: read as a name
    return None


def _syntax_diagnostic(
    problem: SyntaxProblem, source: Source, literal: dict[str, str]
) -> Diagnostic:
    expected = _expected_words(problem.expected - problem.closers_not_open(literal), literal)
    token = problem.token
    special = _unterminated_string(problem, source) or _bad_duration(problem, source)
    if special is not None:
        return special
    if token is None:
        char = source.text[problem.position : problem.position + 1]
        shown = shown_character(char)
        span = Span(problem.position, problem.position + 1)
        help = _syntax_help(problem, source, literal)
        if char == "\ufeff":  # Windows editors' "UTF-8 with BOM"
            help = "this is a byte-order mark: save the file as UTF-8 without one"
        elif char in DIRECTION_CONTROLS:  # "Trojan Source": see `_direction_controls`
            help = (
                f"this is {_character_name(char)}, a bidirectional control character: it "
                "reorders how the text around it is displayed, so the line may not read as "
                "it is compiled; remove it"
            )
        elif char.isalnum():  # `empfänger`, `groß`: a name with a letter beyond ASCII
            help = "names are ASCII letters, digits and `_` (strings may hold any text)"
        return Diagnostic(
            "CL0101",
            "error",
            f"unexpected character `{shown}`",
            (Label(source, span, f"expected {expected}"),),
            help,
        )
    if token[0] == "$END":
        span = Span(len(source.text), len(source.text))
        notes: tuple[str, ...] = ()
        related: tuple[Label, ...] = ()
        message = "unexpected end of file"
        if problem.open_brackets:
            bracket, at = problem.open_brackets[-1]
            line, column = source.line_column(at)
            message = f"unexpected end of file: `{bracket}` opened at {line}:{column} is still open"
            related = (Label(source, Span(at, at + 1), "opened here", primary=False),)
            notes = (f"close it with `{BRACKET_CLOSERS[bracket]}`",)
        return Diagnostic(
            "CL0103",
            "error",
            message,
            (Label(source, span, f"expected {expected}"), *related),
            None,
            notes,
        )
    span = Span(token[2], token[3])
    unclosed = _unclosed_before_declaration(problem, source, token)
    if unclosed is not None:
        return Diagnostic(
            "CL0102",
            "error",
            f"unexpected {_token_words(token)}",
            (Label(source, span, f"expected {expected}"), unclosed[0]),
            unclosed[1],
        )
    return Diagnostic(
        "CL0102",
        "error",
        f"unexpected {_token_words(token)}",
        (Label(source, span, f"expected {expected}"),),
        _syntax_help(problem, source, literal),
    )


_LINE_START_WORD = re.compile(r"([a-z_]+)[ \t]*")


def _keyword_starting_a_line(problem: SyntaxProblem, source: Source, token: Token) -> bool:
    """Whether `token` is a declaration's keyword, first on its line, inside a `(` or `[`
    (where no declaration goes: a block's `{` may hold `state` and `plan` items), and not
    a name that happens to be one (`state: string`, a parameter)."""
    if token[1] not in DECLARATION_KEYWORDS or problem.open_brackets[-1][0] not in "([":
        return False
    line_start = source.text.rfind("\n", 0, token[2]) + 1
    after = source.text[token[3] :].lstrip(" \t")[:1]
    return not source.text[line_start : token[2]].strip() and after not in (":", "?")


def _statement_starting_a_line(
    problem: SyntaxProblem, source: Source, token: Token, line_start: int, after: str
) -> bool:
    """Whether `token` starts an action (`b = ...`, first on its line) inside a `(` or `[`
    opened on an earlier line: the bracket was left open (a missing `,` between arguments
    on their own lines reads `name:`, not `name =`)."""
    bracket, at = problem.open_brackets[-1]
    return (
        bracket in "(["
        and at < line_start
        and token[0].removeprefix("misplaced:") == "IDENT"
        and not source.text[line_start : token[2]].strip()
        and after[:1] == "="
        and after[1:2] != "="
    )


def _unclosed_before_declaration(
    problem: SyntaxProblem, source: Source, token: Token
) -> tuple[Label, str] | None:
    """When the problem comes right after a declaration's keyword at the start of a line
    (`test "x" {`) inside a block still open, the block's missing close is the mistake: the
    label at its opening and the help to close it; else None."""
    if not problem.open_brackets:
        return None
    line_start = source.text.rfind("\n", 0, token[2]) + 1
    word = _LINE_START_WORD.fullmatch(source.text, line_start, token[2])
    after = source.text[token[3] :].lstrip(" \t")
    if word is not None and word.group(1) in DECLARATION_KEYWORDS:
        keyword = word.group(1)
    elif _keyword_starting_a_line(problem, source, token):
        keyword = token[1]  # (the keyword itself, first on its line: `policy` after `t(x: int`)
    elif line_start == token[2] and token[1] in DECLARATION_KEYWORDS and after[:1] not in ":?":
        keyword = token[1]  # (in the first column: `tool` after a tool's block left open)
    elif _statement_starting_a_line(problem, source, token, line_start, after):
        keyword = f"{token[1]} ="  # (`b = t(...)` after `a = t(x: 1` left open)
    else:
        return None
    bracket, at = problem.open_brackets[-1]
    line, column = source.line_column(at)
    label = Label(source, Span(at, at + 1), "opened here, and still open", primary=False)
    closer = BRACKET_CLOSERS[bracket]
    return (
        label,
        f"close the `{bracket}` opened at {line}:{column} with `{closer}` before `{keyword}`",
    )


def _unterminated_string(problem: SyntaxProblem, source: Source) -> Diagnostic | None:
    """A `"` that starts nothing: a string with no closing quote on its line."""
    if problem.token is not None or source.text[problem.position : problem.position + 1] != '"':
        return None
    span = Span(problem.position, problem.position + 1)
    return Diagnostic(
        "CL0101",
        "error",
        "unterminated string",
        (Label(source, span, 'this string has no closing `"` on its line'),),
        'close it with `"` before the end of the line (write a newline inside it as \\n)',
    )


_UNIT_WORD = re.compile(r"[A-Za-zµ_][A-Za-z0-9_]*")
#: CEL's duration units (what the DURATION token takes).
_CEL_UNITS = frozenset(("h", "m", "s", "ms", "us", "µs", "ns"))


def _bad_duration(problem: SyntaxProblem, source: Source) -> Diagnostic | None:
    """A number with a word stuck to it where a duration belongs: `5sec`, `10mins`; or a
    duration's number with a sign or an exponent (`-5s`, `1e3ms`), which durations do not
    take: then the number is the mistake, not the unit."""
    token = problem.token
    if token is None or "DURATION" not in problem.expected:
        return None
    if token[0].removeprefix("misplaced:") not in ("INT", "NUMBER"):
        return None
    unit = _UNIT_WORD.match(source.text, token[3])
    if unit is None:
        return None
    span = Span(token[2], unit.end())
    written = source.text[span.start : span.end]
    number, word = token[1], unit.group(0)
    if number.startswith("-"):
        message = f"a duration cannot be negative: `{written}`"
        label = "durations have no sign"
    elif "e" in number.lower():
        message = f"a duration's number cannot have an exponent: `{written}`"
        label = "write the number out in full"
    else:
        message = f"unknown duration unit `{word}` in `{written}`"
        label = "the units are h, m, s, ms, us, ns (CEL's)"
    return Diagnostic(
        "CL0102", "error", message, (Label(source, span, label),), _duration_help(number, word)
    )


#: Units people write that CEL's durations spell otherwise: (CEL's unit, how many of it).
_UNIT_SPELLINGS = {
    **dict.fromkeys(("d", "day", "days"), ("h", 24)),
    **dict.fromkeys(("w", "wk", "week", "weeks"), ("h", 168)),
    **dict.fromkeys(("hr", "hrs", "hour", "hours"), ("h", 1)),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), ("m", 1)),
    **dict.fromkeys(("sec", "secs", "second", "seconds"), ("s", 1)),
    **dict.fromkeys(("msec", "msecs", "millis", "milliseconds"), ("ms", 1)),
}


def _duration_help(number: str, unit: str) -> str:
    """How to write `number` `unit` as a duration: without a sign, the number written out,
    and the same length in CEL's units when the unit is a known spelling (`5d` is `120h`),
    else the units to choose from."""
    magnitude = abs(Decimal(number))
    if abs(magnitude.adjusted()) > 30:  # (`1e999999s`: not written out)
        return "write the number out in full, without a sign or an exponent"
    known = (unit, 1) if unit in _CEL_UNITS else _UNIT_SPELLINGS.get(unit.lower())
    if known is None:
        shown = _plain_number(magnitude)
        return f"write it with one of the units: {shown}h, {shown}m, {shown}s or {shown}ms"
    cel_unit, factor = known
    return f"write it as {_plain_number(magnitude * factor)}{cel_unit}"


def _plain_number(number: Decimal) -> str:
    """`number` in digits, with no exponent and no trailing zeros: 1000, 0.25."""
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _too_deep(source: Source) -> Diagnostic | None:
    at = too_deep(source.text, NESTING_LIMIT, comments=True)
    if at is None:
        return None
    return Diagnostic(
        "CL0106",
        "error",
        f"nested too deeply: more than {NESTING_LIMIT} levels of brackets",
        (Label(source, Span(at, at + 1), f"level {NESTING_LIMIT + 1} opens here"),),
        f"blocks, lists, maps and types may nest at most {NESTING_LIMIT} levels in all (CAR's"
        " JSON limit)",
    )


#: Unicode's bidirectional control characters: the embeddings and overrides (U+202A-U+202E),
#: the isolates (U+2066-U+2069) and the marks (U+200E, U+200F, U+061C). Written as themselves
#: they make editors and review tools display the text around them in another order than the
#: one it is read in, so that a file can show a reviewer a different policy from the one that
#: runs ("Trojan Source", CVE-2021-42574).
DIRECTION_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
)
_DIRECTION_CONTROL = re.compile("[" + "".join(sorted(DIRECTION_CONTROLS)) + "]")
#: What carlang's lexer reads as a string or a comment (neither runs past its line).
_STRING_OR_COMMENT = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*')
#: What CEL's lexer reads as a string or, in a condition's group over several lines, a note
#: (the grammar's `_CEL_STR` and `_CEL_NOTE`).
_CEL_STRING_OR_NOTE = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|#[^\n]*')


def _character_name(char: str) -> str:
    """`U+202E (RIGHT-TO-LEFT OVERRIDE)`."""
    import unicodedata

    return f"U+{ord(char):04X} ({unicodedata.name(char, 'unnamed')})"


def _direction_controls(
    source: Source,
    comments: list[tuple[int, int]],
    conditions: list[tuple[int, int]],
    reported: set[int],
) -> list[Diagnostic]:
    """CL0108 for each bidirectional control character written as itself (`DIRECTION_CONTROLS`):
    an error in a policy's condition (CEL runs exactly what is written, whatever it displays
    as) and outside strings and comments, a warning in a comment or a string literal (where it
    can only hide text: the warning can be accepted, or the character written as an escape).
    Not at a character another syntax error is at (`reported`: CL0101, a character that starts
    nothing), nor in a condition's CEL code outside its strings and notes, where CEL's parser
    rejects the character (CL0501). Costs one search of the text when there is none."""
    text = source.text
    if text.isascii():
        return []
    found = [m.start() for m in _DIRECTION_CONTROL.finditer(text)]
    if not found:
        return []
    comments = sorted(comments)
    conditions = sorted(conditions)
    condition_ends = [end for _, end in conditions]
    diagnostics = []
    lexemes: dict[int, list[re.Match[str]]] = {}  # (each line's strings and comments, once)
    for at in found:
        if at in reported:
            continue
        place = ""
        index = bisect.bisect_right(conditions, (at, len(text) + 1)) - 1
        if index >= 0 and conditions[index][0] <= at < conditions[index][1]:
            start, end = conditions[index]
            inside = _CEL_STRING_OR_NOTE.finditer(text, start, end)
            lexeme = next((m for m in inside if m.start() < at < m.end()), None)
            if lexeme is None:
                continue  # CEL code: CEL's parser reports it (CL0501)
            place = "condition note" if lexeme.group()[0] == "#" else "condition"
        else:
            index = bisect.bisect_right(comments, (at, len(text) + 1)) - 1
            if index >= 0 and comments[index][0] <= at < comments[index][1]:
                place = "comment"
        if not place:
            line_start = text.rfind("\n", 0, at) + 1
            # a condition (its group may run over several lines) that ends on this line,
            # before the character: the line is read from its end
            ended = bisect.bisect_right(condition_ends, at) - 1
            if ended >= 0 and condition_ends[ended] > line_start:
                line_start = condition_ends[ended]
            if line_start not in lexemes:
                line_end = text.find("\n", at)
                line_end = len(text) if line_end == -1 else line_end
                lexemes[line_start] = list(_STRING_OR_COMMENT.finditer(text, line_start, line_end))
            lexeme = next((m for m in lexemes[line_start] if m.start() < at < m.end()), None)
            place = (
                "code" if lexeme is None else "comment" if lexeme.group()[0] == "#" else "string"
            )
        diagnostics.append(_direction_control(source, at, place))
    return diagnostics


_PLACES = {
    "condition": "in a policy condition",
    "condition note": "in a policy condition",
    "comment": "in a comment",
    "string": "in a string",
    "code": "outside any string or comment",
}


def _direction_control(source: Source, at: int, place: str) -> Diagnostic:
    char = source.text[at]
    escape = f"\\u{ord(char):04x}"
    help = "remove it"
    if place == "condition":
        label = "CEL reads what is written here, not what is displayed"
        help = f"remove it, or write it as the escape `{escape}` (CEL's strings take it)"
    elif place == "condition note":
        label = "the condition may display otherwise than CEL reads it"
    elif place == "string":
        label = "the string may display otherwise than it is"
        help = f"remove it, or write it as the escape `{escape}` (the string stays the same)"
    elif place == "comment":
        label = "the comment, and the line around it, may display otherwise than it is"
    else:
        label = "the line may display otherwise than it is read"
    return Diagnostic(
        "CL0108",
        "warning" if place in ("comment", "string") else "error",
        f"bidirectional control character {_character_name(char)} {_PLACES[place]}",
        (Label(source, Span(at, at + 1), label),),
        help,
        (
            "it changes the order in which editors and review tools display the text around "
            'it, so what a reviewer reads can differ from what carlang compiles ("Trojan '
            'Source", CVE-2021-42574)',
        ),
    )


def parse(source: Source) -> ParseResult:
    """Parse one file. Syntax errors become diagnostics (parsing resumes at the next
    declaration); the module holds every declaration that parsed."""
    diagnostics = Diagnostics()
    deep = _too_deep(source)
    if deep is not None:  # nothing is parsed: later passes recurse into values and types
        diagnostics.add(deep)
        return ParseResult(
            source, ast.Module((), (), span=Span(0, len(source.text))), [], diagnostics
        )
    eng = engine()
    builder = AstBuilder(source, diagnostics)
    outcome = eng.parse(source.text, builder)
    found = [_syntax_diagnostic(problem, source, eng.literal_text) for problem in outcome.problems]
    if found and _stopped_early(outcome.problems, eng.recovery):
        limit = len(outcome.problems)
        found[-1] = replace(
            found[-1],
            notes=(
                *found[-1].notes,
                f"carlang stops reading a file after {limit} syntax errors: the rest of"
                f" {source.name} is not checked; fix these and check it again",
            ),
        )
    diagnostics.extend(found)
    if not source.text.isascii():
        reported = {p.position for p in outcome.problems if p.token is None}
        diagnostics.extend(
            _direction_controls(source, outcome.comments, builder.conditions, reported)
        )
    comments = [ast.Comment(source.text[s:e], span=Span(s, e)) for s, e in outcome.comments]
    module = outcome.value if isinstance(outcome.value, ast.Module) else None
    if module is None and outcome.problems:
        module = ast.Module((), (), span=Span(0, len(source.text)))
    if module is not None and outcome.problems:
        module = _without_cut_declarations(module, outcome.problems, source.text)
    return ParseResult(source, module, comments, diagnostics)


def _stopped_early(problems: list[SyntaxProblem], recovery: Recovery | None) -> bool:
    """Whether the parser gave up at its limit of syntax errors before the end of the text
    (its last error is not at the end): what follows was never read."""
    if recovery is None or len(problems) < recovery.max_errors:
        return False
    last = problems[-1].token
    return last is None or last[0] != END


#: Declarations whose last token is their own block's `}`: once closed, they are whole.
_BLOCK_DECLARATIONS = (
    ast.McpServerDecl,
    ast.StateDecl,
    ast.CapabilityDecl,
    ast.BudgetDecl,
    ast.ProposalDecl,
    ast.PlanDecl,
    ast.TestDecl,
)
#: What may come between a block's `}` and an error that cuts the block short.
_BLANK_OR_COMMENTS = re.compile(r"(?:[ \t]|#[^\n]*)*")
#: A line that starts with code in its first column: a declaration of its own.
_NEW_LINE_OF_CODE = re.compile(r"\n[^\s#]")


def _without_cut_declarations(
    module: ast.Module, problems: list[SyntaxProblem], text: str
) -> ast.Module:
    """`module` without the declarations that a syntax error cuts short. Recovery keeps a
    declaration that was complete when the error came, but complete is not whole: a
    declaration with no block (a policy, a rule, an import, a tool without a body) is
    complete after any of its parts, so an error in a later part (`deny refund whn ...`, an
    indented `mesage` line, a keyword that starts a declaration mid-line) would leave it
    standing without them, and `check` would report what that invented declaration does (a
    policy with no condition denies every call). So is a block closed by a `}` that an error
    follows on its line (`a: int } = 0`: a `}` too many), unless the block is on one line
    (opened there, it is whole). Such a declaration is dropped, as a broken one is, but a tool
    whose signature the error leaves whole (`_whole_signature`). A line with code in its
    first column starts the next declaration (as recovery reads it): an error from there on
    is not this one's."""
    cut: set[int] = set()
    nodes: list[ast.Import | ast.Declaration] = [*module.imports, *module.declarations]
    ends = [node.span.end for node in nodes]
    for problem in problems:
        at = problem.position
        index = bisect.bisect_right(ends, at) - 1
        if index < 0 or at == 0 or text[at - 1] == "\n":
            continue
        node, end = nodes[index], nodes[index].span.end
        if _whole_signature(node, text, at):
            continue
        if _closed_by_block(node, text):
            # (a block opened and closed on one line is whole: `state { a: int = 0 }  // x`)
            one_line = "\n" not in text[node.span.start : end]
            cuts = not one_line and _BLANK_OR_COMMENTS.fullmatch(text, end, at) is not None
        else:
            cuts = _NEW_LINE_OF_CODE.search(text, end, at) is None
        if cuts:
            cut.add(id(node))
    if not cut:
        return module
    return ast.Module(
        tuple(i for i in module.imports if id(i) not in cut),
        tuple(d for d in module.declarations if id(d) not in cut),
        span=module.span,
    )


def _whole_signature(node: ast.Import | ast.Declaration, text: str, at: int) -> bool:
    """Whether `node` is a tool with no block whose parameter list an error at `at` left
    closed as written: nothing after the error on its line closes a parenthesis (`tool t(x:
    int)  // note`, `-> string extra`; not `tool t( ) x: int)`, closed early). What it declares
    is what every other declaration is checked against: dropped, their errors went unsaid,
    and a part of it lost decides nothing, as a policy's lost condition would."""
    if not isinstance(node, ast.ToolDecl) or _closed_by_block(node, text):
        return False
    line_end = text.find("\n", at)
    return ")" not in text[at : len(text) if line_end < 0 else line_end]


def _closed_by_block(node: ast.Import | ast.Declaration, text: str) -> bool:
    """Whether `node` ends with the `}` of its own block (a tool's body, not its return type's
    `{ field: T }`)."""
    if isinstance(node, _BLOCK_DECLARATIONS):
        return True
    if isinstance(node, ast.ToolDecl):
        returns_last = node.returns is not None and node.returns.span.end == node.span.end
        return text[node.span.end - 1] == "}" and not returns_last
    return False
