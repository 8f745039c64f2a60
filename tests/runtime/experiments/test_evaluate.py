"""Evaluation on a benchmark small enough to compute every metric by hand."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from carlang_runtime.experiments import Outcomes, evaluate
from carlang_runtime.experiments.evaluate import car_ranking
from carlang_runtime.experiments.metrics import (
    average_ranks,
    bootstrap_ci,
    kendall_tau_b,
    spearman,
)
from carlang_runtime.planner import PlannerConfig, ToolFeedback
from typer.testing import CliRunner

from carlang.cli import app
from tests.conftest import HAS_CAR, ROOT

from .bench import record, write_dataset


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list]:
    folder = tmp_path_factory.mktemp("bench")
    dataset, tasks = write_dataset(folder)
    log = folder / "runs.jsonl"
    record(tasks, log)
    return dataset, log, tasks


def test_outcomes_are_joined_from_the_log(bench: tuple[Path, Path, list]) -> None:
    _, log, tasks = bench
    outcomes = Outcomes.load([log])
    rates = {key: o.success_rate for key, o in outcomes.by_key.items()}
    assert rates == {
        ("t1", "c_fail"): 0.0,
        ("t1", "c_flky"): 0.5,
        ("t1", "c_okay"): 1.0,
        ("t2", "d_two"): 0.5,
        ("t2", "e_one"): 1.0,
    }
    assert outcomes.runs == 5 * 4


def test_every_metric_as_computed_by_hand(bench: tuple[Path, Path, list]) -> None:
    _, log, tasks = bench
    feedback = ToolFeedback.from_log(log)
    assert feedback.success_rates() == {"okay": 1.0, "flky": 0.5, "fail": 0.0}
    result = evaluate(tasks, Outcomes.load([log]), PlannerConfig(), feedback, resamples=200)
    by = {r.name: r for r in result.rankers}
    # carlang: t1 okay > flky > fail, t2 e_one > d_two: right every time.
    carlang = by["carlang"]
    assert [t.winner for t in carlang.tasks] == ["c_okay", "e_one"]
    assert carlang.means == {"top1": 1.0, "regret": 0.0, "spearman": 1.0, "kendall": 1.0}
    assert carlang.intervals["top1"] == (1.0, 1.0)
    # CAR: t1's three scores tie (same size): input order picks c_fail (regret 1, no
    # correlation defined); t2: d_two's two calls run side by side, and CAR's parallelism
    # term (1 - levels / actions = 0.5 against 0) outweighs its extra action: wrong.
    car = by["car"]
    assert [t.winner for t in car.tasks] == ["c_fail", "d_two"]
    assert [(t.top1, t.regret, t.spearman, t.kendall) for t in car.tasks] == [
        (0.0, 1.0, None, None),
        (0.0, 0.5, -1.0, -1.0),
    ]
    assert car.means == {"top1": 0.0, "regret": 0.75, "spearman": -1.0, "kendall": -1.0}
    # Fewest actions: t1 ties (input order: c_fail), t2 e_one.
    fewest = by["fewest_actions"]
    assert [t.winner for t in fewest.tasks] == ["c_fail", "e_one"]
    assert fewest.means == {"top1": 0.5, "regret": 0.5, "spearman": 1.0, "kendall": 1.0}
    assert 0.0 <= (by["random"].means["top1"] or 0.0) <= 1.0
    assert result.tasks == 2 and result.unjoined == []


def test_the_car_baseline_is_car_runtimes_score(bench: tuple[Path, Path, list]) -> None:
    if not HAS_CAR:
        pytest.skip("car-runtime is not installed")
    import car_runtime

    _, _, tasks = bench
    for task in tasks:
        documents = [c.model_dump(mode="json") for c in task.candidates]
        theirs = json.loads(car_runtime.rank_proposals(json.dumps(documents), task.tools, None))
        assert [(documents[t["index"]]["id"], t["score"]) for t in theirs] == [
            (name, pytest.approx(score, abs=1e-12)) for name, score in car_ranking(task)
        ]


def test_the_car_baseline_is_car_runtimes_score_where_actions_are_ordered() -> None:
    """The shipped experiment's candidates order actions with `depends_on`, which CAR drops:
    its levels and token estimates are those of the proposal without it (5 of 10 tasks were
    ranked otherwise by the `car` baseline)."""
    if not HAS_CAR:
        pytest.skip("car-runtime is not installed")
    import car_runtime
    from carlang_runtime.experiments import load_groups

    tasks = load_groups(ROOT / "examples" / "experiments" / "tasks.jsonl")
    ordered = [t for t in tasks if any(a.depends_on for c in t.candidates for a in c.actions)]
    assert len(ordered) >= 5
    for task in tasks:
        documents = [c.model_dump(mode="json") for c in task.candidates]
        theirs = json.loads(car_runtime.rank_proposals(json.dumps(documents), task.tools, None))
        assert [(documents[t["index"]]["id"], t["score"]) for t in theirs] == [
            (name, pytest.approx(score, abs=1e-12)) for name, score in car_ranking(task)
        ], task.id


def test_rank_statistics_with_ties() -> None:
    assert average_ranks([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]
    assert spearman([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None
    # pairs: (1,2) concordant, (1,3) concordant, (2,3) tied in x only -> tau-b
    assert kendall_tau_b([1, 2, 2], [1, 2, 3]) == pytest.approx(2 / (3 * 2) ** 0.5)
    assert bootstrap_ci([1.0, 1.0], 50, 0) == (1.0, 1.0)
    assert bootstrap_ci([None], 50, 0) is None


def test_the_eval_command(bench: tuple[Path, Path, list], tmp_path: Path) -> None:
    dataset, log, _ = bench
    runner = CliRunner()
    learned = tmp_path / "feedback.json"
    result = runner.invoke(app, ["planner", "learn", str(log), "-o", str(learned)])
    assert result.exit_code == 0, result.output
    assert "tool flky: 50.0% of 8 attempts" in result.stdout
    args = ["planner", "eval", str(dataset), "--outcomes", str(log), "--feedback", str(learned)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    rankers = {r["name"]: r for r in json.loads(result.stdout)["rankers"]}
    assert rankers["carlang"]["means"]["top1"] == 1.0
    assert rankers["car"]["means"]["regret"] == 0.75
    text = runner.invoke(app, [*args, "--per-task"]).stdout
    assert text.splitlines()[0] == "2 task(s) joined with 20 recorded run(s)"
    # (the last cell: the winner's cost, its runs' wall time from the log)
    per_task = [line.split()[:7] for line in text.splitlines() if line.startswith("t")]
    assert ["t1", "car", "c_fail", "0.000", "1.000", "-", "-"] in per_task
    assert ["t2", "carlang", "e_one", "1.000", "0.000", "1.000", "1.000"] in per_task
    assert "fewest_actions" in text and "random" in text
    csv = tmp_path / "outcomes.csv"
    csv.write_text("task,candidate,success,runs\nt1,c_okay,1,3\nt1,c_fail,0,3\n")
    result = runner.invoke(app, ["planner", "eval", str(dataset), "--outcomes", str(csv)])
    assert result.exit_code == 0 and "1 task(s) joined" in result.stdout
    csv.write_text("task,candidate\nt1,c_okay\n")
    result = runner.invoke(app, ["planner", "eval", str(dataset), "--outcomes", str(csv)])
    assert result.exit_code == 2 and "missing column(s): success" in result.stderr


def test_the_car_baseline_ranks_in_the_tasks_context() -> None:
    """The example's candidates run under budget `hotfix`: ranked without it, CAR's baseline
    found every one invalid (score 0) and its "winner" was the first by input order."""
    from carlang.cli.datasets import load_dataset

    example = Path(__file__).resolve().parents[3] / "examples" / "planning" / "deploy_plans.car"
    [task] = load_dataset([example], None, None)
    ranking = car_ranking(task)
    assert sorted(name for name, _ in ranking) == ["careful_path", "fast_path", "safe_path"]
    assert all(score > 0 for _, score in ranking), ranking
    outcomes = Outcomes()
    for name, rate in (("fast_path", 0.2), ("safe_path", 0.9), ("careful_path", 0.5)):
        outcomes.add(task.id, name, 10, rate * 10, 0.0)
    [car] = [r for r in evaluate([task], outcomes, resamples=0).rankers if r.name == "car"]
    assert car.tasks[0].spearman is not None  # the scores differ: a real ranking


def test_outcomes_that_are_no_outcomes_are_refused(
    bench: tuple[Path, Path, list], tmp_path: Path
) -> None:
    dataset, log, _ = bench
    learned = tmp_path / "feedback.json"
    ToolFeedback.from_log(log).save(learned)
    flat = tmp_path / "feedback.jsonl"
    flat.write_text(json.dumps(ToolFeedback.from_log(log).to_document()) + "\n")
    program = tmp_path / "p.car"
    program.write_text("tool t()\n")
    (tmp_path / "empty.jsonl").write_text("\n \n")
    expected = {
        learned: f"error: {learned}: a feedback file (`planner learn`'s), which goes to --feedback",
        flat: f"error: {flat}: a feedback file (`planner learn`'s), which goes to --feedback",
        program: f"error: {program}: a program, not recorded runs",
        dataset: f"{dataset}:1:1: error: not an event (a JSON object with a `kind`); it looks"
        " like a task of a dataset",
        tmp_path / "empty.jsonl": f"error: {tmp_path / 'empty.jsonl'}: the file is empty",
    }
    for path, message in expected.items():
        result = CliRunner().invoke(app, ["planner", "eval", str(dataset), "--outcomes", str(path)])
        assert result.exit_code == 2, (path, result.output)
        assert result.stderr.startswith(message), result.stderr
        assert path == dataset or "--outcomes takes event logs of" in result.stderr


def test_outcomes_that_join_no_candidate_are_named(
    bench: tuple[Path, Path, list], tmp_path: Path
) -> None:
    dataset, _, _ = bench
    csv = tmp_path / "outcomes.csv"
    rows = ["t1,c_okay,1", "t9,c_okay,1", "t1,nope,0", ",ghost,1", "t1,c_fail,0", "t2,x,1"]
    csv.write_text("task,candidate,success\n" + "\n".join(rows) + "\n")
    result = CliRunner().invoke(app, ["planner", "eval", str(dataset), "--outcomes", str(csv)])
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"warning: 4 recorded run(s) of 4 candidate(s) name no candidate of the dataset's tasks"
        f" and are left out: {csv}:3 (task 't9', candidate 'c_okay'); {csv}:4 (task 't1',"
        f" candidate 'nope'); {csv}:5 (candidate 'ghost') and 1 more (check the task and"
        " candidate ids)\n"
    )


def test_runs_left_out_are_counted_as_runs_and_not_as_joined(
    bench: tuple[Path, Path, list], tmp_path: Path
) -> None:
    """Ten rows of a candidate no task has, beside two that join: the warning counted one
    outcome, and the report said 12 runs joined (a trial); the figures stand on 2."""
    dataset, _, _ = bench
    csv = tmp_path / "outcomes.csv"
    rows = ["t1,ghost,1"] * 10 + ["t1,c_okay,1", "t1,c_fail,0"]
    csv.write_text("task,candidate,success\n" + "\n".join(rows) + "\n")
    args = ["planner", "eval", str(dataset), "--outcomes", str(csv), "--resamples", "0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("1 task(s) joined with 2 recorded run(s); no outcome for 1")
    assert result.stderr.startswith(
        "warning: 10 recorded run(s) of 1 candidate(s) name no candidate of the dataset's tasks"
    )
    as_json = CliRunner().invoke(app, [*args, "--json"])
    assert json.loads(as_json.stdout)["runs"] == 2


def test_with_plan_the_runs_of_the_other_tasks_are_a_note_not_a_warning(
    bench: tuple[Path, Path, list], tmp_path: Path
) -> None:
    """`--plan t1` warned that every run of t2 named no candidate, and to check the ids (a
    trial): leaving them out is what was asked. A wrong candidate of t1 is still warned of."""
    dataset, _, _ = bench
    csv = tmp_path / "outcomes.csv"
    rows = ["t1,c_okay,1", "t1,c_fail,0", "t2,d_two,0", "t2,e_one,1", "t2,e_one,1", "t1,nope,1"]
    csv.write_text("task,candidate,success\n" + "\n".join(rows) + "\n")
    args = ["planner", "eval", str(dataset), "--outcomes", str(csv), "--plan", "t1"]
    result = CliRunner().invoke(app, [*args, "--resamples", "0"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("1 task(s) joined with 2 recorded run(s)\n")
    assert result.stderr == (
        "note: 3 recorded run(s) of other tasks than --plan t1 left out\n"
        "warning: 1 recorded run(s) of 1 candidate(s) name no candidate of the dataset's tasks"
        f" and are left out: {csv}:7 (task 't1', candidate 'nope') (check the task and"
        " candidate ids)\n"
    )


def test_tasks_where_one_candidate_ran_are_warned_about(
    bench: tuple[Path, Path, list], tmp_path: Path
) -> None:
    dataset, _, tasks = bench
    csv = tmp_path / "outcomes.csv"
    csv.write_text("task,candidate,success\nt1,c_fail,0\nt2,d_two,0\nt2,e_one,1\n")
    result = CliRunner().invoke(app, ["planner", "eval", str(dataset), "--outcomes", str(csv)])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        "warning: 1 of 2 task(s) have outcomes for only one candidate (t1): there every ranker"
        " that picks it, random too, scores top-1 1 and regret 0; that leaves 1 informative"
        " task(s) (record runs of at least 2 candidates per task)"
    )
    assert evaluate(tasks, Outcomes.load([csv]), resamples=0).single == ["t1"]


def _group(task: str, *names: str) -> str:
    candidates = [
        {"id": n, "actions": [{"id": "a", "type": "tool_call", "tool": "t"}]} for n in names
    ]
    return json.dumps({"id": task, "candidates": candidates}) + "\n"


def _runs(*runs: tuple[object, str, str]) -> str:
    """An event log of runs: (the scope's task, or ... for no scope; candidate; status)."""
    lines = []
    for number, (task, candidate, status) in enumerate(runs):
        scope = {} if task is ... else {"task": task}
        trace = f"run{number}"
        lines.append({"kind": "run_started", "trace_id": trace, "data": {"scope": scope}})
        lines.append(
            {
                "kind": "proposal_completed",
                "trace_id": trace,
                "proposal_id": candidate,
                "data": {"status": status},
            }
        )
    return "".join(json.dumps(line) + "\n" for line in lines)


def test_runs_without_a_task_join_only_where_their_task_is_clear(tmp_path: Path) -> None:
    """A run that named no task counted for every task with a candidate of its id: an empty
    `task` cell for `one` made T1 and T2 both 'joined'. It now joins only the one task that
    has such a candidate; one that several tasks have is left out, with a warning."""
    dataset = tmp_path / "ds.jsonl"
    dataset.write_text(_group("T1", "one", "two") + _group("T2", "one", "three"))
    csv = tmp_path / "o.csv"
    csv.write_text("task,candidate,success\n,one,1\n,two,0\nT1,one,1\n,three,1\nT2,one,0\n")
    from carlang.cli.datasets import load_dataset

    tasks = load_dataset([dataset], None, None)
    resolved = Outcomes.load([csv]).resolve(tasks)
    rates = {key: o.success_rate for key, o in resolved.by_key.items()}
    assert rates == {
        ("", "one"): 1.0,  # T1's or T2's: unknown, so neither's
        ("T1", "two"): 0.0,
        ("T1", "one"): 1.0,
        ("T2", "three"): 1.0,
        ("T2", "one"): 0.0,
    }
    assert resolved.resolve(tasks).by_key == resolved.by_key
    args = ["planner", "eval", str(dataset), "--resamples", "0"]
    result = CliRunner().invoke(app, [*args, "--outcomes", str(csv)])
    assert result.exit_code == 0, result.output
    # (the run left out is not one the figures stand on)
    assert result.stdout.startswith("2 task(s) joined with 4 recorded run(s)\n")
    assert result.stderr == (
        f"warning: 1 recorded run(s) name no task (the first at {csv}:2) and are left out:"
        " their candidate(s) (one) are candidates of several tasks (T1, T2), so which task"
        ' they ran for is unknown (record runs with scope={"task": ID}, or fill the CSV\'s'
        " `task` column)\n"
    )
    # Only ambiguous ones: nothing joins (it was "2 task(s) joined").
    csv.write_text("task,candidate,success\n,one,1\n,one,0\n")
    result = CliRunner().invoke(app, [*args, "--outcomes", str(csv)])
    assert result.exit_code == 1 and "2 recorded run(s) name no task" in result.stderr
    # A log: no scope joins where clear; a task that is no string joins nothing.
    log = tmp_path / "runs.jsonl"
    log.write_text(_runs((..., "two", "completed"), (7, "two", "aborted"), ("T2", "one", "x")))
    result = CliRunner().invoke(app, [*args, "--outcomes", str(log), "--per-task", "--json"])
    assert result.exit_code == 0, result.output
    [carlang, *_] = json.loads(result.stdout)["rankers"]
    assert [task["task"] for task in carlang["tasks"]] == ["T1", "T2"]
    assert result.stderr.splitlines()[0] == (
        f"warning: 1 recorded run(s) are left out: their scope's task is not a string (the"
        f' first, in {log}, is 7); a task is named by its id, a string: scope={{"task": "t1"}}'
    )


def test_a_winner_that_never_ran_is_undecided_not_replaced(tmp_path: Path) -> None:
    """`rank` picks `one`, which never ran: eval named `two` (the best-ranked candidate that
    ran) as the winner and scored top-1 1. The winner is now `one`, and its top-1 and regret
    there are undecided: left out of their means, counted and warned about."""
    dataset = tmp_path / "ds.jsonl"
    dataset.write_text(_group("T1", "one", "two", "three"))
    csv = tmp_path / "o.csv"
    csv.write_text("task,candidate,success\nT1,two,1\nT1,three,0\n")
    args = ["planner", "eval", str(dataset), "--outcomes", str(csv), "--resamples", "0"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    rankers = {r["name"]: r for r in json.loads(result.stdout)["rankers"]}
    [task] = rankers["carlang"]["tasks"]
    assert (task["winner"], task["top1"], task["regret"]) == ("one", None, None)
    assert rankers["carlang"]["means"]["top1"] is None
    assert rankers["carlang"]["undecided"] == ["T1"]
    assert (
        "warning: carlang's winner has no recorded run in 1 of 1 task(s) (T1: one): whether it"
        " was right is unknown, so its top-1 and regret leave those tasks out"
    ) in result.stderr
    text = CliRunner().invoke(app, [*args, "--per-task"]).stdout
    assert "top1 and regret leave out the tasks whose winner never ran: carlang 1," in text
    assert ["T1", "carlang", "one", "(no", "runs)", "-", "-", "-", "-"] in [
        line.split() for line in text.splitlines()
    ]


def test_a_log_cut_short_or_empty_is_refused_alike_by_learn_eval_and_search(
    bench: tuple[Path, Path, list], tmp_path: Path
) -> None:
    """`learn` refused a log cut short (its last line half written); `eval` and `search`
    read it, the last line left out unread. All three now read logs the same way; and an
    empty log, which eval refused, made `learn` write an empty feedback file (exit 0)."""
    dataset, log, _ = bench
    text = log.read_text()
    cut = tmp_path / "cut.jsonl"
    cut.write_text(text[: text.rindex("proposal_completed") - 20])
    lines = cut.read_text().splitlines()
    said = f"{cut}:{len(lines)}:"
    space = tmp_path / "space.toml"
    space.write_text("cost_weight = [0.0, 0.5]\n")
    feedback = tmp_path / "feedback.json"
    commands = {
        "learn": ["planner", "learn", "-o", str(feedback)],
        "eval": ["planner", "eval", str(dataset), "--outcomes"],
        "search": ["planner", "search", str(dataset), "--space", str(space), "--outcomes"],
    }
    for name, args in commands.items():
        result = CliRunner().invoke(app, [*args, str(cut)])
        assert result.exit_code == 2, (name, result.output)
        assert result.stderr.startswith(said) and "the last line is cut short" in result.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    for name, args in commands.items():
        result = CliRunner().invoke(app, [*args, str(empty)])
        assert result.exit_code == 2, (name, result.output)
        assert result.stderr.startswith(f"error: {empty}: the file is empty: no recorded run")
    assert not feedback.exists()


def test_too_few_resamples_for_an_interval_are_refused(bench: tuple[Path, Path, list]) -> None:
    """`--resamples 1` printed a "95% interval" of one resampled mean, which may not hold the
    mean itself."""
    dataset, log, _ = bench
    args = ["planner", "eval", str(dataset), "--outcomes", str(log), "--resamples"]
    for few in ("1", "99"):
        result = CliRunner().invoke(app, [*args, few])
        assert (result.exit_code, result.stdout) == (2, "")
        assert result.stderr.startswith(
            f"error: --resamples {few}: a 95% interval needs at least 100 bootstrap resamples"
        )
    assert CliRunner().invoke(app, [*args, "100"]).exit_code == 0


def test_a_log_given_twice_counts_each_run_once(
    bench: tuple[Path, Path, list], tmp_path: Path
) -> None:
    """The same log given twice was counted twice by learn and eval (twice the attempts and
    runs, as though the evidence were twice as strong)."""
    dataset, log, _ = bench
    note = f"note: {log}: 20 run(s) were read from an earlier log already (the same trace ids)"
    learned = tmp_path / "feedback.json"
    result = CliRunner().invoke(app, ["planner", "learn", str(log), str(log), "-o", str(learned)])
    assert result.exit_code == 0, result.output
    assert "tool flky: 50.0% of 8 attempts" in result.stdout and note in result.stderr
    args = ["planner", "eval", str(dataset), "--outcomes", str(log), "--outcomes", str(log)]
    result = CliRunner().invoke(app, [*args, "--resamples", "0"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("2 task(s) joined with 20 recorded run(s)\n")
    assert note in result.stderr


def test_csv_runs_are_exact_a_rate_needs_its_runs_and_a_table_given_twice_counts_once(
    bench: tuple[Path, Path, list], tmp_path: Path
) -> None:
    """A trial: `runs` of 10**23 went through a float (99999999999999991611393 runs); a
    `success` of 0.5 without `runs` was taken as half a run's success; the same CSV given
    twice counted every row twice, with no word (a log given twice is counted once)."""
    from carlang_runtime.experiments.dataset import DatasetError

    dataset, _, _ = bench
    huge = tmp_path / "huge.csv"
    huge.write_text(f"task,candidate,success,runs\nt1,c_okay,1,{10**23}\n")
    assert Outcomes.load([huge]).runs == 10**23
    rate = tmp_path / "rate.csv"
    rate.write_text("task,candidate,success\nt1,c_okay,1\nt1,c_fail,0.5\n")
    with pytest.raises(DatasetError, match=f"{rate}:3: column `success`: 0.5 is a rate"):
        Outcomes.load([rate])
    rate.write_text("task,candidate,success,runs\nt1,c_okay,1,\nt1,c_fail,0.5,4\n")
    assert Outcomes.load([rate]).runs == 5
    args = ["planner", "eval", str(dataset), "--resamples", "0", "--outcomes", str(rate)]
    twice = CliRunner().invoke(app, [*args, "--outcomes", str(rate)])
    assert twice.exit_code == 0, twice.output
    assert twice.stdout.startswith("1 task(s) joined with 5 recorded run(s)")
    assert f"note: {rate} is given more than once: its rows are counted once\n" in twice.stderr


def test_a_plans_task_renamed_by_a_second_file_is_hinted(tmp_path: Path) -> None:
    """With a second file given, a program's plan `newsletter` is the task `p:newsletter`,
    and every outcome recorded under `newsletter` was left out with 'check the task and
    candidate ids' (a trial)."""
    program = tmp_path / "p.car"
    program.write_text(
        "tool t()\nproposal a { x = t() }\nproposal b { x = t()  y = t() after x }\n"
        "plan newsletter { candidates a, b }\n"
    )
    other = tmp_path / "other.car"
    other.write_text("tool t()\nproposal c { x = t() }\n")
    csv = tmp_path / "outcomes.csv"
    csv.write_text("task,candidate,success\nnewsletter,a,1\nnewsletter,b,0\n")
    args = ["planner", "eval", str(program), "--outcomes", str(csv), "--resamples", "0"]
    alone = CliRunner().invoke(app, args)
    assert alone.exit_code == 0 and alone.stderr == "", alone.output
    both = CliRunner().invoke(app, [*args, str(other)])
    assert both.exit_code == 1, both.output  # (no task joined)
    hint = (
        "(with several files given, a plan's task is FILE:PLAN: task 'newsletter' is"
        " 'p:newsletter' here; give its file alone, or record the runs under that name)\n"
    )
    assert hint in both.stderr, both.stderr
    # with --plan, those runs are the chosen task's under its old name, not another task's
    chosen = CliRunner().invoke(app, [*args, str(other), "--plan", "newsletter"])
    assert hint in chosen.stderr and "other tasks" not in chosen.stderr, chosen.stderr


def test_a_csvs_cost_is_what_each_rankers_winners_cost(
    bench: tuple[Path, Path, list], tmp_path: Path
) -> None:
    """The `cost` column was read and checked, then used nowhere: costs of 200 or 0 gave the
    same report. It is each winner's mean cost per run, and each ranker's mean over tasks."""
    dataset, _, tasks = bench
    csv = tmp_path / "o.csv"
    csv.write_text(
        "task,candidate,success,runs,cost\n"
        "t1,c_okay,1,2,10\nt1,c_fail,0,1,2\nt1,c_flky,0.5,2,3\n"
        "t2,e_one,1,1,4\nt2,d_two,0,1,8\n"
    )
    costs = {"c_okay": 10.0, "c_fail": 2.0, "c_flky": 3.0, "e_one": 4.0, "d_two": 8.0}
    result = evaluate(tasks, Outcomes.load([csv]), resamples=0)
    assert result.costed
    for ranker in result.rankers:
        assert [t.cost for t in ranker.tasks] == [costs[t.winner] for t in ranker.tasks]
        assert ranker.mean_cost == sum(costs[t.winner] for t in ranker.tasks) / 2
    fewest = {r.name: r for r in result.rankers}["fewest_actions"]
    assert [t.winner for t in fewest.tasks] == ["c_fail", "e_one"] and fewest.mean_cost == 3.0
    args = ["planner", "eval", str(dataset), "--resamples", "0", "--outcomes", str(csv)]
    shown = CliRunner().invoke(app, args)
    assert shown.exit_code == 0, shown.output
    header, *rows = shown.stdout.splitlines()[1:]
    assert header.endswith("winner cost")
    assert any(row.startswith("fewest_actions") and row.endswith(" 3.000") for row in rows)
    document = json.loads(CliRunner().invoke(app, [*args, "--json"]).stdout)
    assert [r["mean_cost"] for r in document["rankers"]] == [r.mean_cost for r in result.rankers]
    csv.write_text(csv.read_text().replace(",10\n", ",0\n").replace(",2\n", ",0\n"))
    without = CliRunner().invoke(app, args).stdout
    assert "winner cost" in without  # (some costs are still recorded)
    csv.write_text("task,candidate,success\nt1,c_okay,1\nt2,e_one,1\n")
    assert "winner cost" not in CliRunner().invoke(app, args).stdout
    # an empty cell records no cost: not a cost of 0 that lowers the mean
    csv.write_text("task,candidate,success,cost\nt1,c_okay,1,\nt1,c_okay,1,6\nt1,c_fail,0,\n")
    found = Outcomes.load([csv]).for_task("t1", ["c_okay", "c_fail"])
    assert found["c_okay"].mean_cost == 6.0 and found["c_fail"].mean_cost is None


def test_an_outcomes_csv_is_read_as_csv_is_written(tmp_path: Path) -> None:
    """A trial: a task id `rank --format csv` wrote with a line break in its quotes lost the
    break when read back (the rows were split by line first); `task, candidate, success`
    (spaces after the commas) named no column; a column given twice used its last cells."""
    from carlang_runtime.experiments.dataset import DatasetError

    csv_file = tmp_path / "o.csv"
    csv_file.write_text(
        'task, candidate, success\n"trip, ""NYC""\nline2",a,1\nt2,b,0\n', newline=""
    )
    outcomes = Outcomes.load([csv_file])
    assert outcomes.for_task('trip, "NYC"\nline2', ["a"])["a"].runs == 1
    assert outcomes.for_task("t2", ["b"])["b"].success_rate == 0.0
    csv_file.write_text("task,candidate,success,success\nt1,a,1,0\n")
    with pytest.raises(DatasetError, match="1: column\\(s\\) given twice: success"):
        Outcomes.load([csv_file])


_HEADER = "task,candidate,success\n"


def test_a_cell_longer_than_csvs_own_limit_is_read(tmp_path: Path) -> None:
    import csv

    csv_file = tmp_path / "o.csv"
    task = "t" * 200_000
    csv_file.write_text(f'{_HEADER}"{task}",a,1\n')
    limit = csv.field_size_limit()
    assert Outcomes.load([csv_file]).for_task(task, ["a"])["a"].runs == 1
    assert csv.field_size_limit() == limit  # (the process's limit, as it was)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        # a row that spans lines is named by its first line
        (_HEADER + '"x\ny",a,1\n"x\ny",a,maybe\n', "4: column `success`: 'maybe'"),
        # a quoted cell never closed: said so, at the row it opens in (not read to the end)
        (_HEADER + 't1,a,1\n"t2,b,1\nt3,c,0\n', "3: a quoted cell is never closed"),
        (_HEADER + '"t1"x,a,1\n', "2: malformed CSV: "),
        ('"' + _HEADER, "1: a quoted cell is never closed"),
        # blank lines are skipped, and the row after them is named by its own line
        (_HEADER + "t1,a,1\n\n\nt1,b,maybe\n", "5: column `success`: 'maybe'"),
        (_HEADER + 't1,a,1\n\n"t2,b,1\n', "4: a quoted cell is never closed"),
        # a quote never closed in a long file: past csv's own cell limit, still said so
        (_HEADER + '"t1,a,1\n' + "t2,b,1\n" * 20_000, "2: a quoted cell is never closed"),
        ("", "1: the file is empty: an outcomes CSV starts"),
        ("\n" + _HEADER, "1: the first line is blank: an outcomes CSV starts"),
    ],
)
def test_an_outcomes_csv_that_cannot_be_read_says_where_and_why(
    tmp_path: Path, text: str, said: str
) -> None:
    from carlang_runtime.experiments.dataset import DatasetError

    csv_file = tmp_path / "o.csv"
    csv_file.write_text(text)
    with pytest.raises(DatasetError, match=re.escape(f"{csv_file}:{said}")):
        Outcomes.load([csv_file])


def test_runs_that_never_ended_are_counted_out_aloud() -> None:
    """Runs without `proposal_completed` (interrupted, cut short) were dropped without a word
    (a trial's 179 of 180)."""
    events = [
        {"kind": "run_started", "trace_id": "r1", "data": {"scope": {"task": "t1"}}},
        {
            "kind": "proposal_completed",
            "trace_id": "r1",
            "proposal_id": "a",
            "data": {"status": "completed"},
        },
        {"kind": "run_started", "trace_id": "r2", "data": {"scope": {"task": "t1"}}},
        {"kind": "run_started", "trace_id": "r3", "data": {"scope": {"task": "t1"}}},
    ]
    outcomes = Outcomes()
    outcomes.learn_events(events, "runs.jsonl")
    assert outcomes.runs == 1 and outcomes.unfinished == [("runs.jsonl", 2)]
    assert outcomes.resolve([]).unfinished == [("runs.jsonl", 2)]
