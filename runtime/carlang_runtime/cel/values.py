"""CEL values as plain Python data, and the one CEL error type.

Activations are JSON-like Python data and are used as they are, with no conversion per call:

    null -> None      bool -> bool     int -> int (int64)     uint -> CelUint
    double -> float   string -> str    bytes -> bytes         list -> list (or tuple)
    map -> dict       timestamp -> CelTimestamp               duration -> CelDuration
    type -> CelType

Timestamps and durations are exact to the nanosecond (`CelTimestamp`, `CelDuration`: one int
each). Python's `datetime` and `timedelta` are accepted as input wherever a value is (an
activation, an argument): an operation that meets one turns it into the CEL type exactly
(`cel_value`), so nothing is converted on the way in and the common path pays nothing.

`bool` is a subclass of `int` in Python but never a CEL int: every type test here is
`type(x) is int`, never `isinstance`.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final

from ..errors import CarlangRuntimeError

__all__ = [
    "CelEvalError",
    "CelLimitError",
    "CelUint",
    "Unbound",
    "CelType",
    "CelOptional",
    "OPTIONAL_NONE",
    "ErrorKind",
    "INT64_MIN",
    "INT64_MAX",
    "UINT64_MAX",
    "MAX_DURATION_SECONDS",
    "TYPES",
    "type_of",
    "type_name",
    "format_value",
    "parse_timestamp",
    "parse_duration",
    "format_timestamp",
    "format_duration",
    "unix_seconds",
    "check_duration",
    "check_timestamp",
    "CelDuration",
    "CelTimestamp",
    "EPOCH",
    "ZERO_DURATION",
    "PYTHON_TIME_TYPES",
    "cel_value",
    "MIN_TIMESTAMP_SECONDS",
    "MAX_TIMESTAMP_SECONDS",
    "utf8",
]

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
UINT64_MAX: Final = 2**64 - 1
# CEL's duration range: +-10,000 years.
MAX_DURATION_SECONDS: Final = 315_576_000_000


class ErrorKind:
    """The kinds of CEL evaluation error (the names cel-spec's conformance tests use)."""

    NO_MATCHING_OVERLOAD: Final = "no_matching_overload"
    NO_SUCH_FIELD: Final = "no_such_field"
    NO_SUCH_KEY: Final = "no_such_key"
    UNDECLARED_REFERENCE: Final = "undeclared_reference"
    DIVISION_BY_ZERO: Final = "division_by_zero"
    OVERFLOW: Final = "overflow"
    INVALID_ARGUMENT: Final = "invalid_argument"
    COST_LIMIT: Final = "cost_limit"


class CelEvalError(CarlangRuntimeError):
    """A CEL evaluation error: `kind` is one of `ErrorKind`, `message` says what went wrong.

    Inside an evaluation an error is a value (`false && error` is `false`); it surfaces as
    this exception only when it decides the result."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        # Whether the message already names the sub-expression that failed.
        self.located = False

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.kind, self.message))


class CelLimitError(CelEvalError):
    """An evaluation stopped by its `Limits` (steps, memory or time). Unlike other errors it
    is never a value that `&&`, `||` or a macro may absorb: it always ends the evaluation."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(kind, message)


class Unbound:
    """What a variable missing from the activation holds while an expression runs: every
    operation on it fails with `undeclared_reference` (ops.no_overload sees to that)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def error(self) -> CelEvalError:
        """The error of using it."""
        return CelEvalError(
            ErrorKind.UNDECLARED_REFERENCE, f"undeclared reference to '{self.name}'"
        )


class CelUint(int):
    """A CEL `uint` (0 .. 2**64-1); plain `int` is CEL `int`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{int(self)}u"


class CelType:
    """A CEL type value, what `type(x)` returns and what `int`, `string`, ... name."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CelType) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("CelType", self.name))

    def __repr__(self) -> str:
        return self.name


class CelOptional:
    """A CEL optional (cel-go's optional library): `optional.of(value)` when `present`,
    `optional.none()` (the one `OPTIONAL_NONE`) when not."""

    __slots__ = ("value", "present")

    def __init__(self, value: Any = None, present: bool = True) -> None:
        self.value = value
        self.present = present

    def __repr__(self) -> str:
        return f"optional.of({self.value!r})" if self.present else "optional.none()"


OPTIONAL_NONE: Final = CelOptional(None, False)

_NANOS: Final = 1_000_000_000
# Timestamps run from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z (cel-spec).
MIN_TIMESTAMP_SECONDS: Final = -62_135_596_800
MAX_TIMESTAMP_SECONDS: Final = 253_402_300_799
_MIN_TIMESTAMP_NANOS: Final = MIN_TIMESTAMP_SECONDS * _NANOS
_MAX_TIMESTAMP_NANOS: Final = MAX_TIMESTAMP_SECONDS * _NANOS + _NANOS - 1
_MAX_DURATION_NANOS: Final = MAX_DURATION_SECONDS * _NANOS
_UNIX_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class _Nanoseconds:
    """A whole number of nanoseconds, exact: immutable, hashable, equal to and ordered
    against its own kind only (a duration is never equal to a timestamp)."""

    __slots__ = ("nanos",)
    nanos: int

    def __init__(self, nanos: int) -> None:
        object.__setattr__(self, "nanos", nanos)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a {type(self).__name__} is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.nanos,))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.nanos == self.nanos

    def __hash__(self) -> int:
        return hash((type(self), self.nanos))

    def __lt__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.nanos < other.nanos

    def __le__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.nanos <= other.nanos

    def __gt__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.nanos > other.nanos

    def __ge__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.nanos >= other.nanos


class CelDuration(_Nanoseconds):
    """A CEL duration (`google.protobuf.Duration`): a whole number of nanoseconds, exact.

    Immutable, hashable and ordered among durations. `from_timedelta` and `to_timedelta`
    convert from and to Python's `timedelta` (which holds microseconds)."""

    __slots__ = ()

    @classmethod
    def from_timedelta(cls, value: timedelta) -> CelDuration:
        """`value` exactly (a timedelta holds whole microseconds)."""
        micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
        return cls(micros * 1000)

    def to_timedelta(self) -> timedelta:
        """As a `timedelta`, truncated toward zero to whole microseconds."""
        micros = abs(self.nanos) // 1000
        return timedelta(microseconds=-micros if self.nanos < 0 else micros)

    def __repr__(self) -> str:
        return f'duration("{format_duration(self)}")'


class CelTimestamp(_Nanoseconds):
    """A CEL timestamp (`google.protobuf.Timestamp`): nanoseconds since the Unix epoch (UTC),
    exact, within years 1..9999.

    Immutable, hashable and ordered among timestamps. `from_datetime` and `to_datetime`
    convert from and to Python's `datetime` (which holds microseconds)."""

    __slots__ = ()

    @property
    def seconds(self) -> int:
        """Whole seconds since the epoch (rounded down, as protobuf's `seconds`)."""
        return self.nanos // _NANOS

    @classmethod
    def from_datetime(cls, value: datetime) -> CelTimestamp:
        """`value` exactly; a naive datetime is taken to be in UTC."""
        delta = (value if value.tzinfo is not None else value.replace(tzinfo=UTC)) - _UNIX_EPOCH
        return cls(((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000)

    def to_datetime(self) -> datetime:
        """As an aware `datetime` in UTC, rounded down to whole microseconds."""
        return _UNIX_EPOCH + timedelta(microseconds=self.nanos // 1000)

    def __repr__(self) -> str:
        return f'timestamp("{format_timestamp(self)}")'


EPOCH: Final = CelTimestamp(0)
ZERO_DURATION: Final = CelDuration(0)
# Python's time types, accepted wherever a CEL value is (activations, extension functions) and
# turned into CEL's exact ones where an operation looks at them (`cel_value`).
PYTHON_TIME_TYPES: Final = frozenset({datetime, timedelta})


def cel_value(value: Any) -> Any:
    """`value` with a Python `datetime`/`timedelta` turned into a CEL timestamp/duration
    (exactly); any other value as it is."""
    kind = type(value)
    if kind is datetime or kind is timedelta:
        return _from_python_time(value)
    return value


def _from_python_time(value: datetime | timedelta) -> CelTimestamp | CelDuration:
    if type(value) is datetime:
        # Keyed with the offset too: two datetimes of one zone that differ only in `fold` (the
        # repeated hour when clocks go back) are equal in Python, but are different instants.
        return _timestamp_of(value, value.utcoffset())
    return _duration_of(value)


# Cached: an activation's `now` is met by every operation that reads it, and a datetime caches
# its own hash, so a hit costs far less than the conversion.
@lru_cache(maxsize=256)
def _timestamp_of(value: datetime, offset: timedelta | None) -> CelTimestamp:
    return check_timestamp(CelTimestamp.from_datetime(value))


@lru_cache(maxsize=256)
def _duration_of(value: timedelta) -> CelDuration:
    return check_duration(CelDuration.from_timedelta(value))


TYPES: Final[dict[str, CelType]] = {
    name: CelType(name)
    for name in (
        "null_type",
        "bool",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "list",
        "map",
        "type",
        "optional_type",
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
    )
}

_TYPE_BY_CLASS: Final[dict[type, CelType]] = {
    type(None): TYPES["null_type"],
    bool: TYPES["bool"],
    int: TYPES["int"],
    CelUint: TYPES["uint"],
    float: TYPES["double"],
    str: TYPES["string"],
    bytes: TYPES["bytes"],
    list: TYPES["list"],
    tuple: TYPES["list"],
    dict: TYPES["map"],
    CelTimestamp: TYPES["google.protobuf.Timestamp"],
    CelDuration: TYPES["google.protobuf.Duration"],
    datetime: TYPES["google.protobuf.Timestamp"],
    timedelta: TYPES["google.protobuf.Duration"],
    CelType: TYPES["type"],
    CelOptional: TYPES["optional_type"],
}


def type_of(value: Any) -> CelType:
    """The CEL type of a value; a value of no CEL type is an error."""
    found = _TYPE_BY_CLASS.get(type(value))
    if found is None:
        raise CelEvalError(
            ErrorKind.NO_MATCHING_OVERLOAD, f"a {type(value).__name__} is not a CEL value"
        )
    return found


def type_name(value: Any) -> str:
    """The CEL type name of a value, for messages (`int`, `string`, `timestamp`, ...)."""
    found = _TYPE_BY_CLASS.get(type(value))
    if found is None:
        return type(value).__name__
    return found.name.removeprefix("google.protobuf.").lower()


# -- timestamps and durations ----------------------------------------------------------------

_TIMESTAMP = re.compile(
    # (RFC 3339's offsets: hours 00-23, minutes 00-59)
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"([Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)"
)
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?(h|ms|us|µs|ns|m|s)")
_UNIT_NANOS: Final = {
    "h": 3600 * _NANOS,
    "m": 60 * _NANOS,
    "s": _NANOS,
    "ms": 1_000_000,
    "us": 1000,
    "µs": 1000,
    "ns": 1,
}


def parse_timestamp(text: str) -> CelTimestamp:
    """An RFC 3339 timestamp (`2024-05-01T12:00:00Z`, `...T12:00:00.123456789+02:00`), all
    nine fractional digits kept."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise CelEvalError(
            ErrorKind.INVALID_ARGUMENT,
            "the string is not an RFC 3339 timestamp (like 2024-05-01T12:00:00Z)",
        )
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        local = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC
        )
    except ValueError as exc:
        raise CelEvalError(ErrorKind.INVALID_ARGUMENT, f"invalid timestamp: {exc}") from None
    delta = local - _UNIX_EPOCH
    seconds = delta.days * 86_400 + delta.seconds - _offset_seconds(zone)
    nanos = int((fraction or "0").ljust(9, "0"))
    return check_timestamp(CelTimestamp(seconds * _NANOS + nanos))


def _offset_seconds(zone: str) -> int:
    if zone in ("Z", "z"):
        return 0
    sign = -1 if zone[0] == "-" else 1
    return sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)


def check_timestamp(value: CelTimestamp) -> CelTimestamp:
    """`value` if it lies in years 1..9999, else an overflow error."""
    if _MIN_TIMESTAMP_NANOS <= value.nanos <= _MAX_TIMESTAMP_NANOS:
        return value
    raise CelEvalError(ErrorKind.OVERFLOW, "timestamp out of range (years 1 to 9999)")


def parse_duration(text: str) -> CelDuration:
    """A Go-style duration, exact to the nanosecond: `1h30m`, `1.5s`, `-250ms`,
    `1.000000001s`, `0`. A fraction finer than a nanosecond is dropped (toward zero)."""
    body = text[1:] if text[:1] in ("-", "+") else text
    if body == "0":
        return ZERO_DURATION
    nanos = 0
    position = 0
    while position < len(body):
        match = _DURATION_PART.match(body, position)
        if match is None or not (match.group(1) or match.group(2)):
            break
        whole, fraction, unit = match.groups()
        if len(whole) > 20:  # past any duration in range (and Python's int-parsing limit)
            raise CelEvalError(ErrorKind.OVERFLOW, "duration out of range")
        fraction = fraction[:9] if fraction else fraction  # finer than a nanosecond: dropped
        scale = _UNIT_NANOS[unit]
        nanos += int(whole or "0") * scale
        if fraction:
            nanos += int(fraction) * scale // 10 ** len(fraction)
        position = match.end()
        if nanos > _MAX_DURATION_NANOS:
            raise CelEvalError(ErrorKind.OVERFLOW, "duration out of range")
    if not body or position != len(body):
        raise CelEvalError(
            ErrorKind.INVALID_ARGUMENT,
            "the string is not a duration (like 1h30m, 1.5s or 250ms)",
        )
    return check_duration(CelDuration(-nanos if text[:1] == "-" else nanos))


def check_duration(value: CelDuration) -> CelDuration:
    """`value` if it lies in CEL's duration range (+-10,000 years), else an overflow error."""
    if -_MAX_DURATION_NANOS <= value.nanos <= _MAX_DURATION_NANOS:
        return value
    raise CelEvalError(ErrorKind.OVERFLOW, "duration out of range")


def _fraction(nanos: int) -> str:
    # cel-go's RFC 3339 and duration text: up to nine digits, trailing zeros dropped.
    return f".{nanos:09d}".rstrip("0") if nanos else ""


def format_timestamp(value: CelTimestamp) -> str:
    """RFC 3339 in UTC with `Z`, fractional seconds (up to nine digits) only when present."""
    seconds, nanos = divmod(value.nanos, _NANOS)
    utc = _UNIX_EPOCH + timedelta(seconds=seconds)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}{_fraction(nanos)}Z"
    )


def format_duration(value: CelDuration) -> str:
    """Seconds with the fraction CEL shows: `90s`, `1.5s`, `-0.25s`, `1.000000001s`."""
    sign = "-" if value.nanos < 0 else ""
    whole, fraction = divmod(abs(value.nanos), _NANOS)
    return f"{sign}{whole}{_fraction(fraction)}s"


def unix_seconds(value: CelTimestamp) -> int:
    """Whole seconds since the Unix epoch (floor), what `int(timestamp)` gives."""
    return value.nanos // _NANOS


# -- printing --------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    """A value as CEL source text (`"prod"`, `1u`, `[1, 2]`, `timestamp("...")`), for
    explanations and messages."""
    kind = type(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is CelUint:
        return f"{int(value)}u"
    if kind is float:
        return _format_double(value)
    if kind is str:
        return _quote(value)
    if kind is bytes:
        return "b" + _quote(value.decode("latin-1"))
    if kind in (list, tuple):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    if kind is dict:
        pairs = (f"{format_value(k)}: {format_value(v)}" for k, v in value.items())
        return "{" + ", ".join(pairs) + "}"
    if kind is CelTimestamp or kind is CelDuration:
        return repr(value)
    if kind is datetime or kind is timedelta:
        return repr(cel_value(value))
    if kind is CelType:
        return str(value.name)
    if kind is CelOptional:
        return f"optional.of({format_value(value.value)})" if value.present else "optional.none()"
    if isinstance(value, CelEvalError):
        return f"<error: {value.message}>"
    if kind is Unbound:
        return f"<unbound {value.name}>"
    return repr(value)


def _format_double(value: float) -> str:
    if math.isnan(value):
        return 'double("NaN")'
    if math.isinf(value):
        return 'double("Infinity")' if value > 0 else 'double("-Infinity")'
    return repr(value)


def _quote(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    )
    return f'"{escaped}"'


def utf8(text: str, name: str) -> bytes:
    """`text` in UTF-8; a string holding a lone UTF-16 surrogate (only Python data can: JSON's
    `"\\ud800"` decodes to one) has none, and is an invalid_argument error."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise CelEvalError(
            ErrorKind.INVALID_ARGUMENT,
            f"{name}: the string holds a lone UTF-16 surrogate (U+D800 to U+DFFF), which is"
            " not Unicode text and has no UTF-8 form",
        ) from None
