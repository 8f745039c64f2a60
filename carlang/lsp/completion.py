"""Completion for the language server: what fits where the cursor is, read from the text
before it (so it works in a file that does not parse) and answered from the project's names,
the tools' signatures and the CEL declarations of the policy being written."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from carlang_runtime.cel import CelSyntaxError
from carlang_runtime.cel.checker import Declarations
from carlang_runtime.cel.checker import check as check_cel
from carlang_runtime.cel.functions import FUNCTIONS
from carlang_runtime.cel.types import DYN, STRING, Type
from lsprotocol import types as lsp

from .. import ast
from ..syntax import DECLARATION_KEYWORDS
from ..types import describe_type
from .positions import to_position
from .text import first_line, markdown, source_slice

if TYPE_CHECKING:
    from .features import Features
    from .project import ProjectFile

__all__ = ["Completer"]

_ACTION_ITEMS = (
    "requires", "reads", "effects", "retry", "on_failure", "timeout", "idempotent",
    "reversible", "compensable", "irreversible", "compensate", "meta", "mode",
)  # fmt: skip

_TOOL_ITEMS = ("description", "idempotent", "cache", "rate", "reversibility")

_TEST_ITEMS = (
    "action", "state", "scope", "history", "now", "proposal", "plan", "expect", "where",
)  # fmt: skip

_CEL_VARIABLES = {
    "action": "the action being decided: id, type, tool, params, proposal, metadata",
    "params": "the tool call's parameters (typed by the targeted tools' signatures)",
    "state": "the current state, by key",
    "scope": "who asks: tenant, caller, claims",
    "history": "the actions already run in this session: id, type, tool, params, status",
    "now": "the current time (a timestamp)",
}


class Completer:
    """Completions over the features' project."""

    def __init__(self, features: Features) -> None:
        self.features = features

    def completion(self, path: Path, position: lsp.Position) -> lsp.CompletionList:
        """Completions that fit where the cursor is."""
        file = self.features.file_at(path)
        if file is None:
            return lsp.CompletionList(is_incomplete=False, items=[])
        offset = self.features.offset_at(file, position)
        text = file.source.text
        line_start = text.rfind("\n", 0, offset) + 1
        before = text[line_start:offset]
        items = self._complete(path, file, offset, before)
        return lsp.CompletionList(is_incomplete=False, items=items)

    def _complete(
        self, path: Path, file: ProjectFile, offset: int, before: str
    ) -> list[lsp.CompletionItem]:
        policy = self.features.policy_at(file, offset)
        written = re.match(r"\s*policy\s+(\w+)\s*:.*\bwhen\s", before)
        if policy is None and written is not None and file.parsed.module is not None:
            policy = next(
                (
                    d
                    for d in file.parsed.module.declarations
                    if isinstance(d, ast.PolicyDecl) and d.name.text == written.group(1)
                ),
                None,
            )
        if policy is not None:
            return self._complete_cel(path, policy, before)
        call = _open_call(file.source.text, offset)
        if call is not None:
            items = self._complete_call(path, *call)
            return self._in_quotes(file, offset, items)
        # What is being written starts after the last brace of the line, at the last statement
        # that starts there: a one-line block (`test "x" { proposal rel  expect valid }`)
        # holds its statements after its `{`, one after another.
        before = _current_statement(
            re.split(r"[{}]", before)[-1], _enclosing_block(file.source.text, offset)
        )
        stripped = before.strip()
        words = stripped.split()
        first = words[0] if words else ""
        if _in_block(file.source.text, offset, "effects"):
            # `key = value`: a key, then a value (nothing to offer for it)
            return [] if "=" in before else self._state_items(path)
        if re.fullmatch(r"\s*([A-Za-z_]\w*\s*=|action)\s*(set|read|assert)\s+[\w.]*", before):
            return self._state_items(path)  # `s = set |`, `action read |`: a state key
        if _in_test_state(file.source.text, offset):  # a test's `state { k: v, j: w }`
            return [] if ":" in before.rsplit(",", 1)[-1] else self._state_items(path)
        if re.fullmatch(r"\s*[A-Za-z_]\w*\s*=\s*[\w.]*", before) or re.fullmatch(
            r"\s*(action|compensate)\s+[\w.]*", before
        ):
            items = self._tool_items(path)
            if "=" in before:
                items += [_keyword(k) for k in ("set", "read", "assert")]
            return items
        if first in ("reads", "requires", "read", "assert", "set", "require_state") or (
            first == "state" and "allow" in words
        ):
            return self._state_items(path)
        if first == "under":
            return self._plain(path, "capability") + self._plain(path, "budget")
        if "under" in words and first == "proposal":
            return self._plain(path, "capability") + self._plain(path, "budget")
        if first == "candidates" or (
            first == "proposal" and _in_block(file.source.text, offset, "test")
        ):
            return self._plain(path, "proposal")
        if first == "plan" and _in_block(file.source.text, offset, "test"):
            return self._plain(path, "plan")
        if first == "expect" and "by" in words:
            return self._plain(path, "policy")
        if re.search(r"\bafter\s+[\w\s,]*$", before) or re.fullmatch(
            r"\s*compensate\s+with\s+\w*", before
        ):
            return self._action_items(file, offset)
        if (
            first in ("deny_tool", "rate_limit_tool")
            or re.match(
                r"\s*policy\s+\w+\s*:\s*(shadow\s+)?(deny|require_approval|allow)\b", before
            )
            or (first == "tools")
        ):
            return self._tool_items(path)
        if re.fullmatch(r"\s*policy\s+\w+\s*:\s*shadow\s+\w*", before):
            return [_keyword(k) for k in ("deny", "require_approval", "allow")]
        if re.fullmatch(r"\s*policy\s+\w+\s*:\s*\w*", before):
            return [_keyword(k) for k in ("deny", "require_approval", "allow", "shadow")]
        if first == "on_failure":
            return [_keyword(k) for k in ("abort", "retry", "skip")]
        if first in ("reversibility",):
            return [_keyword(k) for k in ("reversible", "compensable", "irreversible")]
        if first == "mode":
            return [_keyword(k) for k in ("one_shot", "streaming", "long_running")]
        if first == "expect":
            return [
                _keyword(k)
                for k in (
                    "allow",
                    "deny",
                    "require_approval",
                    "valid",
                    "invalid",
                    "codes",
                    "winner",
                )
            ]
        if re.fullmatch(r"\s*\w*", before):  # the first word of a statement
            return [_keyword(k) for k in self._block_keywords(file.source.text, offset)]
        return []

    def _block_keywords(self, text: str, offset: int) -> Iterable[str]:
        block = _enclosing_block(text, offset)
        if block is None:
            # imports come first in a file: `import` leads, once
            return ("import", *sorted(DECLARATION_KEYWORDS - {"import"}))
        head = block.split()
        if not head:
            return ()
        if head[0] == "tool":
            return _TOOL_ITEMS
        if head[0] == "test":
            return _TEST_ITEMS
        if head[0] == "capability":
            return ("tools", "state", "max_actions")
        if head[0] == "budget":
            return ("max_actions", "max_tool_calls", "max_duration")
        if head[0] == "plan":
            return ("candidates", "cost_weight", "target", "set")
        if head[0] == "proposal":
            return ("context",)
        if "=" in block:
            return _ACTION_ITEMS
        return ()

    def _plain(self, path: Path, kind: str) -> list[lsp.CompletionItem]:
        return [
            lsp.CompletionItem(label=name, kind=lsp.CompletionItemKind.Reference, detail=kind)
            for name, _o, _f in self.features.names(path, kind)
        ]

    def _tool_items(self, path: Path) -> list[lsp.CompletionItem]:
        items = []
        for name, occurrence, file in self.features.names(path, "tool"):
            decl = occurrence.node
            assert isinstance(decl, ast.ToolDecl)
            params = ", ".join(f"{p.name.text}: {describe_type(p.type)}" for p in decl.params)
            required = [p for p in decl.params if not p.optional and p.default is None]
            snippet = ", ".join(f"{p.name.text}: ${{{i}}}" for i, p in enumerate(required, start=1))
            items.append(
                lsp.CompletionItem(
                    label=name,
                    kind=lsp.CompletionItemKind.Function,
                    detail=f"tool {name}({params})",
                    documentation=markdown(
                        self.features.tool_summary(decl), f"in `{file.source.name}`"
                    ),
                    insert_text=f"{name}({snippet})",
                    insert_text_format=lsp.InsertTextFormat.Snippet,
                )
            )
        return items

    def _state_items(self, path: Path) -> list[lsp.CompletionItem]:
        items = []
        for name, occurrence, _file in self.features.names(path, "state"):
            node = occurrence.node
            assert isinstance(node, ast.StateEntry)
            label = name[:-1] if name.endswith("*") else name
            items.append(
                lsp.CompletionItem(
                    label=label,
                    kind=lsp.CompletionItemKind.Field,
                    detail=f"state {name}: {describe_type(node.type)}",
                )
            )
        return items

    def _action_items(self, file: ProjectFile, offset: int) -> list[lsp.CompletionItem]:
        module = file.parsed.module
        for decl in module.declarations if module else ():
            if isinstance(decl, ast.ProposalDecl) and decl.span.start <= offset <= decl.span.end:
                return [
                    lsp.CompletionItem(
                        label=a.name.text,
                        kind=lsp.CompletionItemKind.Event,
                        detail=first_line(source_slice(file.source, a.kind)),
                    )
                    for a in decl.items
                    if isinstance(a, ast.ActionDecl) and not a.span.start <= offset <= a.span.end
                ]
        # Half typed (`compensate with |`), the proposal does not parse: its actions from text
        return [
            lsp.CompletionItem(label=name, kind=lsp.CompletionItemKind.Event)
            for name in _actions_in_text(file.source.text, offset)
        ]

    def _complete_call(
        self, path: Path, tool: str, given: list[str], current_param: str | None
    ) -> list[lsp.CompletionItem]:
        decl = next((o.node for n, o, _f in self.features.names(path, "tool") if n == tool), None)
        if not isinstance(decl, ast.ToolDecl):
            return []
        if current_param is not None:
            param = next((p for p in decl.params if p.name.text == current_param), None)
            if param is None:
                return []
            if isinstance(param.type, ast.EnumType):
                return [
                    lsp.CompletionItem(
                        label=f'"{option.value}"',
                        kind=lsp.CompletionItemKind.EnumMember,
                        detail=f"{tool}.{param.name.text}",
                    )
                    for option in param.type.options
                ]
            if describe_type(param.type) == "bool":
                return [_keyword("true"), _keyword("false")]
            return []
        return [
            lsp.CompletionItem(
                label=p.name.text,
                kind=lsp.CompletionItemKind.Property,
                detail=f"{p.name.text}{'?' if p.optional else ''}: {describe_type(p.type)}",
                insert_text=f"{p.name.text}: ",
                sort_text=("0" if not p.optional and p.default is None else "1") + p.name.text,
            )
            for p in decl.params
            if p.name.text not in given
        ]

    def _in_quotes(
        self, file: ProjectFile, offset: int, items: list[lsp.CompletionItem]
    ) -> list[lsp.CompletionItem]:
        """String values (`"staging"`) chosen with the cursor inside a string already opened
        (`env: "st|` or `env: "|"`, the editor having closed the quote): each replaces the
        quoted text, quotes included, rather than adding its own (`""staging""`)."""
        opened = _open_quote(file.source.text, offset)
        if opened is None:
            return items
        text = file.source.text
        end = _string_close(text, offset)
        encoding = self.features.encoding
        where = lsp.Range(
            start=to_position(file.source, opened, encoding),
            end=to_position(file.source, end, encoding),
        )
        typed = text[opened:offset]
        return [
            lsp.CompletionItem(
                label=item.label,
                kind=item.kind,
                detail=item.detail,
                filter_text=item.label,
                text_edit=lsp.TextEdit(range=where, new_text=item.label),
            )
            if item.label.startswith('"') and item.label.startswith(typed)
            else item
            for item in items
            if not item.label.startswith('"') or item.label.startswith(typed)
        ]

    def _complete_cel(
        self, path: Path, policy: ast.PolicyDecl, before: str
    ) -> list[lsp.CompletionItem]:
        declarations = self.features.cel_declarations(path, policy)
        member = re.search(r"([A-Za-z_][\w.]*)\.(\w*)$", before)
        if member is not None:
            subject = member.group(1)
            declarations = _with_macro_variable(declarations, before, subject)
            try:
                kind: Type = check_cel(subject, declarations).type
            except CelSyntaxError:
                kind = DYN
            if kind.fields:  # a value with known fields (`params.`, `state.`): a field next
                return [
                    lsp.CompletionItem(
                        label=name, kind=lsp.CompletionItemKind.Field, detail=str(field_type)
                    )
                    for name, field_type in sorted(kind.fields.items())
                ]
            # the methods of the subject's type (all of them when its type is not known), and
            # the macros of a list or a map (`history.exists(h, ...)`)
            methods = self._cel_functions(method=True, receiver=kind.kind if kind.known else None)
            if kind.kind in ("list", "map") or not kind.known:
                methods += [_macro_item(name) for name in _LIST_MACROS]
            return methods
        items = [
            lsp.CompletionItem(
                label=name,
                kind=lsp.CompletionItemKind.Variable,
                detail=str(declarations.variables.get(name, "")),
                documentation=doc,
            )
            for name, doc in _CEL_VARIABLES.items()
        ]
        return items + self._cel_functions(method=False)

    def _cel_functions(self, method: bool, receiver: str | None = None) -> list[lsp.CompletionItem]:
        """The functions called by name, or (`method`) the methods; with `receiver`, only the
        methods of that type."""
        items = []
        for name, function in sorted(FUNCTIONS.items()):
            overloads = [
                o
                for o in function.overloads
                if (o.receiver is not None) == method and receiver in (None, o.receiver)
            ]
            if not overloads or not function.named:
                continue
            signatures = [
                (f"{o.receiver}." if o.receiver else "")
                + f"{name}({', '.join(o.args)}) -> {o.result}"
                for o in overloads
            ]
            items.append(
                lsp.CompletionItem(
                    label=name,
                    kind=lsp.CompletionItemKind.Method
                    if method
                    else lsp.CompletionItemKind.Function,
                    detail=signatures[0],
                    documentation="\n".join(signatures),
                )
            )
        return items


