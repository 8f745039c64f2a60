"""The lean interpreter: `Runtime` runs verified IR with CAR's engine semantics.

state.py       the state store, per tenant, with transitions and rollback
events.py      the event log and its JSONL sink; journal.py the SQLite one
tools.py       tools: Python callables and subprocesses, schemas from type hints
limits.py      rate limits (token buckets) and the result cache
approval.py    approval gates; middleware.py hooks; cancel.py cancel tokens
run.py         one run of one proposal: levels, the per-action pipeline, rollback
runtime.py     `Runtime`: registration, sessions, execute, replanning, checkpoints
resume.py      durable runs: resume from the SQLite journal
hostloop.py    helpers for agent loops
"""

from __future__ import annotations

from .approval import (
    Approval,
    ApprovalGate,
    ApprovalRequest,
    AutoApprove,
    CallbackGate,
    DenyApprovals,
)
from .cancel import CancelToken
from .events import Event, EventKind, EventLog, JsonlSink
from .hostloop import format_tool_result
from .journal import EventLogError, EventStore, SqliteSink, read_event_log
from .middleware import Middleware
from .runtime import GateDecision, ReplanConfig, ReplanContext, RetryPolicy, Runtime
from .state import StateStore
from .tools import ToolContext, ToolError, schema_from_function, subprocess_tool

__all__ = [
    "Runtime",
    "RetryPolicy",
    "ReplanConfig",
    "ReplanContext",
    "GateDecision",
    "StateStore",
    "Event",
    "EventKind",
    "EventLog",
    "JsonlSink",
    "SqliteSink",
    "EventStore",
    "EventLogError",
    "read_event_log",
    "CancelToken",
    "ApprovalGate",
    "ApprovalRequest",
    "Approval",
    "AutoApprove",
    "DenyApprovals",
    "CallbackGate",
    "Middleware",
    "ToolContext",
    "ToolError",
    "schema_from_function",
    "subprocess_tool",
    "format_tool_result",
]
