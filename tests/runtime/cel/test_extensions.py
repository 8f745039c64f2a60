"""cel-go's extension libraries (strings, math, lists, sets, encoders): cases from cel-spec's
conformance files (string_ext, math_ext, encoders_ext) and cel-go's ext documentation, the
checker's knowledge of their signatures, and their run-time cost."""

from __future__ import annotations

from typing import Any

import pytest
from carlang_runtime.cel import CelEvalError, ErrorKind, Limits, compile
from carlang_runtime.cel.checker import Declarations, check
from carlang_runtime.cel.types import STRING, list_of, map_of
from hypothesis import given
from hypothesis import strategies as st


def run(text: str, **activation: Any) -> Any:
    return compile(text).evaluate(activation)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # strings
        ("'tacocat'.charAt(3)", "o"),
        ("'tacocat'.charAt(7)", ""),
        ("'©αT'.charAt(1)", "α"),
        ("'tacocat'.indexOf('ac')", 1),
        ("'tacocat'.indexOf('')", 0),
        ("'hello mellow'.indexOf('ello', 2)", 7),
        ("'hello mellow'.lastIndexOf('ello')", 7),
        ("'hello mellow'.lastIndexOf('ello', 6)", 1),
        ("'TacoCÆt'.lowerAscii()", "tacocÆt"),
        ("'tacoCαt'.upperAscii()", "TACOCαT"),
        ("'12 days 12 hours'.replace('{0}', '2')", "12 days 12 hours"),
        ("'12 days 12 hours'.replace('12', '2', 1)", "2 days 12 hours"),
        ("'hello world'.split(' ')", ["hello", "world"]),
        ("'a,b,c'.split(',', 2)", ["a", "b,c"]),
        ("'a,b,c'.split(',', 0)", []),
        ("'abc'.split('')", ["a", "b", "c"]),
        ("'tacocat'.substring(4)", "cat"),
        ("'tacocat'.substring(0, 4)", "taco"),
        ("' \\ttrim\\n    '.trim()", "trim"),
        ("['x', 'y'].join()", "xy"),
        ("['x', 'y'].join('-')", "x-y"),
        ("strings.quote('first\\nsecond')", '"first\\nsecond"'),
        ("'gums'.reverse()", "smug"),
        (
            "'%s is %d, %.2f, %x, %X, %o, %b, %e, %%'.format(['a', 3, 1.5, 255, 'hi', 8, 5, 10.0])",
            "a is 3, 1.50, ff, 6869, 10, 101, 1.000000e+01, %",
        ),
        ("'%s'.format([[1, 'a', null, true]])", "[1, a, null, true]"),
        ("'%d'.format([double('NaN')])", "NaN"),
        # math
        ("math.greatest(1, 2u, 3.5)", 3.5),
        ("math.greatest([1, 5, 2])", 5),
        ("math.least(-1, 2.0)", -1),
        ("math.ceil(1.2)", 2.0),
        ("math.floor(-1.2)", -2.0),
        ("math.round(2.5) == 3.0 && math.round(-2.5) == -3.0", True),
        ("math.trunc(-1.7)", -1.0),
        ("math.abs(-5)", 5),
        ("math.sign(-3.5)", -1.0),
        ("math.isNaN(0.0 / 0.0) && math.isInf(1.0 / 0.0) && !math.isFinite(1.0 / 0.0)", True),
        (
            "math.bitAnd(12, 10) == 8 && math.bitOr(12u, 10u) == 14u && math.bitXor(12, 10) == 6",
            True,
        ),
        ("math.bitNot(0)", -1),
        ("math.bitShiftLeft(1, 63)", -(2**63)),
        ("math.bitShiftRight(-1, 60)", 15),
        ("math.bitShiftLeft(1, 64)", 0),
        # lists and sets
        ("[1, 2, 3, 4].slice(1, 3)", [2, 3]),
        ("[1, [2, [3]]].flatten()", [1, 2, [3]]),
        ("[1, [2, [3]]].flatten(2)", [1, 2, 3]),
        ("[1, 2, 1, 1.0, 'a', 'a'].distinct()", [1, 2, "a"]),
        ("[2, 1].reverse()", [1, 2]),
        ("[3, 1.5, 2u].sort()", [1.5, 2, 3]),
        ("['b', 'a'].sort()", ["a", "b"]),
        ("lists.range(3)", [0, 1, 2]),
        ("sets.contains([1, 2, 3], [3, 1.0])", True),
        ("sets.contains([1], [2])", False),
        ("sets.equivalent([1, 1, 2], [2, 1])", True),
        ("sets.intersects([1], [2, 1u])", True),
        # encoders
        ("base64.encode(b'hello')", "aGVsbG8="),
        ("base64.decode('aGVsbG8=') == b'hello' && base64.decode('aGVsbG8') == b'hello'", True),
    ],
)
def test_values(text: str, expected: Any) -> None:
    value = run(text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    "text",
    [
        "'tacocat'.charAt(30)",
        "'tacocat'.indexOf('a', 30)",
        "'tacocat'.substring(40)",
        "'tacocat'.substring(3, 1)",
        "[1, 2].join()",
        "'%d'.format(['a'])",
        "'%s %s'.format(['a'])",
        "math.abs(-9223372036854775807 - 1)",
        "math.greatest([])",
        "math.greatest('a', 1)",
        "math.bitShiftLeft(1, -1)",
        "[1, 2].slice(2, 1)",
        "[1, 'a'].sort()",
        "base64.decode('!!')",
    ],
)
def test_errors(text: str) -> None:
    with pytest.raises(CelEvalError):
        run(text)


