"""npm packages for the editor tests, installed once into a cache outside the repository
(`CARLANG_NPM_CACHE`, default ~/.cache/carlang-tests/npm); the test skips cleanly, and quickly,
when node or npm is missing or the install fails."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("CARLANG_NPM_CACHE", Path.home() / ".cache" / "carlang-tests" / "npm"))

#: The package sets whose install failed in this run: tried once per run, not once per test.
_FAILED: set[tuple[str, ...]] = set()


def node_modules(*packages: str) -> Path:
    """The cache's node_modules with `packages` (`name@range`) installed, or skip the test."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm are not installed")
    modules = CACHE / "node_modules"
    names = [
        p.rsplit("@", 1)[0] if not p.startswith("@") or p.count("@") > 1 else p for p in packages
    ]
    if all((modules / name / "package.json").is_file() for name in names):
        return modules
    if packages in _FAILED:
        pytest.skip(f"could not install {', '.join(packages)} from npm (tried once this run)")
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(CACHE),
                "--no-audit",
                "--no-fund",
                "--silent",
                # one quick retry: without the registry (no network, or a proxy's certificate
                # npm does not trust) the default backoff waits out the whole timeout
                "--fetch-retries=1",
                "--fetch-retry-mintimeout=2000",
                "--fetch-retry-maxtimeout=5000",
                *packages,
            ],
            capture_output=True,
            timeout=120,
            check=True,
        )
    except (subprocess.SubprocessError, OSError):
        _FAILED.add(packages)
        pytest.skip(f"could not install {', '.join(packages)} from npm")
    return modules
