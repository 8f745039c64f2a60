"""The runtime's own overhead per action: independent actions calling a no-op sync tool, run by
carlang's `Runtime` and, where installed, car-runtime's `execute`, in one process. Once bare,
once with ten CEL policies, a capability and the in-memory event log; and how the cost grows
from 1,000 to 100,000 actions.
"""

from __future__ import annotations

import json
from typing import Any

from carlang_runtime import ir
from carlang_runtime.engine import Runtime

from .timing import Row, has_car, median_time, print_table

__all__ = ["run"]


def noop(url: str = "") -> None:
    """Does nothing: what is measured is everything around it."""
    return None


def _proposal(count: int) -> ir.ActionProposal:
    return ir.ActionProposal(
        id="bench",
        actions=[
            ir.Action(
                id=f"a{i}", type="tool_call", tool="noop", parameters={"url": f"https://x/{i}"}
            )
            for i in range(count)
        ],
    )


def _policies() -> list[ir.Policy]:
    return [
        ir.CelPolicy(name="https_only", tools=["noop"], when='!params.url.startsWith("https://")'),
        ir.CelPolicy(name="short_urls", tools=["noop"], when="size(params.url) > 2000"),
        ir.CelPolicy(name="no_metadata", when='params.url.contains("169.254.169.254")'),
        ir.CelPolicy(
            name="no_local",
            tools=["no*"],
            when='params.url.matches("^https?://(localhost|127\\\\.)")',
        ),
        ir.CelPolicy(name="no_shell", when='action.tool == "shell"'),
        ir.CelPolicy(name="tenant", when='has(scope.tenant) && scope.tenant == "blocked"'),
        ir.CelPolicy(
            name="isos",
            tools=["noop"],
            when='params.url.endsWith(".iso")',
            effect="require_approval",
        ),
        ir.DenyToolRule(name="deny_tool:shell", tool="shell"),
        ir.DenyToolParamRule(
            name="deny_tool_param:noop.url", tool="noop", param="url", contains="internal"
        ),
        ir.RequireStateRule(name="require_state:online", key="online", value=True),
    ]


def _runtime(governed: bool) -> Runtime:
    rt = Runtime(state={"online": True})
    rt.register_tool("noop", noop)
    if governed:
        rt.set_capabilities(
            ir.Capability(
                name="bench",
                allowed_tools=["noop", "fetch*"],
                denied_tools=["shell"],
                allowed_state_keys=["online", "build.*"],
            )
        )
        for policy in _policies():
            rt.add_policy(policy)
    return rt


def _ours(count: int, governed: bool, repeat: int, min_time: float = 0.0) -> float:
    """Seconds per action. A sample is one run, started after a full collection; with
    `min_time`, runs follow each other until the sample lasts that long, and pay for the
    full collections that the results of earlier runs cause."""
    rt = _runtime(governed)
    plan = _proposal(count)

    def once() -> None:
        result = rt.execute(plan)
        rt.events.clear()
        assert result.cost.tool_calls == count

    return median_time(once, repeat=repeat, min_time=min_time) / count


def _car(count: int, repeat: int) -> float | None:
    if not has_car():
        return None
    import car_runtime

    text = _proposal(count).model_dump_json()

    def tool(name: str, params: str) -> str:
        return "null"

    def once() -> None:
        result: Any = json.loads(car_runtime.execute(text, ["noop"], tool))
        assert result["cost"]["tool_calls"] == count

    return median_time(once, repeat=repeat) / count


def run(quick: bool = False) -> list[Row]:
    """Run the runtime benchmark and print it."""
    # A 10,000-action run takes ~0.1 s; the machine is shared: more samples, a steadier median.
    repeat = 3 if quick else 9
    count = 10_000
    car = _car(count, 3)
    bare = _ours(count, False, repeat)
    governed = _ours(count, True, repeat)
    rows = [
        Row(f"{count:,} actions, no policies", bare, car, 10e-6),
        Row(f"{count:,} actions, 10 policies + capability + log", governed, car, 25e-6),
    ]
    steady = _ours(count, False, 3, min_time=1.0)
    rows.append(Row(f"{count:,} actions, no policies, back to back", steady, car))
    # A 1,000-action run (~8 ms) is too short to time alone: its samples last 0.1 s.
    growth = {1_000: _ours(1_000, False, repeat, min_time=0.1), 100_000: _ours(100_000, False, 3)}
    rows += [Row(f"{n:,} actions, no policies", growth[n]) for n in (1_000, 100_000)]
    print_table("Runtime overhead per action (median; no-op sync tool)", rows)
    print()
    for n in (1_000, 100_000):
        print(f"per-action cost at {n:,} / at {count:,} actions: {growth[n] / bare:.2f}")
    print("(1.00 = perfectly linear)")
    return rows
