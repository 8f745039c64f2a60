"""Tools: plain Python callables (sync or async) and subprocesses, with their schemas.

A tool is called with the action's parameters as keyword arguments. One that needs more
declares a parameter annotated `ToolContext` (or named `context`), which receives the action,
a view of the state it may also write, the cancel token and the attempt number. A schema is
given at registration or derived from the function's type hints and defaults.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import signal
import types
import typing
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from ..environment import DEFAULT_INHERITED_ENV, tool_environment
from ..ir import Action, ToolSchema
from ..paramcheck import ParamChecker, parameter_defaults
from ..redact import SecretPath, secret_paths
from .cancel import CancelToken
from .state import _IMMUTABLE, MISSING, RunWrites, StateConflict, detached

__all__ = [
    "ToolContext",
    "ToolState",
    "ToolError",
    "RegisteredTool",
    "call_arguments",
    "schema_from_function",
    "subprocess_tool",
    "tool_environment",
    "DEFAULT_INHERITED_ENV",
]


class ToolError(Exception):
    """Raised by a tool to fail with a message of its own (no exception type prefix)."""


class ToolState(Mapping[str, Any]):
    """The state as a tool sees it: reads see the tool's own writes first, and are copies (a
    tool that changes what it read changes nothing); writes are staged, claimed for the run at
    once (a key another run in flight writes is a `ToolError` right there), and committed only
    if the action succeeds."""

    def __init__(self, writes: RunWrites) -> None:
        self._live = writes.data
        self._run = writes
        self.writes: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key in self.writes:
            value = self.writes[key]
            if value is MISSING:
                raise KeyError(key)
            return detached(value)
        return detached(self._live[key])

    def __contains__(self, key: object) -> bool:
        if key in self.writes:
            return self.writes[key] is not MISSING
        return key in self._live

    def __iter__(self) -> Iterator[str]:
        keys = dict.fromkeys(self._live)
        keys.update(dict.fromkeys(self.writes))
        return iter([k for k in keys if self.writes.get(k, None) is not MISSING])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def set(self, key: str, value: Any) -> None:
        """Write `value` (a copy of it) under `key` when the action succeeds."""
        self._claim(key)
        self.writes[key] = detached(value)

    def delete(self, key: str) -> None:
        """Remove `key` when the action succeeds."""
        self._claim(key)
        self.writes[key] = MISSING

    def _claim(self, key: str) -> None:
        try:
            self._run.claim(key)
        except StateConflict as conflict:
            raise ToolError(str(conflict)) from None


@dataclass
class ToolContext:
    """What a tool that asks for it receives besides its parameters."""

    action: Action
    state: ToolState
    cancel: CancelToken
    attempt: int
    proposal_id: str
    run_id: str
    session: str | None = None
    scope: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class RegisteredTool:
    """A tool the runtime knows: its schema and, unless only declared, its implementation."""

    name: str
    schema: ToolSchema
    fn: Callable[..., Any] | None = None
    is_async: bool = False
    context_param: str | None = None
    accepts_any: bool = True
    params: frozenset[str] = frozenset()
    #: The parameters the function has no default for (a call must give each).
    required: frozenset[str] = frozenset()
    #: How to rebuild the tool from a checkpoint: `module:qualname` or a subprocess spec.
    origin: dict[str, Any] | None = None
    #: Whether a call can run inline, with nothing to wait for: a sync function without a
    #: context, a rate limit or a cache (the action may still need a timeout or retries).
    inline: bool = field(init=False, default=False)
    #: The parameter check (None for a schemaless tool).
    checker: ParamChecker | None = field(init=False, default=None)
    #: Where its secret parameters are (see redact.py); empty for most tools.
    secrets: tuple[SecretPath, ...] = field(init=False, default=())
    #: The declared defaults of its top-level parameters (see `paramcheck.with_defaults`).
    defaults: dict[str, Any] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.inline = (
            self.fn is not None
            and not self.is_async
            and self.context_param is None
            and self.schema.rate_limit is None
            and not self.schema.cache_ttl_secs
        )
        parameters = self.schema.parameters
        self.checker = ParamChecker(self.name, parameters) if parameters else None
        self.secrets = secret_paths(parameters)
        self.defaults = parameter_defaults(parameters)

    @classmethod
    def from_function(
        cls, name: str, fn: Callable[..., Any], schema: ToolSchema | Mapping[str, Any] | None
    ) -> RegisteredTool:
        """Register `fn`, with `schema` or one derived from its signature."""
        signature = inspect.signature(fn)
        context_param = _context_parameter(fn, signature)
        if schema is None:
            schema = schema_from_function(name, fn)
        elif not isinstance(schema, ToolSchema):
            schema = ToolSchema.model_validate({"name": name, **dict(schema)})
        params = frozenset(
            p.name
            for p in signature.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != context_param
        )
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        # (from the function called, not the one it wraps: a decorator may supply some)
        required = frozenset(
            p.name
            for p in _own_signature(fn).parameters.values()
            if p.default is p.empty
            and p.name != context_param
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )
        module = getattr(fn, "__module__", None)
        qualname = getattr(fn, "__qualname__", "")
        origin = (
            {"kind": "python", "ref": f"{module}:{qualname}"}
            if module and "<" not in qualname
            else None
        )
        return cls(
            name=name,
            schema=schema,
            fn=fn,
            is_async=_is_coroutine_function(fn),
            context_param=context_param,
            accepts_any=accepts_any,
            params=params,
            required=required,
            origin=getattr(fn, "carlang_origin", origin),
        )

    def missing_arguments(self, parameters: Mapping[str, Any]) -> list[str]:
        """The function's parameters without a default that a call with `parameters` (and
        the tool's declared defaults) would not give it: such a call fails with Python's
        TypeError before the function runs."""
        return sorted(self.required - parameters.keys() - self.defaults.keys())

    def arguments(self, parameters: Mapping[str, Any]) -> Mapping[str, Any]:
        """The keyword arguments for a call: the parameters the function takes (extras are
        dropped unless it takes **kwargs: agents send extras, and CAR allows them)."""
        if self.accepts_any or parameters.keys() <= self.params:
            return parameters  # `fn(**parameters)` copies it anyway
        return {k: v for k, v in parameters.items() if k in self.params}


def _own_signature(fn: Callable[..., Any]) -> inspect.Signature:
    """`fn`'s own signature, not that of a function it wraps (`functools.wraps`)."""
    try:
        return inspect.signature(fn, follow_wrapped=False)
    except (TypeError, ValueError):
        return inspect.Signature()


