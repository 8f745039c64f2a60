"""CEL's standard functions: one table, read by the code generator (what to call), the checker
(which overloads exist) and the cost estimate.

A function is called as `name(args)` (global), as `receiver.name(args)` (method), or both;
`Overload` lists the argument kinds each form accepts, receiver first for methods.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any, Final

from . import ops
from .signatures import Function, Overload
from .signatures import global_overload as _g
from .signatures import method_overload as _m
from .values import (
    INT64_MAX,
    INT64_MIN,
    PYTHON_TIME_TYPES,
    UINT64_MAX,
    CelDuration,
    CelEvalError,
    CelTimestamp,
    CelType,
    CelUint,
    ErrorKind,
    cel_value,
    check_timestamp,
    format_duration,
    format_timestamp,
    parse_duration,
    parse_timestamp,
    type_of,
    unix_seconds,
    utf8,
)

__all__ = [
    "Overload",
    "Function",
    "FUNCTIONS",
    "Regex",
    "compile_regex",
    "ZONED_ACCESSORS",
    "time_zone",
]


def _conversions(sources: str, result: str) -> tuple[Overload, ...]:
    return tuple(_g(source, result) for source in sources.split())


# -- size and strings ------------------------------------------------------------------------


def size(value: Any) -> int:
    """`size(x)`: characters of a string, bytes, list elements or map entries."""
    if type(value) in (str, bytes, list, tuple, dict):
        return len(value)
    if value is None:  # cel-python's reading: the size of nothing is 0
        return 0
    raise ops.no_overload("size", value)


def contains(text: Any, part: Any) -> bool:
    """`s.contains(t)`: substring test; on a list or map, membership like `in`."""
    if type(text) is str and type(part) is str:
        return part in text
    if type(text) in (list, tuple, dict):
        return ops.contains_item(part, text)
    raise ops.no_overload("contains", text, part)


def starts_with(text: Any, prefix: Any) -> bool:
    """`s.startsWith(prefix)`."""
    if type(text) is str and type(prefix) is str:
        return text.startswith(prefix)
    raise ops.no_overload("startsWith", text, prefix)


def ends_with(text: Any, suffix: Any) -> bool:
    """`s.endsWith(suffix)`."""
    if type(text) is str and type(suffix) is str:
        return text.endswith(suffix)
    raise ops.no_overload("endsWith", text, suffix)


class Regex:
    """An RE2 pattern (linear time, no backreferences), compiled once, answering the one
    question CEL asks: does it match anywhere in a string?"""

    __slots__ = ("pattern", "search")

    def __init__(self, pattern: str, compiled: Any, unanchored: Any) -> None:
        self.pattern = pattern
        # google-re2's `search` builds a match object and maps byte offsets back to
        # characters, most of the cost of a policy that matches; a yes/no needs neither.
        # The wrapper's own method is the fallback should its internals ever change.
        low_level = getattr(getattr(compiled, "_regexp", None), "Match", None)
        if low_level is not None and unanchored is not None:

            def search(text: str) -> bool:
                data = text.encode("utf-8", "surrogatepass")
                found: Any = low_level(unanchored, data, 0, len(data))
                return bool(found[0][0] != -1)

        else:

            def search(text: str) -> bool:
                return compiled.search(text) is not None

        self.search = search


@lru_cache(maxsize=256)
def compile_regex(pattern: str) -> Regex:
    """An RE2 pattern, compiled once, or an invalid_argument error saying why it does not
    compile."""
    import re2  # google-re2, a dependency of cel-python; imported only when a policy matches

    options = re2.Options()
    options.log_errors = False  # RE2 would also print the error on stderr
    try:
        compiled = re2.compile(pattern, options)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise CelEvalError(
            ErrorKind.INVALID_ARGUMENT,
            f"the pattern is not a valid RE2 regular expression: {detail}",
        ) from None
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 text, so no RE2 pattern, holds one
        raise CelEvalError(
            ErrorKind.INVALID_ARGUMENT,
            "the pattern holds a lone UTF-16 surrogate, which no text can contain",
        ) from None
    anchor = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
    return Regex(pattern, compiled, anchor)


def matches(text: Any, pattern: Any) -> bool:
    """`s.matches(re)`: whether RE2 `re` matches anywhere in `s` (unanchored). A pattern
    that does not compile is an error whatever `s` is."""
    if type(pattern) is str:
        try:
            regex = compile_regex(pattern)
        except CelEvalError:
            # RE2's detail quotes the pattern, which may come from the data.
            raise CelEvalError(
                ErrorKind.INVALID_ARGUMENT, "the pattern is not a valid RE2 regular expression"
            ) from None
        if type(text) is str:
            return regex.search(text)
    raise ops.no_overload("matches", text, pattern)


# -- conversions -----------------------------------------------------------------------------

_INT_TEXT = re.compile(r"[-+]?(?:0[xX][0-9a-fA-F]+|[0-9]+)")


def _parse_int(text: str) -> int:
    if _INT_TEXT.fullmatch(text) is None:
        raise CelEvalError(ErrorKind.INVALID_ARGUMENT, "the string is not an integer")
    body = text.lstrip("+-")
    if body[:2] in ("0x", "0X"):
        value = int(body[2:], 16)
    else:
        # Past 20 digits the value is out of every integer range; Python would refuse to
        # read more than 4,300 (a ValueError, not a CEL error). Leading zeros are no digits.
        digits = body.lstrip("0")
        value = int(digits or "0") if len(digits) <= 20 else 10**21
    return -value if text.startswith("-") else value


def _truncate(value: float, low: int, high: int) -> int:
    # The range is checked on the double, before truncation, with cel-go's bounds: a double
    # of -2**63 or 2**63 is out of the int range (conformance: double_int_min_range), a
    # negative one out of the uint range. NaN fails every comparison.
    fits = 0.0 <= value < float(high) if low == 0 else float(low) < value < float(high)
    if not fits:
        raise CelEvalError(ErrorKind.OVERFLOW, "the double does not fit the integer type")
    return int(value)


def to_int(value: Any) -> int:
    """`int(x)` from int, uint, double (truncating), string or timestamp (Unix seconds)."""
    kind = type(value)
    if kind is int:
        return value  # type: ignore[no-any-return]
    if kind is CelUint:
        return ops.int64(int(value))
    if kind is float:
        return _truncate(value, INT64_MIN, INT64_MAX)
    if kind is str:
        return ops.int64(_parse_int(value))
    if kind is CelTimestamp:
        return ops.int64(unix_seconds(value))
    if kind is datetime:
        return to_int(cel_value(value))
    raise ops.no_overload("int", value)


def to_uint(value: Any) -> CelUint:
    """`uint(x)` from int, uint, double (truncating) or string."""
    kind = type(value)
    if kind is CelUint:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return ops.uint64(int(value))
    if kind is float:
        return CelUint(_truncate(value, 0, UINT64_MAX))
    if kind is str:
        return ops.uint64(_parse_int(value))
    raise ops.no_overload("uint", value)


def to_double(value: Any) -> float:
    """`double(x)` from a number or a string."""
    kind = type(value)
    if kind is float:
        return value  # type: ignore[no-any-return]
    if kind is int or kind is CelUint:
        return float(value)
    if kind is str:
        try:
            return float(value)
        except ValueError:
            raise CelEvalError(ErrorKind.INVALID_ARGUMENT, "the string is not a number") from None
    raise ops.no_overload("double", value)


def to_string(value: Any) -> str:
    """`string(x)` from a scalar, bytes (UTF-8), a timestamp or a duration."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is CelUint:
        return str(int(value))
    if kind is float:
        return str(value)
    if kind is bytes:
        try:
            return value.decode("utf-8")  # type: ignore[no-any-return]
        except UnicodeDecodeError:
            raise CelEvalError(ErrorKind.INVALID_ARGUMENT, "bytes are not valid UTF-8") from None
    if kind is CelTimestamp:
        return format_timestamp(value)
    if kind is CelDuration:
        return format_duration(value)
    if kind in PYTHON_TIME_TYPES:
        return to_string(cel_value(value))
    raise ops.no_overload("string", value)


