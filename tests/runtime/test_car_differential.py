"""Differential tests against the real CAR (car-runtime 0.58, through its Python binding).

Random CAR-format proposals are verified by both. Every car-runtime finding must be matched by
carlang (same action, check, severity and message); every extra carlang finding must come from
one of carlang's own checks. Levels, conflicts and the simulated state must agree exactly, and
so must `simulate`, `optimize` and `equivalent`.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

import pytest
from carlang_runtime.jsonvalue import json_equal
from carlang_runtime.verify import RUNTIME_CODES, equivalent, optimize, simulate, verify
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.car

#: Raise for a deeper search: CAR_DIFF_EXAMPLES=5000 pytest tests/runtime/test_car_differential.py
EXAMPLES = int(os.environ.get("CAR_DIFF_EXAMPLES", "300"))

CARLANG_ONLY_CHECKS = {c.check for c in RUNTIME_CODES if c.origin == "carlang"}
KEYS = ["a", "b", "c", "n"]
TOOLS = ["fetch", "deploy", "shell", "undo"]
VALUES = st.sampled_from([None, 0, 1, 5, 2.5, "x", "hello", True, False, [1], {"z": 1}, -3, 1e20])
OPERATORS = ["eq", "neq", "gt", "lt", "gte", "lte", "exists", "not_exists", "contains", "weird"]


def car_check(message: str) -> str:
    """The check a car-runtime message comes from (CAR issues carry no check name)."""
    prefixes = [
        ("excessive actions", "resource_bounds"),
        ("duplicate tool call", "loop_detection"),
        ("repeated identical tool call", "loop_detection"),
        ("precondition will fail", "preconditions"),
        ("state dependency", "state_dependencies"),
        ("tool_call action has no tool", "tool_existence"),
        ("action declares reversibility", "compensation_resolution"),
        ("compensation ", "compensation_resolution"),
        ("write conflict", "write_conflicts"),
    ]
    for prefix, check in prefixes:
        if message.startswith(prefix):
            return check
    if message.startswith("tool '"):
        return "tool_existence" if message.endswith("is not registered") else "param_schema"
    raise AssertionError(f"unclassified car-runtime message: {message!r}")


@st.composite
def car_actions(draw: st.DrawFn, index: int, n: int) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(["tool_call"] * 6 + ["state_write"] * 2 + ["state_read", "assertion"])
    )
    action: dict[str, Any] = {"id": f"a{index}", "type": kind}
    if kind == "tool_call" and draw(st.integers(0, 9)):
        action["tool"] = draw(st.sampled_from(TOOLS))
    if kind == "tool_call":
        # at most one key: CAR keys loop detection by hash-map order, nondeterministic beyond one
        if draw(st.booleans()):
            action["parameters"] = {draw(st.sampled_from(["url", "env", "n"])): draw(VALUES)}
    elif kind == "state_write":
        action["parameters"] = {"key": draw(st.sampled_from(KEYS)), "value": draw(VALUES)}
    else:
        action["parameters"] = {"key": draw(st.sampled_from(KEYS)), "expected": draw(VALUES)}
    if draw(st.integers(0, 2)) == 0:
        action["preconditions"] = [
            {
                "key": draw(st.sampled_from(KEYS)),
                "operator": draw(st.sampled_from(OPERATORS)),
                "value": draw(VALUES),
            }
            for _ in range(draw(st.integers(1, 2)))
        ]
    if draw(st.booleans()):
        action["expected_effects"] = {
            k: draw(VALUES) for k in draw(st.lists(st.sampled_from(KEYS), max_size=2))
        }
    if draw(st.integers(0, 2)) == 0:
        action["state_dependencies"] = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=2))
    choice = draw(st.integers(0, 5))
    if choice == 0:
        action["reversibility"] = "compensable"
    elif choice == 1:
        action["compensation"] = {
            "type": "tool",
            "tool": draw(st.sampled_from(TOOLS + ["rollback"])),
        }
    elif choice == 2:
        action["compensation"] = {"type": "action_ref", "action_id": f"a{draw(st.integers(0, n))}"}
    return action


@st.composite
def car_inputs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], Any, int | None]:
    n = draw(st.integers(1, 10))
    actions = [draw(car_actions(i, n)) for i in range(n)]
    state = {k: draw(VALUES) for k in draw(st.lists(st.sampled_from(KEYS), max_size=3))}
    tools_choice = draw(st.integers(0, 2))
    tools: Any = None
    if tools_choice == 1:
        tools = draw(st.lists(st.sampled_from(TOOLS), max_size=4, unique=True))
    elif tools_choice == 2:
        tools = [
            {
                "name": "fetch",
                "parameters": {
                    "type": "object",
                    "properties": {"url": {"type": "string"}, "n": {"type": "integer"}},
                    "required": ["url"],
                },
            },
            {
                "name": "deploy",
                "parameters": {
                    "type": "object",
                    "properties": {"env": {"type": ["string", "null"]}},
                    "required": ["env"],
                },
            },
            {"name": "undo", "parameters": {}},
        ]
    max_actions = draw(st.sampled_from([None, None, 3, 8]))
    return {"id": "p", "actions": actions}, state, tools, max_actions


def car_verify(
    proposal: dict[str, Any], state: dict[str, Any], tools: Any, max_actions: int | None
) -> dict[str, Any]:
    import car_runtime

    kwargs: dict[str, Any] = {"initial_state_json": json.dumps(state)}
    if max_actions is not None:
        kwargs["max_actions"] = max_actions
    if tools is not None and tools and isinstance(tools[0], dict):
        kwargs["tool_schemas_json"] = json.dumps(tools)
    elif tools is not None:
        kwargs["tool_names"] = tools
    return json.loads(car_runtime.verify(json.dumps(proposal), **kwargs))  # type: ignore[no-any-return]


@pytest.mark.slow  # (the default run stays under three minutes; CI runs it)
@settings(max_examples=EXAMPLES)
@given(car_inputs())
def test_verify_agrees_with_car(
    case: tuple[dict[str, Any], dict[str, Any], Any, int | None],
) -> None:
    proposal, state, tools, max_actions = case
    theirs = car_verify(proposal, state, tools, max_actions)
    ours = verify(proposal, state, tools, max_actions)
    car_findings = Counter(
        (i["action_id"], car_check(i["message"]), i["severity"], i["message"])
        for i in theirs["issues"]
    )
    our_findings = Counter((i.action_id, i.check, i.severity, i.message) for i in ours.issues)
    missing = car_findings - our_findings
    assert not missing, f"car-runtime found what carlang did not: {missing}"
    extra = our_findings - car_findings
    assert all(check in CARLANG_ONLY_CHECKS for _, check, _, _ in extra), extra
    assert ours.execution_levels == theirs["execution_levels"]
    assert sorted(ours.conflicts) == sorted(tuple(c) for c in theirs["conflicts"])
    assert json_equal(ours.simulated_state, theirs["simulated_state"])
    if not any(check in CARLANG_ONLY_CHECKS and sev == "error" for _, check, sev, _ in extra):
        assert ours.valid == theirs["valid"]


@settings(max_examples=150)
@given(car_inputs())
def test_simulate_and_optimize_agree_with_car(
    case: tuple[dict[str, Any], dict[str, Any], Any, int | None],
) -> None:
    import car_runtime

    proposal, state, _, _ = case
    theirs = json.loads(car_runtime.simulate(json.dumps(proposal), json.dumps(state)))
    assert json_equal(simulate(proposal, state), theirs)
    optimized = json.loads(car_runtime.optimize(json.dumps(proposal)))
    assert [a.state_dependencies for a in optimize(proposal).actions] == [
        a["state_dependencies"] for a in optimized["actions"]
    ]


@pytest.mark.slow  # (the default run stays under three minutes; CI runs it)
@settings(max_examples=150)
@given(car_inputs(), car_inputs())
def test_equivalent_agrees_with_car(
    first: tuple[dict[str, Any], Any, Any, Any], second: tuple[dict[str, Any], Any, Any, Any]
) -> None:
    import car_runtime

    a, b = first[0], second[0]
    assert equivalent(a, b) == car_runtime.equivalent(json.dumps(a), json.dumps(b))
    assert equivalent(a, a) is True


def test_loading_agrees_with_car_on_what_is_valid() -> None:
    import car_runtime
    from carlang_runtime.errors import IRLoadError
    from carlang_runtime.ir import load_proposal

    docs = [
        {"actions": [{"type": "tool_call", "max_retries": "3"}]},
        {"actions": [{"type": "bogus"}]},
        {"actions": [{"type": "tool_call", "idempotent": 1}]},
        {"actions": [{"type": "tool_call", "timeout_ms": -1}]},
        {"actions": [{"type": "tool_call", "compensation": {"type": "tool"}}]},
        {"actions": [{"type": "tool_call", "parameters": []}]},
        {"actions": [{"type": "tool_call", "max_retries": 3.0}]},
        {"id": 5, "actions": []},
        {"actions": [{"type": "tool_call", "preconditions": [{"operator": "eq"}]}]},
        {"actions": [{"type": "tool_call", "unknown": 1}], "extra": True},
        {"actions": []},
        {"actions": [{"type": "state_write", "parameters": {"key": "k"}, "max_retries": 0}]},
    ]
    for doc in docs:
        try:
            car_runtime.verify(json.dumps(doc))
            car_ok = True
        except ValueError:
            car_ok = False
        try:
            load_proposal(doc)
            ours_ok = True
        except IRLoadError:
            ours_ok = False
        assert ours_ok == car_ok, doc
