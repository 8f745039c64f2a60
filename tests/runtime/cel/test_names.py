"""Name resolution (cel-spec langdef, "Name Resolution"): qualified names bound as a whole
(the longest prefix that is a declared name wins, field selection applies to the rest), a
leading dot naming the root scope, and containers (`x` in `com.example` is
`com.example.x`, then `com.x`, then `x`) — with declarations (resolved when compiled, checked)
and without (resolved against the activation), and against cel-python where it agrees."""

from __future__ import annotations

from typing import Any

import pytest
from carlang_runtime.cel import CelCompileError, CelEvalError, ErrorKind, compile
from carlang_runtime.cel.checker import CelCheckError, Declarations, check
from carlang_runtime.cel.resolve import candidates
from carlang_runtime.cel.types import DYN, INT, STRING, map_of

from .celpy_bridge import ReferenceError_, reference_evaluate

NESTED = {"a.b.c": 1, "a.b": {"c": 2}, "a": {"b": {"c": 3}}}


def test_candidates_follow_the_spec_order() -> None:
    # langdef: `a.b` in scope `A.B` is tried as `A.B.a.b`, `A.a.b`, `a.b`; the longest prefix
    # of the name first (cel-go), then shorter ones.
    assert [name for name, _ in candidates(("a", "b"), "A.B", absolute=False)] == [
        "A.B.a.b",
        "A.a.b",
        "a.b",
        "A.B.a",
        "A.a",
        "a",
    ]
    assert [name for name, _ in candidates(("a", "b"), "A.B", absolute=True)] == ["a.b", "a"]


@pytest.mark.parametrize(
    ("expression", "activation", "expected"),
    [
        ("a.b.c", NESTED, 1),  # the longest prefix that is a name wins
        ("a.b.c", {"a.b": {"c": 2}, "a": {"b": {"c": 3}}}, 2),  # then `a.b`, `.c` selected
        ("a.b.c", {"a": {"b": {"c": 3}}}, 3),
        ("(a.b).c", NESTED, 2),  # parentheses choose field selection (langdef)
        ("(a).b.c", NESTED, 3),
        (".a.b.c", NESTED, 1),  # the root scope: qualified names still bind as a whole
        ("a.b.c + a.b.c", {"a.b.c": 20}, 40),
        ("has(a.b.c)", {"a.b": {"c": 2}}, True),
        ("a.b.size()", {"a.b": "xyz"}, 3),
        ("[{'c': 5}].all(a, a.c == 5)", {"a.c": 1}, True),  # a macro variable shadows
        ("[0].all(a, .a.c == 1)", {"a.c": 1}, True),  # ... but not the root scope
    ],
)
def test_qualified_names_resolve_against_the_activation(
    expression: str, activation: dict[str, Any], expected: Any
) -> None:
    program = compile(expression)
    assert program.evaluate(activation) == expected
    assert program.explain(activation).value == expected


def test_a_missing_qualified_name_is_an_undeclared_reference() -> None:
    with pytest.raises(CelEvalError) as caught:
        compile("a.b.c == 1").evaluate({})
    assert caught.value.kind == ErrorKind.UNDECLARED_REFERENCE


CONTAINER = "com.example"


@pytest.mark.parametrize(
    ("expression", "activation", "expected"),
    [
        ("x", {"com.example.x": 1, "com.x": 2, "x": 3}, 1),
        ("x", {"com.x": 2, "x": 3}, 2),
        ("x", {"x": 3}, 3),
        ("x.y", {"com.example.x.y": 1, "com.example.x": {"y": 2}, "x.y": 3}, 1),
        ("x.y", {"com.example.x": {"y": 2}, "x.y": 3}, 3),  # longest name before container
        ("x.y", {"com.x": {"y": 4}, "x": {"y": 5}}, 4),
        (".x", {"com.example.x": 1, "x": 3}, 3),  # a leading dot: the root only
        ("[7].all(x, x == 7)", {"com.example.x": 1}, True),  # a macro variable first
        ("example.x", {"com.example.x": 1}, 1),  # `com.example.x` via the container `com`
    ],
)
def test_a_container_resolves_names_innermost_first(
    expression: str, activation: dict[str, Any], expected: Any
) -> None:
    program = compile(expression, container=CONTAINER)
    if expression == "example.x":
        program = compile(expression, container="com")
    assert program.evaluate(activation) == expected


