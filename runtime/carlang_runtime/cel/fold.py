"""Constant folding: sub-expressions of literals (`duration("5m")`, `timestamp("...")`,
`60 * 60`, `true && false`, `true ? a : b`) evaluated once, at compile time, instead of on
every call.

A sub-expression is folded when it is a call of a standard function, or an operator, whose
operands are all literals (after folding), and evaluating it succeeds with a scalar value. One
that fails (`1 / 0`, `duration("soon")`) is left as it is, so that the error happens where it
did, with the same meaning (`false && 1 / 0 == 1` is still `false`).
"""

from __future__ import annotations

import copy
from typing import Any, Final

from . import nodes as n
from . import ops
from .functions import FUNCTIONS
from .values import CelDuration, CelEvalError, CelTimestamp, CelType, CelUint

__all__ = ["fold"]

# Values a folded literal may hold: immutable, and each of bounded size given the source.
_SCALARS: Final = frozenset(
    {type(None), bool, int, CelUint, float, str, bytes, CelTimestamp, CelDuration, CelType}
)
_BINARY: Final = {
    "==": ops.eq,
    "!=": ops.ne,
    "<": ops.lt,
    "<=": ops.le,
    ">": ops.gt,
    ">=": ops.ge,
    "+": ops.add,
    "-": ops.sub,
    "*": ops.mul,
    "/": ops.div,
    "%": ops.mod,
}
_UNARY: Final = {"-": ops.neg, "!": ops.logical_not}


def fold(node: n.Expr) -> n.Expr:
    """`node` with its constant sub-expressions replaced by their values (a new tree where
    anything changed; unchanged sub-trees are shared)."""
    if isinstance(node, (n.Literal, n.Ident)):
        return node  # nothing under it, and nothing to fold
    rebuilt = _with_folded_children(node)
    if isinstance(rebuilt, n.Conditional):  # `true ? a : b` is `a`
        condition = rebuilt.condition
        if isinstance(condition, n.Literal) and type(condition.value) is bool:
            return rebuilt.then if condition.value else rebuilt.otherwise
    value = _constant_value(rebuilt)
    if value is _NOT_CONSTANT:
        return rebuilt
    return n.Literal(node.start, node.end, value)


def _with_folded_children(node: n.Expr) -> n.Expr:
    changed: dict[str, Any] = {}
    for name in node._names():
        value = getattr(node, name)
        folded = _fold_part(value)
        if folded is not value:
            changed[name] = folded
    if not changed:
        return node
    clone = copy.copy(node)
    for name, value in changed.items():
        setattr(clone, name, value)
    return clone


def _fold_part(value: Any) -> Any:
    if isinstance(value, n.Expr):
        return fold(value)
    if type(value) is tuple:
        parts = tuple(_fold_part(part) for part in value)
        return value if all(a is b for a, b in zip(parts, value, strict=True)) else parts
    return value


class _NotConstant:
    pass


_NOT_CONSTANT: Final = _NotConstant()


def _literals(*parts: n.Expr | None) -> list[Any] | None:
    values = []
    for part in parts:
        if part is None:
            continue
        if not isinstance(part, n.Literal):
            return None
        values.append(part.value)
    return values


def _constant_value(node: n.Expr) -> Any:
    if isinstance(node, n.Call):
        function = FUNCTIONS.get(node.function)
        if function is None or not function.accepts(node.target is not None, len(node.args)):
            return _NOT_CONSTANT
        if function.precharge is not None:
            return _NOT_CONSTANT  # its result may be large: built at run time, under the budget
        values = _literals(node.target, *node.args)
        return _NOT_CONSTANT if values is None else _evaluate(function.impl, values)
    if isinstance(node, n.Binary) and node.op in _BINARY:
        values = _literals(node.left, node.right)
        return _NOT_CONSTANT if values is None else _evaluate(_BINARY[node.op], values)
    if isinstance(node, (n.And, n.Or)):  # of bool literals only: anything else may fail
        values = _literals(*node.operands)
        if values is None or any(type(value) is not bool for value in values):
            return _NOT_CONSTANT
        return all(values) if isinstance(node, n.And) else any(values)
    if isinstance(node, n.Unary) and node.op in _UNARY:
        values = _literals(node.operand)
        return _NOT_CONSTANT if values is None else _evaluate(_UNARY[node.op], values)
    return _NOT_CONSTANT


def _evaluate(function: Any, values: list[Any]) -> Any:
    try:
        value = function(*values)
    except (CelEvalError, ArithmeticError, LookupError, TypeError, ValueError):
        # Left to fail at run time, where the error is the evaluation's (never the compile's:
        # a Python error that a function let through would otherwise crash it).
        return _NOT_CONSTANT
    return value if type(value) in _SCALARS else _NOT_CONSTANT
