"""Static types for the checker: what a variable, a field or an expression is known to be.

`dyn` is "not known" and is compatible with everything; `number` is a JSON Schema "number",
which arrives as an int or a double. A map may know its fields (from a JSON Schema's
`properties`); `closed` means those are all it can have, so any other field is a mistake.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

__all__ = [
    "Type",
    "DYN",
    "BOOL",
    "INT",
    "UINT",
    "DOUBLE",
    "STRING",
    "BYTES",
    "NULL",
    "TIMESTAMP",
    "DURATION",
    "TYPE",
    "NUMBER",
    "list_of",
    "map_of",
    "optional_of",
    "from_json_schema",
    "join",
    "value_type",
]


@dataclass(frozen=True, slots=True)
class Type:
    """A static type. `element` is a list's element or a map's value type; `fields` are a
    map's known fields; `partial` are fields a value may lack: optional properties without a
    default, and fields only some of the joined schemas have."""

    kind: str
    element: Type | None = None
    fields: Mapping[str, Type] | None = field(default=None, hash=False, compare=False)
    closed: bool = False
    partial: frozenset[str] = frozenset()
    #: Globs naming more fields a closed map may have (declared state families: `build.*`),
    #: each with its type.
    patterns: Mapping[str, Type] = field(default_factory=dict, hash=False, compare=False)
    #: The only values it can have, when a schema lists them (`"EUR" | "USD"`, an `enum`).
    values: frozenset[Any] | None = field(default=None, hash=False, compare=False)
    #: Values it is known to have, where others are possible too (`action.tool` in a policy
    #: of every action: the declared tools, and an MCP server's): a string a letter or two
    #: from one of them, and none of them, is a typo to report.
    known_values: frozenset[str] | None = field(default=None, hash=False, compare=False)

    def __str__(self) -> str:
        if self.kind == "list" and self.element is not None and self.element.kind != "dyn":
            return f"list({self.element})"
        if self.kind == "optional":
            return f"optional_type({self.element or DYN})"
        if self.kind == "map" and self.fields:
            return "map{" + ", ".join(sorted(self.fields)) + "}"
        return self.kind

    @property
    def known(self) -> bool:
        """Whether the type says anything (not `dyn`)."""
        return self.kind != "dyn"


DYN: Final = Type("dyn")
BOOL: Final = Type("bool")
INT: Final = Type("int")
UINT: Final = Type("uint")
DOUBLE: Final = Type("double")
NUMBER: Final = Type("number")
STRING: Final = Type("string")
BYTES: Final = Type("bytes")
NULL: Final = Type("null")
TIMESTAMP: Final = Type("timestamp")
DURATION: Final = Type("duration")
TYPE: Final = Type("type")


def list_of(element: Type) -> Type:
    """A list of `element`."""
    return Type("list", element)


def optional_of(element: Type) -> Type:
    """An optional of `element` (cel-go's `optional_type(T)`)."""
    return Type("optional", element)


def map_of(
    element: Type = DYN,
    fields: Mapping[str, Type] | None = None,
    closed: bool = False,
    patterns: Mapping[str, Type] | None = None,
) -> Type:
    """A map with values of `element`, and, when known, its fields (`patterns`: globs of
    more fields a closed map may have, each with its type)."""
    return Type("map", element, fields, closed, patterns=dict(patterns or {}))


_JSON_KINDS: Final = {
    "string": STRING,
    "integer": INT,
    "number": NUMBER,
    "boolean": BOOL,
    "null": NULL,
}


def from_json_schema(schema: Any) -> Type:
    """The static type of values a JSON Schema accepts (`dyn` when it cannot tell)."""
    if not isinstance(schema, Mapping):
        return DYN
    if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
        joined = join(value_type(value) for value in schema["enum"])
        if joined.kind == "string" and all(isinstance(v, str) for v in schema["enum"]):
            return replace(joined, values=frozenset(schema["enum"]))
        return joined
    if "const" in schema:
        return value_type(schema["const"])
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return join(from_json_schema(option) for option in schema[key])
    declared = schema.get("type")
    if isinstance(declared, list):
        return join(from_json_schema({**schema, "type": one}) for one in declared)
    if declared in _JSON_KINDS:
        return _JSON_KINDS[declared]
    if declared == "array":
        return list_of(from_json_schema(schema.get("items")))
    if declared == "object" or "properties" in schema:
        return _object(schema)
    return DYN


def _object(schema: Mapping[str, Any]) -> Type:
    properties = schema.get("properties")
    extra = schema.get("additionalProperties")
    element = from_json_schema(extra) if isinstance(extra, Mapping) else DYN
    if not isinstance(properties, Mapping):
        return map_of(element)
    fields = {name: from_json_schema(sub) for name, sub in properties.items()}
    # With properties listed, a field outside them is a mistake unless the schema says
    # explicitly that other fields are welcome. An empty list of them is a tool without
    # parameters (`tool ping()`, an MCP tool with no arguments): every field is a mistake.
    closed = extra is None or extra is False
    # A property neither required nor defaulted (`limit?: int`) may be left out of a value
    # (a call's defaults are filled in before any policy sees it, so those are always there)
    required = schema.get("required")
    needed = set(required) if isinstance(required, list) else set()
    partial = frozenset(
        name
        for name, sub in properties.items()
        if name not in needed and not (isinstance(sub, Mapping) and "default" in sub)
    )
    return Type("map", element, fields, closed, partial)


def value_type(value: Any) -> Type:
    """The static type of a JSON value."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, str):
        return STRING
    if isinstance(value, list):
        return list_of(join(value_type(item) for item in value) if value else DYN)
    if isinstance(value, dict):
        return map_of(fields={str(k): value_type(v) for k, v in value.items()})
    return DYN


def join(types: Iterable[Type]) -> Type:
    """The type of a value that has one of `types`: itself if they agree, `number` for ints
    and doubles, a map whose fields are the union (those missing from some are `partial`),
    else `dyn`."""
    options = list(types)
    if not options:
        return DYN
    kinds = {option.kind for option in options}
    if kinds <= {"int", "double", "number"} and len(kinds) > 1:
        return NUMBER
    if len(kinds) != 1:
        return DYN
    first = options[0]
    if first.kind == "list":
        return list_of(join(option.element or DYN for option in options))
    if first.kind == "optional":
        return optional_of(join(option.element or DYN for option in options))
    if first.kind == "map":
        return _join_maps(options)
    if any(option.values is None for option in options):
        return replace(first, values=None)  # one of them may be anything of its kind
    return replace(first, values=frozenset().union(*(o.values or () for o in options)))


def _join_maps(options: list[Type]) -> Type:
    known = [option.fields for option in options]
    if any(fields is None for fields in known):
        return map_of()
    field_sets = [fields for fields in known if fields is not None]
    names = {name for fields in field_sets for name in fields}
    joined = {name: join(fields[name] for fields in field_sets if name in fields) for name in names}
    partial = frozenset(name for name in names if any(name not in f for f in field_sets))
    partial |= frozenset(name for option in options for name in option.partial)
    closed = all(option.closed for option in options)
    return Type("map", DYN, joined, closed, partial)
