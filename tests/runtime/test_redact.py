"""Secret parameters wherever a JSON Schema puts them (`$ref`, maps, tuples, applicators), and
secret values however a text carries them (percent-encoded, base64, inside Basic auth)."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from carlang_runtime import ir
from carlang_runtime.engine import EventLog, JsonlSink, Runtime, ToolError
from carlang_runtime.redact import (
    REDACTED,
    Scrubber,
    redact_parameters,
    redacted_message,
    redaction_path,
    secret_paths,
    secret_values,
)

from .engine.support import call, proposal

SECRET = "NESTED-REF-SECRET-42"
CREDS = {
    "type": "object",
    "properties": {"user": {"type": "string"}, "api_key": {"type": "string", "writeOnly": True}},
}


def schema(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


# -- where a schema puts its secrets -----------------------------------------------------------


@pytest.mark.parametrize("defs", ["$defs", "definitions"])
def test_a_ref_is_followed_to_its_definition(defs: str) -> None:
    """Pydantic writes a nested model's fields (a SecretStr among them) under `$defs`."""
    parameters = {
        **schema(creds={"$ref": f"#/{defs}/Creds"}, many={"items": {"$ref": f"#/{defs}/Creds"}}),
        defs: {"Creds": CREDS},
    }
    assert secret_paths(parameters) == (("creds", "api_key"), ("many", "*", "api_key"))


def test_a_ref_by_pointer_anchor_or_the_root_id() -> None:
    parameters = {
        "$id": "https://example.com/args",
        **schema(
            a={"$ref": "#/properties/b"},
            b={"type": "string", "writeOnly": True},
            c={"$ref": "#creds"},
            d={"$ref": "https://example.com/args#/$defs/Key"},
            e={"$ref": "#/$defs/a~1b%25c"},  # (JSON pointer escapes: `a/b%c`)
            f={"$ref": "https://elsewhere.example/x.json"},  # not fetched: nothing known
        ),
        "$defs": {
            "Creds": {**CREDS, "$anchor": "creds"},
            "Key": {"writeOnly": True},
            "a/b%c": {"writeOnly": True},
        },
    }
    assert set(secret_paths(parameters)) == {("a",), ("b",), ("c", "api_key"), ("d",), ("e",)}


def test_maps_tuples_and_applicators_are_walked() -> None:
    parameters = schema(
        headers={"type": "object", "additionalProperties": {"type": "string", "writeOnly": True}},
        env={"patternProperties": {"^SECRET_": {"writeOnly": True}}},
        pair={"prefixItems": [{"type": "string"}, {"type": "string", "writeOnly": True}]},
        old_pair={"items": [{"type": "string"}, {"writeOnly": True}]},
        rest={"prefixItems": [{}], "items": {"writeOnly": True}},
        extra={"additionalItems": {"writeOnly": True}},
        cond={
            "if": {"properties": {"kind": {"const": "key"}}},
            "then": {"properties": {"key": {"writeOnly": True}}},
            "else": {"properties": {"password": {"writeOnly": True}}},
        },
        neg={"not": {"properties": {"x": {"writeOnly": True}}}},
        dep={"dependentSchemas": {"user": {"properties": {"pw": {"writeOnly": True}}}}},
        one={"oneOf": [{"type": "null"}, {"$ref": "#/$defs/Creds"}]},
        unev={"unevaluatedProperties": {"x-carlang-secret": True}},
    )
    parameters["$defs"] = {"Creds": CREDS}
    assert set(secret_paths(parameters)) == {
        ("headers", "*"),
        ("env", "*"),
        ("pair", "1"),
        ("old_pair", "1"),
        ("rest", "*"),
        ("extra", "*"),
        ("cond", "key"),
        ("cond", "password"),
        ("neg", "x"),
        ("dep", "pw"),
        ("one", "api_key"),
        ("unev", "*"),
    }


