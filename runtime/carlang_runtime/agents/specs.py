"""The tools a model is offered, in its API's shape, and the names it may use for them.

Model APIs allow tool names of letters, digits, `_` and `-` only, so a carlang name with dots
(an MCP-bound tool such as `fs.read_file`) is offered as `fs__read_file`, and a call of that
name is mapped back to the tool. MCP keeps the carlang name as is. Two tools offered together
under one model name (`fs__delete` and `fs.delete`) are refused: a call could mean either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..capability import CapabilityCheck
from ..errors import CarlangRuntimeError
from ..ir import Capability, Program, ToolSchema
from ..ir.tools import model_tool_name
from ..redact import NAMED_SCHEMAS, is_secret_schema

__all__ = [
    "SPEC_FORMATS",
    "ambiguous_tool_names",
    "model_names",
    "model_tool_name",
    "tool_name_from_model",
    "tool_specs",
    "visible_tools",
]

#: The formats `tool_specs` writes.
SPEC_FORMATS: tuple[str, ...] = ("openai", "openai-responses", "anthropic", "mcp")


def tool_name_from_model(name: str, known: Mapping[str, Any]) -> str:
    """The tool a model meant by `name`: itself when known, else the known tool whose model
    name it is, else `name` unchanged (the runtime then reports an unknown tool)."""
    if name in known:
        return name
    for candidate in known:
        if model_tool_name(candidate) == name:
            return candidate
    return name


def ambiguous_tool_names(name: str, known: Mapping[str, Any]) -> list[str]:
    """The tools of `known` that a model's `name` may mean when it may mean more than one
    (`fs__delete` is tool `fs__delete`, and tool `fs.delete` as models see it), else []."""
    meant = [name] if name in known else []
    meant += [other for other in known if other != name and model_tool_name(other) == name]
    return meant if len(meant) > 1 else []


def model_names(schemas: Iterable[ToolSchema]) -> dict[str, str]:
    """Each tool's model name -> its carlang name, for tools offered together; a
    `CarlangRuntimeError` when two have one model name (a call of it could mean either)."""
    found: dict[str, str] = {}
    for schema in schemas:
        name = model_tool_name(schema.name)
        other = found.get(name)
        if other is not None:
            raise CarlangRuntimeError(
                f"tools {other} and {schema.name} are both offered to models as '{name}'"
                " (model APIs allow no dots in a tool name: `.` is written `__`): rename one,"
                " or offer one only (a capability that allows one of them)"
            )
        found[name] = schema.name
    return found


def visible_tools(source: Any, capability: str | Capability | None = None) -> list[ToolSchema]:
    """The tools of a program or runtime that `capability` allows (all without one), in
    declaration order."""
    schemas, capabilities = _tools_of(source)
    if capability is None:
        return schemas
    if isinstance(capability, str):
        found = capabilities.get(capability)
        if found is None:
            names = ", ".join(sorted(capabilities)) or "none"
            raise CarlangRuntimeError(f"no capability '{capability}' (capabilities: {names})")
        capability = found
    check = CapabilityCheck(capability)
    return [s for s in schemas if check.tool_problem(s.name) is None]


def tool_specs(
    source: Any, format: str = "openai", *, capability: str | Capability | None = None
) -> list[dict[str, Any]]:
    """The tool list a model sees: the tools of a `Program` or `Runtime` (or a list of
    `ToolSchema`) that the capability allows, as OpenAI function tools (Chat Completions,
    or `openai-responses`: the Responses API's), Anthropic tools or MCP tools. Tools outside
    the capability are left out entirely. Two tools with one model name (`fs__delete`,
    `fs.delete`) are a `CarlangRuntimeError` for a model's formats (MCP keeps the names as
    they are)."""
    if format not in SPEC_FORMATS:
        raise CarlangRuntimeError(
            f"unknown tool spec format '{format}' (use one of {', '.join(SPEC_FORMATS)})"
        )
    schemas = visible_tools(source, capability)
    if format != "mcp":
        model_names(schemas)
    return [_spec(schema, format) for schema in schemas]


def _spec(schema: ToolSchema, format: str) -> dict[str, Any]:
    parameters = input_schema(schema)
    if format == "openai":
        return {
            "type": "function",
            "function": {
                "name": model_tool_name(schema.name),
                "description": schema.description,
                "parameters": parameters,
            },
        }
    if format == "openai-responses":  # (the Responses API's function tools are flat)
        return {
            "type": "function",
            "name": model_tool_name(schema.name),
            "description": schema.description,
            "parameters": parameters,
            # (the API's default is strict, whose rules a tool with optional parameters does
            # not meet: carlang checks the arguments itself)
            "strict": False,
        }
    if format == "anthropic":
        return {
            "name": model_tool_name(schema.name),
            "description": schema.description,
            "input_schema": parameters,
        }
    spec: dict[str, Any] = {
        "name": schema.name,
        "description": schema.description,
        "inputSchema": parameters,
    }
    annotations = mcp_annotations(schema)
    if annotations:
        spec["annotations"] = annotations
    return spec


def input_schema(schema: ToolSchema) -> dict[str, Any]:
    """A tool's parameters as an object JSON Schema (a schemaless tool takes any object)."""
    parameters = dict(schema.parameters)
    if not parameters:
        return {"type": "object"}
    parameters.setdefault("type", "object")
    shown = _without_secret_examples(parameters)
    assert isinstance(shown, dict)
    return shown


