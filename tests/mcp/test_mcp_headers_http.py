"""`headers` against a real Streamable HTTP MCP server (the official SDK's FastMCP) that wants
`Authorization: Bearer <token>` (auth_server.py): import, check, run and proxy with the token
taken from the environment; a missing, wrong or refused token is a clear error naming the
server and its headers; the token never reaches an error, standard error, the event log, the
imported file or an MCP message, not even when the server echoes it."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from carlang_runtime.engine import EventLog, JsonlSink, Runtime
from carlang_runtime.ir import McpServer
from carlang_runtime.mcp import McpClient, McpError
from carlang_runtime.mcp.proxy import PolicyProxy, StdioSession

from carlang.compiler import compile_file
from tests.helpers import run_carlang
from tests.mcp.conftest import free_port, initialize, needs_sdk, wait_for_port

pytestmark = [needs_sdk, pytest.mark.slow]

SERVER = Path(__file__).resolve().parent / "auth_server.py"
TOKEN = "tok-" + secrets.token_hex(12)
FORBIDDEN = "ro-" + secrets.token_hex(12)
WRONG = "bad-" + secrets.token_hex(12)

HEADERS = ["--header", "Authorization: Bearer ${HDR_TOKEN}", "--header", "X-Client: carlang-test"]
PLAN = "\nproposal p {\n  s = auth.add(a: 2, b: 3)\n  w = auth.whoami() after s\n}\n"


class Server:
    """The authenticated server's URL and its request log."""

    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log

    def requests(self) -> list[dict[str, Any]]:
        """The requests it got since the last call (one dict each: method, ok, client)."""
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        self.log.write_text("")
        return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("auth") / "requests.jsonl"
    port = free_port()
    env = {**os.environ, "AUTH_TOKEN": TOKEN, "AUTH_FORBIDDEN": FORBIDDEN, "AUTH_LOG": str(log)}
    process = subprocess.Popen(
        [sys.executable, str(SERVER), str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield Server(f"http://127.0.0.1:{port}/mcp", log)
    finally:
        process.terminate()
        process.wait(10)


def carlang(
    *args: str, cwd: Path, token: str | None = TOKEN, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`carlang ARGS...` as a fresh process, with HDR_TOKEN set to `token` (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k != "HDR_TOKEN"}
    if token is not None:
        env["HDR_TOKEN"] = token
    return run_carlang(*args, cwd=cwd, env=env, timeout=timeout)


def _imported(tmp_path: Path, server: Server) -> Path:
    out = tmp_path / "auth.car"
    done = carlang("mcp", "import", "--url", server.url, *HEADERS, "-o", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    server.requests()
    return out


def _secrets_absent(*texts: str) -> None:
    for text in texts:
        for secret in (TOKEN, FORBIDDEN, WRONG):
            assert secret not in text


def test_import_check_and_run_with_the_token_from_the_environment(
    tmp_path: Path, server: Server
) -> None:
    server.requests()
    out = tmp_path / "auth.car"
    done = carlang("mcp", "import", "--url", server.url, *HEADERS, "-o", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stderr and "MCP server `auth` with 2 tools" in done.stderr
    text = out.read_text()
    # the file holds the reference as written, never the value taken for the import
    assert 'headers { Authorization: "Bearer ${HDR_TOKEN}", "X-Client": "carlang-test" }' in text
    assert "tool auth.add()" in text and "tool auth.whoami()" in text
    assert "credential written out" not in text
    _secrets_absent(text, done.stdout, done.stderr)
    # every request of the import carried the headers, the session's DELETE at the end too
    seen = server.requests()
    assert seen and all(r["ok"] and r["client"] == "carlang-test" for r in seen), seen
    assert seen[-1]["method"] == "DELETE"

    check = carlang("check", str(out), cwd=tmp_path)
    assert check.returncode == 0 and "0 errors, 0 warnings" in check.stdout, check.stdout
    assert carlang("fmt", "--check", str(out), cwd=tmp_path).returncode == 0

    out.write_text(text + PLAN)
    events = tmp_path / "run.jsonl"
    run = carlang("run", str(out), "--events", str(events), "--format", "json", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    results = {r["action_id"]: r for r in json.loads(run.stdout)["result"]["results"]}
    assert results["s"]["status"] == "succeeded" and results["s"]["output"] == {"result": 5}
    # the server echoed the token it was sent: the action's output has it hidden
    assert results["w"]["output"] == {"result": "you sent [REDACTED]"}
    log = events.read_text()
    assert "you sent [REDACTED]" in log
    _secrets_absent(run.stdout, run.stderr, log)
    seen = server.requests()
    assert seen and all(r["ok"] and r["client"] == "carlang-test" for r in seen), seen
    assert [r["method"] for r in seen].count("DELETE") == 1


def _failed_run(tmp_path: Path, text: str, token: str | None) -> tuple[str, str]:
    """Run `text` (one call of auth.add): the action's error, and everything the run wrote
    (standard output and error, the event log)."""
    path = tmp_path / "p.car"
    path.write_text(text + "\nproposal p { s = auth.add(a: 2, b: 3) }\n")
    events = tmp_path / "run.jsonl"
    run = carlang(
        "run", str(path), "--events", str(events), "--format", "json", cwd=tmp_path, token=token
    )
    (result,) = json.loads(run.stdout)["result"]["results"]
    assert result["status"] == "failed", result
    return result["error"], run.stdout + run.stderr + events.read_text()


@pytest.mark.parametrize(
    ("token", "says"),
    [
        (
            WRONG,
            "HTTP 401 Unauthorized: the server refused carlang's request; check its headers"
            " (Authorization, X-Client) and the variables they take (${HDR_TOKEN}): the"
            " credential they send is wrong or expired, or not the one the server expects",
        ),
        (
            FORBIDDEN,
            "HTTP 403 Forbidden: the server refused carlang's request; check its headers"
            " (Authorization, X-Client) and the variables they take (${HDR_TOKEN}): the"
            " credential they send is not allowed to do this",
        ),
        (
            None,
            "MCP server 'auth': its headers name ${HDR_TOKEN}, which carlang's environment does"
            " not have: set it before starting carlang, or remove the header that needs it",
        ),
    ],
    ids=["wrong", "forbidden", "unset"],
)
def test_a_wrong_refused_or_missing_token_is_a_clear_error_without_it(
    tmp_path: Path, server: Server, token: str | None, says: str
) -> None:
    text = _imported(tmp_path, server).read_text()
    error, everything = _failed_run(tmp_path, text, token)
    assert says in error, error
    if token is not None:
        assert error.startswith(f"MCP server 'auth' at {server.url}: HTTP 40"), error
    # (the server's refusal quotes the credential it was sent: it is not passed on)
    _secrets_absent(everything)


def test_a_server_that_wants_a_token_and_was_given_none_says_to_declare_it(
    tmp_path: Path, server: Server
) -> None:
    text = _imported(tmp_path, server).read_text()
    start = text.index("  headers {")
    without = text[:start] + text[text.index("\n", start) + 1 :]
    error, everything = _failed_run(tmp_path, without, TOKEN)
    assert (
        "HTTP 401 Unauthorized: the server refused carlang's request; it wants credentials:"
        in error
    )
    assert (
        'declare them in its `headers`, like `headers { "Authorization": "Bearer ${TOKEN}" }`'
        in error
    )
    _secrets_absent(everything)


def test_a_401_points_at_a_reference_miswritten_in_a_header(tmp_path: Path, server: Server) -> None:
    """`Bearer $HDR_TOKEN` sends the variable's name: the refusal says so, and what to write
    (it named only the headers and their variables, none here)."""
    text = _imported(tmp_path, server).read_text().replace("${HDR_TOKEN}", "$HDR_TOKEN")
    error, everything = _failed_run(tmp_path, text, TOKEN)
    assert "HTTP 401 Unauthorized" in error, error
    assert (
        "in header Authorization, `$HDR_TOKEN` is not a reference carlang takes from the"
        " environment: write `${HDR_TOKEN}` (it was sent as written)" in error
    ), error
    _secrets_absent(everything)


def test_import_with_a_wrong_token_fails_clearly(tmp_path: Path, server: Server) -> None:
    out = tmp_path / "auth.car"
    done = carlang(
        "mcp", "import", "--url", server.url, *HEADERS, "-o", str(out), cwd=tmp_path, token=WRONG
    )
    assert done.returncode == 2 and not out.exists()
    assert "HTTP 401 Unauthorized" in done.stderr and "check its headers" in done.stderr
    _secrets_absent(done.stdout, done.stderr)


def test_import_of_a_token_written_out_warns_and_the_file_says_so(
    tmp_path: Path, server: Server
) -> None:
    """A token the shell expanded (`--header "Authorization: Bearer $TOKEN"`) goes into the
    file as given: the import warns, the file says to keep it private, check warns."""
    out = tmp_path / "auth.car"
    literal = ["--header", f"Authorization: Bearer {TOKEN}"]
    done = carlang("mcp", "import", "--url", server.url, *literal, "-o", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "warning: --header Authorization: its value is a credential" in done.stderr
    assert "pass 'Authorization: Bearer ${TOKEN}' (in single quotes" in done.stderr
    text = out.read_text()
    assert "# Its headers hold a credential written out: keep this file out of version" in text
    check = carlang("check", str(out), cwd=tmp_path)
    assert check.returncode == 0 and "warning[CL0226]" in check.stdout
    assert TOKEN not in done.stderr
    # (the warning quotes the file's line, as every diagnostic does; never in its own words)
    said = [line for line in check.stdout.splitlines() if TOKEN in line]
    assert said and all(line.split("|")[0].strip().isdigit() for line in said), said


def test_the_client_sends_the_headers_on_every_request(server: Server) -> None:
    """initialize, notifications, tools/list, tools/call, the session's DELETE."""
    os.environ["HDR_CLIENT_TOKEN"] = TOKEN
    try:
        declared = {"Authorization": "Bearer ${HDR_CLIENT_TOKEN}", "X-Client": "direct"}
        client = McpClient(McpServer(name="auth", url=server.url, headers=declared))
        server.requests()
        client.start(20)
        assert {t["name"] for t in client.list_tools(20)} == {"add", "whoami"}
        answer = client.request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})
        assert answer.result(20)["structuredContent"] == {"result": 3}
        client.close()
    finally:
        del os.environ["HDR_CLIENT_TOKEN"]
    seen = server.requests()
    assert len(seen) >= 5 and all(r["ok"] and r["client"] == "direct" for r in seen), seen
    assert seen[-1]["method"] == "DELETE"
    # and a server that refuses fails the request (no hang), naming it
    os.environ["HDR_CLIENT_TOKEN"] = WRONG
    try:
        refused = McpClient(McpServer(name="auth", url=server.url, headers=declared))
        with pytest.raises(McpError, match="HTTP 401 Unauthorized"):
            refused.start(20)
        refused.close()
    finally:
        del os.environ["HDR_CLIENT_TOKEN"]


def test_the_proxy_passes_no_token_to_its_client_nor_its_log(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`carlang mcp proxy` fronting the server: the echoed token is `[REDACTED]` in the MCP
    answer to the proxy's client and in the event log."""
    path = _imported(tmp_path, server)
    monkeypatch.setenv("HDR_TOKEN", TOKEN)
    result = compile_file(path, tmp_path)
    assert result.program is not None
    program = result.program
    log = EventLog([JsonlSink(tmp_path / "events.jsonl")])
    runtime = Runtime.from_program(program, events=log)
    errors = tmp_path / "stderr.txt"
    written: list[dict[str, Any]] = []
    with errors.open("w") as stderr:
        proxy = PolicyProxy(program, runtime, stderr=stderr)
        session = StdioSession(proxy, lambda data: written.append(json.loads(data)))

        async def scenario() -> None:
            session.receive(initialize(0))
            call = {"name": "auth.whoami", "arguments": {}}
            session.receive({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call})
            await session.finish()

        try:
            asyncio.run(scenario())
        finally:
            runtime.close()
    (answer,) = [a for a in written if a.get("id") == 1]
    assert answer["result"]["content"][0]["text"] == "you sent [REDACTED]", answer
    events = (tmp_path / "events.jsonl").read_text()
    assert "you sent [REDACTED]" in events
    _secrets_absent(json.dumps(written), events, errors.read_text())
