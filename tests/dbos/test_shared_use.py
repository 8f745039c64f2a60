"""One runs database shared by many people's processes, the quick parts (SQLite, no worker):
the heartbeat carries the DBOS application version and only a worker of the work's version
counts as serving it; a worker's default id is its host's, and a second process with an id
that a live worker beats under is refused; `run --detach --format json` prints a JSON object;
a detached run is tagged with its version; `runs resume` hands a run to the runs queue, not
DBOS's own (which every process takes from). The end-to-end parts, through real processes,
are in test_shared_use_processes.py."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from tests.dbos.support import (
    GPU_PROGRAM,
    GPU_TOOLS,
    NO_DBOS,
    cancel,
    carlang,
    detach,
    resume,
    skip_without_sqlite,
    sqlite_url,
    unserved_at_detach,
    write_project,
)

pytest.importorskip("dbos", reason=NO_DBOS)

from carlang_runtime.errors import CarlangRuntimeError  # noqa: E402

from carlang_dbos import backend, records  # noqa: E402 - after the skip: imports dbos
from carlang_dbos.backend import APP_VERSION, WorkerLook  # noqa: E402


@pytest.fixture
def project(tmp_path: Path) -> Path:
    skip_without_sqlite()
    return write_project(tmp_path, GPU_PROGRAM, GPU_TOOLS)


# -- versions ------------------------------------------------------------------------------------


def test_only_a_worker_of_the_works_version_counts_as_serving_it(sqlite_database: str) -> None:
    records.beat(sqlite_database, "i1", "old-1", None, "carlang-0.1.0-steps1")  # every queue, old
    records.beat(sqlite_database, "i2", "new-gpu", ["gpu"], APP_VERSION)
    assert records.workers_seen(sqlite_database, "gpu", within=15) == ["new-gpu", "old-1"]
    assert records.workers_seen(sqlite_database, "gpu", within=15, version=APP_VERSION) == [
        "new-gpu"
    ]
    assert (
        records.workers_seen(sqlite_database, "carlang_runs", within=15, version=APP_VERSION) == []
    )
    assert records.workers_serving(sqlite_database, "carlang_runs", within=15) == [
        ("old-1", "carlang-0.1.0-steps1")
    ]


def test_a_look_says_when_only_workers_of_other_versions_serve_the_queue(
    sqlite_database: str,
) -> None:
    records.beat(sqlite_database, "i1", "old-1", None, "carlang-0.1.0-steps1")
    records.beat(sqlite_database, "i2", "older", ["carlang_runs"], None)  # from before versions
    said: list[str] = []
    look = WorkerLook(sqlite_database, "carlang_runs", said.append)
    assert look.look("run r1 waits for one") is True
    assert said == [
        f"no worker serving carlang_runs at version {APP_VERSION} has been seen on {sqlite_database}"
        " in the last 15s, only of other versions, which do not take this work (old-1 at"
        " carlang-0.1.0-steps1, older at a version it does not say): run r1 waits for one"
        f" (start one of this version with: carlang worker --database {sqlite_database})"
    ]
    records.beat(sqlite_database, "i3", "new-1", ["carlang_runs"], APP_VERSION)
    assert look.look("run r1 waits for one") is False
    assert said[1:] == ["a worker now serves carlang_runs (new-1); waiting for it"]
    # Work of no version (queued by an older carlang) is any worker's.
    anyone: list[str] = []
    assert WorkerLook(sqlite_database, "gpu", anyone.append, any_version=True).look("x") is False
    assert anyone == []


def test_a_table_of_workers_from_before_versions_gets_the_column(sqlite_database: str) -> None:
    path = sqlite_database.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as connection, connection:  # as an older carlang made it
        connection.execute(
            "CREATE TABLE carlang_workers (instance TEXT PRIMARY KEY, worker TEXT NOT NULL,"
            " queues TEXT, seen FLOAT NOT NULL)"
        )
        connection.execute(
            "INSERT INTO carlang_workers VALUES ('i0', 'w0', NULL,"
            " (julianday('now') - 2440587.5) * 86400.0)"
        )
    connection.close()
    records.beat(sqlite_database, "i1", "w1", ["gpu"], APP_VERSION)
    assert records.workers_serving(sqlite_database, "gpu", within=15) == [
        ("w0", None),
        ("w1", APP_VERSION),
    ]


def test_a_heartbeat_says_the_version_of_the_process(
    sqlite_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBOS__APPVERSION", "pinned-7")
    assert backend.app_version() == "pinned-7"
    beat = backend._Heartbeat(sqlite_database, "w1", ["gpu"], backend.app_version())
    try:
        assert records.workers_serving(sqlite_database, "gpu", within=15) == [("w1", "pinned-7")]
    finally:
        beat.stop()
    monkeypatch.delenv("DBOS__APPVERSION")
    assert backend.app_version() == APP_VERSION


# -- worker ids ----------------------------------------------------------------------------------


def test_a_workers_default_id_is_its_hosts_and_a_foreground_runs_is_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DBOS__VMID", raising=False)
    assert backend.default_worker_id() == socket.gethostname()
    monkeypatch.setenv("DBOS__VMID", "pod-3")
    assert backend.default_worker_id() == "pod-3"
    assert backend.foreground_id("1f3a") == "foreground-1f3a"
    assert backend.foreground_id("1f3a") != backend.foreground_id("2b4c")


def test_an_id_a_live_worker_beats_under_is_refused(
    sqlite_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend, "SILENT_AFTER_S", 3.0)
    said: list[str] = []
    monkeypatch.setattr(backend, "_notices", [said.append])
    stop = threading.Event()

    def alive() -> None:
        while not stop.is_set():
            records.beat(sqlite_database, "i1", "w1", None, APP_VERSION)
            stop.wait(0.3)

    records.beat(sqlite_database, "i1", "w1", None, APP_VERSION)
    beating = threading.Thread(target=alive)
    beating.start()
    try:
        with pytest.raises(CarlangRuntimeError, match="worker id w1 is taken"):
            backend._wait_for_id(sqlite_database, "w1")
    finally:
        stop.set()
        beating.join()
    assert said[0].startswith(
        f"worker id w1 was seen on {sqlite_database} 0s ago: waiting up to 3s"
    )
    backend._wait_for_id(sqlite_database, "w2")  # another id: at once


def test_the_id_of_a_worker_that_stopped_beating_is_free_again(
    sqlite_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend, "SILENT_AFTER_S", 1.0)
    monkeypatch.setattr(backend, "_notices", [lambda line: None])
    records.beat(sqlite_database, "i1", "w1", None, APP_VERSION)  # then killed: no more beats
    backend._wait_for_id(sqlite_database, "w1")  # returns once it has been silent for 1s
    assert records.instances_of(sqlite_database, "w1")["i1"][1] >= 1.0


def test_an_id_claimed_by_a_worker_killed_while_starting_is_taken_over_after_the_limit(
    sqlite_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend, "SILENT_AFTER_S", 0.4)
    said: list[str] = []
    monkeypatch.setattr(backend, "_notices", [said.append])
    assert records.claim_worker_id(sqlite_database, "w1", "killed", 0.4) is None  # never beat
    backend._claim_id(sqlite_database, "w1", "next")  # waits out the lapsed claim, not refused
    assert records.claim_worker_id(sqlite_database, "w1", "other", 0.4) == "next"
    assert said == [
        f"worker id w1 was claimed on {sqlite_database} by a worker that has not started"
        " serving: waiting up to 0.4s to see whether it does"
    ]


def test_an_id_claimed_by_a_worker_that_then_beats_is_refused(
    sqlite_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend, "SILENT_AFTER_S", 3.0)
    monkeypatch.setattr(backend, "_notices", [lambda line: None])
    assert records.claim_worker_id(sqlite_database, "w1", "starting", 3.0) is None
    stop = threading.Event()

    def starts_then_beats() -> None:
        while not stop.wait(0.3):
            records.beat(sqlite_database, "starting", "w1", None, APP_VERSION)

    beating = threading.Thread(target=starts_then_beats)
    beating.start()
    try:
        with pytest.raises(CarlangRuntimeError, match="worker id w1 is taken"):
            backend._claim_id(sqlite_database, "w1", "next")
    finally:
        stop.set()
        beating.join()


def test_a_launching_worker_beats_from_its_claim_on(
    sqlite_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A launch slower than the silence limit keeps its id: it beats while DBOS launches."""
    monkeypatch.setattr(backend, "SILENT_AFTER_S", 0.4)
    monkeypatch.setattr(records, "HEARTBEAT_S", 0.05)
    seen_while_launching: list[str | None] = []

    def slow_launch(database: str, config: object, queues: object) -> None:
        time.sleep(0.8)  # twice the silence limit
        seen_while_launching.append(records.claim_worker_id(database, "w1", "rival", 0.4))
        raise CarlangRuntimeError("launch failed")  # (stop here: no DBOS in this test)

    monkeypatch.setattr(backend, "_launch_on", slow_launch)
    # (DBOS is not launched here: the SQLite version DBOS needs under Python 3.12+ is not)
    monkeypatch.setattr(backend, "sqlite_problem", lambda: None)
    with pytest.raises(CarlangRuntimeError, match="launch failed"):
        backend.launch(sqlite_database, executor="w1")
    assert seen_while_launching and seen_while_launching[0] not in (None, "rival")
    assert records.instances_of(sqlite_database, "w1") == {}  # a failed launch frees its id
    assert records.claim_worker_id(sqlite_database, "w1", "rival", 0.4) is None


