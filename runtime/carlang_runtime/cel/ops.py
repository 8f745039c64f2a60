"""CEL's operators with their full semantics: the slow paths of generated code.

Compiled expressions test the common case inline (two strings compared, a key looked up in a
dict) and call these functions for everything else, so each function here handles every type
combination and raises `CelEvalError` for the ones CEL does not define. The rules follow
cel-python; where it is inconsistent they follow cel-spec (see docs/cel.md, "Differences").
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, NoReturn

from .values import (
    INT64_MAX,
    INT64_MIN,
    OPTIONAL_NONE,
    PYTHON_TIME_TYPES,
    UINT64_MAX,
    CelDuration,
    CelEvalError,
    CelOptional,
    CelTimestamp,
    CelType,
    CelUint,
    ErrorKind,
    Unbound,
    cel_value,
    check_duration,
    check_timestamp,
    type_name,
)

__all__ = [
    "no_overload",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "add",
    "sub",
    "mul",
    "div",
    "mod",
    "neg",
    "logical_not",
    "and_rest",
    "or_rest",
    "condition",
    "select",
    "index",
    "optional_select",
    "optional_index",
    "contains_item",
    "iterate",
    "has_field",
    "pairs",
    "int64",
    "uint64",
]

_NoneType = type(None)
_LISTS = (list, tuple)
_NUMBERS = frozenset({int, CelUint, float})
_ORDERED = frozenset({int, CelUint, float, str, bytes, bool, CelTimestamp, CelDuration})
# Types whose equality is Python's `==` once both sides have the same type.
_PLAIN = frozenset(
    {_NoneType, bool, int, CelUint, float, str, bytes, CelTimestamp, CelDuration, CelType}
)
# Python's datetime and timedelta: turned into CEL's exact time types where an operation meets
# one (only on the paths that would otherwise fail, so other values never pay for it).
_PYTHON_TIME = PYTHON_TIME_TYPES
_KEY_TYPES = frozenset({str, int, CelUint, bool})
_VALUES = _PLAIN | {list, tuple, dict, CelOptional}
_NESTED = frozenset({list, tuple, dict})


def no_overload(operator: str, *operands: Any) -> CelEvalError:
    """The error for an operator or function applied to types it is not defined on (or to a
    variable the activation does not have: then that is the error)."""
    for operand in operands:
        if type(operand) is Unbound:
            return operand.error()
    types = ", ".join(type_name(value) for value in operands)
    message = f"no matching overload for '{operator}' applied to ({types})"
    return CelEvalError(ErrorKind.NO_MATCHING_OVERLOAD, message)


def _raise_overload(operator: str, *operands: Any) -> NoReturn:
    raise no_overload(operator, *operands)


def int64(value: int) -> int:
    """`value` as a CEL int, or an overflow error outside int64."""
    if INT64_MIN <= value <= INT64_MAX:
        return value
    raise CelEvalError(ErrorKind.OVERFLOW, "int64 overflow")


def uint64(value: int) -> CelUint:
    """`value` as a CEL uint, or an overflow error outside uint64."""
    if 0 <= value <= UINT64_MAX:
        return CelUint(value)
    raise CelEvalError(ErrorKind.OVERFLOW, "uint64 overflow")


# -- equality and ordering -------------------------------------------------------------------


def eq(left: Any, right: Any) -> bool:
    """CEL `==`, heterogeneous as cel-spec defines it: numbers compare by value across int,
    uint and double (an int and a double as doubles, as cel-go and cel-cpp do), lists and maps
    element by element, and values of different types are unequal (`1 == "1"`, `dyn(1) ==
    null` and `true == 1` are false). Only a missing variable or a value of no CEL type is an
    error."""
    left_type, right_type = type(left), type(right)
    if left_type in _NUMBERS and right_type in _NUMBERS:
        return _number_eq(left, right)
    if left_type in _PYTHON_TIME or right_type in _PYTHON_TIME:
        return eq(cel_value(left), cel_value(right))
    if left_type is right_type or (left_type in _LISTS and right_type in _LISTS):
        if left_type in _PLAIN:
            return bool(left == right)
        if left_type in _LISTS:
            return _list_eq(left, right)
        if left_type is dict:
            return _map_eq(left, right)
        if left_type is CelOptional:
            # cel-go: two nones are equal, two values are equal when their values are.
            if left.present is not right.present:
                return False
            return not left.present or eq(left.value, right.value)
        _raise_overload("==", left, right)
    if left_type not in _VALUES or right_type not in _VALUES:
        _raise_overload("==", left, right)  # a missing variable, or not CEL data
    return False


def _number_eq(left: Any, right: Any) -> bool:
    if type(left) is float or type(right) is float:
        return float(left) == float(right)
    return bool(left == right)


def ne(left: Any, right: Any) -> bool:
    """CEL `!=`: the negation of `==`, with the same errors."""
    return not eq(left, right)


def _list_eq(left: Any, right: Any, memo: dict[Any, Any] | None = None) -> bool:
    if len(left) != len(right):
        return False
    return _all_equal(zip(left, right, strict=True), memo)


def _all_equal(pairs: Iterable[tuple[Any, Any]], memo: dict[Any, Any] | None = None) -> bool:
    # Element comparisons combine like `&&`: one false decides, errors count only otherwise.
    error: CelEvalError | None = None
    for a, b in pairs:
        try:
            if type(a) not in _NESTED or type(b) not in _NESTED:
                if not eq(a, b):
                    return False
            else:
                if memo is None:
                    memo = {}
                if not _nested_eq(a, b, memo):
                    return False
        except CelEvalError as exc:
            error = error or exc
    if error is not None:
        raise error
    return True


def _nested_eq(left: Any, right: Any, memo: dict[Any, Any]) -> bool:
    """`==` of two lists or maps inside one comparison. A pair met again is answered from
    `memo` (by identity: both are alive until the comparison ends), so a list built of one
    list many times, nested, compares in the time of its distinct lists rather than of the
    tree they unfold to (`c == c`, c a hundred of b, b a thousand of a: 10**8 comparisons)."""
    key = (id(left), id(right))
    known = memo.get(key)
    if known is None:
        try:
            if type(left) is dict and type(right) is dict:
                known = _map_eq(left, right, memo)
            elif type(left) is not dict and type(right) is not dict:
                known = _list_eq(left, right, memo)
            else:
                known = False  # a list and a map
        except CelEvalError as exc:
            known = exc
        memo[key] = known
    if type(known) is bool:
        return known
    raise known


def _typed_keys(mapping: dict[Any, Any]) -> set[tuple[type, Any]]:
    # Python treats 1, 1u and true as one key; CEL does not.
    return {(type(key), key) for key in mapping}


def _map_eq(
    left: dict[Any, Any], right: dict[Any, Any], memo: dict[Any, Any] | None = None
) -> bool:
    # Keys compare by CEL equality too: `{1: 1.0} == {1u: 1}`.
    if len(left) != len(right):
        return False
    if _typed_keys(left) == _typed_keys(right):
        return _all_equal(((value, right[key]) for key, value in left.items()), memo)
    pairs = []
    for key, value in left.items():
        other = _lookup(right, key)
        if other is _MISSING:
            return False
        pairs.append((value, other))
    return _all_equal(pairs, memo)


def _ordered(operator: str, left: Any, right: Any) -> tuple[Any, Any]:
    # One ordered type, or two numbers: int, uint and double order by value (cel-spec). The
    # operands as they are compared: an int or uint compared with a double is compared as a
    # double (cel-spec's conformance tests: `dyn(9223372036854775807) < 9223372036854775808.0`
    # is false).
    left_type, right_type = type(left), type(right)
    if left_type is right_type:
        if left_type is CelTimestamp or left_type is CelDuration:
            return left.nanos, right.nanos  # ints compare in C, not through __lt__
        if left_type in _ORDERED:
            return left, right
    elif left_type in _NUMBERS and right_type in _NUMBERS:
        if left_type is float or right_type is float:
            return float(left), float(right)
        return left, right
    if left_type in _PYTHON_TIME or right_type in _PYTHON_TIME:
        return _ordered(operator, cel_value(left), cel_value(right))
    _raise_overload(operator, left, right)


def lt(left: Any, right: Any) -> bool:
    """CEL `<` on two values of one ordered type, or two numbers."""
    left, right = _ordered("<", left, right)
    return bool(left < right)


def le(left: Any, right: Any) -> bool:
    """CEL `<=` on two values of one ordered type, or two numbers."""
    left, right = _ordered("<=", left, right)
    return bool(left <= right)


def gt(left: Any, right: Any) -> bool:
    """CEL `>` on two values of one ordered type, or two numbers."""
    left, right = _ordered(">", left, right)
    return bool(left > right)


def ge(left: Any, right: Any) -> bool:
    """CEL `>=` on two values of one ordered type, or two numbers."""
    left, right = _ordered(">=", left, right)
    return bool(left >= right)


# -- arithmetic ------------------------------------------------------------------------------


def add(left: Any, right: Any) -> Any:
    """CEL `+`: numbers of one type, concatenation of strings, bytes and lists, and
    timestamp/duration arithmetic."""
    left_type, right_type = type(left), type(right)
    if left_type is right_type:
        if left_type is int:
            return int64(left + right)
        if left_type is CelUint:
            return uint64(left + right)
        if left_type in (float, str, bytes):
            return left + right
        if left_type is CelDuration:
            return check_duration(CelDuration(left.nanos + right.nanos))
    if left_type in _LISTS and right_type in _LISTS:
        return [*left, *right]
    if left_type is CelTimestamp and right_type is CelDuration:
        return check_timestamp(CelTimestamp(left.nanos + right.nanos))
    if left_type is CelDuration and right_type is CelTimestamp:
        return check_timestamp(CelTimestamp(left.nanos + right.nanos))
    if left_type in _PYTHON_TIME or right_type in _PYTHON_TIME:
        return add(cel_value(left), cel_value(right))
    _raise_overload("+", left, right)


def _difference(left: CelTimestamp, right: CelTimestamp) -> CelDuration:
    # Timestamp differences are durations of int64 nanoseconds in cel-go and cel-cpp (cel-spec's
    # conformance test timestamps/sub_time_duration_over): about 292 years either way.
    difference = left.nanos - right.nanos
    if INT64_MIN <= difference <= INT64_MAX:
        return CelDuration(difference)
    raise CelEvalError(ErrorKind.OVERFLOW, "the timestamp difference is out of the duration range")


def sub(left: Any, right: Any) -> Any:
    """CEL `-`: numbers of one type, timestamp - timestamp, timestamp/duration - duration."""
    left_type, right_type = type(left), type(right)
    if left_type is right_type:
        if left_type is int:
            return int64(left - right)
        if left_type is CelUint:
            return uint64(left - right)
        if left_type is float:
            return left - right
        if left_type is CelTimestamp:
            return _difference(left, right)
        if left_type is CelDuration:
            return check_duration(CelDuration(left.nanos - right.nanos))
    if left_type is CelTimestamp and right_type is CelDuration:
        return check_timestamp(CelTimestamp(left.nanos - right.nanos))
    if left_type in _PYTHON_TIME or right_type in _PYTHON_TIME:
        return sub(cel_value(left), cel_value(right))
    _raise_overload("-", left, right)


def mul(left: Any, right: Any) -> Any:
    """CEL `*` on two numbers of one type."""
    left_type = type(left)
    if left_type is type(right):
        if left_type is int:
            return int64(left * right)
        if left_type is CelUint:
            return uint64(left * right)
        if left_type is float:
            return left * right
    _raise_overload("*", left, right)


def _truncated_quotient(left: int, right: int) -> int:
    # CEL (like Go) rounds toward zero; Python's // rounds down.
    quotient = abs(left) // abs(right)
    return quotient if (left < 0) == (right < 0) else -quotient


def div(left: Any, right: Any) -> Any:
    """CEL `/`: integer division truncates and fails on zero; double division follows IEEE."""
    left_type = type(left)
    if left_type is type(right):
        if left_type is int or left_type is CelUint:
            if right == 0:
                raise CelEvalError(ErrorKind.DIVISION_BY_ZERO, "division by zero")
            if left_type is CelUint:
                return CelUint(left // right)
            return int64(_truncated_quotient(left, right))
        if left_type is float:
            if right == 0.0:
                if left == 0.0 or math.isnan(left):
                    return math.nan
                return math.copysign(math.inf, left) * math.copysign(1.0, right)
            return left / right
    _raise_overload("/", left, right)


def mod(left: Any, right: Any) -> Any:
    """CEL `%` on integers: the remainder takes the sign of the dividend."""
    left_type = type(left)
    if left_type is type(right) and (left_type is int or left_type is CelUint):
        if right == 0:
            raise CelEvalError(ErrorKind.DIVISION_BY_ZERO, "modulus by zero")
        if left_type is CelUint:
            return CelUint(left % right)
        return left - right * _truncated_quotient(left, right)
    _raise_overload("%", left, right)


def neg(operand: Any) -> Any:
    """CEL unary `-` on an int, a double or a duration."""
    if type(operand) is int:
        return int64(-operand)
    if type(operand) is float:
        return -operand
    if type(operand) is CelDuration:
        return check_duration(CelDuration(-operand.nanos))
    if type(operand) in _PYTHON_TIME:
        return neg(cel_value(operand))
    _raise_overload("-", operand)


# -- logic -----------------------------------------------------------------------------------


def logical_not(operand: Any) -> bool:
    """CEL `!` on a bool."""
    if type(operand) is bool:
        return not operand
    _raise_overload("!", operand)


def and_rest(*operands: Any) -> bool:
    """`&&` once no operand is false: true if all are true, else the first error (an operand
    that is an error value) or a no-overload error for a non-bool."""
    return _combine("&&", operands, True)


def or_rest(*operands: Any) -> bool:
    """`||` once no operand is true: false if all are false, else the first error."""
    return _combine("||", operands, False)


def _combine(operator: str, operands: tuple[Any, ...], unit: bool) -> bool:
    for operand in operands:
        if isinstance(operand, CelEvalError):
            raise operand
    for operand in operands:
        if operand is not unit:
            _raise_overload(operator, *operands)
    return unit


def condition(value: Any) -> NoReturn:
    """The error for a `?:` whose condition is not a bool."""
    raise no_overload("?:", value)


# -- fields, indexes and membership ----------------------------------------------------------


def select(operand: Any, field: str) -> Any:
    """`operand.field`: a map's value under the string key `field`."""
    if type(operand) is dict:
        try:
            return operand[field]
        except KeyError:
            raise CelEvalError(ErrorKind.NO_SUCH_FIELD, f"no such key: '{field}'") from None
    if type(operand) is CelOptional:
        # cel-go: selecting on an optional tests presence: `a.?b.c` is none without a `c`.
        return optional_select(operand, field)
    raise no_overload(f".{field}", operand)