def call_arguments(tool: RegisteredTool, parameters: Mapping[str, Any]) -> Mapping[str, Any]:
    """A call's keyword arguments, with a copy of every value a tool could change in place
    (a list, a dict): a tool that changes its arguments must not change the proposal."""
    arguments = tool.arguments(parameters)
    for value in arguments.values():
        if not isinstance(value, _IMMUTABLE):
            return {name: detached(value) for name, value in arguments.items()}
    return arguments


def _is_coroutine_function(fn: Callable[..., Any]) -> bool:
    # A callable object counts by its __call__.
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


def type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """`fn`'s resolved annotations; when some cannot be resolved (a name local to where
    `fn` was defined), the others still are."""
    try:
        return typing.get_type_hints(fn)
    except Exception:
        pass
    hints: dict[str, Any] = {}
    namespace = getattr(fn, "__globals__", {})
    for name, annotation in getattr(fn, "__annotations__", {}).items():
        if not isinstance(annotation, str):
            hints[name] = annotation
            continue
        try:
            hints[name] = eval(annotation, namespace)  # noqa: S307 - the function's own text
        except Exception:
            continue
    return hints


def _context_parameter(fn: Callable[..., Any], signature: inspect.Signature) -> str | None:
    hints = type_hints(fn)
    for parameter in signature.parameters.values():
        if hints.get(parameter.name) is ToolContext or parameter.annotation in (
            ToolContext,
            "ToolContext",
        ):
            return parameter.name
    return "context" if "context" in signature.parameters else None


# -- schemas from type hints -------------------------------------------------------------------

_SIMPLE: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
    dict: {"type": "object"},
    list: {"type": "array"},
    Path: {"type": "string"},
}


