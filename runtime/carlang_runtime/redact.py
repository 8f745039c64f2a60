"""Secrets: which tool parameters are secret, and keeping their values out of everything that
is written down (events, logs, results, reasons, error messages).

A parameter is secret when its JSON Schema says `writeOnly: true` (what the language's
`token: string secret` compiles to, and what MCP tool schemas may carry) or
`"x-carlang-secret": true`, at any depth: a field of an object parameter, the items of a
list, the values of a map, wherever a local `$ref` leads (see `secret_paths`). Two tools work
together:

- `redact_parameters` replaces secret values in a parameter map by `REDACTED`, by position
  (for documents that keep parameters: the proposal a journal stores);
- `Scrubber` replaces the texts of known secret values wherever they occur in strings (for
  what a tool, a validator or a policy wrote *about* the value: an error that echoes it).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote, quote_plus, unquote, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "SecretPath",
    "secret_paths",
    "is_secret_schema",
    "secret_values",
    "redact_parameters",
    "redaction_path",
    "redaction_problem",
    "redacted_message",
    "Scrubber",
    "shown_url",
    "url_credentials",
    "NAMED_SCHEMAS",
    "SECRET_MARKS",
    "REFS",
    "SAME_VALUE",
    "SAME_VALUE_LISTS",
    "SAME_VALUE_MAPS",
    "resolve_local_ref",
    "anchor_names",
    "DATA_KEYWORDS",
]

#: What a secret value becomes wherever it would have been shown.
REDACTED: Final = "[REDACTED]"

#: Where a secret sits in a tool's parameters: property names, `*` for every item of a list
#: and every value of a map, a decimal index for one item of a list (`("pair", "1")`).
SecretPath = tuple[str, ...]

_EVERY_ITEM: Final = "*"


#: The keywords that mark a schema's value secret, when true (either one).
SECRET_MARKS: Final = ("writeOnly", "x-carlang-secret")


def is_secret_schema(schema: object) -> bool:
    """Whether a JSON Schema marks its value secret."""
    return isinstance(schema, Mapping) and any(schema.get(m) is True for m in SECRET_MARKS)


def secret_paths(parameters: Mapping[str, Any] | None) -> tuple[SecretPath, ...]:
    """Every secret position in a tool's parameter schema (an object schema), outermost first.
    A secret object is secret whole: nothing under it is listed separately.

    The whole schema is walked: `properties`, `items` and `prefixItems` (a position is its
    index: `("pair", "1")`), `additionalProperties`, `patternProperties` and the like (every
    value of the map: `*`), the applicators that apply at the same place (`allOf`, `anyOf`,
    `oneOf`, `not`, `if`/`then`/`else`, `dependentSchemas`), and local `$ref`s (`#/$defs/X`,
    `#/definitions/X`, `#`, an anchor), which is where pydantic puts the fields of a nested
    model. It fails closed: where a secret sits somewhere no path can say (the names of a map's
    keys, inside a string's encoded content, a recursive schema, a schema too big to walk
    whole), the value around it is secret."""
    if not isinstance(parameters, Mapping):
        return ()
    walk = _SecretWalk(parameters)
    walk.walk(parameters, (), frozenset({id(parameters)}), 0)
    found = sorted(dict.fromkeys(walk.found), key=len)  # outermost first
    kept: list[SecretPath] = []
    seen: set[SecretPath] = set()
    for path in found:
        if not any(path[:n] in seen for n in range(1, len(path))):
            kept.append(path)
            seen.add(path)
    return tuple(kept)


#: Keywords whose subschema applies to the value itself (shared with `schemacheck`).
SAME_VALUE: Final = ("not", "if", "then", "else")
SAME_VALUE_LISTS: Final = ("allOf", "anyOf", "oneOf")
#: Keywords holding a map of name -> subschema applied to the value itself.
SAME_VALUE_MAPS: Final = ("dependentSchemas", "dependencies")
#: Keywords whose subschema applies to every value of a map (or some values: all, to be safe).
_EVERY_VALUE: Final = ("additionalProperties", "unevaluatedProperties")
#: Keywords whose subschema applies to every item of a list (or some items: all, to be safe).
_EVERY_ITEM_KEYS: Final = ("additionalItems", "unevaluatedItems", "contains")
#: Keywords whose subschema describes something no path can name (a map's keys, a string's
#: decoded content): a secret there makes the value itself secret.
_NO_PATH: Final = ("propertyNames", "contentSchema")
#: The keywords that refer to another schema.
REFS: Final = ("$ref", "$dynamicRef", "$recursiveRef")
#: Keywords whose values are data, not schemas (a secret mark there marks nothing).
DATA_KEYWORDS: Final = frozenset({"enum", "const", "default", "examples"})


def anchor_names(schema: Mapping[str, Any]) -> Iterator[str]:
    """The names a `#name` reference finds `schema` by: its `$anchor`, `$dynamicAnchor`, and
    an `$id` of the form `#name`."""
    for keyword in ("$anchor", "$dynamicAnchor"):
        name = schema.get(keyword)
        if isinstance(name, str):
            yield name
    named = schema.get("$id")
    if isinstance(named, str) and named.startswith("#"):
        yield named[1:]


def resolve_local_ref(
    root: Mapping[str, Any], anchors: Callable[[], Mapping[str, Mapping[str, Any]]], ref: str
) -> Mapping[str, Any] | None:
    """The schema a local `$ref` names in `root` (`#`, `#/json/pointer`, `#anchor` from
    `anchors()`, or the root's own `$id` with either), or None: another document (nothing is
    fetched), or a place that is no schema."""
    base, _, fragment = ref.partition("#")
    if base:
        own = root.get("$id")
        if not isinstance(own, str) or own.partition("#")[0] != base:
            return None
    if not fragment:
        return root
    if not fragment.startswith("/"):
        return anchors().get(fragment)
    node: object = root
    for raw in fragment[1:].split("/"):
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and part.isascii() and part.isdigit():
            index = int(part)
            node = node[index] if index < len(node) else None
        else:
            return None
    return node if isinstance(node, Mapping) else None


#: How many subschemas `secret_paths` walks before it gives up on precision (fail closed).
_WALK_BUDGET: Final = 20_000
_MAX_DEPTH: Final = 64


class _SecretWalk:
    """One walk of a tool's parameter schema for `secret_paths`."""

    __slots__ = ("root", "found", "budget", "_holds", "_anchors")

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.found: list[SecretPath] = []
        self.budget = _WALK_BUDGET
        self._holds: dict[int, bool] = {}
        self._anchors: dict[str, Mapping[str, Any]] | None = None

    def walk(
        self, schema: Mapping[str, Any], path: SecretPath, refs: frozenset[int], depth: int
    ) -> None:
        self.budget -= 1
        if self.budget < 0 or depth > _MAX_DEPTH:
            self.whole(schema, path)  # too big or too deep to walk: secret whole if it holds one
            return
        if is_secret_schema(schema):
            self.found.append(path or (_EVERY_ITEM,))  # (the parameters whole: each of them)
            return
        for keyword in REFS:
            ref = schema.get(keyword)
            if not isinstance(ref, str):
                continue
            target = self.resolve(ref)
            if target is None:
                continue  # not local, or to nowhere: nothing is fetched
            if id(target) in refs:
                self.whole(target, path)  # recursive: no finite set of paths says where
            else:
                self.walk(target, path, refs | {id(target)}, depth + 1)
        properties = schema.get("properties")
        if isinstance(properties, Mapping):
            for name, child in properties.items():
                self.child(child, (*path, str(name)), refs, depth)
        patterns = schema.get("patternProperties")
        if isinstance(patterns, Mapping):
            for child in patterns.values():
                self.child(child, (*path, _EVERY_ITEM), refs, depth)
        for keyword in _EVERY_VALUE + _EVERY_ITEM_KEYS:
            self.child(schema.get(keyword), (*path, _EVERY_ITEM), refs, depth)
        items = schema.get("items")
        if isinstance(items, list):  # (the tuple form before 2020-12)
            for index, child in enumerate(items):
                self.child(child, (*path, str(index)), refs, depth)
        else:
            self.child(items, (*path, _EVERY_ITEM), refs, depth)
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list):
            for index, child in enumerate(prefix):
                self.child(child, (*path, str(index)), refs, depth)
        for keyword in SAME_VALUE:
            self.child(schema.get(keyword), path, refs, depth)
        for keyword in SAME_VALUE_LISTS:
            options = schema.get(keyword)
            if isinstance(options, list):
                for option in options:
                    self.child(option, path, refs, depth)
        for keyword in SAME_VALUE_MAPS:
            options = schema.get(keyword)
            if isinstance(options, Mapping):
                for option in options.values():
                    self.child(option, path, refs, depth)
        for keyword in _NO_PATH:
            child = schema.get(keyword)
            if isinstance(child, Mapping):
                self.whole(child, path)

    def child(self, schema: object, path: SecretPath, refs: frozenset[int], depth: int) -> None:
        if isinstance(schema, Mapping):
            self.walk(schema, path, refs, depth + 1)

    def whole(self, schema: Mapping[str, Any], path: SecretPath) -> None:
        """The value at `path` is secret whole if `schema` marks anything secret anywhere
        (the parameters themselves: every one of them)."""
        if self.holds_secret(schema):
            self.found.append(path or (_EVERY_ITEM,))

    def holds_secret(self, schema: Mapping[str, Any]) -> bool:
        """Whether `schema`, or any schema in it or that it refers to, marks a value secret."""
        known = self._holds.get(id(schema))
        if known is not None:
            return known
        found = any(is_secret_schema(node) for node in self.schemas_in(schema, follow=True))
        self._holds[id(schema)] = found
        return found

    def resolve(self, ref: str) -> Mapping[str, Any] | None:
        """The schema a local `$ref` names in the root, or None (`resolve_local_ref`)."""
        return resolve_local_ref(self.root, self.anchors, ref)

    def anchors(self) -> dict[str, Mapping[str, Any]]:
        """The root's named places: `$anchor`, `$dynamicAnchor`, and `$id: "#name"`."""
        if self._anchors is None:
            self._anchors = {}
            for node in self.schemas_in(self.root, follow=False):
                for name in anchor_names(node):
                    self._anchors.setdefault(name, node)
        return self._anchors

    def schemas_in(self, start: object, follow: bool) -> Iterator[Mapping[str, Any]]:
        """Each schema in `start` (a schema or a list of them), once, and with `follow` in
        what its local `$ref`s name too."""
        seen: set[int] = set()
        pending: list[object] = [start]
        while pending:
            node = pending.pop()
            if isinstance(node, list):
                pending.extend(node)
                continue
            if not isinstance(node, Mapping) or id(node) in seen:
                continue
            seen.add(id(node))
            yield node
            if follow:
                pending.extend(self.resolve(ref) for ref in _refs(node))
            pending.extend(_subschemas(node))


