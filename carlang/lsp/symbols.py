"""Every name in a parsed file, with what it names: the index behind hover, go to definition,
find references, rename and the outline.

A symbol is `(kind, name)`: `tool`, `param` (`tool(param)`), `state` (a key or a key pattern),
`policy`, `capability`, `budget`, `proposal`, `action` (`proposal/action`), `plan`, `import`
(the imported path, resolved). An occurrence is one place the symbol is written, and says
whether it defines the symbol and, for state keys, whether it reads or writes it.

Names are also read where they are not declared names: in a policy's CEL condition
(`params.url`, `state["build.ok"]`, `action.tool == "fetch"`), a redaction's path
(`params.card`), a rule's `tool.param`, a test's `state { key: ... }`, the `tool` and the
`params` keys of the entries of its `history [...]`, `expect ... by "policy"` and the cells of
a table that fill `by $column`, `winner $column` or a history entry's `tool: $column`. A
parameter read through `params` names no tool by itself: it is `("param_use", "url")`, and
which tools' `url` it is depends on the tools its policy targets (`Features` settles it with
the project's tools). A test of a tool's name in a condition (`action.tool.startsWith("fs.")`)
names every tool that passes it: it is `("tool_prefix", "fs.")` (see `TOOL_TESTS`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from carlang_runtime.cel import CelSyntaxError
from carlang_runtime.cel import nodes as cel
from carlang_runtime.cel.build import parse as parse_cel
from carlang_runtime.cel.functions import matches
from carlang_runtime.cel.values import CelEvalError

from .. import ast
from ..source import Span

__all__ = [
    "Occurrence",
    "SymbolKey",
    "TOOL_TESTS",
    "occurrences",
    "occurrence_at",
    "passes_tool_test",
    "state_key_matches",
]

SymbolKey = tuple[str, str]
Role = Literal["definition", "reference", "read", "write"]
#: How a name is written: as a name (""), inside a string literal ("string": any name can be
#: written there), or as a CEL field (`state.ready`, "field": only a plain name can).
Form = Literal["", "string", "field"]


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One name in a file: the symbol it names, its span, its role, and the declaration node
    it belongs to (for hover)."""

    key: SymbolKey
    span: Span
    role: Role
    node: ast.Node
    form: Form = ""
    #: For a `param_use`, the tools (names or globs) whose parameter it reads when that is not
    #: its declaration's: `h.params.url` for `h` an entry of `history` reads the parameter of
    #: the tools `h.tool` is pinned to in its condition, or of any tool (`("*",)`).
    over: tuple[str, ...] | None = None

    @property
    def is_definition(self) -> bool:
        """Whether this occurrence declares the symbol."""
        return self.role == "definition"


def state_key_matches(pattern: str, key: str) -> bool:
    """Whether a state key (`deployed.prod`) is covered by a declared key or pattern
    (`deployed.*`): a `*` stands for one or more dotted parts."""
    if pattern == key:
        return True
    if not pattern.endswith(".*"):
        return False
    return key.startswith(pattern[:-1]) and len(key) > len(pattern) - 1


#: The CEL functions that test a tool's name (`action.tool.startsWith("fs.")`, `h.tool` for
#: `h` over `history` too), and the kind of symbol their string argument is: it names no tool
#: by itself, but every tool that passes the test (`passes_tool_test`).
TOOL_TESTS = {
    "startsWith": "tool_prefix",
    "endsWith": "tool_suffix",
    "contains": "tool_part",
    "matches": "tool_regex",
}


def passes_tool_test(kind: str, argument: str, tool: str) -> bool | None:
    """Whether the name `tool` passes the test of a tool's name `(kind, argument)`
    (`("tool_prefix", "fs.")`: `startsWith("fs.")`); None when `kind` is no such test, or its
    pattern is not a regular expression (no name passes it: the condition fails)."""
    if kind == "tool_prefix":
        return tool.startswith(argument)
    if kind == "tool_suffix":
        return tool.endswith(argument)
    if kind == "tool_part":
        return argument in tool
    if kind == "tool_regex":
        try:
            return matches(tool, argument)
        except CelEvalError:
            return None
    return None


