"""Types of tool parameters and state keys: their JSON Schema, and checking a literal against
one (without jsonschema, which the compiler does not need for its own types).

    string  int  float  bool  any  object  list[T]  map[T]  "a" | "b"
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from . import ast

__all__ = ["SIMPLE_TYPES", "type_schema", "check_value", "describe_type", "unknown_simple_types"]

SIMPLE_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "any": {},
    "object": {"type": "object"},
}


def type_schema(type_: ast.TypeExpr) -> dict[str, Any]:
    """The JSON Schema of a type expression (unknown simple types give `{}`; see
    `unknown_simple_types`)."""
    if isinstance(type_, ast.SimpleType):
        return dict(SIMPLE_TYPES.get(type_.name.text, {}))
    if isinstance(type_, ast.ListType):
        return {"type": "array", "items": type_schema(type_.item)}
    if isinstance(type_, ast.MapType):
        return {"type": "object", "additionalProperties": type_schema(type_.item)}
    return {"type": "string", "enum": [option.value for option in type_.options]}


def unknown_simple_types(type_: ast.TypeExpr) -> list[ast.Name]:
    """Names used as types that are not types."""
    if isinstance(type_, ast.SimpleType):
        return [] if type_.name.text in SIMPLE_TYPES else [type_.name]
    if isinstance(type_, (ast.ListType, ast.MapType)):
        return unknown_simple_types(type_.item)
    return []


def describe_type(type_: ast.TypeExpr) -> str:
    """A type as written in carlang."""
    if isinstance(type_, ast.SimpleType):
        return type_.name.text
    if isinstance(type_, ast.ListType):
        return f"list[{describe_type(type_.item)}]"
    if isinstance(type_, ast.MapType):
        return f"map[{describe_type(type_.item)}]"
    return " | ".join(json.dumps(o.value, ensure_ascii=False) for o in type_.options)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, Mapping):
        return "map"
    return type(value).__name__


def check_value(value: Any, type_: ast.TypeExpr) -> str | None:
    """None when `value` has type `type_`, else what is wrong ("expected int, got string").
    Column references (`$x` in tests) are not checked here."""
    if isinstance(value, ast.Column):
        return None
    if isinstance(type_, ast.SimpleType):
        name = type_.name.text
        kind = _kind(value)
        ok = {
            "string": kind == "string",
            "int": kind == "int" or (kind == "float" and float(value).is_integer()),
            "float": kind in ("int", "float"),
            "bool": kind == "bool",
            "any": True,
            "object": kind == "map",
        }.get(name, True)
        return None if ok else f"expected {name}, got {kind}"
    if isinstance(type_, ast.EnumType):
        options = [o.value for o in type_.options]
        if isinstance(value, str) and value in options:
            return None
        shown = ", ".join(f'"{o}"' for o in options)
        return f"expected one of {shown}, got {_show(value)}"
    if isinstance(type_, ast.ListType):
        if not isinstance(value, list):
            return f"expected {describe_type(type_)}, got {_kind(value)}"
        for index, item in enumerate(value):
            problem = check_value(item, type_.item)
            if problem is not None:
                return f"item {index}: {problem}"
        return None
    if not isinstance(value, Mapping):
        return f"expected {describe_type(type_)}, got {_kind(value)}"
    for key, item in value.items():
        problem = check_value(item, type_.item)
        if problem is not None:
            return f"key `{key}`: {problem}"
    return None


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return _kind(value)
