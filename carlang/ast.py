"""The source-level syntax tree: one node class per grammar construct, as written.

Nodes keep what the author wrote (names with their spans, literal values, durations as text
and milliseconds) so that diagnostics can point at it and `fmt` can print it back. Spans are
metadata: they take no part in equality, so two trees that differ only in layout are equal.
Nodes are never modified after parsing (they are not frozen only because frozen dataclasses
cost twice as much to define and to build, which shows in `carlang check`'s start-up).
Lowering to the IR (`lower.py`) is where names are resolved and defaults applied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

from .source import NO_SPAN, Span

__all__ = [
    "compared_fields",
    "Node",
    "Name",
    "Value",
    "Column",
    "Duration",
    "CelText",
    "Comment",
    "SimpleType",
    "ListType",
    "MapType",
    "EnumType",
    "TypeExpr",
    "Param",
    "Description",
    "Idempotent",
    "Cache",
    "Rate",
    "ReversibilityItem",
    "QueueItem",
    "ToolDecl",
    "StateEntry",
    "StateDecl",
    "ToolsAllow",
    "ToolsDeny",
    "StateAllow",
    "MaxActions",
    "MaxToolCalls",
    "MaxDuration",
    "CapabilityDecl",
    "BudgetDecl",
    "PolicyDecl",
    "DenyToolDecl",
    "RedactDecl",
    "DenyKeywordDecl",
    "DenyToolParamDecl",
    "AllowToolParamDecl",
    "DenyToolParamMatchingDecl",
    "RateLimitToolDecl",
    "RequireStateDecl",
    "RuleDecl",
    "Arg",
    "Call",
    "SetState",
    "ReadState",
    "Condition",
    "AssertState",
    "ActionKind",
    "Requires",
    "Reads",
    "Effect",
    "Effects",
    "Retry",
    "OnFailure",
    "Timeout",
    "Compensate",
    "CompensateWith",
    "Meta",
    "Mode",
    "ActionItem",
    "ActionDecl",
    "ContextDecl",
    "ProposalDecl",
    "Candidates",
    "CostWeight",
    "TargetItem",
    "Target",
    "Setting",
    "PlanDecl",
    "GivenAction",
    "GivenState",
    "GivenScope",
    "GivenNow",
    "GivenHistory",
    "GivenProposal",
    "GivenPlan",
    "Expect",
    "Where",
    "TestItem",
    "TestDecl",
    "Import",
    "Declaration",
    "Module",
]


_COMPARED: dict[type, tuple[str, ...]] = {}
#: Fields that say where things were written, not what: equality and repr ignore them.
_WHERE_WRITTEN = frozenset({"span", "parts"})


def compared_fields(cls: type) -> tuple[str, ...]:
    """The fields of node class `cls` that say what was written (all but where: `span`,
    `parts`): those equality compares and a walk over a tree's content visits."""
    names = _COMPARED.get(cls)
    if names is None:
        names = _COMPARED[cls] = tuple(f.name for f in fields(cls) if f.name not in _WHERE_WRITTEN)
    return names


@dataclass(slots=True, repr=False, eq=False)
class Node:
    """Base of all nodes: a span that equality ignores.

    Equality and repr are written once here rather than generated for each of the ~80 node
    classes: generating them costs about half of `carlang check`'s time spent defining them.
    """

    span: Span = field(default=NO_SPAN, kw_only=True)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(
            getattr(self, name) == getattr(other, name) for name in compared_fields(type(self))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in compared_fields(type(self)))
        return f"{type(self).__name__}({shown})"


@dataclass(slots=True, repr=False, eq=False)
class Name(Node):
    """An identifier as written: a name, a dotted key, a glob pattern or a code."""

    text: str


@dataclass(slots=True, repr=False, eq=False)
class Column(Node):
    """A table column reference in a test (`$url`)."""

    name: str


@dataclass(slots=True, repr=False, eq=False)
class Value(Node):
    """A literal: JSON-like data (lists and dicts of plain values, `Column` for `$x`).

    `parts`, for a list or a map written in the source, holds the literals of its items (by
    position) or entries (by key), so that a finding about `trip.legs[1].to` points at the
    `to` it is about (`part_span`); like the span, it takes no part in equality."""

    value: Any
    parts: tuple[Value, ...] | dict[str, Value] | None = field(default=None, kw_only=True)

    def part_span(self, path: str) -> Span:
        """The span of the part of this literal at `path` (`.legs[1].to`, as a parameter
        finding names it), or of the deepest part of it that was written (this literal's
        own span when none was)."""
        found, rest = self, path
        while rest and found.parts is not None:
            step = _next_part(found.parts, rest)
            if step is None:
                break
            found, rest = step
        return found.span