def occurrences(module: ast.Module, text: str | None = None) -> list[Occurrence]:
    """Every name in `module`, in source order (given the file's `text`, also the names in
    its tests' `state { }` and `history [ ]`, which the syntax tree keeps as values without
    positions)."""
    found = list(_module(module))
    if text is not None:
        found += _given_values(module, text)
    found.sort(key=lambda o: o.span.start)
    return found


def occurrence_at(module: ast.Module, offset: int, text: str | None = None) -> Occurrence | None:
    """The name at character `offset` (also just after its last character)."""
    best: Occurrence | None = None
    for occurrence in occurrences(module, text):
        if occurrence.span.start <= offset <= occurrence.span.end:
            best = occurrence
            if offset < occurrence.span.end:
                break
    return best


def _o(
    kind: str, name: ast.Name, role: Role, node: ast.Node, text: str | None = None
) -> Occurrence:
    return Occurrence((kind, text if text is not None else name.text), name.span, role, node)


def _module(module: ast.Module) -> Iterator[Occurrence]:
    for imported in module.imports:
        path = imported.path
        yield Occurrence(("import", str(path.value)), path.span, "reference", imported)
    for decl in module.declarations:
        yield from _declaration(decl)


def _declaration(decl: ast.Declaration) -> Iterator[Occurrence]:
    if isinstance(decl, ast.ToolDecl):
        yield _o("tool", decl.name, "definition", decl)
        for param in decl.params:
            yield _o(
                "param", param.name, "definition", decl, f"{decl.name.text}({param.name.text})"
            )
    elif isinstance(decl, ast.StateDecl):
        for entry in decl.entries:
            yield _o("state", entry.key, "definition", entry)
    elif isinstance(decl, ast.CapabilityDecl):
        yield _o("capability", decl.name, "definition", decl)
        yield from _capability_items(decl)
    elif isinstance(decl, ast.BudgetDecl):
        yield _o("budget", decl.name, "definition", decl)
    elif isinstance(decl, ast.PolicyDecl):
        yield _o("policy", decl.name, "definition", decl)
        for target in decl.targets:
            yield _o("tool", target, "reference", decl)
        if decl.when is not None:
            start = decl.when.span.start
            for kind, read, begin, end, form, over in cel_names(decl.when.cel):
                role: Role = "read" if kind in ("state", "param_use") else "reference"
                span = Span(start + begin, start + end)
                yield Occurrence((kind, read), span, role, decl, form, over)
    elif isinstance(decl, ast.ProposalDecl):
        yield from _proposal(decl)
    elif isinstance(decl, ast.PlanDecl):
        yield _o("plan", decl.name, "definition", decl)
        for item in decl.items:
            if isinstance(item, ast.Candidates):
                for name in item.names:
                    yield _o("proposal", name, "reference", decl)
    elif isinstance(decl, ast.TestDecl):
        yield from _test(decl)
    elif isinstance(decl, ast.McpServerDecl):
        yield _o("mcp_server", decl.name, "definition", decl)
    elif isinstance(decl, ast.RedactDecl):
        yield from _redacted_params(decl)
    else:
        yield from _rule(decl)


def _capability_items(decl: ast.CapabilityDecl) -> Iterator[Occurrence]:
    for item in decl.items:
        if isinstance(item, ast.ToolsAllow):
            for name in (*item.allow, *item.deny):
                yield _o("tool", name, "reference", decl)
        elif isinstance(item, ast.ToolsDeny):
            for name in item.deny:
                yield _o("tool", name, "reference", decl)
        elif isinstance(item, ast.StateAllow):
            for name in item.allow:
                yield _o("state", name, "reference", decl)


