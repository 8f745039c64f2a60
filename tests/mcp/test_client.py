"""carlang's MCP client (`carlang_runtime.mcp.client`) against scripted servers: credentials in
a server's URL are sent as HTTP Basic authorization and never shown (not in an error, not in
the event log), nor are a stdio server's env values or credential options when it echoes
them; a message that is not strict JSON (NaN, Infinity, nesting past 128 levels) fails its
request with an error naming the server, and no malformed answer stops the session's reader;
the client says it is carlang, with carlang's version."""

from __future__ import annotations

import base64
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from carlang_runtime import __version__
from carlang_runtime.ir import McpServer
from carlang_runtime.mcp import McpClient, McpError
from typer.testing import CliRunner

from carlang.cli import app
from carlang.mcp_import import import_server
from tests.mcp.conftest import free_port

runner = CliRunner()

PASSWORD, KEY = "Sup3rPassw0rd", "KEY-ABCDEF123"

#: A stdio server answering initialize (with the client's version as its own) and tools/list
#: with the text FAKE_TOOLS gives; FAKE_FIRST is written before that answer.
FAKE = r"""
import json, os, sys
for line in sys.stdin:
    message = json.loads(line)
    if "id" not in message:
        continue
    if message["method"] == "initialize":
        info = {"name": "fake", "version": message["params"]["clientInfo"]["version"]}
        result = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                  "serverInfo": info, "clientName": message["params"]["clientInfo"]["name"]}
        print(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}), flush=True)
    else:
        first = os.environ.get("FAKE_FIRST")
        if first:
            print(first.replace("ID", json.dumps(message["id"])), flush=True)
        tools = os.environ.get("FAKE_TOOLS", '{"tools": []}')
        print('{"jsonrpc": "2.0", "id": %s, "result": %s}' % (json.dumps(message["id"]), tools),
              flush=True)
"""


def _fake(env: dict[str, str] | None = None) -> McpClient:
    server = McpServer(name="fake", command=sys.executable, args=["-c", FAKE], env=env or {})
    client = McpClient(server)
    client.start(timeout=20)
    return client


#: What the client says of a message nested past carlang's limit.
_DEEP = "nests more than 128 levels deep, past what carlang reads"


def _nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_the_client_says_it_is_carlang_with_its_version() -> None:
    client = _fake()
    try:
        assert client.server_info["version"] == __version__ != "1"
    finally:
        client.close()


@pytest.mark.parametrize(
    ("tools", "problem"),
    [
        ('{"tools": [], "x": NaN}', "1:58: malformed JSON: the constant NaN is not JSON"),
        ('{"tools": [], "x": -Infinity}', "the constant -Infinity is not JSON"),
        ('{"tools": [], "x": 1e400}', "number out of range: 1e400"),
        ('{"tools": [], "x": ' + _nested(200) + "}", _DEEP),
        ('{"tools": [], "x": ' + _nested(5000) + "}", _DEEP),
    ],
    ids=["nan", "infinity", "out-of-range", "deep", "deeper-than-python"],
)
def test_a_message_that_is_not_strict_json_fails_its_request(tools: str, problem: str) -> None:
    """Python's `json` reads NaN and Infinity (JSON has neither) and any depth up to its
    recursion limit (past it, the reader thread died and the request waited forever). A deep
    message is valid JSON, and is not said to be otherwise (it was, in a bad-input sweep)."""
    client = _fake({"FAKE_TOOLS": tools})
    try:
        with pytest.raises(McpError) as raised:
            client.list_tools(timeout=20)
        message = str(raised.value)
        if problem is _DEEP:
            assert message == f"MCP server 'fake' sent a message that {_DEEP}"
        else:
            assert message.startswith("MCP server 'fake' sent a message that is not valid JSON: ")
            assert problem in message
        assert client.alive  # the session goes on
    finally:
        client.close()


@pytest.mark.parametrize(
    "first",
    [
        '{"jsonrpc": "2.0", "id": [ID], "result": {}}',
        '{"jsonrpc": "2.0", "id": {"x": ID}, "error": {"code": 1, "message": "x"}}',
        '{"jsonrpc": "2.0", "method": "notifications/message", "params": {"x": NaN}}',
    ],
    ids=["list-id", "object-id", "nan-notification"],
)
def test_a_malformed_message_does_not_stop_the_reader(first: str) -> None:
    """An id that is a list or an object answers nothing (it stopped the reader thread with a
    TypeError: every later answer was lost); a notification carlang cannot read is dropped."""
    client = _fake({"FAKE_FIRST": first})
    try:
        assert client.list_tools(timeout=20) == []
    finally:
        client.close()