def _next_part(parts: tuple[Value, ...] | dict[str, Value], path: str) -> tuple[Value, str] | None:
    """The part `path` begins with (`[1]` of a list, `.key` of a map: the longest key that
    is followed by the end, `.` or `[`, as keys may hold either) and the rest of `path`."""
    if isinstance(parts, tuple):
        index, closing = path[1:].partition("]")[::2] if path.startswith("[") else ("", "")
        if index.isascii() and index.isdigit() and int(index) < len(parts):
            return parts[int(index)], closing
        return None
    if not path.startswith("."):
        return None
    for key in sorted(parts, key=len, reverse=True):
        rest = path[1 + len(key) :]
        if path[1:].startswith(key) and (not rest or rest[0] in ".["):
            return parts[key], rest
    return None


@dataclass(slots=True, repr=False, eq=False)
class Duration(Node):
    """A duration as written (`500ms`, `5s`, `2m`, `1h`) and its milliseconds."""

    text: str
    ms: int


@dataclass(slots=True, repr=False, eq=False)
class CelText(Node):
    """A CEL condition's text as written (`fmt` keeps it so); its span locates CEL errors in
    the file. `cel` is the text the CEL parser reads."""

    text: str

    @property
    def cel(self) -> str:
        """The condition without its `#` comments (each blanked to spaces, so that offsets
        into it are offsets into `text`): CEL has no `#` comments."""
        if "#" not in self.text:
            return self.text
        return _CEL_PIECES.sub(_blank_comment, self.text)