def test_where_no_path_can_say_the_value_around_it_is_secret() -> None:
    """Secret map keys, a secret inside a string's encoded content, a recursive schema: the
    value that holds the secret is secret whole (fail closed)."""
    node = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "token": {"writeOnly": True},
            "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
        },
    }
    parameters = {
        **schema(
            keys={"propertyNames": {"writeOnly": True}},
            blob={"type": "string", "contentSchema": {"properties": {"k": {"writeOnly": True}}}},
            tree={"$ref": "#/$defs/Node"},
            plain={"propertyNames": {"pattern": "^a"}},
            loop={"$ref": "#/$defs/Loop"},
        ),
        "$defs": {
            "Node": node,
            "Loop": {"properties": {"next": {"$ref": "#/$defs/Loop"}}},  # no secret: nothing
        },
    }
    assert set(secret_paths(parameters)) == {
        ("keys",),
        ("blob",),
        ("tree", "token"),
        ("tree", "children", "*"),
    }
    params = {
        "tree": {"name": "a", "token": "t1", "children": [{"name": "b", "token": "t2"}]},
        "loop": {"next": {"next": {}}},
    }
    redacted = redact_parameters(params, secret_paths(parameters))
    assert redacted["tree"] == {"name": "a", "token": REDACTED, "children": [REDACTED]}
    assert redacted["loop"] == params["loop"]


def test_the_parameters_secret_whole_are_each_secret() -> None:
    assert secret_paths({"type": "object", "additionalProperties": {"writeOnly": True}}) == (
        ("*",),
    )
    assert secret_paths({"type": "object", "writeOnly": True}) == (("*",),)
    assert redact_parameters({"a": 1, "b": "x"}, [("*",)]) == {"a": REDACTED, "b": REDACTED}


def test_a_schema_too_big_to_walk_is_redacted_whole_where_it_holds_a_secret() -> None:
    """A chain of definitions each referring twice to the next is 2^40 paths: the walk stops
    at its budget and redacts, whole, what it did not finish (and finds no secret where there
    is none)."""
    defs: dict[str, Any] = {"D40": {"properties": {"k": {"writeOnly": True}}}}
    for n in range(40):
        defs[f"D{n}"] = schema(a={"$ref": f"#/$defs/D{n + 1}"}, b={"$ref": f"#/$defs/D{n + 1}"})
    paths = secret_paths({**schema(x={"$ref": "#/$defs/D0"}, y={}), "$defs": defs})
    assert paths and all(path[0] == "x" for path in paths)
    params = {"x": {"a": {"b": {"a": "deep"}}}, "y": 1}
    assert redact_parameters(params, paths)["y"] == 1
    assert "deep" not in json.dumps(redact_parameters(params, paths))
    defs["D40"] = {"properties": {"k": {"type": "string"}}}
    assert secret_paths({**schema(x={"$ref": "#/$defs/D0"}), "$defs": defs}) == ()


def test_wildcards_cover_maps_and_indices_cover_tuples() -> None:
    params = {
        "headers": {"Authorization": "Bearer AP-SECRET-777", "X-Other": "k2"},
        "pair": ["user", "PREFIX-SECRET-888"],
        "cards": {"a": {"cvv": "123", "n": 1}, "b": {"cvv": "456", "n": 2}},
    }
    paths = [("headers", "*"), ("pair", "1"), redaction_path("params.cards.*.cvv"), ("pair", "7")]
    assert redact_parameters(params, paths) == {
        "headers": {"Authorization": REDACTED, "X-Other": REDACTED},
        "pair": ["user", REDACTED],
        "cards": {"a": {"cvv": REDACTED, "n": 1}, "b": {"cvv": REDACTED, "n": 2}},
    }
    assert secret_values(params, paths) == [
        "Bearer AP-SECRET-777",
        "k2",
        "PREFIX-SECRET-888",
        "123",
        "456",
    ]


def test_a_fastmcp_server_s_nested_secret_str_is_found() -> None:
    """What a real MCP server (FastMCP, pydantic) says of a SecretStr field of a nested model:
    a `$ref` into `$defs`."""
    pytest.importorskip("mcp.server.fastmcp")
    from mcp.server.fastmcp import FastMCP
    from pydantic import BaseModel, SecretStr

    class Creds(BaseModel):
        user: str
        api_key: SecretStr

    def connect(creds: Creds, api_key2: SecretStr) -> str:
        return creds.user

    # (the annotations as objects: this module's are strings, and `Creds` is local)
    connect.__annotations__ = {"creds": Creds, "api_key2": SecretStr, "return": str}
    server = FastMCP("vault")
    server.tool()(connect)
    (tool,) = asyncio.run(server.list_tools())
    assert "$ref" in json.dumps(tool.inputSchema["properties"]["creds"])
    assert set(secret_paths(tool.inputSchema)) == {("creds", "api_key"), ("api_key2",)}


