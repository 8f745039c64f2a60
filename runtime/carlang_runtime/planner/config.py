"""`PlannerConfig`: every number the planner's score uses, each settable by name.

The CAR part reproduces car-runtime 0.58's `rank_proposals` exactly with these defaults (its
`PlannerConfig` defaults are not published; they were measured). carlang's features are
switched off by setting their weight to 0; `PlannerConfig.car()` switches all of them off.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import CarlangRuntimeError
from ..ir import CostTarget
from ..jsontext import locate as json_locate
from ..suggest import did_you_mean

if TYPE_CHECKING:
    from .feedback import ToolFeedback

__all__ = [
    "PlannerConfig",
    "SettingError",
    "cost_target_settings",
    "CARLANG_WEIGHTS",
    "unknown_setting",
    "check_setting",
    "toml_problem",
    "FEEDBACK_SETTINGS",
    "DURATION_SETTINGS",
    "idle_settings",
    "setting_position",
]


#: The weights of carlang's own features (0 turns a feature off).
CARLANG_WEIGHTS = (
    "policy_weight",
    "headroom_weight",
    "reversibility_weight",
    "monte_carlo_weight",
)


#: The settings that change no score without feedback: the history's factor, the Monte Carlo
#: estimate (its weight, trials and seed), and what both assume of a tool or policy not seen.
FEEDBACK_SETTINGS = (
    "feedback_weight",
    "unknown_tool_confidence",
    "monte_carlo_weight",
    "monte_carlo_trials",
    "unknown_approval_rate",
    "seed",
)
#: The settings of the duration term, which changes no score unless feedback has durations.
DURATION_SETTINGS = ("duration_weight", "target_duration_ms")


def idle_settings(names: Iterable[str], feedback: ToolFeedback | None) -> list[str]:
    """The settings of `names` that cannot change any score with this `feedback` (None:
    without any): searching or sweeping them gives the same scores at every value."""
    idle = set(DURATION_SETTINGS)
    if feedback is None:
        idle.update(FEEDBACK_SETTINGS)
    elif feedback.has_durations:
        idle = set()
    return [name for name in names if name in idle]


class SettingError(CarlangRuntimeError):
    """A planner setting that does not exist or has a value it cannot take; `setting` names
    it, when one setting is at fault (for its place in a file: `setting_position`)."""

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class PlannerConfig(BaseModel):
    """The planner's weights, targets and penalties. Immutable: `with_settings` makes a copy."""

    # (no NaN or infinity: `nan` passes no range check, and would make every score NaN)
    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_assignment=True, allow_inf_nan=False
    )

    # -- CAR's score ---------------------------------------------------------------------
    cost_weight: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="share of cost efficiency in the score; the rest is validity",
    )
    target_actions: float = Field(
        10, ge=0, description="actions for which the action term of cost efficiency is 0.5"
    )
    target_tool_calls: float = Field(
        5, ge=0, description="tool calls for which the tool-call term is 0.5"
    )
    target_duration_ms: float = Field(
        5000, ge=0, description="estimated duration for which the duration term is 0.5"
    )
    action_weight: float = Field(0.4, ge=0, description="weight of the action-count term")
    tool_call_weight: float = Field(0.4, ge=0, description="weight of the tool-call term")
    parallelism_weight: float = Field(
        0.2, ge=0, description="weight of the parallelism term (1 - levels / actions)"
    )
    duration_weight: float = Field(
        0.4, ge=0, description="weight of the duration term (only with durations from feedback)"
    )
    token_budget: float = Field(4000, ge=0, description="token estimate that zeroes token term")
    token_weight: float = Field(
        0.25, ge=0.0, le=1.0, description="share of tokens in cost efficiency"
    )
    warning_penalty: float = Field(0.1, ge=0.0, le=1.0, description="validity lost per warning")
    conflict_penalty: float = Field(
        0.15, ge=0.0, le=1.0, description="validity lost per write conflict"
    )
    min_validity: float = Field(
        0.1, ge=0.0, le=1.0, description="floor of a valid candidate's validity"
    )
    verify_max_actions: int = Field(
        100, ge=1, description="the action count above which verify warns (CAR's planner: 100)"
    )
    feedback_weight: float = Field(
        0.5, ge=0.0, le=1.0, description="weight of historical tool confidence (with feedback)"
    )
    unknown_tool_confidence: float = Field(
        0.5, ge=0.0, le=1.0, description="success rate assumed for a tool feedback has not seen"
    )
    # -- carlang's features --------------------------------------------------------------
    policy_weight: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="weight of policy compliance (approvals, predicted denials)",
    )
    approval_penalty: float = Field(
        0.1, ge=0.0, description="risk per action that will need approval (1 / (1 + risk))"
    )
    predicted_deny_penalty: float = Field(
        0.5, ge=0.0, description="risk per action a state-reading policy is predicted to deny"
    )
    headroom_weight: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="weight of budget headroom (1 - the most used share of budget)",
    )
    reversibility_weight: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="weight of reversibility (irreversible calls, no compensation)",
    )
    irreversible_penalty: float = Field(
        0.05,
        ge=0.0,
        description="risk per irreversible tool call without a compensation (1 / (1 + risk))",
    )
    monte_carlo_weight: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="weight of the Monte Carlo success estimate (with feedback)",
    )
    monte_carlo_trials: int = Field(
        1000, ge=0, le=1_000_000, description="trials per candidate (0: no Monte Carlo)"
    )
    unknown_approval_rate: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Monte Carlo: share of approvals granted for a policy feedback has not seen",
    )
    seed: int = Field(0, description="seed of the Monte Carlo trials")

    @classmethod
    def car(cls, **settings: Any) -> PlannerConfig:
        """The configuration that scores exactly as car-runtime's `rank_proposals`: carlang's
        feature weights at 0 (feedback and policies still apply when given). CAR drops an
        action's `depends_on`: rank proposals without it to score them as CAR does
        (`experiments.evaluate.car_ranking`)."""
        return cls(**{**{name: 0.0 for name in CARLANG_WEIGHTS}, **settings})

    @classmethod
    def settable(cls) -> dict[str, str]:
        """Every setting's name and what it means."""
        return {name: field.description or "" for name, field in cls.model_fields.items()}

    def with_settings(
        self, settings: Mapping[str, float | int | str], *, strict: bool = False
    ) -> PlannerConfig:
        """A copy with `settings` applied; raises `SettingError` for an unknown name (with a
        did-you-mean) or a value out of range. `strict`: the values are typed already (a
        config file's JSON or TOML), so `true` or `"2"` is refused, not read as 1 or 2 (text,
        as `--set` gives, is converted otherwise)."""
        for name in settings:
            problem = unknown_setting(name)
            if problem is not None:
                raise SettingError(problem, name)
        data = {**self.model_dump(), **settings}
        try:
            return PlannerConfig.model_validate(data, strict=strict)
        except ValidationError as exc:
            error = exc.errors()[0]
            name = ".".join(str(part) for part in error["loc"])
            raise SettingError(
                f"setting {name} = {_shown(data.get(name))}: {error['msg'].lower()}", name
            ) from None

    def with_cost_target(self, target: CostTarget) -> PlannerConfig:
        """A copy aimed at `target` (a plan's `cost_weight` and `target` lines)."""
        return self.with_settings(cost_target_settings(target))


