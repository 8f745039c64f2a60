"""Workers say they are alive (`carlang_workers` in the runs database), and a command that
queues planner tasks and waits for them says so when no worker serving the queue is seen,
instead of waiting in silence (a worker on another database, or none started)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.dbos.support import NO_DBOS, skip_without_sqlite, start_worker, wait_for

pytest.importorskip("dbos", reason=NO_DBOS)

from carlang_dbos import APP_VERSION, records  # noqa: E402 - after the skip: imports dbos
from carlang_dbos.experiments import Experiments  # noqa: E402


def test_a_worker_is_seen_while_it_beats_for_the_queues_it_serves(sqlite_database: str) -> None:
    records.beat(sqlite_database, "i1", "w1", None)  # every queue
    records.beat(sqlite_database, "i2", "gpu-1", ["gpu"])
    assert records.workers_seen(sqlite_database, "carlang_planner", within=15) == ["w1"]
    assert records.workers_seen(sqlite_database, "gpu", within=15) == ["gpu-1", "w1"]
    records.beat(sqlite_database, "i2", "gpu-1", ["gpu"])  # again: the same row, seen later
    records.forget_worker(sqlite_database, "i1")
    assert records.workers_seen(sqlite_database, "carlang_planner", within=15) == []
    time.sleep(0.3)
    assert records.workers_seen(sqlite_database, "gpu", within=0.1) == []  # not seen lately
    assert records.workers_seen(sqlite_database, "gpu", within=15) == ["gpu-1"]


def test_a_wait_says_when_no_worker_is_seen_and_when_one_is(sqlite_database: str) -> None:
    said: list[str] = []
    look = Experiments(sqlite_database, said.append)._worker_look()
    assert look.look("3 task(s) wait for one") is True
    assert said == [
        f"no worker serving carlang_planner has been seen on {sqlite_database} in the last 15s:"
        f" 3 task(s) wait for one (start one with: carlang worker --database {sqlite_database})"
    ]
    assert look.look("3 task(s) wait for one") is True
    assert len(said) == 1  # said once, not at every look
    records.beat(sqlite_database, "i1", "w9", ["carlang_planner"], APP_VERSION)
    assert look.look("2 task(s) wait for one") is False
    assert said[1:] == ["a worker now serves carlang_planner (w9); waiting for it"]


def test_the_way_to_start_a_worker_leaves_a_password_to_the_environment() -> None:
    hidden = Experiments("postgresql://ops:s3cret@db/runs")
    assert hidden._start_a_worker() == (
        "carlang worker, CARLANG_DATABASE set to the runs database's URL"
    )
    assert hidden._shown == "postgresql://ops:***@db/runs"
    shown = Experiments("postgresql://ops@db/runs")
    assert shown._start_a_worker() == "carlang worker --database postgresql://ops@db/runs"


def test_the_way_to_start_a_worker_names_a_tools_queue_not_carlangs_own() -> None:
    from carlang_dbos import start_a_worker

    database = "postgresql://ops@db/runs"
    assert start_a_worker(database, "carlang_runs") == f"carlang worker --database {database}"
    assert start_a_worker(database, "gpu") == f"carlang worker --database {database} --queue gpu"
    assert start_a_worker("postgresql://ops:s3cret@db/runs", "gpu") == (
        "carlang worker --queue gpu, CARLANG_DATABASE set to the runs database's URL"
    )


@pytest.mark.slow
def test_a_worker_process_is_seen_until_it_stops(
    sqlite_database: str, tmp_path: Path, workers: list[subprocess.Popen[str]]
) -> None:
    skip_without_sqlite()
    options = ["--id", "w7", "--queue", "gpu"]
    worker = start_worker(sqlite_database, *options, cwd=tmp_path, started=workers)
    wait_for(lambda: records.workers_seen(sqlite_database, "gpu", within=15) == ["w7"])
    assert records.workers_seen(sqlite_database, "carlang_planner", within=15) == []  # not its
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    assert records.workers_seen(sqlite_database, "gpu", within=15) == []  # it said it stopped
