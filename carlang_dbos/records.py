"""carlang's own records in the runs database, beside DBOS's tables: what DBOS cannot record
for us.

- **Approval answers** (`carlang_approval_answers`): one row per (run, action), written once
  (insert-if-absent) by whoever decides first: `carlang approve`, `carlang deny`, or the worker
  when the approval expires. A second answer finds the row and is refused, so two answers can
  never both be accepted with one silently dropped, whether or not a worker is alive.
- **Late step results** (`carlang_late_steps`): a step that finished after its run was
  cancelled. DBOS refuses to record it (a cancelled execution no longer owns its workflow:
  its writes are fenced off), so the resumed run would call the tool again; the result is kept
  here instead, and the resumed run's step returns it rather than calling the tool.

- **Workers seen** (`carlang_workers`): one row per process serving queues of the database
  (`carlang worker`), the queues it serves, the DBOS application version it runs (a worker
  takes only work of its own version) and when it last said it was alive (every `HEARTBEAT_S`
  seconds, by the database's clock). Whoever queues work says so when no worker
  serving its queue has been seen for a while (`backend.WorkerLook`): a command that waits for
  it, `run --detach`, and a run whose tool call waits on a queue. A workflow reads it only to
  say so, never to decide anything: a replay takes the same steps whatever it finds.

An approval answer or a late step is never changed once written, so reading one inside a
workflow is deterministic: a replay reads what the first execution read.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

__all__ = [
    "record_answer",
    "recorded_answer",
    "describe_answer",
    "record_late_step",
    "late_steps",
    "HEARTBEAT_S",
    "beat",
    "forget_worker",
    "claim_worker_id",
    "workers_seen",
    "workers_serving",
    "instances_of",
    "dispose",
]

_METADATA = sa.MetaData()
_ANSWERS = sa.Table(
    "carlang_approval_answers",
    _METADATA,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("action_id", sa.Text, primary_key=True),
    sa.Column("answer", sa.Text, nullable=False),  # JSON: approved, reason, approver, ...
)

_LATE_STEPS = sa.Table(
    "carlang_late_steps",
    _METADATA,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("step_id", sa.Integer, primary_key=True),  # DBOS's function id of the step
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("output", sa.Text, nullable=False),  # JSON (a step's record is JSON-ready data)
)

_WORKERS = sa.Table(
    "carlang_workers",
    _METADATA,
    sa.Column("instance", sa.Text, primary_key=True),  # one process (a uuid)
    sa.Column("worker", sa.Text, nullable=False),  # its --id (DBOS's executor id)
    sa.Column("queues", sa.Text, nullable=True),  # JSON list of the queues served; NULL: all
    sa.Column("seen", sa.Float, nullable=False),  # epoch seconds, by the database's clock
    # Its DBOS application version; NULL: a worker from before versions were recorded.
    sa.Column("version", sa.Text, nullable=True),
)

_WORKER_IDS = sa.Table(
    "carlang_worker_ids",
    _METADATA,
    sa.Column("worker", sa.Text, primary_key=True),  # a --id some process serves as
    sa.Column("instance", sa.Text, nullable=False),  # that process (its `carlang_workers` row)
    sa.Column("claimed", sa.Float, nullable=False),  # epoch seconds, by the database's clock
)

#: How often a worker says it is alive, in seconds.
HEARTBEAT_S = 5.0
#: A worker not seen for this long is forgotten (its row deleted by the next one that beats).
_FORGOTTEN_AFTER_S = 86_400.0

_engines: dict[str, sa.Engine] = {}
_lock = threading.Lock()


def _engine(database: str) -> sa.Engine:
    """An engine on `database` with carlang's tables, one per URL and process."""
    with _lock:
        engine = _engines.get(database)
        if engine is None:
            engine = _create_engine(database)
            _create_tables(engine)
            _engines[database] = engine
        return engine


def _create_engine(database: str) -> sa.Engine:
    if database.startswith("sqlite:"):
        from .backend import _sqlite_engine

        engine: sa.Engine = _sqlite_engine(database)
        return engine
    # The driver DBOS uses (psycopg 3): SQLAlchemy's default for postgresql:// is psycopg2.
    url = sa.make_url(database).set(drivername="postgresql+psycopg")
    return sa.create_engine(url, pool_size=2, max_overflow=4, pool_pre_ping=True)


def _create_tables(engine: sa.Engine) -> None:
    try:
        _METADATA.create_all(engine, checkfirst=True)
    except sa.exc.DBAPIError:
        # Another process created them between the check and the CREATE (Postgres reports
        # a unique violation on its catalog): what matters is that they exist now.
        inspector = sa.inspect(engine)
        if not all(inspector.has_table(name) for name in _METADATA.tables):
            raise
    _add_columns(engine)


