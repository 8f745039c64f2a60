"""Static checks of a CEL expression against declarations.

Given the variables in scope and their types (for a policy: `params` typed from the JSON
Schemas of the tools it targets), the checker infers the type of every sub-expression and
reports what would fail or mislead at run time:

- `unknown-name`: a variable that is not declared;
- `unknown-field`: `params.ulr` when the schema has no `ulr` (with "did you mean `url`");
- `partial-field`: a field only some of the targeted tools have (an error on the others'
  calls, so the policy fails closed there), unless a `has()` guard comes first;
- `unknown-function` / `wrong-arguments`: a function that does not exist or takes other
  arguments;
- `type-mismatch`: `params.port == "80"` where port is an int, `size(1)`, `!"x"`, ...;
- `constant`: a condition, or an operand of `&&`/`||`, that is always true or always false.

Each finding carries the offsets of its sub-expression, so the language compiler reports it at
its line and column in the .car file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import CarlangRuntimeError
from ..globs import GlobSet
from ..suggest import did_you_mean, with_article
from . import nodes as n
from .build import MACROS
from .codegen import TYPE_NAMES
from .functions import FUNCTIONS, ZONED_ACCESSORS, Overload, compile_regex, time_zone
from .parser import CelSyntaxError
from .resolve import resolve
from .types import (
    BOOL,
    BYTES,
    DOUBLE,
    DURATION,
    DYN,
    INT,
    NULL,
    NUMBER,
    STRING,
    TIMESTAMP,
    TYPE,
    UINT,
    Type,
    join,
    list_of,
    map_of,
    optional_of,
)
from .values import CelEvalError, CelUint, format_value

__all__ = ["Declarations", "CelIssue", "CheckResult", "CelCheckError", "check", "check_tree"]


@dataclass(frozen=True)
class Declarations:
    """The variables an expression may use, with their static types. A name may be qualified
    (`a.b.c`: the expression `a.b.c` reads it as a whole); `container` (`com.example`) makes
    names resolve relative to it first (`x` is `com.example.x`, then `com.x`, then `x`), as
    cel-spec's name resolution says (see `resolve.py`)."""

    variables: Mapping[str, Type]
    container: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "variables", dict(self.variables))


@dataclass(frozen=True, slots=True)
class CelIssue:
    """One finding: `severity` is "error" or "warning", `kind` one of the kinds above,
    `start`/`end` the offsets of the sub-expression in the source."""

    severity: str
    kind: str
    message: str
    start: int
    end: int
    help: str | None = None

    def __str__(self) -> str:
        return f"{self.severity}: {self.message}" + (f" ({self.help})" if self.help else "")


class CelCheckError(CarlangRuntimeError):
    """Static checks found errors; `issues` lists every finding."""

    def __init__(self, issues: list[CelIssue]) -> None:
        errors = [issue for issue in issues if issue.severity == "error"]
        super().__init__("; ".join(str(issue) for issue in errors))
        self.issues = issues


@dataclass
class CheckResult:
    """Every finding of one check, and the inferred type of the whole expression."""

    issues: list[CelIssue] = field(default_factory=list)
    type: Type = DYN

    @property
    def errors(self) -> list[CelIssue]:
        """The findings that make the expression wrong."""
        return [issue for issue in self.issues if issue.severity == "error"]

    def raise_errors(self) -> None:
        """Raise `CelCheckError` if there are errors."""
        if self.errors:
            raise CelCheckError(self.issues)


def check(source: str, declarations: Declarations) -> CheckResult:
    """Parse and check `source`; raises `CelSyntaxError` if it does not parse."""
    from .build import parse

    return check_tree(source, parse(source), declarations)


def check_tree(source: str, tree: n.Expr, declarations: Declarations) -> CheckResult:
    """Check an already parsed expression (its names resolved against the declarations);
    raises `CelSyntaxError` for one that nests deeper than the checker's recursion reaches
    (the parser takes a little deeper: `[[...]]` 250 levels deep was an internal error)."""
    try:
        return _checked(source, tree, declarations)
    except RecursionError:
        raise CelSyntaxError("the expression nests too deeply", 1, 1) from None


def _checked(source: str, tree: n.Expr, declarations: Declarations) -> CheckResult:
    tree = resolve(tree, declarations.variables, declarations.container)
    checker = _Checker(source, declarations)
    result_type = checker.infer(tree)
    if result_type.known and result_type.kind != "bool":
        checker.report(
            "error",
            "type-mismatch",
            tree,
            f"a condition must be a bool, and this is {with_article(str(result_type))}",
            "compare it with something, e.g. `... == true` or `size(...) > 0`",
        )
    checker.constant_condition(tree)
    issues = sorted(checker.issues, key=lambda issue: (issue.start, issue.end))
    return CheckResult(issues, result_type)


