"""Checking tool-call parameters against a tool's JSON Schema, built once per tool.

Two layers, so that findings line up with CAR's:

- the *shape* layer is what CAR's verifier checks: each `required` parameter is present, and
  each parameter with a declared top-level `type` has that JSON type (an integer-valued float
  counts as an integer). Extra parameters are allowed, as in CAR (models send extras).
- the *constraint* layer is everything else a JSON Schema can say (enum, ranges, patterns,
  nested items, `additionalProperties: false`, ...), checked with `jsonschema` and only built
  when the schema says something the shape layer does not. Its patterns are matched in linear
  time, and a schema that could not be checked in bounded time is an invalid schema (see
  `schemacheck`).

`{}` is a schemaless tool: nothing is checked.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from jsonschema import SchemaError

    from .redact import SecretPath

__all__ = [
    "ParamFinding",
    "ParamChecker",
    "json_type_name",
    "filled_parameters",
    "parameter_defaults",
    "validation_errors",
    "with_defaults",
    "schema_error",
]

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


_EXACT_CLASSES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list, tuple),
    "null": (type(None),),
}


def _needs_constraints(schema: Mapping[str, Any]) -> bool:
    if any(key not in _SHAPE_ROOT_KEYS for key in schema):
        return True
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping):
        return True
    if any(
        not isinstance(prop, Mapping) or any(key not in _SHAPE_PROPERTY_KEYS for key in prop)
        for prop in properties.values()
    ):
        return True
    # a shape the metaschema refuses (`"type": "bogus"`) goes to jsonschema, which says so
    return not (_well_formed(schema) and all(map(_well_formed, properties.values())))


#: Keywords whose value is a string in a valid schema (of those the shape and subset layers
#: read without jsonschema, which would otherwise never see a schema that breaks them).
_STRING_KEYWORDS = ("description", "title", "$comment", "$schema", "$id")


def _well_formed(schema: Mapping[str, Any]) -> bool:
    """Whether the keywords of `schema` the shape and subset layers read hold what the
    metaschema asks of them (a known type name, a list of distinct names, ...)."""
    declared = schema.get("type")
    if declared is not None:
        types = declared if isinstance(declared, list) else [declared]
        if not types or not all(isinstance(t, str) and t in _TYPE_NAMES for t in types):
            return False
        if len(set(types)) != len(types):
            return False
    required = schema.get("required")
    if required is not None and not (
        isinstance(required, list)
        and all(isinstance(r, str) for r in required)
        and len(set(required)) == len(required)
    ):
        return False
    if "examples" in schema and not isinstance(schema["examples"], list):
        return False
    return all(isinstance(schema.get(key, ""), str) for key in _STRING_KEYWORDS)


# Keywords `_SubsetValidator` implements; a schema using only these (all that carlang's own
# types produce) is checked without jsonschema, which is ~10x slower per call and costs ~80 ms
# to import.
_SUBSET_KEYWORDS = frozenset(
    {
        "type",
        "enum",
        "items",
        "properties",
        "required",
        "additionalProperties",
        "description",
        "title",
        "default",
        "examples",
        "$comment",
        "$schema",
        "$id",
    }
)
_TYPE_NAMES = frozenset({"string", "integer", "number", "boolean", "object", "array", "null"})


def _in_subset(schema: object) -> bool:
    if not isinstance(schema, Mapping) or any(key not in _SUBSET_KEYWORDS for key in schema):
        return False
    if not _well_formed(schema):
        return False
    if "enum" in schema and not isinstance(schema["enum"], list):
        return False
    children: list[object] = []
    if "items" in schema:
        children.append(schema["items"])
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping):
        return False
    children.extend(properties.values())
    extra = schema.get("additionalProperties", True)
    if not isinstance(extra, bool):
        children.append(extra)
    return all(_in_subset(child) for child in children)


def _fits_subset(schema: Mapping[str, Any]) -> bool:
    """`_in_subset`, False for a schema nested too deeply to walk (jsonschema says so)."""
    try:
        return _in_subset(schema)
    except RecursionError:
        return False


def schema_error(schema: Mapping[str, Any]) -> SchemaError | None:
    """jsonschema's `SchemaError` (its `path` says where in `schema`) when `schema` is not a
    valid JSON Schema, as `ParamChecker` would find it (a call then gets an `invalid_schema`
    finding); None when it is valid. A schema of plain shapes or of the subset carlang checks
    itself is decided without importing jsonschema."""
    if not schema or not _needs_constraints(schema) or _fits_subset(schema):
        return None
    import jsonschema

    from .schemacheck import check_schema

    try:
        check_schema(dict(schema))
    except jsonschema.SchemaError as exc:
        return exc
    return None


def _constrained_properties(
    schema: Mapping[str, Any],
) -> tuple[tuple[str, Mapping[str, Any]], ...] | None:
    """For a subset schema of an object whose constraints all sit on its properties and its
    `additionalProperties` (its other keys are shape keys): those properties, with their
    schemas. Everything else the validator would find there is a required or a property's
    type, which the shape layer reports and `_constraint_findings` drops, so only these (and
    the parameters no property names) need checking. None otherwise."""
    if any(key not in _SHAPE_ROOT_KEYS and key != "additionalProperties" for key in schema):
        return None
    if schema.get("type", "object") != "object":
        return None  # a type that parameters (an object) never have: the validator says so
    properties = schema.get("properties", {})
    return tuple(
        (name, prop)
        for name, prop in properties.items()
        if any(key not in _SHAPE_PROPERTY_KEYS for key in prop)
    )


def _json_equal_for_enum(a: Any, b: Any) -> bool:
    # jsonschema's `equal`: a bool is never equal to a number
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


class _SubsetError:
    """What jsonschema's ValidationError offers the constraint layer: where, what, and the
    value it is about."""

    __slots__ = ("message", "absolute_path", "relative_schema_path", "instance")

    def __init__(
        self, message: str, path: list[str | int], schema_path: list[str | int], instance: Any
    ) -> None:
        self.message = message
        self.absolute_path = path
        self.relative_schema_path = schema_path
        self.instance = instance


class _SubsetValidator:
    """The subset of JSON Schema carlang's types use, with jsonschema's error wording."""

    __slots__ = ("schema",)

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema

    def iter_errors(self, instance: Any) -> list[_SubsetError]:
        found: list[_SubsetError] = []
        self._check(instance, self.schema, [], [], found)
        return found

    def _check(
        self,
        value: Any,
        schema: Mapping[str, Any],
        path: list[str | int],
        schema_path: list[str | int],
        found: list[_SubsetError],
    ) -> None:
        declared = schema.get("type")
        if declared is not None:
            types = declared if isinstance(declared, list) else [declared]
            if not any(_has_type(value, t) for t in types):
                shown = ", ".join(repr(t) for t in types)
                found.append(
                    _SubsetError(
                        f"{value!r} is not of type {shown}", path, [*schema_path, "type"], value
                    )
                )
        enum = schema.get("enum")
        if enum is not None and not any(_json_equal_for_enum(value, option) for option in enum):
            found.append(
                _SubsetError(
                    f"{value!r} is not one of {enum!r}", path, [*schema_path, "enum"], value
                )
            )
        if isinstance(value, (list, tuple)) and "items" in schema:
            for index, item in enumerate(value):
                self._check(item, schema["items"], [*path, index], [*schema_path, "items"], found)
        if isinstance(value, Mapping):
            self._check_object(value, schema, path, schema_path, found)

    def _check_object(
        self,
        value: Mapping[str, Any],
        schema: Mapping[str, Any],
        path: list[str | int],
        schema_path: list[str | int],
        found: list[_SubsetError],
    ) -> None:
        properties = schema.get("properties", {})
        for name, item in value.items():
            if name in properties:
                self._check(
                    item, properties[name], [*path, name], [*schema_path, "properties", name], found
                )
        self.check_unnamed(
            value, properties, schema.get("additionalProperties", True), path, schema_path, found
        )
        for name in schema.get("required", []):
            if name not in value:
                found.append(
                    _SubsetError(
                        f"{name!r} is a required property", path, [*schema_path, "required"], value
                    )
                )

    def check_unnamed(
        self,
        value: Mapping[str, Any],
        properties: Mapping[str, Any],
        extra: Any,
        path: list[str | int],
        schema_path: list[str | int],
        found: list[_SubsetError],
    ) -> None:
        """The members of object `value` that no property of its schema names, against the
        schema's `additionalProperties` (`extra`): refused when False, checked against it
        when a schema."""
        if extra is True:
            return
        unexpected = [name for name in value if name not in properties]
        if extra is False and unexpected:
            verb = "was" if len(unexpected) == 1 else "were"
            names = ", ".join(repr(n) for n in unexpected)
            message = f"Additional properties are not allowed ({names} {verb} unexpected)"
            found.append(_SubsetError(message, path, [*schema_path, "additionalProperties"], value))
        elif isinstance(extra, Mapping):
            for name in unexpected:
                self._check(
                    value[name], extra, [*path, name], [*schema_path, "additionalProperties"], found
                )


class ParamChecker:
    """The parameter check for one tool schema; build once, call per action."""

    __slots__ = (
        "tool",
        "schema",
        "_required",
        "_types",
        "_exact",
        "_validator",
        "_schema_error",
        "_constrained",
        "_properties",
        "_extra",
        "_secrets",
    )

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
        # The Python classes whose instances pass a parameter's type check outright: the
        # common case answered by one set lookup instead of a walk over the declared types.
        self._exact: dict[str, frozenset[type]] = {
            name: frozenset(cls for t in types for cls in _EXACT_CLASSES.get(t, ()))
            for name, types in self._types.items()
        }
        self._validator: Any = None
        self._schema_error: str | None = None
        self._constrained: tuple[tuple[str, Mapping[str, Any]], ...] | None = None
        # (with `_constrained`: what the parameters no property names are checked against)
        self._properties: Mapping[str, Any] = properties if isinstance(properties, Mapping) else {}
        self._extra: Any = schema.get("additionalProperties", True)
        self._secrets: tuple[SecretPath, ...] | None = None  # (found when a finding needs them)
        if schema and _needs_constraints(schema):
            if _fits_subset(schema):
                self._validator = _SubsetValidator(schema)
                self._constrained = _constrained_properties(schema)
            else:
                self._build_validator()

    def _build_validator(self) -> None:
        # jsonschema costs ~80 ms to import; only schemas with real constraints pay for it.
        import jsonschema
        from jsonschema.validators import validator_for

        from .schemacheck import check_schema, linear_validator, schema_problem_text

        schema = dict(self.schema)
        cls = validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            # (a pattern RE2 refuses, or a `$ref` back to itself, is an invalid schema too:
            # the validator matches patterns in linear time, and would never finish there)
            check_schema(schema, cls)
        except jsonschema.SchemaError as exc:
            self._schema_error = schema_problem_text(exc)
            return
        self._validator = linear_validator(schema, cls)

    def check(
        self, params: Mapping[str, Any], redact: Sequence[SecretPath] = ()
    ) -> list[ParamFinding]:
        """Every finding for `params`, shape findings first (required, then types). A finding
        never quotes the value of a secret parameter (`writeOnly` in the schema, at any depth)
        or of a position in `redact` (a program's `redact` paths): `'[REDACTED]' does not
        match ...`; nor that value where another parameter holds it too (a token pasted into
        `mode` as well: `'[REDACTED]' is not one of ['a', 'b']`)."""
        findings = self._findings(params, redact)
        if not findings or self._schema_error is not None:
            return findings
        secrets = (*self.secret_paths(), *redact)
        if not secrets:
            return findings
        from .redact import Scrubber, secret_values

        values = secret_values(params, secrets)
        if not values:
            return findings
        scrubber = Scrubber(values)
        return [replace(f, detail=scrubber.text(f.detail)) for f in findings]

    def _findings(
        self, params: Mapping[str, Any], redact: Sequence[SecretPath]
    ) -> list[ParamFinding]:
        findings: list[ParamFinding] = []
        if self._schema_error is not None:
            findings.append(ParamFinding("invalid_schema", "", self._schema_error))
            return findings
        for name in self._required:
            if name not in params:
                findings.append(ParamFinding("missing", name, "is missing"))
        exact = self._exact
        for name, value in params.items():
            classes = exact.get(name)
            if classes is None or type(value) in classes:
                continue
            expected = self._types[name]
            if expected and not any(_has_type(value, t) for t in expected):
                findings.append(
                    ParamFinding(
                        "type",
                        name,
                        f"expected {'|'.join(expected)}, got {json_type_name(value)}",
                    )
                )
        if self._validator is not None:
            try:
                findings.extend(self._constraint_findings(params, redact))
            except _unresolvable() as exc:  # a `$ref` to nowhere: no call can be checked
                ref = getattr(exc, "ref", "")
                self._schema_error = f"its `$ref` to {ref!r} does not resolve (nothing is fetched)"
                self._validator = None
                return [ParamFinding("invalid_schema", "", self._schema_error)]
            except _pattern_refused() as exc:  # (one `check_schema` could not see: a `$ref`
                self._schema_error = str(exc)  # into a place that is no schema keyword)
                self._validator = None
                return [ParamFinding("invalid_schema", "", self._schema_error)]
            except RecursionError:  # a value nested deeper than Python's stack: fail closed
                findings.append(ParamFinding("constraint", "", _TOO_DEEP))
        return findings

    def _constraint_findings(
        self, params: Mapping[str, Any], redact: Sequence[SecretPath]
    ) -> list[ParamFinding]:
        found = []
        errors: list[Any]
        if self._constrained is not None:  # only these properties can make a finding kept
            errors = []
            for name, schema in self._constrained:
                if name in params:
                    self._validator._check(
                        params[name], schema, [name], ["properties", name], errors
                    )
            self._validator.check_unnamed(params, self._properties, self._extra, [], [], errors)
        else:
            errors = list(self._validator.iter_errors(params))  # (resolving `$ref`s as it goes)
        properties = self.schema.get("properties", {})
        for error in errors:
            schema_path = list(error.relative_schema_path)
            # What the shape layer reports (`required` and the `type` of a property, written in
            # the schema itself) is not said twice; a `$ref` gives its errors the same path
            # (jsonschema does not count the reference), but the shape layer never saw the
            # schema it leads to: those are kept. (`schema`: the one that failed; the subset
            # validator, which follows no reference, has none.)
            failed = getattr(error, "schema", None)
            if schema_path == ["required"] and (failed is None or failed == self.schema):
                continue
            if (
                len(schema_path) == 3
                and schema_path[0] == "properties"
                and schema_path[2] == "type"
                and (failed is None or failed == properties.get(schema_path[1]))
            ):
                continue
            path = list(error.absolute_path)
            param = str(path[0]) if path else ""
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[1:])
            detail = error.message
            secrets = (*self.secret_paths(), *redact)
            if secrets:
                from .redact import redacted_message

                detail = redacted_message(detail, error.instance, path, secrets)
            found.append(ParamFinding("constraint", param, detail, where))
        found.sort(key=lambda f: (f.param, f.path, f.detail))
        return found

    def secret_paths(self) -> tuple[SecretPath, ...]:
        """Where the schema's secret parameters are (`redact.secret_paths`), found once."""
        if self._secrets is None:
            from .redact import secret_paths

            self._secrets = secret_paths(self.schema)
        return self._secrets


def _unresolvable() -> type[Exception]:
    """What jsonschema raises for a `$ref` it cannot resolve (only loaded with it)."""
    from referencing.exceptions import Unresolvable

    return Unresolvable


def _pattern_refused() -> type[Exception]:
    """What the linear-time pattern match raises for a pattern RE2 cannot compile."""
    from .schemacheck import PatternRefused

    return PatternRefused


_TOO_DEEP = "the value is nested too deeply to be checked against the schema"


def finding_message(tool: str, finding: ParamFinding) -> str:
    """One finding as carlang's diagnostics word it (CL0307-CL0309: the verifier's and a
    test block's); `validation_errors` has the runtime's wording, which CAR's match."""
    if finding.kind == "missing":
        return f"tool '{tool}': missing required parameter '{finding.param}'"
    if finding.kind == "type":
        return f"tool '{tool}': parameter '{finding.param}' has wrong type: {finding.detail}"
    if finding.kind == "invalid_schema":
        return f"tool '{tool}' has an invalid registered JSON Schema: {finding.detail}"
    subject = f"parameter '{finding.param}{finding.path}'" if finding.param else "parameters"
    return f"tool '{tool}': {subject}: {finding.detail}"


def validation_errors(tool: str, findings: list[ParamFinding]) -> list[str]:
    """The findings as car-validator's messages (the runtime's wording, as CAR's
    `validate_action` writes them)."""
    messages = []
    for finding in findings:
        if finding.kind == "missing":
            messages.append(f"missing required parameter '{finding.param}' for tool '{tool}'")
        elif finding.kind == "invalid_schema":
            messages.append(
                f"tool '{tool}' has an invalid registered JSON Schema: {finding.detail}"
            )
        else:
            at = f"/{finding.param}{finding.path.replace('.', '/')}" if finding.param else ""
            messages.append(
                f"tool '{tool}' parameter validation: {finding.detail} (at {at or '/'})"
            )
    return messages


def parameter_defaults(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The declared `default` of each top-level parameter of a tool's JSON Schema (a program's
    `limit: int = 100` is one, as is an MCP server's `"default": 10`). A `null` default is
    left out: it says the parameter may be absent (Python's `lang: str = None`, which
    servers write as `{"type": "string", "default": null}`), not that null is sent."""
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return {}
    return {
        name: spec["default"]
        for name, spec in properties.items()
        if isinstance(spec, Mapping) and spec.get("default") is not None
    }


def with_defaults(parameters: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """A call's parameters with the `defaults` of the ones it leaves out: the language's rule
    for a call written in a program, so that tools and policies see every parameter the
    signature promises, for a call from anywhere (a model, an MCP client, JSON). A default is
    copied: a call never shares a list or map with another."""
    missing = [name for name in defaults if name not in parameters]
    if not missing:
        return dict(parameters)
    return {**parameters, **{name: copy.deepcopy(defaults[name]) for name in missing}}


def filled_parameters(parameters: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """`with_defaults` of a call's `parameters` with the defaults its tool's `schema` declares:
    the call as the runtime makes it (`Runtime.filled`, which keeps each tool's defaults)."""
    return with_defaults(parameters, parameter_defaults(schema))