def optional_select(operand: Any, field: str) -> CelOptional:
    """`operand.?field` (cel-go's optional library): the field's value as an optional, none
    when the map has no such key; on an optional, none stays none."""
    if type(operand) is CelOptional:
        if not operand.present:
            return operand
        operand = operand.value
    if type(operand) is dict:
        return CelOptional(operand[field]) if field in operand else OPTIONAL_NONE
    raise no_overload(f".?{field}", operand)


def optional_index(container: Any, key: Any) -> CelOptional:
    """`container[?key]`: the element or value as an optional, none when the list has no such
    position or the map no such key; on an optional, none stays none."""
    if type(container) is CelOptional:
        if not container.present:
            return container
        container = container.value
    container_type, key_type = type(container), type(key)
    if container_type in _LISTS:
        if key_type is not int and key_type is not CelUint:
            _raise_overload("[?]", container, key)
        return CelOptional(container[key]) if 0 <= key < len(container) else OPTIONAL_NONE
    if container_type is dict:
        if key_type not in _KEY_TYPES and key_type is not float:
            _raise_overload("[?]", container, key)
        value = _lookup(container, key)
        return OPTIONAL_NONE if value is _MISSING else CelOptional(value)
    _raise_overload("[?]", container, key)


_MISSING = object()


def _lookup(mapping: dict[Any, Any], key: Any) -> Any:
    if type(key) is str:
        return mapping.get(key, _MISSING)
    # A bool key is only ever a bool; a number finds a key of any numeric type with its
    # value (cel-spec: `{1: "a"}[1u]`). Python would also let 1 find true.
    numeric = type(key) in _NUMBERS
    for stored, value in mapping.items():
        if type(stored) is type(key) or (numeric and type(stored) in _NUMBERS):
            if stored == key:
                return value
    return _MISSING


