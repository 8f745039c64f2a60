"""The private Postgres the scale-out tests start (carlang_dbos.localpg): a port another
process takes between its choice and the server's start (a test of another xdist worker)
costs a retry on another port, not the whole slow stage's Postgres tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dbos.support import NO_DBOS

pytest.importorskip("dbos", reason=NO_DBOS)
pytestmark = pytest.mark.scale


def test_a_port_taken_before_the_server_binds_it_is_traded_for_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from carlang_runtime.errors import CarlangRuntimeError

    from carlang_dbos import localpg

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        held = taken.getsockname()[1]
        real = localpg._free_port
        ports: Iterator[int] = iter([held])
        monkeypatch.setattr(localpg, "_free_port", lambda: next(ports, None) or real())
        try:
            with localpg.private_postgres() as url:
                assert f":{held}/" not in url
                port = int(url.rsplit(":", 1)[1].split("/")[0])
                with socket.create_connection(("127.0.0.1", port), timeout=5):
                    pass
        except CarlangRuntimeError as exc:
            if "not installed" in str(exc):
                pytest.skip(str(exc))
            raise


def test_a_sigterm_stops_and_deletes_the_cluster(tmp_path: Path) -> None:
    """A trial: a process holding a private cluster, sent SIGTERM, died at once: the cluster
    ran on, its folder left behind, until stopped by hand with pg_ctl."""
    import signal
    import subprocess
    import sys
    import time

    script = (  # (prints the URL and the cluster's folder, then holds it)
        "import sys, tempfile\n"
        "from carlang_dbos import localpg\n"
        "made = []\n"
        "mkdtemp = tempfile.mkdtemp\n"
        "tempfile.mkdtemp = lambda **kw: made.append(mkdtemp(**kw)) or made[-1]\n"
        "with localpg.private_postgres() as url:\n"
        "    print(url, made[0], flush=True)\n"
        "    sys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None and holder.stderr is not None
        line = holder.stdout.readline().split()
        if not line:
            said = holder.stderr.read()
            if "not installed" in said or "could not be started" in said:
                pytest.skip(said.strip().splitlines()[-1])
            raise AssertionError(said)
        url, home = line[0], Path(line[1])
        assert home.name.startswith("carlang-pg-") and home.is_dir()
        holder.send_signal(signal.SIGTERM)
        assert holder.wait(timeout=60) == 143
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the cluster at {url} still answers")
    assert not home.exists()


def test_a_sigterm_while_the_cluster_starts_stops_and_deletes_it(tmp_path: Path) -> None:
    """A review: a SIGTERM during start-up (after `pg_ctl start`, before the URL is yielded)
    left the server running and its folder behind: the start was outside the cleanup."""
    import subprocess
    import sys
    import time

    script = (  # (SIGTERM sent to itself right after the server started)
        "import os, signal, sys, tempfile\n"
        "from carlang_dbos import localpg\n"
        "made = []\n"
        "mkdtemp = tempfile.mkdtemp\n"
        "tempfile.mkdtemp = lambda **kw: made.append(mkdtemp(**kw)) or made[-1]\n"
        "started = localpg._started\n"
        "def killed(*args):\n"
        "    port = started(*args)\n"
        "    print(port, made[0], flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return port\n"
        "localpg._started = killed\n"
        "with localpg.private_postgres() as url:\n"
        "    print('yielded', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    if not done.stdout.strip():
        if "not installed" in done.stderr or "could not be started" in done.stderr:
            pytest.skip(done.stderr.strip().splitlines()[-1])
        raise AssertionError(done.stderr)
    port_text, home_text = done.stdout.split()[:2]
    assert done.returncode == 143 and "yielded" not in done.stdout, done
    assert not Path(home_text).exists()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", int(port_text))) != 0:
                break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the cluster on port {port_text} still answers")