_NUMERIC: Final = frozenset({"int", "uint", "double", "number"})
_ORDERED: Final = frozenset(
    {"int", "uint", "double", "number", "string", "bytes", "bool", "timestamp", "duration"}
)
_ARITHMETIC: Final[dict[str, dict[tuple[str, str], Type]]] = {
    "+": {
        ("string", "string"): STRING,
        ("bytes", "bytes"): BYTES,
        ("timestamp", "duration"): TIMESTAMP,
        ("duration", "timestamp"): TIMESTAMP,
        ("duration", "duration"): DURATION,
    },
    "-": {
        ("timestamp", "timestamp"): DURATION,
        ("timestamp", "duration"): TIMESTAMP,
        ("duration", "duration"): DURATION,
    },
}
_KIND_OF_LITERAL: Final = {
    type(None): NULL,
    bool: BOOL,
    int: INT,
    CelUint: UINT,
    float: DOUBLE,
    str: STRING,
    bytes: BYTES,
}
_HELP_TYPES: Final = "CEL does not convert between types; compare values of the same type"
#: For `==`, `!=` and `in` between types never equal: `dyn()` says the mix is meant.
_HELP_NEVER_EQUAL: Final = _HELP_TYPES + " (or wrap one side in `dyn()` if the mix is meant)"


