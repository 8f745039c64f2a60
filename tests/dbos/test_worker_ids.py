"""A worker id is claimed in the runs database, atomically: of workers started at the same
moment with one id (both past the heartbeat check, which sees neither), exactly one runs; the
id of a worker that stopped, or stopped beating, is free again. On SQLite here, and on the
test run's Postgres (slow: a server)."""

from __future__ import annotations

import threading

import pytest

from tests.dbos.support import NO_DBOS

pytest.importorskip("dbos", reason=NO_DBOS)

from carlang_dbos import records  # noqa: E402 - after the skip: imports dbos
from carlang_dbos.backend import APP_VERSION  # noqa: E402


def claim(database: str, instance: str, worker: str = "w1", silent: float = 10.0) -> str | None:
    return records.claim_worker_id(database, worker, instance, silent)


def _claims_and_release(database: str) -> None:
    assert claim(database, "i1") is None
    assert claim(database, "i2") == "i1"  # held (claimed just now; its heartbeat comes later)
    assert claim(database, "i1") is None  # (its own: claimed again, as a restart would)
    assert claim(database, "i2", worker="w2") is None  # another id: free
    records.forget_worker(database, "i1")  # it stopped
    assert claim(database, "i3") is None
    records.beat(database, "i3", "w1", None, APP_VERSION)  # i3 serves, beats
    assert claim(database, "i4") == "i3"
    assert claim(database, "i4", silent=0.0) is None  # i3 silent past the limit: taken over
    assert claim(database, "i3") == "i4"


def _racers_one_wins(database: str) -> None:
    start = threading.Barrier(8)
    results: dict[str, str | None] = {}

    def race(instance: str) -> None:
        start.wait()
        results[instance] = claim(database, instance)

    threads = [threading.Thread(target=race, args=(f"r{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [instance for instance, holder in results.items() if holder is None]
    assert len(winners) == 1, results
    assert set(results.values()) == {None, winners[0]}


def test_an_id_is_claimed_once_and_freed_when_its_worker_stops(sqlite_database: str) -> None:
    _claims_and_release(sqlite_database)


def test_of_workers_started_together_with_one_id_one_runs(sqlite_database: str) -> None:
    _racers_one_wins(sqlite_database)


@pytest.mark.slow
def test_on_postgres_too(postgres_database: str) -> None:
    _claims_and_release(postgres_database)
    records.forget_worker(postgres_database, "i4")
    _racers_one_wins(postgres_database)
    records.dispose(postgres_database)