# -- a run keeps them out ----------------------------------------------------------------------

AP_TOOL = ir.ToolSchema(
    name="call2",
    parameters=schema(
        headers={"type": "object", "additionalProperties": {"type": "string", "writeOnly": True}},
        pair={"type": "array", "prefixItems": [{"type": "string"}, {"writeOnly": True}]},
        creds={"$ref": "#/$defs/Creds"},
    )
    | {"$defs": {"Creds": CREDS}},
)


def test_a_run_keeps_out_secrets_under_refs_maps_and_tuples(tmp_path: Path) -> None:
    """The red team's repro (s1/ap.car, s1/ref.car, mcp/vp.car): a tool's error that echoes
    its parameters, and the journaled proposal, show none of them."""
    rt = Runtime(events=EventLog(sinks=[JsonlSink(tmp_path / "run.jsonl")]))
    rt.declare_tool(AP_TOOL)

    def call2(**params: Any) -> None:
        raise ToolError(f"failed with {params}")

    rt.register_tool("call2", call2)
    params = {
        "headers": {"Authorization": "Bearer AP-SECRET-777"},
        "pair": ["user", "PREFIX-SECRET-888"],
        "creds": {"user": "bob", "api_key": SECRET},
    }
    result = rt.execute(proposal(call("a", "call2", params=params, failure_behavior="skip")))
    rt.close()
    shown = result.model_dump_json() + (tmp_path / "run.jsonl").read_text()
    for secret in ("AP-SECRET-777", "PREFIX-SECRET-888", SECRET):
        assert secret not in shown
    assert "'bob'" in result.results[0].error  # (what is not secret is still shown)


# -- however a text carries them ---------------------------------------------------------------

TOKEN = "AbC+dEf/GhI=jkl123"


@pytest.mark.parametrize(
    "text",
    [
        "GET https://api.example.com/v1/me?" + urllib.parse.urlencode({"token": TOKEN}),
        "GET /v1/me?token=" + urllib.parse.quote(TOKEN),
        "GET /v1/me?token=abc%2bdef%2fghi%3djkl123".replace("abc", "AbC")
        .replace("def", "dEf")
        .replace("ghi", "GhI"),  # lower-case hex
        "GET /v1/me?token=AbC%2BdEf%2FGhI=jkl123",  # (only some characters escaped)
        "body: " + base64.b64encode(TOKEN.encode()).decode(),
        "body: " + base64.urlsafe_b64encode(TOKEN.encode()).decode().rstrip("="),
        "401 for Authorization: Basic " + base64.b64encode(f"bob:{TOKEN}".encode()).decode(),
        "Basic " + base64.b64encode(f"a-longer-user:{TOKEN}".encode()).decode(),
        "Basic " + base64.urlsafe_b64encode(f"u:{TOKEN}\n".encode()).decode(),
        "xyz" + base64.b64encode(f"bob:{TOKEN}".encode()).decode(),  # (glued to a word)
    ],
)
def test_an_encoded_secret_is_scrubbed(text: str) -> None:
    scrubbed = Scrubber([TOKEN]).text(text)
    assert REDACTED in scrubbed
    assert "jkl" not in scrubbed and "amtsMTIz" not in scrubbed, scrubbed


def test_encodings_of_a_secret_with_spaces_and_unicode() -> None:
    secret = "my pässword ok"
    scrub = Scrubber([{"nested": [secret]}])
    assert scrub.text("q=" + urllib.parse.quote_plus(secret)) == f"q={REDACTED}"
    assert scrub.text("q=" + urllib.parse.quote(secret)) == f"q={REDACTED}"
    basic = base64.b64encode(f"me:{secret}".encode()).decode()
    assert scrub.text(f"Basic {basic}") == f"Basic {REDACTED}"


def test_what_holds_no_secret_is_left_as_it_is() -> None:
    scrub = Scrubber([TOKEN, "abc"])  # ("abc" is too short to be searched for)
    texts = [
        "Authorization: Basic " + base64.b64encode(b"bob:other-password").decode(),
        "GET /v1/me?token=AbC%2BdEf%2FGhI%3Djkl124 and %zz%",
        "Unauthorized: the REDACTED word and ordinary words stay",
        "q=" + urllib.parse.quote("abc") + " " + base64.b64encode(b"u:abc").decode(),
    ]
    for text in texts:
        assert scrub.text(text) == text
    assert scrub.value({"n": 12345, "l": ["x y"]}) == {"n": 12345, "l": ["x y"]}


