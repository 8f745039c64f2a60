"""Actions and proposals: CAR's Agent IR, key for key, plus carlang's two extensions.

Field order, defaults and omission rules follow car-runtime 0.58's serialisation, so a dump of a
loaded CAR document is the document CAR itself would write. carlang adds two optional keys to
`Action`, both left out of the JSON when unset so that CAR documents round-trip unchanged:

- `depends_on`: explicit ordering on other action ids (the `after` clause of the language);
- `loc`: where the action was written (file, line, column), so findings point back at source.

`ActionProposal` gains `capability` and `budget` (the names it runs under) the same way.
"""

# No `from __future__ import annotations`: pydantic reads the annotations to define each
# model's fields, and evaluating them from text would cost every start-up (issue 18).
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from ._base import (
    U32,
    U64,
    Bool,
    CarModel,
    JsonMap,
    Str,
    Timestamp,
    omit_empty,
    omit_none,
    short_id,
)

__all__ = [
    "ActionType",
    "FailureBehavior",
    "Reversibility",
    "InvocationMode",
    "PRECONDITION_OPERATORS",
    "Precondition",
    "StateAssumption",
    "ToolCompensation",
    "ActionRefCompensation",
    "Compensation",
    "SourceLoc",
    "Action",
    "ActionProposal",
]


class ActionType(StrEnum):
    """What an action does: call a tool, write or read state, or assert on state."""

    TOOL_CALL = "tool_call"
    STATE_WRITE = "state_write"
    STATE_READ = "state_read"
    ASSERTION = "assertion"


class FailureBehavior(StrEnum):
    """What a failed action does to the rest of the proposal."""

    ABORT = "abort"
    RETRY = "retry"
    SKIP = "skip"


class Reversibility(StrEnum):
    """How far an action's external effects can be undone."""

    REVERSIBLE = "reversible"
    COMPENSABLE = "compensable"
    IRREVERSIBLE = "irreversible"


class InvocationMode(StrEnum):
    """How a tool call is invoked; detached modes bypass the caches."""

    ONE_SHOT = "one_shot"
    STREAMING = "streaming"
    LONG_RUNNING = "long_running"


#: The nine operators CAR defines. `operator` stays a plain string (as in CAR) so that a document
#: with an operator from a newer version still loads; checking it fails ("unknown operator").
PRECONDITION_OPERATORS: tuple[str, ...] = (
    "eq",
    "neq",
    "gt",
    "lt",
    "gte",
    "lte",
    "exists",
    "not_exists",
    "contains",
)


class Precondition(CarModel):
    """A predicate over one state key that must hold before an action runs."""

    key: Str
    operator: Str = "eq"
    value: Any = None
    description: Str = ""


class StateAssumption(CarModel):
    """A transactional assumption about a key's value or version when the action runs."""

    key: Str
    expected_value: Any = Field(default=None, exclude_if=omit_none)
    read_version: U64 | None = Field(default=None, exclude_if=omit_none)


class ToolCompensation(CarModel):
    """Undo an action by calling a tool."""

    type: Literal["tool"] = "tool"
    tool: Str
    parameters: JsonMap = Field(default_factory=dict)


class ActionRefCompensation(CarModel):
    """Undo an action by running another action of the same proposal."""

    type: Literal["action_ref"] = "action_ref"
    action_id: Str


Compensation = Annotated[ToolCompensation | ActionRefCompensation, Field(discriminator="type")]


class SourceLoc(CarModel):
    """Where an IR element was written: 1-based line and column, as editors count them."""

    file: Str
    line: U32
    column: U32
    end_line: U32 | None = Field(default=None, exclude_if=omit_none)
    end_column: U32 | None = Field(default=None, exclude_if=omit_none)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Action(CarModel):
    """One step of a proposal. `type` is the only required key, as in CAR."""

    id: Str = Field(default_factory=short_id)
    type: ActionType
    tool: Str | None = Field(default=None, exclude_if=omit_none)
    parameters: JsonMap = Field(default_factory=dict)
    preconditions: list[Precondition] = Field(default_factory=list)
    expected_effects: JsonMap = Field(default_factory=dict)
    state_dependencies: list[Str] = Field(default_factory=list)
    read_set: list[Str] = Field(default_factory=list)
    write_set: list[Str] = Field(default_factory=list)
    assumptions: list[StateAssumption] = Field(default_factory=list)
    invocation_mode: InvocationMode = InvocationMode.ONE_SHOT
    reversibility: Reversibility = Reversibility.IRREVERSIBLE
    compensation: Compensation | None = Field(default=None, exclude_if=omit_none)
    idempotent: Bool = False
    max_retries: U32 = 3
    failure_behavior: FailureBehavior = FailureBehavior.ABORT
    timeout_ms: U64 | None = Field(default=None, exclude_if=omit_none)
    metadata: JsonMap = Field(default_factory=dict)
    # carlang extensions
    depends_on: list[Str] = Field(default_factory=list, exclude_if=omit_empty)
    loc: SourceLoc | None = Field(default=None, exclude_if=omit_none)

    def undo_call(self, find: Callable[[str], "Action | None"]) -> "Action | str | None":
        """The call that undoes this action (its compensation's: a tool call, or a copy of
        the action it names, which `find` looks up by id), as `<id>.compensation`, before
        its tool's defaults are filled; why there is none to make (a string); None without a
        compensation. One definition for the runtime, the log's redaction and replay."""
        compensation = self.compensation
        undo_id = f"{self.id}.compensation"
        if isinstance(compensation, ActionRefCompensation):
            target = find(compensation.action_id)
            if target is None:
                named = compensation.action_id
                return f"its compensation names action '{named}', not in the proposal"
            if target.type is not ActionType.TOOL_CALL or target.tool is None:
                return f"its compensation '{compensation.action_id}' is not a tool call"
            return target.model_copy(update={"id": undo_id, "depends_on": []})
        if compensation is None:
            return None
        return Action(
            id=undo_id,
            type=ActionType.TOOL_CALL,
            tool=compensation.tool,
            parameters=compensation.parameters,
            max_retries=self.max_retries,
            timeout_ms=self.timeout_ms,
        )

    def written_keys(self) -> list[str]:
        """State keys this action writes: a state_write's key, then its expected effects."""
        keys: list[str] = []
        if self.type == "state_write":
            key = self.parameters.get("key")
            if isinstance(key, str):
                keys.append(key)
        for key in self.expected_effects:
            if key not in keys:
                keys.append(key)
        return keys


class ActionProposal(CarModel):
    """A batch of actions proposed by a model. `actions` is the only required key, as in CAR.

    `timestamp` is left unset unless the document has one: CAR fills in "now" when it loads a
    proposal without one, which would make compiled output differ on every run. The runtime and
    `--target car` export fill it in at the point CAR would.
    """

    id: Str = Field(default_factory=short_id)
    source: Str = "unknown"
    actions: list[Action]
    timestamp: Timestamp | None = Field(default=None, exclude_if=omit_none)
    context: JsonMap = Field(default_factory=dict)
    # carlang extensions: the capability and budget the proposal runs under (by name)
    capability: Str | None = Field(default=None, exclude_if=omit_none)
    budget: Str | None = Field(default=None, exclude_if=omit_none)
    loc: SourceLoc | None = Field(default=None, exclude_if=omit_none)
