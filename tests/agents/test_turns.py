"""Model turns in (four formats) -> proposals; results out -> tool-result messages; specs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from carlang_runtime.agents import (
    TurnError,
    parse_turn,
    proposal_from_turn,
    results_to_messages,
    tool_specs,
)
from carlang_runtime.ir import Action, ActionResult, ActionStatus, ProposalResult, ToolSchema

CALLS = [
    ("c1", "read_file", {"path": "notes/a.txt"}),
    ("c2", "write_file", {"path": "notes/b", "content": "x"}),
]


def turn_in(format: str, calls: list[tuple[str, str, dict[str, Any]]], text: str = "") -> Any:
    if format == "openai":
        return {
            "role": "assistant",
            "content": text or None,
            "tool_calls": [
                {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
                for i, n, a in calls
            ],
        }
    if format == "openai-responses":
        items: list[dict[str, Any]] = (
            [
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text}],
                }
            ]
            if text
            else []
        )
        items += [
            {"type": "function_call", "call_id": i, "name": n, "arguments": json.dumps(a)}
            for i, n, a in calls
        ]
        return {"output": items}
    if format == "anthropic":
        blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        blocks += [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in calls]
        return {"role": "assistant", "content": blocks}
    return {
        "type": "ai",
        "content": text,
        "tool_calls": [{"name": n, "args": a, "id": i, "type": "tool_call"} for i, n, a in calls],
    }


FORMATS = ["openai", "openai-responses", "anthropic", "langchain"]


@pytest.mark.parametrize("format", FORMATS)
def test_one_action_per_call_in_emitted_order(format: str) -> None:
    proposal = proposal_from_turn(turn_in(format, CALLS, "let me look"), format=format)
    assert [(a.id, a.tool, a.parameters) for a in proposal.actions] == [
        (i, n, a) for i, n, a in CALLS
    ]
    assert proposal.actions[0].depends_on == []
    assert proposal.actions[1].depends_on == ["c1"]
    assert parse_turn(turn_in(format, CALLS, "let me look"), format).text == "let me look"


def test_read_only_tools_of_a_turn_may_run_in_parallel() -> None:
    tools = [
        ToolSchema(name="read_file", read_only=True),
        ToolSchema(name="write_file"),
    ]
    both_read = [("a", "read_file", {"path": "x"}), ("b", "read_file", {"path": "y"})]
    proposal = proposal_from_turn(turn_in("openai", both_read), tools=tools)
    assert [a.depends_on for a in proposal.actions] == [[], []]
    mixed = proposal_from_turn(turn_in("openai", CALLS), tools=tools)
    assert mixed.actions[1].depends_on == ["c1"]


def test_a_call_inherits_what_its_tool_says_as_a_programs_action_does() -> None:
    """A model's call of a `read_only` tool came out `irreversible` (the default), where the
    program's own call of it is `reversible`; an idempotent tool's call was not idempotent."""
    from carlang_runtime.ir import Reversibility

    tools = [
        ToolSchema(name="read_file", read_only=True),
        ToolSchema(name="write_file", idempotent=True, reversibility=Reversibility.COMPENSABLE),
        ToolSchema(name="peek", read_only=True, reversibility=Reversibility.IRREVERSIBLE),
    ]
    calls = [("a", "read_file", {}), ("b", "write_file", {}), ("c", "peek", {}), ("d", "x", {})]
    proposal = proposal_from_turn(turn_in("openai", calls), tools=tools)
    assert [(a.reversibility, a.idempotent) for a in proposal.actions] == [
        (Reversibility.REVERSIBLE, False),
        (Reversibility.COMPENSABLE, True),
        (Reversibility.IRREVERSIBLE, False),
        (Action(id="z", type="tool_call").reversibility, False),  # an unknown tool: defaults
    ]


def test_calls_without_an_id_get_one_from_turn_and_index() -> None:
    message = {"content": "", "tool_calls": [{"name": "read_file", "args": {"path": "p"}}]}
    proposal = proposal_from_turn(message, format="langchain", turn=3)
    assert proposal.actions[0].id == "call_3_0"


def test_malformed_arguments_name_the_call() -> None:
    message = {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "call_9",
                "type": "function",
                "function": {"name": "read_file", "arguments": "{path: 1"},
            }
        ],
    }
    with pytest.raises(TurnError, match=r"call call_9 \(read_file\): arguments are not JSON"):
        proposal_from_turn(message)
    listy = {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": [1]}],
    }
    with pytest.raises(
        TurnError, match=r"call t1 \(x\): `input` must be a JSON object of arguments, not an array"
    ):
        proposal_from_turn(listy, format="anthropic")
    # Anthropic's `input` is an object, never JSON text: a string is the mistake itself
    text = {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "t2", "name": "x", "input": '{"a": 1}'}],
    }
    with pytest.raises(
        TurnError, match=r"`input` must be a JSON object of arguments, not a string"
    ):
        proposal_from_turn(text, format="anthropic")
    with pytest.raises(TurnError, match="unknown tool-call format 'gemini'"):
        proposal_from_turn(message, format="gemini")


def test_model_names_map_back_to_dotted_tools() -> None:
    tools = [ToolSchema(name="fs.read_file")]
    message = turn_in("openai", [("c", "fs__read_file", {"path": "a"})])
    assert proposal_from_turn(message, tools=tools).actions[0].tool == "fs.read_file"
    specs = tool_specs(tools, "openai")
    assert specs[0]["function"]["name"] == "fs__read_file"
    assert tool_specs(tools, "mcp")[0]["name"] == "fs.read_file"


def _result() -> ProposalResult:
    return ProposalResult(
        proposal_id="t",
        results=[
            ActionResult(action_id="c1", status=ActionStatus.SUCCEEDED, output="alpha"),
            ActionResult(
                action_id="c2", status=ActionStatus.REJECTED, error="write only under notes/"
            ),
        ],
    )


def test_results_to_messages_in_each_format() -> None:
    result = _result()
    denied = json.dumps({"error": "write only under notes/", "status": "rejected"})
    assert results_to_messages(result, "openai") == [
        {"role": "tool", "tool_call_id": "c1", "content": "alpha"},
        {"role": "tool", "tool_call_id": "c2", "content": denied},
    ]
    assert results_to_messages(result, "openai-responses")[1] == {
        "type": "function_call_output",
        "call_id": "c2",
        "output": denied,
    }
    (anthropic,) = results_to_messages(result, "anthropic")
    assert anthropic["role"] == "user"
    assert [(b["tool_use_id"], b["is_error"]) for b in anthropic["content"]] == [
        ("c1", False),
        ("c2", True),
    ]
    assert [m["status"] for m in results_to_messages(result, "langchain")] == ["success", "error"]


def test_results_are_capped_on_a_character_boundary() -> None:
    long = ProposalResult(
        proposal_id="t",
        results=[ActionResult(action_id="c", status=ActionStatus.SUCCEEDED, output="é" * 20000)],
    )
    (message,) = results_to_messages(long, "openai")
    assert message["content"].startswith("é" * 16384)
    assert message["content"].endswith("[... 3616 more characters]")
    (short,) = results_to_messages(long, "openai", max_chars=10)
    assert short["content"] == "é" * 10 + "\n[... 19990 more characters]"


def test_tool_specs_only_show_what_the_capability_allows(program: Any, runtime: Any) -> None:
    for source in (program, runtime):
        names = [s["function"]["name"] for s in tool_specs(source, "openai", capability="agent")]
        assert names == ["read_file", "write_file", "list_dir"]
    anthropic = tool_specs(program, "anthropic", capability="agent")[0]
    assert anthropic == {
        "name": "read_file",
        "description": "read a file",
        "input_schema": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
            "additionalProperties": False,
        },
    }
    assert "shell" in [s["name"] for s in tool_specs(program, "mcp")]
    # the Responses API's function tools are flat: type, name, description, parameters
    (responses, *_) = tool_specs(program, "openai-responses", capability="agent")
    assert responses == {
        "type": "function",
        "name": "read_file",
        "description": "read a file",
        "parameters": anthropic["input_schema"],
        "strict": False,
    }


def _openai_call(arguments: Any, call_id: Any = "c1", name: str = "pay") -> dict[str, Any]:
    return {
        "role": "assistant",
        "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        ],
    }


def _nested(depth: int) -> list[Any]:
    """A list holding a list ... `depth` lists in all."""
    root: list[Any] = []
    current = root
    for _ in range(depth - 1):
        inner: list[Any] = []
        current.append(inner)
        current = inner
    return root


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_nan_and_infinity_in_arguments_text_are_not_json(constant: str) -> None:
    """Python's json reads NaN and Infinity; JSON has neither. A NaN amount passed
    `deny when params.amount > 1000.0` (every comparison with NaN is false), the tool got nan
    and the proposal's JSON said null."""
    message = _openai_call('{"to": "x", "amount": ' + constant + "}")
    (call,) = parse_turn(message).calls
    assert call.arguments is None and call.problem is not None
    assert call.problem.startswith("arguments are not JSON: ")
    assert "at column 23" in call.problem
    with pytest.raises(TurnError, match=r"call c1 \(pay\): arguments are not JSON"):
        proposal_from_turn(message)


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), float("-inf"), 10**400],
    ids=["nan", "inf", "-inf", "1e400"],
)
def test_nan_and_infinity_in_argument_objects_are_refused(value: Any) -> None:
    """SDKs hand arguments over as Python objects (Anthropic's `input`, LangChain's `args`,
    an OpenAI-compatible server's object): a float NaN or infinity there is no JSON number."""
    anthropic = {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "t", "name": "pay", "input": {"n": [1, value]}}],
    }
    with pytest.raises(TurnError, match=r"call t \(pay\): arguments are not JSON: n\[1\] is "):
        proposal_from_turn(anthropic, format="anthropic")
    langchain = {"content": "", "tool_calls": [{"id": "l", "name": "pay", "args": {"n": value}}]}
    with pytest.raises(TurnError, match=r"arguments are not JSON: n is "):
        proposal_from_turn(langchain, format="langchain")
    with pytest.raises(TurnError, match=r"arguments are not JSON: amount is "):
        proposal_from_turn(_openai_call({"amount": value}))