#: Keywords whose values map names to schemas (a name there is a property's, not a keyword).
NAMED_SCHEMAS: Final = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)


def _subschemas(schema: Mapping[str, Any]) -> list[object]:
    """The schemas (or lists of them) directly inside `schema`: the values of its keywords,
    but not data (`enum`, `default`, ...), and the values of a name-to-schema map (whose keys
    are names: a property called `default` is a schema like any other)."""
    found: list[object] = []
    for key, value in schema.items():
        if key in NAMED_SCHEMAS and isinstance(value, Mapping):
            found.extend(v for v in value.values() if isinstance(v, (Mapping, list)))
        elif key not in DATA_KEYWORDS and isinstance(value, (Mapping, list)):
            found.append(value)
    return found


def _refs(schema: Mapping[str, Any]) -> list[str]:
    """The references `schema` makes itself (`$ref` and its dynamic forms)."""
    return [value for key in REFS if isinstance(value := schema.get(key), str)]


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
    if isinstance(value, Mapping):
        if head == _EVERY_ITEM:
            for item in value.values():
                _values_at(item, rest, out)
        elif head in value:
            _values_at(value[head], rest, out)
    elif isinstance(value, (list, tuple)):
        if head == _EVERY_ITEM:
            for item in value:
                _values_at(item, rest, out)
        elif _is_index(head) and int(head) < len(value):
            _values_at(value[int(head)], rest, out)


