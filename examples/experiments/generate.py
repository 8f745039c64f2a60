"""Generate the experiment benchmark: tasks of candidate plans over tools that fail at known
rates, and real runs of every candidate recorded in an event log.

    python examples/experiments/generate.py [--tasks 10] [--runs 5] [--seed 7] [--out DIR]

writes DIR/tasks.jsonl (one task per line: its id and candidate proposals, tools, policies)
and DIR/runs.jsonl (the runtime's event log of every run, each with scope task=ID).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from carlang_runtime.experiments.generate import generate_tasks, record_runs, write_groups


def _at_least_one(text: str) -> int:
    """A count of 1 or more (`--tasks -2` made nothing and said it had succeeded)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


def main() -> None:
    """Parse the arguments, generate, record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=_at_least_one, default=10)
    parser.add_argument("--runs", type=_at_least_one, default=5, help="runs per candidate")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    tasks = generate_tasks(args.tasks, args.seed, candidates=(3, 4))
    args.out.mkdir(parents=True, exist_ok=True)
    write_groups(tasks, args.out / "tasks.jsonl")
    log = args.out / "runs.jsonl"
    log.unlink(missing_ok=True)
    made = record_runs(tasks, log, args.runs, args.seed)
    print(f"{len(tasks)} tasks, {made} runs recorded in {log}")


if __name__ == "__main__":
    main()
