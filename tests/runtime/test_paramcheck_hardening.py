"""Tool schemas an adversary writes, or an agent's values for them, cannot hang or crash the
parameter check: patterns are matched in linear time (RE2, as CEL's `matches`), a pattern RE2
cannot compile and a `$ref` that leads back to itself are invalid schemas, and a shape the
metaschema refuses (`"type": "bogus"`) is one too, however the schema arrives."""

from __future__ import annotations

import time
from typing import Any

import jsonschema
import pytest
from carlang_runtime import ir
from carlang_runtime.engine import Runtime
from carlang_runtime.paramcheck import (
    ParamChecker,
    ParamFinding,
    parameter_defaults,
    validation_errors,
)
from carlang_runtime.redact import secret_paths
from carlang_runtime.schemacheck import linear_validator

# ~2**27 steps for a backtracking engine (seconds to minutes); microseconds for RE2
EVIL = "a" * 27 + "!"
NESTED = "^(a+)+$"


def timed_check(schema: dict[str, Any], params: dict[str, Any]) -> list[ParamFinding]:
    checker = ParamChecker("t", schema)
    started = time.perf_counter()
    found = checker.check(params)
    assert time.perf_counter() - started < 1.0, "the check took backtracking time"
    return found


def details(found: list[ParamFinding]) -> list[tuple[str, str, str]]:
    return [(f.kind, f.param + f.path, f.detail) for f in found]


def test_a_pattern_is_matched_in_linear_time_with_jsonschemas_message() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": NESTED}}}
    assert details(timed_check(schema, {"a": EVIL})) == [
        ("constraint", "a", f"{EVIL!r} does not match {NESTED!r}")
    ]
    assert timed_check(schema, {"a": "aaa"}) == []


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (  # patternProperties: the names are the agent's
            {"type": "object", "patternProperties": {NESTED: {"type": "integer"}}},
            [],
        ),
        (  # additionalProperties looks the names up in patternProperties
            {
                "type": "object",
                "patternProperties": {NESTED: {"type": "integer"}},
                "additionalProperties": False,
            },
            [("constraint", "", f"{EVIL!r} does not match any of the regexes: {NESTED!r}")],
        ),
        (  # and so does unevaluatedProperties
            {
                "type": "object",
                "patternProperties": {NESTED: {"type": "integer"}},
                "unevaluatedProperties": False,
            },
            [
                (
                    "constraint",
                    "",
                    f"Unevaluated properties are not allowed ({EVIL!r} was unexpected)",
                )
            ],
        ),
        (  # propertyNames: a name's own pattern
            {"type": "object", "propertyNames": {"pattern": NESTED}},
            [("constraint", "", f"{EVIL!r} does not match {NESTED!r}")],
        ),
        (  # an older draft's validator class too
            {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "patternProperties": {NESTED: {"type": "integer"}},
                "additionalProperties": False,
            },
            [("constraint", "", f"{EVIL!r} does not match any of the regexes: {NESTED!r}")],
        ),
        (  # the draft 2019-09 unevaluatedProperties
            {
                "$schema": "https://json-schema.org/draft/2019-09/schema",
                "type": "object",
                "patternProperties": {NESTED: {"type": "integer"}},
                "unevaluatedProperties": False,
            },
            [
                (
                    "constraint",
                    "",
                    f"Unevaluated properties are not allowed ({EVIL!r} was unexpected)",
                )
            ],
        ),
    ],
)
def test_property_names_are_matched_in_linear_time(
    schema: dict[str, Any], expected: list[tuple[str, str, str]]
) -> None:
    # (a finding about a name is about the object: its path is the object's, as jsonschema's)
    assert details(timed_check(schema, {EVIL: 1})) == expected


CASES: list[tuple[dict[str, Any], Any]] = [
    ({"pattern": "^[a-z]+$"}, "abc"),
    ({"pattern": "^[a-z]+$"}, "ab1"),
    ({"pattern": "b"}, "abc"),
    ({"pattern": "^x"}, 5),
    ({"patternProperties": {"^x-": {"type": "string"}}}, {"x-a": 1, "y": 2}),
    (
        {"patternProperties": {"^x-": {}}, "properties": {"a": {}}, "additionalProperties": False},
        {"a": 1, "x-b": 2, "c": 3, "d": 4},
    ),
    ({"patternProperties": {"^x-": {}}, "additionalProperties": {"type": "string"}}, {"z": 1}),
    (
        {"allOf": [{"patternProperties": {"^x": {}}}], "unevaluatedProperties": False},
        {"xa": 1, "b": 2},
    ),
    ({"propertyNames": {"pattern": "^[a-z]+$"}}, {"ok": 1, "NO": 2}),
    ({"items": {"pattern": "^\\d{3}$"}}, ["123", "12a", 4]),
]


