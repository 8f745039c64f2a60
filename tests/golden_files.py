"""Golden-file comparison: expected output checked in next to its input, rewritten only by
`pytest --update-goldens` (or CARLANG_UPDATE_GOLDENS=1), never by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

__all__ = ["check_golden"]


def check_golden(path: Path, actual: str, update: bool) -> None:
    """Compare `actual` with the file at `path`; with `update`, write it instead."""
    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"missing golden file {path}; run pytest --update-goldens and review the diff")
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, (
        f"{path} differs; if the change is intended, run pytest --update-goldens"
    )
