"""A small MCP client (JSON-RPC 2.0) over stdio or Streamable HTTP, without the SDK.

The runtime runs each proposal on an event loop of its own, so a session cannot belong to
one loop: requests are sent from any thread and answered through `concurrent.futures`
futures that a reader thread (stdio) or a request thread (HTTP) resolves.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import itertools
import json
import os
import re
import shlex
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal, NamedTuple

from .._version import __version__
from ..environment import (
    MCP_INHERITED_ENV,
    expand_references,
    misreferences,
    references_written,
    tool_environment,
)
from ..errors import CarlangRuntimeError
from ..ir import McpServer
from ..jsontext import NESTING_LIMIT, JsonNestingError, JsonTextError, parse_json
from ..redact import Scrubber, shown_url, url_credentials

__all__ = [
    "PROTOCOL_VERSION",
    "RESERVED_HEADERS",
    "URL_CREDENTIAL_HELP",
    "HeaderProblem",
    "McpClient",
    "McpError",
    "McpProtocolError",
    "header_problems",
    "server_secrets",
    "shown_json",
    "url_reference_problem",
    "written_out_credential",
]

#: The protocol revision carlang asks for (servers answer with the one they speak).
PROTOCOL_VERSION = "2025-06-18"
_CLIENT_INFO = {"name": "carlang", "version": __version__}

#: An option whose name says it carries a credential (`--api-key`, `--token=...`).
_SECRET_OPTION = re.compile(
    r"-{1,2}[\w-]*(token|key|secret|password|passwd|pwd|auth|credential)[\w-]*", re.IGNORECASE
)


#: JSON-RPC's code for a method the server does not have.
_METHOD_NOT_FOUND = -32601

#: The most `tools/list` pages followed: a server that lists more never ends its list.
MAX_TOOL_PAGES = 1000

#: The headers of carlang's requests that a server's `headers` may not set: those the client
#: sends itself (Streamable HTTP's) and those urllib writes for it.
RESERVED_HEADERS: tuple[str, ...] = (
    "Accept",
    "Content-Type",
    "Mcp-Session-Id",
    "MCP-Protocol-Version",
    "Content-Length",
    "Host",
    "Connection",
    "Transfer-Encoding",
)
_RESERVED = {name.lower(): name for name in RESERVED_HEADERS}

#: An HTTP header name: a token (RFC 9110, 5.1 and 5.6.2).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

#: A header or variable whose name says it carries a credential, by one of the words it is
#: made of (`Authorization`, `X-Api-Key`, `Cookie`, `GITHUB_TOKEN`, `DB_PASSWORD`, `APIKEY`):
#: whole words, so that `AUTHOR`, `KEYBOARD_LAYOUT` or `PWD` (the working directory) are not.
_CREDENTIAL_WORDS = frozenset(
    (
        "token", "key", "apikey", "secret", "password", "passwd", "pass", "pwd", "auth",
        "authorization", "credential", "credentials", "cookie", "session", "signature",
    )
)  # fmt: skip
_CREDENTIAL_SCHEME = re.compile(r"\s*(bearer|basic|token|digest|apikey)\s+\S", re.IGNORECASE)


class HeaderProblem(NamedTuple):
    """Why a server's `headers` cannot be sent as written: which header (None: the whole
    `headers`, or the url), the part at fault (its name, its value, the whole `headers`, or
    the server's url), what is wrong (never showing a value: it may be a secret) and what to
    do. `first` is the name a duplicate repeats."""

    name: str | None
    part: Literal["name", "value", "headers", "url"]
    message: str
    help: str
    first: str | None = None


def header_problems(
    headers: Mapping[str, Any],
    *,
    url: str | None,
    command: str | None = None,
    taken: bool = False,
) -> list[HeaderProblem]:
    """What in a server's `headers` cannot be sent: headers on a server started by `command`
    (they go with HTTP requests), a name that is not an HTTP token or that names a header
    carlang sends itself, a value that is not a string or holds a line break, NUL or another
    control character (it would end the header: header injection) or a character HTTP cannot
    carry, a name given twice (names are case-insensitive), `Authorization` beside a `url`'s
    `user:password@`; and first a `url` holding `${...}` (`url_reference_problem`: what
    should be a header's). `taken`: the values are the ones taken from carlang's environment
    (the problem is then said of the variable's value)."""
    problems: list[HeaderProblem] = []
    in_url = url_reference_problem(url) if url else None
    if in_url is not None:
        problems.append(HeaderProblem(None, "url", *in_url))
    if command is not None and headers:
        problems.append(
            HeaderProblem(
                None,
                "headers",
                "`headers` are sent with HTTP requests, but this MCP server is started by a"
                " `command` (stdio)",
                "a server carlang starts takes values through `env` (`env { TOKEN:"
                ' "${TOKEN}" }`); `headers` are for a server reached at a `url`',
            )
        )
    from_url = bool(url) and bool(url_credentials(url or "")[1])
    seen: dict[str, str] = {}
    for name, value in headers.items():
        shown = _shown_name(name)
        if not _HEADER_NAME.fullmatch(name):
            problems.append(
                HeaderProblem(
                    name,
                    "name",
                    f"{shown} is not an HTTP header name",
                    "a header name is letters, digits and !#$%&'*+-.^_`|~, without spaces or"
                    ' a colon (`"X-Api-Key"`)',
                )
            )
            continue
        key = name.lower()
        if key in seen:
            problems.append(
                HeaderProblem(
                    name,
                    "name",
                    f"header `{name}` is given twice (as `{seen[key]}` before): header names"
                    " are case-insensitive",
                    "keep one of them",
                    seen[key],
                )
            )
            continue
        seen[key] = name
        if key in _RESERVED:
            problems.append(
                HeaderProblem(
                    name,
                    "name",
                    f"carlang sends `{_RESERVED[key]}` itself: a server's `headers` cannot set it",
                    "remove it: carlang sends " + ", ".join(RESERVED_HEADERS[:4]) + " as MCP's"
                    " Streamable HTTP asks, and " + ", ".join(RESERVED_HEADERS[4:]) + " as"
                    " HTTP does",
                )
            )
            continue
        if key == "authorization" and from_url:
            problems.append(
                HeaderProblem(
                    name,
                    "name",
                    "header `Authorization` and the url's `user:password@` would both set the"
                    " request's authorization",
                    "keep one: remove `user:password@` from the url, or the Authorization header",
                )
            )
            continue
        if not isinstance(value, str):
            problems.append(
                HeaderProblem(
                    name,
                    "value",
                    f"header `{name}`: its value is not a string",
                    f'write it as a string (`"{name}": "..."`)',
                )
            )
            continue
        problem = _value_problem(value)
        if problem is not None:
            whose = "the value its `${...}` takes" if taken else "its value"
            problems.append(
                HeaderProblem(
                    name,
                    "value",
                    f"header `{name}`: {whose} {problem}",
                    "check the environment variable's value: one line of text"
                    if taken
                    else "write the value on one line, without control characters",
                )
            )
    return problems


def _value_problem(value: str) -> str | None:
    """Why `value` cannot be sent as a header's value (without showing it), or None."""
    if "\r" in value or "\n" in value:
        return (
            "holds a line break (CR or LF), which would end the header and start another"
            " (header injection)"
        )
    if "\0" in value:
        return "holds a NUL character, which HTTP does not allow in a header"
    if any(ord(c) < 0x20 and c != "\t" or ord(c) == 0x7F for c in value):
        return "holds a control character, which HTTP does not allow in a header"
    if any(ord(c) > 0xFF for c in value):
        return "holds a character HTTP headers cannot carry (only Latin-1 text can be sent)"
    return None


def _shown_name(name: str) -> str:
    """A header name as a message shows it: escaped when it holds what a terminal would act
    on (it is not a header name then)."""
    return f"`{name}`" if name.isprintable() else json.dumps(name)


#: What to do instead of writing a credential, or a reference to one, into a url.
URL_CREDENTIAL_HELP = (
    'a credential goes in `headers`, which take references: `headers { "Authorization":'
    ' "Bearer ${TOKEN}" }`, or HTTP Basic as `"Basic ${B64}"` (B64: the base64 of'
    " `user:password`)"
)


def url_reference_problem(url: str) -> tuple[str, str] | None:
    """What is wrong with a server's `url` holding `${...}` (a reference, or a malformed one),
    and what to do instead, or None: a url takes no variable from carlang's environment, and
    would be sent with the `${...}` in it (`http://alice:${PW}@...` sends the password
    `${PW}`). The compiler refuses it; the client refuses to reach a server whose IR holds
    one."""
    quoted = [f"`{written}`" for written in references_written(url)]
    if not quoted:
        return None
    shown = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"
    return (
        f"`url` holds {shown}: a url takes no reference from carlang's environment (it would"
        " be sent as written)",
        URL_CREDENTIAL_HELP,
    )


def written_out_credential(name: str, value: str) -> bool:
    """Whether a declared header's value is a credential written out: the header is one by
    its name (`Authorization`, `X-Api-Key`, `Cookie`) or its value's form (`Bearer ...`),
    and the value takes no variable from carlang's environment (`Bearer ${TOKEN}` holds a
    name, not a secret) and means to (`Bearer $TOKEN`, `Bearer ${TOKEN`: a reference
    miswritten, `misreferences`, not a secret)."""
    if not value.strip() or expand_references({name: value}, {})[1] or misreferences(value):
        return False
    return bool(_credential_name(name) or _CREDENTIAL_SCHEME.match(value))


def _credential_name(name: str) -> bool:
    """Whether a header's or a variable's name says it carries a credential (a word of it is
    one of `_CREDENTIAL_WORDS`; `PWD` alone is the working directory)."""
    words = re.split(r"[^a-z0-9]+", name.lower())
    return name.upper() != "PWD" and any(word in _CREDENTIAL_WORDS for word in words)


def _credential(name: str, declared: str) -> bool:
    """Whether a declared env or header value is a credential: by its name, or by its form
    (`Bearer ...`)."""
    return _credential_name(name) or bool(_CREDENTIAL_SCHEME.match(declared))


class McpError(CarlangRuntimeError):
    """A server that cannot be started or reached, or that broke the protocol."""


class McpProtocolError(McpError):
    """A JSON-RPC error answer: `code` and the server's `message`."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


#: How many secret call arguments a session with a server keeps out of what it writes.
CALL_SECRETS_KEPT = 256


class McpClient:
    """One session with one MCP server: `start()` (initialize), `request`, `notify`,
    `list_tools`, `call_tool`, `close()`."""

    def __init__(
        self,
        server: McpServer,
        *,
        stderr: Any = subprocess.DEVNULL,
        keep_out: Iterable[Any] = (),
        label: str | None = None,
    ) -> None:
        """`stderr`: where a stdio server's standard error goes; `subprocess.PIPE` keeps its
        last lines for `said` (for a person starting it by hand: they may hold anything).
        `keep_out`: the host's secrets (the proxy's tokens), scrubbed from what the server
        writes and says as its own are: a client may have sent it one as an argument.
        `label`: put before each line the server writes to a `stderr` stream (`[time]`), so
        that the lines of several servers, and sessions, passed on to one stream can be told
        apart."""
        self.server = server
        self.stderr = stderr
        self.label = label
        #: the URL requests go to (without `user:password@`) and the headers sending those
        #: credentials (urllib took `user:password@host` for a host name)
        self._url, auth = url_credentials(server.url) if server.url else ("", {})
        #: its declared env with `${NAME}`s taken from carlang's environment, and the names
        #: carlang's environment does not have (the server is then not started)
        self._env, self._unset, taken = expand_references(server.env)
        #: its declared headers taken so too (the server is not reached while one names a
        #: variable that is not set), with the URL's credentials: sent on every request
        headers, self._unset_in_headers, taken_in_headers = expand_references(server.headers)
        self._headers = {**auth, **headers}
        #: what a message may not show (`server_secrets`, and the host's), and the secret
        #: arguments of the latest calls (`keep_out`)
        self._kept = [*server_secrets(server), *keep_out]
        self._calls_secrets: list[Any] = []
        self._scrubber = Scrubber(self._kept)
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=5)
        self._stderr_reader: threading.Thread | None = None
        self._stderr_forwarder: threading.Thread | None = None
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
        elif self.server.url is not None:
            self._check_headers()
        try:
            answer = self.request(
                "initialize",
                {
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": _CLIENT_INFO,
                },
            ).result(timeout)
        except McpProtocolError as exc:  # (the server's message alone named neither it nor
            # what failed: "database is down", or carlang's own refusal echoed by `cat`)
            if self.server.command is not None:
                # (each word scrubbed before joining: quoting a secret holding `'` would
                # split it, and the pieces would no longer be found)
                words = [self.scrubbed(w) for w in (self.server.command, *self.server.args)]
                question = f"is `{shlex.join(words)[:80]}` an MCP server?"
            else:
                question = "is it an MCP endpoint?"
            raise McpError(
                f"{self.where} answered initialize with an error: {exc} ({question})"
            ) from None
        info = answer.get("serverInfo")
        self.server_info = info if isinstance(info, dict) else {}
        self.capabilities = answer.get("capabilities", {})
        self.notify("notifications/initialized")

    def _unset_error(self, naming: str, unset: list[str], instead: str) -> McpError:
        """The error for declared values (`naming`: "env names", "headers name") that take
        variables carlang's environment does not have."""
        names = ", ".join(f"${{{name}}}" for name in unset)
        return McpError(
            f"MCP server '{self.server.name}': its {naming} {names}, which carlang's"
            f" environment does not have: set it before starting carlang, {instead}"
        )

    def _check_headers(self) -> None:
        """Refuse to reach the server with headers that cannot be sent: one naming a variable
        carlang's environment does not have, or one the compiler would refuse (a program's IR
        may come from anywhere), as declared or as taken (a variable's value with a line
        break). Nothing said shows a value."""
        server = self.server
        if self._unset_in_headers:
            raise self._unset_error(
                "headers name", self._unset_in_headers, "or remove the header that needs it"
            )
        taken = {
            name: value
            for name, value in self._headers.items()
            if server.headers.get(name, value) != value
        }
        problems = [
            *header_problems(server.headers, url=server.url, command=server.command),
            *header_problems(taken, url=None, taken=True),
        ]
        if problems:
            raise McpError(f"{self.where}: {problems[0].message}")

    def _spawn(self) -> None:
        server = self.server
        assert server.command is not None
        if self._unset:
            raise self._unset_error(
                "env names", self._unset, "or write the value in the server's env"
            )
        if server.headers:
            (problem, *_) = header_problems(server.headers, url=None, command=server.command)
            raise McpError(f"{self.where}: {problem.message}")
        # an allow-list, not carlang's whole environment: the host's credentials (the proxy's
        # own bearer token above all) reach a server only when its `env` names them
        env = tool_environment(self._env, MCP_INHERITED_ENV)
        if server.cwd is not None and not os.path.isdir(server.cwd):
            # (Popen would say only "No such file or directory", as if the command were missing)
            raise McpError(
                f"MCP server '{server.name}': cannot start {server.command}: its working"
                f" directory (cwd) {server.cwd} is not an existing folder"
            )
        # a stream to pass the server's standard error on to (the proxy's own): always
        # through a pipe, so that what it writes there is scrubbed of its secrets and of the
        # secret arguments it is called with (a server may log them), and labelled
        forward = self.stderr if _is_stream(self.stderr) else None
        try:
            self._process = subprocess.Popen(
                [server.command, *server.args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if forward is not None else self.stderr,
                env=env,
                cwd=server.cwd,
                # A process group of its own: a Ctrl-C at the terminal goes to carlang alone,
                # which stops its servers in order (input closed, then SIGTERM), rather than
                # to every server at once, each dying with a traceback mid-call.
                process_group=0,
            )
        except OSError as exc:
            raise McpError(
                f"MCP server '{server.name}': cannot start {server.command}: {exc.strerror or exc}"
            ) from exc
        if self._closed:  # (closed while it was being started: no one else would stop it)
            with contextlib.suppress(OSError), self._process as started:  # (its pipes closed)
                started.kill()
            raise McpError(f"MCP server '{server.name}': the session was closed")
        self._reader = threading.Thread(
            target=self._read_stdio, name=f"mcp-{server.name}", daemon=True
        )
        self._reader.start()
        if self.stderr is subprocess.PIPE:
            self._stderr_reader = threading.Thread(
                target=self._keep_stderr, name=f"mcp-{server.name}-stderr", daemon=True
            )
            self._stderr_reader.start()
        elif forward is not None:
            self._stderr_forwarder = threading.Thread(
                target=self._forward_stderr,
                args=(forward,),
                name=f"mcp-{server.name}-stderr",
                daemon=True,
            )
            self._stderr_forwarder.start()

    def _forward_stderr(self, stream: Any) -> None:
        """Pass the server's standard error on to `stream` a line at a time, its secrets
        (env values, credential options) replaced; when `stream` fails, the rest is drained
        (a full pipe would stop the server)."""
        process = self._process
        assert process is not None and process.stderr is not None
        with process.stderr:
            for line in process.stderr:
                if stream is None:
                    continue
                text = self._scrubber.text(line.decode("utf-8", "replace"))
                if self.label is not None:  # (a last line without its end gets one)
                    text = f"{self.label} {text if text.endswith(chr(10)) else text + chr(10)}"
                try:
                    stream.write(text)
                    stream.flush()
                except (OSError, ValueError, TypeError):  # closed, or a binary stream
                    stream = None

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
            return "; it said: " + self._scrubber.text(" | ".join(self._stderr_tail))
        if self._not_protocol is not None:
            return f"; it wrote, where MCP messages go: {self._scrubber.text(self._not_protocol)!r}"
        return ""

    @property
    def where(self) -> str:
        """How messages name the server: `MCP server 'name'`, with its URL (credentials
        hidden) when it is reached over HTTP."""
        if self.server.url is None:
            return f"MCP server '{self.server.name}'"
        return f"MCP server '{self.server.name}' at {shown_url(self.server.url)}"

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
            if self._stderr_forwarder is not None:  # (the last of what it said, passed on)
                self._stderr_forwarder.join(timeout=2)
        elif self._session_id is not None and self.server.url is not None:
            request = urllib.request.Request(
                self._url,
                method="DELETE",
                headers={"Mcp-Session-Id": self._session_id, **self._headers},
            )
            try:
                _OPENER.open(request, timeout=2).close()
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
        request_id = next(self._ids)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.request_id = request_id  # type: ignore[attr-defined]
        with self._lock:  # (with the check: a close from another thread fails it, or it sees it)
            if self._closed:
                raise McpError(f"MCP server '{self.server.name}': the session is closed")
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

    def keep_out(self, values: Iterable[Any]) -> None:
        """Secret arguments of a call about to be sent (a secret parameter's value, a `redact`
        path's): kept out of what the server writes to its standard error and says, as its own
        secrets are. The latest `CALL_SECRETS_KEPT` are kept (a long session does not make
        every line's scrubbing slower and slower)."""
        fresh = [v for v in values if v not in self._calls_secrets and v not in self._kept]
        if not fresh:
            return
        self._calls_secrets = [*self._calls_secrets, *fresh][-CALL_SECRETS_KEPT:]
        # one reference swapped: the stderr thread scrubs a line with the old or the new one
        self._scrubber = Scrubber([*self._kept, *self._calls_secrets])

    def scrubbed(self, text: str) -> str:
        """`text` without this server's own secrets (its env values, credential options and
        URL secrets): what it says may quote them."""
        return self._scrubber.text(text)

    def scrubbed_value(self, value: Any) -> Any:
        """`value` (a tool's result) with this server's own secrets replaced in every string it
        holds: a tool may answer with its own credential (`token=...`), which is kept out of
        the event log and of what a client or a model is told, as it is from an error."""
        return self._scrubber.value(value)

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
        """Every tool the server lists (following pagination, within `timeout` in all): those
        that are objects with a string name (`listed_tools` has every entry as sent)."""
        return [
            tool
            for tool in self.listed_tools(timeout)
            if isinstance(tool, dict) and isinstance(tool.get("name"), str)
        ]

    def listed_tools(self, timeout: float = 30.0) -> list[Any]:
        """Every entry of the server's `tools/list` pages, as it sent them (following
        pagination, within `timeout` in all: `TimeoutError` when over). Raises `McpError`
        when an answer is not a page of tools (its `tools` not a list, a `nextCursor` not a
        string), or when its pagination does not end: a cursor it gave before, or more than
        `MAX_TOOL_PAGES` pages."""
        tools: list[Any] = []
        cursor: str | None = None
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        for _ in range(MAX_TOOL_PAGES):
            params = {"cursor": cursor} if cursor else {}
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            try:
                page = self.request("tools/list", params).result(left)
            except concurrent.futures.TimeoutError:
                raise TimeoutError from None
            except McpProtocolError as exc:
                if exc.code != _METHOD_NOT_FOUND:
                    raise
                raise McpError(
                    f"{self.where} does not serve tools (tools/list: method not found)"
                ) from None
            if not isinstance(page, dict):
                raise McpError(
                    f"{self.where} answered tools/list with a result that is not an object:"
                    f' {self._shown(page)} (an MCP server answers {{"tools": [...]}})'
                )
            listed = page.get("tools", [])
            if not isinstance(listed, list):
                raise McpError(
                    f"{self.where} answered tools/list with `tools` that is not a list of"
                    f" tools: {self._shown(listed)} (MCP asks for a list of tool objects:"
                    " the server is at fault; fix or update it)"
                )
            tools.extend(listed)
            cursor = page.get("nextCursor")
            if not cursor:  # (None, "": the last page)
                return tools
            if not isinstance(cursor, str):
                raise McpError(
                    f"{self.where} answered tools/list with a `nextCursor` that is not a"
                    f" string: {self._shown(cursor)} (the server is at fault; fix or update it)"
                )
            if cursor in seen:
                raise McpError(
                    f"{self.where} answered tools/list with a nextCursor it gave before"
                    f" ({self._shown(cursor)}, after {len(seen) + 1} pages): its pagination"
                    " would never end (the server is at fault; fix or update it)"
                )
            seen.add(cursor)
        raise McpError(
            f"{self.where} listed its tools in more than {MAX_TOOL_PAGES} pages (tools/list"
            " nextCursor): its pagination does not seem to end (the server is at fault; fix"
            " or update it)"
        )

    def _shown(self, value: Any) -> str:
        """Something the server sent, for a message: JSON on one line, cut short, its
        secrets hidden."""
        return self.scrubbed(shown_json(value))

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
            raise McpError(self._ended(process, wait_s=1.0)) from exc

    def _dispatch(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        if "method" in message:
            if "id" in message:
                self._answer_server_request(message)
            elif self.on_notification is not None:
                self.on_notification(message["method"], message.get("params"))
            return
        request_id = message.get("id")
        if not _hashable(request_id):  # (an id that is a list or an object answers nothing)
            return
        with self._lock:
            future = self._pending.pop(request_id, None)  # type: ignore[arg-type]
        if future is None or future.done():
            return
        error = message.get("error")
        if error is not None:
            if not isinstance(error, dict):
                error = {"message": f"malformed error: {str(error)[:200]!r}"}
            code = error.get("code")
            future.set_exception(
                McpProtocolError(
                    code if isinstance(code, int) and not isinstance(code, bool) else 0,
                    # (a server's error may quote its own key: "invalid API key sk-...")
                    self._scrubber.text(str(error.get("message", ""))),
                    error.get("data"),
                )
            )
        else:
            result = message.get("result", {})
            if isinstance(result, dict):
                future.set_result(result)
            else:  # (every MCP result is an object: its callers read its fields)
                problem = f"{self.where} answered with a result that is not an object"
                future.set_exception(McpError(f"{problem}: {str(result)[:200]!r}"))

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
                    message = parse_json(line)
                except JsonTextError as exc:
                    loose = _loosely(line)
                    if loose is _NOT_JSON:
                        # a server that logs to stdout: not a message (kept for `said`)
                        self._not_protocol = line[:200].decode("utf-8", "replace")
                    else:  # JSON Python reads but JSON does not allow: fail its request
                        self._unreadable(loose, exc)
                    continue
                for item in message if isinstance(message, list) else [message]:
                    self._dispatch(item)
        self._fail_pending(McpError(self._ended(process)))

    def _ended(self, process: subprocess.Popen[bytes], wait_s: float | None = None) -> str:
        """How a server process that stopped taking messages ended: the same words whether a
        write to it failed first or its output ended first (which one, a race, said two
        things); waiting for its status at most `wait_s` seconds."""
        try:
            status = process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return f"MCP server '{self.server.name}' closed its input (it is still running)"
        return f"MCP server '{self.server.name}' exited (status {status})"

    def _unreadable(self, loose: Any, problem: JsonTextError) -> None:
        """A message carlang refuses to read (NaN, Infinity, a number out of range, nesting
        past 128 levels): the request it answers fails saying so; when which one cannot be
        told, every request waiting does (a server request or notification is dropped)."""
        error = McpError(f"{self.where} sent a message that {_unread(problem)}")
        items = loose if isinstance(loose, list) else [loose]
        ids = [item.get("id") for item in items if isinstance(item, dict)]
        if items and all(isinstance(item, dict) and "method" in item for item in items):
            return  # (its own requests and notifications: nothing of carlang's waits on them)
        if not any(_hashable(i) and i is not None for i in ids):
            self._fail_pending(error)  # (too deep to read at all, or no id in it)
            return
        with self._lock:
            futures = [self._pending.pop(i) for i in ids if _hashable(i) and i in self._pending]
        for future in futures:
            if not future.done():
                future.set_exception(error)

    # -- Streamable HTTP -----------------------------------------------------------------------

    def _post(self, message: dict[str, Any]) -> None:
        assert self.server.url is not None
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": PROTOCOL_VERSION,
            **self._headers,
        }
        if self._session_id is not None:
            headers["Mcp-Session-Id"] = self._session_id
        request = urllib.request.Request(
            self._url, data=json.dumps(message).encode(), headers=headers, method="POST"
        )
        try:
            with _OPENER.open(request, timeout=None) as response:
                session = response.headers.get("Mcp-Session-Id")
                if session:
                    self._session_id = session
                kind = response.headers.get("Content-Type", "")
                if response.status == 202 or "id" not in message or "method" not in message:
                    return
                if kind.startswith("text/event-stream"):
                    for item in self._read_events(response):
                        self._dispatch(item)
                else:
                    self._dispatch(parse_json(response.read()))
        except (urllib.error.URLError, OSError, JsonTextError) as exc:
            if "id" in message and "method" in message:
                if isinstance(exc, JsonTextError):
                    problem = f"its answer {_unread(exc)}"
                elif isinstance(exc, urllib.error.HTTPError) and exc.code in (401, 403):
                    problem = self._refused(exc.code)
                elif isinstance(exc, urllib.error.HTTPError) and exc.code in _REDIRECTS:
                    problem = _redirected(exc)
                else:  # (what urllib says may quote the URL it was given)
                    problem = self._scrubber.text(_unreached(exc))
                with self._lock:
                    future = self._pending.pop(message["id"], None)
                if future is not None and not future.done():
                    future.set_exception(McpError(f"{self.where}: {problem}"))

    def _refused(self, status: int) -> str:
        """What a 401 or 403 answer means, saying which headers to check (by name, and the
        variables they take: never their values)."""
        said = "401 Unauthorized" if status == 401 else "403 Forbidden"
        if status == 401:
            why = "wrong or expired, or not the one the server expects"
        else:
            why = "not allowed to do this"
        declared = self.server.headers
        if declared:
            # (the variables a value takes, by name: every reference, as if none were set)
            variables = expand_references(declared, {})[1]
            taken = ", ".join(f"${{{name}}}" for name in variables)
            check = f"check its headers ({', '.join(declared)})" + (
                f" and the variables they take ({taken})" if taken else ""
            )
            check += f": the credential they send is {why}"
            miswritten = [
                (name, wrong) for name, value in declared.items() for wrong in misreferences(value)
            ]
            if miswritten:  # (the likeliest cause: a variable's name sent, not its value)
                name, wrong = miswritten[0]
                check += f"; in header {name}, {wrong.message()} (it was sent as written)"
        elif self._headers:
            check = f"check the user and password in its url: the credential is {why}"
        else:
            check = (
                "it wants credentials: declare them in its `headers`, like"
                ' `headers { "Authorization": "Bearer ${TOKEN}" }`'
            )
        return f"HTTP {said}: the server refused carlang's request; {check}"

    def _read_events(self, response: Any) -> Iterator[Any]:
        """Server-sent events: each `data:` block is one JSON-RPC message. A block that is not
        JSON (an empty priming event) is passed over; one Python reads but JSON does not
        allow (NaN, nesting past 128 levels) raises `JsonTextError`."""
        data: list[str] = []
        for raw in response:
            line = raw.decode("utf-8").rstrip("\r\n")
            if line.startswith("data:"):
                data.append(line[5:].lstrip())
            elif not line and data:
                text, data = "\n".join(data), []
                try:
                    yield parse_json(text)
                except JsonTextError:
                    if _loosely(text) is not _NOT_JSON:
                        raise


_NOT_JSON = object()


def _loosely(text: str | bytes) -> Any:
    """`text` as Python's `json` reads it (NaN, Infinity, any depth it can), `_NOT_JSON` when
    it is not JSON at all, None when it is too deep for Python (a message all the same)."""
    try:
        return json.loads(text)
    except RecursionError:
        return None
    except (ValueError, UnicodeDecodeError):
        return _NOT_JSON


def _is_stream(value: Any) -> bool:
    """Whether `value` is a text stream (like `sys.stderr`) rather than what `Popen` takes as
    such (`PIPE`, `DEVNULL`, a file descriptor, None)."""
    return hasattr(value, "write") and not isinstance(value, int)


def shown_json(value: Any, limit: int = 120) -> str:
    """`value` (something a server sent) as JSON on one line, at most `limit` characters."""
    try:
        text = json.dumps(value, ensure_ascii=True, default=repr)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unread(problem: JsonTextError) -> str:
    """What is wrong with a message `parse_json` refused, after "the message that ...": valid
    JSON nested past carlang's limit is said to be that, not "not valid JSON"."""
    if isinstance(problem, JsonNestingError):
        return f"nests more than {NESTING_LIMIT} levels deep, past what carlang reads"
    return f"is not valid JSON: {problem}"


def _hashable(value: Any) -> bool:
    return isinstance(value, str | int | float) or value is None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Follows no redirect: urllib would send the request again, its `Authorization` header
    (a server's declared token, its url's password) included, to wherever `Location`
    points, another host as well. The answer is then an HTTPError (`_redirected`)."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


#: How carlang sends its requests to an MCP server over HTTP (`_NoRedirects`).
_OPENER = urllib.request.build_opener(_NoRedirects)
_REDIRECTS = (301, 302, 303, 307, 308)


def _redirected(answer: urllib.error.HTTPError) -> str:
    """What a redirect answer means, saying where it pointed (credentials hidden)."""
    location = answer.headers.get("Location") if answer.headers is not None else None
    where = f" to {shown_url(location)}" if location else ""
    return (
        f"it answered {answer.code}, a redirect{where}, which carlang does not follow (its"
        " headers and credentials would go there too): give the server's own url in its `url`"
    )


def _unreached(exc: BaseException) -> str:
    """Why a request reached no server, said for a person: what urllib says, with what to
    check when nothing answered at all."""
    reason = getattr(exc, "reason", exc)
    said = str(reason)
    if isinstance(reason, ConnectionRefusedError):
        return f"{said}: nothing answers there; is the server running, at that port?"
    if isinstance(reason, socket.gaierror):
        return f"{said}: its host name is not known here; check the url"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"{said}: it did not answer in time; is the server running and reachable?"
    return said


def server_secrets(server: McpServer) -> list[str]:
    """What nothing carlang shows or writes down may hold of `server`'s configuration, though
    the server, or a client, may repeat it: its env and header values that are credentials,
    by their names (`API_KEY`, `GITHUB_TOKEN`, `Authorization`) or their form (`Bearer ...`),
    as declared and as taken from carlang's environment (a `${NAME}`'s value on its own, and
    the value it makes, `Bearer <token>`), the password and credential query values of its
    URL or of a URL among its env values or arguments, and the values of its options named
    for a credential (`--api-key X`, `--token=X`). A plain setting (`NODE_ENV:
    "production"`, `ALLOWED: "${HOME_DIR}"`, `X-Org: "acme"`) is none of them: it stays as it
    is wherever it occurs."""
    found = _secrets_of(server)
    for declared in (server.env, server.headers):
        credentials = {name: v for name, v in declared.items() if _credential(name, v)}
        expanded, _, taken = expand_references(credentials)
        found.extend([*expanded.values(), *taken])
    # (a value still holding a `${NAME}`, as declared or left unset, names a secret, and is
    # none: a message saying which variable is missing shows it)
    return [v for v in dict.fromkeys(found) if v and not expand_references({"": v}, {})[1]]


def _secrets_of(server: McpServer) -> list[str]:
    """The secrets of `server` as declared (see `server_secrets`): its URL's password and the
    values of query parameters named for a credential, its env and header values that are
    credentials (`_credential`), the values of its options named for one (`--api-key X`,
    `--token=X`), and the same in any URL among its arguments or env values."""
    found: list[str] = []
    for declared in (server.env, server.headers):
        for name, value in declared.items():
            if _credential(name, value):
                found.append(value)
            if "://" in value:
                found.extend(_url_secrets(value))
    args = list(server.args)
    for index, arg in enumerate(args):
        option, equals, value = arg.partition("=")
        if _SECRET_OPTION.fullmatch(option):
            if equals:
                found.append(value)
            elif index + 1 < len(args):
                found.append(args[index + 1])
        if "://" in arg:
            found.extend(_url_secrets(arg))
    if server.url:
        found.extend(_url_secrets(server.url))
    return [value for value in found if value]


def _url_secrets(url: str) -> list[str]:
    """The password of `url` and the values of the query parameters `shown_url` hides, as
    written and decoded."""
    try:
        password = urllib.parse.urlsplit(url).password
    except ValueError:
        password = None
    found = [password, urllib.parse.unquote(password)] if password else []
    query = url.partition("?")[2].partition("#")[0]
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        if equals and value and shown_url(f"http://h/?{name}={value}").endswith("=***"):
            found.extend([value, urllib.parse.unquote_plus(value)])
    return found
