"""What an adversarial trial found: every failure of a CEL function is a CEL error that says
what went wrong (never a Python exception, nor "the activation holds a value CEL cannot use"
for data that is CEL data), and no evaluation escapes its limits."""

from __future__ import annotations

from typing import Any

import pytest
from carlang_runtime.cel import CelEvalError, ErrorKind, compile
from carlang_runtime.cel.values import CelTimestamp

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
