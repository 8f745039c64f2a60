"""The event log of a run that a new execution takes up (a recovered or resumed DBOS workflow
logs its events again from the first, with the same sequence numbers): what it logs again is
skipped, everything after it is written, even where an execution that stopped cleanly (a worker
stopped with SIGTERM, Ctrl-C on a foreground run) already used those numbers for the events it
logged as it stopped. (Through real processes: test_stops.py.)"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.dbos.support import NO_DBOS

pytest.importorskip("dbos", reason=NO_DBOS)

from carlang_runtime.engine import SqliteSink  # noqa: E402
from carlang_runtime.engine.events import Event  # noqa: E402

from carlang_dbos.backend import _sink  # noqa: E402 - after the skip: imports dbos

RUN = "r1"

#: What the first execution logs before it waits for `ship`'s approval: its replay logs them
#: again, the same ones in the same order.
PREFIX: list[tuple[str, str | None, dict[str, Any] | None]] = [
    ("run_started", None, {}),
    ("proposal_received", None, {}),
    ("action_validated", "a", None),
    ("action_executing", "a", None),
    ("action_succeeded", "a", {"output": "A"}),
    ("action_validated", "ship", None),
]

#: What the first execution logs as it stops (its worker stopped cleanly): no replay logs it.
STOPPED = [
    ("action_failed", "ship", {"error": "interrupted: CancelledError", "interrupted": True}),
    ("state_rollback", None, {"interrupted": True, "transitions": 0}),
    ("proposal_completed", None, {"status": "interrupted", "reason": "CancelledError"}),
    ("run_completed", None, {"status": "interrupted"}),
]

#: What the next execution logs after the prefix: the approval it got, and the rest.
AFTER = [
    ("approval_recorded", "ship", {"approved": True}),
    ("action_executing", "ship", None),
    ("action_succeeded", "ship", {"output": "shipped"}),
    ("proposal_completed", None, {"status": "completed"}),
    ("run_completed", None, {"status": "completed"}),
]


def _write(path: Path, events: list[tuple[str, str | None, dict[str, Any] | None]]) -> None:
    """Log `events` as one execution of run RUN does: numbered from 1."""
    sink = _sink(str(path), RUN)
    for seq, (kind, action, data) in enumerate(events, start=1):
        sink.write(Event(seq, kind, float(seq), RUN, "p", action, data))
    sink.close()


def _logged(path: Path) -> list[tuple[str, str | None]]:
    with closing(sqlite3.connect(path)) as connection, connection:
        rows = connection.execute("SELECT kind, action_id FROM events ORDER BY id").fetchall()
    return [(str(kind), action) for kind, action in rows]


def _kinds(events: list[tuple[str, str | None, dict[str, Any] | None]]) -> list[Any]:
    return [(kind, action) for kind, action, _ in events]


def test_a_run_taken_up_after_a_clean_stop_logs_every_event_after_the_stop(tmp_path: Path) -> None:
    log = tmp_path / "run.db"
    SqliteSink(log).close()
    _write(log, PREFIX + STOPPED)  # the first execution, stopped as it waited
    _write(log, PREFIX + AFTER)  # the next one: the prefix again, then what it did
    assert _logged(log) == _kinds(PREFIX + STOPPED + AFTER)


def test_a_call_the_stop_cut_short_is_logged_again_as_it_is_made_again(tmp_path: Path) -> None:
    log = tmp_path / "run.db"
    calling = [*PREFIX, ("action_executing", "ship", None)]  # stopped during the call
    _write(log, calling + STOPPED)
    _write(log, calling + AFTER[2:])  # the call made again, and the rest
    both = _kinds(calling + STOPPED + [("action_executing", "ship", None), *AFTER[2:]])
    assert _logged(log) == both
    # A third execution (the run's outcome was not recorded: its process was killed as it
    # ended) logs nothing again of what the two before logged.
    _write(log, calling + AFTER[2:])
    assert _logged(log) == both


def test_a_replay_after_a_hard_kill_logs_nothing_twice(tmp_path: Path) -> None:
    log = tmp_path / "run.db"
    _write(log, PREFIX)  # killed (SIGKILL) as it waited: nothing logged as it stopped
    _write(log, PREFIX + AFTER)
    assert _logged(log) == _kinds(PREFIX + AFTER)
