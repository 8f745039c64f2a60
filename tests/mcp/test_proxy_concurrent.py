"""`carlang mcp proxy` under calls sent without waiting for answers (JSON-RPC allows it; the
SDK's clients do it from concurrent tasks): a session's budget and history rules hold as they
do for calls sent one at a time, calls still run alongside each other, and calls in flight
when the client closes its input are answered before the proxy exits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from carlang.cli import app
from tests.conftest import ROOT
from tests.mcp.conftest import initialize, needs_sdk, toy_command

# slow: the proxy as a subprocess with a real MCP server, per test (the default run stays under three minutes; CI runs these)
pytestmark = [needs_sdk, pytest.mark.slow]
runner = CliRunner()

POLICIES = """
capability agent { tools allow toy.slow, toy.add, toy.echo_text }
budget three { max_tool_calls 3 }
policy too_big: deny toy.add when params.a > 100
  message "a is too big"
"""

#: One call of toy.slow per session; at most two adds; an echo of "secret" asks a person.
HISTORY = """
policy slow_once: deny toy.slow when history.exists(h, h.tool == "toy.slow")
  message "one slow call per session"
policy two_adds: deny toy.add when history.filter(h, h.tool == "toy.add").size() >= 2
  message "two adds per session"
policy ask_secret: require_approval toy.echo_text when params.text == "secret"
  message "secret text needs a person"
policy echo_once: deny toy.echo_text when history.exists(h, h.tool == "toy.echo_text")
  message "one echo per session"
policy not_during_slow: deny toy.add
  when history.exists(h, h.tool == "toy.slow" && h.status == "running")
  message "not while a slow call runs"
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}"}


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("proxy_concurrent")
    toy = folder / "toy.car"
    result = runner.invoke(
        app, ["mcp", "import", "--name", "toy", "-o", str(toy), "--", *toy_command()]
    )
    assert result.exit_code == 0, result.output
    budget = folder / "budget.car"
    budget.write_text('import "toy.car"\n' + POLICIES)
    history = folder / "history.car"
    history.write_text('import "toy.car"\n' + POLICIES + HISTORY)
    for path in (budget, history):
        checked = runner.invoke(app, ["check", str(path)])
        assert checked.exit_code == 0, checked.output
    return {"budget": budget, "history": history}


INITIALIZE = initialize()


