"""A seeded benchmark for planner experiments: tasks of candidate plans over tools that fail at
known rates, and real runs of them recorded in an event log.

Tools fail at known probabilities per call, some depending on a parameter (`deploy` to `prod`
fails more than to `staging`); `deploy` to prod needs an approval, granted at a known rate.
`generate_tasks` builds the tasks; `record_runs` runs every candidate of every task `runs` times
through a real `Runtime` (seeded flaky tools and approval gate, no waiting between retries),
each run with `scope={"task": id}`, into an event log that `Outcomes` and `ToolFeedback` read.
`true_success` is each candidate's exact success probability, for checking estimates.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..ir import ActionProposal, CelPolicy, load_proposal
from ..policy import PolicySet
from .dataset import Task

__all__ = [
    "FAILURE",
    "PARAM_FAILURE",
    "APPROVAL_RATE",
    "POLICY",
    "generate_tasks",
    "record_runs",
    "write_groups",
    "true_success",
]

#: Per tool: the probability that one call fails.
FAILURE: dict[str, float] = {
    "fetch": 0.05,
    "build": 0.2,
    "test": 0.1,
    "deploy": 0.1,
    "migrate": 0.3,
    "notify": 0.4,
}
#: Per (tool, parameter, value): a failure probability that replaces the tool's.
PARAM_FAILURE: dict[tuple[str, str, Any], float] = {
    ("deploy", "env", "prod"): 0.4,
    ("deploy", "env", "staging"): 0.1,
}
#: The share of approvals granted for the `prod_needs_approval` policy.
APPROVAL_RATE = 0.6
POLICY = CelPolicy(
    name="prod_needs_approval",
    effect="require_approval",
    tools=["deploy"],
    when='params.env == "prod"',
)

_PARAMS: dict[str, list[dict[str, Any]]] = {
    "fetch": [{"url": "https://ci/a"}, {"url": "https://ci/b"}],
    "build": [{"target": "app"}],
    "test": [{"suite": "unit"}, {"suite": "e2e"}],
    "deploy": [{"env": "staging"}, {"env": "prod"}],
    "migrate": [{"db": "main"}],
    "notify": [{"channel": "ops"}],
}


def failure_probability(tool: str, parameters: Mapping[str, Any]) -> float:
    """The probability that one call of `tool` with `parameters` fails."""
    for (name, param, value), probability in PARAM_FAILURE.items():
        if name == tool and parameters.get(param) == value:
            return probability
    return FAILURE[tool]


def _candidate(draw: random.Random, task: int, index: int) -> dict[str, Any]:
    tools = list(FAILURE)
    actions = []
    for position in range(draw.randint(1, 5)):
        tool = draw.choice(tools)
        action: dict[str, Any] = {
            "id": f"a{position}",
            "type": "tool_call",
            "tool": tool,
            "parameters": draw.choice(_PARAMS[tool]),
            "reversibility": "reversible",
            "max_retries": 0,
        }
        style = draw.random()
        if tool == "notify" or style < 0.15:
            action["failure_behavior"] = "skip"
        elif style < 0.4:
            action["failure_behavior"] = "retry"
            action["max_retries"] = 1
        if position and draw.random() < 0.5:
            action["depends_on"] = [f"a{position - 1}"]
        actions.append(action)
    return {"id": f"t{task}c{index}", "actions": actions, "timestamp": "2026-01-01T00:00:00Z"}


def generate_tasks(
    count: int = 50, seed: int = 0, candidates: tuple[int, int] = (3, 6)
) -> list[Task]:
    """`count` tasks of `candidates` (min, max) candidate plans each, seeded."""
    draw = random.Random(seed)
    policies = [PolicySet([POLICY])]
    tasks = []
    for number in range(count):
        group = [
            load_proposal(_candidate(draw, number, i)) for i in range(draw.randint(*candidates))
        ]
        tasks.append(
            Task(id=f"t{number}", candidates=group, tools=list(FAILURE), policies=policies)
        )
    return tasks


def write_groups(tasks: Sequence[Task], path: Path) -> None:
    """The tasks as a JSONL file of candidate groups (`load_groups` reads it back)."""
    lines = []
    for task in tasks:
        group = {
            "id": task.id,
            "candidates": [c.model_dump(mode="json") for c in task.candidates],
            "tools": list(FAILURE),
            "policies": [POLICY.model_dump(mode="json")],
        }
        lines.append(json.dumps(group, separators=(",", ":")))
    path.write_text("\n".join(lines) + "\n")


def true_success(proposal: ActionProposal) -> float:
    """The exact probability that a run of `proposal` gets through (no aborting failure),
    for this benchmark's plans (tool calls, `after` chains, skip/retry/abort)."""
    # States: which actions succeeded; enumerate outcomes per action in order (plans are tiny).
    outcomes: list[tuple[float, set[str], bool]] = [(1.0, set(), True)]
    for action in proposal.actions:
        following: list[tuple[float, set[str], bool]] = []
        fails = failure_probability(action.tool or "", action.parameters)
        attempts = action.max_retries + 1 if action.failure_behavior == "retry" else 1
        ok = 1.0 - fails**attempts
        if action.tool == "deploy" and action.parameters.get("env") == "prod":
            ok *= APPROVAL_RATE
        for probability, done, alive in outcomes:
            if not alive:
                following.append((probability, done, alive))
                continue
            if any(d not in done for d in action.depends_on):
                # skipped because of `after`: fine only when what it waited on was optional
                following.append((probability, done, True))
                continue
            following.append((probability * ok, done | {action.id}, True))
            tolerated = action.failure_behavior == "skip"
            following.append((probability * (1 - ok), done, tolerated))
        outcomes = following
    return sum(p for p, _, alive in outcomes if alive)


class _Gate:
    """Grants approvals at `APPROVAL_RATE`, seeded."""

    def __init__(self, draw: random.Random) -> None:
        self.draw = draw

    def review(self, request: Any) -> Any:
        from ..engine.approval import Approval

        granted = self.draw.random() < APPROVAL_RATE
        return Approval(granted, "granted" if granted else "refused", "benchmark")


async def _no_wait(_: float) -> None:
    return None


def record_runs(tasks: Sequence[Task], path: Path, runs: int = 20, seed: int = 0) -> int:
    """Run every candidate of every task `runs` times through a real runtime, recording the
    events in `path` (JSONL, or SQLite for `.db`); returns how many runs were made."""
    from ..engine import EventLog, JsonlSink, Runtime, SqliteSink

    draw = random.Random(seed)
    sink = SqliteSink(path) if path.suffix == ".db" else JsonlSink(path)
    rt = Runtime(events=EventLog([sink]), approval=_Gate(draw), sleep=_no_wait)
    rt.add_policy(POLICY)
    for tool in FAILURE:
        rt.register_tool(tool, _flaky(tool, draw))
    made = 0
    try:
        for task in tasks:
            for candidate in task.candidates:
                for _ in range(runs):
                    rt.execute(candidate, scope={"task": task.id})
                    made += 1
    finally:
        rt.close()
    return made


def _flaky(tool: str, draw: random.Random) -> Any:
    def call(**parameters: Any) -> str:
        if draw.random() < failure_probability(tool, parameters):
            raise RuntimeError(f"{tool} failed")
        return "ok"

    return call