#: The comprehension macros of lists and maps, with what each gives.
_LIST_MACROS = {
    "all": "all(x, predicate) -> bool: every element",
    "exists": "exists(x, predicate) -> bool: some element",
    "exists_one": "exists_one(x, predicate) -> bool: exactly one element",
    "filter": "filter(x, predicate) -> list: the elements that hold",
    "map": "map(x, expression) -> list: each element transformed",
}


def _macro_item(name: str) -> lsp.CompletionItem:
    return lsp.CompletionItem(
        label=name, kind=lsp.CompletionItemKind.Method, detail=f"macro: {_LIST_MACROS[name]}"
    )


def _with_macro_variable(declarations: Declarations, before: str, subject: str) -> Declarations:
    """`declarations` with the variable a macro binds, when `subject` starts with it: in
    `history.filter(h, h.` the `h` is an element of `history` (a map's key for a map)."""
    variable = subject.split(".")[0]
    if variable in declarations.variables:
        return declarations
    bound = None
    for found in re.finditer(r"([A-Za-z_][\w.]*)\.(?:\w+)\(\s*([A-Za-z_]\w*)\s*,", before):
        if found.group(2) == variable:
            bound = found  # the innermost binding before the cursor is the last one
    if bound is None:
        return declarations
    try:
        ranged = check_cel(bound.group(1), declarations).type
    except CelSyntaxError:
        return declarations
    element = ranged.element if ranged.kind == "list" else STRING if ranged.kind == "map" else None
    if element is None:
        return declarations
    return Declarations({**declarations.variables, variable: element}, declarations.container)


