"""A static upper estimate of what evaluating an expression costs, in abstract steps.

Every node costs one step plus its parts; a macro costs its body once per element of its
range. The size of a list is known for a literal and for what `map`/`filter` make of a list of
known size; anything else (a list from the activation) is assumed to hold `assumed_size`
elements, so nested macros over data multiply: `a.all(x, b.all(y, c.all(z, ...)))` costs
about assumed_size**3 steps, which the default bound rejects.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import nodes as n
from .functions import FUNCTIONS

__all__ = ["Estimate", "estimate"]


@dataclass(frozen=True, slots=True)
class Estimate:
    """`cost` in steps; `size` is the element count when the value is a list (None if not
    known to be one)."""

    cost: int
    size: int | None = None


def estimate(node: n.Expr, assumed_size: int) -> Estimate:
    """The cost estimate of `node`, assuming lists of unknown size hold `assumed_size`."""
    return _Estimator(assumed_size).estimate(node)


class _Estimator:
    def __init__(self, assumed_size: int) -> None:
        self.assumed_size = assumed_size

    def estimate(self, node: n.Expr) -> Estimate:
        if isinstance(node, n.Macro):
            return self.macro(node)
        parts = [self.estimate(child) for child in n.children(node)]
        cost = 1 + sum(part.cost for part in parts)
        if isinstance(node, n.Call):
            function = FUNCTIONS.get(node.function)
            cost += (function.cost if function else 1) - 1
        if isinstance(node, n.ListExpr):
            return Estimate(cost, len(node.items))
        if isinstance(node, n.Binary) and node.op == "+" and all(p.size is not None for p in parts):
            return Estimate(cost, sum(p.size or 0 for p in parts))
        if isinstance(node, n.Binary) and node.op == "in":
            right = parts[1]
            cost += right.size if right.size is not None else self.assumed_size
        return Estimate(cost)

    def macro(self, node: n.Macro) -> Estimate:
        target = self.estimate(node.target)
        if node.kind in ("bind", "optMap", "optFlatMap"):  # the result once, not per element
            assert node.result is not None
            result = self.estimate(node.result)
            return Estimate(1 + target.cost + result.cost, result.size)
        size = target.size if target.size is not None else self.assumed_size
        body = sum(
            self.estimate(part).cost for part in (node.predicate, node.result) if part is not None
        )
        cost = target.cost + size * (body + 1)
        return Estimate(cost, size if node.kind in ("map", "filter", "transformList") else None)