def index(container: Any, key: Any, literal: bool = False) -> Any:
    """`container[key]`: a list element by int or uint position, a map value by key. A missing
    key is named only when it is a `literal` of the expression (data may be a secret)."""
    container_type, key_type = type(container), type(key)
    if container_type in _LISTS:
        if key_type is not int and key_type is not CelUint:
            _raise_overload("[]", container, key)
        if 0 <= key < len(container):
            return container[key]
        raise CelEvalError(
            ErrorKind.INVALID_ARGUMENT, f"index out of range for a list of {len(container)}"
        )
    if container_type is dict:
        if key_type not in _KEY_TYPES and key_type is not float:
            _raise_overload("[]", container, key)
        value = _lookup(container, key)
        if value is _MISSING:
            shown = f": '{key}'" if literal and key_type is str else f" (a {type_name(key)} key)"
            raise CelEvalError(ErrorKind.NO_SUCH_KEY, f"no such key{shown}")
        return value
    if container_type is CelOptional:
        return optional_index(container, key)
    _raise_overload("[]", container, key)


def contains_item(item: Any, container: Any) -> bool:
    """`item in container`: membership by CEL equality among a list's elements or a map's
    keys: true if one equals the item (even when comparing others failed), an error if none
    does and a comparison failed, else false."""
    container_type = type(container)
    if container_type is dict and type(item) is str and item in container:
        return True
    if type(item) is Unbound:
        raise item.error()  # even when there is nothing to compare it with
    if container_type in _LISTS or container_type is dict:
        error: CelEvalError | None = None
        for element in container:
            try:
                if eq(item, element):
                    return True
            except CelEvalError as exc:
                error = exc
        if error is not None:
            raise error
        return False
    _raise_overload("in", item, container)


def pairs(range_value: Any, macro: str) -> Iterable[tuple[Any, Any]]:
    """What a two-variable comprehension ranges over: a list's (index, element) pairs or a
    map's (key, value) pairs."""
    if type(range_value) in _LISTS:
        return list(enumerate(range_value))
    if type(range_value) is dict:
        return list(range_value.items())
    raise no_overload(macro, range_value)


def has_field(operand: Any, field: str) -> bool:
    """`has(operand.field)` on what is not a map: an error (a missing variable says so)."""
    raise no_overload(f"has(.{field})", operand)


def iterate(range_value: Any, macro: str) -> Iterable[Any]:
    """What a macro ranges over: a list's elements or a map's keys."""
    if type(range_value) in _LISTS:
        return range_value  # type: ignore[no-any-return]
    if type(range_value) is dict:
        return list(range_value)
    raise no_overload(macro, range_value)
