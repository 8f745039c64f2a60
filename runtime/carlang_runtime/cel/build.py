"""From cel-python's parse tree to `nodes`: literals decoded, chains collapsed, macros found."""

from __future__ import annotations

import re
from typing import Any, Final

from ..jsontext import shorten
from ..lalr import Node, Token
from . import nodes as n
from .extensions import NAMESPACES
from .functions import FUNCTIONS
from .parser import CelSyntaxError, parse_cel
from .values import INT64_MAX, INT64_MIN, TYPES, UINT64_MAX, CelUint

__all__ = ["build", "parse"]

MACROS: Final = frozenset(
    {"all", "exists", "exists_one", "map", "filter", "sortBy", "optMap", "optFlatMap"}
)

_BINARY: Final = {
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_in": "in",
    "addition_add": "+",
    "addition_sub": "-",
    "multiplication_mul": "*",
    "multiplication_div": "/",
    "multiplication_mod": "%",
}
_SIMPLE_ESCAPES: Final = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "`": "`",
    "?": "?",
}
_ESCAPE: Final = re.compile(
    r"\\(?:([abfnrtv\\'\"`?])|[xX]([0-9a-fA-F]{2})|([0-3][0-7]{2})"
    r"|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|(.?))",
    re.S,
)


_TWO_VARIABLE: Final = {
    "all": "all",
    "exists": "exists",
    "existsOne": "exists_one",
    "exists_one": "exists_one",
    "transformList": "transformList",
    "transformMap": "transformMap",
    "transformMapEntry": "transformMapEntry",
}


def _two_variables(name: str, args: tuple[n.Expr, ...]) -> bool:
    arities = (3,) if name in ("all", "exists", "existsOne", "exists_one") else (3, 4)
    return len(args) in arities and all(
        isinstance(arg, n.Ident) and not arg.root for arg in args[:2]
    )


_QUALIFIED_TYPES: Final = frozenset(name for name in TYPES if "." in name)


def _qualified_name(node: n.Expr) -> str | None:
    """`a.b.c` for a chain of field selections on an identifier, else None."""
    if isinstance(node, n.Ident) and not node.root:
        return node.name
    if isinstance(node, n.Select):
        operand = _qualified_name(node.operand)
        return None if operand is None else f"{operand}.{node.field}"
    return None


def parse(text: str) -> n.Expr:
    """The expression tree of a CEL expression; raises `CelSyntaxError`."""
    return build(parse_cel(text), text)


def build(tree: Node, text: str) -> n.Expr:
    """The expression tree of a parse tree of `text`."""
    try:
        return _Builder(text).expr(tree)
    except RecursionError:
        raise CelSyntaxError("the expression nests too deeply", 1, 1) from None


