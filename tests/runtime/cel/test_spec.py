"""cel-spec behaviours that carlang once answered silently wrong, and the core behaviour it
lacked: each case from cel-spec (langdef, or the named conformance test)."""

from __future__ import annotations

from typing import Any

import pytest
from carlang_runtime.cel import CelEvalError, ErrorKind, compile


def run(text: str, **activation: Any) -> Any:
    return compile(text).evaluate(activation)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Map keys and values compare by numeric value (langdef, Equality).
        ("{1: 1.0} == {1u: 1}", True),
        ("{1: 1.0} != {1u: 1}", False),
        ("{1: 'a'} == {2u: 'a'}", False),
        ("{'k': [1]} == {'k': [1.0]}", True),
        # A leading dot names the root scope, not the macro's variable (langdef, Name
        # Resolution).
        ("[0].exists(y, .y == 5)", True),
        ("[0].exists(y, y == 5)", False),
        # An int and a double compare as doubles (comparisons/*_lossy_double).
        ("dyn(9223372036854775807) < 9223372036854775808.0", False),
        ("dyn(9223372036854775807) < 9223372036854777857.0", True),
        ("dyn(-9223372036854775808) > -9223372036854775809.0", False),
        ("dyn(9223372036854775807) <= 9223372036854775808.0", True),
        ("dyn(9223372036854775808.0) > 9223372036854775807", False),
        # Heterogeneous equality (langdef, Equality).
        ("1 == 1.0 && 1u == 1.0 && [1] == [1u]", True),
        ("dyn(1) == null || 1 == '1' || true == 1 || [1] == {}", False),
        ("'a' in [1, 'a'] && !('b' in [1, 'a']) && 1.0 in [1]", True),
    ],
)
def test_values(text: str, expected: Any, y: int = 5) -> None:
    assert run(text, y=y) == expected


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        # Keys equal as numbers are duplicates (langdef, Maps).
        ("{0: 1, 0u: 2}", ErrorKind.INVALID_ARGUMENT),
        ("{1: 1, 1u: 2}.size() == 1", ErrorKind.INVALID_ARGUMENT),
        # has() does not swallow errors (langdef, Field Selection).
        ("has(x.y.z)", ErrorKind.NO_MATCHING_OVERLOAD),
        ("has({'a': 1 / 0}.a)", ErrorKind.DIVISION_BY_ZERO),
        # Range checks (conversions/double_int_min_range, ..., timestamps/*_range).
        ("int(-9223372036854775808.0)", ErrorKind.OVERFLOW),
        ("int(9223372036854775807.0)", ErrorKind.OVERFLOW),
        ("int(1e99)", ErrorKind.OVERFLOW),
        ("uint(-0.5)", ErrorKind.OVERFLOW),
        ("uint(6.022e23)", ErrorKind.OVERFLOW),
        (
            "timestamp('9999-12-31T23:59:59Z') - timestamp('0001-01-01T00:00:00Z')",
            ErrorKind.OVERFLOW,
        ),
        (
            "timestamp('0001-01-01T00:00:00Z') - timestamp('9999-12-31T23:59:59Z')",
            ErrorKind.OVERFLOW,
        ),
        ("timestamp('9999-12-31T23:59:59Z') + duration('1s')", ErrorKind.OVERFLOW),
        ("timestamp('0001-01-01T00:00:00Z') + duration('-1s')", ErrorKind.OVERFLOW),
        ("duration('200000000000s') + duration('200000000000s')", ErrorKind.OVERFLOW),
    ],
)
def test_errors(text: str, kind: str) -> None:
    with pytest.raises(CelEvalError) as caught:
        run(text, x={"y": 1})
    assert caught.value.kind == kind


def test_in_range_values_still_convert() -> None:
    assert run("int(-9223372036854774784.0)") == -9223372036854774784
    assert run("uint(0.0)") == 0
    assert run("int(-0.9)") == 0
    assert run(
        "timestamp('2020-01-01T00:00:00Z') - timestamp('1800-01-01T00:00:00Z') > duration('0s')"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # timestamp(int): seconds since the epoch (conversions/timestamp).
        ("timestamp(timestamp(1000000000)) == timestamp(1000000000)", True),
        ("timestamp(1000000000) == timestamp('2001-09-09T01:46:40Z')", True),
        # getMilliseconds() on a duration is its millisecond part (timestamps/get_milliseconds).
        ("duration('123.321456s').getMilliseconds()", 321),
        ("duration('-1.5s').getMilliseconds()", -500),
        ("timestamp('2009-02-13T23:31:20.123456Z').getMilliseconds()", 123),
        # \X is \x (langdef, String and Bytes Values).
        ("'\\X41' == 'A' && b'\\X41' == b'A'", True),
        # Type names written as expressions, qualified or short.
        ("type(duration('1s')) == google.protobuf.Duration", True),
        ("type(timestamp(0)) == google.protobuf.Timestamp && type(1) == int", True),
    ],
)
def test_core_behaviour(text: str, expected: Any) -> None:
    assert run(text) == expected
