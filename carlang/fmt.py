"""The canonical formatter: AST + comments -> text.

Style: two-space indentation; one statement per line; blocks open on the statement's line; a
blank line between declarations where the source had one (several collapse to one); values
written as JSON (map keys bare when they are plain names), every character in a string that is
not printable (a bidi control, a zero-width space, a line separator, a byte-order mark) as an
escape, whether it was written as one or typed, so that no string displays other than it reads
("Trojan Source"); other characters beyond ASCII as themselves. Comments are kept: a comment
on its own line stays before the statement that follows it, a comment at the end of a line
stays at the end of that statement's line (a block written on one line with a comment after it
stays on one line; a comment after a `}` that shares its line with the block's last item stays
with that item), so a `# carlang: allow` pragma still accepts its line's warnings; none is ever
dropped. A parameter list or a call's arguments with comments inside is written one item a
line, each comment beside the item it was written after (as ruff and prettier keep such a
statement expanded); other comments inside what is joined onto one line (a list of names, a
value) go at the end of that line, several in order (`# one  # two`, as black gathers them).

Width: a map or list value that, from the start of its line, would pass `_WIDTH` columns is
written one entry a line with a trailing comma, indented, nested values the same way
(`format_value_wrapped`), wherever it is (a schema, a test's `history`, a `state` default, an
effect, a call's argument, ...); one that fits stays on one line, however the source laid it
out. The rule is the width alone: a short list the author spread over lines is joined again.
A parameter list or a call's arguments is written one item a line (as with comments inside)
when one of its values, on a line of its own, still needs wrapping; a call that is only long
stays on one line. Nothing is wrapped on the line of a block that stays on one line (its head
included: the comment after it is about all of it).

`format_source` proves its result: it parses the output again and requires the same syntax tree
and the same comments, or raises `FormatError` (an internal error) instead of returning it.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from . import ast
from .diagnostics import ALLOW_PRAGMA, Diagnostics
from .parse import parse
from .source import Source, Span
from .types import describe_type

__all__ = [
    "FormatError",
    "NotFormattable",
    "format_source",
    "format_module",
    "format_value",
    "statement_spans",
]

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_KEYWORD_VALUES = frozenset({"true", "false", "null"})


class FormatError(Exception):
    """The formatter would have changed the program's meaning or lost a comment (a bug)."""


class NotFormattable(ValueError):
    """The file has syntax errors (in `diagnostics`): there is nothing sound to format."""

    def __init__(self, diagnostics: Diagnostics) -> None:
        super().__init__("the file has syntax errors; fix them before formatting")
        self.diagnostics = diagnostics


def format_value(value: Any) -> str:
    """A literal as carlang writes it."""
    if isinstance(value, ast.Column):
        return f"${value.name}"
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        entries = ", ".join(f"{_map_key(k)}: {format_value(v)}" for k, v in value.items())
        return "{ " + entries + " }"
    return _string(str(value))


#: The exponent of Python's float repr, as `e-09` or `e+300`.
_EXPONENT = re.compile(r"e([+-])0*(?=\d)")


def _float(value: float) -> str:
    """`value` as Python's shortest round-trip repr, with the exponent written as people write
    it (`1e-9`, `1e300`: prettier's rule), not as repr pads it (`1e-09`, `1e+300`)."""
    return _EXPONENT.sub(lambda m: "e-" if m.group(1) == "-" else "e", repr(value))


def _string(text: str) -> str:
    """`text` as a string literal: JSON's, with every character that is not printable written
    as an escape (see `_escaped`); other characters beyond ASCII (é, 漢, emoji) as themselves."""
    return _escaped(json.dumps(text, ensure_ascii=False))


#: A run of characters beyond printable ASCII: those of them that are not printable
#: (`str.isprintable`: control, format, separator other than the space, private-use,
#: surrogate, unassigned) are escaped, besides those JSON escapes itself.
_BEYOND_ASCII = re.compile(r"[^ -~]+")


def _escaped(written: str) -> str:
    """`written` (carlang text whose only characters beyond ASCII are in its string literals)
    with each character that is not printable in them written as `\\uXXXX` (a pair of them
    beyond the BMP, as JSON writes it): a bidi override, a zero-width space, a line separator
    or a byte-order mark typed as itself renders reversed or not at all in an editor or a
    code review ("Trojan Source"), so fmt never turns the escape someone wrote into it."""
    return _BEYOND_ASCII.sub(_escape_run, written)


def _escape_run(match: re.Match[str]) -> str:
    run = match.group(0)
    if run.isprintable():
        return run
    return "".join(char if char.isprintable() else _escape(char) for char in run)


def _escape(char: str) -> str:
    code = ord(char)
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


#: Lines longer than this break a map or list value over several lines.
_WIDTH = 100


