"""What real runs say about tools: success rates and durations, learned from event logs.

A tool's success rate is per attempt, as the Monte Carlo estimate draws it: a success is one
attempt that worked, each `action_retrying` is an attempt that failed, and a final
`action_failed` one more. Rejected, skipped and deduplicated actions never called the tool and
count for nothing. Durations are the mean of the successful calls' `duration_ms`. A log names an
action's tool only in its `proposal_received` event (the whole proposal, which durable logs
record), so events of proposals the log does not hold are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..ir import ActionProposal, ActionStatus, ProposalResult

__all__ = ["ToolFeedback", "ToolStats"]

_RECEIVED = ("proposal_received", "replan_proposal_received")


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
        tools = {a.id: a.tool for a in proposal.actions if a.tool is not None}
        for outcome in result.results:
            tool = tools.get(outcome.action_id)
            if tool is None:  # not a tool call (a rolled-back success still worked)
                continue
            if outcome.status is ActionStatus.SUCCEEDED:
                self._success(tool, outcome.duration_ms)
            elif outcome.status is ActionStatus.FAILED:
                self._tool(tool).attempts += 1

    def _success(self, tool: str, duration_ms: Any) -> None:
        stats = self._tool(tool)
        stats.attempts += 1
        stats.successes += 1
        if isinstance(duration_ms, (int, float)) and not isinstance(duration_ms, bool):
            stats.duration_ms += float(duration_ms)
            stats.timed += 1

    def learn(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Learn from event documents (as `read_event_log` returns them), in log order."""
        tools: dict[tuple[Any, Any, Any], str] = {}
        for event in events:
            kind = event.get("kind")
            data = event.get("data") or {}
            run, proposal_id = event.get("trace_id"), event.get("proposal_id")
            if kind in _RECEIVED:
                document = data.get("proposal") if isinstance(data, Mapping) else None
                if isinstance(document, Mapping):
                    for action in document.get("actions") or ():
                        if isinstance(action, Mapping) and isinstance(action.get("tool"), str):
                            tools[(run, proposal_id, action.get("id"))] = action["tool"]
                continue
            tool = tools.get((run, proposal_id, event.get("action_id")))
            if tool is None:
                continue
            if kind == "action_succeeded":
                self._success(tool, data.get("duration_ms"))
            elif kind in ("action_failed", "action_retrying"):
                self._tool(tool).attempts += 1

    @classmethod
    def from_events(cls, events: Iterable[Mapping[str, Any]]) -> ToolFeedback:
        """Feedback learned from event documents."""
        feedback = cls()
        feedback.learn(events)
        return feedback

    @classmethod
    def from_log(cls, path: str | Path) -> ToolFeedback:
        """Feedback learned from an event log: a SQLite journal (`.db`) or JSONL. Raises
        `EventLogError` if it cannot be read."""
        # Imported here: the engine imports the planner (plan_and_execute).
        from ..engine.journal import read_event_log

        return cls.from_events(read_event_log(Path(path)))
