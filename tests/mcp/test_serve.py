"""`carlang mcp serve` answering the official SDK client: carlang's checks as MCP tools."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from tests.conftest import ROOT
from tests.mcp.conftest import needs_sdk

pytestmark = needs_sdk


def serve_params(*args: str, cwd: Path | None = None) -> Any:
    """`carlang mcp serve ARGS` (in `cwd`) for the SDK's stdio client."""
    from mcp import StdioServerParameters

    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "carlang", "mcp", "serve", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}"},
    )


@asynccontextmanager
async def serving(*args: str, cwd: Path | None = None) -> AsyncIterator[Any]:
    """An initialized SDK client session with a real `carlang mcp serve ARGS` process."""
    from mcp import ClientSession
    from mcp.client.stdio import stdio_client

    async with stdio_client(serve_params(*args, cwd=cwd)) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


async def call(session: Any, name: str, **arguments: Any) -> tuple[bool, Any]:
    """(is it an error, the error's text or the answer's JSON)."""
    result = await session.call_tool(name, arguments)
    text = result.content[0].text
    return result.isError, (text if result.isError else json.loads(text))


PROGRAM = """
tool deploy(env: "staging" | "prod", version: string)
state { deployed: bool = false }
policy prod_needs_person: require_approval deploy when params.env == "prod"
  message "prod needs a person"
policy no_latest: deny deploy when params.version == "latest"
  message "pin a version"
"""

PROPOSAL = {
    "id": "p",
    "actions": [
        {
            "id": "a",
            "type": "tool_call",
            "tool": "deploy",
            "parameters": {"env": "staging", "version": "1.2"},
            "expected_effects": {"deployed": True},
        },
    ],
}


def test_serve_answers_the_sdk_client() -> None:
    async def scenario() -> None:
        async with serving() as session:
            names = sorted(t.name for t in (await session.list_tools()).tools)
            assert names == sorted(
                [
                    "check",
                    "verify",
                    "simulate",
                    "optimize",
                    "equivalent",
                    "explain",
                    "rank",
                    "policy_check",
                ]
            )
            error, checked = await call(session, "check", program="tool t(x: strng)\n")
            assert not error and checked["ok"] is False
            assert checked["diagnostics"][0]["code"] == "CL0204"  # errors come first
            error, verdict = await call(session, "verify", proposal=PROPOSAL, program=PROGRAM)
            assert not error and verdict["valid"] is True
            bad = {**PROPOSAL, "actions": [{**PROPOSAL["actions"][0], "tool": "deploi"}]}
            error, verdict = await call(session, "verify", proposal=bad, program=PROGRAM)
            assert verdict["valid"] is False
            error, state = await call(session, "simulate", proposal=PROPOSAL)
            assert state == {"state": {"deployed": True}}
            error, same = await call(session, "equivalent", first=PROPOSAL, second=PROPOSAL)
            assert same == {"equivalent": True}
            error, optimized = await call(session, "optimize", proposal=PROPOSAL)
            assert optimized["id"] == "p"
            error, decision = await call(
                session,
                "policy_check",
                tool="deploy",
                params={"env": "prod", "version": "2"},
                program=PROGRAM,
            )
            assert decision == {
                "decision": "require_approval",
                "policies": [{"policy": "prod_needs_person", "reason": "prod needs a person"}],
            }
            error, explained = await call(
                session,
                "explain",
                tool="deploy",
                params={"env": "staging", "version": "latest"},
                program=PROGRAM,
            )
            assert (
                explained["decision"] == "deny" and explained["reasons"][0]["policy"] == "no_latest"
            )
            second = {
                **PROPOSAL,
                "id": "q",
                "actions": [*PROPOSAL["actions"], {**PROPOSAL["actions"][0], "id": "b"}],
            }
            error, ranked = await call(
                session, "rank", candidates=[second, PROPOSAL], program=PROGRAM
            )
            assert not error and [r["proposal_id"] for r in ranked["ranking"]][0] == "p"
            error, message = await call(session, "policy_check", tool="deploy", program="tool (")
            assert error and "the program has errors" in message
            error, message = await call(session, "check")
            assert error and "give the program: `program`" in message
            error, message = await call(session, "check", program="tool t()", path="x")
            assert error and "not both" in message

    anyio.run(scenario)