def format_value_wrapped(value: Any, indent: int, prefix: str) -> str:
    """A literal written after `prefix` at `indent`: on one line when it fits in the width,
    else maps and lists one entry per line, nested values wrapped the same way."""
    flat = format_value(value)
    if len("  " * indent + prefix + flat) <= _WIDTH or not isinstance(value, (dict, list)):
        return flat
    if not value:
        return flat
    pad = "  " * (indent + 1)
    if isinstance(value, dict):
        entries = [
            f"{pad}{_map_key(k)}: {format_value_wrapped(v, indent + 1, _map_key(k) + ': ')},"
            for k, v in value.items()
        ]
        return "{\n" + "\n".join(entries) + "\n" + "  " * indent + "}"
    items = [f"{pad}{format_value_wrapped(v, indent + 1, '')}," for v in value]
    return "[\n" + "\n".join(items) + "\n" + "  " * indent + "]"


def _map_key(key: str) -> str:
    return key if _PLAIN.match(key) and key not in _KEYWORD_VALUES else _string(key)


def _type(type_: ast.TypeExpr) -> str:
    """A type as carlang writes it, its string literals (an enum's, a field's default) as
    `format_value` writes strings."""
    return _escaped(describe_type(type_))


def _names(names: Iterable[ast.Name]) -> str:
    return ", ".join(n.text for n in names)


def _condition(condition: ast.Condition, value: Callable[[Any, str], str]) -> str:
    """`key OP value` (or `exists key`), its value written by `value(value, prefix)`, where
    `prefix` is the condition's text before it."""
    if condition.op == "exists":
        return f"exists {condition.key.text}"
    if condition.op == "not_exists":
        return f"not exists {condition.key.text}"
    assert condition.value is not None
    head = f"{condition.key.text} {condition.op} "
    return head + value(condition.value.value, head)


def _message(message: ast.Value | None) -> str:
    return f" message {format_value(message.value)}" if message is not None else ""


