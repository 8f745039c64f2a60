"""Timestamps and durations, exact to the nanosecond (cel-spec langdef "Timestamps and
durations", conformance file timestamps.textproto), and where they meet Python's datetime and
timedelta."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from carlang_runtime.cel import CelEvalError, CelType, ErrorKind, compile, format_value
from carlang_runtime.cel.values import (
    INT64_MAX,
    MAX_DURATION_SECONDS,
    CelDuration,
    CelTimestamp,
    cel_value,
    format_duration,
    format_timestamp,
    parse_duration,
    parse_timestamp,
)
from hypothesis import given
from hypothesis import strategies as st

NANOS = 1_000_000_000
MAX_DURATION_NANOS = MAX_DURATION_SECONDS * NANOS
MIN_TIMESTAMP_NANOS = -62_135_596_800 * NANOS
MAX_TIMESTAMP_NANOS = 253_402_300_799 * NANOS + NANOS - 1


def run(text: str, activation: dict[str, Any] | None = None) -> Any:
    return compile(text).evaluate(activation or {})


# -- nanoseconds kept --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('string(duration("1.000000001s"))', "1.000000001s"),
        ('string(duration("-1.000000001s"))', "-1.000000001s"),
        ('string(duration("1ns"))', "0.000000001s"),
        ('string(duration("1h1m1.5s"))', "3661.5s"),
        ('string(duration("1.5us") + duration("1µs"))', "0.0000025s"),
        ('string(duration("1000000s"))', "1000000s"),  # conformance toString_duration
        ('string(timestamp("2024-01-01T00:00:00.123456789Z"))', "2024-01-01T00:00:00.123456789Z"),
        ('string(timestamp("9999-12-31T23:59:59.999999999Z"))', "9999-12-31T23:59:59.999999999Z"),
        ('string(timestamp("2024-01-01T02:00:00.1+02:00"))', "2024-01-01T00:00:00.1Z"),
        ('string(timestamp("2009-02-13T23:31:30Z"))', "2009-02-13T23:31:30Z"),
        ('duration("1.000000001s") > duration("1s")', True),
        ('duration("1.000000001s") - duration("1s") == duration("1ns")', True),
        (
            'timestamp("2024-01-01T00:00:00.000000001Z") - timestamp("2024-01-01T00:00:00Z")'
            ' == duration("1ns")',
            True,
        ),
        # conformance timestamp_arithmetic/add_time_to_duration_nanos_*
        (
            "timestamp('0001-01-01T00:00:01.000000001Z') + duration('-999999999ns')"
            " == timestamp('0001-01-01T00:00:00.000000002Z')",
            True,
        ),
        (
            "timestamp('0001-01-01T00:00:01.999999999Z') + duration('999999999ns')"
            " == timestamp('0001-01-01T00:00:02.999999998Z')",
            True,
        ),
        ('-duration("1.000000001s") == duration("-1.000000001s")', True),
        ('type(duration("1ns")) == google.protobuf.Duration', True),
        ('type(timestamp("2024-01-01T00:00:00Z")) == google.protobuf.Timestamp', True),
    ],
)
def test_nanoseconds_are_kept(text: str, expected: Any) -> None:
    assert run(text) == expected


def test_values_are_exact_and_print_as_cel() -> None:
    assert run('duration("1.000000001s")') == CelDuration(1_000_000_001)
    assert run('timestamp("1970-01-01T00:00:01.000000001Z")') == CelTimestamp(1_000_000_001)
    assert format_value(CelDuration(-1)) == 'duration("-0.000000001s")'
    assert format_value(CelTimestamp(1)) == 'timestamp("1970-01-01T00:00:00.000000001Z")'
    assert run("type(duration('1s'))") == CelType("google.protobuf.Duration")


# -- ranges: errors, never a wrong value -----------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "timestamp('9999-12-31T23:59:59.999999999Z') + duration('1ns')",
        "timestamp('0001-01-01T00:00:00Z') + duration('-1ns')",
        "timestamp('0001-01-01T00:00:00Z') - duration('1ns')",
        "duration('1ns') + timestamp('9999-12-31T23:59:59.999999999Z')",
        "timestamp('9999-12-31T23:59:59Z') - timestamp('0001-01-01T00:00:00Z')",
        "timestamp('0001-01-01T00:00:00Z') - timestamp('9999-12-31T23:59:59Z')",
        "duration('-320000000000s')",
        "duration('320000000000s')",
        "duration('200000000000s') + duration('200000000000s')",
        "duration('-200000000000s') - duration('200000000000s')",
        "duration('315576000000s') + duration('1ns')",
        "-duration('315576000000s') - duration('1ns')",
        "duration('" + "9" * 5000 + "s')",  # no traceback from Python's int-parsing limit
        "timestamp(253402300800)",
        "timestamp(-62135596801)",
        "timestamp('9999-12-31T23:59:59-01:00')",  # the offset carries it past year 9999
        "timestamp('0001-01-01T00:00:00+01:00')",
    ],
)
def test_out_of_range_is_an_overflow_error(text: str) -> None:
    with pytest.raises(CelEvalError) as caught:
        run(text)
    assert caught.value.kind == ErrorKind.OVERFLOW
    assert "range" in caught.value.message


@pytest.mark.parametrize("offset", ["+24:00", "+25:00", "-99:00", "+05:60", "+2:00"])
def test_an_offset_rfc_3339_does_not_allow_is_refused(offset: str) -> None:
    """RFC 3339's offsets run to 23:59: `+25:00` was read (as 25 hours) and `--now` took it."""
    with pytest.raises(CelEvalError) as caught:
        run(f"timestamp('2024-01-01T00:00:00{offset}')")
    assert caught.value.kind == ErrorKind.INVALID_ARGUMENT
    assert run("timestamp('2024-01-01T00:00:00+23:59')") == run("timestamp('2023-12-31T00:01:00Z')")


