"""The event log: every step of every run, in order, to memory and to sinks (JSONL, SQLite).

Kinds are CAR's (`EventKind`, snake_case on the wire) plus `run_started`/`run_completed`.
Events carry spans: `trace_id` is the run, a proposal is a span under it, an action a span under
the proposal, so a log can be read as a trace. Every action ends in exactly one terminal event:
succeeded, failed, skipped, rejected or deduplicated (per attempt of a resumed run: an attempt
interrupted from outside ends in one marked `interrupted`, and the resumed run's is its outcome).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "EventKind",
    "RUN_KINDS",
    "span_of",
    "TERMINAL_KINDS",
    "COMPENSATION_END_KINDS",
    "Event",
    "EventSink",
    "EventLog",
    "JsonlSink",
    "format_time",
]


class EventKind(StrEnum):
    """What an event records."""

    RUN_STARTED = "run_started"
    RUN_COMPLETED = "run_completed"
    PROPOSAL_RECEIVED = "proposal_received"
    PROPOSAL_COMPLETED = "proposal_completed"
    ACTION_VALIDATED = "action_validated"
    ACTION_REJECTED = "action_rejected"
    ACTION_EXECUTING = "action_executing"
    ACTION_SUCCEEDED = "action_succeeded"
    ACTION_FAILED = "action_failed"
    ACTION_SKIPPED = "action_skipped"
    ACTION_RETRYING = "action_retrying"
    ACTION_DEDUPLICATED = "action_deduplicated"
    POLICY_VIOLATION = "policy_violation"
    # carlang's: what a shadow policy would have decided (never enforced), and the decision
    # record of an action the policies decided (see docs/decision-log.md)
    POLICY_SHADOWED = "policy_shadowed"
    POLICY_DECISION = "policy_decision"
    APPROVAL_RECORDED = "approval_recorded"
    STATE_CHANGED = "state_changed"
    STATE_SNAPSHOT = "state_snapshot"
    STATE_ROLLBACK = "state_rollback"
    REPLAN_ATTEMPTED = "replan_attempted"
    REPLAN_PROPOSAL_RECEIVED = "replan_proposal_received"
    REPLAN_REJECTED = "replan_rejected"
    REPLAN_EXHAUSTED = "replan_exhausted"
    SESSION_SCOPE = "session_scope"
    # carlang's sagas: the undo step of a succeeded action, run after its proposal aborted
    # (`action_id` is the action compensated)
    COMPENSATION_STARTED = "compensation_started"
    COMPENSATION_SUCCEEDED = "compensation_succeeded"
    COMPENSATION_FAILED = "compensation_failed"
    COMPENSATION_REJECTED = "compensation_rejected"
    # plan_and_execute did not fall back after a failed candidate: an effect of it was not
    # undone (`data`: reason, actions)
    PLAN_FALLBACK_STOPPED = "plan_fallback_stopped"


_PLAIN_KIND: dict[str, str] = {kind: kind.value for kind in EventKind}

#: The kinds that end a compensation; each compensation that started has exactly one.
COMPENSATION_END_KINDS = frozenset(
    {
        EventKind.COMPENSATION_SUCCEEDED,
        EventKind.COMPENSATION_FAILED,
        EventKind.COMPENSATION_REJECTED,
    }
)

#: The kinds that end an action; each action has exactly one.
TERMINAL_KINDS = frozenset(
    {
        EventKind.ACTION_SUCCEEDED,
        EventKind.ACTION_FAILED,
        EventKind.ACTION_SKIPPED,
        EventKind.ACTION_REJECTED,
        EventKind.ACTION_DEDUPLICATED,
    }
)


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text up to the dot


#: Events about a run as a whole (their span is the run's).
RUN_KINDS = frozenset(
    {
        EventKind.RUN_STARTED,
        EventKind.RUN_COMPLETED,
        EventKind.REPLAN_ATTEMPTED,
        EventKind.REPLAN_PROPOSAL_RECEIVED,
        EventKind.REPLAN_REJECTED,
        EventKind.REPLAN_EXHAUSTED,
    }
)


def span_of(
    kind: str, run_id: str | None, proposal_id: str | None, action_id: str | None
) -> tuple[str | None, str | None]:
    """(span id, parent span id) of an event: spans are derived from the ids, not stored. The
    run is the trace and a span; a proposal is a span under it; an action one under that."""
    if run_id is None or kind in RUN_KINDS or proposal_id is None:
        return run_id, None
    proposal_span = f"{run_id}/{proposal_id}"
    if action_id is None:
        return proposal_span, run_id
    return f"{proposal_span}/{action_id}", proposal_span


def format_time(timestamp: float) -> str:
    """RFC 3339 in UTC with microseconds. The date and time of the last second formatted
    are kept: a run formats thousands of timestamps within the same second."""
    whole = int(timestamp // 1)
    second = _second
    if whole != second[0]:
        second[1] = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        second[0] = whole
    # 0 <= timestamp - whole < 1, so this is at most 999,999: six digits.
    return f"{second[1]}{int((timestamp - whole) * 1_000_000):06d}Z"


def event_document(event: Any) -> dict[str, Any]:
    """An event (an `Event`, or one read back from a journal) as JSON-ready data: its seq,
    kind, the ids it has (the run's as `trace_id`), its time as RFC 3339, its data."""
    document: dict[str, Any] = {"seq": event.seq, "kind": str(event.kind)}
    for name in ("run_id", "proposal_id", "action_id", "span_id", "parent_id"):
        value = getattr(event, name)
        if value is not None:
            document["trace_id" if name == "run_id" else name] = value
    document["timestamp"] = format_time(event.timestamp)
    document["data"] = event.data
    return document


class Event:
    """One event. `timestamp` is seconds since the epoch; `seq` its place in the log."""

    __slots__ = (
        "seq",
        "kind",
        "timestamp",
        "run_id",
        "proposal_id",
        "action_id",
        "_data",
        "_duration",
    )

    def __init__(
        self,
        seq: int,
        kind: str,
        timestamp: float,
        run_id: str | None,
        proposal_id: str | None,
        action_id: str | None,
        data: dict[str, Any] | None,
        duration: float | None = None,
    ) -> None:
        self.seq = seq
        self.kind = kind
        self.timestamp = timestamp
        self.run_id = run_id
        self.proposal_id = proposal_id
        self.action_id = action_id
        self._data = data
        self._duration = duration

    @property
    def data(self) -> dict[str, Any]:
        """What the event records besides its ids (empty for most action steps); an action's
        terminal event has its `duration_ms`."""
        data = self._data if self._data is not None else {}
        if self._duration is not None:
            data = {**data, "duration_ms": self._duration}
        return data

    @property
    def trace_id(self) -> str | None:
        """The run the event belongs to."""
        return self.run_id

    @property
    def span_id(self) -> str | None:
        """The span: the run itself, a proposal under it, or an action under that."""
        return span_of(self.kind, self.run_id, self.proposal_id, self.action_id)[0]

    @property
    def parent_id(self) -> str | None:
        """The span this event's span belongs to."""
        return span_of(self.kind, self.run_id, self.proposal_id, self.action_id)[1]

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data (absent ids left out)."""
        return event_document(self)

    def __repr__(self) -> str:
        return f"Event({self.seq}, {self.kind!s}, action={self.action_id}, data={self.data})"


class EventSink(Protocol):
    """Where events go besides memory."""

    def write(self, event: Event) -> None:
        """Record one event."""

    def flush(self) -> None:
        """Make what was written durable."""

    def close(self) -> None:
        """Flush and release the sink."""


class JsonlSink:
    """One JSON object per line, appended to a file (flushed at the end of each run)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._file = self.path.open("a", encoding="utf-8")

    def write(self, event: Event) -> None:
        """Append one line."""
        self._file.write(_strict_json(event.to_dict()) + "\n")

    def flush(self) -> None:
        """Flush to the operating system."""
        self._file.flush()

    def close(self) -> None:
        """Flush and close the file."""
        if not self._file.closed:
            self._file.close()


def _strict_json(document: dict[str, Any]) -> str:
    """`document` as one line of strict JSON (RFC 8259), for other tools to read: a tool's
    output may hold NaN or an infinity, which `json.dumps` writes bare (jq and most parsers
    refuse the line); those are written as strings, "NaN", "Infinity", "-Infinity"."""
    try:
        return utf8_json(document, default=str, allow_nan=False)
    except ValueError as exc:
        if "Out of range float" not in str(exc):
            raise
        return utf8_json(_finite(document), default=str, allow_nan=False)


def utf8_json(value: Any, **options: Any) -> str:
    """`json.dumps(value, ensure_ascii=False, **options)`, unless that text cannot be written
    as UTF-8: a lone surrogate, as Python reads a file name that is not UTF-8 (`bad\\udcffname`
    from a tool listing a folder), failed the run's log and the run with it. Then every
    non-ASCII character is escaped instead (`\\udcff`), which reads back as the same string."""
    text = json.dumps(value, ensure_ascii=False, **options)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(value, ensure_ascii=True, **options)
    return text


def _finite(value: Any) -> Any:
    """`value` with each non-finite float replaced by its name, a string."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


class EventLog:
    """The log of a runtime: events in memory (unless `keep` is false) and in every sink.

    In memory an event is kept as a plain tuple and made an `Event` when read: a run of
    100,000 actions logs 300,000 events, and tuples of strings and numbers are objects the
    garbage collector can stop tracking, where event objects would be scanned again and
    again."""

    def __init__(self, sinks: Iterable[EventSink] = (), *, keep: bool = True) -> None:
        self.sinks = list(sinks)
        self.keep = keep
        self._records: list[tuple[Any, ...]] = []
        self._seq = 0

    def emit(
        self,
        kind: str,
        *,
        run_id: str | None = None,
        proposal_id: str | None = None,
        action_id: str | None = None,
        data: dict[str, Any] | None = None,
        timestamp: float,
    ) -> Event:
        """Record one event and return it."""
        self.add(kind, run_id, proposal_id, action_id, data, timestamp)
        return Event(self._seq, kind, timestamp, run_id, proposal_id, action_id, data)

    def add(
        self,
        kind: str,
        run_id: str | None,
        proposal_id: str | None,
        action_id: str | None,
        data: dict[str, Any] | None,
        timestamp: float,
        duration: float | None = None,
    ) -> None:
        """`emit` with positional arguments and no return, for the runtime's hot path. An
        action's duration travels apart from `data`, so that a plain success needs no dict."""
        self._seq += 1
        # The plain string, not the enum member: a tuple of plain values stops being tracked
        # by the garbage collector, one holding an enum member never does.
        kind = _PLAIN_KIND.get(kind, kind)
        if self.keep:
            self._records.append(
                (self._seq, kind, timestamp, run_id, proposal_id, action_id, data, duration)
            )
        if self.sinks:
            event = Event(
                self._seq, kind, timestamp, run_id, proposal_id, action_id, data, duration
            )
            for sink in self.sinks:
                sink.write(event)

    def flush(self) -> None:
        """Flush every sink."""
        for sink in self.sinks:
            sink.flush()

    def close(self) -> None:
        """Close every sink."""
        for sink in self.sinks:
            sink.close()

    def __iter__(self) -> Iterator[Event]:
        return (Event(*record) for record in self._records)

    def __len__(self) -> int:
        return len(self._records)

    def query(
        self,
        kind: str | Iterable[str] | None = None,
        *,
        action_id: str | None = None,
        proposal_id: str | None = None,
        run_id: str | None = None,
    ) -> list[Event]:
        """The events in memory that match every filter given."""
        kinds = {kind} if isinstance(kind, str) else set(kind) if kind is not None else None
        return [
            Event(*record)
            for record in self._records
            if (kinds is None or record[1] in kinds)
            and (action_id is None or record[5] == action_id)
            and (proposal_id is None or record[4] == proposal_id)
            and (run_id is None or record[3] == run_id)
        ]

    def clear(self) -> None:
        """Forget the events kept in memory (sinks keep theirs)."""
        self._records.clear()
