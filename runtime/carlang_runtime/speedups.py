"""The optional C speedups, `carlang_runtime._speedups`, where they were built.

The wheel carries them when a C compiler was found at install time (see `hatch_build.py`).
Each of their functions has a pure-Python twin that decides exactly as it does; the callers
take the twin when `native()` is None, and the tests run both. `CARLANG_NO_SPEEDUPS=1` in the
environment leaves them unused (and, at install time, unbuilt).
"""

from __future__ import annotations

import os
from functools import cache
from types import ModuleType

__all__ = ["ABI", "native"]

#: The version of `_speedups.c`'s contract this code expects (its `ABI`): a build of another
#: version, say one an older install left in a source tree, is not used.
ABI = 3


@cache
def native() -> ModuleType | None:
    """The compiled module, or None where it was not built, is of another `ABI`, or is turned
    off (looked for once: Python does not remember an import that failed, and looking again
    costs more than a small verify)."""
    if os.environ.get("CARLANG_NO_SPEEDUPS") == "1":
        return None
    try:
        from . import _speedups
    except ImportError:
        return None
    return _speedups if getattr(_speedups, "ABI", None) == ABI else None