def test_arguments_nested_deeper_than_json_allows_are_malformed() -> None:
    """The 128 levels of a JSON document (serde_json's, `NESTING_LIMIT`) hold for arguments:
    deeper ones were accepted, and verify, execute or the loop hit RecursionError (from the
    CLI, 'internal error')."""
    text = '{"cc": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(TurnError, match=r"arguments are not JSON: nested too deeply \(more than"):
        proposal_from_turn(_openai_call(text))
    for depth in (129, 2000, 5000):
        deep = {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "t", "name": "pay", "input": {"cc": _nested(depth)}}
            ],
        }
        with pytest.raises(TurnError, match=r"nested too deeply \(more than 128 levels\)"):
            proposal_from_turn(deep, format="anthropic")
    # 128 levels, the arguments object the first of them, are fine
    at_limit = '{"cc": ' + "[" * 127 + "]" * 127 + "}"
    assert proposal_from_turn(_openai_call(at_limit)).actions[0].parameters["cc"] == _nested(127)
    fine = {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "t", "name": "pay", "input": {"cc": _nested(127)}}],
    }
    assert proposal_from_turn(fine, format="anthropic").actions[0].parameters["cc"] == _nested(127)


def test_langchain_invalid_tool_calls_are_calls_with_their_problem() -> None:
    """LangChain puts a call whose arguments did not parse in `invalid_tool_calls`: it was
    dropped, and the turn read as a final answer."""
    message = {
        "type": "ai",
        "content": "",
        "tool_calls": [{"name": "read_file", "args": {"path": "a"}, "id": "ok"}],
        "invalid_tool_calls": [
            {
                "name": "write_file",
                "args": '{"path": "notes/a", "content": ',
                "id": "lc1",
                "error": "Function write_file arguments are not valid JSON",
            },
            {"name": "write_file", "args": '{"path": "b"}', "id": "lc2", "error": None},
        ],
    }
    calls = parse_turn(message, "langchain").calls
    assert [(c.id, c.name, c.arguments is None) for c in calls] == [
        ("ok", "read_file", False),
        ("lc1", "write_file", True),
        ("lc2", "write_file", True),
    ]
    assert calls[1].problem is not None and calls[1].problem.startswith("arguments are not JSON")
    assert calls[2].problem == "LangChain could not read this call"
    with pytest.raises(TurnError, match=r"call lc1 \(write_file\): arguments are not JSON"):
        proposal_from_turn(message, format="langchain")

    class AIMessage:  # an object, read through its attributes
        content = ""
        tool_calls: list[Any] = []
        invalid_tool_calls = [{"name": "x", "args": "{", "id": "i", "error": "bad"}]

    assert parse_turn(AIMessage(), "langchain").calls[0].problem is not None


