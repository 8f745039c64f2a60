"""The DBOS backend end to end, through real processes: `carlang run --backend dbos`, workers,
durable approvals across restarts of every process, expiry, and the `runs` commands (SQLite)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.dbos.support import (
    DURABLE_RUN,
    MARKING_TOOLS,
    NO_DBOS,
    SHIP_NEEDS_APPROVAL,
    approval_timeout,
    approve,
    calls,
    cancel,
    carlang,
    event_log,
    resume,
    show_in,
    skip_without_sqlite,
    sqlite_url,
    start_worker,
    submit,
    wait_for,
    wait_for_approval,
    write_project,
)

pytest.importorskip("dbos", reason=NO_DBOS)
pytestmark = pytest.mark.slow

from carlang_dbos.backend import APP_VERSION  # noqa: E402 - after the skip: imports dbos

skip_without_sqlite()

PROGRAM = (
    SHIP_NEEDS_APPROVAL
    + """\
proposal p {
  a = work(item: "a")
  b = work(item: "b") after a
  s = ship(env: "prod") after b
}
"""
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path, PROGRAM, MARKING_TOOLS)


def _run_durably(project: Path, *more: str) -> subprocess.CompletedProcess[str]:
    """`carlang run p.car` on the DBOS backend in the foreground, its result as JSON."""
    database = sqlite_url(project)
    return carlang(*DURABLE_RUN, "--format", "json", "--database", database, *more, cwd=project)


def test_a_durable_run_gives_the_in_process_result_and_an_approval_expires(project: Path) -> None:
    common = ["p.car", "--tools", "tools.py:TOOLS", "--format", "json"]
    durable = _run_durably(project, "--events", "run.db", "--approval-timeout", "1")
    assert durable.returncode == 1, durable.stderr
    result = json.loads(durable.stdout)["result"]
    ship = result["results"][2]
    assert ship["status"] == "rejected" and "approval expired" in ship["error"]
    inprocess = carlang("run", *common, "--deny-approvals", cwd=project)
    local = json.loads(inprocess.stdout)["result"]
    assert [(r["action_id"], r["status"], r.get("output")) for r in result["results"]] == [
        (r["action_id"], r["status"], r.get("output")) for r in local["results"]
    ]
    run_id = json.loads(durable.stdout)["run_id"]
    events = carlang(
        "events",
        "run.db",
        "--run",
        run_id,
        "--kind",
        "approval_recorded",
        "--format",
        "json",
        cwd=project,
    )
    assert json.loads(events.stdout)[0]["data"]["expired"] is True
    # The policy reads only the parameters: no admission decision is recorded, one step per
    # call (the approval is a durable wait, not a step of ours).
    from dbos import DBOSClient

    client = DBOSClient(system_database_url=sqlite_url(project))
    try:
        names = [step["function_name"] for step in client.list_workflow_steps(run_id)]
        [status] = client.list_workflows(workflow_ids=[run_id])
    finally:
        client.destroy()
    assert [name for name in names if name.startswith(("admit ", "call "))] == ["call a", "call b"]
    # The step layout is in the application version: a run recorded under another layout is
    # never recovered by this code, which would meet its steps out of order.
    assert status.app_version == APP_VERSION
    assert show_in(project, run_id)["version"] == APP_VERSION


def test_an_approval_waits_across_a_restart_of_every_process(
    project: Path, workers: list[subprocess.Popen[str]]
) -> None:
    run_id = submit(sqlite_url(project), project, "--events", "run.db")
    first = start_worker(sqlite_url(project), cwd=project, started=workers)
    wait_for_approval(sqlite_url(project), run_id, project)
    assert calls(project) == ["work a", "work b"]
    first.send_signal(signal.SIGKILL)
    first.wait()
    # No process runs the workflow now; the answer waits in the database.
    wrong = carlang("approve", run_id, "zz", "--database", sqlite_url(project), cwd=project)
    assert wrong.returncode == 2 and "not waiting for an approval of `zz`" in wrong.stderr
    approve(sqlite_url(project), run_id, project)
    start_worker(sqlite_url(project), cwd=project, started=workers)
    wait_for(lambda: show_in(project, run_id)["status"] == "completed")  # carlang's outcome
    result = show_in(project, run_id)["result"]
    assert [r["status"] for r in result["results"]] == ["succeeded"] * 3
    assert calls(project) == ["work a", "work b", "ship prod"]  # nothing ran twice
    kinds = [e["kind"] for e in event_log(project, run_id)]
    assert kinds.count("action_succeeded") == 3 and kinds.count("run_completed") == 1


def test_runs_can_be_listed_cancelled_and_resumed(
    project: Path, workers: list[subprocess.Popen[str]]
) -> None:
    missing = carlang("runs", "list", "--database", f"sqlite:///{project / 'nope.db'}", cwd=project)
    assert missing.returncode == 2 and "no runs database" in missing.stderr
    run_id = submit(sqlite_url(project), project)
    listed = carlang("runs", "list", "--database", sqlite_url(project), "--json", cwd=project)
    assert json.loads(listed.stdout)[0]["run_id"] == run_id
    start_worker(sqlite_url(project), cwd=project, started=workers)
    wait_for_approval(sqlite_url(project), run_id, project)
    cancel(sqlite_url(project), run_id, project)
    wait_for(lambda: show_in(project, run_id)["status"] == "CANCELLED")
    resume(sqlite_url(project), run_id, project)
    wait_for_approval(sqlite_url(project), run_id, project)
    carlang(
        "deny", run_id, "s", "--reason", "not today", "--database", sqlite_url(project), cwd=project
    )
    # DBOS says SUCCESS (the workflow returned); carlang says the run aborted, on the denial.
    wait_for(lambda: show_in(project, run_id)["dbos_status"] == "SUCCESS")
    assert show_in(project, run_id)["status"] == "aborted"
    ship = show_in(project, run_id)["result"]["results"][2]
    assert ship["status"] == "rejected" and "not today" in ship["error"]
    assert os.path.exists(project / "runs.db")


def test_an_approval_expires_after_its_policys_timeout(project: Path) -> None:
    # The policy's approval_timeout (1s) wins over the run's --approval-timeout (an hour).
    (project / "p.car").write_text(approval_timeout(PROGRAM, "1s"))
    started = time.monotonic()
    durable = _run_durably(project, "--approval-timeout", "3600")
    assert durable.returncode == 1, durable.stderr
    assert time.monotonic() - started < 60
    ship = json.loads(durable.stdout)["result"]["results"][2]
    assert ship["status"] == "rejected"
    assert "approval expired after 1s without an answer" in ship["error"]
    assert calls(project) == ["work a", "work b"]


def test_a_database_that_cannot_be_opened_is_one_line_not_a_traceback(project: Path) -> None:
    (project / "garbage.db").write_bytes(os.urandom(4096))
    for database in (
        f"sqlite:///{project / 'no_such_dir' / 'runs.db'}",  # the directory does not exist
        f"sqlite:///{project / 'garbage.db'}",  # not a database
    ):
        started = carlang(*DURABLE_RUN, "--database", database, cwd=project)
        assert started.returncode == 2, started.stderr
        assert started.stderr.startswith(f"error: cannot open the runs database {database}: ")
        assert "Traceback" not in started.stderr and len(started.stderr.splitlines()) == 1
    listed = carlang(
        "runs", "list", "--database", f"sqlite:///{project / 'garbage.db'}", cwd=project
    )
    assert listed.returncode == 2 and "file is not a database" in listed.stderr
    assert "SELECT" not in listed.stderr  # SQLAlchemy's statement says nothing to the user


SECRET_PROGRAM = """\
tool pay(amount: int, token: string secret) -> string
proposal p {
  a = pay(amount: 100, token: "tok_supersecret_123")
}
"""
SECRET_TOOLS = """\
def pay(amount, token):
    return f"paid {amount} with token {token}"
