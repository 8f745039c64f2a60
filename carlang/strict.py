"""What `carlang check --strict` adds: policies that never change a decision (shadowed by
another), policies the tests do not exercise in both outcomes, and shadow policies no test
makes fire.

Shadowing is decided by simple analysis only, so every finding is certain: policy A is shadowed
by B when both have the same effect, B targets every tool A does (or every tool), and B's
condition holds whenever A's does, which is known when B has no condition, or every conjunct of
B's condition (`x && y && ...`) is also a conjunct of A's. A `deny_tool T` shadows a deny
policy that targets only T.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from carlang_runtime import ir
from carlang_runtime.cel import nodes as n
from carlang_runtime.cel.build import parse
from carlang_runtime.cel.parser import CelSyntaxError

from .compiler import CompileResult
from .diagnostics import Diagnostic
from .testrun import Coverage

__all__ = ["shadowed_policies", "untested_policies"]


def _shape(expr: Any) -> Any:
    """An expression's structure without its source positions (for comparing conditions)."""
    if isinstance(expr, n.Expr):
        fields = [name for name in expr._names() if name not in ("start", "end")]
        return (type(expr).__name__, *(_shape(getattr(expr, name)) for name in fields))
    if isinstance(expr, (list, tuple)):
        return tuple(_shape(item) for item in expr)
    return expr


def _conjuncts(condition: str) -> frozenset[Any] | None:
    try:
        tree = parse(condition)
    except CelSyntaxError:
        return None
    operands = tree.operands if isinstance(tree, n.And) else (tree,)
    return frozenset(_shape(operand) for operand in operands)


def _covers(wide: ir.Policy, narrow: ir.Policy) -> bool:
    """Whether `wide` targets every tool `narrow` does."""
    wide_tools = getattr(wide, "tools", None) or []
    narrow_tools = getattr(narrow, "tools", None) or []
    if not wide_tools:
        return True
    return bool(narrow_tools) and set(narrow_tools) <= set(wide_tools)


@dataclass(frozen=True)
class _Policies:
    """A program's enforced policies, indexed for `_shadowing`: each one's place, the
    conjuncts of each CEL condition (parsed once: parsing them again for every pair made
    `check --strict` quadratic in parses, 2 minutes for 1,000 policies), the CEL policies
    holding each conjunct, and those without a condition (which may shadow any)."""

    enforced: Sequence[ir.Policy]
    place: dict[int, int]
    conjuncts: dict[int, frozenset[Any] | None]
    holding: dict[Any, list[ir.Policy]]
    unconditional: list[ir.Policy]

    @classmethod
    def of(cls, enforced: Sequence[ir.Policy]) -> _Policies:
        conjuncts: dict[int, frozenset[Any] | None] = {}
        holding: dict[Any, list[ir.Policy]] = {}
        unconditional: list[ir.Policy] = []
        for policy in enforced:
            if isinstance(policy, ir.CelPolicy) and policy.when is not None:
                found = conjuncts[id(policy)] = _conjuncts(policy.when)
                for conjunct in found or ():
                    holding.setdefault(conjunct, []).append(policy)
            else:
                unconditional.append(policy)
        place = {id(policy): i for i, policy in enumerate(enforced)}
        return cls(enforced, place, conjuncts, holding, unconditional)

    def mine(self, policy: ir.CelPolicy) -> frozenset[Any] | None:
        """The conjuncts of `policy`'s condition (empty without one; None: unparseable)."""
        return self.conjuncts[id(policy)] if policy.when is not None else frozenset()

    def candidates(self, mine: frozenset[Any] | None) -> list[ir.Policy]:
        """The policies that may shadow one whose conditions are `mine`, in program order:
        those without a condition, and those sharing a conjunct with it."""
        sharing = {id(p): p for c in mine or () for p in self.holding.get(c, ())}
        found = [*self.unconditional, *sharing.values()]
        return sorted(found, key=lambda policy: self.place[id(policy)])


def _shadowing(policy: ir.CelPolicy, policies: _Policies) -> ir.Policy | None:
    if policy.effect is ir.PolicyEffect.ALLOW:
        return None  # allow policies make an allow-list together: none is redundant alone
    mine = policies.mine(policy)
    here = policies.place[id(policy)]
    for other in policies.candidates(mine):
        if other is policy:
            continue
        if isinstance(other, ir.DenyToolRule):
            if policy.effect is ir.PolicyEffect.DENY and policy.tools == [other.tool]:
                return other
            continue
        if not isinstance(other, ir.CelPolicy) or other.effect is not policy.effect:
            continue
        if not _covers(other, policy):
            continue
        if other.when is None:
            if policy.when is not None or policies.place[id(other)] < here:
                return other
            continue
        theirs = policies.conjuncts[id(other)]
        if mine is None or theirs is None or not theirs <= mine:
            continue
        same = theirs == mine and set(other.tools) == set(policy.tools)
        if same and policies.place[id(other)] > here:
            continue  # two identical policies: the later one is the one reported
        return other
    return None


def shadowed_policies(result: CompileResult) -> list[Diagnostic]:
    """CL0523 for each policy another one makes redundant."""
    program = result.program
    if program is None:
        return []
    found = []
    # A shadow policy decides nothing: it neither is made redundant nor makes one redundant.
    policies = _Policies.of([p for p in program.policies if not p.shadow])
    for policy in policies.enforced:
        if not isinstance(policy, ir.CelPolicy):
            continue
        other = _shadowing(policy, policies)
        origin = result.source_map.policies.get(policy.name)
        if other is None or origin is None:
            continue
        message = (
            f"policy `{policy.name}` never changes a decision: `{other.name}` has the same "
            "effect on the same tools and matches whenever it does"
        )
        found.append(
            Diagnostic(
                "CL0523",
                "warning",
                message,
                (origin.label("", origin.node.name.span),),
                "remove it, or narrow the other policy",
            )
        )
    return found


def untested_policies(results: Sequence[CompileResult], coverage: Coverage) -> list[Diagnostic]:
    """CL0524 for each policy whose true or false outcome no test reaches."""
    found: dict[str, Diagnostic] = {}
    for result in results:
        if result.program is None:
            continue
        for policy in result.program.policies:
            key = Coverage.key(policy)
            missing = coverage.missing(key)
            origin = result.source_map.policies.get(policy.name)
            if missing is None or origin is None or key in found:
                continue
            name_span = getattr(origin.node, "name", None)
            span = name_span.span if name_span is not None else origin.node.span
            if policy.shadow and not missing.startswith("never reached false"):
                found[key] = Diagnostic(
                    "CL0526",
                    "warning",
                    f"shadow policy `{policy.name}` never fired in any test",
                    (origin.label("", span),),
                    "add a `test` with `expect shadow ...` where it fires, or remove it",
                )
                continue
            found[key] = Diagnostic(
                "CL0524",
                "warning",
                f"policy `{policy.name}` is not exercised by any test"
                + missing.removeprefix("never exercised")
                if missing.startswith("never exercised")
                else f"policy `{policy.name}` {missing}",
                (origin.label("", span),),
                "add a `test` that reaches it (`carlang test --coverage` lists what is missing)",
            )
    return list(found.values())
