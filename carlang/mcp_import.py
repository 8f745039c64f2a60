"""`carlang mcp import`: an MCP server's tools as carlang declarations.

The server is started (or reached), its tools listed, and a .car file written: the
`mcp_server` and one tool per server tool, named `server.tool` (characters a name cannot hold
become `_`, with `remote "..."` keeping the server's name), with its description and its
input schema written out exactly (`schema {...}`), so the runtime's schema pinning compares
like with like. The annotations become `read_only` / `reversibility` only where that is sound,
and the file says they are the server's hints.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from carlang_runtime.ir import McpServer
from carlang_runtime.mcp import McpClient, McpError

from .fmt import format_source, format_value
from .source import Source

__all__ = [
    "import_server",
    "server_name_for",
    "render_import",
    "local_tool_name",
    "unusable_tools",
]

_NOT_NAME = re.compile(r"[^A-Za-z0-9_]")


def server_name_for(command: Sequence[str] | None, url: str | None) -> str:
    """A server name from how it is started: `mcp-server-time` -> `time`,
    `npx -y @modelcontextprotocol/server-filesystem /tmp` -> `filesystem`."""
    if command:
        words = [w for w in command if not w.startswith("-")]
        program = Path(words[0]).name if words else "server"
        if (
            program in ("npx", "uvx", "pipx", "node", "python", "python3", "deno", "bunx")
            and len(words) > 1
        ):
            program = words[1].rsplit("/", 1)[-1]
            if program in ("-m",) and len(words) > 2:
                program = words[2]
        base = program
    else:
        base = (url or "server").rstrip("/").rsplit("/", 1)[-1] or "server"
    base = base.split("@")[0]
    for prefix in ("mcp-server-", "mcp_server_", "server-", "mcp-"):
        if base.startswith(prefix) and len(base) > len(prefix):
            base = base[len(prefix) :]
    return _plain_name(base)


def _plain_name(text: str) -> str:
    name = _NOT_NAME.sub("_", text).strip("_") or "server"
    return name if not name[0].isdigit() else "_" + name


def local_tool_name(server: str, remote: str, taken: set[str]) -> str:
    """`server.tool`, with the tool part made a name, unique among `taken`."""
    base = f"{server}.{_plain_name(remote)}"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def import_server(
    server: McpServer, timeout: float = 60.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Start or reach the server and list its tools: (its serverInfo, its tools). Raises
    `McpError`, with what the server wrote on standard error (or, not JSON-RPC, on standard
    output), when it cannot be started, fails, or does not answer within `timeout`."""
    client = McpClient(server, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout  # one bound for starting and listing together
    try:
        client.start(timeout)
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return client.server_info, client.list_tools(left)
    except TimeoutError:
        raise McpError(
            f"MCP server '{server.name}' did not answer within {timeout:g}s{client.said()}"
        ) from None
    except McpError as exc:
        raise McpError(f"{exc}{client.said()}") from None
    finally:
        client.close()


def render_import(
    server: McpServer,
    info: dict[str, Any],
    tools: list[dict[str, Any]],
    unusable: Mapping[str, str] | None = None,
) -> str:
    """The .car text declaring `server` and its `tools`, formatted as `carlang fmt` writes it;
    the tools in `unusable` (`unusable_tools`, found here when not given) are left out, each
    with a comment saying why."""
    label = " ".join(x for x in (info.get("name"), info.get("version")) if x) or server.name
    lines = [
        f"# MCP server `{server.name}` ({label}), imported by `carlang mcp import`.",
        "# read_only and reversibility below come from the server's annotations:",
        "# they are its hints, not verified. Review them before relying on them.",
        "",
        f"mcp_server {server.name} {{",
    ]
    if server.url is not None:
        lines.append(f"  url {format_value(server.url)}")
    else:
        lines.append(f"  command {format_value(server.command)}")
        if server.args:
            lines.append(f"  args {format_value(list(server.args))}")
        if server.env:
            lines.append(f"  env {format_value(dict(server.env))}")
        if server.cwd:
            lines.append(f"  cwd {format_value(server.cwd)}")
    lines.append("}")
    taken: set[str] = set()
    if unusable is None:
        unusable = unusable_tools(tools)
    for tool in sorted(tools, key=lambda t: str(t.get("name", ""))):
        remote = str(tool.get("name", ""))
        if remote in unusable:  # a declaration `carlang check` refuses: left out, said why
            lines.extend(["", f"# not imported: `{remote}`: {unusable[remote]}"])
            continue
        name = local_tool_name(server.name, remote, taken)
        lines.append("")
        lines.append(f"tool {name}() {{")
        description = (tool.get("description") or tool.get("title") or "").strip()
        if description:
            lines.append(f"  description {format_value(description)}")
        lines.extend("  " + item for item in _hint_items(tool.get("annotations") or {}))
        if name != f"{server.name}.{remote}":
            lines.append(f"  remote {format_value(remote)}")
        lines.append(f"  schema {format_value(_input_schema(tool))}")
        lines.append("}")
    text = "\n".join(lines) + "\n"
    return format_source(Source("import.car", text))


def unusable_tools(tools: list[dict[str, Any]]) -> dict[str, str]:
    """The server's tools whose input schema carlang cannot check calls against (MCP asks
    for an object JSON Schema; some servers publish other things): name -> the problem."""
    from .lower import schema_problem

    unusable = {}
    for tool in tools:
        problem = schema_problem(_input_schema(tool))
        if problem is not None:
            unusable[str(tool.get("name", ""))] = f"its input schema is not usable: {problem}"
    return unusable


def _input_schema(tool: dict[str, Any]) -> Any:
    return tool.get("inputSchema") or {"type": "object"}


def _hint_items(annotations: dict[str, Any]) -> list[str]:
    """carlang items for the hints that say something sound: a read-only tool changes nothing
    (reversible; calls of one turn may run in parallel); a destructive one cannot be undone.
    `idempotentHint` is not mapped: MCP means "no further effect", while carlang's `idempotent`
    lets the runtime answer a repeated call from its first result (a clock would stop)."""
    items = []
    read_only = annotations.get("readOnlyHint") is True
    if read_only:
        items.extend(["read_only", "reversibility reversible"])
    elif annotations.get("destructiveHint") is True:
        items.append("reversibility irreversible")
    return items
