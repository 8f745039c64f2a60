"""A string a condition compares with a value that cannot have it: an enum parameter, an
action's or a history entry's `type` and `status`, a targeted policy's `action.tool`; and,
where other values are possible (`action.tool` in a policy of every action: an MCP server's
tools too), a name a letter or two from a declared tool's. A trial's typos (`"refnd"`,
`"toolcall"`, `"succeded"`, `["EUR", "GPB"]`) all passed `check`."""

from __future__ import annotations

import pytest

from tests.helpers import compile_diagnostics

TOOLS = """tool refund(order_id: string, amount: float, currency: "EUR" | "GBP")
tool email(to: string)
"""


def _findings(condition: str) -> list[tuple[str, str, str | None]]:
    result = compile_diagnostics(TOOLS + f"policy p: deny {condition}\n")
    # (the condition's findings: not the unused-tool warnings of a program without proposals)
    return [(d.code, d.message, d.help) for d in result.diagnostics.sorted() if d.code != "CL0207"]


@pytest.mark.parametrize(
    ("condition", "message", "help"),
    [
        (
            'when action.tool == "refnd"',
            '"refnd" is none of the values `action.tool` is known to have ("email", "refund")',
            'did you mean "refund"?',
        ),
        ('when action.tool in ["refund", "emial"]', '"emial" is none of', 'did you mean "email"?'),
        (
            'when action.type == "toolcall"',
            '`action.type` is one of "assertion", "state_read", "state_write", "tool_call":'
            ' `== "toolcall"` is always false',
            'did you mean "tool_call"?',
        ),
        (
            'when history.exists(h, h.status != "succeded")',
            '`!= "succeded"` is always true',
            'did you mean "succeeded"?',
        ),
        (
            'refund when params.currency in ["EUR", "GPB"]',
            '`params.currency` is one of "EUR", "GBP": "GPB" never matches it',
            'did you mean "GBP"?',
        ),
        (
            'refund when action.tool == "email"',
            '`action.tool` is one of "refund": `== "email"` is always false',
            "compare with a value it can have",
        ),
        ('when history.exists(h, h.tool == "emal")', '"emal" is none of', 'did you mean "email"?'),
        ('re* when action.tool == "refnd"', '"refnd" is none of', 'did you mean "refund"?'),
    ],
)
def test_a_value_the_compared_field_never_has_is_reported(
    condition: str, message: str, help: str
) -> None:
    [(code, said, hint)] = _findings(condition)
    assert code == "CL0510" and message in said and hint == help


@pytest.mark.parametrize(
    "condition",
    [
        'when action.tool == "refund"',
        'when action.tool in ["refund", "email"]',
        'when action.tool == "github__create_issue"',  # (an MCP server's tool: far from any)
        'when action.type in ["tool_call", "state_write"]',
        'when history.exists(h, h.status == "rejected" && h.type == "tool_call")',
        'refund when params.currency == "GBP"',
        # (history holds calls of every tool, whatever the policy targets)
        'refund when history.exists(h, h.tool == "email")',
        # (a glob may match an MCP server's tools too: not every value is known)
        're* when action.tool == "rename"',
    ],
)
def test_a_value_the_field_can_have_is_not_reported(condition: str) -> None:
    assert _findings(condition) == []
