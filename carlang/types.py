"""Types of tool parameters and state keys: their JSON Schema, and checking a literal against
one (without jsonschema, which the compiler does not need for its own types).

    string  int  float  bool  any  object  list[T]  map[T]  "a" | "b"
    { name: T, other?: U = default }  T | U  int(min: 0, max: 9)  string(max_length: 64)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from . import ast

__all__ = [
    "value_kind",
    "SIMPLE_TYPES",
    "BOUNDS",
    "type_schema",
    "check_value",
    "describe_type",
    "unknown_simple_types",
    "bound_problems",
]

SIMPLE_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "any": {},
    "object": {"type": "object"},
}


#: Bounds a simple type may carry: carlang's name -> (JSON Schema keyword, the types it fits,
#: the kind of value it takes).
BOUNDS: dict[str, tuple[str, frozenset[str], str]] = {
    "min": ("minimum", frozenset({"int", "float"}), "number"),
    "max": ("maximum", frozenset({"int", "float"}), "number"),
    "exclusive_min": ("exclusiveMinimum", frozenset({"int", "float"}), "number"),
    "exclusive_max": ("exclusiveMaximum", frozenset({"int", "float"}), "number"),
    "multiple_of": ("multipleOf", frozenset({"int", "float"}), "number"),
    "min_length": ("minLength", frozenset({"string"}), "count"),
    "max_length": ("maxLength", frozenset({"string"}), "count"),
    "pattern": ("pattern", frozenset({"string"}), "string"),
    "format": ("format", frozenset({"string"}), "string"),
}


def type_schema(type_: ast.TypeExpr) -> dict[str, Any]:
    """The JSON Schema of a type expression (unknown simple types give `{}`; see
    `unknown_simple_types`)."""
    if isinstance(type_, ast.SimpleType):
        schema = dict(SIMPLE_TYPES.get(type_.name.text, {}))
        for name, value in type_.bounds:
            if name.text in BOUNDS:
                schema[BOUNDS[name.text][0]] = value.value
        return schema
    if isinstance(type_, ast.ListType):
        return {"type": "array", "items": type_schema(type_.item)}
    if isinstance(type_, ast.MapType):
        return {"type": "object", "additionalProperties": type_schema(type_.item)}
    if isinstance(type_, ast.ObjectType):
        properties: dict[str, Any] = {}
        required = []
        for field in type_.fields:
            schema = type_schema(field.type)
            if field.default is not None:
                schema["default"] = field.default.value
            if field.secret:  # as a parameter's `secret` (see `lower.py`): redacted everywhere
                schema["writeOnly"] = True
            properties[field.name.text] = schema
            if not field.optional and field.default is None:
                required.append(field.name.text)
        out: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            out["required"] = required
        out["additionalProperties"] = False
        return out
    if isinstance(type_, ast.UnionType):
        return {"anyOf": [type_schema(option) for option in type_.options]}
    return {"type": "string", "enum": [option.value for option in type_.options]}


def bound_problems(type_: ast.TypeExpr) -> list[tuple[ast.Node, str]]:
    """Bounds that name no bound, do not fit their type, or take the wrong kind of value."""
    problems: list[tuple[ast.Node, str]] = []
    if isinstance(type_, ast.SimpleType):
        seen: set[str] = set()
        for name, value in type_.bounds:
            found = BOUNDS.get(name.text)
            if found is None:
                problems.append(
                    (name, f"`{name.text}` is not a bound (bounds: {', '.join(BOUNDS)})")
                )
                continue
            if name.text in seen:
                problems.append((name, f"bound `{name.text}` is given twice"))
            seen.add(name.text)
            _, fits, kind = found
            if type_.name.text not in fits:
                problems.append(
                    (
                        name,
                        f"`{name.text}` does not apply to `{type_.name.text}`"
                        f" (it bounds {' and '.join(sorted(fits))})",
                    )
                )
            elif not _bound_value_ok(value.value, kind):
                wanted = {
                    "number": "a number",
                    "count": "a whole number >= 0",
                    "string": "a string",
                }
                problems.append(
                    (value, f"`{name.text}` takes {wanted[kind]}, not {_show(value.value)}")
                )
            elif name.text == "pattern":
                refused = _pattern_refused(value.value)
                if refused is not None:
                    problems.append((value, refused))
        if not problems:
            problems.extend(_range_problems(type_))
    elif isinstance(type_, (ast.ListType, ast.MapType)):
        problems.extend(bound_problems(type_.item))
    elif isinstance(type_, ast.ObjectType):
        for field in type_.fields:
            problems.extend(bound_problems(field.type))
    elif isinstance(type_, ast.UnionType):
        for option in type_.options:
            problems.extend(bound_problems(option))
    return problems


#: Pairs of bounds no value can meet at once when the first is above (or, `strict`, at) the
#: second: (lower, upper, strict).
_OPPOSED_BOUNDS: Final = (
    ("min", "max", False),
    ("exclusive_min", "max", True),
    ("min", "exclusive_max", True),
    ("exclusive_min", "exclusive_max", True),
    ("min_length", "max_length", False),
)


def _range_problems(type_: ast.SimpleType) -> list[tuple[ast.Node, str]]:
    """Bounds that each fit their type but leave no value: a `multiple_of` not above 0 (JSON
    Schema's rule: every call would be refused as an invalid schema), or a lower bound above
    the upper one (every call would be refused as out of range). Reported at the bound, once,
    rather than at every call."""
    given = {name.text: value for name, value in type_.bounds}
    problems: list[tuple[ast.Node, str]] = []
    step = given.get("multiple_of")
    if step is not None and step.value <= 0:
        problems.append((step, f"`multiple_of` must be above 0, not {json.dumps(step.value)}"))
    for lower, upper, strict in _OPPOSED_BOUNDS:
        low, high = given.get(lower), given.get(upper)
        if low is None or high is None:
            continue
        if low.value > high.value or (strict and low.value >= high.value):
            problems.append(
                (
                    high,
                    f"no value fits both `{lower}: {json.dumps(low.value)}` and"
                    f" `{upper}: {json.dumps(high.value)}`",
                )
            )
    return problems


def _pattern_refused(pattern: str) -> str | None:
    """Why a `pattern` bound cannot be used (matched in linear time, RE2 refuses it), or
    None. Imported here, as in `_bounds_problem`, to keep jsonschema off a plain start."""
    from carlang_runtime.schemacheck import PatternRefused, pattern_matches

    try:
        pattern_matches(pattern, "")
    except PatternRefused as refused:
        return str(refused)
    return None


def _bound_value_ok(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return kind == "number" or (float(value).is_integer() and value >= 0)


def unknown_simple_types(type_: ast.TypeExpr) -> list[ast.Name]:
    """Names used as types that are not types."""
    if isinstance(type_, ast.SimpleType):
        return [] if type_.name.text in SIMPLE_TYPES else [type_.name]
    if isinstance(type_, (ast.ListType, ast.MapType)):
        return unknown_simple_types(type_.item)
    if isinstance(type_, ast.ObjectType):
        return [n for f in type_.fields for n in unknown_simple_types(f.type)]
    if isinstance(type_, ast.UnionType):
        return [n for o in type_.options for n in unknown_simple_types(o)]
    return []


def describe_type(type_: ast.TypeExpr) -> str:
    """A type as written in carlang."""
    if isinstance(type_, ast.SimpleType):
        if not type_.bounds:
            return type_.name.text
        bounds = ", ".join(f"{n.text}: {json.dumps(v.value)}" for n, v in type_.bounds)
        return f"{type_.name.text}({bounds})"
    if isinstance(type_, ast.ObjectType):
        fields = []
        for field in type_.fields:
            default = (
                f" = {json.dumps(field.default.value, ensure_ascii=False)}"
                if field.default is not None
                else ""
            )
            mark = "?" if field.optional else ""
            secret = " secret" if field.secret else ""
            fields.append(f"{field.name.text}{mark}: {describe_type(field.type)}{secret}{default}")
        return "{ " + ", ".join(fields) + " }" if fields else "{}"
    if isinstance(type_, ast.UnionType):
        return " | ".join(describe_type(o) for o in type_.options)
    if isinstance(type_, ast.ListType):
        return f"list[{describe_type(type_.item)}]"
    if isinstance(type_, ast.MapType):
        return f"map[{describe_type(type_.item)}]"
    return " | ".join(json.dumps(o.value, ensure_ascii=False) for o in type_.options)


def value_kind(value: Any) -> str:
    """The kind of a JSON value as the type language names it (`int`, `list`, `map`, ...)."""
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
        kind = value_kind(value)
        if name == "string":
            ok = kind == "string"
        elif name == "int":
            ok = kind == "int" or (kind == "float" and float(value).is_integer())
        elif name == "float":
            ok = kind in ("int", "float")
        elif name == "bool":
            ok = kind == "bool"
        elif name == "object":
            ok = kind == "map"
        else:  # `any`, and a name that is no type (reported where it is declared)
            ok = True
        if not ok:
            return f"expected {name}, got {kind}"
        return _bounds_problem(value, type_) if type_.bounds else None
    if isinstance(type_, ast.EnumType):
        options = [o.value for o in type_.options]
        if isinstance(value, str) and value in options:
            return None
        shown = ", ".join(f'"{o}"' for o in options)
        return f"expected one of {shown}, got {_show(value)}"
    if isinstance(type_, ast.ListType):
        if not isinstance(value, list):
            return f"expected {describe_type(type_)}, got {value_kind(value)}"
        for index, item in enumerate(value):
            problem = check_value(item, type_.item)
            if problem is not None:
                return f"item {index}: {problem}"
        return None
    if isinstance(type_, ast.UnionType):
        problems = [check_value(value, option) for option in type_.options]
        if any(p is None for p in problems):
            return None
        return f"expected {describe_type(type_)}, got {_show(value)}"
    if not isinstance(value, Mapping):
        return f"expected {describe_type(type_)}, got {value_kind(value)}"
    if isinstance(type_, ast.ObjectType):
        return _object_problem(value, type_)
    for key, item in value.items():
        problem = check_value(item, type_.item)
        if problem is not None:
            return f"key `{key}`: {problem}"
    return None


def _object_problem(value: Mapping[str, Any], type_: ast.ObjectType) -> str | None:
    fields = {f.name.text: f for f in type_.fields}
    for key in value:
        if key not in fields:
            return f"unknown field `{key}` (fields: {', '.join(fields) or 'none'})"
    for name, field in fields.items():
        if name not in value:
            if not field.optional and field.default is None:
                return f"missing field `{name}`"
            continue
        problem = check_value(value[name], field.type)
        if problem is not None:
            return f"field `{name}`: {problem}"
    return None


def _bounds_problem(value: Any, type_: ast.SimpleType) -> str | None:
    # (here: jsonschema, which it imports, costs a fresh `carlang check` what it needs not)
    from carlang_runtime.schemacheck import PatternRefused, pattern_matches

    for name, bound in type_.bounds:
        limit = bound.value
        found = BOUNDS.get(name.text)
        if found is None or type_.name.text not in found[1] or not _bound_value_ok(limit, found[2]):
            continue  # reported where the type is declared (bound_problems)
        if name.text == "min" and value < limit:
            return f"{value} is below the minimum {limit}"
        if name.text == "max" and value > limit:
            return f"{value} is above the maximum {limit}"
        if name.text == "exclusive_min" and value <= limit:
            return f"{value} is not above {limit}"
        if name.text == "exclusive_max" and value >= limit:
            return f"{value} is not below {limit}"
        if name.text == "min_length" and len(value) < limit:
            return f"{_show(value)} is shorter than {limit} characters"
        if name.text == "max_length" and len(value) > limit:
            return f"{_show(value)} is longer than {limit} characters"
        if name.text == "pattern" and isinstance(limit, str):
            try:  # in linear time, as every call's value is (`schemacheck`)
                if not pattern_matches(limit, value):
                    return f"{_show(value)} does not match {limit}"
            except PatternRefused:
                return None  # (reported at the bound: `bound_problems`)
    return None


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return value_kind(value)
