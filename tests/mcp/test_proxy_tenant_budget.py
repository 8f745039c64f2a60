"""`carlang mcp proxy --budget B --budget-per tenant`: every client session of one tenant spends
one budget (a tenant that opens a new session does not start afresh), each tenant its own; the
event log marks the proposals so, and replay counts them the same way. In process, the calls
going to a server that answers nothing (each call fails, and spends, as one that ran)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from carlang_runtime.engine import EventLog, JsonlSink, Runtime
from carlang_runtime.errors import CarlangRuntimeError
from carlang_runtime.mcp.proxy import PolicyProxy
from typer.testing import CliRunner

from carlang.cli import app
from carlang.compiler import compile_text

PROGRAM = """
mcp_server there {
  url "http://127.0.0.1:9/mcp"
}
tool there.add(a: int) -> int { description "add" }
capability agent { tools allow there.add }
budget two { max_tool_calls 2 }
"""

SPENT = "budget 'two' is spent: 2 tool calls per tenant"


def _calls(log: Path | None, per: str, calls: list[tuple[str, str]]) -> list[str]:
    """Each call's error text, calling `there.add` from the client sessions and tenants named
    (`session@tenant`; tenant `-` for none) through a proxy whose budget is spent `per`."""
    compiled = compile_text(PROGRAM)
    assert compiled.program is not None
    events = EventLog([JsonlSink(log)]) if log is not None else None
    runtime = Runtime.from_program(compiled.program, events=events)
    proxy = PolicyProxy(compiled.program, runtime, capability="agent", budget="two", budget_per=per)
    sessions: dict[str, Any] = {}

    async def scenario() -> list[str]:
        said = []
        for session, tenant in calls:
            mcp_session = sessions.setdefault(session, object())
            result = await proxy.call_tool(
                mcp_session, "there.add", {"a": 1}, None if tenant == "-" else tenant
            )
            assert result["isError"], result  # (the server answers nothing)
            said.append(result["content"][0]["text"])
        return said

    try:
        return asyncio.run(scenario())
    finally:
        runtime.close()


def test_every_session_of_a_tenant_spends_its_one_budget() -> None:
    said = _calls(
        None,
        "tenant",
        [("a1", "acme"), ("a2", "acme"), ("a3", "acme"), ("g1", "globex"), ("n1", "-")],
    )
    assert [SPENT in text for text in said] == [False, False, True, False, False], said


def test_per_session_a_new_session_has_a_budget_of_its_own() -> None:
    said = _calls(None, "session", [("a1", "acme"), ("a1", "acme"), ("a1", "acme"), ("a2", "acme")])
    spent = "budget 'two' is spent: 2 tool calls per session"
    assert [spent in text for text in said] == [False, False, True, False], said


def test_a_budget_spent_per_something_else_is_refused() -> None:
    compiled = compile_text(PROGRAM)
    assert compiled.program is not None
    runtime = Runtime.from_program(compiled.program)
    with pytest.raises(CarlangRuntimeError, match="per session or per tenant, not per 'call'"):
        PolicyProxy(compiled.program, runtime, budget="two", budget_per="call")
    runtime.close()


def test_replay_counts_a_tenants_budget_over_its_sessions(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    _calls(log, "tenant", [("a1", "acme"), ("a2", "acme"), ("g1", "globex")])
    program = tmp_path / "p.car"
    program.write_text(PROGRAM)
    same = CliRunner().invoke(app, ["replay", str(log), "--program", str(program)])
    assert same.exit_code == 0, same.output
    program.write_text(PROGRAM.replace("max_tool_calls 2", "max_tool_calls 1"))
    tighter = CliRunner().invoke(app, ["replay", str(log), "--program", str(program)])
    assert tighter.exit_code == 1, tighter.output
    # acme's second call (another session) is past a budget of one; globex's first is not
    assert "allow -> deny: 1 of 3" in tighter.output, tighter.output
    assert "budget 'two' is spent: 1 tool calls per tenant" in tighter.output


def test_replay_keeps_apart_the_budgets_of_two_proxies_appending_to_one_log(
    tmp_path: Path,
) -> None:
    """A proxy restarted (or two of them) keeps each tenant's budget afresh: replay of the
    log they append to counts each proxy's apart, and decides as they did."""
    log = tmp_path / "run.jsonl"
    for _ in range(2):  # (each proxy: two calls of acme, its budget of two spent)
        said = _calls(log, "tenant", [("a1", "acme"), ("a2", "acme")])
        assert not any(SPENT in text for text in said), said
    program = tmp_path / "p.car"
    program.write_text(PROGRAM)
    same = CliRunner().invoke(app, ["replay", str(log), "--program", str(program)])
    assert same.exit_code == 0, same.output


def test_with_no_tenants_every_client_spends_the_proxys_one_budget() -> None:
    said = _calls(None, "tenant", [("n1", "-"), ("n2", "-"), ("n3", "-")])
    assert "budget 'two' is spent: 2 tool calls per proxy" in said[2], said
    assert not any("spent" in text for text in said[:2]), said


def test_a_tenanted_proxy_refuses_a_call_whose_tenant_it_cannot_tell() -> None:
    compiled = compile_text(PROGRAM)
    assert compiled.program is not None
    runtime = Runtime.from_program(compiled.program)
    proxy = PolicyProxy(compiled.program, runtime, capability="agent")
    proxy.tenanted = True  # (as serve_http marks it, given a token per tenant)
    with pytest.raises(CarlangRuntimeError, match="tenant cannot be told"):
        asyncio.run(proxy.call_tool(object(), "there.add", {"a": 1}, None))
    runtime.close()
