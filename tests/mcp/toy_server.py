"""A small MCP server written with the official SDK (FastMCP), for the failure paths real
servers do not show on demand: errors, slow calls (cancellation), a schema that changes.

    python toy_server.py                 # stdio
    python toy_server.py --http PORT     # Streamable HTTP on 127.0.0.1:PORT/mcp
TOY_SCHEMA=2 changes `add`'s schema; TOY_BROKEN=1 adds a tool with a broken one;
TOY_CANCELLED=path gets a line per cancelled call, TOY_STARTED=path one per call of `slow`
as it starts; TOY_BLOCKING=1 makes `slow` block the server (it reads nothing meanwhile, not
even the end of its input), as a server running blocking code does.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.tools import Tool
from mcp.types import ToolAnnotations


def broken(x: int) -> int:
    """Publishes an input schema no validator can use."""
    return x


extra: list[Tool] = []
if os.environ.get("TOY_BROKEN") == "1":
    # The SDK writes a schema from the signature; some servers publish broken ones.
    tool = Tool.from_function(broken)
    tool.parameters = {"type": "object", "properties": {"x": {"$ref": "#/$defs/missing"}}}
    extra.append(tool)

mcp = FastMCP("toy", tools=extra)

if os.environ.get("TOY_SCHEMA") == "2":

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def add(a: int, b: int, c: int = 0) -> int:
        """Add numbers."""
        return a + b + c

else:

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b


@mcp.tool(annotations=ToolAnnotations(destructiveHint=True))
def fail(message: str) -> str:
    """Always fails with the message."""
    raise ValueError(message)


@mcp.tool(name="echo-text")
def echo_text(text: str) -> str:
    """Echo text (a name with a dash)."""
    return text


@mcp.tool()
async def slow(seconds: float) -> str:
    """Sleep, then answer."""
    started = os.environ.get("TOY_STARTED")
    if started:
        with open(started, "a") as out:
            out.write("started\n")
    if os.environ.get("TOY_BLOCKING") == "1":
        time.sleep(seconds)
        return "slept"
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        marker = os.environ.get("TOY_CANCELLED")
        if marker:
            with open(marker, "a") as out:
                out.write("cancelled\n")
        raise
    return "slept"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        mcp.settings.port = int(sys.argv[2])
        mcp.settings.host = "127.0.0.1"
        mcp.settings.log_level = "WARNING"
        mcp.run("streamable-http")
    else:
        mcp.run()
