"""carlang_runtime: the lean runtime for CAR proposals and compiled carlang programs.

IR models (`carlang_runtime.ir`), static verification (`verify`, `simulate`, `equivalent`,
`optimize`), the CEL policy engine (`cel`, `policy`), and the interpreter (`engine`: `Runtime`).
This package never imports `carlang`, lark or typer: a service that only runs compiled IR
needs nothing else. Names are imported lazily, so `import carlang_runtime` stays cheap.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .engine import (
        Approval,
        ApprovalGate,
        ApprovalRequest,
        AutoApprove,
        CallbackGate,
        CancelToken,
        DenyApprovals,
        EventLog,
        Middleware,
        ReplanConfig,
        RetryPolicy,
        Runtime,
        ToolContext,
        ToolError,
        format_tool_result,
    )
    from .errors import CarlangRuntimeError, IRLoadError
    from .ir import ActionProposal, ActionResult, Program, ProposalResult
    from .policy import PolicySet
    from .verify import VerifyResult, equivalent, optimize, verify
    from .verify.simulate import simulate  # (the function; mypy confuses it with the module)

__all__ = [
    "__version__",
    "ActionProposal",
    "Program",
    "CarlangRuntimeError",
    "IRLoadError",
    "VerifyResult",
    "verify",
    "simulate",
    "equivalent",
    "optimize",
    "Runtime",
    "RetryPolicy",
    "ReplanConfig",
    "CancelToken",
    "ApprovalGate",
    "ApprovalRequest",
    "Approval",
    "AutoApprove",
    "DenyApprovals",
    "CallbackGate",
    "Middleware",
    "EventLog",
    "ToolContext",
    "ToolError",
    "format_tool_result",
    "PolicySet",
    "ProposalResult",
    "ActionResult",
]

_LAZY = {
    "ActionProposal": "ir",
    "Program": "ir",
    "CarlangRuntimeError": "errors",
    "IRLoadError": "errors",
    "VerifyResult": "verify",
    "verify": "verify",
    "simulate": "verify",
    "equivalent": "verify",
    "optimize": "verify",
    "Runtime": "engine",
    "RetryPolicy": "engine",
    "ReplanConfig": "engine",
    "CancelToken": "engine",
    "ApprovalGate": "engine",
    "ApprovalRequest": "engine",
    "Approval": "engine",
    "AutoApprove": "engine",
    "DenyApprovals": "engine",
    "CallbackGate": "engine",
    "Middleware": "engine",
    "EventLog": "engine",
    "ToolContext": "engine",
    "ToolError": "engine",
    "format_tool_result": "engine",
    "PolicySet": "policy",
    "ProposalResult": "ir",
    "ActionResult": "ir",
}


#: Public names that are also the names of submodules: `verify` is the function, never the
#: module `carlang_runtime.verify` (importing that module binds it on its package, which would
#: shadow the lazy name: the answer would depend on what was imported first).
_SHADOWED = frozenset(name for name, module in _LAZY.items() if name == module)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'carlang_runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


class _Package(types.ModuleType):
    """This package, which keeps its public names: the import system's binding of a submodule
    named like one (`carlang_runtime.verify`) is not kept (the module stays in `sys.modules`,
    where `import carlang_runtime.verify` and `from carlang_runtime.verify import ...` find
    it), so the name stays the function."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
