"""Source text -> `ast.Module`, with syntax errors as diagnostics in words users know.

`AstBuilder` has one method per grammar rule (same name), called by the parse engine for each
reduction with `self.span` set to the characters the rule covers. Literal problems (a bad
escape, a number JSON cannot hold) are reported here too; everything about names and meaning
is for `lower.py`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from carlang_runtime.lalr import Problem as SyntaxProblem
from carlang_runtime.lalr import Token

from . import ast
from .diagnostics import Diagnostic, Diagnostics, Label
from .source import Source, Span
from .syntax import DECLARATION_KEYWORDS, engine

__all__ = ["ParseResult", "parse", "TERMINAL_WORDS"]

_DURATION_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
_DURATION = re.compile(r"([0-9]+)(ms|s|m|h)")

#: How expected terminals are named to users (never lark's internal names).
TERMINAL_WORDS = {
    "IDENT": "a name",
    "STRING": 'a string ("...")',
    "NUMBER": "a number",
    "INT": "a whole number",
    "DURATION": "a duration (500ms, 5s, 2m, 1h)",
    "CEL_TEXT": "a CEL condition",
    "COLUMN": "a column reference ($name)",
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


def _unquote(text: str) -> str:
    return json.loads(text)  # type: ignore[no-any-return]


class AstBuilder:
    """Builds AST nodes; one method per grammar rule, called with the rule's children as
    arguments (after lark's shaping). `span` is set by the engine before each call."""

    def __init__(self, source: Source, diagnostics: Diagnostics) -> None:
        self.file = source  # not `source`: that is a rule name (a proposal's `from`)
        self.diagnostics = diagnostics
        self.span: tuple[int, int] = (0, 0)

    # helpers --------------------------------------------------------------------------------

    def _here(self) -> Span:
        return Span(*self.span)

    @staticmethod
    def _name(token: Token) -> ast.Name:
        return ast.Name(token[1], span=Span(token[2], token[3]))

    def _literal_error(self, token: Token, message: str, help: str | None = None) -> None:
        self.diagnostics.error("CL0104", message, self.file, Span(token[2], token[3]), help=help)

    def _string_value(self, token: Token) -> str:
        try:
            return _unquote(token[1])
        except ValueError:
            self._literal_error(
                token,
                f"invalid escape in string {token[1]}",
                help=r"use JSON escapes: \" \\ \n \t \uXXXX",
            )
            return token[1][1:-1]

    def _duration(self, token: Token) -> ast.Duration:
        match = _DURATION.fullmatch(token[1])
        assert match is not None, token
        return ast.Duration(
            token[1],
            int(match.group(1)) * _DURATION_UNITS[match.group(2)],
            span=Span(token[2], token[3]),
        )

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
        return ast.Value(self._string_value(token), span=self._here())

    def number(self, token: Token) -> ast.Value:
        text = token[1]
        if any(c in text for c in ".eE"):
            value: float | int = float(text)
            if value in (float("inf"), float("-inf")):
                self._literal_error(token, f"number {text} is too large")
                value = 0.0
        else:
            value = int(text)
            if not -(2**63) <= value < 2**64:
                self._literal_error(
                    token, f"integer {text} is out of range", help="JSON numbers fit in 64 bits"
                )
        return ast.Value(value, span=self._here())

    def true(self) -> ast.Value:
        return ast.Value(True, span=self._here())

    def false(self) -> ast.Value:
        return ast.Value(False, span=self._here())

    def null(self) -> ast.Value:
        return ast.Value(None, span=self._here())

    def column(self, token: Token) -> ast.Value:
        return ast.Value(ast.Column(token[1][1:], span=Span(token[2], token[3])), span=self._here())

    def list_value(self, *items: ast.Value | None) -> ast.Value:
        return ast.Value([item.value for item in items if item is not None], span=self._here())

    def map_value(self, *entries: tuple[str, ast.Value] | None) -> ast.Value:
        data: dict[str, Any] = {}
        for entry in entries:
            if entry is None:
                continue
            key, value = entry
            if key in data:
                self.diagnostics.error(
                    "CL0215",
                    f"duplicate key `{key}` in map",
                    self.file,
                    value.span,
                    label="written again here",
                )
            data[key] = value.value
        return ast.Value(data, span=self._here())

    def map_entry(self, key: Token, value: ast.Value) -> tuple[str, ast.Value]:
        text = self._string_value(key) if key[0] == "STRING" else key[1]
        return text, value

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
        return ast.Cache(self._duration(ttl), span=self._here())

    def rate(self, calls: Token, per: Token) -> ast.Rate:
        return ast.Rate(int(calls[1]), self._duration(per), span=self._here())

    def reversibility(self, word: ast.Name) -> ast.ReversibilityItem:
        return ast.ReversibilityItem(word, span=self._here())

    def queue(self, name: Token) -> ast.QueueItem:
        return ast.QueueItem(self._name(name), span=self._here())

    def simple_type(self, name: Token) -> ast.SimpleType:
        return ast.SimpleType(self._name(name), span=self._here())

    def list_type(self, item: ast.TypeExpr) -> ast.ListType:
        return ast.ListType(item, span=self._here())

    def map_type(self, item: ast.TypeExpr) -> ast.MapType:
        return ast.MapType(item, span=self._here())

    def enum_type(self, *options: Token) -> ast.EnumType:
        values = tuple(ast.Value(self._string_value(o), span=Span(o[2], o[3])) for o in options)
        return ast.EnumType(values, span=self._here())

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
        return ast.MaxActions(int(count[1]), span=self._here())

    def max_tool_calls(self, count: Token) -> ast.MaxToolCalls:
        return ast.MaxToolCalls(int(count[1]), span=self._here())

    def max_duration(self, duration: Token) -> ast.MaxDuration:
        return ast.MaxDuration(self._duration(duration), span=self._here())

    # policies -------------------------------------------------------------------------------

    def policy_decl(
        self,
        name: Token,
        shadow: ast.Name | None,
        effect: ast.Name,
        targets: tuple[ast.Name, ...] | None,
        when: ast.CelText | None,
        message: ast.Value | None,
    ) -> ast.PolicyDecl:
        return ast.PolicyDecl(
            self._name(name),
            effect,
            targets or (),
            when,
            message,
            shadow is not None,
            span=self._here(),
        )

    def when(self, text: Token) -> ast.CelText:
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
            self._name(tool), int(calls[1]), self._duration(per), message, span=self._here()
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
        return ast.ActionDecl(self._name(name), kind, after or (), body, span=self._here())

    def call(self, tool: Token, *args: ast.Arg | None) -> ast.Call:
        return ast.Call(self._name(tool), self._values(args), span=self._here())

    def arg(self, name: Token, value: ast.Value) -> ast.Arg:
        return ast.Arg(self._name(name), value, span=self._here())

    def set_state(self, key: Token, value: ast.Value) -> ast.SetState:
        return ast.SetState(self._name(key), value, span=self._here())

    def read_state(self, key: Token) -> ast.ReadState:
        return ast.ReadState(self._name(key), span=self._here())

    def assert_state(self, condition: ast.Condition) -> ast.AssertState:
        return ast.AssertState(condition, span=self._here())

    def after(self, *names: Token) -> tuple[ast.Name, ...]:
        return tuple(self._name(n) for n in names)

    def action_body(self, *items: Any) -> tuple[Any, ...]:
        return tuple(
            ast.ReversibilityItem(item, span=item.span) if isinstance(item, ast.Name) else item
            for item in items
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
        return ast.Effects(entries, span=self._here())

    def effect(self, key: Token, value: ast.Value) -> ast.Effect:
        return ast.Effect(self._name(key), value, span=self._here())

    def retry(self, count: Token) -> ast.Retry:
        return ast.Retry(int(count[1]), span=self._here())

    def on_failure(self, word: ast.Name) -> ast.OnFailure:
        return ast.OnFailure(word, span=self._here())

    def timeout(self, duration: Token) -> ast.Timeout:
        return ast.Timeout(self._duration(duration), span=self._here())

    def compensate(self, call: ast.Call) -> ast.Compensate:
        return ast.Compensate(call, span=self._here())

    def compensate_with(self, name: Token) -> ast.CompensateWith:
        return ast.CompensateWith(self._name(name), span=self._here())

    def meta(self, data: ast.Value) -> ast.Meta:
        return ast.Meta(data, span=self._here())

    def mode(self, word: ast.Name) -> ast.Mode:
        return ast.Mode(word, span=self._here())

    def compare(self, key: Token, op: ast.Name, value: ast.Value) -> ast.Condition:
        return ast.Condition(self._name(key), op.text, value, span=self._here())

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
        return ast.CostWeight(self.number(value), span=self._here())

    def target(self, *items: ast.TargetItem) -> ast.Target:
        return ast.Target(items, span=self._here())

    def target_tool_calls(self, count: Token) -> ast.TargetItem:
        return ast.TargetItem("tool_calls", int(count[1]), None, span=self._here())

    def target_actions(self, count: Token) -> ast.TargetItem:
        return ast.TargetItem("actions", int(count[1]), None, span=self._here())

    def target_duration(self, duration: Token) -> ast.TargetItem:
        return ast.TargetItem("duration", None, self._duration(duration), span=self._here())

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
        return tuple(c if isinstance(c, ast.Value) else self._name(c) for c in cells)

    # keyword sets ---------------------------------------------------------------------------

    def _keyword(self, token: Token) -> ast.Name:
        return self._name(token)

    policy_effect = decision_word = validity_word = reversibility_word = _keyword
    failure_word = mode_word = comparison = shadow_word = _keyword


# -- syntax errors -----------------------------------------------------------------------------

_CLOSERS = {"{": "}", "(": ")", "[": "]"}


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
    kind, text = token[0].removeprefix("misplaced:"), token[1]
    if kind == "$END":
        return "end of file"
    if kind in ("IDENT",):
        return f"name `{text}`"
    if kind == "STRING":
        return f"string {text}"
    return f"`{text}`"


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
    if text == "=" and "==" in expected_text:
        return "comparisons use `==`"
    if kind == "IDENT" and "STRING" in problem.expected and "IDENT" not in problem.expected:
        return f'strings need double quotes: "{text}"'
    if "," in expected_text and kind in ("IDENT", "STRING", "NUMBER") and problem.after is not None:
        return "separate items with `,`"
    if text == "import":
        return "imports must come before all declarations"
    return None


def _syntax_diagnostic(
    problem: SyntaxProblem, source: Source, literal: dict[str, str]
) -> Diagnostic:
    expected = _expected_words(problem.expected, literal)
    token = problem.token
    if token is None:
        char = source.text[problem.position : problem.position + 1]
        shown = repr(char)[1:-1] if char.isprintable() else f"U+{ord(char):04X}"
        span = Span(problem.position, problem.position + 1)
        return Diagnostic(
            "CL0101",
            "error",
            f"unexpected character `{shown}`",
            (Label(source, span, f"expected {expected}"),),
            _syntax_help(problem, source, literal),
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
            notes = (f"close it with `{_CLOSERS[bracket]}`",)
        return Diagnostic(
            "CL0103",
            "error",
            message,
            (Label(source, span, f"expected {expected}"), *related),
            None,
            notes,
        )
    span = Span(token[2], token[3])
    return Diagnostic(
        "CL0102",
        "error",
        f"unexpected {_token_words(token)}",
        (Label(source, span, f"expected {expected}"),),
        _syntax_help(problem, source, literal),
    )


def parse(source: Source) -> ParseResult:
    """Parse one file. Syntax errors become diagnostics (parsing resumes at the next
    declaration); the module holds every declaration that parsed."""
    diagnostics = Diagnostics()
    eng = engine()
    builder = AstBuilder(source, diagnostics)
    outcome = eng.parse(source.text, builder)
    for problem in outcome.problems:
        diagnostics.add(_syntax_diagnostic(problem, source, eng.literal_text))
    comments = [ast.Comment(source.text[s:e], span=Span(s, e)) for s, e in outcome.comments]
    module = outcome.value if isinstance(outcome.value, ast.Module) else None
    if module is None and outcome.problems:
        module = ast.Module((), (), span=Span(0, len(source.text)))
    return ParseResult(source, module, comments, diagnostics)
