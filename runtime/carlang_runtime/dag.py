"""The dependency graph of a proposal and its execution levels.

Edges follow CAR's `build_dag` exactly, plus carlang's explicit `depends_on`:

1. the writer of a key is the *last* action that writes it (a state_write's `parameters.key`,
   or any key of `expected_effects`);
2. an action that lists the key in `state_dependencies` depends on that writer only if the
   writer comes *earlier* in the list (a later writer gives no edge);
3. a state_write to key K depends on the previous state_write to K (a write barrier);
4. `depends_on` adds an edge to each named action, wherever it is in the list.

Rules 1-3 only point backwards, so CAR's graphs are acyclic; `depends_on` can point forwards
and close a cycle. Levels come from Kahn's algorithm, each sorted by position. When cycles
block it, the edges inside each cycle are set aside and the rest levelled again, so every action
still gets a level and every edge outside a cycle still holds; the cycles are reported
separately, each once, as a path.

The usual proposal (no state_write, no `depends_on`) takes one pass that finds the edges and
levels together (`_plain_edges_levels`); anything else takes the general loops, which define
the result (`_build_dag_loops`, the tests' reference). Both give the same `Dag`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import eq
from typing import Any, overload

from . import speedups
from .columns import STATE_WRITE, Columns
from .ir import Action, FailureBehavior

__all__ = ["Dag", "Parents", "build_dag", "last_writers", "runs_in_order"]

_NO_DEPS: list[int] = []  # shared by every action without dependencies; never mutated


@dataclass(slots=True)
class Dag:
    """Edges, levels and cycles of one proposal, all by action position."""

    #: `deps[i]`: positions action i waits for, without repeats, in the order found (read
    #: only: a list, or `Parents` on the one-pass path).
    deps: Sequence[list[int]]
    #: Positions per level, each level in proposal order.
    levels: list[list[int]]
    #: Each cycle as a path of positions that starts and ends at its earliest member.
    cycles: list[list[int]] = field(default_factory=list)
    #: The members of each cycle's strongly connected component (parallel to `cycles`); a
    #: component can hold actions beyond the one path shown.
    cycle_members: list[list[int]] = field(default_factory=list)
    #: `(position, name)` for every `depends_on` entry that names no action.
    unknown_dependencies: list[tuple[int, str]] = field(default_factory=list)
    #: `explicit[i]`: positions named by action i's `depends_on`.
    explicit: list[list[int]] = field(default_factory=list)
    #: Whether every state dependency is a key an earlier action writes, through an edge that
    #: holds (no cycle): walking level by level, each is then in the state when it is read.
    dependencies_written: bool = False
    #: Whether no key has two writers (a state_write's key or an `expected_effects` key, as
    #: rule 1 counts them): True when none has, False when one has, None when not worked out.
    #: It is worked out when no action is a state_write, where it comes for free (and verify's
    #: write-conflict check, `checks._one_writer_per_key`, then need not count keys itself).
    one_writer_per_key: bool | None = None
    #: How many distinct keys the actions' `expected_effects` write, where that was worked out
    #: with `one_writer_per_key` (else 0): what the state the walk ends with is sized for.
    effect_keys: int = 0

    def order(self) -> list[int]:
        """All positions, level by level: the order a static walk visits actions."""
        return list(chain.from_iterable(self.levels))


class Parents(Sequence[list[int]]):
    """`Dag.deps` kept compact: per action, its one parent as a position, or its list of
    parents (`_NO_DEPS` for none). Most actions wait for one other, and verify never reads
    `deps`: a list per action would be made and freed for nothing. Equal to the list of lists
    it stands for."""

    __slots__ = ("_parents",)

    def __init__(self, parents: list[int | list[int]]) -> None:
        self._parents = parents

    def __len__(self) -> int:
        return len(self._parents)

    @overload
    def __getitem__(self, index: int) -> list[int]: ...
    @overload
    def __getitem__(self, index: slice) -> list[list[int]]: ...
    def __getitem__(self, index: int | slice) -> list[int] | list[list[int]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        parent = self._parents[index]
        return [parent] if type(parent) is int else parent  # type: ignore[return-value]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return len(other) == len(self) and all(map(eq, self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


def last_writers(cols: Columns) -> dict[str, int]:
    """The last writer of every key (rule 1): its position, by key (a state_write's key and
    every expected effect)."""
    writer: dict[str, int] = {}
    types, params = cols.types, cols.parameters
    for i, effects in enumerate(cols.effects):
        if types[i] is STATE_WRITE:
            key = params[i].get("key")
            if isinstance(key, str):
                writer[key] = i
        if effects:
            for key in effects:
                writer[key] = i
    return writer


def _effect_writers(effects: list[dict[str, Any]]) -> dict[str, int]:
    """`_writers` when no action is a state_write (only `expected_effects` write)."""
    writer: dict[str, int] = {}
    for i, written in enumerate(effects):
        for key in written:
            writer[key] = i
    return writer


def _edges(cols: Columns, dag: Dag, writer: dict[str, int]) -> bool:
    """Fill `dag.deps` / `dag.explicit`; True when every edge points backwards (CAR's case)."""
    writer_of = writer.get
    first_index: dict[str, int] = {}
    if any(cols.depends_on):
        for i, action_id in enumerate(cols.ids):
            first_index.setdefault(action_id, i)
    last_state_write: dict[str, int] = {}
    deps_out: list[list[int]] = []
    explicit_out = dag.explicit
    dag.deps = deps_out
    types, params, named_deps = cols.types, cols.parameters, cols.depends_on
    backwards = all_written = True
    for i, dependencies in enumerate(cols.dependencies):
        found = _NO_DEPS
        if dependencies:
            for key in dependencies:
                w = writer_of(key)
                if w is not None and w < i:
                    if found is _NO_DEPS:
                        found = [w]
                    elif w not in found:
                        found.append(w)
                else:
                    all_written = False
        if types[i] is STATE_WRITE:
            written = params[i].get("key")
            if isinstance(written, str):
                previous = last_state_write.get(written)
                if previous is not None:
                    if found is _NO_DEPS:
                        found = [previous]
                    elif previous not in found:
                        found.append(previous)
                last_state_write[written] = i
        named = _NO_DEPS
        if named_deps[i]:
            named = []
            for name in named_deps[i]:
                j = first_index.get(name)
                if j is None:
                    dag.unknown_dependencies.append((i, name))
                    continue
                named.append(j)
                if j >= i:
                    backwards = False
                if found is _NO_DEPS:
                    found = [j]
                elif j not in found:
                    found.append(j)
        deps_out.append(found)
        explicit_out.append(named)
    dag.dependencies_written = all_written
    return backwards


def _plain_edges_levels(cols: Columns, dag: Dag, writer: dict[str, int]) -> None:
    """`_edges` then `_backward_levels` in one pass, for a proposal with no state_write and
    no `depends_on` (so only rule 2 makes edges, all backwards): fills `dag.deps`,
    `dag.explicit`, `dag.dependencies_written` and `dag.levels`."""
    n = len(cols)
    writer_of = writer.get
    deps: list[int | list[int]] = []  # see `Parents`
    add_deps = deps.append
    level_of: list[int] = []
    add_level = level_of.append
    first: list[int] = []
    add_first = first.append
    levels = [first]
    depth = 1  # len(levels), kept by hand: a call per action costs
    all_written = True
    parents: int | list[int]  # one parent, or several (see `Parents`)
    for i, dependencies in enumerate(cols.dependencies):
        level = 0  # deepest parent's level + 1; 0: no parent
        if dependencies:
            if len(dependencies) == 1:  # the usual case, without the repeats to drop
                w = writer_of(dependencies[0], n)  # n: not written, never < i
                if w < i:
                    parents = w
                    level = level_of[w] + 1
                else:
                    all_written = False
            else:
                parents = _NO_DEPS
                for key in dependencies:
                    w = writer_of(key, n)
                    if w < i:
                        if parents is _NO_DEPS:
                            parents = [w]
                        elif w in parents:
                            continue
                        else:
                            parents.append(w)
                        if level_of[w] >= level:
                            level = level_of[w] + 1
                    else:
                        all_written = False
        if level:
            add_deps(parents)
            add_level(level)
            if level < depth:
                levels[level].append(i)
            else:
                levels.append([i])
                depth += 1
        else:
            add_deps(_NO_DEPS)
            add_level(0)
            add_first(i)
    dag.deps = Parents(deps)
    dag.explicit = [_NO_DEPS] * n  # shared like every `_NO_DEPS`: never mutated
    dag.dependencies_written = all_written
    dag.levels = levels


def _backward_levels(deps: Sequence[list[int]]) -> list[list[int]]:
    """Levels in one pass, valid when every edge points to an earlier position."""
    level_of = [0] * len(deps)
    levels: list[list[int]] = []
    for i, found in enumerate(deps):
        level = 0
        for j in found:
            if level_of[j] >= level:
                level = level_of[j] + 1
        level_of[i] = level
        if level == len(levels):
            levels.append([i])
        else:
            levels[level].append(i)
    return levels


def _kahn_levels(deps: Sequence[list[int]], n: int) -> list[list[int]] | None:
    """Levels by Kahn's algorithm, each sorted by position; None when a cycle blocks it."""
    dependents: list[list[int]] = [[] for _ in range(n)]
    waiting = [0] * n
    for i, found in enumerate(deps):
        waiting[i] = len(found)
        for j in found:
            dependents[j].append(i)
    ready = [i for i in range(n) if waiting[i] == 0]
    levels: list[list[int]] = []
    placed = 0
    while ready:
        ready.sort()
        levels.append(ready)
        placed += len(ready)
        following: list[int] = []
        for i in ready:
            for j in dependents[i]:
                waiting[j] -= 1
                if waiting[j] == 0:
                    following.append(j)
        ready = following
    return levels if placed == n else None


def _strongly_connected(dag: Dag, n: int) -> list[list[int]]:
    """Tarjan's algorithm, iterative; components with a cycle, each sorted by position."""
    index = [-1] * n
    low = [0] * n
    on_stack = [False] * n
    stack: list[int] = []
    components: list[list[int]] = []
    counter = 0
    for root in range(n):
        if index[root] != -1:
            continue
        work = [(root, 0)]
        while work:
            node, edge = work.pop()
            if edge == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack[node] = True
            deps = dag.deps[node]
            if edge < len(deps):
                work.append((node, edge + 1))
                nxt = deps[edge]
                if index[nxt] == -1:
                    work.append((nxt, 0))
                elif on_stack[nxt]:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack[member] = False
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in dag.deps[node]:
                    components.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return components


def _cycle_path(dag: Dag, component: list[int]) -> list[int]:
    """A shortest path from the component's earliest member back to itself."""
    start = component[0]
    members = set(component)
    previous: dict[int, int] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in dag.deps[node]:
                if nxt == start:
                    path = [start]
                    while node != start:
                        path.append(node)
                        node = previous[node]
                    path.append(start)
                    return [path[0], *reversed(path[1:-1]), start]
                if nxt in members and nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    return [start, start]


def build_dag(actions: Sequence[Action] | Columns) -> Dag:
    """Edges, levels and cycles of `actions` (see the module docstring for the rules)."""
    cols = actions if isinstance(actions, Columns) else Columns.of(actions)
    dag = Dag(deps=[], levels=[])
    if STATE_WRITE in cols.types:
        return _finish(cols, dag, last_writers(cols))
    effects = cols.effects
    native = speedups.native()
    writer = _effect_writers(effects) if native is None else native.effect_writers(effects)
    # A map holds a key once, so a key has two writers exactly when it is counted twice.
    dag.one_writer_per_key = len(writer) == sum(map(len, effects))
    dag.effect_keys = len(writer)
    if not effects or any(cols.depends_on):
        return _finish(cols, dag, writer)
    if native is None:
        _plain_edges_levels(cols, dag, writer)
    else:  # the same pass in C
        parents, dag.levels, dag.dependencies_written = native.edges_levels(
            cols.dependencies, writer, _NO_DEPS
        )
        dag.deps = Parents(parents)
        dag.explicit = [_NO_DEPS] * len(cols)
    return dag


def _build_dag_loops(cols: Columns) -> Dag:
    """`build_dag` by the general loops alone: the reference the tests hold the one-pass
    path to (`one_writer_per_key` stays None)."""
    return _finish(cols, Dag(deps=[], levels=[]), last_writers(cols))


def _finish(cols: Columns, dag: Dag, writer: dict[str, int]) -> Dag:
    """Edges by the per-action loop, then levels and cycles."""
    n = len(cols)
    if _edges(cols, dag, writer):
        dag.levels = _backward_levels(dag.deps)
        return dag
    levels = _kahn_levels(dag.deps, n)
    if levels is None:
        components = sorted(_strongly_connected(dag, n), key=lambda c: c[0])
        dag.cycle_members = components
        dag.dependencies_written = False  # an edge inside a cycle does not hold
        dag.cycles = [_cycle_path(dag, c) for c in components]
        # Level the condensation: edges inside a cycle are dropped, every other edge holds.
        component_of = {i: k for k, c in enumerate(components) for i in c}
        acyclic = [
            [j for j in found if component_of.get(j, -1) != component_of.get(i, -2)]
            for i, found in enumerate(dag.deps)
        ]
        levels = _kahn_levels(acyclic, n)
        assert levels is not None, "the condensation of a graph is acyclic"
    dag.levels = levels
    return dag


def runs_in_order(actions: Sequence[Action], level: Sequence[int], judges_state: bool) -> bool:
    """Whether the actions of `level` run one after the other (each ends before the next is
    decided) rather than alongside each other: a single action; a level holding an `abort`
    action (a failure must stop what comes after it); and, when a policy's verdict depends on
    the state (`judges_state`), a level whose actions declare state writes, so that each is
    judged with the writes of the ones before it (run alongside, the second of two payments
    was judged before the first's `effects { paid = true }` were written, and passed `deny
    pay when state.paid`). The runtime and the static verdicts of `check` decide it here."""
    if len(level) == 1 or any(actions[i].failure_behavior is FailureBehavior.ABORT for i in level):
        return True
    return judges_state and any(actions[i].written_keys() for i in level)
