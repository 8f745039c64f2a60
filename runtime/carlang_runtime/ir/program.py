"""The program-level IR the language compiles into: tools, state, capabilities, budgets,
policies, proposals and plans.

None of this is CAR wire format (CAR has no program); it is carlang's own, versioned by
`Program.version`, and every piece that CAR does have (`ToolSchema`, `ActionProposal`,
`CostTarget`) is embedded unchanged.
"""

# No `from __future__ import annotations`: pydantic reads the annotations to define each
# model's fields, and evaluating them from text would cost every start-up (issue 18).
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from ._base import F64, U32, U64, CarModel, JsonMap, Str, omit_empty, omit_none
from .actions import ActionProposal, SourceLoc
from .results import CostTarget
from .tools import ToolSchema

__all__ = [
    "StateDecl",
    "McpServer",
    "Capability",
    "Budget",
    "PolicyEffect",
    "CelPolicy",
    "DenyToolRule",
    "DenyKeywordRule",
    "DenyToolParamRule",
    "AllowToolParamRule",
    "DenyToolParamMatchingRule",
    "RateLimitToolRule",
    "RequireStateRule",
    "BuiltinRule",
    "Policy",
    "Plan",
    "Program",
]


class StateDecl(CarModel):
    """A declared state key. `key` may be a glob (`build.*`) covering a family of keys; `type`
    is a JSON Schema for the values (absent = any). Initial values live in
    `Program.initial_state`."""

    key: Str
    type: JsonMap | None = Field(default=None, exclude_if=omit_none)
    description: Str = ""
    loc: SourceLoc | None = Field(default=None, exclude_if=omit_none)


class McpServer(CarModel):
    """carlang extension: an MCP server a program's tools are bound to. Started as a
    subprocess (`command`, `args`, `env`, `cwd`) speaking stdio, or reached at `url` (Streamable
    HTTP, on this machine) with `headers` sent on each request (their values may name
    variables of carlang's environment, `Bearer ${TOKEN}`, taken when the client connects).
    `timeout_ms` bounds each call (none: the action's own timeout)."""

    name: Str
    command: Str | None = Field(default=None, exclude_if=omit_none)
    args: list[Str] = Field(default_factory=list)
    env: dict[Str, Str] = Field(default_factory=dict)
    cwd: Str | None = Field(default=None, exclude_if=omit_none)
    url: Str | None = Field(default=None, exclude_if=omit_none)
    headers: dict[Str, Str] = Field(default_factory=dict, exclude_if=omit_empty)
    timeout_ms: U64 | None = Field(default=None, exclude_if=omit_none)
    loc: SourceLoc | None = Field(default=None, exclude_if=omit_none)


class Capability(CarModel):
    """What a proposal may touch. CAR's `CapabilitySet` with glob patterns (`rollback_*`):
    deny wins over allow, an empty allow list allows everything, `max_actions` None = no limit.
    `name` is what proposals refer to it by; one built in Python for `Runtime.set_capabilities`
    needs none."""

    name: Str = ""
    allowed_tools: list[Str] = Field(default_factory=list)
    denied_tools: list[Str] = Field(default_factory=list)
    allowed_state_keys: list[Str] = Field(default_factory=list)
    max_actions: U32 | None = Field(default=None, exclude_if=omit_none)
    loc: SourceLoc | None = Field(default=None, exclude_if=omit_none)

    @property
    def label(self) -> str:
        """How messages name it: `capability 'name'`, or `the capability` when it has no name."""
        return f"capability '{self.name}'" if self.name else "the capability"


class Budget(CarModel):
    """A hard cost budget (CAR's `CostBudget`): exceeding it skips the rest of the run.
    Like CAR's `CostBudget`, one built in Python for `Runtime.set_budget` needs no name."""

    name: Str = ""
    max_actions: U32 | None = Field(default=None, exclude_if=omit_none)
    max_tool_calls: U32 | None = Field(default=None, exclude_if=omit_none)
    max_duration_ms: U64 | None = Field(default=None, exclude_if=omit_none)
    loc: SourceLoc | None = Field(default=None, exclude_if=omit_none)

    @property
    def label(self) -> str:
        """How messages name it: `budget 'name'`, or `the budget` when it has no name."""
        return f"budget '{self.name}'" if self.name else "the budget"


class PolicyEffect(StrEnum):
    """What a matching policy does to an action."""

    DENY = "deny"
    REQUIRE_APPROVAL = "require_approval"
    ALLOW = "allow"


class _PolicyBase(CarModel):
    # Declared first so that it leads every dumped policy; each kind narrows it to its tag.
    rule: Str
    name: Str
    message: Str = ""
    loc: SourceLoc | None = Field(default=None, exclude_if=omit_none)
    #: carlang's extension: a shadow policy is evaluated like an enforced one and its
    #: would-be decision recorded (`policy_shadowed`), but it never changes an outcome.
    shadow: bool = Field(default=False, exclude_if=omit_empty)


