"""Nested object types, lists of them, unions, defaults and bounds in tool parameters; tool
parameters from a JSON Schema: their JSON Schema, fmt, CEL type checks, runtime validation."""

from __future__ import annotations

import json
from pathlib import Path

from carlang_runtime.engine import EventLog, JsonlSink, Runtime
from carlang_runtime.ir import ActionProposal, ActionStatus

from carlang.fmt import format_source
from carlang.source import Source
from tests.helpers import codes, compile_diagnostics, compile_ok

TOOL = """tool search(
  query: string(min_length: 1, max_length: 200),
  filters: list[{ field: "author" | "year", value: string | int, exact?: bool = false }] = [],
  sort?: { by: "date" | "score", descending?: bool },
  limit: int(min: 1, max: 100) = 10,
)
policy year_exact: deny search when params.filters.exists(f, f.field == "year" && f.exact)
  message "no exact years"
"""


def test_nested_types_compile_to_json_schema() -> None:
    (tool,) = compile_ok(TOOL).tools
    assert tool.parameters == {
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "maxLength": 200},
            "filters": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "field": {"type": "string", "enum": ["author", "year"]},
                        "value": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                        "exact": {"type": "boolean", "default": False},
                    },
                    "required": ["field", "value"],
                    "additionalProperties": False,
                },
                "default": [],
            },
            "sort": {
                "type": "object",
                "properties": {
                    "by": {"type": "string", "enum": ["date", "score"]},
                    "descending": {"type": "boolean"},
                },
                "required": ["by"],
                "additionalProperties": False,
            },
            "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
        },
        "required": ["query"],
        "additionalProperties": False,
    }


def test_fmt_writes_nested_types_back() -> None:
    text = format_source(Source("t.car", TOOL))
    assert (
        'filters: list[{ field: "author" | "year", value: string | int, exact?: bool = false }] = []'
        in text
    )
    assert format_source(Source("t.car", text)) == text


def test_a_secret_field_of_an_object_is_secret_in_the_schema_fmt_and_the_log(
    tmp_path: Path,
) -> None:
    text = (
        "tool login(auth: { user: string, key: string secret }, "
        "keys: list[{ id: string, token: string secret }])\n"
        'proposal p { a = login(auth: { user: "bo", key: "key-9999" }, '
        'keys: [{ id: "x", token: "tok-7777" }]) }\n'
    )
    (tool,) = compile_ok(text).tools
    properties = tool.parameters["properties"]
    assert properties["auth"]["properties"]["key"] == {"type": "string", "writeOnly": True}
    assert properties["keys"]["items"]["properties"]["token"]["writeOnly"] is True
    formatted = format_source(Source("t.car", text))
    assert "auth: { user: string, key: string secret }" in formatted
    assert "keys: list[{ id: string, token: string secret }]" in formatted
    program = compile_ok(formatted)
    log = tmp_path / "run.jsonl"
    runtime = Runtime.from_program(program, events=EventLog([JsonlSink(log)]))
    runtime.register_tool("login", lambda **params: params)  # the secrets come back too
    runtime.execute(program.proposals[0])
    runtime.close()
    logged = log.read_text()
    assert '"bo"' in logged and "key-9999" not in logged and "tok-7777" not in logged


def test_cel_conditions_are_checked_against_nested_fields() -> None:
    assert "CL0506" in codes(TOOL + 'policy p: deny search when params.sort.order == "x"\n')
    assert "CL0506" not in codes(
        TOOL + 'policy p: deny search when has(params.sort) && params.sort.by == "date"\n'
    )


def test_the_runtime_validates_nested_values_and_policies_see_them() -> None:
    runtime = Runtime.from_program(compile_ok(TOOL))
    runtime.register_tool("search", lambda **params: params)

    def run(params: dict[str, object]) -> tuple[ActionStatus, str | None]:
        proposal = ActionProposal.model_validate(
            {"actions": [{"id": "a", "type": "tool_call", "tool": "search", "parameters": params}]}
        )
        (result,) = runtime.execute(proposal).results
        return result.status, result.error

    assert (
        run({"query": "q", "filters": [{"field": "author", "value": 3}]})[0]
        is ActionStatus.SUCCEEDED
    )
    status, error = run({"query": "q", "filters": [{"field": "title", "value": 3}]})
    assert status is ActionStatus.REJECTED and "(at /filters[0]/field)" in (error or "")
    status, error = run({"query": "q", "filters": [{"field": "year", "value": 3, "exact": True}]})
    assert status is ActionStatus.REJECTED and "no exact years" in (error or "")


def test_schema_from_a_document_with_a_pointer(tmp_path: Path) -> None:
    (tmp_path / "schemas.json").write_text(
        json.dumps(
            {
                "tools": [
                    {
                        "inputSchema": {
                            "type": "object",
                            "properties": {"n": {"type": "integer"}},
                            "required": ["n"],
                        }
                    }
                ]
            }
        )
    )
    program = compile_ok(
        'tool count() { schema from "schemas.json#/tools/0/inputSchema" }\nproposal p { a = count(n: 2) }\n',
        root=tmp_path,
    )
    assert program.tools[0].parameters["required"] == ["n"]
    assert "CL0219" in codes('tool count() { schema from "schemas.json#/tools/9" }')


def test_a_schema_reference_must_point_inside_the_schema() -> None:
    """The validator resolves only references inside a schema (it fetches nothing): one to
    nowhere is CL0219 at compile time, not an error on every call."""
    refs = {
        '"#/$defs/n"': [],
        '"#why"': [],
        '"#/$defs/missing"': ["CL0219"],
        '"#nope"': ["CL0219"],
        '"https://example.com/n.json"': ["CL0219"],
    }
    for ref, expected in refs.items():
        schema = (
            '{"type": "object", "$defs": {"n": {"type": "integer"}}, "properties": {'
            f'"x": {{"$ref": {ref}}}, "y": {{"$anchor": "why", "type": "string"}},'
            ' "e": {"enum": [{"$ref": "data, not a reference"}]}}}'
        )
        found = codes(f"tool t() {{ schema {schema} }}\nproposal p {{ a = t() }}\n")
        assert found == expected, (ref, found)


def test_a_state_family_has_its_declared_type_and_is_read_with_brackets() -> None:
    program = (
        "tool deploy(env: string)\n"
        "state {\n  frozen: bool = false\n  build.*: int\n}\n"
        'policy c: deny deploy when state["build.web"] == "x"\n'
        "policy d: deny deploy when state.build.web == 1\n"
        'policy e: deny deploy when state["build.web"] > 3\n'
    )
    found = {d.code: d for d in compile_diagnostics(program).diagnostics.items}
    assert set(found) == {"CL0508", "CL0506"}
    assert '`state["build.web"]` is an int' in found["CL0508"].message
    assert (
        found["CL0506"].help == '`build.*` is a family of keys: read one as `state["build.name"]`'
    )
