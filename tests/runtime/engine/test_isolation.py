"""Runs that share a runtime: rollback of exactly one run's writes, writers of one key refused,
tenants and caches kept apart, values copied at the tool boundary, one terminal event per
action whatever raises, and `after` meaning "after it succeeded"."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from carlang_runtime import ir
from carlang_runtime.engine import (
    ApprovalRequest,
    CallbackGate,
    Middleware,
    Runtime,
    ToolContext,
)
from carlang_runtime.errors import CarlangRuntimeError

from .support import assert_one_terminal_event_each, call, errors, proposal, statuses, write

# -- isolation between concurrent runs ---------------------------------------------------------


def test_an_abort_rolls_back_only_its_own_run() -> None:
    """Run A writes and waits; run B writes other keys and finishes; A then aborts: B's
    committed writes stay (before, A's rollback undid everything written since it began)."""
    rt = Runtime(state={"base": 0})
    started, go_on = asyncio.Event(), asyncio.Event()

    async def pause() -> None:
        started.set()
        await go_on.wait()

    async def boom() -> None:
        raise RuntimeError("boom")

    rt.register_tool("pause", pause)
    rt.register_tool("boom", boom)

    async def scenario() -> tuple[ir.ProposalResult, ir.ProposalResult]:
        first = asyncio.ensure_future(
            rt.execute_async(
                proposal(
                    write("a1", "a.key", 1),
                    call("wait", "pause", state_dependencies=["a.key"]),
                    call("fail", "boom", depends_on=["wait"]),
                    id="A",
                )
            )
        )
        await started.wait()
        second = await rt.execute_async(
            proposal(write("b1", "b.key", 2), write("b2", "base", 5), id="B")
        )
        go_on.set()
        return await first, second

    first, second = asyncio.run(scenario())
    assert statuses(first)["fail"] == "failed"
    assert second.all_succeeded()
    assert rt.state.snapshot() == {"base": 5, "b.key": 2}


def test_two_runs_never_both_write_one_key_of_a_tenant() -> None:
    rt = Runtime()
    started, go_on = asyncio.Event(), asyncio.Event()

    async def pause() -> None:
        started.set()
        await go_on.wait()

    rt.register_tool("pause", pause)

    async def scenario() -> tuple[ir.ProposalResult, ir.ProposalResult, ir.ProposalResult]:
        holder = asyncio.ensure_future(
            rt.execute_async(
                proposal(write("w", "shared", "A"), call("p", "pause", depends_on=["w"]), id="A")
            )
        )
        await started.wait()
        refused = await rt.execute_async(proposal(write("w", "shared", "B"), id="B"))
        other_tenant = await rt.execute_async(
            proposal(write("w", "shared", "T"), id="T"), scope={"tenant": "t1"}
        )
        go_on.set()
        return await holder, refused, other_tenant

    holder, refused, other_tenant = asyncio.run(scenario())
    assert holder.all_succeeded() and other_tenant.all_succeeded()
    assert statuses(refused) == {"w": "rejected"}
    assert "is being written by run" in (errors(refused)["w"] or "")
    assert rt.state.get("shared") == "A"
    assert rt.state.get("shared", tenant="t1") == "T"
    # Once the holder has finished, the key is free again.
    assert rt.execute(proposal(write("w", "shared", "C"))).all_succeeded()
    assert rt.state.get("shared") == "C"


def test_a_tool_writing_a_key_another_run_holds_fails_at_the_write() -> None:
    rt = Runtime()
    started, go_on = asyncio.Event(), asyncio.Event()
    seen: list[str] = []

    async def pause() -> None:
        started.set()
        await go_on.wait()

    def writer(context: ToolContext) -> None:
        try:
            context.state.set("shared", "mine")
        except Exception as exc:  # the conflict is raised at the write itself
            seen.append(str(exc))
            raise

    rt.register_tool("pause", pause)
    rt.register_tool("writer", writer)

    async def scenario() -> ir.ProposalResult:
        holder = asyncio.ensure_future(
            rt.execute_async(
                proposal(write("w", "shared", "A"), call("p", "pause", depends_on=["w"]), id="A")
            )
        )
        await started.wait()
        refused = await rt.execute_async(proposal(call("x", "writer"), id="B"))
        go_on.set()
        await holder
        return refused

    refused = asyncio.run(scenario())
    assert statuses(refused) == {"x": "failed"}
    assert seen and "is being written by run" in seen[0]
    assert rt.state.get("shared") == "A"


def test_a_hundred_concurrent_runs_of_distinct_tenants_keep_to_themselves() -> None:
    """100 concurrent runs on one runtime, one tenant each, about 30% aborting, all writing the
    same key names and calling the same cached and idempotent tools: no run loses a committed
    write, no tenant sees another's value or cached output."""
    rng = random.Random(7)
    rt = Runtime()
    calls: list[str] = []

    async def whoami(context: ToolContext) -> str:
        await asyncio.sleep(rng.random() / 1000)
        calls.append(str(context.scope["tenant"]))
        return f"secret of {context.scope['tenant']}"

    async def step(fail: bool) -> None:
        await asyncio.sleep(rng.random() / 1000)
        if fail:
            raise RuntimeError("injected")

    rt.declare_tool(ir.ToolSchema(name="whoami", parameters={"type": "object"}, cache_ttl_secs=60))
    rt.register_tool("whoami", whoami)
    rt.register_tool("step", step)
    tenants = [f"t{i}" for i in range(100)]
    aborting = {t for t in tenants if rng.random() < 0.3}

    def plan(tenant: str) -> ir.ActionProposal:
        return proposal(
            write("count", "count", int(tenant[1:])),
            call("who", "whoami", depends_on=["count"]),
            call("cached", "whoami", depends_on=["who"], idempotent=True),
            call("end", "step", params={"fail": tenant in aborting}, depends_on=["cached"]),
            write("done", "done", tenant, depends_on=["end"]),
            id=tenant,
        )

    async def everything() -> list[ir.ProposalResult]:
        return list(
            await asyncio.gather(*(rt.execute_async(plan(t), scope={"tenant": t}) for t in tenants))
        )

    results = asyncio.run(everything())
    for tenant, result in zip(tenants, results, strict=True):
        outputs = {r.action_id: r.output for r in result.results}
        assert outputs["who"] == f"secret of {tenant}"
        assert outputs["cached"] == f"secret of {tenant}"
        if tenant in aborting:
            assert statuses(result)["end"] == "failed"
            assert rt.state.snapshot(tenant=tenant) == {}
        else:
            assert result.all_succeeded()
            assert rt.state.snapshot(tenant=tenant) == {"count": int(tenant[1:]), "done": tenant}
    assert rt.state.snapshot() == {}  # the shared state was never touched
    assert sorted(set(calls)) == sorted(tenants)  # every tenant computed its own output


# -- tenants and caches ------------------------------------------------------------------------


@pytest.mark.parametrize("tenant", [42, ["a"], {"a": 1}, True, ""])
def test_a_tenant_must_be_a_non_empty_string(tenant: Any) -> None:
    rt = Runtime(state={"x": 1})
    with pytest.raises(CarlangRuntimeError, match="a tenant must be a non-empty string"):
        rt.execute(proposal(write("w", "x", 2)), scope={"tenant": tenant})
    with pytest.raises(CarlangRuntimeError, match="a tenant must be a non-empty string"):
        rt.gate(write("w", "x", 2), scope={"tenant": tenant})
    assert rt.state.snapshot() == {"x": 1}
    assert not rt.events.query("run_started")


def test_idempotent_and_cached_results_are_per_tenant_and_per_session_policy() -> None:
    rt = Runtime()
    rt.declare_tool(ir.ToolSchema(name="now", parameters={"type": "object"}, cache_ttl_secs=60))
    counter = iter(range(100))
    rt.register_tool("now", lambda: next(counter))
    rt.register_tool("once", lambda: next(counter))

    def run(tool: str, **options: Any) -> Any:
        action = call("a", tool, idempotent=tool == "once")
        return rt.execute(proposal(action), **options).results[0]

    assert run("now", scope={"tenant": "acme"}).output == 0
    assert run("now", scope={"tenant": "acme"}).output == 0  # cached for acme
    assert run("now", scope={"tenant": "globex"}).output == 1  # not acme's
    assert run("now").output == 2  # nor the shared state's
    assert run("once", scope={"tenant": "acme"}).output == 3
    assert run("once", scope={"tenant": "acme"}).status.value == "succeeded"
    assert run("once", scope={"tenant": "globex"}).output == 4
    # A session with policies of its own does not get outputs cached outside it.
    session = rt.open_session()
    rt.add_policy(ir.DenyToolRule(name="no_once", tool="once"), session=session)
    refused = run("once", scope={"tenant": "acme"}, session=session)
    assert refused.status.value == "rejected"


def test_checkpoints_keep_every_tenant_apart(tmp_path: Any) -> None:
    rt = Runtime(state={"who": "shared"})
    rt.execute(proposal(write("w", "who", "acme")), scope={"tenant": "acme"})
    path = tmp_path / "cp.json"
    rt.save_checkpoint(path)
    fresh = Runtime()
    fresh.load_checkpoint(path)
    assert fresh.state.snapshot() == {"who": "shared"}
    assert fresh.state.snapshot(tenant="acme") == {"who": "acme"}
    assert sorted(map(str, fresh.state.tenants())) == ["None", "acme"]
    with pytest.raises(CarlangRuntimeError, match="non-empty string"):
        fresh.state.data("")  # no tenant can be confused with the shared state


def test_checkpoints_of_the_first_format_still_load(tmp_path: Any) -> None:
    path = tmp_path / "old.json"
    path.write_text('{"state": {"": {"who": "shared"}, "acme": {"who": "acme"}}, "tools": []}')
    rt = Runtime()
    rt.load_checkpoint(path)
    assert rt.state.snapshot() == {"who": "shared"}
    assert rt.state.snapshot(tenant="acme") == {"who": "acme"}


# -- tools cannot change state or proposals behind the runtime's back ---------------------------


def test_a_tool_that_changes_what_it_read_changes_nothing() -> None:
    rt = Runtime(state={"items": [1, 2], "config": {"mode": "safe"}})

    def mutate(context: ToolContext) -> None:
        context.state["items"].append(3)
        context.state["config"]["mode"] = "unsafe"
        context.state.get("items").clear()

    def fail() -> None:
        raise RuntimeError("then the run aborts")

    rt.register_tool("mutate", mutate)
    rt.register_tool("fail", fail)
    rt.execute(proposal(call("m", "mutate")))
    assert rt.state.snapshot() == {"items": [1, 2], "config": {"mode": "safe"}}
    result = rt.execute(proposal(call("m", "mutate"), call("f", "fail", depends_on=["m"])))
    assert statuses(result) == {"m": "succeeded", "f": "failed"}
    assert rt.state.snapshot() == {"items": [1, 2], "config": {"mode": "safe"}}


def test_a_tool_that_changes_its_arguments_changes_neither_proposal_nor_state() -> None:
    rt = Runtime()

    def grab(items: list[int], context: ToolContext) -> list[int]:
        items.append(99)
        context.action.parameters["items"].append(98)
        context.state.set("kept", items)
        items.append(100)  # after staging the write: the state keeps what was written
        return items

    rt.register_tool("grab", grab)
    original = proposal(call("g", "grab", params={"items": [1]}))
    result = rt.execute(original)
    assert original.actions[0].parameters == {"items": [1]}
    assert result.results[0].output == [1, 99, 100]
    assert rt.state.get("kept") == [1, 99]


def test_what_a_state_read_returns_is_a_copy() -> None:
    rt = Runtime(state={"items": [1]})
    result = rt.execute(proposal(ir.Action(id="r", type="state_read", parameters={"key": "items"})))
    result.results[0].output.append(2)
    assert rt.state.get("items") == [1]


# -- one terminal event per action, whatever raises ---------------------------------------------


def _raising(kind: type[BaseException]) -> Any:
    def tool() -> None:
        raise kind()

    return tool


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit, asyncio.CancelledError])
@pytest.mark.parametrize("concurrent", [False, True])
def test_a_tool_raising_an_interrupt_ends_the_run_consistently(
    kind: type[BaseException], concurrent: bool
) -> None:
    rt = Runtime(state={"x": 0})
    rt.register_tool("ok", lambda: "fine")
    rt.register_tool("bad", _raising(kind))
    behaviour = "skip" if concurrent else "abort"  # skip: one level runs concurrently
    plan = proposal(
        write("w", "x", 1),
        call("a", "ok", depends_on=["w"], failure_behavior=behaviour),
        call("b", "bad", depends_on=["w"], failure_behavior=behaviour),
        call("c", "ok", depends_on=["w"], failure_behavior=behaviour),
        call("d", "ok", depends_on=["a", "b", "c"]),
    )

    async def run() -> ir.ProposalResult:
        return await rt.execute_async(plan)

    with pytest.raises(kind):
        asyncio.run(run()) if kind is asyncio.CancelledError else rt.execute(plan)
    assert rt.state.snapshot() == {"x": 0}
    run_id = rt.events.query("run_started")[-1].run_id
    terminal = {
        e.action_id: e.data.get("error")
        for e in rt.events.query(
            ["action_succeeded", "action_failed", "action_skipped", "action_rejected"],
            run_id=run_id,
        )
    }
    assert sorted(terminal) == ["a", "b", "c", "d", "w"]
    assert len(rt.events.query(["action_failed"], action_id="b", run_id=run_id)) == 1
    assert terminal["b"] == f"interrupted: {kind.__name__}"
    assert rt.events.query("run_completed", run_id=run_id)[0].data["status"] == "interrupted"


