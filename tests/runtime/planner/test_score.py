"""The planner's score, feature by feature, and how the features combine."""

from __future__ import annotations

from typing import Any

import pytest
from carlang_runtime import ir
from carlang_runtime.planner import (
    Governance,
    PlannerConfig,
    SettingError,
    ToolFeedback,
    ToolStats,
    plan_config,
    rank,
    token_estimate,
)
from carlang_runtime.policy import PolicySet
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.runtime.engine.support import call, proposal, write

CAR = PlannerConfig.car()


def only(*actions: ir.Action, **fields: Any) -> ir.ActionProposal:
    return proposal(*actions, timestamp="2026-01-01T00:00:00Z", **fields)


# -- CAR's part ---------------------------------------------------------------------------


def test_cars_formula_by_hand() -> None:
    [scored] = rank([only(call("a", "t"))], ["t"], config=CAR)
    tokens = token_estimate(only(call("a", "t")))
    # actions 1/(2*10), tool calls 1/(2*5), parallelism 1 - 1/1, tokens / 4000
    structure = 0.4 * (1 - 1 / 20) + 0.4 * (1 - 1 / 10) + 0.2 * 0.0
    efficiency = 0.75 * structure + 0.25 * (1 - tokens / 4000)
    assert scored.cost_efficiency == pytest.approx(efficiency)
    assert scored.validity == 1.0
    assert scored.score == pytest.approx(0.8 * 1.0 + 0.2 * efficiency)
    assert scored.quality_per_token == pytest.approx(scored.score / tokens)
    assert (scored.action_count, scored.tool_call_count, scored.parallelism_levels) == (1, 1, 1)


def test_warnings_and_conflicts_cost_validity() -> None:
    conflicted = only(write("w1", "k", 1), write("w2", "k", 2))
    [scored] = rank([conflicted], config=CAR)
    # one write conflict: a warning (0.1) and a conflict (0.15)
    assert scored.validity == pytest.approx(0.75)
    assert scored.has_write_conflicts and scored.state_keys_written == 1


def test_an_invalid_candidate_scores_zero() -> None:
    [scored] = rank([only(call("a", "missing"))], ["t"], config=CAR)
    assert not scored.valid and scored.score == 0.0 and scored.error_count == 1
    assert scored.validity == 0.0 and scored.base_score == 0.0


def test_cost_weight_moves_the_balance() -> None:
    cheap = only(call("a", "t"), id="cheap")
    long = only(*(call(f"a{i}", "t", params={"i": i}) for i in range(12)), id="long")
    for weight in (0.0, 1.0):
        ranked = rank([long, cheap], ["t"], config=PlannerConfig.car(cost_weight=weight))
        if weight == 0.0:  # validity only: both 1.0, tie goes to fewer actions
            assert ranked[0].score == ranked[1].score
        assert ranked[0].proposal_id == "cheap"


def test_ties_go_to_fewer_actions_then_to_the_earlier_candidate() -> None:
    same = [only(call("a", "t"), id=f"p{i}") for i in range(4)]
    assert [s.index for s in rank(same, ["t"], config=CAR)] == [0, 1, 2, 3]
    invalid = [
        only(call("a", "x"), call("b", "x"), id="two"),
        only(call("a", "x"), id="one"),
    ]
    assert [s.proposal_id for s in rank(invalid, ["t"], config=CAR)] == ["one", "two"]


def test_token_estimate_leaves_out_carlangs_own_keys() -> None:
    plain = only(call("a", "t"))
    located = plain.model_copy(
        update={
            "actions": [
                plain.actions[0].model_copy(
                    update={"loc": ir.SourceLoc(file="x.car", line=1, column=1)}
                )
            ],
            "budget": "b",
        }
    )
    assert token_estimate(located) == token_estimate(plain)


# -- feedback -----------------------------------------------------------------------------


def test_feedback_scales_the_score_by_tool_confidence() -> None:
    candidate = only(call("a", "good"), call("b", "unknown"))
    feedback = ToolFeedback(tool_success_rates={"good": 0.9})
    config = PlannerConfig.car(feedback_weight=0.5, monte_carlo_trials=0)
    [plain] = rank([candidate], config=config)
    [scored] = rank([candidate], config=config, feedback=feedback)
    confidence = (0.9 + 0.5) / 2  # an unknown tool counts as 0.5
    assert scored.historical_confidence == pytest.approx(confidence)
    assert scored.score == pytest.approx(plain.score * (1 - 0.5 + 0.5 * confidence))
    assert scored.factors["feedback"] == pytest.approx(1 - 0.5 + 0.5 * confidence)


