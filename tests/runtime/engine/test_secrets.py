"""Secret parameters, and values a policy caught, never reach a log, a result or a message."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from carlang_runtime import ir
from carlang_runtime.engine import (
    ApprovalRequest,
    CallbackGate,
    EventLog,
    EventStore,
    JsonlSink,
    RetryPolicy,
    Runtime,
    SqliteSink,
    ToolError,
)
from carlang_runtime.errors import CarlangRuntimeError
from carlang_runtime.redact import REDACTED, Scrubber, redact_parameters, secret_paths
from typer.testing import CliRunner

from carlang.cli import app

from .support import call, proposal

SECRET = "sk-LIVE-123"

LOGIN = ir.ToolSchema(
    name="login",
    parameters={
        "type": "object",
        "properties": {
            "user": {"type": "string"},
            "token": {"type": "string", "writeOnly": True},
            "nested": {
                "type": "object",
                "properties": {"keys": {"type": "array", "items": {"x-carlang-secret": True}}},
            },
        },
        "required": ["user", "token"],
    },
)


def test_secret_paths_come_from_the_schema_at_any_depth() -> None:
    assert secret_paths(LOGIN.parameters) == (("token",), ("nested", "keys", "*"))
    params = {"user": "u", "token": SECRET, "nested": {"keys": ["k1", "k2"]}}
    assert redact_parameters(params, secret_paths(LOGIN.parameters)) == {
        "user": "u",
        "token": REDACTED,
        "nested": {"keys": [REDACTED, REDACTED]},
    }
    scrub = Scrubber([SECRET, 12345])
    assert scrub.value({"e": f"'{SECRET}' is wrong", "n": 12345, SECRET: 1}) == {
        "e": f"'{REDACTED}' is wrong",
        "n": REDACTED,
        REDACTED: 1,
    }


def _everything_written(tmp_path: Path) -> str:
    text = (tmp_path / "run.jsonl").read_text()
    store = EventStore(tmp_path / "run.db")
    text += json.dumps([e.to_dict() for e in store.events()])
    store.close()
    return text


def test_a_secret_never_reaches_a_log_a_result_or_a_message(tmp_path: Path) -> None:
    reasons: list[str] = []

    def ask(request: ApprovalRequest) -> bool:
        reasons.append(json.dumps(request.parameters))
        return False

    rt = Runtime(
        events=EventLog([JsonlSink(tmp_path / "run.jsonl"), SqliteSink(tmp_path / "run.db")]),
        approval=CallbackGate(ask),
    )

    def login(user: str, token: str, nested: Any = None) -> str:
        if user == "echo":
            raise ToolError(f"token {token} was refused")
        return f"welcome {user}, your token {token} is good"

    rt.register_tool("login", login, LOGIN)
    rt.add_policy(
        ir.CelPolicy(
            name="watch", tools=["login"], effect="require_approval", when='params.user == "ask"'
        )
    )
    rt.add_policy(
        ir.CelPolicy(
            name="deny_bob",
            tools=["login"],
            when='params.token.startsWith("sk-") && params.user == "bob"',
        )
    )
    result = rt.execute(
        proposal(
            call("ok", "login", params={"user": "u", "token": SECRET}),
            call(
                "echo", "login", params={"user": "echo", "token": SECRET}, failure_behavior="skip"
            ),
            call("ask", "login", params={"user": "ask", "token": SECRET}, failure_behavior="skip"),
            call("bob", "login", params={"user": "bob", "token": SECRET}, failure_behavior="skip"),
            call("typed", "login", params={"user": 7, "token": SECRET}, failure_behavior="skip"),
        )
    )
    rt.close()
    shown = result.model_dump_json()
    assert SECRET not in shown
    assert result.results[0].output == f"welcome u, your token {REDACTED} is good"
    assert "was refused" in (result.results[1].error or "")
    assert SECRET not in _everything_written(tmp_path)
    assert reasons and SECRET not in reasons[0] and REDACTED in reasons[0]
    assert SECRET not in rt.gate(call("g", "login", params={"user": "bob", "token": SECRET})).reason
    # The journal kept the proposal without the secret: resuming needs it again.
    with closing(EventStore(tmp_path / "run.db")) as store:
        run_id = store.runs()[0].run_id
        journal = store.events(run_id, kind="proposal_received")[0]
    assert journal.data["redacted"] is True


def test_a_caught_value_is_kept_out_of_every_sink(tmp_path: Path) -> None:
    rt = Runtime(
        events=EventLog([JsonlSink(tmp_path / "run.jsonl"), SqliteSink(tmp_path / "run.db")])
    )
    rt.register_tool("post", lambda text: text)
    rt.add_policy(ir.DenyToolParamRule(name="no_keys", tool="post", param="text", contains="AKIA"))
    rt.add_policy(ir.DenyKeywordRule(name="no_passwords", keywords=["hunter2"]))
    result = rt.execute(
        proposal(
            call("a", "post", params={"text": "key AKIAXYZ123"}, failure_behavior="skip"),
            call("b", "post", params={"text": "my pw is hunter2"}, failure_behavior="skip"),
            call("c", "post", params={"text": "harmless"}),
        )
    )
    rt.close()
    written = _everything_written(tmp_path)
    for caught in ("AKIAXYZ123", "hunter2"):
        assert caught not in written
        assert caught not in result.model_dump_json()
    assert "harmless" in written


def test_resuming_a_run_with_secrets_needs_its_proposal(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    rt = Runtime(events=EventLog([SqliteSink(db)]))
    calls: list[str] = []

    def login(user: str, token: str) -> str:
        calls.append(token)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return user

    rt.register_tool("login", login, LOGIN)
    plan = proposal(
        call("a", "login", params={"user": "a", "token": SECRET}),
        call("b", "login", params={"user": "b", "token": SECRET}, depends_on=["a"]),
    )
    with pytest.raises(KeyboardInterrupt):
        rt.execute(plan)
    rt.close()
    again = Runtime(events=EventLog([SqliteSink(db)]))
    again.register_tool("login", login, LOGIN)
    with closing(EventStore(db)) as store:
        run_id = store.runs()[0].run_id
    with pytest.raises(CarlangRuntimeError, match="secret parameters"):
        again.resume(run_id)
    other = proposal(call("a", "login", params={"user": "z", "token": SECRET}))
    with pytest.raises(CarlangRuntimeError, match="not the one run"):
        again.resume(run_id, proposal=other)
    result = again.resume(run_id, proposal=plan)
    again.close()
    assert result.all_succeeded()
    assert calls == [SECRET, SECRET, SECRET]  # b ran again, with the real token


PROGRAM = """\
tool login(user: string, token: string secret)
proposal p {
  a = login(user: "u", token: "sk-LIVE-123")
}
"""

TOOLS = """\
from carlang_runtime.engine import ToolError

