"""Middleware: hooks around each proposal and each action, run in registration order.

Subclass `Middleware` and override what you need. `before_action` may refuse an action by
returning a reason (a custom gate); the other hooks observe (metrics, redaction, tracing). A
hook may be a coroutine.
"""

from __future__ import annotations

from typing import Any

from ..ir import Action, ActionProposal, ActionResult, ProposalResult

__all__ = ["Middleware"]


class Middleware:
    """Hooks with no effect; override the ones you need."""

    def before_proposal(self, proposal: ActionProposal, run_id: str) -> Any:
        """Called before the first action runs."""
        return None

    def after_proposal(self, proposal: ActionProposal, result: ProposalResult) -> Any:
        """Called with the finished result."""
        return None

    def before_action(self, action: Action, proposal: ActionProposal) -> Any:
        """Return a reason (a string) to refuse the action; None to let it run."""
        return None

    def after_action(self, action: Action, result: ActionResult) -> Any:
        """Called with each action's result (any status)."""
        return None

    def rate_limited(self, action: Action, seconds: float) -> Any:
        """Called when an admitted call must wait `seconds` for its tool's rate limit, before
        it waits (to tell whoever waits on it why: the MCP proxy tells its client)."""
        return None