def _keyword(word: str) -> lsp.CompletionItem:
    return lsp.CompletionItem(label=word, kind=lsp.CompletionItemKind.Keyword)


def _open_call(text: str, offset: int) -> tuple[str, list[str], str | None] | None:
    """Inside an unclosed `tool(` before the cursor: the tool, the arguments already given,
    and the parameter whose value is being written (None when a name is being written)."""
    depth = 0
    index = offset - 1
    limit = max(0, offset - 2000)
    while index >= limit:
        char = text[index]
        if char == ")":
            depth += 1
        elif char == "(":
            if depth == 0:
                break
            depth -= 1
        elif char in "{}" and depth == 0:
            return None
        index -= 1
    else:
        return None
    name = re.search(r"([A-Za-z_][\w.]*)\s*$", text[:index])
    if name is None:
        return None
    inside = text[index + 1 : offset]
    given = re.findall(r"([A-Za-z_]\w*)\s*:", inside)
    value = re.search(r"([A-Za-z_]\w*)\s*:\s*[^,]*$", inside)
    current = value.group(1) if value else None
    return name.group(1), given, current


def _open_quote(text: str, offset: int) -> int | None:
    """The offset of the `"` opening a string the cursor is in, on its line (a backslash
    escapes the next character), or None when it is in none."""
    line_start = text.rfind("\n", 0, offset) + 1
    opened = None
    index = line_start
    while index < offset:
        char = text[index]
        if char == "\\" and opened is not None:
            index += 2
            continue
        if char == '"':
            opened = index if opened is None else None
        elif char == "#" and opened is None:
            return None  # a comment: no string goes on
        index += 1
    return opened


