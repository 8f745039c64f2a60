"""`carlang mcp proxy` over stdio, in-process: a message whose id is not a string or an
integer (MCP's rule; JSON-RPC alone allows null and numbers, and an array or an object is
not even hashable) is a JSON-RPC -32600 invalid request with id null, never a crash that ends
every call in flight; so is a method that is not a string. A notification or an answer that
is malformed in the same ways is passed over (or fails the question it answers)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from carlang_runtime.engine import Runtime
from carlang_runtime.mcp.proxy import PolicyProxy, StdioSession

from carlang.compiler import compile_text
from tests.mcp.conftest import initialize

# (the server is declared, never started: nothing here calls a tool)
PROGRAM = """
mcp_server toy {
  command "no-such-toy-server"
}
tool toy.add() {
  schema { type: "object", properties: { a: { type: "integer" } } }
}
capability agent { tools allow toy.add }
"""


@pytest.fixture
def session(tmp_path: Path) -> Any:
    result = compile_text(PROGRAM, root=tmp_path)
    errors = [d for d in result.diagnostics.items if d.severity == "error"]
    assert not errors and result.program is not None, errors
    runtime = Runtime.from_program(result.program)
    proxy = PolicyProxy(result.program, runtime, capability="agent")
    written: list[dict[str, Any]] = []
    stdio = StdioSession(proxy, lambda data: written.append(json.loads(data)))
    stdio.written = written  # type: ignore[attr-defined]
    yield stdio
    runtime.close()


async def _exchange(session: StdioSession, *messages: Any) -> list[dict[str, Any]]:
    session.receive(initialize(0))
    for message in messages:
        session.receive(message)
    await session.finish()
    answers: list[dict[str, Any]] = session.written  # type: ignore[attr-defined]
    return answers


def _ping(request_id: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "ping"}


@pytest.mark.parametrize(
    ("request_id", "said"),
    [
        ({"a": 1}, "not an object"),
        ([1], "not an array"),
        (True, "not true"),
        (1.5, "not 1.5"),
        (1.0, "not 1.0"),
        (None, "not null"),
    ],
)
def test_a_request_whose_id_is_not_a_string_or_an_integer_is_invalid(
    session: StdioSession, request_id: Any, said: str
) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "toy.add", "arguments": {"a": 1}},
    }
    answers = asyncio.run(_exchange(session, _ping(request_id), call, _ping(7)))
    refused = [a for a in answers if a["id"] is None]
    assert len(refused) == 2, answers
    for answer in refused:
        assert answer["error"]["code"] == -32600
        assert answer["error"]["message"] == (
            f"invalid request: the id must be a string or an integer (MCP), {said}"
        )
    # the session goes on: the next request is answered
    assert {"jsonrpc": "2.0", "id": 7, "result": {}} in answers


def test_a_method_that_is_not_a_string_is_invalid(session: StdioSession) -> None:
    answers = asyncio.run(
        _exchange(session, {"jsonrpc": "2.0", "id": 5, "method": 7}, {"method": ["x"]})
    )
    by_id = {a["id"]: a for a in answers}
    assert by_id[5]["error"] == {
        "code": -32600,
        "message": "invalid request: the method must be a string, not a number",
    }
    assert by_id[None]["error"]["code"] == -32600


@pytest.mark.parametrize(
    "params", [[1], {"requestId": [1]}, {"requestId": {"a": 1}}, {"requestId": None}, "x"]
)
def test_a_malformed_cancellation_is_passed_over(session: StdioSession, params: Any) -> None:
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params}
    answers = asyncio.run(_exchange(session, cancel, _ping(3)))
    assert [a["id"] for a in answers] == [0, 3]  # (a notification is never answered)


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ({"error": "boom"}, 'a malformed error: "boom"'),
        ({"error": None}, "a malformed error: null"),
        ({"error": [1]}, "a malformed error: [1]"),
        ({"error": {"code": 1, "message": "no"}}, "no"),
        ({"result": [1]}, "its answer's result is an array, not an object"),
    ],
)
def test_a_malformed_answer_to_a_question_fails_the_question(
    session: StdioSession, answer: dict[str, Any], said: str
) -> None:
    async def scenario() -> None:
        question = asyncio.ensure_future(session.request("elicitation/create", {}))
        await asyncio.sleep(0)
        asked = session.written[-1]  # type: ignore[attr-defined]
        assert asked["method"] == "elicitation/create"
        session.receive({"jsonrpc": "2.0", "id": [asked["id"]], **answer})  # (not its id)
        session.receive({"jsonrpc": "2.0", "id": {"a": 1}, **answer})
        assert not question.done()
        session.receive({"jsonrpc": "2.0", "id": asked["id"], **answer})
        with pytest.raises(RuntimeError) as raised:
            await question
        assert str(raised.value) == said

    asyncio.run(scenario())