@pytest.mark.parametrize(("schema", "value"), CASES)
def test_the_linear_validator_says_what_jsonschema_says(schema: dict[str, Any], value: Any) -> None:
    """Same errors, same words, same places: only the engine under the patterns changed."""

    def said(validator: Any) -> list[tuple[str, list[Any], list[Any]]]:
        return sorted(
            (e.message, list(e.absolute_path), list(e.relative_schema_path))
            for e in validator.iter_errors(value)
        )

    assert said(linear_validator(schema)) == said(jsonschema.Draft202012Validator(schema))


def test_patterns_read_as_json_schema_means_them() -> None:
    """RE2's `$` is the end of the text and its `\\d` an ASCII digit, as in ECMA-262 (Python's
    `re` let a trailing newline and other scripts' digits through)."""
    schema = {
        "type": "object",
        "properties": {"a": {"pattern": "^[a-z]+$"}, "n": {"pattern": "^\\d+$"}},
    }
    checker = ParamChecker("t", schema)
    assert checker.check({"a": "abc", "n": "42"}) == []
    assert [f.param for f in checker.check({"a": "abc\n", "n": "\u0664\u0662"})] == ["a", "n"]
    assert checker.check({"a": "caf\u00e9"[:3], "n": "7"}) == []
    # a lone surrogate (JSON can hold one) is a mismatch, not an error
    assert [f.param for f in checker.check({"a": "\ud800", "n": "1"})] == ["a"]


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        (
            {"type": "object", "properties": {"a": {"pattern": "^(?!admin)"}}},
            "properties/a/pattern",
        ),
        ({"type": "object", "properties": {"a": {"pattern": "(a)\\1"}}}, "properties/a/pattern"),
        ({"type": "object", "patternProperties": {"(?<=x)y": {}}}, "patternProperties"),
        ({"type": "object", "propertyNames": {"pattern": "a(?=b)"}}, "propertyNames/pattern"),
    ],
)
def test_a_pattern_re2_cannot_compile_makes_an_invalid_schema(
    schema: dict[str, Any], where: str
) -> None:
    found = ParamChecker("t", schema).check({"a": "x"})
    assert [f.kind for f in found] == ["invalid_schema"]
    detail = found[0].detail
    assert "cannot be used: patterns are matched in linear time (RE2)" in detail
    assert "no backreferences or lookaround" in detail and detail.endswith(f"(at {where})")
    (message,) = validation_errors("t", found)
    assert message.startswith("tool 't' has an invalid registered JSON Schema: pattern ")


def test_a_refused_pattern_the_metaschema_does_not_see_is_still_refused() -> None:
    """A `$ref` into a place that is no schema keyword reaches a pattern `check_schema` never
    looked at: the check refuses the schema when it meets it, rather than use `re`."""
    schema = {
        "type": "object",
        "properties": {"a": {"$ref": "#/x-doc/p"}},
        "x-doc": {"p": {"pattern": "^(?!root)"}},
    }
    checker = ParamChecker("t", schema)
    assert checker.check({"b": 1}) == []
    found = checker.check({"a": "root"})
    assert [f.kind for f in found] == ["invalid_schema"]
    assert "pattern '^(?!root)' cannot be used" in found[0].detail
    assert checker.check({"a": "x"}) == found  # (refused for good)


SELF = "refers to itself with no way out"


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ({"$ref": "#"}, "$ref"),
        ({"type": "object", "properties": {"a": {"$ref": "#/properties/a"}}}, "properties/a/$ref"),
        (
            {
                "type": "object",
                "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}},
                "properties": {"x": {"$ref": "#/$defs/a"}},
            },
            "$defs/a/$ref",
        ),
        ({"type": "object", "anyOf": [{"required": ["a"]}, {"$ref": "#"}]}, "anyOf/1/$ref"),
        ({"type": "object", "$anchor": "top", "not": {"$ref": "#top"}}, "not/$ref"),
    ],
)
def test_a_ref_that_leads_back_to_itself_is_an_invalid_schema(
    schema: dict[str, Any], where: str
) -> None:
    checker = ParamChecker("t", schema)
    for params in ({}, {"a": 1}, {"x": {"y": 2}}):
        found = checker.check(params)
        assert [f.kind for f in found] == ["invalid_schema"], found
        assert SELF in found[0].detail and found[0].detail.endswith(f"(at {where})")


TREE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "children": {"type": "array", "items": {"$ref": "#"}},
        "limit": {"type": "integer", "default": 3},
    },
    "required": ["name"],
}


def test_a_recursive_schema_with_a_way_out_is_checked() -> None:
    checker = ParamChecker("t", TREE)
    good = {"name": "r", "children": [{"name": "c", "children": [{"name": "d"}]}]}
    assert checker.check(good) == []
    bad = {"name": "r", "children": [{"name": "c", "children": [{"name": ""}]}]}
    assert details(checker.check(bad)) == [
        ("constraint", "children[0].children[0].name", "'' should be non-empty")
    ]
    # the walks over the schema stop at its cycle (a secret in a recursive schema makes the
    # recursion secret whole: no finite set of paths says where it is)
    secret = {**TREE, "properties": {**TREE["properties"], "token": {"writeOnly": True}}}
    assert secret_paths(secret) == (("token",), ("children", "*"))
    assert secret_paths(TREE) == ()
    assert parameter_defaults(TREE) == {"limit": 3}


