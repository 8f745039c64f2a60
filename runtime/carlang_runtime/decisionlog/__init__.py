"""Decision logs fit for production: the `policy_decision` event's versioned JSON Schema, the
content hash that says which program decided, and sinks beyond files (an HTTP collector,
OpenTelemetry spans)."""

from __future__ import annotations

from .http import HttpSink, HttpSinkStats
from .schema import (
    DECISION_SCHEMA_ID,
    DECISION_VERSION,
    content_hash,
    decision_schema,
    policy_entry,
)

__all__ = [
    "HttpSink",
    "HttpSinkStats",
    "DECISION_SCHEMA_ID",
    "DECISION_VERSION",
    "content_hash",
    "decision_schema",
    "policy_entry",
]
