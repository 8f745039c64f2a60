"""A queue's global concurrency (`carlang worker --global-concurrency gpu=2`): three workers
serve the queue, each may run one call (`--concurrency 1`), so three could run at once; no more
than two do, and two do, so on two workers at once. The tool counts the calls running at that
moment under a file lock."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.dbos.support import NO_DBOS, start_worker, write_project

pytest.importorskip("dbos", reason=NO_DBOS)

RUNS, CALLS = 3, 6  # six calls of one level per run: twelve may start at once

PROGRAM = (
    "tool render(n: int) {\n  queue gpu\n}\nproposal p {\n"
    + "".join(f"  r{i} = render(n: {i})\n" for i in range(CALLS))
    + "}\n"
)

TOOLS = """\
import fcntl, json, os, time
from carlang_runtime.engine import ToolContext

HERE = os.path.dirname(__file__)

def _count(step):
    with open(os.path.join(HERE, "running.json"), "a+") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        file.seek(0)
        seen = json.loads(file.read() or '{"now": 0, "peak": 0, "pids": []}')
        seen["now"] += step
        seen["peak"] = max(seen["peak"], seen["now"])
        seen["pids"] = sorted(set(seen["pids"]) | {os.getpid()})
        file.seek(0)
        file.truncate()
        file.write(json.dumps(seen))

def render(n: int, context: ToolContext) -> int:
    _count(+1)
    try:
        time.sleep(0.4)
    finally:
        _count(-1)
    return n

TOOLS = {"render": render}
"""


def _workers_keep_the_global_limit(
    tmp_path: Path, database: str, workers: list[subprocess.Popen[str]]
) -> None:
    from carlang.compiler import compile_file
    from carlang_dbos import list_runs, make_spec, submit_many

    write_project(tmp_path, PROGRAM, TOOLS)
    compiled = compile_file(tmp_path / "p.car", tmp_path)
    assert compiled.program is not None
    spec = make_spec(compiled.program, "p", tools=[f"{tmp_path / 'tools.py'}:TOOLS"])
    for name in ("g1", "g2", "g3"):
        options = ["--id", name, "--concurrency", "1", "--global-concurrency", "gpu=2"]
        start_worker(database, *options, cwd=tmp_path, started=workers)
    submit_many(database, [(spec, f"limit{number}") for number in range(RUNS)])
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        runs = [r for r in list_runs(database) if r.run_id.startswith("limit")]
        if len(runs) == RUNS and all(r.status == "SUCCESS" for r in runs):
            break
        assert not any(r.status == "ERROR" for r in runs), runs
        time.sleep(0.5)
    else:
        raise AssertionError("the runs did not finish")
    for info in runs:
        assert info.result is not None
        assert [r["status"] for r in info.result["results"]] == ["succeeded"] * CALLS
    seen = json.loads((tmp_path / "running.json").read_text())
    assert seen["now"] == 0
    # The limit, reached and never passed: one call per worker, so two workers at once.
    assert seen["peak"] == 2, seen


def test_a_global_concurrency_on_sqlite_is_refused(tmp_path: Path) -> None:
    # On SQLite, workers in separate processes were seen to run 3 calls at once under a limit
    # of 2: the limit is refused there rather than promised.
    from typer.testing import CliRunner

    from carlang.cli import app

    args = ["worker", "--global-concurrency", "gpu=2", "--database", f"sqlite:///{tmp_path}/r.db"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--global-concurrency needs Postgres" in result.output


@pytest.mark.slow
@pytest.mark.scale
def test_postgres_workers_run_at_most_the_queues_global_concurrency(
    tmp_path: Path, workers: list[subprocess.Popen[str]], postgres_database: str
) -> None:
    _workers_keep_the_global_limit(tmp_path, postgres_database, workers)


def test_a_global_concurrency_is_written_queue_equals_count() -> None:
    from typer.testing import CliRunner

    from carlang.cli import app

    for wrong in ("gpu", "gpu=0", "=2"):
        bad = CliRunner().invoke(app, ["worker", "--global-concurrency", wrong])
        assert bad.exit_code == 2 and "write QUEUE=N" in bad.output, wrong