def test_the_ranges_reach_their_edges_exactly() -> None:
    assert run("duration('315576000000s')") == CelDuration(MAX_DURATION_NANOS)
    assert run("-duration('315576000000s')") == CelDuration(-MAX_DURATION_NANOS)
    assert run("timestamp(253402300799)") == CelTimestamp(253_402_300_799 * NANOS)
    assert run("timestamp(-62135596800)") == CelTimestamp(MIN_TIMESTAMP_NANOS)
    # A timestamp difference is an int64 of nanoseconds (cel-go, cel-cpp): its edge exactly.
    edge = {"a": CelTimestamp(INT64_MAX), "b": CelTimestamp(0), "c": CelTimestamp(-1)}
    assert run("a - b", edge) == CelDuration(INT64_MAX)
    with pytest.raises(CelEvalError):
        run("a - c", edge)
    with pytest.raises(CelEvalError) as caught:
        run("timestamp('0000-01-01T00:00:00Z')")
    assert "range" in caught.value.message


# -- accessors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # conformance timestamp_selectors/getMilliseconds: the millisecond part
        ("timestamp('2009-02-13T23:31:20.123456789Z').getMilliseconds()", 123),
        ("timestamp('2009-02-13T23:31:20.123456789Z').getMilliseconds('+05:30')", 123),
        ("timestamp('2009-02-13T23:31:20.999999999Z').getSeconds()", 20),
        ("timestamp('1969-12-31T23:59:59.999Z').getMilliseconds()", 999),
        ("timestamp('1969-12-31T23:59:59.999Z').getSeconds()", 59),
        ("timestamp('1969-12-31T23:58:59Z').getMinutes()", 58),
        ("timestamp('0001-01-01T22:00:00Z').getHours()", 22),
        ("timestamp('1969-12-31T23:59:59Z').getHours('+01:00')", 0),
        # duration_converters: totals, except getMilliseconds, the milliseconds component
        ("duration('10000s').getHours()", 2),
        ("duration('3730s').getMinutes()", 62),
        ("duration('3730s').getSeconds()", 3730),
        ("duration('123.321456789s').getMilliseconds()", 321),
        ("duration('1.5s').getMilliseconds()", 500),
        ("duration('-1.5s').getMilliseconds()", -500),
        ("duration('-3730.999999999s').getSeconds()", -3730),
        ("duration('-3730s').getMinutes()", -62),
        ("duration('0.999999999s').getSeconds()", 0),
        ("duration('315576000000s').getSeconds()", 315576000000),
        # timestamp_selectors_tz
        ("timestamp('2009-02-13T23:31:30Z').getDate('Australia/Sydney')", 14),
        ("timestamp('2009-02-13T02:00:00Z').getDayOfMonth('-02:30')", 11),
        ("timestamp('2009-02-13T02:00:00Z').getDayOfMonth('America/St_Johns')", 11),
        ("timestamp('2009-02-13T23:31:30Z').getHours('02:00')", 1),
        ("timestamp('2009-02-13T23:31:30Z').getMinutes('Asia/Kathmandu')", 16),
        ("timestamp('2009-02-13T23:31:30Z').getSeconds('-00:00')", 30),
        ("timestamp('2009-02-13T23:31:30Z').getDayOfWeek()", 5),
        ("timestamp('2009-02-13T23:31:30Z').getDayOfYear('US/Central')", 43),
        ("timestamp('2009-02-13T23:31:30Z').getMonth()", 1),
        ("timestamp('2009-02-13T23:31:30Z').getFullYear('-09:30')", 2009),
        # int(timestamp): Unix seconds rounded down, as Go's Unix()
        ("int(timestamp('2009-02-13T23:31:30.999999999Z'))", 1234567890),
        ("int(timestamp('1969-12-31T23:59:59.000000001Z'))", -1),
        ("timestamp(1234567890) == timestamp('2009-02-13T23:31:30Z')", True),
    ],
)
def test_accessors(text: str, expected: Any) -> None:
    assert run(text) == expected


