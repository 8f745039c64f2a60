"""The carlang language server (`carlang lsp`): the compiler's diagnostics, navigation,
completion, formatting and refactoring over the Language Server Protocol.

    project.py   the open files over the files on disk: parses kept between edits, the import
                 graph, each file compiled as an entry, its diagnostics (no LSP types)
    symbols.py   every name in a parsed file: what it is, where it is defined and used
    positions.py character offsets <-> LSP positions (UTF-16 by default)
    features.py  hover, definition, references, formatting, symbols, code actions, rename,
                 semantic tokens (lsprotocol types, no server)
    completion.py completion, from the text before the cursor and the project's names
    text.py      small Markdown and source-text helpers
    server.py    the pygls server: wiring, debouncing, publishing
    guard.py     every handler's guard: a bug answers an internal error, never a traceback

Only `server.py` needs pygls; `features.py` needs lsprotocol (both in the `lsp` extra).
"""

from __future__ import annotations

__all__: list[str] = []