# -- through the CLI ------------------------------------------------------------------------------


def _detach(project: Path, *more: str) -> subprocess.CompletedProcess[str]:
    done = detach(sqlite_url(project), project, *more)
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.slow  # DBOS launched in the test process
def test_detach_with_format_json_prints_a_json_object(project: Path) -> None:
    database = sqlite_url(project)
    done = _detach(project, "--format", "json")
    document = json.loads(done.stdout)
    run_id = document["run_id"]
    assert document == {
        "run_id": run_id,
        "queue": "carlang_runs",
        "notices": unserved_at_detach(database, run_id),
    }
    # The notes stay on stderr too, for whoever reads it; text stays the run id alone.
    assert done.stderr.splitlines() == [f"note: {n}" for n in document["notices"]]
    plain = _detach(project)
    assert len(plain.stdout.split()) == 1


@pytest.mark.slow  # DBOS launched in the test process
def test_a_detached_run_carries_its_version_and_says_what_it_waits_for(project: Path) -> None:
    database = sqlite_url(project)
    run_id = _detach(project).stdout.strip()
    shown = carlang("runs", "show", run_id, "--database", database, cwd=project)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    # Queued with this version: only a worker of it takes the run (DBOS dequeues by version).
    assert document["status"] == "ENQUEUED" and document["version"] == APP_VERSION
    assert document["notices"] == unserved_at_detach(database, run_id)[:1]  # (runs, not gpu)
    assert shown.stderr.splitlines() == [f"note: {document['notices'][0]}"]


@pytest.mark.slow  # DBOS launched in the test process
def test_a_resumed_run_goes_to_the_runs_queue_not_dbos_own(project: Path) -> None:
    from dbos import DBOSClient

    database = sqlite_url(project)
    run_id = _detach(project).stdout.strip()
    cancel(database, run_id, project)
    resumed = resume(database, run_id, project)
    client = DBOSClient(system_database_url=database)
    try:
        [status] = client.list_workflows(workflow_ids=[run_id])
    finally:
        client.destroy()
    # DBOS's own queue (its default for a resume) is taken from by every DBOS process: a
    # foreground run or a worker of the gpu queue would have taken the run.
    assert (status.status, status.queue_name) == ("ENQUEUED", "carlang_runs")
    assert f"run {run_id} waits for one" in resumed.stderr  # no worker to take it: said
