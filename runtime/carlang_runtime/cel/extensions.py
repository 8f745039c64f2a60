"""cel-go's standard extension libraries: strings, math, lists, sets, optionals and encoders
(base64), with cel-go's names, signatures and error cases (github.com/google/cel-go/ext, and
cel-go's optional library, cel.OptionalTypes).

Each function is one `Function` in `EXTENSIONS`, merged into the standard table: the checker
knows its signatures, the cost estimate its weight, and the code generator calls it like any
built-in. Namespaced functions (`math.greatest`, `sets.contains`, `base64.encode`,
`strings.quote`, `lists.range`) are resolved by the tree builder, so `math` here is not a
variable.

Strings are indexed by code point, as in cel-go.
"""

from __future__ import annotations

import base64
import binascii
import math
import posixpath
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, Final

from . import ops
from .signatures import Function
from .signatures import global_overload as _g
from .signatures import method_overload as _m
from .values import (
    EPOCH,
    INT64_MAX,
    OPTIONAL_NONE,
    PYTHON_TIME_TYPES,
    UINT64_MAX,
    ZERO_DURATION,
    CelDuration,
    CelEvalError,
    CelOptional,
    CelTimestamp,
    CelType,
    CelUint,
    ErrorKind,
    cel_value,
    format_duration,
    format_timestamp,
    type_name,
    utf8,
)

__all__ = ["EXTENSIONS", "NAMESPACES", "MAX_PRECISION"]

#: The prefixes of namespaced functions: `math.greatest(...)` is a call of `math.greatest`.
NAMESPACES: Final = frozenset({"math", "sets", "base64", "strings", "lists", "optional", "path"})

_LISTS: Final = (list, tuple)
_NUMBERS: Final = (int, CelUint, float)


def _fail(message: str) -> CelEvalError:
    return CelEvalError(ErrorKind.INVALID_ARGUMENT, message)


def _check(name: str, values: Sequence[Any], *kinds: Any) -> None:
    for value, kind in zip(values, kinds, strict=True):
        if kind is int:
            if type(value) is not int:
                raise ops.no_overload(name, *values)
        elif type(value) not in (kind if isinstance(kind, tuple) else (kind,)):
            raise ops.no_overload(name, *values)


# -- strings ----------------------------------------------------------------------------------


def char_at(text: Any, index: Any) -> str:
    """`s.charAt(i)`: the code point at `i` ("" at the end)."""
    _check("charAt", (text, index), str, int)
    if not 0 <= index <= len(text):
        raise _fail(f"charAt: index out of range for a string of {len(text)}")
    return str(text[index : index + 1])


def index_of(text: Any, part: Any, offset: Any = 0) -> int:
    """`s.indexOf(t[, offset])`: the first code point index of `t` at or after `offset`, -1 if
    none."""
    _check("indexOf", (text, part, offset), str, str, int)
    if not 0 <= offset <= len(text):
        raise _fail(f"indexOf: offset out of range for a string of {len(text)}")
    return int(text.find(part, offset))


def last_index_of(text: Any, part: Any, offset: Any = None) -> int:
    """`s.lastIndexOf(t[, offset])`: the last index of `t` starting at or before `offset`."""
    if offset is None:
        offset = len(text) if type(text) is str else 0
    _check("lastIndexOf", (text, part, offset), str, str, int)
    if not 0 <= offset <= len(text):
        raise _fail(f"lastIndexOf: offset out of range for a string of {len(text)}")
    return int(text.rfind(part, 0, offset + len(part)))


_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ASCII_UPPER: Final = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def lower_ascii(text: Any) -> str:
    """`s.lowerAscii()`: ASCII letters lowered, others kept."""
    _check("lowerAscii", (text,), str)
    return str(text.translate(_ASCII_LOWER))


def upper_ascii(text: Any) -> str:
    """`s.upperAscii()`: ASCII letters raised, others kept."""
    _check("upperAscii", (text,), str)
    return str(text.translate(_ASCII_UPPER))


def replace(text: Any, old: Any, new: Any, count: Any = -1) -> str:
    """`s.replace(old, new[, n])`: the first `n` occurrences (all if `n` < 0)."""
    _check("replace", (text, old, new, count), str, str, str, int)
    return str(text.replace(old, new, count if count >= 0 else -1))


def _replace_size(text: Any, old: Any, new: Any, count: Any = -1) -> int:
    if type(text) is not str or type(old) is not str or type(new) is not str:
        return 0
    found = text.count(old) if old else len(text) + 1
    if type(count) is int and count >= 0:
        found = min(found, count)
    return len(text) + found * len(new)


