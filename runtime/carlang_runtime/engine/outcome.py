"""How a run came out, as `plan_and_execute` judges it: did the candidate get through, and did
an aborted candidate leave effects in the world that nothing undid.

A candidate gets through when no action failed or was refused in a way that stops it: a step
marked `skip` that failed (or was rejected) is optional, and so is everything skipped only
because it runs `after` such a step. An action that failed, was rejected without `skip`, or was
skipped because a budget ran out, the run was cancelled or aborted, means it did not.

A tool call that succeeded in an aborted run has left its effect unless it was undone: by its
compensation, if one ran and succeeded, or because it is `reversible` (the runtime's rollback
covers it). Anything else (`irreversible` or `compensable` without a compensation that
succeeded, including `Runtime(compensate=False)`) is an uncompensated success, and falling back
to another candidate after it could do the same thing twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..ir import (
    Action,
    ActionProposal,
    ActionResult,
    ActionStatus,
    ActionType,
    FailureBehavior,
    ProposalResult,
    Reversibility,
)

__all__ = ["candidate_failure", "uncompensated_successes", "AFTER_PREFIX"]

#: How the runtime starts the error of an action skipped because of `after`.
AFTER_PREFIX = "skipped: it runs after "


def candidate_failure(
    actions: Sequence[Action], results: Sequence[ActionResult | None]
) -> str | None:
    """Why the run of `actions` did not get through (the first action that stopped it), or
    None when it did: every action succeeded or was an optional step passed over."""
    tolerated = _tolerated(actions, results)
    for action, result in zip(actions, results, strict=True):
        if action.id in tolerated:
            continue
        status = result.status.value if result is not None else "not run"
        why = f" ({result.error})" if result is not None and result.error else ""
        return f"action {action.id} did not succeed: {status}{why}"
    return None


def _tolerated(actions: Sequence[Action], results: Sequence[ActionResult | None]) -> set[str]:
    ok: set[str] = set()
    waiting: list[Action] = []
    for action, result in zip(actions, results, strict=True):
        if result is None:
            continue
        status = result.status
        if status is ActionStatus.SUCCEEDED:
            ok.add(action.id)
        elif status in (ActionStatus.SKIPPED, ActionStatus.REJECTED) and (
            action.failure_behavior is FailureBehavior.SKIP
        ):
            ok.add(action.id)
        elif status is ActionStatus.SKIPPED and (result.error or "").startswith(AFTER_PREFIX):
            waiting.append(action)
    # Skipped because of `after`: fine when every predecessor it waited on is fine (an optional
    # step's dependents go with it). Predecessors may come later in the list: to a fixed point.
    changed = True
    while changed and waiting:
        changed = False
        for action in list(waiting):
            if all(name in ok for name in action.depends_on):
                ok.add(action.id)
                waiting.remove(action)
                changed = True
    return ok


def uncompensated_successes(proposal: ActionProposal, result: ProposalResult) -> list[str]:
    """The ids of the tool calls of `proposal` that succeeded in `result` and whose effect
    nothing undid: not `reversible`, and no compensation of theirs succeeded."""
    undone = {c.action_id: c.status is ActionStatus.SUCCEEDED for c in result.compensations}
    by_id = {action.id: action for action in proposal.actions}
    left: list[str] = []
    for outcome in result.results:
        action = by_id.get(outcome.action_id)
        if (
            action is None
            or action.type is not ActionType.TOOL_CALL
            or outcome.status is not ActionStatus.SUCCEEDED
        ):
            continue
        if undone.get(action.id, False):
            continue
        if (
            action.id not in undone
            and action.compensation is None
            and (action.reversibility is Reversibility.REVERSIBLE)
        ):
            continue
        left.append(action.id)
    return left
