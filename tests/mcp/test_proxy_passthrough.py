"""What `carlang mcp proxy` does not pass between a client and a server (docs/agents.md, "What
it does not pass on"): a server's requests to its client (elicitation, sampling, roots) are
answered -32601 by carlang, never forwarded; its notifications (progress, log messages) reach
no client. Against a small scripted server (no SDK: it starts in milliseconds)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from carlang_runtime.engine import Runtime
from carlang_runtime.mcp.proxy import PolicyProxy, StdioSession

from carlang.compiler import compile_text
from tests.mcp.conftest import initialize

#: A stdio MCP server whose one tool, during its call, sends progress and a log message and
#: asks its client each thing a server may ask, answering with the code each answer had.
SERVER = r"""
import json, sys
def send(message):
    print(json.dumps(message), flush=True)
for line in sys.stdin:
    message = json.loads(line)
    if "id" not in message:
        continue
    if message["method"] == "initialize":
        send({"jsonrpc": "2.0", "id": message["id"], "result": {
            "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
            "serverInfo": {"name": "asker", "version": "1"}}})
    elif message["method"] == "tools/list":
        send({"jsonrpc": "2.0", "id": message["id"], "result": {
            "tools": [{"name": "ask", "inputSchema": {"type": "object"}}]}})
    else:
        send({"jsonrpc": "2.0", "method": "notifications/progress",
              "params": {"progressToken": 1, "progress": 0.5}})
        send({"jsonrpc": "2.0", "method": "notifications/message",
              "params": {"level": "info", "data": "working"}})
        said = {}
        for method in ("elicitation/create", "sampling/createMessage", "roots/list", "ping"):
            send({"jsonrpc": "2.0", "id": "q-" + method, "method": method, "params": {}})
            answer = json.loads(sys.stdin.readline())
            said[method] = answer["error"]["code"] if "error" in answer else "answered"
        send({"jsonrpc": "2.0", "id": message["id"], "result": {
            "content": [{"type": "text", "text": json.dumps(said)}]}})
"""


def test_a_servers_requests_are_refused_and_its_notifications_not_forwarded(
    tmp_path: Path,
) -> None:
    script = tmp_path / "asker.py"
    script.write_text(SERVER)
    source = f"""
mcp_server asker {{
  command {json.dumps(sys.executable)}
  args [{json.dumps(str(script))}]
}}
tool asker.ask() {{
  schema {{ type: "object" }}
}}
"""
    compiled = compile_text(source, root=tmp_path)
    assert compiled.program is not None, compiled.diagnostics
    runtime = Runtime.from_program(compiled.program)
    proxy = PolicyProxy(compiled.program, runtime)
    written: list[dict[str, Any]] = []
    session = StdioSession(proxy, lambda data: written.append(json.loads(data)))

    async def scenario() -> None:
        client = initialize(0)
        client["params"]["capabilities"] = {"elicitation": {}, "sampling": {}, "roots": {}}
        session.receive(client)
        call = {"name": "asker.ask", "arguments": {}, "_meta": {"progressToken": "p1"}}
        session.receive({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call})
        await session.finish()

    try:
        asyncio.run(scenario())
    finally:
        runtime.close()
    # the client got its two answers, and nothing else: no request, no notification
    assert [m.get("id") for m in written] == [0, 1] and all("method" not in m for m in written)
    said = json.loads(written[1]["result"]["content"][0]["text"])
    assert said == {
        "elicitation/create": -32601,
        "sampling/createMessage": -32601,
        "roots/list": -32601,
        "ping": "answered",
    }
