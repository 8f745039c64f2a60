"""carlang's features of a candidate, each a value in [0, 1] (1: nothing against it) with the
findings that explain it: policy compliance, budget headroom, reversibility, the estimated
duration. The planner turns each into a factor of the score (see `score.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import is_
from typing import Any

from ..columns import TOOL_CALL, Columns
from ..dag import Dag
from ..ir import ActionProposal, Budget, PolicyEffect, Reversibility, SourceLoc
from ..policy import (
    POLICY_ASKS,
    POLICY_DENIES,
    POLICY_MAY_DENY,
    PolicySet,
    static_verdicts,
)
from .config import PlannerConfig
from .feedback import ToolFeedback

__all__ = [
    "Finding",
    "FINDINGS_PER_FEATURE",
    "capped",
    "risk_value",
    "PolicyCompliance",
    "policy_compliance",
    "locs_by_id",
    "budget_headroom",
    "reversibility",
    "estimated_duration_ms",
]


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason behind a feature's value: which feature, which action (if one), why, and
    the stable code of what found it when one did (a verify finding's `code`, like CL0301), so
    that a client can act on a finding without reading its message."""

    feature: str
    message: str
    action_id: str | None = None
    loc: SourceLoc | None = None
    code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (absent parts left out)."""
        data: dict[str, Any] = {"feature": self.feature, "message": self.message}
        if self.code is not None:
            data["code"] = self.code
        if self.action_id is not None:
            data["action_id"] = self.action_id
        if self.loc is not None:
            data["loc"] = str(self.loc)
        return data


#: A feature lists at most this many findings, then how many more there are: a plan of
#: 10,000 actions does not need 10,000 lines to say why it scores as it does.
FINDINGS_PER_FEATURE = 10


def capped(findings: list[Finding], total: int | None = None) -> list[Finding]:
    """`findings` (of one feature) cut to `FINDINGS_PER_FEATURE`, with a count of the rest.
    `total`: how many there are, when only the first few were built."""
    total = len(findings) if total is None else total
    if total <= FINDINGS_PER_FEATURE:
        return findings
    rest = total - FINDINGS_PER_FEATURE
    more = Finding(findings[0].feature, f"... and {rest:,} more like these")
    return [*findings[:FINDINGS_PER_FEATURE], more]


def risk_value(*weighted_counts: tuple[float, int]) -> float:
    """1 / (1 + sum of penalty * count): 1 with nothing against a candidate, falling with each
    risky action but never to 0, so that large plans still compare (a product of (1 - p)
    per action would underflow at thousands of actions)."""
    return 1.0 / (1.0 + sum(penalty * count for penalty, count in weighted_counts))


@dataclass(slots=True)
class PolicyCompliance:
    """What the policies will say to a candidate's actions, before it runs."""

    value: float = 1.0
    denials: int = 0  # actions a policy will certainly deny: the candidate cannot run
    predicted_denials: int = 0  # actions a state-reading policy is predicted to deny
    approvals: int = 0  # actions that will need approval
    findings: list[Finding] = field(default_factory=list)
    #: Per action position: the policies that will ask approval for it (for Monte Carlo).
    asks: dict[int, list[str]] = field(default_factory=dict)


def policy_compliance(
    proposal: ActionProposal,
    policies: Sequence[PolicySet],
    state: dict[str, Any],
    config: PlannerConfig,
    *,
    cols: Columns | None = None,
    dag: Dag | None = None,
) -> PolicyCompliance:
    """Judge every action against `policies` (see `policy.static`): a certain deny counts
    in `denials`; an action with a predicted deny or an approval costs its penalty, once
    (`risk_value`). `cols`, `dag`: the proposal's, when they are already made."""
    out = PolicyCompliance()
    worst: dict[int, tuple[int, str]] = {}  # action -> (0 approval / 1 predicted deny, policy)
    verdicts = static_verdicts(policies, proposal, state, cols=cols, dag=dag)
    if not verdicts:
        return out  # nothing against it: value 1
    if cols is None:
        cols = Columns.of(proposal.actions)
    locs: dict[str, SourceLoc | None] | None = None  # by id (the last of a repeated one)
    for verdict in verdicts:
        if verdict.effect is PolicyEffect.DENY:
            if verdict.certain:
                out.denials += 1
                message = f"will be denied by {verdict.policy}: {verdict.reason}"
                if locs is None:
                    locs = locs_by_id(cols)
                loc = locs.get(verdict.action_id)
                finding = Finding("policy", message, verdict.action_id, loc, POLICY_DENIES)
                out.findings.append(finding)
                continue
            rank, text = 1, f"is predicted to be denied by {verdict.policy}: {verdict.reason}"
        else:
            rank, text = 0, f"will need approval by {verdict.policy}: {verdict.reason}"
            out.asks.setdefault(verdict.index, []).append(verdict.policy)
        if verdict.index not in worst or worst[verdict.index][0] < rank:
            worst[verdict.index] = (rank, text)
    for index, (rank, text) in sorted(worst.items()):
        code = POLICY_MAY_DENY if rank else POLICY_ASKS
        out.findings.append(Finding("policy", text, cols.ids[index], cols.locs[index], code))
        if rank:
            out.predicted_denials += 1
        else:
            out.approvals += 1
    out.findings = capped(out.findings)
    out.value = risk_value(
        (config.approval_penalty, out.approvals),
        (config.predicted_deny_penalty, out.predicted_denials),
    )
    return out


