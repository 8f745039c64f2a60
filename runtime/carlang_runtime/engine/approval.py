"""Approvals: what happens to an action a `require_approval` policy matched.

The runtime asks its `ApprovalGate`; a gate answers with an `Approval` (approved or not, and
why), directly or as an awaitable, so it can wait for a human. Without a gate, approval is
refused: an action that needs a yes does not run without one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, cast

from ..ir import Action
from ..policy import PolicyMatch

__all__ = [
    "ApprovalRequest",
    "Approval",
    "ApprovalGate",
    "AutoApprove",
    "DenyApprovals",
    "CallbackGate",
    "as_gate",
    "as_approval",
]


@dataclass(frozen=True)
class ApprovalRequest:
    """An action waiting for approval, with the policies that asked for it."""

    action: Action
    proposal_id: str
    policies: tuple[PolicyMatch, ...]
    session: str | None = None
    scope: Mapping[str, Any] = field(default_factory=dict)
    #: The action's parameters as a person may see them: secret ones are `[REDACTED]`.
    parameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        """Why approval is needed, one line."""
        return "; ".join(f"{m.policy}: {m.reason}" for m in self.policies)


@dataclass(frozen=True)
class Approval:
    """A gate's answer."""

    approved: bool
    reason: str = ""
    approver: str | None = None
    #: No one answered in time (a refusal, reported apart from a denial).
    expired: bool = False


class ApprovalGate(Protocol):
    """Decides approval requests."""

    def review(self, request: ApprovalRequest) -> Approval | Awaitable[Approval]:
        """Approve or refuse, with a reason."""


def as_gate(gate: ApprovalGate | Callable[[ApprovalRequest], Any]) -> ApprovalGate:
    """`gate` as an approval gate: itself when it has `review`, a plain function wrapped in
    `CallbackGate`. Anything else is a `TypeError` now, not when the first approval is asked
    (mid-run)."""
    if callable(getattr(gate, "review", None)):
        return cast(ApprovalGate, gate)
    if callable(gate):
        return CallbackGate(gate)
    raise TypeError(
        f"an approval gate has a review(request) method, or is a function of the request;"
        f" got {type(gate).__name__}"
    )


class AutoApprove:
    """Approves everything (for tests, and `carlang run --auto-approve`)."""

    def review(self, request: ApprovalRequest) -> Approval:
        """Yes."""
        return Approval(True, "approved automatically", "auto")


class DenyApprovals:
    """Refuses everything (`carlang run --deny-approvals`, and the default)."""

    def __init__(self, reason: str = "approvals are refused") -> None:
        self.reason = reason

    def review(self, request: ApprovalRequest) -> Approval:
        """No."""
        return Approval(False, self.reason)


class CallbackGate:
    """Asks a function: it returns a bool, an `Approval`, or an awaitable of either; anything
    but `True` (or an approving `Approval`) is a refusal."""

    def __init__(self, decide: Callable[[ApprovalRequest], Any]) -> None:
        self.decide = decide

    async def review(self, request: ApprovalRequest) -> Approval:
        """The function's answer."""
        answer = self.decide(request)
        if isinstance(answer, Awaitable):
            answer = await answer
        return as_approval(answer)


def as_approval(answer: object) -> Approval:
    """A gate's `answer` as an `Approval` that approves only when it says so exactly: `True`,
    or an `Approval` whose `approved` is `True`. Anything else is a refusal (fail closed): a
    gate that builds its answer from a form's or a webhook's text must not approve on
    `"false"`, `1` or `None`."""
    if isinstance(answer, Approval):
        if isinstance(answer.approved, bool):
            return answer
        shown = repr(answer.approved)[:40]
        return replace(
            answer,
            approved=False,
            reason=f"refused: the gate answered approved={shown}, which is not True",
        )
    approved = answer is True
    return Approval(approved, "approved" if approved else "refused")
