"""Sagas: on abort, the compensations of what succeeded run, newest first, each through the
pipeline; durable runs journal them, and a resumed run finishes an abort it finds under way."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from carlang_runtime import ir
from carlang_runtime.engine import AutoApprove, EventLog, EventStore, Runtime, SqliteSink

from .support import call, proposal, statuses


def undo(tool: str, **params: Any) -> dict[str, Any]:
    return {"type": "tool", "tool": tool, "parameters": params}


def saga_runtime(log: list[str], **options: Any) -> Runtime:
    rt = Runtime(state={"x": 0}, **options)

    def act(name: str) -> str:
        log.append(f"do {name}")
        return name

    def revert(name: str) -> str:
        log.append(f"undo {name}")
        return f"undone {name}"

    def boom() -> None:
        raise RuntimeError("the last step failed")

    rt.register_tool("act", act)
    rt.register_tool("revert", revert)
    rt.register_tool("boom", boom)
    return rt


def saga(*extra: ir.Action) -> ir.ActionProposal:
    return proposal(
        call(
            "a",
            "act",
            params={"name": "a"},
            compensation=undo("revert", name="a"),
            expected_effects={"x": 1},
        ),
        call(
            "b",
            "act",
            params={"name": "b"},
            compensation=undo("revert", name="b"),
            depends_on=["a"],
        ),
        call("c", "act", params={"name": "c"}, depends_on=["b"]),
        *extra,
        call("d", "boom", depends_on=["c"]),
    )


def test_an_abort_runs_the_compensations_newest_first() -> None:
    log: list[str] = []
    rt = saga_runtime(log)
    result = rt.execute(saga())
    assert statuses(result) == {"a": "succeeded", "b": "succeeded", "c": "succeeded", "d": "failed"}
    assert log == ["do a", "do b", "do c", "undo b", "undo a"]
    assert [(c.action_id, c.status.value, c.output) for c in result.compensations] == [
        ("b", "succeeded", "undone b"),
        ("a", "succeeded", "undone a"),
    ]
    assert rt.state.snapshot() == {"x": 0}
    started = rt.events.query("compensation_started")
    assert [(e.action_id, e.data["tool"]) for e in started] == [("b", "revert"), ("a", "revert")]
    assert len(rt.events.query("compensation_succeeded")) == 2
    assert result.model_dump(mode="json")["compensations"][0]["tool"] == "revert"


def test_without_compensate_the_world_is_left_as_car_leaves_it() -> None:
    log: list[str] = []
    rt = saga_runtime(log, compensate=False)
    result = rt.execute(saga())
    assert log == ["do a", "do b", "do c"]
    assert result.compensations == []
    assert "compensations" not in result.model_dump(mode="json")


def test_compensations_go_through_policies_and_a_failing_one_does_not_stop_the_others() -> None:
    log: list[str] = []
    rt = saga_runtime(log, approval=AutoApprove())
    attempts: list[int] = []

    def flaky(name: str) -> None:
        attempts.append(1)
        raise RuntimeError(f"cannot undo {name}")

    rt.register_tool("flaky", flaky)
    rt.add_policy(ir.CelPolicy(name="no_undo_of_c", tools=["revert"], when='params.name == "c"'))
    rt.add_policy(
        ir.CelPolicy(name="ask", tools=["revert"], effect="require_approval", when="true")
    )
    plan = proposal(
        call("a", "act", params={"name": "a"}, compensation=undo("revert", name="a")),
        call(
            "b",
            "act",
            params={"name": "b"},
            compensation=undo("flaky", name="b"),
            depends_on=["a"],
            max_retries=2,
        ),
        call(
            "c",
            "act",
            params={"name": "c"},
            compensation=undo("revert", name="c"),
            depends_on=["b"],
        ),
        call("d", "boom", depends_on=["c"]),
    )
    clock_sleeps: list[float] = []

    async def no_wait(seconds: float) -> None:
        clock_sleeps.append(seconds)

    rt.sleep = no_wait
    result = rt.execute(plan)
    outcome = {c.action_id: (c.status.value, c.error) for c in result.compensations}
    assert outcome["c"] == (
        "rejected",
        "policy violation: no_undo_of_c: denied by policy no_undo_of_c",
    )
    assert outcome["b"] == ("failed", "RuntimeError: cannot undo b")
    assert outcome["a"] == ("succeeded", None)
    assert len(attempts) == 3  # its own retries: max_retries=2
    assert log == ["do a", "do b", "do c", "undo a"]
    assert [e.action_id for e in rt.events.query("approval_recorded")] == ["a.compensation"]


def test_a_compensation_can_name_an_action_of_the_proposal() -> None:
    log: list[str] = []
    rt = saga_runtime(log)
    plan = proposal(
        call(
            "a",
            "act",
            params={"name": "a"},
            compensation={"type": "action_ref", "action_id": "fix"},
        ),
        call("fix", "revert", params={"name": "a"}, depends_on=["a"]),
        call("d", "boom", depends_on=["fix"]),
    )
    result = rt.execute(plan)
    assert [(c.action_id, c.status.value) for c in result.compensations] == [("a", "succeeded")]
    assert log == ["do a", "undo a", "undo a"]


def test_plan_and_execute_compensates_a_failed_candidate_before_the_next() -> None:
    log: list[str] = []
    rt = saga_runtime(log)
    # Longer, so ranked after the saga that fails.
    good = proposal(
        *(
            call(f"g{i}", "act", params={"name": f"good{i}"}, compensation=undo("revert", name="g"))
            for i in range(8)
        ),
        id="good",
    )
    failing = proposal(
        call("a", "act", params={"name": "a"}, compensation=undo("revert", name="a")),
        call("d", "boom", depends_on=["a"], compensation=undo("revert", name="d")),
        id="failing",
    )
    result = rt.plan_and_execute([good, failing])
    assert result.proposal_id == "good"
    assert log[:3] == ["do a", "undo a", "do good0"]


# -- durable sagas -----------------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import os, sys
    from carlang_runtime import ir
    from carlang_runtime.engine import EventLog, Middleware, Runtime, SqliteSink

    db, die_at = sys.argv[1], sys.argv[2]
    rt = Runtime(state={"x": 0}, events=EventLog([SqliteSink(__import__("pathlib").Path(db))]))
    marks = open(db + ".calls", "a")

    def act(name: str) -> str:
        marks.write(f"do {name}\\n"); marks.flush()
        return name

    def revert(name: str) -> str:
        marks.write(f"undo {name}\\n"); marks.flush()
        if die_at == "compensating" and name == "b":
            os._exit(9)  # the process dies while compensating
        return name

    def boom() -> None:
        raise RuntimeError("the last step failed")

    class DieAfterAbort(Middleware):
        def after_action(self, action, result):
            if die_at == "aborting" and action.id == "d":
                os._exit(9)  # the failure is journaled; the rollback never happens

    rt.register_tool("act", act)
    rt.register_tool("revert", revert)
    rt.register_tool("boom", boom)
    rt.use(DieAfterAbort())
    undo = lambda n: {"type": "tool", "tool": "revert", "parameters": {"name": n}}
    rt.execute(ir.ActionProposal(id="p", actions=[
        ir.Action(id="a", type="tool_call", tool="act", parameters={"name": "a"},
                  compensation=undo("a"), expected_effects={"x": 1}),
        ir.Action(id="b", type="tool_call", tool="act", parameters={"name": "b"},
                  compensation=undo("b"), depends_on=["a"]),
        ir.Action(id="d", type="tool_call", tool="boom", depends_on=["b"]),
        ir.Action(id="e", type="tool_call", tool="act", parameters={"name": "e"},
                  depends_on=["d"]),
    ]))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("die_at", ["aborting", "compensating"])
def test_a_resumed_run_finishes_the_abort_it_finds_under_way(tmp_path: Path, die_at: str) -> None:
    db = tmp_path / "run.db"
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(db), die_at], capture_output=True, text=True
    )
    assert child.returncode == 9, child.stderr
    calls = (tmp_path / "run.db.calls").read_text().split()
    rt = Runtime(events=EventLog([SqliteSink(db)]))
    done: list[str] = []
    rt.register_tool("act", lambda name: done.append(f"do {name}"))
    rt.register_tool("revert", lambda name: done.append(f"undo {name}"))
    rt.register_tool("boom", lambda: None)
    run_id = EventStore(db).runs()[0].run_id
    result = rt.resume(run_id)
    rt.close()
    # Nothing more of the plan runs: the abort is finished, not forgotten.
    assert statuses(result) == {"a": "succeeded", "b": "succeeded", "d": "failed", "e": "skipped"}
    assert all(r.rolled_back for r in result.results if r.status.value == "succeeded")
    assert rt.state.snapshot() == {"x": 0}
    if die_at == "aborting":
        assert " ".join(calls) == "do a do b"
        assert done == ["undo b", "undo a"]
    else:
        # b's compensation was in flight when the process died: it runs again (at least once).
        assert " ".join(calls) == "do a do b undo b"
        assert done == ["undo b", "undo a"]
    assert [c.action_id for c in result.compensations] == ["b", "a"]
    store = EventStore(db)
    assert store.runs()[0].status == "aborted"
    store.close()


SAGA_RETRIES = """\
tool book(n: int)
tool cancel(n: int)
tool pay()
proposal trip {
  plain = book(n: 1) { compensate cancel(n: 1) }
  retried = book(n: 2) after plain {
    retry 1
    on_failure abort
    compensate cancel(n: 2)
  }
  fix = cancel(n: 3) after retried { retry 0 }
  named = book(n: 3) after fix { compensate with fix }
  card = pay() after named
}
"""


def test_a_compensation_is_retried_as_documented() -> None:
    """What docs/runtime.md ("Sagas") says of an undo step's attempts: those of a `retry`
    action, `max_retries + 1` (CAR's default 3 retries: 4 attempts) with the runtime's backoff;
    `retry N` on the action undone sets N (also with `on_failure abort` after it, which stops
    the action itself from being retried); `compensate with ACTION` takes that action's. Once
    its attempts are spent, it ends failed, the others still run, and nothing runs it again."""
    from tests.helpers import compile_ok

    program = compile_ok(SAGA_RETRIES)
    rt = Runtime.from_program(program)
    calls: list[int] = []

    def cancel(n: int) -> None:
        calls.append(n)
        if len([c for c in calls if c == n]) > 1 or n != 3:
            raise RuntimeError(f"cannot cancel {n}")

    def pay() -> None:
        raise RuntimeError("card declined")

    rt.register_tool("book", lambda n: n)
    rt.register_tool("cancel", cancel)
    rt.register_tool("pay", pay)
    slept: list[float] = []

    async def no_wait(seconds: float) -> None:
        slept.append(seconds)

    rt.sleep = no_wait
    trip = program.proposal("trip")
    assert trip is not None
    result = rt.execute(trip)
    undone = {c.action_id: c for c in result.compensations}
    assert [c.action_id for c in result.compensations] == ["named", "retried", "plain"]
    assert (undone["plain"].status.value, undone["plain"].attempts) == ("failed", 4)
    assert (undone["retried"].status.value, undone["retried"].attempts) == ("failed", 2)
    # `fix` ran once as a step of the plan, then as `named`'s undo step: its `retry 0`, one try
    assert (undone["named"].status.value, undone["named"].attempts) == ("failed", 1)
    assert calls == [3, 3, 2, 2, 1, 1, 1, 1]
    assert undone["plain"].error == "RuntimeError: cannot cancel 1"
    # 100 ms x 2^k between attempts: after plain's 1st, 2nd, 3rd; after retried's 1st
    assert slept == [0.1, 0.1, 0.2, 0.4]
    retrying = [e.action_id for e in rt.events.query("action_retrying")]
    assert retrying == ["retried.compensation"] + ["plain.compensation"] * 3
    failed = rt.events.query("compensation_failed", action_id="plain")
    assert (
        failed[0].data["attempts"] == 4 and failed[0].data["compensation"] == "plain.compensation"
    )
    assert ir.Action(id="x", type="tool_call", tool="t").max_retries == 3  # CAR's default


def test_the_docs_say_how_often_a_compensation_is_tried() -> None:
    """The language and runtime docs said an undo step has "its own retries", never how many:
    they say it, from CAR's default `max_retries`."""
    from tests.conftest import ROOT

    attempts = ir.Action(id="x", type="tool_call", tool="t").max_retries + 1
    for page in ("language.md", "runtime.md"):
        text = " ".join((ROOT / "docs" / page).read_text().split())
        assert f"**an undo step is tried {attempts} times** by default" in text, page
        assert "`retry 0`: one" in text and "`on_failure abort`" in text, page