def _is_index(part: str) -> bool:
    return part.isascii() and part.isdigit()


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
    if isinstance(value, Mapping):
        if head == _EVERY_ITEM:
            return {key: _redact_at(item, rest) for key, item in value.items()}
        if head in value:
            return {**value, head: _redact_at(value[head], rest)}
    elif isinstance(value, (list, tuple)):
        if head == _EVERY_ITEM:
            return [_redact_at(item, rest) for item in value]
        if _is_index(head) and int(head) < len(value):
            index = int(head)
            return [_redact_at(item, rest) if i == index else item for i, item in enumerate(value)]
    return value


def redacted_message(
    message: str, value: Any, location: Sequence[str | int], paths: Iterable[SecretPath]
) -> str:
    """A message about `value`, which sits at `location` in a call's parameters (`["creds",
    "api_key"]`, `["pair", 1]`; `[]` for the parameters), with what `paths` make secret
    replaced by `REDACTED`: the value whole when a path covers `location`, else the secrets
    inside it. The value is found as its Python repr (how jsonschema's messages quote it) and
    as any text form `Scrubber` knows."""
    whole = False
    inner: list[SecretPath] = []
    for path in paths:
        if all(part in (_EVERY_ITEM, str(key)) for part, key in zip(path, location, strict=False)):
            if len(path) <= len(location):
                whole = True
                break
            inner.append(path[len(location) :])
    secrets: list[Any] = []
    if whole:
        shown: Any = REDACTED
        secrets.append(value)
    elif inner:
        shown = value
        for path in inner:
            _values_at(value, path, secrets)
            shown = _redact_at(shown, path)
    else:
        return message
    quoted, shown_quoted = repr(value), repr(shown)
    if message.startswith(quoted):  # (the rest is about the schema: `... is too long`)
        message = shown_quoted + message[len(quoted) :]
    else:
        message = message.replace(quoted, shown_quoted)
    return Scrubber(secrets).text(message) if secrets else message


