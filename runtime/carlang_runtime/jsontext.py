"""JSON text with positions: parse errors and model validation errors located at line:column.

Python's `json` reports where a document stops being JSON but not where a valid document holds
a wrong value, and pydantic reports a path (`actions[2].type`), not a position. `locate` walks
the text along such a path, so both kinds of error can name the line and column in the file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["JsonPosition", "JsonTextError", "parse_json", "locate", "line_column", "format_path"]

_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


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


def parse_json(text: str | bytes) -> object:
    """Parse JSON text, raising `JsonTextError` (with a position) when it is not JSON."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonTextError(
                f"not UTF-8 text (byte {exc.start} is invalid)", JsonPosition(1, 1)
            ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        message = exc.msg[0].lower() + exc.msg[1:]
        raise JsonTextError(
            f"malformed JSON: {message}", JsonPosition(exc.lineno, exc.colno)
        ) from None
    except RecursionError:
        raise JsonTextError("malformed JSON: nested too deeply", JsonPosition(1, 1)) from None


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
