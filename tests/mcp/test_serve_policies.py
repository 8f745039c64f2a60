"""`carlang mcp serve` judges a plan as `carlang check` does: `verify` with a program reports
what its policies will say to the proposal's actions (a certain deny is an error, so `valid`
is false where check fails; an approval, or a deny predicted from the declared state, a
warning), under the proposal's own capability when the call names none; `policy_check` and
`explain` take a `capability`, and a tool it denies is a deny by `capability:NAME`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from typer.testing import CliRunner

from carlang.cli import app
from tests.mcp.conftest import needs_sdk
from tests.mcp.test_serve import call, serving

# slow: mcp serve as a subprocess, per test (the default run stays under three minutes; CI runs these)
pytestmark = [needs_sdk, pytest.mark.slow]

PROGRAM = """
tool read_file(path: string) -> string { read_only }
tool send_email(to: string, body: string) -> object
tool shell(cmd: string) -> string
tool notify(to: string) -> object
state { sent: int = 0 }
capability agent {
  tools allow read_file, send_email, notify  deny shell
}
capability reader { tools allow read_file }
policy no_etc: deny read_file when params.path.startsWith("/etc")
  message "no system files"
policy external_mail: require_approval send_email when !params.to.endsWith("@example.com")
  message "external mail needs approval"
policy one_mail: deny notify when state.sent > 0
  message "one mail per run"
"""


def _action(action_id: str, tool: str, **parameters: Any) -> dict[str, Any]:
    return {"id": action_id, "type": "tool_call", "tool": tool, "parameters": parameters}


DENIED = {"id": "bad", "actions": [_action("c2", "read_file", path="/etc/passwd")]}
MAIL = {
    "id": "mail",
    "actions": [
        {**_action("m", "send_email", to="x@evil.com", body="hi"), "expected_effects": {"sent": 1}},
        {**_action("n", "notify", to="a"), "depends_on": ["m"]},
    ],
}


def _issues(verdict: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [(i["action_id"], i["code"], i["severity"], i["message"]) for i in verdict["issues"]]


def test_verify_reports_the_policies_verdicts_as_check_does(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving() as session:
            error, verdict = await call(session, "verify", proposal=DENIED, program=PROGRAM)
            assert not error and verdict["valid"] is False
            assert _issues(verdict) == [
                ("c2", "CL0520", "error", "this action will be denied by no_etc: no system files")
            ]
            (record,) = [c for c in verdict["evidence"]["checks"] if c["name"] == "plan_policies"]
            assert record["ran"] and record["findings"] == 1
            error, verdict = await call(session, "verify", proposal=MAIL, program=PROGRAM)
            assert not error and verdict["valid"] is True
            assert _issues(verdict) == [
                (
                    "m",
                    "CL0521",
                    "warning",
                    "this action will require approval by external_mail: external mail needs"
                    " approval",
                ),
                (
                    "n",
                    "CL0522",
                    "warning",
                    "this action is predicted to be denied by one_mail: one mail per run",
                ),
            ]
            assert "2 warning(s) not blocking the verdict" in verdict["evidence"]["residual_risks"]
            # without a program there are no policies: nothing is said of them
            error, verdict = await call(session, "verify", proposal=DENIED)
            assert not error and verdict["valid"] is True
            assert "plan_policies" not in [c["name"] for c in verdict["evidence"]["checks"]]

    anyio.run(scenario)
    # ... and `carlang check` says the same of the same plan
    source = tmp_path / "plan.car"
    source.write_text(
        PROGRAM + 'proposal bad { c2 = read_file(path: "/etc/passwd") }\n'
        'proposal mail {\n  m = send_email(to: "x@evil.com", body: "hi") { effects { sent = 1 } }\n'
        '  n = notify(to: "a") after m\n}\n'
    )
    checked = CliRunner().invoke(app, ["check", str(source), "--format", "json"])
    codes = [
        (d["code"], d["message"])
        for d in json.loads(checked.stdout)["diagnostics"]
        if d["code"].startswith("CL052")
    ]
    assert sorted(codes) == sorted(
        [
            ("CL0520", "this action will be denied by no_etc: no system files"),
            (
                "CL0521",
                "this action will require approval by external_mail: external mail needs approval",
            ),
            ("CL0522", "this action is predicted to be denied by one_mail: one mail per run"),
        ]
    ), checked.stdout


def test_verify_uses_the_capability_the_proposal_names() -> None:
    shell = {"id": "s", "actions": [_action("x", "shell", cmd="ls")], "capability": "agent"}

    async def scenario() -> None:
        async with serving() as session:
            error, verdict = await call(session, "verify", proposal=shell, program=PROGRAM)
            assert not error and verdict["valid"] is False
            assert [i["message"] for i in verdict["issues"]] == [
                "tool 'shell' is denied by capability 'agent'"
            ], verdict["issues"]
            error, message = await call(
                session, "verify", proposal={**shell, "capability": "agnet"}, program=PROGRAM
            )
            assert error and message == (
                "argument `proposal.capability`: no capability 'agnet' (did you mean 'agent'?)"
            )

    anyio.run(scenario)


def test_policy_check_and_explain_take_a_capability() -> None:
    async def scenario() -> None:
        async with serving() as session:
            for capability, tool, params, reason in (
                ("agent", "shell", {"cmd": "ls"}, "tool 'shell' is denied by capability 'agent'"),
                (
                    "reader",
                    "notify",
                    {"to": "a"},
                    "tool 'notify' is not allowed by capability 'reader'",
                ),
            ):
                error, decision = await call(
                    session, "policy_check", tool=tool, params=params, program=PROGRAM
                )
                assert not error and decision["decision"] == "allow"  # (no capability given)
                error, decision = await call(
                    session,
                    "policy_check",
                    tool=tool,
                    params=params,
                    program=PROGRAM,
                    capability=capability,
                )
                assert not error and decision == {
                    "decision": "deny",
                    "policies": [{"policy": f"capability:{capability}", "reason": reason}],
                }
                error, explained = await call(
                    session,
                    "explain",
                    tool=tool,
                    params=params,
                    program=PROGRAM,
                    capability=capability,
                )
                assert not error and explained["decision"] == "deny"
                assert explained["reasons"] == [
                    {"policy": f"capability:{capability}", "reason": reason}
                ]
            # a capability that allows the tool leaves the decision to the policies
            error, decision = await call(
                session,
                "policy_check",
                tool="read_file",
                params={"path": "/etc/passwd"},
                program=PROGRAM,
                capability="reader",
            )
            assert decision == {
                "decision": "deny",
                "policies": [{"policy": "no_etc", "reason": "no system files"}],
            }
            error, message = await call(
                session,
                "policy_check",
                tool="shell",
                params={"cmd": "ls"},
                program=PROGRAM,
                capability="agnet",
            )
            assert error and message == "no capability 'agnet' (did you mean 'agent'?)"

    anyio.run(scenario)
