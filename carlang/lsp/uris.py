"""Documents by URI and files by path: a `file:` URI is its file; any other (an editor's
`untitled:Untitled-1`, a buffer never saved) is an unsaved document, given a path of its own
that no file has, under `UNSAVED`, so that the project can hold it like any open file.

An unsaved document is a program on its own: it is in no folder, so it has no project and its
imports lead nowhere (see `Project`).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, unquote, urlparse

__all__ = ["UNSAVED", "uri_of", "path_of_uri", "is_unsaved"]

#: Where unsaved documents are put: `UNSAVED/<scheme>/<the rest of the URI, quoted>`.
UNSAVED = Path("/carlang-unsaved-documents")


def path_of_uri(uri: str) -> Path:
    """The resolved path of a `file:` URI; for another URI, its unsaved document's path."""
    parsed = urlparse(uri)
    if parsed.scheme in ("file", ""):
        return Path(unquote(parsed.path)).resolve()
    rest = uri[len(parsed.scheme) + 1 :]
    return UNSAVED / quote(parsed.scheme, safe="") / quote(rest, safe="")


def uri_of(path: Path) -> str:
    """The URI of a path: `file:`, or the URI the unsaved document came with."""
    if is_unsaved(path):
        return f"{unquote(path.parent.name)}:{unquote(path.name)}"
    return path.as_uri()


def is_unsaved(path: Path) -> bool:
    """Whether `path` stands for an unsaved document (see `path_of_uri`)."""
    return path.parent.parent == UNSAVED
