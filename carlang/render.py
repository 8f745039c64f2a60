"""Rendering diagnostics: human text (with the source line and a caret), JSON, and SARIF 2.1.0.

No other module prints diagnostics; golden files use the plain text renderer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from carlang_runtime.suggest import plural

from carlang import __version__

from .diagnostics import Diagnostic, Label

__all__ = ["render_text", "render_json", "render_sarif", "summary_line", "plural"]


#: The most columns of a source line a diagnostic shows: a minified JSON document or a
#: generated file can hold megabytes on one line, and the reader needs only the part around
#: the mark.
LINE_WINDOW = 120
_CUT = "..."


def _window(text: str, column: int, length: int) -> tuple[str, int, int]:
    """`text` cut to `LINE_WINDOW` columns around the mark at 1-based `column` spanning
    `length` columns, `...` where it is cut; with the mark's column and length in the cut
    text (a mark running past the window stops at its edge)."""
    if len(text) <= LINE_WINDOW:
        return text, column, length
    # The mark starts a third of the way in: some context before it, more after.
    start = max(0, min(column - 1 - LINE_WINDOW // 3, len(text) - LINE_WINDOW))
    end = start + LINE_WINDOW
    before = _CUT if start else ""
    after = _CUT if end < len(text) else ""
    shown = min(length, end - (column - 1))
    return f"{before}{text[start:end]}{after}", column - start + len(before), max(1, shown)


def _caret_lines(label: Label, width: int) -> list[str]:
    source, span = label.source, label.span
    line, column = source.line_column(span.start)
    text = source.line_text(line).replace("\t", " ").removesuffix("\r")  # (CRLF)
    end_line, end_column = source.line_column(max(span.end, span.start))
    length = (end_column - column) if end_line == line else len(text) - column + 1
    text, column, length = _escaped(text, column, max(1, length))
    text, column, length = _window(text, column, length)
    gutter = " " * width
    # in terminal cells, not characters: a wide character (CJK, most emoji) takes two, a
    # combining mark none, so the mark stays under what it points at
    indent = _cells(text[: column - 1])
    cells = max(1, _cells(text[column - 1 : column - 1 + length]))
    mark = ("^" if label.primary else "-") * cells
    suffix = f" {_quoted(label.message)}" if label.message else ""
    return [f"{line:>{width}} | {text}", f"{gutter} | {' ' * indent}{mark}{suffix}"]


def _escaped(text: str, column: int, length: int) -> tuple[str, int, int]:
    """`text` with each character that does not print written as its escape (`\\u202e`),
    with the mark's 1-based column and length in the escaped text: a bidirectional control
    character ("Trojan Source") printed as itself would make the terminal show the line in
    another order than the file's (and the caret under the wrong character), and an
    invisible one (a zero-width space, a no-break space) would not show at all."""
    if text.isprintable():
        return text, column, length
    # (only the part `_window` may show is escaped, from a margin each side that it always
    # cuts into, so that it still marks the cuts with `...`: a line can be megabytes long)
    margin = 2 * LINE_WINDOW
    start = max(0, column - 1 - margin)
    mark_end = column - 1 + min(length, margin)
    end = min(len(text), mark_end + margin)
    before = _escape(text[start : column - 1])
    marked = _escape(text[column - 1 : mark_end])
    after = _escape(text[mark_end:end])
    return before + marked + after, len(before) + 1, max(1, len(marked))


def _escape(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(
        char
        if char.isprintable()
        else f"\\u{ord(char):04x}"
        if ord(char) <= 0xFFFF
        else f"\\U{ord(char):08x}"
        for char in text
    )


#: Bidirectional control characters as escapes, for text a diagnostic quotes from the source
#: (its message, labels, help and notes, which print on one line each).
_DIRECTION_ESCAPES = {
    ord(char): f"\\u{ord(char):04x}"
    for char in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
}


def _quoted(text: str) -> str:
    """`text` with its bidirectional control characters escaped (see `_escaped`)."""
    return text if text.isascii() else text.translate(_DIRECTION_ESCAPES)


def _cells(text: str) -> int:
    """How many terminal cells `text` takes (its length, for ASCII)."""
    if text.isascii():
        return len(text)
    import unicodedata  # (only for a line that is not ASCII)

    return sum(
        0
        if unicodedata.combining(char) or char in _ZERO_WIDTH
        else 2
        if unicodedata.east_asian_width(char) in "WF"
        else 1
        for char in text
    )


#: Characters that take no cell: joiners and the variation selector of emoji.
_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\ufe0e\ufe0f")


def render_one(diagnostic: Diagnostic) -> str:
    """`file:line:col: severity[CODE]: message`, the source with carets, help and notes."""
    name, line, column = diagnostic.location()
    where = f"{name}:{line}:{column}: " if line else (f"{name}: " if name else "")
    message = _quoted(diagnostic.message)
    out = [f"{where}{diagnostic.severity}[{diagnostic.code}]: {message}"]
    labels = [label for label in diagnostic.labels if label.span]
    if labels:
        width = max(len(str(lab.source.line_column(lab.span.start)[0])) for lab in labels)
        primary = labels[0]
        for label in labels:
            if label is not primary and label.source is not primary.source:
                other, other_line, other_column = (
                    label.source.name,
                    *label.source.line_column(label.span.start),
                )
                out.append(f"{' ' * width} = {other}:{other_line}:{other_column}:")
            out.extend(_caret_lines(label, width))
    gutter = " " * (len(str(line)) if line else 1)
    if diagnostic.help:
        out.append(f"{gutter} = help: {_quoted(diagnostic.help)}")
    for note in diagnostic.notes:
        out.append(f"{gutter} = note: {_quoted(note)}")
    return "\n".join(out)


def summary_line(diagnostics: Sequence[Diagnostic], files: int) -> str:
    """`N errors, N warnings in N files`."""
    errors = sum(1 for d in diagnostics if d.severity == "error")
    warnings = sum(1 for d in diagnostics if d.severity == "warning")
    return f"{plural(errors, 'error')}, {plural(warnings, 'warning')} in {plural(files, 'file')}"


def render_text(diagnostics: Sequence[Diagnostic]) -> str:
    """All diagnostics, separated by blank lines."""
    return "\n\n".join(render_one(d) for d in diagnostics)


def _position(label: Label) -> dict[str, Any]:
    line, column = label.source.line_column(label.span.start)
    end_line, end_column = label.source.line_column(label.span.end)
    return {
        "file": label.source.name,
        "line": line,
        "column": column,
        "end_line": end_line,
        "end_column": end_column,
        "start": label.span.start,
        "end": label.span.end,
    }


def _pascal_case(name: str) -> str:
    """`policy-unknown-tool` -> `PolicyUnknownTool`."""
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))


def _context_region(label: Label, first: int, last: int) -> dict[str, Any]:
    """The lines around a result (one before, one after), with their text."""
    source = label.source
    start = max(1, first - 1)
    end = min(source.text.count("\n") + 1, last + 1)
    text = "\n".join(source.line_text(n) for n in range(start, end + 1))
    return _with_snippet({"startLine": start, "endLine": end}, text)


#: The longest region text a SARIF result quotes as its snippet.
_SNIPPET_LIMIT = 8 * LINE_WINDOW


def _with_snippet(region: dict[str, Any], text: str) -> dict[str, Any]:
    """`region` with `text` as its snippet, unless the text is past `_SNIPPET_LIMIT`: a
    snippet is the region's exact text, so it cannot be cut, and a region of a minified
    document can be megabytes (viewers then show the file itself)."""
    if len(text) <= _SNIPPET_LIMIT:
        region["snippet"] = {"text": text}
    return region


def render_json(diagnostics: Sequence[Diagnostic], failure: str | None = None) -> str:
    """A stable JSON document: `{"version": 1, "diagnostics": [...]}`; with `failure` (input
    the command could not use: nothing was checked), also `"error": failure`."""
    from .codes import all_codes

    names = {c.code: c.name for c in all_codes()}
    items = []
    for d in diagnostics:
        items.append(
            {
                "code": d.code,
                "name": names.get(d.code, ""),
                "severity": d.severity,
                "message": d.message,
                "labels": [
                    {**_position(lab), "message": lab.message, "primary": lab.primary}
                    for lab in d.labels
                    if lab.span
                ],
                "help": d.help,
                "notes": list(d.notes),
            }
        )
    document: dict[str, Any] = {"version": 1, "diagnostics": items}
    if failure is not None:
        document["error"] = failure
    return json.dumps(document, indent=2)


_SARIF_LEVELS = {"error": "error", "warning": "warning", "info": "note"}


def sarif_artifact(name: str, under: str = "") -> dict[str, str]:
    """A SARIF `artifactLocation` for a file as diagnostics name it (relative to the project
    root, which is `under` the SARIF base, `%SRCROOT%`: see `sarif_base`): relative to the
    base, or, for a file outside it named by an absolute path, a `file:` URI (SARIF forbids a
    relative reference that starts with `/`)."""
    path = Path(name)
    if path.is_absolute():
        return {"uri": path.as_uri()}
    relative = Path(under, path).as_posix() if under else path.as_posix()
    return {"uri": quote(relative), "uriBaseId": "%SRCROOT%"}


def sarif_base(root: Path) -> tuple[Path, str]:
    """The base of a SARIF report's URIs for a project whose root is `root`, and the root's
    path under it: the repository holding the project (the nearest folder with a `.git` at or
    above the root), as code-scanning services resolve URIs from a checkout's top; else the
    root itself. (A project with its `carlang.toml` in `policies/` had URIs no checkout held.)"""
    root = root.resolve()
    for folder in (root, *root.parents):
        if (folder / ".git").exists():
            under = root.relative_to(folder).as_posix()
            return folder, "" if under == "." else under
    return root, ""


def render_sarif(
    diagnostics: Sequence[Diagnostic], failure: str | None = None, root: Path | None = None
) -> str:
    """SARIF 2.1.0, one run, the rules taken from the code registry, URIs relative to the
    repository of the project `root` (`sarif_base`; the root itself when not given); with
    `failure` (input the command could not use: nothing was checked), an invocation that did
    not succeed and says why, so that a CI upload shows the failure instead of refusing an
    empty file."""
    from .codes import all_codes

    base, under = sarif_base(root) if root is not None else (None, "")

    codes = {c.code: c for c in all_codes()}
    used = sorted({d.code for d in diagnostics})
    rules = [
        {
            "id": code,
            # PascalCase, as SARIF validators recommend for rule names; no helpUri: the codes
            # are documented in docs/codes.md, and a URI must resolve
            "name": _pascal_case(codes[code].name) if code in codes else code,
            "shortDescription": {"text": codes[code].summary if code in codes else code},
            "help": {"text": f"{code}: see docs/codes.md, or `carlang codes {code}`"},
            "defaultConfiguration": {
                "level": _SARIF_LEVELS[codes[code].severity] if code in codes else "error"
            },
        }
        for code in used
    ]
    results = []
    for d in diagnostics:
        result: dict[str, Any] = {
            "ruleId": d.code,
            "ruleIndex": used.index(d.code),
            "level": _SARIF_LEVELS[d.severity],
            "message": {"text": d.message + (f" (help: {d.help})" if d.help else "")},
        }
        primary = d.primary
        if primary is not None and primary.span:
            pos = _position(primary)
            result["locations"] = [
                {
                    "physicalLocation": {
                        "artifactLocation": sarif_artifact(pos["file"], under),
                        "region": _with_snippet(
                            {
                                "startLine": pos["line"],
                                "startColumn": pos["column"],
                                "endLine": pos["end_line"],
                                "endColumn": max(pos["end_column"], pos["column"] + 1),
                            },
                            primary.source.text[pos["start"] : pos["end"]],
                        ),
                        "contextRegion": _context_region(primary, pos["line"], pos["end_line"]),
                    }
                }
            ]
        related = [lab for lab in d.labels if not lab.primary and lab.span]
        if related:
            result["relatedLocations"] = [
                {
                    "id": n,
                    "message": {"text": lab.message or "related"},
                    "physicalLocation": {
                        "artifactLocation": sarif_artifact(_position(lab)["file"], under),
                        "region": {
                            "startLine": _position(lab)["line"],
                            "startColumn": _position(lab)["column"],
                        },
                    },
                }
                for n, lab in enumerate(related)
            ]
        results.append(result)
    document: dict[str, Any] = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "carlang",
                        "version": __version__,
                        "rules": rules,
                    }
                },
                # Columns count code points (Python's), not the UTF-16 units SARIF assumes
                # when a run does not say.
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
    if base is not None:  # (a consumer reading the file elsewhere knows what it is relative to)
        document["runs"][0]["originalUriBaseIds"] = {"%SRCROOT%": {"uri": base.as_uri() + "/"}}
    if failure is not None:
        notification = {"level": "error", "message": {"text": failure}}
        document["runs"][0]["invocations"] = [
            {"executionSuccessful": False, "toolExecutionNotifications": [notification]}
        ]
    return json.dumps(document, indent=2)