class _Checker:
    def __init__(self, source: str, declarations: Declarations) -> None:
        self.source = source
        self.variables = declarations.variables
        self.scopes: list[dict[str, Type]] = []
        self.issues: list[CelIssue] = []
        # Fields proven present by a `has()` earlier in an `&&` chain: (variable text, field).
        self.guarded: set[str] = set()

    def text(self, node: n.Expr) -> str:
        return self.source[node.start : node.end]

    def report(
        self, severity: str, kind: str, node: n.Expr, message: str, help: str | None = None
    ) -> None:
        self.issues.append(CelIssue(severity, kind, message, node.start, node.end, help))

    # -- inference -------------------------------------------------------------------------

    def infer(self, node: n.Expr) -> Type:
        method = getattr(self, "_" + type(node).__name__.lower())
        result: Type = method(node)
        return result

    def _literal(self, node: n.Literal) -> Type:
        return _KIND_OF_LITERAL.get(type(node.value), DYN)

    def _ident(self, node: n.Ident) -> Type:
        for scope in reversed(self.scopes if not node.root else []):
            if node.name in scope:
                return scope[node.name]
        if node.name in self.variables:
            return self.variables[node.name]
        if node.name in TYPE_NAMES:
            return TYPE
        known = [*self.variables, *(name for scope in self.scopes for name in scope)]
        self.report(
            "error",
            "unknown-name",
            node,
            f"unknown name `{node.name}`",
            did_you_mean(node.name, known, quote="`")
            or "declared names: " + ", ".join(f"`{name}`" for name in sorted(known)),
        )
        return DYN

    def _select(self, node: n.Select) -> Type:
        return self.field(node, self.infer(node.operand), node.field, in_has=False)

    def _has(self, node: n.Has) -> Type:
        self.field(node, self.infer(node.operand), node.field, in_has=True)
        return BOOL

    def field(self, node: n.Expr, operand: Type, name: str, in_has: bool) -> Type:
        if operand.kind == "optional":
            # Selecting on an optional tests presence (cel-go): an optional of the field.
            return optional_of(self.field(node, operand.element or DYN, name, in_has=True))
        subject = "it"
        if isinstance(node, (n.Select, n.Has, n.Index)):
            subject = self.text(node.operand)
        elif isinstance(node, n.Call) and node.args:  # `a.?b`, `a[?"b"]`
            subject = self.text(node.args[0])
        if operand.kind == "map":
            fields = operand.fields
            if fields is not None and name in fields:
                if name in operand.partial and not in_has:
                    self.partial_field(node, subject, name)
                return fields[name]
            for pattern, kind in operand.patterns.items():
                if GlobSet([pattern]).matches(name):
                    return kind
            if fields is not None and operand.closed:
                self.report(
                    "error",
                    "unknown-field",
                    node,
                    f"`{subject}` has no field `{name}`"
                    + (" (so this has() is always false)" if isinstance(node, n.Has) else "")
                    + (" (so this is always optional.none())" if isinstance(node, n.Call) else ""),
                    _dotted_key_help(subject, fields, name)
                    or did_you_mean(name, fields, quote="`")
                    or _fields_help(subject, fields, operand.patterns, name),
                )
                return DYN
            if subject == "scope" and not in_has:
                # (every scope field may be missing, so may one carlang's hosts do not set, and
                # a typo of a known one reads as nothing; a map of parameters is open for
                # tools the program does not declare, and says nothing of one it lacks)
                self.partial_field(node, subject, name, fields or {})
            return operand.element or DYN
        if operand.known and not in_has:
            self.report(
                "error",
                "type-mismatch",
                node,
                f"`{subject}` is {with_article(str(operand))}, which has no fields",
                "only maps have fields",
            )
        return DYN

    def optional_field(self, node: n.Call, operand: Type, name: str) -> Type:
        """`operand.?name`: an optional of the field (a missing field is none, not a finding)."""
        inner = operand.element or DYN if operand.kind == "optional" else operand
        if inner.known and inner.kind != "map":
            self.mismatch(
                node,
                f"`{self.text(node.args[0])}` is {with_article(str(inner))}, which has no fields",
                "only maps have fields",
            )
            return optional_of(DYN)
        return optional_of(self.field(node, inner, name, in_has=True))

    def partial_field(
        self, node: n.Expr, subject: str, name: str, known: Mapping[str, Type] | None = None
    ) -> None:
        """Warn that `subject.name` may be missing, unless a has() guards it. `known`: given
        when `name` is none of `subject`'s fields, which are these (said, with the one likely
        meant)."""
        if f"{subject}.{name}" in self.guarded or f"{subject}.*" in self.guarded:
            return
        present = _present(subject, name)
        if subject == "scope" and known is not None:
            listed = ", ".join(f"`{field}`" for field in known)
            why = f"carlang's hosts set {listed}; another only if yours does"
            fix = f"if `{name}` is a scope your host sets, guard it: `{present} && ...`"
            meant = did_you_mean(name, known, quote="`")
            fix = f"{meant} {fix[0].upper()}{fix[1:]}" if meant else fix
        elif subject == "scope":
            why = "a run whose host gives no such scope: one with no tenant, say"
            fix = (
                f"guard it: `{present} && ...` not to match without it,"
                f" `{_negated(present)} || ...` to match"
            )
        else:
            why = "an optional parameter, or one not every tool this policy applies to has"
            fix = f"guard it: `{present} && ...`, or narrow the policy's tools"
        self.report(
            "warning",
            "partial-field",
            node,
            f"`{_selected(subject, name)}` may be missing ({why}): without it the condition"
            " fails, and"
            " the policy fails closed",
            fix,
        )

    def _index(self, node: n.Index) -> Type:
        return self.indexed(node, self.infer(node.operand), node.index)

    def indexed(self, node: n.Index, container: Type, index: n.Expr) -> Type:
        """The type of `container[index]`; indexing an optional tests presence (cel-go)."""
        key = self.infer(index)
        if container.kind == "optional":
            inner = container.element or DYN
            return optional_of(self.indexed_known(node, inner, node.operand, index, key))
        return self.indexed_known(node, container, node.operand, index, key)

    def indexed_known(
        self, node: n.Index | n.Call, container: Type, operand: n.Expr, index: n.Expr, key: Type
    ) -> Type:
        if container.kind == "list":
            self.expect(index, key, ("int", "uint"), "a list index")
            return container.element or DYN
        if container.kind == "map":
            if isinstance(index, n.Literal) and type(index.value) is str:
                return self.field(node, container, index.value, in_has=isinstance(node, n.Call))
            return container.element or DYN
        if container.known:
            self.mismatch(
                node,
                f"`{self.text(operand)}` is {with_article(str(container))} and cannot be indexed",
                "only lists and maps take [ ]",
            )
        return DYN

    def _unary(self, node: n.Unary) -> Type:
        operand = self.infer(node.operand)
        if node.op == "!":
            self.expect(node.operand, operand, ("bool",), "`!`")
            return BOOL
        self.expect(node.operand, operand, ("int", "double", "number", "duration"), "`-`")
        return operand

    def _binary(self, node: n.Binary) -> Type:
        left, right = self.infer(node.left), self.infer(node.right)
        if node.op in ("==", "!="):
            if not _comparable(left, right):
                # CEL's equality is heterogeneous: no error at run time, but a comparison
                # that is always false (or, for `!=`, true) is a mistake, and in a `deny`
                # or an approval it fails open (the policy never fires): an error, as
                # Cedar's validator refuses `==` between types that never compare equal.
                always = "false" if node.op == "==" else "true"
                self.report(
                    "error",
                    "type-mismatch",
                    node,
                    f"`{self.text(node.left)}` is {with_article(str(left))} and"
                    f" `{self.text(node.right)}` is {with_article(str(right))}: `{node.op}` between"
                    f" them is always {always}",
                    _quoted_number_help(node, left, right) or _HELP_NEVER_EQUAL,
                )
            else:
                self.outside_values(node, left, right)
            return BOOL
        if node.op in ("<", "<=", ">", ">="):
            if left.known and right.known and not _orderable(left, right):
                self.mismatch(
                    node,
                    f"`{node.op}` cannot order {with_article(str(left))}"
                    f" and {with_article(str(right))}",
                    _HELP_TYPES,
                )
            return BOOL
        if node.op == "in":
            return self.membership(node, left, right)
        return self.arithmetic(node, left, right)

    def outside_values(self, node: n.Binary, left: Type, right: Type) -> None:
        """`params.currency == "GBP"` where the schema allows only "EUR" and "USD": always
        false (`!=`: always true), so the policy never (or always) matches."""
        for typed, other, literal in (
            (left, node.left, node.right),
            (right, node.right, node.left),
        ):
            if isinstance(literal, n.Literal) and self.value_problem(node, typed, other, literal):
                return

    def value_problem(self, node: n.Expr, typed: Type, other: n.Expr, literal: n.Literal) -> bool:
        """Report `literal`, compared with `other` (of type `typed`) by `node` (`==`, `!=`,
        `in`), when `other` never has it: none of its only values (`typed.values`), or a
        letter or two from one it is known to have (`known_values`: `action.tool == "refnd"`);
        whether it did."""
        value = literal.value
        if not isinstance(value, str):
            return False
        written = self.text(other)
        if typed.values is not None and value not in typed.values:
            names = sorted(typed.values)
        elif typed.known_values is not None and value not in typed.known_values:
            if did_you_mean(value, typed.known_values) is None:
                return False  # (another value it may have: an undeclared MCP tool's name)
            names = sorted(typed.known_values)
        else:
            return False
        listed = ", ".join(f'"{v}"' for v in names[:8]) + (", ..." if len(names) > 8 else "")
        if typed.values is None:  # (others are possible: not "always")
            message = f'"{value}" is none of the values `{written}` is known to have ({listed})'
        elif isinstance(node, n.Binary) and node.op in ("==", "!="):
            always = "false" if node.op == "==" else "true"
            message = f'`{written}` is one of {listed}: `{node.op} "{value}"` is always {always}'
        else:
            message = f'`{written}` is one of {listed}: "{value}" never matches it'
        parameter = written.startswith(("params", "action.params"))
        help = did_you_mean(value, names, '"') or (
            "compare with a value it can have"
            + (", or add this one to the tool's parameter" if parameter else "")
        )
        where = literal if not isinstance(node, n.Binary) or node.op == "in" else node
        self.report("warning", "constant", where, message, help)
        return True

    def membership(self, node: n.Binary, item: Type, container: Type) -> Type:
        if isinstance(node.right, n.ListExpr) and (item.values or item.known_values):
            # `action.tool in ["refund", "emial"]`: each name checked as `==` checks it
            for element in node.right.items:
                if isinstance(element, n.Literal):
                    self.value_problem(node, item, node.left, element)
        if (
            container.kind == "list"
            and container.element
            and not _comparable(item, container.element)
        ):
            self.report(
                "error",  # (as `==` above: the test can never hold)
                "type-mismatch",
                node,
                f"{with_article(str(item))} is never in a {container}: `in` is always false",
                _HELP_NEVER_EQUAL,
            )
        elif container.known and container.kind not in ("list", "map"):
            self.mismatch(
                node,
                f"`in` needs a list or a map, and `{self.text(node.right)}` is"
                f" {with_article(str(container))}",
                "for a substring use `.contains()`" if container.kind == "string" else None,
            )
        return BOOL

    def arithmetic(self, node: n.Binary, left: Type, right: Type) -> Type:
        if not (left.known and right.known):
            return left if left.known and node.op in ("*", "/", "%") else DYN
        if (
            _same_kind(left, right)
            and left.kind in _NUMERIC
            and not (node.op == "%" and "double" in (left.kind, right.kind))
        ):
            if "number" in (left.kind, right.kind):
                self.mixed_numbers(node, left, right)
            return left if left.kind == right.kind else NUMBER
        if node.op == "+" and left.kind == right.kind == "list":
            return list_of(join([left.element or DYN, right.element or DYN]))
        result = _ARITHMETIC.get(node.op, {}).get((left.kind, right.kind))
        if result is None:
            self.mismatch(
                node,
                f"`{node.op}` is not defined on {with_article(str(left))}"
                f" and {with_article(str(right))}",
                _conversion_hint(left.kind, right.kind),
            )
            return DYN
        return result

    def mixed_numbers(self, node: n.Binary, left: Type, right: Type) -> None:
        """Arithmetic on a JSON number (a `float` parameter or state key, a schema's
        `number`): JSON gives 50 as an int and 7.5 as a double, and CEL will not mix the two,
        so the condition fails (and its policy fails closed) whenever the operands' kinds
        differ at run time. Comparisons mix them; arithmetic needs `double(...)`."""
        operand = node.left if left.kind == "number" else node.right
        other = node.right if operand is node.left else node.left
        if isinstance(operand, n.Binary):  # (`a * 2 + 1`: said once, of `a * 2`)
            return
        said = self.text(operand)
        other_type = right if operand is node.left else left
        if isinstance(other, n.Literal) and type(other.value) is int:
            converted = f"{other.value}.0"
        elif other_type.kind == "double":
            converted = self.text(other)
        else:
            converted = f"double({self.text(other)})"
        sides = (f"double({said})", converted)
        fixed = f" {node.op} ".join(sides if operand is node.left else reversed(sides))
        self.report(
            "warning",
            "type-mismatch",
            node,
            f"`{said}` is a number: an int or a double, as the JSON holds it (50 or 7.5), and"
            f" CEL does not mix them in arithmetic: `{self.text(node)}` fails, and its policy"
            " fails closed, whenever the two sides differ",
            f"convert to double: `{fixed}`",
        )

    def _and(self, node: n.And) -> Type:
        return self.logical(node.operands, guard=True)

    def _or(self, node: n.Or) -> Type:
        return self.logical(node.operands, guard=False)

    def logical(self, operands: tuple[n.Expr, ...], guard: bool) -> Type:
        """`&&` (guard) or `||`: an operand that decides the whole when a field is missing
        guards the other operands (`has(x.f) && x.f > 1`, `!has(x.f) || x.f > 1`, in either
        order: CEL's `&&` is false when any operand is false, errors or not), and a test of
        the tool (`action.tool == "fetch" && params.url ...`) guards `params`."""
        saved = set(self.guarded)
        for operand in operands:
            self.guards(operand, guard)
        for operand in operands:
            self.expect(operand, self.infer(operand), ("bool",), "`&&` and `||`")
        self.guarded = saved
        return BOOL

    def guards(self, operand: n.Expr, conjunct: bool) -> None:
        """Add what `operand`, as an operand of `&&` (conjunct) or `||`, guards."""
        test = operand
        if not conjunct:  # `||` needs the operand false to look at the others
            if not (isinstance(operand, n.Unary) and operand.op == "!"):
                return
            test = operand.operand
        guarded = self.guard_of(test)
        if guarded is not None:
            self.guarded.add(guarded)
        elif conjunct and self.tests_tool(test):
            self.guarded.update(("params.*", "action.params.*"))

    def guard_of(self, test: n.Expr) -> str | None:
        """The field `test` is true only with (`params.url` for `has(params.url)`, and for
        `"x y" in params`, the form of a name a `.` cannot select), or None."""
        if isinstance(test, n.Has):
            return f"{self.text(test.operand)}.{test.field}"
        if (
            isinstance(test, n.Binary)
            and test.op == "in"
            and isinstance(test.left, n.Literal)
            and isinstance(test.left.value, str)
        ):
            return f"{self.text(test.right)}.{test.left.value}"
        return None

    def tests_tool(self, node: n.Expr) -> bool:
        """Whether `node` is `action.tool == "name"` or `action.tool in [...]` (true only for
        calls of the tools named, whose parameters the author has in mind)."""
        if not isinstance(node, n.Binary) or node.op not in ("==", "in"):
            return False
        sides = (node.left, node.right) if node.op == "==" else (node.left,)
        return any(self.text(side) == "action.tool" for side in sides)

    def _conditional(self, node: n.Conditional) -> Type:
        self.expect(node.condition, self.infer(node.condition), ("bool",), "`? :`")
        saved = set(self.guarded)
        guarded = self.guard_of(node.condition)
        if guarded is not None:
            self.guarded.add(guarded)
        then = self.infer(node.then)
        self.guarded = saved
        return join([then, self.infer(node.otherwise)])

    def _listexpr(self, node: n.ListExpr) -> Type:
        items = [
            self.entry(item, position in node.optional, "[?x]")
            for position, item in enumerate(node.items)
        ]
        return list_of(join(items) if items else DYN)

    def _mapexpr(self, node: n.MapExpr) -> Type:
        for key, _ in node.entries:
            self.expect(key, self.infer(key), ("string", "int", "uint", "bool"), "a map key")
        values = [
            self.entry(value, position in node.optional, "{?k: v}")
            for position, (_, value) in enumerate(node.entries)
        ]
        return map_of(join(values) if values else DYN)

    def entry(self, node: n.Expr, optional: bool, form: str) -> Type:
        """The type of a list element or map value; of the value inside, for an optional one."""
        found = self.infer(node)
        if not optional:
            return found
        self.expect(node, found, ("optional",), f"an optional entry {form}")
        return found.element or DYN if found.kind == "optional" else DYN

    def _call(self, node: n.Call) -> Type:
        if node.function == "_?._" and len(node.args) == 2:
            literal = node.args[1]
            assert isinstance(literal, n.Literal)
            operand = self.infer(node.args[0])
            return self.optional_field(node, operand, str(literal.value))
        if node.function == "_[?_]" and len(node.args) == 2:
            container = self.infer(node.args[0])
            inner = container.element or DYN if container.kind == "optional" else container
            key = self.infer(node.args[1])
            return optional_of(self.indexed_known(node, inner, node.args[0], node.args[1], key))
        method = node.target is not None
        target = self.infer(node.target) if node.target is not None else None
        args = [self.infer(arg) for arg in node.args]
        function = FUNCTIONS.get(node.function)
        if function is None:
            names = [*(name for name, f in FUNCTIONS.items() if f.named), *MACROS, "has"]
            self.report(
                "error",
                "unknown-function",
                node,
                f"unknown function `{node.function}`",
                did_you_mean(node.function, names, quote="`"),
            )
            return DYN
        forms = [o for o in function.overloads if (o.receiver is not None) == method]
        if not any(len(o.args) == len(args) for o in forms):
            usage = _usage(node.function, function.overloads)
            self.report("error", "wrong-arguments", node, f"`{node.function}` is called as {usage}")
            return DYN
        if node.function == "matches":
            self.regex(node.args[-1])
        elif node.function in ZONED_ACCESSORS and method and len(args) == 1:
            self.zone(node.args[0])
        received = ([target] if target is not None else []) + args
        for overload in forms:
            wanted = ([overload.receiver] if overload.receiver else []) + list(overload.args)
            if len(wanted) == len(received) and all(
                _accepts(kind, actual) for kind, actual in zip(wanted, received, strict=True)
            ):
                return _result_type(overload.result, received)
        shown = ", ".join(str(t) for t in received)
        usage = _usage(node.function, forms)
        self.mismatch(node, f"`{node.function}` does not take ({shown})", f"it takes {usage}")
        return DYN

    def _macro(self, node: n.Macro) -> Type:
        target = self.infer(node.target)
        if node.kind == "bind":
            assert node.result is not None
            self.scopes.append({node.var: target})
            try:
                return self.infer(node.result)
            finally:
                self.scopes.pop()
        if node.kind in ("optMap", "optFlatMap"):
            return self.optional_map(node, target)
        if target.kind == "list":
            element = target.element or DYN
        elif target.kind == "map":
            element = STRING if target.fields is not None else DYN
        else:
            element = DYN
            if target.known:
                self.mismatch(
                    node.target,
                    f"{node.kind}() ranges over a list or a map, and"
                    f" `{self.text(node.target)}` is {with_article(str(target))}",
                )
        scope = {node.var: element}
        if node.var2 is not None:
            # Two variables: the index (or key) and the element (or value).
            value = target.element or DYN if target.kind in ("list", "map") else DYN
            scope = {node.var: INT if target.kind == "list" else element, node.var2: value}
        self.scopes.append(scope)
        try:
            if node.predicate is not None:
                self.expect(
                    node.predicate,
                    self.infer(node.predicate),
                    ("bool",),
                    f"the condition of {node.kind}()",
                )
            result = self.infer(node.result) if node.result is not None else None
        finally:
            self.scopes.pop()
        if node.kind in ("map", "transformList"):
            return list_of(result or DYN)
        if node.kind == "transformMap":
            return map_of(result or DYN)
        if node.kind == "transformMapEntry":
            return result if result is not None and result.kind == "map" else map_of(DYN)
        if node.kind == "sortBy":
            return target if target.kind == "list" else list_of(element)
        if node.kind == "filter":
            return target if target.kind == "list" else list_of(element)
        return BOOL

    def optional_map(self, node: n.Macro, target: Type) -> Type:
        """`opt.optMap(x, e)`: an optional of `e`'s type; `optFlatMap`: `e`'s, an optional."""
        assert node.result is not None
        self.expect(node.target, target, ("optional",), f"the receiver of {node.kind}()")
        value = target.element or DYN if target.kind == "optional" else DYN
        self.scopes.append({node.var: value})
        try:
            result = self.infer(node.result)
        finally:
            self.scopes.pop()
        if node.kind == "optMap":
            return optional_of(result)
        self.expect(node.result, result, ("optional",), "the result of optFlatMap()")
        return result if result.kind == "optional" else optional_of(DYN)

    def regex(self, pattern: n.Expr) -> None:
        if isinstance(pattern, n.Literal) and type(pattern.value) is str:
            try:
                compile_regex(pattern.value)
            except CelEvalError as exc:
                self.report(
                    "error",
                    "invalid-regex",
                    pattern,
                    exc.message,
                    "RE2 syntax: no backreferences or lookaround",
                )

    def zone(self, name: n.Expr) -> None:
        if isinstance(name, n.Literal) and type(name.value) is str:
            try:
                time_zone(name.value)
            except CelEvalError:
                self.report(
                    "error",
                    "invalid-time-zone",
                    name,
                    f"{name.value!r} is not a time zone: every evaluation would fail",
                    "an IANA name like Europe/Paris, UTC, or an offset like +02:00",
                )

    # -- helpers ---------------------------------------------------------------------------

    def expect(self, node: n.Expr, actual: Type, kinds: tuple[str, ...], where: str) -> None:
        if actual.known and not any(_accepts(kind, actual) for kind in kinds):
            self.mismatch(
                node,
                f"{where} needs {' or '.join(with_article(k) for k in kinds)}, and"
                f" `{self.text(node)}` is {with_article(str(actual))}",
            )

    def mismatch(self, node: n.Expr, message: str, help: str | None = None) -> None:
        self.report("error", "type-mismatch", node, message, help)

    # -- constant conditions ---------------------------------------------------------------

    def constant_condition(self, tree: n.Expr) -> None:
        """Warn about a condition that does not depend on the action, and about `&&`/`||`
        operands that are constant."""
        if any(issue.severity == "error" for issue in self.issues):
            return
        value = _VARIES if isinstance(tree, n.Literal) else self.constant(tree)
        if value is not _VARIES:
            if isinstance(value, CelEvalError):
                self.report(
                    "error", "constant", tree, f"the condition always fails: {value.message}"
                )
            else:
                self.report(
                    "warning",
                    "constant",
                    tree,
                    f"the condition is always {format_value(value)}",
                    "it does not look at the action, state or scope",
                )
            return
        for node in n.walk(tree):
            if isinstance(node, (n.And, n.Or)):
                self.constant_operands(node)
        self.constant_failures(tree)

    def constant_failures(self, tree: n.Expr) -> None:
        """Report each part of the condition that reads no variable and whose evaluation
        fails (`now > timestamp("2026-12-32T00:00:00Z")`, `params.n > int("abc")`): the
        condition fails whenever it evaluates it. At the smallest such part."""
        readers = _variable_readers(tree, self.variables)
        stack = [tree]
        while stack:
            current = stack.pop()
            if isinstance(current, n.Literal):
                continue
            if id(current) in readers:
                stack.extend(n.children(current))
                continue
            value = self.constant(current, readers)
            if isinstance(value, CelEvalError):
                self.constant_failure(current, value, readers)
            # (one that succeeds: a part of it that would fail is never evaluated)

    def constant_failure(self, node: n.Expr, error: CelEvalError, readers: set[int]) -> None:
        """Report `node`, which always fails with `error`, at its smallest part that does
        (`int("z")` in `[1, 2].exists(y, y > int("z"))`)."""
        stack = list(reversed(n.children(node)))
        while stack:
            current = stack.pop()
            if isinstance(current, n.Literal):
                continue
            if id(current) in readers:  # (`y > int("z")`: `y` is the macro's)
                stack.extend(reversed(n.children(current)))
                continue
            value = self.constant(current, readers)
            if isinstance(value, CelEvalError):
                self.constant_failure(current, value, readers)
                return
        text = self.text(node)
        # (a function's error starts with its call: `int("abc"): the string is not ...`)
        message = error.message.removeprefix(f"{text}: ")
        self.report(
            "error",
            "constant",
            node,
            f"`{text}` always fails: {message}",
            "it reads no variable: it fails each time it is evaluated, and the condition with it",
        )

    def constant_operands(self, node: n.And | n.Or) -> None:
        deciding = isinstance(node, n.Or)
        for operand in node.operands:
            value = self.constant(operand)
            if value is _VARIES or isinstance(value, CelEvalError):
                continue
            shown = format_value(value)
            if value is deciding:
                operator = "||" if deciding else "&&"
                self.report(
                    "warning",
                    "constant",
                    operand,
                    f"`{self.text(operand)}` is always {shown}, so the whole"
                    f" `{operator}` is always {shown}",
                )
            else:
                self.report(
                    "warning",
                    "constant",
                    operand,
                    f"`{self.text(operand)}` is always {shown} and changes nothing",
                )

    def constant(self, node: n.Expr, readers: set[int] | None = None) -> Any:
        """The value of `node` if it reads no variable, else `_VARIES` (`readers`: the nodes
        that read one, when known: `_variable_readers`)."""
        if isinstance(node, n.Literal):
            return node.value
        if id(node) in readers if readers is not None else _reads_variables(node, self.variables):
            return _VARIES
        from .program import Limits, compile

        try:
            return compile(self.text(node), limits=Limits()).evaluate({})
        except CelEvalError as exc:
            return exc
        except CarlangRuntimeError:
            return _VARIES


