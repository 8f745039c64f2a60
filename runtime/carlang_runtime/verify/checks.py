"""The verification checks, as ordered tuples of plain functions over a `VerifyContext`.

Three stages, in CAR's order:

1. `PROPOSAL_CHECKS` look at the proposal as a whole (resource bounds, ids, cycles, loops);
2. `ACTION_CHECKS` find per-action problems. The state-dependent ones (preconditions,
   dependencies, assertions) run inside `walk`, which visits actions level by level against the
   symbolic state; the others are independent of state and run as their own passes;
3. `FINAL_CHECKS` look at the result (write conflicts, capability and budget limits).

Findings of stage 2 are ordered by walk position, then by check, so the output interleaves per
action exactly as CAR's verifier does (preconditions, dependencies, tool, compensation), with
carlang's own checks slotted in around them. Every check reports through `VerifyContext.report`,
so a test can run one in isolation. The passes read the columnar view (`Columns`), not the
models: see `columns.py` for why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import chain, islice, repeat
from operator import eq
from typing import Any

from ..capability import CapabilityCheck, touched_keys
from ..columns import ASSERTION, STATE_WRITE, TOOL_CALL, Columns
from ..dag import Dag, last_writers
from ..ir import (
    ActionProposal,
    ActionRefCompensation,
    Budget,
    Capability,
    Reversibility,
    ToolCompensation,
)
from ..jsonvalue import canonical_key, rust_debug
from ..paramcheck import ParamChecker, finding_message
from ..precondition import Show, check_assertion, check_precondition, comparison_help
from ..suggest import did_you_mean, plural_with_verb
from .codes import code_for
from .result import VerifyIssue
from .state import apply_effects, merged_state

__all__ = [
    "ToolSet",
    "VerifyContext",
    "PROPOSAL_CHECKS",
    "ACTION_CHECKS",
    "FINAL_CHECKS",
    "CHECK_DESCRIPTIONS",
    "walk",
]

PROPOSAL_LEVEL = "proposal"
_COMPENSABLE = Reversibility.COMPENSABLE

# Order of the per-action checks within one action (CAR's, with carlang's around it).
_RANK = {
    "malformed_action": 0,
    "preconditions": 1,
    "state_dependencies": 2,
    "tool_existence": 3,
    "param_schema": 3,
    "param_constraints": 3,
    "compensation_resolution": 4,
    "assertions": 5,
    "capabilities": 6,
}


@dataclass(slots=True)
class ToolSet:
    """The registered tools as verify sees them: names, plus a parameter checker per tool
    when schemas were given."""

    names: frozenset[str]
    checkers: dict[str, ParamChecker] = field(default_factory=dict)
    has_schemas: bool = False
    #: Positions in every call's parameters whose values no message quotes (a program's
    #: `redact` paths, as `redact.redaction_path` reads them), besides each schema's secrets.
    redact: tuple[tuple[str, ...], ...] = ()


@dataclass(slots=True)
class VerifyContext:
    """Everything a check may read, and where it reports."""

    proposal: ActionProposal
    cols: Columns
    dag: Dag
    state: dict[str, Any]
    tools: ToolSet | None
    max_actions: int
    capability: Capability | None = None
    budget: Budget | None = None
    ids: frozenset[str] = frozenset()
    capability_check: CapabilityCheck | None = None
    #: How a precondition's or an assertion's message shows a value (CAR's form by default).
    show: Show = rust_debug
    #: `(earlier, later, key)` positions of unordered writers, filled by check_write_conflicts.
    conflicts: list[tuple[int, int, str]] = field(default_factory=list)
    findings: dict[str, int] = field(default_factory=dict)
    #: 0 before the walk, 1 for per-action checks, 2 after; decides how findings sort.
    stage: int = 0
    _found: list[tuple[tuple[int, int, int, int], VerifyIssue]] = field(default_factory=list)
    _walk_position: list[int] | None = None
    #: The last writer of each key (`dag.last_writers`), made for the first unavailable key.
    _writers: dict[str, int] | None = None

    def report(
        self,
        kind: str,
        index: int | None,
        message: str,
        help: str | None = None,
        path: str | None = None,
    ) -> None:
        """Record one finding of registry kind `kind` on action `index` (None: the proposal);
        `path` says what inside the action it is about."""
        code = code_for(kind)
        if index is None:
            action_id, loc = PROPOSAL_LEVEL, self.proposal.loc
        else:
            action_id, loc = self.cols.ids[index], self.cols.locs[index]
        if self.stage == 1 and index is not None:
            if self._walk_position is None:
                position = [0] * len(self.cols)
                for pos, i in enumerate(self.dag.order()):
                    position[i] = pos
                self._walk_position = position
            key = (1, self._walk_position[index], _RANK.get(code.check, 9), len(self._found))
        else:
            key = (self.stage, 0, 0, len(self._found))
        issue = VerifyIssue(
            action_id=action_id,
            severity=code.severity,
            message=message,
            tier="heuristic" if code.check == "loop_detection" else "decision_procedure",
            check=code.check,
            code=code.code,
            loc=loc,
            help=help,
            path=path,
        )
        self._found.append((key, issue))
        self.findings[code.check] = self.findings.get(code.check, 0) + 1

    def issues(self) -> list[VerifyIssue]:
        """All findings, in output order."""
        return [issue for _, issue in sorted(self._found, key=lambda pair: pair[0])]


# -- stage 0: the proposal as a whole ----------------------------------------------------------


def check_resource_bounds(ctx: VerifyContext) -> None:
    """More actions than `max_actions` (a warning, as in CAR, on the first action)."""
    count = len(ctx.cols)
    if count > ctx.max_actions:
        ctx.report("excessive-actions", 0, f"excessive actions: {count} (limit {ctx.max_actions})")


def check_duplicate_ids(ctx: VerifyContext) -> None:
    """Two actions with one id: reported at every occurrence after the first."""
    if len(ctx.ids) == len(ctx.cols):
        return
    first: dict[str, int] = {}
    for index, action_id in enumerate(ctx.cols.ids):
        if action_id in first:
            ctx.report(
                "duplicate-action-id",
                index,
                f"duplicate action id '{action_id}' (first used by action {first[action_id] + 1})",
                path="id",
            )
        else:
            first[action_id] = index


def check_dependency_ids(ctx: VerifyContext) -> None:
    """`depends_on` entries that name no action of the proposal."""
    for index, name in ctx.dag.unknown_dependencies:
        ctx.report(
            "unknown-dependency",
            index,
            f"depends on '{name}', which is not an action of this proposal",
            did_you_mean(name, ctx.ids),
            path=f"depends_on[{ctx.cols.depends_on[index].index(name)}]",
        )


def check_cycles(ctx: VerifyContext) -> None:
    """Dependency cycles, each once, as the whole path from its earliest action."""
    ids = ctx.cols.ids
    for path, members in zip(ctx.dag.cycles, ctx.dag.cycle_members, strict=True):
        shown = " -> ".join(ids[i] for i in path)
        others = [ids[i] for i in members if i not in path]
        also = f" (also involves {', '.join(others)})" if others else ""
        message = f"dependency cycle: {shown}{also}"
        ctx.report("dependency-cycle", path[0], message, path="depends_on")


def check_loop_detection(ctx: VerifyContext) -> None:
    """Identical tool calls (same tool, same parameters): 2 = warning, 3 or more = error.

    Calls are first grouped by their frozen parameter items, which is cheap but treats
    `1`, `1.0` and `true` as one value (Python equality); groups of two or more, and parameter
    maps that cannot be frozen (nested values), are then counted exactly by canonical JSON.
    """
    if _all_calls_distinct(ctx.cols):
        return
    types, params = ctx.cols.types, ctx.cols.parameters
    rough_keys: list[tuple[str, object] | None] = [None] * len(types)
    first_seen: dict[tuple[str, object], int] = {}
    repeated: set[tuple[str, object]] = set()
    for index, tool in enumerate(ctx.cols.tools):
        if tool is not None and types[index] is TOOL_CALL:
            try:
                key: tuple[str, object] = (tool, frozenset(params[index].items()))
            except TypeError:  # an unhashable value: lists, maps
                key = (tool, canonical_key(params[index]))
            rough_keys[index] = key
            if first_seen.setdefault(key, index) != index:
                repeated.add(key)
    if not repeated:
        return
    exact: dict[tuple[str, str], list[int]] = {}
    for index, rough in enumerate(rough_keys):
        if rough is not None and rough in repeated:
            exact.setdefault((rough[0], canonical_key(params[index])), []).append(index)
    # reported in the order of each call's first occurrence
    for (tool, _), members in sorted(exact.items(), key=lambda item: item[1][0]):
        count = len(members)
        if count == 2:
            ctx.report("duplicate-call", None, f"duplicate tool call: {tool} (2x)")
        elif count > 2:
            ctx.report(
                "likely-loop",
                None,
                f"repeated identical tool call: {tool} ({count}x) — likely loop",
            )


def _all_calls_distinct(cols: Columns) -> bool:
    """Whether, cheaply, no two tool calls can be identical: every action is a call with a
    tool, and one parameter tells them apart (`_one_parameter_distinguishes`) or, when the
    parameters are flat, the hashes of (tool, parameter items) are all different.

    The usual proposal, checked without a Python step per action (and keeping one integer per
    call, not a frozen copy of its parameters); anything else takes the exact way."""
    if None in cols.tools or cols.types.count(TOOL_CALL) != len(cols.types):
        return False
    if len(cols.types) < 2:  # one call (agents often propose one at a time): nothing to repeat
        return True
    if _one_parameter_distinguishes(cols):
        return True
    try:
        frozen = map(frozenset, map(dict.items, cols.parameters))
        hashes = set(map(hash, zip(cols.tools, frozen, strict=True)))
    except TypeError:  # an unhashable parameter value: lists, maps
        return False
    return len(hashes) == len(cols.types)


def _one_parameter_distinguishes(cols: Columns) -> bool:
    """Whether (tool, value of one parameter) differs from call to call, or else (tool, values
    of two): the parameters are the first two of the first call that has any, and calls without
    one count as having one more value.

    Safe because values Python finds unequal have unequal canonical JSON (values it finds
    equal, like 1 and 1.0, count as the same here), except NaN, which is not equal to itself
    (and which JSON text cannot hold): a NaN among the values declines."""
    params = cols.parameters
    names = next((list(islice(p, 2)) for p in params if p), None)
    if names is None:
        return False
    tools = None if len(set(cols.tools)) == 1 else cols.tools  # one tool: the values alone
    columns: list[list[Any]] = []
    for name in names:
        values = list(map(dict.get, params, repeat(name), repeat(_ABSENT)))
        if not all(map(eq, values, values)):  # NaN
            return False
        columns.append(values)
        keys: Iterable[Any] = values if len(columns) == 1 else zip(*columns, strict=True)
        try:
            distinct = set(keys if tools is None else zip(tools, keys, strict=True))
        except TypeError:  # a value that cannot be hashed
            return False
        if len(distinct) == len(params):
            return True
    return False


_ABSENT = object()  # the value of a parameter a call does not have


# -- stage 1: per action -----------------------------------------------------------------------


def walk(ctx: VerifyContext) -> None:
    """Visit actions level by level, checking preconditions, dependencies and assertions
    against the symbolic state, then applying each action's declared effects.

    verify applies the effects of actions that would be blocked, so that one root cause does
    not cascade into findings on everything downstream (`simulate` does not).
    """
    cols, state = ctx.cols, ctx.state
    types, effects = cols.types, cols.effects
    preconditions, dependencies = cols.preconditions, cols.dependencies
    if _nothing_to_check(ctx):  # then the walk only applies effects, without a Python step
        ctx.state = merged_state(state, effects, ctx.dag.levels, ctx.dag.effect_keys)
        return
    update = state.update
    order = ctx.dag.order()
    for index in order:
        if preconditions[index]:
            _check_preconditions(ctx, index)
        keys = dependencies[index]
        if keys:
            for key in keys:
                if key not in state:
                    _report_unavailable(ctx, index)
                    break
        kind = types[index]
        if kind is ASSERTION:
            _check_assertion(ctx, index)
        if kind is STATE_WRITE:
            apply_effects(cols, index, state)
        elif effects[index]:
            update(effects[index])  # apply_effects, inlined: this loop runs once per action


def _nothing_to_check(ctx: VerifyContext) -> bool:
    """Whether the walk can find nothing: no preconditions, assertions or state writes, and
    every state dependency written earlier (`Dag.dependencies_written`)."""
    types = ctx.cols.types
    return (
        ctx.dag.dependencies_written
        and ASSERTION not in types
        and STATE_WRITE not in types
        and not any(ctx.cols.preconditions)
    )


def _check_preconditions(ctx: VerifyContext, index: int) -> None:
    for number, pre in enumerate(ctx.cols.preconditions[index]):
        failure = check_precondition(pre, ctx.state, ctx.show)
        if failure is not None:
            message = f"precondition will fail: {failure}"
            hint = comparison_help(pre, ctx.state)  # (CAR's words say `gt`, not why)
            where = f"preconditions[{number}]"
            ctx.report("precondition-fails", index, message, hint, path=where)


def _report_unavailable(ctx: VerifyContext, index: int) -> None:
    """One finding per state dependency of action `index` that the state does not have."""
    for number, key in enumerate(ctx.cols.dependencies[index]):
        if key not in ctx.state:
            message = f"state dependency '{key}' not available at this point"
            hint = did_you_mean(key, ctx.state) or _unavailable_help(ctx, index, key)
            path = f"state_dependencies[{number}]"
            ctx.report("dependency-unavailable", index, message, hint, path=path)


def _unavailable_help(ctx: VerifyContext, index: int, key: str) -> str:
    """How to make `key` available to action `index`: run it after the action that writes
    the key later in the proposal (an action reads only what those before it wrote), or give
    the key a value before the proposal runs."""
    if ctx._writers is None:
        ctx._writers = last_writers(ctx.cols)
    writer = ctx._writers.get(key)
    if writer is not None and writer > index:
        return (
            f"'{ctx.cols.ids[writer]}' writes it, later in the proposal: put this action after"
            " it (an action reads what the actions before it wrote)"
        )
    return (
        "nothing before it writes it: give it a value in the initial state, or write it in an"
        " earlier action"
    )


def _check_assertion(ctx: VerifyContext, index: int) -> None:
    """An assertion whose key is known statically and does not hold (`check_assertion`:
    CAR's `{key, expected}` equality, or carlang's `operator` and `value`)."""
    params = ctx.cols.parameters[index]
    key = params.get("key")
    if not isinstance(key, str) or key not in ctx.state:
        return
    failure = check_assertion(params, ctx.state, ctx.show)
    if failure is not None:
        path = "parameters" if isinstance(params.get("operator"), str) else "parameters.expected"
        ctx.report("assertion-fails", index, f"assertion will fail: {failure}", path=path)


def check_malformed_action(ctx: VerifyContext) -> None:
    """An action without what its type needs at run time (CAR fails these only when run)."""
    params, types = ctx.cols.parameters, ctx.cols.types
    # Nothing to find, seen at C speed (`count` compares by identity first: a list of one
    # member is counted without a comparison; `_all_calls_distinct` counts the same way).
    if types.count(TOOL_CALL) == len(types):
        return
    for index, kind in enumerate(types):
        if kind is TOOL_CALL:
            continue  # a missing tool is CAR's own finding (tool_existence)
        key = params[index].get("key")
        if key is None:
            message = f"{kind.value} requires 'key' parameter"
            ctx.report("malformed-action", index, message, path="parameters")
        elif not isinstance(key, str):
            ctx.report(
                "malformed-action",
                index,
                f"{kind.value} 'key' parameter must be a string, got {rust_debug(key)}",
                path="parameters.key",
            )


def check_tools(ctx: VerifyContext) -> None:
    """Every tool_call names a registered tool, with parameters that fit its schema."""
    types, tools = ctx.cols.types, ctx.tools
    if _all_tools_registered(ctx):
        return
    for index, tool in enumerate(ctx.cols.tools):
        if types[index] is not TOOL_CALL:
            continue
        if tool is None:
            ctx.report("no-tool", index, "tool_call action has no tool specified", path="tool")
        elif tools is not None:
            if tool not in tools.names:
                ctx.report(
                    "unknown-tool",
                    index,
                    f"tool '{tool}' is not registered",
                    did_you_mean(tool, tools.names),
                    path="tool",
                )
            elif tool in tools.checkers:
                _check_parameters(ctx, index, tool, tools.checkers[tool])


def _all_tools_registered(ctx: VerifyContext) -> bool:
    """Whether, cheaply, `check_tools` has nothing to find: every action a call of a
    registered tool without a schema (a call without a tool has None, never registered)."""
    tools, types = ctx.tools, ctx.cols.types
    return (
        tools is not None
        and not tools.checkers
        and types.count(TOOL_CALL) == len(types)
        and set(ctx.cols.tools) <= tools.names
    )


_FINDING_CODES = {
    "missing": "missing-parameter",
    "type": "parameter-type",
    "invalid_schema": "parameter-constraint",
}


def _check_parameters(ctx: VerifyContext, index: int, tool: str, checker: ParamChecker) -> None:
    redact = ctx.tools.redact if ctx.tools is not None else ()
    for finding in checker.check(ctx.cols.parameters[index], redact):
        if finding.kind == "invalid_schema":
            path = "tool"
        else:
            # (the value's own path inside the parameter: `trip.legs[1].to`)
            path = f"parameters.{finding.param}{finding.path}" if finding.param else "parameters"
        code = _FINDING_CODES.get(finding.kind, "parameter-constraint")
        ctx.report(code, index, finding_message(tool, finding), path=path)


def check_compensations(ctx: VerifyContext) -> None:
    """Compensations resolve, and a `compensable` action declares one."""
    reversibility, compensations = ctx.cols.reversibility, ctx.cols.compensations
    if compensations.count(None) == len(compensations) and _COMPENSABLE not in reversibility:
        return  # nothing to find, seen at C speed (as `check_malformed_action` sees it)
    for index, compensation in enumerate(compensations):
        if compensation is None:
            if reversibility[index] is _COMPENSABLE:
                ctx.report(
                    "missing-compensation",
                    index,
                    "action declares reversibility 'compensable' but no compensation",
                    "add `compensate <tool>(...)` or `compensate with <action id>` to the call, "
                    "or mark it `reversible` or `irreversible`",
                    path="reversibility",
                )
        elif isinstance(compensation, ToolCompensation):
            if ctx.tools is not None and compensation.tool not in ctx.tools.names:
                ctx.report(
                    "unknown-compensation-tool",
                    index,
                    f"compensation names tool '{compensation.tool}', which is not registered",
                    did_you_mean(compensation.tool, ctx.tools.names)
                    or "register it (in a program: declare it with `tool`), or undo with a tool"
                    " that is",
                    path="compensation.tool",
                )
        elif isinstance(compensation, ActionRefCompensation):
            if compensation.action_id not in ctx.ids:
                ctx.report(
                    "unknown-compensation-action",
                    index,
                    f"compensation references action '{compensation.action_id}', "
                    "which is not in this proposal",
                    did_you_mean(compensation.action_id, ctx.ids),
                    path="compensation.action_id",
                )


def _check_tool_allowed(ctx: VerifyContext, index: int, tool: str, what: str, path: str) -> None:
    assert ctx.capability_check is not None
    problem = ctx.capability_check.tool_problem(tool, what)
    if problem is not None:
        ctx.report(problem[0], index, problem[1], path=path)


def check_capability(ctx: VerifyContext) -> None:
    """The proposal's capability allows each action's tool (and compensation tool) and keys."""
    check = ctx.capability_check
    if check is None:
        return
    cols = ctx.cols
    for index, kind in enumerate(cols.types):
        tool = cols.tools[index]
        if kind is TOOL_CALL and tool is not None:
            _check_tool_allowed(ctx, index, tool, "tool", "tool")
        compensation = cols.compensations[index]
        if isinstance(compensation, ToolCompensation):
            _check_tool_allowed(
                ctx, index, compensation.tool, "compensation tool", "compensation.tool"
            )
        if check.allowed_keys is not None:
            for key in touched_keys(cols.actions[index]):
                message = check.key_problem(key)
                if message is not None:
                    ctx.report("state-key-not-allowed", index, message, path=f"state_key:{key}")


# -- stage 2: after the walk -------------------------------------------------------------------


def _explicitly_ordered(dag: Dag, later: int, earlier: int) -> bool:
    """Whether `later` reaches `earlier` through `depends_on` edges alone."""
    seen = {later}
    stack = [later]
    while stack:
        node = stack.pop()
        for nxt in dag.explicit[node]:
            if nxt == earlier:
                return True
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


#: How many conflicting pairs verify lists, at most: n writers of one key make n(n-1)/2 pairs,
#: and a careless or hostile proposal must not make the verifier's answer quadratic. Below
#: it, the pairs and their findings are CAR's; above it, each key gets one finding with its
#: writers and its count of pairs.
MAX_LISTED_CONFLICTS = 100
#: Bits of ancestor sets (actions x writers) beyond which ordering is checked pair by pair,
#: and how many pairs are checked that way at most (the count is then a lower bound).
_MAX_REACH_BITS = 2**30
_MAX_PAIR_CHECKS = 20_000


@dataclass(frozen=True, slots=True)
class KeyConflict:
    """Unordered writers of one key: the key, its writers (positions) and how many pairs of
    them have no dependency between them (at least that many when not `exact`)."""

    key: str
    writers: tuple[int, ...]
    pairs: int
    exact: bool = True


def conflict_pairs(ctx: VerifyContext) -> list[tuple[int, int, str]]:
    """Pairs of actions writing one key where neither lists it as a dependency (CAR's rule);
    carlang also accepts an explicit `depends_on` path between them as an ordering. At most
    `MAX_LISTED_CONFLICTS` pairs, the first in (earlier, later, key) order."""
    return write_conflicts(ctx)[0]


def write_conflicts(ctx: VerifyContext) -> tuple[list[tuple[int, int, str]], list[KeyConflict]]:
    """The listed conflicting pairs (at most `MAX_LISTED_CONFLICTS`) and, per key with any,
    its writers and its exact count of pairs. Time and memory grow with the number of writers
    and of listed pairs, never with the number of pairs."""
    cols = ctx.cols
    if _one_writer_per_key(ctx):
        return [], []
    first_writer: dict[str, int] = {}
    writers: dict[str, list[int]] = {}  # only keys with two or more writers
    types, params = cols.types, cols.parameters
    for index, effects in enumerate(cols.effects):
        if types[index] is STATE_WRITE:
            key = params[index].get("key")
            if isinstance(key, str):
                _add_writer(first_writer, writers, key, index)
        if effects:
            for key in effects:
                _add_writer(first_writer, writers, key, index)
    dependencies = cols.dependencies
    candidates = {
        key: [i for i in found if key not in dependencies[i]] for key, found in writers.items()
    }
    candidates = {key: found for key, found in candidates.items() if len(found) > 1}
    if not candidates:
        return [], []
    reach = _explicit_reach(ctx, candidates) if any(cols.depends_on) else None
    pairs: list[tuple[int, int, str]] = []
    per_key: list[KeyConflict] = []
    for key, found in candidates.items():
        listed, count, exact = _key_pairs(ctx, key, found, reach)
        if count:
            pairs.extend(listed)
            per_key.append(KeyConflict(key, tuple(found), count, exact))
    pairs.sort()
    return pairs[:MAX_LISTED_CONFLICTS], per_key


def _one_writer_per_key(ctx: VerifyContext) -> bool:
    """Whether, cheaply, no key has two writers: no state_write, and no key in two actions'
    expected effects (a map cannot hold a key twice); the usual proposal, checked without a
    Python step per action, or found out by `build_dag` on the way (`Dag.one_writer_per_key`)."""
    known = ctx.dag.one_writer_per_key
    if known is not None:
        return known
    cols = ctx.cols
    if STATE_WRITE in cols.types:
        return False
    keys = list(chain.from_iterable(cols.effects))
    return len(set(keys)) == len(keys)


def _explicit_reach(ctx: VerifyContext, candidates: dict[str, list[int]]) -> list[int] | None:
    """Per action, a bit set of the writers it is ordered with through `depends_on` alone
    (either way round); None when that would be too big or the edges have a cycle (then
    ordering is decided pair by pair)."""
    size = len(ctx.cols)
    writers = sorted({i for found in candidates.values() for i in found})
    if size * len(writers) > _MAX_REACH_BITS:
        return None
    explicit = ctx.dag.explicit
    order = _explicit_order(explicit, size)
    if order is None:
        return None
    bit = dict.fromkeys(writers, 0)
    for i in writers:
        bit[i] = 1 << i
    ancestors = [0] * size
    for node in order:  # dependencies first
        mask = 0
        for dep in explicit[node]:
            mask |= ancestors[dep] | bit.get(dep, 0)
        ancestors[node] = mask
    descendants = [0] * size
    for node in reversed(order):
        own = descendants[node] | bit.get(node, 0)
        for dep in explicit[node]:
            descendants[dep] |= own
    return [a | d for a, d in zip(ancestors, descendants, strict=True)]


def _explicit_order(explicit: list[list[int]], size: int) -> list[int] | None:
    """The actions with every `depends_on` before its dependant, or None on a cycle."""
    waiting = [len(set(deps)) for deps in explicit]
    dependants: list[list[int]] = [[] for _ in range(size)]
    for node, deps in enumerate(explicit):
        for dep in set(deps):
            dependants[dep].append(node)
    ready = [node for node in range(size) if waiting[node] == 0]
    order: list[int] = []
    while ready:
        node = ready.pop()
        order.append(node)
        for nxt in dependants[node]:
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                ready.append(nxt)
    return order if len(order) == size else None


def _key_pairs(
    ctx: VerifyContext, key: str, found: list[int], reach: list[int] | None
) -> tuple[list[tuple[int, int, str]], int, bool]:
    """The first `MAX_LISTED_CONFLICTS` unordered pairs of `found` (in order), their count,
    and whether the count is exact."""
    listed: list[tuple[int, int, str]] = []
    if not any(ctx.cols.depends_on):
        count = len(found) * (len(found) - 1) // 2
        for x, i in enumerate(found):
            if len(listed) >= MAX_LISTED_CONFLICTS:
                break
            for j in found[x + 1 : x + 1 + MAX_LISTED_CONFLICTS - len(listed)]:
                listed.append((i, j, key))
        return listed, count, True
    if reach is None:  # pair by pair, within bounds: the count may then be a lower bound
        checked = 0
        for x, i in enumerate(found):
            for j in found[x + 1 :]:
                checked += 1
                if len(listed) > MAX_LISTED_CONFLICTS or checked > _MAX_PAIR_CHECKS:
                    return listed[:MAX_LISTED_CONFLICTS], len(listed), False
                if not (_explicitly_ordered(ctx.dag, j, i) or _explicitly_ordered(ctx.dag, i, j)):
                    listed.append((i, j, key))
        return listed, len(listed), True
    members = 0
    for i in found:
        members |= 1 << i
    count = 0
    for i in found:
        later = members & ~((2 << i) - 1) & ~reach[i]
        count += later.bit_count()
        while later and len(listed) < MAX_LISTED_CONFLICTS:
            low = later & -later
            listed.append((i, low.bit_length() - 1, key))
            later ^= low
    return listed, count, True


def _add_writer(first: dict[str, int], writers: dict[str, list[int]], key: str, index: int) -> None:
    earlier = first.setdefault(key, index)
    if earlier != index:
        found = writers.setdefault(key, [earlier])
        if found[-1] != index:
            found.append(index)


def check_write_conflicts(ctx: VerifyContext) -> None:
    """Unordered writers of one key (warnings; they never make a proposal invalid): each pair
    as CAR reports it, or, past `MAX_LISTED_CONFLICTS` pairs, one finding per key."""
    ids = ctx.cols.ids
    pairs, per_key = write_conflicts(ctx)
    ctx.conflicts = pairs
    total = sum(conflict.pairs for conflict in per_key)
    if total <= MAX_LISTED_CONFLICTS:
        for i, j, key in pairs:
            message = f"write conflict on '{key}' with action {ids[j]} (no dependency declared)"
            ctx.report("write-conflict", i, message, path=f"state_key:{key}")
        return
    for conflict in per_key:
        shown = [ids[i] for i in conflict.writers[:10]]
        more = ", ..." if len(conflict.writers) > 10 else ""
        count = f"{conflict.pairs}" if conflict.exact else f"at least {conflict.pairs}"
        message = (
            f"write conflict on '{conflict.key}': {len(conflict.writers)} actions write it with"
            f" no dependency declared ({', '.join(shown)}{more}); {count} pairs, the first"
            f" {MAX_LISTED_CONFLICTS} of all keys listed in `conflicts`"
        )
        help = "order the writers with `after`, or make each read the key it overwrites"
        ctx.report(
            "write-conflict", conflict.writers[0], message, help, f"state_key:{conflict.key}"
        )


def check_limits(ctx: VerifyContext) -> None:
    """Counts against the capability's `max_actions` and the budget's hard limits."""
    count = len(ctx.cols)
    budget = ctx.budget
    if ctx.capability_check is not None:
        message = ctx.capability_check.count_problem(count)
        if message is not None:
            ctx.report("capability-max-actions", None, message)
    if budget is None:
        return
    if budget.max_actions is not None and count > budget.max_actions:
        ctx.report(
            "budget-actions",
            None,
            f"{plural_with_verb(count, 'action', 'exceed')} {budget.label}"
            f" (max_actions {budget.max_actions})",
        )
    if budget.max_tool_calls is not None:
        calls = sum(1 for kind in ctx.cols.types if kind is TOOL_CALL)
        if calls > budget.max_tool_calls:
            ctx.report(
                "budget-tool-calls",
                None,
                f"{plural_with_verb(calls, 'tool call', 'exceed')}"
                f" {budget.label} "
                f"(max_tool_calls {budget.max_tool_calls})",
            )


Check = Callable[[VerifyContext], None]

PROPOSAL_CHECKS: tuple[Check, ...] = (
    check_resource_bounds,
    check_duplicate_ids,
    check_dependency_ids,
    check_cycles,
    check_loop_detection,
)
ACTION_CHECKS: tuple[Check, ...] = (
    check_malformed_action,
    walk,
    check_tools,
    check_compensations,
    check_capability,
)
FINAL_CHECKS: tuple[Check, ...] = (check_write_conflicts, check_limits)


@dataclass(frozen=True, slots=True)
class CheckDescription:
    """What a check verifies and what it cannot, for `VerifyResult.evidence`."""

    name: str
    verifies: str
    cannot_verify: str
    needs: str = ""  # "tools", "schemas", "capability", "budget": runs only with that input


CHECK_DESCRIPTIONS: tuple[CheckDescription, ...] = (
    CheckDescription(
        "resource_bounds",
        "the action count is within the limit",
        "cost, wall-clock time or memory at run time",
    ),
    CheckDescription("duplicate_ids", "every action id is unique", "nothing further"),
    CheckDescription(
        "dependency_ids",
        "every `depends_on` entry names an action",
        "whether the dependency is the one intended",
    ),
    CheckDescription("cycles", "explicit dependencies form no cycle", "nothing further"),
    CheckDescription(
        "loop_detection",
        "no identical tool call repeats like a loop",
        "redundant calls whose arguments differ",
    ),
    CheckDescription(
        "malformed_action",
        "each action has what its type needs",
        "whether the values make sense for the task",
    ),
    CheckDescription(
        "preconditions",
        "preconditions hold against the statically known state",
        "keys whose values are only known at run time",
    ),
    CheckDescription(
        "state_dependencies",
        "each state dependency is produced before it is read",
        "reads a tool makes without declaring them",
    ),
    CheckDescription(
        "tool_existence",
        "every tool_call names a registered tool",
        "whether the tool behaves as its name suggests",
        "tools",
    ),
    CheckDescription(
        "param_schema",
        "parameters have the declared types and required keys",
        "value constraints beyond type and presence",
        "schemas",
    ),
    CheckDescription(
        "param_constraints",
        "parameters satisfy the rest of the JSON Schema",
        "constraints a JSON Schema cannot express",
        "schemas",
    ),
    CheckDescription(
        "compensation_resolution",
        "compensations name a registered tool or an action of the proposal",
        "whether the compensation really undoes the effect",
    ),
    CheckDescription(
        "assertions",
        "assertions hold where the state is statically known",
        "assertions over values set at run time",
    ),
    CheckDescription(
        "capabilities",
        "tools and state keys are within the capability",
        "what a tool touches without declaring it",
        "capability",
    ),
    CheckDescription(
        "write_conflicts",
        "writers of one key declare an ordering",
        "logically incompatible effects on different keys",
    ),
    CheckDescription(
        "budget",
        "action and tool-call counts are within the budget",
        "duration and cost, known only at run time",
        "budget",
    ),
)


def descriptions_for(present: Mapping[str, bool]) -> list[tuple[CheckDescription, bool]]:
    """Each check with whether it ran, given which optional inputs were present."""
    return [(d, present.get(d.needs, True) if d.needs else True) for d in CHECK_DESCRIPTIONS]