def test_declared_qualified_names_are_resolved_when_compiled_and_typed() -> None:
    declarations = Declarations({"a.b": map_of(fields={"c": INT}, closed=True), "a": DYN})
    program = compile("a.b.c == 2", declarations)
    assert program.evaluate({"a.b": {"c": 2}, "a": {"b": {"c": 3}}}) is True
    assert program.variables == frozenset({"a.b"})  # `a` is not read at all
    # the checker sees `a.b`'s type: an unknown field and a mismatch are found statically
    issues = check("a.b.d == 1", declarations).errors
    assert [issue.kind for issue in issues] == ["unknown-field"]
    with pytest.raises(CelCheckError):
        compile("a.b.c + 'x' == 'x1'", declarations)
    typed = Declarations({"a.b.c": STRING})
    assert check("a.b.c + 1 == 2", typed).errors  # a string plus an int
    assert compile("a.b.c + 'y' == 'xy'", typed).evaluate({"a.b.c": "x"}) is True


def test_declared_container_resolves_and_reports_unknown_names() -> None:
    declarations = Declarations({"com.example.x": INT, "x": STRING}, container=CONTAINER)
    program = compile("x == 1 && .x == 'root'", declarations)
    assert program.evaluate({"com.example.x": 1, "x": "root"}) is True
    assert program.variables == frozenset({"com.example.x", "x"})
    assert not check("x + 1 == 2", declarations).errors  # `x` is the int one
    unknown = check("y == 1", declarations).errors
    assert [issue.kind for issue in unknown] == ["unknown-name"]
    # compile's own container overrides the declarations' one
    assert compile("x == 'root'", declarations, container="").evaluate({"x": "root"}) is True


@pytest.mark.parametrize("container", ["com..example", "com.1x", "com example", "."])
def test_a_malformed_container_is_refused(container: str) -> None:
    with pytest.raises(CelCompileError, match="not a qualified name"):
        compile("x", container=container)


@pytest.mark.parametrize(
    ("expression", "activation", "container"),
    [
        ("a.b.c", NESTED, ""),
        ("a.b.c", {"a.b": {"c": 2}, "a": {"b": {"c": 3}}}, ""),
        ("a.b.c == 1 && a.x.y == 4", {"a.b.c": 1, "a.x": {"y": 4}}, ""),
        ("x", {"com.example.x": 1, "com.x": 2, "x": 3}, CONTAINER),
        ("x", {"com.x": 2, "x": 3}, CONTAINER),
        ("x.y", {"com.x": {"y": 4}, "x": {"y": 5}}, CONTAINER),
    ],
)
def test_cel_python_agrees(expression: str, activation: dict[str, Any], container: str) -> None:
    ours = compile(expression, container=container).evaluate(activation)
    assert reference_evaluate(expression, activation, container) == ours


# Known cel-python deviations (docs/cel.md, "Differences from cel-python"), each against cel-spec
# langdef, "Name Resolution": cel-python resolves a leading-dot name through its package too
# ("`.a.b` ... will only be attempted to be resolved in the root scope"), and it ignores
# parentheses around a qualified name ("Explicit parentheses can be used to choose the field
# selection interpretation"): with `a.b.c` and `a.b` both bound, `(a.b).c` is `a.b.c` to it.
# And a bound `a.b.c` hides a bound `a` from it ("the longest prefix of the name which resolves"
# is `a` for `a.x`): celpy's activation nests dotted names into one tree of namespaces.
CELPY_DEVIATES = [
    (".x", {"com.example.x": 1, "x": 3}, CONTAINER, 3, 1),
    ("(a.b).c", NESTED, "", 2, 1),
    ("a.x", {"a.b.c": 1, "a": {"x": 4}}, "", 4, ReferenceError_),
]


@pytest.mark.parametrize(("expression", "activation", "container", "spec", "celpy"), CELPY_DEVIATES)
def test_cel_python_deviations_are_recorded(
    expression: str, activation: dict[str, Any], container: str, spec: Any, celpy: Any
) -> None:
    assert compile(expression, container=container).evaluate(activation) == spec
    if celpy is ReferenceError_:
        with pytest.raises(ReferenceError_):
            reference_evaluate(expression, activation, container)
    else:
        assert reference_evaluate(expression, activation, container) == celpy


def test_only_an_activation_holding_a_qualified_name_pays_for_resolving_it() -> None:
    program = compile("a.b.c == 1 && x == 2")
    assert program.python_source.count(" in act or ") == 1  # `a.b.c`, `a.b`: tested on entry
    assert "_resolving" not in compile("x == 2 && [1].all(a, a.b == 1)").python_source
    assert program.evaluate({"a": {"b": {"c": 1}}, "x": 2}) is True
    assert program.evaluate({"a.b": {"c": 1}, "x": 2}) is True
