"""CEL expression tree -> Python source for one function, compiled once.

The generated function takes the activation (a dict of variables) and returns the value. Each
operation tests the common case inline (`t1 == "http.get" if type(t1) is str`) and calls the
full semantics in `ops`/`functions` otherwise. CEL errors are `CelEvalError` exceptions; an
`&&`, `||` or macro that may absorb an error catches it and keeps it as a value, so that
`false && error` is `false` as CEL requires.

With `record=True` the function also stores the value of every operand of `&&`, `||` and `?:`
in a dict keyed by node id, which is what `Program.explain` reads.
"""

from __future__ import annotations

import keyword
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import length_hint
from time import perf_counter
from typing import Any, Final, NoReturn

from . import extensions, functions, ops
from . import nodes as n
from .resolve import alternatives
from .values import (
    TYPES,
    CelEvalError,
    CelLimitError,
    CelOptional,
    CelType,
    CelUint,
    ErrorKind,
    Unbound,
    type_name,
)

__all__ = ["Generated", "generate", "resolving_variant", "TYPE_NAMES"]

# Type names usable as values (`type(x) == int`, `google.protobuf.Timestamp`) unless a
# variable of that name is declared.
TYPE_NAMES: Final = dict(TYPES)


def _unbound_error(value: Unbound) -> NoReturn:
    raise value.error()


def _build_map(*parts: Any) -> dict[Any, Any]:
    result: dict[Any, Any] = {}
    for key, value in zip(parts[0::2], parts[1::2], strict=True):
        if type(key) not in (str, int, CelUint, bool):
            raise ops.no_overload("{}", key)
        if key in result:
            # Python's dict also merges 1, 1u, 1.0 and true: keys equal as CEL numbers are
            # duplicates (cel-spec); a bool and a number of equal value cannot both be held.
            raise CelEvalError(
                ErrorKind.INVALID_ARGUMENT,
                f"a map literal has a duplicate {type_name(key)} key"
                + ("" if _same_kind(key, result) else " (or a bool and a number key of one value)"),
            )
        result[key] = value
    return result


def _same_kind(key: Any, mapping: dict[Any, Any]) -> bool:
    stored = next(k for k in mapping if k == key)
    return (type(stored) is bool) == (type(key) is bool)


def _unknown_function(name: str, argc: int) -> NoReturn:
    raise CelEvalError(
        ErrorKind.NO_MATCHING_OVERLOAD, f"no function '{name}' taking {argc} argument(s)"
    )


# Steps between two checks of the budget (a check reads the clock). Work that is not one step
# (scanning a list for `in`, building a string) is charged by its size, so a check comes as
# soon as that much work was done, however few iterations did it.
_CHECK_EVERY: Final = 256


class _Budget:
    """The runtime bound of one compiled expression that loops: steps (macro iterations, list
    elements scanned, characters and elements built) and wall time."""

    def __init__(self, max_steps: int, max_seconds: float) -> None:
        self.max_steps = max_steps
        self.max_seconds = max_seconds

    def check(self, steps: int, deadline: float) -> int:
        """Raise `CelLimitError` if a bound is passed; else the step count of the next check."""
        if steps > self.max_steps:
            raise CelLimitError(
                ErrorKind.COST_LIMIT,
                f"evaluation exceeded the step limit of {self.max_steps} (Limits.max_steps:"
                " macro iterations, list elements scanned, characters and elements built)",
            )
        if perf_counter() > deadline:
            raise CelLimitError(
                ErrorKind.COST_LIMIT,
                f"evaluation exceeded the time limit of {self.max_seconds:g} s"
                " (Limits.max_seconds)",
            )
        return steps + _CHECK_EVERY


_SIZED: Final = frozenset({str, bytes, list, tuple, dict})


def _sized(value: Any) -> int:
    """What building or scanning `value` is charged: its length, for a sized value."""
    return len(value) if type(value) in _SIZED else 0


def _scanned(item: Any, container: Any) -> int:
    """What `item in container` is charged: the elements it may compare (a map finds a string
    key by hashing)."""
    if type(container) is dict and type(item) is str:
        return 1
    return _sized(container)


def _located(error: CelEvalError, where: str) -> CelEvalError:
    """`error` naming the sub-expression that failed (once: the innermost one says it)."""
    if error.located:
        return error
    located = CelEvalError(error.kind, f"{where}: {error.message}")
    located.located = True
    return located


