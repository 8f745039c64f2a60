"""`check --format sarif` against Microsoft's SARIF validator (`@microsoft/sarif-multitool`,
from npm), the reference implementation of SARIF 2.1.0's rules: a file outside the project
root, a column after characters beyond the BMP, a related location. The schema subset in
tests/data checks the shape in the default run; this checks what only the validator knows
(URI rules, region rules). Slow: npx fetches the tool on first use."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import run_carlang

pytestmark = pytest.mark.slow

VALIDATOR = "@microsoft/sarif-multitool@5.7.0"


def _validate(sarif: Path, tmp_path: Path) -> list[dict[str, object]]:
    """The validator's findings (errors and warnings) for `sarif`; skips when it cannot run."""
    if shutil.which("npx") is None:
        pytest.skip("npx is not installed: the SARIF validator cannot be had")
    report = tmp_path / "validation.sarif"
    done = subprocess.run(
        ["npx", "--yes", VALIDATOR, "validate", str(sarif), "-o", str(report)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if not report.exists():
        pytest.skip(f"the SARIF validator could not run: {done.stderr.strip()[-200:]}")
    results = json.loads(report.read_text())["runs"][0]["results"]
    return [r for r in results if r.get("level", "warning") in ("error", "warning")]


def _rules(findings: list[dict[str, object]]) -> set[object]:
    return {finding["ruleId"] for finding in findings}


def test_check_sarif_passes_the_validator(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "carlang.toml").write_text("")
    (project / "emoji.car").write_text(
        "tool fetch(url: string)\n"
        'policy p: deny fetch when "😀😀" == params.nope\n'
        "policy twice: deny fetch\npolicy twice: deny fetch\n"
    )
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "bad.car").write_text("tool t(\n")
    done = run_carlang("check", ".", str(outside), "--format", "sarif", cwd=project)
    assert done.returncode == 1, done.stderr
    sarif = tmp_path / "check.sarif"
    sarif.write_text(done.stdout)
    document = json.loads(done.stdout)
    uris = {
        location["physicalLocation"]["artifactLocation"]["uri"]
        for result in document["runs"][0]["results"]
        for location in result["locations"]
    }
    assert "emoji.car" in uris and (outside / "bad.car").as_uri() in uris
    # columns count code points: the emoji are one column each, and the run says so
    assert document["runs"][0]["columnKind"] == "unicodeCodePoints"
    # the validator's only remark: no informationUri (carlang has no web site to name)
    assert _rules(_validate(sarif, tmp_path)) <= {"SARIF2005"}


def test_uris_are_relative_to_the_repository_holding_the_project(tmp_path: Path) -> None:
    """A trial: with `carlang.toml` in policies/ of a repository, SARIF said `ops/ops.car`,
    which no checkout holds (code scanning resolves URIs from the repository's top)."""
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "policies" / "ops").mkdir(parents=True)
    (repo / "policies" / "carlang.toml").write_text("")
    (repo / "policies" / "ops" / "ops.car").write_text("tool t()\ntool spare()\npolicy p: deny t\n")
    done = run_carlang("check", "policies", "--format", "sarif", cwd=repo)
    assert done.returncode == 0, done.stderr
    sarif = tmp_path / "check.sarif"
    sarif.write_text(done.stdout)
    run = json.loads(done.stdout)["runs"][0]
    (location,) = run["results"][0]["locations"]
    assert location["physicalLocation"]["artifactLocation"] == {
        "uri": "policies/ops/ops.car",
        "uriBaseId": "%SRCROOT%",
    }
    assert run["originalUriBaseIds"] == {"%SRCROOT%": {"uri": repo.resolve().as_uri() + "/"}}
    assert _rules(_validate(sarif, tmp_path)) <= {"SARIF2005"}
