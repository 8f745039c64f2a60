"""`carlang mcp proxy --transport http --tenant-token TENANT=VAR`: a gateway for several tenants,
each with a bearer token of its own. The token a request carries says whose it is: a client
session belongs to the tenant whose token opened it (another tenant's request for it is
answered as for a session that does not exist: it can neither call in it nor end it), its
calls run with the tenant in their scope (`scope.tenant` in a policy, `run_started` in the
event log), and no token is ever written down. With the official SDK's client against a real
FastMCP server (tests/mcp/notes_server.py).

Before, one token (`--token-env`) was every client's: whoever held it and a session id could
call in, or end, anyone's session, and a policy could not tell clients apart."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.mcp.conftest import INITIALIZED, initialize, needs_sdk
from tests.mcp.test_proxy_clients import NOTES, _proxy, _text

pytestmark = [needs_sdk, pytest.mark.slow]

ACME = "acme-token-7f3a9c"
GLOBEX = "globex-token-2b8e41"


@pytest.fixture
def program(tmp_path: Path) -> Path:
    path = tmp_path / "notes.car"
    path.write_text(
        f"""
mcp_server notes {{
  command {json.dumps(sys.executable)}
  args [{json.dumps(str(NOTES))}, {json.dumps(str(tmp_path / "ticks.txt"))}]
}}
tool notes.remember(text: string) -> string {{ description "remember a note" }}
tool notes.recall() -> string {{ description "this session's note" read_only }}
capability agent {{ tools allow notes.* }}
policy guests_read_only: deny notes.remember when has(scope.tenant) && scope.tenant == "globex"
  message "tenant globex may only read"
"""
    )
    return path


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The proxy's options naming each tenant's token (in the environment, never in a
    command line)."""
    monkeypatch.setenv("ACME_TOKEN", ACME)
    monkeypatch.setenv("GLOBEX_TOKEN", GLOBEX)
    yield ["--tenant-token", "acme=ACME_TOKEN", "--tenant-token", "globex=GLOBEX_TOKEN"]