_HELPERS: Final[dict[str, Any]] = {
    "CelEvalError": CelEvalError,
    "_Limit": CelLimitError,
    "_sized": _sized,
    "_scanned": _scanned,
    "_located": _located,
    "_Unbound": Unbound,
    "_unbound": _unbound_error,
    "_eq": ops.eq,
    "_ne": ops.ne,
    "_lt": ops.lt,
    "_le": ops.le,
    "_gt": ops.gt,
    "_ge": ops.ge,
    "_add": ops.add,
    "_sub": ops.sub,
    "_mul": ops.mul,
    "_div": ops.div,
    "_mod": ops.mod,
    "_neg": ops.neg,
    "_not": ops.logical_not,
    "_and_rest": ops.and_rest,
    "_or_rest": ops.or_rest,
    "_condition": ops.condition,
    "_select": ops.select,
    "_index": ops.index,
    "_in": ops.contains_item,
    "_iterate": ops.iterate,
    "_no_overload": ops.no_overload,
    "_map": _build_map,
    "_unknown_function": _unknown_function,
    "_has_field": ops.has_field,
    "_pairs": ops.pairs,
    "_sort_by": extensions.sort_by,
    "_add_entries": extensions.add_entries,
    "_present": extensions.present_items,
    "_present_entry": extensions.present_entry,
    "_Opt": CelOptional,
    "_clock": perf_counter,
    "_hint": length_hint,
    "_str": str,
    "_list": list,
    "_dict": dict,
    "_bool": bool,
    "_int": int,
    "_float": float,
    "_bytes": bytes,
    "_FAST_EQ": frozenset({str, int, bool, float, type(None), bytes, CelUint}),
    "_FAST_ORDER": frozenset({str, int, float, bytes, CelUint}),
}
for _function in functions.FUNCTIONS.values():
    _HELPERS[_function.helper] = _function.impl
    if _function.precharge is not None:
        _HELPERS[_function.helper + "_size"] = _function.precharge

_BINARY_HELPERS: Final = {
    "==": "_eq",
    "!=": "_ne",
    "<": "_lt",
    "<=": "_le",
    ">": "_gt",
    ">=": "_ge",
    "+": "_add",
    "-": "_sub",
    "*": "_mul",
    "/": "_div",
    "%": "_mod",
    "in": "_in",
}
_ORDERING: Final = frozenset({"<", "<=", ">", ">="})
# How much of a failed call's CEL text an error message quotes.
_WHERE_WIDTH: Final = 60
# Literal types whose `==` can be Python's once the other side has the same type.
_PLAIN_LITERALS: Final = (str, int, float, bool, bytes)


@dataclass
class Generated:
    """The generated source and the names it refers to."""

    source: str
    namespace: dict[str, Any]
    variables: frozenset[str]
    has_macros: bool
    recorded: dict[int, n.Expr] = field(default_factory=dict)
    # Constants that are not plain data, by name, with what rebuilds them (the compile cache
    # stores the recipe): a regular expression's `search`, by its pattern.
    patterns: dict[str, str] = field(default_factory=dict)

    def function(self, filename: str) -> Callable[..., Any]:
        """Compile the source and return the function it defines."""
        return self.bind(compile(self.source, filename, "exec"))

    def bind(self, code: Any) -> Callable[..., Any]:
        """The function that `code` (the compiled source) defines, with its namespace."""
        namespace = dict(self.namespace)
        exec(code, namespace)  # noqa: S102 - the source is generated here, from a parse tree
        result: Callable[..., Any] = namespace["_evaluate"]
        return result


def generate(
    tree: n.Expr,
    *,
    variables: frozenset[str] | None = None,
    record: bool = False,
    max_steps: int = 1_000_000,
    max_seconds: float = 0.25,
    source: str | None = None,
    container: str = "",
    resolving: bool = False,
) -> Generated:
    """Python source for `tree`. `variables` are the declared names (None: any name that is not
    a type name is a variable); `source`, the CEL text, lets errors name the call that failed.

    An expression that loops (a macro) is budgeted: its steps, the elements its `in` scans and
    the strings and lists it builds are counted against `max_steps`, and the clock is read at
    least every `_CHECK_EVERY` steps. One that does not loop does work bounded by its own size
    times the size of its input, and pays nothing for the budget.

    Without declared `variables`, names resolve against the activation at each evaluation
    (cel-spec's name resolution, `resolve.py`): `a.b.c` is the variable `a.b.c` if the
    activation holds one, else `a.b` with `c` selected, else `a`; `container` is tried first.
    An activation rarely holds such names: the function tests once, on entry, whether it holds
    any (a dictionary lookup per name), and only then runs a variant (`resolving=True`, made
    when first needed) that tries each reading where the name is read."""
    budgeted = any(_loops_or_grows(node) for node in n.walk(tree))
    writer = _Writer(variables, record, source, budgeted, container, resolving)
    writer.namespace["_budget"] = _Budget(max_steps, max_seconds)
    result = writer.value(tree)
    result = writer.checked(tree, result)
    body = writer.lines
    header = ["def _evaluate(act, _rec=None):"]
    if writer.candidates:
        writer.namespace["_resolving"] = resolving_variant(
            lambda: tree,
            variables=variables,
            record=record,
            max_steps=max_steps,
            max_seconds=max_seconds,
            source=source,
            container=container,
        )
        test = " or ".join(f"{name!r} in act" for name in sorted(writer.candidates))
        header += [f"    if {test}:", "        return _resolving(act, _rec)"]
    for name in sorted(writer.used_variables):
        local = _local(name)
        header.append(f"    {local} = act[{name!r}] if {name!r} in act else _Unbound({name!r})")
    if writer.budgeted:
        header += [
            "    _steps = 0",
            f"    _check = {_CHECK_EVERY}",
            "    _deadline = _clock() + _budget.max_seconds",
        ]
    source = "\n".join([*header, *body, f"    return {result}", ""])
    return Generated(
        source,
        writer.namespace,
        frozenset(writer.used_variables),
        writer.has_macros,
        writer.recorded,
        writer.patterns,
    )


