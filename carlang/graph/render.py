"""Drawing plan graphs: Mermaid (GitHub renders it in Markdown) and Graphviz DOT as text; SVG
and PNG by piping the DOT through Graphviz's `dot` when it is installed.

Edges are told apart the same way in both: `after` solid, a state dependency thick and labelled
with its keys, a compensation dashed to the action or tool call that undoes. A node's fill says
what `check` judged (or what a run did) and its label says why.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence

from carlang_runtime.errors import CarlangRuntimeError

from .model import GraphNode, PlanGraph

__all__ = ["to_mermaid", "to_dot", "render", "GraphvizMissing", "STYLES", "FORMATS"]

FORMATS = ("mermaid", "dot", "svg", "png")

#: status -> (fill, border, border style, what the label says)
STYLES: dict[str, tuple[str, str, str, str]] = {
    "ok": ("#ffffff", "#546e7a", "solid", ""),
    "denied": ("#f8d7da", "#c62828", "solid", "DENIED"),
    "may_deny": ("#fdecea", "#e57373", "dashed", "MAY BE DENIED"),
    "approval": ("#ffe0a3", "#e69500", "solid", "NEEDS APPROVAL"),
    "precondition": ("#e8eaf6", "#3949ab", "bold", "PRECONDITION FAILS"),
    "error": ("#f8d7da", "#8e0000", "dashed", "ERROR"),
    "succeeded": ("#d4edda", "#2e7d32", "solid", "succeeded"),
    "failed": ("#f8d7da", "#c62828", "solid", "failed"),
    "skipped": ("#eeeeee", "#9e9e9e", "dashed", "skipped"),
    "rejected": ("#fce4ec", "#ad1457", "solid", "rejected"),
    "rolled_back": ("#e3f2fd", "#1565c0", "solid", "rolled back"),
    "compensated": ("#ede7f6", "#5e35b1", "solid", "compensated"),
    "not_run": ("#ffffff", "#bdbdbd", "dashed", "not run"),
    "undo": ("#f5f5f5", "#7b1fa2", "dashed", ""),
}
_STATE_EDGE = "#1f77b4"
_UNDO_EDGE = "#7b1fa2"


class GraphvizMissing(CarlangRuntimeError):
    """SVG or PNG was asked for and Graphviz's `dot` is not installed."""


def _lines(node: GraphNode) -> list[str]:
    if node.status == "undo":
        return [f"undo: {node.tool}()"]
    what = f"{node.kind}: {node.tool}" if node.tool else node.kind
    lines = [node.id, what]
    tag = STYLES[node.status][3]
    if node.note:
        verdict = node.status in ("denied", "may_deny", "approval", "precondition")
        lines.append(node.note if verdict else f"{tag}: {node.note}")
    elif tag:
        lines.append(tag)
    return lines


# -- Mermaid -----------------------------------------------------------------------------------


def _mermaid_id(graph: PlanGraph, node_id: str) -> str:
    return "n_" + re.sub(r"\W", "_", f"{graph.proposal}__{node_id}")


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def to_mermaid(graphs: Sequence[PlanGraph]) -> str:
    """A Mermaid flowchart of the proposals, one subgraph each."""
    out = ["flowchart TB"]
    used: dict[str, list[str]] = {}
    for index, graph in enumerate(graphs):
        out.append(f'  subgraph p{index}["proposal {_mermaid_text(graph.proposal)}"]')
        out.append("    direction TB")
        ordered = [n for level in graph.levels for n in level]
        ordered += [n for n in graph.nodes if n not in ordered]
        for node_id in ordered:
            node = graph.nodes[node_id]
            label = "<br/>".join(_mermaid_text(line) for line in _lines(node))
            mid = _mermaid_id(graph, node_id)
            shape = f'[/"{label}"/]' if node.status == "undo" else f'("{label}")'
            out.append(f"    {mid}{shape}")
            used.setdefault(node.status, []).append(mid)
        out.append("  end")
        for edge in graph.edges:
            source, target = _mermaid_id(graph, edge.source), _mermaid_id(graph, edge.target)
            label = f'|"{_mermaid_text(edge.label)}"|' if edge.label else ""
            arrow = {"after": "-->", "state": "==>", "compensation": "-.->"}[edge.kind]
            out.append(f"  {source} {arrow}{label} {target}")
    for status, members in used.items():
        fill, border, style, _tag = STYLES[status]
        dash = ",stroke-dasharray:5 3" if style == "dashed" else ""
        width = ",stroke-width:3px" if style == "bold" else ""
        out.append(f"  classDef {status} fill:{fill},stroke:{border},color:#111{dash}{width}")
        out.append(f"  class {','.join(members)} {status}")
    return "\n".join(out) + "\n"


