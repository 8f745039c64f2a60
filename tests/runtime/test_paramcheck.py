"""Parameter checking: the subset validator (carlang's own types) agrees with jsonschema,
finding for finding, and schemas beyond the subset go to jsonschema."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
from carlang_runtime.paramcheck import ParamChecker, _in_subset, _SubsetValidator
from hypothesis import given
from hypothesis import strategies as st

leaf_types = st.sampled_from(
    [
        {"type": "string"},
        {"type": "integer"},
        {"type": "number"},
        {"type": "boolean"},
        {},
        {"type": ["string", "null"]},
        {"type": "string", "enum": ["a", "b"]},
        {"enum": [1, True, "x"]},
    ]
)
schemas = st.recursive(
    leaf_types,
    lambda inner: st.one_of(
        st.builds(lambda items: {"type": "array", "items": items}, inner),
        st.builds(
            lambda extra: {"type": "object", "additionalProperties": extra},
            st.one_of(inner, st.booleans()),
        ),
        st.builds(
            lambda props, required, extra: {
                "type": "object",
                "properties": props,
                "required": [k for k in props if k in required],
                "additionalProperties": extra,
            },
            st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3),
            st.lists(st.sampled_from(["a", "b", "c"])),
            st.booleans(),
        ),
    ),
    max_leaves=6,
)
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from([1.0, 2.5])
    | st.sampled_from(["a", "b", "x"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), inner, max_size=3)
    ),
    max_leaves=8,
)


_EXTRAS = re.compile(r"^Additional properties are not allowed \((.*) (was|were) unexpected\)$")


def _normalised(message: str) -> str:
    """jsonschema lists unexpected properties in set order, which varies with the hash seed;
    carlang lists them in the instance's order. Compare them as sets."""
    match = _EXTRAS.match(message)
    if match is None:
        return message
    names = ", ".join(sorted(match.group(1).split(", ")))
    return f"Additional properties are not allowed ({names} {match.group(2)} unexpected)"


def described(errors: Any) -> list[tuple[list[Any], str, list[Any]]]:
    return sorted(
        (list(e.absolute_path), _normalised(e.message), list(e.relative_schema_path))
        for e in errors
    )


@given(schemas, values)
def test_subset_validator_agrees_with_jsonschema(schema: dict[str, Any], value: Any) -> None:
    assert _in_subset(schema)
    ours = described(_SubsetValidator(schema).iter_errors(value))
    theirs = described(jsonschema.Draft202012Validator(schema).iter_errors(value))
    assert ours == theirs


def test_schemas_beyond_the_subset_use_jsonschema() -> None:
    checker = ParamChecker(
        "t", {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}}}
    )
    (finding,) = checker.check({"n": 1})
    assert finding.kind == "constraint" and finding.detail == "1 is less than the minimum of 3"


def test_shape_findings_come_first_and_are_not_repeated() -> None:
    checker = ParamChecker(
        "t",
        {
            "type": "object",
            "properties": {"e": {"type": "string", "enum": ["a"]}, "n": {"type": "integer"}},
            "required": ["n"],
        },
    )
    findings = checker.check({"e": 5})
    assert [(f.kind, f.param) for f in findings] == [
        ("missing", "n"),
        ("type", "e"),
        ("constraint", "e"),
    ]


@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), schemas, max_size=3),
    st.lists(st.sampled_from(["a", "b", "c"])),
    st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), values, max_size=4),
    st.none() | st.booleans() | schemas,
)
def test_checking_only_constrained_properties_finds_what_the_whole_schema_finds(
    properties: dict[str, Any], required: list[str], params: dict[str, Any], extra: Any
) -> None:
    # (with or without `additionalProperties`, as every tool carlang declares has it false)
    schema = {"type": "object", "properties": properties, "required": sorted(set(required))}
    if extra is not None:
        schema["additionalProperties"] = extra
    fast = ParamChecker("t", schema)
    assert fast._validator is None or fast._constrained is not None  # (the fast path)
    whole = ParamChecker("t", schema)
    whole._constrained = None  # the whole schema through the validator
    assert fast.check(params) == whole.check(params)


def test_a_reference_that_does_not_resolve_is_an_invalid_schema_not_a_crash() -> None:
    """A schema from a tool list or a live MCP server is not compiled first: a `$ref` to
    nowhere makes every call invalid (fail closed), said once per call."""
    checker = ParamChecker("t", {"type": "object", "properties": {"x": {"$ref": "#/$defs/no"}}})
    for _ in range(2):
        (finding,) = checker.check({"x": 1})
        assert finding.kind == "invalid_schema"
        assert finding.detail == "its `$ref` to '/$defs/no' does not resolve (nothing is fetched)"


def test_a_parameter_whose_schema_is_a_ref_has_its_type_checked() -> None:
    """jsonschema gives the errors a `$ref` leads to the path of the property's own `type`
    (`properties/n/type`), which the shape layer reports, so they were dropped: a call with
    a string where the referenced schema says integer passed (FastMCP puts nested models in
    `$defs`). Only what the shape layer saw is left to it."""
    schema = {
        "$defs": {
            "N": {"type": "integer"},
            "P": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
        },
        "type": "object",
        "properties": {"n": {"$ref": "#/$defs/N"}, "m": {"type": "integer", "minimum": 0}},
        "required": ["m"],
    }
    checker = ParamChecker("t", schema)
    assert [(f.kind, f.param, f.detail) for f in checker.check({"n": "x", "m": 1})] == [
        ("constraint", "n", "'x' is not of type 'integer'")
    ]
    # the property's own type, and the schema's own `required`, once (by the shape layer)
    assert [(f.kind, f.param) for f in checker.check({"n": 1, "m": "y"})] == [("type", "m")]
    assert [(f.kind, f.param) for f in checker.check({"n": 1})] == [("missing", "m")]
    whole = ParamChecker("t", {"$defs": schema["$defs"], "$ref": "#/$defs/P"})
    assert [(f.kind, f.detail) for f in whole.check({})] == [
        ("constraint", "'n' is a required property")
    ]