def test_history_reorders_candidates() -> None:
    flaky = only(call("a", "flaky"), id="flaky")
    steady = only(
        call("a", "steady"), call("b", "steady", params={"n": 1}, depends_on=["a"]), id="steady"
    )
    config = PlannerConfig.car(monte_carlo_trials=0)
    assert rank([flaky, steady], config=config)[0].proposal_id == "flaky"  # cheaper
    history = ToolFeedback(stats={"flaky": ToolStats(10, 2), "steady": ToolStats(10, 10)})
    assert rank([flaky, steady], config=config, feedback=history)[0].proposal_id == "steady"


def test_durations_enter_cost_efficiency_against_the_target() -> None:
    slow = ToolFeedback(stats={"t": ToolStats(1, 1, 8000.0, 1)})
    fast = ToolFeedback(stats={"t": ToolStats(1, 1, 100.0, 1)})
    candidate = only(call("a", "t"), call("b", "t", params={"x": 1}))
    config = PlannerConfig.car(monte_carlo_trials=0, feedback_weight=0.0)
    [on_slow] = rank([candidate], config=config, feedback=slow)
    [on_fast] = rank([candidate], config=config, feedback=fast)
    # the two calls run side by side: one level, the slowest call's time
    assert on_slow.estimated_duration_ms == 8000.0 and on_fast.estimated_duration_ms == 100.0
    assert on_fast.cost_efficiency > on_slow.cost_efficiency


# -- policy compliance ---------------------------------------------------------------------


def https_only() -> ir.Policy:
    return ir.CelPolicy(
        name="https_only",
        tools=["fetch"],
        when='!params.url.startsWith("https://")',
        message="only https",
    )


def prod_approval() -> ir.Policy:
    return ir.CelPolicy(
        name="prod", effect="require_approval", tools=["deploy"], when='params.env == "prod"'
    )


def test_a_certain_deny_makes_the_candidate_invalid() -> None:
    denied = only(call("get", "fetch", params={"url": "http://x"}))
    [scored] = rank([denied], policies=[https_only()])
    assert not scored.valid and scored.denials == 1 and scored.score == 0.0
    [finding] = scored.findings_for("policy")
    assert finding["action_id"] == "get"
    assert finding["message"] == "will be denied by https_only: only https"


def test_an_approval_costs_its_penalty() -> None:
    asks = only(call("d", "deploy", params={"env": "prod"}), id="asks")
    quiet = only(call("d", "deploy", params={"env": "staging"}), id="quiet")
    config = PlannerConfig(approval_penalty=0.25)
    ranked = rank([asks, quiet], config=config, policies=[prod_approval()])
    assert [s.proposal_id for s in ranked] == ["quiet", "asks"]
    loser = ranked[1]
    assert loser.valid and loser.approvals == 1
    assert loser.policy_compliance == pytest.approx(1 / 1.25)
    assert loser.factors["policy"] == pytest.approx(1 / 1.25)
    factors = 1.0
    for value in loser.factors.values():
        factors *= value
    assert loser.score == pytest.approx(loser.base_score * factors)


def test_policy_weight_zero_ignores_approvals_but_not_denials() -> None:
    config = PlannerConfig(policy_weight=0.0)
    [asks] = rank(
        [only(call("d", "deploy", params={"env": "prod"}))],
        config=config,
        policies=[prod_approval()],
    )
    assert asks.factors["policy"] == 1.0 and asks.approvals == 1
    [denied] = rank(
        [only(call("g", "fetch", params={"url": "ftp://x"}))],
        config=config,
        policies=[https_only()],
    )
    assert not denied.valid


