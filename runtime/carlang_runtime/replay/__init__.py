"""Replay: policy changes judged against real traffic. Recorded runs are read back from event
logs (`read_runs`), every recorded action is re-decided by a candidate program (`Judge`,
`replay`) with the state, scope and history it had, and the decisions that change are reported
(`report`: text, JSON, SARIF, JUnit, CSV)."""

from __future__ import annotations

from .judge import Change, Judge, ReplayReport, Unjudged, Verdict, replay
from .log import RecordedProposal, read_runs

__all__ = [
    "Change",
    "Judge",
    "ReplayReport",
    "Unjudged",
    "Verdict",
    "replay",
    "RecordedProposal",
    "read_runs",
]
