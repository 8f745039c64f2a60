"""The search: closed-form scores equal `rank`'s, the same seed gives the same search whatever
the workers, splits and spaces are checked, ablations switch each feature off."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from carlang_runtime.experiments import Outcomes, rank_task
from carlang_runtime.experiments.generate import generate_tasks, record_runs
from carlang_runtime.experiments.search import (
    _features,
    _score,
    _weights,
    parse_space,
    points,
    search,
    split_tasks,
)
from carlang_runtime.planner import PlannerConfig, SettingError, ToolFeedback


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[list, Outcomes, ToolFeedback]:
    tasks = generate_tasks(8, seed=5, candidates=(3, 4))
    log = tmp_path_factory.mktemp("search") / "runs.jsonl"
    record_runs(tasks, log, runs=6, seed=5)
    return tasks, Outcomes.load([log]), ToolFeedback.from_log(log)


SPACE = parse_space(
    {
        "cost_weight": {"min": 0.0, "max": 0.6, "step": 0.2},
        "policy_weight": [0.0, 1.0],
        "monte_carlo_weight": {"min": 0.0, "max": 1.0},
        "monte_carlo_trials": [200],
    }
)


def test_closed_form_scores_equal_rank(data: tuple[list, Outcomes, ToolFeedback]) -> None:
    tasks, outcomes, feedback = data
    config = PlannerConfig(cost_weight=0.35, policy_weight=0.3, monte_carlo_weight=0.6)
    table = _features(tasks, PlannerConfig(), feedback, outcomes, {})
    for row, task in zip(table, tasks, strict=True):
        weights = _weights(config.model_dump())
        mine = {c.name: _score(c, weights) for c in row.candidates}
        for scored in rank_task(task, config, feedback):
            assert mine[scored.proposal_id] == pytest.approx(scored.score, abs=1e-12)


def test_the_same_seed_gives_the_same_search(data: tuple[list, Outcomes, ToolFeedback]) -> None:
    tasks, outcomes, feedback = data
    runs = [
        search(
            tasks,
            outcomes,
            SPACE,
            feedback=feedback,
            method="random",
            trials=12,
            seed=4,
            split="kfold 2",
            workers=workers,
            batch=5,
            ablate=True,
        ).to_dict()
        for workers in (1, 2, 1)
    ]
    assert runs[0] == runs[1] == runs[2]
    other = search(tasks, outcomes, SPACE, feedback=feedback, method="random", trials=12, seed=5)
    assert other.tried != runs[0]["tried"]
    assert set(runs[0]["ablation"]) == {
        "none",
        "cost",
        "feedback",
        "policy",
        "headroom",
        "reversibility",
        "monte_carlo",
    }


def test_a_grid_search_reports_train_and_held_out(
    data: tuple[list, Outcomes, ToolFeedback],
) -> None:
    tasks, outcomes, feedback = data
    grid = parse_space({"cost_weight": [0.0, 0.5], "monte_carlo_weight": [0.0, 1.0]})
    result = search(tasks, outcomes, grid, feedback=feedback, split="50:50", workers=1)
    assert [e["settings"] for e in result.tried] == [
        {"cost_weight": 0.0, "monte_carlo_weight": 0.0},
        {"cost_weight": 0.0, "monte_carlo_weight": 1.0},
        {"cost_weight": 0.5, "monte_carlo_weight": 0.0},
        {"cost_weight": 0.5, "monte_carlo_weight": 1.0},
    ]
    best_train = max(e["train"][0] for e in result.tried)
    assert result.train == best_train and result.test is not None
    assert result.config.cost_weight == result.best["cost_weight"]
    # (which tasks were searched on and which held out: the split, recorded)
    [split] = result.to_dict()["splits"]
    assert sorted(split["train"] + split["test"]) == sorted(t.id for t in tasks)
    assert split["test"] and not set(split["train"]) & set(split["test"])
    kfold = search(tasks, outcomes, grid, feedback=feedback, split="kfold 2", workers=1)
    assert len(kfold.splits) == 2
    assert sorted(kfold.splits[0]["test"] + kfold.splits[1]["test"]) == sorted(t.id for t in tasks)
    regret = search(tasks, outcomes, grid, feedback=feedback, objective="regret", workers=1)
    assert regret.train == min(e["train"][0] for e in regret.tried)  # lower is better


def test_spaces_and_splits_are_checked() -> None:
    with pytest.raises(SettingError, match="did you mean 'cost_weight'"):
        parse_space({"cost_wieght": [0.1]})
    with pytest.raises(SettingError, match="min = .., max = .."):
        parse_space({"cost_weight": "high"})
    with pytest.raises(SettingError, match="cost_weight"):
        parse_space({"cost_weight": [2.0]})
    with pytest.raises(SettingError, match=r"no `stpe` in a range \(did you mean step\?\)"):
        parse_space({"cost_weight": {"min": 0, "max": 1, "stpe": 0.5}})
    with pytest.raises(SettingError, match="a grid needs one"):
        points(parse_space({"cost_weight": {"min": 0, "max": 1}}), "grid", 0, 0)
    with pytest.raises(SettingError, match="unknown search method"):
        points(SPACE, "annealing", 3, 0)
    tasks = generate_tasks(6, seed=1)
    [(train, test)] = split_tasks(tasks, "2:1", 0)
    assert (len(train), len(test)) == (4, 2) and not {t.id for t in train} & {t.id for t in test}
    folds = split_tasks(tasks, "kfold 3", 0)
    assert sorted(t.id for _, test in folds for t in test) == sorted(t.id for t in tasks)
    for bad in ("kfold 1", "kfold x", "70", "a:b"):
        with pytest.raises(SettingError, match="--split"):
            split_tasks(tasks, bad, 0)


def test_the_search_command_writes_a_config_rank_reads(
    data: tuple[list, Outcomes, ToolFeedback], tmp_path: Path
) -> None:
    from carlang_runtime.experiments.generate import write_groups
    from typer.testing import CliRunner

    from carlang.cli import app

    tasks, _, _ = data
    dataset = tmp_path / "tasks.jsonl"
    write_groups(tasks, dataset)
    log = tmp_path / "runs.jsonl"
    record_runs(tasks, log, runs=3, seed=2)
    space = tmp_path / "space.toml"
    space.write_text("cost_weight = [0.1, 0.4]\npolicy_weight = { min = 0, max = 1, step = 1 }\n")
    best = tmp_path / "best.json"
    runner = CliRunner()
    args = ["planner", "search", str(dataset), "--outcomes", str(log), "--space", str(space)]
    plot = tmp_path / "search.png"
    drawn = importlib.util.find_spec("matplotlib") is not None  # (without it: test_cli_rank)
    result = runner.invoke(
        app,
        [*args, "--workers", "1", "--ablate", "-o", str(best), *(["--plot", str(plot)] * drawn)],
    )
    assert result.exit_code == 0, result.output
    assert "4 point(s) tried (grid)" in result.stdout and "ablation" in result.stdout
    if drawn:
        assert plot.read_bytes()[:4] == b"\x89PNG"
    ranked = runner.invoke(app, ["rank", str(dataset), "--config", str(best), "--format", "csv"])
    assert ranked.exit_code == 0, ranked.output
    space.write_text("cost_weight = [0.1\n")
    result = runner.invoke(app, [*args, "--workers", "1"])
    assert result.exit_code == 2 and "invalid TOML" in result.stderr


def test_an_optuna_search_is_seeded_tpe_through_the_cli(
    data: tuple[list, Outcomes, ToolFeedback], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from carlang_runtime.experiments.generate import write_groups
    from typer.testing import CliRunner

    from carlang.cli import app

    tasks, _, _ = data
    dataset = tmp_path / "tasks.jsonl"
    write_groups(tasks, dataset)
    log = tmp_path / "runs.jsonl"
    record_runs(tasks, log, runs=3, seed=2)
    space = tmp_path / "space.toml"
    space.write_text(
        "cost_weight = { min = 0, max = 0.6, step = 0.2 }\npolicy_weight = [0.0, 1.0]\n"
        "monte_carlo_weight = { min = 0.0, max = 1.0 }\n"
        "monte_carlo_trials = { min = 50, max = 150, step = 50 }\n"
    )
    args = ["planner", "search", str(dataset), "--outcomes", str(log), "--space", str(space)]
    args += ["--method", "optuna", "--trials", "14", "--workers", "1", "--split", "60:40"]
    runner = CliRunner()
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "optuna", None)  # as if it were not installed
        result = runner.invoke(app, args)
    assert result.exit_code == 2 and "pip install 'carlang[optuna]'" in result.stderr
    if importlib.util.find_spec("optuna") is None:
        pytest.skip("optuna is not installed (pip install 'carlang[optuna]')")
    outputs = []
    for seed in ("3", "3", "4"):
        best = tmp_path / f"best{len(outputs)}.json"
        result = runner.invoke(app, [*args, "--seed", seed, "--ablate", "-o", str(best)])
        assert result.exit_code == 0, result.output
        assert "14 point(s) tried (optuna)" in result.stdout and "ablation" in result.stdout
        outputs.append(json.loads(best.read_text()))
    assert outputs[0] == outputs[1] and outputs[0]["tried"] != outputs[2]["tried"]
    tried = [entry["settings"] for entry in outputs[0]["tried"]]
    assert {s["cost_weight"] for s in tried} <= {0.0, 0.2, 0.4, 0.6}
    assert {s["policy_weight"] for s in tried} <= {0.0, 1.0}
    assert {s["monte_carlo_trials"] for s in tried} <= {50, 100, 150}
    assert all(0.0 <= s["monte_carlo_weight"] <= 1.0 for s in tried)
    assert len({s["monte_carlo_weight"] for s in tried}) == len(tried)  # continuous
    train = [entry["train"][0] for entry in outputs[0]["tried"]]
    assert outputs[0]["train"] == max(v for v in train if v is not None)
    ranked = runner.invoke(app, ["rank", str(dataset), "--config", str(best), "--format", "csv"])
    assert ranked.exit_code == 0, ranked.output
    result = runner.invoke(app, [*args, "--split", "kfold 2"])
    assert result.exit_code == 2 and "TRAIN:TEST" in result.stderr


def test_a_setting_every_plan_fixes_is_refused_some_plans_warned(tmp_path: Path) -> None:
    """A plan's own `cost_weight` wins over the search's point (as over --config): searching
    it on a plan that sets it would pick a value that changes nothing."""
    from typer.testing import CliRunner

    from carlang.cli import app

    example = Path(__file__).resolve().parents[3] / "examples" / "planning" / "deploy_plans.car"
    text = example.read_text()
    fixed, free = tmp_path / "fixed", tmp_path / "both"
    fixed.mkdir()
    free.mkdir()
    (fixed / "a.car").write_text(text)
    (free / "a.car").write_text(text)
    (free / "b.car").write_text(text.replace("  cost_weight 0.3\n", "").replace("  target", "#"))
    outcomes = tmp_path / "out.csv"
    outcomes.write_text(
        "task,candidate,success,runs\n,fast_path,0.5,10\n,safe_path,0.9,10\n,careful_path,0,10\n"
    )
    space = tmp_path / "space.toml"
    space.write_text("cost_weight = [0.0, 0.5, 1.0]\n")
    args = ["--outcomes", str(outcomes), "--space", str(space), "--split", "50:50"]
    best = tmp_path / "best.json"
    result = CliRunner().invoke(app, ["planner", "search", str(fixed), *args, "-o", str(best)])
    assert result.exit_code == 2 and not best.exists()
    assert result.stderr.startswith("error: space: cost_weight is set by the plan of every task")
    assert "take cost_weight out of the space, or out of the plan" in result.stderr
    # Two tasks with the same candidates: a row must say which task it is of.
    outcomes.write_text(
        "task,candidate,success,runs\n"
        + "".join(
            f"{task},{name},{rate},10\n"
            for task in ("a:hotfix_rollout", "b:hotfix_rollout")
            for name, rate in (("fast_path", 0.5), ("safe_path", 0.9), ("careful_path", 0))
        )
    )
    result = CliRunner().invoke(app, ["planner", "search", str(free), *args])
    assert result.exit_code == 0, result.output
    assert "warning: cost_weight is set by the plan of 1 of 2 task(s) (a:hotfix_rollout)" in (
        result.stderr
    )


def test_a_space_file_names_itself_and_keeps_integer_settings_whole(tmp_path: Path) -> None:
    import random

    from carlang_runtime.experiments.search import load_space

    path = tmp_path / "space.toml"
    path.write_text("monte_carlo_trials = { min = 10, max = 100 }\n")
    [trials] = load_space(path)
    with pytest.raises(SettingError, match=f"^{path}:1:22: monte_carlo_trials is a range with"):
        trials.grid()  # (it said `space:`, then the file with no line)
    # a random draw of an integer setting is whole (it drew 85.99..., refused by the ranking)
    rng = random.Random(0)
    assert all(type(trials.draw(rng)) is int for _ in range(20))
    path.write_text("monte_carlo_trials = { min = 100, max = 300, step = 100 }\nseed = [1, 2]\n")
    grid = points(load_space(path), "grid", 0, 0)
    assert grid[0] == {"monte_carlo_trials": 100, "seed": 1}
    assert all(type(v) is int for point in grid for v in point.values())
    for text, said in [
        ("monte_carlo_trials = [2000000]", ":1:22: setting monte_carlo_trials = 2000000: input"),
        ("a = 1\n[space]\ncost_weight = [2.0, -1.0]", ":3:15: setting cost_weight = 2.0: input"),
        ("monte_carlo_trials = [0.5]", "monte_carlo_trials takes whole numbers"),
        ("seed = { min = 0, max = 9.5, step = 1 }", "seed takes whole numbers"),
        ("cost_weight = [0.1\n", ":2:1: invalid TOML: unclosed array"),
        ("cost_weight = 0.1 0.2\n", ":1:19: invalid TOML: expected newline or end of document"),
    ]:
        path.write_text(text)
        with pytest.raises(SettingError) as caught:
            load_space(path)
        assert str(caught.value).startswith(str(path)) and said in str(caught.value)


def test_a_kfold_ablation_is_held_out(data: tuple[list, Outcomes, ToolFeedback]) -> None:
    """Under kfold, the ablation was of the config chosen on all tasks, judged on all tasks:
    in-sample figures labelled held-out (`none` was the train figure). It is now each fold's
    best point, changed, judged on that fold, averaged as the held-out figure is."""
    tasks, outcomes, feedback = data
    common = {"feedback": feedback, "method": "random", "trials": 12, "seed": 4, "workers": 1}
    result = search(
        tasks, outcomes, SPACE, split="kfold 4", objective="spearman", ablate=True, **common
    )
    assert result.train != result.test  # (a dataset where they differ)
    assert result.ablation["none"] == pytest.approx(result.test)
    single = search(
        tasks, outcomes, SPACE, split="50:50", objective="spearman", ablate=True, **common
    )
    assert single.ablation["none"] == pytest.approx(single.test)


def test_an_ablation_of_a_feature_already_off_says_so(
    data: tuple[list, Outcomes, ToolFeedback],
) -> None:
    """A feature whose weight the best point sets to 0 was listed as if turning it off
    measured something: its figure is the `none` one, and the result says so."""
    from carlang.cli.experiment_commands import _already_off

    tasks, outcomes, feedback = data
    grid = parse_space({"cost_weight": [0.0], "monte_carlo_weight": [0.0, 1.0]})
    result = search(tasks, outcomes, grid, feedback=feedback, split="50:50", ablate=True)
    assert result.already_off["cost"] == 1 and "feedback" not in result.already_off
    assert result.ablation["cost"] == pytest.approx(result.ablation["none"])
    assert result.to_dict()["ablation_already_off"] == result.already_off
    assert _already_off(result, "cost") == "  (off already at the best point: the same as none)"
    on = search(tasks, outcomes, parse_space({"cost_weight": [0.5]}), split="50:50", ablate=True)
    assert "cost" not in on.already_off and _already_off(on, "cost") == ""
    # under kfold, each fold's best point is judged: the note says at how many it is off
    folds = search(tasks, outcomes, grid, feedback=feedback, split="kfold 3", ablate=True)
    assert folds.already_off["cost"] == 3
    assert _already_off(folds, "cost") == (
        "  (off already at every fold's best point: the same as none)"
    )
    folds.already_off["cost"] = 2  # (as when the folds' best points differ)
    assert _already_off(folds, "cost") == "  (off already at 2 of the 3 folds' best points)"
    # a fold with no outcomes to train on is not judged: the count is of those judged
    folds.ablation_points = 2
    assert _already_off(folds, "cost") == (
        "  (off already at every fold's best point: the same as none)"
    )
    assert folds.to_dict()["ablation_points"] == 2


def test_settings_that_need_feedback_are_warned_about_without_it(tmp_path: Path) -> None:
    """Searching feedback_weight without --feedback scored every point the same, silently."""
    from typer.testing import CliRunner

    from carlang.cli import app

    group = {"id": "t", "candidates": [{"id": "a", "actions": []}, {"id": "b", "actions": []}]}
    dataset = tmp_path / "ds.jsonl"
    dataset.write_text(json.dumps(group) + "\n")
    outcomes = tmp_path / "o.csv"
    outcomes.write_text("task,candidate,success\nt,a,1\nt,b,0\n")
    space = tmp_path / "space.toml"
    space.write_text("feedback_weight = [0.0, 1.0]\ncost_weight = [0.0, 1.0]\nseed = [1, 2]\n")
    args = ["planner", "search", str(dataset), "--outcomes", str(outcomes), "--workers", "1"]
    result = CliRunner().invoke(app, [*args, "--space", str(space)])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(
        "warning: searching feedback_weight, seed: every value scores the same without"
        " --feedback: they act only on what feedback gives"
    )
    program = tmp_path / "p.car"
    program.write_text("tool t()\nproposal a { x = t() }\nproposal b { x = t()  y = t() }\n")
    sweep = ["rank", str(program), "--sweep", "monte_carlo_weight=0,1", "--sweep", "cost_weight=0"]
    result = CliRunner().invoke(app, sweep)
    assert result.exit_code == 0, result.output
    assert "warning: sweeping monte_carlo_weight: every value scores the same" in result.stderr


def test_a_tie_goes_to_the_earlier_point_not_to_rounding() -> None:
    """Means of the same figures summed in another order differ in their last bits: a trial's
    search chose point 154 over point 8 for 0.05238095238095237 against ...236."""
    from carlang_runtime.experiments.search import _best

    assert _best([0.05238095238095236, 0.05238095238095237]) == 0
    assert _best([None, 0.5, 0.5 + 1e-15, 0.75]) == 3
    assert _best([-0.2, -0.2 + 1e-17, -0.1]) == 2
    assert _best([None, None]) is None
