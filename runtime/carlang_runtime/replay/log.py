"""Recorded runs read back from event logs (SQLite journals and JSONL files), as replay needs
them: per proposal run, its scope, session, tenant, starting state, the proposal, and in
recorded order the points where each action was decided, ended, and where the run rolled back.
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from ..engine.events import COMPENSATION_END_KINDS, TERMINAL_KINDS
from ..engine.journal import (
    ONE_EVENT_PER_LINE,
    SQLITE_SUFFIXES,
    EventLogError,
    EventStore,
    check_event,
    json_kind,
    not_an_event,
    read_log_text,
)
from ..jsontext import loads, locate, malformed, too_deeply_nested

__all__ = ["RecordedDecision", "RecordedProposal", "Step", "read_runs"]

#: The kinds replay reads; a JSONL line of any other kind is skipped before it is parsed.
_WANTED: Final = frozenset(
    {
        "run_started",
        "proposal_received",
        "state_snapshot",
        "action_validated",
        "policy_violation",
        "approval_recorded",
        "policy_decision",
        "state_rollback",
        "action_retrying",
        *TERMINAL_KINDS,
        *COMPENSATION_END_KINDS,
    }
)
_TERMINAL: Final = frozenset(str(kind) for kind in TERMINAL_KINDS)
_TIMED: Final = frozenset(
    {"run_started", "action_validated", "proposal_received", "action_retrying"}
)
_STATUS: Final = {
    "action_succeeded": "succeeded",
    "action_failed": "failed",
    "action_skipped": "skipped",
    "action_rejected": "rejected",
    "action_deduplicated": "succeeded",
}

_COMPENSATION_END: Final = {
    "compensation_succeeded": "succeeded",
    "compensation_failed": "failed",
    "compensation_rejected": "rejected",
}

#: A step of a recorded run: ("decide", action id, time), ("end", action id, status,
#: state changes or None, whether it called a tool), ("rollback",), ("undo", id of the
#: action compensated, the undo step's status), ("retry", action id, time).
Step = tuple[Any, ...]


_DECODER: Final = json.JSONDecoder()


@dataclass(slots=True)
class RecordedDecision:
    """What the log says the policies decided about one action."""

    decision: str  # allow, deny, require_approval
    policies: list[str] = field(default_factory=list)
    #: the `policy_decision` event's data as written, parsed only when a position is asked
    raw: str | None = None

    @property
    def locs(self) -> dict[str, dict[str, Any]]:
        """The source positions the log recorded (`policy_decision`), by policy name."""
        if self.raw is None:
            return {}
        try:
            # the first value: the data, though another field followed it on the line
            data, _ = _DECODER.raw_decode(self.raw)
        except (json.JSONDecodeError, RecursionError):
            return {}
        policies = data.get("policies") if isinstance(data, dict) else None
        return {
            str(entry.get("name")): entry["loc"]
            for entry in (policies if isinstance(policies, list) else ())
            if isinstance(entry, dict) and isinstance(entry.get("loc"), dict)
        }


@dataclass(slots=True)
class RecordedProposal:
    """One proposal run of a recorded run (a replanned run has several)."""

    run_id: str
    proposal_id: str
    scope: dict[str, Any]
    session: str | None
    started: float
    document: dict[str, Any] | None = None
    redacted: bool = False
    tenant: str | None = None
    state: dict[str, Any] | None = None
    steps: list[Step] = field(default_factory=list)
    decisions: dict[str, RecordedDecision] = field(default_factory=dict)
    source: str = ""
    #: how many entries the recording runtime kept of its session's `history` (None: the
    #: default, `HISTORY_LIMIT`)
    history_limit: int | None = None


@contextmanager
def without_gc() -> Iterator[None]:
    """The cyclic garbage collector paused (and restored as it was): reading a log makes
    hundreds of thousands of containers that live to the end and form no cycles, and the
    collector would scan them again and again (40% of replay's time at 100,000 actions)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_runs(
    paths: Iterable[Path], note: Callable[[str], None] | None = None
) -> list[RecordedProposal]:
    """Every proposal run in the logs, in the order they started (the order the logs give
    them, for runs started at the same time). A run a later log holds again with the same
    events (the same log given twice, overlapping copies) is read once, and `note` told so
    in a line per log. Raises `EventLogError` for a log that cannot be read, saying where,
    and for a run two logs hold with different events. (In the order given, file by file, a
    rate limit's clock and a session's history ran backwards from one log to the next: the
    verdicts depended on the order the files were named in.)"""
    with without_gc():
        runs: list[RecordedProposal] = []
        first: dict[tuple[str, str], RecordedProposal] = {}
        for path in paths:
            repeated: dict[str, set[str]] = {}  # earlier log -> the runs this one repeats
            for run in _read_log(path):
                earlier = first.setdefault((run.run_id, run.proposal_id), run)
                if earlier is run:
                    runs.append(run)
                elif _same_events(earlier, run):
                    repeated.setdefault(earlier.source, set()).add(run.run_id)
                else:
                    raise EventLogError(
                        f"{path}: run {run.run_id} is in {earlier.source} too, with other"
                        " events (a copy taken while it ran?): give each run's events in"
                        " one log"
                    )
            if note is not None:
                for source, ids in repeated.items():
                    note(_repeated(path, source, len(ids)))
        runs.sort(key=_started)  # stable: a log's own order is kept among equals
        return runs


