"""Tool schemas: what a tool takes (a JSON Schema), returns, and how it may be cached and paced."""

# No `from __future__ import annotations`: pydantic reads the annotations to define each
# model's fields, and evaluating them from text would cost every start-up (issue 18).
from typing import Any

from pydantic import Field

from ._base import F64, U32, U64, Bool, CarModel, JsonMap, Str, omit_empty, omit_none
from .actions import Reversibility, SourceLoc

__all__ = ["McpBinding", "ToolRateLimit", "ToolSchema", "model_tool_name"]


class ToolRateLimit(CarModel):
    """A token bucket: `max_calls` per `interval_secs`, starting full."""

    max_calls: U32
    interval_secs: F64


class McpBinding(CarModel):
    """carlang extension: the MCP server a tool runs on, and the tool's name there."""

    server: Str
    tool: Str


class ToolSchema(CarModel):
    """A registered tool. `parameters` is a JSON Schema; `{}` means schemaless (anything goes)."""

    name: Str
    description: Str = ""
    parameters: JsonMap = Field(default_factory=dict)
    returns: Any = Field(default=None, exclude_if=omit_none)
    idempotent: Bool = False
    cache_ttl_secs: U64 | None = Field(default=None, exclude_if=omit_none)
    rate_limit: ToolRateLimit | None = Field(default=None, exclude_if=omit_none)
    # carlang extensions: the reversibility of the tool's calls, the queue whose workers run
    # them under a durable backend, and where it was declared
    reversibility: Reversibility | None = Field(default=None, exclude_if=omit_none)
    queue: Str | None = Field(default=None, exclude_if=omit_none)
    #: carlang extension: the tool only reads (calls of one model turn may run in parallel)
    read_only: Bool = Field(default=False, exclude_if=omit_empty)
    #: carlang extension: calls go to this MCP server's tool
    mcp: McpBinding | None = Field(default=None, exclude_if=omit_none)
    loc: SourceLoc | None = Field(default=None, exclude_if=omit_none)


def model_tool_name(name: str) -> str:
    """The name a model API sees for tool `name` (`.` becomes `__`: the APIs take no dot)."""
    return name.replace(".", "__")
