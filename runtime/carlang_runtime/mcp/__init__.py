"""MCP (Model Context Protocol): servers as tool providers, and what carlang serves.

client.py    a JSON-RPC client over stdio or Streamable HTTP (no SDK needed)
provider.py  sessions per runtime; MCP-bound tools as runtime tools; schema pinning
"""

from __future__ import annotations

from .client import McpClient, McpError, McpProtocolError
from .provider import McpSessions, attach_mcp_servers, schema_fingerprint

__all__ = [
    "McpClient",
    "McpError",
    "McpProtocolError",
    "McpSessions",
    "attach_mcp_servers",
    "schema_fingerprint",
]
