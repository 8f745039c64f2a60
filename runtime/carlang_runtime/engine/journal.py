"""The SQLite event log: the durable default. Every event is a row; the transaction commits at
each action's terminal event and at the end of each run, so after a crash the journal holds
every action that finished. `carlang events` reads it, and `Runtime.resume` rebuilds a run
from it.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CarlangRuntimeError
from ..jsontext import loads, locate, malformed, too_deeply_nested
from ..jsonvalue import json_kind
from ..textfile import InputFileError, read_input
from .events import (
    COMPENSATION_END_KINDS,
    TERMINAL_KINDS,
    Event,
    EventKind,
    event_document,
    utf8_json,
)

__all__ = [
    "SqliteSink",
    "EventStore",
    "claim_run",
    "StoredEvent",
    "RunSummary",
    "EventLogError",
    "SQLITE_SUFFIXES",
    "use_write_ahead_log",
    "ONE_EVENT_PER_LINE",
    "json_line",
    "not_an_event",
    "check_event",
    "json_kind",
    "read_event_log",
    "read_log_text",
    "read_log_lines",
]

#: Said after a JSON Lines event log's malformed line: what the file should hold.
ONE_EVENT_PER_LINE = " (an event log holds one JSON event per line)"

#: Which process runs each run, from its `run_started` to its `run_completed` (`claim_run`).
_OWNERS_TABLE = """
CREATE TABLE IF NOT EXISTS run_owners (
    run_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    process_start TEXT NOT NULL
);
"""
_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL,
    run_id TEXT,
    kind TEXT NOT NULL,
    proposal_id TEXT,
    action_id TEXT,
    span_id TEXT,
    parent_id TEXT,
    timestamp REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id, id);
"""
    + _OWNERS_TABLE
)
_COMMIT_ON = (
    TERMINAL_KINDS
    | COMPENSATION_END_KINDS
    | {
        EventKind.RUN_STARTED,
        EventKind.RUN_COMPLETED,
        EventKind.PROPOSAL_RECEIVED,
        EventKind.STATE_SNAPSHOT,
        EventKind.STATE_ROLLBACK,
        # before a wait (a tool's call, a retry's pause; an approval flushes the log itself):
        # no write lock is held across it, so another process's run on the same journal is
        # not locked out
        EventKind.ACTION_EXECUTING,
        EventKind.ACTION_RETRYING,
        EventKind.COMPENSATION_STARTED,
    }
)

#: How long a write waits for another process's (a run sharing the journal) to finish.
_BUSY_SECONDS = 60.0


def _connect(path: Path) -> sqlite3.Connection:
    if not path.parent.is_dir():
        raise EventLogError(
            f"{path}: no such directory {path.parent}: create it, or name a file in one that exists"
        )
    connection = sqlite3.connect(
        str(path), isolation_level="DEFERRED", check_same_thread=False, timeout=_BUSY_SECONDS
    )
    try:
        _refuse_other_databases(path, connection)
    except BaseException:
        connection.close()
        raise
    # WAL with synchronous=NORMAL: a commit survives the process dying (the case resume is
    # for) without an fsync per action.
    use_write_ahead_log(connection, _BUSY_SECONDS)
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.executescript(_SCHEMA)
    return connection


