"""A server's own secrets (its `env` values, its credential options) never reach the proxy's
client, the event log or the proxy's standard error, whatever the server does with them: an
error quoting them had them `[REDACTED]`, but a successful result showed them in clear
(`ok u token=tok_SUPERSECRET_123`), and so did what the server wrote on its standard error.
Against a small scripted server (no SDK: it starts in milliseconds)."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from carlang_runtime.engine import EventLog, JsonlSink, Runtime
from carlang_runtime.mcp.proxy import PolicyProxy, StdioSession

from carlang.compiler import compile_text
from tests.mcp.conftest import initialize

SECRET = "tok_SUPERSECRET_123"

#: A stdio MCP server with one tool, `login`, answering with its own token (in its text and
#: in its structured content, as a value and as a key) or, given `fail`, failing quoting it;
#: it says the token on its standard error as it starts and at each call.
SERVER = r"""
import json, os, sys
token = os.environ["BANK_TOKEN"]
sys.stderr.write("boot BANK_TOKEN=" + token + "\n"); sys.stderr.flush()
for line in sys.stdin:
    message = json.loads(line)
    if "id" not in message:
        continue
    method, params = message["method"], message.get("params") or {}
    if method == "initialize":
        result = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                  "serverInfo": {"name": "bank", "version": "1"}}
    elif method == "tools/list":
        result = {"tools": [{"name": "login", "inputSchema": {"type": "object"}}]}
    else:
        sys.stderr.write("login with " + token + "\n"); sys.stderr.flush()
        text = "ok u token=" + token
        if params["arguments"].get("fail"):
            result = {"content": [{"type": "text", "text": "failed: " + text}], "isError": True}
        else:
            result = {"content": [{"type": "text", "text": text}],
                      "structuredContent": {"token": token, token: [{"deep": text}]}}
    print(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}), flush=True)
"""


def _program(tmp_path: Path, token: str = SECRET, server: str = SERVER) -> Any:
    script = tmp_path / "bank.py"
    script.write_text(server)
    text = f"""
mcp_server bank {{
  command {json.dumps(sys.executable)}
  args [{json.dumps(str(script))}]
  env {{ BANK_TOKEN: {json.dumps(token)} }}
}}
tool bank.login() {{
  schema {{ type: "object" }}
}}
"""
    result = compile_text(text, root=tmp_path)
    errors = [d for d in result.diagnostics.items if d.severity == "error"]
    assert not errors and result.program is not None, errors
    return result.program


def _call(
    program: Any, tmp_path: Path, arguments: dict[str, Any], host_secrets: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The result of one `bank.login` call through the proxy (its log in events.jsonl, what
    the server wrote on its standard error in stderr.txt); `host_secrets`: what the host keeps
    out (the proxy's tokens, as `serve_http` gives them)."""
    log = EventLog([JsonlSink(tmp_path / "events.jsonl")])  # (a file: outputs are kept)
    runtime = Runtime.from_program(program, events=log)
    runtime.keep_out(host_secrets)
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as stderr:
        proxy = PolicyProxy(program, runtime, stderr=stderr)
        written: list[dict[str, Any]] = []
        session = StdioSession(proxy, lambda data: written.append(json.loads(data)))

        async def scenario() -> None:
            session.receive(initialize(0))
            call = {"name": "bank.login", "arguments": arguments}
            session.receive({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call})
            await session.finish()

        try:
            asyncio.run(scenario())
        finally:
            runtime.close()
    (answer,) = [a for a in written if a["id"] == 1]
    result: dict[str, Any] = answer["result"]
    return {**result, "written": written}