class _Varies:
    pass


_VARIES: Final = _Varies()


def _variable_readers(tree: n.Expr, variables: Mapping[str, Any]) -> set[int]:
    """The ids of the nodes under `tree` (itself included) that read a variable: an
    identifier that is a variable or no type name (`int`), and is not a variable a macro
    around it binds. In one pass, from the leaves up."""
    free: dict[int, frozenset[str]] = {}
    readers: set[int] = set()
    for node in reversed(list(n.walk(tree))):  # (children before their parents)
        if isinstance(node, n.Ident):
            names = (
                frozenset((node.name,))
                if node.name in variables or node.name not in TYPE_NAMES
                else frozenset()
            )
        else:
            names = frozenset().union(*(free[id(child)] for child in n.children(node)))
            if isinstance(node, n.Macro) and names:
                names -= {node.var, node.var2}
        free[id(node)] = names
        if names:
            readers.add(id(node))
    return readers


def _reads_variables(node: n.Expr, variables: Mapping[str, Any]) -> bool:
    bound: set[str] = set()
    for sub in n.walk(node):
        if isinstance(sub, n.Macro):
            bound.add(sub.var)
            if sub.var2 is not None:
                bound.add(sub.var2)
        if (
            isinstance(sub, n.Ident)
            and sub.name not in bound
            and (sub.name in variables or sub.name not in TYPE_NAMES)
        ):
            return True
    return False