# -- DOT ---------------------------------------------------------------------------------------


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graphs: Sequence[PlanGraph]) -> str:
    """A Graphviz digraph of the proposals (one cluster each), levels on the same rank."""
    out = [
        "digraph plan {",
        '  graph [rankdir=TB, fontname="Helvetica", fontsize=12, nodesep=0.35, ranksep=0.45];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10,'
        ' margin="0.12,0.06"];',
        '  edge [fontname="Helvetica", fontsize=9, color="#455a64"];',
    ]
    for index, graph in enumerate(graphs):
        out.append(f"  subgraph cluster_{index} {{")
        out.append(
            f'    label={_quote("proposal " + graph.proposal)}; style="rounded"; color="#b0bec5";'
        )
        for node_id, node in graph.nodes.items():
            fill, border, style, _tag = STYLES[node.status]
            styles = ["rounded", "filled"] + ([style] if style != "solid" else [])
            shape = "note" if node.status == "undo" else "box"
            if shape == "note":
                styles.remove("rounded")
            label = "\\n".join(
                line.replace("\\", "\\\\").replace('"', '\\"') for line in _lines(node)
            )
            out.append(
                f'    {_quote(graph.proposal + "/" + node_id)} [label="{label}", shape={shape},'
                f' style="{",".join(styles)}", fillcolor="{fill}", color="{border}"];'
            )
        undo_of = {
            e.source: e.target
            for e in graph.edges
            if e.kind == "compensation" and graph.nodes[e.target].status == "undo"
        }
        for level in graph.levels:
            # a compensation's tool call sits beside the action it undoes
            level = [*level, *(undo_of[n] for n in level if n in undo_of)]
            members = " ".join(_quote(graph.proposal + "/" + n) for n in level)
            out.append(f"    {{ rank=same; {members} }}")
        out.append("  }")
        for edge in graph.edges:
            source = _quote(graph.proposal + "/" + edge.source)
            target = _quote(graph.proposal + "/" + edge.target)
            attributes = {
                "after": "",
                "state": f'style=bold, color="{_STATE_EDGE}", fontcolor="{_STATE_EDGE}"',
                "compensation": f'style=dashed, color="{_UNDO_EDGE}", fontcolor="{_UNDO_EDGE}"',
            }[edge.kind]
            if edge.kind == "compensation" and undo_of.get(edge.source) != edge.target:
                # an undo by another action must not pull that action's level
                attributes += ", constraint=false"
            if edge.label:
                attributes = ", ".join(a for a in (attributes, f"label={_quote(edge.label)}") if a)
            out.append(f"  {source} -> {target}" + (f" [{attributes}];" if attributes else ";"))
    out.append("}")
    return "\n".join(out) + "\n"


# -- Graphviz ----------------------------------------------------------------------------------


def render(graphs: Sequence[PlanGraph], fmt: str) -> bytes:
    """The picture in `fmt` (mermaid, dot, svg, png). SVG and PNG need Graphviz's `dot`:
    `GraphvizMissing` says how to get it."""
    if fmt == "mermaid":
        return to_mermaid(graphs).encode()
    if fmt == "dot":
        return to_dot(graphs).encode()
    if fmt not in FORMATS:
        raise ValueError(f"unknown graph format {fmt!r} (use {', '.join(FORMATS)})")
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizMissing(
            f"--format {fmt} needs Graphviz's `dot`, which is not installed (Debian/Ubuntu:"
            " apt-get install graphviz; macOS: brew install graphviz); --format mermaid and"
            " --format dot need nothing"
        )
    done = subprocess.run(
        [dot, f"-T{fmt}"], input=to_dot(graphs).encode(), capture_output=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"internal error: dot failed: {done.stderr.decode(errors='replace')}")
    return done.stdout
