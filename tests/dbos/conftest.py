"""The DBOS tests' fixtures: a private Postgres for the tests that need several processes on one
database (see carlang_dbos.localpg), started once per test session and skipped with one clear
line when no server can be started here; a SQLite runs database; the processes a test starts,
killed at its end. Plain helpers are in support.py."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dbos.support import NO_DBOS, sqlite_url, stop_all


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A URL of a fresh database on a private Postgres cluster."""
    pytest.importorskip("dbos", reason=NO_DBOS)
    from carlang_runtime.errors import CarlangRuntimeError

    from carlang_dbos.localpg import private_postgres

    try:
        cluster = private_postgres()
        url = cluster.__enter__()
    except CarlangRuntimeError as exc:
        pytest.skip(str(exc))
    try:
        yield url
    finally:
        cluster.__exit__(None, None, None)


@pytest.fixture
def postgres_database(postgres_url: str, request: pytest.FixtureRequest) -> str:
    """A URL of a database of its own for one test, on the session's private cluster, so
    that tests counting runs do not see each other's. Created here: carlang refuses a
    database that does not exist (only `carlang worker` creates one)."""
    from carlang_dbos import prepare_database

    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50].lower()
    url = f"{postgres_url.rsplit('/', 1)[0]}/{name}"
    prepare_database(url, create=True)
    return url


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[str]]]:
    """The processes a test starts (workers, and any run it leaves in the background): each
    one still running is killed at the test's end."""
    started: list[subprocess.Popen[str]] = []
    yield started
    stop_all(started)


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[str]:
    """The URL of a SQLite runs database in the test's directory (runs.db), carlang's engines on
    it disposed at the test's end."""
    from carlang_dbos import records

    url = sqlite_url(tmp_path)
    yield url
    records.dispose(url)
