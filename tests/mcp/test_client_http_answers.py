"""What the MCP client does with an HTTP answer that is not the server's: a redirect is not
followed (urllib would send the declared `Authorization` on to wherever it points, another
host too), and a server that is not there is said so, with what to check."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from carlang_runtime.ir import McpServer
from carlang_runtime.mcp import McpClient, McpError

TOKEN = "redirected-token-5f2a9c81"


class _Elsewhere(BaseHTTPRequestHandler):
    """Where a redirect points: records the Authorization it is sent."""

    seen: list[str | None] = []

    def log_message(self, *args: object) -> None:  # (quiet)
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.seen.append(self.headers.get("Authorization"))
        self.send_response(500)
        self.end_headers()


class _Redirecting(BaseHTTPRequestHandler):
    """An MCP endpoint that answers every request with a redirect to `target`."""

    target = ""
    status = 302

    def log_message(self, *args: object) -> None:  # (quiet)
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.send_response(self.status)
        self.send_header("Location", self.target)
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def _refused_start(server: McpServer) -> str:
    """What the client says when its session with `server` cannot start."""
    client = McpClient(server)
    try:
        with pytest.raises(McpError) as refused:
            client.start(timeout=10)
    finally:
        client.close()
    return str(refused.value)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed_with_the_servers_token(
    status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIRECTED_TOKEN", TOKEN)
    _Elsewhere.seen = []
    with _serving(_Elsewhere) as elsewhere, _serving(_Redirecting) as port:
        _Redirecting.status = status
        _Redirecting.target = f"http://127.0.0.1:{elsewhere}/collect?token=abc"
        server = McpServer(
            name="s",
            url=f"http://127.0.0.1:{port}/mcp",
            headers={"Authorization": "Bearer ${REDIRECTED_TOKEN}"},
        )
        said = _refused_start(server)
    assert f"it answered {status}, a redirect to http://127.0.0.1:{elsewhere}/collect" in said
    assert "which carlang does not follow" in said and TOKEN not in said
    assert _Elsewhere.seen == []  # (nothing reached the other place, the token least of all)


def test_a_server_not_running_is_said_so() -> None:
    with socket.socket() as probe:  # (a port nothing listens on)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    said = _refused_start(McpServer(name="s", url=f"http://127.0.0.1:{port}/mcp"))
    assert said.startswith(f"MCP server 's' at http://127.0.0.1:{port}/mcp: ")
    assert "nothing answers there; is the server running, at that port?" in said
