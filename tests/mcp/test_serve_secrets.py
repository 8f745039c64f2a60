"""`carlang mcp serve`'s explain, like `carlang explain`, never shows a secret parameter's
value or one at a `redact` path: not in the explanation, not in an error about the call."""

from __future__ import annotations

import json

import anyio
import pytest

from tests.mcp.conftest import needs_sdk
from tests.mcp.test_serve import call, serving

# slow: a server as a subprocess per test (the default run stays under three minutes; CI
# runs these)
pytestmark = [needs_sdk, pytest.mark.slow]

PROGRAM = """
tool refund(order: string, card: string secret, note: string)
tool pay(card: "tok_a" | "tok_b" secret, amount: int)
redact params.note
policy test_card: deny refund when params.card == "tok_test_0000"
policy long_note: deny refund when params.note.size() > 100
"""


def test_explain_never_shows_secrets() -> None:
    params = {"order": "o1", "card": "tok_secret_123", "note": "private note 42"}

    async def scenario() -> None:
        async with serving() as session:
            error, explained = await call(
                session, "explain", tool="refund", params=params, program=PROGRAM
            )
            shown = json.dumps(explained)
            assert not error and explained["decision"] == "allow"
            assert "tok_secret_123" not in shown and "private note" not in shown
            assert "[REDACTED]" in shown and "o1" in shown
            for tool in ("explain", "policy_check"):
                error, message = await call(
                    session,
                    tool,
                    tool="pay",
                    params={"card": "tok_secret_zz", "amount": 1},
                    program=PROGRAM,
                )
                assert error and "tok_secret_zz" not in message, message
                assert "parameter 'card': '[REDACTED]' is not one of" in message

    anyio.run(scenario)


def test_verify_with_a_program_quotes_no_value_at_a_redact_path() -> None:
    """A proposal's value at the program's `redact` path is `[REDACTED]` in verify's
    findings, as a secret parameter's is."""
    program = 'tool note(text: string(pattern: "^[a-z]+$"))\nredact params.text\n'
    proposal = {
        "id": "p",
        "source": "agent",
        "actions": [
            {"id": "a", "type": "tool_call", "tool": "note", "parameters": {"text": "SECRET 99"}}
        ],
    }

    async def scenario() -> None:
        async with serving() as session:
            error, verdict = await call(session, "verify", proposal=proposal, program=program)
            shown = json.dumps(verdict)
            assert not error and verdict["valid"] is False, verdict
            assert "SECRET 99" not in shown and "'[REDACTED]' does not match" in shown

    anyio.run(scenario)
