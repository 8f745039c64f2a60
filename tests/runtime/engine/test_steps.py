"""The durable-backend seam: with `Runtime.steps`, a tool call's result is a recorded step (and
its admission decision, when a replay could decide otherwise), and a replay of the run decides nothing again and calls no tool."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import pytest
from carlang_runtime import ir
from carlang_runtime.engine import AutoApprove, Runtime

from .support import call, proposal, statuses, write


class RecordingSteps:
    """A stand-in for a durable backend: records every step; replays what it has."""

    def __init__(
        self, records: dict[str, Any] | None = None, delays: dict[str, float] | None = None
    ) -> None:
        self.records: dict[str, Any] = records if records is not None else {}
        self.ran: list[str] = []
        # Seconds a step waits before it runs: steps of a level then finish in another order
        # than they started, as on a real backend.
        self.delays = delays or {}

    async def run(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        if name in self.records:
            return self.records[name]
        await asyncio.sleep(self.delays.get(name, 0.0))
        self.ran.append(name)
        value = fn(*args)
        if inspect.isawaitable(value):
            value = await value
        self.records[name] = value
        return value

    async def call(self, run: Any, action: ir.Action) -> dict[str, Any]:
        record: dict[str, Any] = await self.run(f"call {action.id}", run.call_record, action)
        return record


def _runtime(calls: list[str], steps: RecordingSteps) -> Runtime:
    rt = Runtime(state={"n": 0}, approval=AutoApprove())
    rt.steps = steps

    def work(item: str) -> str:
        calls.append(item)
        return item.upper()

    rt.register_tool("work", work)
    # A rate limit decides by time and by what it admitted before: a replay must not redecide.
    rt.add_policy(ir.RateLimitToolRule(name="rate", tool="work", max_calls=2, interval_secs=3600))
    rt.add_policy(
        ir.CelPolicy(
            name="ask", tools=["work"], effect="require_approval", when='params.item == "b"'
        )
    )
    return rt


PLAN = proposal(
    call("a", "work", params={"item": "a"}, failure_behavior="skip"),
    call("b", "work", params={"item": "b"}, depends_on=["a"], failure_behavior="skip"),
    call("c", "work", params={"item": "c"}, depends_on=["b"], failure_behavior="skip"),
    write("w", "n", 1, depends_on=["a"]),
)


def test_a_replay_decides_nothing_again_and_calls_no_tool() -> None:
    calls: list[str] = []
    first = RecordingSteps()
    result = _runtime(calls, first).execute(PLAN)
    assert statuses(result) == {
        "a": "succeeded",
        "b": "succeeded",
        "c": "rejected",
        "w": "succeeded",
    }
    assert "over its limit" in (result.results[2].error or "")
    assert first.ran == ["admit a", "call a", "admit b", "call b", "admit c"]
    assert calls == ["a", "b"]
    # The process dies; a new one replays the run from the records: same result, no calls,
    # although its rate limit (fresh) would now admit c.
    replay = RecordingSteps(dict(first.records))
    again = _runtime(calls, replay).execute(PLAN)
    assert replay.ran == []
    assert calls == ["a", "b"]
    assert [r.model_dump(exclude={"timestamp", "duration_ms"}) for r in again.results] == [
        r.model_dump(exclude={"timestamp", "duration_ms"}) for r in result.results
    ]


def test_compensations_are_recorded_steps_too() -> None:
    undone: list[str] = []

    def runtime(steps: RecordingSteps) -> Runtime:
        rt = Runtime()
        rt.steps = steps
        rt.register_tool("work", lambda item: item)
        rt.register_tool("undo", lambda item: undone.append(item))
        rt.register_tool("boom", lambda: 1 / 0)
        return rt

    plan = proposal(
        call(
            "a",
            "work",
            params={"item": "a"},
            compensation={"type": "tool", "tool": "undo", "parameters": {"item": "a"}},
        ),
        call("x", "boom", depends_on=["a"]),
    )
    first = RecordingSteps()
    result = runtime(first).execute(plan)
    assert [(c.action_id, c.status.value) for c in result.compensations] == [("a", "succeeded")]
    assert "call a.compensation" in first.ran and undone == ["a"]
    replay = RecordingSteps(dict(first.records))
    again = runtime(replay).execute(plan)
    assert replay.ran == [] and undone == ["a"]
    assert [c.status.value for c in again.compensations] == ["succeeded"]


def _timeless_runtime(calls: list[str], steps: RecordingSteps, when: str) -> Runtime:
    rt = Runtime()
    rt.steps = steps

    def work(item: str) -> str:
        calls.append(item)
        return item

    rt.register_tool("work", work)
    rt.add_policy(ir.CelPolicy(name="no_b", tools=["work"], effect="deny", when=when))
    return rt


def test_a_decision_that_cannot_change_is_made_again_not_recorded() -> None:
    # The policy reads only the parameters: a replay decides as the first run did, so the
    # admission is not a step (one database write fewer per call); the calls still are.
    calls: list[str] = []
    plan = proposal(
        call("a", "work", params={"item": "a"}, failure_behavior="skip"),
        call("b", "work", params={"item": "b"}, depends_on=["a"], failure_behavior="skip"),
    )
    first = RecordingSteps()
    result = _timeless_runtime(calls, first, 'params.item == "b"').execute(plan)
    assert first.ran == ["call a"]
    assert statuses(result) == {"a": "succeeded", "b": "rejected"}
    replay = RecordingSteps(dict(first.records))
    again = _timeless_runtime(calls, replay, 'params.item == "b"').execute(plan)
    assert replay.ran == [] and calls == ["a"]
    assert statuses(again) == statuses(result)


def test_a_decision_that_reads_the_time_is_recorded() -> None:
    calls: list[str] = []
    plan = proposal(call("a", "work", params={"item": "a"}))
    steps = RecordingSteps()
    when = 'params.item == "b" && now > timestamp("2000-01-01T00:00:00Z")'
    _timeless_runtime(calls, steps, when).execute(plan)
    assert steps.ran == ["admit a", "call a"]


def test_a_replay_logs_deciding_events_where_the_first_run_did() -> None:
    # A decision that reads the time is a recorded step; the decision records and shadow
    # decisions it logs come from the record, so a replay logs the same events in the same
    # order (the sequence numbers tell a durable log what it already holds).
    def runtime(steps: RecordingSteps) -> Runtime:
        rt = Runtime(decision_log=True)
        rt.steps = steps
        rt.register_tool("work", lambda item: item)
        rt.add_policy(
            ir.CelPolicy(
                name="late",
                tools=["work"],
                effect="deny",
                when='now < timestamp("2000-01-01T00:00:00Z")',
            )
        )
        rt.add_policy(
            ir.CelPolicy(name="watch", tools=["work"], effect="deny", when="true", shadow=True)
        )
        return rt

    plan = proposal(
        call("a", "work", params={"item": "a"}),
        call("b", "work", params={"item": "b"}, depends_on=["a"]),
    )
    first = RecordingSteps()
    rt = runtime(first)
    rt.execute(plan)
    kinds = [(str(e.kind), e.action_id) for e in rt.events]
    assert ("policy_decision", "a") in kinds and ("policy_shadowed", "b") in kinds
    assert first.ran == ["admit a", "call a", "admit b", "call b"]
    replay = RecordingSteps(dict(first.records))
    again = runtime(replay)
    again.execute(plan)
    assert replay.ran == []
    assert [(str(e.kind), e.action_id) for e in again.events] == kinds


@pytest.mark.parametrize(
    ("policy", "shadow"),
    [
        ('now < timestamp("2000-01-01T00:00:00Z")', True),  # a shadow policy's log reads now
        ("params.items.exists(i, i == 'x')", False),  # a loop can stop on the wall clock
    ],
)
def test_a_decision_that_may_not_repeat_is_recorded(policy: str, shadow: bool) -> None:
    steps = RecordingSteps()
    rt = Runtime()
    rt.steps = steps
    rt.register_tool("work", lambda items: items)
    rt.add_policy(ir.CelPolicy(name="p", tools=["work"], effect="deny", when=policy, shadow=shadow))
    rt.execute(proposal(call("a", "work", params={"items": ["a"]})))
    assert steps.ran == ["admit a", "call a"]


def test_deciding_events_are_logged_in_the_levels_order_whichever_step_ends_first() -> None:
    def runtime(steps: RecordingSteps) -> Runtime:
        rt = Runtime(decision_log=True)
        rt.steps = steps
        rt.register_tool("work", lambda item: item)
        late = 'now < timestamp("2000-01-01T00:00:00Z")'
        rt.add_policy(ir.CelPolicy(name="late", tools=["work"], effect="deny", when=late))
        return rt

    plan = proposal(
        call("a", "work", params={"item": "a"}, failure_behavior="skip"),
        call("b", "work", params={"item": "b"}, failure_behavior="skip"),
    )
    first = RecordingSteps(delays={"admit a": 0.05})
    rt = runtime(first)
    rt.execute(plan)
    assert first.ran.index("admit b") < first.ran.index("admit a")  # b decided first
    decided = [e.action_id for e in rt.events if str(e.kind) == "policy_decision"]
    assert decided == ["a", "b"]
    again = runtime(RecordingSteps(dict(first.records)))
    again.execute(plan)
    assert [(str(e.kind), e.action_id) for e in again.events] == [
        (str(e.kind), e.action_id) for e in rt.events
    ]
