"""Work queued where no worker serves it is said, on a private Postgres through real
processes: `run --detach` says on stderr (its stdout still the run id alone, exit 0) when no
worker serving the runs queue, or the queue one of its tools is bound to, has been seen; and a
run whose tool call waits on a queue no worker serves says so on its worker's stderr, naming
the tool and the queue, instead of waiting in silence."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.dbos.support import (
    GPU_PROGRAM,
    GPU_TOOLS,
    NO_DBOS,
    detach,
    show,
    start_worker,
    unserved_at_detach,
    unserved_render,
    wait_for,
    write_project,
)

pytest.importorskip("dbos", reason=NO_DBOS)
pytestmark = pytest.mark.slow

#: GPU_PROGRAM, and a tool bound to another queue, tpu, that its run never calls.
PROGRAM = GPU_PROGRAM + "tool idle(n: int) {\n  queue tpu\n}\n"

TOOLS = GPU_TOOLS + 'def idle(n):\n    return n\n\nTOOLS["idle"] = idle\n'


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path, PROGRAM, TOOLS)


def _worker(
    database: str, project: Path, started: list[subprocess.Popen[str]], name: str, queue: str
) -> Path:
    """A `carlang worker --id name --queue queue`; the file its stderr goes to."""
    log = project / f"{name}.err"
    start_worker(database, "--id", name, "--queue", queue, cwd=project, started=started, log=log)
    return log


def test_a_detached_run_says_which_of_its_queues_no_worker_serves(
    project: Path, postgres_database: str
) -> None:
    from carlang_dbos import APP_VERSION, records

    database = postgres_database
    try:
        alone = detach(database, project)
        assert alone.returncode == 0, alone.stderr
        run_id = alone.stdout.strip()
        assert alone.stdout == f"{run_id}\n"  # stdout unchanged: the run id, what scripts read
        # The runs queue, and gpu (render's); not tpu: the run never calls idle.
        assert alone.stderr.splitlines() == [
            f"note: {notice}" for notice in unserved_at_detach(database, run_id)
        ]
        records.beat(database, "i1", "w1", ["carlang_runs"], APP_VERSION)  # of runs only
        runs_only = detach(database, project)
        assert runs_only.returncode == 0, runs_only.stderr
        assert [line.split(":")[0:2] for line in runs_only.stderr.splitlines()] == [
            ["note", " no worker serving gpu has been seen on postgresql"]
        ]
        records.beat(database, "i2", "g1", ["gpu"], APP_VERSION)
        served = detach(database, project)
        assert served.returncode == 0 and served.stderr == ""
        records.forget_worker(database, "i1")
        records.forget_worker(database, "i2")
        records.beat(database, "i3", "any", None, APP_VERSION)  # a worker of every queue
        everything = detach(database, project)
        assert everything.returncode == 0 and everything.stderr == ""
    finally:
        records.dispose(database)


def test_a_run_whose_tool_waits_on_a_queue_no_worker_serves_says_so(
    project: Path, postgres_database: str, workers: list[subprocess.Popen[str]]
) -> None:
    database = postgres_database
    log = _worker(database, project, workers, "w1", "carlang_runs")
    submitted = detach(database, project)
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.strip()
    said = unserved_render(database, run_id)
    wait_for(lambda: said in log.read_text().splitlines(), seconds=90)
    assert show(database, run_id, project)["status"] == "PENDING"  # waiting on gpu
    _worker(database, project, workers, "g1", "gpu")
    wait_for(lambda: show(database, run_id, project)["status"] == "completed", seconds=90)
    results = show(database, run_id, project)["result"]["results"]
    assert [(r["action_id"], r.get("output")) for r in results] == [("a", "A"), ("r", 4)]
    assert log.read_text().count("no worker serving gpu") == 1  # said once, not at every look
