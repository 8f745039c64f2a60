"""Explanations of a ranking, and scoring experiments over settings."""

from __future__ import annotations

import pytest
from carlang_runtime import ir
from carlang_runtime.planner import PlannerConfig, SettingError, rank
from carlang_runtime.planner import explain as explaining
from carlang_runtime.planner.explain import (
    Comparison,
    Difference,
    compare,
    explain_ranking,
    invalid_notes,
    render_explanation,
)
from carlang_runtime.planner.sweep import parse_axis, sweep, winner_changes

from tests.runtime.engine.support import call, proposal

APPROVAL = ir.CelPolicy(
    name="prod", effect="require_approval", tools=["deploy"], when='params.env == "prod"'
)


def candidates() -> list[ir.ActionProposal]:
    return [
        proposal(call("d", "deploy", params={"env": "prod"}), id="direct"),
        proposal(
            call("t", "test"),
            call("d", "deploy", params={"env": "stage"}, depends_on=["t"]),
            id="tested",
        ),
        proposal(call("x", "nope"), id="broken"),
    ]


def test_each_loser_says_which_feature_action_and_policy_cost_it() -> None:
    config = PlannerConfig(approval_penalty=1.0)
    ranked = rank(candidates(), ["deploy", "test"], config=config, policies=[APPROVAL])
    assert [s.proposal_id for s in ranked] == ["tested", "direct", "broken"]
    direct, broken = explain_ranking(ranked, config)
    assert direct.lost_on[0].feature == "policy"
    [finding] = direct.lost_on[0].findings
    assert finding["action_id"] == "d" and "will need approval by prod" in finding["message"]
    assert "cost" in [d.feature for d in direct.better_on]
    assert broken.invalid_because and "nope" in broken.invalid_because[0]["message"]
    text = render_explanation(ranked, config, "release")
    assert text.splitlines()[0] == f"release: tested wins with score {ranked[0].score:.4f}"
    assert "direct lost" in text and "policy compliance x0.500 vs x1.000" in text
    assert "broken is invalid:" in text


def test_an_equal_candidate_lost_on_nothing_but_the_tie() -> None:
    same = [proposal(call("a", "t"), id="p1"), proposal(call("a", "t"), id="p2")]
    config = PlannerConfig()
    ranked = rank(same, ["t"], config=config)
    comparison = compare(ranked[0], ranked[1], config)
    assert comparison.lost_on == [] and comparison.better_on == []
    assert "ties go to fewer actions" in render_explanation(ranked, config)


def test_a_lone_or_all_invalid_ranking_is_explained() -> None:
    config = PlannerConfig()
    [only] = rank([proposal(call("a", "t"))], ["t"], config=config)
    assert "(the only candidate)" in render_explanation([only], config)
    ranked = rank([proposal(call("a", "x"))], ["t"], config=config)
    assert render_explanation(ranked, config).startswith("no candidate is valid")


def test_without_explain_each_invalid_candidate_says_its_first_reason() -> None:
    """`rank` without --explain showed an invalid candidate as `no` and nothing more: a typo
    in one of its tools went unseen (a trial)."""
    config = PlannerConfig(approval_penalty=1.0)
    ranked = rank(candidates(), ["deploy", "test"], config=config, policies=[APPROVAL])
    assert invalid_notes(ranked) == ["broken is invalid: x error: tool 'nope' is not registered"]
    twice = proposal(call("x", "nope"), call("y", "nada"), id="twice")
    assert invalid_notes(rank([twice], ["deploy"])) == [
        "twice is invalid: x error: tool 'nope' is not registered (and 1 more)"
    ]


