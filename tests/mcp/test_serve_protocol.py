"""`carlang mcp serve` answers as the MCP specification (and JSON-RPC 2.0) ask, seen from the
official SDK client: a method it does not serve is -32601 method not found (the SDK alone
says -32602), it declares only the capability it has (tools), a tool it does not have is a
JSON-RPC -32602 error while a call's bad arguments are a tool error the model can read, a bug
in carlang is -32603; a request before `initialize` is refused. And it is built on the SDK's
public API only, so a minor SDK upgrade cannot break it unnoticed."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import ROOT
from tests.mcp.conftest import needs_sdk
from tests.mcp.test_serve import serving
from tests.mcp.test_serve_stdio import INITIALIZE, _line, _serve

# slow: mcp serve as a subprocess, per test (the default run stays under three minutes; CI runs these)
pytestmark = [needs_sdk, pytest.mark.slow]


async def _raw_request(session: Any, method: str) -> Any:
    """Send `method` as it is (no params) through the SDK client: the McpError it raises."""
    from mcp import types
    from mcp.shared.exceptions import McpError

    request = types.Request[types.RequestParams | None, str](method=method, params=None)
    with pytest.raises(McpError) as raised:
        await session.send_request(request, types.EmptyResult)
    return raised.value.error


def test_a_method_it_does_not_serve_is_method_not_found() -> None:
    from mcp.shared.exceptions import McpError

    async def scenario() -> None:
        async with serving() as session:
            error = await _raw_request(session, "carlang/no_such_method")
            assert (error.code, error.message) == (
                -32601,
                "method not found: carlang/no_such_method",
            )
            # prompts and resources are not served: not declared, and not found
            for listing in (session.list_prompts, session.list_resources):
                with pytest.raises(McpError) as raised:
                    await listing()
                assert raised.value.error.code == -32601
            assert (await session.send_ping()) is not None  # still serving

    anyio.run(scenario)


def test_only_the_tools_capability_is_declared() -> None:
    from mcp import ClientSession
    from mcp.client.stdio import stdio_client

    from tests.mcp.test_serve import serve_params

    async def scenario() -> None:
        async with stdio_client(serve_params()) as (read, write):
            async with ClientSession(read, write) as session:
                capabilities = (await session.initialize()).capabilities
                assert capabilities.tools is not None
                assert capabilities.prompts is None and capabilities.resources is None
                assert capabilities.logging is None and capabilities.completions is None

    anyio.run(scenario)


def test_an_unknown_tool_is_a_protocol_error_bad_arguments_a_tool_error() -> None:
    """The spec's tools error handling: unknown tools are JSON-RPC errors (-32602); input
    validation errors are tool results with isError, which the model sees and can correct."""
    from mcp.shared.exceptions import McpError

    async def scenario() -> None:
        async with serving() as session:
            with pytest.raises(McpError) as raised:
                await session.call_tool("polcy_check", {})
            assert (raised.value.error.code, raised.value.error.message) == (
                -32602,
                "no tool is called `polcy_check` (did you mean `policy_check`?)",
            )
            bad = await session.call_tool("check", {"program": 3})
            assert bad.isError
            assert bad.content[0].text == "argument `program`: expected a string, got a number"

    anyio.run(scenario)


def test_a_bug_in_carlang_is_an_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp.shared.exceptions import McpError
    from mcp.shared.memory import create_connected_server_and_client_session

    import carlang.mcp_serve as serve

    def broken(items: list[Any]) -> list[dict[str, Any]]:
        raise KeyError("diagnostics")

    monkeypatch.setattr(serve, "_diagnostics", broken)

    async def scenario() -> None:
        server = serve.build_server()
        async with create_connected_server_and_client_session(server) as session:
            with pytest.raises(McpError) as raised:
                await session.call_tool("check", {"program": "tool t()"})
            assert raised.value.error.code == -32603
            assert raised.value.error.message == (
                "internal error: KeyError: 'diagnostics' (this is a bug in carlang; please"
                " report it)"
            )

    anyio.run(scenario)


def test_a_request_before_initialize_is_refused_and_ping_answered() -> None:
    early = {"jsonrpc": "2.0", "id": "early", "method": "tools/list"}
    ping = {"jsonrpc": "2.0", "id": "ping", "method": "ping"}
    code, answers, errors = _serve([_line(early), _line(ping), _line(INITIALIZE)])
    assert (code, errors) == (0, "")
    by_id = {a["id"]: a for a in answers}
    assert by_id["early"]["error"] == {
        "code": -32600,
        "message": "tools/list before initialize: send initialize first (MCP lifecycle)",
    }
    assert by_id["ping"]["result"] == {}
    assert by_id[1]["result"]["serverInfo"]["name"] == "carlang"


def test_the_methods_it_serves() -> None:
    """Read from the SDK's request types (their `method` literal): if a new SDK shapes them
    otherwise, this fails here rather than every request being refused."""
    from carlang.mcp_serve import build_server, served_methods

    methods = served_methods(build_server())
    assert methods == {"initialize", "ping", "tools/list", "tools/call"}


_OURS = [
    ROOT / "carlang" / "mcp_serve.py",
    ROOT / "carlang" / "mcp_import.py",
    ROOT / "carlang" / "cli" / "mcp_commands.py",
    *sorted((ROOT / "runtime" / "carlang_runtime" / "mcp").glob("*.py")),
    Path(__file__).parent / "toy_server.py",  # (tests may look inside carlang's own objects)
]


@pytest.mark.parametrize("path", _OURS, ids=lambda p: p.name)
def test_no_private_attribute_of_another_object(path: Path) -> None:
    """carlang's MCP code reaches nothing private of the SDK (`server._mcp_server`, a
    FastMCP's `_tool_manager`): only `self._x` and `cls._x` are its own."""
    found = [
        f"{path.name}:{node.lineno}: .{node.attr}"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
    ]
    assert found == []
