"""An event sink that POSTs batches of events as JSON to a collector URL.

The run never waits on the network: `write` puts the event on a bounded queue (waiting at most
`block_ms` when it is full, then dropping it) and a background thread sends batches, retrying
with exponential backoff. Every event that does not reach the collector is counted
(`stats().dropped`) and reported (`report()`; `carlang run` prints it)."""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ..engine.events import Event, EventKind
from ..redact import shown_url, url_credentials

__all__ = ["HttpSink", "HttpSinkStats"]

_STOP: Final = object()


@dataclass(frozen=True, slots=True)
class HttpSinkStats:
    """What the sink did: events sent, dropped (queue full or retries spent), batches retried,
    events still queued, and the last error."""

    sent: int
    dropped: int
    retries: int
    queued: int
    last_error: str | None


class HttpSink:
    """POSTs events (by default only `policy_decision` ones) to `url` in batches: a JSON
    array of event documents, `Content-Type: application/json`.

    `max_queue` bounds the events waiting; `block_ms` bounds how long `write` may wait for
    room (0: never wait); `batch_size` and `flush_interval` (seconds) shape the batches; a
    failed POST (a network error, a 5xx or 429 answer) is retried `retries` times with
    backoff `backoff * 2**attempt` seconds (at most `max_backoff`); `flush_timeout` bounds
    `flush` and `close`."""

    def __init__(
        self,
        url: str,
        *,
        kinds: Iterable[str] | None = (EventKind.POLICY_DECISION,),
        headers: Mapping[str, str] | None = None,
        max_queue: int = 10_000,
        block_ms: float = 0.0,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        retries: int = 4,
        backoff: float = 0.1,
        max_backoff: float = 5.0,
        timeout: float = 5.0,
        flush_timeout: float = 10.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(
                f"the collector URL must be http:// or https://, not {shown_url(url)!r}"
            )
        self.url, credentials = url_credentials(url)
        self.kinds = frozenset(str(k) for k in kinds) if kinds is not None else None
        self.headers = {"Content-Type": "application/json", **credentials, **(headers or {})}
        self.block = block_ms / 1000.0
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.flush_timeout = flush_timeout
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._sent = self._dropped = self._retries = 0
        self._last_error: str | None = None
        self._closed = False
        self._thread = threading.Thread(
            target=self._send_loop, name="carlang-http-sink", daemon=True
        )
        self._thread.start()

    # -- EventSink ---------------------------------------------------------------------------

    def write(self, event: Event) -> None:
        """Queue one event (dropped, and counted, if the queue stays full `block_ms`)."""
        if self._closed or (self.kinds is not None and str(event.kind) not in self.kinds):
            return
        document = event.to_dict()
        try:
            if self.block > 0:
                self._queue.put(document, timeout=self.block)
            else:
                self._queue.put_nowait(document)
        except queue.Full:
            self._count(dropped=1, error="the queue was full")

    def flush(self) -> None:
        """Wait (at most `flush_timeout`) until every queued event was sent or dropped."""
        deadline = time.monotonic() + self.flush_timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)

    def close(self) -> None:
        """Flush, then stop the sender; what is still queued then is counted as dropped."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        left = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            self._queue.task_done()
            if item is not _STOP:
                left += 1
        if left:
            self._count(dropped=left, error="the sink closed before they were sent")
        self._queue.put(_STOP)
        self._thread.join(timeout=self.timeout + 1.0)

    # -- what happened ----------------------------------------------------------------------

    def stats(self) -> HttpSinkStats:
        """Counts so far."""
        with self._lock:
            return HttpSinkStats(
                self._sent, self._dropped, self._retries, self._queue.qsize(), self._last_error
            )

    def report(self) -> str | None:
        """One line saying what did not reach the collector, or None when everything did."""
        stats = self.stats()
        if not stats.dropped:
            return None
        return (
            f"http sink {shown_url(self.url)}: {stats.dropped} events dropped, {stats.sent} sent"
            f" (last error: {stats.last_error})"
        )

    # -- the sender -------------------------------------------------------------------------

    def _count(self, *, sent: int = 0, dropped: int = 0, retries: int = 0, error: str = "") -> None:
        with self._lock:
            self._sent += sent
            self._dropped += dropped
            self._retries += retries
            if error:
                self._last_error = error

    def _send_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                self._queue.task_done()
                return
            batch = [first]
            deadline = time.monotonic() + self.flush_interval
            stop = False
            while len(batch) < self.batch_size:
                wait = deadline - time.monotonic()
                try:
                    item = (
                        self._queue.get(timeout=max(wait, 0.0))
                        if wait > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    self._queue.task_done()
                    break
                batch.append(item)
            self._post(batch)
            for _ in batch:
                self._queue.task_done()
            if stop:
                return

    def _post(self, batch: list[dict[str, Any]]) -> None:
        body = json.dumps(batch, default=str, ensure_ascii=False).encode("utf-8")
        for attempt in range(self.retries + 1):
            if attempt:
                self._count(retries=1)
                time.sleep(min(self.backoff * 2 ** (attempt - 1), self.max_backoff))
            request = urllib.request.Request(
                self.url, data=body, headers=self.headers, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    answer.read()
                self._count(sent=len(batch))
                return
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code} from the collector"
                if exc.code < 500 and exc.code != 429:
                    break  # the collector refuses this batch: retrying will not help
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                error = f"cannot reach the collector: {getattr(exc, 'reason', exc)}"
        self._count(dropped=len(batch), error=error)
