"""An MCP server (the official SDK's FastMCP, Streamable HTTP) that wants a bearer token, as
remote servers do (GitHub's, Cloudflare's): a request without `Authorization: Bearer
$AUTH_TOKEN` is answered 401, before the SDK sees it.

    AUTH_TOKEN=... python auth_server.py PORT      # http://127.0.0.1:PORT/mcp

AUTH_LOG=path gets one JSON line per HTTP request: its method, whether it carried the token,
and its `X-Client` header. AUTH_FORBIDDEN=token: a token the server knows but does not allow
(403). A refusal's body quotes the credential it was sent, as careless
servers do (a client must not pass it on). `whoami` answers with the Authorization header of
the call, as a tool echoing a credential would.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import uvicorn
from mcp.server.fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations

TOKEN = os.environ["AUTH_TOKEN"]
FORBIDDEN = os.environ.get("AUTH_FORBIDDEN")
LOG = os.environ.get("AUTH_LOG")

mcp = FastMCP("auth")


@mcp.tool(annotations=ToolAnnotations(readOnlyHint=True))
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@mcp.tool()
def whoami(ctx: Context) -> str:  # type: ignore[type-arg]
    """Who the caller said it was (its Authorization header, echoed)."""
    request = ctx.request_context.request
    said = request.headers.get("authorization", "") if request is not None else ""
    return f"you sent {said}"


inner = mcp.streamable_http_app()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The SDK's app behind the token check (lifespan events pass straight through)."""
    if scope["type"] != "http":
        await inner(scope, receive, send)
        return
    headers = {key.decode("latin-1").lower(): v.decode("latin-1") for key, v in scope["headers"]}
    sent = headers.get("authorization", "")
    allowed = sent == f"Bearer {TOKEN}"
    if LOG:
        with open(LOG, "a", encoding="utf-8") as out:
            line = {"method": scope["method"], "ok": allowed, "client": headers.get("x-client")}
            out.write(json.dumps(line) + "\n")
    if not allowed:
        forbidden = FORBIDDEN is not None and sent == f"Bearer {FORBIDDEN}"
        body = json.dumps({"error": "invalid_token", "you_sent": sent}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403 if forbidden else 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b'Bearer error="invalid_token"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return
    await inner(scope, receive, send)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