def _quoted_number_help(node: n.Binary, left: Type, right: Type) -> str | None:
    """`compare with the number: 80` for `params.port == "80"`."""
    for side, other in ((node.right, left), (node.left, right)):
        if isinstance(side, n.Literal) and type(side.value) is str and other.kind in _NUMERIC:
            text = side.value.strip()
            try:
                float(text)
            except ValueError:
                continue
            return f"compare with the number: `{text}`, without quotes"
    return None


def _same_kind(left: Type, right: Type) -> bool:
    if left.kind == right.kind:
        return True
    return {left.kind, right.kind} in ({"number", "int"}, {"number", "double"})


def _orderable(left: Type, right: Type) -> bool:
    """Whether `<` and the like order values of these types: two of one ordered type, or
    numbers of any two types, which compare by value (cel-spec's cross-type numeric
    comparisons, as the evaluator does, and cel-go with that option on: `params.amount > 1.5`
    for an int amount)."""
    if _same_kind(left, right):
        return left.kind in _ORDERED
    return left.kind in _NUMERIC and right.kind in _NUMERIC


def _comparable(left: Type, right: Type) -> bool:
    """Whether `==` between values of these types can be true: values of different types are
    unequal (cel-spec's heterogeneous equality), except numbers, which compare by value. A
    comparison with null is a presence test, never reported."""
    if not (left.known and right.known) or _same_kind(left, right):
        return True
    if "null" in (left.kind, right.kind):
        return True
    return left.kind in _NUMERIC and right.kind in _NUMERIC


