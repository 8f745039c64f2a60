"""The SQLite engine carlang gives DBOS for a runs database: DBOS sets up only the engines it
makes itself, so this one must hold what DBOS's tables and writers rely on (foreign keys
enforced, writes in IMMEDIATE transactions, a long busy timeout), besides WAL. (In process: no
DBOS launched.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dbos.support import NO_DBOS

pytest.importorskip("dbos", reason=NO_DBOS)

import sqlalchemy as sa  # noqa: E402 - after the skip: DBOS brings it

from carlang_dbos.backend import _sqlite_engine  # noqa: E402


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    made: sa.Engine = _sqlite_engine(f"sqlite:///{tmp_path / 'runs.db'}")
    yield made
    made.dispose()


def test_a_row_that_references_no_row_is_refused_as_dboss_tables_expect(
    engine: sa.Engine,
) -> None:
    # DBOS's tables hang a run's steps and messages off its status row, ON DELETE CASCADE:
    # without enforcement, a message to a run that does not exist was kept, not refused.
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE runs (id TEXT PRIMARY KEY)"))
        connection.execute(
            sa.text("CREATE TABLE steps (run TEXT REFERENCES runs(id) ON DELETE CASCADE, n INT)")
        )
        connection.execute(sa.text("INSERT INTO runs VALUES ('r1')"))
        connection.execute(sa.text("INSERT INTO steps VALUES ('r1', 1)"))
    with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"), engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO steps VALUES ('nobody', 1)"))
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM runs WHERE id = 'r1'"))
        left = connection.execute(sa.text("SELECT count(*) FROM steps")).scalar_one()
    assert left == 0


def test_its_connections_write_in_immediate_transactions_in_wal_mode(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        assert raw.isolation_level == "IMMEDIATE"
        pragma = connection.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar_one() == "wal"
        assert pragma("PRAGMA busy_timeout").scalar_one() == 30_000
        assert pragma("PRAGMA foreign_keys").scalar_one() == 1


def test_a_writer_waits_for_another_processs_write_rather_than_failing(
    engine: sa.Engine, tmp_path: Path
) -> None:
    # A second connection holds the write lock for a moment; the engine's write waits for it
    # (busy timeout) instead of failing with "database is locked".
    import sqlite3
    import threading

    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE t (n INT)"))
    holder = sqlite3.connect(tmp_path / "runs.db", check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    release = threading.Timer(0.3, holder.commit)
    release.start()
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("INSERT INTO t VALUES (2)"))
            rows = connection.execute(sa.text("SELECT n FROM t ORDER BY n")).scalars().all()
    finally:
        release.join()
        holder.close()
    assert rows == [1, 2]


def test_a_new_runs_database_opened_while_another_process_writes_it_waits(
    tmp_path: Path,
) -> None:
    # Two workers started on one new runs database: one is already writing it (rollback
    # journal still) as the other's first connection switches it to WAL, which SQLite fails
    # at once, whatever the busy timeout. The second worker died with "database is locked".
    import sqlite3
    import threading

    path = tmp_path / "runs.db"
    holder = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE t (n INT)")
    release = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    release.start()
    engine = _sqlite_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
    finally:
        release.join()
        holder.close()
        engine.dispose()