class CelPolicy(_PolicyBase):
    """A CEL policy. It applies to actions whose tool matches one of `tools` (globs; empty =
    every action) and matches when `when` is true (absent = always). An `allow` policy makes
    an allow-list: an action on a targeted tool is denied unless some allow policy matches."""

    rule: Literal["cel"] = "cel"
    effect: PolicyEffect = PolicyEffect.DENY
    tools: list[Str] = Field(default_factory=list)
    when: Str | None = Field(default=None, exclude_if=omit_none)
    # Where the CEL text starts in the source, so CEL errors land at the right column.
    when_loc: SourceLoc | None = Field(default=None, exclude_if=omit_none)
    #: carlang's extension, for `require_approval`: how long a durable approval (the DBOS
    #: backend) may wait for an answer before it expires (none: the runtime's timeout).
    approval_timeout_ms: U64 | None = Field(default=None, exclude_if=omit_none)


class DenyToolRule(_PolicyBase):
    """CAR `deny_tool`: every call of `tool` is denied."""

    rule: Literal["deny_tool"] = "deny_tool"
    tool: Str


class DenyKeywordRule(_PolicyBase):
    """CAR `deny_keyword`: deny any action with a parameter whose text contains a keyword."""

    rule: Literal["deny_keyword"] = "deny_keyword"
    keywords: list[Str]


class DenyToolParamRule(_PolicyBase):
    """CAR `deny_tool_param`: deny `tool` when `param` equals `equals`, contains `contains`, or,
    with neither set, is present at all."""

    rule: Literal["deny_tool_param"] = "deny_tool_param"
    tool: Str
    param: Str
    equals: Any = Field(default=None, exclude_if=omit_none)
    contains: Str | None = Field(default=None, exclude_if=omit_none)


class AllowToolParamRule(_PolicyBase):
    """CAR `allow_tool_param`: `param` of `tool` must be one of `allow` (absent = denied)."""

    rule: Literal["allow_tool_param"] = "allow_tool_param"
    tool: Str
    param: Str
    allow: list[Any]


class DenyToolParamMatchingRule(_PolicyBase):
    """CAR `deny_tool_param_matching`: deny when `param` matches the unanchored regex."""

    rule: Literal["deny_tool_param_matching"] = "deny_tool_param_matching"
    tool: Str
    param: Str
    matches: Str


class RateLimitToolRule(_PolicyBase):
    """CAR `rate_limit_tool`: at most `max_calls` admissions per sliding `interval_secs`."""

    rule: Literal["rate_limit_tool"] = "rate_limit_tool"
    tool: Str
    max_calls: U32
    interval_secs: F64


class RequireStateRule(_PolicyBase):
    """CAR `require_state`: deny every action unless `state[key] == value` exactly."""

    rule: Literal["require_state"] = "require_state"
    key: Str
    value: Any = None


#: CAR's built-in rule kinds (everything a policy can be but a CEL condition).
BuiltinRule = (
    DenyToolRule
    | DenyKeywordRule
    | DenyToolParamRule
    | AllowToolParamRule
    | DenyToolParamMatchingRule
    | RateLimitToolRule
    | RequireStateRule
)

Policy = Annotated[CelPolicy | BuiltinRule, Field(discriminator="rule")]


class Plan(CarModel):
    """A named set of candidate proposals (by id) for the planner to rank, with its settings:
    a `CostTarget` and overrides of planner weights by name."""

    name: Str
    candidates: list[Str]
    cost_target: CostTarget | None = Field(default=None, exclude_if=omit_none)
    settings: dict[Str, float] = Field(default_factory=dict)
    loc: SourceLoc | None = Field(default=None, exclude_if=omit_none)


class Program(CarModel):
    """A whole compiled carlang program."""

    version: Literal[1] = 1
    tools: list[ToolSchema] = Field(default_factory=list)
    state: list[StateDecl] = Field(default_factory=list)
    initial_state: JsonMap = Field(default_factory=dict)
    capabilities: list[Capability] = Field(default_factory=list)
    budgets: list[Budget] = Field(default_factory=list)
    policies: list[Policy] = Field(default_factory=list)
    proposals: list[ActionProposal] = Field(default_factory=list)
    plans: list[Plan] = Field(default_factory=list)
    mcp_servers: list[McpServer] = Field(default_factory=list, exclude_if=omit_empty)
    #: carlang's extension: parameter paths (`params.card_number`, `params.cards.*.cvv`) kept
    #: out of every event and sink, as secret parameters are (`redact` in the language)
    redactions: list[Str] = Field(default_factory=list, exclude_if=omit_empty)

    def tool(self, name: str) -> ToolSchema | None:
        """The tool declared under `name`, if any."""
        return next((t for t in self.tools if t.name == name), None)

    def proposal(self, proposal_id: str) -> ActionProposal | None:
        """The proposal with id `proposal_id`, if any."""
        return next((p for p in self.proposals if p.id == proposal_id), None)

    def mcp_server(self, name: str) -> McpServer | None:
        """The MCP server declared under `name`, if any."""
        return next((s for s in self.mcp_servers if s.name == name), None)

    def capability(self, name: str) -> Capability | None:
        """The capability declared under `name`, if any."""
        return next((c for c in self.capabilities if c.name == name), None)

    def budget(self, name: str) -> Budget | None:
        """The budget declared under `name`, if any."""
        return next((b for b in self.budgets if b.name == name), None)

    def plan(self, name: str) -> Plan | None:
        """The plan declared under `name`, if any."""
        return next((p for p in self.plans if p.name == name), None)