@pytest.mark.parametrize(
    ("first", "problem"),
    [
        ('{"jsonrpc": "2.0", "id": ID, "error": "boom"}', "malformed error: 'boom'"),
        ('{"jsonrpc": "2.0", "id": ID, "error": {"code": "x", "message": "no"}}', "no"),
        ('{"jsonrpc": "2.0", "id": ID, "result": [1]}', "a result that is not an object"),
    ],
    ids=["error-not-object", "code-not-int", "result-not-object"],
)
def test_a_malformed_answer_is_an_error(first: str, problem: str) -> None:
    client = _fake({"FAKE_FIRST": first})
    try:
        with pytest.raises(McpError) as raised:
            client.list_tools(timeout=20)
        assert problem in str(raised.value)
    finally:
        client.close()


def test_a_stdio_servers_secrets_are_not_repeated_from_what_it_said() -> None:
    """A server that echoes its environment or its arguments on standard error: what the
    error quotes of it has their values replaced (env values, credential options)."""
    echo = (
        "import os, sys; sys.stderr.write('boot ' + os.environ['API_TOKEN'] + ' '"
        " + ' '.join(sys.argv[1:]) + '\\n'); sys.exit(3)"
    )
    server = McpServer(
        name="local",
        command=sys.executable,
        args=["-c", echo, "--token", "ARGV-SECRET-999", "--api-key=ARGV-SECRET-777", "--v"],
        env={"API_TOKEN": "ENV-SECRET-12345"},
    )
    with pytest.raises(McpError) as raised:
        import_server(server, timeout=20)
    message = str(raised.value)
    assert "exited (status 3); it said: boot [REDACTED] --token [REDACTED]" in message
    assert "--api-key=[REDACTED] --v" in message
    assert "SECRET" not in message


def test_a_server_that_exits_at_once_is_said_to_have_exited_whichever_end_sees_it() -> None:
    """A server that exits before it reads anything: the first write fails, or its output
    ends, first (a race); either way the error says it exited and how, in the same words
    (the failed write said "is gone", and CI saw both)."""
    gone = McpServer(name="gone", command=sys.executable, args=["-c", "pass"])
    for _ in range(4):
        with pytest.raises(McpError, match=r"^MCP server 'gone' exited \(status 0\)"):
            import_server(gone, timeout=20)


