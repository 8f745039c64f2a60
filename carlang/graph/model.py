"""The graph of one proposal: its actions by DAG level, the edges between them told apart
(`after`, state dependency, compensation), and each action's verdict (from `check`) or outcome
(from a run). Plain data: the renderers only draw it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from carlang_runtime import ir
from carlang_runtime.dag import build_dag
from carlang_runtime.verify import VerifyResult

from ..policycheck import APPROVAL, DENIED, PREDICTED_DENY, PolicyFinding

__all__ = ["GraphNode", "Edge", "PlanGraph", "graph_of_compile", "graph_of_run", "Status"]

#: What a node shows: `check`'s verdict, or a run's outcome.
Status = Literal[
    "ok",
    "denied",
    "may_deny",
    "approval",
    "precondition",
    "error",
    "succeeded",
    "failed",
    "skipped",
    "rejected",
    "rolled_back",
    "compensated",
    "not_run",
    "undo",
]

#: verify's codes for a precondition or an assertion that fails against the known state.
_FAILING_CONDITION = {"CL0401", "CL0404"}


@dataclass
class GraphNode:
    """One action (or a compensation's tool call, `status == "undo"`)."""

    id: str
    kind: str
    tool: str | None
    status: Status = "ok"
    #: Why: the policy that denies or asks, the failing precondition, the error.
    note: str = ""


@dataclass(frozen=True)
class Edge:
    """`source` must come before `target` (`after`, `state` with the key), or `target` undoes
    `source` (`compensation`)."""

    source: str
    target: str
    kind: Literal["after", "state", "compensation"]
    label: str = ""


@dataclass
class PlanGraph:
    """A proposal as a picture."""

    proposal: str
    levels: list[list[str]]
    nodes: dict[str, GraphNode]
    edges: list[Edge] = field(default_factory=list)
    #: "check" (verdicts) or "run" (outcomes): decides the legend.
    mode: Literal["check", "run"] = "check"


def _key(action: ir.Action) -> str | None:
    key = action.parameters.get("key")
    return key if isinstance(key, str) else None


def _base(proposal: ir.ActionProposal) -> PlanGraph:
    actions = proposal.actions
    dag = build_dag(actions)
    ids = [a.id for a in actions]
    nodes = {a.id: GraphNode(a.id, a.type.value, a.tool or _key(a)) for a in actions}
    graph = PlanGraph(proposal.id, [[ids[i] for i in level] for level in dag.levels], nodes)
    for i, action in enumerate(actions):
        explicit = set(dag.explicit[i]) if i < len(dag.explicit) else set()
        read = set(action.state_dependencies) | {p.key for p in action.preconditions}
        for j in dag.deps[i]:
            keys = sorted(k for k in actions[j].written_keys() if k in read)
            label = ", ".join(keys)
            kind: Literal["after", "state"] = "after" if j in explicit else "state"
            graph.edges.append(Edge(ids[j], ids[i], kind, label))
        compensation = action.compensation
        if isinstance(compensation, ir.ActionRefCompensation):
            graph.edges.append(Edge(action.id, compensation.action_id, "compensation", "undo"))
        elif isinstance(compensation, ir.ToolCompensation):
            undo = f"undo {action.id}"
            nodes[undo] = GraphNode(undo, "compensation", compensation.tool, "undo")
            graph.edges.append(Edge(action.id, undo, "compensation", "undo"))
    return graph


def graph_of_compile(
    proposal: ir.ActionProposal,
    findings: list[PolicyFinding] | None = None,
    verdict: VerifyResult | None = None,
) -> PlanGraph:
    """The proposal with `check`'s judgement on each action: denied by a policy, needing
    approval, a failing precondition, another error."""
    graph = _base(proposal)
    for issue in verdict.issues if verdict else ():
        node = graph.nodes.get(issue.action_id)
        if node is None or issue.severity != "error":
            continue
        if issue.code in _FAILING_CONDITION:
            node.status, node.note = "precondition", "precondition fails"
        elif node.status == "ok":
            node.status, node.note = "error", f"{issue.code}: {issue.message}"
    rank = {DENIED: 3, PREDICTED_DENY: 2, APPROVAL: 1}
    status_of = {DENIED: "denied", PREDICTED_DENY: "may_deny", APPROVAL: "approval"}
    best: dict[str, PolicyFinding] = {}
    for finding in findings or ():
        held = best.get(finding.action_id)
        if held is None or rank.get(finding.code, 0) > rank.get(held.code, 0):
            best[finding.action_id] = finding
    for action_id, finding in best.items():
        node = graph.nodes.get(action_id)
        if node is None or finding.code not in status_of:
            continue
        verb = {
            "denied": "denied by",
            "may_deny": "may be denied by",
            "approval": "needs approval by",
        }
        status = status_of[finding.code]
        note = f"{verb[status]} {finding.policy}"
        node.note = f"{note}; {node.note}" if node.status == "precondition" else note
        node.status = status  # type: ignore[assignment]
    return graph


def graph_of_run(proposal: ir.ActionProposal, result: ir.ProposalResult) -> PlanGraph:
    """The proposal after a run, each action coloured by what happened to it."""
    graph = _base(proposal)
    graph.mode = "run"
    outcomes = {r.action_id: r for r in result.results}
    by_id = {a.id: a for a in proposal.actions}
    for node in graph.nodes.values():
        if node.status == "undo":
            continue
        outcome = outcomes.get(node.id)
        if outcome is None:
            node.status = "not_run"
            continue
        action = by_id.get(node.id)
        if outcome.rolled_back:
            compensated = action is not None and action.compensation is not None
            node.status = "compensated" if compensated else "rolled_back"
        else:
            node.status = outcome.status.value  # type: ignore[assignment]
        if outcome.error:
            node.note = outcome.error.split("\n", 1)[0][:80]
    return graph