def test_accessor_errors() -> None:
    with pytest.raises(CelEvalError) as caught:
        run("duration('1s').getMilliseconds('UTC')")
    assert caught.value.kind == ErrorKind.NO_MATCHING_OVERLOAD
    with pytest.raises(CelEvalError) as caught:
        run("timestamp('2009-02-13T23:31:30Z').getHours('Mars/Olympus')")
    assert caught.value.kind == ErrorKind.INVALID_ARGUMENT


# -- constant folding ------------------------------------------------------------------------


def test_time_literals_are_folded_with_their_nanoseconds() -> None:
    program = compile(
        'd > duration("1.000000001s") && t < timestamp("2024-01-01T00:00:00.000000001Z")'
    )
    assert "_f_duration" not in program.python_source
    assert "_f_timestamp" not in program.python_source
    activation = {"d": CelDuration(1_000_000_002), "t": parse_timestamp("2024-01-01T00:00:00Z")}
    assert program.evaluate(activation) is True
    assert program.evaluate({**activation, "d": timedelta(seconds=1)}) is False


# -- where CEL meets Python --------------------------------------------------------------------


def test_python_datetime_and_timedelta_are_taken_exactly() -> None:
    moment = datetime(2024, 5, 1, 12, 30, 15, 250001, tzinfo=UTC)
    activation = {"now": moment, "ttl": timedelta(minutes=5, microseconds=3), "n": 1}
    assert run("now == timestamp('2024-05-01T12:30:15.250001Z')", activation) is True
    assert run("now + ttl", activation) == CelTimestamp.from_datetime(
        moment + timedelta(minutes=5, microseconds=3)
    )
    assert run("string(ttl)", activation) == "300.000003s"
    assert run("ttl.getMilliseconds() == 0 && now.getMilliseconds() == 250", activation) is True
    assert run("now < now + duration('1ns') && [now, now][1] == now", activation) is True
    assert run("type(now) == google.protobuf.Timestamp && int(now) > 0", activation) is True
    assert run("-ttl < ttl && ttl in [duration('300.000003s')]", activation) is True
    assert run("[ttl, duration('1ns')].sort()", activation) == [
        CelDuration(1),
        CelDuration(300_000_003_000),
    ]
    assert run("optional.ofNonZeroValue(z).hasValue()", {"z": timedelta(0)}) is False
    other_zone = datetime(2024, 5, 1, 14, 30, 15, 250001, tzinfo=timezone(timedelta(hours=2)))
    assert run("now == other", {**activation, "other": other_zone}) is True
    # A naive datetime is taken to be in UTC.
    assert run("now == naive", {**activation, "naive": moment.replace(tzinfo=None)}) is True
    # A variable is returned as it was given; computed values are CEL's exact types.
    assert run("now", activation) is moment
    assert type(run("now + duration('0s')", activation)) is CelTimestamp


def test_conversions_to_python() -> None:
    assert CelTimestamp(1_500).to_datetime() == datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    assert CelTimestamp(-1).to_datetime() == datetime(1969, 12, 31, 23, 59, 59, 999999, UTC)
    assert CelDuration(1_999).to_timedelta() == timedelta(microseconds=1)
    assert CelDuration(-1_999).to_timedelta() == timedelta(microseconds=-1)
    assert cel_value(datetime(1, 1, 1, tzinfo=UTC)) == CelTimestamp(MIN_TIMESTAMP_NANOS)
    assert cel_value(timedelta(days=1)) == CelDuration(86_400 * NANOS)
    with pytest.raises(CelEvalError) as caught:  # a timedelta past CEL's +-10,000 years
        run("d > duration('0s')", {"d": timedelta.max})
    assert caught.value.kind == ErrorKind.OVERFLOW
    assert cel_value("x") == "x"


def test_the_types_are_immutable_hashable_values() -> None:
    duration = CelDuration(5)
    with pytest.raises(AttributeError):
        duration.nanos = 6  # type: ignore[misc]
    assert {CelDuration(5), CelDuration(5), CelTimestamp(5)} == {duration, CelTimestamp(5)}
    assert CelDuration(5) != CelTimestamp(5) and CelDuration(5) != 5
    assert pickle.loads(pickle.dumps(CelTimestamp(7))) == CelTimestamp(7)
    assert sorted([CelDuration(3), CelDuration(-1)]) == [CelDuration(-1), CelDuration(3)]
    assert CelTimestamp(-1).seconds == -1