def split(text: Any, separator: Any, limit: Any = -1) -> list[str]:
    """`s.split(sep[, n])`: as Go's strings.SplitN (n == 0: none; n < 0: all)."""
    _check("split", (text, separator, limit), str, str, int)
    if limit == 0:
        return []
    if separator == "":
        parts = list(text)
        if 0 < limit < len(parts):
            parts = [*parts[: limit - 1], "".join(parts[limit - 1 :])]
        return parts
    return list(text.split(separator, limit - 1 if limit > 0 else -1))


def _split_size(text: Any, separator: Any, limit: Any = -1) -> int:
    # The parts `split` makes, counted before it makes them: a list of a million one-character
    # strings is some 60 MB, from a 3 MB string.
    if type(text) is not str or type(separator) is not str or type(limit) is not int:
        return 0
    parts = len(text) if separator == "" else text.count(separator) + 1
    return min(parts, limit) if limit >= 0 else parts


def substring(text: Any, start: Any, end: Any = None) -> str:
    """`s.substring(start[, end])`: code points `start` up to `end`."""
    if end is None:
        end = len(text) if type(text) is str else 0
    _check("substring", (text, start, end), str, int, int)
    if not 0 <= start <= end <= len(text):
        raise _fail(f"substring: range out of bounds for a string of {len(text)}")
    return str(text[start:end])


# Go's unicode.IsSpace: the White_Space property (the C0 and Latin-1 spaces, and categories
# Zs, Zl and Zp). Written out rather than found by scanning code points at import, which cost
# every start-up ~2 ms; a test checks it against the scan.
_WHITESPACE: Final = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)


def trim(text: Any) -> str:
    """`s.trim()`: leading and trailing white space (Unicode's) removed."""
    _check("trim", (text,), str)
    return str(text.strip(_WHITESPACE))


def join(items: Any, separator: Any = "") -> str:
    """`list.join([sep])`: a list of strings joined."""
    _check("join", (items, separator), _LISTS, str)
    if any(type(item) is not str for item in items):
        raise ops.no_overload("join", items, separator)
    return str(separator.join(items))


def _join_size(items: Any, separator: Any = "") -> int:
    if type(items) not in _LISTS:
        return 0
    gap = len(separator) if type(separator) is str else 0
    return sum(len(item) + gap for item in items if type(item) is str)


