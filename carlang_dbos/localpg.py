"""A throwaway Postgres on this machine: a private cluster in a temporary directory, on a free
local port, for trying the DBOS backend with several processes, for its tests and benchmarks.

    with private_postgres() as url:      # postgresql://postgres@127.0.0.1:PORT/carlang
        ...

(the database `carlang` is created on it; another one, `prepare_database(url, create=True)`).

It needs the server programs (`initdb`, `pg_ctl`: Debian's `postgresql` package) and runs them
as the `postgres` user when it is root (Postgres refuses root). Not for production data: fsync
is off and everything is deleted at the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from carlang_runtime.errors import CarlangRuntimeError

from .backend import prepare_database

__all__ = ["private_postgres", "server_binary"]


def server_binary(name: str) -> str | None:
    """A Postgres server program: on PATH, or where Debian's packages put it."""
    found = shutil.which(name)
    if found is None:
        versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
        found = str(versions[0]) if versions else None
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() == 0 and shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--", *command]
    return command


#: How many free ports a start tries: another process (a test of another worker) may take
#: the port between `_free_port` closing it and the server binding it.
_START_ATTEMPTS = 3


def _started(pg_ctl: str, data: Path, home: Path) -> int:
    """Start the cluster in `data` on a free local port, and return the port; another port
    when the one chosen was taken meanwhile. Raises `CalledProcessError` otherwise."""
    log = home / "server.log"
    for attempt in range(_START_ATTEMPTS):
        port = _free_port()
        options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
        command = [pg_ctl, "-D", str(data), "-l", str(log), "-w", "-o", options, "start"]
        try:
            subprocess.run(_as_server_user(command), check=True, capture_output=True, timeout=120)
            return port
        except subprocess.CalledProcessError:
            taken = log.exists() and "could not bind" in log.read_text(errors="replace")
            if not taken or attempt == _START_ATTEMPTS - 1:
                raise
            log.unlink()
    raise AssertionError("unreachable")  # (the last attempt returns or raises)


@contextmanager
def private_postgres() -> Iterator[str]:
    """Start a private cluster; yield the URL of a database on it; stop and delete it.
    `CarlangRuntimeError` when no server can be started here (it says why)."""
    initdb, pg_ctl = server_binary("initdb"), server_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise CarlangRuntimeError("Postgres server programs (initdb, pg_ctl) are not installed")
    with _sigterm_as_exit():  # (a SIGTERM skipped the `finally` below: the cluster ran on)
        yield from _cluster(initdb, pg_ctl)


@contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """Within the block, a SIGTERM to this process raises `SystemExit` (status 143, as the
    signal's) where it would end the process at once, so that cleanups run; only where the
    signal's handler is Python's default, and in the main thread (the only one a handler can
    be set in). The handler before is put back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return

    def exit_143(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_143)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _cluster(initdb: str, pg_ctl: str) -> Iterator[str]:
    """`private_postgres`'s cluster: started, its database's URL yielded, stopped, deleted."""
    home = Path(tempfile.mkdtemp(prefix="carlang-pg-"))
    data = home / "data"
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
    try:
        subprocess.run(
            _as_server_user([initdb, "-D", str(data), "-A", "trust", "-U", "postgres"]),
            check=True,
            capture_output=True,
            timeout=120,
        )
        port = _started(pg_ctl, data, home)
    except (OSError, subprocess.SubprocessError, LookupError) as exc:
        _stopped_and_deleted(pg_ctl, data, home)
        raise CarlangRuntimeError(f"a private Postgres could not be started here ({exc})") from None
    except BaseException:  # a SIGTERM (SystemExit) or Ctrl-C while it started: it may run
        _stopped_and_deleted(pg_ctl, data, home)
        raise
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        url = f"postgresql://postgres@127.0.0.1:{port}/carlang"
        # carlang refuses a database that does not exist (only a worker creates one).
        prepare_database(url, create=True)
        yield url
    finally:
        _stopped_and_deleted(pg_ctl, data, home)


def _stopped_and_deleted(pg_ctl: str, data: Path, home: Path) -> None:
    """Stop the cluster in `data`, if it runs, and delete its folder; a SIGTERM meanwhile
    is ignored (a second one interrupted the stop, and the server ran on)."""
    with _sigterm_ignored():
        if (data / "postmaster.pid").exists():
            subprocess.run(
                _as_server_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]),
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def _sigterm_ignored() -> Iterator[None]:
    """SIGTERM ignored within the block (in the main thread, the only one that can set a
    handler; elsewhere the block runs as it is)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