def resolving_variant(tree: Callable[[], n.Expr], **options: Any) -> _Resolving:
    """The variant of `generate(tree(), **options)` that resolves qualified names against the
    activation, made when first called."""

    def make() -> Generated:
        return generate(tree(), resolving=True, **options)

    return _Resolving(make)


class _Writer:
    def __init__(
        self,
        variables: frozenset[str] | None,
        record: bool,
        source: str | None,
        budgeted: bool,
        container: str,
        resolving: bool,
    ) -> None:
        self.declared = variables
        self.container = container
        self.resolving = resolving
        # The qualified names the activation might hold (see `generate`).
        self.candidates: set[str] = set()
        # Nodes read plainly: the readings of a name resolved against the activation.
        self.plain: set[int] = set()
        # Identifiers that name a key the activation is known to hold there.
        self.present: set[int] = set()
        self.record = record
        self.source = source
        self.budgeted = budgeted
        self.lines: list[str] = []
        self.depth = 1
        self.counter = 0
        self.namespace: dict[str, Any] = dict(_HELPERS)
        self.scopes: list[dict[str, str]] = []
        self.used_variables: set[str] = set()
        self.has_macros = False
        self.recorded: dict[int, n.Expr] = {}
        self.patterns: dict[str, str] = {}
        self.in_macro = 0

    # -- plumbing --------------------------------------------------------------------------

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    def temp(self, prefix: str = "t") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def const(self, value: Any) -> str:
        if value is None or type(value) in (bool, int, str, bytes):
            return repr(value)
        if type(value) is float and math.isfinite(value):
            return repr(value)
        name = self.temp("c")
        self.namespace[name] = value
        return name

    def atom(self, node: n.Expr) -> str:
        """`node`'s value in a local name or a constant, safe to mention twice."""
        expression = self.value(node)
        if _is_name(expression) or isinstance(node, n.Literal):
            return expression
        name = self.temp()
        self.emit(f"{name} = {expression}")
        return name

    def name(self, node: n.Expr) -> str:
        """`node`'s value in a local name (Python warns about `1.5[k]` or `1 is False`)."""
        expression = self.atom(node)
        return expression if _is_name(expression) else self.assign(expression)

    def assign(self, expression: str) -> str:
        name = self.temp()
        self.emit(f"{name} = {expression}")
        return name

    def charge(self, steps: str) -> None:
        """Count `steps` (a Python expression) against the budget, and check it when due."""
        if not self.budgeted:
            return
        self.emit(f"_steps += {steps}")
        self.emit("if _steps >= _check:")
        with self.indented():
            self.emit("_check = _budget.check(_steps, _deadline)")

    def catch_errors(self, error: str) -> None:
        """An `except` that keeps a CEL error as a value in `error`; a limit error is not a
        value and goes on up. (Only a budgeted expression can raise one.)"""
        if self.budgeted:
            self.emit("except _Limit:")
            with self.indented():
                self.emit("raise")
        self.emit(f"except CelEvalError as {error}:")

    def indented(self) -> _Indent:
        return _Indent(self)

    def note(self, node: n.Expr, expression: str) -> None:
        if self.record and not self.in_macro:
            self.recorded[id(node)] = node
            self.emit(f"_rec[{id(node)}] = {expression}")

    def checked(self, node: n.Expr, expression: str) -> str:
        """`expression` where its value is stored or returned rather than inspected: a
        missing variable must fail here."""
        if not _may_be_unbound(node):
            return expression
        name = expression if _is_name(expression) else self.assign(expression)
        return f"({name} if type({name}) is not _Unbound else _unbound({name}))"

    # -- expressions -----------------------------------------------------------------------

    def value(self, node: n.Expr) -> str:
        """A Python expression computing `node`, after emitting the statements it needs."""
        method: Callable[[Any], str] = getattr(self, "_" + type(node).__name__.lower())
        return method(node)

    def _literal(self, node: n.Literal) -> str:
        return self.const(node.value)

    def _ident(self, node: n.Ident) -> str:
        if id(node) in self.present:
            return self.assign(f"act[{node.name!r}]")
        if self.container and self.declared is None and id(node) not in self.plain:
            found = self.alternatives(node)
            if found:
                return self.resolved(node, found)
            self.plain.add(id(node))
        for scope in reversed(self.scopes if not node.root else []):
            if node.name in scope:
                return scope[node.name]
        is_type = node.name in TYPE_NAMES and (
            self.declared is None or node.name not in self.declared
        )
        if is_type:
            return self.const(TYPE_NAMES[node.name])
        self.used_variables.add(node.name)
        return _local(node.name)

    def alternatives(self, node: n.Expr) -> list[tuple[str, n.Expr]]:
        return alternatives(
            node, self.container, lambda name: any(name in scope for scope in self.scopes)
        )

    def resolved(self, node: n.Expr, found: list[tuple[str, n.Expr]]) -> str:
        """`node`, a name that the activation decides (`a.b.c` may be the variable `a.b.c`,
        or `a.b` with `c` selected...): each reading tried in turn, the plain one last."""
        if not self.resolving:
            self.candidates.update(name for name, _ in found)
            self.read_plainly(node)
            return self.value(node)
        result = self.temp()
        for position, (name, bound) in enumerate(found):
            self.emit(f"{'elif' if position else 'if'} {name!r} in act:")
            with self.indented():
                self.present.add(id(self.read_plainly(bound)))
                self.emit(f"{result} = {self.value(bound)}")
        self.emit("else:")
        with self.indented():
            self.read_plainly(node)
            self.emit(f"{result} = {self.value(node)}")
        return result

    def read_plainly(self, node: n.Expr) -> n.Expr:
        """Mark a chain of selections as resolved; its identifier."""
        while isinstance(node, n.Select):
            self.plain.add(id(node))
            node = node.operand
        self.plain.add(id(node))
        return node

    def _select(self, node: n.Select) -> str:
        if self.declared is None and id(node) not in self.plain:
            found = self.alternatives(node)
            if found:
                return self.resolved(node, found)
        operand = self.name(node.operand)
        return self.lookup(operand, repr(node.field), f"_select({operand}, {node.field!r})")

    def lookup(self, container: str, key: str, fallback: str) -> str:
        # A try statement costs nothing when the key is there, the common case; the
        # fallback gives every other case its CEL meaning (a missing key, a list, null...).
        result = self.temp()
        self.emit("try:")
        with self.indented():
            self.emit(f"{result} = {container}[{key}]")
        self.emit("except (KeyError, TypeError, IndexError):")
        with self.indented():
            self.emit(f"{result} = {fallback}")
        return result

    def _has(self, node: n.Has) -> str:
        # An error in the operand is the result (cel-spec: `has(x.y.z)` with `x.y` an int
        # fails); only a map answers whether it has the field.
        operand = self.name(node.operand)
        return (
            f"(({node.field!r} in {operand}) if type({operand}) is _dict"
            f" else _has_field({operand}, {node.field!r}))"
        )

    def _index(self, node: n.Index) -> str:
        container = self.name(node.operand)
        if isinstance(node.index, n.Literal) and type(node.index.value) is str:
            key = self.const(node.index.value)
            return self.lookup(container, key, f"_index({container}, {key}, True)")
        key = self.atom(node.index)
        return (
            f"({container}[{key}] if type({key}) is _str and type({container}) is _dict "
            f"and {key} in {container} else _index({container}, {key}))"
        )

    def _unary(self, node: n.Unary) -> str:
        operand = self.name(node.operand)
        if node.op == "!":
            return f"(({operand} is False) if type({operand}) is _bool else _not({operand}))"
        return f"(-{operand} if type({operand}) is _float else _neg({operand}))"

    def _binary(self, node: n.Binary) -> str:
        left = self.atom(node.left)
        right = self.atom(node.right)
        helper = _BINARY_HELPERS[node.op]
        slow = f"{helper}({left}, {right})"
        if node.op in ("==", "!="):
            python_op = node.op
            on_right = _plain_literal(node.right) is not None
            if on_right or _plain_literal(node.left) is not None:
                literal = _plain_literal(node.right if on_right else node.left)
                other = left if on_right else right
                kind = type(literal).__name__
                return f"({left} {python_op} {right} if type({other}) is _{kind} else {slow})"
            return (
                f"({left} {python_op} {right} if type({left}) is type({right}) "
                f"and type({left}) in _FAST_EQ else {slow})"
            )
        if node.op in _ORDERING:
            literal = _plain_literal(node.right)
            if literal is not None and type(literal) in (int, float, str):
                kind = type(literal).__name__
                return f"({left} {node.op} {right} if type({left}) is _{kind} else {slow})"
            return (
                f"({left} {node.op} {right} if type({left}) is type({right}) "
                f"and type({left}) in _FAST_ORDER else {slow})"
            )
        if node.op == "in" and isinstance(node.right, n.ListExpr):
            constants = [_plain_literal(item) for item in node.right.items]
            kinds = {type(c) for c in constants}
            if constants and None not in constants and len(kinds) == 1 and str in kinds:
                members = self.const(frozenset(constants))
                return f"(({left} in {members}) if type({left}) is _str else {slow})"
        if node.op == "in" and self.budgeted:
            self.charge(f"_scanned({left}, {right})")
        if node.op == "+":
            fast = (
                f"({left} + {right} if type({left}) is _str and type({right}) is _str else {slow})"
            )
            if not self.budgeted:
                return fast
            result = self.assign(fast)
            self.charge(f"_sized({result})")
            return result
        return slow

    def _and(self, node: n.And) -> str:
        operands = _chunked(node.operands, lambda part: n.And(part[0].start, part[-1].end, part))
        return self.logical(operands, stop="False", helper="_and_rest")

    def _or(self, node: n.Or) -> str:
        operands = _chunked(node.operands, lambda part: n.Or(part[0].start, part[-1].end, part))
        return self.logical(operands, stop="True", helper="_or_rest")

    def logical(self, operands: tuple[n.Expr, ...], stop: str, helper: str) -> str:
        """`&&`/`||` over n operands: the first operand equal to `stop` decides; otherwise all
        must be the other bool, and an error operand surfaces only then."""
        result = self.temp()
        seen: list[str] = []
        opened = 0
        for operand in operands:
            slot = self.temp("a")
            if _may_fail(operand):
                self.emit("try:")
                with self.indented():
                    self.emit(f"{slot} = {self.value(operand)}")
                self.catch_errors("_e")
                with self.indented():
                    self.emit(f"{slot} = _e")
            else:
                self.emit(f"{slot} = {self.value(operand)}")
            self.note(operand, slot)
            seen.append(slot)
            self.emit(f"if {slot} is {stop}:")
            with self.indented():
                self.emit(f"{result} = {stop}")
            self.emit("else:")
            self.depth += 1
            opened += 1
        other = "True" if stop == "False" else "False"
        all_other = " and ".join(f"{slot} is {other}" for slot in seen)
        self.emit(f"{result} = {other} if {all_other} else {helper}({', '.join(seen)})")
        self.depth -= opened
        return result

    def _conditional(self, node: n.Conditional) -> str:
        condition = self.name(node.condition)
        self.note(node.condition, condition)
        result = self.temp()
        self.emit(f"if {condition} is True:")
        with self.indented():
            value = self.value(node.then)
            self.emit(f"{result} = {value}")
            self.note(node.then, result)
        self.emit(f"elif {condition} is False:")
        with self.indented():
            value = self.value(node.otherwise)
            self.emit(f"{result} = {value}")
            self.note(node.otherwise, result)
        self.emit("else:")
        with self.indented():
            self.emit(f"_condition({condition})")
        return result

    def _listexpr(self, node: n.ListExpr) -> str:
        items = [self.checked(item, self.atom(item)) for item in node.items]
        # `[?x]`: x's value if it has one, else nothing.
        shown = [f"*_present({v})" if i in node.optional else v for i, v in enumerate(items)]
        if not node.optional:
            return "[" + ", ".join(shown) + "]"
        return self.located(node, "[" + ", ".join(shown) + "]")

    def _mapexpr(self, node: n.MapExpr) -> str:
        parts: list[str] = []
        for position, (key, value) in enumerate(node.entries):
            key_code = self.atom(key)
            value_code = self.checked(value, self.atom(value))
            if position in node.optional:  # `{?k: v}`: the entry only if v has a value
                parts.append(f"*_present_entry({key_code}, {value_code})")
            else:
                parts += [key_code, value_code]
        return self.located(node, f"_map({', '.join(parts)})")

    # -- calls -----------------------------------------------------------------------------

    def _call(self, node: n.Call) -> str:
        function = functions.FUNCTIONS.get(node.function)
        method = node.target is not None
        argc = len(node.args)
        if node.function in ("or", "orValue") and node.target is not None and argc == 1:
            return self.optional_or(node)
        if function is None or not function.accepts(method, argc):
            for part in ([node.target] if node.target else []) + list(node.args):
                self.atom(part)
            shown = node.function if not method else f".{node.function}"
            return f"_unknown_function({shown!r}, {argc})"
        operands = [self.name(part) for part in ([node.target] if node.target else [])]
        operands += [self.checked(arg, self.atom(arg)) for arg in node.args]
        if function.linear and operands:
            self.charge(f"_sized({operands[0]})")
        if function.precharge is not None:
            self.charge(f"{function.helper}_size({', '.join(operands)})")
        fast = self.fast_call(node, operands)
        if fast is not None:
            return fast
        result = self.located(node, f"{function.helper}({', '.join(operands)})")
        if function.grows:
            self.charge(f"_sized({result})")
        return result

    def optional_or(self, node: n.Call) -> str:
        """`opt.or(other)` and `opt.orValue(v)`: the argument is evaluated only when `opt` is
        none, as cel-go does (so `opt.orValue(1 / 0)` with a value is that value)."""
        assert node.target is not None
        option = self.name(node.target)
        helper = functions.FUNCTIONS[node.function].helper
        result = self.temp()
        self.emit(f"if type({option}) is _Opt and {option}.present:")
        with self.indented():
            self.emit(f"{result} = {option}" + (".value" if node.function == "orValue" else ""))
        self.emit("else:")
        with self.indented():
            argument = self.checked(node.args[0], self.atom(node.args[0]))
            self.emit(f"{result} = {self.located(node, f'{helper}({option}, {argument})')}")
        return result

    def located(self, node: n.Expr, call: str) -> str:
        """`call` into a temporary, its errors naming the CEL text of `node` (no values: the
        text is the policy's, a value may be a secret)."""
        result = self.temp()
        if self.source is None:
            self.emit(f"{result} = {call}")
            return result
        where = " ".join(self.source[node.start : node.end].split())
        if len(where) > _WHERE_WIDTH:
            where = where[: _WHERE_WIDTH - 3] + "..."
        self.emit("try:")
        with self.indented():
            self.emit(f"{result} = {call}")
        self.emit("except CelEvalError as _e:")
        with self.indented():
            self.emit(f"raise _located(_e, {where!r}) from None")
        return result

    def fast_call(self, node: n.Call, operands: list[str]) -> str | None:
        name = node.function
        slow = f"_f_{name}({', '.join(operands)})"
        if name == "size" and len(operands) == 1:
            (value,) = operands
            return f"(len({value}) if type({value}) is _str or type({value}) is _list else {slow})"
        if name in ("startsWith", "endsWith", "contains") and len(operands) == 2:
            text, part = operands
            python = {"startsWith": "startswith", "endsWith": "endswith"}.get(name)
            test = f"{text}.{python}({part})" if python else f"({part} in {text})"
            guard = f"type({text}) is _str"
            if type(_plain_literal(node.args[0])) is not str:
                guard += f" and type({part}) is _str"
            return f"({test} if {guard} else {slow})"
        if name == "matches" and isinstance(node.args[-1], n.Literal):
            pattern = node.args[-1].value
            if type(pattern) is str:
                try:
                    compiled = functions.compile_regex(pattern)
                except CelEvalError:
                    return None
                text = operands[0]
                search = self.const(compiled.search)
                self.patterns[search] = pattern
                return f"({search}({text}) if type({text}) is _str else {slow})"
        return None

    # -- macros ----------------------------------------------------------------------------

    def _macro(self, node: n.Macro) -> str:
        if node.kind == "bind":
            return self.bind(node)
        if node.kind in ("optMap", "optFlatMap"):
            return self.optional_map(node)
        self.has_macros = True
        target = self.atom(node.target)
        variable = self.temp("m")
        scope = {node.var: variable}
        if node.var2 is not None:
            second = self.temp("m")
            scope[node.var2] = second
            variable = f"{variable}, {second}"
        result = self.temp()
        error = self.temp("e")
        self.in_macro += 1
        self.scopes.append(scope)
        if node.kind in ("all", "exists"):
            self.quantifier(node, target, variable, result, error)
        elif node.kind == "exists_one":
            self.exists_one(node, target, variable, result)
        else:
            self.collect(node, target, variable, result)
            if node.kind == "sortBy":
                self.emit(f"{result} = _sort_by({target}, {result})")
        self.scopes.pop()
        self.in_macro -= 1
        return result

    def bind(self, node: n.Macro) -> str:
        """`cel.bind(var, target, result)`: `target` evaluated once, eagerly as in cel-go,
        into a local that `var` names in `result`."""
        assert node.result is not None
        variable = self.assign(self.checked(node.target, self.value(node.target)))
        self.scopes.append({node.var: variable})
        result = self.assign(self.checked(node.result, self.value(node.result)))
        self.scopes.pop()
        return result

    def optional_map(self, node: n.Macro) -> str:
        """`opt.optMap(x, e)`: none stays none, else `optional.of(e)` with `x` the value;
        `optFlatMap`: `e` itself, which must be an optional. `e` runs only on a value."""
        assert node.result is not None
        option = self.name(node.target)
        result = self.temp()
        self.emit(f"if type({option}) is not _Opt:")
        with self.indented():
            self.emit(f"raise _no_overload({node.kind!r}, {option})")
        self.emit(f"if {option}.present:")
        with self.indented():
            self.scopes.append({node.var: self.assign(f"{option}.value")})
            value = self.checked(node.result, self.value(node.result))
            self.scopes.pop()
            if node.kind == "optMap":
                self.emit(f"{result} = _Opt({value})")
            else:
                self.emit(f"{result} = {value}")
                self.emit(f"if type({result}) is not _Opt:")
                with self.indented():
                    self.emit(f"raise _no_overload('optFlatMap', {result})")
        self.emit("else:")
        with self.indented():
            self.emit(f"{result} = {option}")
        return result

    def loop(self, node: n.Macro, target: str, variable: str, body: Callable[[], None]) -> None:
        """A loop over the macro's range running `body` (which emits its statements).

        Each iteration is a step. When the body charges nothing itself and the whole range
        fits before the next budget check is due, no check can happen inside the loop: that
        case runs a copy of the loop that does not count (half the cost of a short loop), and
        charges the iterations it ran when it ends, however it ends (`length_hint` of the
        iterator is what it did not run). Otherwise each iteration is charged as it starts."""
        iterate = "_iterate" if node.var2 is None else "_pairs"
        items = self.assign(f"{iterate}({target}, {node.kind!r})")
        lines, depth = self.lines, self.depth
        self.lines, self.depth = [], 0
        body()
        statements = self.lines
        self.lines, self.depth = lines, depth
        if any("_steps +=" in line for line in statements):
            self.counted_loop(variable, items, statements)
            return
        iterator = self.temp("i")
        self.emit(f"if _steps + len({items}) < _check:")
        with self.indented():
            self.emit(f"{iterator} = iter({items})")
            self.emit("try:")
            with self.indented():
                self.emit(f"for {variable} in {iterator}:")
                with self.indented():
                    self.emit_all(statements)
            self.emit("finally:")
            with self.indented():
                self.emit(f"_steps += len({items}) - _hint({iterator})")
        self.emit("else:")
        with self.indented():
            self.counted_loop(variable, items, statements)

    def counted_loop(self, variable: str, items: str, statements: list[str]) -> None:
        self.emit(f"for {variable} in {items}:")
        with self.indented():
            self.charge("1")
            self.emit_all(statements)

    def emit_all(self, statements: list[str]) -> None:
        """Emit statements generated at depth 0 here."""
        prefix = "    " * self.depth
        self.lines.extend(prefix + line for line in statements)

    def predicate(self, node: n.Macro, slot: str, error: str | None) -> None:
        """Evaluate the macro's predicate into `slot`; with `error`, a failed evaluation is
        remembered there and the loop moves on (the caller decides what errors mean)."""
        assert node.predicate is not None
        if error is None:
            self.emit(f"{slot} = {self.value(node.predicate)}")
            return
        self.emit("try:")
        with self.indented():
            self.emit(f"{slot} = {self.value(node.predicate)}")
        self.catch_errors("_e")
        with self.indented():
            self.emit(f"if {error} is None:")
            with self.indented():
                self.emit(f"{error} = _e")
            self.emit("continue")

    def quantifier(
        self, node: n.Macro, target: str, variable: str, result: str, error: str
    ) -> None:
        unit, stop = ("True", "False") if node.kind == "all" else ("False", "True")
        slot = self.temp("p")
        self.emit(f"{result} = {unit}")
        self.emit(f"{error} = None")

        def body() -> None:
            self.predicate(node, slot, error)
            self.emit(f"if {slot} is not {unit}:")
            with self.indented():
                self.emit(f"if {slot} is {stop}:")
                with self.indented():
                    self.emit(f"{result} = {stop}")
                    self.emit("break")
                self.emit(f"if {error} is None:")
                with self.indented():
                    self.emit(f"{error} = _no_overload({node.kind!r}, {slot})")

        self.loop(node, target, variable, body)
        self.emit(f"if {result} is {unit} and {error} is not None:")
        with self.indented():
            self.emit(f"raise {error}")

    def exists_one(self, node: n.Macro, target: str, variable: str, result: str) -> None:
        slot = self.temp("p")
        count = self.temp("k")
        self.emit(f"{count} = 0")

        def body() -> None:
            self.predicate(node, slot, None)
            self.emit(f"if {slot} is True:")
            with self.indented():
                self.emit(f"{count} += 1")
            self.emit(f"elif {slot} is not False:")
            with self.indented():
                self.emit(f"raise _no_overload('exists_one', {slot})")

        self.loop(node, target, variable, body)
        self.emit(f"{result} = {count} == 1")

    def collect(self, node: n.Macro, target: str, variable: str, result: str) -> None:
        to_map = node.kind in ("transformMap", "transformMapEntry")
        self.emit(f"{result} = {{}}" if to_map else f"{result} = []")

        def body() -> None:
            if node.predicate is not None:
                slot = self.temp("p")
                self.predicate(node, slot, None)
                self.emit(f"if {slot} is not True:")
                with self.indented():
                    self.emit(f"if {slot} is False:")
                    with self.indented():
                        self.emit("continue")
                    self.emit(f"raise _no_overload({node.kind!r}, {slot})")
            if node.result is not None:
                value = self.checked(node.result, self.value(node.result))
                if node.kind == "transformMapEntry":
                    self.emit(f"_add_entries({result}, {value})")
                elif to_map:
                    key = variable.split(",")[0]
                    self.emit(f"{result}[{key}] = {value}")
                else:
                    self.emit(f"{result}.append({value})")
            else:
                self.emit(f"{result}.append({variable})")

        self.loop(node, target, variable, body)


