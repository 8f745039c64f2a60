"""What real runs say about tools: success rates and durations, learned from event logs.

A tool's success rate is per attempt, as the Monte Carlo estimate draws it: a success is one
attempt that worked, each `action_retrying` is an attempt that failed, and a final
`action_failed` one more, and so is an `action_skipped` after `action_executing` (an optional
step whose call failed). Rejected, otherwise skipped and deduplicated actions never called the
tool and count for nothing, nor does an attempt interrupted from outside (an `action_failed`
marked `interrupted`: the run was stopped, the tool did not fail). Durations are the mean of
the successful calls' `duration_ms`. A log names an action's tool only in its
`proposal_received` event (the whole proposal, which durable logs record), so events of
proposals the log does not hold are left out.

Beyond the tool, the log is split by *parameter pattern*: each scalar parameter's value
(`deploy` with `env = "prod"`). A pattern is used instead of its tool's rate only where the log
shows they differ (a two-proportion z-test, |z| >= `SIGNIFICANT_Z`, over at least
`MIN_PATTERN_ATTEMPTS` attempts): a deploy to prod that fails more than one to staging. Approvals
are counted per policy (asked, granted) from `approval_recorded`. `save` writes all of it to a
JSON file that `ToolFeedback.load` reads back instead of the log.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CarlangRuntimeError
from ..ir import ActionProposal, ActionStatus, ProposalResult
from ..jsontext import loads, malformed
from ..textfile import read_input

__all__ = [
    "FeedbackFileError",
    "ToolFeedback",
    "ToolStats",
    "FEEDBACK_FORMAT",
    "MIN_PATTERN_ATTEMPTS",
    "SIGNIFICANT_Z",
    "MAX_DURATION_MS",
]

_RECEIVED = ("proposal_received", "replan_proposal_received")
#: The marker of a saved feedback file (`ToolFeedback.save`).
FEEDBACK_FORMAT = "carlang-feedback/1"
#: A parameter pattern needs this many attempts before it can stand for its tool's rate.
MIN_PATTERN_ATTEMPTS = 20
#: How far (in standard errors) a pattern's rate must be from the rest of its tool's.
SIGNIFICANT_Z = 2.0
#: The longest duration counted, a year in ms: a `duration_ms` beyond it (1e308), negative or
#: not a finite number is no call's time (the call still counts); summed, 1e308 overflowed to
#: infinity, which a feedback file cannot hold as standard JSON.
MAX_DURATION_MS = 365 * 24 * 3600 * 1000.0
#: A (tool, parameter, value as compact JSON) pattern.
Pattern = tuple[str, str, str]


class FeedbackFileError(CarlangRuntimeError, ValueError):
    """A saved feedback file that cannot be read: says where and why."""


@dataclass(slots=True)
class ToolStats:
    """Counts for one tool: attempts, successes, and the summed duration of the successes."""

    attempts: int = 0
    successes: int = 0
    duration_ms: float = 0.0
    timed: int = 0

    @property
    def success_rate(self) -> float:
        """Successes over attempts (1.0 before any attempt)."""
        return self.successes / self.attempts if self.attempts else 1.0

    @property
    def mean_duration_ms(self) -> float | None:
        """The mean duration of a successful call, if any was timed."""
        return self.duration_ms / self.timed if self.timed else None


@dataclass
class ToolFeedback:
    """Per-tool history for the planner. `tool_success_rates` (CAR's field) may be given
    directly; `stats` holds what was learned from logs and results (and overrides it)."""

    tool_success_rates: dict[str, float] = field(default_factory=dict)
    stats: dict[str, ToolStats] = field(default_factory=dict)
    #: Per (tool, parameter, value): the same counts, for the calls with that value.
    patterns: dict[Pattern, ToolStats] = field(default_factory=dict)
    #: Per policy: [approvals asked, approvals granted].
    approvals: dict[str, list[int]] = field(default_factory=dict)
    _distinct: dict[str, list[tuple[Pattern, float]]] | None = field(
        default=None, repr=False, compare=False
    )

    def success_rate(self, tool: str) -> float | None:
        """The tool's success rate per attempt, or None if nothing is known of it."""
        stats = self.stats.get(tool)
        if stats is not None and stats.attempts:
            return stats.success_rate
        return self.tool_success_rates.get(tool)

    def success_rates(self) -> dict[str, float]:
        """Every known tool's success rate."""
        rates = dict(self.tool_success_rates)
        rates.update({name: s.success_rate for name, s in self.stats.items() if s.attempts})
        return rates

    def action_success_rate(self, tool: str, parameters: Mapping[str, Any]) -> float | None:
        """The success rate per attempt of calling `tool` with `parameters`: the rate of the
        parameter pattern that differs most from its tool (if one differs significantly and
        matches), else the tool's."""
        distinct = self.distinct_patterns().get(tool)
        if distinct:
            for (_, name, value), rate in distinct:
                if name in parameters and _value_key(parameters[name]) == value:
                    return rate
        return self.success_rate(tool)

    def distinct_patterns(self) -> dict[str, list[tuple[Pattern, float]]]:
        """Per tool, the parameter patterns whose rate differs significantly from the rest of
        the tool's calls, most different first, with their rates."""
        if self._distinct is None:
            self._distinct = self._find_distinct()
        return self._distinct

    def _find_distinct(self) -> dict[str, list[tuple[Pattern, float]]]:
        found: dict[str, list[tuple[float, Pattern, float]]] = {}
        for pattern, stats in self.patterns.items():
            tool = self.stats.get(pattern[0])
            if tool is None or stats.attempts < MIN_PATTERN_ATTEMPTS:
                continue
            rest_attempts = tool.attempts - stats.attempts
            rest_successes = tool.successes - stats.successes
            if rest_attempts < MIN_PATTERN_ATTEMPTS:
                continue
            z = _z(stats.successes, stats.attempts, rest_successes, rest_attempts)
            if abs(z) >= SIGNIFICANT_Z:
                found.setdefault(pattern[0], []).append((abs(z), pattern, stats.success_rate))
        return {
            tool: [(p, rate) for _, p, rate in sorted(items, key=lambda t: (-t[0], t[1]))]
            for tool, items in found.items()
        }

    def approval_rate(self, policy: str) -> float | None:
        """The share of approvals asked by `policy` that were granted, if any was asked."""
        counts = self.approvals.get(policy)
        return counts[1] / counts[0] if counts and counts[0] else None

    def mean_duration_ms(self, tool: str) -> float | None:
        """The tool's mean duration per successful call, if known."""
        stats = self.stats.get(tool)
        return stats.mean_duration_ms if stats is not None else None

    @property
    def has_durations(self) -> bool:
        """Whether any tool's duration is known."""
        return any(s.timed for s in self.stats.values())

    def _tool(self, name: str) -> ToolStats:
        stats = self.stats.get(name)
        if stats is None:
            stats = self.stats[name] = ToolStats()
        return stats

    def record(self, proposal: ActionProposal, result: ProposalResult) -> None:
        """Learn from one run's result (each tool call's final status and duration; retries
        within it are not visible in a result, so they are not counted)."""
        calls = {a.id: (a.tool, a.parameters) for a in proposal.actions if a.tool is not None}
        for outcome in result.results:
            call = calls.get(outcome.action_id)
            if call is None:  # not a tool call (a rolled-back success still worked)
                continue
            if outcome.status is ActionStatus.SUCCEEDED:
                self._success(call, outcome.duration_ms)
            elif outcome.status is ActionStatus.FAILED or (
                outcome.status is ActionStatus.SKIPPED and outcome.duration_ms is not None
            ):
                self._failure(call)  # a skipped step with a duration was called and failed

    def _counters(self, call: tuple[str, Mapping[str, Any]]) -> list[ToolStats]:
        self._distinct = None
        tool, parameters = call
        counters = [self._tool(tool)]
        for name, value in parameters.items():
            key = _value_key(value)
            if key is not None:
                pattern = (tool, name, key)
                stats = self.patterns.get(pattern)
                if stats is None:
                    stats = self.patterns[pattern] = ToolStats()
                counters.append(stats)
        return counters

    def _success(self, call: tuple[str, Mapping[str, Any]], duration_ms: Any) -> None:
        timed = (
            isinstance(duration_ms, (int, float))
            and not isinstance(duration_ms, bool)
            and 0 <= duration_ms <= MAX_DURATION_MS  # (False for NaN)
        )
        for stats in self._counters(call):
            stats.attempts += 1
            stats.successes += 1
            if timed:
                stats.duration_ms += float(duration_ms)
                stats.timed += 1

    def _failure(self, call: tuple[str, Mapping[str, Any]]) -> None:
        for stats in self._counters(call):
            stats.attempts += 1

    def learn(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Learn from event documents (as `read_event_log` returns them), in log order."""
        calls: dict[tuple[Any, Any, Any], tuple[str, Mapping[str, Any]]] = {}
        called: set[tuple[Any, Any, Any]] = set()
        for event in events:
            kind = event.get("kind")
            data = event.get("data") or {}
            run, proposal_id = event.get("trace_id"), event.get("proposal_id")
            if kind in _RECEIVED:
                document = data.get("proposal") if isinstance(data, Mapping) else None
                if isinstance(document, Mapping):
                    for action in document.get("actions") or ():
                        if isinstance(action, Mapping) and isinstance(action.get("tool"), str):
                            params = action.get("parameters")
                            calls[(run, proposal_id, action.get("id"))] = (
                                action["tool"],
                                params if isinstance(params, Mapping) else {},
                            )
                continue
            if kind == "approval_recorded" and isinstance(data, Mapping):
                self._approval(data)
                continue
            key = (run, proposal_id, event.get("action_id"))
            call = calls.get(key)
            if call is None:
                continue
            if kind == "action_executing":
                called.add(key)
            elif kind == "action_succeeded":
                self._success(call, data.get("duration_ms"))
            elif kind == "action_failed" and data.get("interrupted"):
                continue  # stopped from outside (Ctrl-C, a killed worker): not the tool's doing
            elif kind in ("action_failed", "action_retrying"):
                self._failure(call)
            elif kind == "action_skipped" and key in called:
                self._failure(call)  # an optional step whose call failed (`on_failure skip`)

    def _approval(self, data: Mapping[str, Any]) -> None:
        granted = bool(data.get("approved"))
        for policy in data.get("policies") or ():
            if isinstance(policy, str):
                counts = self.approvals.setdefault(policy, [0, 0])
                counts[0] += 1
                counts[1] += granted

    @classmethod
    def from_events(cls, events: Iterable[Mapping[str, Any]]) -> ToolFeedback:
        """Feedback learned from event documents."""
        feedback = cls()
        feedback.learn(events)
        return feedback

    def merge(self, other: ToolFeedback) -> None:
        """Add `other`'s counts to these (several logs learned into one)."""
        self._distinct = None
        self.tool_success_rates.update(other.tool_success_rates)
        for name, stats in other.stats.items():
            _add(self.stats.setdefault(name, ToolStats()), stats)
        for pattern, stats in other.patterns.items():
            _add(self.patterns.setdefault(pattern, ToolStats()), stats)
        for policy, (asked, granted) in other.approvals.items():
            counts = self.approvals.setdefault(policy, [0, 0])
            counts[0] += asked
            counts[1] += granted

    def to_document(self) -> dict[str, Any]:
        """Everything learned, as JSON data (`from_document` reads it back)."""

        def counts(stats: ToolStats) -> list[float]:
            return [stats.attempts, stats.successes, stats.duration_ms, stats.timed]

        return {
            "format": FEEDBACK_FORMAT,
            "tool_success_rates": dict(sorted(self.tool_success_rates.items())),
            "tools": {name: counts(s) for name, s in sorted(self.stats.items())},
            "patterns": [[*p, *counts(s)] for p, s in sorted(self.patterns.items())],
            "approvals": dict(sorted(self.approvals.items())),
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> ToolFeedback:
        """Feedback saved by `to_document`; raises `ValueError` saying what is wrong."""
        if document.get("format") != FEEDBACK_FORMAT:
            raise ValueError(f"not a carlang feedback file (format {FEEDBACK_FORMAT!r})")
        where = "the file"
        try:
            where = "tool_success_rates"
            rates = {str(k): _rate(v) for k, v in document.get("tool_success_rates", {}).items()}
            tools: dict[str, ToolStats] = {}
            where = "tools"
            for name, row in document.get("tools", {}).items():
                where = f"tools.{name}"
                tools[str(name)] = _stats(row)
            patterns: dict[Pattern, ToolStats] = {}
            where = "patterns"
            for position, row in enumerate(document.get("patterns", [])):
                where = f"patterns[{position}]"
                if not isinstance(row, list) or len(row) != 7:
                    raise ValueError("expected [tool, parameter, value, " + _COUNTS + "]")
                patterns[(str(row[0]), str(row[1]), str(row[2]))] = _stats(row[3:])
            approvals: dict[str, list[int]] = {}
            where = "approvals"
            for policy, pair in document.get("approvals", {}).items():
                where = f"approvals.{policy}"
                if not isinstance(pair, list) or len(pair) != 2:
                    raise ValueError("expected [asked, granted]")
                asked, granted = _count(pair[0], "asked"), _count(pair[1], "granted")
                if granted > asked:
                    raise ValueError(f"{granted} granted of {asked} asked")
                approvals[str(policy)] = [asked, granted]
        except (TypeError, ValueError, IndexError, AttributeError) as exc:
            raise ValueError(f"damaged carlang feedback file: {where}: {exc}") from None
        return cls(tool_success_rates=rates, stats=tools, patterns=patterns, approvals=approvals)

    def save(self, path: str | Path) -> None:
        """Write what was learned to `path` (JSON), for `load` to read back."""
        # (allow_nan=False: never a non-standard `Infinity` that other JSON readers refuse)
        Path(path).write_text(json.dumps(self.to_document(), indent=1, allow_nan=False) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ToolFeedback:
        """A saved feedback file (`save`, `carlang planner learn`) or an event log. Raises
        `EventLogError` or `FeedbackFileError` when it cannot be read."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            try:
                document = loads(read_input(path))
            except json.JSONDecodeError as exc:
                raise FeedbackFileError(
                    f"{path}:{exc.lineno}:{exc.colno}: not a feedback file: {malformed(exc)}"
                ) from None
            if not isinstance(document, Mapping):
                raise FeedbackFileError(f"{path}: not a carlang feedback file")
            try:
                return cls.from_document(document)
            except ValueError as exc:
                raise FeedbackFileError(f"{path}: {exc}") from None
        return cls.from_log(path)

    @classmethod
    def from_log(cls, path: str | Path) -> ToolFeedback:
        """Feedback learned from an event log: a SQLite journal (`.db`) or JSONL. Raises
        `EventLogError` if it cannot be read."""
        # Imported here: the engine imports the planner (plan_and_execute).
        from ..engine.journal import read_event_log

        return cls.from_events(read_event_log(Path(path)))


#: What a row of counts in a feedback file holds, in order.
_COUNTS = "attempts, successes, duration_ms, timed"


def _stats(row: Any) -> ToolStats:
    """A row of counts of a feedback file; ValueError saying what it should be."""
    if not isinstance(row, list) or len(row) != 4:
        raise ValueError(f"expected [{_COUNTS}], got {json.dumps(row)[:60]}")
    attempts, successes = _count(row[0], "attempts"), _count(row[1], "successes")
    duration, timed = row[2], _count(row[3], "timed")
    if type(duration) not in (int, float) or not math.isfinite(duration) or duration < 0:
        raise ValueError(
            f"a duration must be a finite number of ms, 0 or more, not {json.dumps(duration)}"
        )
    if successes > attempts:
        raise ValueError(f"{successes} successes of {attempts} attempts")
    if timed > attempts:  # (a file written by hand may time the failures too)
        raise ValueError(f"{timed} timed of {attempts} attempts")
    return ToolStats(attempts, successes, float(duration), timed)


def _count(value: Any, name: str) -> int:
    """A count of a feedback file: a whole number, 0 or more (a damaged file's 50 successes of
    10 attempts scored a plan above 1); ValueError saying what it is instead."""
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int or value < 0:
        raise ValueError(f"{name} must be a whole number, 0 or more, not {json.dumps(value)}")
    return value


def _rate(value: Any) -> float:
    """A success rate of a feedback file: a number from 0 to 1; ValueError otherwise."""
    if type(value) not in (int, float) or not 0 <= value <= 1:
        raise ValueError(f"a success rate is a number from 0 to 1, not {json.dumps(value)}")
    return float(value)


def _value_key(value: Any) -> str | None:
    """A scalar parameter value as a pattern key (compact JSON); None for lists and maps."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return json.dumps(value, separators=(",", ":"))
    return None


def _z(s1: int, n1: int, s2: int, n2: int) -> float:
    """The two-proportion z statistic of s1/n1 against s2/n2 (0 when it is undefined)."""
    pooled = (s1 + s2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return (s1 / n1 - s2 / n2) / spread if spread else 0.0


def _add(into: ToolStats, stats: ToolStats) -> None:
    into.attempts += stats.attempts
    into.successes += stats.successes
    into.duration_ms += stats.duration_ms
    into.timed += stats.timed
