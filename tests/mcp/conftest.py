"""MCP test helpers: the toy server (the SDK's FastMCP) and skips for optional parts."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

TOY = Path(__file__).resolve().parent / "toy_server.py"

needs_sdk = pytest.mark.skipif(
    importlib.util.find_spec("mcp") is None,
    reason="the mcp SDK is not installed (pip install 'carlang[mcp]')",
)


def toy_command() -> list[str]:
    return [sys.executable, str(TOY)]


def server_command(name: str) -> list[str]:
    """A PyPI MCP server run by this Python (skip when it is not installed)."""
    module = name.replace("-", "_")
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{name} is not installed (pip install {name})")
    return [sys.executable, "-m", module]


def npx_or_skip() -> str:
    npx = shutil.which("npx")
    if npx is None:
        pytest.skip("npx is not available: the npm MCP servers cannot run")
    return npx


def initialize(request_id: Any = "init", client: str = "t") -> dict[str, Any]:
    """An MCP client's `initialize` request, as the raw JSON-RPC tests send it."""
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": client, "version": "1"},
        },
    }


#: The notification a client sends once initialized.
INITIALIZED: dict[str, Any] = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a server a test starts (another process may
    take it before the server binds it: rare, and the test then fails where it starts)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, seconds: float = 30.0) -> None:
    """Wait until something listens on 127.0.0.1:`port` (a server just started), at most
    `seconds` (the test then goes on, and fails where it first needs the server)."""
    import socket
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)


class HttpProxy:
    """`carlang mcp proxy PROGRAM --capability agent --transport http` on a free port of
    127.0.0.1 (`extra`: more options; `env`: more environment), ready once `url` answers."""

    def __init__(self, program: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        import httpx

        environment = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "carlang", "mcp", "proxy", str(program), "--capability"]
            + ["agent", "--transport", "http", "--port", "0", *extra],
            env={**environment, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        self.ready = self.process.stderr.readline()
        assert "http://127.0.0.1:" in self.ready, self.ready + self.stop()
        self.port = int(self.ready.split("http://127.0.0.1:")[1].split("/")[0])
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)

    def post(self, message: dict[str, Any] | str, **headers: str) -> Any:
        """POST one JSON-RPC message (or raw text): the httpx response."""
        import httpx

        body = message if isinstance(message, str) else json.dumps(message)
        sent = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            **{k.replace("_", "-"): v for k, v in headers.items()},
        }
        return httpx.post(self.url, content=body, headers=sent, timeout=30)

    def stop(self) -> str:
        """Stop it (SIGTERM, then SIGKILL); what it wrote."""
        self.process.terminate()
        try:
            out, err = self.process.communicate(timeout=10)
        finally:
            self.process.kill()
        return str(out + err)