def _rule(decl: ast.RuleDecl) -> Iterator[Occurrence]:
    if isinstance(decl, ast.DenyToolDecl):
        for name in decl.tools:
            yield _o("tool", name, "reference", decl)
    elif isinstance(
        decl, (ast.DenyToolParamDecl, ast.AllowToolParamDecl, ast.DenyToolParamMatchingDecl)
    ):
        tool, _, param = decl.target.text.rpartition(".")
        if tool:
            start = decl.target.span.start
            yield Occurrence(("tool", tool), Span(start, start + len(tool)), "reference", decl)
            at = start + len(tool) + 1
            key = ("param", f"{tool}({param})")
            yield Occurrence(key, Span(at, at + len(param)), "reference", decl)
    elif isinstance(decl, ast.RateLimitToolDecl):
        yield _o("tool", decl.tool, "reference", decl)
    elif isinstance(decl, ast.RequireStateDecl):
        yield _o("state", decl.key, "read", decl)


def _call(call: ast.Call, node: ast.Node) -> Iterator[Occurrence]:
    yield _o("tool", call.tool, "reference", node)
    for arg in call.args:
        yield _o("param", arg.name, "reference", node, f"{call.tool.text}({arg.name.text})")


def _action_kind(kind: ast.ActionKind, node: ast.Node) -> Iterator[Occurrence]:
    if isinstance(kind, ast.Call):
        yield from _call(kind, node)
    elif isinstance(kind, ast.SetState):
        yield _o("state", kind.key, "write", node)
    elif isinstance(kind, ast.ReadState):
        yield _o("state", kind.key, "read", node)
    elif isinstance(kind, ast.AssertState):
        yield _o("state", kind.condition.key, "read", node)


def _proposal(decl: ast.ProposalDecl) -> Iterator[Occurrence]:
    proposal = decl.name.text
    yield _o("proposal", decl.name, "definition", decl)
    for name in decl.under:
        # `under` names a capability or a budget; which one is settled by the definitions.
        yield _o("capability|budget", name, "reference", decl)
    for item in decl.items:
        if not isinstance(item, ast.ActionDecl):
            continue
        yield _o("action", item.name, "definition", item, f"{proposal}/{item.name.text}")
        yield from _action_kind(item.kind, item)
        for name in item.after:
            yield _o("action", name, "reference", item, f"{proposal}/{name.text}")
        for body in item.items or ():
            yield from _action_item(body, item, proposal)


def _action_item(
    item: ast.ActionItem, action: ast.ActionDecl, proposal: str
) -> Iterator[Occurrence]:
    if isinstance(item, ast.Requires):
        yield _o("state", item.condition.key, "read", action)
    elif isinstance(item, ast.Reads):
        for key in item.keys:
            yield _o("state", key, "read", action)
    elif isinstance(item, ast.Effects):
        for effect in item.entries:
            yield _o("state", effect.key, "write", action)
    elif isinstance(item, ast.Compensate):
        yield from _call(item.call, action)
    elif isinstance(item, ast.CompensateWith):
        yield _o("action", item.action, "reference", action, f"{proposal}/{item.action.text}")


def _test(decl: ast.TestDecl) -> Iterator[Occurrence]:
    #: what the table's columns fill: `by $p` a policy, `winner $w` a proposal, a history
    #: entry's `tool: $t` a tool
    columns: dict[str, str] = {}
    for item in decl.items:
        if isinstance(item, ast.GivenAction):
            yield from _action_kind(item.kind, decl)
        elif isinstance(item, ast.GivenHistory) and isinstance(item.data.value, list):
            for entry in item.data.value:  # `{tool: $t, ...}`: the column names tools
                if isinstance(entry, dict) and isinstance(entry.get("tool"), ast.Column):
                    columns[entry["tool"].name] = "tool"
        elif isinstance(item, ast.GivenProposal):
            yield _o("proposal", item.name, "reference", decl)
        elif isinstance(item, ast.GivenPlan):
            yield _o("plan", item.name, "reference", decl)
        elif isinstance(item, ast.Expect):
            kind, word = ("policy", item.by) if item.kind == "decision" else ("proposal", item.word)
            if item.kind not in ("decision", "winner"):
                continue
            if isinstance(word, ast.Name):
                yield _named(kind, word, decl)
            elif isinstance(word, ast.Column):
                columns[word.name] = kind
    for item in decl.items:
        if isinstance(item, ast.Where) and columns and item.rows:
            yield from _table_cells(item, columns, decl)