# -- Streamable HTTP -------------------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    """A Streamable HTTP MCP server that records what it was sent; `mode` shapes tools/list's
    answer."""

    seen: list[tuple[str, str, str | None]] = []
    mode = "json"

    def log_message(self, *args: Any) -> None:  # (quiet)
        pass

    def do_DELETE(self) -> None:  # noqa: N802
        self.seen.append(("DELETE", self.path, self.headers.get("Authorization")))
        self.send_response(200)
        self.end_headers()

    def do_POST(self) -> None:  # noqa: N802
        self.seen.append(("POST", self.path, self.headers.get("Authorization")))
        message = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if "id" not in message:
            self.send_response(202)
            self.end_headers()
            return
        if message["method"] == "initialize":
            result = {
                "protocolVersion": "2025-06-18",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "recorder", "version": "1"},
            }
            body = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result})
        else:
            extra = ', "x": NaN' if self.mode.endswith("nan") else ""
            answer = f'"jsonrpc": "2.0", "id": {message["id"]}, "result": {{"tools": []{extra}}}'
            body = "{" + answer + "}"
        sse = self.mode.startswith("sse")
        if sse:
            body = f"event: message\ndata: \n\nevent: message\ndata: {body}\n\n"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if sse else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Mcp-Session-Id", "s1")
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def recorder() -> Iterator[int]:
    _Recorder.seen = []
    _Recorder.mode = "json"
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_credentials_in_the_url_are_sent_as_basic_authorization(recorder: int) -> None:
    """`http://user:password@host/...`: urllib took `user:password@host` for a host name
    and never connected; the URL goes without them, the credentials as a Basic header (as the
    decision log's http sink sends them). The query is the server's: kept."""
    url = f"http://admin:{PASSWORD}%21@127.0.0.1:{recorder}/mcp?api_key={KEY}&x=1"
    client = McpClient(McpServer(name="remote", url=url))
    client.start(timeout=20)
    try:
        assert client.list_tools(timeout=20) == []
    finally:
        client.close()
    basic = "Basic " + base64.b64encode(f"admin:{PASSWORD}!".encode()).decode()
    assert _Recorder.seen
    assert {(m, p, a) for m, p, a in _Recorder.seen} == {
        ("POST", f"/mcp?api_key={KEY}&x=1", basic),
        ("DELETE", f"/mcp?api_key={KEY}&x=1", basic),
    }


@pytest.mark.parametrize("mode", ["json-nan", "sse-nan"])
def test_an_http_answer_that_is_not_strict_json_is_an_error(recorder: int, mode: str) -> None:
    _Recorder.mode = mode
    url = f"http://admin:{PASSWORD}@127.0.0.1:{recorder}/mcp?token={KEY}"
    client = McpClient(McpServer(name="remote", url=url))
    client.start(timeout=20)
    try:
        with pytest.raises(McpError) as raised:
            client.list_tools(timeout=20)
    finally:
        client.close()
    message = str(raised.value)
    assert message.startswith(
        f"MCP server 'remote' at http://admin:***@127.0.0.1:{recorder}/mcp?token=***: "
    )
    assert "the constant NaN is not JSON" in message


def test_credentials_in_the_url_are_never_shown(tmp_path: Path) -> None:
    """A server that cannot be reached: the error (terminal, event log) shows its URL with
    the password and the credential query values as `***`."""
    port = free_port()
    program = tmp_path / "u.car"
    program.write_text(
        f'mcp_server remote {{ url "http://admin:{PASSWORD}@127.0.0.1:{port}/mcp'
        f'?api_key={KEY}&x=1" }}\n'
        'tool remote.q() { schema { type: "object", properties: { a: { type: "string" } } } }\n'
        'proposal pr {\n  a = remote.q(a: "x") { on_failure skip }\n}\n'
    )
    events = tmp_path / "ev.jsonl"
    result = runner.invoke(app, ["run", str(program), "--events", str(events), "--format", "json"])
    assert result.exit_code == 1, result.output  # (an action did not succeed)
    shown = f"MCP server 'remote' at http://admin:***@127.0.0.1:{port}/mcp?api_key=***&x=1: "
    (outcome,) = json.loads(result.stdout)["result"]["results"]
    assert outcome["status"] == "skipped" and outcome["error"].startswith(shown)
    for text in (result.output, events.read_text()):
        assert PASSWORD not in text and KEY not in text
    assert shown in events.read_text()


def test_import_reaches_a_server_whose_url_holds_credentials(recorder: int) -> None:
    url = f"http://admin:{PASSWORD}@127.0.0.1:{recorder}/mcp?token={KEY}"
    result = runner.invoke(app, ["mcp", "import", "--url", url])
    assert result.exit_code == 0, result.output
    assert "mcp_server recorder {" in result.stdout and f'url "{url}"' in result.stdout
    assert "# Its url holds a credential" in result.stdout
    assert {auth for _, _, auth in _Recorder.seen} == {
        "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    }


def test_a_variable_taken_into_part_of_an_env_value_is_redacted_on_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`env { AUTH: "Bearer ${TOKEN}" }`: a server that repeats the token alone (an error
    quoting it) has it redacted too, not only the whole value."""
    from carlang_runtime.mcp.client import McpClient

    monkeypatch.setenv("PART_TOKEN", "s3cr3t-token-xyz-123")
    client = McpClient(McpServer(name="s", command="x", env={"AUTH": "Bearer ${PART_TOKEN}"}))
    assert client.scrubbed("invalid token s3cr3t-token-xyz-123") == "invalid token [REDACTED]"
    assert "s3cr3t" not in client.scrubbed("AUTH=Bearer s3cr3t-token-xyz-123")


def test_a_server_has_a_process_group_of_its_own() -> None:
    """A Ctrl-C at the terminal reached every server the proxy had started (one process
    group), each dying with a traceback mid-call before the proxy could stop them in order
    (a gateway trial's finding): a server now has a group of its own."""
    import os

    client = _fake()
    try:
        process = client._process
        assert process is not None
        assert os.getpgid(process.pid) == process.pid != os.getpgid(0)
    finally:
        client.close()