def to_bytes(value: Any) -> bytes:
    """`bytes(x)` from a string (UTF-8) or bytes."""
    if type(value) is bytes:
        return value
    if type(value) is str:
        return utf8(value, "bytes")
    raise ops.no_overload("bytes", value)


_BOOL_TEXT: Final = {
    **dict.fromkeys(("1", "t", "true", "TRUE", "True"), True),
    **dict.fromkeys(("0", "f", "false", "FALSE", "False"), False),
}


def to_bool(value: Any) -> bool:
    """`bool(x)` from a bool or one of the strings true/false/t/f/1/0 (and TRUE, True, ...)."""
    if type(value) is bool:
        return value
    if type(value) is str:
        if value in _BOOL_TEXT:
            return _BOOL_TEXT[value]
        raise CelEvalError(
            ErrorKind.INVALID_ARGUMENT, "the string is not a bool (true, false, t, f, 1 or 0)"
        )
    raise ops.no_overload("bool", value)


def to_timestamp(value: Any) -> CelTimestamp:
    """`timestamp(x)` from an RFC 3339 string, a timestamp or an int (seconds since the Unix
    epoch)."""
    if type(value) is CelTimestamp:
        return value
    if type(value) is str:
        return parse_timestamp(value)
    if type(value) is int:
        return check_timestamp(CelTimestamp(value * 1_000_000_000))
    if type(value) is datetime:
        return cel_value(value)  # type: ignore[no-any-return]
    raise ops.no_overload("timestamp", value)