def check_kinds(text: str, declarations: Declarations) -> list[str]:
    return [issue.kind for issue in check(text, declarations).issues]


def test_the_checker_knows_the_signatures() -> None:
    declarations = Declarations({"params": map_of(STRING), "tags": list_of(STRING)})
    assert check_kinds("params.url.lowerAscii() == 'x'", declarations) == []
    assert check_kinds("tags.join(',').startsWith('a')", declarations) == []
    assert check_kinds("math.greatest(size(tags), 2) > 0", declarations) == []
    assert check_kinds("params.url.charAt('x') == 'a'", declarations) == ["type-mismatch"]
    assert check_kinds("params.url.lowerAscii(1) == 'x'", declarations) == ["wrong-arguments"]
    assert "unknown-function" in check_kinds("math.nosuch(1) == 1", declarations)
    # A result's type is known: a string is never equal to an int.
    issues = check("params.url.trim() == 1", declarations).issues
    assert [(i.severity, i.kind) for i in issues] == [("error", "type-mismatch")]


def test_namespaces_are_functions_not_variables() -> None:
    # `math` is not read from the activation.
    program = compile("math.abs(x) == 1")
    assert program.variables == frozenset({"x"})
    assert program.evaluate({"x": -1, "math": 5}) is True
    assert "_f_math_abs" in program.python_source  # compiled like the built-ins


def test_extensions_are_bounded_by_the_limits() -> None:
    limits = Limits(max_steps=100_000)
    with pytest.raises(CelEvalError) as caught:
        compile("lists.range(1000000000).size() > 0", limits=limits).evaluate({})
    assert caught.value.kind == ErrorKind.COST_LIMIT
    with pytest.raises(CelEvalError) as caught:
        compile("s.replace('', s).size() > 0", limits=limits).evaluate({"s": "x" * 1000})
    assert caught.value.kind == ErrorKind.COST_LIMIT
    with pytest.raises(CelEvalError) as caught:
        compile("lists.range(400).map(i, s).join().size() > 0", limits=limits).evaluate(
            {"s": "x" * 1000}
        )
    assert caught.value.kind == ErrorKind.COST_LIMIT
    # Within the limits they run.
    assert compile("lists.range(100).size() == 100", limits=limits).evaluate({}) is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cel.bind(a, 'hello', a + ' ' + a)", "hello hello"),
        ("cel.bind(x, [1, 2], x.all(y, y in x))", True),
        ("cel.bind(v, 1, [2].all(v, v == 2)) && cel.bind(v, 1, v == 1)", True),
        ("cel.bind(v, params.n, v > 1 && v < 10)", True),
        ("cel.bind(a, 1, cel.bind(b, a + 1, a + b))", 3),
    ],
)
def test_cel_bind(text: str, expected: Any) -> None:
    assert run(text, params={"n": 5}) == expected


def test_cel_bind_is_checked_and_bounded() -> None:
    declarations = Declarations({"params": map_of(STRING)})
    issues = check("cel.bind(u, params.url, u + 1 == 2)", declarations).issues
    assert [i.kind for i in issues] == ["type-mismatch"]  # a string plus an int
    # Sharing a value lets a string double at each binding: 2**40 characters, stopped.
    doubling = "cel.bind(a0, s + s, "
    doubling += "".join(f"cel.bind(a{i}, a{i - 1} + a{i - 1}, " for i in range(1, 40))
    doubling += "size(a39) > 0" + ")" * 40
    with pytest.raises(CelEvalError) as caught:
        compile(doubling).evaluate({"s": "ab"})
    assert caught.value.kind == ErrorKind.COST_LIMIT


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1, 2, 3].all(i, v, i < v)", True),
        ("[1, 2, 3].exists(i, v, i == 1 && v == 2)", True),
        ("{'a': 1, 'b': 2}.existsOne(k, v, v == 2)", True),
        ("[1, 2, 3].transformList(i, v, i * v)", [0, 2, 6]),
        ("[1, 2, 3].transformList(i, v, i > 0, v * 10)", [20, 30]),
        ("{'a': 1, 'b': 2}.transformMap(k, v, v + 1)", {"a": 2, "b": 3}),
        ("{'a': 1, 'b': 2}.transformMap(k, v, k == 'a', v + 1)", {"a": 2}),
        ("[1, 2].all(x, x > 0) && [1, 2].map(x, x > 1, x) == [2]", True),
        ("{'a': 1, 'b': 2}.transformMapEntry(k, v, {v: k})", {1: "a", 2: "b"}),
        ("[1, 2].transformMapEntry(i, v, v > 1, {string(i): v})", {"1": 2}),
        # lists.sortBy, a macro in cel-go's lists extension.
        ("[{'n': 'b', 's': 2}, {'n': 'a', 's': 1}].sortBy(e, e.s).map(e, e.n)", ["a", "b"]),
        ("['bb', 'a', 'ccc'].sortBy(x, size(x))", ["a", "bb", "ccc"]),
    ],
)
def test_two_variable_comprehensions(text: str, expected: Any) -> None:
    assert run(text) == expected


