"""A turn read in another tool-call format than its own: an error naming the turn, never a
turn without calls. Each format's reader skips what it does not know, so an Anthropic
`tool_use` block read as OpenAI vanished and `carlang agent` ended on that turn with
`success`, as if the model had answered in text."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from carlang_runtime.agents import AgentEvent, AgentLoop, OpenAIChatGenerator, ScriptedGenerator
from carlang_runtime.agents.turns import TurnFormatError, parse_turn, turn_shapes
from carlang_runtime.errors import CarlangRuntimeError
from typer.testing import CliRunner

from carlang.cli import app
from tests.agents.conftest import PROGRAM
from tests.agents.test_turns import FORMATS, turn_in

runner = CliRunner()

READ = ("c1", "read_file", {"path": "notes/a.txt"})
MISMATCHES = [(written, read) for written in FORMATS for read in FORMATS if written != read]


def _setup(tmp_path: Path, script: Any) -> list[str]:
    """The program, a file to read and the script; the `carlang agent` arguments."""
    source = tmp_path / "p.car"
    source.write_text(PROGRAM)
    (tmp_path / "files" / "notes").mkdir(parents=True)
    (tmp_path / "files" / "notes" / "a.txt").write_text("alpha")
    path = tmp_path / "turns.json"
    path.write_text(json.dumps(script, indent=2))
    return [
        "agent",
        str(source),
        "--script",
        str(path),
        "--builtins",
        "--files-root",
        str(tmp_path / "files"),
        "--capability",
        "agent",
    ]


def _script(format: str) -> list[Any]:
    return [turn_in(format, [READ], "reading"), turn_in(format, [], "done")]


@pytest.mark.parametrize(("written", "read"), MISMATCHES)
def test_a_turn_read_in_another_format_is_a_usage_error_naming_it(
    tmp_path: Path, written: str, read: str
) -> None:
    """Before: `anthropic` turns read as `openai` ended 'success after 1 turn; tools called:
    none' (exit 0); `openai` read as `langchain` ran a nameless call; as `anthropic`, exit 1."""
    args = _setup(tmp_path, _script(written))
    result = runner.invoke(app, [*args, "--turn-format", read])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    said = re.search(r"turns\.json:(\d+):(\d+): error: (.*)", result.output, re.S)
    assert said is not None, result.output
    message = " ".join(said.group(3).split())
    assert message.startswith(f"turn 1 is in the {written} format (")
    assert f"read as {read} (--turn-format {read})" in message
    assert message.endswith(f"its tool calls would be lost (give --turn-format {written})")
    assert result.stdout == ""  # (refused before any turn is played)


def test_the_position_is_that_of_what_shows_the_format(tmp_path: Path) -> None:
    args = _setup(tmp_path, _script("anthropic"))
    result = runner.invoke(app, [*args, "--turn-format", "openai"])
    said = " ".join(result.output.split())
    # line 9 of the indented script: the `tool_use` block, content[1] of turn 1
    assert (tmp_path / "turns.json").read_text().splitlines()[8:10] == [
        "      {",
        '        "type": "tool_use",',
    ]
    assert "turns.json:9:7: error: turn 1 is in the anthropic format" in said
    assert "(a `tool_use` content block at content[1])" in said


@pytest.mark.parametrize("format", FORMATS)
def test_without_a_format_the_turns_say_theirs(tmp_path: Path, format: str) -> None:
    """A plain list of turns (no --turn-format, no "format") is read in the format its tool
    calls are written in; it was always `openai`, and other formats' calls vanished."""
    args = _setup(tmp_path, _script(format))
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert (outcome["status"], outcome["turns"], outcome["tools_called"]) == (
        "success",
        2,
        ["read_file"],
    )


def test_the_scripts_own_format_is_named_and_the_option_wins(tmp_path: Path) -> None:
    turns = [turn_in("openai", [READ]), turn_in("anthropic", [READ]), turn_in("openai", [])]
    args = _setup(tmp_path, {"format": "openai", "turns": turns})
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2, refused.output
    said = " ".join(refused.output.split())
    # the `tool_use` block of turn 2 (turns[1].content[0]), on the line after its `{`
    lines = (tmp_path / "turns.json").read_text().splitlines()
    line = lines.index('          "type": "tool_use",')
    assert lines[line - 1] == "        {"
    assert f"turns.json:{line}:9: error: turn 2 is in the anthropic format" in said
    assert (
        """read as openai (the script's "format"), its tool calls would be lost (correct the"""
        """ script's "format", or give --turn-format anthropic)""" in said
    )
    # --turn-format wins over the file's "format"
    (tmp_path / "turns.json").write_text(
        json.dumps({"format": "openai", "turns": _script("anthropic")})
    )
    fixed = runner.invoke(app, [*args, "--turn-format", "anthropic"])
    assert fixed.exit_code == 0, fixed.output
    assert fixed.stdout.strip().endswith("success after 2 turns; tools called: read_file")


def test_a_script_mixing_formats_names_both_turns(tmp_path: Path) -> None:
    turns = [turn_in("openai", [READ]), turn_in("anthropic", [READ]), turn_in("openai", [])]
    result = runner.invoke(app, _setup(tmp_path, turns))
    assert result.exit_code == 2, result.output
    assert (
        "turn 2 is in the anthropic format (a `tool_use` content block at content[0]), but"
        " turn 1 is in the openai format: a script's turns are all in one format"
        in " ".join(result.output.split())
    )


