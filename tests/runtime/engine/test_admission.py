"""Admission of the actions of a level that run alongside each other: one after the other, in
proposal order, each decided with what the ones before it took. A tool call's place in the
budget is reserved when it is admitted (given back if it makes no call), and an admitted action
is in `history` (status "running") for the policies deciding the next ones.

A security review found four `pay` calls of one level all paid under `max_tool_calls 2`, and a
"pay once" history rule let three unordered payments through, both caught only with `after`."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

import pytest
from carlang_runtime import ir
from carlang_runtime.engine import AutoApprove, Runtime

from .support import assert_one_terminal_event_each, call, errors, proposal, statuses

ONCE = ir.CelPolicy(
    name="once",
    tools=["pay"],
    when='history.exists(h, h.tool == "pay")',
    message="one payment",
)


def _paying(paid: list[int], **options: Any) -> Runtime:
    rt = Runtime(**options)

    def pay(n: int) -> dict[str, int]:
        time.sleep(0.02)  # long enough for the others of the level to start, were they allowed
        paid.append(n)
        return {"paid": n}

    rt.register_tool("pay", pay)
    return rt


def _pays(count: int, *, chained: bool = False) -> ir.ActionProposal:
    ids = [f"p{n}" for n in range(1, count + 1)]
    return proposal(
        *(
            call(
                action_id,
                "pay",
                params={"n": n},
                failure_behavior="skip",
                depends_on=[ids[n - 2]] if chained and n > 1 else [],
            )
            for n, action_id in enumerate(ids, 1)
        )
    )


def test_a_tool_call_budget_holds_within_a_level_as_in_order() -> None:
    paid: list[int] = []
    rt = _paying(paid)
    rt.set_budget(ir.Budget(name="two", max_tool_calls=2))
    side_by_side = rt.execute(_pays(4))
    assert statuses(side_by_side) == {
        "p1": "succeeded",
        "p2": "succeeded",
        "p3": "skipped",
        "p4": "skipped",
    }
    assert side_by_side.cost.tool_calls == 2 and sorted(paid) == [1, 2]
    assert_one_terminal_event_each(rt, side_by_side)
    in_order = rt.execute(_pays(4, chained=True))
    assert statuses(in_order) == statuses(side_by_side)
    assert errors(in_order)["p3"] == errors(side_by_side)["p3"] == "cost budget exceeded"
    assert errors(side_by_side)["p4"] == "cost budget exceeded"


def test_a_call_refused_at_admission_gives_its_place_in_the_budget_back() -> None:
    paid: list[int] = []
    rt = _paying(paid)
    rt.set_budget(ir.Budget(name="two", max_tool_calls=2))
    rt.add_policy(ir.CelPolicy(name="not_one", tools=["pay"], when="params.n == 1"))
    result = rt.execute(_pays(4))
    assert statuses(result) == {
        "p1": "rejected",
        "p2": "succeeded",
        "p3": "succeeded",
        "p4": "skipped",
    }
    assert result.cost.tool_calls == 2 and sorted(paid) == [2, 3]


def test_a_history_rule_sees_the_actions_admitted_before_in_the_same_level() -> None:
    paid: list[int] = []
    rt = _paying(paid)
    rt.add_policy(ONCE)
    result = rt.execute(_pays(3))
    assert statuses(result) == {"p1": "succeeded", "p2": "rejected", "p3": "rejected"}
    assert errors(result)["p2"] == "policy violation: once: one payment"
    assert paid == [1]
    assert_one_terminal_event_each(rt, result)
    # in order (`after`), the same decisions (p3 runs after p2, which did not succeed)
    in_order = _paying([])
    in_order.add_policy(ONCE)
    chained = in_order.execute(_pays(3, chained=True))
    assert statuses(chained) == {"p1": "succeeded", "p2": "rejected", "p3": "skipped"}
    assert errors(chained)["p2"] == errors(result)["p2"]


def test_an_admitted_action_is_running_in_history_until_it_ends() -> None:
    """What a policy sees of an action admitted and not yet ended: status "running"; once it
    ends, the same entry has its final status (one entry per action, in admission order)."""
    rt = _paying([])
    session = rt.open_session()
    busy = ir.CelPolicy(
        name="one_at_a_time", tools=["pay"], when='history.exists(h, h.status == "running")'
    )
    rt.add_policy(busy, session=session)
    result = rt.execute(_pays(2), session=session)
    assert statuses(result) == {"p1": "succeeded", "p2": "rejected"}
    assert str(errors(result)["p2"]).startswith("policy violation: one_at_a_time")
    history = rt.history(session, "")
    assert [(h["id"], h["status"]) for h in history] == [("p1", "succeeded"), ("p2", "rejected")]
    again = rt.execute(_pays(2, chained=True), session=session)
    assert statuses(again) == {"p1": "succeeded", "p2": "succeeded"}  # in order: none running


def test_admission_is_in_proposal_order_whoever_waits_for_approval() -> None:
    paid: list[int] = []
    order: list[str] = []

    async def slow_yes(request: Any) -> bool:
        order.append(request.action.id)
        await asyncio.sleep(0.02)
        return True

    from carlang_runtime.engine import CallbackGate

    rt = _paying(paid, approval=CallbackGate(slow_yes))
    rt.add_policy(ir.CelPolicy(name="ask", tools=["pay"], effect="require_approval", when="true"))
    rt.add_policy(ONCE)
    result = rt.execute(_pays(3))
    # p1 was admitted (waiting for its approval) when p2 and p3 were decided
    assert statuses(result) == {"p1": "succeeded", "p2": "rejected", "p3": "rejected"}
    assert order == ["p1"] and paid == [1]


class _Steps:
    """A stand-in for a durable backend (see test_steps.py): runs every step once."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    async def run(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        self.ran.append(name)
        value = fn(*args)
        return await value if inspect.isawaitable(value) else value

    async def call(self, run: Any, action: ir.Action) -> dict[str, Any]:
        record: dict[str, Any] = await self.run(f"call {action.id}", run.call_record, action)
        return record


