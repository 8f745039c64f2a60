"""A tiny seeded benchmark whose metrics can be computed by hand.

Tools: `okay` always works, `flky` fails every other call (exactly 50%), `fail` always fails.
Tool names and candidate ids have equal lengths, so CAR's score ties within task t1.

    t1: c_fail = [fail], c_flky = [flky], c_okay = [okay]      (input order)
        actual rates 0, 0.5, 1
    t2: d_two = [okay, flky], e_one = [okay]
        actual rates 0.5, 1
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from carlang_runtime.engine import EventLog, JsonlSink, Runtime
from carlang_runtime.experiments import Task, load_groups

RUNS = 4


def _call(action_id: str, tool: str) -> dict[str, Any]:
    return {"id": action_id, "type": "tool_call", "tool": tool, "reversibility": "reversible"}


def _proposal(name: str, *tools: str) -> dict[str, Any]:
    actions = [_call(f"a{i}", tool) for i, tool in enumerate(tools)]
    return {"id": name, "actions": actions, "timestamp": "2026-01-01T00:00:00Z"}


GROUPS: list[dict[str, Any]] = [
    {
        "id": "t1",
        "tools": ["okay", "flky", "fail"],
        "candidates": [
            _proposal("c_fail", "fail"),
            _proposal("c_flky", "flky"),
            _proposal("c_okay", "okay"),
        ],
    },
    {
        "id": "t2",
        "tools": ["okay", "flky", "fail"],
        "candidates": [_proposal("d_two", "okay", "flky"), _proposal("e_one", "okay")],
    },
]


def write_dataset(folder: Path) -> tuple[Path, list[Task]]:
    """The groups as JSONL in `folder`, and the tasks read back."""
    import json

    path = folder / "bench.jsonl"
    path.write_text("".join(json.dumps(g) + "\n" for g in GROUPS))
    return path, load_groups(path)


async def _no_wait(_: float) -> None:
    return None


def record(tasks: list[Task], log: Path) -> None:
    """Run every candidate RUNS times through a real runtime into `log`."""
    calls = {"flky": 0}

    def flky() -> str:
        calls["flky"] += 1
        if calls["flky"] % 2:
            raise RuntimeError("every other call fails")
        return "ok"

    def fail() -> None:
        raise RuntimeError("always fails")

    rt = Runtime(events=EventLog([JsonlSink(log)]), sleep=_no_wait)
    rt.register_tool("okay", lambda: "ok")
    rt.register_tool("flky", flky)
    rt.register_tool("fail", fail)
    for task in tasks:
        for candidate in task.candidates:
            for _ in range(RUNS):
                rt.execute(candidate, scope={"task": task.id})
    rt.close()
