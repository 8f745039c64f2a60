"""`carlang mcp proxy` over stdio: requests that are not JSON (NaN, Infinity, a number beyond a
double, nesting past 128 levels) and tools/call params that are wrong in different ways each
get a JSON-RPC error saying which problem it is; nothing of them is judged or sent on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from carlang_runtime.mcp.proxy import call_problem
from typer.testing import CliRunner

from carlang.cli import app
from tests.conftest import ROOT
from tests.mcp.conftest import initialize, needs_sdk, toy_command

# slow: the proxy as a subprocess, per test (the default run stays under three minutes; CI runs these)
pytestmark = [needs_sdk, pytest.mark.slow]
runner = CliRunner()

POLICY = """
capability agent { tools allow toy.add }
policy small: deny toy.add when params.a > 100
  message "a is too big"
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("proxy_messages") / "toy.car"
    result = runner.invoke(
        app, ["mcp", "import", "--name", "toy", "-o", str(path), "--", *toy_command()]
    )
    assert result.exit_code == 0, result.output
    path.write_text(path.read_text() + POLICY)
    return path


def _exchange(program: Path, lines: list[str]) -> tuple[dict[Any, dict[str, Any]], str]:
    text = json.dumps(initialize()) + "\n" + "\n".join(lines) + "\n"
    done = subprocess.run(
        [sys.executable, "-m", "carlang", "mcp", "proxy", str(program), "--capability", "agent"],
        input=text.encode(),
        capture_output=True,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}"},
        timeout=60,
    )
    answers = [json.loads(line) for line in done.stdout.decode().splitlines()]
    return {a.get("id"): a for a in answers}, done.stderr.decode()


def _call_line(request_id: int, arguments: str) -> str:
    return (
        f'{{"jsonrpc":"2.0","id":{request_id},"method":"tools/call",'
        f'"params":{{"name":"toy.add","arguments":{arguments}}}}}'
    )


def test_arguments_that_are_not_json_are_refused_with_the_request_id(program: Path) -> None:
    """NaN passes `a > 100` (every comparison with NaN is false) and would have been sent on
    as `null`: such a request is a parse error, answered to its id, and nothing runs."""
    deep = "[" * 200 + "]" * 200
    lines = [
        _call_line(1, '{"a": NaN, "b": 1}'),
        _call_line(2, '{"a": Infinity, "b": 1}'),
        _call_line(3, '{"a": -Infinity, "b": 1}'),
        _call_line(4, '{"a": 1e400, "b": 1}'),
        _call_line(5, f'{{"a": 1, "b": 1, "c": {deep}}}'),
        _call_line(6, '{"a": 2, "b": 3}'),
        '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":' + "[" * 5000 + "]" * 5000 + "}",
    ]
    answers, stderr = _exchange(program, lines)
    assert "Traceback" not in stderr, stderr
    for request_id, what in [(1, "NaN"), (2, "Infinity"), (3, "-Infinity")]:
        error = answers[request_id]["error"]
        assert error["code"] == -32700
        assert f"the constant {what} is not JSON at column" in error["message"], error
        assert "the request was not run" in error["message"]
    assert "number out of range: 1e400" in answers[4]["error"]["message"]
    assert "nested too deeply" in answers[5]["error"]["message"]
    assert answers[6]["result"]["structuredContent"] == {"result": 5}
    # too deep for Python's decoder to find its id: answered for no id
    assert answers[None]["error"]["code"] == -32700
    assert "nested too deeply" in answers[None]["error"]["message"]


def test_each_problem_with_tools_call_params_is_named(program: Path) -> None:
    requests: list[dict[str, Any]] = [
        {"id": 1, "params": {"arguments": {"a": 1, "b": 2}}},
        {"id": 2, "params": {"name": 7, "arguments": {"a": 1, "b": 2}}},
        {"id": 3, "params": {"name": "toy.add", "arguments": '{"a": 1, "b": 2}'}},
        {"id": 4, "params": {"name": "toy.add", "arguments": [1, 2]}},
        {"id": 5, "params": ["toy.add"]},
        {"id": 6, "params": {"name": "toy.add"}},  # arguments may be left out
    ]
    lines = [json.dumps({"jsonrpc": "2.0", "method": "tools/call", **r}) for r in requests]
    answers, _ = _exchange(program, lines)
    messages = {i: answers[i].get("error", {}).get("message") for i in range(1, 6)}
    assert all(answers[i]["error"]["code"] == -32602 for i in range(1, 6)), answers
    assert messages[1] == "tools/call needs the tool's name: params.name is missing"
    assert messages[2] == "params.name must be a string (the tool's name), not a number"
    assert messages[3] == "arguments must be a JSON object, not a string: decode it first"
    assert messages[4] == "arguments must be a JSON object, not an array"
    assert messages[5] == "params must be a JSON object, not an array"
    # the call itself is made: the tool says what is missing
    assert answers[6]["result"]["isError"]
    assert "required" in answers[6]["result"]["content"][0]["text"]


def test_a_message_with_an_id_that_is_not_a_string_or_an_integer_ends_nothing(
    program: Path,
) -> None:
    """An object or array id crashed the proxy (unhashable: exit 101), and with it every call
    in flight: each is -32600 with id null, and the calls around them are answered."""
    lines = [
        _call_line(1, '{"a": 2, "b": 3}'),
        '{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}',
        '{"jsonrpc":"2.0","id":[1],"method":"tools/call","params":{"name":"toy.add",'
        '"arguments":{"a":1,"b":1}}}',
        '{"jsonrpc":"2.0","method":"notifications/cancelled","params":[1]}',
        '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":[1]}}',
        '{"jsonrpc":"2.0","id":"carlang-1","error":"not an object"}',
        _call_line(2, '{"a": 4, "b": 5}'),
    ]
    text = json.dumps(initialize()) + "\n" + "\n".join(lines) + "\n"
    done = subprocess.run(
        [sys.executable, "-m", "carlang", "mcp", "proxy", str(program), "--capability", "agent"],
        input=text.encode(),
        capture_output=True,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}"},
        timeout=60,
    )
    assert done.returncode == 0 and b"internal error" not in done.stderr, done.stderr
    answers = [json.loads(line) for line in done.stdout.decode().splitlines()]
    refused = [a["error"] for a in answers if a["id"] is None]
    assert [e["code"] for e in refused] == [-32600, -32600], answers
    by_id = {a["id"]: a for a in answers}
    assert by_id[1]["result"]["structuredContent"] == {"result": 5}
    assert by_id[2]["result"]["structuredContent"] == {"result": 9}


def test_decoded_arguments_holding_what_json_cannot_are_a_problem() -> None:
    """What an SDK's decoder let through (the HTTP transport reads NaN and Infinity) is held
    to JSON as text from stdio is."""
    assert call_problem({"name": "t", "arguments": {"a": float("nan")}}) == (
        "arguments are not JSON: arguments.a is NaN (a JSON number is finite)"
    )
    assert "arguments.b[1] is -Infinity" in str(
        call_problem({"name": "t", "arguments": {"b": [1, float("-inf")]}})
    )
    deep: Any = {}
    for _ in range(200):
        deep = {"x": deep}
    assert "nested too deeply (more than 128 levels)" in str(
        call_problem({"name": "t", "arguments": deep})
    )
    assert call_problem({"name": "t", "arguments": {"a": 1.5, "b": [1, {"c": None}]}}) is None
    assert call_problem({"name": "t"}) is None