def _string_close(text: str, offset: int) -> int:
    """Past the `"` that closes, on its line, the string the cursor at `offset` is in (`"st|ag"`:
    the rest of the string goes too), or `offset` when the line does not close it."""
    index = offset
    while index < len(text) and text[index] != "\n":
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == '"':
            return index + 1
        index += 1
    return offset


def _enclosing_block(text: str, offset: int) -> str | None:
    """The statement that opens the innermost block around `offset`, up to its `{`: from its
    line's start, or in a one-line block from where it starts after the outer block's `{`
    (`proposal q { x = f() { retry 2 | } }`: `x = f() `)."""
    depth = 0
    index = offset - 1
    while index >= 0:
        char = text[index]
        if char == "}":
            depth += 1
        elif char == "{":
            if depth == 0:
                break
            depth -= 1
        index -= 1
    else:
        return None
    start = text.rfind("\n", 0, index) + 1
    head = text[start:index]
    cut = max(head.rfind("{"), head.rfind("}"))
    if cut >= 0:
        head = _current_statement(head[cut + 1 :], _enclosing_block(text, start + cut + 1))
    return head


#: Per kind of block (`_block_kind`), what starts a statement in it: a keyword, or for
#: proposals and `effects` a name and `=` (`y = lookup(id: 2)`, not `==`).
_KEYWORD_AT = r"(?<![\w$.])({})\b(?![.\w])"
_NAME_AT = r"(?<![\w$.])[A-Za-z_]\w*\s*=(?!=)"
_STATEMENT_STARTS = {
    kind: re.compile("|".join(patterns))
    for kind, patterns in {
        "test": [_KEYWORD_AT.format("|".join(_TEST_ITEMS))],
        "action": [_KEYWORD_AT.format("|".join(_ACTION_ITEMS))],
        "proposal": [_KEYWORD_AT.format("context"), _NAME_AT],
        "effects": [_NAME_AT],
        "tool": [
            _KEYWORD_AT.format("|".join((*_TOOL_ITEMS, "queue", "read_only", "schema", "remote")))
        ],
        "capability": [_KEYWORD_AT.format("tools|state|max_actions")],
        "budget": [_KEYWORD_AT.format("max_actions|max_tool_calls|max_duration")],
        "plan": [_KEYWORD_AT.format("candidates|cost_weight|target|set")],
        "mcp_server": [_KEYWORD_AT.format("command|args|env|cwd|url|headers|timeout")],
    }.items()
}
#: Words whose value can be a word that also starts a statement (`on_failure retry`, `x = set
#: k = 1`): what follows them goes on with their statement.
_TAKES_A_WORD = frozenset(
    {"on_failure", "mode", "reversibility", "expect", "by", "with", "set", "read", "assert",
     "action", "proposal", "plan", "after", "under", "from", "shadow", "winner", "codes"}
)  # fmt: skip