def _started(run: RecordedProposal) -> float:
    return run.started


def _same_events(one: RecordedProposal, other: RecordedProposal) -> bool:
    """Whether two logs' records of a run hold the same events (all replay reads of them;
    a refusal's positions aside)."""
    return all(
        getattr(one, name) == getattr(other, name)
        for name in RecordedProposal.__dataclass_fields__
        if name not in ("source", "decisions")
    ) and {i: (d.decision, d.policies) for i, d in one.decisions.items()} == {
        i: (d.decision, d.policies) for i, d in other.decisions.items()
    }


def _repeated(path: Path, source: str, count: int) -> str:
    """The note for the runs of `path` read from `source` already."""
    if Path(source).resolve() == path.resolve():
        return f"{path} is given twice: its runs are judged once"
    runs = f"{count} run{'' if count == 1 else 's'}"
    return f"{path} repeats {runs} of {source} (the same events): judged once"


def _read_log(path: Path) -> list[RecordedProposal]:
    """The proposal runs of one log, in the order the log gives them."""
    found: list[RecordedProposal] = []
    open_runs: dict[tuple[str, str], RecordedProposal] = {}
    contexts: dict[str, tuple[dict[str, Any], str | None, float, int | None]] = {}
    current: RecordedProposal | None = None
    for kind, run_id, proposal_id, action_id, timestamp, data in _records(path):
        if run_id is None:
            continue
        if kind == "run_started":
            limit = data.get("history_limit")
            limit = limit if type(limit) is int and limit > 0 else None
            contexts[run_id] = (data.get("scope") or {}, data.get("session"), timestamp, limit)
            continue
        # Most events belong to the run of the event before them.
        if (
            current is not None
            and current.run_id == run_id
            and current.proposal_id == (proposal_id or "")
        ):
            _add(current, kind, action_id, timestamp, data)
            continue
        key = (run_id, proposal_id or "")
        run = open_runs.get(key)
        if run is None:
            scope, session, started, limit = contexts.get(run_id, ({}, None, timestamp, None))
            run = open_runs[key] = RecordedProposal(
                run_id,
                proposal_id or "",
                dict(scope),
                session,
                started,
                source=str(path),
                history_limit=limit,
            )
            found.append(run)
        current = run
        _add(run, kind, action_id, timestamp, data)
    return found


def _add(
    run: RecordedProposal, kind: str, action_id: str | None, timestamp: float, data: dict[str, Any]
) -> None:
    if kind in _TERMINAL:
        if action_id is not None:
            changes = data.get("state_changes") if kind != "action_deduplicated" else None
            # whether a tool was called: not for an idempotent action's or a cacheable
            # tool's remembered output (neither counts in `max_tool_calls`)
            called = kind == "action_succeeded" and not data.get("cached")
            run.steps.append(("end", action_id, _STATUS[kind], changes, called))
    elif kind == "action_validated":
        if action_id is not None:
            run.steps.append(("decide", action_id, timestamp))
            run.decisions.setdefault(action_id, RecordedDecision("allow"))
    elif kind == "policy_decision":
        # The decision and its policies are known from the events that enforce it (it comes
        # before them); of this one only the positions are kept, parsed when shown.
        if action_id is not None and data:
            recorded = run.decisions.setdefault(action_id, RecordedDecision("allow"))
            raw = data.get(_RAW)
            recorded.raw = raw if isinstance(raw, str) else json.dumps(data)
    elif kind == "policy_violation":
        recorded = run.decisions.setdefault(action_id or "", RecordedDecision("deny"))
        recorded.decision = "deny"
        policy = str(data.get("policy", ""))
        if policy not in recorded.policies:
            recorded.policies.append(policy)
    elif kind == "approval_recorded":
        recorded = run.decisions.setdefault(action_id or "", RecordedDecision("require_approval"))
        if recorded.decision != "deny":
            recorded.decision = "require_approval"
        for policy in data.get("policies") or ():
            if policy not in recorded.policies:
                recorded.policies.append(str(policy))
    elif kind in _COMPENSATION_END:
        # An undo step that ran, or was refused when decided, is in `history` once it ends
        # (none when there was no step to run: data without `compensation`).
        if action_id is not None and isinstance(data.get("compensation"), str):
            run.steps.append(("undo", action_id, _COMPENSATION_END[kind]))
    elif kind == "action_retrying":
        if action_id is not None:  # another call of its tool: a place in its rate limits
            run.steps.append(("retry", action_id, timestamp))
    elif kind == "state_rollback":
        run.steps.append(("rollback",))
    elif kind == "proposal_received":
        document = data.get("proposal")
        run.document = document if isinstance(document, dict) else None
        run.redacted = bool(data.get("redacted"))
    elif kind == "state_snapshot":
        state = data.get("state")
        run.state = dict(state) if isinstance(state, dict) else None
        run.tenant = data.get("tenant")


