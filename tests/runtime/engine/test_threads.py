"""The pool synchronous tools run in: ThreadPoolExecutor's behaviour, with daemon threads, so
that a tool hung past its timeout never keeps the process alive after the run."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from carlang_runtime.engine.threads import DaemonThreadPool


def test_results_errors_and_reuse_of_idle_threads() -> None:
    pool = DaemonThreadPool(max_workers=2, thread_name_prefix="t")
    assert pool.submit(lambda a, b=0: a + b, 1, b=2).result(timeout=5) == 3
    failed = pool.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failed.result(timeout=5)
    for n in range(20):
        assert pool.submit(lambda n=n: n).result(timeout=5) == n
    assert len(pool._threads) <= 2  # idle threads take the next work
    assert all(thread.daemon for thread in pool._threads)
    pool.shutdown(wait=True)
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(lambda: 1)


def test_at_most_max_workers_run_at_once_and_shutdown_cancels_what_waits() -> None:
    pool = DaemonThreadPool(max_workers=2, thread_name_prefix="t")
    release = threading.Event()
    running = [pool.submit(release.wait, 10) for _ in range(2)]
    waiting = pool.submit(lambda: "never")
    pool.shutdown(wait=False, cancel_futures=True)
    assert waiting.cancelled()
    release.set()
    assert all(future.result(timeout=5) is True for future in running)
    pool.shutdown(wait=True)


@pytest.mark.slow  # (a process of its own)
def test_a_run_whose_tool_hangs_past_its_timeout_ends_with_the_run(tmp_path: Path) -> None:
    """The run reported the timeout, printed its results, then the process did not exit
    until the abandoned tool returned (the pool's threads were joined at exit)."""
    program = tmp_path / "hang.car"
    program.write_text(
        "tool step(delay: int)\nproposal p { t = step(delay: 600) { timeout 200ms } }\n"
    )
    tools = tmp_path / "tools.py"
    tools.write_text(
        "import time\ndef step(delay):\n    time.sleep(delay)\nTOOLS = {'step': step}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "carlang", "run", str(program), "--tools", f"{tools}:TOOLS"],
        capture_output=True,
        text=True,
        timeout=120,  # (the tool sleeps 600 s: a process waiting for it fails the test)
    )
    assert done.returncode == 1, done.stderr
    assert "timed out after 200 ms" in done.stdout, done.stdout


def test_the_threads_of_a_pool_nobody_shut_down_end_once_it_is_dropped() -> None:
    """A runtime dropped without `close` (a host making one per request): its pool's threads
    held the pool, so they never ended, 32 more per runtime (ThreadPoolExecutor's hold it
    weakly, and so do these)."""
    import gc

    before = threading.active_count()
    for _ in range(20):
        pool = DaemonThreadPool(max_workers=2, thread_name_prefix="dropped")
        assert pool.submit(lambda: 1).result(timeout=5) == 1
        del pool
    gc.collect()
    deadline = time.monotonic() + 10
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before