def use_write_ahead_log(connection: Any, seconds: float) -> None:
    """Put the SQLite database of `connection` (a DB-API connection) in WAL mode, waiting up
    to `seconds` for other processes. SQLite does not wait on its busy timeout for this
    change, which needs the file to itself: two processes opening a new database at the same
    moment (two workers started together) made one fail at once with "database is locked".
    A database already in WAL mode (every open but the first) is left as it is."""
    deadline = time.monotonic() + seconds
    pause = 0.005
    while True:
        try:
            (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
            if str(mode).lower() != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            contended = "locked" in str(exc) or "busy" in str(exc)
            if not contended or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _refuse_other_databases(path: Path, connection: sqlite3.Connection) -> None:
    """Raise `EventLogError` when `path` holds tables but no `events` table: another
    program's database, which the journal's tables (and WAL mode) must not be added to."""
    tables = [
        name
        for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    if tables and "events" not in tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise EventLogError(
            f"{path}: a SQLite database that is not an event journal (its tables: {shown});"
            " name a new file"
        )


def _unopened(path: Path, existed: bool, exc: sqlite3.Error) -> str:
    """Why the journal `path` could not be opened for writing, from SQLite's error: a file
    that could not be created, or written, is no damaged journal."""
    if not existed:
        return (
            f"{path}: cannot create the event journal ({exc}): the folder cannot be written"
            " to; name a file in one that can"
        )
    if isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc):
        return f"{path}: the event journal is read-only ({exc}); name a file that can be written"
    return (
        f"{path}: not an event journal, or a damaged one ({exc}); name a new file, or move this"
        " one aside"
    )


class SqliteSink:
    """Writes events to a SQLite database file."""

    def __init__(self, path: Path | str) -> None:
        self.path = path = Path(path)
        existed = path.exists()
        self._closed = False
        try:
            self._connection = _connect(path)
        except sqlite3.Error as exc:
            raise EventLogError(_unopened(path, existed, exc)) from None

    def write(self, event: Event) -> None:
        """Insert one event; commit when it ends an action or a run."""
        self._connection.execute(
            "INSERT INTO events (seq, run_id, kind, proposal_id, action_id, span_id, parent_id,"
            " timestamp, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.seq,
                event.run_id,
                str(event.kind),
                event.proposal_id,
                event.action_id,
                event.span_id,
                event.parent_id,
                event.timestamp,
                utf8_json(event.data, default=str),
            ),
        )
        if event.kind == EventKind.RUN_STARTED and event.run_id is not None:
            # this process runs it now: a resume elsewhere must not run it a second time
            self._connection.execute(
                "INSERT OR REPLACE INTO run_owners (run_id, host, pid, process_start)"
                " VALUES (?, ?, ?, ?)",
                (event.run_id, socket.gethostname(), os.getpid(), _process_start(os.getpid())),
            )
        elif event.kind == EventKind.RUN_COMPLETED and event.run_id is not None:
            self._connection.execute("DELETE FROM run_owners WHERE run_id = ?", (event.run_id,))
        if event.kind in _COMMIT_ON:
            self._connection.commit()

    def flush(self) -> None:
        """Commit."""
        self._connection.commit()

    def close(self) -> None:
        """Commit and close (again: nothing)."""
        if self._closed:
            return
        self._closed = True
        self._connection.commit()
        self._connection.close()


def _process_start(pid: int) -> str:
    """When process `pid` started (Linux's clock ticks since boot, from /proc), so that a
    process id the system gave again to another process is not taken for the run's; "" where
    there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat[stat.rfind(")") + 2 :].split()  # (after the command name, which may hold spaces)
    return fields[19] if len(fields) > 19 else ""


def _alive(pid: int, started: str) -> bool:
    """Whether process `pid` of this machine, started at `started`, still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # (another user's: it exists)
    return not started or _process_start(pid) in (started, "")