def _headers(token: str | None, session: str | None = None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if session is not None:
        headers["Mcp-Session-Id"] = session
    return headers


def _post(url: str, message: Any, token: str | None, session: str | None = None) -> Any:
    return httpx.post(url, content=json.dumps(message), headers=_headers(token, session))


def _opened(url: str, token: str) -> str:
    """A session opened (initialize, initialized) with `token`: its id."""
    opened = _post(url, initialize(1), token)
    assert opened.status_code == 200, opened.text
    session: str = opened.headers["mcp-session-id"]
    assert _post(url, INITIALIZED, token, session).status_code == 202
    return session


@contextlib.asynccontextmanager
async def _sdk_session(url: str, token: str) -> AsyncIterator[Any]:
    """A session of the official SDK's client with the proxy at `url`, as a tenant (its
    bearer token), initialized."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    client = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"})
    async with (
        client,
        streamable_http_client(url, http_client=client) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def _call(name: str, request_id: int, **arguments: Any) -> dict[str, Any]:
    params = {"name": name, "arguments": arguments}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def _result(response: Any) -> dict[str, Any]:
    """The JSON-RPC result of a POST answered as JSON or as one server-sent event."""
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:"))
    answer: dict[str, Any] = json.loads(text)
    return answer["result"]


def test_a_request_without_a_tenants_token_is_refused(program: Path, tokens: list[str]) -> None:
    with _proxy(program, *tokens) as (_process, url):
        for token in (None, "nobody", ACME + "x", ACME[:-1]):
            refused = _post(url, initialize(1), token)
            assert refused.status_code == 401, (token, refused.text)
            assert "Bearer" in refused.headers["www-authenticate"]
        basic = httpx.post(
            url, content=json.dumps(initialize(1)), headers=_headers(None), auth=("acme", ACME)
        )
        assert basic.status_code == 401


def test_a_tenants_session_is_not_another_tenants(program: Path, tokens: list[str]) -> None:
    with _proxy(program, *tokens) as (process, url):
        mine = _opened(url, ACME)
        kept = _result(_post(url, _call("notes.remember", 2, text="acme-private"), ACME, mine))
        assert kept["isError"] is False, kept
        # globex has the session's id, not its token: as if the session did not exist
        for message in (_call("notes.recall", 3), {"jsonrpc": "2.0", "id": 4, "method": "ping"}):
            stolen = _post(url, message, GLOBEX, mine)
            assert stolen.status_code == 404, stolen.text
            assert "acme-private" not in stolen.text
        ended = httpx.delete(url, headers=_headers(GLOBEX, mine))
        assert ended.status_code == 404
        listening = httpx.get(
            url, headers={**_headers(GLOBEX, mine), "Accept": "text/event-stream"}
        )
        assert listening.status_code == 404  # (its stream: elicitations, notifications)
        # a request refused before the SDK sees it (another Host) is not said to be one
        elsewhere = httpx.post(
            url,
            content=json.dumps({"jsonrpc": "2.0", "id": 9, "method": "ping"}),
            headers={**_headers(GLOBEX, mine), "Host": "evil.example"},
        )
        assert elsewhere.status_code == 421
        # acme's session goes on, its note where it was
        recalled = _result(_post(url, _call("notes.recall", 5), ACME, mine))
        assert recalled["content"][0]["text"] == "acme-private", recalled
        # globex's own session is its own
        theirs = _opened(url, GLOBEX)
        recalled = _result(_post(url, _call("notes.recall", 6), GLOBEX, theirs))
        assert recalled["content"][0]["text"] == "<nothing>", recalled
    said = process.said  # type: ignore[attr-defined]
    assert ACME not in said and GLOBEX not in said and "Traceback" not in said, said
    # the operator's log names both tenants, once per refused request (the SDK's own line
    # named neither); the session's id is shortened, as everywhere in the log
    refused = (
        f"carlang mcp proxy: a request of tenant 'globex' for a session of tenant 'acme'"
        f" ({mine[:8]}...) was refused, answered as for a session that does not exist"
    )
    assert said.splitlines().count(refused) == 4, said
    assert "credential does not match" not in said and mine not in said, said


def test_one_tenant_cannot_take_every_place(program: Path, tokens: list[str]) -> None:
    limits = ("--max-sessions", "2", "--max-sessions-per-tenant", "1")
    with _proxy(program, *tokens, *limits) as (process, url):
        first = _opened(url, ACME)
        kept = _result(_post(url, _call("notes.remember", 2, text="a"), ACME, first))
        assert kept["isError"] is False, kept
        # acme's second session: refused while its first has the tenant's one place
        second = _opened(url, ACME)
        busy = _post(url, _call("notes.recall", 3), ACME, second)
        error = json.loads(next(line[5:] for line in busy.text.splitlines() if line[:5] == "data:"))
        assert error["error"]["code"] == -32000, error
        assert "--max-sessions-per-tenant 1" in error["error"]["message"], error
        # the other place is globex's to take
        theirs = _opened(url, GLOBEX)
        recalled = _result(_post(url, _call("notes.recall", 4), GLOBEX, theirs))
        assert recalled["content"][0]["text"] == "<nothing>", recalled
        # acme's first ends: its second now has a place
        assert httpx.delete(url, headers=_headers(ACME, first)).status_code == 200
        recalled = _result(_post(url, _call("notes.recall", 5), ACME, second))
        assert recalled["content"][0]["text"] == "<nothing>", recalled
    said = process.said  # type: ignore[attr-defined]
    assert said.count("tenant 'acme' has 1 client session(s)") == 1, said
    assert "Traceback" not in said, said


def test_policies_see_the_tenant_and_the_log_names_it(
    program: Path, tokens: list[str], tmp_path: Path
) -> None:
    events = tmp_path / "run.db"
    with _proxy(program, *tokens, "--events", str(events)) as (process, url):

        async def scenario() -> None:
            for token, allowed in ((ACME, True), (GLOBEX, False)):
                async with _sdk_session(url, token) as session:
                    result = await session.call_tool("notes.remember", {"text": "hello"})
                    if allowed:
                        assert _text(result) == "ok"
                    else:
                        said = "\n".join(b.text for b in result.content if b.type == "text")
                        assert result.isError and "tenant globex may only read" in said, said
                    assert _text(await session.call_tool("notes.recall", {})) == (
                        "hello" if allowed else "<nothing>"
                    )
                    # a token sent as an argument (its own, another tenant's) is not logged
                    leak = f"tokens {ACME} {GLOBEX}"
                    if allowed:  # (recalled: the server gives the tokens back, unseen)
                        await session.call_tool("notes.remember", {"text": leak})
                        recalled = _text(await session.call_tool("notes.recall", {}))
                        assert recalled == "tokens [REDACTED] [REDACTED]", recalled
                    else:
                        await session.call_tool("notes.remember", {"text": leak})

        anyio.run(scenario)
    said = process.said  # type: ignore[attr-defined]
    assert "Traceback" not in said, said
    with closing(sqlite3.connect(events)) as db, db:
        rows = db.execute("SELECT data FROM events WHERE kind = 'run_started'").fetchall()
        text = "\n".join(str(row) for row in db.execute("SELECT * FROM events").fetchall())
    tenants = sorted(json.loads(row[0])["scope"].get("tenant") for row in rows)
    assert tenants == ["acme"] * 4 + ["globex"] * 3, rows
    assert ACME not in text and GLOBEX not in text


def test_tenant_tokens_are_checked_before_the_proxy_starts(
    program: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers import run_carlang

    base = ["mcp", "proxy", str(program), "--capability", "agent", "--transport", "http"]
    for name, value in {"ACME_TOKEN": ACME, "SAME": ACME, "EMPTY": ""}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    cases = {
        ("--tenant-token", "acme"): "--tenant-token: give TENANT=VAR",
        # the token itself, as a shell puts it for `$ACME_TOKEN`: refused, and never shown
        ("--tenant-token", f"acme={ACME}"): "--tenant-token acme=...: give the name of the",
        ("--tenant-token", f"acme=Bearer {ACME}"): "is not a variable's name, and is not shown",
        ("--token-env", ACME): "--token-env: give the name of the environment variable",
        ("--tenant-token", ACME): "--tenant-token: give TENANT=VAR",
        ("--tenant-token", "acme=NOT_SET_ANYWHERE"): "NOT_SET_ANYWHERE is not set",
        ("--tenant-token", "acme=EMPTY"): "EMPTY is empty",
        ("--tenant-token", "=ACME_TOKEN"): "give TENANT=VAR",
        ("--tenant-token", "acme=ACME_TOKEN", "--tenant-token", "globex=SAME"): "same token",
        ("--tenant-token", "acme=ACME_TOKEN", "--tenant-token", "acme=SAME"): "acme twice",
        ("--tenant-token", "acme=ACME_TOKEN", "--token-env", "ACME_TOKEN"): "not both",
        ("--tenant-token", "acme=ACME_TOKEN", "--transport", "stdio"): "the one client is",
        ("--tenant-token", "acme=ACME_TOKEN", "--insecure"): "drop --insecure",
        ("--max-sessions-per-tenant", "1"): "needs tenants",
        (
            "--tenant-token",
            "acme=ACME_TOKEN",
            "--max-sessions-per-tenant",
            "3",
            "--max-sessions",
            "2",
        ): "at most 2, or raise --max-sessions",
    }
    for options, expected in cases.items():
        answer = run_carlang(*base, *options, cwd=tmp_path, timeout=60)
        assert answer.returncode == 2, (options, answer.stdout, answer.stderr)
        assert expected in answer.stderr, (options, answer.stderr)
        assert ACME not in answer.stderr and "Traceback" not in answer.stderr


def test_each_tenant_sees_and_calls_the_tools_of_its_own_capability(
    program: Path, tokens: list[str]
) -> None:
    """--tenant-capability: one program serves tenants with different tools. Before, one
    --capability was every tenant's (a gateway trial's finding); policies on scope.tenant
    could refuse calls, but every tenant saw every tool."""
    with program.open("a") as text:
        text.write("capability reader { tools allow notes.recall }\n")
    own = ["--capability", "agent", "--tenant-capability", "globex=reader"]
    with _proxy(program, *tokens, *own) as (process, url):

        async def scenario() -> None:
            for token, seen in (
                (ACME, {"notes.remember", "notes.recall"}),
                (GLOBEX, {"notes.recall"}),
            ):
                async with _sdk_session(url, token) as session:
                    listed = await session.list_tools()
                    assert {tool.name for tool in listed.tools} == seen
                    result = await session.call_tool("notes.remember", {"text": "x"})
                    assert result.isError == (token == GLOBEX), result
                    if token == GLOBEX:
                        said = "\n".join(b.text for b in result.content if b.type == "text")
                        assert "unknown tool 'notes.remember'" in said, said

        anyio.run(scenario)
    said = process.said  # type: ignore[attr-defined]
    assert "Traceback" not in said, said
    # the servers' lines say whose session wrote them
    assert re.search(r"^\[notes session [0-9a-f]{12} tenant acme\] ", said, re.M), said
