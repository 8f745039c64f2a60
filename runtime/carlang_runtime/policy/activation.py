"""What a policy condition sees: the variables, their values for one action, their types.

    action   {id, type, tool, params, proposal, metadata}   the action being decided
    params   the action's parameters (typed from the tools' JSON Schemas)
    state    the state the action would run against (a tenant's view under a scope)
    scope    {tenant, caller, claims, ...}                   who is asking, as the host says
    history  [{id, type, tool, params, status}, ...]         actions admitted this session
    now      the current time, a timestamp (exact to the nanosecond; a `datetime` given by
             the host is taken exactly)

`tool` is null for an action that is not a tool call; every other field is always present, so a
condition like `action.tool == "shell"` is simply false for a state write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

from ..cel import nodes as n
from ..cel.checker import Declarations
from ..cel.types import DYN, STRING, TIMESTAMP, Type, from_json_schema, join, list_of, map_of
from ..cel.values import CelTimestamp, cel_value
from ..globs import GlobSet, is_glob
from ..ir import Action, ActionType, StateDecl, ToolSchema

__all__ = [
    "HISTORY_LIMIT",
    "HISTORY_STATUSES",
    "VARIABLES",
    "action_activation",
    "keep_history",
    "parameters_read",
    "policy_declarations",
    "state_problem",
    "state_problems",
    "state_type",
]

VARIABLES: Final = ("action", "params", "state", "scope", "history", "now")

_EMPTY: Final[Mapping[str, Any]] = {}


def action_activation(
    action: Action,
    *,
    proposal_id: str = "",
    state: Mapping[str, Any] | None = None,
    scope: Mapping[str, Any] | None = None,
    history: Sequence[Mapping[str, Any]] | None = None,
    now: datetime | CelTimestamp | None = None,
) -> dict[str, Any]:
    """The variables of a policy condition for `action` (`now` only when given: it is made
    on demand by `PolicySet`, as few conditions read it)."""
    params = action.parameters
    activation: dict[str, Any] = {
        "action": {
            "id": action.id,
            "type": action.type.value,
            "tool": action.tool,
            "params": params,
            "proposal": proposal_id,
            "metadata": action.metadata,
        },
        "params": params,
        "state": state if state is not None else _EMPTY,
        "scope": scope if scope is not None else _EMPTY,
        "history": history if history is not None else (),
    }
    if now is not None:
        activation["now"] = cel_value(now)
    return activation


def state_type(declared: Iterable[StateDecl]) -> Type | None:
    """The type of `state` for a program's `state { ... }` entries: a closed map of the keys
    declared, each of its declared type, and of the families (`build.*`) as patterns; None
    when nothing is declared (any key, as CAR's state)."""
    entries = list(declared)
    if not entries:
        return None
    fields = {e.key: from_json_schema(e.type) for e in entries if not is_glob(e.key)}
    families = {e.key: from_json_schema(e.type) for e in entries if is_glob(e.key)}
    return map_of(fields=fields, closed=True, patterns=families)


def state_problems(
    declared: Sequence[StateDecl], state: Mapping[str, Any]
) -> list[tuple[str, str, str | None]]:
    """What is wrong with `state` given a program's `state { ... }` entries, as `(key,
    problem, help)`: a key none declares (help: a did-you-mean), a value not of its key's
    type. Nothing when the program declares no state (any key, as CAR's state)."""
    from ..paramcheck import ParamChecker
    from ..suggest import did_you_mean

    if not declared:
        return []
    exact = {d.key: d.type for d in declared if not is_glob(d.key)}
    families = GlobSet(d.key for d in declared if is_glob(d.key))
    problems: list[tuple[str, str, str | None]] = []
    for key, value in state.items():
        if key not in exact and not families.matches(key):
            hint = did_you_mean(key, list(exact), "`")
            problems.append((key, f"{UNDECLARED_STATE_KEY} `{key}`", hint))
        elif exact.get(key):  # (a family's keys, and `any`, take any value)
            schema = {"type": "object", "properties": {key: exact[key]}}
            for finding in ParamChecker(key, schema).check({key: value}):
                problems.append((key, f"state `{key}`: {finding.detail}", None))
    return problems


#: How `state_problems` begins the problem of a key no `state` entry declares.
UNDECLARED_STATE_KEY = "no state key is called"


def state_problem(declared: Sequence[StateDecl], state: Mapping[str, Any]) -> str | None:
    """The first of `state_problems`, as one line with its help; None when there is none."""
    problems = state_problems(declared, state)
    if not problems:
        return None
    _, problem, hint = problems[0]
    return problem + (f" ({hint})" if hint else "")


#: The status of an admitted action that has not ended, in `history`.
RUNNING: Final = "running"
#: Every status a `history` entry can have (`history_entry`).
HISTORY_STATUSES: Final = (RUNNING, "succeeded", "failed", "skipped", "rejected")
#: Every type an action can have (`action.type`, a history entry's `type`).
_ACTION_TYPES = frozenset(t.value for t in ActionType)


def history_entry(
    action: Action, status: str, params: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """An action as `history` holds it: status "running" (admitted, not ended), "succeeded",
    "failed", "skipped" or "rejected". `params`: the parameters as the call received them,
    when not the action's own."""
    return {
        "id": action.id,
        "type": action.type.value,
        "tool": action.tool,
        "params": action.parameters if params is None else params,
        "status": status,
    }


#: How many entries `history` keeps (a session's actions): the last ones.
HISTORY_LIMIT: Final = 1000


def keep_history(history: list[dict[str, Any]], limit: int | None = None) -> int:
    """Trim `history`, in place, to the last `limit` refused entries (status "rejected") and
    the last `limit` others, in order. Apart, because a refusal costs its caller nothing (no
    budget, no tool runs): were the oldest to go first whatever they are, calls a policy
    denies would push a call out of a rule's sight for free (`deny pay when history.exists(h,
    h.tool == "pay" && ...)`: a thousand denied calls later, a second payment went through);
    were refusals to go first, a rule that counts them would never see one. One pass.
    (`limit`: `HISTORY_LIMIT` when None.) Returns how many entries went: a policy that reads
    `history` cannot be decided on what is left (`PolicySet.evaluate`'s `dropped`)."""
    limit = HISTORY_LIMIT if limit is None else limit
    if len(history) <= limit:
        return 0
    refused = kept = 0
    keep = [False] * len(history)
    for index in range(len(history) - 1, -1, -1):
        if history[index]["status"] == "rejected":
            refused += 1
            keep[index] = refused <= limit
        else:
            kept += 1
            keep[index] = kept <= limit
    before = len(history)
    history[:] = [entry for entry, kept_it in zip(history, keep, strict=True) if kept_it]
    return before - len(history)


def policy_declarations(
    targets: Iterable[ToolSchema] | None,
    state: Type | None = None,
    *,
    declared: Sequence[ToolSchema] = (),
    complete: bool = False,
) -> Declarations:
    """The declarations of a policy that applies to calls of `targets` (None: to every
    action, tool call or not, so `params` and `action.tool` may be anything); `state`: the
    type of `state` when the program declares its keys (`state_type`), else any map.
    `declared`: the tools the program declares: for a policy of every action, their
    parameters are what `params` may hold, each one missing from some actions (the other
    tools' calls, and state reads, writes and asserts, whose `params` are empty); for any
    policy, the names `history`'s entries are known to have. `complete`: `targets` are every
    tool the policy judges (it names each, no glob that an MCP server's tool may match too),
    so `action.tool` is one of their names."""
    targets = list(targets) if targets is not None else None
    if targets is None:
        params: Type = map_of()
        if declared:
            # open: a tool the program does not declare (an MCP server's) may be called too
            nothing = Type("map", DYN, {}, False, frozenset())
            params = join([*(_parameters_type(t) for t in declared), nothing])
        # (any tool's name, or null; a letter or two from a declared tool's is a typo)
        tool: Type = replace(DYN, known_values=frozenset(t.name for t in declared or ()))
    else:
        schemas = [_parameters_type(t) for t in targets]
        params = join(schemas) if schemas else map_of()
        if params.kind != "map":
            params = map_of()
        names = frozenset(t.name for t in targets)
        tool = (
            replace(STRING, values=names)
            if complete and names
            else replace(STRING, known_values=names)
        )
    kind = replace(STRING, values=_ACTION_TYPES)
    action = map_of(
        fields={
            "id": STRING,
            "type": kind,
            "tool": tool,
            "params": params,
            "proposal": STRING,
            "metadata": map_of(),
        },
        closed=True,
    )
    listed = targets or ()  # (history holds calls of every tool: known, others possible)
    # closed: an entry has these fields and no other, so `h.tol` is a typo to report (it
    # would fail the condition, and the policy would fail closed, once history has an entry)
    history_entry = map_of(
        fields={
            "id": STRING,
            "type": kind,
            "tool": replace(DYN, known_values=frozenset(t.name for t in (*declared, *listed))),
            "params": map_of(),
            "status": replace(STRING, values=frozenset(HISTORY_STATUSES)),
        },
        closed=True,
    )
    # every field partial: a host sets the scope it has (no tenant in a single-tenant run, the
    # proxy's only `mcp_session`), so a condition reading one unguarded fails without it
    scope_fields = {"tenant": STRING, "caller": STRING, "claims": map_of(), "mcp_session": STRING}
    scope = Type("map", DYN, scope_fields, False, frozenset(scope_fields))
    return Declarations(
        {
            "action": action,
            "params": params,
            "state": state if state is not None else map_of(),
            "scope": scope,
            "history": list_of(history_entry),
            "now": TIMESTAMP,
        }
    )


def _parameters_type(tool: ToolSchema) -> Type:
    """The type of a call's `params`: its tool's parameters (any map when it declares none)."""
    return from_json_schema(tool.parameters) if tool.parameters else map_of()


def parameters_read(tree: n.Expr) -> frozenset[str] | None:
    """The parameters a condition reads by name: `params.x`, `params["x"]`, `has(params.x)`,
    the same under `action.params`. None when it may read them all: the map used whole
    (`params.size()`, `params` iterated or given to a function, a computed key, `action`
    used whole)."""
    names: set[str] = set()
    stack: list[tuple[n.Expr, n.Expr | None]] = [(tree, None)]
    while stack:
        node, parent = stack.pop()
        if _is_parameters(node):
            name = _name_read(node, parent)
            if name is None:
                return None
            names.add(name)
            continue
        if isinstance(node, n.Ident) and node.name == "action" and not _selects(parent, node):
            return None  # `action` whole: its params too
        stack.extend((child, node) for child in n.children(node))
    return frozenset(names)


def _is_parameters(node: n.Expr) -> bool:
    """Whether `node` is the parameter map: `params` or `action.params`."""
    if isinstance(node, n.Ident):
        return node.name == "params"
    return (
        isinstance(node, n.Select)
        and node.field == "params"
        and isinstance(node.operand, n.Ident)
        and node.operand.name == "action"
    )


def _selects(parent: n.Expr | None, node: n.Expr) -> bool:
    """Whether `parent` reads one named field of `node` (`node.f`, `has(node.f)`,
    `node["f"]`)."""
    if isinstance(parent, (n.Select, n.Has)):
        return parent.operand is node
    return (
        isinstance(parent, n.Index)
        and parent.operand is node
        and isinstance(parent.index, n.Literal)
        and isinstance(parent.index.value, str)
    )


def _name_read(node: n.Expr, parent: n.Expr | None) -> str | None:
    """The parameter `parent` reads of the parameter map `node`, or None if not one by name."""
    if not _selects(parent, node):
        return None
    if isinstance(parent, (n.Select, n.Has)):
        return parent.field
    assert isinstance(parent, n.Index) and isinstance(parent.index, n.Literal)
    return str(parent.index.value)
