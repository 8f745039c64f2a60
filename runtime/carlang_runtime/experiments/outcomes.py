"""What really happened when candidates ran: per (task, candidate), runs and successes.

From event logs: each run is one candidate (its proposal id) of the task named by the run's
`scope["task"]` (`rt.execute(p, scope={"task": "t1"})`); a run succeeded when its proposal
completed (not aborted or interrupted: an optional step passed over is fine), and its cost is
its wall time in milliseconds, from `run_started` to `proposal_completed`. A run without a task
counts for every task that has a candidate of that id.

From CSV: columns `task`, `candidate`, `success` (0/1, or a rate when `runs` is given), and
optionally `runs` and `cost` (mean cost per run).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..jsontext import loads
from ..textfile import read_input
from .dataset import DatasetError, Task

__all__ = ["Outcome", "Outcomes"]

#: The task of a run whose scope names none.
ANY_TASK = ""


@dataclass(slots=True)
class Outcome:
    """How one candidate fared over its recorded runs."""

    runs: int = 0
    successes: float = 0.0
    cost: float = 0.0  # summed over the runs

    @property
    def success_rate(self) -> float:
        """Successes over runs (0 with no run)."""
        return self.successes / self.runs if self.runs else 0.0

    @property
    def mean_cost(self) -> float:
        """Cost per run (0 with no run)."""
        return self.cost / self.runs if self.runs else 0.0


@dataclass
class Outcomes:
    """Outcomes keyed by (task, candidate); task `""` for runs that named no task."""

    by_key: dict[tuple[str, str], Outcome] = field(default_factory=dict)
    #: Where each key was first recorded (`file:line` of a CSV row, or the log's path).
    origins: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(
        self,
        task: str,
        candidate: str,
        runs: int,
        successes: float,
        cost: float,
        origin: str | None = None,
    ) -> None:
        """Count `runs` more runs of a candidate (`origin`: where they were recorded)."""
        if origin is not None:
            self.origins.setdefault((task, candidate), origin)
        outcome = self.by_key.setdefault((task, candidate), Outcome())
        outcome.runs += runs
        outcome.successes += successes
        outcome.cost += cost

    def for_task(self, task: str, candidates: Iterable[str]) -> dict[str, Outcome]:
        """The outcomes of a task's candidates (those with none are left out)."""
        out = {}
        for name in candidates:
            found = self.by_key.get((task, name)) or self.by_key.get((ANY_TASK, name))
            if found is not None:
                out[name] = found
        return out

    def unjoined(self, tasks: Sequence[Task]) -> list[tuple[str, str]]:
        """The (task, candidate) keys that name no candidate of `tasks` (a run without a task
        joins any task with a candidate of its id), in the order they were recorded."""
        names = {(task.id, c.id) for task in tasks for c in task.candidates}
        anywhere = {candidate for _, candidate in names}
        return [
            (task, candidate)
            for task, candidate in self.by_key
            if (task, candidate) not in names and not (task == ANY_TASK and candidate in anywhere)
        ]

    def describe_unjoined(self, tasks: Sequence[Task], shown: int = 3) -> str | None:
        """A line naming the outcomes that join no task's candidate (the first `shown`, then a
        count), or None when every one joins."""
        keys = self.unjoined(tasks)
        if not keys:
            return None
        parts = []
        for task, candidate in keys[:shown]:
            where = self.origins.get((task, candidate))
            name = f"task {task!r}, candidate {candidate!r}" if task else f"candidate {candidate!r}"
            parts.append(f"{where} ({name})" if where else name)
        more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
        return (
            f"{len(keys)} recorded outcome(s) name no candidate of the dataset's tasks and are"
            f" left out: {'; '.join(parts)}{more} (check the task and candidate ids)"
        )

    @property
    def runs(self) -> int:
        """Every run counted."""
        return sum(o.runs for o in self.by_key.values())

    def learn_events(self, events: Iterable[Mapping[str, Any]], origin: str | None = None) -> None:
        """Count the runs of event documents (as `read_event_log` returns them); `origin`:
        where they come from."""
        runs: dict[Any, list[Any]] = {}  # run -> [task, candidate, cost, status]
        for event in events:
            kind, run = event.get("kind"), event.get("trace_id")
            data = event.get("data") or {}
            if kind == "run_started":
                scope = data.get("scope") if isinstance(data, Mapping) else None
                task = scope.get("task") if isinstance(scope, Mapping) else None
                runs[run] = [task if isinstance(task, str) else ANY_TASK, None, None, None, None]
            entry = runs.get(run)
            if entry is None:
                continue
            if kind == "run_started":
                entry[2] = _seconds(event.get("timestamp"))
            elif kind == "proposal_completed" and isinstance(data, Mapping):
                # The last proposal of the run (a replan replaces it) decides its outcome.
                entry[1], entry[3] = event.get("proposal_id"), data.get("status")
                entry[4] = _seconds(event.get("timestamp"))
        for task, candidate, start, status, end in runs.values():
            if isinstance(candidate, str) and status is not None:
                cost = (end - start) * 1000.0 if start is not None and end is not None else 0.0
                success = 1.0 if status == "completed" else 0.0
                self.add(task, candidate, 1, success, cost, origin)

    def learn_csv(self, path: Path) -> None:
        """Count the rows of an outcomes CSV (see the module's docstring)."""
        text = read_input(path)
        reader = csv.DictReader(text.splitlines())
        missing = {"task", "candidate", "success"} - set(reader.fieldnames or ())
        if missing:
            raise DatasetError(f"{path}:1: missing column(s): {', '.join(sorted(missing))}")
        for number, row in enumerate(reader, 2):
            where = f"{path}:{number}"
            runs = _cell(row, "runs", where, _whole, "1", "a whole number of runs, 1 or more")
            rate = _cell(row, "success", where, _rate, None, "a number between 0 and 1")
            cost = _cell(row, "cost", where, _number, "0", "a number (the mean cost of a run)")
            task, candidate = row["task"] or ANY_TASK, row["candidate"]
            self.add(task, candidate, runs, rate * runs, cost * runs, f"{path}:{number}")

    @classmethod
    def load(cls, paths: Iterable[Path]) -> Outcomes:
        """Outcomes from event logs (`.db`, `.jsonl`) and outcome CSVs (`.csv`). Raises
        `EventLogError` or `DatasetError`, saying where."""
        outcomes = cls()
        for path in paths:
            if path.suffix == ".csv":
                outcomes.learn_csv(path)
            else:
                outcomes.learn_events(_run_events(path), str(path))
        return outcomes


