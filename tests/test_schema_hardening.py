"""Tool schemas that would hang or crash `carlang check`, `verify --tool-schemas` or an MCP
import: a backtracking pattern, a `$ref` back to itself, a schema the metaschema refuses. Each
is said clearly, at the schema, in bounded time."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carlang.cli import app
from carlang.mcp_import import unusable_tools
from carlang.render import render_text
from tests.helpers import compile_diagnostics, compile_ok

runner = CliRunner()
EVIL = "a" * 27 + "!"  # ~2**27 steps for ^(a+)+$ in a backtracking engine
SELF = "refers to itself with no way out"


def messages(text: str, root: Path | None = None) -> list[tuple[str, str]]:
    if root is None:
        result = compile_diagnostics(text)
    else:
        from carlang.compiler import compile_text

        result = compile_text(text, root=root)
    return [(d.code, d.message) for d in result.diagnostics.sorted()]


def test_a_backtracking_pattern_does_not_hang_check() -> None:
    text = (
        'tool t(a: string(pattern: "^(a+)+$")) {}\n'
        f'proposal p {{ x = t(a: "{EVIL}") }}\n'
        'tool u() { schema { type: "object", patternProperties: { "^(a+)+$": { type: "integer" } },'
        " additionalProperties: false } }\n"
        f'proposal q {{ y = u(a: 1, "{EVIL}": 2) }}\n'
    )
    started = time.perf_counter()
    found = messages(text)
    assert time.perf_counter() - started < 5.0
    assert ("CL0309", f"tool 't': parameter 'a': '{EVIL}' does not match '^(a+)+$'") in found


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        (
            '{ type: "object", properties: { a: { type: "string", pattern: "^(?!admin)" } } }',
            "properties/a/pattern",
        ),
        ('{ type: "object", properties: { a: { pattern: "(x)\\\\1" } } }', "properties/a/pattern"),
        ('{ type: "object", patternProperties: { "(?<=a)b": {} } }', "patternProperties"),
    ],
)
def test_a_pattern_re2_cannot_match_is_cl0219_at_the_schema(schema: str, where: str) -> None:
    result = compile_diagnostics(f"tool t() {{ schema {schema} }}\n")
    (diagnostic,) = [d for d in result.diagnostics.sorted() if d.severity == "error"]
    assert diagnostic.code == "CL0219", render_text([diagnostic])
    assert diagnostic.message.startswith("the schema of tool `t` is not usable: pattern ")
    assert "patterns are matched in linear time (RE2), which has no backreferences" in (
        diagnostic.message
    )
    assert diagnostic.message.endswith(f"(at {where})")
    assert diagnostic.labels[0].span.start == len("tool t() { schema ")


@pytest.mark.parametrize(
    ("schema", "ref", "where"),
    [
        ('{ "$ref": "#" }', "#", "$ref"),
        (
            '{ type: "object", properties: { a: { "$ref": "#/properties/a" } } }',
            "#/properties/a",
            "properties/a/$ref",
        ),
        (
            '{ type: "object", "$defs": { a: { allOf: [{ "$ref": "#/$defs/a" }] } },'
            ' properties: { x: { "$ref": "#/$defs/a" } } }',
            "#/$defs/a",
            "$defs/a/allOf/0/$ref",
        ),
    ],
)
def test_a_ref_back_to_itself_is_cl0219_not_an_internal_error(
    schema: str, ref: str, where: str
) -> None:
    text = f"tool u() {{ schema {schema} }}\nproposal p {{ x = u() }}\n"
    assert messages(text) == [
        (
            "CL0219",
            f"the schema of tool `u` is not usable: `$ref` {ref!r} {SELF}: it leads back to the"
            f" same schema for the same value, so checking a value would never end (at {where})",
        )
    ]


def test_a_recursive_schema_with_a_way_out_keeps_working(tmp_path: Path) -> None:
    tree = (
        'tool tree() { schema { type: "object", properties: { name: { type: "string" },'
        ' children: { type: "array", items: { "$ref": "#" } } }, required: ["name"] } }\n'
    )
    compile_ok(tree + 'proposal p { t = tree(name: "r", children: [{ name: "c" }]) }\n')
    assert messages(tree + 'proposal p { t = tree(name: "r", children: [{ name: 1 }]) }\n') == [
        ("CL0309", "tool 'tree': parameter 'children[0].name': 1 is not of type 'string'")
    ]


def test_a_ref_to_the_schemas_own_id_is_a_ref_to_it() -> None:
    """`$id` names the schema: `"$ref": "https://ex/tree"` inside it is `"#"` (as the runtime's
    validator resolves it), not a reference to another document."""
    tree = (
        'tool tree() { schema { "$id": "https://ex/tree", type: "object", properties: {'
        ' name: { type: "string" }, children: { type: "array", items: { "$ref":'
        ' "https://ex/tree" } } }, required: ["name"] } }\n'
    )
    compile_ok(tree + 'proposal p { t = tree(name: "r", children: [{ name: "c" }]) }\n')
    assert messages(tree + 'proposal p { t = tree(name: "r", children: [{ name: 1 }]) }\n') == [
        ("CL0309", "tool 'tree': parameter 'children[0].name': 1 is not of type 'string'")
    ]


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        (
            "other.json",
            "points outside the schema (only `#...` and the schema's own `$id` resolve)",
        ),
        (
            "https://ex/s#/properties",
            "points outside the schema (only `#...` and the schema's own `$id` resolve)",
        ),
        ("#/nope", "points at nothing in the schema"),
        ("#nope", "names no `$anchor` of the schema"),
    ],
)
def test_a_ref_that_resolves_to_no_schema_of_the_document_is_cl0219(ref: str, problem: str) -> None:
    # (under a property called `default`: a name there, not the keyword, so it is looked at)
    text = f'tool u() {{ schema {{ type: "object", properties: {{ default: {{ "$ref": "{ref}" }} }} }} }}\n'
    assert messages(text + "proposal p { x = u() }\n") == [
        (
            "CL0219",
            f"the schema of tool `u` is not usable: `$ref` {ref!r} {problem} (at properties/default/$ref)",
        )
    ]


def test_mcp_import_refuses_such_schemas_as_unusable() -> None:
    tools = [
        {"name": "ok", "inputSchema": {"type": "object", "properties": {"a": {"pattern": "^a"}}}},
        {
            "name": "look",
            "inputSchema": {"type": "object", "properties": {"a": {"pattern": "(?=a)"}}},
        },
        {"name": "loop", "inputSchema": {"type": "object", "$ref": "#"}},
    ]
    found = unusable_tools(tools)
    assert sorted(found) == ["look", "loop"]
    assert "pattern '(?=a)' cannot be used" in found["look"]
    assert SELF in found["loop"]


def verify_with(tmp_path: Path, parameters: object, call: object = None) -> tuple[int, str]:
    action = {"id": "a", "type": "tool_call", "tool": "fetch", "parameters": call or {"x": 1}}
    (tmp_path / "p.json").write_text(json.dumps({"id": "p", "actions": [action]}))
    (tmp_path / "ts.json").write_text(json.dumps([{"name": "fetch", "parameters": parameters}]))
    result = runner.invoke(
        app, ["verify", str(tmp_path / "p.json"), "--tool-schemas", str(tmp_path / "ts.json")]
    )
    return result.exit_code, result.output


def test_verify_tool_schemas_says_a_ref_loop_is_an_invalid_schema(tmp_path: Path) -> None:
    # the tool list is what is wrong: an error at its place there, not a finding on a call
    code, output = verify_with(tmp_path, {"$ref": "#"})
    assert code == 2, output
    assert (
        "ts.json:1:43: error: invalid tool list: [0].parameters.$ref: tool 'fetch': its"
        " parameters are not a valid JSON Schema: `$ref` '#' " + SELF
    ) in output
    assert "internal error" not in output


def test_verify_tool_schemas_checks_the_schema_against_the_metaschema(tmp_path: Path) -> None:
    code, output = verify_with(tmp_path, {"type": "bogus"})
    assert code == 2, output
    assert (
        "ts.json:1:43: error: invalid tool list: [0].parameters.type: tool 'fetch': its"
        " parameters are not a valid JSON Schema: 'bogus' is not valid under any of the given"
        " schemas"
    ) in output


def test_verify_tool_schemas_with_an_evil_value_is_quick(tmp_path: Path) -> None:
    started = time.perf_counter()
    code, output = verify_with(
        tmp_path, {"type": "object", "properties": {"x": {"pattern": "^(a+)+$"}}}, {"x": EVIL}
    )
    assert time.perf_counter() - started < 5.0
    assert code == 1
    assert f"tool 'fetch': parameter 'x': '{EVIL}' does not match '^(a+)+$'" in output


def test_a_signature_pattern_is_matched_in_linear_time_and_checked_where_written() -> None:
    """A `string(pattern: ...)` bound RE2 cannot compile is CL0217 at the bound (it was CL0309
    at each call, or nothing for a tool never called), and a default or state value is
    matched in linear time as a call's is (a backtracking pattern took seconds)."""
    found = messages('tool t(a: string(pattern: "^(?!admin)x")) {}\n')
    assert [code for code, _ in found if code != "CL0207"] == ["CL0217"]
    assert "cannot be used: patterns are matched in linear time (RE2)" in found[0][1]
    started = time.perf_counter()
    found = messages(f'tool u(a: string(pattern: "^(a+)+$") = "{EVIL}") {{}}\n')
    assert time.perf_counter() - started < 5.0
    assert ("CL0205", f'default of `a` does not fit its type: "{EVIL}" does not match ^(a+)+$') in (
        found
    )


