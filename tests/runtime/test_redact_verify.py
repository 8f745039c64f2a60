"""No message about a call's parameters quotes a secret value: the parameter checker's
findings, hence `verify` (`carlang verify`, `carlang mcp serve`'s `verify` tool), a program's
diagnostics (CL0309) and the runtime's validation errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from carlang_runtime import ir
from carlang_runtime.engine import Runtime
from carlang_runtime.paramcheck import ParamChecker, finding_message
from carlang_runtime.redact import REDACTED
from carlang_runtime.verify import tool_set, verify
from typer.testing import CliRunner

from carlang.cli import app

from .engine.support import call, proposal

SECRET = "sk-SUPERSECRET999"

LOGIN: dict[str, Any] = {
    "name": "login",
    "parameters": {
        "type": "object",
        "properties": {
            "user": {"type": "string", "maxLength": 3},
            "token": {
                "type": "string",
                "writeOnly": True,
                "pattern": "^tok_[a-z]+$",
                "enum": ["tok_a", "tok_b"],
            },
            "pin": {"type": "integer", "writeOnly": True, "maximum": 9},
            "creds": {"$ref": "#/$defs/Creds"},
            "card": {"type": "string", "pattern": "^[0-9]+$"},
        },
        "required": ["user", "token"],
        "$defs": {
            "Creds": {
                "type": "object",
                "properties": {"api_key": {"type": "string", "writeOnly": True, "minLength": 40}},
                "additionalProperties": False,
            }
        },
    },
}
PARAMS = {
    "user": "bobby",
    "token": SECRET,
    "pin": 12,  # (short: no text search would find it)
    "creds": {"api_key": "NESTED-KEY-77", "extra": 1},
}


def test_a_finding_never_quotes_a_secret_value() -> None:
    findings = ParamChecker("login", LOGIN["parameters"]).check(PARAMS)
    messages = [finding_message("login", f) for f in findings]
    shown = "\n".join(messages)
    assert SECRET not in shown and "NESTED-KEY-77" not in shown and " 12 " not in shown
    assert "parameter 'token': '[REDACTED]' does not match '^tok_[a-z]+$'" in shown
    assert "parameter 'token': '[REDACTED]' is not one of ['tok_a', 'tok_b']" in shown
    assert "parameter 'pin': '[REDACTED]' is greater than the maximum of 9" in shown
    assert "parameter 'creds.api_key': '[REDACTED]' is too short" in shown
    assert "Additional properties are not allowed ('extra' was unexpected)" in shown
    assert "'bobby' is too long" in shown  # (what is not secret is quoted as ever)


def test_a_secret_value_another_parameter_holds_too_is_not_quoted() -> None:
    """A trial: a token pasted into `card` too was quoted there (`'sk-...' does not match`),
    as `verify` and `rank` showed it, where `explain` scrubbed it by value."""
    params = {**PARAMS, "card": SECRET, "user": f"{SECRET}!"}
    findings = ParamChecker("login", LOGIN["parameters"]).check(params)
    shown = "\n".join(finding_message("login", f) for f in findings)
    assert SECRET not in shown, shown
    assert "parameter 'card': '[REDACTED]' does not match '^[0-9]+$'" in shown
    assert "parameter 'user': '[REDACTED]!' is too long" in shown


def test_the_subset_checker_redacts_as_jsonschema_does() -> None:
    """carlang's own types take the fast checker (no jsonschema): the same redaction."""
    schema = {
        "type": "object",
        "properties": {
            "token": {"type": "string", "writeOnly": True, "enum": ["tok_a"]},
            "keys": {"type": "array", "items": {"type": "integer", "x-carlang-secret": True}},
        },
    }
    findings = ParamChecker("t", schema).check({"token": SECRET, "keys": ["AKIA-1234"]})
    assert [(f.param, f.path, f.detail) for f in findings] == [
        ("keys", "[0]", "'[REDACTED]' is not of type 'integer'"),
        ("token", "", "'[REDACTED]' is not one of ['tok_a']"),
    ]


