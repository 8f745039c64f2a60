"""A private Postgres for the DBOS tests that need several processes on one database (see
carlang_dbos.localpg), started once per test session; skipped with one clear line when no
server can be started here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A URL of a fresh database on a private Postgres cluster."""
    pytest.importorskip("dbos", reason="the DBOS backend needs the dbos package (carlang[dbos])")
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
