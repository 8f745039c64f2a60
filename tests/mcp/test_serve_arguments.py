"""`carlang mcp serve` reads an object or an array given as JSON text (models often send a
proposal so) with carlang's JSON reader, as it reads a request: text nested past 128
levels, NaN or Infinity, or text that is not JSON is a tool error saying so and where,
where the SDK's decoder overflowed the stack (an internal error, -32603), read NaN (and
answered it back as text that is not JSON) or said only "got a string". (In process: the
SDK's client on its in-memory transport.)"""

from __future__ import annotations

import json

import anyio

from tests.mcp.conftest import needs_sdk
from tests.mcp.test_serve import call
from tests.mcp.test_serve_proposals import in_process

pytestmark = needs_sdk

PROGRAM = "tool t(x: int)\n"
PROPOSAL = {"id": "p", "actions": [{"id": "a", "type": "tool_call", "tool": "t"}]}
TOO_DEEP = "1:204: malformed JSON: nested too deeply (more than 128 levels)"


def _deep(levels: int) -> str:
    """A proposal's JSON text with a parameter nested `levels` deep."""
    value = "[" * levels + "]" * levels
    return '{"id": "p", "actions": [{"type": "tool_call", "tool": "t", "parameters": {"x": ' + (
        value + "}}]}"
    )


def test_json_text_for_an_object_is_read_as_a_request_is() -> None:
    deep = _deep(100_000)  # (Python's json overflows the stack)
    nan = '{"id": "p", "actions": [{"type": "tool_call", "expected_effects": {"k": NaN}}]}'
    cases = [
        ("verify", {"proposal": deep}, "argument `proposal`: expected an object, got JSON text"),
        ("simulate", {"proposal": _deep(900)}, "argument `proposal`: expected an object"),
        ("policy_check", {"tool": "t", "params": '{"x": ' + "[" * 5000}, "argument `params`: "),
        ("rank", {"candidates": f"[{_deep(900)}]"}, "argument `candidates`: expected an array"),
    ]

    async def scenario() -> None:
        async with in_process() as session:
            for tool, arguments, start in cases:
                arguments = (
                    {"program": PROGRAM, **arguments} if tool == "policy_check" else arguments
                )
                error, message = await call(session, tool, **arguments)
                assert error and message.startswith(start), (tool, message)
                assert "nested too deeply (more than 128 levels)" in message, (tool, message)
            error, message = await call(session, "verify", proposal=deep)
            assert message == (
                "argument `proposal`: expected an object, got JSON text that cannot be read"
                f" ({TOO_DEEP})"
            )
            error, message = await call(session, "simulate", proposal=nan)
            assert error and message == (
                "argument `proposal`: expected an object, got JSON text that cannot be read"
                " (1:73: malformed JSON: the constant NaN is not JSON)"
            )
            error, message = await call(
                session,
                "equivalent",
                first=PROPOSAL,
                second=PROPOSAL,
                test_states='[{"a": Infinity}]',
            )
            assert error and message == (
                "argument `test_states`: expected an array, got JSON text that cannot be read"
                " (1:8: malformed JSON: the constant Infinity is not JSON)"
            )
            error, message = await call(session, "verify", proposal='{"id": "p", actions: []}')
            assert error and message == (
                "argument `proposal`: expected an object, got JSON text that cannot be read"
                " (1:13: malformed JSON: expecting property name enclosed in double quotes)"
            )
            # JSON text that can be read is the object it holds; other text is not an object
            error, verdict = await call(session, "verify", proposal=json.dumps(PROPOSAL))
            assert not error and verdict["valid"]
            error, simulated = await call(
                session, "simulate", proposal=json.dumps(PROPOSAL), state='{"k": 1}'
            )
            assert not error and simulated == {"state": {"k": 1}}
            error, message = await call(session, "optimize", proposal="the plan")
            assert error and message == "argument `proposal`: expected an object, got a string"

    anyio.run(scenario)


GOVERNED = "tool t()\ncapability agent { tools allow t }\nbudget small { max_actions 3 }\n"


def test_a_capability_or_budget_is_looked_up_in_a_program_and_an_unknown_one_said() -> None:
    """`verify` with a `capability` or `budget` but no program is an error (it was ignored:
    a verdict that did not check what was asked); an unknown name lists the declared ones
    when none is close, and says so when the proposal, not an argument, named it."""
    proposal = {"id": "p", "actions": [{"id": "a", "type": "tool_call", "tool": "t"}]}

    async def scenario() -> None:
        async with in_process() as session:
            for argument in ("capability", "budget"):
                error, message = await call(
                    session, "verify", proposal=proposal, **{argument: "agent"}
                )
                assert error and message == (
                    f"argument `{argument}` names a program's {argument}: give the program"
                    " too (`program`, its .car source text, or `path`, a file)"
                ), message
            cases = [
                ("verify", {"capability": "zzz"}, "no capability 'zzz' (capabilities: agent)"),
                ("verify", {"budget": "zzz"}, "no budget 'zzz' (budgets: small)"),
                (
                    "verify",
                    {"capability": "agnet"},
                    "no capability 'agnet' (did you mean 'agent'?)",
                ),
                (
                    "policy_check",
                    {"capability": "zzz"},
                    "no capability 'zzz' (capabilities: agent)",
                ),
            ]
            for tool, arguments, expected in cases:
                given = {"proposal": proposal} if tool == "verify" else {"tool": "t"}
                error, message = await call(session, tool, program=GOVERNED, **given, **arguments)
                assert error and message == expected, (tool, message)
            error, message = await call(
                session, "explain", tool="t", program="tool t()", capability="agent"
            )
            assert error and message == "no capability 'agent' (capabilities: none)"
            error, message = await call(
                session, "verify", proposal={**proposal, "budget": "large"}, program=GOVERNED
            )
            assert error and message == (
                "argument `proposal.budget`: no budget 'large' (budgets: small)"
            )

    anyio.run(scenario)