class _Printer:
    def __init__(self, source: Source, comments: Sequence[ast.Comment]) -> None:
        self.source = source
        self.comments = sorted(comments, key=lambda c: c.span.start)
        self.comment_starts = [c.span.start for c in self.comments]
        self.next_comment = 0
        self.lines: list[str] = []
        self.last_end = 0
        #: Where each block being written closes (its `}`), innermost last, and whether it is
        #: written on one line.
        self.closes: list[tuple[int, bool]] = []
        #: Whether the head being written is that of a block that stays on one line.
        self.flat_head = False

    # -- comments and layout -----------------------------------------------------------------

    def _pending_before(self, offset: int) -> list[ast.Comment]:
        found = []
        while (
            self.next_comment < len(self.comments)
            and self.comments[self.next_comment].span.start < offset
        ):
            found.append(self.comments[self.next_comment])
            self.next_comment += 1
        return found

    def _comment_at(self, offset: int) -> ast.Comment | None:
        """The comment `offset` is in, if any."""
        index = bisect_right(self.comment_starts, offset) - 1
        if index >= 0 and offset < self.comments[index].span.end:
            return self.comments[index]
        return None

    def _token_after(self, offset: int) -> int:
        """Where the first token at or after `offset` starts (spaces and comments skipped)."""
        text = self.source.text
        while offset < len(text):
            comment = self._comment_at(offset)
            if comment is not None:
                offset = comment.span.end
            elif text[offset].isspace():
                offset += 1
            else:
                break
        return offset

    def _token_before(self, offset: int) -> int:
        """Where the last token ending at or before `offset` ends (spaces and comments
        skipped)."""
        text = self.source.text
        while offset > 0:
            comment = self._comment_at(offset - 1)
            if comment is not None:
                offset = comment.span.start
            elif text[offset - 1].isspace():
                offset -= 1
            else:
                break
        return offset

    def opening_brace(self, node: ast.Node, items: Sequence[Any]) -> int:
        """Where the `{` opening `node`'s block is: the last token before its first item (or
        before its `}`), not the first `{` after its start, which may open a map or an object
        type in its head."""
        first = getattr(items[0], "span", None) if items else None
        boundary = first.start if first is not None else node.span.end - 1
        brace = self._token_before(boundary) - 1
        return brace if brace >= 0 and self.source.text[brace] == "{" else -1

    def _own_line(self, comment: ast.Comment) -> bool:
        """Whether nothing but spaces comes before `comment` on its line."""
        text = self.source.text
        return not text[text.rfind("\n", 0, comment.span.start) + 1 : comment.span.start].strip()

    def bracketed(
        self,
        opening: int,
        closing: int,
        nodes: Sequence[ast.Node],
        texts: Sequence[str],
        indent: int,
        spread: Sequence[str] | None = None,
    ) -> str:
        """The list between the `(` at `opening` and the `)` at `closing` (`nodes`, written as
        `texts` on one line, as `spread` one a line: their values wrapped to fit there, see
        `wrapped`), for a statement at `indent`: on one line, `(a, b)`; or, with comments
        inside or with an item of `spread` over several lines (a value too long even for a
        line of its own), one item a line, each comment where it was: after the `(`, on its
        own line before an item or the `)`, or beside the item it was written after (with the
        comments inside that item), as ruff and prettier keep such a list expanded. Joined,
        comments inside it would all go after the statement, away from what they are about.
        The statement's `leading` comments must be written first: every comment not yet
        written before the `(` is taken as written after it."""
        spread = texts if spread is None else spread
        inside = max(bisect_right(self.comment_starts, opening), self.next_comment)
        commented = inside < len(self.comments) and self.comment_starts[inside] < closing
        if not commented and not any("\n" in text for text in spread):
            return "(" + ", ".join(texts) + ")"
        starts = [node.span.start for node in nodes]
        after_opening = [c.text.rstrip() for c in self._pending_before(opening)]
        before: list[list[str]] = [[] for _ in range(len(nodes) + 1)]  # (the last: the `)`)
        beside: list[list[str]] = [[] for _ in nodes]
        found = self._pending_before(closing)
        for comment in found:
            text = comment.text.rstrip()
            item = bisect_right(starts, comment.span.start) - 1  # the item it is in or after
            if item >= 0 and comment.span.start < nodes[item].span.end:
                beside[item].append(text)
            elif self._own_line(comment):
                before[item + 1].append(text)
            elif item < 0:
                after_opening.append(text)
            else:
                beside[item].append(text)
        if found:
            self.last_end = max(self.last_end, found[-1].span.end)
        pad = "  " * (indent + 1)
        lines = ["(" + "".join(f"  {text}" for text in after_opening)]
        for number, text in enumerate(spread):
            lines += [pad + note for note in before[number]]
            lines.append(pad + text + "," + "".join(f"  {note}" for note in beside[number]))
        lines += [pad + note for note in before[-1]]
        lines.append("  " * indent + ")")
        return "\n".join(lines)

    def call(self, call: ast.Call, indent: int) -> str:
        """`tool(name: value, ...)`, for a statement at `indent` (see `bracketed`; the
        statement's `leading` comments written first)."""
        texts = [f"{a.name.text}: {format_value(a.value.value)}" for a in call.args]
        spread = [self.assigned(f"{a.name.text}: ", a.value.value, indent + 1) for a in call.args]
        opening = self._token_after(call.tool.span.end)
        args = self.bracketed(opening, call.span.end - 1, call.args, texts, indent, spread)
        return call.tool.text + args

    def action_kind(self, kind: ast.ActionKind, indent: int, prefix: str) -> str:
        """An action (a call, `set`, `read`, `assert`) written after `prefix` at `indent`."""
        if isinstance(kind, ast.Call):
            return self.call(kind, indent)
        if isinstance(kind, ast.SetState):
            return self.assigned(f"set {kind.key.text} = ", kind.value.value, indent, prefix)
        if isinstance(kind, ast.ReadState):
            return f"read {kind.key.text}"
        return self.condition("assert ", kind.condition, indent, prefix)

    def assigned(self, head: str, value: Any, indent: int, prefix: str = "") -> str:
        """`head` and `value` after it, written after `prefix` at `indent` (see `wrapped`)."""
        return head + self.wrapped(value, indent, prefix + head)

    def condition(self, head: str, condition: ast.Condition, indent: int, prefix: str) -> str:
        """`head` and `condition` after it, written after `prefix` at `indent`."""
        return head + _condition(
            condition, lambda value, key: self.wrapped(value, indent, prefix + head + key)
        )

    def _blank_between(self, start: int, end: int) -> bool:
        return self.source.text.count("\n", start, end) >= 2

    def leading(self, start: int, indent: int, first_in_block: bool) -> None:
        """Comments before `start`, each on its own line, with the source's blank lines."""
        pad = "  " * indent
        for comment in self._pending_before(start):
            if (
                not first_in_block
                and self._blank_between(self.last_end, comment.span.start)
                and self.lines
                and self.lines[-1]
            ):
                self.lines.append("")
            self.lines.append(pad + comment.text.rstrip())
            self.last_end = comment.span.end
            first_in_block = False
        if (
            not first_in_block
            and self._blank_between(self.last_end, start)
            and self.lines
            and self.lines[-1]
        ):
            self.lines.append("")

    def inner(self, end: int) -> None:
        """Comments inside what was just written on one line (a list of names or a value
        written over several lines, now joined) go at the end of that line, in order (`# one
        # two`, as black gathers them): on the statement's line still, a `# carlang: allow`
        pragma still accepts its warnings, and a note stays beside what it is about."""
        found = self._pending_before(end)
        if not found:
            return
        self.lines[-1] += "".join(f"  {comment.text.rstrip()}" for comment in found)
        self.last_end = max(self.last_end, found[-1].span.end)

    def _after_braces(self, end: int, comment: ast.Comment) -> bool:
        """Whether only closing braces (and spaces) come between `end` and `comment`."""
        return not self.source.text[end : comment.span.start].strip(" \t\r}")

    def _within_block(self, end: int, comment: ast.Comment) -> bool:
        """Whether the statement ending at `end` may take `comment`, given the block being
        written: a comment before its `}` is inside it; one after it, on the line the block's
        last item ends (`  cache 60s }  # note`), is the item's once the `}` gets a line of
        its own, unless the block stays on one line (then it is the block's)."""
        if not self.closes:
            return True
        close, one_line = self.closes[-1]
        return comment.span.start < close or (not one_line and self._after_braces(end, comment))

    def _stays_on_one_line(self, node: ast.Node, header_end: int) -> bool:
        """A block written on one line (`{` to `}`) with a comment after it on that line, only
        closing braces between, stays on one line: written over several lines, the comment
        would be beside only part of what it is about, and a `# carlang: allow` pragma could
        no longer accept every warning of its line."""
        close = node.span.end - 1
        if header_end == -1 or "\n" in self.source.text[header_end:close]:
            return False
        if self.next_comment >= len(self.comments):
            return False
        comment = self.comments[self.next_comment]
        return (
            comment.span.start >= node.span.end
            and "\n" not in self.source.text[node.span.end : comment.span.start]
            and (
                self._after_braces(node.span.end, comment)
                # (a pragma after more statements on the line: it accepts this block's too)
                or ALLOW_PRAGMA.search(comment.text) is not None
            )
        )

    def trailing(self, end: int, before: int | None = None) -> None:
        """A comment on the same source line right after `end` (and before `before`) goes at
        the end of the line."""
        if self.next_comment >= len(self.comments):
            self.last_end = max(self.last_end, end)
            return
        comment = self.comments[self.next_comment]
        line_end = self.source.text.find("\n", end)
        line_end = len(self.source.text) if line_end == -1 else line_end
        if (
            end <= comment.span.start < line_end + 1
            and "\n" not in self.source.text[end : comment.span.start]
            and (before is None or comment.span.start < before)
            and self._within_block(end, comment)
        ):
            pragmas = [piece for piece in _pieces(comment.text) if ALLOW_PRAGMA.match(piece)]
            if pragmas and not self._after_braces(end, comment):
                # A pragma after several statements on one line (`tool a() tool b()  #
                # carlang: allow ...`) accepted the warnings of each: each gets a copy once
                # split, and the last one the whole comment.
                self.lines[-1] += "".join(f"  {pragma}" for pragma in pragmas)
            else:
                self.lines[-1] += "  " + comment.text.rstrip()
                self.next_comment += 1
                self.last_end = comment.span.end
                return
        self.last_end = max(self.last_end, end)

    def wrapped(self, value: Any, indent: int, prefix: str) -> str:
        """`value` written after `prefix` at `indent`: `format_value_wrapped` (a map or list
        that does not fit one entry a line), except in a block that stays on one line (its
        items are joined onto that line, and its head stays on it too: see `block_head`)."""
        if self.flat_head or any(one_line for _, one_line in self.closes):
            return format_value(value)
        return format_value_wrapped(value, indent, prefix)

    def block_head(
        self, node: ast.Node, items: Sequence[Any] | None, write: Callable[[], str]
    ) -> str:
        """`write()`: the head of `node`, whose block holds `items` (if it has one), its
        values not wrapped when that block stays on one line (`_stays_on_one_line`): the
        comment after the line is about the whole statement, head included."""
        brace = self.opening_brace(node, items) if items is not None else -1
        self.flat_head = self._stays_on_one_line(node, brace)
        try:
            return write()
        finally:
            self.flat_head = False

    def statement(self, node: ast.Node, text: str, indent: int, first: bool) -> None:
        """One line for `node`, with its comments."""
        self.leading(node.span.start, indent, first)
        self.lines.append("  " * indent + text)
        self.inner(node.span.end)
        self.trailing(node.span.end)

    def block(
        self,
        node: ast.Node,
        head: str,
        items: Sequence[Any],
        indent: int,
        first: bool,
        item_printer: Any,
    ) -> None:
        """`head {`, the items one per line, `}` — comments inside stay inside; or all on one
        line, when the source has it so with a comment after it (`_stays_on_one_line`)."""
        self.leading(node.span.start, indent, first)
        header_end = self.opening_brace(node, items)
        one_line = self._stays_on_one_line(node, header_end)
        mark = len(self.lines)
        self.lines.append("  " * indent + head + " {")
        self.inner(header_end if header_end != -1 else node.span.start)
        self.last_end = max(self.last_end, header_end + 1 if header_end != -1 else node.span.start)
        close = node.span.end - 1
        # (`tool a() { ... }  # note` on one line: the note is after the block or its first
        # item, not about its `{`)
        first_item = getattr(items[0], "span", None) if items else None
        self.trailing(self.last_end, before=first_item.start if first_item else close)
        self.closes.append((close, one_line))
        for position, item in enumerate(items):
            item_printer(item, indent + 1, position == 0)
        self.closes.pop()
        self.leading(close, indent + 1, not items)
        self.lines.append("  " * indent + "}")
        if one_line:  # (no comment inside it: the one after it comes next)
            inside = [line.strip() for line in self.lines[mark + 1 : -1]]
            self.lines[mark:] = [self.lines[mark] + "".join(f" {line}" for line in inside)]
            self.lines[-1] += " }" if inside else "}"
        self.trailing(node.span.end)

    # -- declarations ------------------------------------------------------------------------

    def module(self, module: ast.Module) -> str:
        first = True
        for imported in module.imports:
            self.statement(imported, f"import {format_value(imported.path.value)}", 0, first)
            first = False
        for decl in module.declarations:
            self.declaration(decl, first)
            first = False
        self.leading(len(self.source.text) + 1, 0, first)
        while self.lines and not self.lines[-1]:
            self.lines.pop()
        return "\n".join(self.lines) + "\n" if self.lines else ""

    def declaration(self, decl: ast.Declaration, first: bool) -> None:
        method = getattr(self, "decl_" + type(decl).__name__)
        method(decl, first)

    def decl_ToolDecl(self, decl: ast.ToolDecl, first: bool) -> None:
        self.leading(decl.span.start, 0, first)  # (before `bracketed` takes the comments)
        head = self.block_head(decl, decl.items or None, lambda: self.tool_head(decl))
        if not decl.items:
            self.statement(decl, head, 0, first)
            return
        self.block(decl, head, decl.items, 0, first, self.tool_item)

    def tool_head(self, decl: ast.ToolDecl) -> str:
        """`tool name(params) -> type` (see `bracketed`; the `leading` comments written)."""
        params, spread = [], []
        for p in decl.params:
            name = p.name.text + ("?" if p.optional else "")
            written = f"{name}: {_type(p.type)}{' secret' if p.secret else ''}"
            if p.default is None:
                params.append(written)
                spread.append(written)
            else:
                params.append(f"{written} = {format_value(p.default.value)}")
                spread.append(self.assigned(f"{written} = ", p.default.value, 1))
        opening = self._token_after(decl.name.span.end)
        closing = self._token_after(decl.params[-1].span.end if decl.params else opening + 1)
        if self.source.text.startswith(",", closing):  # (a trailing comma)
            closing = self._token_after(closing + 1)
        written = self.bracketed(opening, closing, decl.params, params, 0, spread)
        head = f"tool {decl.name.text}{written}"
        if decl.returns is not None:
            head += f" -> {_type(decl.returns)}"
        return head

    def tool_item(self, item: Any, indent: int, first: bool) -> None:
        if isinstance(item, ast.Description):
            text = f"description {format_value(item.text.value)}"
        elif isinstance(item, ast.Idempotent):
            text = "idempotent"
        elif isinstance(item, ast.Cache):
            text = f"cache {item.ttl.text}"
        elif isinstance(item, ast.Rate):
            text = f"rate {item.calls} per {item.per.text}"
        elif isinstance(item, ast.QueueItem):
            text = f"queue {item.name.text}"
        elif isinstance(item, ast.ReadOnly):
            text = "read_only"
        elif isinstance(item, ast.ToolSchemaItem):
            text = "schema " + self.wrapped(item.schema.value, indent, "schema ")
        elif isinstance(item, ast.ToolSchemaFrom):
            text = f"schema from {format_value(item.reference.value)}"
        elif isinstance(item, ast.RemoteName):
            text = f"remote {format_value(item.name.value)}"
        else:
            text = f"reversibility {item.word.text}"
        self.statement(item, text, indent, first)

    def decl_McpServerDecl(self, decl: ast.McpServerDecl, first: bool) -> None:
        def item(setting: ast.McpSetting, indent: int, first_item: bool) -> None:
            value = setting.value
            if isinstance(value, ast.Duration):
                written = value.text
            else:
                written = self.wrapped(value.value, indent, setting.word + " ")
            self.statement(setting, f"{setting.word} {written}", indent, first_item)

        self.block(decl, f"mcp_server {decl.name.text}", decl.settings, 0, first, item)

    def decl_StateDecl(self, decl: ast.StateDecl, first: bool) -> None:
        def entry(e: ast.StateEntry, indent: int, first_entry: bool) -> None:
            text = f"{e.key.text}: {_type(e.type)}"
            if e.default is not None:
                text = self.assigned(f"{text} = ", e.default.value, indent)
            self.statement(e, text, indent, first_entry)

        self.block(decl, "state", decl.entries, 0, first, entry)

    def decl_CapabilityDecl(self, decl: ast.CapabilityDecl, first: bool) -> None:
        def item(i: Any, indent: int, first_item: bool) -> None:
            if isinstance(i, ast.ToolsAllow):
                text = f"tools allow {_names(i.allow)}" + (
                    f" deny {_names(i.deny)}" if i.deny else ""
                )
            elif isinstance(i, ast.ToolsDeny):
                text = f"tools deny {_names(i.deny)}"
            elif isinstance(i, ast.StateAllow):
                text = f"state allow {_names(i.allow)}"
            else:
                text = f"max_actions {i.count}"
            self.statement(i, text, indent, first_item)

        self.block(decl, f"capability {decl.name.text}", decl.items, 0, first, item)

    def decl_BudgetDecl(self, decl: ast.BudgetDecl, first: bool) -> None:
        def item(i: Any, indent: int, first_item: bool) -> None:
            if isinstance(i, ast.MaxActions):
                text = f"max_actions {i.count}"
            elif isinstance(i, ast.MaxToolCalls):
                text = f"max_tool_calls {i.count}"
            else:
                text = f"max_duration {i.duration.text}"
            self.statement(i, text, indent, first_item)

        self.block(decl, f"budget {decl.name.text}", decl.items, 0, first, item)

    def decl_PolicyDecl(self, decl: ast.PolicyDecl, first: bool) -> None:
        shadow = "shadow " if decl.shadow else ""
        head = f"policy {decl.name.text}: {shadow}{decl.effect.text}"
        if decl.targets:
            head += f" {_names(decl.targets)}"
        if decl.when is not None:
            head += f" when {decl.when.text}"
        self.leading(decl.span.start, 0, first)
        self.lines.append(head)
        # (a comment inside the condition is part of its text: none is in the comments)
        last = decl.when or (decl.targets[-1] if decl.targets else decl.effect)
        end = last.span.end
        self.inner(end)
        lines: list[tuple[ast.Node, str]] = []
        if decl.approval_timeout is not None:
            lines.append((decl.approval_timeout, f"approval_timeout {decl.approval_timeout.text}"))
        if decl.message is not None:
            lines.append((decl.message, f"message {format_value(decl.message.value)}"))
        for node, text in lines:  # each on a line of its own, with its comments
            self.trailing(end)
            self.leading(node.span.start, 1, True)
            self.lines.append("  " + text)
            self.inner(node.span.end)
            end = node.span.end
        self.trailing(decl.span.end)

    def decl_RedactDecl(self, decl: ast.RedactDecl, first: bool) -> None:
        self.statement(decl, f"redact {_names(decl.paths)}", 0, first)

    def decl_DenyToolDecl(self, decl: ast.DenyToolDecl, first: bool) -> None:
        self.statement(decl, f"deny_tool {_names(decl.tools)}{_message(decl.message)}", 0, first)

    def decl_DenyKeywordDecl(self, decl: ast.DenyKeywordDecl, first: bool) -> None:
        keywords = self.assigned("deny_keyword ", decl.keywords.value, 0)
        text = f"{keywords}{_message(decl.message)}"
        self.statement(decl, text, 0, first)

    def decl_DenyToolParamDecl(self, decl: ast.DenyToolParamDecl, first: bool) -> None:
        text = f"deny_tool_param {decl.target.text}"
        if decl.test and decl.operand:
            text = self.assigned(f"{text} {decl.test} ", decl.operand.value, 0)
        self.statement(decl, f"{text}{_message(decl.message)}", 0, first)

    def decl_AllowToolParamDecl(self, decl: ast.AllowToolParamDecl, first: bool) -> None:
        allowed = self.assigned(f"allow_tool_param {decl.target.text} ", decl.allowed.value, 0)
        text = f"{allowed}{_message(decl.message)}"
        self.statement(decl, text, 0, first)

    def decl_DenyToolParamMatchingDecl(
        self, decl: ast.DenyToolParamMatchingDecl, first: bool
    ) -> None:
        text = (
            f"deny_tool_param_matching {decl.target.text} {format_value(decl.pattern.value)}"
            f"{_message(decl.message)}"
        )
        self.statement(decl, text, 0, first)

    def decl_RateLimitToolDecl(self, decl: ast.RateLimitToolDecl, first: bool) -> None:
        rate = f"{decl.calls} per {decl.per.text}"
        text = f"rate_limit_tool {decl.tool.text} {rate}{_message(decl.message)}"
        self.statement(decl, text, 0, first)

    def decl_RequireStateDecl(self, decl: ast.RequireStateDecl, first: bool) -> None:
        value = self.assigned(f"require_state {decl.key.text} == ", decl.value.value, 0)
        text = f"{value}{_message(decl.message)}"
        self.statement(decl, text, 0, first)

    def decl_ProposalDecl(self, decl: ast.ProposalDecl, first: bool) -> None:
        head = f"proposal {decl.name.text}"
        if decl.source is not None:
            head += f" from {format_value(decl.source.value)}"
        if decl.under:
            head += f" under {_names(decl.under)}"
        self.block(decl, head, decl.items, 0, first, self.proposal_item)

    def proposal_item(self, item: Any, indent: int, first: bool) -> None:
        if isinstance(item, ast.ContextDecl):
            self.statement(item, self.assigned("context ", item.data.value, indent), indent, first)
            return
        self.leading(item.span.start, indent, first)  # (before `bracketed` takes the comments)
        prefix = f"{item.name.text} = "
        head = prefix + self.block_head(
            item, item.items, lambda: self.action_kind(item.kind, indent, prefix)
        )
        if item.after:
            head += f" after {_names(item.after)}"
        if item.items is None:
            self.statement(item, head, indent, first)
        else:
            self.block(item, head, item.items, indent, first, self.action_item)

    def action_item(self, item: Any, indent: int, first: bool) -> None:
        if isinstance(item, ast.Effects):
            self.effects(item, indent, first)
            return
        if isinstance(item, ast.Requires):
            description = (
                f" {format_value(item.description.value)}" if item.description is not None else ""
            )
            text = self.condition("requires ", item.condition, indent, "") + description
        elif isinstance(item, ast.Reads):
            text = f"reads {_names(item.keys)}"
        elif isinstance(item, ast.Retry):
            text = f"retry {item.count}"
        elif isinstance(item, ast.OnFailure):
            text = f"on_failure {item.word.text}"
        elif isinstance(item, ast.Timeout):
            text = f"timeout {item.duration.text}"
        elif isinstance(item, ast.Idempotent):
            text = "idempotent"
        elif isinstance(item, ast.ReversibilityItem):
            text = item.word.text
        elif isinstance(item, ast.Compensate):
            self.leading(item.span.start, indent, first)  # (before `bracketed`: see `call`)
            text = f"compensate {self.call(item.call, indent)}"
        elif isinstance(item, ast.CompensateWith):
            text = f"compensate with {item.action.text}"
        elif isinstance(item, ast.Meta):
            text = self.assigned("meta ", item.data.value, indent)
        else:
            text = f"mode {item.word.text}"
        self.statement(item, text, indent, first)

    def effects(self, item: ast.Effects, indent: int, first: bool) -> None:
        """`effects { k = v }` on one line when it has one entry whose value fits on a line
        of its own; else a block, one entry a line, each value wrapped to fit (as a call's
        arguments are spread: see `bracketed`)."""

        def effect(e: ast.Effect, inner: int, first_effect: bool) -> None:
            text = self.assigned(f"{e.key.text} = ", e.value.value, inner)
            self.statement(e, text, inner, first_effect)

        if len(item.entries) == 1:
            e = item.entries[0]
            if "\n" not in self.assigned(f"{e.key.text} = ", e.value.value, indent + 1):
                text = f"effects {{ {e.key.text} = {format_value(e.value.value)} }}"
                self.statement(item, text, indent, first)
                return
        self.block(item, "effects", item.entries, indent, first, effect)

    def decl_PlanDecl(self, decl: ast.PlanDecl, first: bool) -> None:
        def item(i: Any, indent: int, first_item: bool) -> None:
            if isinstance(i, ast.Candidates):
                text = f"candidates {_names(i.names)}"
            elif isinstance(i, ast.CostWeight):
                text = f"cost_weight {format_value(i.value.value)}"
            elif isinstance(i, ast.Target):
                parts = [f"{t.kind} {t.duration.text if t.duration else t.count}" for t in i.items]
                text = "target " + ", ".join(parts)
            else:
                text = self.assigned(f"set {i.name.text} = ", i.value.value, indent)
            self.statement(i, text, indent, first_item)

        self.block(decl, f"plan {decl.name.text}", decl.items, 0, first, item)

    def decl_TestDecl(self, decl: ast.TestDecl, first: bool) -> None:
        self.block(
            decl, f"test {format_value(decl.name.value)}", decl.items, 0, first, self.test_item
        )

    def test_item(self, item: Any, indent: int, first: bool) -> None:
        if isinstance(item, ast.Where):
            self.where(item, indent, first)
            return
        if isinstance(item, ast.GivenAction):
            self.leading(item.span.start, indent, first)  # (before `bracketed`: see `call`)
            text = "action " + self.action_kind(item.kind, indent, "action ")
        elif isinstance(item, ast.GivenState):
            text = self.assigned("state ", item.data.value, indent)
        elif isinstance(item, ast.GivenScope):
            text = self.assigned("scope ", item.data.value, indent)
        elif isinstance(item, ast.GivenHistory):
            text = self.assigned("history ", item.data.value, indent)
        elif isinstance(item, ast.GivenNow):
            text = f"now {format_value(item.time.value)}"
        elif isinstance(item, ast.GivenProposal):
            text = f"proposal {item.name.text}"
        elif isinstance(item, ast.GivenPlan):
            text = f"plan {item.name.text}"
        else:
            text = "expect " + _expectation(item)
        self.statement(item, text, indent, first)

    def where(self, item: ast.Where, indent: int, first: bool) -> None:
        cells = [
            [c.text if isinstance(c, ast.Name) else format_value(c.value) for c in row]
            for row in item.rows
        ]
        widths = [
            max(len(row[i]) for row in cells if i < len(row)) for i in range(max(map(len, cells)))
        ]
        self.leading(item.span.start, indent, first)
        self.lines.append("  " * indent + "where")
        self.trailing(item.span.start + len("where"))
        for number, (row, nodes) in enumerate(zip(cells, item.rows, strict=True)):
            # A row's comments stay with it: those on lines before it, and the one after it.
            start, end = self._row_span(nodes)
            self.leading(start, indent + 1, number == 0)
            padded = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
            self.lines.append("  " * (indent + 1) + "| " + " | ".join(padded) + " |")
            self.trailing(end)
        self.trailing(item.span.end)

    def _row_span(self, row: tuple[ast.Value | ast.Name, ...]) -> tuple[int, int]:
        """Where a table row is written: from its opening `|` to its closing one."""
        text = self.source.text
        first, last = row[0].span, row[-1].span
        opening = text.rfind("|", 0, first.start)
        closing = text.find("|", last.end)
        return (
            opening if opening != -1 else first.start,
            closing + 1 if closing != -1 else last.end,
        )


