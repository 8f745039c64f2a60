"""Name resolution (cel-spec, "Name Resolution"): qualified names bound as a whole, containers.

A variable may be declared with a dotted name (`a.b.c`), and an environment may declare a
container (`com.example`). The expression `a.b.c` then means the longest prefix of it that is a
declared name, with field selection on the rest; each prefix is tried relative to the
container first (`com.example.a.b.c`, `com.a.b.c`, `a.b.c`, then `com.example.a.b`, ...), as
cel-go does. A leading dot (`.a.b`) names the root scope: no container, no macro variable.

With declarations, `resolve` rewrites the tree once, before the checks (plain data between
stages); without them, `codegen` asks `alternatives` and tries them against the activation.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from copy import copy

from . import nodes as n

__all__ = ["candidates", "chain", "alternatives", "resolve"]


def candidates(parts: tuple[str, ...], container: str, absolute: bool) -> Iterator[tuple[str, int]]:
    """The names `parts` may mean, in the order they are tried (the longest prefix first, each
    relative to the innermost container first), with how many of `parts` each one takes."""
    scopes = [] if absolute or not container else container.split(".")
    for length in range(len(parts), 0, -1):
        name = ".".join(parts[:length])
        for depth in range(len(scopes), 0, -1):
            yield ".".join(scopes[:depth]) + "." + name, length
        yield name, length


def chain(node: n.Expr) -> tuple[n.Ident, tuple[str, ...]] | None:
    """`a.b.c` as its identifier and the selected fields (`b`, `c`), or None if `node` is not
    a chain of field selections on an identifier. Parentheses end a chain (cel-spec: `(a.b).c`
    chooses field selection): a parenthesized operand starts after its selection does."""
    fields: list[str] = []
    while isinstance(node, n.Select) and node.operand.start == node.start:
        fields.append(node.field)
        node = node.operand
    if not isinstance(node, n.Ident):
        return None
    return node, tuple(reversed(fields))


def _bound(node: n.Expr, name: str, fields: tuple[str, ...], ident: n.Ident) -> n.Expr:
    """`name` (a root identifier spanning its text) with `fields` selected on it."""
    length = len(fields)
    cut = node
    for _ in range(length):
        assert isinstance(cut, n.Select)
        cut = cut.operand
    result: n.Expr = n.Ident(ident.start, cut.end, name, root=True)
    end_of = _ends(node, length)
    for field, end in zip(fields, end_of, strict=True):
        result = n.Select(ident.start, end, result, field)
    return result


def _ends(node: n.Expr, length: int) -> list[int]:
    ends: list[int] = []
    for _ in range(length):
        assert isinstance(node, n.Select)
        ends.append(node.end)
        node = node.operand
    return list(reversed(ends))


def alternatives(
    node: n.Expr, container: str, shadowed: Callable[[str], bool]
) -> list[tuple[str, n.Expr]]:
    """For an identifier or a chain of selections on one, each name it may resolve to other
    than its plain reading, with the expression it then is: `[("a.b", <a.b>.c), ...]`."""
    found = chain(node)
    if found is None:
        return []
    ident, fields = found
    if not ident.root and shadowed(ident.name):
        return []
    parts = (ident.name, *fields)
    result: list[tuple[str, n.Expr]] = []
    for name, length in candidates(parts, container, ident.root):
        if length == 1 and name == ident.name:
            break  # the plain reading: the variable itself, the fields selected on it
        result.append((name, _bound(node, name, fields[length - 1 :], ident)))
    return result


def resolve(tree: n.Expr, declared: Collection[str], container: str = "") -> n.Expr:
    """`tree` with every name that resolves to a declared qualified name, or through the
    container, replaced by that name (a root identifier); unchanged sub-trees are shared.
    Resolving twice changes nothing more."""
    if not container and not any("." in name for name in declared):
        return tree  # every name means itself: the common case costs no walk
    return _Resolver(declared, container).visit(tree, frozenset())


_BODY = frozenset({"predicate", "result"})


class _Resolver:
    def __init__(self, declared: Collection[str], container: str) -> None:
        self.declared = declared
        self.container = container

    def visit(self, node: n.Expr, scoped: frozenset[str]) -> n.Expr:
        if isinstance(node, (n.Ident, n.Select)):
            for name, bound in alternatives(node, self.container, scoped.__contains__):
                if name in self.declared:
                    return bound
            if isinstance(node, n.Ident):
                return node
        if isinstance(node, n.Macro):
            # The macro's variables are in scope in its body, not in its target.
            inner = scoped | {node.var} | ({node.var2} if node.var2 else set())

            def visit(name: str, part: n.Expr) -> n.Expr:
                return self.visit(part, inner if name in _BODY else scoped)

            return self.rebuild(node, visit)
        return self.rebuild(node, lambda _name, part: self.visit(part, scoped))

    def rebuild(self, node: n.Expr, visit: Callable[[str, n.Expr], n.Expr]) -> n.Expr:
        changed: dict[str, object] = {}
        for name in node._names():
            value = getattr(node, name)
            if isinstance(value, n.Expr):
                new: object = visit(name, value)
            elif type(value) is tuple:
                new = tuple(_visit_part(name, part, visit) for part in value)
                if all(a is b for a, b in zip(new, value, strict=True)):
                    new = value
            else:
                continue
            if new is not value:
                changed[name] = new
        if not changed:
            return node
        clone = copy(node)
        for name, value in changed.items():
            setattr(clone, name, value)
        return clone


def _visit_part(name: str, part: object, visit: Callable[[str, n.Expr], n.Expr]) -> object:
    if isinstance(part, n.Expr):
        return visit(name, part)
    if type(part) is tuple:  # map entries: (key, value)
        parts = tuple(_visit_part(name, p, visit) for p in part)
        return part if all(a is b for a, b in zip(parts, part, strict=True)) else parts
    return part