def to_duration(value: Any) -> CelDuration:
    """`duration(x)` from a Go-style string (`1h30m`, `1.5s`, `1.000000001s`) or a
    duration."""
    if type(value) is CelDuration:
        return value
    if type(value) is str:
        return parse_duration(value)
    if type(value) is timedelta:
        return cel_value(value)  # type: ignore[no-any-return]
    raise ops.no_overload("duration", value)


def dyn(value: Any) -> Any:
    """`dyn(x)`: `x`, with its static type forgotten."""
    return value


def type_function(value: Any) -> CelType:
    """`type(x)`: the type of `x` as a value."""
    return type_of(value)


# -- timestamps and durations ----------------------------------------------------------------

_NANOS: Final = 1_000_000_000
_UNIX_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_OFFSET = re.compile(r"([+-]?)(\d\d?):(\d\d)")


@lru_cache(maxsize=64)
def time_zone(name: str) -> tzinfo:
    """The time zone a timestamp accessor's argument names (`getHours("Europe/Paris")`): an
    IANA name, `UTC`, or an offset like `+02:00`. Raises `CelEvalError` for any other."""
    match = _OFFSET.fullmatch(name)
    try:
        if match:
            sign, hours, minutes = match.groups()
            offset = timedelta(hours=int(hours), minutes=int(minutes))
            return timezone(-offset if sign == "-" else offset)  # (ValueError past 24 hours)
        if name in ("UTC", "Z", "utc"):
            return UTC
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        raise CelEvalError(
            ErrorKind.INVALID_ARGUMENT,
            "unknown time zone (an IANA name like Europe/Paris, or an offset like +02:00)",
        ) from None


def _moment(value: Any, zone: Any, accessor: str) -> CelTimestamp:
    if type(value) is not CelTimestamp:
        if type(value) is datetime:
            value = cel_value(value)
        else:
            raise ops.no_overload(accessor, value, *(() if zone is None else (zone,)))
    if zone is not None and type(zone) is not str:
        raise ops.no_overload(accessor, value, zone)
    return value  # type: ignore[no-any-return]


