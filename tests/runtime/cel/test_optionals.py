"""cel-go's optional library (`optional.of/none/ofNonZeroValue`, `.?field`, `[?key]`,
`orValue`, `or`, `hasValue`, `value`, `[?x]`, `{?k: v}`), the lists extension's `first()` and
`last()`, and backtick-quoted field names (cel-spec 0.24): cases from cel-spec's
optionals.textproto and cel-go's ext/README, their static types, cost and limits."""

from __future__ import annotations

from typing import Any

import pytest
from carlang_runtime.cel import (
    CelCostError,
    CelEvalError,
    CelSyntaxError,
    ErrorKind,
    Limits,
    compile,
)
from carlang_runtime.cel.build import parse
from carlang_runtime.cel.checker import Declarations, check
from carlang_runtime.cel.cost import estimate
from carlang_runtime.cel.functions import FUNCTIONS
from carlang_runtime.cel.types import INT, STRING, list_of, map_of
from carlang_runtime.cel.values import OPTIONAL_NONE, CelOptional

DATA = {
    "m": {"c": {"dashed-index": "goodbye"}, "content-type": "json", "n": 0},
    "xs": [1, 2, 3],
    "empty": [],
}


def run(text: str, **activation: Any) -> Any:
    return compile(text).evaluate({**DATA, **activation})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # cel-spec optionals.textproto
        ("optional.of(1).hasValue()", True),
        ("optional.none().hasValue()", False),
        ("optional.of(1).value()", 1),
        ("optional.none().orValue(42)", 42),
        ("optional.of(1).orValue(42)", 1),
        ("{'k': 'v'}.?k.value()", "v"),
        ("{'k': 'v'}.?x.hasValue()", False),
        ("{'k': 'v'}[?'k'].value()", "v"),
        ("{'k': 'v'}[?'x'].orValue('none')", "none"),
        ("[1, 2, 3][?1].value()", 2),
        ("[1, 2, 3][?3].hasValue()", False),
        ("[1, 2, 3][?-1].hasValue()", False),
        ("{1: 'a'}[?1u].value()", "a"),  # keys compare by numeric value
        ("optional.none().or(optional.of(2)).value()", 2),
        ("optional.of(1).or(optional.of(2)).value()", 1),
        ("optional.none().or(optional.none()).hasValue()", False),
        ("[?optional.none(), ?optional.of(2), 3]", [2, 3]),
        ("[?{'k': 1}.?k, ?{'k': 1}.?j]", [1]),
        ("{?'a': optional.of(1), ?'b': optional.none(), 'c': 3}", {"a": 1, "c": 3}),
        ("optional.of(1) == optional.of(1)", True),
        ("optional.of(1) == optional.of(1.0)", True),
        ("optional.of(1) != optional.none()", True),
        ("optional.none() == optional.none()", True),
        ("optional.of(1) == 1", False),  # heterogeneous equality: different types
        ("type(optional.none()) == optional_type", True),
        # presence chains: selecting on an optional stays an optional
        ("m.?c.?missing.?deeper.hasValue()", False),
        ("m.?c.missing.hasValue()", False),
        ("m.?c[?'dashed-index'].value()", "goodbye"),
        ("optional.of({'a': {'b': 1}}).a.b.value()", 1),
        ("optional.none()[?0].hasValue()", False),
        # ofNonZeroValue: none for each type's zero value
        ("optional.ofNonZeroValue(0).hasValue()", False),
        ("optional.ofNonZeroValue(0u).hasValue()", False),
        ("optional.ofNonZeroValue(0.0).hasValue()", False),
        ("optional.ofNonZeroValue('').hasValue()", False),
        ("optional.ofNonZeroValue(b'').hasValue()", False),
        ("optional.ofNonZeroValue(false).hasValue()", False),
        ("optional.ofNonZeroValue(null).hasValue()", False),
        ("optional.ofNonZeroValue([]).hasValue()", False),
        ("optional.ofNonZeroValue({}).hasValue()", False),
        ("optional.ofNonZeroValue(duration('0s')).hasValue()", False),
        ("optional.ofNonZeroValue(timestamp(0)).hasValue()", False),
        ("optional.ofNonZeroValue([0]).value()", [0]),
        ("optional.ofNonZeroValue('a').value()", "a"),
        # or/orValue evaluate their argument only when needed (cel-go)
        ("optional.of(1).orValue(1 / 0)", 1),
        ("optional.of(1).or(optional.of(1 / 0)).value()", 1),
        # lists extension: first() and last()
        ("xs.first().value()", 1),
        ("xs.last().value()", 3),
        ("empty.first().hasValue() || empty.last().hasValue()", False),
        ("[].first().orValue('none')", "none"),
        # backtick-quoted field names (cel-spec 0.24)
        ("m.`content-type`", "json"),
        ("has(m.`content-type`) && !has(m.`no such`)", True),
        ("m.c.`dashed-index`", "goodbye"),
        ("m.?`content-type`.value()", "json"),
        ("{'a.b': 1}.`a.b`", 1),
        ("{'a/b c': 1}.`a/b c`", 1),
    ],
)
def test_values(text: str, expected: Any) -> None:
    value = run(text)
    assert value == expected and type(value) is type(expected), text


