"""The assistant loop with scripted turns in every format, and against a local HTTP server
that speaks OpenAI chat completions."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from carlang_runtime.agents import AgentEvent, AgentLoop, OpenAIChatGenerator, ScriptedGenerator
from carlang_runtime.engine import CancelToken

from tests.agents.test_turns import FORMATS, turn_in


def final(format: str, text: str) -> Any:
    return turn_in(format, [], text)


@pytest.mark.parametrize("format", FORMATS)
def test_scripted_loop_runs_calls_and_feeds_results_back(format: str, runtime: Any) -> None:
    script = ScriptedGenerator(
        [
            turn_in(
                format,
                [
                    ("c1", "read_file", {"path": "notes/a.txt"}),
                    ("c2", "write_file", {"path": "notes/b.txt", "content": "beta"}),
                ],
            ),
            turn_in(format, [("c3", "write_file", {"path": "/etc/passwd", "content": "x"})]),
            final(format, "done: copied"),
        ],
        format,
    )
    events: list[AgentEvent] = []
    outcome = AgentLoop(runtime, script, capability="agent", on_event=events.append).run(
        "copy a to b"
    )
    assert outcome.status == "success"
    assert outcome.summary == "done: copied"
    assert outcome.turns == 3
    assert outcome.tools_called == ["read_file", "write_file"]
    assert runtime.files["notes/b.txt"] == "beta"
    assert "/etc/passwd" not in runtime.files
    kinds = [e.kind for e in events]
    assert kinds == [
        "tool_call",
        "tool_call",
        "tool_result",
        "tool_result",
        "tool_call",
        "tool_result",
        "text",
        "done",
    ]
    denial = events[5].data
    assert denial["ok"] is False and "write only under notes/" in denial["content"]
    # the model saw the observations of turn 1 in its second request
    seen = json.dumps(script.requests[1][0])
    assert "alpha" in seen and ("c1" in seen)
    # only the capability's tools were offered
    offered = json.dumps(script.requests[0][1])
    assert "read_file" in offered and "shell" not in offered


def test_a_tool_outside_the_capability_is_refused_and_the_loop_goes_on(runtime: Any) -> None:
    """A tool the model was not offered is, to it, no tool: 'unknown tool', as the MCP proxy
    answers (the capability's own refusal named it, and the capability)."""
    script = ScriptedGenerator(
        [turn_in("openai", [("c", "shell", {"cmd": "rm -rf /"})]), final("openai", "ok")]
    )
    outcome = AgentLoop(runtime, script, capability="agent").run("go")
    assert outcome.status == "success" and outcome.tools_called == []
    tool_message = script.requests[1][0][-1]
    assert tool_message["tool_call_id"] == "c"
    assert "unknown tool 'shell'" in tool_message["content"]
    assert "capability" not in tool_message["content"]


def test_malformed_arguments_are_fed_back_not_fatal(runtime: Any) -> None:
    bad = {
        "role": "assistant",
        "tool_calls": [
            {"id": "b", "type": "function", "function": {"name": "read_file", "arguments": "{oops"}}
        ],
    }
    script = ScriptedGenerator([bad, final("openai", "sorry")])
    outcome = AgentLoop(runtime, script).run("go")
    assert outcome.status == "success"
    assert "arguments are not JSON" in script.requests[1][0][-1]["content"]


def test_max_turns_error_and_cancel(runtime: Any) -> None:
    looping = ScriptedGenerator(
        [turn_in("openai", [(f"c{i}", "list_dir", {"path": "notes"})]) for i in range(5)]
    )
    outcome = AgentLoop(runtime, looping, max_turns=2).run("go")
    assert (outcome.status, outcome.turns, outcome.summary) == (
        "max_turns",
        2,
        "stopped after 2 turns without finishing",
    )
    assert outcome.tools_called == ["list_dir", "list_dir"]

    empty = ScriptedGenerator([])
    errors: list[AgentEvent] = []
    failed = AgentLoop(runtime, empty, on_event=errors.append).run("go")
    assert failed.status == "error" and failed.summary.startswith(
        "inference failed: the script has no turn 1"
    )
    assert errors[-1].kind == "error"

    token = CancelToken()
    token.cancel("user pressed stop")
    cancelled = AgentLoop(runtime, ScriptedGenerator([final("openai", "x")]), cancel=token).run(
        "go"
    )
    assert (cancelled.status, cancelled.turns, cancelled.summary) == (
        "cancelled",
        0,
        "user pressed stop",
    )


def test_unknown_capability_is_a_clear_error(runtime: Any) -> None:
    from carlang_runtime.errors import CarlangRuntimeError

    with pytest.raises(CarlangRuntimeError, match="no capability 'nope' \\(capabilities: agent\\)"):
        AgentLoop(runtime, ScriptedGenerator([]), capability="nope")


# -- a local OpenAI-compatible server ------------------------------------------------------------


class _FakeModel(BaseHTTPRequestHandler):
    """Answers chat completions like a model that reads a file, then answers with its text."""

    requests: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        )
        last = body["messages"][-1]
        if last["role"] == "tool":
            message = {"role": "assistant", "content": f"the file says {last['content']}"}
        else:
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_abc",
                        "type": "function",
                        "function": {"name": "read_file", "arguments": '{"path": "notes/a.txt"}'},
                    }
                ],
            }
        reply = json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def model_url() -> Iterator[str]:
    _FakeModel.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeModel)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_compatible_http_model(runtime: Any, model_url: str) -> None:
    generator = OpenAIChatGenerator(model_url, "local-model", api_key="k")
    outcome = AgentLoop(runtime, generator, capability="agent").run("what is in notes/a.txt?")
    assert outcome.status == "success"
    assert outcome.summary == "the file says alpha"
    first = _FakeModel.requests[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer k"
    assert first["body"]["model"] == "local-model" and first["body"]["temperature"] == 0
    assert {t["function"]["name"] for t in first["body"]["tools"]} == {
        "read_file",
        "write_file",
        "list_dir",
    }


class _EchoingRefusal(BaseHTTPRequestHandler):
    """A server that refuses every request and echoes its headers, key included."""

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        sent = self.headers["Authorization"]  # "Bearer sk-secret-123456"
        body = ("x" * (500 - 16) + sent + " was refused").encode()  # the cut: mid-key
        self.send_response(401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_refusal_that_echoes_the_api_key_never_shows_it(runtime: Any) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingRefusal)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        generator = OpenAIChatGenerator(url, "m", api_key="sk-secret-123456")
        outcome = AgentLoop(runtime, generator).run("hi")
    finally:
        server.shutdown()
        server.server_close()
    assert outcome.status == "error" and "answered 401" in outcome.summary
    # the key straddles the 500-character cut: neither half shows
    assert "sk-secret" not in outcome.summary and "123456" not in outcome.summary


def test_unreachable_model_ends_with_error(runtime: Any) -> None:
    generator = OpenAIChatGenerator("http://127.0.0.1:9/v1", "m", timeout=2)
    outcome = AgentLoop(runtime, generator).run("hi")
    assert outcome.status == "error" and "inference failed: cannot reach" in outcome.summary


def test_a_refused_call_leaves_the_other_calls_of_its_turn_their_own_results(
    runtime: Any,
) -> None:
    """CAR runs a turn's calls one by one: a refusal is that call's observation; the calls
    before it stay done (not rolled back, not reported failed) and the ones after it run."""
    script = ScriptedGenerator(
        [
            turn_in(
                "openai",
                [
                    ("c1", "write_file", {"path": "notes/b.txt", "content": "beta"}),
                    ("c2", "write_file", {"path": "/etc/passwd", "content": "x"}),
                    ("c3", "write_file", {"path": "notes/c.txt", "content": "gamma"}),
                ],
            ),
            final("openai", "done"),
        ]
    )
    events: list[AgentEvent] = []
    outcome = AgentLoop(runtime, script, capability="agent", on_event=events.append).run("go")
    assert outcome.tools_called == ["write_file", "write_file"]
    assert runtime.files["notes/b.txt"] == "beta" and runtime.files["notes/c.txt"] == "gamma"
    results = {e.data["id"]: e.data for e in events if e.kind == "tool_result"}
    assert [results[c]["ok"] for c in ("c1", "c2", "c3")] == [True, False, True]
    assert json.loads(results["c1"]["content"]) == {"written": 4}
    assert "write only under notes/" in results["c2"]["content"]
    seen = {m["tool_call_id"]: m["content"] for m in script.requests[1][0] if m["role"] == "tool"}
    assert json.loads(seen["c3"]) == {"written": 5}


LIMITS = """
tool w(n: int)
tool r(n: int) { read_only }
capability agent {
  tools allow w, r
  max_actions 2
}
budget tight { max_tool_calls 3 }
policy twice: deny r when history.filter(h, h.tool == "r" && h.status == "succeeded").size() >= 2
  message "two reads per session"
"""


def _limits_runtime(ran: list[int]) -> Any:
    from carlang_runtime.engine import Runtime

    from tests.helpers import compile_diagnostics

    runtime = Runtime.from_program(compile_diagnostics(LIMITS).program)
    for tool in ("w", "r"):
        runtime.register_tool(tool, lambda n: ran.append(n) or n)
    return runtime


@pytest.mark.parametrize("tool", ["w", "r"])
def test_a_turn_counts_against_max_actions_as_a_whole(tool: str) -> None:
    ran: list[int] = []
    calls = [(f"c{i}", tool, {"n": i}) for i in range(3)]
    script = ScriptedGenerator([turn_in("openai", calls), final("openai", "ok")])
    AgentLoop(_limits_runtime(ran), script, capability="agent").run("go")
    assert ran == []  # 3 calls exceed max_actions 2: none runs, as one proposal would have
    seen = script.requests[1][0][-1]["content"]
    assert "3 actions exceed" in seen and "max_actions 2" in seen


def test_the_budget_counts_the_whole_conversation() -> None:
    ran: list[int] = []
    turns = [
        turn_in("openai", [(f"c{t}{i}", "w", {"n": 10 * t + i}) for i in range(2)])
        for t in range(2)
    ]
    script = ScriptedGenerator([*turns, final("openai", "ok")])
    AgentLoop(_limits_runtime(ran), script, budget="tight").run("go")
    assert ran == [0, 1, 10]  # 3 tool calls, across two turns
    seen = script.requests[2][0][-1]["content"]
    assert "budget 'tight' is spent: 3 tool calls per session" in seen


def test_a_tighter_budget_replays_as_the_loop_would_spend_it(tmp_path: Path) -> None:
    """The loop's proposals say their budget is the conversation's: replaying its log with
    a budget of 1 call denies the calls past the first, as the loop would have."""
    from carlang_runtime.engine import EventLog, JsonlSink, Runtime
    from carlang_runtime.replay import Judge, read_runs, replay

    from tests.helpers import compile_diagnostics

    log = tmp_path / "run.jsonl"
    runtime = Runtime.from_program(
        compile_diagnostics(LIMITS).program, events=EventLog([JsonlSink(log)])
    )
    runtime.register_tool("w", lambda n: n)
    turn = turn_in("openai", [(f"c{i}", "w", {"n": i}) for i in range(3)])
    AgentLoop(runtime, ScriptedGenerator([turn, final("openai", "ok")]), budget="tight").run("go")
    runtime.close()
    tighter = compile_diagnostics(LIMITS.replace("max_tool_calls 3", "max_tool_calls 1"))
    report = replay(read_runs([log]), Judge(tighter.program, "tighter"))
    assert [(c.action_id, c.after.policy) for c in report.changes] == [
        ("c1", "budget:tight"),
        ("c2", "budget:tight"),
    ]


def test_read_only_calls_run_in_order_each_seeing_the_ones_before() -> None:
    """A history rule sees the calls of the same turn that ran before (they run one by one,
    on the caller's thread: a sync tool may hold thread-bound resources)."""
    import threading

    ran: list[int] = []
    runtime = _limits_runtime(ran)
    threads: set[int] = set()
    runtime.register_tool("r", lambda n: threads.add(threading.get_ident()) or ran.append(n) or n)
    calls = [(f"c{i}", "r", {"n": i}) for i in range(4)]
    script = ScriptedGenerator([turn_in("openai", calls), final("openai", "ok")])
    AgentLoop(runtime, script).run("go")
    assert ran == [0, 1] and threads == {threading.get_ident()}
    seen = {m["tool_call_id"]: m["content"] for m in script.requests[1][0] if m["role"] == "tool"}
    assert "two reads per session" in seen["c2"] and "two reads per session" in seen["c3"]


def test_read_only_calls_of_a_turn_fail_alone() -> None:
    from carlang_runtime.engine import Runtime

    from tests.helpers import compile_diagnostics

    program = compile_diagnostics(
        """
tool look(path: string) -> string { read_only }
policy no_env: deny look when params.path.endsWith(".env")
  message "env files hold secrets"
"""
    ).program
    runtime = Runtime.from_program(program)

    def look(path: str) -> str:
        if path == "gone.txt":
            raise FileNotFoundError(path)
        return f"saw {path}"

    runtime.register_tool("look", look)
    calls = [
        ("a", "look", {"path": "x.env"}),
        ("b", "look", {"path": "gone.txt"}),
        ("c", "look", {"path": "y.txt"}),
    ]
    script = ScriptedGenerator([turn_in("openai", calls), final("openai", "ok")])
    outcome = AgentLoop(runtime, script).run("go")
    assert outcome.tools_called == ["look"]
    seen = {m["tool_call_id"]: m["content"] for m in script.requests[1][0] if m["role"] == "tool"}
    assert "env files hold secrets" in seen["a"] and seen["c"] == "saw y.txt"
    assert json.loads(seen["b"])["status"] == "failed"  # its own status, not "skipped"


def test_the_live_view_never_shows_secret_or_redacted_arguments() -> None:
    from carlang_runtime.engine import Runtime

    from tests.helpers import compile_diagnostics

    program = compile_diagnostics(
        """
tool login(user: string, token: string secret)
tool send(to: string, card: map[any])
redact params.card.number
"""
    ).program
    runtime = Runtime.from_program(program)
    runtime.register_tool("login", lambda user, token: "in")
    runtime.register_tool("send", lambda to, card: "sent")
    calls = [
        ("a", "login", {"user": "bob", "token": "tok-123"}),
        ("b", "send", {"to": "x", "card": {"number": "4111-1111", "name": "B"}}),
    ]
    events: list[AgentEvent] = []
    script = ScriptedGenerator([turn_in("openai", calls), final("openai", "ok")])
    AgentLoop(runtime, script, on_event=events.append).run("go")
    shown = [e.data["params"] for e in events if e.kind == "tool_call"]
    assert shown == [
        {"user": "bob", "token": "[REDACTED]"},
        {"to": "x", "card": {"number": "[REDACTED]", "name": "B"}},
    ]


def test_a_call_id_used_twice_in_a_turn_runs_once() -> None:
    ran: list[int] = []
    calls = [("x", "r", {"n": 1}), ("x", "w", {"n": 2})]
    script = ScriptedGenerator([turn_in("openai", calls), final("openai", "ok")])
    events: list[AgentEvent] = []
    outcome = AgentLoop(_limits_runtime(ran), script, on_event=events.append).run("go")
    assert ran == [1] and outcome.tools_called == ["r"]
    results = [e.data for e in events if e.kind == "tool_result"]
    assert [(r["name"], r["ok"]) for r in results] == [("r", True), ("w", False)]
    assert "call id 'x' is used twice in this turn" in results[1]["content"]


def test_an_argument_the_tool_does_not_declare_is_refused(runtime: Any) -> None:
    """From a model, a misspelt argument would run the call on the parameter's default (or
    without it): refused with the closest name, the call not run."""
    calls = [("c", "write_file", {"path": "notes/b.txt", "contents": "beta"})]
    script = ScriptedGenerator([turn_in("openai", calls), final("openai", "ok")])
    outcome = AgentLoop(runtime, script, capability="agent").run("go")
    assert outcome.tools_called == [] and "notes/b.txt" not in runtime.files
    seen = script.requests[1][0][-1]["content"]
    assert "tool 'write_file' has no parameter 'contents' (did you mean 'content'?)" in seen


def test_a_tool_the_program_does_not_have_is_unknown_not_outside_the_capability(
    runtime: Any,
) -> None:
    """A model that invents a tool (or misspells one) hears that it does not exist, with the
    closest tool it was offered, not that a capability forbids it."""
    calls = [("c", "read_fil", {"path": "notes/a.txt"}), ("d", "teleport", {})]
    script = ScriptedGenerator([turn_in("openai", calls), final("openai", "ok")])
    outcome = AgentLoop(runtime, script, capability="agent").run("go")
    assert outcome.tools_called == []
    first, second = script.requests[1][0][-2:]
    assert "unknown tool 'read_fil' (did you mean 'read_file'?)" in first["content"]
    assert "unknown tool 'teleport'" in second["content"]
    assert "capability" not in first["content"] + second["content"]


def test_the_loops_own_refusals_are_in_the_event_log(tmp_path: Path) -> None:
    """A call the loop refuses (the budget, a malformed call) is an attempt the audit trail
    keeps, like a policy's refusal."""
    from carlang_runtime.engine import EventLog, JsonlSink, Runtime

    from tests.helpers import compile_diagnostics

    log = tmp_path / "run.jsonl"
    runtime = Runtime.from_program(
        compile_diagnostics(LIMITS).program, events=EventLog([JsonlSink(log)])
    )
    runtime.register_tool("w", lambda n: n)
    bad = {
        "role": "assistant",
        "tool_calls": [
            {"id": "m", "type": "function", "function": {"name": "w", "arguments": "{"}}
        ],
    }
    turns = [turn_in("openai", [(f"c{i}", "w", {"n": i}) for i in range(4)]), bad]
    script = ScriptedGenerator([*turns, final("openai", "ok")])
    AgentLoop(runtime, script, budget="tight").run("go")
    runtime.close()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    rejected = {
        e["action_id"]: e["data"]["error"] for e in events if e["kind"] == "action_rejected"
    }
    assert rejected["c3"] == "budget 'tight' is spent: 3 tool calls per session"
    assert "arguments are not JSON" in rejected["m"]


NUMBERS = """
tool pay(amount: float, to: string) -> object { description "pay" }
policy too_big: deny pay when params.amount > 1000.0
  message "too big"
"""


def test_nan_infinity_and_deep_arguments_are_answered_and_never_run() -> None:
    """A NaN amount passed `deny when params.amount > 1000.0` and the tool got nan; arguments
    nested 2,000 deep made the loop raise RecursionError. Each is a malformed call now,
    answered with its problem, and the other calls of the turn run."""
    from carlang_runtime.engine import Runtime

    from tests.agents.test_turns import _nested
    from tests.helpers import compile_diagnostics

    runtime = Runtime.from_program(compile_diagnostics(NUMBERS).program)
    paid: list[Any] = []
    runtime.register_tool("pay", lambda amount, to: paid.append(amount) or {"paid": amount})

    def call(call_id: str, arguments: str) -> dict[str, Any]:
        return {
            "id": call_id,
            "type": "function",
            "function": {"name": "pay", "arguments": arguments},
        }

    turn = {
        "role": "assistant",
        "tool_calls": [
            call("nan", '{"amount": NaN, "to": "x"}'),
            call("inf", '{"amount": Infinity, "to": "x"}'),
            call("deep", '{"amount": 1.0, "to": ' + "[" * 50_000 + "]" * 50_000 + "}"),
            call("ok", '{"amount": 5.0, "to": "x"}'),
        ],
    }
    script = ScriptedGenerator([turn, final("openai", "done")])
    outcome = AgentLoop(runtime, script).run("go")
    assert outcome.status == "success" and paid == [5.0]
    seen = {m["tool_call_id"]: m["content"] for m in script.requests[1][0] if m["role"] == "tool"}
    assert "the constant NaN is not JSON" in seen["nan"]
    assert "the constant Infinity is not JSON" in seen["inf"]
    assert "nested too deeply (more than 128 levels)" in seen["deep"]

    anthropic = {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "n", "name": "pay", "input": {"amount": float("nan")}},
            {"type": "tool_use", "id": "d", "name": "pay", "input": {"to": _nested(2000)}},
        ],
    }
    script = ScriptedGenerator([anthropic, final("anthropic", "done")], "anthropic")
    outcome = AgentLoop(runtime, script).run("go")
    assert outcome.status == "success" and paid == [5.0]
    blocks = script.requests[1][0][-1]["content"]
    assert "amount is NaN" in blocks[0]["content"] and blocks[0]["is_error"]
    assert "nested too deeply" in blocks[1]["content"] and blocks[1]["is_error"]