def locs_by_id(cols: Columns) -> dict[str, SourceLoc | None]:
    """Where each action was written, by id (the last of a repeated id)."""
    return dict(zip(cols.ids, cols.locs, strict=True))


def budget_headroom(
    budget: Budget, actions: int, tool_calls: int, duration_ms: float | None
) -> tuple[float, list[Finding]]:
    """1 - the largest share of the budget the candidate uses (0 at or over the budget)."""
    shares: list[tuple[float, str]] = []
    if budget.max_actions is not None:
        shares.append(_share(actions, budget.max_actions, "actions"))
    if budget.max_tool_calls is not None:
        shares.append(_share(tool_calls, budget.max_tool_calls, "tool calls"))
    if budget.max_duration_ms is not None and duration_ms is not None:
        shares.append(
            _share(duration_ms, budget.max_duration_ms, "ms (estimated duration)", whole=False)
        )
    if not shares:
        return 1.0, []
    used, text = max(shares, key=lambda item: item[0])
    finding = Finding("headroom", f"{text} of budget {budget.name}")
    return max(0.0, 1.0 - used), [finding]


def _share(used: float, limit: float, what: str, whole: bool = True) -> tuple[float, str]:
    share = used / limit if limit else (0.0 if used == 0 else float("inf"))
    amount = f"{used:g}" if whole else f"{used:.0f}"
    return share, f"uses {amount} of {limit:g} {what}"


def reversibility(cols: Columns, config: PlannerConfig) -> tuple[float, int, list[Finding]]:
    """`risk_value` of the tool calls that are irreversible and have no compensation: the
    calls whose effects outlive an abort."""
    risks = zip(  # each test a column at a time, at C speed: a plan may have 100,000 calls
        map(is_, cols.types, repeat(TOOL_CALL)),
        map(is_, cols.reversibility, repeat(Reversibility.IRREVERSIBLE)),
        map(is_, cols.compensations, repeat(None)),
        strict=True,
    )
    risky = list(compress(range(len(cols)), map(all, risks)))
    findings = []
    for index in risky[:FINDINGS_PER_FEATURE]:  # only those shown: a plan may have 10,000
        message = f"calls {cols.tools[index]}, which is irreversible, without a compensation"
        findings.append(Finding("reversibility", message, cols.ids[index], cols.locs[index]))
    value = risk_value((config.irreversible_penalty, len(risky)))
    return value, len(risky), capped(findings, len(risky))


def estimated_duration_ms(cols: Columns, dag: Dag, feedback: ToolFeedback) -> float | None:
    """How long the plan would take from the tools' mean durations: the runtime waits for a
    whole level before the next, so the sum over levels of each level's slowest call. A tool
    with no recorded duration counts as the mean of those with one; None if none has one."""
    if not feedback.has_durations:
        return None
    means = {}
    for tool in {t for t in cols.tools if t is not None}:
        mean = feedback.mean_duration_ms(tool)
        if mean is not None:
            means[tool] = mean
    known = [m for m in (feedback.mean_duration_ms(t) for t in feedback.stats) if m is not None]
    fallback = sum(known) / len(known)
    tools, types = cols.tools, cols.types
    total = 0.0
    for level in dag.levels:
        slowest = 0.0
        for index in level:
            if types[index] is TOOL_CALL:
                slowest = max(slowest, means.get(tools[index] or "", fallback))
        total += slowest
    return total