@pytest.mark.parametrize("recorded", [False, True])
def test_a_durable_level_is_admitted_in_order_too(recorded: bool) -> None:
    def runtime(paid: list[int]) -> Runtime:
        rt = _paying(paid, approval=AutoApprove())
        rt.steps = _Steps()
        if recorded:  # a decision that reads the time is a recorded step of its own
            late = 'now < timestamp("2000-01-01T00:00:00Z")'
            rt.add_policy(ir.CelPolicy(name="late", tools=["pay"], when=late))
        return rt

    paid: list[int] = []
    rt = runtime(paid)
    rt.set_budget(ir.Budget(name="two", max_tool_calls=2))
    rt.add_policy(ir.CelPolicy(name="not_one", tools=["pay"], when="params.n == 1"))
    result = rt.execute(_pays(4))
    assert statuses(result) == {
        "p1": "rejected",
        "p2": "succeeded",
        "p3": "succeeded",
        "p4": "skipped",
    }
    assert sorted(paid) == [2, 3] and result.cost.tool_calls == 2
    paid = []
    rt = runtime(paid)
    rt.add_policy(ONCE)
    result = rt.execute(_pays(3))
    assert statuses(result) == {"p1": "succeeded", "p2": "rejected", "p3": "rejected"}
    assert paid == [1]


def test_an_interruption_while_a_level_is_admitted_ends_every_action_once() -> None:
    """A host hook that raises while the level is being admitted (here: the `after_action` of
    an action rejected at admission) stops the run: what was admitted and not started ends
    skipped, its coroutine closed (never left unawaited), and the exception is raised again."""
    import gc
    import warnings

    from carlang_runtime.engine import Middleware

    class Stop(Middleware):
        def after_action(self, action: ir.Action, result: ir.ActionResult) -> None:
            if result.status.value == "rejected":
                raise KeyboardInterrupt

    paid: list[int] = []
    rt = _paying(paid)
    rt.use(Stop())
    plan = proposal(
        call("p1", "pay", params={"n": 1}, failure_behavior="skip"),
        call("x", "nope", failure_behavior="skip"),
        call("p2", "pay", params={"n": 2}, failure_behavior="skip"),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(KeyboardInterrupt):
            rt.execute(plan)
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]
    assert paid == []
    ended = {e.action_id: str(e.kind) for e in rt.events if e.kind in _TERMINAL}
    assert ended == {"p1": "action_skipped", "x": "action_rejected", "p2": "action_skipped"}


_TERMINAL = {"action_succeeded", "action_failed", "action_skipped", "action_rejected"}
