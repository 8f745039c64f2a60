"""`simulate_monte_carlo`: tools fail at their rates, failures cascade as at run time."""

from __future__ import annotations

import pytest
from carlang_runtime import ir
from carlang_runtime.planner import ToolFeedback, simulate_monte_carlo

from tests.runtime.engine.support import call, proposal, write


def test_certain_tools_always_get_through() -> None:
    plan = proposal(call("a", "t"), call("b", "t", depends_on=["a"]), write("w", "k", 1))
    result = simulate_monte_carlo(plan, {"t": 1.0}, trials=50, seed=1)
    assert result.success_rate == result.full_success_rate == result.mean_completion == 1.0
    assert result.action_success == {"a": 1.0, "b": 1.0, "w": 1.0}
    assert result.abort_causes == {}


def test_a_failing_abort_action_aborts_and_rolls_back_everything() -> None:
    plan = proposal(call("a", "ok"), call("b", "broken", depends_on=["a"]))
    result = simulate_monte_carlo(plan, {"ok": 1.0, "broken": 0.0}, trials=20, seed=1)
    assert result.success_rate == 0.0 and result.mean_completion == 0.0
    assert result.action_success == {"a": 0.0, "b": 0.0}  # a's success was rolled back
    assert result.abort_causes == {"b": 20}


def test_a_skip_failure_is_tolerated_but_cascades_to_what_needs_its_effect() -> None:
    optional = call("opt", "broken", failure_behavior="skip", expected_effects={"k": 1})
    tolerant = proposal(optional, call("after", "ok", depends_on=["opt"]))
    result = simulate_monte_carlo(tolerant, {"ok": 1.0, "broken": 0.0}, trials=10, seed=1)
    assert result.success_rate == 1.0 and result.full_success_rate == 0.0
    # what runs `after` a step that did not succeed is passed over, as the runtime skips it
    assert result.action_success == {"opt": 0.0, "after": 0.0}
    # a dependent that needs the key the failed step would have written is rejected: it aborts
    needy = proposal(optional, call("use", "ok", state_dependencies=["k"]))
    result = simulate_monte_carlo(needy, {"ok": 1.0, "broken": 0.0}, trials=10, seed=1)
    assert result.success_rate == 0.0 and result.abort_causes == {"use": 10}


def test_retries_give_more_attempts() -> None:
    once = proposal(call("a", "coin"))
    retried = proposal(call("a", "coin", failure_behavior="retry", max_retries=2))
    rates = {"coin": 0.5}
    assert simulate_monte_carlo(once, rates, 4000, seed=3).success_rate == pytest.approx(
        0.5, abs=0.03
    )
    # three attempts: 1 - 0.5^3
    assert simulate_monte_carlo(retried, rates, 4000, seed=3).success_rate == pytest.approx(
        0.875, abs=0.03
    )


def test_assertions_and_preconditions_are_decided_by_the_simulated_state() -> None:
    plan = proposal(
        call("set", "maybe", failure_behavior="skip", expected_effects={"ready": True}),
        ir.Action(
            id="check",
            type="assertion",
            parameters={"key": "ready", "expected": True},
        ),
    )
    result = simulate_monte_carlo(plan, {"maybe": 0.3}, trials=4000, seed=5)
    assert result.success_rate == pytest.approx(0.3, abs=0.03)
    assert result.abort_causes == {"check": 4000 - round(result.success_rate * 4000)}
    # `after set`: the runtime skips the check when set did not succeed; so does the simulation
    waiting = plan.model_copy(
        update={
            "actions": [plan.actions[0], plan.actions[1].model_copy(update={"depends_on": ["set"]})]
        }
    )
    assert simulate_monte_carlo(waiting, {"maybe": 0.3}, trials=400, seed=5).success_rate == 1.0


def test_the_same_seed_gives_the_same_result_and_unknown_tools_use_the_default() -> None:
    plan = proposal(*(call(f"a{i}", "unknown", params={"i": i}) for i in range(5)))
    first = simulate_monte_carlo(plan, {}, trials=300, seed=42)
    assert first == simulate_monte_carlo(plan, {}, trials=300, seed=42)
    assert first.success_rate == pytest.approx(0.5**5, abs=0.04)
    sure = simulate_monte_carlo(plan, {}, trials=10, seed=42, unknown_rate=1.0)
    assert sure.success_rate == 1.0


def test_rates_can_come_from_feedback_and_trials_must_be_positive() -> None:
    plan = proposal(call("a", "t"))
    feedback = ToolFeedback(tool_success_rates={"t": 1.0})
    assert simulate_monte_carlo(plan, feedback, trials=5).success_rate == 1.0
    with pytest.raises(ValueError):
        simulate_monte_carlo(plan, feedback, trials=0)


def test_an_abort_in_a_level_run_in_order_skips_the_rest_of_it() -> None:
    # b and c share a level; b aborts on failure, so the level runs in order and c never runs
    plan = proposal(call("b", "broken"), call("c", "ok", failure_behavior="skip"))
    result = simulate_monte_carlo(plan, {"broken": 0.0, "ok": 1.0}, trials=5, seed=1)
    assert result.abort_causes == {"b": 5} and result.action_success == {"b": 0.0, "c": 0.0}


def test_a_large_estimate_is_the_same_however_its_batches_are_run() -> None:
    from carlang_runtime.planner.montecarlo import BATCH_TRIALS, BatchCounts, MonteCarloJob

    plan = proposal(call("a", "maybe"), call("b", "maybe", depends_on=["a"]), write("w", "k", 1))
    feedback = ToolFeedback(tool_success_rates={"maybe": 0.7})
    trials = 2 * BATCH_TRIALS + 123
    seen: list[int] = []

    def elsewhere(job: MonteCarloJob) -> list[BatchCounts]:
        # Shipped as JSON, run last batch first, as workers in another process might.
        shipped = MonteCarloJob.from_document(job.to_document())
        sizes = shipped.batch_sizes()
        seen.extend(sizes)
        done = {i: shipped.run_batch(i) for i in reversed(range(len(sizes)))}
        return [BatchCounts.from_document(done[i].to_document()) for i in range(len(sizes))]

    here = simulate_monte_carlo(plan, feedback, trials, seed=9)
    assert simulate_monte_carlo(plan, feedback, trials, seed=9, batches=elsewhere) == here
    assert seen == [BATCH_TRIALS, BATCH_TRIALS, 123]
    assert here.success_rate == pytest.approx(0.49, abs=0.02)
    # The first batch draws from Random(seed), as every estimate of one batch always has.
    small = simulate_monte_carlo(plan, feedback, BATCH_TRIALS, seed=9)
    assert small.trials == BATCH_TRIALS and small != here
