"""`verify`: every check, its code and wording, and the result's shape."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from carlang_runtime.errors import IRLoadError
from carlang_runtime.ir import Budget, Capability, ToolSchema
from carlang_runtime.ir.load import gc_paused
from carlang_runtime.verify import RUNTIME_CODES, ToolSet, tool_set, verify
from pydantic import ValidationError


def tc(i: str, tool: str | None = "t", **kw: Any) -> dict[str, Any]:
    action: dict[str, Any] = {"id": i, "type": "tool_call", **kw}
    if tool is not None:
        action["tool"] = tool
    return action


def findings(actions: list[dict[str, Any]], **kw: Any) -> list[tuple[str, str, str, str]]:
    result = verify({"id": "p", "actions": actions}, **kw)
    return [(i.code, i.severity, i.action_id, i.message) for i in result.issues]


def test_clean_proposal() -> None:
    result = verify(
        {
            "actions": [
                tc("a", expected_effects={"k": 1}),
                tc("b", state_dependencies=["k"], parameters={"n": 2}),
            ]
        },
        tools=["t"],
    )
    assert result.valid and result.issues == []
    assert result.execution_levels == [["a"], ["b"]]
    assert result.simulated_state == {"k": 1}
    assert result.conflicts == []


def test_resource_bounds_warns_on_the_first_action() -> None:
    assert findings([tc(f"a{i}", tool=f"t{i}") for i in range(4)], max_actions=3) == [
        ("CL0315", "warning", "a0", "excessive actions: 4 (limit 3)")
    ]
    assert (
        findings([tc(f"a{i}", tool=f"t{i}") for i in range(31)])[0][3]
        == "excessive actions: 31 (limit 30)"
    )
    assert findings([tc(f"a{i}", tool=f"t{i}") for i in range(30)]) == []


def test_loop_detection_counts_canonical_calls() -> None:
    got = findings(
        [
            tc("a", tool="t1", parameters={"x": 1, "y": 2}),
            tc("b", tool="t1", parameters={"y": 2, "x": 1}),
            tc("c", tool="t1", parameters={"x": 1, "y": 2}),
            tc("d", tool="t2"),
            tc("e", tool="t2"),
            tc("f", tool="t3", parameters={"a": 1}),
            tc("g", tool="t3", parameters={"a": 1.0}),
            tc("h", tool=None),
            tc("i", tool=None),
        ]
    )
    loops = [f for f in got if f[0] in ("CL0313", "CL0314")]
    assert loops == [
        ("CL0314", "error", "proposal", "repeated identical tool call: t1 (3x) — likely loop"),
        ("CL0313", "warning", "proposal", "duplicate tool call: t2 (2x)"),
    ]
    result = verify({"actions": [tc("d", tool="t2"), tc("e", tool="t2")]})
    assert result.valid and result.issues[0].tier == "heuristic"


def test_preconditions_and_dependencies_walk_the_levels() -> None:
    got = findings(
        [
            tc("a", tool="t1", state_dependencies=["k"]),  # written later: not available here
            tc("b", tool="t2", expected_effects={"k": 1}),
            tc("c", tool="t3", preconditions=[{"key": "k", "operator": "gt", "value": 5}]),
            tc(
                "d",
                tool="t4",
                preconditions=[{"key": "q", "operator": "exists"}],
                state_dependencies=["m"],
            ),
        ]
    )
    assert got == [
        ("CL0402", "error", "a", "state dependency 'k' not available at this point"),
        ("CL0401", "error", "c", "precondition will fail: 'k' is Number(1), need gt Number(5)"),
        ("CL0401", "error", "d", "precondition will fail: key 'q' does not exist"),
        ("CL0402", "error", "d", "state dependency 'm' not available at this point"),
    ]


def test_initial_state_is_used() -> None:
    assert (
        findings(
            [tc("a", state_dependencies=["k"], preconditions=[{"key": "k", "value": 0}])],
            state={"k": 0},
        )
        == []
    )


def test_tool_existence() -> None:
    got = findings(
        [tc("a", tool="nope"), tc("b", tool="yes"), tc("c", tool=None), tc("d", tool="yse")],
        tools=["yes"],
    )
    assert got == [
        ("CL0306", "error", "a", "tool 'nope' is not registered"),
        ("CL0305", "error", "c", "tool_call action has no tool specified"),
        ("CL0306", "error", "d", "tool 'yse' is not registered"),
    ]
    assert (
        verify({"actions": [tc("d", tool="yse")]}, tools=["yes"]).issues[0].help
        == "did you mean 'yes'?"
    )
    assert findings([tc("c", tool=None)]) == [
        ("CL0305", "error", "c", "tool_call action has no tool specified")
    ]
    assert findings([tc("a", tool="nope")]) == []  # no registry: existence is not checked


SCHEMA = {
    "name": "fetch",
    "parameters": {
        "type": "object",
        "properties": {
            "url": {"type": "string"},
            "n": {"type": "integer"},
            "u": {"type": ["string", "null"]},
            "e": {"type": "string", "enum": ["a", "b"]},
        },
        "required": ["url", "n"],
    },
}


def test_param_schema_matches_cars_shape_check() -> None:
    got = findings(
        [
            tc("a", tool="fetch", parameters={"url": 5}),
            tc("b", tool="fetch", parameters={"url": "x", "n": 2.0, "u": 3, "extra": 1}),
        ],
        tools=[SCHEMA],
    )
    assert got == [
        ("CL0307", "error", "a", "tool 'fetch': missing required parameter 'n'"),
        (
            "CL0308",
            "error",
            "a",
            "tool 'fetch': parameter 'url' has wrong type: expected string, got number",
        ),
        (
            "CL0308",
            "error",
            "b",
            "tool 'fetch': parameter 'u' has wrong type: expected string|null, got number",
        ),
    ]


def test_param_constraints_beyond_cars_check() -> None:
    got = findings(
        [tc("a", tool="fetch", parameters={"url": "x", "n": 1, "e": "z"})], tools=[SCHEMA]
    )
    assert got == [
        ("CL0309", "error", "a", "tool 'fetch': parameter 'e': 'z' is not one of ['a', 'b']")
    ]


def test_invalid_schema_is_reported_not_raised() -> None:
    bad = {
        "name": "b",
        "parameters": {"type": "object", "properties": {"x": {"type": 5, "minimum": "z"}}},
    }
    got = findings([tc("a", tool="b", parameters={"x": 1})], tools=[bad])
    assert got[0][0] == "CL0309" and "invalid registered JSON Schema" in got[0][3]


def test_schemaless_tool_accepts_anything() -> None:
    assert findings([tc("a", tool="free", parameters={"x": [1]})], tools=[{"name": "free"}]) == []


def test_compensation_resolution() -> None:
    got = findings(
        [
            tc("a", tool="t1", reversibility="compensable"),
            tc("b", tool="t2", compensation={"type": "tool", "tool": "undo"}),
            tc("c", tool="t3", compensation={"type": "action_ref", "action_id": "zz"}),
            tc("d", tool="t4", compensation={"type": "action_ref", "action_id": "a"}),
        ],
        tools=["t1", "t2", "t3", "t4"],
    )
    assert got == [
        ("CL0310", "error", "a", "action declares reversibility 'compensable' but no compensation"),
        ("CL0311", "error", "b", "compensation names tool 'undo', which is not registered"),
        (
            "CL0312",
            "error",
            "c",
            "compensation references action 'zz', which is not in this proposal",
        ),
    ]


def test_write_conflicts_pairwise() -> None:
    result = verify(
        {
            "actions": [
                tc("a", tool="t1", expected_effects={"k": 1}),
                tc("b", tool="t2", expected_effects={"k": 2}, state_dependencies=["k"]),
                tc("c", tool="t3", expected_effects={"k": 3}),
            ]
        }
    )
    assert result.conflicts == [("a", "c", "k")]
    assert [(i.code, i.action_id, i.message) for i in result.issues] == [
        ("CL0403", "a", "write conflict on 'k' with action c (no dependency declared)")
    ]
    assert result.valid


def test_state_write_barrier_still_conflicts_as_in_car() -> None:
    result = verify(
        {
            "actions": [
                {"id": "w1", "type": "state_write", "parameters": {"key": "k", "value": 1}},
                {"id": "w2", "type": "state_write", "parameters": {"key": "k", "value": 2}},
            ]
        }
    )
    assert result.conflicts == [("w1", "w2", "k")]
    assert result.execution_levels == [["w1"], ["w2"]]
    assert result.simulated_state == {"k": 2}


def test_explicit_ordering_resolves_a_conflict() -> None:
    result = verify(
        {
            "actions": [
                tc("a", tool="t1", expected_effects={"k": 1}),
                tc("b", tool="t2", expected_effects={"k": 2}, depends_on=["a"]),
            ]
        }
    )
    assert result.conflicts == [] and result.issues == []


def test_duplicate_ids() -> None:
    assert findings([tc("a", tool="t1"), tc("b", tool="t2"), tc("a", tool="t3")]) == [
        ("CL0301", "error", "a", "duplicate action id 'a' (first used by action 1)")
    ]


def test_dependency_ids_and_cycles() -> None:
    got = findings(
        [
            tc("fetch", tool="t1", depends_on=["store"]),
            tc("parse", tool="t2", depends_on=["fetch"]),
            tc("store", tool="t3", depends_on=["parse", "fetc"]),
        ]
    )
    assert got == [
        ("CL0302", "error", "store", "depends on 'fetc', which is not an action of this proposal"),
        ("CL0303", "error", "fetch", "dependency cycle: fetch -> store -> parse -> fetch"),
    ]


def test_malformed_actions() -> None:
    got = findings(
        [
            {"id": "w", "type": "state_write", "parameters": {"value": 1}},
            {"id": "w2", "type": "state_write", "parameters": {"key": 5}},
            {"id": "r", "type": "state_read"},
            {"id": "as", "type": "assertion", "parameters": {}},
        ]
    )
    assert [(c, a) for c, _, a, _ in got] == [
        ("CL0304", "w"),
        ("CL0304", "w2"),
        ("CL0304", "r"),
        ("CL0304", "as"),
    ]
    assert got[0][3] == "state_write requires 'key' parameter"
    assert got[1][3] == "state_write 'key' parameter must be a string, got Number(5)"


def test_assertions_that_provably_fail() -> None:
    got = findings(
        [
            {"id": "w", "type": "state_write", "parameters": {"key": "x", "value": 2}},
            {"id": "ok", "type": "assertion", "parameters": {"key": "x", "expected": 2}},
            {"id": "bad", "type": "assertion", "parameters": {"key": "x", "expected": 1}},
            {"id": "unknown", "type": "assertion", "parameters": {"key": "y", "expected": 1}},
        ]
    )
    assert got == [
        (
            "CL0404",
            "error",
            "bad",
            "assertion will fail: state['x'] = Number(2), expected Number(1)",
        )
    ]


def test_capabilities() -> None:
    cap = Capability(
        name="bot",
        allowed_tools=["fetch", "rollback_*"],
        denied_tools=["rollback_db"],
        allowed_state_keys=["build.*", "ok"],
        max_actions=2,
    )
    got = findings(
        [
            tc("a", tool="fetch", expected_effects={"build.x": 1}),
            tc("b", tool="shell"),
            tc("c", tool="rollback_db", expected_effects={"secret": 1}),
            tc(
                "d",
                tool="fetch",
                parameters={"n": 1},
                compensation={"type": "tool", "tool": "nuke"},
            ),
        ],
        capability=cap,
    )
    assert got == [
        ("CL0601", "error", "b", "tool 'shell' is not allowed by capability 'bot'"),
        ("CL0602", "error", "c", "tool 'rollback_db' is denied by capability 'bot'"),
        ("CL0603", "error", "c", "state key 'secret' is not allowed by capability 'bot'"),
        ("CL0601", "error", "d", "compensation tool 'nuke' is not allowed by capability 'bot'"),
        ("CL0604", "error", "proposal", "4 actions exceed capability 'bot' (max_actions 2)"),
    ]


def test_empty_capability_allows_everything() -> None:
    assert (
        findings([tc("a", tool="x", expected_effects={"k": 1})], capability=Capability(name="open"))
        == []
    )


def test_budget() -> None:
    budget = Budget(name="default", max_actions=2, max_tool_calls=1)
    got = findings(
        [
            tc("a", tool="t1"),
            tc("b", tool="t2"),
            {"id": "w", "type": "state_write", "parameters": {"key": "k"}},
        ],
        budget=budget,
    )
    assert got == [
        ("CL0605", "error", "proposal", "3 actions exceed budget 'default' (max_actions 2)"),
        ("CL0606", "error", "proposal", "2 tool calls exceed budget 'default' (max_tool_calls 1)"),
    ]
    none = Budget(name="none", max_actions=0, max_tool_calls=0)
    assert findings([tc("a", tool="t1")], budget=none) == [
        ("CL0605", "error", "proposal", "1 action exceeds budget 'none' (max_actions 0)"),
        ("CL0606", "error", "proposal", "1 tool call exceeds budget 'none' (max_tool_calls 0)"),
    ]


def test_issue_order_follows_car() -> None:
    got = findings(
        [
            tc(
                "a",
                tool="zz",
                preconditions=[{"key": "q", "operator": "exists"}],
                state_dependencies=["m"],
                reversibility="compensable",
                expected_effects={"k": 1},
            ),
            tc("b", tool="fetch", parameters={"url": "x"}, expected_effects={"k": 2}),
            tc("c", tool="fetch", parameters={"url": "x"}),
        ],
        tools=["fetch"],
        max_actions=2,
    )
    assert [(c, a) for c, _, a, _ in got] == [
        ("CL0315", "a"),
        ("CL0313", "proposal"),
        ("CL0401", "a"),
        ("CL0402", "a"),
        ("CL0306", "a"),
        ("CL0310", "a"),
        ("CL0403", "a"),
    ]


def test_evidence_records_what_ran() -> None:
    result = verify({"actions": [tc("a")]}, tools=["t"])
    records = {c.name: c for c in result.evidence.checks}
    assert records["tool_existence"].ran and not records["param_schema"].ran
    assert not records["capabilities"].ran and not records["budget"].ran
    assert records["loop_detection"].tier == "heuristic"
    with_schema = verify({"actions": [tc("a", tool="fetch", parameters={})]}, tools=[SCHEMA])
    checks = {c.name: c for c in with_schema.evidence.checks}
    assert checks["param_schema"].ran and checks["param_schema"].findings == 2
    assert any("no schemas" in a for a in result.evidence.assumptions)


def test_records_without_findings_are_shared_and_frozen() -> None:
    first = verify({"actions": [tc("a")]}, tools=["t"])
    second = verify({"actions": [tc("b"), tc("c", tool="nope")]}, tools=["t"])
    before = {c.name: c for c in first.evidence.checks}
    after = {c.name: c for c in second.evidence.checks}
    assert after["tool_existence"].findings == 1 and before["tool_existence"].findings == 0
    assert after["duplicate_ids"] is before["duplicate_ids"]  # no findings in either: shared
    with pytest.raises(ValidationError):
        before["duplicate_ids"].findings = 3  # a record is a fact of its verification
    assert verify({"actions": [tc("a")]}, tools=["t"]) == first  # records and all


def test_a_list_of_tool_names_is_the_tool_set_load_tools_makes() -> None:
    class Name(str):
        pass

    for names in (["a", "b"], ("a", "b"), [Name("a"), "b"], [], ("a",) * 3):
        built = tool_set(names)
        assert built is not None and built.names == frozenset(map(str, names))
        assert all(type(name) is str for name in built.names)
        assert not built.has_schemas and not built.checkers


def test_gc_paused_nests_and_restores_on_errors() -> None:
    assert gc.isenabled()
    with pytest.raises(KeyError), gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause leaves the outer one paused
        raise KeyError("x")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # paused before: left paused
    finally:
        gc.enable()


def test_every_issue_has_a_registered_code_and_check() -> None:
    codes = {c.code: c for c in RUNTIME_CODES}
    result = verify(
        {"actions": [tc("a", tool=None), tc("a", tool="x", depends_on=["a", "q"])]}, tools=["t"]
    )
    for issue in result.issues:
        assert codes[issue.code].check == issue.check
        assert codes[issue.code].severity == issue.severity


def test_inputs_in_every_form() -> None:
    doc = {"actions": [tc("a")]}
    import json

    assert verify(json.dumps(doc)).valid and verify(json.dumps({"proposal": doc})).valid
    schema = ToolSchema(name="t")
    assert verify(doc, tools=[schema]).valid
    prebuilt = tool_set(["t"])
    assert isinstance(prebuilt, ToolSet) and verify(doc, tools=prebuilt).valid
    assert verify(doc, state='{"k": 1}').simulated_state == {"k": 1}
    with pytest.raises(IRLoadError):
        verify(doc, state="[1]")
    with pytest.raises(IRLoadError):
        verify('{"actions": [')


def test_locations_flow_into_issues() -> None:
    loc = {"file": "plan.car", "line": 7, "column": 3}
    result = verify({"actions": [tc("a", tool=None, loc=loc)]})
    assert str(result.issues[0].loc) == "plan.car:7:3"


def test_valid_false_only_for_errors() -> None:
    result = verify({"actions": [tc("a"), tc("b")]})
    assert result.valid and len(result.warnings()) == 1 and result.errors() == []


def test_assertions_with_an_operator() -> None:
    got = findings(
        [
            {"id": "w", "type": "state_write", "parameters": {"key": "x", "value": 2}},
            {
                "id": "ok",
                "type": "assertion",
                "parameters": {"key": "x", "operator": "gt", "value": 1},
            },
            {
                "id": "bad",
                "type": "assertion",
                "parameters": {"key": "x", "operator": "lt", "value": 1},
            },
        ]
    )
    assert got == [
        ("CL0404", "error", "bad", "assertion will fail: 'x' is Number(2), need lt Number(1)")
    ]


def test_a_key_read_before_it_is_written_says_how_to_make_it_available() -> None:
    def action(action_id: str, **fields: Any) -> dict[str, Any]:
        return {"id": action_id, "type": "tool_call", "tool": "t", **fields}

    later = verify(
        {
            "actions": [
                action("read", state_dependencies=["k"]),
                action("write", expected_effects={"k": 1}),
            ]
        }
    )
    (issue,) = later.errors()
    assert issue.code == "CL0402"
    assert issue.help == (
        "'write' writes it, later in the proposal: put this action after it (an action reads"
        " what the actions before it wrote)"
    )
    (never,) = verify({"actions": [action("read", state_dependencies=["k"])]}).errors()
    assert never.help is not None and never.help.startswith("nothing before it writes it")
    (close,) = verify(
        {"actions": [action("read", state_dependencies=["kk"])]}, state={"k": 1}
    ).errors()
    assert close.help is not None and "did you mean" in close.help