class _Indent:
    def __init__(self, writer: _Writer) -> None:
        self.writer = writer

    def __enter__(self) -> None:
        self.writer.depth += 1

    def __exit__(self, *_: object) -> None:
        self.writer.depth -= 1


# Each operand of `&&`/`||` opens an `else:` for the rest, and Python allows 100 levels of
# indentation: a long chain is split into chained groups (both operators are associative,
# errors included), which keeps a chain of hundreds of operands shallow.
_CHUNK: Final = 16


def _chunked(
    operands: tuple[n.Expr, ...], group: Callable[[tuple[n.Expr, ...]], n.Expr]
) -> tuple[n.Expr, ...]:
    while len(operands) > _CHUNK:
        operands = tuple(
            part[0] if len(part) == 1 else group(part)
            for part in (operands[i : i + _CHUNK] for i in range(0, len(operands), _CHUNK))
        )
    return operands


class _Resolving:
    """The variant of a generated function that resolves qualified names, made when first
    called (most activations never need it)."""

    def __init__(self, make: Callable[[], Generated]) -> None:
        self.make = make
        self.function: Callable[..., Any] | None = None

    def __call__(self, activation: Any, record: Any = None) -> Any:
        if self.function is None:
            self.function = self.make().function("<cel resolving names>")
        return self.function(activation, record)