def _accepts(kind: str, actual: Type) -> bool:
    if kind == "dyn" or not actual.known:
        return True
    if kind == actual.kind:
        return True
    return actual.kind == "number" and kind in ("int", "double")


def _result_type(kind: str, received: list[Type]) -> Type:
    simple = {
        "int": INT,
        "uint": UINT,
        "double": DOUBLE,
        "string": STRING,
        "bytes": BYTES,
        "bool": BOOL,
        "timestamp": TIMESTAMP,
        "duration": DURATION,
        "type": TYPE,
    }
    if kind == "same" and received:
        return received[0]
    if kind == "dyn_number":
        # math.greatest/least: the type of the numbers when they all have one.
        kinds = {t.kind for t in received}
        return received[0] if len(kinds) == 1 and received[0].kind in _NUMERIC else DYN
    # Optionals: `optional.of(x)`, `list.first()`, `opt.value()`, `opt.orValue(v)`.
    if kind == "optional_of":
        return optional_of(received[-1] if received else DYN)
    if kind == "optional_element":
        return optional_of(received[0].element or DYN)
    if kind == "element":
        return received[0].element or DYN
    if kind == "list_unwrapped":  # a list of optionals -> a list of their values
        inner = received[0].element or DYN
        return list_of(inner.element or DYN if inner.kind == "optional" else DYN)
    if kind == "element_or":
        return join([received[0].element or DYN, received[1]])
    lists = {"list": list_of(DYN), "list_string": list_of(STRING), "list_int": list_of(INT)}
    if kind in lists:
        return lists[kind]
    return simple.get(kind, DYN)


