"""Pictures of plans: a proposal's DAG drawn by levels, with what `check` judged (or what a run
did) on each action.

    model.py    PlanGraph: nodes by level, `after` / state / compensation edges, each node's
                verdict or outcome (plain data, from the IR and the compile or run result)
    render.py   Mermaid and Graphviz DOT text; SVG and PNG through Graphviz's `dot`
"""

from __future__ import annotations

from .model import Edge, GraphNode, PlanGraph, graph_of_compile, graph_of_run
from .render import GraphvizMissing, render, to_dot, to_mermaid

__all__ = [
    "Edge",
    "GraphNode",
    "PlanGraph",
    "graph_of_compile",
    "graph_of_run",
    "GraphvizMissing",
    "render",
    "to_dot",
    "to_mermaid",
]
