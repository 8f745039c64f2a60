"""What an adversarial trial found: every failure of a CEL function is a CEL error that says
what went wrong (never a Python exception, nor "the activation holds a value CEL cannot use"
for data that is CEL data), and no evaluation escapes its limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from time import perf_counter
from typing import Any

import pytest
from carlang_runtime.cel import CelEvalError, CelLimitError, CelUint, ErrorKind, Limits, compile
from carlang_runtime.cel.values import (
    OPTIONAL_NONE,
    CelDuration,
    CelOptional,
    CelTimestamp,
    CelType,
)
from hypothesis import given, settings
from hypothesis import strategies as st

NANOS = 1_000_000_000
FIRST = CelTimestamp(-62_135_596_800 * NANOS)  # 0001-01-01T00:00:00Z
LAST = CelTimestamp(253_402_300_799 * NANOS)  # 9999-12-31T23:59:59Z
ACTIVATION: dict[str, Any] = {
    "first": FIRST,
    "last": LAST,
    "now": CelTimestamp(1_700_000_000 * NANOS),
    "lone": "\ud800x",  # what json.loads makes of "\ud800x"
    "long_digits": "1" * 5_000,
    "zero_padded": "0" * 5_000 + "7",
}


def failure(text: str, activation: dict[str, Any] | None = None) -> CelEvalError:
    with pytest.raises(CelEvalError) as caught:
        compile(text).evaluate(ACTIVATION if activation is None else activation)
    assert "cannot use" not in caught.value.message
    return caught.value


@pytest.mark.parametrize("zone", ["+99:99", "+23:60", "+24:00", "-24:00", "99:00", "+2:3"])
def test_an_offset_that_is_no_time_zone_is_an_unknown_zone(zone: str) -> None:
    error = failure("now.getHours(zone)", {**ACTIVATION, "zone": zone})
    assert error.kind == ErrorKind.INVALID_ARGUMENT
    assert "unknown time zone" in error.message


@pytest.mark.parametrize(
    "text",
    [
        'first.getHours("-01:00")',
        'last.getFullYear("+14:00")',
        'last.getDayOfWeek("Pacific/Kiritimati")',
        'first.getMinutes("America/New_York")',
        # Written as constants, they are folded at compile time: the compile must not crash.
        'timestamp("0001-01-01T00:00:00Z").getHours("-01:00")',
        'timestamp("9999-12-31T23:59:59Z").getDate("+01:00")',
    ],
)
def test_a_zone_that_moves_a_time_past_the_range_is_an_overflow(text: str) -> None:
    error = failure(text)
    assert error.kind == ErrorKind.OVERFLOW
    assert "years 1 to 9999" in error.message


def test_the_edges_of_the_range_read_in_a_zone_inside_it() -> None:
    assert compile('first.getFullYear("+01:00")').evaluate(ACTIVATION) == 1
    assert compile('last.getFullYear("-01:00")').evaluate(ACTIVATION) == 9999


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("int(long_digits)", ErrorKind.OVERFLOW),
        ("uint(long_digits)", ErrorKind.OVERFLOW),
        ('int("-" + long_digits)', ErrorKind.OVERFLOW),
        # Python refuses to read more than 4,300 digits; folded at compile time, it crashed it.
        ('int("' + "9" * 5_000 + '")', ErrorKind.OVERFLOW),
        ('uint("' + "9" * 5_000 + '")', ErrorKind.OVERFLOW),
    ],
    ids=["int", "uint", "negative", "int-constant", "uint-constant"],
)
def test_an_integer_of_thousands_of_digits_is_an_overflow(text: str, kind: ErrorKind) -> None:
    assert failure(text).kind == kind


def test_leading_zeros_are_not_digits_of_the_value() -> None:
    assert compile("int(zero_padded)").evaluate(ACTIVATION) == 7
    assert compile("uint(zero_padded)").evaluate(ACTIVATION) == 7
    assert compile('int("-" + zero_padded)').evaluate(ACTIVATION) == -7


@pytest.mark.parametrize("text", ["bytes(lone)", '"%x".format([lone])', '"%X".format([lone])'])
def test_a_lone_surrogate_has_no_utf8_and_says_so(text: str) -> None:
    error = failure(text)
    assert error.kind == ErrorKind.INVALID_ARGUMENT
    assert "lone UTF-16 surrogate" in error.message


def test_what_a_lone_surrogate_does_not_need_encoded_still_works() -> None:
    assert compile("size(lone) == 2 && lone.startsWith(lone)").evaluate(ACTIVATION) is True
    assert compile('"%s".format([lone])').evaluate(ACTIVATION) == "\ud800x"


# -- string.format: what it may build is bounded, and charged before it is built ----------------


@pytest.mark.parametrize(
    "precision",
    ["1075", "2000", "300000000", "1000000000", "9" * 5_000],
    ids=["1075", "2000", "3e8", "1e9", "5000-digits"],
)
def test_a_precision_past_any_doubles_digits_is_an_error(precision: str) -> None:
    # "%.300000000f" built 300 MB of zeros (620 MB resident) with no error.
    for verb in "fe":
        error = failure("template.format([1.0])", {"template": f"%.{precision}{verb}"})
        assert error.kind == ErrorKind.INVALID_ARGUMENT
        assert "precision is above 1074" in error.message


def test_every_digit_of_a_double_can_still_be_printed() -> None:
    exact = compile('"%.1074f".format([5e-324])').evaluate({})
    assert exact == f"{5e-324:.1074f}" and len(exact) == 1076 and exact.endswith("625")
    # Precisions as before: none, `.` alone (0), leading zeros; `%.2%` is a `%`.
    text = '"%.0f|%.f|%.2e|%.0002f|%.2%|%f".format([2.5, 1.5, 1234.5, 1.0, 0.5])'
    assert compile(text).evaluate({}) == "2|2|1.23e+03|1.00|%|0.500000"


def test_what_format_would_build_counts_against_the_limit_before_it_is_built() -> None:
    # 2,000 clauses of 1,000 decimals each: 2 million characters, charged as 14,000 before.
    activation = {"template": "%.1000f" * 2_000, "args": [1.0] * 2_000}
    with pytest.raises(CelLimitError) as caught:
        compile("size(template.format(args)) > 0").evaluate(activation)
    assert caught.value.kind == ErrorKind.COST_LIMIT
    activation = {"template": "%.1000f" * 200, "args": [1.0] * 200}
    assert compile("size(template.format(args))").evaluate(activation) == 200 * 1_002


def test_a_list_printed_by_format_counts_all_it_holds() -> None:
    # A list holding one list 1,000 times costs 1,000 steps to build and prints 12 million
    # characters: charged as its 1,000 elements before. Counted once per list, it is quick.
    text = (
        'cel.bind(a, lists.range(1000).map(x, "xxxxxxxxxx"),'
        ' cel.bind(b, lists.range(1000).map(x, a), size("%s".format([b]))))'
    )
    with pytest.raises(CelLimitError):
        compile(text).evaluate({})
    assert compile(text.replace("1000", "100")).evaluate({}) == 120_200


@pytest.mark.parametrize(
    ("template", "args"),
    [
        ("%s", [[1, "ab", None, True, 1.5, b"xy", [], {}]]),
        ("%s and %s", [{"a": [1, 2], "b": {"c": "d"}}, -1.25e-300]),
        ("%d %x %X %o %b", [-(2**63), "héllo", b"\x00\xff", 2**63 - 1, -(2**63)]),
        ("%e|%.1074e|%f", [-1.7976931348623157e308, 5e-324, 1.7976931348623157e308]),
        ("%s %s", [float("nan"), float("-inf")]),
        ("100%% %s", ["\u00e9\u4e2d"]),
    ],
)
def test_the_charge_is_never_below_what_format_builds(template: str, args: list[Any]) -> None:
    from carlang_runtime.cel.extensions import _format_size, format_string

    assert _format_size(template, args) >= len(format_string(template, args))


# -- list.distinct(): linear where values hash, charged what it compares where they do not ------


def _pairwise_distinct(items: list[Any]) -> list[Any]:
    """distinct() as cel-go computes it (and carlang did): each element compared with every
    element kept."""
    from carlang_runtime.cel import ops

    result: list[Any] = []
    for item in items:
        if not any(ops.eq(item, kept) for kept in result):
            result.append(item)
    return result


def _same(left: Any, right: Any) -> bool:
    """Equal as values and types, element by element (1 is not 1.0 here, NaN is NaN)."""
    if type(left) is not type(right):
        return False
    if type(left) in (list, tuple):
        return len(left) == len(right) and all(map(_same, left, right))
    if type(left) is dict:
        return list(left) == list(right) and all(map(_same, left.values(), right.values()))
    if type(left) is float and left != left:
        return right != right
    return bool(left == right)


def test_distinct_over_many_strings_is_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    # 30,000 distinct tags made `params.tags.distinct().size() != size(params.tags)` run for
    # nearly two minutes (each compared with all kept before it), charged as 30,000 steps.
    from carlang_runtime.cel import ops

    compared: list[Any] = []
    real_eq = ops.eq
    monkeypatch.setattr(ops, "eq", lambda a, b: compared.append(a) or real_eq(a, b))
    # (no wall-time bound: a loaded machine may take more than the default 0.25 s; that no
    # element is compared with another is what shows the hashing)
    program = compile(
        "params.tags.distinct().size() != size(params.tags)", limits=Limits(max_seconds=60.0)
    )
    tags = [f"t{i}" for i in range(30_000)]
    assert program.evaluate({"params": {"tags": tags}}) is False
    assert program.evaluate({"params": {"tags": [*tags, "t7"]}}) is True
    assert compared == []  # hashed: no element compared with another


def test_distinct_charges_the_comparisons_of_what_does_not_hash() -> None:
    # Integers past 2**53 are compared one by one (CEL's int-double equality is not
    # transitive there): 3,000 of them, 4.5 million comparisons, were charged 3,000 steps.
    # (the steps and cost bound it, not the wall time: a loaded CI machine took more than the
    # default 0.25 s for the 30,000 records below)
    program = compile("params.ids.distinct().size()", limits=Limits(max_seconds=60.0))
    big = [2**60 + i for i in range(3_000)]
    with pytest.raises(CelLimitError) as caught:  # before comparing any
        program.evaluate({"params": {"ids": big}})
    assert caught.value.kind == ErrorKind.COST_LIMIT
    assert program.evaluate({"params": {"ids": big[:300]}}) == 300
    # Lists and maps of scalars hash: 30,000 records are quick.
    records = [{"name": f"n{i % 20_000}", "n": i % 20_000} for i in range(30_000)]
    assert program.evaluate({"params": {"ids": records}}) == 20_000
    pairs = [[f"n{i % 20_000}", i % 20_000] for i in range(30_000)]
    assert program.evaluate({"params": {"ids": pairs}}) == 20_000


NUMBERS = [0, 1, -1, 7, 2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, -(2**63)]
SCALARS = st.one_of(
    st.sampled_from(NUMBERS),
    st.sampled_from(NUMBERS).map(float),
    st.sampled_from([n for n in NUMBERS if n >= 0]).map(CelUint),
    st.sampled_from([0.5, -0.0, float("nan"), float("inf"), 9007199254740992.0]),
    st.booleans(),
    st.none(),
    st.sampled_from(["", "a", "1"]),
    st.sampled_from([b"", b"a"]),
    st.sampled_from([CelTimestamp(0), CelTimestamp(NANOS), CelDuration(0), CelDuration(NANOS)]),
    st.sampled_from([datetime(1970, 1, 1, tzinfo=UTC), timedelta(0), timedelta(seconds=1)]),
    st.sampled_from([CelType("int"), CelType("string")]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from(["a", "b", 1, CelUint(1), 2, True]), inner, max_size=2),
        inner.map(CelOptional),
        st.just(OPTIONAL_NONE),
    ),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None)
@given(st.lists(VALUES, max_size=8))
def test_distinct_is_cel_equality_as_the_pairwise_comparison_has_it(items: list[Any]) -> None:
    expected = _pairwise_distinct(items)
    result = compile("items.distinct()").evaluate({"items": items})
    assert len(result) == len(expected)
    assert all(map(_same, result, expected))


# -- list.flatten(depth): charged the whole result, however deep ---------------------------------


def test_flatten_charges_every_level_it_splices() -> None:
    # A list of one list of 100 a hundred times, four levels deep: `[[d]].flatten(5)` built
    # 100 million elements (1.5 GB, 12 s), charged as its one element.
    text = (
        "cel.bind(a, lists.range(100), cel.bind(b, lists.range(100).map(x, a),"
        " cel.bind(c, lists.range(100).map(x, b), cel.bind(d, lists.range(100).map(x, c),"
        " [[d]].flatten(5).size()))))"
    )
    with pytest.raises(CelLimitError):
        compile(text).evaluate({})
    assert compile(text.replace("flatten(5)", "flatten(2)")).evaluate({}) == 100
    small = (
        "cel.bind(a, lists.range(100), cel.bind(b, lists.range(100).map(x, a),"
        " [[b]].flatten(3).size()))"
    )
    assert compile(small).evaluate({}) == 10_000


@pytest.mark.parametrize("depth", [0, 1, 2, 3, 9])
def test_the_flatten_charge_is_its_result_length(depth: int) -> None:
    from carlang_runtime.cel.extensions import _flatten_size, flatten

    shared = [1, [2, [3]]]
    items = [shared, [shared, [[4, shared]]], 5, (), [()]]
    assert _flatten_size(items, depth) == len(flatten(items, depth))


# -- == of lists built of one list many times ----------------------------------------------------

SHARED = (
    'cel.bind(a, lists.range(1000).map(x, "x"), cel.bind(b, lists.range(1000).map(x, a),'
    " cel.bind(c, lists.range(100).map(x, b), TEXT)))"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("c == c", True),
        ("c != c + []", False),
        ("c in [1, c]", True),
        ("[c].exists(x, x == c)", True),
        ("sets.contains([c], [c])", True),
        ("[c, c].distinct().size()", 1),
        ("{'k': c} == {'k': c}", True),
        ("c == c.map(x, x)", True),
    ],
)
def test_comparing_lists_built_of_one_list_takes_the_time_of_the_distinct_lists(
    text: str, expected: Any
) -> None:
    # c holds b a hundred times and b holds a a thousand times: compared element by element,
    # `c == c` was 100 million comparisons (minutes, uncharged) after 2,100 steps of building.
    started = perf_counter()
    assert compile(SHARED.replace("TEXT", text)).evaluate({}) == expected
    assert perf_counter() - started < 5.0  # (milliseconds; a busy machine aside)


def test_a_pair_met_again_keeps_its_answer_and_its_error() -> None:
    nan = [float("nan")]
    inner = [1, nan]
    assert compile("x == y").evaluate({"x": [inner] * 3, "y": [inner] * 3}) is False
    assert compile("x == y").evaluate({"x": [[1, 2]] * 3, "y": [[1, 2], [1, 2], [1, 3]]}) is False
    odd = [object()]  # not CEL data: comparing it is an error, every time it is met
    with pytest.raises(CelEvalError):
        compile("x == y").evaluate({"x": [odd, odd], "y": [[1], [1]]})
    # A false element decides, even after an error (as `&&` does).
    assert compile("x == y").evaluate({"x": [odd, [1], odd], "y": [odd, [2], odd]}) is False


# -- split: its parts are charged before they are made -------------------------------------------


def test_split_charges_its_parts_before_making_them() -> None:
    # With no macro the condition had no budget: 5 million one-character strings (450 MB
    # resident, from a 15 MB parameter) were made, and nothing was charged.
    import tracemalloc

    program = compile('size(params.text.split("")) > 0')
    text = "中" * 2_000_000
    tracemalloc.start()
    try:
        with pytest.raises(CelLimitError):
            program.evaluate({"params": {"text": text}})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000
    with pytest.raises(CelLimitError):
        compile('params.text.split(",").size()').evaluate({"params": {"text": "a," * 1_000_000}})
    # What stays under the limit is split as before.
    assert (
        compile('params.text.split(",").size()').evaluate({"params": {"text": "a," * 1_000}})
        == 1_001
    )
    assert compile('"a,b,c".split(",", 2)').evaluate({}) == ["a", "b,c"]
    assert compile('"abc".split("", 2)').evaluate({}) == ["a", "bc"]