def _usage(name: str, overloads: Iterable[Overload]) -> str:
    """How a function is called: `size(string | bytes | list | map)`,
    `<string>.startsWith(string)`."""
    groups: dict[tuple[bool, int], list[Overload]] = {}
    for overload in overloads:
        groups.setdefault((overload.receiver is None, len(overload.args)), []).append(overload)
    shown = []
    for (is_global, arity), group in groups.items():
        args = ", ".join(" | ".join(dict.fromkeys(o.args[i] for o in group)) for i in range(arity))
        if is_global:
            shown.append(f"`{name}({args})`")
        else:
            receivers = " | ".join(dict.fromkeys(str(o.receiver) for o in group))
            shown.append(f"`<{receivers}>.{name}({args})`")
    return " or ".join(shown)


def _dotted_key_help(subject: str, fields: Iterable[str], name: str) -> str | None:
    """The help for `state.order.found` where the key is `order.found`: a key with dots in
    it is one key, read by index (a select reads `order`, then `found` from it)."""
    dotted = sorted(key for key in fields if key.startswith(name + "."))
    if not dotted:
        return None
    shown = " or ".join(f"`{subject}[{json.dumps(key)}]`" for key in dotted[:3])
    return f"a key with dots in its name is read by index: {shown}"


def _fields_help(
    subject: str,
    fields: Mapping[str, Type],
    patterns: Mapping[str, Type] | None = None,
    name: str = "",
) -> str:
    """What a closed map has, for a field `name` it does not have: its fields and its
    families (`build.*`: a key of one is read with [ ], its name holding dots)."""
    patterns = patterns or {}
    families = [p for p in patterns if p.startswith(f"{name}.")]
    if families:
        example = families[0].replace("*", "name")
        return f'`{families[0]}` is a family of keys: read one as `{subject}["{example}"]`'
    if fields or patterns:
        shown = [f"`{f}`" for f in sorted(fields)] + [f"`{p}`" for p in sorted(patterns)]
        return "its fields: " + ", ".join(shown)
    if subject == "params":
        return "the tools it applies to take no parameters"
    if subject == "state":
        return "the program declares no such state key (`state { ... }`)"
    return "it has no fields"


