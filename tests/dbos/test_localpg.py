"""The private Postgres the scale-out tests start (carlang_dbos.localpg): a port another
process takes between its choice and the server's start (a test of another xdist worker)
costs a retry on another port, not the whole slow stage's Postgres tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator

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