def _run_events(path: Path) -> list[dict[str, Any]]:
    """The events of a log that outcomes need (a run's start and its proposal's end). A JSONL
    line that does not name either kind is not parsed: most of a log is whole proposals."""
    # Imported here: the engine imports the planner.
    from ..engine.journal import (
        SQLITE_SUFFIXES,
        check_event,
        json_line,
        read_event_log,
        read_log_text,
    )

    if path.suffix in SQLITE_SUFFIXES or not path.exists():
        return read_event_log(path)
    if path.suffix in _NOT_LOGS:
        raise DatasetError(f"{path}: {_NOT_LOGS[path.suffix]}; {_OUTCOMES_ARE}")
    lines = read_log_text(path).splitlines()
    _check_whole_document(path, "\n".join(lines))
    _check_first_event(path, lines)
    events = []
    for number, line in enumerate(lines, 1):
        if "run_started" not in line and "proposal_completed" not in line:
            continue
        record = json_line(path, number, line)
        check_event(path, number, line, record)
        events.append(record)
    return events


_OUTCOMES_ARE = (
    "--outcomes takes event logs of recorded runs (.db, .jsonl) or a CSV of task,candidate,success"
)
#: Files that are carlang inputs of another kind, by suffix: what they are.
_NOT_LOGS = {
    ".car": "a program, not recorded runs",
    ".toml": "a TOML file (a config or a space), not recorded runs",
}


def _check_whole_document(path: Path, text: str) -> None:
    """Refuse a file that is one JSON document other than an event (a feedback file written
    by `planner learn`, proposals), saying what it looks like."""
    try:
        document = loads(text)
    except json.JSONDecodeError:
        return  # several lines of events, or malformed: `_check_first_event` says which
    if isinstance(document, dict) and isinstance(document.get("kind"), str):
        return
    if isinstance(document, dict) and "tool_success_rates" in document:
        what = "a feedback file (`planner learn`'s), which goes to --feedback"
    elif isinstance(document, dict) and ("candidates" in document or "actions" in document):
        what = "a dataset (tasks or proposals), given as an argument, not with --outcomes"
    else:
        what = "a JSON document, not an event log (one JSON event per line)"
    raise DatasetError(f"{path}: {what}; {_OUTCOMES_ARE}")


def _check_first_event(path: Path, lines: Sequence[str]) -> None:
    """Refuse a JSONL file that is no event log: empty, or its first line no event (a
    dataset of tasks, proposals...). The rest is checked only where `_run_events` reads it."""
    from ..engine.journal import json_line, not_an_event

    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = json_line(path, number, line)
        if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
            raise not_an_event(path, number, record)
        return
    raise DatasetError(f"{path}: the file is empty: no recorded run; {_OUTCOMES_ARE}")


def _cell(
    row: Mapping[str, str | None],
    column: str,
    where: str,
    read: Callable[[str], float | None],
    default: str | None,
    expected: str,
) -> Any:
    """The value of an outcomes CSV row's `column` (`default` when empty), or a
    `DatasetError` naming the column and what it takes."""
    text = (row.get(column) or "").strip() or default
    value = read(text) if text is not None else None
    if value is None:
        shown = f"{text!r}" if text else "nothing"
        raise DatasetError(f"{where}: column `{column}`: {shown} is not {expected}")
    return value


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _rate(text: str) -> float | None:
    value = _number(text)
    return value if value is not None and 0.0 <= value <= 1.0 else None


def _whole(text: str) -> int | None:
    value = _number(text)
    return int(value) if value is not None and value.is_integer() and value >= 1 else None


def _seconds(stamp: Any) -> float | None:
    """An event's RFC 3339 timestamp as seconds since the epoch, or None."""
    if not isinstance(stamp, str):
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