_Record = tuple[str, str | None, str | None, str | None, float, dict[str, Any]]


def _records(path: Path) -> Iterator[_Record]:
    if not path.exists():
        raise EventLogError(f"{path}: no such file")
    if path.suffix in SQLITE_SUFFIXES:
        store = EventStore(path)
        try:
            for event in store.events():
                if event.kind in _WANTED:
                    if event.kind in _DATA_FIELDS:
                        _check_data(f"{path}: event {event.id}", event.kind, event.data, "")
                    yield (
                        event.kind,
                        event.run_id,
                        event.proposal_id,
                        event.action_id,
                        event.timestamp,
                        event.data,
                    )
        finally:
            store.close()
        return
    text = read_log_text(path)
    lines = text.split("\n")
    last = len(lines)
    if lines[-1].strip():
        # The writer ends every line: a last line without its end may be cut short, which the
        # fast path below (it reads most lines without parsing them) would not see.
        _parse(path, last, last, text, lines[-1])
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        # Most of a log is steps replay reads only the ids of, or not at all: the header of a
        # line `event_document` wrote is read without parsing the line; anything else (an
        # escaped character, another layout) is parsed whole.
        start = line.find('"kind": "', 0, 40)
        if start != -1:
            end = line.find('"', start + 9)
            if end != -1 and line[start + 9 : end] not in _WANTED:
                continue
        header = _HEADER.match(line)
        data = _fast_data(line, header)
        if header is not None and data is not None:
            kind, run_id, proposal_id, action_id, stamp = header.groups()
            if data and kind in _DATA_FIELDS:
                _check_data(f"{path}:{number}", kind, data, line)
            yield (
                kind,
                run_id,
                proposal_id,
                action_id,
                _timestamp(path, number, stamp) if kind in _TIMED else 0.0,
                data,
            )
            continue
        record = _parse(path, number, last, text, line)
        if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
            # another tool's transcript, say: name the logs replay reads
            raise EventLogError(f"{not_an_event(path, number, record)}{_WHAT_REPLAY_READS}")
        check_event(path, number, line, record)
        if record["kind"] not in _WANTED:
            continue
        timestamp = _timestamp(path, number, record.get("timestamp"))
        data = record.get("data")
        if isinstance(data, dict) and record["kind"] in _DATA_FIELDS:
            _check_data(f"{path}:{number}", record["kind"], data, line)
        yield (
            record["kind"],
            record.get("trace_id"),
            record.get("proposal_id"),
            record.get("action_id"),
            timestamp,
            data if isinstance(data, dict) else {},
        )


# The layout `event_document` writes for an action's event (ids present, in this order).
_HEADER: Final = re.compile(
    r'\{"seq": \d+, "kind": "([a-z_]+)", "trace_id": "([^"]*)", "proposal_id": "([^"]*)",'
    r' "action_id": "([^"]*)", "span_id": "[^"]*", "parent_id": "[^"]*",'
    r' "timestamp": "([^"]*)", "data": '
)
_NO_DATA: Final[dict[str, Any]] = {}
_WHAT_REPLAY_READS: Final = (
    "; replay reads the event logs `carlang run`, `carlang agent` and `carlang mcp proxy`"
    " write with --events (a JSON event per line)"
)