def _expectation(item: ast.Expect) -> str:
    def word(w: ast.Name | ast.Column | None) -> str:
        if isinstance(w, ast.Column):
            return f"${w.name}"
        assert w is not None
        return w.text if _PLAIN.match(w.text) else _string(w.text)

    if item.kind == "codes":
        return "codes " + ", ".join(c.text for c in item.codes)
    if item.kind == "winner":
        return f"winner {word(item.word)}"
    text = ("shadow " if item.shadow else "") + word(item.word)
    if item.by is not None:
        text += f" by {word(item.by)}"
    return text


#: The nodes holding a block (`{ ... }`) of statements, and the field that holds them.
_BLOCKS: dict[type[ast.Node], str] = {
    ast.ToolDecl: "items",
    ast.McpServerDecl: "settings",
    ast.StateDecl: "entries",
    ast.CapabilityDecl: "items",
    ast.BudgetDecl: "items",
    ast.ProposalDecl: "items",
    ast.ActionDecl: "items",
    ast.Effects: "entries",
    ast.PlanDecl: "items",
    ast.TestDecl: "items",
}


def statement_spans(
    source: Source, module: ast.Module, comments: Sequence[ast.Comment]
) -> list[Span]:
    """Where each statement of `module` is written: from its start to the `{` opening its
    block (whose items are statements of their own), or to its end when it has none. The
    formatter keeps a statement's comments on its lines, though it may join them onto one
    line or split them (a parameter list with comments inside); a table's rows, each on its
    line, are left out."""
    printer = _Printer(source, comments)
    spans: list[Span] = []

    def visit(node: ast.Node) -> None:
        if isinstance(node, ast.Where):
            return
        field = _BLOCKS.get(type(node))
        items: Sequence[ast.Node] | None = getattr(node, field) if field else None
        brace = printer.opening_brace(node, items) if items is not None else -1
        if brace == -1:
            spans.append(node.span)
            return
        spans.append(Span(node.span.start, brace + 1))
        for item in items or ():
            visit(item)

    for node in (*module.imports, *module.declarations):
        visit(node)
    return spans