class Scrubber:
    """Replaces every text form of known secret values in strings, deeply (lists, maps), with
    `REDACTED`. A string secret is matched as itself, as it appears escaped in JSON or in a
    Python repr, and as it appears encoded: percent-encoded (in a URL's query or path, with
    upper- or lower-case hex, whichever characters the encoder escaped), and base64 (standard
    or URL-safe) of any text that holds it: a base64 run whose decoding holds a secret is
    replaced whole (HTTP Basic auth's `base64(user:password)`, which no list of forms could
    foresee; see `_base64_cores`). A number is matched by its JSON text, as any other value."""

    __slots__ = ("_values", "_texts", "_strings", "_short", "_quoted", "_percent", "_cores")

    def __init__(self, values: Iterable[Any] = ()) -> None:
        #: the secret values themselves, as given
        self._values: list[Any] = []
        self._texts: list[str] = []
        self._strings: list[str] = []
        #: the secrets too short to be searched for in text, as a tool's output may hold one
        #: whole (a string value equal to a string secret, a number to a number): `output`
        self._short: set[tuple[str, bool]] = set()
        #: a short string secret with a letter or digit, as a quoted string shows it (`"k9"`
        #: in JSON, `'k9'` in a repr), with what it is replaced by (quoted, so that JSON
        #: stays JSON)
        self._quoted: dict[str, str] = {}
        self._percent: list[re.Pattern[str]] | None = None
        self._cores: tuple[str, ...] = ()
        self.add(values)

    def __bool__(self) -> bool:
        return bool(self._texts or self._short)

    def add(self, values: Iterable[Any]) -> None:
        """Know more secret values."""
        values = list(values)
        self._values.extend(v for v in values if v not in self._values)
        texts = set(self._texts)
        strings = set(self._strings)
        for value in values:
            texts.update(_text_forms(value))
            strings.update(_searched_texts(value))
            for leaf, is_string in _leaves(value):
                if len(leaf) < MIN_SEARCHED:
                    self._short.add((leaf, is_string))
                    if is_string:
                        self._quoted.update(_quoted_forms(leaf))
        # Longest first, so a secret that contains another is replaced whole.
        self._texts = sorted(texts, key=len, reverse=True)
        self._strings = sorted(strings, key=len, reverse=True)
        self._percent = None  # (built when a text first holds a `%`)
        self._cores = tuple({core for text in self._strings for core in _base64_cores(text)})

    def secrets_in(self, value: Any) -> list[Any]:
        """The secret values (as given) that `value` holds: scrubbed with that one alone, it
        changes. What a state write keeps of a run's secrets, for later runs to keep out."""
        if not self or self.output(value) == value:
            return []
        return [secret for secret in self._values if Scrubber([secret]).output(value) != value]

    def text(self, text: str) -> str:
        """`text` with every secret replaced."""
        if self._cores:
            # (first: `Basic base64(user:secret)` goes whole, user too, where the secret's own
            # base64 would leave the user's part of the run)
            if any(core in text for core in self._cores):  # (rare: then find the runs)
                text = _BASE64_RUN.sub(self._base64_run, text)
        for secret in self._texts:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for form, shown in self._quoted.items():
            if form in text:
                text = text.replace(form, shown)
        if "%" in text and self._strings:
            for pattern in self._percent_patterns():
                text = pattern.sub(REDACTED, text)
        return text

    def _percent_patterns(self) -> list[re.Pattern[str]]:
        if self._percent is None:
            self._percent = [
                _percent_pattern(secret)
                for secret in self._strings
                if len(secret) <= _PERCENT_LONGEST
            ]
        return self._percent

    def _base64_run(self, match: re.Match[str]) -> str:
        run = match.group()
        return REDACTED if any(core in run for core in self._cores) else run

    def value(self, value: Any) -> Any:
        """`value` with every secret replaced in every string it holds (a key only whole)."""
        if not self:
            return value
        return self._scrub(value, 0, None)

    def output(self, value: Any) -> Any:
        """`value` (a tool's output, an undo step's) as `value` makes it, and also a string
        equal to a short string secret or a number equal to a short numeric one replaced: a
        tool echoing a short token gives it back whole. (Not for documents: an action id or
        a count may be equal to a short secret by chance.)"""
        if not self:
            return value
        return self._scrub(value, 0, self._short or None)

    def _scrub(self, value: Any, depth: int, short: set[tuple[str, bool]] | None) -> Any:
        if isinstance(value, str):
            if short is not None and (value, True) in short:
                return REDACTED
            return self.text(value)
        if depth > 200:
            return REDACTED  # fail closed on what cannot be walked
        if isinstance(value, Mapping):
            # A key is replaced when it is a secret, never cut into: keys are mostly names
            # (a log's own `type`, `session`), which a short secret would garble.
            return {
                (REDACTED if k in self._texts else k): self._scrub(v, depth + 1, short)
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self._scrub(item, depth + 1, short) for item in value]
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, (int, float)):
            text = json.dumps(value)
            hit = text in self._texts or short is not None and (text, False) in short
            return REDACTED if hit else value
        return self.text(str(value))