#: The fields of an event's data that replay reads, by kind, and what each must be when it
#: is there and not null (replay used them as they were: a `scope` that is a string was an
#: internal error).
_DATA_FIELDS: Final[dict[str, dict[str, tuple[type, str]]]] = {
    "run_started": {
        "scope": (dict, "an object"),
        "session": (str, "a string"),
        "history_limit": (int, "a positive integer"),
    },
    "proposal_received": {"proposal": (dict, "an object")},
    "state_snapshot": {"state": (dict, "an object"), "tenant": (str, "a string")},
    "policy_violation": {"policy": (str, "a string")},
    "approval_recorded": {"policies": (list, "a list of policy names")},
    **{kind: {"state_changes": (dict, "an object")} for kind in _TERMINAL},
}


def _check_data(where: str, kind: str, data: dict[str, Any], line: str) -> None:
    """Raise `EventLogError` at `where` (`file:line`, and the field's column when `line`,
    the event's text, is given) unless the fields of `data` replay reads are what they must
    be."""
    for name, (expected, what) in _DATA_FIELDS.get(kind, {}).items():
        value = data.get(name)
        if value is None or _fits(value, expected):
            continue
        column = f":{locate(line, ['data', name]).column}" if line else ""
        found = "a list holding other values" if isinstance(value, list) else json_kind(value)
        raise EventLogError(
            f"{where}{column}: not a valid {kind} event: data.{name} must be {what} or null,"
            f" not {found}; correct or remove that event"
        )


_RAW: Final = "\x00raw"  # not a key JSON from the runtime has


def _fast_data(line: str, header: re.Match[str] | None) -> dict[str, Any] | None:
    """The data of a line read by its header (`_HEADER`) without parsing the whole line, or
    None: the line is to be parsed whole. That reading holds for the layout `event_document`
    writes, `data` last and the closing brace after it (a line ending in CRLF or spaces
    too); a line written otherwise (another field after `data`, an escaped character in the
    header, data that is not an object) is parsed whole, which reads it right or says what
    is wrong with it where it is."""
    if header is None or "\\" in line[: header.end()]:
        return None
    body = line if line[-1:] == "}" else line.rstrip()  # (a copy only when it must)
    if body[-1:] != "}":
        return None
    rest = body[header.end() : -1]
    data = _light_data(header[1], rest)
    if data is not None:
        return data
    try:
        parsed = loads(rest)
    except json.JSONDecodeError:  # not one JSON value: another field after `data`, say
        return None
    return parsed if isinstance(parsed, dict) else None


def _fits(value: object, expected: type) -> bool:
    """Whether `value` is an `expected` (a list: of strings, the only lists replay reads)."""
    if isinstance(value, list):
        return expected is list and all(isinstance(item, str) for item in value)
    return isinstance(value, expected)


def _light_data(kind: str, rest: str) -> dict[str, Any] | None:
    """The data replay needs of an event, when it can be had without parsing (None: parse)."""
    if kind == "action_validated" or kind == "action_retrying":
        return _NO_DATA
    if (
        kind in _TERMINAL
        and '"state_changes": {}' in rest
        and rest.count('"state_changes"') == 1
        and '"cached"' not in rest
    ):
        return _NO_DATA  # no state changed, a call made: replay needs nothing else of it
    if kind == "policy_violation" and rest.startswith('{"policy": "'):
        end = rest.find('"', 12)
        name = rest[12:end]
        if end != -1 and "\\" not in name:
            return {"policy": name}  # the deciding policy is all replay reads of it
        return None
    if kind == "policy_decision":
        if '"decision": "allow"' in rest:
            # An allow: the action_validated step already says so. (Should a parameter be
            # named `decision` with the value "allow", a refusal is still known from its
            # policy_violation or approval_recorded event; only its positions are lost.)
            return _NO_DATA
        return {_RAW: rest}
    return None


def _parse(path: Path, number: int, last: int, text: str, line: str) -> Any:
    try:
        return loads(line)
    except json.JSONDecodeError as exc:
        where = f"{path}:{number}:{exc.colno}"
        if number >= last - 1 and not text.endswith("\n") and not too_deeply_nested(exc):
            raise EventLogError(
                f"{where}: the last line is cut short (the log was being written when its"
                " process stopped); remove that line to replay the rest"
            ) from None
        raise EventLogError(f"{where}: {malformed(exc)}{ONE_EVENT_PER_LINE}") from None


def _timestamp(path: Path, number: int, text: Any) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        raise EventLogError(f"{path}:{number}:1: the event has no valid timestamp") from None
