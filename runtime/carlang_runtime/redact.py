"""Secrets: which tool parameters are secret, and keeping their values out of everything that
is written down (events, logs, results, reasons, error messages).

A parameter is secret when its JSON Schema says `writeOnly: true` (what the language's
`token: string secret` compiles to, and what MCP tool schemas may carry) or
`"x-carlang-secret": true`, at any depth: a field of an object parameter, or the items of a
list. Two tools work together:

- `redact_parameters` replaces secret values in a parameter map by `REDACTED`, by position
  (for documents that keep parameters: the proposal a journal stores);
- `Scrubber` replaces the texts of known secret values wherever they occur in strings (for
  what a tool, a validator or a policy wrote *about* the value: an error that echoes it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = [
    "REDACTED",
    "SecretPath",
    "secret_paths",
    "is_secret_schema",
    "secret_values",
    "redact_parameters",
    "redaction_path",
    "redaction_problem",
    "Scrubber",
    "shown_url",
]

#: What a secret value becomes wherever it would have been shown.
REDACTED: Final = "[REDACTED]"

#: Where a secret sits in a tool's parameters: property names, `*` for every item of a list.
SecretPath = tuple[str, ...]

_EVERY_ITEM: Final = "*"


def is_secret_schema(schema: object) -> bool:
    """Whether a JSON Schema marks its value secret."""
    return isinstance(schema, Mapping) and (
        schema.get("writeOnly") is True or schema.get("x-carlang-secret") is True
    )


def secret_paths(parameters: Mapping[str, Any] | None) -> tuple[SecretPath, ...]:
    """Every secret position in a tool's parameter schema (an object schema), outermost first.
    A secret object is secret whole: nothing under it is listed separately."""
    found: list[SecretPath] = []
    if isinstance(parameters, Mapping):
        _collect(parameters, (), found, depth=0)
    return tuple(found)


def _collect(
    schema: Mapping[str, Any], path: SecretPath, found: list[SecretPath], depth: int
) -> None:
    if depth > 64:  # a schema nested this deep is refused elsewhere; do not recurse forever
        return
    if path and is_secret_schema(schema):
        found.append(path)
        return
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        for name, child in properties.items():
            if isinstance(child, Mapping):
                _collect(child, (*path, str(name)), found, depth + 1)
    items = schema.get("items")
    if isinstance(items, Mapping):
        _collect(items, (*path, _EVERY_ITEM), found, depth + 1)
    for keyword in ("anyOf", "oneOf", "allOf"):
        options = schema.get(keyword)
        if isinstance(options, list):
            for option in options:
                if isinstance(option, Mapping):
                    _collect(option, path, found, depth + 1)


def redaction_problem(text: str) -> str | None:
    """What is wrong with a program's `redact` path (`params.card_number`,
    `params.cards.*.cvv`), or None."""
    parts = text.split(".")
    if parts[0] != "params" or len(parts) < 2:
        return "a redaction path starts with `params.` and names a parameter"
    for part in parts[1:]:
        if part != _EVERY_ITEM and (not part or "*" in part):
            return f"`{part}` is neither a name nor `*`"
    if parts[1] == _EVERY_ITEM:
        return "the parameters are a map: name one (`params.NAME`)"
    return None


def redaction_path(text: str) -> SecretPath:
    """A program's `redact` path as a position in a tool's parameters (what `secret_paths`
    yields): `params.cards.*.cvv` -> ("cards", "*", "cvv"). Raises ValueError if malformed."""
    problem = redaction_problem(text)
    if problem is not None:
        raise ValueError(f"redaction path {text!r}: {problem}")
    return tuple(text.split(".")[1:])


def secret_values(parameters: Mapping[str, Any], paths: Iterable[SecretPath]) -> list[Any]:
    """The values at `paths` in one call's parameters (what must never be shown)."""
    values: list[Any] = []
    for path in paths:
        _values_at(parameters, path, values)
    return values


def _values_at(value: Any, path: SecretPath, out: list[Any]) -> None:
    if not path:
        out.append(value)
        return
    head, rest = path[0], path[1:]
    if head == _EVERY_ITEM and isinstance(value, list):
        for item in value:
            _values_at(item, rest, out)
    elif isinstance(value, Mapping) and head in value:
        _values_at(value[head], rest, out)


def redact_parameters(
    parameters: Mapping[str, Any], paths: Iterable[SecretPath], names: Iterable[str] = ()
) -> dict[str, Any]:
    """A copy of `parameters` with the values at `paths`, and the whole parameters in
    `names`, replaced by `REDACTED`."""
    redacted: Any = dict(parameters)
    for path in paths:
        redacted = _redact_at(redacted, path)
    for name in names:
        if name in redacted:
            redacted[name] = REDACTED
    result: dict[str, Any] = redacted
    return result


