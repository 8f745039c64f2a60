"""`carlang graph`: Mermaid and DOT for every example, rendered by the real Graphviz where it is
installed (no warnings, one SVG node per action), verdicts on the nodes."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carlang.cli import app
from carlang.compiler import compile_file, compile_text
from carlang.graph import PlanGraph, graph_of_compile, render, to_dot, to_mermaid

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PROGRAMS = sorted(
    p
    for p in EXAMPLES.rglob("*.car")
    if not p.name.endswith("_test.car") and p.parent.name != "shared"
)
runner = CliRunner()
render_module = importlib.import_module("carlang.graph.render")
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz `dot` is not installed"
)

JUDGED = """
tool fetch(url: string) { reversibility reversible }
tool store(key: string) { reversibility compensable }
tool unstore(key: string)
state {
  ready: bool = false
  data.*: any
}
policy https_only: deny fetch when !params.url.startsWith("https://")
policy ask: require_approval unstore
proposal p {
  a = fetch(url: "http://x") { effects { data.a = 1 } }
  b = store(key: "k") { reads data.a  compensate unstore(key: "k") }
  c = store(key: "j") after b { requires ready == true  compensate with d }
  d = unstore(key: "j")
}
"""


def _graphs(path: Path) -> list[PlanGraph]:
    result = compile_file(path, EXAMPLES)
    assert result.program is not None
    return [
        graph_of_compile(p, result.policy_findings.get(p.id), result.verify_results.get(p.id))
        for p in result.program.proposals
    ]


def _judged() -> PlanGraph:
    result = compile_text(JUDGED, root=Path("/tmp"))
    assert result.program is not None
    (proposal,) = result.program.proposals
    return graph_of_compile(
        proposal, result.policy_findings.get("p"), result.verify_results.get("p")
    )


def test_examples_have_proposals_to_draw() -> None:
    assert len(PROGRAMS) >= 5
    assert all(_graphs(p) for p in PROGRAMS)


def test_verdicts_and_edges() -> None:
    graph = _judged()
    assert graph.levels == [["a", "d"], ["b"], ["c"]] or graph.levels[0][0] == "a"
    status = {n.id: (n.status, n.note) for n in graph.nodes.values()}
    assert status["a"] == ("denied", "denied by https_only")
    assert status["c"] == ("precondition", "precondition fails")
    assert status["d"] == ("approval", "needs approval by ask")
    assert status["undo b"] == ("undo", "")
    kinds = {(e.source, e.target, e.kind, e.label) for e in graph.edges}
    assert ("a", "b", "state", "data.a") in kinds
    assert ("b", "c", "after", "") in kinds
    assert ("b", "undo b", "compensation", "undo") in kinds
    assert ("c", "d", "compensation", "undo") in kinds


def test_mermaid_and_dot_text() -> None:
    graph = _judged()
    mermaid = to_mermaid([graph])
    assert mermaid.startswith("flowchart TB\n")
    assert 'n_p__a("a<br/>tool_call: fetch<br/>denied by https_only")' in mermaid
    assert 'n_p__a ==>|"data.a"| n_p__b' in mermaid  # a state dependency: thick, keyed
    assert "n_p__b --> n_p__c" in mermaid  # after: plain
    assert 'n_p__b -.->|"undo"| n_p__undo_b' in mermaid  # compensation: dashed
    assert "classDef denied fill:#f8d7da,stroke:#c62828" in mermaid
    dot = to_dot([graph])
    assert '"p/a" [label="a\\ntool_call: fetch\\ndenied by https_only"' in dot
    assert '"p/a" -> "p/b" [style=bold' in dot and '"p/b" -> "p/undo b" [style=dashed' in dot


@needs_dot
@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.name)
def test_graphviz_renders_every_example_without_warnings(program: Path) -> None:
    graphs = _graphs(program)
    done = subprocess.run(
        ["dot", "-Tsvg"], input=to_dot(graphs).encode(), capture_output=True, check=False
    )
    assert done.returncode == 0 and done.stderr == b"", done.stderr.decode()
    titles = re.findall(
        r'<g id="node\d+" class="node">\s*<title>([^<]*)</title>', done.stdout.decode()
    )
    expected = [f"{g.proposal}/{n}" for g in graphs for n in g.nodes]
    assert sorted(titles) == sorted(expected)
    actions = [f"{g.proposal}/{a}" for g in graphs for level in g.levels for a in level]
    assert set(actions) <= set(titles) and len(actions) == len(set(actions))


@needs_dot
def test_cli_writes_svg_and_png(tmp_path: Path) -> None:
    svg = tmp_path / "release.svg"
    result = runner.invoke(
        app,
        [
            "graph",
            str(EXAMPLES / "release" / "release.car"),
            "-o",
            str(svg),
            "--root",
            str(EXAMPLES),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        svg.read_text().lstrip().startswith("<?xml")
        and "needs approval by prod_approval" in svg.read_text()
    )
    png = tmp_path / "plans.png"
    result = runner.invoke(
        app,
        [
            "graph",
            str(EXAMPLES / "planning" / "deploy_plans.car"),
            "--plan",
            "hotfix_rollout",
            "-o",
            str(png),
            "--root",
            str(EXAMPLES),
        ],
    )
    assert result.exit_code == 0, result.output
    assert png.read_bytes().startswith(b"\x89PNG")


def test_cli_mermaid_to_stdout_and_choices() -> None:
    path = str(EXAMPLES / "planning" / "deploy_plans.car")
    result = runner.invoke(app, ["graph", path, "--proposal", "safe_path", "--root", str(EXAMPLES)])
    assert result.exit_code == 0 and result.stdout.startswith("flowchart TB")
    assert 'subgraph p0["proposal safe_path"]' in result.stdout and "fast_path" not in result.stdout
    missing = runner.invoke(app, ["graph", path, "--proposal", "nope", "--root", str(EXAMPLES)])
    assert missing.exit_code == 2 and "no proposal `nope`" in missing.stderr


def test_without_graphviz_a_clear_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(render_module.shutil, "which", lambda name: None)
    with pytest.raises(render_module.GraphvizMissing, match="apt-get install graphviz"):
        render([_judged()], "svg")
    result = runner.invoke(
        app,
        [
            "graph",
            str(EXAMPLES / "release" / "release.car"),
            "-o",
            str(tmp_path / "x.svg"),
            "--root",
            str(EXAMPLES),
        ],
    )
    assert result.exit_code == 2 and "needs Graphviz's `dot`" in result.stderr


def test_run_draws_the_outcomes(tmp_path: Path) -> None:
    from tests.test_cli_run import project

    program, tools = project(tmp_path)
    picture = tmp_path / "run.mmd"
    result = runner.invoke(
        app,
        [
            "run",
            str(program),
            "--tools",
            f"{tools}:setup",
            "--auto-approve",
            "--graph",
            str(picture),
        ],
    )
    assert result.exit_code == 1  # the deploy fails; the fetch before it is rolled back
    mermaid = picture.read_text()
    assert "ship<br/>tool_call: deploy<br/>failed: RuntimeError: the cluster is down" in mermaid
    assert "class n_release__ship failed" in mermaid
    assert "class n_release__get rolled_back" in mermaid
    assert 'n_release__ship -.->|"undo"| n_release__undo_ship' in mermaid


def test_run_refuses_a_graph_it_cannot_write_before_running(tmp_path: Path) -> None:
    """A --graph in a folder that does not exist was found only after the plan ran (its
    writes done) and ended the run with that error alone, its result unprinted."""
    files = tmp_path / "root"
    files.mkdir()
    notes = str(EXAMPLES / "files" / "notes.car")
    args = ["run", notes, "--builtins", "--files-root", str(files)]
    missing = tmp_path / "no" / "run.mmd"
    refused = runner.invoke(app, [*args, "--graph", str(missing)])
    assert refused.exit_code == 2
    assert f"--graph {missing}: there is no folder" in " ".join(refused.stderr.split())
    assert not any(files.rglob("*"))  # nothing ran
    # a graph written after the result: the result is printed whatever becomes of it
    drawn = runner.invoke(app, [*args, "--graph", str(tmp_path / "run.mmd")])
    assert drawn.exit_code == 0, drawn.output
    assert "succeeded" in drawn.stdout and (tmp_path / "run.mmd").read_text()
    assert f"wrote {tmp_path / 'run.mmd'}" in drawn.stderr
    # a suffix that names no format was written as Mermaid, saying nothing (a trial)
    unknown = runner.invoke(app, [*args, "--graph", str(tmp_path / "run.xyz")])
    assert unknown.exit_code == 2 and not (tmp_path / "run.xyz").exists()
    assert "name a .svg or .png (Graphviz), .mmd (Mermaid) or .dot file" in unknown.stderr


def test_rank_sweep_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (carlang[plot])")
    path = str(EXAMPLES / "planning" / "deploy_plans.car")
    plot = tmp_path / "sweep.svg"
    args = ["rank", path, "--root", str(EXAMPLES), "--sweep", "approval_penalty=0:2:0.5"]
    result = runner.invoke(app, [*args, "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert "the winner changes 1 time(s)" in result.stderr and f"wrote {plot}" in result.stderr
    svg = plot.read_text()
    assert svg.startswith("<?xml") and svg.count('id="line2d_') >= 3  # a line per candidate
    both = runner.invoke(app, [*args, "--sweep", "seed=1,2", "--plot", str(plot)])
    assert both.exit_code == 2 and "one setting" in both.stderr
    alone = runner.invoke(app, ["rank", path, "--root", str(EXAMPLES), "--plot", str(plot)])
    assert alone.exit_code == 2 and "--plot draws a sweep" in alone.stderr