def test_a_call_id_used_twice_in_a_turn_is_refused() -> None:
    """Two calls `c1`: the second was reported 'skipped: it runs after c1, which did not
    succeed' though c1 succeeded, and two results went back under one id."""
    message = turn_in(
        "openai",
        [("c1", "write_file", {"path": "a", "content": "x"}), ("c1", "read_file", {"path": "b"})],
    )
    calls = parse_turn(message).calls
    assert calls[0].problem is None
    assert calls[1].problem == "call id 'c1' is used twice in this turn"
    with pytest.raises(TurnError, match=r"call c1 \(read_file\): call id 'c1' is used twice"):
        proposal_from_turn(message)


@pytest.mark.parametrize("format", FORMATS)
def test_a_numeric_call_id_is_kept_as_text(format: str) -> None:
    """A model (or a compatible server) that numbers its calls gets its own ids back, not
    `call_0_0`, so that its results match its calls."""
    message = turn_in(format, [(7, "read_file", {"path": "a"})])  # type: ignore[list-item]
    assert parse_turn(message, format).calls[0].id == "7"
    assert proposal_from_turn(message, format=format).actions[0].id == "7"
    for flag in (True, 1.5):  # not an id: one is given
        odd = turn_in(format, [(flag, "read_file", {"path": "a"})])  # type: ignore[list-item]
        assert parse_turn(odd, format).calls[0].id == "call_0_0"


