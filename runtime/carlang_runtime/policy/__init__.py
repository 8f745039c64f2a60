"""Policies at run time: `PolicySet` decides, for one action, deny / require_approval / allow."""

from __future__ import annotations

from .activation import (
    HISTORY_LIMIT,
    HISTORY_STATUSES,
    RUNNING,
    UNDECLARED_STATE_KEY,
    VARIABLES,
    action_activation,
    history_entry,
    keep_history,
    policy_declarations,
    state_problem,
    state_problems,
    state_type,
)
from .policyset import Decision, PolicyLoadError, PolicyMatch, PolicySet, PolicyTrace
from .static import (
    POLICY_ASKS,
    POLICY_DENIES,
    POLICY_MAY_DENY,
    StaticVerdict,
    static_verdicts,
)

__all__ = [
    "PolicySet",
    "Decision",
    "PolicyMatch",
    "PolicyTrace",
    "PolicyLoadError",
    "VARIABLES",
    "RUNNING",
    "HISTORY_LIMIT",
    "HISTORY_STATUSES",
    "UNDECLARED_STATE_KEY",
    "action_activation",
    "history_entry",
    "keep_history",
    "policy_declarations",
    "state_problem",
    "state_problems",
    "state_type",
    "StaticVerdict",
    "POLICY_ASKS",
    "POLICY_DENIES",
    "POLICY_MAY_DENY",
    "static_verdicts",
]