#: What a secret's schema may hold of its value: offered to no model, listed to no client.
_SECRET_VALUES = ("default", "examples")


def _without_secret_examples(schema: Any) -> Any:
    """`schema` with the values (default, examples) of every `writeOnly` (secret) sub-schema
    left out, however deep (a nested object's field, `$defs`, `items`), and of every schema
    holding one (an object parameter's default holds its secret field's value)."""
    if isinstance(schema, list):
        return [_without_secret_examples(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    secret = _holds_secret(schema)
    shown: dict[str, Any] = {}
    for key, value in schema.items():
        if secret and key in _SECRET_VALUES:
            continue
        if key in NAMED_SCHEMAS and isinstance(value, dict):  # names, then schemas
            shown[key] = {name: _without_secret_examples(v) for name, v in value.items()}
        else:
            shown[key] = _without_secret_examples(value)
    return shown


def mcp_annotations(schema: ToolSchema) -> dict[str, Any]:
    """MCP tool annotations from what the program declares of a tool."""
    from ..ir import Reversibility

    annotations: dict[str, Any] = {}
    if schema.read_only:
        annotations["readOnlyHint"] = True
    if schema.idempotent:
        annotations["idempotentHint"] = True
    if schema.reversibility is Reversibility.IRREVERSIBLE and not schema.read_only:
        annotations["destructiveHint"] = True
    return annotations


def _tools_of(source: Any) -> tuple[list[ToolSchema], dict[str, Capability]]:
    if isinstance(source, Program):
        return list(source.tools), {c.name: c for c in source.capabilities}
    tools = getattr(source, "tools", None)
    if isinstance(tools, Mapping):  # a Runtime
        capabilities = getattr(source, "_capabilities", {})
        return (
            [tool.schema for tool in tools.values()],
            {name: check.capability for name, check in capabilities.items()},
        )
    if isinstance(source, Iterable):
        return [
            s if isinstance(s, ToolSchema) else ToolSchema.model_validate(s) for s in source
        ], {}
    raise CarlangRuntimeError(
        f"tool_specs takes a Program, a Runtime or tool schemas, not {type(source).__name__}"
    )


def _holds_secret(schema: Any) -> bool:
    """Whether `schema` is, or has anywhere inside it, a `writeOnly` schema."""
    if isinstance(schema, list):
        return any(_holds_secret(item) for item in schema)
    if not isinstance(schema, dict):
        return False
    return is_secret_schema(schema) or any(_holds_secret(v) for v in schema.values())
