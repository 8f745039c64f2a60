"""The Mermaid that `carlang graph` writes, parsed by mermaid's own parser (npm `mermaid`, in
jsdom) for every example, a judged plan and a run. Skipped cleanly without node or npm."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from carlang.graph import graph_of_run, to_mermaid
from tests.test_graph import PROGRAMS, _graphs, _judged

from .npm_cache import node_modules

CHECK = Path(__file__).with_name("mermaid_check.mjs")


@pytest.mark.slow  # node + mermaid + jsdom: about 3 s
def test_mermaid_parses_every_picture(tmp_path: Path) -> None:
    from carlang_runtime import ir

    pictures = {p.stem: to_mermaid(_graphs(p)) for p in PROGRAMS}
    judged = _judged()
    pictures["judged"] = to_mermaid([judged])
    proposal = ir.ActionProposal(
        id="run",
        actions=[
            ir.Action(id="a", type=ir.ActionType.TOOL_CALL, tool="t"),
            ir.Action(id="b", type=ir.ActionType.TOOL_CALL, tool="t", depends_on=["a"]),
        ],
    )
    result = ir.ProposalResult(
        proposal_id="run",
        results=[
            ir.ActionResult(action_id="a", status=ir.ActionStatus.SUCCEEDED, rolled_back=True),
            ir.ActionResult(
                action_id="b", status=ir.ActionStatus.FAILED, error='boom "quoted" <x>'
            ),
        ],
    )
    pictures["run"] = to_mermaid([graph_of_run(proposal, result)])
    files = []
    for name, text in pictures.items():
        path = tmp_path / f"{name}.mmd"
        path.write_text(text)
        files.append(path)
    broken = tmp_path / "broken.mmd"
    broken.write_text("flowchart TB\n  a -->\n")
    modules = node_modules("mermaid@11", "jsdom@25")
    done = subprocess.run(
        ["node", str(CHECK), str(modules), *map(str, [*files, broken])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {Path(f).stem: r for f, r in report.items() if "error" in r}.keys() == {"broken"}
    assert all(r == {"type": "flowchart-v2"} for f, r in report.items() if Path(f).stem != "broken")
