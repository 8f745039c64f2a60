"""The HTTP sink against a real HTTP server started by the test: batches of decision events,
retries with backoff, drops counted and reported, the run never blocked past the bound."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from carlang_runtime import ir
from carlang_runtime.decisionlog import HttpSink
from carlang_runtime.engine import Runtime

from .support import call, proposal


class Collector:
    """A local collector: answers the first `failures` POSTs with 503, then 200 after
    `delay` seconds, and keeps every batch it accepted."""

    def __init__(self, failures: int = 0, delay: float = 0.0) -> None:
        self.failures = failures
        self.delay = delay
        self.batches: list[list[dict[str, Any]]] = []
        self.authorizations: list[str | None] = []
        self.attempts = 0
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.attempts += 1
                if collector.attempts <= collector.failures:
                    self.send_response(503)
                    self.end_headers()
                    return
                time.sleep(collector.delay)
                assert self.headers["Content-Type"] == "application/json"
                collector.authorizations.append(self.headers.get("Authorization"))
                collector.batches.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/decisions"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[dict[str, Any]]:
        return [event for batch in self.batches for event in batch]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    yield server
    server.stop()


class Timed:
    """The sink as the runtime sees it, with the longest `write` measured."""

    def __init__(self, sink: HttpSink) -> None:
        self.sink = sink
        self.longest = 0.0

    def write(self, event: Any) -> None:
        started = time.perf_counter()
        self.sink.write(event)
        self.longest = max(self.longest, time.perf_counter() - started)

    def flush(self) -> None:
        self.sink.flush()

    def close(self) -> None:
        self.sink.close()


def _run(sink: HttpSink, count: int) -> Timed:
    timed = Timed(sink)
    rt = Runtime()
    rt.events.sinks.append(timed)
    rt.register_tool("fetch", lambda url: url)
    rt.add_policy(ir.CelPolicy(name="no_http", when='params.url.startsWith("http:")'))
    actions = [
        call(
            f"a{i}",
            "fetch",
            params={"url": f"{'http' if i % 2 else 'https'}://x/{i}"},
            failure_behavior="skip",
        )
        for i in range(count)
    ]
    rt.execute(proposal(*actions))
    return timed


def test_decision_events_arrive_in_batches(collector: Collector) -> None:
    sink = HttpSink(collector.url, batch_size=4, flush_interval=0.05)
    _run(sink, 10)
    sink.close()
    events = collector.events()
    assert [e["action_id"] for e in events] == [f"a{i}" for i in range(10)]
    assert {e["kind"] for e in events} == {"policy_decision"}
    assert [e["data"]["decision"] for e in events] == ["allow", "deny"] * 5
    assert all(len(batch) <= 4 for batch in collector.batches) and len(collector.batches) >= 3
    stats = sink.stats()
    assert (stats.sent, stats.dropped) == (10, 0) and sink.report() is None


def test_a_user_and_password_in_the_url_are_sent_as_basic_auth(collector: Collector) -> None:
    """urllib sends no credentials from a URL (it took `user:password@host` for a host name
    and said the name was not known): the sink sends them as an Authorization header, and
    never shows the password."""
    url = collector.url.replace("http://", "http://admin:hun%40ter2@")
    sink = HttpSink(url, batch_size=2, flush_interval=0.05)
    _run(sink, 2)
    sink.close()
    assert len(collector.events()) == 2
    token = base64.b64encode(b"admin:hun@ter2").decode()
    assert set(collector.authorizations) == {f"Basic {token}"}
    assert "hun" not in sink.url


def test_failed_posts_are_retried_with_backoff() -> None:
    server = Collector(failures=2)
    try:
        sink = HttpSink(server.url, batch_size=100, flush_interval=0.01, backoff=0.01)
        _run(sink, 3)
        sink.close()
        assert len(server.events()) == 3
        stats = sink.stats()
        assert stats.retries == 2 and stats.dropped == 0
    finally:
        server.stop()


def test_an_unreachable_collector_drops_counts_and_reports_never_blocking() -> None:
    server = Collector()
    url = server.url
    server.stop()  # nothing listens there any more
    sink = HttpSink(url, retries=2, backoff=0.01, flush_interval=0.01, flush_timeout=5)
    timed = _run(sink, 20)
    sink.close()
    stats = sink.stats()
    assert stats.sent == 0 and stats.dropped == 20 and stats.retries >= 2
    report = sink.report()
    assert report is not None and "20 events dropped" in report and "cannot reach" in report
    assert timed.longest < 0.25  # the run itself never waited on the network


def test_a_full_queue_drops_after_the_blocking_bound() -> None:
    server = Collector(delay=0.2)
    try:
        sink = HttpSink(server.url, max_queue=2, block_ms=20, batch_size=1, flush_interval=0)
        timed = _run(sink, 12)
        sink.close()
        stats = sink.stats()
        assert stats.dropped > 0 and stats.sent + stats.dropped == 12
        # each write waited at most 20 ms for room (and a loaded machine's scheduling)
        assert 0.015 < timed.longest < 0.25
        assert "the queue was full" in (sink.report() or "")
    finally:
        server.stop()


def test_a_bad_url_is_refused() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        HttpSink("file:///etc/passwd")


@pytest.mark.slow  # a carlang process and an HTTP collector
def test_carlang_run_posts_decisions_and_reports_drops(collector: Collector) -> None:
    from typer.testing import CliRunner

    from carlang.cli import app
    from tests.conftest import ROOT

    finance = str(ROOT / "examples" / "finance" / "finance.car")
    tools = str(ROOT / "tests" / "replay" / "finance_tools.py") + ":TOOLS"
    result = CliRunner().invoke(
        app,
        ["run", finance, "--tools", tools, "--auto-approve", "--decisions-url", collector.url],
    )
    assert result.exit_code == 0, result.output
    assert [e["action_id"] for e in collector.events()] == [
        "check_a",
        "check_b",
        "pay_a",
        "pay_b",
        "done",
    ]
    assert collector.events()[3]["data"]["decision"] == "require_approval"
    result = CliRunner().invoke(app, ["run", finance, "--decisions-url", "ftp://x"])
    assert result.exit_code == 2 and "--decisions-url" in result.output
