"""carlang: a declarative policy-and-plan compiler for AI agents.

The compiler (this package) turns `.car` source into the IR of `carlang_runtime`, which verifies,
runs and ranks it. The runtime never imports this package.
"""

from __future__ import annotations

from carlang_runtime._version import __version__

__all__ = ["__version__"]
