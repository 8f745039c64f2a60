"""The CEL expression tree the compiler, checker and cost estimate work on.

Made from cel-python's parse tree by `build.py`: parentheses and single-child chains are gone,
`&&`/`||` chains are flat, macros and `has()` have their own nodes. `start`/`end` are offsets
into the expression text, so every finding can point at its characters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Expr:
    """Any expression; `start`/`end` are its offsets in the source text."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Literal(Expr):
    """A constant: null, bool, int, uint, double, string or bytes."""

    value: Any


@dataclass(frozen=True, slots=True)
class Ident(Expr):
    """A variable, or a type name such as `int`."""

    name: str


@dataclass(frozen=True, slots=True)
class Select(Expr):
    """`operand.field`."""

    operand: Expr
    field: str


@dataclass(frozen=True, slots=True)
class Has(Expr):
    """`has(operand.field)`."""

    operand: Expr
    field: str


@dataclass(frozen=True, slots=True)
class Index(Expr):
    """`operand[index]`."""

    operand: Expr
    index: Expr


@dataclass(frozen=True, slots=True)
class Call(Expr):
    """`function(args)`, or `target.function(args)` when `target` is set."""

    function: str
    target: Expr | None
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Macro(Expr):
    """`target.all(var, predicate)`, `exists`, `exists_one`, `filter`, and `map` (with a
    `result`, and a `predicate` in its three-argument form)."""

    kind: str
    target: Expr
    var: str
    predicate: Expr | None
    result: Expr | None


@dataclass(frozen=True, slots=True)
class Unary(Expr):
    """`!operand` or `-operand`."""

    op: str
    operand: Expr


@dataclass(frozen=True, slots=True)
class Binary(Expr):
    """An arithmetic, comparison or `in` operator."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class And(Expr):
    """`a && b && ...`, flattened."""

    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or(Expr):
    """`a || b || ...`, flattened."""

    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Conditional(Expr):
    """`condition ? then : otherwise`."""

    condition: Expr
    then: Expr
    otherwise: Expr


@dataclass(frozen=True, slots=True)
class ListExpr(Expr):
    """`[a, b, ...]`."""

    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class MapExpr(Expr):
    """`{k: v, ...}`."""

    entries: tuple[tuple[Expr, Expr], ...]


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
