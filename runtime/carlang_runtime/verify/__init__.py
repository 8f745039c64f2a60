"""Static verification of proposals: `verify`, plus `simulate`, `equivalent` and `optimize`.

`verify` finds what car-runtime's verifier finds, with the same action, severity and wording on
CAR-format input, and adds carlang's own checks (duplicate ids, unknown or cyclic explicit
dependencies, malformed actions, assertions that provably fail, capabilities and budgets).
Every issue carries the `check` that produced it and a stable `code` (see `codes.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from ..capability import CapabilityCheck
from ..columns import Columns
from ..dag import Dag, build_dag
from ..errors import IRLoadError, LoadProblem
from ..ir import ActionProposal, Budget, Capability, ToolSchema, load_proposal, load_tools
from ..ir._base import construct
from ..ir.fastload import PlainColumns, load_fresh
from ..ir.load import gc_paused
from ..jsontext import JsonTextError, parse_json
from ..jsonvalue import rust_debug
from ..paramcheck import ParamChecker
from ..precondition import Show
from .checks import (
    ACTION_CHECKS,
    FINAL_CHECKS,
    PROPOSAL_CHECKS,
    ToolSet,
    VerifyContext,
    descriptions_for,
)
from .codes import RUNTIME_CODES, Code
from .result import CheckRecord, Evidence, VerifyIssue, VerifyResult
from .simulate import equivalent, optimize, simulate

__all__ = [
    "DEFAULT_MAX_ACTIONS",
    "verify",
    "analyse",
    "Analysis",
    "simulate",
    "equivalent",
    "optimize",
    "tool_set",
    "load_state",
    "ToolSet",
    "VerifyResult",
    "VerifyIssue",
    "CheckRecord",
    "Evidence",
    "Code",
    "RUNTIME_CODES",
]

#: CAR's CLI verifies with a limit of 30 actions; so does carlang unless told otherwise.
DEFAULT_MAX_ACTIONS = 30

ToolsArg = ToolSet | Iterable[str] | Iterable[ToolSchema] | Iterable[Mapping[str, Any]] | str | None


def tool_set(tools: object, redact: Iterable[str] = ()) -> ToolSet | None:
    """The `ToolSet` for `verify`'s `tools` argument; build it once to verify many proposals
    against the same tools (parameter checkers are built per tool, once). `redact`: a
    program's `redact` paths (`params.card_number`), whose values no message quotes, as no
    message quotes a secret parameter's (`writeOnly` in its tool's schema)."""
    if tools is None:
        return None
    paths: tuple[tuple[str, ...], ...] = ()
    if redact:
        from ..redact import redaction_path  # (only a program's paths need it)

        paths = tuple(dict.fromkeys(map(redaction_path, redact)))
    if isinstance(tools, ToolSet):
        return replace(tools, redact=tools.redact + paths) if paths else tools
    if isinstance(tools, (list, tuple)) and all(type(name) is str for name in tools):
        return ToolSet(names=frozenset(tools))  # names only: what `load_tools` would make
    loaded = load_tools(tools)
    if all(isinstance(t, str) for t in loaded):
        return ToolSet(names=frozenset(str(t) for t in loaded))
    schemas = [t for t in loaded if isinstance(t, ToolSchema)]
    checkers = {s.name: ParamChecker(s.name, s.parameters) for s in schemas if s.parameters}
    names = frozenset(s.name for s in schemas)
    return ToolSet(names=names, checkers=checkers, has_schemas=True, redact=paths)


def load_state(state: object) -> dict[str, Any]:
    """An initial state from a mapping or JSON text of an object."""
    if state is None:
        return {}
    data = state
    if isinstance(state, (str, bytes)):
        try:
            data = parse_json(state)
        except JsonTextError as exc:
            raise IRLoadError("state", [LoadProblem("", exc.message, exc.position)]) from None
    if not isinstance(data, Mapping):
        raise IRLoadError("state", [LoadProblem("", "expected a JSON object of key -> value")])
    return dict(data)


#: Every field of a `CheckRecord`, shared by the records `_evidence` builds.
_RECORD_FIELDS = {"name", "ran", "verifies", "cannot_verify", "findings", "tier"}
_EVIDENCE_FIELDS = {"checks", "assumptions", "residual_risks"}
_RESULT_FIELDS = set(VerifyResult.model_fields)


@cache
def _records_without_findings(present: tuple[bool, bool, bool, bool]) -> tuple[CheckRecord, ...]:
    """Every check's record with no findings, for one combination of the optional inputs
    (`present`: tools, schemas, capability, budget). Records are frozen: every result whose
    check found nothing shares these."""
    given = dict(zip(("tools", "schemas", "capability", "budget"), present, strict=True))
    return tuple(
        construct(
            CheckRecord,
            {
                "name": d.name,
                "ran": ran,
                "verifies": d.verifies if ran else f"(skipped: no {d.needs} supplied)",
                "cannot_verify": d.cannot_verify,
                "findings": 0,
                "tier": "heuristic" if d.name == "loop_detection" else "decision_procedure",
            },
            _RECORD_FIELDS,
        )
        for d, ran in descriptions_for(given)
    )


def _evidence(ctx: VerifyContext, issues: list[VerifyIssue], state_given: bool) -> Evidence:
    has_schemas = ctx.tools is not None and ctx.tools.has_schemas
    present = (
        ctx.tools is not None,
        has_schemas,
        ctx.capability is not None,
        ctx.budget is not None,
    )
    # built, not validated: the values are made right here, and validating them would make
    # every verify pay for building these models' validators (`construct`: model_construct
    # without its per-field default handling)
    found = ctx.findings
    shared = _records_without_findings(present)
    records = (
        [
            construct(
                CheckRecord, {**record.__dict__, "findings": found[record.name]}, _RECORD_FIELDS
            )
            if record.name in found
            else record
            for record in shared
        ]
        if found
        else list(shared)  # (the usual proposal: no check found anything)
    )
    assumptions = [
        "the supplied initial state is accurate" if state_given else "the initial state is empty",
        "tools honour their declared effects and have no undeclared ones",
    ]
    if not has_schemas:
        assumptions.append("tool_call parameters are well-formed (no schemas supplied)")
    warnings = sum(1 for i in issues if i.severity == "warning")
    risks = []
    if warnings:
        risks.append(f"{warnings} warning(s) not blocking the verdict")
    risks.append("outcomes that depend on tool output at run time are not verified")
    values = {"checks": records, "assumptions": assumptions, "residual_risks": risks}
    return construct(Evidence, values, _EVIDENCE_FIELDS)


def verify(
    proposal: ActionProposal | Mapping[str, Any] | str | bytes | PlainColumns,
    state: Mapping[str, Any] | str | None = None,
    tools: ToolsArg = None,
    max_actions: int | None = None,
    *,
    capability: Capability | None = None,
    budget: Budget | None = None,
    redact: Iterable[str] = (),
) -> VerifyResult:
    """Statically verify a proposal without running anything.

    `proposal`: a model, a dict, JSON text, or the columns `ir.fastload.load_fresh` made
    of JSON text (a caller that reads the text first). `state`: the initial state. `tools`: names
    (existence only), `ToolSchema`s or dicts (existence and parameters), or a prebuilt `ToolSet`;
    None skips the tool checks. `max_actions`: the resource bound (default 30, as CAR's CLI).
    `capability` / `budget`: checked when given. `redact`: a program's `redact` paths
    (`params.card_number`): no message quotes their values, as none quotes the value of a
    secret parameter. Raises `IRLoadError` on malformed input (and ValueError on a malformed
    `redact` path).
    """
    with gc_paused():  # decoding makes as many objects as verifying: both are paused
        prop, plain = _loaded(proposal)
        initial = load_state(state)
        return analyse(
            prop,
            initial,
            tool_set(tools, redact),
            max_actions,
            capability,
            budget,
            state is not None,
            cols=Columns.of_plain(plain) if plain is not None else None,
        ).result


def _loaded(
    proposal: ActionProposal | Mapping[str, Any] | str | bytes | PlainColumns,
) -> tuple[ActionProposal, PlainColumns | None]:
    """The proposal, with its columns when they come straight from JSON text."""
    if isinstance(proposal, PlainColumns):
        return proposal.proposal, proposal
    if isinstance(proposal, (str, bytes)):
        loaded = load_fresh(proposal)
        if isinstance(loaded, PlainColumns):
            return loaded.proposal, loaded
        return loaded, None
    return load_proposal(proposal), None


@dataclass(frozen=True, slots=True)
class Analysis:
    """A verification with the columns and the DAG it was computed from, for callers that go
    on to use them (the planner) rather than build them again."""

    result: VerifyResult
    cols: Columns
    dag: Dag


def analyse(
    prop: ActionProposal,
    initial: dict[str, Any],
    tools: ToolSet | None,
    max_actions: int | None,
    capability: Capability | None = None,
    budget: Budget | None = None,
    state_given: bool = True,
    *,
    cols: Columns | None = None,
    show: Show = rust_debug,
) -> Analysis:
    """`verify` on a loaded proposal, state and tool set, keeping its columns and DAG
    (`cols`: the proposal's columns, when they are already made; `show`: how a failing
    precondition's or assertion's message shows a value, CAR's Rust Debug form by default)."""
    if cols is None:
        cols = Columns.of(prop.actions)
    dag = build_dag(cols)
    ctx = VerifyContext(
        proposal=prop,
        cols=cols,
        dag=dag,
        state=dict(initial),
        tools=tools,
        max_actions=DEFAULT_MAX_ACTIONS if max_actions is None else max_actions,
        capability=capability,
        budget=budget,
        ids=frozenset(cols.ids),
        show=show,
    )
    if capability is not None:
        ctx.capability_check = CapabilityCheck(capability)
    for stage, checks in enumerate((PROPOSAL_CHECKS, ACTION_CHECKS, FINAL_CHECKS)):
        ctx.stage = stage
        for check in checks:
            check(ctx)
    issues = ctx.issues()
    ids = cols.ids
    values = {
        "valid": not any(i.severity == "error" for i in issues),
        "issues": issues,
        "simulated_state": ctx.state,
        "execution_levels": [list(map(ids.__getitem__, level)) for level in dag.levels],
        "conflicts": [(ids[i], ids[j], key) for i, j, key in ctx.conflicts],
        "evidence": _evidence(ctx, issues, state_given),
    }
    result = construct(VerifyResult, values, _RESULT_FIELDS)
    return Analysis(result, cols, dag)