def _add_columns(engine: sa.Engine) -> None:
    """Give a `carlang_workers` made before a column was added that column (NULL in the rows
    there; what older workers write too)."""
    present = {column["name"] for column in sa.inspect(engine).get_columns(_WORKERS.name)}
    for column in _WORKERS.columns:
        if column.name in present:
            continue
        kind = column.type.compile(dialect=engine.dialect)
        try:
            with engine.begin() as connection:
                connection.execute(
                    sa.text(f"ALTER TABLE {_WORKERS.name} ADD COLUMN {column.name} {kind}")
                )
        except sa.exc.DBAPIError:
            # Added by another process just now ("duplicate column"): what matters is that
            # it is there.
            again = {c["name"] for c in sa.inspect(engine).get_columns(_WORKERS.name)}
            if column.name not in again:
                raise


def _insert_if_absent(engine: sa.Engine, table: sa.Table, values: Mapping[str, Any]) -> bool:
    """Insert a row unless one with its key exists; whether this insert made it."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    key = next(iter(table.primary_key.columns))
    # RETURNING, not rowcount: the drivers do not all count a row ON CONFLICT DO NOTHING made.
    statement = dialect.insert(table).values(**values).on_conflict_do_nothing().returning(key)
    with engine.begin() as connection:
        return connection.execute(statement).first() is not None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record_answer(
    database: str, run_id: str, action_id: str, answer: Mapping[str, Any]
) -> tuple[dict[str, Any], bool]:
    """Record the answer to `action_id`'s approval unless one is recorded: the answer that
    stands (the first one) and whether it is `answer`."""
    document = {**answer, "at": _now()}
    engine = _engine(database)
    values = {"run_id": run_id, "action_id": action_id, "answer": json.dumps(document)}
    if _insert_if_absent(engine, _ANSWERS, values):
        return document, True
    standing = recorded_answer(database, run_id, action_id)
    assert standing is not None  # rows are never deleted
    return standing, False


def recorded_answer(database: str, run_id: str, action_id: str) -> dict[str, Any] | None:
    """The answer recorded for `action_id`'s approval in run `run_id`, or None."""
    query = sa.select(_ANSWERS.c.answer).where(
        _ANSWERS.c.run_id == run_id, _ANSWERS.c.action_id == action_id
    )
    with _engine(database).connect() as connection:
        found = connection.execute(query).scalar()
    if found is None:
        return None
    document: dict[str, Any] = json.loads(found)
    return document


def describe_answer(answer: Mapping[str, Any]) -> str:
    """An answer in a few words: `approved by alice`, `denied by bob: not today`, `expired
    after 600s without an answer`."""
    if answer.get("expired"):
        return str(answer.get("reason") or "expired without an answer")
    verb = "approved" if answer.get("approved") else "denied"
    who = f" by {answer['approver']}" if answer.get("approver") else ""
    reason = str(answer.get("reason") or "")
    why = f": {reason}" if reason and reason != verb else ""
    when = f" at {answer['at']}" if answer.get("at") else ""
    return f"{verb}{who}{when}{why}"


def record_late_step(database: str, run_id: str, step_id: int, name: str, output: Any) -> None:
    """Keep the result of step `step_id` (`name`) of run `run_id`, which finished after DBOS
    stopped recording for this execution (the run was cancelled): the first one kept wins."""
    values = {
        "run_id": run_id,
        "step_id": step_id,
        "name": name,
        "output": json.dumps(output),
    }
    _insert_if_absent(_engine(database), _LATE_STEPS, values)


def late_steps(database: str, run_id: str) -> dict[int, tuple[str, Any]]:
    """The late step results kept for run `run_id`: step id -> (name, output)."""
    query = sa.select(_LATE_STEPS.c.step_id, _LATE_STEPS.c.name, _LATE_STEPS.c.output).where(
        _LATE_STEPS.c.run_id == run_id
    )
    with _engine(database).connect() as connection:
        rows = connection.execute(query).all()
    return {int(step_id): (str(name), json.loads(output)) for step_id, name, output in rows}


def _clock(engine: sa.Engine) -> Any:
    """The database's time in epoch seconds, as SQL: the one clock every worker and every
    submitter reads, whatever their machines' clocks say."""
    if engine.dialect.name == "postgresql":
        return sa.literal_column("extract(epoch from clock_timestamp())::float8")
    return sa.literal_column("((julianday('now') - 2440587.5) * 86400.0)")


def beat(
    database: str,
    instance: str,
    worker: str,
    queues: list[str] | None,
    version: str | None = None,
) -> None:
    """Say that process `instance` (worker `worker`, serving `queues`, None: every queue, at
    DBOS application version `version`) is alive now; forget the workers not seen for a day."""
    engine = _engine(database)
    stale = sa.delete(_WORKERS).where(_WORKERS.c.seen < _clock(engine) - _FORGOTTEN_AFTER_S)
    with engine.begin() as connection:
        connection.execute(_beat_statement(engine, instance, worker, queues, version))
        connection.execute(stale)


