"""Learning what fails: per-parameter failure rates and approval grant rates recovered from a
real runtime's log; Monte Carlo with approvals matches the runtime's observed rates."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from carlang_runtime import ir
from carlang_runtime.engine import EventLog, JsonlSink, Runtime
from carlang_runtime.engine.approval import Approval
from carlang_runtime.experiments import Outcomes, rank_task
from carlang_runtime.experiments.generate import (
    APPROVAL_RATE,
    generate_tasks,
    record_runs,
    true_success,
)
from carlang_runtime.planner import PlannerConfig, ToolFeedback, simulate_monte_carlo

from tests.runtime.engine.support import call, proposal


async def no_wait(_: float) -> None:
    return None


class Gate:
    def __init__(self, rate: float, draw: random.Random) -> None:
        self.rate, self.draw = rate, draw

    def review(self, request: object) -> Approval:
        return Approval(self.draw.random() < self.rate, "test")


@pytest.fixture(scope="module")
def deploy_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 runs calling deploy to prod (fails 40%), to staging (10%), in two regions (same
    rate), prod asking approval (granted 70%)."""
    log = tmp_path_factory.mktemp("learn") / "runs.jsonl"
    draw = random.Random(3)
    failure = {"prod": 0.4, "staging": 0.1}

    def deploy(env: str, region: str) -> str:
        if draw.random() < failure[env]:
            raise RuntimeError("deploy failed")
        return "ok"

    rt = Runtime(events=EventLog([JsonlSink(log)]), approval=Gate(0.7, draw), sleep=no_wait)
    rt.register_tool("deploy", deploy)
    rt.add_policy(
        ir.CelPolicy(
            name="prod_gate",
            effect="require_approval",
            tools=["deploy"],
            when='params.env == "prod"',
        )
    )
    for i in range(400):
        env = "prod" if i % 2 else "staging"
        region = "eu" if i % 4 < 2 else "us"
        plan = proposal(
            call("d", "deploy", params={"env": env, "region": region}, failure_behavior="skip")
        )
        rt.execute(plan)
    rt.close()
    return log


def test_learning_recovers_per_parameter_failure_rates(deploy_log: Path, tmp_path: Path) -> None:
    learned = ToolFeedback.from_log(deploy_log)
    prod = learned.action_success_rate("deploy", {"env": "prod", "region": "eu"})
    staging = learned.action_success_rate("deploy", {"env": "staging", "region": "us"})
    assert prod == pytest.approx(0.6, abs=0.08)
    assert staging == pytest.approx(0.9, abs=0.05)
    # the tool's own rate mixes both; the region makes no difference and is not a pattern
    assert learned.success_rate("deploy") == pytest.approx(0.75, abs=0.06)
    [(pattern, _), *rest] = learned.distinct_patterns()["deploy"]
    assert pattern[1] == "env" and all(p[1] == "env" for p, _ in rest)
    asked, granted = learned.approvals["prod_gate"]
    assert asked == 200 and granted / asked == pytest.approx(0.7, abs=0.08)
    saved = tmp_path / "feedback.json"
    learned.save(saved)
    again = ToolFeedback.load(saved)
    assert again.to_document() == learned.to_document()
    assert again.action_success_rate("deploy", {"env": "prod"}) == prod


def test_a_damaged_feedback_file_is_a_clear_error(tmp_path: Path) -> None:
    from carlang_runtime.planner.feedback import FeedbackFileError

    bad = tmp_path / "feedback.json"
    bad.write_text('{"format": "something else"}')
    with pytest.raises(FeedbackFileError, match="not a carlang feedback file"):
        ToolFeedback.load(bad)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[list, Path]:
    tasks = generate_tasks(6, seed=11, candidates=(3, 4))
    log = tmp_path_factory.mktemp("mc") / "runs.jsonl"
    record_runs(tasks, log, runs=40, seed=11)
    return tasks, log


def test_monte_carlo_matches_the_runtimes_observed_rates(recorded: tuple[list, Path]) -> None:
    tasks, log = recorded
    feedback = ToolFeedback.from_log(log)
    assert feedback.approval_rate("prod_needs_approval") == pytest.approx(APPROVAL_RATE, abs=0.1)
    outcomes = Outcomes.load([log])
    config = PlannerConfig(monte_carlo_trials=4000, seed=1)
    gaps, truth_gaps, blind_gaps = [], [], []
    simulated, observed_rates = [], []
    for task in tasks:
        observed = outcomes.for_task(task.id, [c.id for c in task.candidates])
        by_id = {c.id: c for c in task.candidates}
        for scored in rank_task(task, config, feedback):
            if scored.monte_carlo_success is None:
                continue  # invalid: never simulated
            rate = observed[scored.proposal_id].success_rate
            gaps.append(abs(scored.monte_carlo_success - rate))
            simulated.append(scored.monte_carlo_success)
            observed_rates.append(rate)
            truth_gaps.append(
                abs(scored.monte_carlo_success - true_success(by_id[scored.proposal_id]))
            )
            blind = simulate_monte_carlo(
                by_id[scored.proposal_id], feedback.success_rates(), 4000, 1
            )
            blind_gaps.append(abs(blind.success_rate - rate))
    assert len(gaps) >= 15
    # 40 runs per candidate: an observed rate is within ~0.07 of the truth (one sd)
    assert sum(gaps) / len(gaps) < 0.08
    assert sum(truth_gaps) / len(truth_gaps) < 0.05
    assert max(truth_gaps) < 0.12
    # pooled over every run (~800), the simulated and observed means agree closely
    assert sum(simulated) / len(simulated) == pytest.approx(
        sum(observed_rates) / len(observed_rates), abs=0.03
    )
    # without approvals and parameter patterns, the simulation is further off
    assert sum(blind_gaps) / len(blind_gaps) > sum(gaps) / len(gaps)


def test_monte_carlo_spends_a_duration_budget() -> None:
    feedback = ToolFeedback()
    for _ in range(10):
        feedback.record(
            proposal(call("a", "slow")),
            ir.ProposalResult(
                proposal_id="p",
                results=[ir.ActionResult(action_id="a", status="succeeded", duration_ms=100.0)],
            ),
        )
    chain = [call(f"s{i}", "slow", depends_on=[f"s{i - 1}"] if i else []) for i in range(4)]
    plan = proposal(*chain)
    free = simulate_monte_carlo(plan, feedback, 200, 0)
    tight = simulate_monte_carlo(plan, feedback, 200, 0, budget_ms=250)
    roomy = simulate_monte_carlo(plan, feedback, 200, 0, budget_ms=400)
    assert (free.success_rate, roomy.success_rate, tight.success_rate) == (1.0, 1.0, 0.0)
    assert tight.abort_causes == {"s3": 200}  # starts at 300 ms, after the 250 ms budget