def _block_kind(block: str | None) -> str | None:
    """What kind of block `_enclosing_block` found: its keyword, or `action` for an action's
    body (`name = kind [after a] {`)."""
    words = block.split() if block else []
    if not block or not words:
        return None
    if words[0] in _STATEMENT_STARTS:
        return words[0]
    return "action" if "=" in block else None


def _current_statement(text: str, block: str | None) -> str:
    """The statement of the block `block` opens being written at the end of `text` (text after
    a brace, or a line): the last one that starts in it; all of `text` when none is known."""
    kind = _block_kind(block)
    if kind is None:
        return text
    masked = _masked(text)
    start = 0
    for match in _STATEMENT_STARTS[kind].finditer(masked):
        previous = masked[: match.start()].split()
        if not previous or previous[-1] not in _TAKES_A_WORD:
            start = match.start()
    return text[start:]


def _masked(text: str) -> str:
    """`text` with its strings and what is inside brackets and parentheses blanked out (the
    same length), so that no word in them reads as a statement."""
    out = []
    depth, quoted, escaped = 0, False, False
    for char in text:
        if quoted:
            quoted = escaped or char != '"'
            escaped = not escaped and char == "\\"
            out.append(" ")
            continue
        if char == '"':
            quoted = True
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth = max(0, depth - 1)
        elif not depth:
            out.append(char)
            continue
        out.append(" ")
    return "".join(out)


