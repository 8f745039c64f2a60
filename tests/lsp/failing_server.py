"""carlang's language server with a compiler bug planted: diagnosing or hovering a document
whose name starts with `Crashing` raises (and so does a watched file of that name), as a real bug would (a `UnicodeEncodeError`, what a
lone surrogate once raised from RE2). Only this process's `Features` are wrapped: the guard
under test (carlang/lsp/guard.py) is the product's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from carlang.lsp.features import Features
from carlang.lsp.project import Project
from carlang.lsp.server import serve


def _planted(method: Any) -> Any:
    def failing(self: Any, path: Path, *args: Any) -> Any:
        if path.name.startswith("Crashing"):
            raise UnicodeEncodeError("utf-8", "\udc00", 0, 1, "surrogates not allowed")
        return method(self, path, *args)

    return failing


Features.diagnostics = _planted(Features.diagnostics)  # type: ignore[method-assign]
Features.hover = _planted(Features.hover)  # type: ignore[method-assign]
Project.disk_changed = _planted(Project.disk_changed)  # type: ignore[method-assign]

if __name__ == "__main__":
    serve(debounce=0.01)
