"""Feedback from real runs: event logs (JSONL, SQLite) and results, and the runtime's
`plan_and_execute` ranking candidates with the planner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from carlang_runtime import ir
from carlang_runtime.engine import EventLog, EventLogError, JsonlSink, Runtime, SqliteSink
from carlang_runtime.planner import PlannerConfig, ToolFeedback

from tests.runtime.engine.support import call, proposal


async def no_wait(_: float) -> None:
    """A sleep that does not wait: retries back off instantly in tests."""


def flaky_runtime(events: EventLog) -> Runtime:
    """`steady` always works; `flaky` fails its first two calls, then works."""
    rt = Runtime(events=events, sleep=no_wait)
    calls = {"flaky": 0}

    def flaky() -> str:
        calls["flaky"] += 1
        if calls["flaky"] <= 2:
            raise RuntimeError("not yet")
        return "ok"

    rt.register_tool("steady", lambda: "ok")
    rt.register_tool("flaky", flaky)
    return rt


def run_flaky(path: Path) -> None:
    sink = SqliteSink(path) if path.suffix == ".db" else JsonlSink(path)
    rt = flaky_runtime(EventLog([sink]))
    plan = proposal(
        call("s1", "steady"),
        call("s2", "steady", params={"n": 2}),
        call("f", "flaky", failure_behavior="retry", max_retries=3),
    )
    result = rt.execute(plan)
    assert result.all_succeeded()
    rt.close()


def test_an_attempt_interrupted_from_outside_is_not_a_failure_of_its_tool() -> None:
    """Ctrl-C (or a killed worker) mid-call ends the attempt in an `action_failed` marked
    `interrupted`; the resumed run's success is the call's outcome. The tool did not fail."""
    document = {"actions": [{"id": "d", "type": "tool_call", "tool": "deploy", "parameters": {}}]}
    events = [
        {"kind": "proposal_received", "trace_id": "r1", "proposal_id": "p", "data": {"proposal": document}},
        {"kind": "action_executing", "trace_id": "r1", "proposal_id": "p", "action_id": "d", "data": {}},
        {"kind": "action_failed", "trace_id": "r1", "proposal_id": "p", "action_id": "d",
         "data": {"error": "interrupted: KeyboardInterrupt", "interrupted": True}},
        {"kind": "action_executing", "trace_id": "r1", "proposal_id": "p", "action_id": "d", "data": {}},
        {"kind": "action_succeeded", "trace_id": "r1", "proposal_id": "p", "action_id": "d",
         "data": {"duration_ms": 5}},
    ]  # fmt: skip
    stats = ToolFeedback.from_events(events).stats["deploy"]
    assert (stats.attempts, stats.successes) == (1, 1)


@pytest.mark.parametrize("name", ["events.jsonl", "events.db"])
def test_success_rates_and_durations_come_from_the_log(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    run_flaky(path)
    feedback = ToolFeedback.from_log(path)
    steady, flaky = feedback.stats["steady"], feedback.stats["flaky"]
    assert (steady.attempts, steady.successes) == (2, 2)
    # two failed attempts (retried), then one that worked
    assert (flaky.attempts, flaky.successes) == (3, 1)
    assert feedback.success_rate("flaky") == pytest.approx(1 / 3)
    assert feedback.success_rate("never_seen") is None
    assert feedback.has_durations and (feedback.mean_duration_ms("steady") or 0) >= 0


def test_a_log_that_is_not_json_says_where(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"kind": "run_started"}\n{oops\n')
    with pytest.raises(EventLogError, match=r"bad.jsonl:2:2: malformed JSON: "):
        ToolFeedback.from_log(path)
    with pytest.raises(EventLogError, match="no such file"):
        ToolFeedback.from_log(tmp_path / "missing.db")


def test_results_teach_feedback_too() -> None:
    rt = Runtime()
    rt.register_tool("ok", lambda: 1)
    rt.register_tool("bad", lambda: 1 / 0)
    plan = proposal(call("a", "ok"), call("b", "bad", failure_behavior="skip"))
    feedback = ToolFeedback()
    feedback.record(plan, rt.execute(plan))
    # An optional step whose call failed was a failed call: the tool was called and broke.
    assert feedback.success_rates() == {"ok": 1.0, "bad": 0.0}
    plan = proposal(call("b", "bad"))
    feedback.record(plan, rt.execute(plan))
    assert feedback.success_rate("bad") == 0.0


def test_plan_and_execute_runs_the_best_ranked_candidate() -> None:
    rt = Runtime()
    for name in ("deploy", "check"):
        rt.register_tool(name, lambda **_: "ok", schema={"name": name})
    rt.add_policy(
        ir.CelPolicy(
            name="prod", effect="require_approval", tools=["deploy"], when='params.env == "prod"'
        )
    )
    # first in the list, but it needs an approval the other does not: it ranks second
    asks = proposal(call("d", "deploy", params={"env": "prod"}), id="asks")
    quiet = proposal(call("c", "check"), call("d", "deploy", params={"env": "stage"}), id="quiet")
    ranked = rt.rank_candidates([asks, quiet])
    assert [s.proposal_id for s in ranked] == ["quiet", "asks"]
    result = rt.plan_and_execute([asks, quiet])
    assert result.proposal_id == "quiet" and result.all_succeeded()


def test_plan_and_execute_learns_from_each_run() -> None:
    rt = Runtime(sleep=no_wait)
    rt.register_tool("broken", lambda: 1 / 0)
    rt.register_tool("fine", lambda: "ok")
    broken = proposal(call("a", "broken"), id="broken")
    fine = proposal(call("a", "fine"), call("b", "fine", params={"n": 1}), id="fine")
    feedback = ToolFeedback()
    config = PlannerConfig(monte_carlo_trials=50)
    first = rt.plan_and_execute([broken, fine], config=config, feedback=feedback)
    assert first.proposal_id == "fine"  # broken ran first (cheaper), failed, fell back
    assert feedback.success_rate("broken") == 0.0 and feedback.success_rate("fine") == 1.0
    ranked = rt.rank_candidates([broken, fine], config=config, feedback=feedback)
    assert ranked[0].proposal_id == "fine"  # history now ranks it first


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            {"tools": {"fetch": [1]}},
            "tools.fetch: expected [attempts, successes, duration_ms, timed], got [1]",
        ),
        (
            {"patterns": [["fetch", "url"]]},
            "patterns[0]: expected [tool, parameter, value, attempts",
        ),
        ({"approvals": {"prod": 3}}, "approvals.prod: expected [asked, granted]"),
        ({"tools": []}, "tools: 'list' object has no attribute 'items'"),
        (
            {"tool_success_rates": {"fetch": "x"}},
            'tool_success_rates: a success rate is a number from 0 to 1, not "x"',
        ),
        (
            {"tool_success_rates": {"fetch": 1.5}},
            "tool_success_rates: a success rate is a number from 0 to 1, not 1.5",
        ),
        # (50 successes of 10 attempts scored a plan 1.68: every score is in [0, 1])
        ({"tools": {"deploy": [10, 50, 1.0, 50]}}, "tools.deploy: 50 successes of 10 attempts"),
        ({"tools": {"deploy": [10, 5, 1.0, 11]}}, "tools.deploy: 11 timed of 10 attempts"),
        (
            {"tools": {"deploy": [-1, 0, 0, 0]}},
            "tools.deploy: attempts must be a whole number, 0 or more, not -1",
        ),
        (
            {"tools": {"deploy": [10.5, 0, 0, 0]}},
            "tools.deploy: attempts must be a whole number, 0 or more, not 10.5",
        ),
        (
            {"tools": {"deploy": [True, 0, 0, 0]}},
            "tools.deploy: attempts must be a whole number, 0 or more, not true",
        ),
        (
            {"tools": {"deploy": [1, 1, "5", 1]}},
            'tools.deploy: a duration must be a finite number of ms, 0 or more, not "5"',
        ),
        ({"patterns": [["t", "p", "1", 2, 3, 0, 0]]}, "patterns[0]: 3 successes of 2 attempts"),
        ({"approvals": {"prod": [2, 3]}}, "approvals.prod: 3 granted of 2 asked"),
    ],
)
def test_a_damaged_feedback_file_says_which_entry(
    tmp_path: Path, content: dict[str, object], message: str
) -> None:
    from carlang_runtime.planner.feedback import FEEDBACK_FORMAT, FeedbackFileError

    path = tmp_path / "fb.json"
    path.write_text(json.dumps({"format": FEEDBACK_FORMAT, **content}))
    with pytest.raises(FeedbackFileError) as caught:
        ToolFeedback.load(path)
    assert f"{path}: damaged carlang feedback file: {message}" in str(caught.value)


def test_an_absurd_duration_is_no_calls_time_and_files_stay_standard_json(
    tmp_path: Path,
) -> None:
    """Two calls logged at `duration_ms` 1e308 summed to infinity: `learn` printed `inf ms`
    and wrote `Infinity`, which is no standard JSON. Such a duration (or a negative one, or
    NaN) is now left out, the call still counted; a file holding one is refused."""
    document = {"actions": [{"id": "d", "type": "tool_call", "tool": "deploy", "parameters": {}}]}
    events: list[dict[str, object]] = []
    for run, took in enumerate((1e308, 1e308, -5.0, float("nan"), 40.0)):
        trace = {"trace_id": f"r{run}", "proposal_id": "p"}
        events.append({"kind": "proposal_received", **trace, "data": {"proposal": document}})
        done = {"kind": "action_succeeded", **trace, "action_id": "d"}
        events.append({**done, "data": {"duration_ms": took}})
    learned = ToolFeedback.from_events(events)
    assert learned.stats["deploy"].attempts == 5
    assert learned.mean_duration_ms("deploy") == 40.0
    saved = tmp_path / "feedback.json"
    learned.save(saved)
    json.loads(saved.read_text(), parse_constant=lambda name: pytest.fail(name))
    saved.write_text(saved.read_text().replace("40.0", "Infinity"))
    with pytest.raises(ValueError, match="tools.deploy: a duration must be a finite number"):
        ToolFeedback.load(saved)
