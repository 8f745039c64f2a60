"""Turns in the shapes real stacks write besides the four formats: a whole Chat Completions
response, a LangChain message serialized by `dumpd` or `message_to_dict`, OpenAI's legacy
`function_call`, a call alone, another role's message, a value that is no message. Each was
read as a final answer without calls (exit 0, "tools called: none"), or failed only when
played (exit 1, after the turns before it ran): now a wrapper of one plain message is
unwrapped, and anything else is an error at its line and column before any turn is played."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from carlang_runtime.agents import AgentLoop, ScriptedGenerator, parse_turn
from carlang_runtime.agents.turns import TurnFormatError
from carlang_runtime.errors import CarlangRuntimeError
from typer.testing import CliRunner

from carlang.cli import app
from tests.agents.test_turn_format_mismatch import READ, _answering, _setup
from tests.agents.test_turns import FORMATS, turn_in

runner = CliRunner()

DONE = {"role": "assistant", "content": "done"}


def _completion(*messages: Any, **extra: Any) -> dict[str, Any]:
    choices = [{"index": i, "message": m, "finish_reason": "stop"} for i, m in enumerate(messages)]
    return {"id": "x", "object": "chat.completion", "choices": choices, **extra}


def _dumpd(kind: str, **kwargs: Any) -> dict[str, Any]:
    ids = ["langchain", "schema", "messages", kind]
    return {"lc": 1, "type": "constructor", "id": ids, "kwargs": kwargs}


def _refused(tmp_path: Path, script: Any) -> tuple[int, int, str]:
    """`carlang agent` on `script`: refused before any turn (exit 2, nothing played); the
    line, column and message of its error."""
    result = runner.invoke(app, _setup(tmp_path, script))
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and "Traceback" not in result.output
    said = re.search(r"turns\.json:(\d+):(\d+): error: (.*)", result.output, re.S)
    assert said is not None, result.output
    return int(said.group(1)), int(said.group(2)), " ".join(said.group(3).split())


def _line_of(tmp_path: Path, text: str) -> int:
    """The line (from 1) of the script that holds `text`."""
    lines = (tmp_path / "turns.json").read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line)


def _played(tmp_path: Path, script: Any) -> dict[str, Any]:
    result = runner.invoke(app, [*_setup(tmp_path, script), "--format", "json"])
    assert result.exit_code == 0, result.output
    outcome: dict[str, Any] = json.loads(result.stdout)
    return outcome


def test_a_chat_completions_response_of_one_choice_is_its_message(tmp_path: Path) -> None:
    """Before: 'success after 1 turn; tools called: none', the call never made."""
    script = [_completion(turn_in("openai", [READ])), _completion(DONE)]
    outcome = _played(tmp_path, script)
    assert (outcome["turns"], outcome["tools_called"]) == (2, ["read_file"])
    assert outcome["summary"] == "done"
    (call,) = parse_turn(script[0], "openai").calls
    assert (call.id, call.name, call.arguments) == READ
    with pytest.raises(TurnFormatError, match=r"at choices\[0\]\.message\.tool_calls\[0\]"):
        parse_turn(script[0], "anthropic")


def test_the_history_holds_the_message_not_the_response(runtime: Any) -> None:
    script = ScriptedGenerator([_completion(turn_in("openai", [READ])), _completion(DONE)])
    outcome = AgentLoop(runtime, script, capability="agent").run("read a")
    assert outcome.tools_called == ["read_file"]
    assert script.requests[1][0][1]["role"] == "assistant"  # (the message, with its calls)
    assert script.requests[1][0][1]["tool_calls"][0]["id"] == "c1"


@pytest.mark.parametrize(
    ("response", "said"),
    [
        (_completion(DONE, DONE), "a Chat Completions response with 2 choices (at choices)"),
        (
            {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": DONE}]},
            "a streamed Chat Completions chunk (at choices)",
        ),
    ],
)
def test_a_response_of_no_one_message_is_an_error_at_its_choices(
    tmp_path: Path, response: dict[str, Any], said: str
) -> None:
    line, column, message = _refused(tmp_path, [turn_in("openai", [READ]), response, DONE])
    assert (line, column) == (_line_of(tmp_path, '"choices": ['), 16)
    assert message.startswith(f"turn 2 is {said}, ")


def test_a_legacy_function_call_is_an_error_naming_tool_calls(tmp_path: Path, runtime: Any) -> None:
    """Before: read as a turn without calls in every format (exit 0, no tool called)."""
    legacy = {
        "role": "assistant",
        "content": None,
        "function_call": {"name": "read_file", "arguments": '{"path": "notes/a.txt"}'},
    }
    line, column, message = _refused(tmp_path, [legacy, DONE])
    assert (line, column) == (_line_of(tmp_path, '"function_call": {'), 22)
    assert message.startswith(
        "turn 1 is a legacy OpenAI function call (at function_call), which carlang does not"
        " read: write the call in `tool_calls`, as `{"
    )
    for format in FORMATS:
        with pytest.raises(TurnFormatError, match="legacy OpenAI function call"):
            parse_turn(legacy, format)
    # a live model answering so: an error of its turn, not a final answer
    with _answering(legacy):
        from carlang_runtime.agents import OpenAIChatGenerator

        generator = OpenAIChatGenerator("http://127.0.0.1:9/v1", "m")
        outcome = AgentLoop(runtime, generator).run("read a")
    assert outcome.status == "error"
    assert outcome.summary.startswith("turn 1: the model answered a legacy OpenAI function call")


def test_a_langchain_message_serialized_by_dumpd_or_message_to_dict_is_read(
    tmp_path: Path,
) -> None:
    """Before: `dumpd(AIMessage)` was a turn without calls (exit 0, no tool called)."""
    calls = turn_in("langchain", [READ])["tool_calls"]
    dumped = _dumpd("AIMessage", content="", type="ai", tool_calls=calls, invalid_tool_calls=[])
    outcome = _played(tmp_path, [dumped, _dumpd("AIMessage", content="done", type="ai")])
    assert (outcome["turns"], outcome["tools_called"]) == (2, ["read_file"])
    as_dict = {"type": "ai", "data": {"content": "", "tool_calls": calls}}
    assert ScriptedGenerator([as_dict]).format == "langchain"
    (call,) = parse_turn(as_dict, "langchain").calls
    assert (call.id, call.name, call.arguments) == READ


def test_a_serialized_message_not_the_models_is_an_error(tmp_path: Path) -> None:
    human = _dumpd("HumanMessage", content="read a", type="human")
    line, column, message = _refused(tmp_path, [human])
    assert (line, column) == (_line_of(tmp_path, '"id": ['), 11)  # (the `[` of its `id`)
    assert message.startswith("turn 1 is a LangChain HumanMessage (at id), not the assistant's")
    secret = {"lc": 1, "type": "secret", "id": ["OPENAI_API_KEY"]}
    with pytest.raises(TurnFormatError, match="a LangChain serialized object that is not an"):
        parse_turn(secret, "langchain")


@pytest.mark.parametrize("format", FORMATS)
def test_a_call_given_alone_is_no_turn(tmp_path: Path, format: str) -> None:
    """A tool call where its message belongs: read as a message, it held no calls."""
    turn = turn_in(format, [READ])
    alone = {
        "openai": lambda: turn["tool_calls"][0],
        "anthropic": lambda: turn["content"][0],
        "langchain": lambda: turn["tool_calls"][0],
        "openai-responses": lambda: None,
    }[format]()
    if alone is None:  # (a Responses `function_call` item alone is a turn)
        assert parse_turn(turn["output"][0], format).calls[0].name == "read_file"
        return
    for read in FORMATS:
        with pytest.raises(TurnFormatError, match="is a tool call alone"):
            parse_turn(alone, read)


def test_every_turn_is_checked_before_the_first_is_played(tmp_path: Path) -> None:
    """Before: `[5, "x", null]` failed when played, 'error: inference failed: an OpenAI chat
    assistant message must be an object, not int' (exit 1)."""
    line, column, message = _refused(tmp_path, [5, "x", None])
    assert (line, column) == (2, 3)
    assert message.startswith("turn 1 is a number, not a model's assistant turn: a turn is")
    # a turn its format cannot read, after one that can: refused before turn 1 runs
    second = tmp_path / "second"
    second.mkdir()
    line, column, message = _refused(second, [turn_in("openai", [READ]), {"tool_calls": "x"}])
    assert (line, column) == (_line_of(second, '"tool_calls": "x"') - 1, 3)
    assert message == (
        "turn 2 cannot be read as openai: an OpenAI message's `tool_calls` must be a list, not a string"
    )
    with pytest.raises(CarlangRuntimeError, match="turn 3 is null, not a model's"):
        ScriptedGenerator([DONE, DONE, None])


