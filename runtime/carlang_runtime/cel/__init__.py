"""CEL for policies: parsing (with cel-python's grammar) and, in `compiler`, evaluation."""

from __future__ import annotations

from .parser import CelSyntaxError, parse_cel

__all__ = ["CelSyntaxError", "parse_cel"]