def _named(kind: str, name: ast.Name, node: ast.Node) -> Occurrence:
    """A name written as a name, or as a string (`by "https_only"`: its span is the quotes',
    so the name is the text inside them when the string has no escapes)."""
    span = name.span
    if span.end - span.start == len(name.text) + 2:
        return Occurrence((kind, name.text), Span(span.start + 1, span.end - 1), "reference",
                          node, "string")  # fmt: skip
    return _o(kind, name, "reference", node)


def _table_cells(
    table: ast.Where, columns: dict[str, str], decl: ast.TestDecl
) -> Iterator[Occurrence]:
    for column, kind in columns.items():
        for value in _cells(table, column):
            if isinstance(value, ast.Name) and value.text:
                yield _o(kind, value, "reference", decl)
            elif isinstance(value, ast.Value) and isinstance(value.value, str):
                yield _named(kind, ast.Name(value.value, span=value.span), decl)


def _cells(table: ast.Where, column: str) -> Iterator[ast.Value | ast.Name]:
    """The cells of a table's column (none when the table has no such column)."""
    if not table.rows:
        return
    header, *rows = table.rows
    for index, cell in enumerate(header):
        name = cell.text if isinstance(cell, ast.Name) else str(cell.value)
        if name == column:
            yield from (row[index] for row in rows if index < len(row))
            return


def _given_values(module: ast.Module, text: str) -> Iterator[Occurrence]:
    """The names in the tests' data, which the syntax tree keeps as values without positions
    (found again in `text`): the keys of `state { key: value }`, the state keys a test starts
    from; in `history [...]`, each entry's `tool` and the keys of its `params` (that tool's
    parameters), also in the cells of a table that fill a whole entry (`history [$entry]`)."""
    for decl in module.declarations:
        if not isinstance(decl, ast.TestDecl):
            continue
        entry_columns: list[str] = []
        for item in decl.items:
            if isinstance(item, ast.GivenState) and isinstance(item.data.value, dict):
                written = _written(text, item.data.span)
                for key, span, form, _value in _entries(text, written, item.data.value):
                    yield Occurrence(("state", key), span, "read", decl, form)
            elif isinstance(item, ast.GivenHistory) and isinstance(item.data.value, list):
                written = _written(text, item.data.span)
                if written is None or len(written.items) != len(item.data.value):
                    continue
                for entry, value in zip(written.items, item.data.value, strict=True):
                    if isinstance(value, ast.Column):
                        entry_columns.append(value.name)
                    else:
                        yield from _history_entry(text, entry, value, decl)
        for table in (i for i in decl.items if isinstance(i, ast.Where)):
            for column in entry_columns:
                for cell in _cells(table, column):
                    if isinstance(cell, ast.Value):
                        written = _written(text, cell.span)
                        if written is not None:
                            yield from _history_entry(text, written, cell.value, decl)


def _history_entry(
    text: str, written: _Written, value: object, decl: ast.TestDecl
) -> Iterator[Occurrence]:
    """The names in one entry of a test's history, `{tool: "fetch", params: {url: ...},
    ...}`: the tool, and the keys of its `params`, that tool's parameters."""
    if not isinstance(value, dict):
        return
    fields = {key: entry for key, _span, _form, entry in _entries(text, written, value)}
    tool = value.get("tool")
    if not isinstance(tool, str) or "tool" not in fields:
        return
    span = _string_span(text, fields["tool"].span, tool)
    if span is not None:
        yield Occurrence(("tool", tool), span, "reference", decl, "string")
    params = value.get("params")
    if isinstance(params, dict) and "params" in fields:
        for key, span, form, _value in _entries(text, fields["params"], params):
            yield Occurrence(("param", f"{tool}({key})"), span, "reference", decl, form)


@dataclass(frozen=True, slots=True)
class _Written:
    """A value as written in the source: its span, and a map's entries (each key's span,
    quotes included, with its value) or a list's items."""

    span: Span
    entries: tuple[tuple[Span, _Written], ...] = ()
    items: tuple[_Written, ...] = ()