def test_values_are_optionals() -> None:
    assert run("optional.none()") is OPTIONAL_NONE
    found = run("m.?n")
    assert type(found) is CelOptional and found.present and found.value == 0
    assert run("empty[?0]") is OPTIONAL_NONE


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("optional.none().value()", ErrorKind.INVALID_ARGUMENT),
        ("[1][?'a']", ErrorKind.NO_MATCHING_OVERLOAD),
        ("xs.?a", ErrorKind.NO_MATCHING_OVERLOAD),
        ("[?1]", ErrorKind.NO_MATCHING_OVERLOAD),
        ("{?'a': 1}", ErrorKind.NO_MATCHING_OVERLOAD),
        ("(1).hasValue()", ErrorKind.NO_MATCHING_OVERLOAD),
        ("optional.none().or(1)", ErrorKind.NO_MATCHING_OVERLOAD),
        ("optional.none().orValue(1 / 0)", ErrorKind.DIVISION_BY_ZERO),
        ("'a'.first()", ErrorKind.NO_MATCHING_OVERLOAD),
        ("m.`no such`", ErrorKind.NO_SUCH_FIELD),
    ],
)
def test_errors(text: str, kind: str) -> None:
    with pytest.raises(CelEvalError) as caught:
        run(text)
    assert caught.value.kind == kind


@pytest.mark.parametrize(
    "text", ["m.`content-type`()", "`a`", "m.`a", "m.`a!b`", "m[?]", "size(?[1])", "f(1, ?x)"]
)
def test_syntax_errors(text: str) -> None:
    with pytest.raises(CelSyntaxError):
        compile(text)


def test_the_tree_names_optional_selection_as_cel_go_does() -> None:
    # `a.?b` and `a[?k]` are the functions `_?._` and `_[?_]`; the rest of the compiler
    # (folding, cost, checks) treats them as calls, and the code calls them like built-ins.
    program = compile("m.?n.hasValue() && xs[?0].hasValue()")
    assert FUNCTIONS["_?._"].helper in program.python_source
    assert FUNCTIONS["_[?_]"].helper in program.python_source
    assert program.evaluate(DATA) is True


def test_the_checker_knows_optional_types() -> None:
    declarations = Declarations(
        {"m": map_of(fields={"a": STRING}, closed=True), "xs": list_of(INT), "s": STRING}
    )

    def typed(text: str) -> tuple[str, list[str]]:
        result = check(text, declarations)
        return str(result.type), [i.kind for i in result.issues if i.kind != "not-bool"]

    assert check("m.?a.hasValue() && xs.first().hasValue()", declarations).issues == []
    assert check("m.?a.orValue('') == 'x' && xs.last().value() > 1", declarations).issues == []
    assert typed("m.?a")[0] == "optional_type(string)"
    assert typed("xs[?0]")[0] == "optional_type(int)"
    assert typed("xs.first()")[0] == "optional_type(int)"
    assert typed("optional.of(1)")[0] == "optional_type(int)"
    assert typed("optional.none()")[0] == "optional_type(dyn)"
    assert typed("xs.first().value()")[0] == "int"
    assert typed("m.?a.orValue('x')")[0] == "string"
    assert typed("[?m.?a, 'z']")[0] == "list(string)"
    assert typed("optional.of(m).a")[0] == "optional_type(string)"
    # Mistakes are found before anything runs.
    assert "type-mismatch" in [
        i.kind for i in check("xs.first().value() == 'a'", declarations).issues
    ]
    assert "type-mismatch" in [i.kind for i in check("size([?1]) > 0", declarations).issues]
    assert "type-mismatch" in [i.kind for i in check("s.?x.hasValue()", declarations).issues]
    assert "type-mismatch" in [i.kind for i in check("xs[?'a'].hasValue()", declarations).issues]
    assert "type-mismatch" in [i.kind for i in check("m.?a.size() > 0", declarations).issues]
    unknown = check("m.?b.hasValue()", declarations).issues
    assert [i.kind for i in unknown] == ["unknown-field"]
    assert "`m` has no field `b`" in unknown[0].message
    assert check("m.`a` == 'x'", declarations).issues == []