def test_two_variable_comprehensions_are_typed_and_bounded() -> None:
    declarations = Declarations({"tags": list_of(STRING)})
    assert check_kinds("tags.all(i, t, i < 10 && t != '')", declarations) == []
    # The index is an int and the element a string.
    assert check_kinds("tags.all(i, t, t > 1)", declarations) == ["type-mismatch"]
    program = compile("a.all(i, x, a.all(j, y, i + j >= 0))", limits=Limits(max_steps=1_000))
    with pytest.raises(CelEvalError) as caught:
        program.evaluate({"a": list(range(100))})
    assert caught.value.kind == ErrorKind.COST_LIMIT


def test_transform_map_entry_refuses_a_repeated_key() -> None:
    with pytest.raises(CelEvalError) as caught:
        run("[1, 2].transformMapEntry(i, v, {'same': v})")
    assert "duplicate" in caught.value.message


def test_trim_strips_exactly_gos_unicode_white_space() -> None:
    # The set is written out in the module (scanning for it at import cost every start-up);
    # here it is derived as Go's unicode.IsSpace defines it, over every code point.
    import sys
    import unicodedata

    from carlang_runtime.cel import extensions

    derived = "".join(
        chr(c)
        for c in range(sys.maxunicode + 1)
        if chr(c) in "\t\n\v\f\r \x85\xa0" or unicodedata.category(chr(c)) in ("Zs", "Zl", "Zp")
    )
    assert extensions._WHITESPACE == derived
    assert extensions.trim("\u3000\u2028 x\u00a0\u205f") == "x"


# -- path.clean (carlang's own: a folder policy that `..` cannot escape) ----------------------


@pytest.mark.parametrize(
    ("given", "cleaned"),
    [  # Go's path.Clean cases (src/path/path_test.go)
        ("", "."),
        ("abc", "abc"),
        ("abc/def", "abc/def"),
        (".", "."),
        ("..", ".."),
        ("../..", "../.."),
        ("/", "/"),
        ("abc/", "abc"),
        ("/abc/def/", "/abc/def"),
        ("abc//def//ghi", "abc/def/ghi"),
        ("//abc", "/abc"),
        ("///abc", "/abc"),
        ("abc/./def", "abc/def"),
        ("/./abc/def", "/abc/def"),
        ("abc/def/ghi/../jkl", "abc/def/jkl"),
        ("abc/def/../ghi/../jkl", "abc/jkl"),
        ("abc/def/..", "abc"),
        ("abc/def/../..", "."),
        ("/abc/def/../..", "/"),
        ("abc/def/../../..", ".."),
        ("/abc/def/../../..", "/"),
        ("/../abc", "/abc"),
        ("/srv/safe/../pwn.txt", "/srv/pwn.txt"),
    ],
)
def test_path_clean_is_gos_path_clean(given: str, cleaned: str) -> None:
    assert run("path.clean(p)", p=given) == cleaned


@given(st.text(st.sampled_from(list("ab./")), max_size=16))
def test_a_cleaned_path_has_no_dot_elements_and_cleaning_again_changes_nothing(text: str) -> None:
    cleaned = run("path.clean(p)", p=text)
    assert run("path.clean(p)", p=cleaned) == cleaned
    parts = cleaned.split("/")
    assert "." not in parts or cleaned == "."
    assert "//" not in cleaned and (cleaned == "/" or not cleaned.endswith("/"))
    if cleaned.startswith("/"):
        assert ".." not in parts  # nothing above the root


def test_path_clean_is_typed_and_refuses_what_is_not_a_string() -> None:
    declarations = Declarations({"p": STRING})
    assert check("path.clean(p).startsWith('/srv/')", declarations).issues == []
    with pytest.raises(CelEvalError):
        run("path.clean(p)", p=3)