def _local(moment: CelTimestamp, zone: str | None) -> datetime:
    # The civil time of the whole second (the fraction is no calendar's business).
    utc = _UNIX_EPOCH + timedelta(seconds=moment.nanos // _NANOS)
    if not zone:
        return utc
    tz = time_zone(zone)
    try:
        return utc.astimezone(tz)
    except OverflowError:  # 0001-01-01T00:00Z at -01:00 is in year 0, past Python's dates
        raise CelEvalError(
            ErrorKind.OVERFLOW,
            "the time in that zone is out of the timestamp range (years 1 to 9999)",
        ) from None


def _timestamp_accessor(accessor: str, read: Callable[[datetime], int]) -> Callable[..., int]:
    def access(moment: Any, zone: Any = None) -> int:
        return read(_local(_moment(moment, zone, accessor), zone))

    access.__name__ = accessor
    access.__doc__ = f"`t.{accessor}([zone])`."
    return access


def _both_accessor(
    accessor: str, on_time: Callable[[datetime], int], per: int, cycle: int
) -> Callable[..., int]:
    """An accessor of a timestamp's clock (`on_time` on its civil time in a zone) that on a
    duration is its total in units of `per` nanoseconds, truncated toward zero (cel-spec)."""

    def access(value: Any, zone: Any = None) -> int:
        kind = type(value)
        if zone is None:
            if kind is CelTimestamp:
                # In UTC the clock is plain arithmetic (floor division counts back before 1970).
                nanos: int = value.nanos
                return nanos // per % cycle
            if kind is timedelta:
                value, kind = cel_value(value), CelDuration
            if kind is CelDuration:
                total: int = value.nanos
                whole = abs(total) // per
                return -whole if total < 0 else whole
        return on_time(_local(_moment(value, zone, accessor), zone))

    access.__name__ = accessor
    access.__doc__ = f"`t.{accessor}([zone])` on a timestamp, the total on a duration."
    return access


def get_milliseconds(value: Any, zone: Any = None) -> int:
    """`t.getMilliseconds([zone])`: the millisecond part of a timestamp's second (0..999); on a
    duration, cel-spec's milliseconds *component* (`duration("1.5s")` -> 500, not 1500), with
    the duration's sign as a protobuf Duration's nanos have it."""
    if zone is None:
        if type(value) is timedelta:
            value = cel_value(value)
        if type(value) is CelDuration:
            part = abs(value.nanos) % _NANOS // 1_000_000
            return -part if value.nanos < 0 else part
    # A zone shifts whole minutes (whole seconds at most): the fraction stays.
    return _moment(value, zone, "getMilliseconds").nanos % _NANOS // 1_000_000


_TIMESTAMP_ONLY = (_m("timestamp", "", "int"), _m("timestamp", "string", "int"))
_TIME_OR_DURATION = (*_TIMESTAMP_ONLY, _m("duration", "", "int"))


def _functions() -> dict[str, Function]:
    table = [
        Function(
            "size",
            size,
            tuple(
                overload
                for kind in ("string", "bytes", "list", "map")
                for overload in (_g(kind, "int"), _m(kind, "", "int"))
            ),
        ),
        Function(
            "contains",
            contains,
            (_m("string", "string", "bool"), _m("list", "dyn", "bool")),
            linear=True,
        ),
        Function("startsWith", starts_with, (_m("string", "string", "bool"),)),
        Function("endsWith", ends_with, (_m("string", "string", "bool"),)),
        Function(
            "matches",
            matches,
            (_m("string", "string", "bool"), _g("string string", "bool")),
            cost=10,
            linear=True,
        ),
        Function("int", to_int, _conversions("int uint double string timestamp", "int")),
        Function("uint", to_uint, _conversions("int uint double string", "uint")),
        Function("double", to_double, _conversions("int uint double string", "double")),
        Function(
            "string",
            to_string,
            _conversions("string bool int uint double bytes timestamp duration", "string"),
        ),
        Function("bytes", to_bytes, _conversions("string bytes", "bytes")),
        Function("bool", to_bool, _conversions("bool string", "bool")),
        Function("timestamp", to_timestamp, _conversions("string timestamp int", "timestamp")),
        Function("duration", to_duration, _conversions("string duration", "duration")),
        Function("dyn", dyn, (_g("dyn", "dyn"),)),
        Function("type", type_function, (_g("dyn", "type"),)),
        Function(
            "getFullYear", _timestamp_accessor("getFullYear", lambda t: t.year), _TIMESTAMP_ONLY
        ),
        Function(
            "getMonth", _timestamp_accessor("getMonth", lambda t: t.month - 1), _TIMESTAMP_ONLY
        ),
        Function("getDate", _timestamp_accessor("getDate", lambda t: t.day), _TIMESTAMP_ONLY),
        Function(
            "getDayOfMonth",
            _timestamp_accessor("getDayOfMonth", lambda t: t.day - 1),
            _TIMESTAMP_ONLY,
        ),
        Function(
            "getDayOfWeek",
            _timestamp_accessor("getDayOfWeek", lambda t: t.isoweekday() % 7),
            _TIMESTAMP_ONLY,
        ),
        Function(
            "getDayOfYear",
            _timestamp_accessor("getDayOfYear", lambda t: t.timetuple().tm_yday - 1),
            _TIMESTAMP_ONLY,
        ),
        Function(
            "getHours",
            _both_accessor("getHours", lambda t: t.hour, 3600 * _NANOS, 24),
            _TIME_OR_DURATION,
        ),
        Function(
            "getMinutes",
            _both_accessor("getMinutes", lambda t: t.minute, 60 * _NANOS, 60),
            _TIME_OR_DURATION,
        ),
        Function(
            "getSeconds",
            _both_accessor("getSeconds", lambda t: t.second, _NANOS, 60),
            _TIME_OR_DURATION,
        ),
        Function(
            "getMilliseconds",
            get_milliseconds,
            _TIME_OR_DURATION,
        ),
    ]
    return {function.name: function for function in table}


#: The timestamp accessors that take a time zone as their argument.
ZONED_ACCESSORS: Final = frozenset(
    {
        "getFullYear",
        "getMonth",
        "getDate",
        "getDayOfMonth",
        "getDayOfWeek",
        "getDayOfYear",
        "getHours",
        "getMinutes",
        "getSeconds",
        "getMilliseconds",
    }
)


def _all_functions() -> dict[str, Function]:
    from .extensions import EXTENSIONS  # it builds on this module's helpers

    return {**_functions(), **EXTENSIONS}


FUNCTIONS: Final[dict[str, Function]] = _all_functions()
