"""Planner experiments at the size of a real study: 50 tasks x 5 candidates, every candidate run
20 times (5,000 recorded runs, through the real runtime, into a JSONL event log).

- eval: what `carlang planner eval` does: read the dataset (JSONL groups), join the 5,000 runs
  from the log, load the learned feedback file, rank every task (Monte Carlo 1,000 trials per
  candidate) and compute every metric with 1,000 bootstrap resamples, for carlang and the three
  baselines. Target 2 s.
- learn: `carlang planner learn` on the log (once; `--feedback` reuses its file).
- search: a 400-point grid over four weights, train/test split, with the feature table and
  Monte Carlo computed once. Target 20 s.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from carlang_runtime.experiments import Outcomes, evaluate, load_groups
from carlang_runtime.experiments.generate import generate_tasks, record_runs, write_groups
from carlang_runtime.experiments.search import parse_space, search
from carlang_runtime.planner import PlannerConfig, ToolFeedback

from .timing import Row, median_time, print_table

__all__ = ["run"]

SPACE = {
    "cost_weight": {"min": 0.0, "max": 0.9, "step": 0.1},  # 10
    "policy_weight": [0.0, 0.5, 1.0, 0.25, 0.75],  # 5
    "monte_carlo_weight": [0.0, 0.5, 0.75, 1.0],  # 4
    "feedback_weight": [0.0, 0.5],  # 2
}


def run(quick: bool = False) -> list[Row]:
    """Run the experiments benchmark and print it."""
    repeat = 1 if quick else 3
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        tasks = generate_tasks(50, seed=1, candidates=(5, 5))
        dataset = root / "tasks.jsonl"
        write_groups(tasks, dataset)
        log = root / "runs.jsonl"
        started = time.perf_counter()
        runs = record_runs(tasks, log, runs=20, seed=1)
        recording = time.perf_counter() - started
        learned = root / "feedback.json"

        def learn() -> None:
            ToolFeedback.from_log(log).save(learned)

        learn_time = median_time(learn, repeat=1, warmup=0)

        def eval_all() -> None:
            evaluate(
                load_groups(dataset),
                Outcomes.load([log]),
                PlannerConfig(),
                ToolFeedback.load(learned),
                resamples=1000,
            )

        eval_time = median_time(eval_all, repeat=repeat, warmup=0)
        outcomes = Outcomes.load([log])
        feedback = ToolFeedback.load(learned)
        space = parse_space(SPACE)

        def search_all() -> None:
            search(tasks, outcomes, space, feedback=feedback, method="grid", split="50:50")

        search_time = median_time(search_all, repeat=1, warmup=0)
        size = log.stat().st_size / 1e6
    rows = [
        Row(f"eval: 50 tasks x 5 candidates, {runs:,} runs", eval_time, None, 2.0),
        Row(f"learn: {runs:,} runs ({size:.0f} MB JSONL)", learn_time, None, None),
        Row("search: 400-point grid, 50:50 split", search_time, None, 20.0),
    ]
    print_table(
        f"planner experiments (median; recording the runs took {recording:.1f} s)",
        rows,
        reference="-",
    )
    return rows
