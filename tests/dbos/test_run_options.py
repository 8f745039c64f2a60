"""What `carlang run --backend dbos` and the `runs` commands take and say, through real processes:
`--events` is checked as the in-process run checks it (and is never the runs database), before
anything is recorded; `$CARLANG_DATABASE` names the runs database for `run` and `rank` too, and
only with --backend dbos; a runs database that holds no runs, or that this user cannot use, is
said so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.dbos.support import (
    DURABLE_RUN,
    NO_DBOS,
    WORK_PROGRAM,
    WORK_TOOLS,
    carlang,
    sqlite_url,
    write_project,
)

pytest.importorskip("dbos", reason=NO_DBOS)
pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path, WORK_PROGRAM, WORK_TOOLS)


def _run(project: Path, *more: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "carlang", *DURABLE_RUN, *more],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize(
    ("events", "error"),
    [
        ("p.car", "--events p.car: use a .jsonl file or a .db (SQLite) file"),
        ("runs.db", "--events runs.db is the runs database (sqlite:///runs.db): name another"),
        ("nowhere/run.db", "no such directory nowhere"),
        ("nowhere/run.jsonl", "cannot write events to nowhere/run.jsonl"),
    ],
)
def test_events_are_checked_as_in_process_before_anything_is_recorded(
    project: Path, events: str, error: str, detach: bool
) -> None:
    before = (project / "p.car").read_text()
    more = ["--detach"] if detach else []
    done = _run(project, "--database", "sqlite:///runs.db", "--events", events, *more)
    assert done.returncode == 2, done.stderr
    assert error in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert (project / "p.car").read_text() == before  # (JSON lines were appended to it)
    assert not (project / "runs.db").exists()  # nothing recorded (an ERROR run each time)


def test_the_runs_database_comes_from_the_environment_for_run_and_rank_with_dbos(
    project: Path,
) -> None:
    database = sqlite_url(project / "elsewhere")
    (project / "elsewhere").mkdir()
    env = {"CARLANG_DATABASE": database}
    queued = _run(project, "--detach", env=env)
    assert queued.returncode == 0, queued.stderr
    assert f"on {database}" in queued.stderr  # (its notice names the database it used)
    listed = carlang("runs", "list", "--database", database, cwd=project)
    assert queued.stdout.strip() in listed.stdout
    assert not (project / "carlang-runs.db").exists()
    # in process the variable is no --database: neither run nor rank refuses it
    here = subprocess.run(
        [sys.executable, "-m", "carlang", "rank", "p.car"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert here.returncode == 0, here.stderr


def test_a_postgres_database_without_runs_is_said_to_hold_none(
    project: Path, postgres_database: str
) -> None:
    for args in (["runs", "list"], ["runs", "show", "r1"], ["approve", "r1", "a"]):
        done = carlang(*args, "--database", postgres_database, cwd=project)
        assert done.returncode == 2
        assert done.stderr.strip() == (
            f"error: no runs database at {postgres_database} (no run was started there)"
        ), done.stderr


def test_a_runs_database_in_a_directory_this_user_cannot_write_says_why(project: Path) -> None:
    folder = project / "ro"
    folder.mkdir()
    queued = _run(project, "--database", "sqlite:///ro/runs.db", "--detach")
    assert queued.returncode == 0, queued.stderr
    if os.geteuid() == 0:  # (root writes anywhere but in an immutable directory)
        if shutil.which("chattr") is None:
            pytest.skip("no chattr to make a directory read-only for root")
        made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
        if made.returncode != 0:
            pytest.skip(f"chattr +i is not allowed here: {made.stderr.strip()}")
        undo = ["chattr", "-i", str(folder)]
    else:
        folder.chmod(0o555)
        undo = ["chmod", "755", str(folder)]
    try:
        listed = carlang("runs", "list", "--database", "sqlite:///ro/runs.db", cwd=project)
    finally:
        subprocess.run(undo, check=True)
    assert listed.returncode == 2
    assert "its directory ro is not writable" in listed.stderr, listed.stderr
    assert "SQLite writes its journal files" in listed.stderr
