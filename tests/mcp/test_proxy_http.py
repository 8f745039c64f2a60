"""`carlang mcp proxy --transport http`: who it answers. Only requests naming this machine
(Host; Origin when a browser sends one: DNS rebinding protection, which the MCP specification
makes a MUST), and with --token-env only those carrying the token; an address other machines
reach needs a token or --insecure. It says carlang's version, and a call whose arguments hold
NaN is a JSON-RPC error, as over stdio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from carlang_runtime import __version__
from typer.testing import CliRunner

from carlang.cli import app
from tests.conftest import ROOT
from tests.mcp.conftest import HttpProxy, initialize, needs_sdk, toy_command

# slow: the proxy over HTTP as a subprocess, per test (the default run stays under three minutes; CI runs these)
pytestmark = [needs_sdk, pytest.mark.slow]
runner = CliRunner()
TOKEN = "tok-3f9a1c-never-printed"

POLICY = """
capability agent { tools allow toy.add }
policy small: deny toy.add when params.a > 100
  message "a is too big"
"""

INITIALIZE = initialize(1)


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("proxy_http") / "toy.car"
    result = runner.invoke(
        app, ["mcp", "import", "--name", "toy", "-o", str(path), "--", *toy_command()]
    )
    assert result.exit_code == 0, result.output
    path.write_text(path.read_text() + POLICY)
    return path


class _Proxy(HttpProxy):
    """The proxy over HTTP, its environment holding the token `--token-env` names."""

    def __init__(self, program: Path, *extra: str) -> None:
        super().__init__(program, *extra, env={"PROXY_TOKEN": TOKEN})


def _answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of a response (JSON, or the data of an event stream)."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
        return dict(json.loads(data[-1]))
    return dict(response.json())


def _session(proxy: _Proxy, **headers: str) -> str:
    opened = proxy.post(INITIALIZE, **headers)
    assert opened.status_code == 200, opened.text
    session = opened.headers["mcp-session-id"]
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    proxy.post(initialized, Mcp_Session_Id=session, **headers)
    return session


def _call(request_id: int, arguments: str) -> str:
    return (
        f'{{"jsonrpc":"2.0","id":{request_id},"method":"tools/call",'
        f'"params":{{"name":"toy.add","arguments":{arguments}}}}}'
    )


@pytest.fixture(scope="module")
def proxy(program: Path) -> Iterator[_Proxy]:
    started = _Proxy(program)
    yield started
    output = started.stop()
    assert "Traceback" not in output, output


def test_requests_naming_another_host_or_origin_are_refused(proxy: _Proxy) -> None:
    """A web page whose name was rebound to 127.0.0.1 sends its own Host and Origin: 421
    and 403, before anything is initialized or called."""
    port = proxy.port
    assert proxy.post(INITIALIZE, Host="attacker.example").status_code == 421
    assert proxy.post(INITIALIZE, Host=f"attacker.example:{port}").status_code == 421
    assert proxy.post(INITIALIZE, Origin="http://attacker.example").status_code == 403
    assert proxy.post(INITIALIZE, Origin=f"http://attacker.example:{port}").status_code == 403
    # this machine's names for it, at its port; no Origin (no browser) is fine
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert proxy.post(INITIALIZE, Host=host).status_code == 200, host
    assert proxy.post(INITIALIZE, Origin=f"http://localhost:{port}").status_code == 200
    assert proxy.post(INITIALIZE, Host="localhost:1").status_code == 421
    # an open session is no way in either
    session = _session(proxy)
    call = _call(2, '{"a": 1, "b": 2}')
    refused = proxy.post(call, Mcp_Session_Id=session, Origin="http://attacker.example")
    assert refused.status_code == 403
    ran = proxy.post(call, Mcp_Session_Id=session)
    assert _answer(ran)["result"]["structuredContent"] == {"result": 3}


def test_the_proxy_says_carlangs_version(proxy: _Proxy, program: Path) -> None:
    info = _answer(proxy.post(INITIALIZE))["result"]["serverInfo"]
    assert info == {"name": "carlang-proxy", "version": __version__}
    stdio = subprocess.run(
        [sys.executable, "-m", "carlang", "mcp", "proxy", str(program), "--capability", "agent"],
        input=json.dumps(INITIALIZE) + "\n",
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}"},
        timeout=60,
    )
    assert json.loads(stdio.stdout)["result"]["serverInfo"]["version"] == __version__


def test_arguments_holding_nan_are_a_json_rpc_error(proxy: _Proxy) -> None:
    """The SDK's decoder reads NaN and 1e400 (as nan and inf, which `a > 100` lets through)
    and hands them on as null: such a body is refused as not JSON, answered to its request."""
    session = _session(proxy)
    for request_id, value, said in [
        (3, "NaN", "the constant NaN is not JSON"),
        (4, "-Infinity", "the constant -Infinity is not JSON"),
        (5, "1e400", "number out of range: 1e400"),
        (6, "[" * 200 + "]" * 200, "nested too deeply"),
    ]:
        body = _call(request_id, f'{{"a": 1, "b": 1, "c": {value}}}')
        refused = proxy.post(body, Mcp_Session_Id=session)
        assert refused.status_code == 400
        error = refused.json()
        assert error["id"] == request_id and error["error"]["code"] == -32700, error
        assert said in error["error"]["message"], error
        assert "the request was not run" in error["error"]["message"]
    ran = proxy.post(_call(7, '{"a": 1, "b": 1}'), Mcp_Session_Id=session)
    assert _answer(ran)["result"]["structuredContent"] == {"result": 2}


def test_wrong_arguments_are_said_as_over_stdio(proxy: _Proxy) -> None:
    """Arguments given as a string (a model's tool call passed on undecoded), a list or a
    name that is not a string: the JSON-RPC -32602 error says what is wrong and how to fix
    it, as over stdio, not the SDK's generic 'Invalid request parameters'."""
    session = _session(proxy)
    for request_id, arguments, said in [
        (8, '"{\\"a\\": 1}"', "arguments must be a JSON object, not a string: decode it first"),
        (9, "[1, 2]", "arguments must be a JSON object, not an array"),
    ]:
        refused = proxy.post(_call(request_id, arguments), Mcp_Session_Id=session)
        error = _answer(refused)
        assert error["id"] == request_id and error["error"]["code"] == -32602, error
        assert error["error"]["message"] == said
    unnamed = '{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":3}}'
    error = _answer(proxy.post(unnamed, Mcp_Session_Id=session))["error"]
    assert error["message"] == "params.name must be a string (the tool's name), not a number"
    ran = proxy.post(_call(11, '{"a": 1, "b": 1}'), Mcp_Session_Id=session)
    assert _answer(ran)["result"]["structuredContent"] == {"result": 2}


def test_a_request_over_the_size_limit_is_a_json_rpc_error(proxy: _Proxy) -> None:
    """A body over 4 MiB got the SDK's plain-text 413: a JSON-RPC -32600 now says the limit,
    and the session goes on."""
    session = _session(proxy)
    big = _call(12, json.dumps({"a": 1, "b": 1, "pad": "u" * 5_000_000}))
    refused = proxy.post(big, Mcp_Session_Id=session)
    assert refused.status_code == 413
    error = refused.json()["error"]
    assert (
        error["code"] == -32600 and "over this proxy's limit of 4194304 bytes" in error["message"]
    )
    ran = proxy.post(_call(13, '{"a": 1, "b": 1}'), Mcp_Session_Id=session)
    assert _answer(ran)["result"]["structuredContent"] == {"result": 2}


def test_a_batch_or_a_bad_id_is_an_invalid_request_as_over_stdio(proxy: _Proxy) -> None:
    """A batch (a JSON array) got the SDK's multi-line pydantic dump with id "server-error";
    an id that is not a string or an integer got 202 and no answer: each is -32600, id null,
    status 400, as over stdio, with or without a session."""
    session = _session(proxy)
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    batch = "not a JSON-RPC message: a batch (an array) is not served; send each alone"
    for body, said in [
        (json.dumps([INITIALIZE]), batch),
        (json.dumps([ping, {**ping, "id": 2}]), batch),
        ("5", "not a JSON-RPC message"),
        (json.dumps({**ping, "id": [1]}), "(MCP), not an array"),
        (json.dumps({**ping, "id": True}), "(MCP), not true"),
        (json.dumps({**ping, "id": None}), "(MCP), not null"),
        (json.dumps({**ping, "method": 3}), "the method must be a string, not a number"),
    ]:
        for headers in ({}, {"Mcp_Session_Id": session}):
            refused = proxy.post(body, **headers)
            assert refused.status_code == 400, refused.text
            error = refused.json()
            assert error["error"]["code"] == -32600 and said in error["error"]["message"], error
            assert error["id"] == (1 if "method" in said else None)
    assert _answer(proxy.post(ping, Mcp_Session_Id=session))["result"] == {}


@pytest.mark.slow
def test_a_token_and_more_hosts_and_origins(program: Path) -> None:
    """--token-env: a request without `Authorization: Bearer <token>` is 401, whatever else
    it says; the token is never printed. --allow-host and --allow-origin add to this
    machine's names. The SDK's own client, given the header, works as usual."""
    proxy = _Proxy(
        program,
        "--token-env",
        "PROXY_TOKEN",
        "--allow-host",
        "proxy.example",
        "--allow-origin",
        "https://app.example/",
    )
    try:
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        missing = proxy.post(INITIALIZE)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert TOKEN not in missing.text
        assert proxy.post(INITIALIZE, Authorization=f"Bearer {TOKEN}x").status_code == 401
        assert proxy.post(INITIALIZE, Authorization=f"Basic {TOKEN}").status_code == 401
        assert proxy.post(INITIALIZE, Authorization=f"bearer {TOKEN}").status_code == 200
        port = proxy.port
        for host in ("proxy.example", f"proxy.example:{port}", f"localhost:{port}"):
            assert proxy.post(INITIALIZE, Host=host, **bearer).status_code == 200, host
        assert proxy.post(INITIALIZE, Host="other.example", **bearer).status_code == 421
        assert proxy.post(INITIALIZE, Origin="https://app.example", **bearer).status_code == 200
        assert proxy.post(INITIALIZE, Origin="http://app.example", **bearer).status_code == 403

        async def client() -> None:
            from mcp import ClientSession
            from mcp.client.streamable_http import streamable_http_client

            async with httpx.AsyncClient(headers=bearer, timeout=30) as http:
                async with streamable_http_client(proxy.url, http_client=http) as (r, w, _):
                    async with ClientSession(r, w) as session:
                        await session.initialize()
                        result = await session.call_tool("toy.add", {"a": 2, "b": 3})
                        assert result.structuredContent == {"result": 5}

        anyio.run(client)
    finally:
        output = proxy.stop()
    assert TOKEN not in output and "Traceback" not in output, output


def test_an_address_other_machines_reach_needs_a_token_or_insecure(
    program: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import carlang_runtime.mcp.proxy as proxy_module

    served: list[Any] = []

    def serve(*_args: Any, listener: Any, access: Any, **_options: Any) -> None:  # (no serving)
        listener.close()
        served.append(access)

    monkeypatch.setattr(proxy_module, "serve_http", serve)
    monkeypatch.setenv("PROXY_TOKEN", TOKEN)
    monkeypatch.delenv("NO_SUCH_TOKEN_VAR", raising=False)
    http = ["mcp", "proxy", str(program), "--capability", "agent", "--transport", "http"]
    wide = [*http, "--host", "0.0.0.0", "--port", "0"]

    refused = runner.invoke(app, wide)
    assert refused.exit_code == 2 and not served
    assert "--host 0.0.0.0: other machines can reach this address" in refused.output
    assert "--token-env VAR" in refused.output and "--insecure" in refused.output

    insecure = runner.invoke(app, [*wide, "--insecure"])
    assert insecure.exit_code == 0, insecure.output
    assert "warning: --insecure: listening on 0.0.0.0:" in insecure.output
    assert "--allow-host NAME" in insecure.output
    assert served[-1].token is None

    for bad in ("a b", "box:0", "box:99999", "https://box", "fe80::1"):
        badly = runner.invoke(app, [*wide, "--token-env", "PROXY_TOKEN", "--allow-host", bad])
        assert badly.exit_code == 2, (bad, badly.output)
        assert f"--allow-host {bad!r}: give a host name or address" in badly.output
    ipv6 = runner.invoke(app, [*wide, "--token-env", "PROXY_TOKEN", "--allow-host", "[fe80::1]:*"])
    assert ipv6.exit_code == 0 and "[fe80::1]:*" in served[-1].hosts, ipv6.output
    # as a Host header writes them: no leading zero in a port, no root's dot after a name
    written = ["--allow-host", "box:080", "--allow-host", "app.example."]
    assert runner.invoke(app, [*wide, "--token-env", "PROXY_TOKEN", *written]).exit_code == 0
    assert {"box:80", "app.example"} <= set(served[-1].hosts), served[-1].hosts
    tokened = runner.invoke(app, [*wide, "--token-env", "PROXY_TOKEN", "--allow-host", "box"])
    assert tokened.exit_code == 0, tokened.output
    assert "warning" not in tokened.output and TOKEN not in tokened.output
    assert served[-1].token == TOKEN and "box" in served[-1].hosts
    assert TOKEN not in repr(served[-1])

    unset = runner.invoke(app, [*http, "--port", "0", "--token-env", "NO_SUCH_TOKEN_VAR"])
    assert unset.exit_code == 2 and "NO_SUCH_TOKEN_VAR is not set" in unset.output
    origin = runner.invoke(app, [*http, "--port", "0", "--allow-origin", "app.example"])
    assert origin.exit_code == 2 and "--allow-origin 'app.example'" in origin.output
    stdio = runner.invoke(app, ["mcp", "proxy", str(program), "--token-env", "PROXY_TOKEN"])
    assert stdio.exit_code == 2 and "--token-env is for --transport http" in stdio.output
