"""OpenTelemetry spans for runs, proposals, actions and policy decisions: with the SDK's
in-memory exporter, and OTLP over HTTP to a local receiver started by the test."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs opentelemetry-sdk (the otel extra)")

from carlang_runtime import ir  # noqa: E402
from carlang_runtime.decisionlog.otel import OtelSink, trace_id_of  # noqa: E402
from carlang_runtime.engine import Runtime  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

from .support import call, proposal  # noqa: E402


def _run(provider: TracerProvider) -> str:
    rt = Runtime()
    rt.events.sinks.append(OtelSink(provider))
    rt.register_tool("fetch", lambda url: url)
    rt.add_policy(
        ir.CelPolicy(
            name="no_http",
            when='params.url.startsWith("http:")',
            loc=ir.SourceLoc(file="p.car", line=3, column=1),
        )
    )
    rt.execute(
        proposal(
            call("ok", "fetch", params={"url": "https://x"}),
            call("bad", "fetch", params={"url": "http://x"}, failure_behavior="skip"),
        ),
        scope={"tenant": "acme"},
    )
    rt.close()
    run_id = rt.events.query("run_started")[0].run_id
    assert run_id is not None
    return run_id


def test_runs_actions_and_decisions_become_spans() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    run_id = _run(provider)
    spans = exporter.get_finished_spans()
    by_name: dict[str, list[Any]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    assert sorted(by_name) == [
        "carlang.action",
        "carlang.policy_decision",
        "carlang.proposal",
        "carlang.run",
    ]
    # One trace: the run's id.
    assert {span.context.trace_id for span in spans} == {trace_id_of(run_id)}
    (run,) = by_name["carlang.run"]
    (prop,) = by_name["carlang.proposal"]
    assert run.attributes["carlang.tenant"] == "acme"
    assert prop.parent.span_id == run.context.span_id
    actions = {s.attributes["carlang.action_id"]: s for s in by_name["carlang.action"]}
    assert set(actions) == {"ok", "bad"}
    assert all(a.parent.span_id == prop.context.span_id for a in actions.values())
    assert actions["bad"].attributes["carlang.status"] == "rejected"
    assert actions["bad"].attributes["carlang.span_id"] == f"{run_id}/p/bad"
    assert actions["ok"].attributes["carlang.tool"] == "fetch"
    decisions = {s.parent.span_id: s for s in by_name["carlang.policy_decision"]}
    denied = decisions[actions["bad"].context.span_id]
    assert denied.attributes["carlang.decision"] == "deny"
    assert list(denied.attributes["carlang.policies"]) == ["no_http"]
    assert list(denied.attributes["carlang.policy_locations"]) == ["p.car:3:1"]
    assert denied.attributes["carlang.tenant"] == "acme"
    assert str(denied.attributes["carlang.program"]).startswith("sha256:")
    assert decisions[actions["ok"].context.span_id].attributes["carlang.decision"] == "allow"
    assert all(span.end_time >= span.start_time for span in spans)


def test_spans_go_out_over_otlp_http_to_a_receiver() -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    received: list[ExportTraceServiceRequest] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            assert self.path == "/v1/traces"
            assert self.headers["Content-Type"] == "application/x-protobuf"
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            received.append(request)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        run_id = _run(provider)
        provider.shutdown()
    finally:
        server.shutdown()
        server.server_close()
    spans = [
        span
        for request in received
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    names = sorted(span.name for span in spans)
    assert names.count("carlang.policy_decision") == 2 and "carlang.run" in names
    assert {int.from_bytes(span.trace_id, "big") for span in spans} == {trace_id_of(run_id)}
    decision = next(
        s
        for s in spans
        if s.name == "carlang.policy_decision"
        and any(
            a.key == "carlang.decision" and a.value.string_value == "deny" for a in s.attributes
        )
    )
    assert decision is not None