@pytest.mark.parametrize(
    ("turn", "shown", "said"),
    [
        (
            {"role": "user", "content": "done"},
            '"user"',
            'a message from the user (`"role": "user"`',
        ),
        ({"type": "human", "content": "done"}, '"human"', 'a message from the human (`"type"'),
        ([{"type": "message", "role": "user", "content": []}], '"user"', "a message from the user"),
    ],
)
def test_a_turn_that_is_not_the_assistants_is_an_error_at_its_role(
    tmp_path: Path, turn: Any, shown: str, said: str
) -> None:
    """Before: a `{"role": "user"}` turn was taken for the assistant's final answer."""
    line, column, message = _refused(tmp_path, [DONE, turn])
    assert line == _line_of(tmp_path, shown) and column > 1
    assert message.startswith(f"turn 2 is {said}")
    assert "not the assistant's" in message


@pytest.mark.parametrize(
    ("turn", "said"),
    [
        (
            {"role": "assistant", "content": 5},
            "a message's `content` must be text or a list of content parts, not a number",
        ),
        (
            {"role": "assistant", "content": {"text": "done"}},
            "a message's `content` must be text or a list of content parts, not an object",
        ),
        (
            {"role": "assistant", "tool_calls": {"id": "c1", "type": "function"}},
            "an OpenAI message's `tool_calls` must be a list, not an object",
        ),
    ],
)
def test_content_and_tool_calls_of_the_wrong_kind_are_refused(
    tmp_path: Path, turn: dict[str, Any], said: str
) -> None:
    """`"content": 5` was played as a final answer with no text, and `"tool_calls": {...}`
    said "an OpenAI tool call must be an object, not str", of the object's keys (bad-input
    sweep)."""
    _line, _column, message = _refused(tmp_path, [turn])
    assert message == f"turn 1 cannot be read as openai: {said}"


def test_a_turn_built_in_python_may_hold_tuples() -> None:
    """A turn made in Python (not read from JSON) may hold its calls and content parts in
    tuples, as lists elsewhere in the turn may; the new kind checks took them for errors."""
    call = {"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": "{}"}}
    turn = parse_turn({"role": "assistant", "content": ("thinking",), "tool_calls": (call,)})
    assert [c.name for c in turn.calls] == ["read_file"]
    with pytest.raises(CarlangRuntimeError, match="must be a list, not bytes"):
        parse_turn({"role": "assistant", "tool_calls": b"[]"})