def test_a_numeric_secret_inside_basic_auth_is_scrubbed() -> None:
    pin = 98765432
    basic = base64.b64encode(f"bob:{pin}".encode()).decode()
    assert Scrubber([pin]).text(f"Basic {basic}") == f"Basic {REDACTED}"


# -- messages about a value --------------------------------------------------------------------


def test_a_message_about_a_secret_value_does_not_quote_it() -> None:
    paths = [("token",), ("creds", "api_key"), ("pair", "1"), ("pin",)]
    message = "'sk-SUPERSECRET999' does not match '^tok_[a-z]+$'"
    assert redacted_message(message, "sk-SUPERSECRET999", ["token"], paths) == (
        "'[REDACTED]' does not match '^tok_[a-z]+$'"
    )
    creds = {"user": "bob", "api_key": "k"}
    about = f"{creds!r} is not valid under any of the given schemas"
    assert redacted_message(about, creds, ["creds"], paths) == (
        "{'user': 'bob', 'api_key': '[REDACTED]'} is not valid under any of the given schemas"
    )
    # a short value, quoted where it is not first, is still found (and short ones are not
    # searched for elsewhere: the schema's own `9999` stays)
    assert redacted_message("False schema does not allow 7", 7, ["pin"], paths) == (
        "False schema does not allow '[REDACTED]'"
    )
    assert redacted_message("7 is greater than the maximum of 9977", 7, ["pin"], paths) == (
        "'[REDACTED]' is greater than the maximum of 9977"
    )
    assert redacted_message("'x' is bad", "x", ["pair", 1], paths) == "'[REDACTED]' is bad"
    assert redacted_message("'x' is bad", "x", ["pair", 0], paths) == "'x' is bad"
    assert redacted_message("'x' is bad", "x", ["user"], paths) == "'x' is bad"


def test_a_secret_property_named_like_a_keyword_is_found_where_the_walk_falls_back() -> None:
    """A property called `default` (or `enum`, `examples`) is a schema, not data: in a schema
    that refers to itself, the fail-closed fallback must still see the secret under it."""
    from carlang_runtime.redact import secret_paths

    node = {
        "type": "object",
        "properties": {
            "default": {"type": "string", "writeOnly": True},
            "child": {"$ref": "#/$defs/node"},
        },
    }
    schema = {
        "type": "object",
        "$defs": {"node": node},
        "properties": {"tree": {"$ref": "#/$defs/node"}},
    }
    assert set(secret_paths(schema)) == {("tree", "default"), ("tree", "child")}


def test_a_short_secret_is_redacted_where_it_is_equal_or_quoted() -> None:
    """A secret too short to be searched for bare ("k9") is replaced in a tool's output where
    a value equals it (a string a string secret, a number a numeric one), and quoted, as JSON
    and a repr show a string (JSON stays JSON). In a document (`value`: a proposal, a state
    snapshot) a value equal to it by chance (an action id, a count) is left alone, and so are
    keys, and quoted punctuation (a secret ","), which would break the JSON around it."""
    scrub = Scrubber(["k9", {"pin": 12, "code": "77"}, ","])
    assert scrub.output({"token_used": "k9", "n": 12, "code": 77, "text": "ak9b", "k9": 1}) == {
        "token_used": REDACTED,
        "n": REDACTED,
        "code": 77,  # (the secret "77" is a string)
        "text": "ak9b",
        "k9": 1,
    }
    document = {"id": "k9", "depends_on": ["k9"], "max_retries": 12, "a": ",", "b": 1}
    assert scrub.value(document) == document
    shown = scrub.text("api_token: \"k9\", kwargs={'code': '77'} and k9 in ak9b \"12\"")
    assert (
        shown == f'api_token: "{REDACTED}", kwargs={{\'code\': {REDACTED!r}}} and k9 in ak9b "12"'
    )
    document = json.loads(
        scrub.text(json.dumps({"api_token": "k9", "code": "77", "l": ["x", "y"]}))
    )
    assert document == {"api_token": REDACTED, "code": REDACTED, "l": ["x", "y"]}