def test_a_run_cancelled_by_a_cancel_scope_says_cancelled_without_the_scopes_address() -> None:
    """anyio (the MCP SDK's servers, uvicorn) cancels with `Cancelled via cancel scope 7f3a...
    by <Task ...>`: the log says `interrupted: CancelledError`, as for any cancellation."""
    import anyio

    rt = Runtime()

    async def slow() -> None:
        await anyio.sleep(30)

    rt.register_tool("slow", slow)

    async def run() -> None:
        with anyio.CancelScope() as scope:
            asyncio.get_running_loop().call_later(0.05, scope.cancel)
            await rt.execute_async(proposal(call("s", "slow")))

    asyncio.run(run())
    (failed,) = rt.events.query(["action_failed"], action_id="s")
    assert failed.data["error"] == "interrupted: CancelledError", failed.data


@pytest.mark.parametrize("where", ["gate", "middleware"])
def test_a_gate_or_middleware_that_raises_ends_the_run_consistently(where: str) -> None:
    rt = Runtime(state={"x": 0})
    rt.register_tool("ok", lambda: "fine")
    rt.add_policy(ir.CelPolicy(name="ask", effect="require_approval", tools=["ok"]))

    def broken_gate(request: ApprovalRequest) -> bool:
        raise RuntimeError("the approval service is down")

    class Broken(Middleware):
        def before_action(self, action: ir.Action, proposal: ir.ActionProposal) -> None:
            raise RuntimeError("the middleware is broken")

    if where == "gate":
        rt.set_approval_gate(CallbackGate(broken_gate))
    else:
        rt.use(Broken())
        rt.policies = type(rt.policies)()
    plan = proposal(write("w", "x", 1), call("a", "ok", depends_on=["w"]), call("b", "ok"))
    with pytest.raises(RuntimeError):
        rt.execute(plan)
    assert rt.state.snapshot() == {"x": 0}
    run_id = rt.events.query("run_started")[-1].run_id
    ended = rt.events.query(
        ["action_succeeded", "action_failed", "action_skipped", "action_rejected"], run_id=run_id
    )
    assert sorted(e.action_id for e in ended) == ["a", "b", "w"]