def test_state_reading_policies_are_predicted_from_the_plans_effects() -> None:
    gate = ir.CelPolicy(
        name="tested_first", tools=["deploy"], when="state.tested != true", message="test first"
    )
    untested = only(call("d", "deploy"), id="untested")
    tested = only(
        call("t", "test", expected_effects={"tested": True}),
        call("d", "deploy", state_dependencies=["tested"]),
        id="tested",
    )
    ranked = rank([untested, tested], policies=[gate])
    by_id = {s.proposal_id: s for s in ranked}
    # the deny reads state: predicted, not certain, so a penalty and not invalidity
    assert by_id["untested"].valid and by_id["untested"].predicted_denials == 1
    assert by_id["tested"].predicted_denials == 0
    assert ranked[0].proposal_id == "tested"


def test_policies_on_scope_history_or_time_are_not_judged_beforehand() -> None:
    tenant = ir.CelPolicy(name="tenant", when='scope.tenant != "acme"')
    late = ir.CelPolicy(name="late", when="now.getHours() > 25")
    [scored] = rank([only(call("a", "t"))], policies=[tenant, late])
    assert scored.valid and scored.denials == 0 and scored.predicted_denials == 0


def test_policies_given_as_a_policy_set() -> None:
    policies = PolicySet([https_only()])
    [scored] = rank([only(call("g", "fetch", params={"url": "http://x"}))], policies=policies)
    assert not scored.valid


# -- budget headroom, reversibility, governance --------------------------------------------


def test_budget_headroom_is_the_least_room_left() -> None:
    budget = ir.Budget(name="b", max_actions=10, max_tool_calls=4)
    candidate = only(call("a", "t"), call("b", "t", params={"n": 1}), write("w", "k", 1))
    config = PlannerConfig(headroom_weight=0.5)
    [scored] = rank([candidate], config=config, governance=Governance(budget=budget))
    assert scored.budget_headroom == pytest.approx(1 - 2 / 4)  # tool calls: 2 of 4
    assert scored.factors["headroom"] == pytest.approx(1 - 0.5 + 0.5 * 0.5)
    [finding] = scored.findings_for("headroom")
    assert finding["message"] == "uses 2 of 4 tool calls of budget b"


def test_over_budget_is_invalid_and_a_named_budget_must_exist() -> None:
    budget = ir.Budget(name="b", max_tool_calls=1)
    big = only(call("a", "t"), call("b", "t", params={"n": 1}), budget="b")
    [scored] = rank([big], governance=Governance.of(budgets=[budget]))
    assert not scored.valid
    [missing] = rank([only(call("a", "t"), budget="nope")])
    assert not missing.valid
    assert "budget 'nope', which is not given" in missing.findings_for("validity")[0]["message"]


def test_capabilities_are_checked() -> None:
    capability = ir.Capability(name="c", allowed_tools=["t"])
    [scored] = rank([only(call("a", "shell"))], governance=Governance(capability=capability))
    assert not scored.valid


def test_reversibility_counts_irreversible_calls_without_compensation() -> None:
    candidate = only(
        call("a", "t"),
        call("b", "t", params={"n": 1}, reversibility="reversible"),
        call("c", "t", params={"n": 2}, compensation={"type": "tool", "tool": "undo"}),
        call("d", "t", params={"n": 3}, reversibility="compensable"),
        write("w", "k", 1),
    )
    config = PlannerConfig(irreversible_penalty=0.5)
    [scored] = rank([candidate], config=config)
    assert scored.irreversible_actions == 1
    assert scored.reversibility == pytest.approx(1 / 1.5)
    assert [f["action_id"] for f in scored.findings_for("reversibility")] == ["a"]
    [off] = rank([candidate], config=config.with_settings({"reversibility_weight": 0}))
    assert off.factors["reversibility"] == 1.0


def test_many_risky_actions_keep_the_findings_short_and_the_score_positive() -> None:
    candidate = only(*(call(f"a{i}", "t", params={"i": i}) for i in range(500)))
    [scored] = rank([candidate])
    findings = scored.findings_for("reversibility")
    assert len(findings) == 11 and findings[-1]["message"] == "... and 490 more like these"
    assert scored.score > 0


# -- Monte Carlo in the score ----------------------------------------------------------------