#: A CEL string (kept whole: a `#` in it is text) or a `#` comment.
_CEL_PIECES = re.compile(r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|#[^\n]*""")


def _blank_comment(piece: re.Match[str]) -> str:
    text = piece.group()
    return " " * len(text) if text.startswith("#") else text


@dataclass(slots=True, repr=False, eq=False)
class Comment(Node):
    """A `#` comment, kept for `fmt`."""

    text: str


# -- types -------------------------------------------------------------------------------------


@dataclass(slots=True, repr=False, eq=False)
class SimpleType(Node):
    """`string`, `int`, `float`, `bool`, `any`, `object`, with bounds: `int(min: 0)`."""

    name: Name
    bounds: tuple[tuple[Name, Value], ...] = ()


@dataclass(slots=True, repr=False, eq=False)
class ListType(Node):
    """`list[T]`."""

    item: TypeExpr


@dataclass(slots=True, repr=False, eq=False)
class MapType(Node):
    """`map[T]`: an object with string keys and values of type T."""

    item: TypeExpr


@dataclass(slots=True, repr=False, eq=False)
class EnumType(Node):
    """`"a" | "b"`: one of these strings."""

    options: tuple[Value, ...]


@dataclass(slots=True, repr=False, eq=False)
class ObjectType(Node):
    """`{ name: T, other?: U = default }`: an object with these fields."""

    fields: tuple[Param, ...]


@dataclass(slots=True, repr=False, eq=False)
class UnionType(Node):
    """`T | U`: a value of any of these types (all string literals: an `EnumType`)."""

    options: tuple[TypeExpr, ...]


TypeExpr = SimpleType | ListType | MapType | EnumType | ObjectType | UnionType


# -- tools -------------------------------------------------------------------------------------


@dataclass(slots=True, repr=False, eq=False)
class Param(Node):
    """`name?: type secret = default` (`secret`: the value never appears in logs or messages)."""

    name: Name
    optional: bool
    type: TypeExpr
    default: Value | None
    secret: bool = False


@dataclass(slots=True, repr=False, eq=False)
class Description(Node):
    """`description "..."`."""

    text: Value


@dataclass(slots=True, repr=False, eq=False)
class Idempotent(Node):
    """`idempotent`."""


@dataclass(slots=True, repr=False, eq=False)
class Cache(Node):
    """`cache 60s`."""

    ttl: Duration


@dataclass(slots=True, repr=False, eq=False)
class Rate(Node):
    """`rate 5 per 1m`."""

    calls: int
    per: Duration


@dataclass(slots=True, repr=False, eq=False)
class ReversibilityItem(Node):
    """`reversibility compensable`."""

    word: Name


@dataclass(slots=True, repr=False, eq=False)
class QueueItem(Node):
    """`queue gpu`: the tool's calls go to the workers of that queue (durable backends)."""

    name: Name


@dataclass(slots=True, repr=False, eq=False)
class ReadOnly(Node):
    """`read_only`: the tool only reads."""


@dataclass(slots=True, repr=False, eq=False)
class ToolSchemaItem(Node):
    """`schema { ... }`: the parameters as a JSON Schema written out."""

    schema: Value


@dataclass(slots=True, repr=False, eq=False)
class ToolSchemaFrom(Node):
    """`schema from "file.json#/pointer"`: the parameters from a JSON Schema document."""

    reference: Value


@dataclass(slots=True, repr=False, eq=False)
class RemoteName(Node):
    """`remote "name"`: the tool's name on its MCP server."""

    name: Value


ToolItem = (
    Description
    | Idempotent
    | Cache
    | Rate
    | ReversibilityItem
    | QueueItem
    | ReadOnly
    | ToolSchemaItem
    | ToolSchemaFrom
    | RemoteName
)


@dataclass(slots=True, repr=False, eq=False)
class ToolDecl(Node):
    """`tool name(params) -> returns { items }`."""

    name: Name
    params: tuple[Param, ...]
    returns: TypeExpr | None
    items: tuple[ToolItem, ...]


# -- MCP servers -------------------------------------------------------------------------------


@dataclass(slots=True, repr=False, eq=False)
class MapEntry(Node):
    """One `key: value` of a map, with where its key is written (kept for the maps whose
    entries are checked one by one: an `mcp_server`'s `headers`)."""

    key: Name
    value: Value


@dataclass(slots=True, repr=False, eq=False)
class McpSetting(Node):
    """One line of an `mcp_server` block: `command`, `args`, `env`, `cwd`, `url`, `headers`
    (a `Value`) or `timeout` (a `Duration`). `entries`: the map's entries as written, for
    `headers` (each checked at its own place)."""

    word: str
    value: Value | Duration
    entries: tuple[MapEntry, ...] = ()


@dataclass(slots=True, repr=False, eq=False)
class McpServerDecl(Node):
    """`mcp_server name { command "..." args [...] env {...} cwd "..." | url "..." headers {...}
    }`."""

    name: Name
    settings: tuple[McpSetting, ...]


# -- state, capabilities, budgets --------------------------------------------------------------


@dataclass(slots=True, repr=False, eq=False)
class StateEntry(Node):
    """`key: type = initial`."""

    key: Name
    type: TypeExpr
    default: Value | None


@dataclass(slots=True, repr=False, eq=False)
class StateDecl(Node):
    """`state { entries }`."""

    entries: tuple[StateEntry, ...]


@dataclass(slots=True, repr=False, eq=False)
class ToolsAllow(Node):
    """`tools allow a, b [deny c]`."""

    allow: tuple[Name, ...]
    deny: tuple[Name, ...]


@dataclass(slots=True, repr=False, eq=False)
class ToolsDeny(Node):
    """`tools deny c`."""

    deny: tuple[Name, ...]


@dataclass(slots=True, repr=False, eq=False)
class StateAllow(Node):
    """`state allow k, build.*`."""

    allow: tuple[Name, ...]


@dataclass(slots=True, repr=False, eq=False)
class MaxActions(Node):
    """`max_actions N`."""

    count: int


@dataclass(slots=True, repr=False, eq=False)
class MaxToolCalls(Node):
    """`max_tool_calls N`."""

    count: int


@dataclass(slots=True, repr=False, eq=False)
class MaxDuration(Node):
    """`max_duration 5m`."""

    duration: Duration


@dataclass(slots=True, repr=False, eq=False)
class CapabilityDecl(Node):
    """`capability name { items }`."""

    name: Name
    items: tuple[ToolsAllow | ToolsDeny | StateAllow | MaxActions, ...]


@dataclass(slots=True, repr=False, eq=False)
class BudgetDecl(Node):
    """`budget name { items }`."""

    name: Name
    items: tuple[MaxActions | MaxToolCalls | MaxDuration, ...]


# -- policies ----------------------------------------------------------------------------------


@dataclass(slots=True, repr=False, eq=False)
class PolicyDecl(Node):
    """`policy name: effect targets when CEL message "..."`."""

    name: Name
    effect: Name
    targets: tuple[Name, ...]
    when: CelText | None
    message: Value | None
    #: `policy p: shadow deny ...`: recorded, never enforced
    shadow: bool = False
    #: `approval_timeout 2h`: how long a durable approval of this policy may wait
    approval_timeout: Duration | None = None


@dataclass(slots=True, repr=False, eq=False)
class DenyToolDecl(Node):
    """`deny_tool a, b`."""

    tools: tuple[Name, ...]
    message: Value | None


@dataclass(slots=True, repr=False, eq=False)
class DenyKeywordDecl(Node):
    """`deny_keyword ["..."]`."""

    keywords: Value
    message: Value | None


@dataclass(slots=True, repr=False, eq=False)
class DenyToolParamDecl(Node):
    """`deny_tool_param tool.param [equals V | contains S]`."""

    target: Name
    test: str | None
    operand: Value | None
    message: Value | None


@dataclass(slots=True, repr=False, eq=False)
class AllowToolParamDecl(Node):
    """`allow_tool_param tool.param [values]`."""

    target: Name
    allowed: Value
    message: Value | None


@dataclass(slots=True, repr=False, eq=False)
class DenyToolParamMatchingDecl(Node):
    """`deny_tool_param_matching tool.param "regex"`."""

    target: Name
    pattern: Value
    message: Value | None


@dataclass(slots=True, repr=False, eq=False)
class RateLimitToolDecl(Node):
    """`rate_limit_tool tool N per 1m`."""

    tool: Name
    calls: int
    per: Duration
    message: Value | None


@dataclass(slots=True, repr=False, eq=False)
class RequireStateDecl(Node):
    """`require_state key == value`."""

    key: Name
    value: Value
    message: Value | None


@dataclass(slots=True, repr=False, eq=False)
class RedactDecl(Node):
    """`redact params.card_number, params.cards.*.cvv`."""

    paths: tuple[Name, ...]


RuleDecl = (
    DenyToolDecl
    | DenyKeywordDecl
    | DenyToolParamDecl
    | AllowToolParamDecl
    | DenyToolParamMatchingDecl
    | RateLimitToolDecl
    | RequireStateDecl
)


# -- proposals ---------------------------------------------------------------------------------


@dataclass(slots=True, repr=False, eq=False)
class Arg(Node):
    """`name: value` in a call."""

    name: Name
    value: Value


@dataclass(slots=True, repr=False, eq=False)
class Call(Node):
    """`tool(args)`."""

    tool: Name
    args: tuple[Arg, ...]


@dataclass(slots=True, repr=False, eq=False)
class SetState(Node):
    """`set key = value` (a state_write)."""

    key: Name
    value: Value


@dataclass(slots=True, repr=False, eq=False)
class ReadState(Node):
    """`read key` (a state_read)."""

    key: Name


@dataclass(slots=True, repr=False, eq=False)
class Condition(Node):
    """`key OP value`, `key contains value`, `exists key`, `not exists key`; `op` is one of
    `==` `!=` `>` `<` `>=` `<=` `contains` `exists` `not_exists`."""

    key: Name
    op: str
    value: Value | None


@dataclass(slots=True, repr=False, eq=False)
class AssertState(Node):
    """`assert condition`."""

    condition: Condition


ActionKind = Call | SetState | ReadState | AssertState


@dataclass(slots=True, repr=False, eq=False)
class Requires(Node):
    """`requires condition ["description"]`."""

    condition: Condition
    description: Value | None


@dataclass(slots=True, repr=False, eq=False)
class Reads(Node):
    """`reads k, j`."""

    keys: tuple[Name, ...]


@dataclass(slots=True, repr=False, eq=False)
class Effect(Node):
    """`key = value` in `effects { }`."""

    key: Name
    value: Value


@dataclass(slots=True, repr=False, eq=False)
class Effects(Node):
    """`effects { ... }`."""

    entries: tuple[Effect, ...]


@dataclass(slots=True, repr=False, eq=False)
class Retry(Node):
    """`retry N`: retry up to N times."""

    count: int


@dataclass(slots=True, repr=False, eq=False)
class OnFailure(Node):
    """`on_failure abort|retry|skip`."""

    word: Name


@dataclass(slots=True, repr=False, eq=False)
class Timeout(Node):
    """`timeout 5s`."""

    duration: Duration


@dataclass(slots=True, repr=False, eq=False)
class Compensate(Node):
    """`compensate tool(args)`."""

    call: Call


@dataclass(slots=True, repr=False, eq=False)
class CompensateWith(Node):
    """`compensate with action`."""

    action: Name


@dataclass(slots=True, repr=False, eq=False)
class Meta(Node):
    """`meta { ... }`."""

    data: Value


@dataclass(slots=True, repr=False, eq=False)
class Mode(Node):
    """`mode streaming`."""

    word: Name


ActionItem = (
    Requires
    | Reads
    | Effects
    | Retry
    | OnFailure
    | Timeout
    | Idempotent
    | ReversibilityItem
    | Compensate
    | CompensateWith
    | Meta
    | Mode
)


@dataclass(slots=True, repr=False, eq=False)
class ActionDecl(Node):
    """`name = kind [after a, b] [{ items }]`."""

    name: Name
    kind: ActionKind
    after: tuple[Name, ...]
    items: tuple[ActionItem, ...] | None


@dataclass(slots=True, repr=False, eq=False)
class ContextDecl(Node):
    """`context { ... }` in a proposal."""

    data: Value


@dataclass(slots=True, repr=False, eq=False)
class ProposalDecl(Node):
    """`proposal name [from "source"] [under a, b] { items }`."""

    name: Name
    source: Value | None
    under: tuple[Name, ...]
    items: tuple[ActionDecl | ContextDecl, ...]


# -- plans -------------------------------------------------------------------------------------


@dataclass(slots=True, repr=False, eq=False)
class Candidates(Node):
    """`candidates a, b`."""

    names: tuple[Name, ...]


@dataclass(slots=True, repr=False, eq=False)
class CostWeight(Node):
    """`cost_weight 0.3`."""

    value: Value


@dataclass(slots=True, repr=False, eq=False)
class TargetItem(Node):
    """`tool_calls 5`, `actions 10` or `duration 5s` in a plan target."""

    kind: str
    count: int | None
    duration: Duration | None


@dataclass(slots=True, repr=False, eq=False)
class Target(Node):
    """`target tool_calls 5, actions 10, duration 5s`."""

    items: tuple[TargetItem, ...]


@dataclass(slots=True, repr=False, eq=False)
class Setting(Node):
    """`set name = number`: a planner weight."""

    name: Name
    value: Value


@dataclass(slots=True, repr=False, eq=False)
class PlanDecl(Node):
    """`plan name { items }`."""

    name: Name
    items: tuple[Candidates | CostWeight | Target | Setting, ...]


# -- tests -------------------------------------------------------------------------------------


@dataclass(slots=True, repr=False, eq=False)
class GivenAction(Node):
    """`action tool(args)` or `action set k = v` in a test."""

    kind: ActionKind


@dataclass(slots=True, repr=False, eq=False)
class GivenState(Node):
    """`state { ... }` in a test."""

    data: Value


@dataclass(slots=True, repr=False, eq=False)
class GivenScope(Node):
    """`scope { ... }` in a test."""

    data: Value


@dataclass(slots=True, repr=False, eq=False)
class GivenNow(Node):
    """`now "2026-01-05T10:00:00Z"` (or `now $column`) in a test: the time policies see;
    `time.value` is the string, or a `Column`."""

    time: Value


@dataclass(slots=True, repr=False, eq=False)
class GivenHistory(Node):
    """`history [ ... ]` in a test."""

    data: Value


@dataclass(slots=True, repr=False, eq=False)
class GivenProposal(Node):
    """`proposal name` in a test."""

    name: Name


@dataclass(slots=True, repr=False, eq=False)
class GivenPlan(Node):
    """`plan name` in a test."""

    name: Name


@dataclass(slots=True, repr=False, eq=False)
class Expect(Node):
    """`expect ...`: `kind` is `decision` (with `word` a decision or column and optional `by`;
    `shadow`: what the shadow policies decide), `validity` (`word` valid/invalid), `codes`
    (`codes`), or `winner` (`word`)."""

    kind: str
    word: Name | Column | None = None
    by: Name | Column | None = None
    codes: tuple[Name, ...] = ()
    shadow: bool = False


@dataclass(slots=True, repr=False, eq=False)
class Where(Node):
    """`where | a | b | ...`: a table; the first row names the columns."""

    rows: tuple[tuple[Value | Name, ...], ...]


TestItem = (
    GivenAction
    | GivenState
    | GivenScope
    | GivenNow
    | GivenHistory
    | GivenProposal
    | GivenPlan
    | Expect
    | Where
)


@dataclass(slots=True, repr=False, eq=False)
class TestDecl(Node):
    """`test "name" { items }`."""

    name: Value
    items: tuple[TestItem, ...]


# -- module ------------------------------------------------------------------------------------


@dataclass(slots=True, repr=False, eq=False)
class Import(Node):
    """`import "path"`."""

    path: Value


Declaration = (
    ToolDecl
    | McpServerDecl
    | StateDecl
    | CapabilityDecl
    | BudgetDecl
    | PolicyDecl
    | RuleDecl
    | RedactDecl
    | ProposalDecl
    | PlanDecl
    | TestDecl
)


@dataclass(slots=True, repr=False, eq=False)
class Module(Node):
    """One file: its imports and declarations, in order."""

    imports: tuple[Import, ...]
    declarations: tuple[Declaration, ...]