def test_a_car_proposal_is_no_turn(tmp_path: Path) -> None:
    proposal = {
        "id": "p",
        "actions": [{"id": "a1", "type": "tool_call", "tool": "read_file", "parameters": {}}],
    }
    result = runner.invoke(app, _setup(tmp_path, [proposal]))
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert "turn 1 is a CAR proposal (an action at actions[0]), not a model's assistant turn" in (
        said
    )
    with pytest.raises(TurnFormatError, match="a CAR proposal"):
        parse_turn(proposal, "openai")


def test_turns_of_text_alone_read_in_every_format(tmp_path: Path) -> None:
    """Text shows no format: it is no mismatch (and a script of text alone is `openai`)."""
    args = _setup(tmp_path, [{"role": "assistant", "content": "nothing to do"}])
    for format in FORMATS:
        done = runner.invoke(app, [*args, "--turn-format", format])
        assert done.exit_code == 0, (format, done.output)
    assert ScriptedGenerator([{"role": "assistant", "content": "hi"}]).format == "openai"


def test_a_langchain_message_from_anthropic_reads_as_either() -> None:
    """LangChain's ChatAnthropic answers with LangChain `tool_calls` and Anthropic content
    blocks both: each format finds the same call."""
    message = {
        "type": "ai",
        "content": [{"type": "tool_use", "id": "c1", "name": "read_file", "input": {"path": "a"}}],
        "tool_calls": [{"name": "read_file", "args": {"path": "a"}, "id": "c1"}],
    }
    assert [s.format for s in turn_shapes(message)] == ["langchain", "anthropic"]
    for format in ("langchain", "anthropic"):
        (call,) = parse_turn(message, format).calls
        assert (call.id, call.name, call.arguments) == ("c1", "read_file", {"path": "a"})
    assert ScriptedGenerator([message]).format == "langchain"
    with pytest.raises(TurnFormatError, match="is in the langchain format"):
        parse_turn(message, "openai")


def test_the_library_refuses_a_turn_in_another_format() -> None:
    anthropic = turn_in("anthropic", [READ])
    with pytest.raises(TurnFormatError) as caught:
        parse_turn(anthropic, "openai")
    assert (caught.value.shape.format, caught.value.format) == ("anthropic", "openai")
    assert str(caught.value) == (
        "the turn is in the anthropic format (a `tool_use` content block at content[0]);"
        " read as openai, its tool calls would be lost"
    )
    with pytest.raises(CarlangRuntimeError, match=r"\(give format='anthropic'\)"):
        ScriptedGenerator([anthropic], "openai")
    assert ScriptedGenerator([anthropic]).format == "anthropic"


def _answering(message: dict[str, Any]) -> Any:
    """`urlopen` replaced: every request is answered with `message` as choices[0]."""
    reply = mock.MagicMock()
    body = {"choices": [{"index": 0, "message": message, "finish_reason": "tool_use"}]}
    reply.__enter__.return_value.read.return_value = json.dumps(body).encode()
    return mock.patch("urllib.request.urlopen", return_value=reply)


def test_a_live_model_answering_in_another_format_is_an_error_of_its_turn(runtime: Any) -> None:
    """An 'OpenAI-compatible' server that passes Anthropic's content blocks through: the turn
    was read as a final answer without calls (`success`)."""
    events: list[AgentEvent] = []
    with _answering(turn_in("anthropic", [READ], "let me read it")):
        generator = OpenAIChatGenerator("http://127.0.0.1:9/v1", "m")
        outcome = AgentLoop(runtime, generator, on_event=events.append).run("read a")
    assert (outcome.status, outcome.turns, outcome.calls) == ("error", 1, [])
    assert outcome.summary == (
        "turn 1: the model answered in the anthropic format (a `tool_use` content block at"
        " content[1]), but its generator reads openai: its tool calls cannot be read (does the"
        " model's server speak the generator's format?)"
    )
    assert [e.kind for e in events] == ["error"]


def test_carlang_agent_with_a_live_model_reports_the_turn(tmp_path: Path) -> None:
    source = tmp_path / "p.car"
    source.write_text(PROGRAM)
    args = ["agent", str(source), "--model-url", "http://127.0.0.1:9/v1", "--model", "m"]
    with _answering(turn_in("anthropic", [READ])):
        result = runner.invoke(app, [*args, "--prompt", "read a", "--capability", "agent"])
    assert result.exit_code == 1, result.output
    assert "error: turn 1: the model answered in the anthropic format" in result.stderr
    assert result.stdout.strip().endswith("error after 1 turn; tools called: none")


def test_an_unknown_format_in_the_script_is_located(tmp_path: Path) -> None:
    args = _setup(tmp_path, {"turns": [turn_in("openai", [], "done")], "format": "claude"})
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "turns.json:9:13: error: unknown tool-call format 'claude' (use one of" in (
        result.output
    )


def test_turn_format_is_for_scripts_only(tmp_path: Path) -> None:
    """It was ignored with --model-url: the server was still asked, and read, as OpenAI's."""
    source = tmp_path / "p.car"
    source.write_text(PROGRAM)
    args = ["agent", str(source), "--model-url", "http://127.0.0.1:9/v1", "--model", "m"]
    result = runner.invoke(app, [*args, "--prompt", "hi", "--turn-format", "anthropic"])
    assert result.exit_code == 2, result.output
    assert "--turn-format is the format of a --script's turns" in result.output
