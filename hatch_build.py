"""Build hook: compile the optional C speedups (`carlang_runtime._speedups`) into the wheel.

The extension is one C file with no dependency beyond Python's headers, compiled with the
compiler Python itself was built with (sysconfig's `LDSHARED`), or the one `CC` names (and
`CFLAGS` adds to), as setuptools does. Where none is found, or it
fails, the build goes on without it and says so: every function in it has a pure-Python twin
that decides exactly as it does, only slower. `CARLANG_NO_SPEEDUPS=1` skips it on purpose.

An editable install builds it next to its source (`runtime/carlang_runtime/`), where the
editable import path finds it; a wheel carries it as `carlang_runtime/_speedups.<abi>.so`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("runtime") / "carlang_runtime" / "_speedups.c"


class SpeedupsBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compiles `_speedups.c` for the wheel and editable targets."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Add the compiled extension to the build, or warn that it is left out."""
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        name = "_speedups" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so")
        if version == "editable":
            target = root / "runtime" / "carlang_runtime" / name
            target.unlink(missing_ok=True)  # an earlier build is not this one's
        else:
            self._build_dir = tempfile.mkdtemp(prefix="carlang-speedups-")
            target = Path(self._build_dir) / name
        if os.environ.get("CARLANG_NO_SPEEDUPS") == "1":
            return
        problem = compile_extension(root / SOURCE, target)
        if problem is not None:
            self.app.display_warning(
                f"carlang: the C speedups were not built ({problem}); "
                "carlang works without them, more slowly on large JSON proposals and programs"
            )
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":
            build_data["force_include"][str(target)] = f"carlang_runtime/{name}"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        """Remove the wheel build's temporary directory, once the wheel holds the module."""
        build_dir = getattr(self, "_build_dir", None)
        if build_dir is not None:
            shutil.rmtree(build_dir, ignore_errors=True)


def compile_extension(source: Path, target: Path) -> str | None:
    """Compile `source` into the extension module `target`; None, or what went wrong.

    The command is Python's own `LDSHARED` (the compiler and flags it was built with), with
    `CC` and `CFLAGS` from the environment honoured as setuptools honours them: `CC` takes
    the place of the compiler `LDSHARED` starts with (sysconfig's `CC`), `CFLAGS` adds
    flags."""
    if sys.platform == "win32":
        return "no C compiler configured for this Python"
    try:
        command = _command(source, target)
    except ValueError as exc:  # (shlex: a quote not closed in CC, CFLAGS or LDSHARED)
        return f"CC, CFLAGS or LDSHARED cannot be read: {exc}"
    if not command:
        return "no C compiler configured for this Python"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{command[0]}: {exc}"
    if done.returncode != 0:
        return f"{command[0]} failed: {done.stderr.strip()[-500:]}"
    return None


def _command(source: Path, target: Path) -> list[str]:
    """The compile-and-link command (empty: no compiler configured)."""
    linker = shlex.split(sysconfig.get_config_var("LDSHARED") or "")
    built_with = shlex.split(sysconfig.get_config_var("CC") or "")
    wanted = shlex.split(os.environ.get("CC", ""))
    if wanted and built_with and linker[: len(built_with)] == built_with:
        linker = wanted + linker[len(built_with) :]  # (`ccache gcc` replaced whole)
    if not linker:
        return []
    include = sysconfig.get_paths()["include"]
    flags = shlex.split(os.environ.get("CFLAGS", ""))
    return [
        *linker,
        "-O2",
        "-fPIC",
        *flags,
        f"-I{include}",
        str(source),
        "-o",
        str(target),
    ]