def cost_target_settings(target: CostTarget) -> dict[str, Any]:
    """The settings a cost target gives: the fields it was given (a plan's `target 3
    actions` sets `target_actions` alone; the others keep what `--config`, the search or the
    defaults say), each under the planner setting of its name."""
    return {name: getattr(target, name) for name in _COST_TARGET_FIELDS & target.model_fields_set}


_COST_TARGET_FIELDS = frozenset(
    {"cost_weight", "target_actions", "target_tool_calls", "target_duration_ms"}
)


def unknown_setting(name: str) -> str | None:
    """Why `name` is not a planner setting (with a did-you-mean), or None if it is one."""
    if name in PlannerConfig.model_fields:
        return None
    message = f"no planner setting is called '{name}'"
    hint = did_you_mean(name, PlannerConfig.model_fields)
    return f"{message}; {hint}" if hint else message


def check_setting(name: str, value: float) -> str | None:
    """Why `name = value` cannot be a planner setting, or None if it can (for the compiler,
    which reports it at the setting's source position)."""
    try:
        PlannerConfig().with_settings({name: value})
    except SettingError as exc:
        return str(exc)
    return None


def toml_problem(path: object, text: str, error: ValueError, what: str) -> str:
    """`path:line:col: what: problem` for a TOML file `tomllib` refuses, the form of every
    position carlang reports (tomllib puts the position at the end of its message)."""
    message = str(error)
    at = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", message, re.DOTALL)
    if at is not None:
        message, position = at.group(1), f"{at.group(2)}:{at.group(3)}"
    elif message.endswith(" (at end of document)"):
        message = message.removesuffix(" (at end of document)")
        lines = text.split("\n")
        position = f"{len(lines)}:{len(lines[-1]) + 1}"
    else:
        return f"{path}: {what}: {message}"
    return f"{path}:{position}: {what}: {message[:1].lower()}{message[1:]}"


def setting_position(text: str, name: str, toml: bool, within: Sequence[str] = ()) -> str | None:
    """`line:col` of setting `name`'s value in a config or space file's `text` (TOML, else
    JSON, where it sits under the keys `within`), or None where it cannot be found."""
    if not toml:
        if json_locate(text, [*within, name]) == json_locate(text, within):
            return None  # (not there: the position of what holds it)
        found = json_locate(text, [*within, name])
        return f"{found.line}:{found.column}"
    key = re.escape(name)
    match = re.search(
        rf"""^[ \t]*(?:[\w"'.-]+\.)?(?:{key}|"{key}"|'{key}')[ \t]*=[ \t]*""", text, re.MULTILINE
    )
    if match is None:
        return None
    line = text.count("\n", 0, match.end()) + 1
    return f"{line}:{match.end() - (text.rfind(chr(10), 0, match.end()) + 1) + 1}"


def _shown(value: Any) -> str:
    """A setting's value as it was written: JSON (`true`, `"2"`), else as Python shows it."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
