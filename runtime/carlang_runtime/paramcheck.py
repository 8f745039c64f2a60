"""Checking tool-call parameters against a tool's JSON Schema, built once per tool.

Two layers, so that findings line up with CAR's:

- the *shape* layer is what CAR's verifier checks: each `required` parameter is present, and
  each parameter with a declared top-level `type` has that JSON type (an integer-valued float
  counts as an integer). Extra parameters are allowed, as in CAR (models send extras).
- the *constraint* layer is everything else a JSON Schema can say (enum, ranges, patterns,
  nested items, `additionalProperties: false`, ...), checked with `jsonschema` and only built
  when the schema says something the shape layer does not.

`{}` is a schemaless tool: nothing is checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ParamFinding", "ParamChecker", "json_type_name"]

FindingKind = Literal["missing", "type", "constraint", "invalid_schema"]

# Keywords the shape layer fully covers (or that carry no constraint).
_SHAPE_ROOT_KEYS = frozenset(
    {
        "type",
        "properties",
        "required",
        "description",
        "title",
        "$schema",
        "$id",
        "examples",
        "default",
        "$comment",
    }
)
_SHAPE_PROPERTY_KEYS = frozenset(
    {"type", "description", "title", "default", "examples", "$comment"}
)


@dataclass(frozen=True, slots=True)
class ParamFinding:
    """One problem with a call's parameters. `param` is the top-level parameter concerned
    (empty for whole-object findings); `detail` completes a sentence about it."""

    kind: FindingKind
    param: str
    detail: str
    path: str = ""


def json_type_name(value: Any) -> str:
    """The JSON type of a value as CAR names it (`number` for integers and floats alike)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _has_type(value: Any, type_name: object) -> bool:
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "integer":
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if type_name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "object":
        return isinstance(value, Mapping)
    if type_name == "array":
        return isinstance(value, (list, tuple))
    if type_name == "null":
        return value is None
    return True  # a type name JSON Schema does not define constrains nothing


def _needs_constraints(schema: Mapping[str, Any]) -> bool:
    if any(key not in _SHAPE_ROOT_KEYS for key in schema):
        return True
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping):
        return True
    return any(
        not isinstance(prop, Mapping) or any(key not in _SHAPE_PROPERTY_KEYS for key in prop)
        for prop in properties.values()
    )


class ParamChecker:
    """The parameter check for one tool schema; build once, call per action."""

    __slots__ = ("tool", "schema", "_required", "_types", "_validator", "_schema_error")

    def __init__(self, tool: str, schema: Mapping[str, Any]) -> None:
        self.tool = tool
        self.schema = schema
        required = schema.get("required", [])
        self._required: tuple[str, ...] = tuple(
            r for r in (required if isinstance(required, list) else []) if isinstance(r, str)
        )
        properties = schema.get("properties", {})
        self._types: dict[str, tuple[str, ...]] = {}
        if isinstance(properties, Mapping):
            for name, prop in properties.items():
                declared = prop.get("type") if isinstance(prop, Mapping) else None
                if isinstance(declared, str):
                    self._types[name] = (declared,)
                elif isinstance(declared, list):
                    self._types[name] = tuple(str(t) for t in declared)
        self._validator: Any = None
        self._schema_error: str | None = None
        if schema and _needs_constraints(schema):
            self._build_validator()

    def _build_validator(self) -> None:
        # jsonschema costs ~80 ms to import; only schemas with real constraints pay for it.
        import jsonschema
        from jsonschema.validators import validator_for

        schema = dict(self.schema)
        cls = validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            self._schema_error = exc.message
            return
        self._validator = cls(schema)

    def check(self, params: Mapping[str, Any]) -> list[ParamFinding]:
        """Every finding for `params`, shape findings first (required, then types)."""
        findings: list[ParamFinding] = []
        if self._schema_error is not None:
            findings.append(ParamFinding("invalid_schema", "", self._schema_error))
            return findings
        for name in self._required:
            if name not in params:
                findings.append(ParamFinding("missing", name, "is missing"))
        for name, value in params.items():
            expected = self._types.get(name)
            if expected and not any(_has_type(value, t) for t in expected):
                findings.append(
                    ParamFinding(
                        "type",
                        name,
                        f"expected {'|'.join(expected)}, got {json_type_name(value)}",
                    )
                )
        if self._validator is not None:
            findings.extend(self._constraint_findings(params))
        return findings

    def _constraint_findings(self, params: Mapping[str, Any]) -> list[ParamFinding]:
        found = []
        for error in self._validator.iter_errors(params):
            schema_path = list(error.relative_schema_path)
            if schema_path == ["required"]:
                continue  # reported by the shape layer
            if (
                len(schema_path) == 3
                and schema_path[0] == "properties"
                and schema_path[2] == "type"
            ):
                continue  # reported by the shape layer
            path = list(error.absolute_path)
            param = str(path[0]) if path else ""
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[1:])
            found.append(ParamFinding("constraint", param, error.message, where))
        found.sort(key=lambda f: (f.param, f.path, f.detail))
        return found
