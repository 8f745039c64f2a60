"""What really happened when candidates ran: per (task, candidate), runs and successes.

From event logs: each run is one candidate (its proposal id) of the task named by the run's
`scope["task"]` (`rt.execute(p, scope={"task": "t1"})`); a run succeeded when its proposal
completed (not aborted or interrupted: an optional step passed over is fine), and its cost is
its wall time in milliseconds, from `run_started` to `proposal_completed`.

From CSV: columns `task`, `candidate`, `success` (0/1, or a rate when `runs` is given), and
optionally `runs` and `cost` (mean cost per run).

A run that names no task (no `scope["task"]`, or an empty `task` cell) is joined to a task only
where that is unambiguous: the one task of the dataset with a candidate of its id (a dataset of
one task, or candidate ids unique across tasks; `Outcomes.resolve`). Where several tasks have
such a candidate, which one it ran for is unknown: it is left out, and `warnings` says so. A
`scope["task"]` that is not a string joins nothing, and is warned about too.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..jsontext import loads
from ..textfile import read_input
from .dataset import DatasetError, Task

__all__ = ["Outcome", "Outcomes", "RUN_KINDS", "read_log", "unseen_runs", "repeated_note"]

#: The task of a run whose scope names none (see the module's docstring).
ANY_TASK = ""


@dataclass(slots=True)
class Outcome:
    """How one candidate fared over its recorded runs."""

    runs: int = 0
    successes: float = 0.0
    cost: float = 0.0  # summed over the runs whose cost was recorded
    #: The runs whose cost was recorded (a CSV row's empty `cost` cell, or a log's run
    #: without both times, records none: not a cost of 0).
    costed_runs: int = 0

    @property
    def success_rate(self) -> float:
        """Successes over runs (0 with no run)."""
        return self.successes / self.runs if self.runs else 0.0

    @property
    def mean_cost(self) -> float | None:
        """Cost per run whose cost was recorded; None when none was."""
        return self.cost / self.costed_runs if self.costed_runs else None


@dataclass
class Outcomes:
    """Outcomes keyed by (task, candidate); task `ANY_TASK` for runs that named no task."""

    by_key: dict[tuple[str, str], Outcome] = field(default_factory=dict)
    #: Where each key was first recorded (`file:line` of a CSV row, or the log's path).
    origins: dict[tuple[str, str], str] = field(default_factory=dict)
    #: Runs whose scope's task is not a string: (the log, that task), one per run; never joined.
    bad_tasks: list[tuple[str, Any]] = field(default_factory=list)
    #: Per log, how many of its runs an earlier log held too (their trace ids): counted once.
    repeated: list[tuple[str, int]] = field(default_factory=list)
    #: The outcome CSVs given again (the same file): read once.
    tables_again: list[str] = field(default_factory=list)
    #: Per log, how many of its runs never ended (no `proposal_completed`: interrupted, cut
    #: short, still running): not counted, and said so (they were dropped without a word).
    unfinished: list[tuple[str, int]] = field(default_factory=list)

    def add(
        self,
        task: str,
        candidate: str,
        runs: int,
        successes: float,
        cost: float | None,
        origin: str | None = None,
        costed_runs: int | None = None,
    ) -> None:
        """Count `runs` more runs of a candidate (`origin`: where they were recorded), and
        their total `cost` (None: not recorded) over `costed_runs` of them (default: all)."""
        if origin is not None:
            self.origins.setdefault((task, candidate), origin)
        outcome = self.by_key.setdefault((task, candidate), Outcome())
        outcome.runs += runs
        outcome.successes += successes
        if cost is not None:
            outcome.cost += cost
            outcome.costed_runs += runs if costed_runs is None else costed_runs

    def for_task(self, task: str, candidates: Iterable[str]) -> dict[str, Outcome]:
        """The outcomes of a task's candidates (those with none are left out). Runs that named
        no task count only once `resolve` has joined them to their task."""
        out = {}
        for name in candidates:
            found = self.by_key.get((task, name))
            if found is not None:
                out[name] = found
        return out

    def resolve(self, tasks: Sequence[Task]) -> Outcomes:
        """These outcomes with each run that named no task joined to the one task of `tasks`
        with a candidate of its id; one that several tasks have stays unjoined (`ambiguous`).
        Resolving twice changes nothing."""
        owners = _owners(tasks)
        out = Outcomes(
            bad_tasks=list(self.bad_tasks),
            repeated=list(self.repeated),
            tables_again=list(self.tables_again),
            unfinished=list(self.unfinished),
        )
        for (task, candidate), outcome in self.by_key.items():
            found = owners.get(candidate, [])
            at = found[0] if task == ANY_TASK and len(found) == 1 else task
            origin = self.origins.get((task, candidate))
            out.add(
                at,
                candidate,
                outcome.runs,
                outcome.successes,
                outcome.cost,
                origin,
                outcome.costed_runs,
            )
        return out

    def ambiguous(self, tasks: Sequence[Task]) -> list[str]:
        """The candidates of runs that named no task which several of `tasks` have: which
        task such a run was for is unknown, so it joins none."""
        owners = _owners(tasks)
        return [c for t, c in self.by_key if t == ANY_TASK and len(owners.get(c, ())) > 1]

    def unjoined(self, tasks: Sequence[Task], chosen: bool = False) -> list[tuple[str, str]]:
        """The (task, candidate) keys that name no candidate of `tasks` (a run without a task
        joins the one task with a candidate of its id, see `resolve`; one that several have is
        `ambiguous`, not counted here), in the order they were recorded. `chosen`: `tasks`
        are the few a user picked (`--plan`), so the outcomes of other tasks are not counted
        (`of_other_tasks`)."""
        names = {(task.id, c.id) for task in tasks for c in task.candidates}
        anywhere = {candidate for _, candidate in names}
        return [
            (task, candidate)
            for task, candidate in self.by_key
            if (task, candidate) not in names
            and not (task == ANY_TASK and candidate in anywhere)
            and not (chosen and _another_task(task, tasks))
        ]

    def of_other_tasks(self, tasks: Sequence[Task]) -> int:
        """How many recorded runs name a task other than `tasks`' (left out when `tasks` are
        the ones a user picked)."""
        return sum(o.runs for (task, _), o in self.by_key.items() if _another_task(task, tasks))

    def runs_of(self, keys: Iterable[tuple[str, str]]) -> int:
        """How many runs these (task, candidate) keys recorded."""
        return sum(self.by_key[key].runs for key in keys)

    def warnings(self, tasks: Sequence[Task], chosen: bool = False) -> list[str]:
        """A line for each kind of recorded outcome that joins no task's candidate: those that
        name none (`describe_unjoined`; `chosen`: see `unjoined`), runs without a task whose
        candidate several tasks have, and runs whose scope's task is not a string."""
        unjoined = self.describe_unjoined(tasks, chosen=chosen)
        lines = [unjoined] if unjoined is not None else []
        ambiguous = self.ambiguous(tasks)
        if ambiguous:
            runs = self.runs_of((ANY_TASK, c) for c in ambiguous)
            where = self.origins.get((ANY_TASK, ambiguous[0]))
            owners = _owners(tasks)
            shared = list(dict.fromkeys(t for c in ambiguous for t in owners[c]))
            lines.append(
                f"{runs} recorded run(s) name no task"
                + (f" (the first at {where})" if where else "")
                + f" and are left out: their candidate(s) ({_first(ambiguous)}) are candidates"
                f" of several tasks ({_first(shared)}), so which task they ran for is unknown"
                ' (record runs with scope={"task": ID}, or fill the CSV\'s `task` column)'
            )
        if self.bad_tasks:
            where, task = self.bad_tasks[0]
            lines.append(
                f"{len(self.bad_tasks)} recorded run(s) are left out: their scope's task is not"
                f" a string (the first, in {where}, is {json.dumps(task)[:40]}); a task is"
                ' named by its id, a string: scope={"task": "t1"}'
            )
        return lines

    def describe_unjoined(
        self, tasks: Sequence[Task], shown: int = 3, chosen: bool = False
    ) -> str | None:
        """A line naming the outcomes that join no task's candidate (the first `shown`, then a
        count; `chosen`: see `unjoined`), and how many runs they recorded, or None when every
        one joins."""
        keys = self.unjoined(tasks, chosen)
        if not keys:
            return None
        parts = []
        for task, candidate in keys[:shown]:
            where = self.origins.get((task, candidate))
            name = f"task {task!r}, candidate {candidate!r}" if task else f"candidate {candidate!r}"
            parts.append(f"{where} ({name})" if where else name)
        more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
        return (
            f"{self.runs_of(keys)} recorded run(s) of {len(keys)} candidate(s) name no"
            f" candidate of the dataset's tasks and are left out: {'; '.join(parts)}{more}"
            f" ({_renamed(keys, tasks) or 'check the task and candidate ids'})"
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
                runs[run] = [ANY_TASK if task is None else task, None, None, None, None]
            entry = runs.get(run)
            if entry is None:
                continue
            if kind == "run_started":
                entry[2] = _seconds(event.get("timestamp"))
            elif kind == "proposal_completed" and isinstance(data, Mapping):
                # The last proposal of the run (a replan replaces it) decides its outcome.
                entry[1], entry[3] = event.get("proposal_id"), data.get("status")
                entry[4] = _seconds(event.get("timestamp"))
        ended = [entry for entry in runs.values() if entry[3] is not None]
        if len(ended) < len(runs):
            self.unfinished.append((origin or "the log", len(runs) - len(ended)))
        for task, candidate, start, status, end in ended:
            if isinstance(candidate, str):
                cost = (end - start) * 1000.0 if start is not None and end is not None else None
                success = 1.0 if status == "completed" else 0.0
                if isinstance(task, str):
                    self.add(task, candidate, 1, success, cost, origin)
                else:  # (7, or an object: matched to no task, and said so)
                    self.bad_tasks.append((origin or "the log", task))

    def learn_csv(self, path: Path) -> None:
        """Count the rows of an outcomes CSV (see the module's docstring)."""
        text = read_input(path)
        # (no cell limit below the text's own size: a long cell is read, and an unclosed
        # quote reaches the end of the text and says so)
        limit = csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
        try:
            self._learn_csv_rows(text, path)
        finally:
            csv.field_size_limit(limit)

    def _learn_csv_rows(self, text: str, path: Path) -> None:
        # (newline="" in `_NumberedLines`: a quoted cell may hold a line break, as `rank
        # --format csv` writes one; skipinitialspace: `task, candidate, success` names the
        # columns it seems to; strict: a quoted cell never closed is an error, not the rest
        # of the file in a cell)
        lines = _NumberedLines(text)
        reader = csv.DictReader(lines, skipinitialspace=True, strict=True)
        header = _csv_header(reader, path)
        if not header:  # (an empty file, or a blank first line: the reader takes it as the header)
            what = "the file is empty" if not text.strip() else "the first line is blank"
            raise DatasetError(
                f"{path}:1: {what}: an outcomes CSV starts with its header,"
                " `task,candidate,success` (and `runs`, `cost` if given), then a row per run"
            )
        missing = {"task", "candidate", "success"} - set(header)
        if missing:
            raise DatasetError(f"{path}:1: missing column(s): {', '.join(sorted(missing))}")
        twice = sorted({name for name in header if header.count(name) > 1})
        if twice:  # (the last one's cells were used, silently)
            raise DatasetError(f"{path}:1: column(s) given twice: {', '.join(twice)}")
        for row, first_line in _csv_rows(reader, lines, path):
            where = f"{path}:{first_line}"
            runs = _cell(row, "runs", where, _whole, "1", "a whole number of runs, 1 or more")
            rate = _cell(row, "success", where, _rate, None, "a number between 0 and 1")
            if rate not in (0.0, 1.0) and not (row.get("runs") or "").strip():
                raise DatasetError(
                    f"{where}: column `success`: {rate} is a rate, which is the rate of a number"
                    " of runs: give it in a `runs` column (a row without one is a single run,"
                    " whose success is 0 or 1)"
                )
            given = (row.get("cost") or "").strip()  # (empty: no cost recorded, not a cost of 0)
            cost = _cell(row, "cost", where, _number, None, _COST) if given else None
            task, candidate = row["task"] or ANY_TASK, row["candidate"]
            self.add(
                task, candidate, runs, rate * runs, None if cost is None else cost * runs, where
            )

    @classmethod
    def load(cls, paths: Iterable[Path]) -> Outcomes:
        """Outcomes from event logs (`.db`, `.jsonl`) and outcome CSVs (`.csv`). Raises
        `EventLogError` or `DatasetError`, saying where."""
        outcomes = cls()
        seen: set[str] = set()
        tables: set[Path] = set()
        for path in paths:
            if path.suffix == ".csv":
                if path.resolve() in tables:  # (its rows name no run: only the file tells)
                    outcomes.tables_again.append(str(path))
                    continue
                tables.add(path.resolve())
                outcomes.learn_csv(path)
                continue
            events, repeated = unseen_runs(read_log(path, _OUTCOMES_ARE, RUN_KINDS), seen)
            if repeated:
                outcomes.repeated.append((str(path), repeated))
            outcomes.learn_events(events, str(path))
        return outcomes


def _csv_header(reader: csv.DictReader[str], path: Path) -> list[str]:
    """The column names of an outcomes CSV, or a `DatasetError` where its first row is not CSV."""
    try:
        return list(reader.fieldnames or [])
    except csv.Error as exc:
        raise DatasetError(f"{path}:1: {_csv_problem(exc)}") from None


class _NumberedLines:
    """The lines of a CSV text, as the csv module reads them (`newline=""`: a line break
    inside a quoted cell is kept), remembering the number of the first line that is not
    blank since `mark`: where the next row starts (the reader skips blank lines, and a
    quoted cell may hold line breaks: its own count is the line a row ends on)."""

    def __init__(self, text: str) -> None:
        self._lines = iter(io.StringIO(text, newline=""))
        self._number = 0
        self.start: int | None = None

    def __iter__(self) -> _NumberedLines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self._number += 1
        if self.start is None and line.strip("\r\n"):
            self.start = self._number
        return line

    def mark(self) -> None:
        """Start looking for the next row's first line."""
        self.start = None


def _csv_rows(
    reader: csv.DictReader[str], lines: _NumberedLines, path: Path
) -> Iterator[tuple[dict[str, str], int]]:
    """Each row of an outcomes CSV with the line it starts on, or a `DatasetError` there."""
    while True:
        lines.mark()
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DatasetError(f"{path}:{lines.start or 1}: {_csv_problem(exc)}") from None
        yield row, lines.start or 1


def _csv_problem(exc: csv.Error) -> str:
    """What Python's csv module found wrong, said as how to fix it."""
    never_closed = (
        'the `"` that opens it needs another to close it (a quote inside a quoted cell is'
        ' written twice: `""`)'
    )
    if "unexpected end of data" in str(exc):
        return f"a quoted cell is never closed: {never_closed}"
    return f"malformed CSV: {exc} (a quoted cell ends at its closing quote, then a comma)"


def _another_task(task: str, tasks: Sequence[Task]) -> bool:
    """Whether outcomes recorded for `task` are of none of `tasks`, even by the plan's name
    a second file renamed `file:plan` (those are the chosen task's, under its old name)."""
    return task != ANY_TASK and not any(t.id == task or t.id.endswith(f":{task}") for t in tasks)


def _renamed(keys: Sequence[tuple[str, str]], tasks: Sequence[Task]) -> str | None:
    """The hint for outcomes naming a plan's task by the plan's name where the dataset calls
    it `file:plan` (several files given: `newsletter` became `email:newsletter`, and every
    outcome recorded under the plan's name was left out), or None."""
    for task, _candidate in keys:
        if task == ANY_TASK:
            continue
        found = [t.id for t in tasks if t.id.endswith(f":{task}")]
        if found:
            return (
                f"with several files given, a plan's task is FILE:PLAN: task {task!r} is"
                f" {found[0]!r} here; give its file alone, or record the runs under that name"
            )
    return None


def unseen_runs(events: list[dict[str, Any]], seen: set[str]) -> tuple[list[dict[str, Any]], int]:
    """The events of a log whose run (trace id) is not in `seen`, which it then holds too,
    and how many runs were left out: the same log given twice, or copies that overlap, count
    each run once."""
    traces = {e["trace_id"] for e in events if isinstance(e.get("trace_id"), str)}
    repeated = traces & seen
    seen |= traces
    if repeated:
        events = [e for e in events if e.get("trace_id") not in repeated]
    return events, len(repeated)


def repeated_note(log: str, runs: int) -> str:
    """The note for `runs` of a log that an earlier one held (see `unseen_runs`)."""
    return (
        f"{log}: {runs} run(s) were read from an earlier log already (the same trace ids):"
        " each is counted once"
    )


def _owners(tasks: Sequence[Task]) -> dict[str, list[str]]:
    """Per candidate id, the tasks that have a candidate of that id."""
    owners: dict[str, list[str]] = {}
    for task in tasks:
        for candidate in task.candidates:
            found = owners.setdefault(candidate.id, [])
            if task.id not in found:
                found.append(task.id)
    return owners


def _first(names: Sequence[str], shown: int = 3) -> str:
    """The first `shown` names, then how many more."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


#: The events outcomes are counted from: a run's start and its proposal's end.
RUN_KINDS = ("run_started", "proposal_completed")


def read_log(path: Path, takes: str, kinds: Collection[str] = ()) -> list[dict[str, Any]]:
    """The events of a log of recorded runs (those of `kinds`, or all), as `planner eval`,
    `search` (`--outcomes`) and `learn` read one: `read_event_log`'s reading, after refusing a
    file that records no run (a program, TOML, a feedback file, a dataset, an empty file),
    saying what it looks like and what the option `takes`. Every line is parsed and checked,
    whatever `kinds`: a malformed line or a log cut short is refused by all three commands
    alike, in `read_event_log`'s words."""
    # Imported here: the engine imports the planner.
    from ..engine.journal import SQLITE_SUFFIXES, read_event_log, read_log_lines, read_log_text

    if path.suffix in SQLITE_SUFFIXES or not path.exists():
        events = read_event_log(path)
        if not events and path.exists():
            raise DatasetError(f"{path}: the journal holds no event: no recorded run; {takes}")
        return [e for e in events if not kinds or e.get("kind") in kinds]
    if path.suffix in _NOT_LOGS:
        raise DatasetError(f"{path}: {_NOT_LOGS[path.suffix]}; {takes}")
    text = read_log_text(path)
    lines = text.splitlines()
    _check_whole_document(path, text, takes)
    _check_first_event(path, lines, takes)
    # Every line read as `read_event_log` reads it (learn, `events`, `replay`, `rank
    # --feedback`): a malformed line anywhere is refused, not passed over.
    return [e for e in read_log_lines(path, text) if not kinds or e.get("kind") in kinds]


_OUTCOMES_ARE = (
    "--outcomes takes event logs of recorded runs (.db, .jsonl) or a CSV of task,candidate,success"
)
#: Files that are carlang inputs of another kind, by suffix: what they are.
_NOT_LOGS = {
    ".car": "a program, not recorded runs",
    ".toml": "a TOML file (a config or a space), not recorded runs",
}


def _check_whole_document(path: Path, text: str, takes: str) -> None:
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
        what = "a dataset (tasks or proposals), which `rank`, `planner eval` and `search` take"
    else:
        what = "a JSON document, not an event log (one JSON event per line)"
    raise DatasetError(f"{path}: {what}; {takes}")


def _check_first_event(path: Path, lines: Sequence[str], takes: str) -> None:
    """Refuse a JSONL file that is no event log: empty, or its first line no event (a
    dataset of tasks, proposals...). The rest is checked only where `read_log` reads it."""
    from ..engine.journal import json_line, not_an_event

    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = json_line(path, number, line)
        if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
            raise not_an_event(path, number, record)
        return
    raise DatasetError(f"{path}: the file is empty: no recorded run; {takes}")


#: What an outcomes CSV's `cost` cell holds.
_COST = "a number (the mean cost of a run)"


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
        if not text:
            raise DatasetError(f"{where}: column `{column}` is empty; it needs {expected}")
        raise DatasetError(f"{where}: column `{column}`: {text!r} is not {expected}")
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
    if text.isascii() and text.isdigit():  # exactly (through a float, 10**23 became 10**23+x)
        return int(text) if int(text) >= 1 else None
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
