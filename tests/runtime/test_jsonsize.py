"""`ir.jsonsize` against pydantic: the size it adds up a field at a time is the length of the
JSON pydantic writes, for validated models of every field and for actions loaded by columns."""

from __future__ import annotations

import json
from typing import Any

import pytest
from carlang_runtime.columns import Columns
from carlang_runtime.ir import Action, ActionProposal
from carlang_runtime.ir.fastload import decode_plain, plain_columns
from carlang_runtime.ir.jsonsize import actions_json_size
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from tests.runtime.test_fastload import _proposals

_ACTIONS = TypeAdapter(list[Action])


def _written(actions: list[Action], exclude: set[str] | None = None) -> int:
    if exclude:
        return len(_ACTIONS.dump_json(actions, exclude={"__all__": exclude}))
    return len(_ACTIONS.dump_json(actions))


_text = st.text(max_size=4)  # any character: escapes, non-ASCII, surrogates' neighbours
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _text,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(_text, inner, max_size=2),
    max_leaves=4,
)
_maps = st.dictionaries(_text, _values, max_size=2)
_names = st.lists(_text, max_size=2)


@st.composite
def _any_action(draw: st.DrawFn) -> Action:
    """A validated action that may use every field, carlang's included."""
    fields: dict[str, Any] = {
        "type": draw(st.sampled_from(["tool_call", "state_write", "state_read", "assertion"]))
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "id": _text,
        "tool": st.none() | _text,
        "parameters": _maps,
        "preconditions": st.lists(
            st.fixed_dictionaries({"key": _text}, optional={"operator": _text, "value": _values}),
            max_size=2,
        ),
        "expected_effects": _maps,
        "state_dependencies": _names,
        "read_set": _names,
        "write_set": _names,
        "assumptions": st.lists(
            st.fixed_dictionaries(
                {"key": _text},
                optional={
                    "expected_value": _values,
                    "read_version": st.none() | st.integers(0, 2**64 - 1),
                },
            ),
            max_size=2,
        ),
        "invocation_mode": st.sampled_from(["one_shot", "streaming", "long_running"]),
        "reversibility": st.sampled_from(["reversible", "compensable", "irreversible"]),
        "compensation": st.none()
        | st.fixed_dictionaries(
            {"type": st.just("tool"), "tool": _text}, optional={"parameters": _maps}
        )
        | st.fixed_dictionaries({"type": st.just("action_ref"), "action_id": _text}),
        "idempotent": st.booleans(),
        "max_retries": st.integers(0, 2**32 - 1),
        "failure_behavior": st.sampled_from(["abort", "retry", "skip"]),
        "timeout_ms": st.none() | st.integers(0, 2**64 - 1),
        "metadata": _maps,
        "depends_on": _names,
        "loc": st.none()
        | st.fixed_dictionaries(
            {"file": _text, "line": st.integers(0, 9), "column": st.integers(0, 9)},
            optional={"end_line": st.integers(0, 9)},
        ),
    }
    for name in draw(st.lists(st.sampled_from(sorted(optional)), unique=True)):
        fields[name] = draw(optional[name])
    return Action.model_validate(fields)


@pytest.mark.slow  # (the default run stays under three minutes; CI runs it)
@settings(max_examples=300, deadline=None)
@given(st.lists(_any_action(), max_size=4))
def test_the_size_of_validated_actions_is_pydantics(actions: list[Action]) -> None:
    assert actions_json_size(actions) == _written(actions)
    assert actions_json_size(actions, ("loc",)) == _written(actions, {"loc"})
    known = Columns.of(actions).by_field()  # columns at hand: read, not extracted again
    assert actions_json_size(actions, ("loc",), known) == _written(actions, {"loc"})


@pytest.mark.slow  # (the default run stays under three minutes; CI runs it)
@settings(max_examples=300, deadline=None)
@given(_proposals())
def test_the_size_of_actions_loaded_by_columns_is_pydantics(doc: dict[str, Any]) -> None:
    text = json.dumps(doc)
    # from decoded JSON, and from msgspec's rows when it is installed
    for plain in (plain_columns(json.loads(text)), decode_plain(text)):
        if plain is None:
            continue
        try:
            model = ActionProposal.model_validate(doc)
        except ValidationError:  # pragma: no cover - the loaders decline what pydantic refuses
            raise AssertionError("a column loader accepted what pydantic refuses") from None
        # an absent id is a random one on both sides: the same length, another value
        lazy = plain.proposal.actions
        assert actions_json_size(lazy) == _written(model.actions)
        known = Columns.of_plain(plain).by_field()
        assert actions_json_size(lazy, ("loc",), known) == _written(model.actions)
        assert not any(lazy._built)  # sized without building a model


def test_non_finite_floats_are_sized_as_pydantic_writes_them() -> None:
    actions = [Action(type="tool_call", parameters={"x": float("inf"), "y": float("nan")})]
    assert actions_json_size(actions) == _written(actions)


def test_no_actions() -> None:
    assert actions_json_size([]) == len(b"[]")
