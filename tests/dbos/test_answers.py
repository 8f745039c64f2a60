"""Answering a durable approval, on Postgres through real processes: the first answer wins and
any later one (conflicting or repeated, given at once or not, with or without a worker alive,
after an expiry) is refused naming the answer that stands; a foreground run says how to answer
it; `runs list|show` give carlang's outcome and the worker that holds a run."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.dbos.support import (
    MARKING_TOOLS,
    NO_DBOS,
    SHIP_NEEDS_APPROVAL,
    approval_timeout,
    calls,
    carlang,
    resume,
    show,
    start_worker,
    submit,
    wait_for,
    wait_for_approval,
    write_project,
)

pytest.importorskip("dbos", reason=NO_DBOS)
pytestmark = pytest.mark.slow

PROGRAM = (
    SHIP_NEEDS_APPROVAL
    + """\
proposal p {
  a = work(item: "a")
  s = ship(env: "prod") after a
}
"""
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path, PROGRAM, MARKING_TOOLS)


def _answer(
    verb: str, run_id: str, database: str, project: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return carlang(verb, run_id, "s", "--database", database, *extra, cwd=project)


def test_the_first_answer_wins_with_no_worker_alive_and_a_resume_hands_the_run_on(
    project: Path, postgres_database: str, workers: list[subprocess.Popen[str]]
) -> None:
    run_id = submit(postgres_database, project)
    first = start_worker(postgres_database, "--id", "w1", cwd=project, started=workers)
    wait_for_approval(postgres_database, run_id, project)
    first.send_signal(signal.SIGKILL)
    first.wait()
    # The answers wait in the database, unread: still the first one stands.
    approved = _answer("approve", run_id, postgres_database, project, "--approver", "alice")
    assert approved.returncode == 0, approved.stderr
    for verb in ("deny", "approve"):  # conflicting, and repeated
        later = _answer(verb, run_id, postgres_database, project, "--approver", "bob")
        assert later.returncode == 2, later.stderr
        assert f"`s` of run '{run_id}' is already answered: approved by alice" in later.stderr
        assert len(later.stderr.splitlines()) == 1
    # The run's worker is dead: `runs show` names it, so a stuck run can be told apart.
    shown = show(postgres_database, run_id, project)
    assert (shown["status"], shown["worker"]) == ("PENDING", "w1")
    # Another worker (another id) does not take w1's run by itself; `runs resume` hands it on.
    start_worker(postgres_database, "--id", "w2", cwd=project, started=workers)
    resume(postgres_database, run_id, project)
    wait_for(lambda: show(postgres_database, run_id, project)["status"] == "completed")
    shown = show(postgres_database, run_id, project)
    assert shown["worker"] == "w2"
    assert [r["status"] for r in shown["result"]["results"]] == ["succeeded", "succeeded"]
    assert calls(project) == ["work a", "ship prod"]
    # an answer to a run that ended says so (it said "waiting: none")
    ended = carlang("approve", run_id, "a", "--database", postgres_database, cwd=project)
    assert ended.returncode == 2
    assert f"run '{run_id}' already ended (completed): it waits for no approval" in ended.stderr


def test_answers_given_at_once_one_wins_and_the_run_follows_it(
    project: Path, postgres_database: str, workers: list[subprocess.Popen[str]]
) -> None:
    run_id = submit(postgres_database, project)
    start_worker(postgres_database, "--id", "w1", cwd=project, started=workers)
    wait_for_approval(postgres_database, run_id, project)
    base = [sys.executable, "-m", "carlang"]
    tail = [run_id, "s", "--database", postgres_database]
    both = [
        subprocess.Popen(
            [*base, verb, *tail, "--approver", who],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for verb, who in (("approve", "alice"), ("deny", "bob"))
    ]
    outcomes = [(p.wait(timeout=120), *p.communicate()) for p in both]
    accepted = [i for i, (code, _, _) in enumerate(outcomes) if code == 0]
    assert len(accepted) == 1, outcomes
    winner = ("approved by alice", "denied by bob")[accepted[0]]
    code, _, refused = outcomes[1 - accepted[0]]
    assert code == 2 and f"is already answered: {winner}" in refused, outcomes
    wait_for(lambda: show(postgres_database, run_id, project)["dbos_status"] == "SUCCESS")
    ship = show(postgres_database, run_id, project)["result"]["results"][1]
    assert ship["status"] == ("succeeded" if accepted[0] == 0 else "rejected")


def test_an_expired_approval_is_not_answered_later_and_the_run_shows_aborted(
    project: Path, postgres_database: str, workers: list[subprocess.Popen[str]]
) -> None:
    (project / "p.car").write_text(approval_timeout(PROGRAM, "1s"))
    run_id = submit(postgres_database, project)
    start_worker(postgres_database, "--id", "w1", cwd=project, started=workers)
    wait_for(lambda: show(postgres_database, run_id, project)["status"] in ("aborted", "SUCCESS"))
    late = _answer("approve", run_id, postgres_database, project)
    assert late.returncode == 2
    assert "is already answered: approval expired after 1s without an answer" in late.stderr
    # DBOS calls every run that returned SUCCESS; carlang's outcome says it aborted, and why.
    shown = show(postgres_database, run_id, project)
    assert (shown["status"], shown["dbos_status"]) == ("aborted", "SUCCESS")
    assert "approval expired" in shown["reason"]
    listed = carlang("runs", "list", "--database", postgres_database, cwd=project)
    assert listed.stdout.split()[:2] == [run_id, "aborted"]
    as_json = carlang("runs", "list", "--json", "--database", postgres_database, cwd=project)
    assert json.loads(as_json.stdout)[0]["status"] == "aborted"


def test_a_foreground_run_says_once_how_to_answer_its_approval(
    project: Path, postgres_database: str
) -> None:
    command = [sys.executable, "-m", "carlang", "run", "p.car", "--tools", "tools.py:TOOLS"]
    lines: list[str] = []
    with subprocess.Popen(
        [*command, "--backend", "dbos", "--database", postgres_database],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stderr is not None and process.stdout is not None
        reader = threading.Thread(target=lambda: lines.extend(process.stderr or []), daemon=True)
        reader.start()
        try:
            wait_for(lambda: any("carlang deny" in line for line in lines))
            said = "".join(lines)
            assert "is waiting for approval of `s` (ship), asked by policy prod" in said
            approve = next(line for line in lines if line.strip().startswith("carlang approve"))
            given = shlex.split(approve)
            assert given[3:] == ["s", "--database", postgres_database]
            answered = carlang(*given[1:], cwd=project)
            assert answered.returncode == 0, answered.stderr
            output = process.stdout.read()
            assert process.wait(timeout=120) == 0
        finally:
            if process.poll() is None:
                process.kill()
        reader.join(timeout=10)
    assert sum("is waiting for approval" in line for line in lines) == 1
    assert f"run {given[2]} is waiting" in "".join(lines)
    assert "succeeded" in output


def test_a_run_is_named_by_a_unique_prefix_of_its_id(tmp_path: Path) -> None:
    """A trial: `carlang events LOG 9678` and `run --resume f093` take a prefix, `runs show
    2fc5`, `runs cancel` and `approve` said "no run '2fc5'". Each takes a unique prefix now,
    and says the whole id; one that names nothing says how to list the runs."""
    project = write_project(tmp_path, PROGRAM, MARKING_TOOLS)
    database = f"sqlite:///{project / 'runs.db'}"
    run_id = submit(database, project)
    assert show(database, run_id[:6], project)["run_id"] == run_id
    cancelled = carlang("runs", "cancel", run_id[:6], "--database", database, cwd=project)
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"cancelled run {run_id}"
    unknown = carlang("approve", "zz99", "s", "--database", database, cwd=project)
    assert unknown.returncode == 2
    assert "no run 'zz99' in sqlite:///" in unknown.stderr
    assert "(`carlang runs list --database ...` lists its runs)" in unknown.stderr