#: `set ` just before a name: `x = set k = 1` names the action `x`, not `k`.
_AFTER_SET = re.compile(r"(?<![\w$.])set\s+$")


def _actions_in_text(text: str, offset: int) -> list[str]:
    """The actions named (`name = ...` at its top level) in the proposal around `offset`,
    read from the text, the one being written left out: for a file that does not parse."""
    start = None
    for match in re.finditer(r"(?m)^proposal\b[^{\n]*\{", text[:offset]):
        start = match.end()
    if start is None:
        return []
    names: list[tuple[int, str]] = []
    depth = 1
    tokens = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[{}]|(?<![\w$.])([A-Za-z_]\w*)\s*=(?!=)')
    for match in tokens.finditer(text, start):
        token = match.group(0)
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
            if depth == 0:
                break
        elif match.group(1) and depth == 1:
            if not _AFTER_SET.search(text, max(0, match.start() - 40), match.start()):
                names.append((match.start(), match.group(1)))
    # the action being written (or whose block the cursor is in): the last named before it
    writing = [name for at, name in names if at < offset][-1:]
    return [name for _at, name in names if name not in writing]


def _in_test_state(text: str, offset: int) -> bool:
    """Whether `offset` is inside a test's `state { ... }` (its keys are the program's; a
    top-level `state { }` declares new ones)."""
    block = _enclosing_block(text, offset)
    if block is None or not block.rstrip().endswith("state"):
        return False
    opening = text.rfind("{", 0, offset)
    while opening > 0 and not text[:opening].rstrip().endswith("state"):
        opening = text.rfind("{", 0, opening)
    outer = _enclosing_block(text, opening) if opening > 0 else None
    return outer is not None and outer.split()[:1] == ["test"]


def _in_block(text: str, offset: int, head: str) -> bool:
    block = _enclosing_block(text, offset)
    return block is not None and block.split()[:1] == [head]