def test_check_names_a_program_that_is_not_a_regular_file(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "fifo.car"
    os.mkfifo(fifo)
    result = runner.invoke(app, ["check", str(fifo)])
    assert result.exit_code == 2 and f"{fifo}: it is not a regular file" in result.output


def test_spaces_are_ecma_spaces_and_re2_syntax_is_taken() -> None:
    """JSON Schema patterns are ECMA-262: `\\s` is every Unicode space (RE2's is ASCII, so
    `^\\S+$` let a no-break space through, where Python's `re` had refused it), inside a
    class too; RE2's own `\\pL` is a pattern (it was refused as 'not a regex' at every call,
    Python's `re` not knowing it) and checks what it says."""
    found = messages(
        'tool login(user: string(pattern: "^\\\\S+$"), tag: string(pattern: "^[a\\\\s]+$"))\n'
        'tool greet(name: string(pattern: "^\\\\pL+$"))\n'
        'proposal p { a = login(user: "root\\u00a0admin", tag: "a\\u3000a")'
        '  b = greet(name: "héllo")  c = greet(name: "a1") }\n'
    )
    assert found == [
        ("CL0309", "tool 'login': parameter 'user': 'root\\xa0admin' does not match '^\\\\S+$'"),
        ("CL0309", "tool 'greet': parameter 'name': 'a1' does not match '^\\\\pL+$'"),
    ]
