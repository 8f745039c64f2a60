"""`carlang mcp serve` reads only .car files under its project root (the working directory,
or --root): a `path` outside it (absolute, `..`, a symlink out) or naming another kind of
file is refused before anything is read, and an import is held to the same rules, so no
word of another file reaches the agent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from tests.conftest import ROOT
from tests.mcp.conftest import needs_sdk
from tests.mcp.test_serve import call, serving

# slow: a server as a subprocess per test (the default run stays under three minutes; CI
# runs these)
pytestmark = [needs_sdk, pytest.mark.slow]

SECRET = "hunter2 topsecret\n"


def _layout(tmp_path: Path) -> tuple[Path, Path]:
    project, outside = tmp_path / "project", tmp_path / "outside"
    (project / "lib").mkdir(parents=True)
    outside.mkdir()
    (project / "policy.car").write_text('import "lib/tools.car"\n')
    (project / "lib" / "tools.car").write_text("tool t(x: string)\n")
    (project / "notes.txt").write_text(SECRET)
    (outside / "secret.car").write_text(SECRET)
    (outside / "secret.txt").write_text(SECRET)
    (project / "link.car").symlink_to(outside / "secret.car")
    (project / "text.car").symlink_to(project / "notes.txt")
    return project, outside


def test_paths_outside_the_root_are_refused(tmp_path: Path) -> None:
    project, outside = _layout(tmp_path)

    async def scenario() -> None:
        async with serving(cwd=project) as session:
            for path in (
                str(outside / "secret.car"),
                str(outside / "secret.txt"),
                "../outside/secret.car",
                "lib/../../outside/secret.car",
                "link.car",
                "/etc/shadow",
            ):
                error, message = await call(session, "check", path=path)
                assert error, path
                assert f"{path} is outside the project root" in message, message
                assert "hunter2" not in message
            for path in ("notes.txt", "text.car", "lib"):
                error, message = await call(session, "check", path=path)
                assert error and "is not a .car file" in message, message
                assert "hunter2" not in message
            error, message = await call(session, "check", path="nothing.car")
            assert error and "no file nothing.car" in message, message
            # under the root, any spelling of a .car file is read
            for path in ("policy.car", "lib/../policy.car", str(project / "policy.car")):
                error, checked = await call(session, "check", path=path)
                assert not error and checked["ok"], (path, checked)
            error, checked = await call(
                session, "verify", proposal={"id": "p", "actions": []}, path="lib/tools.car"
            )
            assert not error and checked["valid"]
            # imports keep to the root, and to .car files
            error, checked = await call(session, "check", program='import "notes.txt"\n')
            assert not error and checked["diagnostics"][0]["code"] == "CL0209"
            assert "only .car files can be imported" in checked["diagnostics"][0]["message"]
            assert "hunter2" not in str(checked)  # nothing of the file is read
            error, checked = await call(
                session, "check", program='import "../outside/secret.car"\n'
            )
            assert not error and checked["diagnostics"][0]["code"] == "CL0211"
            assert "hunter2" not in str(checked)
            error, checked = await call(session, "check", program='import "lib/tools.car"\n')
            assert not error and checked["ok"]
            error, message = await call(
                session, "policy_check", tool="t", params={"x": "1"}, path="../outside/secret.car"
            )
            assert error and "outside the project root" in message

    anyio.run(scenario)


def test_root_option_chooses_the_root(tmp_path: Path) -> None:
    project, outside = _layout(tmp_path)
    (outside / "ok.car").write_text("tool t(x: string)\n")

    async def scenario() -> None:
        async with serving("--root", str(outside), cwd=project) as session:
            error, checked = await call(session, "check", path="ok.car")
            assert not error and checked["ok"]
            error, message = await call(session, "check", path=str(project / "policy.car"))
            assert error and "is outside the project root" in message

    anyio.run(scenario)
    missing = subprocess.run(
        [sys.executable, "-m", "carlang", "mcp", "serve", "--root", str(tmp_path / "none")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}"},
        timeout=60,
    )
    assert missing.returncode == 2
    assert missing.stderr == f"error: --root {tmp_path / 'none'}: no such folder\n"


def test_a_path_the_system_cannot_look_at_is_a_tool_error(tmp_path: Path) -> None:
    """A path too long to look up (a 5,000-character name) was an internal error (-32603,
    `OSError: File name too long`); it is a tool error saying so, the path shortened. A
    directory named like a .car file is said to be one."""
    project, _ = _layout(tmp_path)
    (project / "dir.car").mkdir()

    async def scenario() -> None:
        async with serving(cwd=project) as session:
            for path in ("a" * 5000 + ".car", "a/" * 3000 + "x.car"):
                error, message = await call(session, "check", path=path)
                assert error, message
                assert message.endswith(": cannot read it (file name too long)"), message
                assert f"({len(path)} characters)" in message and len(message) < 300, message
            error, message = await call(session, "check", path="dir.car")
            assert error and message == "dir.car: it is a directory, not a file", message

    anyio.run(scenario)
