"""Every precondition operator, with car-runtime 0.58's outcomes and wording (recorded from it)."""

from __future__ import annotations

from typing import Any

import pytest
from carlang_runtime.ir import PRECONDITION_OPERATORS, Precondition
from carlang_runtime.precondition import check_precondition

STATE: dict[str, Any] = {
    "n": 5,
    "s": "hello",
    "arr": [1, 2],
    "arr2": ["ab"],
    "o": {"b": 1, "a": 2},
    "f": 2.5,
    "nul": None,
    "b": True,
    "big": 12345678901234567890,
    "neg": -3,
    "g": 2.0,
    "e": 1e20,
}

# (key, operator, value, expected failure or None) — each row observed on car-runtime 0.58
CASES: list[tuple[str, str, Any, str | None]] = [
    ("n", "exists", None, None),
    ("missing", "exists", None, "key 'missing' does not exist"),
    ("n", "not_exists", None, "key 'n' exists"),
    ("missing", "not_exists", None, None),
    ("nul", "exists", None, None),
    ("n", "eq", 5, None),
    ("n", "eq", 1, "'n' is Number(5), need Number(1)"),
    ("n", "eq", "x", "'n' is Number(5), need String(\"x\")"),
    ("n", "eq", 5.0, "'n' is Number(5), need Number(5.0)"),
    ("f", "eq", 2.5, None),
    ("nul", "eq", None, None),
    ("n", "eq", None, "'n' is Number(5), need Null"),
    (
        "o",
        "eq",
        {"z": 1, "a": 'q"\né'},
        '\'o\' is Object {"a": Number(2), "b": Number(1)}, need Object {"a": String("q\\"\\né"), "z": Number(1)}',
    ),
    ("n", "neq", 5, "'n' is Number(5), must not be"),
    ("n", "neq", 6, None),
    ("missing", "neq", 1, "key 'missing' has no value"),
    ("missing", "eq", None, "key 'missing' has no value"),
    ("n", "gt", 10, "'n' is Number(5), need gt Number(10)"),
    ("n", "gt", 4, None),
    ("n", "lt", 1, "'n' is Number(5), need lt Number(1)"),
    ("n", "gte", 5, None),
    ("n", "gte", 6, "'n' is Number(5), need gte Number(6)"),
    ("n", "lte", 5, None),
    ("n", "lte", 4, "'n' is Number(5), need lte Number(4)"),
    ("f", "lt", 1, "'f' is Number(2.5), need lt Number(1)"),
    ("neg", "lt", 0, None),
    ("big", "gt", 1, None),
    ("n", "gt", "abc", "cannot compare 'n': Number(5) gt String(\"abc\")"),
    ("b", "gt", 0, "cannot compare 'b': Bool(true) gt Number(0)"),
    ("nul", "gt", 0, "cannot compare 'nul': Null gt Number(0)"),
    ("missing", "gt", 1, "key 'missing' has no value"),
    ("s", "contains", "ell", None),
    ("s", "contains", "zz", "key 's' does not contain String(\"zz\")"),
    ("s", "contains", 5, "key 's' does not contain Number(5)"),
    ("s", "contains", '"', 'key \'s\' does not contain String("\\"")'),
    ("s", "contains", None, "key 's' does not contain Null"),
    ("s", "contains", ["x"], "key 's' does not contain Array [String(\"x\")]"),
    ("n", "contains", "5", None),
    ("n", "contains", 5, None),
    ("n", "contains", 3, "key 'n' does not contain Number(3)"),
    ("arr", "contains", 1, None),
    ("arr", "contains", "1", None),
    ("arr", "contains", 9, "key 'arr' does not contain Number(9)"),
    ("arr", "contains", 1.0, "key 'arr' does not contain Number(1.0)"),
    ("arr2", "contains", "a", None),
    ("o", "contains", "a", None),
    ("o", "contains", '"a":2', None),
    ("o", "contains", '"a": 2', 'key \'o\' does not contain String("\\"a\\": 2")'),
    ("nul", "contains", "u", None),
    ("g", "contains", ".0", None),
    ("e", "contains", "e+20", None),
    ("e", "contains", "e20", "key 'e' does not contain String(\"e20\")"),
    ("missing", "contains", "a", "key 'missing' has no value, cannot check contains"),
    ("n", "weird", 1, "unknown operator 'weird'"),
    ("n", "EQ", 5, "unknown operator 'EQ'"),
    ("missing", "weird", 1, "key 'missing' has no value"),
]


@pytest.mark.parametrize(("key", "op", "value", "expected"), CASES)
def test_operator(key: str, op: str, value: Any, expected: str | None) -> None:
    assert check_precondition(Precondition(key=key, operator=op, value=value), STATE) == expected


def test_every_operator_is_covered() -> None:
    assert {op for _, op, _, _ in CASES} >= set(PRECONDITION_OPERATORS)


def test_default_operator_is_eq_against_null() -> None:
    assert check_precondition(Precondition(key="nul"), STATE) is None
    assert check_precondition(Precondition(key="n"), STATE) == "'n' is Number(5), need Null"


def test_values_are_shown_as_the_caller_writes_them() -> None:
    """CAR's Rust Debug form by default; carlang's compiler shows values as CEL literals."""
    from carlang_runtime.cel import format_value
    from carlang_runtime.precondition import check_assertion

    pre = Precondition(key="s", operator="eq", value="bye")
    assert check_precondition(pre, STATE) == """'s' is String("hello"), need String("bye")"""
    assert check_precondition(pre, STATE, format_value) == """'s' is "hello", need "bye\""""
    params = {"key": "arr", "expected": [1]}
    assert check_assertion(params, STATE, format_value) == "state['arr'] = [1, 2], expected [1]"
    compare = {"key": "n", "operator": "gt", "value": 9}
    assert check_assertion(compare, STATE, format_value) == "'n' is 5, need gt 9"


def test_an_ordering_that_cannot_compare_says_how_to_fix_it() -> None:
    """CAR's words, `cannot compare 'count': 0 gt "5"`, say `gt` and not why: the help names
    the operator as written and the side that is no number."""
    from carlang_runtime.ir import Precondition
    from carlang_runtime.precondition import comparison_help

    quoted = Precondition(key="count", operator="gt", value="5")
    assert comparison_help(quoted, {"count": 0}) == "`>` compares numbers: write 5 without quotes"
    word = Precondition(key="count", operator="lte", value="five")
    assert comparison_help(word, {"count": 0}) == (
        "`<=` compares numbers; `count` holds number and the precondition gives string"
    )
    assert comparison_help(Precondition(key="count", operator="gt", value=5), {"count": 0}) is None
    assert (
        comparison_help(Precondition(key="count", operator="eq", value="5"), {"count": 0}) is None
    )