#: The shortest text searched for in free text: a shorter secret (`"e"`) would be found in
#: every word, garbling logs and, by where the marks fall, giving itself away. It is still
#: redacted where it is (its parameter), not where it is only mentioned.
MIN_SEARCHED = 4

#: A run of text that may be base64 (standard or URL-safe) of something, with its padding.
_BASE64_RUN: Final = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_URLSAFE: Final = str.maketrans("+/", "-_")
#: A secret longer than this is searched for percent-encoded only as Python's `quote` and
#: `quote_plus` write it (its pattern of alternatives would be large).
_PERCENT_LONGEST: Final = 1024


def _base64_cores(secret: str) -> set[str]:
    """What any base64 text holding `secret` holds, whatever comes before and after it: for
    each of the three places the secret's bytes may start in a 3-byte group, the characters
    that encode its bits only, in the standard alphabet and the URL-safe one."""
    data = secret.encode("utf-8", "surrogatepass")
    cores = set()
    for shift in range(3):
        encoded = base64.b64encode(bytes(shift) + data + bytes(2)).decode("ascii")
        start, end = -(-8 * shift // 6), 8 * (shift + len(data)) // 6
        if end - start >= MIN_SEARCHED:
            cores.add(encoded[start:end])
            cores.add(encoded[start:end].translate(_URLSAFE))
    return cores


def _percent_pattern(secret: str) -> re.Pattern[str]:
    """`secret` with each character as itself or percent-encoded (its UTF-8 bytes, hex in
    either case; a space also as `+`)."""
    parts = []
    for char in secret:
        encoded = "".join(
            "%" + "".join(d if d.isdigit() else f"[{d}{d.upper()}]" for d in f"{byte:02x}")
            for byte in char.encode("utf-8", "surrogatepass")
        )
        options = [re.escape(char), encoded, *([r"\+"] if char == " " else [])]
        parts.append(f"(?:{'|'.join(options)})")
    return re.compile("".join(parts))


def _searched_texts(value: Any) -> set[str]:
    """The texts of the strings and numbers in `value` long enough to be searched for in free
    text (as themselves, not their JSON or repr escapes)."""
    if isinstance(value, str):
        return {value} if len(value) >= MIN_SEARCHED else set()
    if isinstance(value, bool) or value is None:
        return set()
    if isinstance(value, (int, float)):
        return {text for text in {json.dumps(value), str(value)} if len(text) >= MIN_SEARCHED}
    found: set[str] = set()
    if isinstance(value, Mapping):
        for item in value.values():
            found |= _searched_texts(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            found |= _searched_texts(item)
    return found


def _leaves(value: Any) -> set[tuple[str, bool]]:
    """The strings in `value` and its numbers' JSON texts, whatever their length (not true,
    false or null, which are everywhere), each with whether it is a string: a value equal
    to one is the secret itself."""
    if isinstance(value, str):
        return {(value, True)} if value else set()
    if isinstance(value, bool) or value is None:
        return set()
    if isinstance(value, (int, float)):
        return {(json.dumps(value), False)}
    found: set[tuple[str, bool]] = set()
    if isinstance(value, Mapping):
        for item in value.values():
            found |= _leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            found |= _leaves(item)
    return found


def _quoted_forms(secret: str) -> dict[str, str]:
    """A short string secret as a JSON string and a Python repr show it, with the quoted
    marker each is replaced by (a longer one is found bare, inside them too). None for one
    without a letter or a digit (`","`, `": "`): its quoted form is JSON's own punctuation."""
    if len(secret) >= MIN_SEARCHED or not any(char.isalnum() for char in secret):
        return {}
    return {json.dumps(secret): f'"{REDACTED}"', repr(secret): repr(REDACTED)}


def _encoded_forms(value: str) -> set[str]:
    """How a string secret shows once percent-encoded as Python writes it (other encoders,
    and base64, are found by `Scrubber.text`'s patterns)."""
    return {quote(value, safe=""), quote(value), quote_plus(value, safe="")}  # (quote: `/` kept)


def _text_forms(value: Any) -> set[str]:
    if isinstance(value, str):
        forms = {value, json.dumps(value)[1:-1], repr(value)[1:-1]}
        if len(value) >= MIN_SEARCHED:  # (a short one is not searched for, encoded or not)
            forms |= _encoded_forms(value)
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


def url_credentials(url: str) -> tuple[str, dict[str, str]]:
    """`http://user:password@host/path` as the URL without them and the Basic authorization
    header that sends them (urllib sends no credentials from a URL: it took `user:password@host`
    for a host name, and said the name was not known)."""
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url, {}
    except ValueError:  # not a URL urllib can split: nothing to take out of it
        return url, {}
    user = unquote(parts.username or "")
    password = unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host)), {"Authorization": f"Basic {token}"}
