"""Planner experiments: datasets of ranking tasks, tidy tables, evaluation against recorded
outcomes with baselines, and the search for planner settings.

dataset.py   Task; tasks from programs' plans, CAR JSON proposals, JSONL candidate groups
table.py     the tidy table of a dataset's rankings (config hash, version, seed, tie-breaks)
outcomes.py  Outcomes: per (task, candidate) runs and successes, from event logs or CSV
metrics.py   top-1 with ties, regret, Spearman, Kendall tau-b, bootstrap intervals
evaluate.py  evaluate: carlang's rankings and the baselines (CAR, fewest actions, random)
search.py    search: grid or random search of settings, train/test or k-fold, ablations
generate.py  a seeded benchmark: tools failing at known rates, recorded real runs
"""

from __future__ import annotations

from .dataset import DatasetError, Task, load_groups, load_proposals, rank_task, tasks_from_program
from .evaluate import Evaluation, evaluate
from .outcomes import Outcome, Outcomes
from .table import config_hash, table_rows, tie_breaks, write_csv

__all__ = [
    "Task",
    "DatasetError",
    "load_groups",
    "load_proposals",
    "tasks_from_program",
    "rank_task",
    "Outcome",
    "Outcomes",
    "Evaluation",
    "evaluate",
    "config_hash",
    "table_rows",
    "tie_breaks",
    "write_csv",
]
