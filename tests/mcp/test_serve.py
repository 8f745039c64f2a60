"""`carlang mcp serve` answering the official SDK client: carlang's checks as MCP tools."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anyio

from tests.conftest import ROOT
from tests.mcp.conftest import needs_sdk

pytestmark = needs_sdk

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
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "carlang", "mcp", "serve"],
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}"},
    )

    async def call(session: Any, name: str, **arguments: Any) -> Any:
        result = await session.call_tool(name, arguments)
        text = result.content[0].text
        return result.isError, (text if result.isError else json.loads(text))

    async def scenario() -> None:
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
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
                    explained["decision"] == "deny"
                    and explained["reasons"][0]["policy"] == "no_latest"
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
                error, message = await call(
                    session, "policy_check", tool="deploy", program="tool ("
                )
                assert error and "the program has errors" in message
                error, message = await call(session, "check")
                assert error and "give the program: `program`" in message
                error, message = await call(session, "check", program="tool t()", path="x")
                assert error and "not both" in message

    anyio.run(scenario)
