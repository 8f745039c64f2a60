"""CEL values as plain Python data, and the one CEL error type.

Activations are JSON-like Python data and are used as they are, with no conversion per call:

    null -> None      bool -> bool     int -> int (int64)     uint -> CelUint
    double -> float   string -> str    bytes -> bytes         list -> list (or tuple)
    map -> dict       timestamp -> datetime (aware)           duration -> timedelta
    type -> CelType

`bool` is a subclass of `int` in Python but never a CEL int: every type test here is
`type(x) is int`, never `isinstance`.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone
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
]

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
UINT64_MAX: Final = 2**64 - 1
# CEL's duration range: +-10,000 years.
MAX_DURATION_SECONDS: Final = 315_576_000_000
_MAX_DURATION: Final = timedelta(seconds=MAX_DURATION_SECONDS)
_UNIX_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


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
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|us|µs|ns|m|s)")
_UNIT_SECONDS: Final = {
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,
    "ns": 1e-9,
}


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 timestamp (`2024-05-01T12:00:00Z`, `...T12:00:00.5+02:00`), in UTC."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise CelEvalError(
            ErrorKind.INVALID_ARGUMENT,
            "the string is not an RFC 3339 timestamp (like 2024-05-01T12:00:00Z)",
        )
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        offset = _parse_offset(zone)
        value = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0").ljust(9, "0")[:6]),
            tzinfo=offset,
        )
        return value.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise CelEvalError(ErrorKind.INVALID_ARGUMENT, f"invalid timestamp: {exc}") from None


def _parse_offset(zone: str) -> timezone:
    if zone in ("Z", "z"):
        return UTC
    sign = -1 if zone[0] == "-" else 1
    hours, minutes = int(zone[1:3]), int(zone[4:6])
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def parse_duration(text: str) -> timedelta:
    """A Go-style duration: `1h30m`, `1.5s`, `-250ms`, `0`."""
    body = text[1:] if text[:1] in ("-", "+") else text
    if body == "0":
        return timedelta(0)
    seconds = 0.0
    position = 0
    while position < len(body):
        match = _DURATION_PART.match(body, position)
        if match is None:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not body or position != len(body):
        raise CelEvalError(
            ErrorKind.INVALID_ARGUMENT,
            "the string is not a duration (like 1h30m, 1.5s or 250ms)",
        )
    if text[:1] == "-":
        seconds = -seconds
    return check_duration(_seconds_to_timedelta(seconds))


def _seconds_to_timedelta(seconds: float) -> timedelta:
    if not math.isfinite(seconds) or abs(seconds) > _MAX_DURATION.total_seconds():
        raise CelEvalError(ErrorKind.OVERFLOW, "duration out of range")
    return timedelta(seconds=seconds)


def check_duration(value: timedelta) -> timedelta:
    """`value` if it lies in CEL's duration range (+-10,000 years), else an overflow error."""
    if -_MAX_DURATION <= value <= _MAX_DURATION:
        return value
    raise CelEvalError(ErrorKind.OVERFLOW, "duration out of range")


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with `Z`, fractional seconds only when present."""
    utc = value.astimezone(UTC)
    text = (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    )
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def format_duration(value: timedelta) -> str:
    """Seconds with the fraction CEL shows: `90s`, `1.5s`, `-0.25s`."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    sign = "-" if micros < 0 else ""
    whole, fraction = divmod(abs(micros), 1_000_000)
    text = f"{sign}{whole}"
    if fraction:
        text += f".{fraction:06d}".rstrip("0")
    return text + "s"


def unix_seconds(value: datetime) -> int:
    """Whole seconds since the Unix epoch (floor), what `int(timestamp)` gives."""
    delta = value - _UNIX_EPOCH
    return delta.days * 86_400 + delta.seconds


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
    if kind is datetime:
        return f'timestamp("{format_timestamp(value)}")'
    if kind is timedelta:
        return f'duration("{format_duration(value)}")'
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