def _local(name: str) -> str:
    """The Python local holding variable `name` (a qualified name is no Python name)."""
    return f"v_{name}" if name.isidentifier() else "q_" + name.encode().hex()


def _is_name(text: str) -> bool:
    """Whether generated `text` is a local name (True, False and None look like names)."""
    return text.isidentifier() and not keyword.iskeyword(text)


def _plain_literal(node: n.Expr) -> Any:
    """The value of a literal whose type allows the inline `==` (None for anything else)."""
    if isinstance(node, n.Literal) and type(node.value) in _PLAIN_LITERALS:
        return node.value
    return None


def _loops_or_grows(node: n.Expr) -> bool:
    """Whether `node` makes an expression need a run-time budget: a macro, or a call whose
    result may be far larger than its operands (`lists.range(n)`)."""
    if isinstance(node, n.Macro):
        return True
    if isinstance(node, n.Call):
        function = functions.FUNCTIONS.get(node.function)
        return function is not None and function.precharge is not None
    return False


def _may_fail(node: n.Expr) -> bool:
    return not isinstance(node, n.Literal)


def _may_be_unbound(node: n.Expr) -> bool:
    if isinstance(node, n.Ident):
        return node.name not in TYPE_NAMES
    if isinstance(node, n.Conditional):
        return _may_be_unbound(node.then) or _may_be_unbound(node.otherwise)
    if isinstance(node, n.Call) and node.function == "dyn" and len(node.args) == 1:
        return _may_be_unbound(node.args[0])
    return False


# Quiet "imported but unused" for names only the generated code uses.
_ = CelType