# -- `after` ----------------------------------------------------------------------------------


def test_after_means_after_it_succeeded() -> None:
    rt = Runtime()
    rt.register_tool("ok", lambda: "fine")
    rt.register_tool("boom", _raising(RuntimeError))
    rt.add_policy(ir.DenyToolRule(name="no_denied", tool="denied"))
    rt.register_tool("denied", lambda: "never")
    result = rt.execute(
        proposal(
            call("fails", "boom", failure_behavior="skip"),
            call("refused", "denied", failure_behavior="skip"),
            call("unknown", "nope"),
            call("after_failed", "ok", depends_on=["fails"]),
            call("after_refused", "ok", depends_on=["refused"]),
            call("after_rejected", "ok", depends_on=["unknown"]),
            call("after_skipped", "ok", depends_on=["after_failed"]),
            call("after_ok", "ok", depends_on=["after_skipped"], failure_behavior="skip"),
            call("fine", "ok"),
            call("after_fine", "ok", depends_on=["fine"]),
        )
    )
    assert statuses(result) == {
        "fails": "skipped",
        "refused": "rejected",
        "unknown": "rejected",
        "after_failed": "skipped",
        "after_refused": "skipped",
        "after_rejected": "skipped",
        "after_skipped": "skipped",
        "after_ok": "skipped",
        "fine": "succeeded",
        "after_fine": "succeeded",
    }
    assert errors(result)["after_failed"] == (
        "skipped: it runs after fails, which did not succeed (skipped)"
    )
    assert_one_terminal_event_each(rt, result)


