"""The threads synchronous tools run in.

`concurrent.futures.ThreadPoolExecutor` joins its threads when the interpreter exits, so a tool
that hangs past its timeout (abandoned by the run, which reported it timed out) kept the
process alive after the run had ended, for as long as the tool hung: for ever, for some. A
tool's thread here is a daemon, which the interpreter does not wait for.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["DaemonThreadPool"]

T = TypeVar("T")
_Work = tuple["concurrent.futures.Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class DaemonThreadPool(concurrent.futures.Executor):
    """`ThreadPoolExecutor`'s job (at most `max_workers` threads, started as work comes and
    reused once idle) with daemon threads: the process ends when its main thread does,
    whatever a tool abandoned at its timeout still does."""

    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        if max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        self._max_workers = max_workers
        self._prefix = thread_name_prefix
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._shut_down = False

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        """Run `fn(*args, **kwargs)` in a thread of the pool."""
        with self._lock:
            if self._shut_down:
                raise RuntimeError("cannot schedule new futures after shutdown")
            future: concurrent.futures.Future[T] = concurrent.futures.Future()
            self._work.put((future, fn, args, kwargs))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._max_workers:
                name = f"{self._prefix}_{len(self._threads)}"
                # (the thread holds the pool weakly, as ThreadPoolExecutor's do: a pool nobody
                # shut down, its runtime dropped without `close`, lets its threads end)
                pool = weakref.ref(self, _wake(self._work))
                thread = threading.Thread(
                    target=_serve, args=(pool, self._work, self._idle), name=name, daemon=True
                )
                thread.start()
                self._threads.append(thread)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more work; with `cancel_futures`, cancel what has not started; with `wait`,
        wait for the threads to finish what they run."""
        with self._lock:
            self._shut_down = True
            if cancel_futures:
                while True:
                    try:
                        pending = self._work.get_nowait()
                    except queue.Empty:
                        break
                    if pending is not None:
                        pending[0].cancel()
            self._work.put(None)
        if wait:
            for thread in self._threads:
                thread.join()


def _wake(work: queue.SimpleQueue[_Work | None]) -> Callable[[Any], None]:
    """What tells the threads of a pool that was dropped to end."""

    def wake(_: Any) -> None:
        work.put(None)

    return wake


def _serve(
    pool: weakref.ref[DaemonThreadPool],
    work: queue.SimpleQueue[_Work | None],
    idle: threading.Semaphore,
) -> None:
    """A thread of the pool: runs work until the pool shuts down or is dropped."""
    while True:
        item = work.get()
        if item is None:
            work.put(None)  # (for the next thread)
            return
        future, fn, args, kwargs = item
        del item
        if future.set_running_or_notify_cancel():
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - the caller's, as in ThreadPoolExecutor
                future.set_exception(exc)
            else:
                future.set_result(result)
        del future, fn, args, kwargs
        if pool() is None:
            return
        idle.release()