def _conversion_hint(left: str, right: str) -> str:
    """How to make an arithmetic on two kinds CEL will not mix: the conversion that fits."""
    kinds = {left, right}
    if "string" in kinds:
        fix = "string(x) to join text"
    elif "double" in kinds and kinds <= {"int", "uint", "double"}:
        fix = "double(x)"
    elif kinds == {"int", "uint"}:
        fix = "int(x) or uint(x)"
    else:
        return "CEL does not convert between types"
    return f"CEL does not convert between types: convert one side, e.g. {fix}"


#: CEL's reserved words, which cannot follow a `.` (`params.in` does not parse).
_RESERVED = frozenset(
    "true false null in as break const continue else for function if import let loop package"
    " namespace return var void while".split()
)


def _selectable(name: str) -> bool:
    """Whether `.name` selects the field `name` in CEL (not `x y`, not `in`)."""
    return re.fullmatch(r"[_a-zA-Z][_a-zA-Z0-9]*", name) is not None and name not in _RESERVED


def _selected(subject: str, name: str) -> str:
    """The field `name` of `subject` in CEL: `params.url`, `params["x y"]`."""
    quoted = json.dumps(name, ensure_ascii=False)
    return f"{subject}.{name}" if _selectable(name) else f"{subject}[{quoted}]"


def _present(subject: str, name: str) -> str:
    """CEL that is true when `subject` has the field `name`: `has(params.url)`, or for a name
    a `.` cannot select, `"x y" in params`."""
    if _selectable(name):
        return f"has({subject}.{name})"
    return f"{json.dumps(name, ensure_ascii=False)} in {subject}"


def _negated(present: str) -> str:
    """`_present`'s test negated: `!has(scope.x)`, `!("x y" in scope)`."""
    return f"!{present}" if present.startswith("has(") else f"!({present})"
