"""Tool implementations named by a string, as `carlang run --tools` and the workers of durable
backends take them: `module:attr` or `path/to/file.py:attr`, where `attr` is a mapping of tool
names to functions, a setup function (one parameter, named `runtime`), or one function (its
name is the tool's); or the module or file alone, for its `TOOLS` or `setup(runtime)`, else the
public functions it defines that are named after tools still without an implementation."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import sysconfig
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CarlangRuntimeError

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["register_tool_spec"]

_LIBRARIES = ("stdlib", "platstdlib", "purelib", "platlib")

#: Where the code that is not the user's lives: Python's own, carlang's, installed packages'.
_NOT_THEIRS = (
    "<frozen",
    str(Path(__file__).resolve().parents[1]),
    *{path for key, path in sysconfig.get_paths().items() if key in _LIBRARIES},
)


def register_tool_spec(runtime: Runtime, spec: str) -> list[str]:
    """Register the tools `spec` names on `runtime` and return their names;
    `CarlangRuntimeError` says what is wrong with a spec that names nothing usable, or whose
    setup function fails."""
    before = dict(runtime.tools)
    _register(runtime, spec)
    return [name for name, tool in runtime.tools.items() if before.get(name) is not tool]


def _register(runtime: Runtime, spec: str) -> None:
    target, _, attr = spec.rpartition(":")
    if not target and attr:  # a module or file alone: what it defines
        _register_module(runtime, spec)
        return
    if not target or not attr:
        raise CarlangRuntimeError(f"--tools {spec}: write module:attr or path/to/file.py:attr")
    module = _load_module(target)
    if not hasattr(module, attr):
        raise CarlangRuntimeError(f"--tools {spec}: {target} has no `{attr}`")
    _register_value(runtime, spec, attr, getattr(module, attr))


def _register_module(runtime: Runtime, spec: str) -> None:
    """`--tools tools.py` (or a module's name): its `TOOLS` or `setup(runtime)` when it has
    one (as `tools.py:TOOLS` would take it), else the public functions it defines, each under
    its name: those named after a tool the runtime declares and nothing implements yet (not its
    helpers, nor a built-in or an MCP server's tool), or all of them when it declares none."""
    module = _load_module(spec)
    tools, setup = getattr(module, "TOOLS", None), getattr(module, "setup", None)
    if isinstance(tools, Mapping) or _is_setup(setup):
        attr = "TOOLS" if isinstance(tools, Mapping) else "setup"
        _register_value(runtime, f"{spec}:{attr}", attr, getattr(module, attr))
        return
    functions = {
        name: value
        for name, value in vars(module).items()
        if inspect.isfunction(value)
        and value.__module__ == module.__name__  # (not what it imports)
        and not name.startswith("_")
    }
    if not functions:
        raise CarlangRuntimeError(
            f"--tools {spec}: it defines no function, `TOOLS` mapping or `setup(runtime)`;"
            f" name one with {spec}:attr"
        )
    if runtime.tools:
        wanted = {name for name, tool in runtime.tools.items() if tool.fn is None}
        if callable(setup) and "setup" not in wanted:  # (`def setup(rt)`: not run, not a tool)
            raise CarlangRuntimeError(
                f"--tools {spec}: `setup` is no tool of the program, and a setup function's"
                " one parameter must be called `runtime` (def setup(runtime))"
            )
        chosen = {name: fn for name, fn in functions.items() if name in wanted}
        if not chosen:
            defined = ", ".join(f"`{name}`" for name in functions)
            left = ", ".join(f"`{name}`" for name in sorted(wanted)) or "every tool has one"
            raise CarlangRuntimeError(
                f"--tools {spec}: none of its functions ({defined}) is named after a tool"
                f" without an implementation ({left}); name them so, or map names to"
                f" functions with {spec}:TOOLS"
            )
        functions = chosen
    for name, function in functions.items():
        runtime.register_tool(name, function)


def _register_value(runtime: Runtime, spec: str, attr: str, value: Any) -> None:
    if isinstance(value, Mapping):
        for name, fn in value.items():
            if not callable(fn):
                raise CarlangRuntimeError(f"--tools {spec}: `{name}` is not a function")
            runtime.register_tool(str(name), fn)
        return
    if callable(value):
        if _is_setup(value):
            try:
                value(runtime)  # a setup function: it registers what it likes
            except Exception as exc:  # the user's function failed: their error, not carlang's
                raise _raised(f"--tools {spec}: the setup function", exc) from None
        else:
            runtime.register_tool(attr, value)
        return
    raise CarlangRuntimeError(
        f"--tools {spec}: `{attr}` is neither a mapping of tools nor a function"
    )


def _is_setup(value: Any) -> bool:
    """Whether `value` is a setup function: one parameter, named `runtime` (a tool may be
    called `setup` and take one parameter: only the name tells them apart)."""
    return callable(value) and _parameters(value) == ["runtime"]


def _parameters(function: Any) -> list[str] | None:
    """The names of `function`'s parameters (None: it has no signature Python can read)."""
    try:
        return list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return None


def _load_module(target: str) -> Any:
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise CarlangRuntimeError(f"--tools: no file {target}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise CarlangRuntimeError(f"--tools: cannot load {target}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)  # its own helpers next to it (`import db`), as Python would
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # the user's module failed: their error, not carlang's
            del sys.modules[path.stem]
            raise _import_failed(target, exc) from None
        return module
    if "" not in sys.path:
        sys.path.insert(0, "")  # modules next to where carlang runs
    try:
        return importlib.import_module(target)
    except ImportError as exc:
        raise CarlangRuntimeError(f"--tools: cannot import {target}: {exc}") from None
    except Exception as exc:
        raise _import_failed(target, exc) from None


def _import_failed(target: str, exc: Exception) -> CarlangRuntimeError:
    """What to say when running the tools module `target` raised `exc`: where, and what (a
    syntax error at its line and column; anything else as `_raised` says it)."""
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename}:{exc.lineno}:{exc.offset or 1}"
        return CarlangRuntimeError(f"--tools {target}: {where}: syntax error: {exc.msg}")
    return _raised(f"--tools {target}: the module", exc)


def _raised(what: str, exc: Exception) -> CarlangRuntimeError:
    """`what` (the user's module, or their setup function) raised `exc`: say what, at the
    deepest line of their own code that raised it, and whose it is to fix."""
    frames = traceback.extract_tb(exc.__traceback__)
    # theirs: not Python's (its import machinery, its library), not carlang's, not installed
    # packages' (`register_tool(name, 42)` fails deep in `inspect`, but the line to fix is
    # the call in their code); failing that, the deepest line there is
    own = [f for f in frames if not f.filename.startswith(_NOT_THEIRS)] or [
        f for f in frames if not f.filename.startswith("<frozen")
    ]
    where = f" at {own[-1].filename}:{own[-1].lineno}" if own else ""
    return CarlangRuntimeError(
        f"{what} raised {type(exc).__name__}{where}: {exc} (fix it; carlang only runs it)"
    )