def login(user, token):
    raise ToolError(f"bad token {token}")

TOOLS = {"login": login}
"""


def test_the_cli_never_prints_a_secret(tmp_path: Path) -> None:
    (tmp_path / "p.car").write_text(PROGRAM)
    (tmp_path / "tools.py").write_text(TOOLS)
    runner = CliRunner()
    db = tmp_path / "run.db"
    ran = runner.invoke(
        app,
        [
            "run",
            str(tmp_path / "p.car"),
            "--tools",
            f"{tmp_path / 'tools.py'}:TOOLS",
            "--events",
            str(db),
            "--root",
            str(tmp_path),
            "--format",
            "json",
        ],
    )
    assert ran.exit_code == 1, ran.output
    assert "bad token [REDACTED]" in ran.output and SECRET not in ran.output
    run_id = json.loads(ran.output)["run_id"]
    events = runner.invoke(app, ["events", str(db), "--run", run_id, "--format", "json"])
    assert events.exit_code == 0, events.output
    assert SECRET not in events.output and "[REDACTED]" in events.output
    formatted = runner.invoke(app, ["fmt", "--check", str(tmp_path / "p.car")])
    assert formatted.exit_code == 0, formatted.output


def test_a_short_secret_is_not_searched_for_and_keys_are_never_cut() -> None:
    """A one-letter password found in every word would garble the log (`typ[REDACTED]`) and,
    by where the marks fall, give itself away; a key is replaced only when it is a secret."""
    from carlang_runtime.redact import REDACTED, Scrubber

    scrub = Scrubber(["e", "hunter2"])
    event = {"type": "tool_call", "session": "8ce", "error": "auth failed for hunter2"}
    assert scrub.value(event) == {
        "type": "tool_call",
        "session": "8ce",
        "error": f"auth failed for {REDACTED}",
    }
    assert scrub.value({"hunter2": 1, "hunter2s": 2}) == {REDACTED: 1, "hunter2s": 2}


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pw@127.0.0.1:8000/v1", "http://user:***@127.0.0.1:8000/v1"),
        ("postgresql://u:pa/ss@h/d", "postgresql://u:***@h/d"),  # a `/` in the password
        ("postgresql://u:p@ss@h:5432/d", "postgresql://u:***@h:5432/d"),  # an `@` in it
        ("postgresql://u:secret/d", "postgresql://u:***/d"),  # written without its host
        ("https://host:8443/v1", "https://host:8443/v1"),
        ("http://h:1/d?token=abc123&page=2", "http://h:1/d?token=***&page=2"),
        ("http://h/d?a=1&api_key=zz", "http://h/d?a=1&api_key=***"),
        ("not a url", "not a url"),
    ],
)
def test_a_url_is_shown_without_its_password(url: str, shown: str) -> None:
    from carlang_runtime.redact import shown_url

    assert shown_url(url) == shown


def test_the_state_as_shown_keeps_out_what_a_run_keeps_out() -> None:
    """`shown_state` (what `carlang run` prints after a run): secret parameters, `redact` paths
    and values a built-in rule catches are redacted wherever they occur in the state, in keys
    whole, with an in-memory log as with a durable one; the state itself is left as it is."""
    rt = Runtime(state={"before": "untouched"})
    rt.declare_tool(LOGIN)
    rt.register_tool("login", lambda user, token, nested=None: user)
    rt.register_tool("post", lambda text, card="": text)
    rt.redact(["params.card"])
    rt.add_policy(ir.DenyToolParamRule(name="no_keys", tool="post", param="text", contains="AKIA"))
    plan = proposal(
        call(
            "in",
            "login",
            params={"user": "u", "token": SECRET},
            expected_effects={"token": SECRET, "note": f"logged in with {SECRET}", SECRET: 1},
        ),
        call(
            "card",
            "post",
            params={"text": "paid", "card": "4111-1111"},
            expected_effects={"card": "4111-1111"},
        ),
        call("key", "post", params={"text": "key AKIAXYZ123"}, failure_behavior="skip"),
    )
    result = rt.execute(plan)
    assert [r.status.value for r in result.results] == ["succeeded", "succeeded", "rejected"]
    with_key = {**rt.state.snapshot(), "leaked": "key AKIAXYZ123"}
    assert rt.shown_state([plan], state=with_key) == {
        "before": "untouched",
        "token": REDACTED,
        "note": f"logged in with {REDACTED}",
        REDACTED: 1,
        "card": REDACTED,
        "leaked": REDACTED,
    }
    assert rt.shown_state([plan])["token"] == REDACTED
    assert rt.state.snapshot()["token"] == SECRET  # (shown redacted, kept as it is)
    # the secrets a run wrote into the state are remembered: shown redacted without its plan
    assert rt.shown_state([]) == rt.shown_state([plan])
    assert Runtime(state=rt.state.snapshot()).shown_state([]) == rt.state.snapshot()


def test_redact_paths_cover_compensation_parameters(tmp_path: Path) -> None:
    """A `redact` path is the same for a compensation's call as for any call of the tool: the
    undo step's parameters are `[REDACTED]` in the journaled proposal, and its value is kept
    out of results, retries and compensation events (it was only `secret` parameters)."""
    card, undo_card = "4111222233334444", "4111999988887777"
    rt = Runtime(
        events=EventLog(sinks=[SqliteSink(tmp_path / "run.db")]),
        retry=RetryPolicy(base_delay=0.0),
    )
    rt.redact(["params.card_number"])
    rt.register_tool("charge", lambda card_number, amount: {"ok": True})

    def refund(card_number: str, amount: int) -> None:
        raise ToolError("refund failed for card " + card_number)

    rt.register_tool("refund", refund)
    rt.register_tool("boom", lambda: (_ for _ in ()).throw(ToolError("boom")))
    undo: dict[str, Any] = {
        "type": "tool",
        "tool": "refund",
        "parameters": {"card_number": undo_card, "amount": 5},
    }
    plan = proposal(
        call("a", "charge", params={"card_number": card, "amount": 5}, compensation=undo),
        call("b", "boom", depends_on=["a"]),
    )
    result = rt.execute(plan)
    assert [c.status.value for c in result.compensations] == ["failed"]
    assert undo_card not in result.model_dump_json()
    assert result.compensations[0].error == f"refund failed for card {REDACTED}"
    rt.close()
    store = EventStore(tmp_path / "run.db")
    with closing(store):
        events = [e.to_dict() for e in store.events()]
    written = json.dumps(events)
    assert card not in written and undo_card not in written
    received = next(e for e in events if e["kind"] == "proposal_received")
    journaled = received["data"]["proposal"]["actions"][0]
    assert journaled["compensation"]["parameters"] == {"card_number": REDACTED, "amount": 5}
    assert received["data"]["redacted"] is True
    assert any(e["kind"] == "action_retrying" for e in events)


SHORT_SECRET_PROGRAM = """\
tool login(user: string, token: string secret)
tool note(body: string)
redact params.body
policy named: deny login when params.user == "mallory"
proposal p {
  a = login(user: "bob", token: "k9")
  b = note(body: "hi") after a
}
"""


def test_a_short_secret_reaches_no_log_and_no_explanation(tmp_path: Path) -> None:
    """A secret (or a `redact`ed value) too short to be searched for in text: the decision
    record's params held it (the proposal's copy did not), a tool output echoing it showed
    it, and `carlang explain` printed it in the action line."""
    source = tmp_path / "short.car"
    source.write_text(SHORT_SECRET_PROGRAM)
    tools = tmp_path / "short_tools.py"
    tools.write_text(
        "TOOLS = {'login': lambda user, token: {'used': token}, 'note': lambda body: body}\n"
    )
    log = tmp_path / "events.jsonl"
    runner = CliRunner()
    ran = runner.invoke(
        app, ["run", str(source), "--tools", f"{tools}:TOOLS", "--events", str(log)]
    )
    assert ran.exit_code == 0, ran.output
    events = [json.loads(line) for line in log.read_text().splitlines()]
    decisions = [e["data"]["params"] for e in events if e["kind"] == "policy_decision"]
    assert decisions == [{"user": "bob", "token": REDACTED}, {"body": REDACTED}]
    for shown in (log.read_text(), ran.output):
        assert '"k9"' not in shown and '"hi"' not in shown, shown
    for extra in ([], ["--format", "json"]):
        explained = runner.invoke(
            app,
            ["explain", str(source), "--tool", "login", "--params", '{"user":"b","token":"k9"}']
            + extra,
        )
        assert explained.exit_code == 0, explained.output
        assert "k9" not in explained.output and REDACTED in explained.output


def test_a_short_secret_leaves_the_logged_proposal_as_it_was(tmp_path: Path) -> None:
    """A secret "a" (or "3") equal by chance to an action id, a dependency or a count: the
    logged proposal keeps them (whole-value replacement is for tool outputs only), so a
    resume and a replay read the proposal that ran; the secret parameter itself is redacted
    by its path, and an output echoing it is."""
    rt = Runtime(events=EventLog([JsonlSink(tmp_path / "events.jsonl")]))
    rt.declare_tool(LOGIN)
    rt.register_tool("login", lambda user, token, nested=None: {"echo": token, "n": 3})
    actions = [
        call("a", "login", params={"user": "bob", "token": "a"}),
        call("b", "login", params={"user": "3", "token": "3"}, depends_on=["a"]),
        call(
            "c",
            "login",
            params={"user": "x", "token": "x"},
            failure_behavior="retry",
            max_retries=3,
        ),  # fmt: skip
    ]
    with closing(rt):
        result = rt.execute(proposal(*actions))
    assert [r.output for r in result.results] == [
        {"echo": REDACTED, "n": 3},
        {"echo": REDACTED, "n": 3},  # (the secret "3" is a string: the number 3 is not it)
        {"echo": REDACTED, "n": 3},
    ]
    (received,) = rt.events.query("proposal_received")
    logged = received.data["proposal"]["actions"]
    assert [a["id"] for a in logged] == ["a", "b", "c"]
    assert logged[1]["depends_on"] == ["a"] and logged[2]["max_retries"] == 3
    assert [a["parameters"]["token"] for a in logged] == [REDACTED] * 3
    assert logged[1]["parameters"]["user"] == "3"


def test_a_secret_default_of_an_undo_steps_tool_is_kept_out(tmp_path: Path) -> None:
    """An undo step's call has its tool's defaults, a secret one too: what the runtime keeps
    out of the log is that call (`Action.undo_call`, filled), so the default key a refund
    echoes in its error is `[REDACTED]`."""
    key = "sk-refund-default-77"
    program = ir.Program(
        tools=[
            ir.ToolSchema(name="charge", parameters={"type": "object"}),
            ir.ToolSchema(
                name="refund",
                parameters={
                    "type": "object",
                    "properties": {
                        "n": {"type": "integer"},
                        "key": {"type": "string", "writeOnly": True, "default": key},
                    },
                },
            ),
            ir.ToolSchema(name="boom", parameters={"type": "object"}),
        ]
    )
    rt = Runtime.from_program(program, events=EventLog(sinks=[SqliteSink(tmp_path / "r.db")]))
    rt.register_tool("charge", lambda: {"ok": True})

    def refund(n: int, key: str) -> None:
        raise ToolError(f"refund {n} failed with key {key}")

    rt.register_tool("refund", refund)
    rt.register_tool("boom", lambda: (_ for _ in ()).throw(ToolError("boom")))
    undo: dict[str, Any] = {"type": "tool", "tool": "refund", "parameters": {"n": 1}}
    plan = proposal(call("a", "charge", compensation=undo), call("b", "boom", depends_on=["a"]))
    result = rt.execute(plan)
    assert result.compensations[0].error == f"refund 1 failed with key {REDACTED}"
    rt.close()
    store = EventStore(tmp_path / "r.db")
    with closing(store):
        written = json.dumps([e.to_dict() for e in store.events()])
    assert key not in written


def test_a_secret_a_tool_keeps_in_the_state_stays_out_of_later_runs_logs(tmp_path: Path) -> None:
    """A tool that keeps its token in the state (a login session): the run that had it as a
    parameter redacted it, but the next run, which does not, wrote the whole state in its
    `state_snapshot` (and a copy of it in its own writes and outputs) in clear. The runtime
    remembers which secrets the state holds, per tenant, for as long as it holds them."""
    log = tmp_path / "run.jsonl"
    rt = Runtime(events=EventLog([JsonlSink(log)]))

    def login(user: str, token: str, context: Any) -> str:
        context.state.set(f"session.{user}", {"user": user, "token": token})
        return "ok"

    def copy(context: Any) -> Any:
        session = context.state.get("session.alice")
        context.state.set("backup", session)
        return session

    rt.register_tool("login", login, LOGIN)
    rt.register_tool("copy", copy)
    rt.register_tool("ping", lambda: "pong")
    a = {"tenant": "A"}
    rt.execute(proposal(call("l", "login", params={"user": "alice", "token": SECRET})), scope=a)
    second = rt.execute(proposal(call("c", "copy"), id="p2"), scope=a)
    assert second.results[0].output == {"user": "alice", "token": REDACTED}
    rt.execute(proposal(call("x", "ping"), id="p3"), scope={"tenant": "B"})
    rt.close()
    text = log.read_text()
    assert SECRET not in text
    snapshots = [json.loads(line) for line in text.splitlines() if '"state_snapshot"' in line]
    assert snapshots[1]["data"]["state"]["session.alice"]["token"] == REDACTED
    assert rt.state.get("backup", tenant="A")["token"] == SECRET  # (kept as it is)
    # once the state no longer holds it, it is forgotten
    rt.state.delete("session.alice", tenant="A")
    rt.state.delete("backup", tenant="A")
    assert rt.state_secrets("A") == [] and rt.state_secrets("B") == []


def test_a_secret_given_earlier_in_a_session_stays_out_of_its_later_runs(tmp_path: Path) -> None:
    """A token given to `login` was redacted in that run, but a later call of the same
    session that quoted it (an agent echoing what it was told) wrote it in clear in its
    result and its events (a red-team trial, through the MCP proxy and the agent loop, where
    every call is a run of its own). A session remembers what its runs kept out; another
    tenant's run in it neither adds to nor learns from that (its guesses would come back
    `[REDACTED]`), and another session has none of it."""
    log = tmp_path / "run.jsonl"
    rt = Runtime(events=EventLog([JsonlSink(log)]))
    rt.register_tool("login", lambda user, token: "ok", LOGIN)
    rt.register_tool("echo", lambda text: text)
    a = {"tenant": "A"}
    session = rt.open_session(tenant="A")
    rt.execute(
        proposal(call("l", "login", params={"user": "alice", "token": SECRET})),
        session=session,
        scope=a,
    )
    quoted = {"text": f"the token is {SECRET}"}
    later = rt.execute(
        proposal(call("e", "echo", params=quoted), id="p2"), session=session, scope=a
    )
    assert later.results[0].output == f"the token is {REDACTED}"
    other = rt.execute(proposal(call("e", "echo", params=quoted), id="p3"), scope=a)
    assert other.results[0].output == quoted["text"]  # (no session: nothing was given it)
    probe = rt.execute(
        proposal(call("e", "echo", params=quoted), id="p4"), session=session, scope={"tenant": "B"}
    )
    assert probe.results[0].status.value == "rejected" and REDACTED not in str(probe.results)
    rt.close()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    proposal_of = {
        e["trace_id"]: e["data"]["proposal"]["id"]
        for e in events
        if e["kind"] == "proposal_received"
    }
    in_session = [e for e in events if proposal_of[e["trace_id"]] in ("p", "p2")]
    assert len(in_session) > 10 and SECRET not in json.dumps(in_session)
    assert SECRET in json.dumps([e for e in events if proposal_of[e["trace_id"]] == "p3"])


def test_an_approval_request_does_not_show_a_secret_another_parameter_quotes() -> None:
    """The person asked saw a secret parameter `[REDACTED]` in its place, but in clear where
    another parameter quoted it (a note repeating the token): they see what events show."""
    asked: list[Any] = []

    def ask(request: ApprovalRequest) -> bool:
        asked.append(dict(request.parameters))
        return False

    rt = Runtime(approval=CallbackGate(ask))
    rt.register_tool("login", lambda user, token, nested=None: "ok", LOGIN)
    rt.add_policy(ir.CelPolicy(name="watch", tools=["login"], effect="require_approval"))
    quoting = {"user": f"the token is {SECRET}", "token": SECRET}
    rt.execute(proposal(call("a", "login", params=quoting, failure_behavior="skip")))
    assert asked == [{"user": f"the token is {REDACTED}", "token": REDACTED}]
