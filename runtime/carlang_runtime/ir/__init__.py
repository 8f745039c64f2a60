"""The Agent IR: CAR's wire format as pydantic models, plus carlang's program-level models.

Loading follows serde's rules (strict scalar types, unknown keys ignored); dumping with
`model_dump(mode="json")` / `model_dump_json()` writes what CAR writes and leaves out what CAR
leaves out. Use `load_proposal` to accept a model, a dict, JSON text or CAR's `{"proposal": ...}`
wrapper in one call.
"""

from __future__ import annotations

from .actions import (
    PRECONDITION_OPERATORS,
    Action,
    ActionProposal,
    ActionRefCompensation,
    ActionType,
    Compensation,
    FailureBehavior,
    InvocationMode,
    Precondition,
    Reversibility,
    SourceLoc,
    StateAssumption,
    ToolCompensation,
)
from .load import load_proposal, load_tools
from .program import (
    AllowToolParamRule,
    Budget,
    BuiltinRule,
    Capability,
    CelPolicy,
    DenyKeywordRule,
    DenyToolParamMatchingRule,
    DenyToolParamRule,
    DenyToolRule,
    McpServer,
    Plan,
    Policy,
    PolicyEffect,
    Program,
    RateLimitToolRule,
    RequireStateRule,
    StateDecl,
)
from .results import (
    TERMINAL_STATUSES,
    ActionResult,
    ActionStatus,
    CompensationResult,
    CostSummary,
    CostTarget,
    ProposalResult,
)
from .tools import McpBinding, ToolRateLimit, ToolSchema

__all__ = [
    "PRECONDITION_OPERATORS",
    "TERMINAL_STATUSES",
    "Action",
    "ActionProposal",
    "ActionRefCompensation",
    "ActionResult",
    "ActionStatus",
    "ActionType",
    "AllowToolParamRule",
    "Budget",
    "Capability",
    "McpBinding",
    "McpServer",
    "BuiltinRule",
    "CelPolicy",
    "Compensation",
    "CostSummary",
    "CostTarget",
    "DenyKeywordRule",
    "DenyToolParamMatchingRule",
    "DenyToolParamRule",
    "DenyToolRule",
    "FailureBehavior",
    "InvocationMode",
    "Plan",
    "Policy",
    "PolicyEffect",
    "Precondition",
    "Program",
    "ProposalResult",
    "CompensationResult",
    "RateLimitToolRule",
    "RequireStateRule",
    "Reversibility",
    "SourceLoc",
    "StateAssumption",
    "StateDecl",
    "ToolCompensation",
    "ToolRateLimit",
    "ToolSchema",
    "load_proposal",
    "load_tools",
]
