"""Rename for the language server: every place a tool, state key, policy, capability, budget,
proposal, action or plan is written, renamed together, and only when the program still means
the same thing after it.

A rename is refused (`RenameRefused`, which the server answers as an LSP error the editor
shows) when the new name is not a name, when it is already the name of another declaration of
the same kind (two declarations would become one name), or when it would read as a keyword
where it is written (`context` as an action's name).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types as lsp

from ..diagnostics import Diagnostics
from ..parse import parse
from ..source import Source, Span
from .positions import to_range
from .symbols import Occurrence, SymbolKey
from .uris import uri_of

if TYPE_CHECKING:
    from .features import Features
    from .project import ProjectFile

__all__ = ["RENAMEABLE", "RenameRefused", "Renamer"]

#: The kinds of symbol a rename changes, and what a message calls one.
RENAMEABLE = {
    "tool": "tool",
    "state": "state key",
    "policy": "policy",
    "capability": "capability",
    "budget": "budget",
    "proposal": "proposal",
    "action": "action",
    "plan": "plan",
}
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
#: Kinds whose names may have dotted parts (as the compiler's CL0208 allows).
_DOTTED_KINDS = {"tool", "state"}
#: `under` names a capability or a budget: the two share their names.
_SHARED_NAMES = {"capability": ("capability", "budget"), "budget": ("capability", "budget")}


class RenameRefused(Exception):
    """A rename the server will not make. `message` is for the user; `code` is the LSP error
    code to answer with (InvalidParams for a new name that is not a name, else
    RequestFailed)."""

    def __init__(self, message: str, code: int = lsp.LSPErrorCodes.RequestFailed) -> None:
        super().__init__(message)
        self.message = message
        self.code = int(code)


class Renamer:
    """Rename over the features' project."""

    def __init__(self, features: Features) -> None:
        self.features = features

    def target(self, path: Path, position: lsp.Position) -> tuple[ProjectFile, Occurrence] | None:
        """The renameable name under the cursor (not a state key pattern: its `*` is not a
        name), or None."""
        found = self.features.symbol_at(path, position)
        if found is None:
            return None
        kind, name = found[1].key
        return found if kind in RENAMEABLE and "*" not in name else None

    def prepare(self, path: Path, position: lsp.Position) -> lsp.Range | None:
        """The range of the renameable name under the cursor: editors refuse a rename
        elsewhere before asking for a new name."""
        found = self.target(path, position)
        if found is None:
            return None
        return to_range(found[0].source, found[1].span, self.features.encoding)

    def rename(self, path: Path, position: lsp.Position, new_name: str) -> lsp.WorkspaceEdit | None:
        """The edits renaming the symbol under the cursor to `new_name` everywhere it is
        written; None when there is nothing to rename there. Raises `RenameRefused`."""
        found = self.target(path, position)
        if found is None:
            return None
        key = found[1].key
        old = _written(key)
        _check_shape(key[0], new_name)
        if new_name == old:
            return lsp.WorkspaceEdit(changes={})
        self._check_free(path, key, new_name)
        places = self._places(path, key, old)
        _check_parses(places, key[0], old, new_name)
        encoding = self.features.encoding
        return lsp.WorkspaceEdit(
            changes={
                uri_of(file.path): [
                    lsp.TextEdit(range=to_range(file.source, span, encoding), new_text=new_name)
                    for span in spans
                ]
                for file, spans in places.values()
            }
        )

    def _places(
        self, path: Path, key: SymbolKey, old: str
    ) -> dict[Path, tuple[ProjectFile, list[Span]]]:
        """Where the symbol is written, by file: the spans to replace."""
        # `under` names a capability or a budget: its names are renamed with either.
        kinds = {key[0], "capability|budget"} if key[0] in _SHARED_NAMES else {key[0]}
        places: dict[Path, tuple[ProjectFile, list[Span]]] = {}
        for file, occurrence in self.features.all_occurrences(path):
            if occurrence.key[0] not in kinds or occurrence.key[1] != key[1]:
                continue
            # A state key read through a pattern is written differently: leave it.
            if file.source.text[occurrence.span.start : occurrence.span.end] != old:
                continue
            places.setdefault(file.path, (file, []))[1].append(occurrence.span)
        return places

    def _check_free(self, path: Path, key: SymbolKey, new_name: str) -> None:
        """Refuse a name another declaration of the same kind already has: the two would
        become one name (a duplicate, or references silently pointing elsewhere)."""
        kind = key[0]
        if kind == "action":  # an action's name is its proposal's own
            proposal = key[1].split("/", 1)[0]
            if self.features.definitions_of(path, ("action", f"{proposal}/{new_name}")):
                raise RenameRefused(f"`{new_name}` is already an action in this proposal")
            return
        for other in _SHARED_NAMES.get(kind, (kind,)):
            taken = self.features.definitions_of(path, (other, new_name))
            if taken:
                file, occurrence = taken[0]
                shown = file.source.text[occurrence.span.start : occurrence.span.end]
                named = "" if shown == new_name else f" (`{shown}`)"
                raise RenameRefused(
                    f"`{new_name}` is already {_a(RENAMEABLE[other])}{named}, declared in "
                    f"`{file.source.name}`"
                )


def _written(key: SymbolKey) -> str:
    """How the symbol is written in the source (an action's key has its proposal in front)."""
    kind, name = key
    return name.split("/", 1)[1] if kind == "action" else name


def _check_shape(kind: str, new_name: str) -> None:
    noun = RENAMEABLE[kind]
    dotted = kind in _DOTTED_KINDS
    if (_DOTTED if dotted else _PLAIN).fullmatch(new_name):
        return
    shown = f"`{new_name}`" if new_name else "an empty name"
    rule = "a name is ASCII letters, digits and `_`, not starting with a digit"
    if dotted:
        rule += ", in parts joined by `.`"
    raise RenameRefused(f"{shown} is not a valid {noun} name: {rule}", lsp.ErrorCodes.InvalidParams)


def _check_parses(
    places: dict[Path, tuple[ProjectFile, list[Span]]], kind: str, old: str, new_name: str
) -> None:
    """Refuse a name that reads as a keyword where it would be written: each renamed file is
    parsed again, and must have no more syntax errors than it had."""
    for file, spans in places.values():
        text = _replaced(file.source.text, spans, new_name)
        before = _syntax_errors(file.parsed.diagnostics)
        after = parse(Source(file.source.name, text)).diagnostics
        if _syntax_errors(after) > before:
            raise RenameRefused(
                f"`{new_name}` is a keyword where the {RENAMEABLE[kind]} `{old}` is written: "
                f"it cannot name it"
            )


def _replaced(text: str, spans: list[Span], new_name: str) -> str:
    for span in sorted(spans, key=lambda s: s.start, reverse=True):
        text = text[: span.start] + new_name + text[span.end :]
    return text


def _syntax_errors(diagnostics: Diagnostics) -> int:
    return sum(1 for d in diagnostics.items if d.severity == "error")


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"
