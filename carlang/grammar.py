"""Where the grammar lives: inside the package when installed from a wheel (the build copies
grammar/carlang.lark to carlang/carlang.lark), in the source tree's grammar/ otherwise."""

from __future__ import annotations

from pathlib import Path

__all__ = ["grammar_path", "grammar_text"]

_PACKAGED = Path(__file__).resolve().parent / "carlang.lark"
_SOURCE_TREE = Path(__file__).resolve().parent.parent / "grammar" / "carlang.lark"


def grammar_path() -> Path:
    """The grammar file this installation uses."""
    if _PACKAGED.is_file():
        return _PACKAGED
    if _SOURCE_TREE.is_file():
        return _SOURCE_TREE
    raise FileNotFoundError(
        f"carlang's grammar is missing (looked for {_PACKAGED} and {_SOURCE_TREE}); "
        "the installation is broken: reinstall carlang"
    )


def grammar_text() -> str:
    """The grammar's text."""
    return grammar_path().read_text("utf-8")
