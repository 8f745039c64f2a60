"""Execution levels and cycles: CAR's edge rules, carlang's depends_on, and a brute-force model."""

from __future__ import annotations

from typing import Any

from carlang_runtime.dag import build_dag
from carlang_runtime.ir import Action, load_proposal
from hypothesis import given
from hypothesis import strategies as st


def ids_of_levels(actions: list[dict[str, Any]]) -> list[list[str]]:
    proposal = load_proposal({"actions": actions})
    dag = build_dag(proposal.actions)
    return [[proposal.actions[i].id for i in level] for level in dag.levels]


def tc(i: str, **kw: Any) -> dict[str, Any]:
    return {"id": i, "type": "tool_call", "tool": "t", **kw}


def sw(i: str, key: str, **kw: Any) -> dict[str, Any]:
    return {"id": i, "type": "state_write", "parameters": {"key": key, "value": 1}, **kw}


def test_chain() -> None:
    levels = ids_of_levels(
        [
            tc("a", expected_effects={"k": 1}),
            tc("b", state_dependencies=["k"], expected_effects={"j": 1}),
            tc("c", state_dependencies=["j"]),
        ]
    )
    assert levels == [["a"], ["b"], ["c"]]


def test_dependency_on_a_later_writer_gives_no_edge() -> None:
    assert ids_of_levels(
        [tc("a", state_dependencies=["k"]), tc("b", expected_effects={"k": 1})]
    ) == [["a", "b"]]


def test_last_writer_wins() -> None:
    levels = ids_of_levels(
        [
            tc("a", expected_effects={"k": 1}),
            tc("b", state_dependencies=["k"]),
            tc("c", expected_effects={"k": 2}),
            tc("d", state_dependencies=["k"]),
        ]
    )
    assert levels == [["a", "b", "c"], ["d"]]


def test_state_write_barrier() -> None:
    assert ids_of_levels([sw("w1", "k"), sw("w2", "k"), sw("w3", "j")]) == [["w1", "w3"], ["w2"]]


def test_depends_on_can_point_forward() -> None:
    assert ids_of_levels([tc("a", depends_on=["b"]), tc("b")]) == [["b"], ["a"]]


def test_cycle_is_reported_once_with_its_path() -> None:
    proposal = load_proposal(
        {
            "actions": [
                tc("x"),
                tc("a", depends_on=["c"]),
                tc("b", depends_on=["a"]),
                tc("c", depends_on=["b"]),
                tc("s", depends_on=["s"]),
            ]
        }
    )
    dag = build_dag(proposal.actions)
    paths = [[proposal.actions[i].id for i in path] for path in dag.cycles]
    assert paths == [["a", "c", "b", "a"], ["s", "s"]]
    assert sorted(i for level in dag.levels for i in level) == list(range(5))


def test_unknown_dependencies_are_collected() -> None:
    dag = build_dag(
        load_proposal({"actions": [tc("a", depends_on=["zz", "a2"]), tc("a2")]}).actions
    )
    assert dag.unknown_dependencies == [(0, "zz")]


# --- a brute-force model ----------------------------------------------------------------------


def reference_deps(actions: list[Action]) -> list[set[int]]:
    deps: list[set[int]] = [set() for _ in actions]
    for i, a in enumerate(actions):
        for key in a.state_dependencies:
            writers = [j for j, b in enumerate(actions) if key in b.written_keys()]
            if writers and writers[-1] < i:
                deps[i].add(writers[-1])
        if a.type == "state_write" and isinstance(a.parameters.get("key"), str):
            earlier = [
                j
                for j in range(i)
                if actions[j].type == "state_write"
                and actions[j].parameters.get("key") == a.parameters["key"]
            ]
            deps[i].update(earlier[-1:])  # the previous one; the chain orders the rest
        for name in a.depends_on:
            named = [j for j, b in enumerate(actions) if b.id == name]
            if named:
                deps[i].add(named[0])
    return deps


def reachable(deps: list[set[int]], start: int) -> set[int]:
    seen: set[int] = set()
    stack = list(deps[start])
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(deps[node])
    return seen


@st.composite
def proposals(draw: st.DrawFn) -> list[Action]:
    n = draw(st.integers(1, 12))
    keys = ["k1", "k2", "k3"]
    actions = []
    for i in range(n):
        kind = draw(st.sampled_from(["tool_call", "state_write"]))
        params = {"key": draw(st.sampled_from(keys)), "value": 1} if kind == "state_write" else {}
        actions.append(
            Action(
                id=f"a{i}",
                type=kind,
                tool="t" if kind == "tool_call" else None,
                parameters=params,
                expected_effects={k: 1 for k in draw(st.lists(st.sampled_from(keys), max_size=2))},
                state_dependencies=draw(st.lists(st.sampled_from(keys), max_size=2)),
                depends_on=[f"a{j}" for j in draw(st.lists(st.integers(0, n - 1), max_size=2))],
            )
        )
    return actions


@given(proposals())
def test_levels_respect_edges_and_cycles_match_reachability(actions: list[Action]) -> None:
    dag = build_dag(actions)
    deps = reference_deps(actions)
    assert [set(d) for d in dag.deps] == deps
    on_cycle = {i for i in range(len(actions)) if i in reachable(deps, i)}
    assert {i for members in dag.cycle_members for i in members} == on_cycle
    for path, members in zip(dag.cycles, dag.cycle_members, strict=True):
        assert set(path) <= set(members)
    level_of = {i: n for n, level in enumerate(dag.levels) for i in level}
    assert sorted(level_of) == list(range(len(actions)))
    for i, d in enumerate(deps):
        for j in d:
            if not (i in on_cycle and j in on_cycle):
                assert level_of[j] < level_of[i], (i, j)
    for path in dag.cycles:
        assert path[0] == path[-1] == min(path)
        for a, b in zip(path, path[1:], strict=False):
            assert b in deps[a]
    if not on_cycle:  # acyclic: each action is as early as its dependencies allow
        for i, d in enumerate(deps):
            assert level_of[i] == (max(level_of[j] for j in d) + 1 if d else 0)