def _redact_at(value: Any, path: SecretPath) -> Any:
    if not path:
        return REDACTED
    head, rest = path[0], path[1:]
    if head == _EVERY_ITEM and isinstance(value, list):
        return [_redact_at(item, rest) for item in value]
    if isinstance(value, Mapping) and head in value:
        return {**value, head: _redact_at(value[head], rest)}
    return value


class Scrubber:
    """Replaces every text form of known secret values in strings, deeply (lists, maps), with
    `REDACTED`. A string secret is matched as itself and as it appears escaped in JSON or in a
    Python repr; any other value by its JSON text."""

    __slots__ = ("_texts",)

    def __init__(self, values: Iterable[Any] = ()) -> None:
        texts: set[str] = set()
        for value in values:
            texts.update(_text_forms(value))
        # Longest first, so a secret that contains another is replaced whole.
        self._texts = sorted(texts, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._texts)

    def add(self, values: Iterable[Any]) -> None:
        """Know more secret values."""
        texts = set(self._texts)
        for value in values:
            texts.update(_text_forms(value))
        self._texts = sorted(texts, key=len, reverse=True)

    def text(self, text: str) -> str:
        """`text` with every secret replaced."""
        for secret in self._texts:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def value(self, value: Any) -> Any:
        """`value` with every secret replaced in every string it holds (a key only whole)."""
        if not self._texts:
            return value
        return self._scrub(value, 0)

    def _scrub(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if depth > 200:
            return REDACTED  # fail closed on what cannot be walked
        if isinstance(value, Mapping):
            # A key is replaced when it is a secret, never cut into: keys are mostly names
            # (a log's own `type`, `session`), which a short secret would garble.
            return {
                (REDACTED if k in self._texts else k): self._scrub(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self._scrub(item, depth + 1) for item in value]
        if isinstance(value, (int, float, bool)) or value is None:
            text = json.dumps(value)
            return REDACTED if text in self._texts else value
        return self.text(str(value))


#: The shortest text searched for in free text: a shorter secret (`"e"`) would be found in
#: every word, garbling logs and, by where the marks fall, giving itself away. It is still
#: redacted where it is (its parameter), not where it is only mentioned.
MIN_SEARCHED = 4


def _text_forms(value: Any) -> set[str]:
    if isinstance(value, str):
        forms = {value, json.dumps(value)[1:-1], repr(value)[1:-1]}
        return {form for form in forms if len(form) >= MIN_SEARCHED}
    if isinstance(value, bool) or value is None:
        return set()  # true/false/null are everywhere; a secret that is one shows nothing
    leaves: set[str] = set()
    if isinstance(value, Mapping):
        for item in value.values():
            leaves.update(_text_forms(item))
    elif isinstance(value, (list, tuple)):
        for item in value:
            leaves.update(_text_forms(item))
    try:
        text = json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        text = str(value)
    forms = {text}
    if isinstance(value, (int, float)):
        forms.add(str(value))
    return leaves | {form for form in forms if len(form) >= MIN_SEARCHED}


#: A query parameter whose name says it carries a credential, up to its value.
_QUERY_SECRET: Final = re.compile(
    r"([?&][^=&#]*(?:token|key|secret|password|passwd|pwd|sig|signature|auth|credential)"
    r"[^=&#]*=)[^&#]*",
    re.IGNORECASE,
)


def shown_url(url: str) -> str:
    """`url` as a message may show it: its password, if it has one, and the values of query
    parameters named for a credential (`token`, `api_key`, `sig`, ...), as `***` (a message
    goes to terminals, CI logs and bug reports). Any text, well-formed or not: the password is
    whatever follows the user name's `:` up to the last `@` (more than the password is
    hidden when its query holds an `@`, never less)."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    rest = _QUERY_SECRET.sub(r"\1***", rest)  # `?token=...`, `&api_key=...`
    at = rest.rfind("@")
    user = re.match(r"[^:/@]*:", rest)
    if at >= 0 and user is not None and user.end() <= at:
        return f"{scheme}://{user.group()}***{rest[at:]}"
    # No `@`: `user:password/db`, read as host and port, is a password written without its
    # host. A port that is not a number is hidden too.
    port = re.match(r"([^:/@\[?]*:)([^/?]*[^/?0-9][^/?]*)", rest)
    if port is not None:
        return f"{scheme}://{port.group(1)}***{rest[port.end() :]}"
    return f"{scheme}://{rest}"
