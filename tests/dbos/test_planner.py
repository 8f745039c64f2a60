"""Planner experiments on the workers (`carlang rank --backend dbos`): a sweep's grid points and a
large Monte Carlo estimate's trials go in batches to `carlang worker` processes, and the output
is byte for byte the in-process one. One worker on SQLite; two on a private Postgres."""

from __future__ import annotations

import importlib.util
import queue
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import IO

import pytest

from tests.dbos.support import NO_DBOS, skip_without_sqlite, sqlite_url, start_worker
from tests.helpers import run_carlang

pytest.importorskip("dbos", reason=NO_DBOS)

from carlang_runtime.planner import ToolFeedback, ToolStats  # noqa: E402

EXAMPLE = Path(__file__).parents[2] / "examples" / "planning" / "deploy_plans.car"
SWEEP = ["--sweep", "cost_weight=0:1:0.25", "--sweep", "monte_carlo_weight=0.2,0.8"]
LARGE = ["--set", "monte_carlo_trials=25000", "--set", "seed=7"]  # three batches of trials


def carlang(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_carlang(*args, cwd=cwd, timeout=300)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(EXAMPLE, tmp_path / "plans.car")
    feedback = ToolFeedback(
        stats={
            "build": ToolStats(10, 9, 500.0, 10),
            "canary": ToolStats(10, 7, 300.0, 10),
            "promote": ToolStats(10, 8, 100.0, 10),
            "smoke_test": ToolStats(20, 15, 100.0, 20),
        }
    )
    feedback.save(tmp_path / "feedback.json")
    return tmp_path


def _worker(database: str, name: str, cwd: Path, workers: list[subprocess.Popen[str]]) -> None:
    start_worker(database, "--id", name, "--concurrency", "1", cwd=cwd, started=workers)


def _sending(database: str) -> str:
    """What a command says on stderr, once, as it first sends tasks to the workers."""
    return (
        f"sending tasks to carlang_planner in {database}: the workers on it take them"
        f" (start one with: carlang worker --database {database})\n"
    )


def _done(database: str, tasks: int, how: str) -> str:
    """What a command says on stderr at the end: how many tasks, and how they were had."""
    return f"done: {tasks} task(s) on carlang_planner in {database} ({tasks} {how})\n"


def _same_output_on_the_workers(project: Path, database: str, batch: str) -> None:
    """Each experiment in process, then on the workers: the same bytes on stdout, and on
    stderr the in-process lines between one line that says where the tasks go and one that
    counts them (not a line per candidate's estimate). The same command again collects the
    tasks done, and says so, instead of saying it queued them."""
    common = ["rank", "plans.car", "--feedback", "feedback.json"]
    sweep_tasks = -(-10 // int(batch))  # ten grid points
    experiments = [
        ([*SWEEP, "--format", "csv"], sweep_tasks),
        # each point's estimate: three batches, on the worker that ranks the point
        ([*SWEEP, *LARGE, "--format", "json"], sweep_tasks),
        # one ranking: each of its three candidates' estimates, three batches on the workers
        ([*LARGE, "--format", "json"], 3 * 3),
    ]
    for extra, tasks in experiments:
        here = carlang(*common, *extra, cwd=project)
        assert here.returncode == 0, here.stderr
        on_workers = ["--backend", "dbos", "--database", database, "--batch", batch]
        there = carlang(*common, *extra, *on_workers, cwd=project)
        assert there.returncode == 0, there.stderr
        assert there.stdout == here.stdout, extra
        assert there.stderr == (
            _sending(database) + here.stderr + _done(database, tasks, "queued now")
        ), extra
        again = carlang(*common, *extra, *on_workers, cwd=project)
        assert again.returncode == 0, again.stderr
        assert again.stdout == here.stdout, extra
        collected = _done(database, tasks, "done by an earlier run, collected")
        assert again.stderr == here.stderr + collected, extra


def _executors(database: str) -> Counter[tuple[str, str]]:
    from dbos import DBOSClient

    client = DBOSClient(system_database_url=database)
    try:
        return Counter(
            (w.name, w.executor_id or "")
            for w in client.list_workflows()
            if w.name in ("carlang_rank_batch", "carlang_monte_carlo_batch", "carlang_search_batch")
            and w.status == "SUCCESS"
        )
    finally:
        client.destroy()


@pytest.mark.slow
def test_a_sweep_on_one_sqlite_worker_gives_the_in_process_output(
    project: Path, workers: list[subprocess.Popen[str]]
) -> None:
    skip_without_sqlite()
    database = sqlite_url(project)
    misuse = carlang("rank", "plans.car", "--batch", "2", cwd=project)
    assert misuse.returncode == 2 and "go with --backend dbos" in misuse.stderr
    _worker(database, "w1", project, workers)
    _same_output_on_the_workers(project, database, "4")
    done = _executors(database)
    assert done[("carlang_rank_batch", "w1")] == 3 + 3  # ten points in batches of four, twice
    assert done[("carlang_monte_carlo_batch", "w1")] == 3 * 3  # three candidates, 3 batches


@pytest.mark.slow
@pytest.mark.scale
def test_a_sweep_on_two_postgres_workers_gives_the_in_process_output(
    project: Path, workers: list[subprocess.Popen[str]], postgres_database: str
) -> None:
    for name in ("p1", "p2"):
        _worker(postgres_database, name, project, workers)
    _same_output_on_the_workers(project, postgres_database, "1")
    done = _executors(postgres_database)
    by_worker = Counter(executor for (name, executor), n in done.items() for _ in range(n))
    assert sum(n for (name, _), n in done.items() if name == "carlang_rank_batch") == 20
    assert by_worker["p1"] > 0 and by_worker["p2"] > 0, done  # every worker took some


@pytest.mark.slow
def test_a_sweep_without_a_worker_says_so_then_a_worker_serves_it(
    project: Path, workers: list[subprocess.Popen[str]], postgres_database: str
) -> None:
    """No worker on the database: the command says so on stderr (it waited in silence, for
    ever); a worker started then serves it, and the output is the in-process one."""
    rank = ["rank", "plans.car", "--feedback", "feedback.json", *SWEEP, "--format", "csv"]
    here = carlang(*rank, cwd=project)
    assert here.returncode == 0, here.stderr
    with subprocess.Popen(
        [sys.executable, "-m", "carlang", *rank, "--backend", "dbos"]
        + ["--database", postgres_database],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as command:
        try:
            assert command.stderr is not None and command.stdout is not None
            lines = _lines_of(command.stderr)
            assert lines.get(timeout=60) == _sending(postgres_database)
            assert lines.get(timeout=60) == (
                f"no worker serving carlang_planner has been seen on {postgres_database} in the"
                " last 15s: 1 task(s) wait for one (start one with: carlang worker --database"
                f" {postgres_database})\n"
            )
            _worker(postgres_database, "w1", project, workers)
            assert command.stdout.read() == here.stdout
            assert command.wait(timeout=120) == 0
            rest = "".join(iter(lambda: lines.get(timeout=10), ""))
            rest = rest.replace("a worker now serves carlang_planner (w1); waiting for it\n", "")
            assert rest == here.stderr + _done(postgres_database, 1, "queued now")
        finally:
            command.kill()


def _lines_of(stream: IO[str]) -> queue.Queue[str]:
    """The lines of `stream` as they come, read by a thread; "" once it ends."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line)
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    return lines


@pytest.mark.slow
def test_a_batch_that_fails_on_a_worker_is_one_error_naming_it(
    project: Path, workers: list[subprocess.Popen[str]]
) -> None:
    from carlang_runtime.errors import CarlangRuntimeError

    from carlang_dbos.experiments import SEARCH_WORKFLOW, Experiments

    skip_without_sqlite()
    database = sqlite_url(project)
    _worker(database, "w1", project, workers)
    said: list[str] = []
    with (
        Experiments(database, said.append) as experiments,
        pytest.raises(CarlangRuntimeError, match=r"^batch [12] of 2 failed on a worker: "),
    ):
        experiments._run(SEARCH_WORKFLOW, [[{"not": "a batch"}], [{"nor": "this"}]])
    assert len(said) == 1 and said[0].startswith("sending tasks to carlang_planner")


def _search_project(project: Path) -> list[str]:
    """A generated dataset with recorded outcomes and a space: the search's arguments."""
    from carlang_runtime.experiments.generate import generate_tasks, record_runs, write_groups

    tasks = generate_tasks(8, seed=5, candidates=(3, 4))
    write_groups(tasks, project / "tasks.jsonl")
    record_runs(tasks, project / "runs.jsonl", runs=4, seed=5)
    (project / "space.toml").write_text(
        "cost_weight = { min = 0, max = 0.6, step = 0.2 }\npolicy_weight = [0.0, 1.0]\n"
        "monte_carlo_weight = [0.0, 1.0]\nmonte_carlo_trials = [100]\n"
    )
    return ["planner", "search", "tasks.jsonl", "--outcomes", "runs.jsonl"] + [
        "--feedback",  # (without it, the Monte Carlo settings change nothing, and it warns)
        "runs.jsonl",
        "--space",
        "space.toml",
        "--ablate",
        "--batch",
        "5",
    ]


def _same_search_on_the_workers(project: Path, database: str) -> None:
    """A grid search (kfold) and an optuna one, in process then on the workers: the same
    stdout and the same chosen config, byte for byte."""
    common = _search_project(project)
    searches = [["--split", "kfold 2"]]
    if importlib.util.find_spec("optuna") is not None:
        searches.append(["--method", "optuna", "--trials", "6", "--split", "60:40"])
    for extra in searches:
        here = carlang(*common, *extra, "--workers", "1", "-o", "here.json", cwd=project)
        assert here.returncode == 0, here.stderr
        on_workers = ["--backend", "dbos", "--database", database, "-o", "there.json"]
        there = carlang(*common, *extra, *on_workers, cwd=project)
        assert there.returncode == 0, there.stderr
        assert there.stderr.startswith(_sending(database)), there.stderr
        assert there.stderr.count("sending tasks") == 1 and there.stderr.count("done: ") == 1
        assert there.stdout.replace("there.json", "here.json") == here.stdout, extra
        assert (project / "there.json").read_text() == (project / "here.json").read_text()


@pytest.mark.slow
def test_a_search_on_one_sqlite_worker_gives_the_in_process_output(
    project: Path, workers: list[subprocess.Popen[str]]
) -> None:
    skip_without_sqlite()
    database = sqlite_url(project)
    misuse = carlang(*_search_project(project), "--database", database, cwd=project)
    assert misuse.returncode == 2 and "goes with --backend dbos" in misuse.stderr
    _worker(database, "w1", project, workers)
    _same_search_on_the_workers(project, database)
    done = _executors(database)
    # 16 points in batches of 5, on each fold's training tasks, then on all: 4 x 3, and the
    # held-out judging and the ablation, one batch each
    assert done[("carlang_search_batch", "w1")] >= 12


@pytest.mark.slow
@pytest.mark.scale
def test_a_search_on_two_postgres_workers_gives_the_in_process_output(
    project: Path, workers: list[subprocess.Popen[str]], postgres_database: str
) -> None:
    for name in ("p1", "p2"):
        _worker(postgres_database, name, project, workers)
    _same_search_on_the_workers(project, postgres_database)
    done = _executors(postgres_database)
    searched = {e: n for (name, e), n in done.items() if name == "carlang_search_batch"}
    assert searched.get("p1", 0) > 0 and searched.get("p2", 0) > 0, done


def test_a_task_sent_to_the_workers_keeps_only_what_its_plan_wrote() -> None:
    """A plan's `target actions 3` sets that alone: after the trip through the queue, the
    workers still take cost_weight from the config, as in process (a dump of every field made
    the cost target's defaults the plan's own settings there)."""
    from carlang_runtime import ir
    from carlang_runtime.experiments import Task
    from carlang_runtime.planner import PlannerConfig, plan_config

    from carlang_dbos.experiments import task_document, task_from_document

    target = ir.CostTarget.model_construct(target_actions=3)
    plan = ir.Plan.model_construct(name="p", candidates=["a"], settings={}, cost_target=target)
    task = Task(id="t", candidates=[ir.ActionProposal(id="a", actions=[])], plan=plan)
    sent = task_from_document(task_document(task))
    base = PlannerConfig().with_settings({"cost_weight": 0.9})
    assert sent.plan is not None
    here, there = plan_config(plan, base), plan_config(sent.plan, base)
    assert (there.cost_weight, there.target_actions) == (here.cost_weight, here.target_actions)
    assert there.cost_weight == 0.9