_QUOTED: Final = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def quote(text: Any) -> str:
    """`strings.quote(s)`: `s` as a double-quoted CEL string literal."""
    _check("strings.quote", (text,), str)
    body = "".join(_QUOTED.get(c, "\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c) for c in text)
    return f'"{body}"'


def reverse(value: Any) -> Any:
    """`s.reverse()` (code points) or `list.reverse()`."""
    if type(value) is str:
        return value[::-1]
    if type(value) in _LISTS:
        return list(value)[::-1]
    raise ops.no_overload("reverse", value)


#: One clause of a format string: `%`, an optional precision (`.2`) and the verb (empty at the
#: end of the string, an error).
_CLAUSE: Final = re.compile(r"%(?:\.([0-9]*))?(.?)", re.DOTALL)
#: The largest precision `%f` and `%e` take: as many decimals as any double has (the exact
#: expansion of the smallest, 2**-1074, has 1,074); past it only zeros would follow. A larger
#: one is an error, as in cel-go, rather than a string of up to a gigabyte of zeros.
MAX_PRECISION: Final = 1074


def _precision(digits: str | None) -> int | None:
    """A clause's precision (None: none written), or an error past `MAX_PRECISION`."""
    if digits is None:
        return None
    if _too_precise(digits):
        raise _fail(
            f"format: the precision is above {MAX_PRECISION}, more decimals than any double has"
        )
    return int(digits or "0")


def _too_precise(digits: str) -> bool:
    # (Thousands of digits are more than Python's int() reads: compared by their count.)
    return len(digits.lstrip("0")) > 4 or int(digits or "0") > MAX_PRECISION


_Clauses = tuple[tuple[str, str | None, str | None], ...]


def _clauses(template: str) -> _Clauses:
    """`template` cut into (text before a clause, its precision's digits or None, its verb:
    "" when the string ends inside it), and last (the rest, None, None). A template is mostly
    a constant of the condition: a short one is cut once (`format` and its charge both read
    it)."""
    return _cut_short(template) if len(template) <= 200 else _cut(template)


def _cut(template: str) -> _Clauses:
    parts: list[tuple[str, str | None, str | None]] = []
    position = 0
    for clause in _CLAUSE.finditer(template):
        digits, verb = clause.groups()
        parts.append((template[position : clause.start()], digits, verb))
        position = clause.end()
    parts.append((template[position:], None, None))
    return tuple(parts)


_cut_short: Final = lru_cache(maxsize=256)(_cut)


def format_string(template: Any, args: Any) -> str:
    """`s.format(list)`: `%s`, `%d`, `%f`, `%e`, `%b`, `%o`, `%x`, `%X` (with a precision, as
    `%.2f`, at most `MAX_PRECISION`) and `%%`, each taking the next element of the list."""
    _check("format", (template, args), str, _LISTS)
    out: list[str] = []
    used = 0
    for text, digits, verb in _clauses(template):
        out.append(text)
        if verb is None:
            break
        if not verb:
            raise _fail("format: the string ends inside a formatting clause")
        precision = _precision(digits)
        if verb == "%":
            out.append("%")
            continue
        if used >= len(args):
            raise _fail(f"format: index {used} out of range: too few arguments")
        out.append(_format_verb(verb, args[used], precision))
        used += 1
    return "".join(out)


def _format_verb(verb: str, value: Any, precision: int | None) -> str:
    kind = type(value)
    if verb == "s":
        return _as_text(value)
    if verb == "d":
        if kind in (int, CelUint):
            return str(int(value))
        if kind is float and not math.isfinite(value):
            return _as_text(value)
    elif verb in "fe":
        if kind in _NUMBERS and kind is not bool:
            number = float(value)
            if not math.isfinite(number):
                return _as_text(number)
            return f"{number:.{6 if precision is None else precision}{verb}}"
    elif verb in "boxX":
        if kind is bool and verb == "b":
            return "1" if value else "0"
        if kind in (int, CelUint):
            sign = "-" if value < 0 else ""
            return sign + format(abs(int(value)), verb)
        if kind in (str, bytes) and verb in "xX":
            data = utf8(value, "format") if kind is str else value
            text = data.hex()
            return str(text.upper() if verb == "X" else text)
    else:
        raise _fail(f"format: unknown verb %{verb}")
    raise _fail(f"format: %{verb} does not take a {type_name(value)}")


def _as_text(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return str(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind in (int, CelUint):
        return str(int(value))
    if kind is float:
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value) if value != int(value) or abs(value) >= 1e21 else str(int(value))
    if kind is bytes:
        return str(value.decode("utf-8", "replace"))
    if kind is CelTimestamp:
        return format_timestamp(value)
    if kind is CelDuration:
        return format_duration(value)
    if kind in PYTHON_TIME_TYPES:
        return _as_text(cel_value(value))
    if kind is CelType:
        return str(value.name)
    if kind in _LISTS:
        return "[" + ", ".join(_as_text(item) for item in value) + "]"
    if kind is dict:
        pairs = sorted((_as_text(k), _as_text(v)) for k, v in value.items())
        return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    raise ops.no_overload("format", value)


def _format_size(template: Any, args: Any) -> int:
    """A bound on the length of `template.format(args)`, charged before it is built: the
    template's text, and each clause's output (a precision makes `%f` that much longer, `%s`
    of a list the length of all it holds)."""
    if type(template) is not str or type(args) not in _LISTS:
        return 0
    size = len(template)
    used = 0
    sizes: dict[int, int] = {}
    for _text, digits, verb in _clauses(template):
        if not verb or verb == "%" or used >= len(args):
            continue
        value = args[used]
        used += 1
        if verb == "s":
            size += _text_size(value, sizes)
        elif verb in "fe":
            if digits is not None and _too_precise(digits):
                return size  # an error, before anything is built
            precision = 6 if digits is None else int(digits or "0")
            size += precision + _whole_digits(value) + 8
        elif verb in "xX" and type(value) in (str, bytes):
            size += 2 * (len(value) if type(value) is bytes or value.isascii() else 4 * len(value))
        else:
            size += 66  # %d, %b, %o, %x of a 64-bit number
    return size


def _whole_digits(value: Any) -> int:
    """The digits before the point of a number printed with `%f` (bounded)."""
    if type(value) not in _NUMBERS:
        return 0
    magnitude = abs(float(value))
    return int(math.log10(magnitude)) + 1 if 1.0 <= magnitude < math.inf else 1


def _text_size(value: Any, sizes: dict[int, int]) -> int:
    """A bound on the length of `_as_text(value)`; a list or map met again (a list built of
    one list many times) is counted from `sizes`, so this takes the time of the distinct
    values, not of the text they would print."""
    kind = type(value)
    if kind is str or kind is bytes:
        return len(value)
    if kind in _LISTS or kind is dict:
        known = sizes.get(id(value))
        if known is not None:
            return known
        items = list(value.items()) if kind is dict else value
        total = 2 + 4 * len(items)  # brackets, separators and (in a map) ": "
        for item in items:
            if kind is dict:
                total += _text_size(item[0], sizes) + _text_size(item[1], sizes)
            else:
                total += _text_size(item, sizes)
        sizes[id(value)] = total
        return total
    if kind is CelType:
        return len(value.name)
    return 32  # a number, null, bool, timestamp or duration


# -- math -------------------------------------------------------------------------------------


def _extreme(name: str, args: tuple[Any, ...], pick: Callable[[Any, Any], bool]) -> Any:
    values = list(args[0]) if len(args) == 1 and type(args[0]) in _LISTS else list(args)
    if not values:
        raise _fail(f"{name}: no arguments")
    best = values[0]
    for value in values:
        if type(value) not in _NUMBERS:
            raise ops.no_overload(name, *values)
        if pick(value, best):
            best = value
    return best


def greatest(*args: Any) -> Any:
    """`math.greatest(a, ...)` or `math.greatest(list)`: the largest number, with its type."""
    return _extreme("math.greatest", args, ops.gt)


def least(*args: Any) -> Any:
    """`math.least(a, ...)` or `math.least(list)`: the smallest number, with its type."""
    return _extreme("math.least", args, ops.lt)


def _double_function(name: str, apply: Callable[[float], float]) -> Callable[[Any], float]:
    def run(value: Any) -> float:
        _check(name, (value,), float)
        if not math.isfinite(value):
            return float(value)
        return float(apply(value))

    run.__name__ = name.replace(".", "_")
    run.__doc__ = f"`{name}(double)`."
    return run


def _round_half_away(value: float) -> float:
    return math.copysign(math.floor(abs(value) + 0.5), value)


def absolute(value: Any) -> Any:
    """`math.abs(x)` for an int, uint or double (abs of the smallest int overflows)."""
    kind = type(value)
    if kind is int:
        return ops.int64(abs(value))
    if kind is CelUint:
        return value
    if kind is float:
        return abs(value)
    raise ops.no_overload("math.abs", value)


def sign(value: Any) -> Any:
    """`math.sign(x)`: -1, 0 or 1 in the type of `x` (NaN for NaN)."""
    kind = type(value)
    if kind is int:
        return (value > 0) - (value < 0)
    if kind is CelUint:
        return CelUint(1 if value else 0)
    if kind is float:
        if math.isnan(value):
            return value
        return float((value > 0) - (value < 0))
    raise ops.no_overload("math.sign", value)


def _double_test(name: str, test: Callable[[float], bool]) -> Callable[[Any], bool]:
    def run(value: Any) -> bool:
        _check(name, (value,), float)
        return test(value)

    run.__name__ = name.replace(".", "_")
    run.__doc__ = f"`{name}(double)`."
    return run


def _bits(name: str, apply: Callable[[int, int], int]) -> Callable[[Any, Any], Any]:
    def run(left: Any, right: Any) -> Any:
        if type(left) is type(right) and type(left) in (int, CelUint):
            result = apply(int(left), int(right))
            return CelUint(result) if type(left) is CelUint else result
        raise ops.no_overload(name, left, right)

    run.__name__ = name.replace(".", "_")
    run.__doc__ = f"`{name}(a, b)` on two ints or two uints."
    return run


def bit_not(value: Any) -> Any:
    """`math.bitNot(x)`: the bits of an int or uint flipped."""
    if type(value) is int:
        return ~value
    if type(value) is CelUint:
        return CelUint(~value & UINT64_MAX)
    raise ops.no_overload("math.bitNot", value)


def _shift(name: str, left_shift: bool) -> Callable[[Any, Any], Any]:
    def run(value: Any, bits: Any) -> Any:
        if type(value) not in (int, CelUint) or type(bits) is not int:
            raise ops.no_overload(name, value, bits)
        if bits < 0:
            raise _fail(f"{name}: a negative shift")
        unsigned = int(value) & UINT64_MAX  # the 64 bits, as cel-go shifts them
        shifted = 0 if bits > 63 else (unsigned << bits if left_shift else unsigned >> bits)
        shifted &= UINT64_MAX
        if type(value) is CelUint:
            return CelUint(shifted)
        return shifted - (1 << 64) if shifted > INT64_MAX else shifted

    run.__name__ = name.replace(".", "_")
    run.__doc__ = f"`{name}(x, bits)`: a logical shift of the 64 bits of an int or uint."
    return run


# -- lists and sets ---------------------------------------------------------------------------


def list_slice(items: Any, start: Any, end: Any) -> list[Any]:
    """`list.slice(start, end)`: elements `start` up to `end`."""
    _check("slice", (items, start, end), _LISTS, int, int)
    if not 0 <= start <= end <= len(items):
        raise _fail(f"slice: range out of bounds for a list of {len(items)}")
    return list(items[start:end])


def flatten(items: Any, depth: Any = 1) -> list[Any]:
    """`list.flatten([depth])`: nested lists spliced in, `depth` levels deep (1 by default)."""
    _check("flatten", (items, depth), _LISTS, int)
    if depth < 0:
        raise _fail("flatten: a negative depth")
    result: list[Any] = []
    for item in items:
        if type(item) in _LISTS and depth > 0:
            result.extend(flatten(item, depth - 1))
        else:
            result.append(item)
    return result


def _flatten_size(items: Any, depth: Any = 1) -> int:
    """The length of `items.flatten(depth)`, charged before it is built: every list met
    within `depth` levels spliced in, however deep (a list of one list a thousand times, in a
    list of it a thousand times, flattens to a million elements). A list met again at the same
    depth is counted once, so this takes the time of the distinct lists, not of the result."""
    if type(items) not in _LISTS or type(depth) is not int or depth < 0:
        return 0
    sizes: dict[tuple[int, int], int] = {}

    def size(values: Any, levels: int) -> int:
        known = sizes.get((id(values), levels))
        if known is None:
            known = 0
            for value in values:
                known += size(value, levels - 1) if levels and type(value) in _LISTS else 1
            sizes[(id(values), levels)] = known
        return known

    return size(items, depth)


def distinct(items: Any) -> list[Any]:
    """`list.distinct()`: the first of each set of equal elements (CEL equality: `1`, `1u`
    and `1.0` are one), in order. Elements are found again by hashing a key that is equal
    exactly when CEL equality says so; only what has no such key (see `_distinct_key`) is
    compared with the elements kept, one by one, as cel-go compares them all."""
    _check("distinct", (items,), _LISTS)
    result: list[Any] = []
    seen: set[Any] = set()
    unkeyed: list[Any] = []  # kept elements without a key: compared one by one
    for item in items:
        key = _distinct_key(item)
        if key is None:
            if any(ops.eq(item, kept) for kept in result):
                continue
            unkeyed.append(item)
        elif key in seen or (unkeyed and any(ops.eq(item, kept) for kept in unkeyed)):
            continue
        else:
            seen.add(key)
        result.append(item)
    return result


# Values whose Python equality within their own type is CEL's, and never equal to a value of
# another of these types or to a number: their key is the value itself.
_SELF_KEYED: Final = frozenset({str, bytes, CelTimestamp, CelDuration, CelType})
# Integers within +-2**53 are doubles exactly: Python's equality of int and float (exact) is
# then CEL's (as doubles). Past it CEL's is not transitive (2**53 + 1 == 2.0**53 == 2**53).
_EXACT_DOUBLE: Final = 2**53
_TRUE_KEY: Final = ("bool", True)
_FALSE_KEY: Final = ("bool", False)
_NULL_KEY: Final = ("null",)  # (None is what has no key)


def _scalar_key(value: Any) -> Any:
    kind = type(value)
    if kind in _SELF_KEYED:
        return value
    if kind is float:
        return value if value == value else object()  # NaN equals nothing, not even itself
    if kind is int or kind is CelUint:
        return int(value) if -_EXACT_DOUBLE <= value <= _EXACT_DOUBLE else None
    if kind is bool:
        return _TRUE_KEY if value else _FALSE_KEY
    if value is None:
        return _NULL_KEY
    if kind in PYTHON_TIME_TYPES:
        return cel_value(value)
    return None


def _distinct_key(value: Any) -> Any:
    """A hashable key of `value` for `distinct`, equal to another's exactly when the values
    are equal under CEL equality; None for a value that has none: a list or map holding
    anything but scalars (hashing a list of one list a thousand times would take the time of
    its whole tree), an integer past 2**53, an optional, data that is not CEL's."""
    kind = type(value)
    if kind in _LISTS:
        keys = tuple(map(_scalar_key, value))
        return None if None in keys else ("list", keys)
    if kind is dict:
        pairs = frozenset((_scalar_key(k), _scalar_key(v)) for k, v in value.items())
        return None if any(None in pair for pair in pairs) else ("map", pairs)
    return _scalar_key(value)


def _distinct_size(items: Any) -> int:
    """What `distinct` is charged: a step per element and per element of a list or map keyed,
    and for each element without a key (`_distinct_key`), comparing it (its size) with
    every element, twice (it with those kept, those after it with it)."""
    if type(items) not in _LISTS:
        return 0
    charge = len(items)
    unkeyed = 0
    for item in items:
        sized = type(item) in _LISTS or type(item) is dict
        if sized:
            charge += len(item)
        if _distinct_key(item) is None:
            unkeyed += 1 + (len(item) if sized else 0)
    return charge + 2 * len(items) * unkeyed


_SORTABLE: Final = frozenset({int, CelUint, float, str, bytes, bool, CelTimestamp, CelDuration})


def _cel_values(values: Sequence[Any]) -> Sequence[Any]:
    # Python datetimes and timedeltas (from an activation) sort as CEL's exact time types.
    if any(type(value) in PYTHON_TIME_TYPES for value in values):
        return [cel_value(value) for value in values]
    return values


def _orderable(values: Sequence[Any], name: str) -> bool:
    """Check that `values` can be ordered: one orderable type, or numbers of any kinds.
    Whether they must be compared as doubles (numbers with a double among them)."""
    kinds = {type(value) for value in values}
    numeric = kinds <= {int, CelUint, float}
    if not (numeric or (len(kinds) <= 1 and kinds <= _SORTABLE)):
        raise _fail(f"{name}: the values are not all of one orderable type")
    return numeric and float in kinds


def sort(items: Any) -> list[Any]:
    """`list.sort()`: the elements in order; they must be of one orderable type (numbers may
    mix)."""
    _check("sort", (items,), _LISTS)
    items = _cel_values(items)
    if _orderable(items, "sort"):
        return sorted(items, key=float)
    return sorted(items)


def sort_by(items: Any, keys: list[Any]) -> list[Any]:
    """`list.sortBy(x, key)`: the elements ordered by their keys (computed by the generated
    loop), which must be of one orderable type; equal keys keep their order."""
    keys = list(_cel_values(keys))
    as_doubles = _orderable(keys, "sortBy")
    ranked = sorted(
        range(len(keys)), key=(lambda i: float(keys[i])) if as_doubles else keys.__getitem__
    )
    return [items[i] for i in ranked]


def add_entries(result: dict[Any, Any], entries: Any) -> None:
    """One step of `transformMapEntry(k, v, {key: value})`: the map's entries added to
    `result`; a key already there is an error (cel-go)."""
    if type(entries) is not dict:
        raise ops.no_overload("transformMapEntry", entries)
    for key, value in entries.items():
        if key in result:
            raise _fail(f"transformMapEntry: a duplicate {type_name(key)} key")
        result[key] = value


def list_range(count: Any) -> list[int]:
    """`lists.range(n)`: `[0, 1, ..., n - 1]`."""
    _check("lists.range", (count,), int)
    return list(range(max(count, 0)))


def _range_size(count: Any) -> int:
    return count if type(count) is int and count > 0 else 0


def _contains_all(container: Any, items: Any) -> bool:
    return all(any(ops.eq(item, element) for element in container) for item in items)


def sets_contains(container: Any, items: Any) -> bool:
    """`sets.contains(a, b)`: every element of `b` is in `a`."""
    _check("sets.contains", (container, items), _LISTS, _LISTS)
    return _contains_all(container, items)


def sets_equivalent(left: Any, right: Any) -> bool:
    """`sets.equivalent(a, b)`: `a` and `b` hold the same elements (duplicates aside)."""
    _check("sets.equivalent", (left, right), _LISTS, _LISTS)
    return _contains_all(left, right) and _contains_all(right, left)


def sets_intersects(left: Any, right: Any) -> bool:
    """`sets.intersects(a, b)`: `a` and `b` have an element in common."""
    _check("sets.intersects", (left, right), _LISTS, _LISTS)
    return any(ops.eq(a, b) for a in left for b in right)


def first(items: Any) -> CelOptional:
    """`list.first()`: the first element as an optional, none for an empty list."""
    _check("first", (items,), _LISTS)
    return CelOptional(items[0]) if items else OPTIONAL_NONE


def last(items: Any) -> CelOptional:
    """`list.last()`: the last element as an optional, none for an empty list."""
    _check("last", (items,), _LISTS)
    return CelOptional(items[-1]) if items else OPTIONAL_NONE


# -- optionals --------------------------------------------------------------------------------


def optional_of(value: Any) -> CelOptional:
    """`optional.of(x)`: `x` as a present optional."""
    return CelOptional(value)


def optional_none() -> CelOptional:
    """`optional.none()`: the absent optional."""
    return OPTIONAL_NONE


_ZERO_VALUES: Final = {
    type(None): None,
    bool: False,
    int: 0,
    CelUint: 0,
    float: 0.0,
    str: "",
    bytes: b"",
    CelDuration: ZERO_DURATION,
    CelTimestamp: EPOCH,
}


def optional_of_non_zero_value(value: Any) -> CelOptional:
    """`optional.ofNonZeroValue(x)`: none when `x` is its type's zero value (null, false, 0,
    0u, 0.0, "", b"", an empty list or map, a zero duration, the epoch), else `x`."""
    kind = type(value)
    if kind in PYTHON_TIME_TYPES:
        value = cel_value(value)
        kind = type(value)
    if kind in _ZERO_VALUES:
        zero = value == _ZERO_VALUES[kind]
    elif kind in _LISTS or kind is dict:
        zero = not value
    else:
        zero = False
    return OPTIONAL_NONE if zero else CelOptional(value)


def _optional(name: str, value: Any) -> CelOptional:
    if type(value) is not CelOptional:
        raise ops.no_overload(name, value)
    return value


def has_value(option: Any) -> bool:
    """`opt.hasValue()`: whether the optional holds a value."""
    return _optional("hasValue", option).present


def optional_value(option: Any) -> Any:
    """`opt.value()`: the optional's value; an error on `optional.none()`."""
    if not _optional("value", option).present:
        raise _fail("optional.none() dereference")
    return option.value


def or_value(option: Any, default: Any) -> Any:
    """`opt.orValue(v)`: the optional's value, or `v` when it is none (the generated code
    evaluates `v` only then, as cel-go does)."""
    return option.value if _optional("orValue", option).present else default


def or_optional(option: Any, other: Any) -> CelOptional:
    """`opt.or(other)`: `opt` when it holds a value, else the optional `other` (evaluated only
    then)."""
    first = _optional("or", option)
    return first if first.present else _optional("or", other)


def unwrap(items: Any) -> list[Any]:
    """`optional.unwrap(list)` and `list.unwrapOpt()`: the values of a list of optionals,
    the nones left out."""
    _check("optional.unwrap", (items,), _LISTS)
    options = [_optional("optional.unwrap", item) for item in items]
    return [option.value for option in options if option.present]


def present_items(option: Any) -> tuple[Any, ...]:
    """An optional element `[?x]` of a list literal: the value, or nothing when none."""
    value = _optional("[?_]", option)
    return (value.value,) if value.present else ()


def present_entry(key: Any, option: Any) -> tuple[Any, ...]:
    """An optional entry `{?k: v}` of a map literal: the key and value, or nothing when none."""
    value = _optional("{?_: _}", option)
    return (key, value.value) if value.present else ()


# -- encoders ---------------------------------------------------------------------------------


def base64_encode(data: Any) -> str:
    """`base64.encode(bytes)`: standard base64, padded."""
    _check("base64.encode", (data,), bytes)
    return base64.b64encode(data).decode("ascii")


def base64_decode(text: Any) -> bytes:
    """`base64.decode(string)`: standard base64, padded or not."""
    _check("base64.decode", (text,), str)
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _fail("base64.decode: the string is not base64") from None


# -- paths (carlang's own: cel-go has none) --------------------------------------------------


def path_clean(text: Any) -> str:
    """`path.clean(string)`: the shortest path naming the same file as `text` by its text
    alone, as Go's `path.Clean`: `.` elements and repeated slashes dropped, each `..` taking
    the element before it away (none above the root: `/../x` is `/x`), no trailing slash,
    `.` for nothing. A policy on a folder judges this, not what `..` can escape
    (`/srv/safe/../etc` is `/srv/etc`). Symbolic links are not followed: no file is read."""
    _check("path.clean", (text,), str)
    cleaned = posixpath.normpath(text) if text else "."
    # (POSIX keeps a leading `//`, which Go's rule and every Unix path reading joins)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def _quadratic(first: Any, second: Any = None) -> int:
    # sets.* compare every element of one list with every element of the other.
    size = len(first) if type(first) in _LISTS else 0
    other = len(second) if type(second) in _LISTS else 1
    return size * other


# -- the table --------------------------------------------------------------------------------


def _variadic(result: str, most: int = 16) -> tuple[Any, ...]:
    return (_g("list", result), *(_g(" ".join(["dyn"] * n), result) for n in range(1, most + 1)))


def _extensions() -> dict[str, Function]:
    double_math: dict[str, Callable[[float], float]] = {
        "math.ceil": lambda value: float(math.ceil(value)),
        "math.floor": lambda value: float(math.floor(value)),
        "math.round": _round_half_away,
        "math.trunc": lambda value: float(math.trunc(value)),
    }
    tests = {"math.isNaN": math.isnan, "math.isInf": math.isinf, "math.isFinite": math.isfinite}
    bits = {
        "math.bitAnd": lambda a, b: a & b,
        "math.bitOr": lambda a, b: a | b,
        "math.bitXor": lambda a, b: a ^ b,
    }
    integral = (_g("int int", "int"), _g("uint uint", "uint"))
    table = [
        # strings
        Function("charAt", char_at, (_m("string", "int", "string"),)),
        Function(
            "indexOf",
            index_of,
            (_m("string", "string", "int"), _m("string", "string int", "int")),
            linear=True,
        ),
        Function(
            "lastIndexOf",
            last_index_of,
            (_m("string", "string", "int"), _m("string", "string int", "int")),
            linear=True,
        ),
        Function("lowerAscii", lower_ascii, (_m("string", "", "string"),), grows=True),
        Function("upperAscii", upper_ascii, (_m("string", "", "string"),), grows=True),
        Function(
            "replace",
            replace,
            (_m("string", "string string", "string"), _m("string", "string string int", "string")),
            precharge=_replace_size,
        ),
        Function(
            "split",
            split,
            (_m("string", "string", "list_string"), _m("string", "string int", "list_string")),
            precharge=_split_size,
        ),
        Function(
            "substring",
            substring,
            (_m("string", "int", "string"), _m("string", "int int", "string")),
            grows=True,
        ),
        Function("trim", trim, (_m("string", "", "string"),), grows=True),
        Function(
            "join",
            join,
            (_m("list", "", "string"), _m("list", "string", "string")),
            precharge=_join_size,
        ),
        Function("strings.quote", quote, (_g("string", "string"),), grows=True),
        Function(
            "reverse",
            reverse,
            (_m("string", "", "string"), _m("list", "", "same")),
            grows=True,
        ),
        Function(
            "format", format_string, (_m("string", "list", "string"),), precharge=_format_size
        ),
        # math
        Function("math.greatest", greatest, _variadic("dyn_number"), linear=True),
        Function("math.least", least, _variadic("dyn_number"), linear=True),
        *(
            Function(name, _double_function(name, apply), (_g("double", "double"),))
            for name, apply in double_math.items()
        ),
        Function(
            "math.abs",
            absolute,
            (_g("int", "int"), _g("uint", "uint"), _g("double", "double")),
        ),
        Function("math.sign", sign, (_g("int", "int"), _g("uint", "uint"), _g("double", "double"))),
        *(
            Function(name, _double_test(name, test), (_g("double", "bool"),))
            for name, test in tests.items()
        ),
        *(Function(name, _bits(name, apply), integral) for name, apply in bits.items()),
        Function("math.bitNot", bit_not, (_g("int", "int"), _g("uint", "uint"))),
        Function(
            "math.bitShiftLeft",
            _shift("math.bitShiftLeft", True),
            (_g("int int", "int"), _g("uint int", "uint")),
        ),
        Function(
            "math.bitShiftRight",
            _shift("math.bitShiftRight", False),
            (_g("int int", "int"), _g("uint int", "uint")),
        ),
        # lists
        Function("slice", list_slice, (_m("list", "int int", "same"),), grows=True),
        Function(
            "flatten",
            flatten,
            (_m("list", "", "list"), _m("list", "int", "list")),
            precharge=_flatten_size,
        ),
        Function("distinct", distinct, (_m("list", "", "same"),), precharge=_distinct_size),
        Function("sort", sort, (_m("list", "", "same"),), cost=5, linear=True),
        Function("lists.range", list_range, (_g("int", "list_int"),), precharge=_range_size),
        Function("first", first, (_m("list", "", "optional_element"),)),
        Function("last", last, (_m("list", "", "optional_element"),)),
        # optionals (`_?._` and `_[?_]` are `a.?b` and `a[?k]`, named as in cel-go)
        Function("optional.of", optional_of, (_g("dyn", "optional_of"),)),
        Function("optional.none", optional_none, (_g("", "optional_of"),)),
        Function(
            "optional.ofNonZeroValue", optional_of_non_zero_value, (_g("dyn", "optional_of"),)
        ),
        Function("optional.unwrap", unwrap, (_g("list", "list_unwrapped"),), linear=True),
        Function("unwrapOpt", unwrap, (_m("list", "", "list_unwrapped"),), linear=True),
        Function("hasValue", has_value, (_m("optional", "", "bool"),)),
        Function("value", optional_value, (_m("optional", "", "element"),)),
        Function("orValue", or_value, (_m("optional", "dyn", "element_or"),)),
        Function("or", or_optional, (_m("optional", "optional", "same"),)),
        Function("_?._", ops.optional_select, (_g("dyn string", "optional_of"),)),
        Function("_[?_]", ops.optional_index, (_g("dyn dyn", "optional_of"),)),
        # sets
        Function("sets.contains", sets_contains, (_g("list list", "bool"),), precharge=_quadratic),
        Function(
            "sets.equivalent", sets_equivalent, (_g("list list", "bool"),), precharge=_quadratic
        ),
        Function(
            "sets.intersects", sets_intersects, (_g("list list", "bool"),), precharge=_quadratic
        ),
        # paths
        Function("path.clean", path_clean, (_g("string", "string"),), linear=True),
        # encoders
        Function("base64.encode", base64_encode, (_g("bytes", "string"),), grows=True),
        Function("base64.decode", base64_decode, (_g("string", "bytes"),), grows=True),
    ]
    return {function.name: function for function in table}


EXTENSIONS: Final[dict[str, Function]] = _extensions()
