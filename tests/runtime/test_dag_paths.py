"""`build_dag`'s one-pass path for plain proposals against the general loops it stands in for,
in C (the speedups, where they are built) and in Python."""

from __future__ import annotations

import json
from typing import Any

import pytest
from carlang_runtime.columns import Columns
from carlang_runtime.dag import _NO_DEPS, Dag, Parents, _build_dag_loops, build_dag
from carlang_runtime.ir import Action, fastload
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.verify_bench import chain, fan_out, independent_chains

#: Every test runs with the C speedups and with their Python twins (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("speedups")

FIELDS = (
    "deps",
    "levels",
    "cycles",
    "cycle_members",
    "unknown_dependencies",
    "explicit",
    "dependencies_written",
)


def columns(document: dict[str, Any]) -> Columns:
    """The columns `verify` builds from JSON text."""
    return Columns.of_plain(fastload.decode_plain(json.dumps(document)))


def assert_same(cols: Columns) -> Dag:
    dag, reference = build_dag(cols), _build_dag_loops(cols)
    for name in FIELDS:
        assert getattr(dag, name) == getattr(reference, name), name
    return dag


def one_writer_per_key(actions: list[Action]) -> bool:
    """No key is written by two actions (brute force)."""
    keys = [key for action in actions for key in action.written_keys()]
    return len(keys) == len(set(keys))


@st.composite
def proposals(draw: st.DrawFn) -> list[Action]:
    n = draw(st.integers(1, 14))
    keys = ["k1", "k2", "k3", "k4"]
    writes = draw(st.booleans())  # half the proposals take the one-pass path
    named = draw(st.booleans())
    actions = []
    for i in range(n):
        kind = "state_write" if writes and draw(st.booleans()) else "tool_call"
        params = {"key": draw(st.sampled_from(keys)), "value": 1} if kind == "state_write" else {}
        depends_on = draw(st.lists(st.integers(0, n), max_size=2)) if named else []
        actions.append(
            Action(
                id=f"a{i}",
                type=kind,
                tool="t" if kind == "tool_call" else None,
                parameters=params,
                expected_effects={k: 1 for k in draw(st.lists(st.sampled_from(keys), max_size=2))},
                # repeats, keys nobody writes, keys written only later
                state_dependencies=draw(st.lists(st.sampled_from([*keys, "k5"]), max_size=3)),
                depends_on=[f"a{j}" for j in depends_on],  # a{n} names no action
            )
        )
    return actions


@given(proposals())
def test_build_dag_matches_the_loops(actions: list[Action]) -> None:
    dag = assert_same(Columns.of(actions))
    if any(a.type == "state_write" for a in actions):
        assert dag.one_writer_per_key is None
    else:
        assert dag.one_writer_per_key is one_writer_per_key(actions)


def test_fan_out() -> None:
    dag = assert_same(columns(fan_out(50)))
    assert dag.levels == [[0], list(range(1, 50))]
    assert dag.deps == [[], *([0] for _ in range(49))]
    assert dag.deps[0] is _NO_DEPS and all(e is _NO_DEPS for e in dag.explicit)
    assert dag.dependencies_written and dag.one_writer_per_key is True


def test_chain() -> None:
    dag = assert_same(columns(chain(30)))
    assert dag.levels == [[i] for i in range(30)]
    assert dag.deps == [[], *([i] for i in range(29))]
    assert dag.dependencies_written and dag.one_writer_per_key is True


def test_ten_chains() -> None:
    dag = assert_same(columns(independent_chains(10, 7)))
    assert dag.levels == [list(range(i, 70, 7)) for i in range(7)]
    assert dag.dependencies_written and dag.one_writer_per_key is True


def tc(i: str, **kw: Any) -> dict[str, Any]:
    return {"id": i, "type": "tool_call", "tool": "t", **kw}


def test_several_dependencies_drop_repeats_and_take_the_deepest_level() -> None:
    dag = assert_same(
        columns(
            {
                "actions": [
                    tc("a", expected_effects={"k": 1, "j": 1}),
                    tc("b", state_dependencies=["k"], expected_effects={"m": 1}),
                    tc("c", state_dependencies=["k", "m", "j", "k"]),
                ]
            }
        )
    )
    assert dag.deps == [[], [0], [0, 1]]
    assert dag.levels == [[0], [1], [2]]


def test_unwritten_and_later_written_keys_give_no_edge() -> None:
    dag = assert_same(
        columns(
            {
                "actions": [
                    tc("a", state_dependencies=["late"]),
                    tc("b", state_dependencies=["nobody", "late"]),
                    tc("c", expected_effects={"late": 1, "x": 1}),
                    tc("d", expected_effects={"x": 2}),
                ]
            }
        )
    )
    assert dag.deps == [[], [], [], []] and dag.levels == [[0, 1, 2, 3]]
    assert not dag.dependencies_written
    assert dag.one_writer_per_key is False  # x twice


def test_state_writes_and_depends_on_take_the_loops() -> None:
    with_write = columns(
        {
            "actions": [
                {"id": "w", "type": "state_write", "parameters": {"key": "k", "value": 1}},
                tc("r", state_dependencies=["k"]),
            ]
        }
    )
    dag = assert_same(with_write)
    assert dag.deps == [[], [0]] and dag.one_writer_per_key is None
    named = columns({"actions": [tc("a", depends_on=["b"]), tc("b", depends_on=["a"])]})
    dag = assert_same(named)
    assert dag.cycles == [[0, 1, 0]] and dag.one_writer_per_key is True


def test_no_actions() -> None:
    dag = build_dag([])
    assert dag.deps == [] and dag.levels == [] and dag.one_writer_per_key is True


def test_the_one_pass_path_keeps_deps_compact() -> None:
    dag = build_dag(columns(fan_out(6)))
    assert isinstance(dag.deps, Parents)
    assert len(dag.deps) == 6 and dag.deps[3] == [0] and dag.deps[0] == []
    assert dag.deps[1:3] == [[0], [0]] and list(dag.deps) == [[], [0], [0], [0], [0], [0]]
    assert dag.deps == _build_dag_loops(columns(fan_out(6))).deps
    assert dag.deps != [[], [0]] and dag.deps != "not a sequence of lists"
