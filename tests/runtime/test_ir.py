"""The IR models: CAR's keys, defaults, strictness and omission rules, and carlang's extensions."""

from __future__ import annotations

import json
import re

import pytest
from carlang_runtime.errors import IRLoadError
from carlang_runtime.ir import (
    Action,
    ActionProposal,
    ActionResult,
    ActionStatus,
    ActionType,
    Capability,
    CostSummary,
    CostTarget,
    FailureBehavior,
    Precondition,
    ProposalResult,
    Reversibility,
    ToolRateLimit,
    ToolSchema,
    load_proposal,
    load_tools,
)

from tests.conftest import DATA


def test_action_defaults_are_cars() -> None:
    action = Action(type=ActionType.TOOL_CALL)
    assert re.fullmatch(r"[0-9a-f]{12}", action.id)
    assert action.tool is None
    assert action.parameters == {} and action.expected_effects == {} and action.metadata == {}
    assert action.preconditions == [] and action.state_dependencies == []
    assert action.max_retries == 3
    assert action.failure_behavior is FailureBehavior.ABORT
    assert action.reversibility is Reversibility.IRREVERSIBLE
    assert action.idempotent is False and action.timeout_ms is None
    assert action.invocation_mode == "one_shot"


def test_proposal_defaults_are_cars() -> None:
    proposal = ActionProposal(actions=[])
    assert proposal.source == "unknown" and proposal.context == {}
    assert re.fullmatch(r"[0-9a-f]{12}", proposal.id)
    assert ActionProposal(actions=[]).id != proposal.id


def test_precondition_defaults() -> None:
    pre = Precondition(key="k")
    assert (pre.operator, pre.value, pre.description) == ("eq", None, "")


def test_cost_models_defaults() -> None:
    assert CostSummary().model_dump() == {
        "tool_calls": 0,
        "actions_executed": 0,
        "actions_rejected": 0,
        "actions_skipped": 0,
        "total_duration_ms": 0.0,
        "retries": 0,
    }
    target = CostTarget()
    assert (
        target.target_tool_calls,
        target.target_duration_ms,
        target.target_actions,
        target.cost_weight,
    ) == (5, 5000.0, 10, 0.2)


@pytest.mark.parametrize("name", ["minimal", "every_field", "unknown_keys"])
def test_car_documents_round_trip_byte_for_byte(name: str) -> None:
    written_by_car = (DATA / "car" / f"{name}.car.json").read_text().strip()
    assert load_proposal(written_by_car).model_dump_json() == written_by_car


def test_unknown_keys_are_ignored_like_serde() -> None:
    doc = json.loads((DATA / "car" / "unknown_keys.input.json").read_text())
    dumped = load_proposal(doc).model_dump(mode="json")
    assert "extra_top" not in dumped
    assert "dependencies" not in dumped["actions"][0] and "unknown" not in dumped["actions"][0]


def test_dump_omits_what_car_omits() -> None:
    dumped = Action(id="a", type="state_read").model_dump(mode="json")
    for key in ("tool", "timeout_ms", "compensation", "depends_on", "loc"):
        assert key not in dumped
    assert dumped["preconditions"] == [] and dumped["metadata"] == {}
    result = ActionResult(action_id="a", status=ActionStatus.SKIPPED).model_dump(mode="json")
    assert "output" not in result and "error" not in result and "rolled_back" not in result
    rolled = ActionResult(action_id="a", status="succeeded", rolled_back=True)
    assert rolled.model_dump(mode="json")["rolled_back"] is True
    assert "returns" not in ToolSchema(name="t").model_dump(mode="json")


def test_null_values_inside_documents_are_kept() -> None:
    doc = {
        "actions": [
            {
                "id": "a",
                "type": "tool_call",
                "tool": "t",
                "parameters": {"x": None},
                "preconditions": [{"key": "k", "value": None}],
                "expected_effects": {"e": None},
            }
        ]
    }
    dumped = load_proposal(doc).model_dump(mode="json")["actions"][0]
    assert dumped["parameters"] == {"x": None}
    assert dumped["preconditions"][0]["value"] is None
    assert dumped["expected_effects"] == {"e": None}