def test_monte_carlo_runs_with_feedback_and_is_reproducible() -> None:
    candidate = only(call("a", "flaky"), call("b", "flaky", params={"n": 1}))
    feedback = ToolFeedback(tool_success_rates={"flaky": 0.5})
    config = PlannerConfig.car(monte_carlo_weight=1.0, feedback_weight=0.0, seed=7)
    [first] = rank([candidate], config=config, feedback=feedback)
    [second] = rank([candidate], config=config, feedback=feedback)
    assert first.monte_carlo_success == second.monte_carlo_success
    assert first.monte_carlo_success == pytest.approx(0.25, abs=0.05)
    assert first.factors["monte_carlo"] == first.monte_carlo_success
    [without] = rank([candidate], config=config)
    assert without.monte_carlo_success is None and "monte_carlo" not in without.factors


# -- configuration ---------------------------------------------------------------------------


def test_settings_are_checked_by_name_and_range() -> None:
    with pytest.raises(SettingError, match="did you mean 'cost_weight'"):
        PlannerConfig().with_settings({"cost_wieght": 0.3})
    with pytest.raises(SettingError, match="feedback_weight"):
        PlannerConfig().with_settings({"feedback_weight": 2})
    assert PlannerConfig().with_settings({"monte_carlo_trials": "50"}).monte_carlo_trials == 50
    for value in ("nan", "inf", "-inf"):  # no range check stops a NaN: every score would be one
        with pytest.raises(SettingError, match="input should be a finite number"):
            PlannerConfig().with_settings({"cost_weight": value})


def test_a_plans_target_and_settings_make_its_config() -> None:
    plan = ir.Plan(
        name="p",
        candidates=["a"],
        cost_target=ir.CostTarget(cost_weight=0.7, target_actions=3),
        settings={"approval_penalty": 0.3},
    )
    config = plan_config(plan)
    assert (config.cost_weight, config.target_actions, config.approval_penalty) == (0.7, 3, 0.3)
    assert config.target_tool_calls == 5  # CostTarget's default
    # what the plan does not say comes from the config it is ranked under, not from the
    # target's defaults: `target actions 3` alone must not set cost_weight back to 0.2
    base = PlannerConfig().with_settings({"cost_weight": 0.9, "target_tool_calls": 2})
    only_actions = ir.Plan(name="p", candidates=["a"], cost_target=ir.CostTarget(target_actions=3))
    config = plan_config(only_actions, base)
    assert (config.cost_weight, config.target_actions, config.target_tool_calls) == (0.9, 3, 2)


# -- invariants ------------------------------------------------------------------------------


@st.composite
def groups(draw: st.DrawFn) -> tuple[list[ir.ActionProposal], PlannerConfig, ToolFeedback]:
    tools = ["t", "u", "gone"]
    candidates = []
    for c in range(draw(st.integers(1, 5))):
        actions = [
            call(
                f"a{i}",
                draw(st.sampled_from(tools)),
                params={"i": draw(st.integers(0, 3))},
                failure_behavior=draw(st.sampled_from(["abort", "skip", "retry"])),
            )
            for i in range(draw(st.integers(0, 6)))
        ]
        candidates.append(only(*actions, id=f"c{c}"))
    weights = {
        name: draw(st.sampled_from([0.0, 0.5, 1.0]))
        for name in (
            "cost_weight",
            "feedback_weight",
            "headroom_weight",
            "reversibility_weight",
            "monte_carlo_weight",
        )
    }
    config = PlannerConfig(monte_carlo_trials=20, **weights)
    rates = {t: draw(st.sampled_from([0.0, 0.3, 1.0])) for t in tools}
    return candidates, config, ToolFeedback(tool_success_rates=rates)


@settings(max_examples=150, deadline=None)
@given(groups())
def test_invalid_never_outranks_valid_and_scores_stay_in_range(
    case: tuple[list[ir.ActionProposal], PlannerConfig, ToolFeedback],
) -> None:
    candidates, config, feedback = case
    ranked = rank(candidates, ["t", "u"], config=config, feedback=feedback)
    validity = [s.valid for s in ranked]
    assert validity == sorted(validity, reverse=True)
    assert sorted(s.index for s in ranked) == list(range(len(candidates)))
    for scored in ranked:
        assert 0.0 <= scored.score <= 1.0
        assert scored.valid or scored.score == 0.0
    scores = [s.score for s in ranked if s.valid]
    assert scores == sorted(scores, reverse=True)
