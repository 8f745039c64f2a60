"""A command started with standard output or input closed (`carlang compile f.car >&-`,
`carlang verify - <&-`): Python's stream is then None; carlang says the stream is closed and
exits 2, as for a full disk, never an internal AttributeError."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

NOTES = str(ROOT / "examples" / "files" / "notes.car")
_SH = shutil.which("sh")

pytestmark = pytest.mark.skipif(_SH is None, reason="no sh to start carlang with a closed stream")


def _carlang(redirect: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`carlang ARGS` started by the shell with `redirect` (`>&-`: stdout closed)."""
    assert _SH is not None
    script = f'exec "$0" -m carlang "$@" {redirect}'
    return subprocess.run(
        [_SH, "-c", script, sys.executable, *args],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["compile", NOTES],
        ["check", NOTES],  # (the lean path)
        ["codes"],
        ["test", str(ROOT / "examples" / "files")],
        ["--help"],
        ["--version"],
    ],
)
def test_a_closed_stdout_is_an_error_not_a_bug(args: list[str]) -> None:
    proc = _carlang(">&-", *args)
    assert proc.stderr.endswith("error: cannot write to standard output: it is closed\n")
    assert "internal" not in proc.stderr and "Traceback" not in proc.stderr
    assert proc.returncode == 2


@pytest.mark.parametrize(
    "args", [["verify", "-"], ["fmt", "-"], ["simulate", "-"], ["repl", NOTES], ["lsp"]]
)
def test_a_closed_stdin_is_an_error_not_a_bug(args: list[str]) -> None:
    proc = _carlang("<&-", *args)
    assert proc.stderr == "error: cannot read standard input: it is closed\n"
    assert proc.returncode == 2