def claim_run(path: Path, run_id: str) -> str | None:
    """Take run `run_id` of journal `path` for this process, at once (one transaction: of two
    resumes started together, one takes it), unless another live process of this machine
    runs it (it started or resumed the run and has not ended it): then who, said for a
    person. A process killed mid-run runs nothing, so its run is taken; one of another
    machine sharing the journal cannot be looked at, and counts as stopped."""
    with closing(sqlite3.connect(str(path), timeout=_BUSY_SECONDS, isolation_level=None)) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(_OWNERS_TABLE)  # (a journal written before run owners were kept)
            row = db.execute(
                "SELECT host, pid, process_start FROM run_owners WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is not None:
                host, pid, started = str(row[0]), int(row[1]), str(row[2])
                here = host == socket.gethostname() and pid != os.getpid()
                if here and _alive(pid, started):
                    db.execute("ROLLBACK")
                    return f"process {pid} of this machine runs it now"
            db.execute(
                "INSERT OR REPLACE INTO run_owners (run_id, host, pid, process_start)"
                " VALUES (?, ?, ?, ?)",
                (run_id, socket.gethostname(), os.getpid(), _process_start(os.getpid())),
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    return None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read back from the journal."""

    id: int
    seq: int
    run_id: str | None
    kind: str
    proposal_id: str | None
    action_id: str | None
    span_id: str | None
    parent_id: str | None
    timestamp: float
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, as `Event.to_dict`."""
        return event_document(self)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One run in the journal: when it started and ended, and how."""

    run_id: str
    started: float
    ended: float | None
    status: str
    events: int


def _reading(path: Path) -> sqlite3.Connection:
    """A connection to the existing database `path` that only reads it and leaves no file
    beside it. Not `mode=ro`: a journal is in WAL mode, and a read-only connection to one makes
    its `-wal` and `-shm` files and cannot remove them (`carlang events` left them behind);
    the last connection closed removes them if it may write. So it opens read-write (never
    creating the file; read-only anyway when the file is write-protected) with `query_only`,
    which refuses every write. A live run's own WAL is read, and stays until that run closes
    the journal."""
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True)
    try:
        connection.execute("PRAGMA query_only = ON")
    except BaseException:
        connection.close()
        raise
    return connection


class EventStore:
    """Read access to a journal written by `SqliteSink`. A file that is missing, not a journal
    or damaged is an `EventLogError` that names it and says what is wrong."""

    def __init__(self, path: Path | str) -> None:
        path = Path(path)
        if not path.exists():
            raise EventLogError(f"{path}: no such file")
        if path.is_dir():
            raise EventLogError(f"{path}: is a directory, not an event journal")
        self.path = path
        connection = None
        try:
            connection = _reading(path)
            connection.execute("SELECT id, seq, run_id, kind, data FROM events LIMIT 1")
        except sqlite3.Error as exc:
            if connection is not None:
                connection.close()  # not left for the collector (an error under Python 3.13)
            raise EventLogError(f"{path}: not an event journal, or a damaged one ({exc})") from None
        self._connection = connection

    def _query(self, sql: str, values: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._connection.execute(sql, values).fetchall()
        except sqlite3.Error as exc:
            raise EventLogError(f"{self.path}: the journal is damaged ({exc})") from None

    def _data(self, row_id: int, text: str) -> dict[str, Any]:
        try:
            data = loads(text)
        except (TypeError, json.JSONDecodeError):
            data = None
        if not isinstance(data, dict):
            raise EventLogError(
                f"{self.path}: event {row_id} is damaged (its data is not a JSON object)"
            )
        return data

    def _time(self, row_id: int, value: object) -> float:
        """A row's timestamp, seconds since the epoch; a damaged row's (text, say: SQLite
        keeps what it is given) is an `EventLogError`, not a crash of its readers."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        raise EventLogError(
            f"{self.path}: event {row_id} is damaged (its timestamp is {value!r}, not seconds"
            " since the epoch): correct or delete that row"
        )

    def close(self) -> None:
        """Release the database."""
        self._connection.close()

    def events(
        self,
        run_id: str | None = None,
        *,
        kind: str | None = None,
        action_id: str | None = None,
    ) -> list[StoredEvent]:
        """The events matching every filter given, in order."""
        clauses, values = [], []
        for column, value in (("run_id", run_id), ("kind", kind), ("action_id", action_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                values.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(
            "SELECT id, seq, run_id, kind, proposal_id, action_id, span_id, parent_id, timestamp,"
            f" data FROM events{where} ORDER BY id",
            values,
        )
        return [
            StoredEvent(
                id=row[0],
                seq=row[1],
                run_id=row[2],
                kind=row[3],
                proposal_id=row[4],
                action_id=row[5],
                span_id=row[6],
                parent_id=row[7],
                timestamp=self._time(row[0], row[8]),
                data=self._data(row[0], row[9]),
            )
            for row in rows
        ]

    def runs(self) -> list[RunSummary]:
        """Every run, oldest first."""
        rows = self._query(
            "SELECT e.run_id, MIN(e.timestamp), COUNT(*), last.timestamp, last.data"
            " FROM events e LEFT JOIN events last ON last.id = ("
            "   SELECT MAX(id) FROM events WHERE run_id = e.run_id AND kind = 'run_completed')"
            " WHERE e.run_id IS NOT NULL GROUP BY e.run_id ORDER BY MIN(e.id)"
        )
        summaries = []
        for run_id, started, count, ended, data in rows:
            # No run_completed: the process died during the run.
            status = str(self._data(0, data).get("status", "completed")) if data else "interrupted"
            summaries.append(RunSummary(run_id, started, ended, status, count))
        return summaries


#: The file suffixes read as SQLite journals; anything else is read as JSONL.
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


class EventLogError(CarlangRuntimeError):
    """An event log that cannot be read: missing, not a journal, or a line that is not JSON."""


def read_log_text(path: Path) -> str:
    """A JSON Lines log's text, or `EventLogError` saying in words why not: a folder, no such
    file, not UTF-8 (at which line and column), or the system's reason."""
    try:
        return read_input(path)
    except InputFileError as exc:
        raise EventLogError(str(exc)) from None


def read_event_log(path: Path) -> list[dict[str, Any]]:
    """Every event of a log as JSON-ready documents (`event_document`'s form), in order: a
    SQLite journal (`.db`) or a JSONL file. Raises `EventLogError`, saying where."""
    if not path.exists():
        raise EventLogError(f"{path}: no such file")
    if path.suffix in SQLITE_SUFFIXES:
        store = EventStore(path)
        try:
            return [event.to_dict() for event in store.events()]
        finally:
            store.close()
    return read_log_lines(path, read_log_text(path))


def read_log_lines(path: Path, text: str) -> list[dict[str, Any]]:
    """Every event of JSONL log `path` whose text (`read_log_text`) is `text`, as
    `read_event_log` reads it; `EventLogError` at the first line that is not an event."""
    records = []
    lines = text.splitlines()
    last = max((n for n, line in enumerate(lines, start=1) if line.strip()), default=0)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = loads(line)
        except json.JSONDecodeError as exc:
            if _cut_short(exc, line, number == last, text):
                raise EventLogError(
                    f"{path}:{number}:{exc.colno}: the last line is cut short (the log was being"
                    " written when its process stopped); remove that line to read the rest"
                ) from None
            json_line(path, number, line)  # raises, saying where
        check_event(path, number, line, record)
        records.append(record)
    return records


def _cut_short(exc: json.JSONDecodeError, line: str, last: bool, text: str) -> bool:
    """Whether the log's `last` line, which `exc` says is not JSON, was cut short by a process
    that stopped mid-write: it has no newline after it, or the JSON breaks off at its end."""
    if not last or too_deeply_nested(exc):
        return False
    # (an unterminated string is reported where it starts: on one line, it ran to the end)
    ends_early = exc.pos >= len(line.rstrip()) or exc.msg.startswith("Unterminated string")
    return not text.endswith("\n") or ends_early


def json_line(path: Path, number: int, line: str) -> Any:
    """Line `number` of a JSONL event log, parsed; `EventLogError` at its line and column when
    it is not JSON."""
    try:
        return loads(line)
    except json.JSONDecodeError as exc:
        raise EventLogError(
            f"{path}:{number}:{exc.colno}: {malformed(exc)}{ONE_EVENT_PER_LINE}"
        ) from None


#: The fields of an event (`event_document`'s) and what each must be, when present: its ids and
#: time are strings, its data an object (each may be null).
_EVENT_FIELDS: dict[str, tuple[type, str]] = {
    "seq": (int, "a whole number"),
    "trace_id": (str, "a string"),
    "proposal_id": (str, "a string"),
    "action_id": (str, "a string"),
    "span_id": (str, "a string"),
    "parent_id": (str, "a string"),
    "timestamp": (str, "a string (an RFC 3339 time)"),
    "data": (dict, "an object"),
}


def check_event(path: Path, number: int, line: str, record: object) -> None:
    """Raise `EventLogError` at the field's line and column unless `record` (line `number`,
    parsed) is an event: a JSON object with a string `kind`, its ids and time strings or null
    and its data an object or null. (A log's readers use these values as they are: a
    `proposal_id` that is an object was an internal error.)"""
    if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
        raise not_an_event(path, number, record)
    for name, (kind, what) in _EVENT_FIELDS.items():
        value = record.get(name)
        if value is None or (isinstance(value, kind) and not isinstance(value, bool)):
            continue
        found = json_kind(value)
        column = locate(line, [name]).column
        raise EventLogError(
            f"{path}:{number}:{column}: not a valid event: {name} must be {what} or null,"
            f" not {found}{ONE_EVENT_PER_LINE}"
        )


def not_an_event(path: Path, number: int, record: object) -> EventLogError:
    """The error for a line of a JSONL log that is JSON but no event, saying what it looks
    like when it is another of carlang's inputs (a log given where a dataset goes, or the
    other way round, is an easy slip)."""
    hint = ""
    if isinstance(record, dict) and "candidates" in record:
        hint = (
            "; it looks like a task of a dataset (`carlang planner eval` and `search` read those)"
        )
    elif isinstance(record, dict) and "actions" in record:
        hint = "; it looks like a proposal (`carlang run` and `verify` read those)"
    return EventLogError(f"{path}:{number}:1: not an event (a JSON object with a `kind`){hint}")