def test_policy_now_is_a_nanosecond_timestamp() -> None:
    from carlang_runtime.ir import Action, ActionType
    from carlang_runtime.policy.activation import action_activation

    action = Action(id="a", type=ActionType.TOOL_CALL, tool="t", parameters={})
    given = action_activation(action, now=datetime(2025, 1, 1, tzinfo=UTC))
    assert given["now"] == parse_timestamp("2025-01-01T00:00:00Z")
    exact = CelTimestamp(1_700_000_000_123_456_789)
    assert action_activation(action, now=exact)["now"] is exact


# -- properties ------------------------------------------------------------------------------

durations = st.integers(-MAX_DURATION_NANOS, MAX_DURATION_NANOS).map(CelDuration)
timestamps = st.integers(MIN_TIMESTAMP_NANOS, MAX_TIMESTAMP_NANOS).map(CelTimestamp)


def _exact(nanos: int, low: int, high: int) -> int | None:
    return nanos if low <= nanos <= high else None


def _outcome(text: str, activation: dict[str, Any]) -> Any:
    try:
        return run(text, activation)
    except CelEvalError as exc:
        assert exc.kind == ErrorKind.OVERFLOW
        return None


@given(durations, durations)
def test_duration_arithmetic_is_exact_integer_nanoseconds(a: CelDuration, b: CelDuration) -> None:
    env = {"a": a, "b": b}
    for text, nanos in (("a + b", a.nanos + b.nanos), ("a - b", a.nanos - b.nanos)):
        expected = _exact(nanos, -MAX_DURATION_NANOS, MAX_DURATION_NANOS)
        result = _outcome(text, env)
        assert (result.nanos if result is not None else None) == expected
    assert run("a < b", env) is (a.nanos < b.nanos)
    assert run("a == b", env) is (a.nanos == b.nanos)


@given(timestamps, durations, timestamps)
def test_timestamp_arithmetic_is_exact_integer_nanoseconds(
    t: CelTimestamp, d: CelDuration, u: CelTimestamp
) -> None:
    env = {"t": t, "d": d, "u": u}
    shifted = _exact(t.nanos + d.nanos, MIN_TIMESTAMP_NANOS, MAX_TIMESTAMP_NANOS)
    result = _outcome("t + d", env)
    assert (result.nanos if result is not None else None) == shifted
    difference = _exact(t.nanos - u.nanos, -(2**63), INT64_MAX)
    result = _outcome("t - u", env)
    assert (result.nanos if result is not None else None) == difference


@given(durations)
def test_durations_print_and_parse_back(value: CelDuration) -> None:
    text = format_duration(value)
    assert parse_duration(text) == value
    assert run(f"duration('{text}')") == value


@given(timestamps)
def test_timestamps_print_and_parse_back(value: CelTimestamp) -> None:
    text = format_timestamp(value)
    assert parse_timestamp(text) == value
    assert run(f"string(timestamp('{text}'))") == text
    assert run("t.getMilliseconds()", {"t": value}) == value.nanos % NANOS // 1_000_000


@given(st.datetimes(timezones=st.just(UTC)))
def test_datetimes_round_trip_exactly(moment: datetime) -> None:
    converted = CelTimestamp.from_datetime(moment)
    assert converted.to_datetime() == moment
    assert parse_timestamp(moment.isoformat().replace("+00:00", "Z")) == converted
    assert cel_value(moment.replace(tzinfo=None)) == converted


def test_the_repeated_hour_of_a_zone_keeps_both_instants() -> None:
    # Python calls these two equal (one zone, only `fold` differs); they are an hour apart.
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("America/New_York")
    first = datetime(2026, 11, 1, 1, 30, tzinfo=zone)
    second = first.replace(fold=1)
    assert format_value(cel_value(first)) == 'timestamp("2026-11-01T05:30:00Z")'
    assert format_value(cel_value(second)) == 'timestamp("2026-11-01T06:30:00Z")'


def test_times_order_only_against_their_own_kind_in_python() -> None:
    with pytest.raises(TypeError):
        assert CelTimestamp(0) < datetime(2026, 1, 1, tzinfo=UTC)  # type: ignore[operator]
    with pytest.raises(TypeError):
        assert CelDuration(5) < CelTimestamp(10)  # type: ignore[operator]
    assert CelDuration(5) < CelDuration(10) and CelTimestamp(10) >= CelTimestamp(10)
