"""JSON values with CAR's semantics: serde_json equality, text and Debug renderings.

CAR compares and prints state values as `serde_json::Value`, which differs from Python's
defaults in ways that change results: `5 == 5.0` is false (an integer is not a float), `true`
is not `1`, floats print as `1e+16` and `0.00001`, and messages show values in Rust's Debug
form (`Number(5)`, `String("x")`). Everything that must agree with CAR goes through here.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any

from .jsontext import NESTING_LIMIT, format_path

__all__ = [
    "json_equal",
    "same_value",
    "texts_of",
    "as_number",
    "format_f64",
    "to_json_text",
    "rust_debug",
    "canonical_key",
    "not_json",
    "json_kind",
]

_I64_MIN = -(2**63)
_U64_MAX = 2**64 - 1


def json_equal(a: Any, b: Any) -> bool:
    """serde_json equality: like `==`, except that a bool never equals a number and an integer
    never equals a float (`5 != 5.0`), at any depth."""
    ta, tb = type(a), type(b)
    if ta is tb and (ta is str or ta is int or a is None):
        return bool(a == b)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, float) and isinstance(b, float) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, Mapping):
        if not isinstance(b, Mapping) or len(a) != len(b):
            return False
        return all(k in b and json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, (list, tuple)):
        if not isinstance(b, (list, tuple)) or len(a) != len(b):
            return False
        return all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def same_value(a: Any, b: Any) -> bool:
    """`json_equal`, except that numbers compare by value (`100.0` is `100`), at any depth:
    what a deny rule compares with, so that writing a denied number as a float (which a JSON
    Schema `integer` accepts) does not get past it."""
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return len(a) == len(b) and all(k in b and same_value(v, b[k]) for k, v in a.items())
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return json_equal(a, b)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def texts_of(value: Any) -> Iterator[str]:
    """The texts a value is searched in by the rules that look for text in a parameter: a
    string itself; anything else its JSON text (CAR's string coercion), then every string
    and key inside it as written, where JSON would escape a backslash, a quote or a control
    character that the searched text has."""
    if isinstance(value, str):
        yield value
        return
    yield to_json_text(value)
    if isinstance(value, (Mapping, list, tuple)):
        yield from _strings_in(value)


def _strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from _strings_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings_in(item)


def as_number(value: Any) -> float | None:
    """serde_json `as_f64`: the value as a float if it is a number (never for bools)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _shortest_digits(value: float) -> tuple[str, int]:
    """Shortest round-trip digits of a positive finite float and its decimal exponent:
    `value == 0.d1d2d3... * 10**(exponent + 1)`."""
    text = repr(value)
    mantissa, _, exp_text = text.partition("e")
    exponent = int(exp_text) if exp_text else 0
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    leading = len(whole + frac) - len((whole + frac).lstrip("0"))
    exponent += len(whole) - 1 - leading
    return digits.rstrip("0") or "0", exponent


def format_f64(value: float) -> str:
    """A float as serde_json writes it: shortest digits, decimal notation for exponents -5..15
    (always with a fractional part), `1e+16` / `1e-7` style outside that range."""
    if value != value or value in (float("inf"), float("-inf")):
        return repr(value)
    if value == 0.0:
        return "-0.0" if str(value).startswith("-") else "0.0"
    sign = "-" if value < 0 else ""
    digits, exponent = _shortest_digits(abs(value))
    if -5 <= exponent <= 15:
        if exponent >= 0:
            whole = digits[: exponent + 1].ljust(exponent + 1, "0")
            frac = digits[exponent + 1 :] or "0"
            return f"{sign}{whole}.{frac}"
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    rest = f".{digits[1:]}" if len(digits) > 1 else ""
    return f"{sign}{digits[0]}{rest}e{'+' if exponent > 0 else '-'}{abs(exponent)}"


def _number_text(value: int | float) -> str:
    if isinstance(value, int):
        if _I64_MIN <= value <= _U64_MAX:
            return str(value)
        return format_f64(float(value))  # serde reads integers beyond 64 bits as floats
    return format_f64(value)


def to_json_text(value: Any) -> str:
    """`serde_json::to_string`: compact, object keys sorted, non-ASCII kept, serde's floats."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return _number_text(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        items = sorted((str(k), v) for k, v in value.items())
        inner = ",".join(f"{json.dumps(k, ensure_ascii=False)}:{to_json_text(v)}" for k, v in items)
        return "{" + inner + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(to_json_text(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


_DEBUG_ESCAPES = {"\t": "\\t", "\r": "\\r", "\n": "\\n", "\\": "\\\\", '"': '\\"', "\0": "\\0"}
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})


def _debug_str(text: str) -> str:
    out = []
    for index, char in enumerate(text):
        if char in _DEBUG_ESCAPES:
            out.append(_DEBUG_ESCAPES[char])
            continue
        category = unicodedata.category(char)
        # Rust escapes what it cannot print, and a combining mark with nothing to combine with.
        if (category in _UNPRINTABLE and char != " ") or (index == 0 and category in ("Mn", "Me")):
            out.append(f"\\u{{{ord(char):x}}}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def rust_debug(value: Any) -> str:
    """A value in Rust's Debug form for `serde_json::Value`, as CAR's messages print it:
    `Null`, `Bool(true)`, `Number(5)`, `String("x")`, `Array [..]`, `Object {"k": ..}`."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return f"Bool({'true' if value else 'false'})"
    if isinstance(value, (int, float)):
        return f"Number({_number_text(value)})"
    if isinstance(value, str):
        return f"String({_debug_str(value)})"
    if isinstance(value, Mapping):
        items = sorted((str(k), v) for k, v in value.items())
        return "Object {" + ", ".join(f"{_debug_str(k)}: {rust_debug(v)}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "Array [" + ", ".join(rust_debug(v) for v in value) + "]"
    return f"String({_debug_str(str(value))})"


# Built once: `json.dumps` with options constructs a new encoder on every call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_key(value: Any) -> str:
    """A hashable text that is equal for two values exactly when `json_equal` holds.

    Uses the C JSON encoder (sorted keys) on the fast path; `1` and `1.0`, `true` and `1`
    already encode differently there.
    """
    try:
        return _CANONICAL.encode(value)
    except (TypeError, ValueError):
        return to_json_text(value)


_INFINITY = float("inf")


def not_json(value: Any) -> str | None:
    """Why a Python value (arguments an SDK decoded) is not what a JSON document can hold, or
    None: a float NaN or infinity, an integer beyond a double, or containers nested more than
    `NESTING_LIMIT` levels (the value itself the first). Iterative: a value nested 100,000
    deep (or holding itself) is answered, not a RecursionError."""
    stack: list[tuple[Any, tuple[str | int, ...], int]] = [(value, (), 1)]
    while stack:
        current, path, depth = stack.pop()
        if isinstance(current, Mapping | list | tuple):
            if depth > NESTING_LIMIT:
                return f"nested too deeply (more than {NESTING_LIMIT} levels)"
            items = current.items() if isinstance(current, Mapping) else enumerate(current)
            stack.extend((child, (*path, key), depth + 1) for key, child in items)
        elif isinstance(current, float):
            if current != current or current in (_INFINITY, -_INFINITY):
                shown = "NaN" if current != current else repr(current).replace("inf", "Infinity")
                return f"{format_path(path) or 'the value'} is {shown} (a JSON number is finite)"
        elif isinstance(current, int) and not isinstance(current, bool):
            if abs(current) >= 2**64 and _beyond_double(current):
                return f"{format_path(path) or 'the value'} is a number out of range"
    return None


def _beyond_double(number: int) -> bool:
    try:
        float(number)
    except OverflowError:
        return True
    return False


#: `paramcheck.json_type_name`'s names (CAR's) as `json_kind` words them in a sentence.
_KIND_WORDS = {
    "null": "null",
    "boolean": "a boolean",
    "number": "a number",
    "string": "a string",
    "array": "a list",
    "object": "an object",
}


def json_kind(value: object) -> str:
    """What a JSON value is, in words: "an object", "a list", "a string", "a number"..., or
    the Python type's name for what JSON has no word for."""
    from .paramcheck import json_type_name

    name = json_type_name(value)
    return _KIND_WORDS.get(name, name)
