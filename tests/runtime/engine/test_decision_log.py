"""Decision events: one per decided action, valid against the versioned JSON Schema, naming the
deciding policies at their source positions and the program's content hash; program-declared
redactions applied before any sink sees an event."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from carlang_runtime import ir
from carlang_runtime.decisionlog import DECISION_SCHEMA_ID, content_hash, decision_schema
from carlang_runtime.engine import AutoApprove, EventStore, JsonlSink, Runtime, SqliteSink
from carlang_runtime.redact import REDACTED, redaction_path

from carlang.cli import app
from tests.helpers import codes, compile_diagnostics, compile_ok

PROGRAM = """\
tool charge(card_number: string, amount: int, token: string secret)
tool lookup(id: string)
redact params.card_number
policy too_big: deny charge when params.amount > 1000
  message "too much"
policy needs_ok: require_approval charge when params.amount > 500
policy watch: shadow deny charge when params.amount > 10
"""

CARD = "4111-1111-1111-1111"
TOKEN = "tok-SECRET-99"


def _program() -> ir.Program:
    program = compile_diagnostics(PROGRAM).program
    assert program is not None
    return program


def charge(card_number: str, amount: int, token: str) -> dict[str, Any]:
    return {"charged": amount, "card": card_number}


def lookup(id: str) -> str:
    return id


def _run(sinks: list[Any], amounts: list[int]) -> Runtime:
    program = _program()
    rt = Runtime.from_program(program, approval=AutoApprove())
    rt.events.sinks.extend(sinks)
    rt.register_tool("charge", charge)
    rt.register_tool("lookup", lookup)
    actions = [
        ir.Action(
            id=f"c{i}",
            type="tool_call",
            tool="charge",
            parameters={"card_number": CARD, "amount": amount, "token": TOKEN},
            failure_behavior="skip",
        )
        for i, amount in enumerate(amounts)
    ]
    actions.append(ir.Action(id="l", type="tool_call", tool="lookup", parameters={"id": "x"}))
    rt.execute(ir.ActionProposal(id="p", actions=actions), scope={"tenant": "acme"})
    rt.events.close()
    return rt


def test_every_decision_is_an_event_valid_against_the_schema(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    _run([JsonlSink(log)], [5, 50, 600, 2000])
    records = [json.loads(line) for line in log.read_text().splitlines()]
    decisions = [r for r in records if r["kind"] == "policy_decision"]
    assert [d["action_id"] for d in decisions] == ["c0", "c1", "c2", "c3", "l"]
    schema = decision_schema()
    assert schema["$id"] == DECISION_SCHEMA_ID
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    for record in decisions:
        validator.validate(record)
    by_action = {d["action_id"]: d["data"] for d in decisions}
    assert [by_action[a]["decision"] for a in ("c0", "c1", "c2", "c3", "l")] == [
        "allow",
        "allow",
        "require_approval",
        "deny",
        "allow",
    ]
    denied = by_action["c3"]
    assert denied["tool"] == "charge" and denied["tenant"] == "acme"
    (policy,) = denied["policies"]
    assert policy["name"] == "too_big" and policy["reason"] == "too much"
    assert policy["loc"]["line"] == 4 and policy["loc"]["column"] == 1
    assert policy["explanation"] == "params.amount > 1000 -> true"
    assert [s["name"] for s in by_action["c1"]["shadow"]] == ["watch"]
    assert by_action["c0"]["shadow"] == []
    assert denied["program"] == content_hash(_program())
    assert all(d["decided_in_us"] >= 0 for d in by_action.values())


def test_declared_redactions_and_secrets_reach_no_sink(tmp_path: Path) -> None:
    jsonl, db = tmp_path / "run.jsonl", tmp_path / "run.db"
    rt = _run([JsonlSink(jsonl), SqliteSink(db)], [50, 2000])
    text = jsonl.read_text()
    assert CARD not in text and TOKEN not in text
    store = EventStore(db)
    stored = json.dumps([e.to_dict() for e in store.events()])
    store.close()
    assert CARD not in stored and TOKEN not in stored
    assert CARD not in json.dumps([e.to_dict() for e in rt.events], default=str)
    decision = next(e for e in rt.events if e.kind == "policy_decision")
    assert decision.data["params"]["card_number"] == REDACTED
    assert decision.data["params"]["amount"] == 50


def test_a_runtime_that_keeps_nothing_logs_no_decisions_unless_asked() -> None:
    rt = _run([], [5])
    assert not rt.events.query("policy_decision")
    asked = Runtime(decision_log=True)
    asked.register_tool("lookup", lookup)
    asked.add_policy(ir.CelPolicy(name="p", when="params.id == 'no'"))
    asked.execute(
        ir.ActionProposal(
            id="p",
            actions=[ir.Action(id="a", type="tool_call", tool="lookup", parameters={"id": "x"})],
        )
    )
    (event,) = asked.events.query("policy_decision")
    assert event.data["program"].startswith("sha256:")


def test_redaction_paths() -> None:
    assert redaction_path("params.cards.*.cvv") == ("cards", "*", "cvv")
    with pytest.raises(ValueError):
        redaction_path("state.x")
    assert codes("redact state.card\n") == ["CL0222"]
    assert codes("redact params.*\n") == ["CL0222"]
    program = compile_ok("redact params.card, params.cards.*.cvv\n")
    assert program.redactions == ["params.card", "params.cards.*.cvv"]


def test_redact_formats_and_compiles_from_the_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    source = tmp_path / "r.car"
    source.write_text("redact   params.card ,params.pin\n")
    result = CliRunner().invoke(app, ["fmt", "--check", str(source)])
    assert result.exit_code == 1
    result = CliRunner().invoke(app, ["fmt", str(source)])
    assert result.exit_code == 0, result.output
    assert source.read_text() == "redact params.card, params.pin\n"