def json_schema_of(annotation: Any) -> dict[str, Any]:
    """The JSON Schema of values of a type annotation ({} when it cannot say)."""
    if annotation in _SIMPLE:
        return dict(_SIMPLE[annotation])
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (Union, types.UnionType):
        options = [json_schema_of(arg) for arg in args]
        return {"anyOf": options} if all(options) else {}
    if origin in (list, tuple, set, frozenset, Sequence) or origin is typing.Sequence:
        items = json_schema_of(args[0]) if args else {}
        return {"type": "array", **({"items": items} if items else {})}
    if origin in (dict, Mapping) or origin is typing.Mapping:
        values = json_schema_of(args[1]) if len(args) == 2 else {}
        return {"type": "object", **({"additionalProperties": values} if values else {})}
    return {}


def schema_from_function(name: str, fn: Callable[..., Any]) -> ToolSchema:
    """A tool schema from a function's parameters: their annotations give the types, the
    ones without a default are required, the docstring's first line is the description."""
    signature = inspect.signature(fn)
    context_param = _context_parameter(fn, signature)
    hints = type_hints(fn)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for parameter in signature.parameters.values():
        if parameter.name == context_param or parameter.kind in (
            parameter.VAR_POSITIONAL,
            parameter.VAR_KEYWORD,
            parameter.POSITIONAL_ONLY,
        ):
            continue
        schema = json_schema_of(hints.get(parameter.name, Any))
        if parameter.default is parameter.empty:
            required.append(parameter.name)
        elif _is_json(parameter.default):
            schema["default"] = parameter.default
        properties[parameter.name] = schema
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    doc = inspect.getdoc(fn) or ""
    returns = json_schema_of(hints["return"]) if "return" in hints else None
    return ToolSchema.model_validate(
        {
            "name": name,
            "description": doc.strip().splitlines()[0] if doc.strip() else "",
            "parameters": parameters,
            **({"returns": returns} if returns else {}),
        }
    )


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


# -- subprocess tools --------------------------------------------------------------------------


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _kill_group(process: asyncio.subprocess.Process) -> None:
    """Kill the tool's whole process group (it leads one), not only the child."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def subprocess_tool(
    argv: Sequence[str],
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    inherit_env: Sequence[str] | None = None,
) -> Callable[..., Awaitable[Any]]:
    """A tool that runs a program. `argv` is a list, never a shell string; an element that
    is exactly `{name}` is replaced by that parameter (other braces are left alone). The
    parameters also arrive as JSON on standard input. Standard output is the result (parsed
    as JSON when it is JSON); a non-zero exit status fails the call with the end of standard
    error. `timeout` (seconds), or the action's own timeout, kills its whole process group.
    Its environment is an allow-list: the variables in `inherit_env` (default
    `DEFAULT_INHERITED_ENV`) from this process, plus `env`."""
    template = list(argv)
    if not template:
        raise ValueError("a subprocess tool needs a program to run")
    environment = tool_environment(env, inherit_env)

    async def run(**params: Any) -> Any:
        command = []
        for part in template:
            placeholder = _PLACEHOLDER.fullmatch(part)
            if placeholder is None:
                command.append(part)
                continue
            name = placeholder.group(1)
            if name not in params:
                raise ToolError(f"argv needs parameter '{name}'")
            value = params[name]
            command.append(value if isinstance(value, str) else json.dumps(value))
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment,
            cwd=None if cwd is None else str(cwd),
            start_new_session=True,  # its own process group, killed whole
        )
        payload = json.dumps(params).encode()
        try:
            out, err = await asyncio.wait_for(process.communicate(payload), timeout)
        except TimeoutError:
            _kill_group(process)
            await process.wait()
            raise ToolError(f"timed out after {round((timeout or 0) * 1000)} ms") from None
        except BaseException:
            _kill_group(process)
            await asyncio.shield(process.wait())
            raise
        if process.returncode != 0:
            tail = err.decode("utf-8", "replace").strip()[-500:]
            raise ToolError(f"{template[0]} exited with status {process.returncode}: {tail}")
        text = out.decode("utf-8", "replace").strip()
        try:
            return json.loads(text) if text else None
        except json.JSONDecodeError:
            return text

    run.__doc__ = f"Runs {template[0]}."
    run.carlang_origin = {  # type: ignore[attr-defined]
        "kind": "subprocess",
        "argv": template,
        "timeout": timeout,
        "env": dict(env) if env else None,
        "cwd": None if cwd is None else str(cwd),
        "inherit_env": None if inherit_env is None else list(inherit_env),
    }
    return run