def format_module(source: Source, module: ast.Module, comments: Sequence[ast.Comment]) -> str:
    """The canonical text of a parsed module (no self-check)."""
    return _Printer(source, comments).module(module)


def format_source(source: Source) -> str:
    """The canonical text of `source`. Raises `NotFormattable` (a `ValueError`) if it does not
    parse, and `FormatError` if the result would not mean the same thing (never returned)."""
    result = parse(source)
    if result.diagnostics.has_errors or result.module is None:
        raise NotFormattable(result.diagnostics)
    text = format_module(source, result.module, result.comments)
    again = parse(Source(source.name, text))
    if again.diagnostics.has_errors or again.module != result.module:
        raise FormatError(f"internal error: formatting {source.name} would change its meaning")
    if not _same_comments(_comment_pieces(again.comments), _comment_pieces(result.comments)):
        raise FormatError(f"internal error: formatting {source.name} would lose a comment")
    return _with_line_endings_of(source.text, text)


def _comment_pieces(comments: Iterable[ast.Comment]) -> Counter[str]:
    """The comments' texts, each cut before every `#` that follows a space: the formatter
    gathers several comments onto one line (`# one  # two`), which reads back as one."""
    return Counter(piece for c in comments for piece in _pieces(c.text))


def _pieces(comment: str) -> list[str]:
    """A comment cut before every `#` that follows a space (`# one  # two`)."""
    return [piece for piece in re.split(r"\s+(?=#)", comment.strip()) if piece]


def _same_comments(written: Counter[str], read: Counter[str]) -> bool:
    """Whether the comments `written` are those `read`: each as often, except that a pragma
    may be written more often (copied to each statement split off its line)."""
    return all(
        written[piece] == count or (written[piece] > count and ALLOW_PRAGMA.match(piece))
        for piece, count in read.items()
    ) and set(written) == set(read)


def _with_line_endings_of(original: str, text: str) -> str:
    """`text` (written with `\n`) with the line endings `original` starts with: a file checked
    out with CRLF (Windows, git's autocrlf) stays CRLF, so `fmt --check` judges the layout,
    not the line endings (prettier's `endOfLine: auto`)."""
    first = original.find("\n")
    if first > 0 and original[first - 1] == "\r":
        return text.replace("\n", "\r\n")
    return text