def test_two_threads_meeting_a_new_tenant_at_once_share_its_state() -> None:
    """`StateStore.data` looked a tenant up, then made its dict: a thread between the two
    steps made one too, and the second replaced the first, losing the writes of a run that
    held it. The tenant's dict is made in one step."""
    from carlang_runtime.engine.state import StateStore

    store = StateStore()
    theirs: dict[str, Any] = {"written": 1}

    class Racing(dict):  # type: ignore[type-arg]
        """Another thread makes tenant "t" between this thread's look and its insert."""

        def get(self, key: Any, default: Any = None) -> Any:
            found = super().get(key, default)
            if found is None and key == "t":
                super().__setitem__("t", theirs)
            return found

    store._tenants = Racing(store._tenants)
    assert store.data("t") is theirs
    assert store.get("written", tenant="t") == 1


def test_a_session_belongs_to_one_tenant() -> None:
    """A session's history is its runs' actions, parameters and all: used by two tenants, one
    tenant's payment decided the other's (`history.exists(h, h.params.to == ...)`). The
    first run binds it (or `open_session(tenant=...)`); another tenant's run is refused."""
    rt = Runtime()
    rt.register_tool("pay", lambda to: "paid")
    rt.add_policy(
        ir.CelPolicy(name="once", tools=["pay"], when='history.exists(h, h.tool == "pay")')
    )
    session = rt.open_session()
    plan = proposal(call("a", "pay", params={"to": "alice-acct-123"}))
    assert statuses(rt.execute(plan, session=session, scope={"tenant": "A"}))["a"] == "succeeded"
    other = rt.execute(plan, session=session, scope={"tenant": "B"})
    assert errors(other)["a"] == f"session '{session}' belongs to tenant 'A', not tenant 'B'"
    shared = rt.execute(plan, session=session)
    assert errors(shared)["a"] == f"session '{session}' belongs to tenant 'A', not the shared state"
    assert (
        rt.gate(
            call("a", "pay", params={"to": "x"}), session=session, scope={"tenant": "B"}
        ).decision
        == "deny"
    )
    bound = rt.open_session(tenant="B")
    assert statuses(rt.execute(plan, session=bound, scope={"tenant": "B"}))["a"] == "succeeded"
    assert statuses(rt.execute(plan, session=bound, scope={"tenant": "A"}))["a"] == "rejected"
