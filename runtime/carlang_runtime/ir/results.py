"""What running a proposal produces: per-action results and the cost summary, plus CAR's soft
cost target used by the planner."""

# No `from __future__ import annotations`: pydantic reads the annotations to define each
# model's fields, and evaluating them from text would cost every start-up (issue 18).
from enum import StrEnum
from typing import Any

from pydantic import Field

from ._base import (
    F64,
    U32,
    Bool,
    CarModel,
    JsonMap,
    Str,
    Timestamp,
    omit_empty,
    omit_none,
    utc_now_rfc3339,
)

__all__ = [
    "ActionStatus",
    "TERMINAL_STATUSES",
    "ActionResult",
    "CostSummary",
    "ProposalResult",
    "CompensationResult",
    "CostTarget",
]


def _omit_false(value: object) -> bool:
    return value is False


class ActionStatus(StrEnum):
    """An action's lifecycle: proposed -> validated -> executing -> succeeded, or a branch."""

    PROPOSED = "proposed"
    VALIDATED = "validated"
    REJECTED = "rejected"
    EXECUTING = "executing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


#: Statuses an action can end in.
TERMINAL_STATUSES = frozenset(
    {ActionStatus.SUCCEEDED, ActionStatus.FAILED, ActionStatus.SKIPPED, ActionStatus.REJECTED}
)


class ActionResult(CarModel):
    """The outcome of one action. `rolled_back` is written only when true, as CAR does."""

    action_id: Str
    status: ActionStatus
    output: Any = Field(default=None, exclude_if=omit_none)
    error: Str | None = Field(default=None, exclude_if=omit_none)
    rolled_back: Bool = Field(default=False, exclude_if=_omit_false)
    state_changes: JsonMap = Field(default_factory=dict)
    duration_ms: F64 | None = Field(default=None, exclude_if=omit_none)
    timestamp: Timestamp = Field(default_factory=utc_now_rfc3339)


class CostSummary(CarModel):
    """Counts for one run. `actions_executed` = succeeded + failed; `actions_rejected` = blocked
    before execution by validation, capability or policy; `actions_skipped` = never attempted."""

    tool_calls: U32 = 0
    actions_executed: U32 = 0
    actions_rejected: U32 = 0
    actions_skipped: U32 = 0
    total_duration_ms: F64 = 0.0
    retries: U32 = 0


class CompensationResult(CarModel):
    """carlang's extension: how the compensation of one succeeded action went when its run
    aborted (`status` succeeded, failed or rejected; `error` says why when it did not)."""

    action_id: Str
    tool: Str
    status: ActionStatus
    output: Any = Field(default=None, exclude_if=omit_none)
    error: Str | None = Field(default=None, exclude_if=omit_none)
    attempts: U32 = 1


class ProposalResult(CarModel):
    """Every action's result, in proposal order, and the run's cost. `compensations` (carlang's
    extension, left out when empty so CAR documents round-trip) lists the sagas' undo steps run
    after an abort, in the order they ran."""

    proposal_id: Str
    results: list[ActionResult] = Field(default_factory=list)
    cost: CostSummary = Field(default_factory=CostSummary)
    compensations: list[CompensationResult] = Field(default_factory=list, exclude_if=omit_empty)
    #: carlang's extension: why `plan_and_execute` stopped after this failed candidate instead
    #: of falling back to the next (an effect of it that nothing undid); left out when None.
    fallback_stopped: Str | None = Field(default=None, exclude_if=omit_none)

    def all_succeeded(self) -> bool:
        """True when every action succeeded."""
        return all(r.status is ActionStatus.SUCCEEDED for r in self.results)

    def __repr__(self) -> str:
        # Short: a proposal can have 100,000 results, and reprs get made in odd places.
        return (
            f"ProposalResult(proposal_id={self.proposal_id!r}, results=<{len(self.results)}"
            f" actions>, cost={self.cost!r})"
        )

    def summary(self) -> dict[ActionStatus, int]:
        """How many actions ended in each status."""
        counts: dict[ActionStatus, int] = {}
        for result in self.results:
            counts[result.status] = counts.get(result.status, 0) + 1
        return counts


class CostTarget(CarModel):
    """The planner's soft target:
    `score = success * (1 - cost_weight) + efficiency * cost_weight`."""

    target_tool_calls: U32 = 5
    target_duration_ms: F64 = 5000.0
    target_actions: U32 = 10
    cost_weight: F64 = Field(default=0.2, ge=0.0, le=1.0)