@pytest.mark.parametrize("given", ["declared", "from the environment"])
@pytest.mark.parametrize("fail", [False, True], ids=["a result", "an error"])
def test_a_servers_secret_reaches_neither_the_client_nor_the_log_nor_stderr(
    tmp_path: Path, fail: bool, given: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (`${NAME}`: the program holds the variable's name, the server gets its value)
    monkeypatch.setenv("BANK_SOURCE", SECRET)
    program = _program(tmp_path, SECRET if given == "declared" else "${BANK_SOURCE}")
    result = _call(program, tmp_path, {"fail": True} if fail else {})
    written = result.pop("written")
    assert result["isError"] is fail
    said = result["content"][0]["text"]
    assert said.endswith("ok u token=[REDACTED]"), said
    if not fail:
        assert result["structuredContent"] == {
            "token": "[REDACTED]",
            "[REDACTED]": [{"deep": "ok u token=[REDACTED]"}],
        }
    events = (tmp_path / "events.jsonl").read_text()
    assert "token=[REDACTED]" in events
    server_said = (tmp_path / "stderr.txt").read_text()
    assert "boot BANK_TOKEN=[REDACTED]" in server_said and "login with [REDACTED]" in server_said
    for where in (json.dumps(written), events, server_said):
        assert SECRET not in where


#: A server whose one tool answers with the variables of its environment named in its call.
ENVIRONMENT_SERVER = SERVER.replace(
    'text = "ok u token=" + token',
    'text = json.dumps({n: os.environ.get(n) for n in params["arguments"]["names"]})',
)


def test_a_server_gets_no_variable_of_carlangs_its_program_does_not_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy's own bearer token (`--token-env`) and the host's other credentials never
    reach a server: it gets PATH, HOME, the locale and the like, and what its `env` names."""
    monkeypatch.setenv("PROXY_TOKEN", "tok-proxy-SECRET-5f3a")
    monkeypatch.setenv("OTHER_API_KEY", "sk-host-SECRET-77")
    program = _program(tmp_path, "${BANK_SOURCE}", ENVIRONMENT_SERVER)
    monkeypatch.setenv("BANK_SOURCE", SECRET)
    names = ["PROXY_TOKEN", "OTHER_API_KEY", "PATH", "BANK_TOKEN"]
    result = _call(program, tmp_path, {"names": names})
    assert result["isError"] is False, result
    seen = json.loads(result["content"][0]["text"])
    assert seen["PROXY_TOKEN"] is None and seen["OTHER_API_KEY"] is None
    assert seen["PATH"] and seen["BANK_TOKEN"] == "[REDACTED]"


def test_a_variable_the_environment_lacks_fails_the_call_saying_which(tmp_path: Path) -> None:
    program = _program(tmp_path, "${CARLANG_TEST_NEVER_SET}")
    result = _call(program, tmp_path, {})
    assert result["isError"] is True
    said = result["content"][0]["text"]
    assert "its env names ${CARLANG_TEST_NEVER_SET}, which carlang's environment does not" in said


#: A server that writes each call's arguments on its standard error, as servers log requests.
LOGGING_SERVER = SERVER.replace(
    'sys.stderr.write("login with " + token + "\\n")',
    'sys.stderr.write("login with " + json.dumps(params["arguments"]) + "\\n")',
)


def test_a_host_token_a_client_sends_is_kept_out_of_the_servers_stderr(tmp_path: Path) -> None:
    """A tenant who sends another's token (or the proxy's) as an argument: the server logs its
    arguments on its standard error, which the proxy passes on to its own (an operator's
    log). The event log and the result had it redacted; that stream had it in clear."""
    assert LOGGING_SERVER != SERVER
    host = "tenant-globex-token-9c1e"
    program = _program(tmp_path, SECRET, LOGGING_SERVER)
    result = _call(program, tmp_path, {"note": f"try {host}"}, host_secrets=(host,))
    assert result["isError"] is False, result
    server_said = (tmp_path / "stderr.txt").read_text()
    assert 'login with {"note": "try [REDACTED]"}' in server_said, server_said
    for where in (server_said, (tmp_path / "events.jsonl").read_text()):
        assert host not in where and SECRET not in where
    # each line says which server, in which carlang session, wrote it (the gateway trial
    # found the servers' lines, of every session, on one stream and unlabelled)
    assert re.search(r"^\[bank session [0-9a-f]{12}\] login with ", server_said, re.M), server_said


#: `LOGGING_SERVER` with a `pin` parameter in its tool's schema (not marked secret).
PIN_SERVER = LOGGING_SERVER.replace(
    '"inputSchema": {"type": "object"}',
    '"inputSchema": {"type": "object", "properties": {"pin": {"type": "string"}}}',
)


def _pin_program(tmp_path: Path, server: str, mark: str = "", more: str = "") -> Any:
    """A program of `server` (bank.py) with its tool `login` taking a string `pin` (`mark`:
    more of its schema, `, writeOnly: true`), and `more` declarations."""
    (tmp_path / "bank.py").write_text(server)
    text = f"""
mcp_server bank {{
  command {json.dumps(sys.executable)}
  args [{json.dumps(str(tmp_path / "bank.py"))}]
  env {{ BANK_TOKEN: {json.dumps(SECRET)} }}
}}
tool bank.login() {{
  schema {{ type: "object", properties: {{ pin: {{ type: "string"{mark} }} }} }}
}}
{more}
"""
    compiled = compile_text(text, root=tmp_path)
    assert compiled.program is not None, compiled.diagnostics.items
    return compiled.program


@pytest.mark.parametrize("marked_by", ["redact", "the program's schema"])
def test_a_secret_argument_the_server_logs_is_kept_out_of_its_stderr(
    tmp_path: Path, marked_by: str
) -> None:
    """A trial: `redact params.pin` kept a call's secret out of the result and the event log,
    but the server logged its arguments on its standard error, which the proxy passed on in
    clear: `login with {"pin": "pin-4417-9981"}`. And a parameter the program marks secret
    (`writeOnly`), where the server does not, failed every call as a changed schema."""
    assert PIN_SERVER != LOGGING_SERVER
    pin = "pin-4417-9981"
    mark = ", writeOnly: true" if marked_by == "the program's schema" else ""
    program = _pin_program(
        tmp_path, PIN_SERVER, mark, "redact params.pin" if marked_by == "redact" else ""
    )
    result = _call(program, tmp_path, {"pin": pin})
    assert result["isError"] is False, result
    server_said = (tmp_path / "stderr.txt").read_text()
    assert 'login with {"pin": "[REDACTED]"}' in server_said, server_said
    assert pin not in server_said and pin not in (tmp_path / "events.jsonl").read_text()


def test_a_parameter_the_server_marks_secret_and_the_program_does_not_fails_the_call(
    tmp_path: Path,
) -> None:
    """The other way round: the server hides `pin` (`writeOnly`) and the program, checked
    against an older list, does not; its value would be written down, so the call fails as a
    changed tool (fail closed) and the server never sees it."""
    server = PIN_SERVER.replace(
        '{"pin": {"type": "string"}}', '{"pin": {"type": "string", "writeOnly": True}}'
    )
    result = _call(_pin_program(tmp_path, server), tmp_path, {"pin": "pin-4417-9981"})
    assert result["isError"] is True and "changed the schema of tool 'login'" in str(result)
    assert "login with" not in (tmp_path / "stderr.txt").read_text()


@pytest.fixture
def sdk_logging() -> Iterator[None]:
    """The SDK's and uvicorn's loggers restored after a test that installs the proxy's
    filters and handler on them (the proxy does so once per process)."""
    import logging

    names = [
        "mcp",
        "uvicorn.error",
        *(f"mcp.server.{m}" for m in ("streamable_http", "streamable_http_manager", "sse")),
    ]
    kept = {
        name: (
            list(logging.getLogger(name).filters),
            list(logging.getLogger(name).handlers),
            logging.getLogger(name).propagate,
        )
        for name in names
    }
    yield
    for name, (filters, handlers, propagate) in kept.items():
        logger = logging.getLogger(name)
        logger.filters[:], logger.handlers[:], logger.propagate = filters, handlers, propagate


def test_the_sdks_log_lines_hold_no_whole_session_id(
    sdk_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The MCP SDK logs session ids whole (`Session <id> crashed`, with a traceback), and over
    HTTP a session id is what a client sends to be that session: the proxy's log (the
    operator's) shortens them, whichever way the SDK writes them, in tracebacks too. Its
    lines have one form, named as the SDK's (they were bare, then `WARNING:mcp...:`)."""
    import logging
    import uuid

    from carlang_runtime.mcp.proxy import _filter_sdk_logs

    _filter_sdk_logs()
    _filter_sdk_logs()  # (once per process: filters and handlers are not stacked)
    manager = logging.getLogger("mcp.server.streamable_http_manager")
    assert len(manager.filters) == 3 and len(logging.getLogger("mcp").handlers) == 1
    hex_id, dashed, glued = uuid.uuid4().hex, str(uuid.uuid4()), uuid.uuid4().hex
    manager.setLevel(logging.INFO)
    manager.warning("Session %s crashed", hex_id)
    manager.warning(f"Created new transport with session ID: {dashed}")
    manager.warning(f"session_{glued}x ended")
    try:
        raise RuntimeError(f"no session {hex_id}")
    except RuntimeError:
        manager.exception("Session crashed")
    said = capsys.readouterr().err
    assert said.splitlines()[:3] == [
        f"carlang mcp proxy: MCP SDK: Session {hex_id[:8]}... crashed",
        f"carlang mcp proxy: MCP SDK: Created new transport with session ID: {dashed[:8]}...",
        f"carlang mcp proxy: MCP SDK: session_{glued[:8]}...x ended",
    ]
    assert hex_id not in said and dashed not in said and glued not in said, said
    assert f"RuntimeError: no session {hex_id[:8]}..." in said


def test_the_sdks_refusal_of_another_tenants_session_is_dropped_only_once_the_proxy_said_it(
    sdk_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The proxy says which tenant asked for which tenant's session; the SDK's line naming
    neither is then dropped, and kept whenever the proxy could not say its own (an SDK that
    keeps no record of who opened a session where the proxy looks)."""
    import contextvars
    import logging

    from carlang_runtime.mcp.proxy import _OWNER_REFUSAL_SAID, _filter_sdk_logs

    _filter_sdk_logs()
    manager = logging.getLogger("mcp.server.streamable_http_manager")
    refusal = "Rejecting request for session %s: credential does not match the one that created"

    def refused(said_by_the_proxy: bool) -> None:
        _OWNER_REFUSAL_SAID.set(said_by_the_proxy)
        manager.warning(refusal, "3f2a9c1e" * 4)

    contextvars.copy_context().run(refused, True)
    assert capsys.readouterr().err == ""
    contextvars.copy_context().run(refused, False)
    said = capsys.readouterr().err
    assert said == "carlang mcp proxy: MCP SDK: " + refusal % "3f2a9c1e..." + "\n", said


def test_what_a_forced_stop_cancels_is_not_logged_as_an_error(
    sdk_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second Ctrl-C made uvicorn log ~120 lines of tracebacks of the requests it cancelled,
    and of its lifespan's shutdown as text (a gateway trial); its real errors stay."""
    import asyncio
    import logging

    from carlang_runtime.mcp.proxy import _filter_sdk_logs

    _filter_sdk_logs()
    uvicorn = logging.getLogger("uvicorn.error")
    records: list[logging.LogRecord] = []
    uvicorn.addHandler(type("Keep", (logging.Handler,), {"emit": lambda _, r: records.append(r)})())
    for error in (asyncio.CancelledError(), KeyboardInterrupt(), ValueError("real")):
        try:
            raise error
        except BaseException:
            uvicorn.exception("Exception in ASGI application")
    uvicorn.error("Traceback (most recent call last):\n  ...\nasyncio.exceptions.CancelledError\n")
    uvicorn.error("Traceback (most recent call last):\n  ...\nValueError: real\n")
    assert [r.exc_info[0] if r.exc_info else r.getMessage()[-17:] for r in records] == [
        ValueError,
        "ValueError: real\n",
    ]
    capsys.readouterr()


def test_a_capability_for_a_tenant_no_client_can_be_stops_the_proxy(tmp_path: Path) -> None:
    """A tenant's capability under a mistyped name would leave the real tenant with the
    proxy's own capability (every tool without one): the proxy does not serve (review)."""
    import anyio
    from carlang_runtime.errors import CarlangRuntimeError
    from carlang_runtime.mcp.proxy import http_access, serve_http, serve_stdio

    program = _program(tmp_path)
    runtime = Runtime.from_program(program)
    try:
        proxy = PolicyProxy(program, runtime, tenant_capabilities={"acmee": None})
        access = http_access("127.0.0.1", 1, tenants={"acme": "acme-token-1234567890"})
        with pytest.raises(CarlangRuntimeError, match="tenant\\(s\\) acmee, who have no token"):
            serve_http(proxy, 0, access=access)
        with pytest.raises(CarlangRuntimeError, match="tenants: none"):
            anyio.run(serve_stdio, proxy)
    finally:
        runtime.close()


def test_the_record_of_who_opened_each_session_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The proxy keeps its own record of which tenant opened each session (the SDK's is
    private); the newest sessions only, so that a gateway running for weeks does not grow."""
    from carlang_runtime.mcp.proxy import _SessionOpeners

    monkeypatch.setattr(_SessionOpeners, "LIMIT", 3)
    openers = _SessionOpeners()
    for number in range(5):
        openers.note(f"session-{number}", "acme")
    openers.note("session-4", "globex")  # (a session is its opener's: never taken over)
    assert openers.opener == {"session-2": "acme", "session-3": "acme", "session-4": "acme"}