@pytest.mark.parametrize(
    ("action", "fragment"),
    [
        ({"type": "tool_call", "max_retries": "3"}, "max_retries"),
        ({"type": "tool_call", "max_retries": 3.0}, "max_retries"),
        ({"type": "tool_call", "max_retries": -1}, "max_retries"),
        ({"type": "tool_call", "idempotent": 1}, "idempotent"),
        ({"type": "tool_call", "timeout_ms": -1}, "timeout_ms"),
        ({"type": "bogus"}, "type"),
        ({"type": "tool_call", "reversibility": "Reversible"}, "reversibility"),
        ({"type": "tool_call", "parameters": []}, "parameters"),
        ({"type": "tool_call", "compensation": {"type": "tool"}}, "compensation.tool"),
        ({"type": "tool_call", "preconditions": [{"operator": "eq"}]}, "preconditions[0].key"),
        ({"tool": "t"}, "type"),
    ],
)
def test_what_car_rejects_is_rejected(action: dict[str, object], fragment: str) -> None:
    with pytest.raises(IRLoadError) as info:
        load_proposal({"actions": [action]})
    assert any(fragment in p.path for p in info.value.problems), info.value.problems


def test_missing_actions_and_wrong_id_type_are_rejected() -> None:
    with pytest.raises(IRLoadError, match="actions: field required"):
        load_proposal({"id": "x"})
    with pytest.raises(IRLoadError, match="id"):
        load_proposal({"id": 5, "actions": []})


def test_load_errors_name_line_and_column_in_json_text() -> None:
    text = '{\n  "actions": [\n    {"type": "tool_call"},\n    {"type": "tool_cal"}\n  ]\n}'
    with pytest.raises(IRLoadError) as info:
        load_proposal(text)
    (problem,) = info.value.problems
    assert problem.path == "actions[1].type"
    assert (problem.position.line, problem.position.column) == (4, 14)
    with pytest.raises(IRLoadError) as info:
        load_proposal('{"actions": [1,}')
    assert info.value.problems[0].position is not None
    assert "malformed JSON" in info.value.problems[0].message


def test_wrapper_and_non_object_documents() -> None:
    assert load_proposal('{"proposal": {"id": "w", "actions": []}}').id == "w"
    with pytest.raises(IRLoadError, match="expected a JSON object"):
        load_proposal("[1, 2]")
    with pytest.raises(IRLoadError, match="not UTF-8"):
        load_proposal(b"\xff\xfe")


def test_a_wrapper_with_other_keys_says_so_at_the_first_of_them() -> None:
    """`{"proposal": {...}, "x": 1}` was "actions: field required" at 1:1, as if the wrapper
    were a bare proposal (bad-input sweep); CAR refuses it too, and now carlang says why."""
    text = '{"proposal": {"id": "w", "actions": []},\n "x": 1, "y": 2}'
    with pytest.raises(IRLoadError) as info:
        load_proposal(text)
    (problem,) = info.value.problems
    assert problem.path == "x"
    assert problem.message == (
        'a {"proposal": ...} wrapper holds no other key, and this object also has `x`, `y`:'
        " remove them, or send the proposal bare"
    )
    assert problem.position is not None and problem.position.line == 2
    # a bare proposal may hold a key called `proposal` (CAR ignores keys it does not know),
    # and its own problems are said as they are
    assert load_proposal({"actions": [], "proposal": {}}).actions == []
    with pytest.raises(IRLoadError) as info:
        load_proposal({"actions": [{"id": "a", "type": "bogus"}], "proposal": {}})
    assert info.value.problems[0].path == "actions[0].type"


def test_timestamp_must_be_rfc3339_and_round_trips_nanoseconds() -> None:
    stamp = "2026-11-21T14:19:19.712090960Z"
    assert load_proposal({"actions": [], "timestamp": stamp}).timestamp == stamp
    for bad in ("yesterday", "2026-01-01", "2026-13-01T00:00:00Z"):
        with pytest.raises(IRLoadError, match="timestamp"):
            load_proposal({"actions": [], "timestamp": bad})