TOOLS = {"pay": pay}
"""


def test_a_tools_output_is_recorded_in_the_runs_database_without_its_secrets(
    tmp_path: Path,
) -> None:
    """DBOS records each step's output in the runs database (pickled): a tool that echoed a
    secret parameter had it there in clear, though every log and the result redact it."""
    project = write_project(tmp_path, SECRET_PROGRAM, SECRET_TOOLS)
    done = _run_durably(project)
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    assert json.loads(done.stdout)["result"]["results"][0]["output"] == (
        "paid 100 with token [REDACTED]"
    )
    from dbos import DBOSClient

    client = DBOSClient(system_database_url=sqlite_url(project))
    try:
        steps = client.list_workflow_steps(run_id)
    finally:
        client.destroy()
    recorded = [step for step in steps if step["function_name"] == "call a"]
    assert recorded and "tok_supersecret_123" not in repr(recorded), recorded
    assert "paid 100 with token [REDACTED]" in repr(recorded)
    # a run that ended is neither cancelled nor resumed (DBOS takes both as no-ops, and the
    # commands said they had done it)
    for what in ("cancel", "resume"):
        refused = carlang("runs", what, run_id, "--database", sqlite_url(project), cwd=project)
        assert refused.returncode != 0, refused.stdout
        assert f"already ended (completed): there is nothing to {what}" in refused.stderr
