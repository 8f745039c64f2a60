"""The score of one candidate, from its verification, its cost and carlang's features.

    base  = 0                                                  if the candidate is invalid
          = validity * (1 - cost_weight) + cost_efficiency * cost_weight   otherwise (CAR)
    score = base * factor(feedback) * factor(policy) * factor(headroom)
                 * factor(reversibility) * factor(monte_carlo)
    factor(f) = 1 - weight_f + weight_f * value_f              (CAR's feedback formula)

validity = max(min_validity, 1 - warning_penalty * warnings - conflict_penalty * conflicts);
cost_efficiency = (1 - token_weight) * mean(terms, weighted) + token_weight * tokens term,
where each count's term is max(0, 1 - count / (2 * target)) (1 for none, 0.5 at the target)
and parallelism's is 1 - levels / actions. Every value in [0, 1], 1 meaning nothing against
it; a feature with nothing to say (no policies, no budget, no feedback) has value 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, compress, repeat
from operator import is_
from typing import Any

from pydantic import BaseModel, Field

from ..columns import STATE_WRITE, TOOL_CALL, Columns
from ..ir import ActionProposal, Budget
from ..ir.jsonsize import actions_json_size
from ..policy import PolicySet
from ..suggest import plural
from ..verify import ToolSet, VerifyResult, analyse
from .config import PlannerConfig
from .features import (
    Finding,
    budget_headroom,
    capped,
    estimated_duration_ms,
    locs_by_id,
    policy_compliance,
    reversibility,
)
from .feedback import ToolFeedback
from .governance import Governance
from .montecarlo import BatchRunner, MonteCarloResult, simulate_monte_carlo

__all__ = ["ScoredProposal", "ScoringContext", "score_candidate", "token_estimate", "FEATURES"]

#: The score's factors, in the order they are applied and reported.
FEATURES = ("feedback", "policy", "headroom", "reversibility", "monte_carlo")

# CAR stamps a proposal without a timestamp when it loads it; its token estimate counts the
# stamp: `,"timestamp":"2026-01-01T00:00:00.000000000Z"` is 45 bytes.
_STAMP_BYTES = 45
#: carlang's own members of a proposal (left out, as CAR has none), and its actions (sized
#: apart, then counted with their key and the comma between them and the id, always written).
_NOT_CAR = {"loc", "capability", "budget", "actions"}
_ACTIONS_MEMBER = b',"actions":'


class ScoredProposal(BaseModel):
    """A candidate's score and everything that went into it. The first sixteen fields are
    car-runtime's, with its names and meaning; the rest are carlang's."""

    index: int
    score: float
    validity: float
    cost_efficiency: float
    error_count: int
    warning_count: int
    action_count: int
    tool_call_count: int
    parallelism_levels: int
    valid: bool
    state_keys_written: int
    has_write_conflicts: bool
    historical_confidence: float
    token_estimate: int
    quality_per_token: float
    outcome_value: float = 0.0
    # -- carlang ------------------------------------------------------------------------
    proposal_id: str
    base_score: float = Field(description="CAR's score before the factors")
    policy_compliance: float
    approvals: int
    denials: int
    predicted_denials: int
    budget_headroom: float | None
    reversibility: float
    irreversible_actions: int
    monte_carlo_success: float | None
    estimated_duration_ms: float | None
    factors: dict[str, float] = Field(description="each feature's multiplier of the score")
    findings: list[dict[str, Any]] = Field(default_factory=list)

    def findings_for(self, feature: str) -> list[dict[str, Any]]:
        """The findings of one feature (`validity`, `cost`, or one of `FEATURES`)."""
        return [f for f in self.findings if f["feature"] == feature]


@dataclass(frozen=True)
class ScoringContext:
    """What every candidate of one ranking is scored against: tools, state, settings, history,
    policies, capabilities and budgets."""

    tools: ToolSet | None
    state: dict[str, Any]
    config: PlannerConfig
    feedback: ToolFeedback | None
    policies: Sequence[PolicySet]
    governance: Governance
    #: Monte Carlo results kept across rankings (they do not depend on the weights): keyed by
    #: the proposal object and the settings they do depend on. None: not kept.
    monte_carlo_cache: dict[tuple[Any, ...], tuple[ActionProposal, MonteCarloResult]] | None = None
    #: Where a Monte Carlo estimate's batches run (None: here, one after the other); the
    #: result is the same wherever they run.
    monte_carlo_batches: BatchRunner | None = None


def token_estimate(proposal: ActionProposal, cols: Columns | None = None) -> int:
    """CAR's `estimate_proposal_tokens`: the bytes of the proposal's compact JSON / 4, as CAR
    would serialise it (without carlang's source locations and references). `cols`: the
    proposal's columns, when they are already made."""
    # The proposal's own members, then its actions sized a field at a time (`ir.jsonsize`):
    # dumping each action through pydantic would cost more than scoring it.
    head = proposal.__pydantic_serializer__.to_json(proposal, exclude=_NOT_CAR)
    known = cols.by_field() if cols is not None else None
    actions = actions_json_size(proposal.actions, ("loc",), known)
    size = len(head) + len(_ACTIONS_MEMBER) + actions
    if proposal.timestamp is None:
        size += _STAMP_BYTES
    return size // 4


def _term(count: float, target: float) -> float:
    if target <= 0:
        return 1.0 if count <= 0 else 0.0
    return max(0.0, 1.0 - count / (2.0 * target))


def _cost_efficiency(
    config: PlannerConfig,
    actions: int,
    tool_calls: int,
    levels: int,
    tokens: int,
    duration_ms: float | None,
) -> float:
    terms = [
        (config.action_weight, _term(actions, config.target_actions)),
        (config.tool_call_weight, _term(tool_calls, config.target_tool_calls)),
        (config.parallelism_weight, 1.0 - levels / actions if actions else 0.0),
    ]
    if duration_ms is not None:
        terms.append((config.duration_weight, _term(duration_ms, config.target_duration_ms)))
    total = sum(weight for weight, _ in terms)
    structure = sum(weight * value for weight, value in terms) / total if total else 0.0
    budget = config.token_budget
    tokens_term = max(0.0, 1.0 - tokens / budget) if budget > 0 else float(tokens == 0)
    return (1.0 - config.token_weight) * structure + config.token_weight * tokens_term


def _confidence(cols: Columns, feedback: ToolFeedback, config: PlannerConfig) -> float:
    rates = [
        feedback.action_success_rate(tool or "", params)
        for tool, kind, params in zip(cols.tools, cols.types, cols.parameters, strict=True)
        if kind is TOOL_CALL
    ]
    if not rates:
        return 1.0
    unknown = config.unknown_tool_confidence
    return sum(unknown if rate is None else rate for rate in rates) / len(rates)


def _validity_findings(result: VerifyResult, cols: Columns) -> list[Finding]:
    if not result.issues:
        return []
    locs = locs_by_id(cols)
    return capped(
        [
            Finding(
                "validity",
                f"{issue.severity}: {issue.message}",
                issue.action_id,
                issue.loc or locs.get(issue.action_id),
                issue.code,
            )
            for issue in result.issues
        ]
    )


def _factor(weight: float, value: float) -> float:
    return 1.0 - weight + weight * value


def score_candidate(
    index: int, proposal: ActionProposal, on: ScoringContext, cols: Columns | None = None
) -> ScoredProposal:
    """Score one candidate (see the module's docstring for the formula); `cols`: its columns,
    when they are already made."""
    config = on.config
    findings: list[Finding] = []
    errors: list[str] = []
    capability = budget = None
    try:
        capability = on.governance.capability_for(proposal)
        budget = on.governance.budget_for(proposal)
    except LookupError as exc:
        errors.append(str(exc))
        findings.append(Finding("validity", f"error: {exc}"))
    analysis = analyse(
        proposal, on.state, on.tools, config.verify_max_actions, capability, budget, cols=cols
    )
    result, cols = analysis.result, analysis.cols
    findings.extend(_validity_findings(result, cols))
    actions = len(proposal.actions)
    tool_calls = cols.types.count(TOOL_CALL)
    levels = len(result.execution_levels)
    warnings = len(result.warnings())
    conflicts = len(result.conflicts)
    compliance = policy_compliance(
        proposal, on.policies, on.state, config, cols=cols, dag=analysis.dag
    )
    findings.extend(compliance.findings)
    error_count = len(result.errors()) + len(errors) + compliance.denials
    valid = error_count == 0
    validity = (
        max(
            config.min_validity,
            1.0 - config.warning_penalty * warnings - config.conflict_penalty * conflicts,
        )
        if valid
        else 0.0
    )
    feedback = on.feedback
    duration = estimated_duration_ms(cols, analysis.dag, feedback) if feedback is not None else None
    tokens = token_estimate(proposal, cols)
    efficiency = _cost_efficiency(config, actions, tool_calls, levels, tokens, duration)
    cost_text = ", ".join(
        (
            plural(actions, "action"),
            plural(tool_calls, "tool call"),
            plural(levels, "level"),
            plural(tokens, "token"),
        )
    )
    if duration is not None:
        cost_text += f", about {duration:.0f} ms"
    findings.append(Finding("cost", cost_text))
    base = validity * (1.0 - config.cost_weight) + efficiency * config.cost_weight
    factors: dict[str, float] = {}
    confidence = 1.0
    if feedback is not None:
        confidence = _confidence(cols, feedback, config)
        factors["feedback"] = _factor(config.feedback_weight, confidence)
        findings.extend(_feedback_findings(cols, feedback))
    if any(on.policies):  # no policies: nothing to say (the factor would be 1)
        factors["policy"] = _factor(config.policy_weight, compliance.value)
    headroom = None
    if budget is not None:
        headroom, notes = budget_headroom(budget, actions, tool_calls, duration)
        findings.extend(notes)
        factors["headroom"] = _factor(config.headroom_weight, headroom)
    safe, irreversible, notes = reversibility(cols, config)
    findings.extend(notes)
    factors["reversibility"] = _factor(config.reversibility_weight, safe)
    monte: MonteCarloResult | None = None
    if feedback is not None and valid and config.monte_carlo_trials and config.monte_carlo_weight:
        monte = _monte_carlo(proposal, on, compliance.asks, budget)
        factors["monte_carlo"] = _factor(config.monte_carlo_weight, monte.success_rate)
        findings.append(_monte_carlo_finding(monte))
    score = base if valid else 0.0
    for value in factors.values():
        score *= value
    return ScoredProposal(
        index=index,
        score=score,
        validity=validity,
        cost_efficiency=efficiency,
        error_count=error_count,
        warning_count=warnings,
        action_count=actions,
        tool_call_count=tool_calls,
        parallelism_levels=levels,
        valid=valid,
        state_keys_written=_keys_written(cols),
        has_write_conflicts=conflicts > 0,
        historical_confidence=confidence,
        token_estimate=tokens,
        quality_per_token=score / tokens if tokens else 0.0,
        proposal_id=proposal.id,
        base_score=base if valid else 0.0,
        policy_compliance=compliance.value,
        approvals=compliance.approvals,
        denials=compliance.denials,
        predicted_denials=compliance.predicted_denials,
        budget_headroom=headroom,
        reversibility=safe,
        irreversible_actions=irreversible,
        monte_carlo_success=monte.success_rate if monte is not None else None,
        estimated_duration_ms=duration,
        factors=factors,
        findings=[f.to_dict() for f in findings],
    )


def _monte_carlo(
    proposal: ActionProposal,
    on: ScoringContext,
    asks: dict[int, list[str]],
    budget: Budget | None,
) -> MonteCarloResult:
    config, cache = on.config, on.monte_carlo_cache
    key = (
        id(proposal),
        id(on.feedback),
        config.monte_carlo_trials,
        config.seed,
        config.unknown_tool_confidence,
        config.unknown_approval_rate,
    )
    if cache is not None:
        hit = cache.get(key)
        if hit is not None and hit[0] is proposal:
            return hit[1]
    assert on.feedback is not None
    monte = simulate_monte_carlo(
        proposal,
        on.feedback,
        config.monte_carlo_trials,
        config.seed,
        state=on.state,
        unknown_rate=config.unknown_tool_confidence,
        approvals=asks,
        budget_ms=budget.max_duration_ms if budget is not None else None,
        unknown_approval_rate=config.unknown_approval_rate,
        batches=on.monte_carlo_batches,
    )
    if cache is not None:
        cache[key] = (proposal, monte)
    return monte


def _keys_written(cols: Columns) -> int:
    """How many distinct keys the actions write (state_write keys and expected effects)."""
    keys: set[Any] = set(chain.from_iterable(cols.effects))
    writes = compress(range(len(cols)), map(is_, cols.types, repeat(STATE_WRITE)))
    keys.update(key for i in writes if (key := cols.state_write_key(i)) is not None)
    return len(keys)


def _feedback_findings(cols: Columns, feedback: ToolFeedback) -> list[Finding]:
    findings = []
    for tool in sorted(
        {t for t, k in zip(cols.tools, cols.types, strict=True) if k is TOOL_CALL and t is not None}
    ):
        rate = feedback.success_rate(tool)
        stats = feedback.stats.get(tool)
        if rate is None:
            findings.append(Finding("feedback", f"no history for tool {tool}"))
            continue
        seen = f" over {stats.attempts} attempts" if stats is not None and stats.attempts else ""
        findings.append(Finding("feedback", f"tool {tool} succeeds {rate:.0%}{seen}"))
    return findings


def _monte_carlo_finding(monte: MonteCarloResult) -> Finding:
    text = f"gets through {monte.success_rate:.1%} of {monte.trials} simulated runs"
    if monte.abort_causes:
        action, count = next(iter(monte.abort_causes.items()))
        text += f"; most aborts at {action} ({count})"
    return Finding("monte_carlo", text)
