"""JSON text with positions: parse errors and model validation errors located at line:column.

Python's `json` reports where a document stops being JSON but not where a valid document holds
a wrong value, and pydantic reports a path (`actions[2].type`), not a position. `locate` walks
the text along such a path, so both kinds of error can name the line and column in the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import accumulate
from typing import Any

__all__ = [
    "JsonPosition",
    "JsonTextError",
    "JsonNestingError",
    "NESTING_LIMIT",
    "parse_json",
    "loads",
    "too_deeply_nested",
    "locate",
    "line_column",
    "format_path",
    "lone_surrogate",
    "too_deep",
    "unusual",
    "keys_within",
    "keys_all_distinct",
    "json_encoded",
    "shorten",
]

_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"

#: How deeply lists and maps may nest, in JSON documents and in carlang values and types alike:
#: serde_json's recursion limit, so that CAR and carlang accept the same documents.
NESTING_LIMIT = 128

#: A `\uXXXX` escape naming a UTF-16 surrogate, not itself escaped (an even number of
#: backslashes before it); group 1 is the hex digits.
_SURROGATE_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u([dD][89a-fA-F][0-9a-fA-F]{2})")
#: Digits beyond which an integer cannot be a double (CAR reads such numbers as f64).
_MAX_INT_DIGITS = 309


@dataclass(frozen=True, slots=True)
class JsonPosition:
    """A 1-based line and column in a JSON text."""

    line: int
    column: int


class JsonTextError(ValueError):
    """Text that is not JSON; carries the position where parsing stopped."""

    def __init__(self, message: str, position: JsonPosition) -> None:
        super().__init__(f"{position.line}:{position.column}: {message}")
        self.message = message
        self.position = position


class JsonNestingError(JsonTextError):
    """JSON text that nests lists and maps more deeply than `NESTING_LIMIT`: valid JSON, but
    not read (Python's recursion, and every reader after it, has a limit)."""


def parse_json(text: str | bytes) -> object:
    """Parse JSON text, raising `JsonTextError` (with a position) when it is not JSON."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonTextError(
                f"not UTF-8 text (byte {exc.start} is invalid)", JsonPosition(1, 1)
            ) from None
    fast = _parse_plain(text)
    if fast is not _NOT_PLAIN:
        return fast
    surrogate = lone_surrogate(text)
    if surrogate is not None:
        raise JsonTextError(
            "malformed JSON: lone surrogate in a \\u escape (UTF-16 halves must come in pairs)",
            line_column(text, surrogate),
        )
    deep = too_deep(text)
    if deep is not None:
        raise JsonNestingError(
            f"malformed JSON: nested too deeply (more than {NESTING_LIMIT} levels)",
            line_column(text, deep),
        )
    try:
        return json.loads(
            text,
            parse_int=_json_int,
            parse_float=_json_float,
            parse_constant=_json_constant,
            object_pairs_hook=_distinct_keys,
        )
    except _RepeatedKey:
        at = _repeated_key_at(text)
        key = json.decoder.scanstring(text, at + 1)[0]  # type: ignore[attr-defined]
        raise JsonTextError(
            f"duplicate key {json.dumps(shorten(key))} in an object "
            "(which of its values is meant is ambiguous: keep one of them)",
            line_column(text, at),
        ) from None
    except _BadLiteral as exc:
        raise JsonTextError(
            f"malformed JSON: {exc.problem}", line_column(text, _literal_at(text, exc.literal))
        ) from None
    except json.JSONDecodeError as exc:
        if not text.strip():  # (json's "expecting value" does not say why)
            raise JsonTextError("the text is empty (expected JSON)", JsonPosition(1, 1)) from None
        raise JsonTextError(malformed(exc), JsonPosition(exc.lineno, exc.colno)) from None
    except RecursionError:
        raise JsonNestingError("malformed JSON: nested too deeply", JsonPosition(1, 1)) from None


def loads(text: str) -> Any:
    """`json.loads(text)`, except that a document nested too deeply is a `json.JSONDecodeError`
    at the bracket past `NESTING_LIMIT` ("nested too deeply (more than 128 levels)", as
    `parse_json` says it), not a `RecursionError`: the readers of event logs, feedback files,
    configs and outcomes call this, and report the error as every malformed line is reported.
    (As fast as `json.loads`: `parse_json`'s checks are for documents read whole.)"""
    try:
        return json.loads(text)
    except RecursionError:
        deep = too_deep(text)
        raise json.JSONDecodeError(_TOO_DEEP, text, deep or 0) from None


_TOO_DEEP = f"Nested too deeply (more than {NESTING_LIMIT} levels)"


def too_deeply_nested(exc: json.JSONDecodeError) -> bool:
    """Whether `loads` refused the text for its nesting (not a line cut short, say)."""
    return exc.msg == _TOO_DEEP


_NOT_PLAIN = object()
_INFINITIES = (float("inf"), float("-inf"))


def malformed(exc: json.JSONDecodeError) -> str:
    """`malformed JSON: expecting value`: what `json` found wrong, worded as carlang's other
    messages are (the position is the caller's to give, as `file:line:col`); for carlang
    source where JSON was expected (`cat p.car | carlang rank -`), saying so."""
    # (json's "Unterminated string starting at" and "Invalid control character at" end
    # where its own message goes on with the position, which carlang gives before them)
    message = exc.msg.removesuffix(" at").removesuffix(" starting")
    said = f"malformed JSON: {message[:1].lower()}{message[1:]}"
    if exc.pos == len(exc.doc) - len(exc.doc.lstrip()) and _carlang_source(exc.doc):
        said += " (this is carlang source, not JSON)"
    return said


#: How a carlang program begins, past its comments: a declaration's keyword and the shape that
#: follows it (`tool NAME(`, `policy NAME:`, `proposal NAME {`), so that YAML (`state:`) or
#: TOML (`# config` then `[x]`) is not taken for one.
_CARLANG_START = re.compile(
    r"(?:\s*#[^\n]*\n)*\s*(?:import\s+\"|(?:tool|mcp_server)\s+[\w.]+\s*[({]"
    r"|(?:policy|deny_tool|deny_keyword|rate_limit_tool|require_state|allow_tool_param"
    r"|deny_tool_param|deny_tool_param_matching)\s+[\w.]+\s*[:\[\s\"]"
    r"|(?:state|redact)\s*\{|(?:capability|budget|proposal|plan)\s+\w+\s*(?:\{|from|under)"
    r"|test\s+\")"
)


def _carlang_source(text: str) -> bool:
    """Whether `text` begins as a carlang program does."""
    return _CARLANG_START.match(text) is not None


def _parse_plain(text: str) -> object:
    """The decoded document when the C decoder alone decides it exactly as `parse_json`'s
    checks would, else `_NOT_PLAIN` (the caller then runs every check for its exact error).

    `parse_json`'s checks cost three times the decoding of a large document: a Python callback
    per number and two regex passes over the text for its depth. The usual document has no
    surrogate escape; its depth and numbers are read off the decoded value instead, in one walk."""
    if "\\u" in text and lone_surrogate(text) is not None:
        return _NOT_PLAIN
    try:
        value = json.loads(text, parse_constant=_json_constant)
    except (ValueError, RecursionError):
        return _NOT_PLAIN
    kind = type(value)
    if kind is dict or kind is list:
        keys = keys_within(value, NESTING_LIMIT - 1)
        if keys is None or not keys_all_distinct(text, keys, lambda: json_encoded(value)):
            return _NOT_PLAIN
    elif (kind is int and not -_U64_BOUND < value < _U64_BOUND) or value in _INFINITIES:
        return _NOT_PLAIN
    return value


_U64_BOUND = 2**64


def unusual(container: dict[str, object] | list[object], levels: int) -> bool:
    """Whether a decoded container holds containers more than `levels` levels deep, or a
    number `_json_int` or `_json_float` might refuse (beyond 64 bits, or infinite)."""
    return keys_within(container, levels) is None


def keys_within(container: dict[str, object] | list[object], levels: int) -> int | None:
    """How many keys a decoded container's maps hold (its own, if a map, and every nested
    map's), or None when it is `unusual`: one walk serves both (see `keys_all_distinct`)."""
    is_map = type(container) is dict
    keys = len(container) if is_map else 0
    children = container.values() if is_map else container  # type: ignore[union-attr]
    for child in children:
        kind = type(child)
        if kind is dict or kind is list:
            inner = None if levels == 0 else keys_within(child, levels - 1)  # type: ignore[arg-type]
            if inner is None:
                return None
            keys += inner
        elif kind is int:
            if not -_U64_BOUND < child < _U64_BOUND:  # type: ignore[operator]
                return None
        elif kind is float and child in _INFINITIES:
            return None
    return keys


def keys_all_distinct(
    text: str | bytes, keys: int, encoded: Callable[[], str | bytes] | None = None
) -> bool:
    """Whether no object of a JSON text repeats a key, given the `keys` its decoded value has
    (`keys_within`) and, for the last check, `encoded`: the decoded value encoded again as
    JSON. Decoders keep one value of a repeated key, silently, so the text has more keys than
    the value exactly when some object repeats one. False may be wrong (the exact path then
    decides, `parse_json`); True never is.

    Every key is followed by a colon, and in JSON a colon outside a string ends a key. So the
    text's colons bound its keys from above (the first check, the cheapest). The second is
    exact: the text's colons are its keys' plus those inside its strings, and the value
    encoded again has its own keys' colons and, of its strings' colons, no more than the
    text's (a key dropped takes its strings' colons with it): equal counts leave no key
    dropped. Unless an escape in the text could be a colon (`\\u003a`), which the value's
    strings then hold unescaped: then (or with no `encoded`) the colons right after a quote
    or white space, which bound the keys too, are counted instead."""
    colon = b":" if isinstance(text, bytes) else ":"
    colons = text.count(colon)  # type: ignore[arg-type]
    if colons == keys:
        return True
    escape = b"\\u003" if isinstance(text, bytes) else "\\u003"
    if encoded is not None and escape not in text:  # type: ignore[operator]
        again = encoded()
        return colons == again.count(b":" if isinstance(again, bytes) else ":")  # type: ignore[arg-type]
    after = (b'":', b" :", b"\n:", b"\t:", b"\r:") if isinstance(text, bytes) else _KEY_COLONS
    return sum(map(text.count, after)) == keys  # type: ignore[arg-type]


def json_encoded(value: object) -> str | bytes:
    """`value` (decoded JSON) encoded again as JSON, by msgspec when it is installed (the
    `fast` extra: four times `json.dumps`'s speed), else by `json`: `keys_all_distinct`
    counts its colons."""
    encode = _encoder()
    return encode(value)


@cache
def _encoder() -> Callable[[object], str | bytes]:
    try:
        from msgspec.json import encode
    except ImportError:
        return lambda value: json.dumps(value, ensure_ascii=False)
    return encode


#: The colons that may end a key: right after its closing quote or after white space.
_KEY_COLONS = ('":', " :", "\n:", "\t:", "\r:")


class _RepeatedKey(ValueError):
    """An object repeats a key: raised by the exact path's decoder, which does not say where
    (`_repeated_key_at` finds it in the text)."""


def _distinct_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    mapping = dict(pairs)
    if len(mapping) != len(pairs):
        raise _RepeatedKey
    return mapping


def _repeated_key_at(text: str) -> int:
    """The offset of the first key in `text` that its object already has (the text is JSON,
    nested no deeper than `NESTING_LIMIT`, and repeats a key)."""
    found = _repeat_in_value(text, _skip_ws(text, 0))[0]
    assert found is not None, "the decoder saw a repeated key"
    return found


def _repeat_in_value(text: str, pos: int) -> tuple[int | None, int]:
    """The offset of a repeated key in the value at `pos`, if any, and where the value ends."""
    opener = text[pos]
    if opener not in "{[":
        return None, _value_end(text, pos)
    closer = "}" if opener == "{" else "]"
    seen: set[str] = set()
    pos = _skip_ws(text, pos + 1)
    while text[pos] != closer:
        if opener == "{":
            key, after = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
            if key in seen:
                return pos, pos
            seen.add(key)
            pos = _skip_ws(text, _skip_ws(text, after) + 1)  # past the colon
        found, pos = _repeat_in_value(text, pos)
        if found is not None:
            return found, pos
        pos = _skip_ws(text, pos)
        if text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
    return None, pos + 1


def _literal_at(text: str, literal: str) -> int:
    """Where `literal` (a number, or a constant like NaN) first stands in `text` as a value,
    not inside a string."""
    blanked = _JSON_STRING.sub(lambda string: " " * len(string.group()), text)  # same offsets
    return max(blanked.find(literal), 0)


class _BadLiteral(ValueError):
    """A value JSON text may not hold, raised by the decoder's hooks (which do not say where:
    `parse_json` finds `literal` in the text)."""

    def __init__(self, literal: str, problem: str) -> None:
        super().__init__(literal)
        self.literal = literal
        self.problem = problem


class _OutOfRange(_BadLiteral):
    def __init__(self, literal: str) -> None:
        super().__init__(literal, f"number out of range: {shorten(literal)}")


class _Constant(_BadLiteral):
    """NaN, Infinity or -Infinity: Python's decoder reads them, JSON has no such values."""

    def __init__(self, literal: str) -> None:
        super().__init__(literal, f"the constant {literal} is not JSON")


def _json_int(literal: str) -> int:
    if len(literal.lstrip("-")) > _MAX_INT_DIGITS:
        raise _OutOfRange(literal)
    value = int(literal)
    if abs(value) >= 2**64:
        try:
            float(value)  # CAR reads such a number as f64
        except OverflowError:  # (float() raises rather than giving an infinity)
            raise _OutOfRange(literal) from None
    return value


def _json_float(literal: str) -> float:
    value = float(literal)
    if value in (float("inf"), float("-inf")):
        raise _OutOfRange(literal)
    return value


def _json_constant(literal: str) -> float:
    raise _Constant(literal)


def shorten(literal: str) -> str:
    """A literal as messages quote it: whole up to 40 characters, else its start and length
    (a 5,000-digit number is not worth printing)."""
    return literal if len(literal) <= 40 else f"{literal[:20]}... ({len(literal)} characters)"


def lone_surrogate(text: str) -> int | None:
    """The offset of the first `\\uXXXX` escape in `text` that names half of a UTF-16
    surrogate pair without the other half (JSON parsers such as CAR's reject it), or None."""
    if "\\u" not in text:
        return None
    pending: int | None = None  # a high surrogate waiting for its low half
    end_of_pending = -1
    for match in _SURROGATE_ESCAPE.finditer(text):
        code = int(match.group(1), 16)
        escape_start = match.end() - 6
        if code >= 0xDC00:  # low half: fine only right after a high half
            if pending is None or escape_start != end_of_pending:
                return escape_start
            pending = None
        else:
            if pending is not None:
                return pending
            pending, end_of_pending = escape_start, match.end()
    return pending


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')  # unrolled: no step per character
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "(": 1, "]": -1, "}": -1, ")": -1}
_SOURCE_SKIPPED = re.compile(
    r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"|\'[^\'\\\n]*(?:\\.[^\'\\\n]*)*\'|#[^\n]*'
)
#: What `_source_depth` drops, in one pass: runs of characters that start nothing, strings and
#: comments (`_SOURCE_SKIPPED`, tried where they can start), and a quote that opens no string:
#: all but the brackets outside strings and comments (no two alternatives start alike).
_SOURCE_NOT_BRACKET = re.compile(r"""[^\[\]{}()"'#]+|""" + _SOURCE_SKIPPED.pattern + r"""|["']""")
_SIGNIFICANT = re.compile(r"[\[\]{}()\"]")
_SIGNIFICANT_WITH_COMMENTS = re.compile(r"[\[\]{}()\"'#]")


def _json_depth(text: str) -> int:
    """How deeply a JSON text's arrays and objects nest (strings removed first); at C speed,
    so that only a document that is too deep pays for `too_deep`'s exact position."""
    return _bracket_depth(_NOT_BRACKET.sub("", _JSON_STRING.sub("", text)))


def _source_depth(text: str) -> int:
    """`_json_depth` for carlang source: strings of both quotes and `#` comments removed."""
    return _bracket_depth(_SOURCE_NOT_BRACKET.sub("", text))


def _bracket_depth(brackets: str) -> int:
    if len(brackets) <= 2 * NESTING_LIMIT:
        return len(brackets) // 2  # no deeper than half its brackets: no need to count
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def too_deep(text: str, limit: int = NESTING_LIMIT, *, comments: bool = False) -> int | None:
    """The offset of the first bracket that opens more than `limit` levels of `[ ] { } ( )` in
    `text` (outside strings, and outside `#` comments when `comments`), or None. Linear, and
    iterative: it decides before any recursive pass sees the text."""
    if (_source_depth(text) if comments else _json_depth(text)) <= limit:
        return None  # the usual case, decided at C speed
    significant = _SIGNIFICANT_WITH_COMMENTS if comments else _SIGNIFICANT
    depth = 0
    index = 0
    while (match := significant.search(text, index)) is not None:
        char, index = match.group(), match.end()
        if char in "[{(":
            depth += 1
            if depth > limit:
                return match.start()
        elif char in "]})":
            depth = max(depth - 1, 0)
        elif char == "#":
            newline = text.find("\n", index)
            index = len(text) if newline == -1 else newline
        else:
            index = _string_end(text, match.start(), char)
    return None


def _string_end(text: str, start: int, quote: str) -> int:
    """The offset after the string opening at `start` (or its line's end if unclosed)."""
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == quote:
            return index + 1
        if char == "\n":
            return index
        index += 1
    return index


def line_column(text: str, offset: int) -> JsonPosition:
    """The 1-based line and column of a character offset."""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return JsonPosition(line, column)


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WHITESPACE:
        pos += 1
    return pos


def _value_end(text: str, pos: int) -> int:
    try:
        return _DECODER.raw_decode(text, pos)[1]
    except (json.JSONDecodeError, RecursionError):
        return len(text)


def _find_member(text: str, pos: int, key: str) -> int | None:
    """Offset of the value of `key` in the object starting at `pos`, or None."""
    pos = _skip_ws(text, pos + 1)
    while pos < len(text) and text[pos] == '"':
        try:
            name, pos = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
        except json.JSONDecodeError:
            return None
        pos = _skip_ws(text, pos)
        if pos >= len(text) or text[pos] != ":":
            return None
        pos = _skip_ws(text, pos + 1)
        if name == key:
            return pos
        pos = _skip_ws(text, _value_end(text, pos))
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
    return None


def _find_element(text: str, pos: int, index: int) -> int | None:
    """Offset of element `index` of the array starting at `pos`, or None."""
    pos = _skip_ws(text, pos + 1)
    for _ in range(index):
        if pos >= len(text) or text[pos] == "]":
            return None
        pos = _skip_ws(text, _value_end(text, pos))
        if pos >= len(text) or text[pos] != ",":
            return None
        pos = _skip_ws(text, pos + 1)
    if pos >= len(text) or text[pos] == "]":
        return None
    return pos


def locate(text: str, path: Sequence[str | int]) -> JsonPosition:
    """The position of the value at `path` in a JSON text; where the path leaves the document
    (a missing key, say), the position of the deepest value that does exist."""
    pos = _skip_ws(text, 0)
    for part in path:
        if pos >= len(text):
            break
        found: int | None = None
        if text[pos] == "{" and isinstance(part, str):
            found = _find_member(text, pos, part)
        elif text[pos] == "[" and isinstance(part, int):
            found = _find_element(text, pos, part)
        if found is None:
            break
        pos = found
    return line_column(text, min(pos, len(text)))


def format_path(path: Sequence[str | int]) -> str:
    """`("actions", 2, "type")` -> `actions[2].type`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out