def test_verify_redacts_secret_values_and_a_programs_redact_paths() -> None:
    plan = {
        "id": "p",
        "actions": [
            {"id": "a", "type": "tool_call", "tool": "login", "parameters": PARAMS},
            {
                "id": "b",
                "type": "tool_call",
                "tool": "login",
                "parameters": {"user": "bob", "token": "tok_a", "card": "4111-5555-6666"},
            },
        ],
    }
    result = verify(plan, tools=[LOGIN])
    dumped = result.model_dump_json()
    assert SECRET not in dumped and "NESTED-KEY-77" not in dumped
    assert "4111-5555-6666" in dumped  # (no `redact` path: it is not secret)
    redacted = verify(plan, tools=[LOGIN], redact=["params.card"])
    dumped = redacted.model_dump_json()
    assert "4111-5555-6666" not in dumped
    assert "parameter 'card': '[REDACTED]' does not match '^[0-9]+$'" in dumped
    # a prebuilt tool set takes them too
    prebuilt = verify(plan, tools=tool_set([LOGIN], ["params.card"]))
    assert prebuilt.model_dump_json() == dumped
    with pytest.raises(ValueError, match="redaction path"):
        verify(plan, tools=[LOGIN], redact=["card"])


def test_carlang_verify_prints_no_secret(tmp_path: Path) -> None:
    """The red team's repro (s2): `carlang verify p.json --tool-schemas tools.json`."""
    plan = tmp_path / "p.json"
    plan.write_text(
        json.dumps(
            {
                "id": "p",
                "actions": [
                    {"id": "a", "type": "tool_call", "tool": "login", "parameters": PARAMS}
                ],
            }
        )
    )
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([LOGIN]))
    runner = CliRunner()
    for output in ("text", "json"):
        result = runner.invoke(
            app, ["verify", str(plan), "--tool-schemas", str(tools), "--format", output]
        )
        assert result.exit_code == 1, result.output
        assert SECRET not in result.output and "NESTED-KEY-77" not in result.output
        assert REDACTED in result.output


def test_the_mcp_servers_verify_tool_prints_no_secret() -> None:
    from carlang import mcp_serve

    program = 'tool login(user: string, token: string(pattern: "^tok_") secret) -> object\n'
    plan = {
        "id": "p",
        "actions": [
            {
                "id": "a",
                "type": "tool_call",
                "tool": "login",
                "parameters": {"user": "bob", "token": SECRET},
            }
        ],
    }
    found = mcp_serve.verify(plan, program=program)
    assert found["valid"] is False
    assert SECRET not in json.dumps(found) and REDACTED in json.dumps(found)


def test_a_programs_diagnostics_quote_no_secret(tmp_path: Path) -> None:
    source = tmp_path / "b.car"
    source.write_text(
        'tool login(user: string, token: string(pattern: "^tok_[a-z]+$") secret) -> object'
        ' { description "x" }\n'
        f'proposal pr {{\n  a = login(user: "bob", token: "{SECRET}")\n}}\n'
    )
    result = CliRunner().invoke(app, ["check", str(source)])
    assert result.exit_code != 0
    assert "CL0309" in result.output
    messages = [line for line in result.output.splitlines() if "CL0309" in line]
    assert messages and all(SECRET not in line and REDACTED in line for line in messages)


def test_a_short_secret_is_not_in_a_runtime_validation_error() -> None:
    """The run's scrubber does not search for a 2-digit pin in free text; the validation
    message never had it."""
    rt = Runtime()
    rt.declare_tool(ir.ToolSchema.model_validate(LOGIN))
    rt.register_tool("login", lambda **params: {"ok": True})
    params = {"user": "bob", "token": "tok_a", "pin": 12}
    result = rt.execute(proposal(call("a", "login", params=params, failure_behavior="skip")))
    error = result.results[0].error
    assert error is not None and "12" not in error
    assert "'[REDACTED]' is greater than the maximum of 9 (at /pin)" in error
