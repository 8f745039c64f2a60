"""Every name in a parsed file, with what it names: the index behind hover, go to definition,
find references, rename and the outline.

A symbol is `(kind, name)`: `tool`, `param` (`tool(param)`), `state` (a key or a key pattern),
`policy`, `capability`, `budget`, `proposal`, `action` (`proposal/action`), `plan`, `import`
(the imported path, resolved). An occurrence is one place the symbol is written, and says
whether it defines the symbol and, for state keys, whether it reads or writes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from .. import ast
from ..source import Span

__all__ = ["Occurrence", "SymbolKey", "occurrences", "occurrence_at", "state_key_matches"]

SymbolKey = tuple[str, str]
Role = Literal["definition", "reference", "read", "write"]


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One name in a file: the symbol it names, its span, its role, and the declaration node
    it belongs to (for hover)."""

    key: SymbolKey
    span: Span
    role: Role
    node: ast.Node

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


def occurrences(module: ast.Module) -> list[Occurrence]:
    """Every name in `module`, in source order."""
    found = list(_module(module))
    found.sort(key=lambda o: o.span.start)
    return found


def occurrence_at(module: ast.Module, offset: int) -> Occurrence | None:
    """The name at character `offset` (also just after its last character)."""
    best: Occurrence | None = None
    for occurrence in occurrences(module):
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
    elif not isinstance(decl, ast.RedactDecl):  # redactions are paths, not declared names
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
        tool, _, _param = decl.target.text.rpartition(".")
        if tool:
            span = Span(decl.target.span.start, decl.target.span.start + len(tool))
            yield Occurrence(("tool", tool), span, "reference", decl)
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
    for item in decl.items:
        if isinstance(item, ast.GivenAction):
            yield from _action_kind(item.kind, decl)
        elif isinstance(item, ast.GivenProposal):
            yield _o("proposal", item.name, "reference", decl)
        elif isinstance(item, ast.GivenPlan):
            yield _o("plan", item.name, "reference", decl)
        elif isinstance(item, ast.Expect) and isinstance(item.by, ast.Name):
            yield _o("policy", item.by, "reference", decl)
