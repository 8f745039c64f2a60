"""CEL for policies, compiled to Python.

    program = compile('params.env == "prod" && size(params.hosts) > 3')
    program.evaluate({"params": {"env": "prod", "hosts": ["a", "b", "c", "d"]}})  # True
    program.explain(activation)  # what decided it

Parsing uses cel-python's grammar (`parser`), the tree is `nodes`, `codegen` turns it into one
Python function, `ops`/`functions` hold the full semantics, `checker` the static checks against
declarations, `cost` the static cost estimate.
"""

from __future__ import annotations

from .parser import CelSyntaxError, parse_cel
from .program import (
    CelCompileError,
    CelCostError,
    Explanation,
    Limits,
    Program,
    Term,
    compile,
)
from .values import (
    CelDuration,
    CelEvalError,
    CelLimitError,
    CelTimestamp,
    CelType,
    CelUint,
    ErrorKind,
    format_value,
)

__all__ = [
    "compile",
    "Program",
    "Limits",
    "Explanation",
    "Term",
    "CelSyntaxError",
    "CelCompileError",
    "CelCostError",
    "CelEvalError",
    "CelLimitError",
    "ErrorKind",
    "CelUint",
    "CelType",
    "CelTimestamp",
    "CelDuration",
    "format_value",
    "parse_cel",
]