def test_an_edge_the_shown_figures_cannot_show_is_not_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`+ better on cost efficiency` was said of 0.798 against 0.798 (a trial)."""
    config = PlannerConfig()
    ranked = rank(candidates()[:2], ["deploy", "test"], config=config)

    def compared(differences: list[Difference]) -> object:
        return lambda *_: [Comparison(ranked[1], [], differences, [])]

    unseen = Difference("cost", winner=0.79812, other=0.79835, impact=-1e-4)
    monkeypatch.setattr(explaining, "explain_ranking", compared([unseen]))
    assert "better on" not in render_explanation(ranked, config)
    seen = Difference("cost", winner=0.698, other=0.798, impact=-0.1)
    monkeypatch.setattr(explaining, "explain_ranking", compared([seen]))
    assert "+ better on cost efficiency" in render_explanation(ranked, config)


def test_axes_parse_ranges_and_lists() -> None:
    assert parse_axis("cost_weight=0:1:0.25").values == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert parse_axis("cost_weight=0:0.3:0.1").values == (0.0, 0.1, 0.2, 0.3)
    # an integer setting's values are ints (printed 100, not 100.0); a fraction is refused
    for spec, values in [
        ("seed=1,2,5", (1, 2, 5)),
        ("monte_carlo_trials=100:200:50", (100, 150, 200)),
    ]:
        got = parse_axis(spec).values
        assert got == values and all(type(v) is int for v in got), got
    with pytest.raises(SettingError, match="monte_carlo_trials takes whole numbers"):
        parse_axis("monte_carlo_trials=100,150.5")
    for bad, message in [
        ("cost_weight", "NAME=START:STOP:STEP"),
        ("cost_wieght=0:1:0.1", "did you mean 'cost_weight'"),
        ("cost_weight=0:1", "START:STOP:STEP"),
        ("cost_weight=0:1:0", "above 0"),
        ("cost_weight=1:0:0.1", "below START"),
        ("cost_weight=a,b", "not a number"),
        ("cost_weight=0:1:0.00001", "at most"),
    ]:
        with pytest.raises(SettingError, match=message):
            parse_axis(bad)


def test_a_sweep_ranks_at_every_point_and_reports_where_the_winner_changes() -> None:
    cheap_risky = proposal(call("a", "t"), id="cheap")
    safe = proposal(
        call("a", "t", reversibility="reversible"),
        call("b", "t", params={"n": 1}, reversibility="reversible", depends_on=["a"]),
        call("c", "t", params={"n": 2}, reversibility="reversible", depends_on=["b"]),
        id="safe",
    )
    base = PlannerConfig(cost_weight=0.9, irreversible_penalty=0.0)
    axis = parse_axis("irreversible_penalty=0:1:0.5")
    points = sweep(lambda at: rank([cheap_risky, safe], ["t"], config=at), base, [axis])
    assert [p.settings for p in points] == [{"irreversible_penalty": v} for v in (0, 0.5, 1.0)]
    winners = [p.winner.proposal_id if p.winner else None for p in points]
    assert winners == ["cheap", "safe", "safe"]
    assert winner_changes(points) == [
        "irreversible_penalty=0: cheap",
        "irreversible_penalty=0.5 .. irreversible_penalty=1: safe",
        "the winner changes 1 time(s)",
    ]


def test_a_grid_varies_the_first_axis_slowest() -> None:
    axes = [parse_axis("cost_weight=0,1"), parse_axis("seed=1,2")]
    points = sweep(lambda at: [], PlannerConfig(), axes)
    assert [p.settings for p in points] == [
        {"cost_weight": 0.0, "seed": 1.0},
        {"cost_weight": 0.0, "seed": 2.0},
        {"cost_weight": 1.0, "seed": 1.0},
        {"cost_weight": 1.0, "seed": 2.0},
    ]
    assert winner_changes(points)[-1] == "the winner never changes"


def test_with_no_valid_candidate_every_candidate_says_why() -> None:
    only = proposal(call("x", "nope"), id="broken")
    ranked = rank([only], tools=["deploy"])
    text = render_explanation(ranked, PlannerConfig(), "t")
    lines = text.splitlines()
    assert lines[:2] == ["t: no candidate is valid", "broken is invalid:"]
    assert len(lines) > 2 and all(line.startswith("  - ") for line in lines[2:])
    assert "nope" in text
