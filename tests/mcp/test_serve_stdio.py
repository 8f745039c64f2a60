"""`carlang mcp serve` on a raw pipe: a line that is not JSON gets a JSON-RPC -32700 parse
error, one that is not a JSON-RPC message -32600, and the end of input ends the server
cleanly (exit 0) once what was asked is answered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.mcp.conftest import INITIALIZED, initialize, needs_sdk

# slow: a server as a subprocess per test (the default run stays under three minutes; CI
# runs these)
pytestmark = [needs_sdk, pytest.mark.slow]

INITIALIZE = initialize(1, "pipe")
CHECK = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/call",
    "params": {"name": "check", "arguments": {"program": "tool t(x: string)\n"}},
}


def _serve(lines: list[bytes]) -> tuple[int, list[dict[str, Any]], str]:
    done = subprocess.run(
        [sys.executable, "-m", "carlang", "mcp", "serve"],
        input=b"".join(line + b"\n" for line in lines),
        capture_output=True,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}"},
        timeout=60,
    )
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    return done.returncode, answers, done.stderr.decode()


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def test_malformed_lines_get_json_rpc_errors_and_end_of_input_ends_cleanly() -> None:
    code, answers, errors = _serve(
        [
            _line(INITIALIZE),
            _line(INITIALIZED),
            _line(CHECK),
            b"{bad",
            b"[1, 2]",
            b'{"jsonrpc": "2.0", "id": 7, "methd": "tools/list"}',
            b"\xff\xfe not UTF-8",
            b"",
        ]
    )
    assert (code, errors) == (0, "")
    by_id = {a["id"]: a for a in answers if a["id"] is not None}
    assert by_id[1]["result"]["serverInfo"]["name"] == "carlang"
    assert by_id[2]["result"]["structuredContent"]["ok"] is True
    assert by_id[7]["error"]["code"] == -32600
    anonymous = [a["error"] for a in answers if a["id"] is None]
    assert [e["code"] for e in anonymous] == [-32700, -32600, -32700]
    assert anonymous[0]["message"].startswith("parse error: ")
    assert anonymous[2]["message"] == "parse error: the line is not UTF-8"


def test_a_request_just_before_the_end_of_input_is_answered() -> None:
    for lines in (
        [_line(INITIALIZE), _line(INITIALIZED), _line(CHECK)],
        [_line(INITIALIZE), _line(INITIALIZED), _line(CHECK), b"{bad"],
        [b"{bad"],
        [],
    ):
        code, answers, errors = _serve(lines)
        assert (code, errors) == (0, ""), lines
        if _line(CHECK) in lines:
            assert [a["id"] for a in answers if a["id"] is not None] == [1, 2]


def _request(request_id: Any, method: str, params: Any = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return _line(message)


def test_malformed_params_get_a_message_saying_what_is_wrong() -> None:
    """The SDK answered any of these -32602 "Invalid request parameters", with empty data."""
    code, answers, errors = _serve(
        [
            _line(INITIALIZE),
            _line(INITIALIZED),
            _request(12, "tools/call", {"arguments": {"program": "tool t()"}}),
            _request(13, "tools/call", {"name": 3}),
            _request(14, "tools/call", {"name": "check", "arguments": [1]}),
            _request(15, "tools/call"),
            _request(16, "tools/list", {"cursor": 3}),
            _request(17, "initialize", {"capabilities": {}}),
            _line(CHECK),
        ]
    )
    assert (code, errors) == (0, "")
    by_id = {a["id"]: a for a in answers}
    said = {i: by_id[i]["error"] for i in range(12, 18)}
    assert said == {
        12: {"code": -32602, "message": "invalid params for tools/call: `params.name` is missing"},
        13: {
            "code": -32602,
            "message": "invalid params for tools/call: `params.name`: expected a string, got a"
            " number",
        },
        14: {
            "code": -32602,
            "message": "invalid params for tools/call: `params.arguments`: expected an object,"
            " got an array",
        },
        15: {"code": -32602, "message": "invalid params for tools/call: `params` is missing"},
        16: {
            "code": -32602,
            "message": "invalid params for tools/list: `params.cursor`: expected a string, got a"
            " number",
        },
        17: {
            "code": -32602,
            "message": "invalid params for initialize: `params.protocolVersion` is missing;"
            " `params.clientInfo` is missing",
        },
    }
    assert by_id[CHECK["id"]]["result"]["structuredContent"]["ok"]  # (the session goes on)


def test_a_request_holding_what_json_cannot_is_a_parse_error_for_its_id() -> None:
    """NaN, Infinity, 1e400 and nesting past 128 levels are not JSON (Python's decoder reads
    them: a NaN parameter reached the checks as null): -32700 for the request, not run."""
    program = "tool transfer(to: string, amount: float)\n"
    call = (
        '{"jsonrpc": "2.0", "id": ID, "method": "tools/call", "params": {"name":'
        ' "policy_check", "arguments": {"tool": "transfer", "params": {"to": "x", "amount":'
        ' VALUE}, "program": ' + json.dumps(program) + "}}}"
    )
    values = {11: "NaN", 12: "-Infinity", 13: "1e400", 14: "[" * 200 + "]" * 200}
    code, answers, errors = _serve(
        [
            _line(INITIALIZE),
            _line(INITIALIZED),
            *[call.replace("ID", str(i)).replace("VALUE", v).encode() for i, v in values.items()],
            b'{"jsonrpc": "2.0", "method": "notifications/x", "params": {"a": NaN}}',
        ]
    )
    assert (code, errors) == (0, "")
    said = {a["id"]: a["error"]["message"] for a in answers if "error" in a}
    column = call.index("VALUE") + 1  # (where the value starts, 1-based; ID stays 2 long)
    assert said == {
        11: f"parse error: the constant NaN is not JSON at column {column} (the request was"
        " not run)",
        12: f"parse error: the constant -Infinity is not JSON at column {column} (the request"
        " was not run)",
        13: f"parse error: number out of range: 1e400 at column {column} (the request was not run)",
        # (the value is 4 levels in: its 125th list is the 129th level)
        14: f"parse error: nested too deeply (more than 128 levels) at column {column + 124}"
        " (the request was not run)",
        None: "parse error: the constant NaN is not JSON at column 65",
    }


def test_a_request_whose_id_is_not_a_string_or_an_integer_is_invalid() -> None:
    """MCP ids are strings or integers: the SDK took `"id": [1]` (or true, 1.5, null) for a
    notification and never answered. Each is -32600 with id null, and the session goes on."""
    ids = [[1], {"a": 1}, True, 1.5, None]
    code, answers, errors = _serve(
        [
            _line(INITIALIZE),
            _line(INITIALIZED),
            *[_request(i, "ping") for i in ids],
            b'{"id": [1], "method": "ping"}',
            _request(9, "ping"),
        ]
    )
    assert (code, errors) == (0, "")
    said = [a["error"] for a in answers if a["id"] is None]
    kinds = ["an array", "an object", "true", "1.5", "null", "an array"]
    assert said == [
        {
            "code": -32600,
            "message": f"invalid request: the id must be a string or an integer (MCP), not {kind}",
        }
        for kind in kinds
    ]
    assert answers[-1] == {"jsonrpc": "2.0", "id": 9, "result": {}}
