"""The planner against car-runtime's `rank_proposals` (car-runtime 0.58, optional).

With carlang's own features switched off (`PlannerConfig.car()`), no feedback and no policies,
every field car-runtime reports must agree and so must the order, on generated groups of
CAR-format candidates. Groups where carlang's verify finds something CAR's does not (its own
checks) are left out: those candidates are meant to score differently.

The generated candidates carry a timestamp: CAR stamps one that has none with the current time,
whose text is 9, 6 or 3 fractional digits long depending on the nanoseconds (chrono's AutoSi),
so its token estimate of such a proposal varies from call to call by a token.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from carlang_runtime.planner import PlannerConfig, rank
from carlang_runtime.verify import verify
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.runtime.test_car_differential import CARLANG_ONLY_CHECKS, TOOLS, car_actions

pytestmark = pytest.mark.car

EXAMPLES = int(os.environ.get("CAR_DIFF_EXAMPLES", "300"))
FIELDS = (
    "index",
    "score",
    "validity",
    "cost_efficiency",
    "error_count",
    "warning_count",
    "action_count",
    "tool_call_count",
    "parallelism_levels",
    "valid",
    "state_keys_written",
    "has_write_conflicts",
    "historical_confidence",
    "token_estimate",
    "quality_per_token",
)


@st.composite
def candidate_groups(draw: st.DrawFn) -> tuple[list[dict[str, Any]], Any, float | None]:
    candidates = []
    for c in range(draw(st.integers(1, 5))):
        n = draw(st.integers(0, 12))
        actions = [draw(car_actions(i, n)) for i in range(n)]
        stamp = "2026-01-02T03:04:05.123456789Z"
        candidates.append({"id": f"c{c}", "actions": actions, "timestamp": stamp})
    tools = draw(st.sampled_from([None, TOOLS, TOOLS[:2]]))
    cost_weight = draw(st.sampled_from([None, 0.0, 0.3, 0.5, 1.0]))
    return candidates, tools, cost_weight


def _car_rank(candidates: list[dict[str, Any]], tools: Any, cost_weight: float | None) -> Any:
    import car_runtime

    return json.loads(car_runtime.rank_proposals(json.dumps(candidates), tools, cost_weight))


@pytest.mark.slow  # random candidate groups ranked by car-runtime too (7 s)
@settings(max_examples=EXAMPLES, deadline=None)
@given(candidate_groups())
def test_rank_agrees_with_car(case: tuple[list[dict[str, Any]], Any, float | None]) -> None:
    candidates, tools, cost_weight = case
    for candidate in candidates:
        issues = verify(candidate, None, tools, 100).issues
        assume(not any(issue.check in CARLANG_ONLY_CHECKS for issue in issues))
    theirs = _car_rank(candidates, tools, cost_weight)
    config = (
        PlannerConfig.car() if cost_weight is None else PlannerConfig.car(cost_weight=cost_weight)
    )
    ours = rank(candidates, tools, config=config)
    assert [s.index for s in ours] == [t["index"] for t in theirs]
    for mine, car in zip(ours, theirs, strict=True):
        differ = {
            name: (getattr(mine, name), car[name])
            for name in FIELDS
            if getattr(mine, name) != pytest.approx(car[name], abs=1e-12)
        }
        assert not differ, (differ, candidates[mine.index])


def test_a_missing_timestamp_counts_as_cars_stamp() -> None:
    """CAR stamps a proposal that has no timestamp before estimating its tokens (a stamp of
    nine fractional digits, unless the clock's nanoseconds end in zeros)."""
    plain = {"id": "p", "actions": [{"id": "a", "type": "tool_call", "tool": "t"}]}
    stamped = {**plain, "timestamp": "2026-01-01T00:00:00Z"}
    for candidate in (plain, stamped):
        [mine] = rank([candidate], config=PlannerConfig.car())
        estimates = [_car_rank([candidate], None, None)[0]["token_estimate"] for _ in range(3)]
        assert mine.token_estimate == max(estimates)
