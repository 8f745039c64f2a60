"""A FIFO (or a device, a socket) where carlang reads a file: a `schema from` document, or the
program itself, is refused as `import` refuses one ("it is not a regular file"), never read:
reading one blocks, maybe for ever."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_carlang


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_schema_from_a_fifo_is_refused_not_read(tmp_path: Path) -> None:
    (tmp_path / "carlang.toml").write_text("")
    os.mkfifo(tmp_path / "sch.json")
    (tmp_path / "dir.json").mkdir()
    (tmp_path / "fifo.car").write_text(
        'tool t() { schema from "sch.json" }\ntool d() { schema from "dir.json" }\n'
    )
    # (a fresh process: before the fix, reading the FIFO blocked for ever)
    proc = run_carlang("check", "fifo.car", cwd=tmp_path, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "cannot read schema document `sch.json`: it is not a regular file" in proc.stdout
    assert "cannot read schema document `dir.json`: it is a directory" in proc.stdout


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_loading_a_program_that_is_a_fifo_says_so(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.car")
    code = (
        "import sys\nfrom pathlib import Path\nfrom carlang.loader import load_program\n"
        "try:\n    load_program(Path(sys.argv[1]))\nexcept OSError as exc:\n"
        "    print(exc.strerror)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "fifo.car")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.strip().startswith("it is not a regular file (a pipe"), proc.stderr
