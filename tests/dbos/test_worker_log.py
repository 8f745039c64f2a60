"""What a worker's stderr shows of DBOS's own log: while its database cannot be reached, one line
(not the ~150 a second of DBOS's threads failing to connect, each with the driver's traceback),
and one when it is reached again; none of the warnings with internal object reprs that a
workflow cancelled as the worker stops gives; a run cancelled while the worker ran it, one line
of carlang's (not DBOS's warning and traceback). (DBOS is not launched here: the lines are
logged as DBOS logs them.)"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.dbos.support import NO_DBOS

pytest.importorskip("dbos", reason=NO_DBOS)

from dbos import error as dbos_error  # noqa: E402

from carlang_dbos import backend  # noqa: E402 - after the skip: imports dbos

#: Lines DBOS logged, ~150 a second, while the trial's Postgres was down.
OUTAGE = [
    "Exception encountered in queue thread for carlang_runs: (psycopg.OperationalError)"
    ' connection failed: connection to server at "127.0.0.1", port 55433 failed: Connection'
    " refused\n\tIs the server running on that host and accepting TCP/IP connections?\n"
    "(Background on this error at: https://sqlalche.me/e/21/e3q8)",
    "Notification listener error: consuming input failed: server closed the connection"
    " unexpectedly\n\tThis probably means the server terminated abnormally",
    "Exception polling schedules: Traceback (most recent call last):\n  File ...\n"
    "sqlalchemy.exc.OperationalError: (psycopg.OperationalError) connection failed",
]


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def _worker_log(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[logging.Logger, list[str], list[str]]]:
    """A worker's DBOS log (DBOS not launched) in the block: DBOS's logger, the lines it lets
    through (`_Kept.lines`) and what the worker says on stderr (its notices)."""
    monkeypatch.setattr(backend, "_launch_on", lambda *_: None)  # (no DBOS in this test)
    monkeypatch.setattr(backend.DBOS, "register_queue", lambda *_, **__: None)
    monkeypatch.setattr(backend, "sqlite_problem", lambda: None)
    dbos_log = logging.getLogger("dbos")
    kept = _Kept()
    dbos_log.addHandler(kept)
    said: list[str] = []
    backend.launch(database, executor="w1", notices=said.append)
    try:
        yield dbos_log, kept.lines, said
    finally:
        backend.shutdown()
        dbos_log.removeHandler(kept)


def test_an_outage_is_two_lines_and_a_cancelled_workflow_none(
    sqlite_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _worker_log(sqlite_database, monkeypatch) as (dbos_log, kept, said):
        for _ in range(50):
            for line in OUTAGE:
                dbos_log.warning(line)
        backend._heartbeats[0]._beat()  # the database is reached again
        dbos_log.warning(
            "Asyncio task cancelled for workflow or step functools.partial(<bound method"
            " DbosSteps._async_step of <carlang_dbos.backend.DbosSteps object at 0x7f49>>, ...)"
        )
        dbos_log.warning("a warning of another kind")
    assert kept == ["a warning of another kind"]
    assert said == [
        f"the runs database {sqlite_database} cannot be reached (connection failed: connection"
        ' to server at "127.0.0.1", port 55433 failed: Connection refused): retrying; the runs'
        " here wait for it",
        f"the runs database {sqlite_database} is reachable again",
    ]
    assert not [f for f in dbos_log.filters if isinstance(f, backend._DbosLog)]  # (gone with it)


def _failed(dbos_log: logging.Logger, error: BaseException) -> None:
    """Log `error` as DBOS logs the exception that ended a workflow's execution."""
    try:
        raise error
    except BaseException:
        dbos_log.error("Exception encountered in asynchronous workflow:", exc_info=True)


def test_a_run_cancelled_on_the_worker_is_one_line_without_a_traceback(
    sqlite_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cancelled = dbos_error.DBOSAwaitedWorkflowCancelledError
    with _worker_log(sqlite_database, monkeypatch) as (dbos_log, kept, said):
        # cancelled as it waited for an approval; during a tool call (its write refused)
        dbos_log.warning(
            "Workflow r1 was cancelled during execution. Waiting for the recorded outcome"
        )
        dbos_log.warning(
            "Workflow r2 is no longer owned by this execution. Waiting for the owner's"
            " recorded outcome"
        )
        _failed(dbos_log, cancelled("r1"))  # (no outcome will come: the run is cancelled)
        _failed(dbos_log, cancelled("r2"))
        _failed(dbos_log, cancelled("c4"))  # r3 awaited c4, which was cancelled: r3's error
    assert said == [
        f"run r{n} was cancelled; resume with `carlang runs resume r{n} --database"
        f" {sqlite_database}`"
        for n in (1, 2)
    ]
    assert kept == ["Exception encountered in asynchronous workflow:"]  # (r3's)
