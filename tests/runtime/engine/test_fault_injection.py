"""Randomized fault injection: random proposals, random tool failures, timeouts, refusals and
cancellations. Whatever happens, the invariants hold:

- every action ends with exactly one terminal status and exactly one terminal event;
- after an abort the state equals the snapshot taken before the proposal, and every success is
  reported rolled back;
- otherwise the state is the snapshot plus the effects of exactly the actions that succeeded;
- the cost summary adds up.
"""

from __future__ import annotations

import asyncio
from typing import Any

from carlang_runtime import ir
from carlang_runtime.engine import CancelToken, Runtime
from hypothesis import given, settings
from hypothesis import strategies as st

from .support import FakeClock, terminal_events

BEHAVIOURS = ["ok", "ok", "ok", "raise", "hang", "cancel", "denied"]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[ir.ActionProposal, dict[tuple[str, int], str]]:
    count = draw(st.integers(1, 8))
    actions = []
    plan: dict[tuple[str, int], str] = {}
    for i in range(count):
        action_id = f"a{i}"
        earlier = [f"k.a{j}" for j in range(i)]
        deps = draw(st.lists(st.sampled_from(earlier), max_size=2, unique=True)) if earlier else []
        behaviour = draw(st.sampled_from(["abort", "skip", "retry"]))
        retries = draw(st.integers(0, 2))
        if draw(st.integers(0, 5)) == 0:
            actions.append(
                ir.Action(
                    id=action_id,
                    type="state_write",
                    parameters={"key": f"k.{action_id}", "value": i},
                    state_dependencies=deps,
                    failure_behavior=behaviour,
                )
            )
            continue
        for attempt in range(1, retries + 2):
            plan[(action_id, attempt)] = draw(st.sampled_from(BEHAVIOURS))
        denied = plan[(action_id, 1)] == "denied"
        actions.append(
            ir.Action(
                id=action_id,
                type="tool_call",
                tool="denied_tool" if denied else "work",
                parameters={"id": action_id},
                expected_effects={f"k.{action_id}": i},
                state_dependencies=deps,
                failure_behavior=behaviour,
                max_retries=retries,
                timeout_ms=20,
            )
        )
    return ir.ActionProposal(id="p", actions=actions), plan


@settings(max_examples=60, deadline=None)
@given(scenarios(), st.dictionaries(st.sampled_from(["x", "y"]), st.integers(), max_size=2))
def test_invariants_hold_under_random_faults(
    scenario: tuple[ir.ActionProposal, dict[tuple[str, int], str]], initial: dict[str, Any]
) -> None:
    proposal, plan = scenario
    clock = FakeClock()
    rt = Runtime(state=initial, clock=clock, sleep=clock.sleep)
    token = CancelToken()
    attempts: dict[str, int] = {}

    async def work(id: str) -> str:
        attempts[id] = attempts.get(id, 0) + 1
        behaviour = plan.get((id, attempts[id]), "ok")
        if behaviour == "raise":
            raise RuntimeError(f"{id} failed")
        if behaviour == "hang":
            await asyncio.sleep(5)  # the 20 ms timeout ends it
        if behaviour == "cancel":
            token.cancel("injected")
        return id

    rt.register_tool("work", work)
    rt.register_tool("denied_tool", work)
    rt.add_policy(ir.DenyToolRule(name="deny_tool:denied_tool", tool="denied_tool"))
    before = rt.state.snapshot()
    result = rt.execute(proposal, cancel=token)
    rt.close()

    ids = [a.id for a in proposal.actions]
    assert [r.action_id for r in result.results] == ids
    run_id = rt.events.query("run_started")[0].run_id
    found = terminal_events(rt.events, run_id)
    assert sorted(found) == sorted(ids)
    assert all(len(kinds) == 1 for kinds in found.values()), found

    by_id = {a.id: a for a in proposal.actions}
    aborted = any(
        r.status.value == "failed"
        or (
            r.status.value == "rejected"
            and (r.error or "").startswith("policy violation")
            and by_id[r.action_id].failure_behavior.value in ("abort", "retry")
        )
        for r in result.results
    )
    succeeded = [r for r in result.results if r.status.value == "succeeded"]
    if aborted:
        assert rt.state.snapshot() == before
        assert all(r.rolled_back for r in succeeded)
    else:
        expected = dict(before)
        for r in succeeded:
            action = by_id[r.action_id]
            expected[f"k.{action.id}"] = (
                action.parameters["value"]
                if action.type.value == "state_write"
                else action.expected_effects[f"k.{action.id}"]
            )
        assert rt.state.snapshot() == expected
        assert not any(r.rolled_back for r in result.results)

    cost = result.cost
    counts = {
        s: sum(1 for r in result.results if r.status.value == s)
        for s in ("succeeded", "failed", "rejected", "skipped")
    }
    assert cost.actions_executed == counts["succeeded"] + counts["failed"]
    assert cost.actions_rejected == counts["rejected"]
    assert cost.actions_skipped == counts["skipped"]
    assert sum(counts.values()) == len(ids)
    assert cost.tool_calls == sum(
        1 for r in succeeded if by_id[r.action_id].type.value == "tool_call"
    )
    assert cost.retries == len(rt.events.query("action_retrying"))


