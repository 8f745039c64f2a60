"""The registry of verification codes: one stable code per kind of finding.

Codes never change meaning once published; a retired code is not reused. `docs/codes.md` is
generated from this table (`carlang codes --markdown`) and a test keeps it current. The compiler
adds its own ranges (syntax CL01xx, names CL02xx, policies CL05xx) in `carlang.codes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Code", "Severity", "Tier", "RUNTIME_CODES", "code_for"]

Severity = Literal["error", "warning", "info"]
Tier = Literal["decision_procedure", "heuristic", "sampled"]


@dataclass(frozen=True, slots=True)
class Code:
    """One kind of finding: its code, the check that reports it, its severity and meaning."""

    code: str
    name: str
    check: str
    severity: Severity
    summary: str
    origin: Literal["car", "carlang"] = "car"


RUNTIME_CODES: tuple[Code, ...] = (
    # structure
    Code(
        "CL0301",
        "duplicate-action-id",
        "duplicate_ids",
        "error",
        "two actions share an id; results, dependencies and compensations become ambiguous",
        "carlang",
    ),
    Code(
        "CL0302",
        "unknown-dependency",
        "dependency_ids",
        "error",
        "an `after` / `depends_on` entry names no action of the proposal",
        "carlang",
    ),
    Code(
        "CL0303",
        "dependency-cycle",
        "cycles",
        "error",
        "explicit dependencies form a cycle; the whole path is reported",
        "carlang",
    ),
    Code(
        "CL0304",
        "malformed-action",
        "malformed_action",
        "error",
        "an action lacks what its type needs (a state_write without `key`, ...)",
        "carlang",
    ),
    Code("CL0305", "no-tool", "tool_existence", "error", "a tool_call action names no tool"),
    Code(
        "CL0306",
        "unknown-tool",
        "tool_existence",
        "error",
        "a tool_call names a tool that is not registered",
    ),
    Code(
        "CL0307",
        "missing-parameter",
        "param_schema",
        "error",
        "a required parameter of the tool is missing",
    ),
    Code(
        "CL0308",
        "parameter-type",
        "param_schema",
        "error",
        "a parameter has the wrong JSON type for the tool's schema",
    ),
    Code(
        "CL0309",
        "parameter-constraint",
        "param_constraints",
        "error",
        "a parameter breaks a constraint of the tool's schema (enum, range, pattern, ...)",
        "carlang",
    ),
    Code(
        "CL0310",
        "missing-compensation",
        "compensation_resolution",
        "error",
        "an action declared `compensable` has no compensation",
    ),
    Code(
        "CL0311",
        "unknown-compensation-tool",
        "compensation_resolution",
        "error",
        "a compensation names a tool that is not registered",
    ),
    Code(
        "CL0312",
        "unknown-compensation-action",
        "compensation_resolution",
        "error",
        "a compensation references an action that is not in the proposal",
    ),
    Code(
        "CL0313",
        "duplicate-call",
        "loop_detection",
        "warning",
        "the same tool call (tool and parameters) appears twice",
    ),
    Code(
        "CL0314",
        "likely-loop",
        "loop_detection",
        "error",
        "the same tool call appears three or more times, which looks like a runaway loop",
    ),
    Code(
        "CL0315",
        "excessive-actions",
        "resource_bounds",
        "warning",
        "the proposal has more actions than `max_actions`",
    ),
    # state
    Code(
        "CL0401",
        "precondition-fails",
        "preconditions",
        "error",
        "a precondition fails against the statically known state",
    ),
    Code(
        "CL0402",
        "dependency-unavailable",
        "state_dependencies",
        "error",
        "a state dependency is read before anything produces it",
    ),
    Code(
        "CL0403",
        "write-conflict",
        "write_conflicts",
        "warning",
        "two actions write the same key with no declared ordering between them",
    ),
    Code(
        "CL0404",
        "assertion-fails",
        "assertions",
        "error",
        "an assertion provably fails against the statically known state",
        "carlang",
    ),
    # capabilities and budgets
    Code(
        "CL0601",
        "tool-not-allowed",
        "capabilities",
        "error",
        "the proposal's capability does not allow this tool",
        "carlang",
    ),
    Code(
        "CL0602",
        "tool-denied",
        "capabilities",
        "error",
        "the proposal's capability denies this tool",
        "carlang",
    ),
    Code(
        "CL0603",
        "state-key-not-allowed",
        "capabilities",
        "error",
        "the action touches a state key its capability does not allow",
        "carlang",
    ),
    Code(
        "CL0604",
        "capability-max-actions",
        "capabilities",
        "error",
        "the proposal has more actions than its capability allows",
        "carlang",
    ),
    Code(
        "CL0605",
        "budget-actions",
        "budget",
        "error",
        "the proposal has more actions than its budget allows",
        "carlang",
    ),
    Code(
        "CL0606",
        "budget-tool-calls",
        "budget",
        "error",
        "the proposal has more tool calls than its budget allows",
        "carlang",
    ),
)

_BY_NAME = {c.name: c for c in RUNTIME_CODES}


def code_for(name: str) -> Code:
    """The registry entry for a finding kind by its kebab-case name."""
    return _BY_NAME[name]
