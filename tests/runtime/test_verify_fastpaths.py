"""verify's shortcuts (one C-level pass that proves a check has nothing to find) against the
checks themselves: on proposals shaped to take them, and to just miss them, the result is the
same with every shortcut turned off."""

from __future__ import annotations

from typing import Any

import pytest
from carlang_runtime.columns import Columns
from carlang_runtime.ir import load_proposal
from carlang_runtime.verify import checks, verify
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.verify_bench import fan_out, independent_chains

_SHORTCUTS = (
    "_all_calls_distinct",
    "_one_parameter_distinguishes",
    "_one_writer_per_key",
    "_nothing_to_check",
    "_all_tools_registered",
)
_KEYS = ["k0", "k1", "k2", "k3"]
_VALUES = st.sampled_from([0, 1, 1.0, True, "a", None])


@st.composite
def _call(draw: st.DrawFn, index: int) -> dict[str, Any]:
    action: dict[str, Any] = {"id": f"a{index}", "type": "tool_call"}
    if draw(st.integers(0, 19)):
        action["tool"] = draw(st.sampled_from(["step", "step", "other"]))
    if draw(st.integers(0, 5)):
        names = draw(st.lists(st.sampled_from(["i", "j"]), max_size=2, unique=True))
        action["parameters"] = {name: draw(st.integers(0, 6) | _VALUES) for name in names}
        if draw(st.integers(0, 29)) == 0:
            action["parameters"]["list"] = [1]  # cannot be hashed
    if draw(st.integers(0, 3)):
        keys = draw(st.lists(st.sampled_from(_KEYS + [f"own{index}"] * 4), max_size=2))
        action["expected_effects"] = {key: draw(_VALUES) for key in keys}
    if draw(st.booleans()):
        action["state_dependencies"] = draw(st.lists(st.sampled_from(_KEYS), max_size=2))
    rare = draw(st.integers(0, 39))
    if rare == 0:
        action["type"] = "assertion"
        action["parameters"] = {"key": "k0", "expected": 1}
    elif rare == 1:
        action["type"] = "state_write"
        action["parameters"] = {"key": "k1", "value": 2}
    elif rare == 2:
        action["preconditions"] = [{"key": "k2", "operator": "exists"}]
    elif rare == 3:
        action["depends_on"] = [f"a{draw(st.integers(0, 8))}"]
    return action


@st.composite
def _proposals(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 8))
    return {"id": "p", "actions": [draw(_call(i)) for i in range(n)]}


def _outcome(doc: dict[str, Any], tools: list[str] | None, state: dict[str, Any]) -> Any:
    return verify(doc, state=state, tools=tools).model_dump()


@pytest.mark.slow  # (the default run stays under three minutes; CI runs it)
@settings(max_examples=400, deadline=None)
@given(
    _proposals(),
    st.sampled_from([None, ["step"], ["step", "other"]]),
    st.sampled_from([{}, {"k0": 1}]),
)
def test_shortcuts_change_nothing(
    doc: dict[str, Any], tools: list[str] | None, state: dict[str, Any]
) -> None:
    fast = _outcome(doc, tools, state)
    with pytest.MonkeyPatch.context() as patch:
        for name in _SHORTCUTS:
            patch.setattr(checks, name, lambda *args: False)
        slow = _outcome(doc, tools, state)
    assert fast == slow


def test_the_shortcuts_are_taken_on_a_plain_fan_out() -> None:
    """The shape they are for: each shortcut answers True (a test that they are not dead)."""
    taken: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        for name in _SHORTCUTS:
            original = getattr(checks, name)

            def spy(*args: Any, _name: str = name, _original: Any = original) -> bool:
                answer: bool = _original(*args)
                if answer:
                    taken.append(_name)
                return answer

            patch.setattr(checks, name, spy)
        result = verify(fan_out(20), tools=["step"])
    assert result.valid and not result.issues
    assert set(taken) == set(_SHORTCUTS)


def test_nan_parameters_decline_the_shortcut() -> None:
    """NaN is not equal to itself, but two NaN parameters are the same call (canonical JSON)."""
    call = {"type": "tool_call", "tool": "t", "parameters": {"p": float("nan"), "q": [1]}}
    doc = {"actions": [{"id": "a", **call}, {"id": "b", **call}]}
    assert [i.message for i in verify(doc).issues] == ["duplicate tool call: t (2x)"]


def test_two_parameters_together_tell_calls_apart() -> None:
    # 10 chains: neither `c` nor `i` alone tells the calls apart, the two together do.
    doc = independent_chains(10, 20)
    assert checks._one_parameter_distinguishes(Columns.of(load_proposal(doc).actions))
    same = {"actions": [dict(action, id=f"x{n}") for n, action in enumerate(doc["actions"][:2])]}
    same["actions"][1]["parameters"] = dict(same["actions"][0]["parameters"])
    assert not checks._one_parameter_distinguishes(Columns.of(load_proposal(same).actions))
    assert [i.message for i in verify(same).issues] == ["duplicate tool call: step (2x)"]
