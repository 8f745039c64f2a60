"""One runs database shared by many people's processes, end to end through real processes
(SQLite): a foreground `carlang run --backend dbos` runs its own run and nothing else (never
another's queued run; a call of a tool bound to a queue waits for a worker of that queue, said
on its stderr and by `carlang runs show`); workers and foreground runs have ids of their own,
so a foreground run never recovers a worker's run, and a worker killed and started again on
the same machine recovers its own; a second worker under an id a live one uses is refused."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.dbos.support import (
    DURABLE_RUN,
    NO_DBOS,
    SHIP_NEEDS_APPROVAL,
    approve,
    calls,
    carlang,
    runs_listed,
    show_in,
    skip_without_sqlite,
    sqlite_url,
    start_carlang,
    unserved_render,
    wait_for,
    wait_for_approval,
    write_project,
)

pytest.importorskip("dbos", reason=NO_DBOS)
pytestmark = pytest.mark.slow

skip_without_sqlite()

PROGRAM = (
    SHIP_NEEDS_APPROVAL
    + """\
tool slow(item: string)
tool render(n: int) {
  queue gpu
}
proposal waits {
  a = slow(item: "w")
}
proposal gpu {
  a = work(item: "g")
  r = render(n: 2) after a
}
proposal release {
  a = work(item: "r")
  s = ship(env: "prod") after a
}
proposal quick {
  a = slow(item: "q")
}
"""
)

#: Every call writes `<tool> <argument> <pid>` to calls.txt: which process made it.
TOOLS = """\
import os, time

def _mark(text):
    with open(os.path.join(os.path.dirname(__file__), "calls.txt"), "a") as file:
        file.write(f"{text} {os.getpid()}\\n")

def work(item):
    _mark("work " + item)
    return item.upper()

def slow(item):
    time.sleep(4)  # long enough for a queue to be polled a few times meanwhile
    _mark("slow " + item)
    return item

def render(n):
    _mark(f"render {n}")
    return n * 2

def ship(env):
    _mark("ship " + env)
    return "shipped " + env

TOOLS = {"work": work, "slow": slow, "render": render, "ship": ship}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path, PROGRAM, TOOLS)


def _run(project: Path, proposal: str) -> list[str]:
    """The arguments of `carlang run` of `proposal` on the DBOS backend (the project's runs
    database)."""
    return [*DURABLE_RUN, "--proposal", proposal, "--database", sqlite_url(project)]


def _runs(project: Path) -> list[dict[str, Any]]:
    return runs_listed(sqlite_url(project), project)


def _start(
    project: Path, started: list[subprocess.Popen[str]], args: list[str], log: str
) -> subprocess.Popen[str]:
    """`carlang ARGS` in the background, its stderr to `log` in the project; without
    DBOS__VMID, so that a worker's default id is the host's."""
    env = {k: v for k, v in os.environ.items() if k != "DBOS__VMID"}
    return start_carlang(*args, cwd=project, started=started, log=project / log, env=env)


def _worker(
    project: Path, started: list[subprocess.Popen[str]], log: str, *more: str
) -> subprocess.Popen[str]:
    return _start(project, started, ["worker", "--database", sqlite_url(project), *more], log)


def test_a_foreground_run_never_takes_a_queued_run(project: Path) -> None:
    queued = carlang(*_run(project, "waits"), "--detach", cwd=project)
    assert queued.returncode == 0, queued.stderr
    waiting = queued.stdout.strip()
    # Runs 4s, while its DBOS would poll every queue it listens to each second.
    own = carlang(*_run(project, "quick"), "--format", "json", cwd=project)
    assert own.returncode == 0, own.stderr
    run_id = json.loads(own.stdout)["run_id"]
    assert [c.rsplit(" ", 1)[0] for c in calls(project)] == ["slow q"]  # its own call only
    other = show_in(project, waiting)
    assert (other["status"], other["worker"]) == ("ENQUEUED", None)  # still a worker's to take
    assert show_in(project, run_id)["worker"] == f"foreground-{run_id}"  # an id of its own