def _beat_statement(
    engine: sa.Engine, instance: str, worker: str, queues: list[str] | None, version: str | None
) -> Any:
    """The upsert of process `instance`'s row, seen now (see `beat`)."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    values = {
        "instance": instance,
        "worker": worker,
        "queues": None if queues is None else json.dumps(queues),
        "seen": _clock(engine),
        "version": version,
    }
    return (
        dialect.insert(_WORKERS)
        .values(**values)
        .on_conflict_do_update(index_elements=["instance"], set_={"seen": _clock(engine)})
    )


def forget_worker(database: str, instance: str) -> None:
    """Process `instance` stops serving: it is no longer seen, and the id it held is free."""
    with _engine(database).begin() as connection:
        connection.execute(sa.delete(_WORKERS).where(_WORKERS.c.instance == instance))
        connection.execute(sa.delete(_WORKER_IDS).where(_WORKER_IDS.c.instance == instance))


def claim_worker_id(database: str, worker: str, instance: str, silent_after: float) -> str | None:
    """Take id `worker` for process `instance`, atomically: None when it is this process's
    now, else the process that holds it and is alive (it claimed the id, or beat, in the last
    `silent_after` seconds: a process beats once it serves). An id whose holder has stopped
    is taken over (compare and swap: of two processes taking it at once, one gets it). So two
    workers started at the same moment with one id cannot both run."""
    engine = _engine(database)
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    claim = (
        dialect.insert(_WORKER_IDS)
        .values(worker=worker, instance=instance, claimed=_clock(engine))
        .on_conflict_do_nothing()
        .returning(_WORKER_IDS.c.worker)
    )
    holder_of = sa.select(_WORKER_IDS.c.instance, _clock(engine) - _WORKER_IDS.c.claimed).where(
        _WORKER_IDS.c.worker == worker
    )
    for _ in range(10):  # (each round another process changed the claim between two looks)
        with engine.begin() as connection:
            if connection.execute(claim).first() is not None:
                return None
            found = connection.execute(holder_of).first()
            if found is None:
                continue  # released just now: claim it again
            holder, claim_age = str(found[0]), float(found[1])
            if holder == instance:
                return None
            beat_age = connection.execute(
                sa.select(_clock(engine) - _WORKERS.c.seen).where(_WORKERS.c.instance == holder)
            ).scalar()
            if min(claim_age, math.inf if beat_age is None else float(beat_age)) < silent_after:
                return holder
            swapped = connection.execute(
                sa.update(_WORKER_IDS)
                .where(_WORKER_IDS.c.worker == worker, _WORKER_IDS.c.instance == holder)
                .values(instance=instance, claimed=_clock(engine))
                .returning(_WORKER_IDS.c.worker)
            ).first()
            if swapped is not None:
                return None
    raise RuntimeError(f"worker id {worker}: its claim kept changing")  # (not seen in practice)


def workers_serving(database: str, queue: str, within: float) -> list[tuple[str, str | None]]:
    """The workers serving `queue` that were seen in the last `within` seconds: (id, DBOS
    application version or None when the worker did not say), sorted."""
    engine = _engine(database)
    query = sa.select(_WORKERS.c.worker, _WORKERS.c.queues, _WORKERS.c.version).where(
        _WORKERS.c.seen >= _clock(engine) - within
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    found = {
        (str(worker), None if version is None else str(version))
        for worker, queues, version in rows
        if queues is None or queue in json.loads(queues)
    }
    return sorted(found, key=lambda pair: (pair[0], pair[1] or ""))


def workers_seen(database: str, queue: str, within: float, version: str | None = None) -> list[str]:
    """The workers (their ids) serving `queue` that were seen in the last `within` seconds;
    with `version`, only those of that DBOS application version (the others do not take its
    work)."""
    serving = workers_serving(database, queue, within)
    return sorted({w for w, v in serving if version is None or v == version})


def instances_of(database: str, worker: str) -> dict[str, tuple[float, float]]:
    """The processes that beat as worker `worker` (its id): instance -> (when it was last
    seen, how many seconds ago), by the database's clock."""
    engine = _engine(database)
    query = sa.select(_WORKERS.c.instance, _WORKERS.c.seen, _clock(engine) - _WORKERS.c.seen).where(
        _WORKERS.c.worker == worker
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return {str(instance): (float(seen), float(age)) for instance, seen, age in rows}


def dispose(database: str | None = None) -> None:
    """Close the connections kept for `database` (None: every database)."""
    with _lock:
        for url in [database] if database is not None else list(_engines):
            engine = _engines.pop(url, None) if url is not None else None
            if engine is not None:
                engine.dispose()
