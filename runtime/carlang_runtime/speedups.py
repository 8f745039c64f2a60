"""The optional C speedups, `carlang_runtime._speedups`, where they were built.

The wheel carries them when a C compiler was found at install time (see `hatch_build.py`).
Each of their functions has a pure-Python twin that decides exactly as it does; the callers
take the twin when `native()` is None, and the tests run both.
"""

from __future__ import annotations

from functools import cache
from types import ModuleType

__all__ = ["native"]


@cache
def native() -> ModuleType | None:
    """The compiled module, or None where it was not built (looked for once: Python does not
    remember an import that failed, and looking again costs more than a small verify)."""
    try:
        from . import _speedups
    except ImportError:
        return None
    return _speedups
