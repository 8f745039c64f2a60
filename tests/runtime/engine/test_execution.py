"""The per-level, per-action execution semantics: order, concurrency, failure behaviours,
rollback, retries, timeouts, budgets, capabilities, validation."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from carlang_runtime import ir
from carlang_runtime.engine import RetryPolicy, Runtime, ToolError

from .support import (
    FakeClock,
    assert_one_terminal_event_each,
    call,
    errors,
    proposal,
    statuses,
    write,
)

ROLLED_BACK = (
    "proposal aborted; state effects were rolled back; external effects may remain and were"
    " not undone"
)


def recorder(log: list[str], name: str, result: Any = None) -> Any:
    def tool(**params: Any) -> Any:
        log.append(name)
        return result

    tool.__name__ = name
    return tool


def test_a_plan_runs_level_by_level_and_commits_effects() -> None:
    rt = Runtime()
    log: list[str] = []
    rt.register_tool("fetch", lambda url: log.append(url) or {"status": 200})
    result = rt.execute(
        proposal(
            write("w", "build.id", 7),
            call(
                "get",
                "fetch",
                params={"url": "https://x"},
                expected_effects={"build.ok": True},
                state_dependencies=["build.id"],
            ),
            ir.Action(
                id="r",
                type="state_read",
                parameters={"key": "build.ok"},
                state_dependencies=["build.ok"],
            ),
            ir.Action(
                id="ok",
                type="assertion",
                parameters={"key": "build.ok", "expected": True},
                state_dependencies=["build.ok"],
            ),
        )
    )
    assert statuses(result) == {
        "w": "succeeded",
        "get": "succeeded",
        "r": "succeeded",
        "ok": "succeeded",
    }
    outputs = {r.action_id: r.output for r in result.results}
    assert outputs == {
        "w": "written: build.id",
        "get": {"status": 200},
        "r": True,
        "ok": {"asserted": "build.ok", "value": True},
    }
    assert rt.state.snapshot() == {"build.id": 7, "build.ok": True}
    assert result.results[1].state_changes == {"build.ok": {"op": "set", "value": True}}
    assert result.cost.model_dump() == {
        "tool_calls": 1,
        "actions_executed": 4,
        "actions_rejected": 0,
        "actions_skipped": 0,
        "total_duration_ms": result.cost.total_duration_ms,
        "retries": 0,
    }
    assert_one_terminal_event_each(rt, result)


def test_abort_skips_the_rest_and_rolls_the_state_back() -> None:
    rt = Runtime(state={"kept": 1})
    rt.register_tool("ok", lambda: "fine")
    rt.register_tool("boom", lambda: (_ for _ in ()).throw(RuntimeError("kaboom")))
    before = rt.state.snapshot()
    result = rt.execute(
        proposal(
            write("w", "k", 1),
            call("a", "ok", expected_effects={"x": 1}, state_dependencies=["k"]),
            call("b", "boom", state_dependencies=["x"]),
            call("c", "ok", state_dependencies=["x"], failure_behavior="skip"),
            call("d", "nope"),
        )
    )
    assert statuses(result) == {
        "w": "succeeded",
        "a": "succeeded",
        "b": "failed",
        "c": "skipped",
        "d": "rejected",
    }
    assert errors(result) == {
        "w": ROLLED_BACK,
        "a": ROLLED_BACK,
        "b": "RuntimeError: kaboom",
        "c": "skipped due to abort",
        "d": "tool 'nope' is not registered",
    }
    assert [r.rolled_back for r in result.results] == [True, True, False, False, False]
    assert all(r.state_changes == {} for r in result.results)
    assert rt.state.snapshot() == before
    assert [e.kind for e in rt.events.query("state_rollback")] == ["state_rollback"]
    assert_one_terminal_event_each(rt, result)


def test_a_level_with_an_abort_action_runs_in_order() -> None:
    rt = Runtime()
    log: list[str] = []
    for name in "abc":
        rt.register_tool(name, recorder(log, name))
    rt.execute(proposal(call("a", "a"), call("b", "b"), call("c", "c")))
    assert log == ["a", "b", "c"]


def test_a_level_without_abort_actions_runs_concurrently() -> None:
    rt = Runtime()
    first_started = asyncio.Event()

    async def waiter() -> str:
        # Completes only if the other action runs meanwhile.
        await asyncio.wait_for(first_started.wait(), 2)
        return "saw the other"

    async def starter() -> str:
        first_started.set()
        return "started"

    rt.register_tool("waiter", waiter)
    rt.register_tool("starter", starter)
    result = rt.execute(
        proposal(
            call("w", "waiter", failure_behavior="skip"),
            call("s", "starter", failure_behavior="skip"),
        )
    )
    assert statuses(result) == {"w": "succeeded", "s": "succeeded"}


def test_sync_tools_of_a_concurrent_level_run_in_threads() -> None:
    rt = Runtime()
    barrier = threading.Barrier(2, timeout=2)
    rt.register_tool("meet", lambda: barrier.wait() is not None)
    result = rt.execute(
        proposal(
            call("a", "meet", failure_behavior="skip"), call("b", "meet", failure_behavior="skip")
        )
    )
    assert statuses(result) == {"a": "succeeded", "b": "succeeded"}


def test_skip_continues_and_reports_the_failure() -> None:
    rt = Runtime()
    rt.register_tool("boom", lambda: (_ for _ in ()).throw(ValueError("bad input")))
    rt.register_tool("ok", lambda: 1)
    result = rt.execute(proposal(call("a", "boom", failure_behavior="skip"), call("b", "ok")))
    assert statuses(result) == {"a": "skipped", "b": "succeeded"}
    assert errors(result)["a"] == "ValueError: bad input"
    assert result.cost.actions_skipped == 1 and result.cost.actions_executed == 1


def test_retry_backs_off_exponentially_then_aborts() -> None:
    clock = FakeClock()
    rt = Runtime(clock=clock, sleep=clock.sleep)
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        raise ToolError("service unavailable")

    rt.register_tool("flaky", flaky)
    result = rt.execute(proposal(call("a", "flaky", failure_behavior="retry", max_retries=3)))
    assert statuses(result) == {"a": "failed"}
    assert errors(result)["a"] == "service unavailable"
    assert len(attempts) == 4 and result.cost.retries == 3
    assert clock.slept == [0.1, 0.2, 0.4]
    retrying = rt.events.query("action_retrying")
    assert [e.data["attempt"] for e in retrying] == [1, 2, 3]


def test_retry_succeeds_when_a_later_attempt_does() -> None:
    clock = FakeClock()
    rt = Runtime(clock=clock, sleep=clock.sleep, retry=RetryPolicy(base_delay=1, factor=3))
    outcomes = iter([RuntimeError("a"), RuntimeError("b"), "ok"])

    def flaky() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    rt.register_tool("flaky", flaky)
    result = rt.execute(proposal(call("a", "flaky", failure_behavior="retry")))
    assert statuses(result) == {"a": "succeeded"} and result.cost.retries == 2
    assert clock.slept == [1, 3]


def test_a_hanging_async_tool_times_out() -> None:
    rt = Runtime()

    async def hang() -> None:
        await asyncio.sleep(30)

    rt.register_tool("hang", hang)
    started = time.monotonic()
    result = rt.execute(proposal(call("a", "hang", timeout_ms=50, failure_behavior="skip")))
    assert time.monotonic() - started < 5
    assert errors(result)["a"] == "timed out after 50 ms"


def test_a_hanging_sync_tool_never_blocks_the_run_past_its_timeout() -> None:
    rt = Runtime()
    release = threading.Event()
    rt.register_tool("hang", lambda: release.wait(30))
    rt.register_tool("after", lambda: "ran")
    started = time.monotonic()
    result = rt.execute(
        proposal(call("a", "hang", timeout_ms=50, failure_behavior="skip"), call("b", "after"))
    )
    release.set()
    assert time.monotonic() - started < 5
    assert statuses(result) == {"a": "skipped", "b": "succeeded"}
    assert errors(result)["a"] == "timed out after 50 ms"
    rt.close()


def test_budgets_skip_the_rest() -> None:
    rt = Runtime()
    rt.register_tool("t", lambda: 1)
    rt.set_budget(ir.Budget(name="b", max_tool_calls=2))
    result = rt.execute(proposal(*(call(f"a{i}", "t") for i in range(4))))
    assert statuses(result) == {
        "a0": "succeeded",
        "a1": "succeeded",
        "a2": "skipped",
        "a3": "skipped",
    }
    assert errors(result)["a2"] == "cost budget exceeded"
    assert rt.state.snapshot() == {}
    rt.set_budget(ir.Budget(name="b", max_actions=1))
    assert statuses(rt.execute(proposal(call("x", "t"), call("y", "t")))) == {
        "x": "succeeded",
        "y": "skipped",
    }
    clock = FakeClock()
    slow = Runtime(clock=clock)

    def tick() -> None:
        clock.now += 1.0

    slow.register_tool("tick", tick)
    slow.set_budget(ir.Budget(name="b", max_duration_ms=1500))
    result = slow.execute(proposal(*(call(f"t{i}", "tick") for i in range(4))))
    assert statuses(result) == {
        "t0": "succeeded",
        "t1": "succeeded",
        "t2": "skipped",
        "t3": "skipped",
    }


def test_capabilities_glob_and_deny_wins() -> None:
    rt = Runtime()
    for name in ("fetch", "rollback_db", "shell"):
        rt.register_tool(name, lambda: None)
    rt.set_capabilities(
        ir.Capability(
            name="bot",
            allowed_tools=["fetch", "rollback_*"],
            denied_tools=["roll*_db"],
            allowed_state_keys=["build.*"],
        )
    )
    result = rt.execute(
        proposal(
            call("a", "fetch"),
            call("b", "rollback_db"),
            call("c", "shell"),
            write("d", "build.id", 1),
            write("e", "secrets", 1),
        )
    )
    assert statuses(result) == {
        "a": "succeeded",
        "b": "rejected",
        "c": "rejected",
        "d": "succeeded",
        "e": "rejected",
    }
    assert errors(result)["b"] == "tool 'rollback_db' is denied by capability 'bot'"
    assert errors(result)["c"] == "tool 'shell' is not allowed by capability 'bot'"
    assert errors(result)["e"] == "state key 'secrets' is not allowed by capability 'bot'"
    rt.set_capabilities(ir.Capability(name="tiny", max_actions=1))
    result = rt.execute(proposal(call("a", "fetch"), call("b", "fetch")))
    assert set(errors(result).values()) == {"2 actions exceed capability 'tiny' (max_actions 1)"}


def test_validation_rejects_with_cars_messages() -> None:
    rt = Runtime()
    rt.register_tool(
        "deploy",
        lambda env, replicas=1: None,
        schema={
            "parameters": {
                "type": "object",
                "required": ["env"],
                "properties": {
                    "env": {"type": "string"},
                    "replicas": {"type": "integer", "minimum": 1},
                },
            }
        },
    )
    result = rt.execute(
        proposal(
            call("a", "deploy", params={}),
            call("b", "deploy", params={"env": 1}),
            call("c", "deploy", params={"env": "x", "replicas": 0}),
            call(
                "d",
                "deploy",
                params={"env": "x"},
                preconditions=[ir.Precondition(key="ready", operator="eq", value=True)],
            ),
            call("e", "deploy", params={"env": "x"}, state_dependencies=["build"]),
            ir.Action(id="f", type="state_write", parameters={"value": 1}),
            call("g", "deploy", params={"env": "x", "extra": "agents send extras"}),
        )
    )
    assert errors(result) == {
        "a": "missing required parameter 'env' for tool 'deploy'",
        "b": "tool 'deploy' parameter validation: expected string, got number (at /env)",
        "c": "tool 'deploy' parameter validation: 0 is less than the minimum of 1 (at /replicas)",
        "d": "key 'ready' has no value",
        "e": "state dependency 'build' not found",
        "f": "state_write needs a string 'key' parameter",
        "g": None,
    }
    assert result.cost.actions_rejected == 6
    assert statuses(result)["g"] == "succeeded"  # extras are allowed (and not passed on)


def test_a_declared_tool_without_an_implementation_fails_clearly() -> None:
    rt = Runtime.from_program(
        ir.Program(tools=[ir.ToolSchema(name="fetch")], proposals=[proposal(call("a", "fetch"))])
    )
    result = rt.execute(proposal(call("a", "fetch")))
    assert statuses(result) == {"a": "failed"}
    assert errors(result)["a"] == (
        "tool 'fetch' has no implementation: register one (carlang run --tools module:attr)"
    )


def test_assertions_fail_like_car() -> None:
    rt = Runtime(state={"k": 2})
    result = rt.execute(
        proposal(
            ir.Action(
                id="v",
                type="assertion",
                parameters={"key": "k", "expected": 3},
                failure_behavior="skip",
            ),
            ir.Action(
                id="w", type="assertion", parameters={"key": "k", "operator": "gt", "value": 1}
            ),
        )
    )
    assert statuses(result) == {"v": "skipped", "w": "succeeded"}
    assert errors(result)["v"] == "assertion failed: state['k'] = Number(2), expected Number(3)"


def test_executing_inside_an_event_loop_asks_for_the_async_form() -> None:
    rt = Runtime()

    async def inside() -> None:
        with pytest.raises(Exception, match="await its _async form"):
            rt.execute(proposal())

    asyncio.run(inside())


def test_budget_and_capability_built_in_python_need_no_name() -> None:
    # CAR's CostBudget has no name: the defaults set from Python need none either.
    rt = Runtime()
    rt.register_tool("t", lambda: 1)
    rt.register_tool("shell", lambda: 1)
    rt.set_capabilities(ir.Capability(denied_tools=["shell"]))
    result = rt.execute(proposal(call("a", "t"), call("c", "shell")))
    assert errors(result)["c"] == "tool 'shell' is denied by the capability"
    rt.set_budget(ir.Budget(max_tool_calls=1))
    result = rt.execute(proposal(call("a", "t"), call("b", "t")))
    assert statuses(result) == {"a": "succeeded", "b": "skipped"}


def test_a_call_that_leaves_a_parameter_out_gets_its_declared_default() -> None:
    """As the compiler gives a call written in a program its defaults, the runtime gives them
    to a call from anywhere (a model, an MCP client, JSON): the policy, the tool and the log
    see the same parameters, and a policy on a left-out parameter decides (not fails)."""
    seen: list[dict[str, Any]] = []
    rt = Runtime()
    rt.register_tool(
        "log",
        lambda **params: seen.append(params),
        schema={
            "parameters": {
                "type": "object",
                "properties": {
                    "repo": {"type": "string"},
                    "max_count": {"type": "integer", "default": 10},
                    "tags": {"type": "array", "default": []},
                },
            }
        },
    )
    rt.add_policy(
        ir.CelPolicy(name="short", effect="deny", tools=["log"], when="params.max_count > 100")
    )
    result = rt.execute(
        proposal(
            call("a", "log", params={"repo": "r"}),
            call("b", "log", params={"repo": "r", "max_count": 500}),
        )
    )
    assert statuses(result) == {"a": "succeeded", "b": "rejected"}
    assert seen == [{"repo": "r", "max_count": 10, "tags": []}]
    seen[0]["tags"].append("x")  # a default is the call's own: the next call gets a fresh one
    rt.execute(proposal(call("c", "log", params={"repo": "s"})))
    assert seen[1]["tags"] == []


def test_a_null_default_is_not_sent() -> None:
    """`lang: str = None` is written `{"type": "string", "default": null}`: the parameter may
    be left out, and then is (sending null would fail the parameter's own type)."""
    seen: list[dict[str, Any]] = []

    def search(q: str, lang: str | None = None) -> str:
        seen.append({"q": q, "lang": lang})
        return q

    rt = Runtime()
    rt.register_tool("search", search)
    assert rt.tools["search"].schema.parameters["properties"]["lang"].get("default", 0) is None
    result = rt.execute(proposal(call("a", "search", params={"q": "x"})))
    assert statuses(result) == {"a": "succeeded"} and seen == [{"q": "x", "lang": None}]


def test_every_way_in_decides_with_the_defaults() -> None:
    """gate, the planner's ranking and compensations see a call as execute runs it."""
    from tests.helpers import compile_ok

    program = compile_ok(
        "tool f(limit: int = 10)\ntool undo(limit: int = 10)\n"
        "policy big: deny f, undo when params.limit > 100\n"
    )
    rt = Runtime.from_program(program)
    rt.register_tool("f", lambda limit: limit)
    rt.register_tool("undo", lambda limit: limit)
    rt.register_tool("boom", _raise_tool_error)
    bare = ir.Action(id="g", type="tool_call", tool="f", parameters={})
    assert rt.gate(bare).decision == "allow"
    (scored,) = rt.rank_candidates([proposal(bare)])
    assert scored.valid and scored.denials == 0
    undo = ir.ToolCompensation(type="tool", tool="undo", parameters={})
    failing = proposal(
        call("c", "f", params={}, compensation=undo),  # undo's limit: 10, allowed
        call("d", "boom", depends_on=["c"]),
    )
    result = rt.execute(failing)
    assert [c.status.value for c in result.compensations] == ["succeeded"]


def _raise_tool_error() -> None:
    raise ToolError("the second step fails: the run aborts and compensates")