def _call(request_id: Any, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    params = {"name": name, "arguments": arguments}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


class _Proxy:
    """A stdio proxy fed raw JSON-RPC lines through a pipe, without waiting for answers."""

    def __init__(self, program: Path, *extra: str, elicitation: bool = False) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "carlang", "mcp", "proxy", str(program), *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
        )
        initialize = json.loads(json.dumps(INITIALIZE))
        if elicitation:
            initialize["params"]["capabilities"] = {"elicitation": {}}
        self.send(initialize, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert self.read()["id"] == "init"

    def send(self, *messages: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        for message in messages:
            self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, self.stop()
        return dict(json.loads(line))

    def answers(self, count: int) -> dict[Any, dict[str, Any]]:
        found = {}
        for _ in range(count):
            answer = self.read()
            found[answer["id"]] = answer
        return found

    def stop(self) -> str:
        """Close the proxy's input; what it wrote on standard error."""
        try:
            _, stderr = self.process.communicate(timeout=30)
        finally:
            self.process.kill()
        return stderr.decode()


def _text(answer: dict[str, Any]) -> str:
    return "\n".join(c.get("text", "") for c in answer["result"]["content"])


def _ran(answers: dict[Any, dict[str, Any]]) -> list[Any]:
    return sorted(i for i, a in answers.items() if not a["result"]["isError"])


def test_calls_sent_together_cannot_overspend_the_session_budget(
    programs: dict[str, Path],
) -> None:
    """Six slow calls sent without waiting, with a budget of three calls and one spent: two
    run (alongside each other), four are refused. A call refused before it ran spends
    nothing."""
    proxy = _Proxy(programs["budget"], "--capability", "agent", "--budget", "three")
    try:
        proxy.send(_call("warm", "toy.add", {"a": 1, "b": 1}))  # (the server starts)
        assert not proxy.read()["result"]["isError"]
        started = time.monotonic()
        denied = _call(0, "toy.add", {"a": 500, "b": 1})  # refused by a policy: no spending
        proxy.send(denied, *(_call(n, "toy.slow", {"seconds": 0.8}) for n in range(1, 7)))
        answers = proxy.answers(7)
        elapsed = time.monotonic() - started
    finally:
        stderr = proxy.stop()
    assert "too_big" in _text(answers[0])
    assert len(_ran(answers)) == 2, answers
    for n in set(range(1, 7)) - set(_ran(answers)):
        assert "budget 'three' is spent: 3 tool calls per session" in _text(answers[n])
    assert elapsed < 1.4, f"the two calls did not run alongside each other ({elapsed:.2f}s)"
    assert "Traceback" not in stderr, stderr


def test_calls_sent_together_see_each_other_in_history(programs: dict[str, Path]) -> None:
    """A trace rule sees the session's calls still in flight: of four slow calls sent
    together under `deny toy.slow when history.exists(h, h.tool == "toy.slow")`, one runs; of
    four adds under 'at most two adds', two. Once a call ends, it is in history once (its
    in-flight entry gives way to its outcome)."""
    proxy = _Proxy(programs["history"], "--capability", "agent")
    try:
        proxy.send(*(_call(n, "toy.slow", {"seconds": 0.3}) for n in range(4)))
        slow = proxy.answers(4)
        proxy.send(*(_call(n, "toy.add", {"a": n, "b": 1}) for n in range(10, 14)))
        adds = proxy.answers(4)
        proxy.send(_call(20, "toy.slow", {"seconds": 0}))  # after the first one ended
        later = proxy.answers(1)
    finally:
        stderr = proxy.stop()
    assert len(_ran(slow)) == 1, slow
    for n in set(range(4)) - set(_ran(slow)):
        assert "slow_once: one slow call per session" in _text(slow[n])
    assert len(_ran(adds)) == 2, adds
    for n in set(range(10, 14)) - set(_ran(adds)):
        assert "two_adds: two adds per session" in _text(adds[n])
    assert "slow_once" in _text(later[20])
    assert "Traceback" not in stderr, stderr


def test_a_call_in_flight_has_status_running(programs: dict[str, Path]) -> None:
    """A call admitted and not ended is in history with status "running" (the runtime's
    word for it); once it ends, its outcome's."""
    proxy = _Proxy(programs["history"], "--capability", "agent")
    try:
        proxy.send(_call(1, "toy.slow", {"seconds": 0.5}), _call(2, "toy.add", {"a": 1, "b": 2}))
        together = proxy.answers(2)
        proxy.send(_call(3, "toy.add", {"a": 1, "b": 2}))
        after = proxy.answers(1)
    finally:
        proxy.stop()
    assert not together[1]["result"]["isError"]
    assert "not_during_slow: not while a slow call runs" in _text(together[2])
    assert not after[3]["result"]["isError"], after


def test_in_flight_entries_leave_history_when_their_calls_end(programs: dict[str, Path]) -> None:
    """Adds sent one at a time: the first two run and the third is refused, whatever the
    in-flight bookkeeping did (an entry left behind would refuse the second)."""
    proxy = _Proxy(programs["history"], "--capability", "agent")
    try:
        outcomes = []
        for n in range(3):
            proxy.send(_call(n, "toy.add", {"a": n, "b": 1}))
            outcomes.append(not proxy.read()["result"]["isError"])
    finally:
        proxy.stop()
    assert outcomes == [True, True, False]


def test_a_call_waiting_for_approval_holds_up_no_other_call_and_is_in_history(
    programs: dict[str, Path],
) -> None:
    """While the client's user is asked about one echo, the session's other calls are
    decided (not held up behind the question), and they see that echo in history."""
    proxy = _Proxy(programs["history"], "--capability", "agent", elicitation=True)
    try:
        proxy.send(_call(1, "toy.echo_text", {"text": "secret"}))
        question = proxy.read()
        assert question["method"] == "elicitation/create", question
        proxy.send(
            _call(2, "toy.echo_text", {"text": "hello"}), _call(3, "toy.add", {"a": 1, "b": 2})
        )
        meanwhile = proxy.answers(2)  # answered while the question is open
        proxy.send(
            {
                "jsonrpc": "2.0",
                "id": question["id"],
                "result": {"action": "accept", "content": {"approve": True}},
            }
        )
        approved = proxy.answers(1)
    finally:
        proxy.stop()
    assert "echo_once: one echo per session" in _text(meanwhile[2])
    assert not meanwhile[3]["result"]["isError"]
    assert not approved[1]["result"]["isError"], approved
    assert approved[1]["result"]["structuredContent"] == {"result": "secret"}


def test_calls_in_flight_when_input_ends_are_answered(programs: dict[str, Path]) -> None:
    """The client writes its requests and closes its input (`< requests.jsonl`, a pipe it
    closes): every request read is answered before the proxy exits, the calls still running
    included; a question the client can no longer answer is a refusal."""
    lines = [
        INITIALIZE,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        _call(1, "toy.slow", {"seconds": 0.3}),
        _call(2, "toy.add", {"a": 2, "b": 3}),
        {"jsonrpc": "2.0", "id": 3, "method": "tools/list"},
        _call(4, "toy.slow", {"seconds": 0.2}),
    ]
    text = "".join(json.dumps(line) + "\n" for line in lines)
    done = subprocess.run(
        [sys.executable, "-m", "carlang", "mcp", "proxy", str(programs["budget"])],
        input=text.encode(),
        capture_output=True,
        env=_env(),
        timeout=60,
    )
    answers = {a["id"]: a for a in map(json.loads, done.stdout.decode().splitlines())}
    assert sorted(answers, key=str) == sorted(["init", 1, 2, 3, 4], key=str), answers
    assert answers[1]["result"]["structuredContent"] == {"result": "slept"}
    assert answers[2]["result"]["structuredContent"] == {"result": 5}
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr.decode()

    # a client that declared elicitation, then closed its input: it cannot answer
    asking = json.loads(json.dumps(INITIALIZE))
    asking["params"]["capabilities"] = {"elicitation": {}}
    lines = [asking, _call(5, "toy.echo_text", {"text": "secret"})]
    done = subprocess.run(
        [sys.executable, "-m", "carlang", "mcp", "proxy", str(programs["history"])],
        input="".join(json.dumps(line) + "\n" for line in lines).encode(),
        capture_output=True,
        env=_env(),
        timeout=60,
    )
    answers = {a.get("id"): a for a in map(json.loads, done.stdout.decode().splitlines())}
    assert answers[5]["result"]["isError"], answers
    assert "approval refused" in _text(answers[5]) and "closed" in _text(answers[5])
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr.decode()


def test_a_call_waiting_for_its_rate_limit_holds_up_no_other_call(
    programs: dict[str, Path], tmp_path: Path
) -> None:
    """A call admitted and waiting for its tool's rate limit (a token bucket makes callers
    wait their turn) no longer holds the session's admission: the session's add is answered
    at once, not after the second slow call's wait."""
    toy = programs["budget"].parent / "toy.car"
    limited = tmp_path / "toy.car"
    limited.write_text(
        toy.read_text().replace(
            'description "Sleep, then answer."',
            # (10 s: on a loaded machine the add must still come in while the second waits)
            'description "Sleep, then answer."\n  rate 1 per 10s',
        )
    )
    program = tmp_path / "limited.car"
    program.write_text('import "toy.car"\n' + POLICIES)
    proxy = _Proxy(program, "--capability", "agent")
    try:
        proxy.send(_call(1, "toy.slow", {"seconds": 0}), _call(2, "toy.slow", {"seconds": 0}))
        first = proxy.read()
        proxy.send(_call(3, "toy.add", {"a": 1, "b": 2}))
        second, third = proxy.read(), proxy.read()
    finally:
        stderr = proxy.stop()
    assert (first["id"], second["id"], third["id"]) == (1, 3, 2)
    assert not third["result"]["isError"], third
    assert "Traceback" not in stderr, stderr
