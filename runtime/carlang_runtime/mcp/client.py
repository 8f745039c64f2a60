"""A small MCP client (JSON-RPC 2.0) over stdio or Streamable HTTP, without the SDK.

The runtime runs each proposal on an event loop of its own, so a session cannot belong to
one loop: requests are sent from any thread and answered through `concurrent.futures`
futures that a reader thread (stdio) or a request thread (HTTP) resolves.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import json
import os
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import CarlangRuntimeError
from ..ir import McpServer

__all__ = ["PROTOCOL_VERSION", "McpClient", "McpError", "McpProtocolError"]

#: The protocol revision carlang asks for (servers answer with the one they speak).
PROTOCOL_VERSION = "2025-06-18"
_CLIENT_INFO = {"name": "carlang", "version": "1"}


class McpError(CarlangRuntimeError):
    """A server that cannot be started or reached, or that broke the protocol."""


class McpProtocolError(McpError):
    """A JSON-RPC error answer: `code` and the server's `message`."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


class McpClient:
    """One session with one MCP server: `start()` (initialize), `request`, `notify`,
    `list_tools`, `call_tool`, `close()`."""

    def __init__(self, server: McpServer, *, stderr: Any = subprocess.DEVNULL) -> None:
        """`stderr`: where a stdio server's standard error goes; `subprocess.PIPE` keeps its
        last lines for `said` (for a person starting it by hand: they may hold anything)."""
        self.server = server
        self.stderr = stderr
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=5)
        self._stderr_reader: threading.Thread | None = None
        self._not_protocol: str | None = None  # the last stdout line that was not JSON
        self._ids = itertools.count(1)
        self._pending: dict[int, concurrent.futures.Future[Any]] = {}
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._session_id: str | None = None
        self._closed = False
        self.server_info: dict[str, Any] = {}
        self.capabilities: dict[str, Any] = {}
        #: called with each server notification (method, params)
        self.on_notification: Callable[[str, Any], None] | None = None

    # -- life ----------------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        """Start the server (stdio) and run the initialize handshake."""
        if self.server.command is not None:
            self._spawn()
        answer = self.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": _CLIENT_INFO,
            },
        ).result(timeout)
        self.server_info = answer.get("serverInfo", {})
        self.capabilities = answer.get("capabilities", {})
        self.notify("notifications/initialized")

    def _spawn(self) -> None:
        server = self.server
        assert server.command is not None
        env = {**os.environ, **server.env} if server.env else None
        try:
            self._process = subprocess.Popen(
                [server.command, *server.args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.stderr,
                env=env,
                cwd=server.cwd,
            )
        except OSError as exc:
            raise McpError(
                f"MCP server '{server.name}': cannot start {server.command}: {exc.strerror or exc}"
            ) from exc
        self._reader = threading.Thread(
            target=self._read_stdio, name=f"mcp-{server.name}", daemon=True
        )
        self._reader.start()
        if self.stderr is subprocess.PIPE:
            self._stderr_reader = threading.Thread(
                target=self._keep_stderr, name=f"mcp-{server.name}-stderr", daemon=True
            )
            self._stderr_reader.start()

    def _keep_stderr(self) -> None:
        """Drain the server's standard error (a full pipe would stop it), keeping its end."""
        process = self._process
        assert process is not None and process.stderr is not None
        with process.stderr:
            for line in process.stderr:
                text = line.decode("utf-8", "replace").strip()
                if text:
                    self._stderr_tail.append(text[:300])

    def said(self) -> str:
        """What the server wrote besides the protocol, to add to an error: the end of its
        standard error (when kept), else its last line on standard output that was not
        JSON-RPC; "" when nothing."""
        if self._stderr_reader is not None:
            self._stderr_reader.join(timeout=1)  # the rest of what a dying server wrote
        if self._stderr_tail:
            return "; it said: " + " | ".join(self._stderr_tail)
        if self._not_protocol is not None:
            return f"; it wrote, where MCP messages go: {self._not_protocol!r}"
        return ""

    def close(self) -> None:
        """End the session: stop the server process (stdio), or tell the server (HTTP)."""
        if self._closed:
            return
        self._closed = True
        process = self._process
        if process is not None:
            try:
                if process.stdin is not None:
                    process.stdin.close()
                process.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                process.terminate()
                try:
                    process.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if self._reader is not None:
                self._reader.join(timeout=2)
        elif self._session_id is not None and self.server.url is not None:
            request = urllib.request.Request(
                self.server.url, method="DELETE", headers={"Mcp-Session-Id": self._session_id}
            )
            try:
                urllib.request.urlopen(request, timeout=2).close()  # noqa: S310 - localhost
            except (urllib.error.URLError, OSError):
                pass
        self._fail_pending(McpError(f"MCP server '{self.server.name}': the session was closed"))

    @property
    def alive(self) -> bool:
        """Whether the session can still be used."""
        if self._closed:
            return False
        return self._process is None or self._process.poll() is None

    # -- messages ------------------------------------------------------------------------------

    def request(
        self, method: str, params: Mapping[str, Any] | None = None
    ) -> concurrent.futures.Future[Any]:
        """Send a request; the future holds its result, or raises `McpProtocolError`."""
        if self._closed:
            raise McpError(f"MCP server '{self.server.name}': the session is closed")
        request_id = next(self._ids)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.request_id = request_id  # type: ignore[attr-defined]
        with self._lock:
            self._pending[request_id] = future
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = dict(params)
        self._send(message)
        return future

    def notify(self, method: str, params: Mapping[str, Any] | None = None) -> None:
        """Send a notification."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = dict(params)
        self._send(message)

    def cancel(self, future: concurrent.futures.Future[Any], reason: str) -> None:
        """Tell the server to stop a request (`notifications/cancelled`) and forget it."""
        request_id = getattr(future, "request_id", None)
        with self._lock:
            self._pending.pop(request_id, None)  # type: ignore[arg-type]
        if not self._closed:
            try:
                self.notify("notifications/cancelled", {"requestId": request_id, "reason": reason})
            except McpError:
                pass

    def list_tools(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Every tool the server lists (following pagination)."""
        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params = {"cursor": cursor} if cursor else {}
            page = self.request("tools/list", params).result(timeout)
            tools.extend(page.get("tools", []))
            cursor = page.get("nextCursor")
            if not cursor:
                return tools

    def _send(self, message: dict[str, Any]) -> None:
        if self.server.url is not None:
            if "id" in message and "method" in message:  # a request: answered on its thread
                threading.Thread(target=self._post, args=(message,), daemon=True).start()
            else:  # notifications and answers go in order, before anything sent after them
                self._post(message)
            return
        process = self._process
        if process is None or process.stdin is None:
            raise McpError(f"MCP server '{self.server.name}' is not running")
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        try:
            with self._lock:
                process.stdin.write(data)
                process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise McpError(
                f"MCP server '{self.server.name}' is gone (exit status {process.poll()})"
            ) from exc

    def _dispatch(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        if "method" in message:
            if "id" in message:
                self._answer_server_request(message)
            elif self.on_notification is not None:
                self.on_notification(message["method"], message.get("params"))
            return
        with self._lock:
            future = self._pending.pop(message.get("id"), None)  # type: ignore[arg-type]
        if future is None or future.done():
            return
        error = message.get("error")
        if error is not None:
            future.set_exception(
                McpProtocolError(
                    int(error.get("code", 0)), str(error.get("message", "")), error.get("data")
                )
            )
        else:
            future.set_result(message.get("result", {}))

    def _answer_server_request(self, message: dict[str, Any]) -> None:
        """carlang declares no client capabilities: `ping` is answered, anything else is
        `method not found`."""
        if message["method"] == "ping":
            reply: dict[str, Any] = {"jsonrpc": "2.0", "id": message["id"], "result": {}}
        else:
            reply = {
                "jsonrpc": "2.0",
                "id": message["id"],
                "error": {"code": -32601, "message": f"carlang does not serve {message['method']}"},
            }
        try:
            self._send(reply)
        except McpError:
            pass

    def _fail_pending(self, error: Exception) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)

    # -- stdio ---------------------------------------------------------------------------------

    def _read_stdio(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        with process.stdout:
            for line in process.stdout:
                line = line.strip()
                if not line:
                    continue
                try:
                    message = json.loads(line)
                except json.JSONDecodeError:
                    # a server that logs to stdout: not a message (kept for `said`)
                    self._not_protocol = line[:200].decode("utf-8", "replace")
                    continue
                for item in message if isinstance(message, list) else [message]:
                    self._dispatch(item)
        status = process.wait()
        self._fail_pending(McpError(f"MCP server '{self.server.name}' exited (status {status})"))

    # -- Streamable HTTP -----------------------------------------------------------------------

    def _post(self, message: dict[str, Any]) -> None:
        assert self.server.url is not None
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": PROTOCOL_VERSION,
        }
        if self._session_id is not None:
            headers["Mcp-Session-Id"] = self._session_id
        request = urllib.request.Request(
            self.server.url, data=json.dumps(message).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=None) as response:  # noqa: S310
                session = response.headers.get("Mcp-Session-Id")
                if session:
                    self._session_id = session
                kind = response.headers.get("Content-Type", "")
                if response.status == 202 or "id" not in message or "method" not in message:
                    return
                if kind.startswith("text/event-stream"):
                    self._read_events(response)
                else:
                    self._dispatch(json.loads(response.read().decode("utf-8")))
        except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
            if "id" in message and "method" in message:
                with self._lock:
                    future = self._pending.pop(message["id"], None)
                if future is not None and not future.done():
                    reason = getattr(exc, "reason", exc)
                    future.set_exception(
                        McpError(f"MCP server '{self.server.name}' at {self.server.url}: {reason}")
                    )

    def _read_events(self, response: Any) -> None:
        """Server-sent events: each `data:` block is one JSON-RPC message."""
        data: list[str] = []
        for raw in response:
            line = raw.decode("utf-8").rstrip("\r\n")
            if line.startswith("data:"):
                data.append(line[5:].lstrip())
            elif not line and data:
                try:
                    self._dispatch(json.loads("\n".join(data)))
                except json.JSONDecodeError:
                    pass
                data = []