def test_a_model_reply_nested_too_deeply_is_an_inference_error(runtime: Any) -> None:
    """A server's reply nested past JSON's 128 levels raised RecursionError out of the loop;
    one that is not JSON at all was reported as 'cannot reach' the server."""
    from unittest import mock

    for body, said in (
        (b'{"choices": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        (b"<html>busy</html>", "did not answer JSON"),
    ):
        reply = mock.MagicMock()
        reply.__enter__.return_value.read.return_value = body
        with mock.patch("urllib.request.urlopen", return_value=reply):
            generator = OpenAIChatGenerator("http://127.0.0.1:9/v1", "m")
            outcome = AgentLoop(runtime, generator).run("hi")
        assert outcome.status == "error", outcome.summary
        assert said in outcome.summary and "cannot reach" not in outcome.summary


def test_langchain_invalid_calls_and_numeric_ids_are_answered(runtime: Any) -> None:
    """LangChain's `invalid_tool_calls` were dropped (the turn read as a final answer); a
    numeric call id became `call_1_0`, so the result answered a call the model never made."""
    invalid = {
        "type": "ai",
        "content": "",
        "tool_calls": [],
        "invalid_tool_calls": [
            {"name": "write_file", "args": '{"path": ', "id": "lc1", "error": "not valid JSON"}
        ],
    }
    script = ScriptedGenerator([invalid, final("langchain", "done")], "langchain")
    outcome = AgentLoop(runtime, script, capability="agent").run("go")
    assert (outcome.status, outcome.turns) == ("success", 2)
    answer = script.requests[1][0][-1]
    assert answer["tool_call_id"] == "lc1" and answer["status"] == "error"
    assert "arguments are not JSON" in answer["content"]

    numbered = turn_in("openai", [(7, "read_file", {"path": "notes/a.txt"})])  # type: ignore[list-item]
    script = ScriptedGenerator([numbered, final("openai", "done")])
    AgentLoop(runtime, script, capability="agent").run("go")
    *_, assistant, tool = script.requests[1][0]
    assert assistant["tool_calls"][0]["id"] == "7"
    assert tool == {"role": "tool", "tool_call_id": "7", "content": "alpha"}


def test_the_loop_runs_only_tools_it_offered() -> None:
    """The tools offered to the model are the ones it may call: a tool the runtime gained
    after the loop was made (so never offered) is unknown, even without a capability."""
    from carlang_runtime.engine import Runtime
    from carlang_runtime.ir import ToolSchema

    from tests.helpers import compile_diagnostics

    runtime = Runtime.from_program(compile_diagnostics("tool look(path: string)\n").program)
    ran: list[str] = []
    runtime.register_tool("look", lambda path: ran.append("look") or "seen")
    script = ScriptedGenerator(
        [
            turn_in("openai", [("a", "look", {"path": "x"}), ("b", "wipe", {})]),
            final("openai", "ok"),
        ]
    )
    loop = AgentLoop(runtime, script)
    runtime.declare_tool(ToolSchema(name="wipe"))
    runtime.register_tool("wipe", lambda: ran.append("wipe") or "wiped")
    outcome = loop.run("go")
    assert ran == ["look"] and outcome.tools_called == ["look"]
    assert "unknown tool 'wipe'" in script.requests[1][0][-1]["content"]


COLLIDE = """
tool fs__delete(path: string) -> string { description "delete a file" }
tool fs.delete() {
  description "dotted delete"
  schema { type: "object", properties: { path: { type: "string" } }, required: ["path"] }
}
capability dotted { tools allow fs.delete }
capability plain { tools allow fs__delete }
"""


@pytest.mark.parametrize(("capability", "runs"), [("dotted", "fs.delete"), ("plain", "fs__delete")])
def test_a_call_means_the_tool_offered_under_its_name(capability: str, runs: str) -> None:
    """`fs__delete` and `fs.delete` are both `fs__delete` to a model: under a capability
    that offers one, the call is that one (it was the plain tool, whichever was offered);
    offering both is refused."""
    from carlang_runtime.engine import Runtime
    from carlang_runtime.errors import CarlangRuntimeError

    from tests.helpers import compile_diagnostics

    runtime = Runtime.from_program(compile_diagnostics(COLLIDE).program)
    ran: list[str] = []
    runtime.register_tool("fs__delete", lambda path: ran.append("fs__delete") or "plain")
    runtime.register_tool("fs.delete", lambda path: ran.append("fs.delete") or "dotted")
    script = ScriptedGenerator(
        [turn_in("openai", [("c", "fs__delete", {"path": "x"})]), final("openai", "ok")]
    )
    outcome = AgentLoop(runtime, script, capability=capability).run("go")
    assert ran == [runs] and outcome.tools_called == [runs]
    with pytest.raises(CarlangRuntimeError, match="are both offered to models as 'fs__delete'"):
        AgentLoop(runtime, ScriptedGenerator([]))


def test_what_the_loop_shows_keeps_every_secret_of_the_conversation_out() -> None:
    """Events and outcome scrub by value, over the conversation (as the event log does):
    an undeclared argument, the model's text, a later call, the final answer. The history
    keeps the model's own words: it is what the model is sent."""
    from carlang_runtime.engine import Runtime

    from tests.helpers import compile_diagnostics

    program = compile_diagnostics(
        "tool login(user: string, token: string secret)\ntool say(text: string)\n"
    ).program
    runtime = Runtime.from_program(program)
    runtime.register_tool("login", lambda user, token: f"in as {user} with {token}")
    runtime.register_tool("say", lambda text: text)
    secret = "tok-98765"
    turns = [
        turn_in("openai", [("a", "login", {"user": "bob", "token": secret, "x": secret})], secret),
        turn_in("openai", [("b", "say", {"text": secret})]),
        final("openai", f"all done, {secret}"),
    ]
    events: list[AgentEvent] = []
    script = ScriptedGenerator(turns)
    outcome = AgentLoop(runtime, script, on_event=events.append).run("go")
    assert secret not in json.dumps([e.data for e in events])
    assert secret not in json.dumps(outcome.to_dict())
    assert outcome.summary == "all done, [REDACTED]"
    assert [c["arguments"] for c in outcome.calls] == [
        {"user": "bob", "token": "[REDACTED]", "x": "[REDACTED]"},
        {"text": "[REDACTED]"},
    ]
    assert secret in json.dumps(outcome.messages)  # (the model's own turns, as sent to it)