def test_optionals_are_cost_estimated_and_bounded() -> None:
    # Each call is a step; a macro over a list multiplies its body.
    small = estimate(parse("xs.first().hasValue()"), 100).cost
    looped = estimate(parse("xs.all(x, x.?a.orValue(0) > 0)"), 100).cost
    assert small <= 5 and looped > 100 * 4
    with pytest.raises(CelCostError):
        compile("a.all(x, a.all(y, a.all(z, [?x.?b].size() > 0)))")
    limits = Limits(max_steps=100_000)
    with pytest.raises(CelEvalError) as caught:
        compile("optional.of(lists.range(1000000000)).value().size() > 0", limits=limits).evaluate(
            {}
        )
    assert caught.value.kind == ErrorKind.COST_LIMIT


def test_explanations_show_optionals() -> None:
    program = compile("m.?c.hasValue() && m.?missing.orValue(1) == 2")
    explanation = program.explain(DATA)
    assert explanation.value is False
    assert [(t.text, t.value) for t in explanation.terms] == [("m.?missing.orValue(1) == 2", False)]
    program = compile("m.?missing == optional.none() ? 'none' : 'some'")
    assert program.evaluate(DATA) == "none"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # cel-go's optMap/optFlatMap macros and optional.unwrap (optional library, version 2)
        ("optional.of('hello').optMap(s, s.size()).value()", 5),
        ("optional.none().optMap(s, s.size()).hasValue()", False),
        ("optional.of([1, 2, 3]).optMap(l, l.size()).optMap(n, n * 2).value()", 6),
        ("optional.of([1, 2, 3]).optFlatMap(l, l[?0]).value()", 1),
        ("optional.of([]).optFlatMap(l, l[?0]).hasValue()", False),
        ("optional.none().optMap(x, 1 / 0).hasValue()", False),  # the body runs only on a value
        ("m.?`content-type`.optMap(t, t.upperAscii()).orValue('?')", "JSON"),
        ("optional.unwrap([optional.of(1), optional.none(), optional.of(3)])", [1, 3]),
        ("[optional.of('a'), optional.none()].unwrapOpt()", ["a"]),
        ("optional.unwrap(xs.map(x, optional.ofNonZeroValue(x - 2)))", [-1, 1]),
    ],
)
def test_transformations(text: str, expected: Any) -> None:
    value = run(text)
    assert value == expected and type(value) is type(expected), text


@pytest.mark.parametrize(
    "text", ["optional.of(1).optFlatMap(x, x)", "xs.optMap(x, x)", "optional.unwrap([1])"]
)
def test_transformation_errors(text: str) -> None:
    with pytest.raises(CelEvalError) as caught:
        run(text)
    assert caught.value.kind == ErrorKind.NO_MATCHING_OVERLOAD


def test_transformations_are_typed_and_estimated_once() -> None:
    declarations = Declarations({"s": map_of(STRING), "xs": list_of(INT)})
    assert str(check("s.?a.optMap(v, v.size())", declarations).type) == "optional_type(int)"
    assert str(check("s.?a.optFlatMap(v, s[?v])", declarations).type) == "optional_type(string)"
    assert str(check("optional.unwrap(xs.map(x, xs[?x]))", declarations).type) == "list(int)"
    kinds = [i.kind for i in check("s.?a.optMap(v, v + 1).hasValue()", declarations).issues]
    assert kinds == ["type-mismatch"]  # a string plus an int
    kinds = [i.kind for i in check("xs.optMap(v, v).hasValue()", declarations).issues]
    assert kinds == ["type-mismatch"]  # not an optional
    kinds = [i.kind for i in check("s.?a.optFlatMap(v, v).hasValue()", declarations).issues]
    assert kinds == ["type-mismatch"]  # the result is not an optional
    # Not a loop: the body counts once, not once per element of an assumed-size list.
    assert estimate(parse("o.optMap(v, v.size() > 1)"), 1000).cost < 10