@st.composite
def saga_runs(draw: st.DrawFn) -> list[tuple[str | None, list[tuple[str, bool, bool]]]]:
    """A few runs, each on a tenant (or the shared state) and each a chain of steps: (outcome,
    has a compensation, writes the run's own key)."""
    runs = []
    for number in range(draw(st.integers(1, 4))):
        tenant = draw(st.sampled_from([None, "t1", "t2", f"own{number}"]))
        steps = draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["ok", "ok", "raise", "hang"]), st.booleans(), st.booleans()
                ),
                min_size=1,
                max_size=5,
            )
        )
        runs.append((tenant, steps))
    return runs


@settings(max_examples=40, deadline=None)
@given(saga_runs())
def test_concurrent_sagas_on_tenants_keep_every_invariant(
    runs: list[tuple[str | None, list[tuple[str, bool, bool]]]],
) -> None:
    """Concurrent runs on one runtime, on the same or other tenants, with random failures and
    compensations: each action ends once; an aborted run leaves its tenant's keys as they were
    and compensates exactly its succeeded steps, newest first; a completed run compensates
    nothing and keeps its writes; no run touches another tenant's state."""
    clock = FakeClock()
    rt = Runtime(clock=clock, sleep=clock.sleep)
    undone: dict[str, list[str]] = {}

    async def step(run: str, name: str, outcome: str) -> str:
        await asyncio.sleep(0)
        if outcome == "raise":
            raise RuntimeError("injected")
        if outcome == "hang":
            await asyncio.sleep(5)
        return name

    def undo(run: str, name: str) -> None:
        undone.setdefault(run, []).append(name)

    rt.register_tool("step", step)
    rt.register_tool("undo", undo)
    plans = []
    for number, (tenant, steps) in enumerate(runs):
        run = f"r{number}"
        actions = []
        for index, (outcome, compensated, writes) in enumerate(steps):
            name = f"s{index}"
            actions.append(
                ir.Action(
                    id=name,
                    type="tool_call",
                    tool="step",
                    parameters={"run": run, "name": name, "outcome": outcome},
                    depends_on=[f"s{index - 1}"] if index else [],
                    expected_effects={f"{run}.{name}": index} if writes else {},
                    compensation=(
                        ir.ToolCompensation(tool="undo", parameters={"run": run, "name": name})
                        if compensated
                        else None
                    ),
                    timeout_ms=20,
                )
            )
        plans.append((run, tenant, ir.ActionProposal(id=run, actions=actions)))

    async def everything() -> list[ir.ProposalResult]:
        return list(
            await asyncio.gather(
                *(
                    rt.execute_async(plan, scope={"tenant": tenant} if tenant else None)
                    for _, tenant, plan in plans
                )
            )
        )

    results = asyncio.run(everything())
    rt.close()
    for (run, tenant, plan), result in zip(plans, results, strict=True):
        ids = [a.id for a in plan.actions]
        assert [r.action_id for r in result.results] == ids
        run_id = next(e.run_id for e in rt.events.query("run_started") if e.proposal_id == run)
        found = terminal_events(rt.events, run_id)
        assert sorted(found) == sorted(ids) and all(len(k) == 1 for k in found.values())
        succeeded = [r.action_id for r in result.results if r.status.value == "succeeded"]
        mine = {k: v for k, v in rt.state.snapshot(tenant=tenant).items() if k.startswith(run)}
        by_id = {a.id: a for a in plan.actions}
        if any(r.status.value == "failed" for r in result.results):
            assert mine == {}
            expected = [i for i in reversed(succeeded) if by_id[i].compensation is not None]
            assert [c.action_id for c in result.compensations] == expected
            assert undone.get(run, []) == expected
        else:
            assert result.compensations == [] and run not in undone
            assert mine == {
                key: value for i in succeeded for key, value in by_id[i].expected_effects.items()
            }
    for tenant in rt.state.tenants():
        runs_here = {run for run, t, _ in plans if t == tenant}
        assert {key.split(".")[0] for key in rt.state.snapshot(tenant=tenant)} <= runs_here
