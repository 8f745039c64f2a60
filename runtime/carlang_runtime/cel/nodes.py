"""The CEL expression tree the compiler, checker and cost estimate work on.

Made from cel-python's parse tree by `build.py`: parentheses and single-child chains are gone,
`&&`/`||` chains are flat, macros and `has()` have their own nodes. `start`/`end` are offsets
into the expression text, so every finding can point at its characters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = [
    "Expr",
    "Literal",
    "Ident",
    "Select",
    "Has",
    "Index",
    "Call",
    "Macro",
    "Unary",
    "Binary",
    "And",
    "Or",
    "Conditional",
    "ListExpr",
    "MapExpr",
    "children",
    "walk",
]


# Each node kind's attribute names, found once (the passes over a tree ask for every node).
_NAMES: dict[type, tuple[str, ...]] = {}


class Expr:
    """Any expression; `start`/`end` are its offsets in the source text."""

    __slots__ = ("start", "end")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end

    # Plain classes rather than dataclasses: a dataclass per node kind made this module the
    # slowest import of `carlang check`. One generic equality and repr serve them all.
    def _names(self) -> tuple[str, ...]:
        kind = type(self)
        names = _NAMES.get(kind)
        if names is None:
            names = tuple(
                n for cls in reversed(kind.__mro__) for n in getattr(cls, "__slots__", ())
            )
            _NAMES[kind] = names
        return names

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self._names())

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.start, self.end))

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._names())
        return f"{type(self).__name__}({shown})"


class Literal(Expr):
    """A constant: null, bool, int, uint, double, string or bytes."""

    __slots__ = ("value",)

    def __init__(self, start: int, end: int, value: Any) -> None:
        super().__init__(start, end)
        self.value = value


class Ident(Expr):
    """A variable, or a type name such as `int`; `root` for a leading-dot `.name`, which names
    the root scope (never a macro's variable)."""

    __slots__ = ("name", "root")

    def __init__(self, start: int, end: int, name: str, root: bool = False) -> None:
        super().__init__(start, end)
        self.name = name
        self.root = root


class Select(Expr):
    """`operand.field`."""

    __slots__ = ("operand", "field")

    def __init__(self, start: int, end: int, operand: Expr, field: str) -> None:
        super().__init__(start, end)
        self.operand = operand
        self.field = field


class Has(Expr):
    """`has(operand.field)`."""

    __slots__ = ("operand", "field")

    def __init__(self, start: int, end: int, operand: Expr, field: str) -> None:
        super().__init__(start, end)
        self.operand = operand
        self.field = field


class Index(Expr):
    """`operand[index]`."""

    __slots__ = ("operand", "index")

    def __init__(self, start: int, end: int, operand: Expr, index: Expr) -> None:
        super().__init__(start, end)
        self.operand = operand
        self.index = index


class Call(Expr):
    """`function(args)`, or `target.function(args)` when `target` is set."""

    __slots__ = ("function", "target", "args")

    def __init__(
        self, start: int, end: int, function: str, target: Expr | None, args: tuple[Expr, ...]
    ) -> None:
        super().__init__(start, end)
        self.function = function
        self.target = target
        self.args = args


class Macro(Expr):
    """`target.all(var, predicate)`, `exists`, `exists_one`, `filter`, and `map` (with a
    `result`, and a `predicate` in its three-argument form); and `cel.bind(var, target,
    result)`, kind "bind", which binds `var` to `target` once for `result`; `opt.optMap(var,
    result)` and `optFlatMap`, which bind `var` to the optional's value, if it has one. The
    two-variable comprehensions (`all(i, v, p)`, `exists`, `exists_one`, `transformList`,
    `transformMap`) also set `var2`: `var` is the index or key, `var2` the element or
    value."""

    __slots__ = ("kind", "target", "var", "predicate", "result", "var2")

    def __init__(
        self,
        start: int,
        end: int,
        kind: str,
        target: Expr,
        var: str,
        predicate: Expr | None,
        result: Expr | None,
        var2: str | None = None,
    ) -> None:
        super().__init__(start, end)
        self.kind = kind
        self.target = target
        self.var = var
        self.predicate = predicate
        self.result = result
        self.var2 = var2


class Unary(Expr):
    """`!operand` or `-operand`."""

    __slots__ = ("op", "operand")

    def __init__(self, start: int, end: int, op: str, operand: Expr) -> None:
        super().__init__(start, end)
        self.op = op
        self.operand = operand


class Binary(Expr):
    """An arithmetic, comparison or `in` operator."""

    __slots__ = ("op", "left", "right")

    def __init__(self, start: int, end: int, op: str, left: Expr, right: Expr) -> None:
        super().__init__(start, end)
        self.op = op
        self.left = left
        self.right = right


class And(Expr):
    """`a && b && ...`, flattened."""

    __slots__ = ("operands",)

    def __init__(self, start: int, end: int, operands: tuple[Expr, ...]) -> None:
        super().__init__(start, end)
        self.operands = operands


class Or(Expr):
    """`a || b || ...`, flattened."""

    __slots__ = ("operands",)

    def __init__(self, start: int, end: int, operands: tuple[Expr, ...]) -> None:
        super().__init__(start, end)
        self.operands = operands


class Conditional(Expr):
    """`condition ? then : otherwise`."""

    __slots__ = ("condition", "then", "otherwise")

    def __init__(self, start: int, end: int, condition: Expr, then: Expr, otherwise: Expr) -> None:
        super().__init__(start, end)
        self.condition = condition
        self.then = then
        self.otherwise = otherwise


class ListExpr(Expr):
    """`[a, b, ...]`; `optional` holds the positions of optional elements `[?x]`, which are
    left out when `x` is `optional.none()`."""

    __slots__ = ("items", "optional")

    def __init__(
        self, start: int, end: int, items: tuple[Expr, ...], optional: frozenset[int] = frozenset()
    ) -> None:
        super().__init__(start, end)
        self.items = items
        self.optional = optional


class MapExpr(Expr):
    """`{k: v, ...}`; `optional` holds the positions of optional entries `{?k: v}`, which are
    left out when `v` is `optional.none()`."""

    __slots__ = ("entries", "optional")

    def __init__(
        self,
        start: int,
        end: int,
        entries: tuple[tuple[Expr, Expr], ...],
        optional: frozenset[int] = frozenset(),
    ) -> None:
        super().__init__(start, end)
        self.entries = entries
        self.optional = optional


def children(node: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of `node`, in evaluation order."""
    if isinstance(node, (Select, Has)):
        return (node.operand,)
    if isinstance(node, Index):
        return (node.operand, node.index)
    if isinstance(node, Call):
        return ((node.target,) if node.target else ()) + node.args
    if isinstance(node, Macro):
        parts = (node.target, node.predicate, node.result)
        return tuple(part for part in parts if part is not None)
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, (And, Or)):
        return node.operands
    if isinstance(node, Conditional):
        return (node.condition, node.then, node.otherwise)
    if isinstance(node, ListExpr):
        return node.items
    if isinstance(node, MapExpr):
        return tuple(part for entry in node.entries for part in entry)
    return ()


def walk(node: Expr) -> Iterator[Expr]:
    """`node` and every expression under it, parents first."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))
