"""serde_json semantics: equality, float text, Debug rendering."""

from __future__ import annotations

from typing import Any

import pytest
from carlang_runtime.jsonvalue import (
    canonical_key,
    format_f64,
    json_equal,
    rust_debug,
    to_json_text,
)
from hypothesis import given
from hypothesis import strategies as st

# observed in car-runtime 0.58's messages
FLOATS = [
    (1e-6, "1e-6"),
    (1.5e-6, "1.5e-6"),
    (0.000015, "0.000015"),
    (9999999999999998.0, "9999999999999998.0"),
    (1.5e16, "1.5e+16"),
    (123.0, "123.0"),
    (1e300, "1e+300"),
    (5e-324, "5e-324"),
    (-1e-7, "-1e-7"),
    (-2.5, "-2.5"),
    (0.1 + 0.2, "0.30000000000000004"),
    (1e-5 * 3, "0.000030000000000000004"),
    (0.1, "0.1"),
    (1e21, "1e+21"),
    (123456789.0, "123456789.0"),
    (1e16, "1e+16"),
    (-0.0, "-0.0"),
    (0.0, "0.0"),
    (1e15, "1000000000000000.0"),
    (12345678901234567.0, "1.2345678901234568e+16"),
    (0.00001, "0.00001"),
    (0.0001, "0.0001"),
    (2.5, "2.5"),
    (1.0, "1.0"),
]


@pytest.mark.parametrize(("value", "text"), FLOATS)
def test_format_f64(value: float, text: str) -> None:
    assert format_f64(value) == text


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_format_f64_round_trips(value: float) -> None:
    assert float(format_f64(value)) == value


def test_json_equal_distinguishes_like_serde() -> None:
    assert (
        json_equal(5, 5)
        and json_equal(2.5, 2.5)
        and json_equal("a", "a")
        and json_equal(None, None)
    )
    assert not json_equal(5, 5.0)
    assert not json_equal(True, 1) and not json_equal(1, True) and not json_equal(False, 0)
    assert json_equal({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]})
    assert not json_equal({"a": [1]}, {"a": [1.0]})
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})
    assert not json_equal([1, 2], [2, 1])
    assert not json_equal("1", 1)


def test_rust_debug() -> None:
    assert rust_debug(None) == "Null"
    assert rust_debug(True) == "Bool(true)"
    assert rust_debug(5) == "Number(5)"
    assert rust_debug(1.5) == "Number(1.5)"
    assert rust_debug("tab\there\\ \u0001 \u200b") == 'String("tab\\there\\\\ \\u{1} \\u{200b}")'
    assert rust_debug([]) == "Array []"
    assert rust_debug({}) == "Object {}"
    assert rust_debug({"z": 1, "a": [None]}) == 'Object {"a": Array [Null], "z": Number(1)}'


def test_to_json_text_is_serde_compact_sorted() -> None:
    assert (
        to_json_text({"b": 1, "a": [1.0, "é", None, False]}) == '{"a":[1.0,"é",null,false],"b":1}'
    )
    assert to_json_text(1e20) == "1e+20"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(json_values, json_values)
def test_canonical_key_agrees_with_json_equal(a: Any, b: Any) -> None:
    # -0.0 == 0.0 for serde as for Python; their texts differ, which only makes the key finer.
    if json_equal(a, b) and "-0.0" not in canonical_key(a) + canonical_key(b):
        assert canonical_key(a) == canonical_key(b)
    if canonical_key(a) == canonical_key(b):
        assert json_equal(a, b)
