"""Planner speed: ranking large candidates, carlang vs car-runtime's `rank_proposals`, and the
Monte Carlo estimate.

Both rank the same JSON text of 10 dependency-chain candidates (CAR's verify is quadratic on
chains, and its ranking verifies each candidate); carlang is also timed on loaded proposals, the
path `carlang rank` and `plan_and_execute` take. carlang ranks with `PlannerConfig.car()`, the
configuration that scores as CAR does, and with its own features on (they need no feedback
except Monte Carlo, which is timed on its own).
"""

from __future__ import annotations

import json
from typing import Any

from carlang_runtime.ir import load_proposal
from carlang_runtime.planner import PlannerConfig, rank, simulate_monte_carlo

from .timing import Row, has_car, median_time, print_table
from .verify_bench import chain, decoder

__all__ = ["candidates", "run"]


def candidates(count: int, length: int) -> list[dict[str, Any]]:
    """`count` chain candidates of about `length` actions, each a little shorter."""
    group = []
    for c in range(count):
        doc = chain(length - c * 10)
        doc["id"] = f"candidate-{c}"
        group.append(doc)
    return group


def _monte_carlo_plan(length: int) -> dict[str, Any]:
    """A plan of `length` actions: chains of four behind a shared setup, some steps optional,
    some retried, with state dependencies (so failures cascade)."""
    actions: list[dict[str, Any]] = [
        {"id": "setup", "type": "tool_call", "tool": "setup", "expected_effects": {"ready": True}}
    ]
    for i in range(1, length):
        step: dict[str, Any] = {
            "id": f"s{i}",
            "type": "tool_call",
            "tool": ["fetch", "store", "notify"][i % 3],
            "parameters": {"i": i},
            "expected_effects": {f"k{i}": i},
            "state_dependencies": ["ready"] if i % 4 == 1 else [f"k{i - 1}"],
        }
        if i % 5 == 0:
            step["failure_behavior"] = "skip"
        elif i % 7 == 0:
            step["failure_behavior"] = "retry"
            step["max_retries"] = 2
        actions.append(step)
    return {"id": "mc", "actions": actions}


def _car_rank(text: str) -> None:
    import car_runtime

    car_runtime.rank_proposals(text, ["step"], None)


def run(quick: bool = False) -> list[Row]:
    """Run the planner benchmark and print it."""
    repeat = 3 if quick else 5
    group = candidates(10, 10_000)
    text = json.dumps(group)
    del group
    car = median_time(lambda: _car_rank(text), repeat=1, warmup=0) if has_car() else None
    # From text before any model is loaded: the loaded models below live among the holes the
    # JSON they were validated from left when it was freed, and everything allocated after
    # them fills those holes, scattered over a few hundred MB. Ranking from text measured
    # there costs ~60% more CPU (0.9 s against 0.55 s), which is the heap's doing, not the
    # path's (the same heap with the JSON kept alive, or the models deleted, costs nothing).
    as_car = median_time(lambda: rank(text, ["step"], config=PlannerConfig.car()), repeat)
    loaded = [load_proposal(item) for item in json.loads(text)]
    on_models = median_time(lambda: rank(loaded, ["step"], config=PlannerConfig.car()), repeat)
    full = median_time(lambda: rank(loaded, ["step"]), repeat)
    rates = {"setup": 0.999, "fetch": 0.995, "store": 0.999, "notify": 0.98}
    plan = _monte_carlo_plan(100)
    monte = median_time(lambda: simulate_monte_carlo(plan, rates, 1000, seed=1), repeat)
    rows = [
        Row("rank 10 x 10,000 actions: JSON text, CAR's score", as_car, car, 1.0),
        Row("rank 10 x 10,000 actions: loaded, CAR's score", on_models, car, 1.0),
        Row("rank 10 x 10,000 actions: loaded, carlang's score", full, car, 1.0),
        Row("Monte Carlo: 1,000 trials of a 100-action plan", monte, None, 0.5),
    ]
    print_table(
        f"planner vs car-runtime rank_proposals (median; {decoder()})"
        + ("" if car is not None else "  [car-runtime not installed]"),
        rows,
    )
    return rows
