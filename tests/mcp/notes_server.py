"""A FastMCP server (the official SDK's) that keeps state per MCP session, as many servers do
(a login, a working directory, a note): `remember` keeps a note for the session calling,
`recall` gives it back. `tick` counts the calls of every session of every process started
with the same counter file, so that a cached output shows as a count that did not move.

    python notes_server.py COUNTER_FILE
"""

from __future__ import annotations

import fcntl
import sys
from pathlib import Path

from mcp.server.fastmcp import Context, FastMCP

mcp = FastMCP("notes")
#: The notes, by MCP session (the SDK's session object of the client calling).
_notes: dict[int, str] = {}


@mcp.tool()
def remember(text: str, ctx: Context) -> str:
    """Remember a note for this MCP session."""
    _notes[id(ctx.session)] = text
    return "ok"


@mcp.tool()
def recall(ctx: Context) -> str:
    """This MCP session's note."""
    return _notes.get(id(ctx.session), "<nothing>")


@mcp.tool()
def tick() -> int:
    """How many times tick was called, by anyone (counted in the counter file)."""
    with open(Path(sys.argv[1]), "a+") as counter:
        fcntl.flock(counter, fcntl.LOCK_EX)
        counter.seek(0)
        count = int(counter.read() or 0) + 1
        counter.seek(0)
        counter.truncate()
        counter.write(str(count))
    return count


if __name__ == "__main__":
    mcp.run()