def test_a_value_nested_too_deeply_to_check_is_a_finding_not_a_crash() -> None:
    value: dict[str, Any] = {"name": "leaf"}
    for _ in range(3000):
        value = {"name": "n", "children": [value]}
    found = ParamChecker("t", TREE).check(value)
    assert [(f.kind, f.detail) for f in found] == [
        ("constraint", "the value is nested too deeply to be checked against the schema")
    ]


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ({"type": "bogus"}, "type"),
        ({"type": []}, "type"),
        ({"type": ["string", "string"]}, "type"),
        ({"type": "object", "properties": {"a": {"type": "strng"}}}, "properties/a/type"),
        ({"type": "object", "required": "a"}, "required"),
        ({"type": "object", "required": ["a", "a"]}, "required"),
        ({"type": "object", "description": 5}, "description"),
        ({"type": "object", "properties": {"a": {"enum": "ab"}}}, "properties/a/enum"),
    ],
)
def test_a_schema_the_metaschema_refuses_is_invalid_even_with_no_constraint(
    schema: dict[str, Any], where: str
) -> None:
    found = ParamChecker("t", schema).check({"a": "x"})
    assert [f.kind for f in found] == ["invalid_schema"], found
    assert found[0].detail.endswith(f"(at {where})")


def test_well_formed_shape_schemas_still_need_no_jsonschema() -> None:
    """The fast layers stay fast: a plain shape schema builds no validator, and carlang's own
    types keep the subset validator."""
    shape = {"type": "object", "properties": {"a": {"type": ["string", "null"]}}, "required": ["a"]}
    assert ParamChecker("t", shape)._validator is None
    subset = {"type": "object", "properties": {"a": {"enum": ["x"]}}, "additionalProperties": False}
    assert type(ParamChecker("t", subset)._validator).__name__ == "_SubsetValidator"


def test_the_runtime_refuses_an_agents_evil_value_at_once() -> None:
    rt = Runtime()
    rt.register_tool(
        "t",
        lambda a: None,
        schema={"parameters": {"type": "object", "properties": {"a": {"pattern": NESTED}}}},
    )
    rt.register_tool(
        "loop", lambda a=None: None, schema={"parameters": {"type": "object", "$ref": "#"}}
    )
    started = time.perf_counter()
    result = rt.execute(
        ir.ActionProposal(
            id="p",
            actions=[
                ir.Action(id="x", type="tool_call", tool="t", parameters={"a": EVIL}),
                ir.Action(id="y", type="tool_call", tool="loop", parameters={"a": 1}),
            ],
        )
    )
    assert time.perf_counter() - started < 5.0
    got = {r.action_id: r.error for r in result.results}
    assert got["x"] == f"tool 't' parameter validation: {EVIL!r} does not match {NESTED!r} (at /a)"
    assert got["y"] is not None and got["y"].startswith(
        "tool 'loop' has an invalid registered JSON Schema: `$ref` '#' " + SELF
    )


@pytest.mark.parametrize("leaf", [{"type": "string"}, {"type": "string", "minLength": 1}])
def test_a_schema_nested_too_deeply_to_check_is_invalid_not_a_crash(leaf: dict[str, Any]) -> None:
    schema: dict[str, Any] = leaf
    for _ in range(5000):  # (past the recursion limit on every Python: 3.13 checks 900 levels)
        schema = {"type": "object", "properties": {"a": schema}}
    found = ParamChecker("t", schema).check({"a": {}})
    assert [(f.kind, f.detail) for f in found] == [
        ("invalid_schema", "it is nested too deeply to be checked")
    ]


@pytest.mark.parametrize(
    ("pattern", "malformed"),
    [
        ("(a", True),
        ("[z-a]", True),
        ("a{2,1}", True),
        ("a**", True),
        ("(a)\\1", False),
        ("(?<n>a)\\k<n>", False),
        ("(?<=\\p{L})a", False),
        ("a{1001}", False),
    ],
)
def test_a_refused_pattern_says_whether_it_is_no_regex_or_beyond_re2(
    pattern: str, malformed: bool
) -> None:
    """A trial: `(a` was said to need backreferences or lookaround; a review: deciding that
    by Python's engine called ECMA-262's named backreferences and lookbehind malformed."""
    from carlang_runtime.schemacheck import PatternRefused, pattern_matches

    with pytest.raises(PatternRefused) as refused:
        pattern_matches(pattern, "")
    said = str(refused.value)
    assert ("it is not a regular expression" in said) is malformed, said
    assert ("no backreferences or lookaround" in said) is not malformed, said