def test_a_foreground_runs_call_on_a_tool_queue_waits_for_a_worker_of_that_queue(
    project: Path, workers: list[subprocess.Popen[str]]
) -> None:
    database = sqlite_url(project)
    foreground = _start(project, workers, _run(project, "gpu"), "run.err")
    wait_for(lambda: len(_runs(project)) == 1)
    run_id = _runs(project)[0]["run_id"]
    said = unserved_render(database, run_id)
    # The run's own process says it, once it has waited a while (10s).
    log = project / "run.err"
    wait_for(lambda: said in log.read_text().splitlines() or foreground.poll() is not None, 60)
    assert foreground.poll() is None, log.read_text()  # waiting, not running render itself
    # The submitter sees it too: `runs show` lists the call waiting on a queue nobody serves.
    assert show_in(project, run_id)["notices"] == [said]
    gpu = _worker(project, workers, "gpu.err", "--id", "g1", "--queue", "gpu")
    assert foreground.wait(timeout=90) == 0, (project / "run.err").read_text()
    callers = dict(line.rsplit(" ", 1) for line in calls(project))
    assert callers == {"work g": str(foreground.pid), "render 2": str(gpu.pid)}
    assert show_in(project, run_id)["notices"] == []


def _beat_again(database: str, worker: str, ahead_s: float = 0.0) -> None:
    """Say, for each process that served as `worker`, that it is alive now (one beat), or
    `ahead_s` seconds from now."""
    import sqlite3

    from carlang_dbos import records
    from carlang_dbos.backend import APP_VERSION

    for instance in records.instances_of(database, worker):
        records.beat(database, instance, worker, None, APP_VERSION)
    records.dispose(database)
    if ahead_s:
        with closing(sqlite3.connect(database.removeprefix("sqlite:///"))) as db, db:
            db.execute(
                "UPDATE carlang_workers SET seen = seen + ? WHERE worker = ?", (ahead_s, worker)
            )


def test_ids_keep_foreground_runs_and_workers_from_recovering_each_others_runs(
    project: Path, workers: list[subprocess.Popen[str]]
) -> None:
    host = socket.gethostname()  # the default id (the processes run without DBOS__VMID)
    queued = carlang(*_run(project, "release"), "--detach", cwd=project)
    run_id = queued.stdout.strip()
    first = _worker(project, workers, "w1.err")  # no --id: the host's
    wait_for_approval(sqlite_url(project), run_id, project)
    assert show_in(project, run_id)["worker"] == host
    first.send_signal(signal.SIGKILL)
    first.wait()
    # A foreground run starts, runs and ends: it recovers nothing of the worker's.
    own = carlang(*_run(project, "quick"), "--format", "json", cwd=project)
    assert own.returncode == 0, own.stderr
    left = show_in(project, run_id)
    assert (left["status"], left["worker"]) == ("PENDING", host)
    # The worker started again on this machine has its id, and recovers its run (once the
    # killed one's heartbeat has stopped: it says it waits for that). The foreground run, and
    # this worker's start on a loaded machine, may take longer than that wait: the killed
    # one's last beat is made recent again, and dated 15 s ahead, so that it is still recent
    # however slowly the new one starts (it then waits up to 25 s).
    _beat_again(sqlite_url(project), host, ahead_s=15.0)
    again = _worker(project, workers, "w2.err")
    wait_for_approval(sqlite_url(project), run_id, project, seconds=120)
    assert f"worker id {host} was seen on" in (project / "w2.err").read_text()
    approve(sqlite_url(project), run_id, project)
    wait_for(lambda: show_in(project, run_id)["status"] == "completed", seconds=60)
    marks = [line.rsplit(" ", 1) for line in calls(project)]
    assert [m[0] for m in marks] == ["work r", "slow q", "ship prod"]  # each once
    assert marks[2][1] == str(again.pid)
    # A second worker under the id the live one uses is refused: the two would recover each
    # other's runs.
    twin = _worker(project, workers, "w3.err")
    assert twin.wait(timeout=90) == 2
    assert f"worker id {host} is taken" in (project / "w3.err").read_text()
    assert again.poll() is None
