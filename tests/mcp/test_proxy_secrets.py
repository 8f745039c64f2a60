"""A server's own secrets (its `env` values, its credential options) never reach the proxy's
client, the event log or the proxy's standard error, whatever the server does with them: an
error quoting them had them `[REDACTED]`, but a successful result showed them in clear
(`ok u token=tok_SUPERSECRET_123`), and so did what the server wrote on its standard error.
Against a small scripted server (no SDK: it starts in milliseconds)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from carlang_runtime.engine import EventLog, JsonlSink, Runtime
from carlang_runtime.mcp.proxy import PolicyProxy, StdioSession

from carlang.compiler import compile_text
from tests.mcp.conftest import initialize

SECRET = "tok_SUPERSECRET_123"

#: A stdio MCP server with one tool, `login`, answering with its own token (in its text and
#: in its structured content, as a value and as a key) or, given `fail`, failing quoting it;
#: it says the token on its standard error as it starts and at each call.
SERVER = r"""
import json, os, sys
token = os.environ["BANK_TOKEN"]
sys.stderr.write("boot BANK_TOKEN=" + token + "\n"); sys.stderr.flush()
for line in sys.stdin:
    message = json.loads(line)
    if "id" not in message:
        continue
    method, params = message["method"], message.get("params") or {}
    if method == "initialize":
        result = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                  "serverInfo": {"name": "bank", "version": "1"}}
    elif method == "tools/list":
        result = {"tools": [{"name": "login", "inputSchema": {"type": "object"}}]}
    else:
        sys.stderr.write("login with " + token + "\n"); sys.stderr.flush()
        text = "ok u token=" + token
        if params["arguments"].get("fail"):
            result = {"content": [{"type": "text", "text": "failed: " + text}], "isError": True}
        else:
            result = {"content": [{"type": "text", "text": text}],
                      "structuredContent": {"token": token, token: [{"deep": text}]}}
    print(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}), flush=True)
"""


def _program(tmp_path: Path) -> Any:
    script = tmp_path / "bank.py"
    script.write_text(SERVER)
    text = f"""
mcp_server bank {{
  command {json.dumps(sys.executable)}
  args [{json.dumps(str(script))}]
  env {{ BANK_TOKEN: {json.dumps(SECRET)} }}
}}
tool bank.login() {{
  schema {{ type: "object" }}
}}
"""
    result = compile_text(text, root=tmp_path)
    errors = [d for d in result.diagnostics.items if d.severity == "error"]
    assert not errors and result.program is not None, errors
    return result.program


@pytest.mark.parametrize("fail", [False, True], ids=["a result", "an error"])
def test_a_servers_secret_reaches_neither_the_client_nor_the_log_nor_stderr(
    tmp_path: Path, fail: bool
) -> None:
    program = _program(tmp_path)
    log = EventLog([JsonlSink(tmp_path / "events.jsonl")])  # (a file: outputs are kept)
    runtime = Runtime.from_program(program, events=log)
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as stderr:
        proxy = PolicyProxy(program, runtime, stderr=stderr)
        written: list[dict[str, Any]] = []
        session = StdioSession(proxy, lambda data: written.append(json.loads(data)))

        async def scenario() -> None:
            session.receive(initialize(0))
            call = {"name": "bank.login", "arguments": {"fail": True} if fail else {}}
            session.receive({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call})
            await session.finish()

        try:
            asyncio.run(scenario())
        finally:
            runtime.close()
    (answer,) = [a for a in written if a["id"] == 1]
    result = answer["result"]
    assert result["isError"] is fail
    said = result["content"][0]["text"]
    assert said.endswith("ok u token=[REDACTED]"), said
    if not fail:
        assert result["structuredContent"] == {
            "token": "[REDACTED]",
            "[REDACTED]": [{"deep": "ok u token=[REDACTED]"}],
        }
    events = (tmp_path / "events.jsonl").read_text()
    assert "token=[REDACTED]" in events
    server_said = errors.read_text()
    assert "boot BANK_TOKEN=[REDACTED]" in server_said and "login with [REDACTED]" in server_said
    for where in (json.dumps(written), events, server_said):
        assert SECRET not in where
