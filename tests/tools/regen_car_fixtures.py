"""Regenerate tests/data/car/*.json: documents written by car-runtime itself.

Each input below goes through car-runtime's `optimize`, whose output is CAR's own serialisation
of the proposal (every default filled in, what CAR omits left out). The round-trip tests load
these with carlang's models and require the dump to be the same JSON, key order included.
Run with car-runtime installed: python tests/tools/regen_car_fixtures.py
"""

from __future__ import annotations

import json
from pathlib import Path

import car_runtime

OUT = Path(__file__).resolve().parent.parent / "data" / "car"

INPUTS = {
    "minimal": {
        "actions": [{"id": "a", "type": "tool_call", "tool": "t"}],
        "id": "p",
        "timestamp": "2026-01-02T03:04:05.123456789Z",
    },
    "every_field": {
        "id": "release-42",
        "source": "planner-v2",
        "timestamp": "2026-11-21T14:19:19.712090960Z",
        "context": {"ticket": "OPS-1", "nested": {"a": [1, 2.5, None, True]}},
        "actions": [
            {
                "id": "fetch",
                "type": "tool_call",
                "tool": "http.get",
                "parameters": {"url": "https://ci.example/b/42", "timeout_ms": 5000},
                "preconditions": [
                    {
                        "key": "net.up",
                        "operator": "eq",
                        "value": True,
                        "description": "network is up",
                    }
                ],
                "expected_effects": {"build.ok": True},
                "state_dependencies": ["net.up"],
                "read_set": ["net.up"],
                "write_set": ["build.ok"],
                "assumptions": [
                    {"key": "net.up"},
                    {"key": "v", "expected_value": 3, "read_version": 7},
                ],
                "invocation_mode": "one_shot",
                "reversibility": "reversible",
                "idempotent": True,
                "max_retries": 5,
                "failure_behavior": "retry",
                "timeout_ms": 5000,
                "metadata": {"why": "first"},
            },
            {
                "id": "ship",
                "type": "tool_call",
                "tool": "deploy",
                "parameters": {"env": "staging"},
                "reversibility": "compensable",
                "compensation": {
                    "type": "tool",
                    "tool": "rollback",
                    "parameters": {"env": "staging"},
                },
                "failure_behavior": "abort",
            },
            {
                "id": "undo",
                "type": "tool_call",
                "tool": "noop",
                "compensation": {"type": "action_ref", "action_id": "ship"},
                "invocation_mode": "long_running",
                "failure_behavior": "skip",
            },
            {"id": "w", "type": "state_write", "parameters": {"key": "deployed", "value": 1.5e-7}},
            {"id": "r", "type": "state_read", "parameters": {"key": "deployed"}},
            {
                "id": "check",
                "type": "assertion",
                "parameters": {"key": "deployed", "expected": 1.5e-7},
                "preconditions": [{"key": "deployed", "operator": "gte", "value": 0}],
            },
        ],
    },
    "unknown_keys": {
        "id": "u",
        "extra_top": 1,
        "actions": [
            {
                "id": "a",
                "type": "state_read",
                "dependencies": ["x"],
                "parameters": {"key": "k"},
                "unknown": {"x": 1},
            }
        ],
        "timestamp": "2026-01-01T00:00:00Z",
    },
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, doc in INPUTS.items():
        (OUT / f"{name}.input.json").write_text(json.dumps(doc, indent=1) + "\n")
        written = car_runtime.optimize(json.dumps(doc))
        (OUT / f"{name}.car.json").write_text(written + "\n")
        print("wrote", name)


if __name__ == "__main__":
    main()
