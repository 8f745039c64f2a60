"""OpenTelemetry: runs, proposals, actions and policy decisions as spans, exported through
whatever exporter the host configured (`opentelemetry-sdk`, the optional extra `otel`).

Span ids continue the ones carlang assigns: the trace id is the run id (its 16 hex digits as a
128-bit number), the run span's parent is the run id as a remote span, and every span carries
carlang's own span id (`carlang.span_id`: `run/proposal/action`) and its parent's."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from ..engine.events import TERMINAL_KINDS, Event

__all__ = ["OtelSink", "trace_id_of"]

_TERMINAL = frozenset(str(kind) for kind in TERMINAL_KINDS)


def trace_id_of(run_id: str) -> int:
    """The OpenTelemetry trace id of a carlang run: its hex id as a number, else a hash."""
    try:
        value = int(run_id, 16)
        if 0 < value < 2**128:
            return value
    except ValueError:
        pass
    return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:16], "big") or 1


def _span_id_of(carlang_span: str) -> int:
    return int.from_bytes(hashlib.sha256(carlang_span.encode()).digest()[:8], "big") or 1


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


class OtelSink:
    """An event sink that makes spans: `carlang.run`, `carlang.proposal`, `carlang.action`
    and `carlang.policy_decision` (with the decision record's attributes). `tracer_provider`
    defaults to the global one."""

    def __init__(self, tracer_provider: Any | None = None) -> None:
        try:
            from opentelemetry import trace
        except ImportError as exc:  # pragma: no cover - the extra is missing
            raise ImportError(
                "OpenTelemetry spans need opentelemetry-sdk: pip install 'carlang[otel]'"
            ) from exc
        self._trace = trace
        provider = tracer_provider or trace.get_tracer_provider()
        self.tracer = provider.get_tracer("carlang")
        self._spans: dict[str, Any] = {}
        self._tools: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def write(self, event: Event) -> None:
        """Open, annotate or end the spans the event belongs to."""
        kind, run_id = str(event.kind), event.run_id
        if run_id is None:
            return
        with self._lock:
            if kind == "run_started":
                self._start_run(event)
            elif kind == "run_completed":
                self._end(run_id, event, {"carlang.status": event.data.get("status", "")})
            elif kind == "proposal_received":
                self._start_proposal(event)
            elif kind == "proposal_completed":
                key = f"{run_id}/{event.proposal_id}"
                self._end(key, event, {"carlang.status": event.data.get("status", "")})
            elif event.action_id is not None and event.proposal_id is not None:
                self._action_event(kind, event)

    def flush(self) -> None:
        """Nothing is buffered here (the span processor is the host's)."""

    def close(self) -> None:
        """End every span still open (a run that was stopped)."""
        with self._lock:
            for span in reversed(list(self._spans.values())):
                span.set_attribute("carlang.unfinished", True)
                span.end()
            self._spans.clear()

    # -- spans ------------------------------------------------------------------------------

    def _context(self, parent_key: str | None, run_id: str) -> Any:
        trace = self._trace
        parent = self._spans.get(parent_key) if parent_key is not None else None
        if parent is not None:
            return trace.set_span_in_context(parent)
        remote = trace.NonRecordingSpan(
            trace.SpanContext(
                trace_id=trace_id_of(run_id),
                span_id=_span_id_of(run_id),
                is_remote=True,
                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
            )
        )
        return trace.set_span_in_context(remote)

    def _start(
        self, key: str, name: str, event: Event, parent: str | None, attributes: dict[str, Any]
    ) -> Any:
        span = self.tracer.start_span(
            name,
            context=self._context(parent, event.run_id or ""),
            start_time=_ns(event.timestamp),
            attributes={
                "carlang.run_id": event.run_id or "",
                "carlang.span_id": key,
                "carlang.parent_id": parent or "",
                **{k: v for k, v in attributes.items() if v is not None},
            },
        )
        self._spans[key] = span
        return span

    def _end(self, key: str, event: Event, attributes: dict[str, Any]) -> None:
        span = self._spans.pop(key, None)
        if span is None:
            return
        for name, value in attributes.items():
            if value is not None:
                span.set_attribute(name, value)
        span.end(end_time=_ns(event.timestamp))

    def _start_run(self, event: Event) -> None:
        scope = event.data.get("scope") or {}
        self._start(
            event.run_id or "",
            "carlang.run",
            event,
            None,
            {
                "carlang.session": event.data.get("session"),
                "carlang.tenant": scope.get("tenant") if isinstance(scope, dict) else None,
            },
        )

    def _start_proposal(self, event: Event) -> None:
        run_id = event.run_id or ""
        key = f"{run_id}/{event.proposal_id}"
        document = event.data.get("proposal")
        if isinstance(document, dict):
            for action in document.get("actions") or ():
                if isinstance(action, dict):
                    self._tools[f"{key}/{action.get('id')}"] = action.get("tool")
        self._start(
            key,
            "carlang.proposal",
            event,
            run_id,
            {
                "carlang.proposal_id": event.proposal_id,
                "carlang.actions": event.data.get("actions"),
            },
        )

    def _action_event(self, kind: str, event: Event) -> None:
        proposal_key = f"{event.run_id}/{event.proposal_id}"
        key = f"{proposal_key}/{event.action_id}"
        span = self._spans.get(key)
        if span is None:
            span = self._start(
                key,
                "carlang.action",
                event,
                proposal_key,
                {"carlang.action_id": event.action_id, "carlang.tool": self._tools.get(key)},
            )
        if kind == "policy_decision":
            self._decision(key, event)
        elif kind == "policy_violation" or kind == "policy_shadowed":
            span.add_event(
                f"carlang.{kind}",
                {k: str(v) for k, v in event.data.items()},
                timestamp=_ns(event.timestamp),
            )
        elif kind in _TERMINAL:
            status = kind.removeprefix("action_")
            attributes: dict[str, Any] = {"carlang.status": status}
            if event.data.get("error"):
                attributes["carlang.error"] = str(event.data["error"])
            if status in ("failed", "rejected"):
                span.set_status(
                    self._trace.Status(
                        self._trace.StatusCode.ERROR, str(event.data.get("error", ""))
                    )
                )
            self._end(key, event, attributes)

    def _decision(self, action_key: str, event: Event) -> None:
        data = event.data
        policies = data.get("policies") or []
        shadow = data.get("shadow") or []
        decided = float(data.get("decided_in_us") or 0.0) / 1e6
        span = self.tracer.start_span(
            "carlang.policy_decision",
            context=self._trace.set_span_in_context(self._spans[action_key]),
            start_time=_ns(event.timestamp - decided),
            attributes={
                "carlang.span_id": f"{action_key}/decision",
                "carlang.parent_id": action_key,
                "carlang.decision": str(data.get("decision", "")),
                "carlang.tool": str(data.get("tool") or ""),
                "carlang.tenant": str(data.get("tenant") or ""),
                "carlang.session": str(data.get("session") or ""),
                "carlang.program": str(data.get("program", "")),
                "carlang.policies": [str(p.get("name")) for p in policies],
                "carlang.policy_locations": [
                    f"{p['loc']['file']}:{p['loc']['line']}:{p['loc']['column']}"
                    for p in policies
                    if isinstance(p.get("loc"), dict)
                ],
                "carlang.policy_reasons": [str(p.get("reason", "")) for p in policies],
                "carlang.shadow_policies": [str(p.get("name")) for p in shadow],
                "carlang.decided_in_us": float(data.get("decided_in_us") or 0.0),
            },
        )
        span.end(end_time=_ns(event.timestamp))