def test_a_rolled_back_success_gives_its_output_and_a_separate_note() -> None:
    """A call that succeeded in a proposal that then aborted: the model read
    `{"error": "proposal aborted; ...", "status": "succeeded"}` and never its output."""
    from carlang_runtime.engine.run import ROLLED_BACK

    result = ProposalResult(
        proposal_id="t",
        results=[
            ActionResult(
                action_id="c1", status=ActionStatus.SUCCEEDED, output="alpha", error=ROLLED_BACK
            )
        ],
    )
    (message,) = results_to_messages(result, "openai")
    output, note = message["content"].split("\n\n", 1)
    assert output == "alpha"
    assert note == f"[note: this call succeeded, but its proposal did not: {ROLLED_BACK}]"
    (anthropic,) = results_to_messages(result, "anthropic")
    assert anthropic["content"][0]["content"].startswith("alpha\n\n[note: ")
    assert anthropic["content"][0]["is_error"] is False
    (langchain,) = results_to_messages(result, "langchain")
    assert langchain["status"] == "success"
    # the note is never cut: the output is
    (short,) = results_to_messages(result, "openai", max_chars=3)
    assert short["content"].startswith("alp\n[... 2 more characters]\n\n[note: ")
    assert short["content"].endswith(ROLLED_BACK + "]")


def test_tool_names_that_collide_once_encoded_are_refused() -> None:
    """`fs__delete` and `fs.delete` were both offered as `fs__delete`, and a call of it ran
    whichever the mapping found first."""
    from carlang_runtime.errors import CarlangRuntimeError

    tools = [ToolSchema(name="fs__delete"), ToolSchema(name="fs.delete")]
    for spec_format in ("openai", "anthropic"):
        with pytest.raises(
            CarlangRuntimeError,
            match=r"tools fs__delete and fs\.delete are both offered to models as 'fs__delete'",
        ):
            tool_specs(tools, spec_format)
    assert [t["name"] for t in tool_specs(tools, "mcp")] == ["fs__delete", "fs.delete"]
    message = turn_in("openai", [("c", "fs__delete", {"path": "x"})])
    with pytest.raises(
        TurnError, match=r"call c \(fs__delete\): the tool name 'fs__delete' is ambiguous"
    ):
        proposal_from_turn(message, tools=tools)
    # given only the tool offered, the name means it
    assert proposal_from_turn(message, tools=tools[1:]).actions[0].tool == "fs.delete"
    assert proposal_from_turn(message, tools=tools[:1]).actions[0].tool == "fs__delete"
    # a program (or a runtime) and a capability: the tools the model was offered
    from carlang_runtime.engine import Runtime

    from tests.helpers import compile_diagnostics

    program = compile_diagnostics(
        "tool fs__delete(path: string)\n"
        'tool fs.delete() { schema { type: "object", properties: { path: { type: "string" } } } }\n'
        "capability dotted { tools allow fs.delete }\n"
        "capability plain { tools allow fs__delete }\n"
    ).program
    for source in (program, Runtime.from_program(program)):
        for capability, meant in (("dotted", "fs.delete"), ("plain", "fs__delete")):
            proposal = proposal_from_turn(message, tools=source, capability=capability)
            assert proposal.actions[0].tool == meant and proposal.capability == capability
        with pytest.raises(TurnError, match="is ambiguous"):
            proposal_from_turn(message, tools=source)


def test_parameters_named_default_or_examples_are_offered_beside_a_secret() -> None:
    """A secret's default is left out of what a model is offered; a parameter that happens to
    be called `default` is not a default."""
    from carlang_runtime.agents.specs import input_schema
    from carlang_runtime.ir import ToolSchema

    properties = {
        "default": {"type": "boolean"},
        "examples": {"type": "integer"},
        "token": {"type": "string", "writeOnly": True, "default": "tok-123"},
    }
    tool = ToolSchema(name="t", parameters={"type": "object", "properties": properties})
    shown = input_schema(tool)["properties"]
    assert set(shown) == {"default", "examples", "token"} and "default" not in shown["token"]


def test_the_names_the_docs_use_come_from_the_agents_package() -> None:
    """docs/agents.md names `TurnFormatError` and `turn_shapes`, which only
    `carlang_runtime.agents.turns` had: `from carlang_runtime.agents import ...` failed."""
    from carlang_runtime import CancelToken
    from carlang_runtime.agents import TurnError, TurnFormatError, turn_shapes

    assert issubclass(TurnFormatError, TurnError) and callable(turn_shapes)
    assert CancelToken is not None