def test_carlang_extensions_round_trip() -> None:
    doc = {
        "id": "p",
        "capability": "bot",
        "budget": "default",
        "loc": {"file": "a.car", "line": 3, "column": 1},
        "actions": [
            {
                "id": "a",
                "type": "tool_call",
                "tool": "t",
                "depends_on": ["b"],
                "loc": {"file": "a.car", "line": 4, "column": 3, "end_line": 4, "end_column": 9},
            },
            {"id": "b", "type": "tool_call", "tool": "t"},
        ],
    }
    proposal = load_proposal(doc)
    assert proposal.actions[0].depends_on == ["b"]
    assert str(proposal.actions[0].loc) == "a.car:4:3"
    again = load_proposal(proposal.model_dump_json())
    assert again == proposal
    assert "depends_on" not in again.model_dump(mode="json")["actions"][1]


def test_compensation_union() -> None:
    proposal = load_proposal(
        {
            "actions": [
                {
                    "type": "tool_call",
                    "tool": "t",
                    "compensation": {"type": "tool", "tool": "undo"},
                },
                {
                    "type": "tool_call",
                    "tool": "t",
                    "compensation": {"type": "action_ref", "action_id": "x"},
                },
            ]
        }
    )
    assert proposal.actions[0].compensation.model_dump() == {
        "type": "tool",
        "tool": "undo",
        "parameters": {},
    }
    assert proposal.actions[1].compensation.action_id == "x"  # type: ignore[union-attr]


def test_written_keys() -> None:
    action = Action(
        type="state_write", parameters={"key": "k", "value": 1}, expected_effects={"k": 2, "j": 1}
    )
    assert action.written_keys() == ["k", "j"]
    assert Action(type="state_write", parameters={"key": 5}).written_keys() == []


def test_proposal_result_helpers() -> None:
    result = ProposalResult(
        proposal_id="p",
        results=[
            ActionResult(action_id="a", status="succeeded"),
            ActionResult(action_id="b", status="failed", error="boom"),
        ],
    )
    assert not result.all_succeeded()
    assert result.summary() == {ActionStatus.SUCCEEDED: 1, ActionStatus.FAILED: 1}


def test_tool_schema_and_rate_limit() -> None:
    tool = ToolSchema(name="fetch", rate_limit=ToolRateLimit(max_calls=5, interval_secs=60))
    assert tool.model_dump(mode="json")["rate_limit"] == {"max_calls": 5, "interval_secs": 60.0}
    assert tool.parameters == {} and tool.cache_ttl_secs is None and tool.idempotent is False


def test_load_tools_shapes() -> None:
    assert load_tools(["a", "b"]) == ["a", "b"]
    assert load_tools('["a"]') == ["a"]
    schemas = load_tools('[{"name": "f", "parameters": {"type": "object"}}, "g"]')
    assert [s.name for s in schemas] == ["f", "g"]  # type: ignore[union-attr]
    mapped = load_tools({"f": {"parameters": {}}})
    assert mapped[0].name == "f"  # type: ignore[union-attr]
    with pytest.raises(IRLoadError, match=r"\[0\]"):
        load_tools([{"parameters": {}}])


@pytest.mark.parametrize(
    ("text", "path", "line", "column", "message"),
    [
        # a proposal given where tools belong: each key is taken for a tool's name
        ('{"id": "p",\n "actions": []}', "actions", 2, 13, "expected a tool"),
        ('{"tools": [\n  {"name": "f"},\n  {"name": 7}]}', "tools[1].name", 3, 12, "string"),
        ('[\n  "a",\n  3]', "[1]", 3, 3, "expected a tool"),
        ('{"f": {"parameters": 1}}', "f.parameters", 1, 22, "dictionary"),
        ('{"tools": 5}', "tools", 1, 11, "expected a list of tools"),
        ("5", "", 1, 1, "expected a list of tools"),
    ],
)
def test_tool_list_problems_say_where(
    text: str, path: str, line: int, column: int, message: str
) -> None:
    with pytest.raises(IRLoadError) as raised:
        load_tools(text)
    problem = raised.value.problems[0]
    assert (
        problem.path,
        problem.position and (problem.position.line, problem.position.column),
    ) == (
        path,
        (line, column),
    )
    assert message in problem.message


def test_capability_defaults() -> None:
    cap = Capability(name="c")
    assert cap.allowed_tools == [] and cap.denied_tools == [] and cap.max_actions is None