class _Builder:
    def __init__(self, text: str) -> None:
        self.text = text

    def fail(self, message: str, offset: int, *, literal: bool = False) -> CelSyntaxError:
        line = self.text.count("\n", 0, offset) + 1
        column = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return CelSyntaxError(message, line, column, literal=literal)

    def expr(self, node: Node) -> n.Expr:
        # The parser has collapsed the one-operand steps of the precedence ladder already.
        method = getattr(self, "_" + node.data, None)
        if method is None:
            raise self.fail(f"unsupported construct {node.data}", node.span[0])
        result: n.Expr = method(node)
        return result

    # -- operators -------------------------------------------------------------------------

    def _expr(self, node: Node) -> n.Expr:
        condition, then, otherwise = (self.expr(child) for child in node.children)
        return n.Conditional(*node.span, condition, then, otherwise)

    def _conditionalor(self, node: Node) -> n.Expr:
        return n.Or(*node.span, self._flat(node, "conditionalor"))

    def _conditionaland(self, node: Node) -> n.Expr:
        return n.And(*node.span, self._flat(node, "conditionaland"))

    def _flat(self, node: Node, rule: str) -> tuple[n.Expr, ...]:
        # `a || b || c` is ((a || b) || c) in the tree: gather it back into one list.
        operands: list[n.Expr] = []
        while len(node.children) == 2 and node.data == rule:
            left, right = node.children
            operands.append(self.expr(right))
            node = left
        operands.append(self.expr(node))
        return tuple(reversed(operands))

    def _relation(self, node: Node) -> n.Expr:
        return self._binary(node)

    def _addition(self, node: Node) -> n.Expr:
        return self._binary(node)

    def _multiplication(self, node: Node) -> n.Expr:
        return self._binary(node)

    def _binary(self, node: Node) -> n.Expr:
        operator_node, right = node.children
        (left,) = operator_node.children
        return n.Binary(*node.span, _BINARY[operator_node.data], self.expr(left), self.expr(right))

    def _unary(self, node: Node) -> n.Expr:
        operator_node, operand = node.children
        op = "!" if operator_node.data == "unary_not" else "-"
        return n.Unary(*node.span, op, self.expr(operand))

    # -- members ---------------------------------------------------------------------------

    def _member_dot(self, node: Node) -> n.Expr:
        operand, name = node.children
        target = self.expr(operand)
        if name[0] == "ESC_IDENT":  # a.`content-type`: a field name, never a type's
            return n.Select(*node.span, target, name[1][1:-1])
        qualified = _qualified_name(target)
        if qualified is not None and f"{qualified}.{name[1]}" in _QUALIFIED_TYPES:
            # `google.protobuf.Timestamp`: the type name, as `type()` returns it.
            return n.Ident(*node.span, f"{qualified}.{name[1]}")
        return n.Select(*node.span, target, name[1])

    def _member_dot_opt(self, node: Node) -> n.Expr:
        # `a.?b`: cel-go's optional selection, the function `_?._` on the field's name.
        operand, name = node.children
        field = name[1][1:-1] if name[0] == "ESC_IDENT" else name[1]
        literal = n.Literal(name[2], name[3], field)
        return n.Call(*node.span, "_?._", None, (self.expr(operand), literal))

    def _member_index_opt(self, node: Node) -> n.Expr:
        operand, index = node.children
        return n.Call(*node.span, "_[?_]", None, (self.expr(operand), self.expr(index)))

    def _member_dot_arg(self, node: Node) -> n.Expr:
        operand, name, *rest = node.children
        args = self._args(rest)
        if name[1] in _TWO_VARIABLE and _two_variables(name[1], args):
            return self._two_variable(node, name, self.expr(operand), args)
        if name[1] in MACROS:
            return self._macro(node, name, self.expr(operand), args)
        target = self.expr(operand)
        if isinstance(target, n.Ident) and not target.root and target.name == "cel":
            if name[1] == "bind":
                return self._bind(node, name, args)
        if isinstance(target, n.Ident) and not target.root and target.name in NAMESPACES:
            qualified = f"{target.name}.{name[1]}"
            if qualified in FUNCTIONS:  # `math.greatest(...)`: a function, not a method
                return n.Call(*node.span, qualified, None, args)
        return n.Call(*node.span, name[1], target, args)

    def _member_index(self, node: Node) -> n.Expr:
        operand, index = node.children
        return n.Index(*node.span, self.expr(operand), self.expr(index))

    def _member_object(self, node: Node) -> n.Expr:
        raise self.fail(
            "message construction (`Type{field: value}`) is not supported; use a map",
            node.span[0],
        )

    def _macro(self, node: Node, name: Token, target: n.Expr, args: tuple[n.Expr, ...]) -> n.Expr:
        kind = name[1]
        arities = (2, 3) if kind == "map" else (2,)
        usage = f"{kind}(x, <condition>)" if kind != "map" else "map(x, <value>)"
        if kind in ("sortBy", "optMap", "optFlatMap"):
            usage = f"{kind}(x, <expression>)"
        if len(args) not in arities:
            raise self.fail(f"{kind}() takes a variable name and an expression: {usage}", name[2])
        if not isinstance(args[0], n.Ident):
            raise self.fail(
                f"the first argument of {kind}() must be a variable name: {usage}",
                args[0].start,
            )
        if kind == "map":
            predicate = args[1] if len(args) == 3 else None
            return n.Macro(*node.span, kind, target, args[0].name, predicate, args[-1])
        if kind in ("sortBy", "optMap", "optFlatMap"):
            # cel-go's lists extension: the elements ordered by a key; its optional library:
            # the value of an optional transformed, when there is one.
            return n.Macro(*node.span, kind, target, args[0].name, None, args[1])
        return n.Macro(*node.span, kind, target, args[0].name, args[1], None)

    def _two_variable(
        self, node: Node, name: Token, target: n.Expr, args: tuple[n.Expr, ...]
    ) -> n.Expr:
        # cel-go's two-variable comprehensions: `all(i, v, p)`, `exists`, `existsOne`,
        # `transformList(i, v, [filter,] expr)`, `transformMap(k, v, [filter,] expr)`.
        first, second = args[0], args[1]
        assert isinstance(first, n.Ident) and isinstance(second, n.Ident)
        if first.name == second.name:
            raise self.fail(f"{name[1]}() needs two different variable names", second.start)
        kind = _TWO_VARIABLE[name[1]]
        if kind in ("all", "exists", "exists_one"):
            return n.Macro(*node.span, kind, target, first.name, args[2], None, second.name)
        predicate = args[2] if len(args) == 4 else None
        return n.Macro(*node.span, kind, target, first.name, predicate, args[-1], second.name)

    def _bind(self, node: Node, name: Token, args: tuple[n.Expr, ...]) -> n.Expr:
        # cel.bind(x, init, body): `body` with `x` bound to the value of `init`, a macro of
        # kind "bind" (target: init, result: body) evaluated once, not a loop.
        if len(args) != 3 or not isinstance(args[0], n.Ident) or args[0].root:
            raise self.fail(
                "cel.bind() takes a variable name, its value and an expression:"
                " cel.bind(x, <value>, <expression>)",
                name[2],
            )
        return n.Macro(*node.span, "bind", args[1], args[0].name, None, args[2])

    # -- primaries -------------------------------------------------------------------------

    def _ident(self, node: Node) -> n.Expr:
        return n.Ident(*node.span, node.children[0][1])

    def _dot_ident(self, node: Node) -> n.Expr:
        return n.Ident(*node.span, node.children[0][1], root=True)

    def _ident_arg(self, node: Node) -> n.Expr:
        name, *rest = node.children
        args = self._args(rest)
        if name[1] == "has":
            if len(args) != 1 or not isinstance(args[0], n.Select):
                raise self.fail("has() takes one field selection, like has(params.url)", name[2])
            return n.Has(*node.span, args[0].operand, args[0].field)
        return n.Call(*node.span, name[1], None, args)

    def _dot_ident_arg(self, node: Node) -> n.Expr:
        name, *rest = node.children
        return n.Call(*node.span, name[1], None, self._args(rest))

    def _paren_expr(self, node: Node) -> n.Expr:
        return self.expr(node.children[0])

    def _list_lit(self, node: Node) -> n.Expr:
        if not node.children:
            return n.ListExpr(*node.span, ())
        items, optional = self._optional_parts(node.children[0].children)
        return n.ListExpr(*node.span, items, optional)

    def _map_lit(self, node: Node) -> n.Expr:
        if not node.children:
            return n.MapExpr(*node.span, ())
        parts, optional = self._optional_parts(node.children[0].children)
        entries = tuple(zip(parts[0::2], parts[1::2], strict=True))
        return n.MapExpr(*node.span, entries, frozenset(i // 2 for i in optional))

    def _optional_parts(self, children: list[Any]) -> tuple[tuple[n.Expr, ...], frozenset[int]]:
        # `[?x]` and `{?k: v}`: the parts, and the positions of those marked optional.
        parts: list[n.Expr] = []
        optional: set[int] = set()
        for child in children:
            if isinstance(child, Node) and child.data == "opt_expr":
                optional.add(len(parts))
                child = child.children[0]
            parts.append(self.expr(child))
        return tuple(parts), frozenset(optional)

    def _args(self, rest: list[Any]) -> tuple[n.Expr, ...]:
        if not rest:
            return ()
        for child in rest[0].children:
            if isinstance(child, Node) and child.data == "opt_expr":
                raise self.fail(
                    "`?` marks an optional element of a list or map literal (`[?x]`,"
                    " `{?k: v}`), not an argument",
                    child.span[0],
                )
        return tuple(self.expr(child) for child in rest[0].children)

    def _literal(self, node: Node) -> n.Expr:
        kind, text, start, _end = node.children[0]
        return n.Literal(*node.span, self.literal_value(kind, text, start))

    def literal_value(self, kind: str, text: str, start: int) -> Any:
        if kind == "INT_LIT":
            value = _integer(text)
            if not INT64_MIN <= value <= INT64_MAX:
                raise self.fail(
                    f"integer {shorten(text)} is out of the int64 range", start, literal=True
                )
            return value
        if kind == "UINT_LIT":
            value = _integer(text[:-1])
            if not 0 <= value <= UINT64_MAX:
                raise self.fail(
                    f"unsigned integer {shorten(text)} is out of the uint64 range",
                    start,
                    literal=True,
                )
            return CelUint(value)
        if kind == "FLOAT_LIT":
            number = float(text)
            if number in (float("inf"), float("-inf")):
                raise self.fail(
                    f"number {shorten(text)} is too large for a double", start, literal=True
                )
            return number
        if kind == "BOOL_LIT":
            return text == "true"
        if kind == "NULL_LIT":
            return None
        return self.string(text, start)

    def string(self, text: str, start: int) -> str | bytes:
        prefix = 0
        is_bytes = text[prefix] in "bB"
        prefix += is_bytes
        raw = text[prefix] in "rR"
        prefix += raw
        quote = 3 if text[prefix : prefix + 3] in ('"""', "'''") else 1
        body = text[prefix + quote : len(text) - quote]
        if raw:
            return body.encode("utf-8") if is_bytes else body
        return self.unescape(body, is_bytes, start + prefix + quote)

    def unescape(self, body: str, is_bytes: bool, offset: int) -> str | bytes:
        pieces: list[bytes] = []
        position = 0
        for match in _ESCAPE.finditer(body):
            pieces.append(body[position : match.start()].encode("utf-8", "surrogatepass"))
            position = match.end()
            simple, hex_byte, octal, short, long, bad = match.groups()
            if simple:
                pieces.append(_SIMPLE_ESCAPES[simple].encode())
            elif hex_byte or octal:
                code = int(hex_byte, 16) if hex_byte else int(octal, 8)
                pieces.append(bytes([code]) if is_bytes else chr(code).encode("utf-8"))
            elif (short or long) and not is_bytes:
                code = int(short or long, 16)
                if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                    raise self.fail("invalid unicode escape", offset + match.start())
                pieces.append(chr(code).encode("utf-8"))
            else:
                shown = match.group(0) if bad is not None else "\\"
                raise self.fail(f"invalid escape `{shown}` in a string", offset + match.start())
        pieces.append(body[position:].encode("utf-8", "surrogatepass"))
        data = b"".join(pieces)
        if is_bytes:
            return data
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail("the string is not valid UTF-8 after its escapes", offset) from None


#: More digits than any 64-bit integer has (and Python will not convert past 4300).
_MAX_INT_DIGITS = 40


def _integer(text: str) -> int:
    negative = text.startswith("-")
    body = text[1:] if negative else text
    if len(body) > _MAX_INT_DIGITS:
        return UINT64_MAX + 1  # out of every integer range, without converting it
    value = int(body[2:], 16) if body[:2].lower() == "0x" else int(body)
    return -value if negative else value