_VALUE_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|[^\s"#\[\]{}:,]+|\S')


def _written(text: str, span: Span) -> _Written | None:
    """The value written at `text[span]` (a literal the parser read: `[`, `{`, `,`, `:`,
    strings, `#` comments and plain words), or None when it does not read as one."""
    tokens = [
        (match.start(), match.end(), match.group())
        for match in _VALUE_TOKEN.finditer(text, span.start, span.end)
        if not match.group().startswith("#")
    ]
    at = 0

    def value() -> _Written:
        nonlocal at
        start, end, token = tokens[at]
        at += 1
        if token == "[":
            items = []
            while tokens[at][2] != "]":
                if tokens[at][2] == ",":
                    at += 1
                    continue
                items.append(value())
            at += 1
            return _Written(Span(start, tokens[at - 1][1]), items=tuple(items))
        if token == "{":
            entries = []
            while tokens[at][2] != "}":
                if tokens[at][2] == ",":
                    at += 1
                    continue
                key_start, key_end, _key = tokens[at]
                if tokens[at + 1][2] != ":":
                    raise ValueError
                at += 2
                entries.append((Span(key_start, key_end), value()))
            at += 1
            return _Written(Span(start, tokens[at - 1][1]), entries=tuple(entries))
        if token in ("]", "}", ":", ","):
            raise ValueError
        return _Written(Span(start, end))

    try:
        found = value()
    except (IndexError, ValueError, RecursionError):
        return None
    return found if at == len(tokens) else None


def _entries(
    text: str, written: _Written | None, value: dict[str, object]
) -> Iterator[tuple[str, Span, Form, _Written]]:
    """The keys of the map `value` written as `written`: `(key, span, form, its value)`, the
    span being the key's text inside any quotes (the whole string when it has escapes, so a
    rename cannot miss it: it refuses to rename a name not written as the name)."""
    if written is None:
        return
    for span, entry in written.entries:
        raw = text[span.start : span.end]
        if not raw.startswith('"'):
            if raw in value:
                yield raw, span, "", entry
            continue
        try:
            key = json.loads(raw)
        except ValueError:
            continue
        if isinstance(key, str) and key in value:
            inner = _string_span(text, span, key)
            yield key, inner if inner is not None else span, "string", entry


def _string_span(text: str, span: Span, value: str) -> Span | None:
    """Where the string `value`, written at `span`, is: the text inside its quotes, or the
    whole string when it has escapes; None when `span` is not a string."""
    raw = text[span.start : span.end]
    if not raw.startswith('"'):
        return None
    return Span(span.start + 1, span.end - 1) if raw[1:-1] == value else span


def _redacted_params(decl: ast.RedactDecl) -> Iterator[Occurrence]:
    """`redact params.card`: the parameter `card` of every tool that has one."""
    for path in decl.paths:
        parts = path.text.split(".")
        if len(parts) > 1 and parts[0] == "params" and _PLAIN_NAME.fullmatch(parts[1]):
            at = path.span.start + len("params.")
            yield Occurrence(("param_use", parts[1]), Span(at, at + len(parts[1])), "reference",
                             decl)  # fmt: skip


_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: The variables of a condition whose fields or keys are names of the program.
_ROOTS = ("params", "state", "action", "history")
CelName = tuple[str, str, int, int, Form, tuple[str, ...] | None]
#: The tools an entry of `history` may be of when its condition does not pin its tool.
ANY_TOOL = ("*",)


@lru_cache(maxsize=4096)
def cel_names(text: str) -> tuple[CelName, ...]:
    """The names a CEL condition reads, as `(kind, name, start, end, form)` with offsets into
    `text`, and for a parameter read from other tools than its policy's, those tools:
    parameters (`params.url`, `action.params.url`, `params["url"]`, `has(params.url)`,
    `params.?url`; `h.params.url` for `h` an entry of history, read from the tools `h.tool` is
    pinned to) as `param_use`; state keys (`state.ready`, `state["build.ok"]`, `"ready" in
    state`, `has(state.ready)`); tools compared with an action's (`action.tool == "fetch"`,
    `action.tool in ["a", "b"]`, `h.tool == "fetch"` for `h` over `history`); the arguments
    of the tests of a tool's name (`action.tool.startsWith("fs.")`: `TOOL_TESTS`). Nothing
    for a condition that does not parse."""
    try:
        tree = parse_cel(text)
    except (CelSyntaxError, RecursionError):
        return ()
    found: list[CelName] = []
    _cel_walk(tree, text, frozenset(), {}, found)
    found.sort(key=lambda f: f[2])
    return tuple(found)


#: The macro variables that stand for an entry of `history`, each with the tools it may be
#: of (`_pinned_tools`).
_Items = dict[str, tuple[str, ...]]


def _cel_walk(
    node: cel.Expr, text: str, bound: frozenset[str], items: _Items, found: list[CelName]
) -> None:
    """Collect `node`'s names; `bound` are the macro variables in scope (which hide `params`
    and the others), `items` those that stand for an entry of `history`."""
    if isinstance(node, cel.Macro):
        _cel_walk(node.target, text, bound, items, found)
        names = {node.var} | ({node.var2} if node.var2 else set())
        inner = bound | names
        over_history = _root(node.target, "history", bound)
        element = node.var2 if node.var2 else node.var
        scoped = {name: tools for name, tools in items.items() if name not in names}
        if over_history and node.kind != "bind":
            # `h` (or, in a two-variable form, its element) is an entry of history
            scoped[element] = _pinned_tools(node.predicate, element)
        for part in (node.predicate, node.result):
            if part is not None:
                _cel_walk(part, text, inner, scoped, found)
        return
    _cel_match(node, text, bound, items, found)
    for child in cel.children(node):
        _cel_walk(child, text, bound, items, found)


def _pinned_tools(predicate: cel.Expr | None, item: str) -> tuple[str, ...]:
    """The tools a macro's `predicate` lets history entry `item` be of: those it compares
    `item.tool` with in a test that must hold (`h.tool == "fetch" && ...`, `h.tool in ["a",
    "b"]`), else any (`ANY_TOOL`)."""
    if isinstance(predicate, cel.And):
        for side in predicate.operands:
            pinned = _pinned_tools(side, item)
            if pinned != ANY_TOOL:
                return pinned
    elif isinstance(predicate, cel.Binary) and predicate.op in ("==", "in"):
        for tool, other in ((predicate.left, predicate.right), (predicate.right, predicate.left)):
            if not (
                isinstance(tool, cel.Select)
                and tool.field == "tool"
                and isinstance(tool.operand, cel.Ident)
                and not tool.operand.root
                and tool.operand.name == item
            ):
                continue
            if predicate.op == "in" and other is not predicate.right:
                continue
            values = other.items if isinstance(other, cel.ListExpr) else (other,)
            names = [
                v.value for v in values if isinstance(v, cel.Literal) and isinstance(v.value, str)
            ]
            if values and len(names) == len(values):
                return tuple(names)
    return ANY_TOOL


def _root(node: cel.Expr, name: str, bound: frozenset[str]) -> bool:
    """Whether `node` is the condition's variable `name` (not a macro variable hiding it)."""
    return isinstance(node, cel.Ident) and node.name == name and (node.root or name not in bound)


def _params_of(node: cel.Expr, bound: frozenset[str]) -> bool:
    """`params`, or `action.params`: the parameters of the action judged."""
    if _root(node, "params", bound):
        return True
    return (
        isinstance(node, cel.Select)
        and node.field == "params"
        and _root(node.operand, "action", bound)
    )


def _cel_match(
    node: cel.Expr, text: str, bound: frozenset[str], items: _Items, found: list[CelName]
) -> None:
    if isinstance(node, (cel.Select, cel.Has)):
        kind = _field_kind(node.operand, bound, items)
        if kind is not None:
            at = _field_at(node, text)
            if at is not None:
                found.append((kind[0], node.field, at, at + len(node.field), "field", kind[1]))
    elif isinstance(node, cel.Index):
        kind = _field_kind(node.operand, bound, items)
        name = _string_at(node.index, text)
        if kind is not None and name is not None:
            found.append((kind[0], *name, kind[1]))
    elif isinstance(node, cel.Call) and node.function == "_?._" and len(node.args) == 2:
        kind = _field_kind(node.args[0], bound, items)
        field = node.args[1]
        if kind is not None and isinstance(field, cel.Literal) and isinstance(field.value, str):
            if text[field.start : field.end] == field.value:
                found.append((kind[0], field.value, field.start, field.end, "field", kind[1]))
    elif isinstance(node, cel.Binary) and node.op == "in" and _root(node.right, "state", bound):
        name = _string_at(node.left, text)
        if name is not None:
            found.append(("state", *name, None))
    elif isinstance(node, cel.Binary) and node.op in ("==", "!=", "in"):
        for tool, other in ((node.left, node.right), (node.right, node.left)):
            if _tool_of_action(tool, bound, items) and (node.op != "in" or other is node.right):
                values = other.items if isinstance(other, cel.ListExpr) else (other,)
                for value in values:
                    name = _string_at(value, text)
                    if name is not None:
                        found.append(("tool", *name, None))
    elif isinstance(node, cel.Call) and node.function in TOOL_TESTS:
        argument = _tool_test_argument(node, bound, items)
        name = _string_at(argument, text) if argument is not None else None
        if name is not None:
            found.append((TOOL_TESTS[node.function], *name, None))


def _field_kind(
    operand: cel.Expr, bound: frozenset[str], items: _Items
) -> tuple[str, tuple[str, ...] | None] | None:
    """What a field or key of `operand` names: a parameter (of the tools it is read from,
    when not its policy's), a state key, or nothing."""
    if _params_of(operand, bound):
        return "param_use", None
    if _root(operand, "state", bound):
        return "state", None
    if (
        isinstance(operand, cel.Select)
        and operand.field == "params"
        and isinstance(operand.operand, cel.Ident)
        and not operand.operand.root
        and operand.operand.name in items
    ):  # `h.params` for `h` an entry of history
        return "param_use", items[operand.operand.name]
    return None


def _tool_of_action(node: cel.Expr, bound: frozenset[str], items: _Items) -> bool:
    """`action.tool`, or `h.tool` for `h` an entry of history."""
    if not isinstance(node, cel.Select) or node.field != "tool":
        return False
    operand = node.operand
    if _root(operand, "action", bound):
        return True
    return isinstance(operand, cel.Ident) and not operand.root and operand.name in items


def _tool_test_argument(node: cel.Call, bound: frozenset[str], items: _Items) -> cel.Expr | None:
    """The argument of a test of a tool's name: `action.tool.startsWith(ARG)` (and
    `endsWith`, `contains`, `matches`), `matches(action.tool, ARG)`."""
    if node.target is not None and len(node.args) == 1:
        if _tool_of_action(node.target, bound, items):
            return node.args[0]
    elif node.function == "matches" and len(node.args) == 2:
        if _tool_of_action(node.args[0], bound, items):
            return node.args[1]
    return None


def _field_at(node: cel.Select | cel.Has, text: str) -> int | None:
    """Where the field of `operand.field` (or `has(operand.field)`) is written."""
    at = text.rfind(node.field, node.operand.end, node.end)
    return at if at >= 0 else None


def _string_at(node: cel.Expr, text: str) -> tuple[str, int, int, Form] | None:
    """A string literal: `(value, start, end, "string")`, the span being the text inside its
    quotes; the whole literal when it is not written as its value (escapes, a prefix, triple
    quotes), so that a rename refuses it rather than miss it."""
    if not isinstance(node, cel.Literal) or not isinstance(node.value, str):
        return None
    raw = text[node.start : node.end]
    if (
        len(raw) >= 2
        and raw[0] in "'\""
        and raw[-1] == raw[0]
        and raw[1:-1] == node.value
        and not raw.startswith(raw[0] * 3)
    ):
        return node.value, node.start + 1, node.end - 1, "string"
    return node.value, node.start, node.end, "string"
