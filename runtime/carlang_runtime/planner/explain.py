"""Why the winner won and why each other candidate lost: the score's parts, compared.

A candidate's score is `base * factors` (see `score.py`), so the gap between two candidates is
a sum of logarithms: log(base ratio) + log(each factor's ratio). The base's share is split
between validity and cost efficiency by their weighted differences. Each part of the gap is a
`Difference`, with the candidate's findings for that feature (which action, which policy).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import PlannerConfig
from .score import FEATURES, ScoredProposal

__all__ = [
    "Difference",
    "Comparison",
    "compare",
    "explain_ranking",
    "invalid_notes",
    "render_explanation",
]

_LABELS = {
    "validity": "validity",
    "cost": "cost efficiency",
    "feedback": "tool history",
    "policy": "policy compliance",
    "headroom": "budget headroom",
    "reversibility": "reversibility",
    "monte_carlo": "Monte Carlo success",
}


@dataclass(frozen=True)
class Difference:
    """One feature on which two candidates differ: each one's value, the share of the score
    gap it makes (log ratio; positive: the winner is better there), and why."""

    feature: str
    winner: float
    other: float
    impact: float
    findings: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Comparison:
    """A candidate set against the winner: what it lost on (largest first), what it did
    better, or why it is invalid."""

    candidate: ScoredProposal
    lost_on: list[Difference]
    better_on: list[Difference]
    invalid_because: list[dict[str, Any]]


def _values(scored: ScoredProposal) -> dict[str, float]:
    values = {"validity": scored.validity, "cost": scored.cost_efficiency}
    values.update({name: scored.factors.get(name, 1.0) for name in FEATURES})
    return values


def _findings(scored: ScoredProposal, winner: ScoredProposal, feature: str) -> list[dict[str, Any]]:
    """`scored`'s findings for `feature` that the winner does not share (all of them if it
    shares every one): the actions and policies that make the difference."""
    found = scored.findings_for(feature)
    if feature == "validity":
        found = [f for f in found if not f["message"].startswith("error")]
    theirs = Counter(f["message"] for f in winner.findings_for(feature))
    own = []
    for finding in found:
        if theirs[finding["message"]] > 0:
            theirs[finding["message"]] -= 1
        else:
            own.append(finding)
    return own or found


def _cost_findings(scored: ScoredProposal, winner: ScoredProposal) -> list[dict[str, Any]]:
    ours, theirs = scored.findings_for("cost"), winner.findings_for("cost")
    if not ours or not theirs:
        return ours
    message = f"{ours[0]['message']}, against {theirs[0]['message']}"
    return [{"feature": "cost", "message": message}]


def compare(winner: ScoredProposal, other: ScoredProposal, config: PlannerConfig) -> Comparison:
    """How `other` compares with `winner` under `config`'s weights."""
    if not other.valid:
        return Comparison(other, [], [], _invalid_because(other))
    a, b = _values(winner), _values(other)
    impacts: dict[str, float] = {}
    base_gap = winner.base_score - other.base_score
    if winner.base_score > 0 and other.base_score > 0 and abs(base_gap) > 1e-12:
        log_gap = math.log(winner.base_score / other.base_score)
        parts = {
            "validity": (a["validity"] - b["validity"]) * (1.0 - config.cost_weight),
            "cost": (a["cost"] - b["cost"]) * config.cost_weight,
        }
        for name, part in parts.items():
            impacts[name] = log_gap * part / base_gap
    for name in FEATURES:
        if a[name] > 0 and b[name] > 0:
            impacts[name] = math.log(a[name] / b[name])
        elif a[name] != b[name]:
            impacts[name] = math.inf if b[name] == 0 else -math.inf
    differences = [
        Difference(name, a[name], b[name], impact, _findings(other, winner, name))
        if name != "cost"
        else Difference(name, a[name], b[name], impact, _cost_findings(other, winner))
        for name, impact in impacts.items()
        if abs(impact) > 1e-12
    ]
    lost = sorted((d for d in differences if d.impact > 0), key=lambda d: -d.impact)
    better = sorted((d for d in differences if d.impact < 0), key=lambda d: d.impact)
    return Comparison(other, lost, better, [])


def _invalid_because(scored: ScoredProposal) -> list[dict[str, Any]]:
    """The findings that make a candidate invalid: its errors and certain denials."""
    return [
        f
        for f in scored.findings
        if f["message"].startswith("error") or f["message"].startswith("will be denied")
    ]


def _invalid_lines(scored: ScoredProposal, reasons: list[dict[str, Any]]) -> list[str]:
    """`NAME is invalid:` and a line per reason."""
    return [f"{_name(scored)} is invalid:", *(f"  - {_where(f)}{f['message']}" for f in reasons)]


def invalid_notes(ranked: Sequence[ScoredProposal]) -> list[str]:
    """A line per invalid candidate with the first thing that makes it so, as the ranking
    table's footnote (`carlang rank` without `--explain`: an invalid candidate showed only
    `no`, and a typo in one of its tools went unseen)."""
    notes = []
    for scored in ranked:
        reasons = _invalid_because(scored) if not scored.valid else []
        if reasons:
            first = reasons[0]
            more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
            notes.append(f"{_name(scored)} is invalid: {_where(first)}{first['message']}{more}")
    return notes


def explain_ranking(ranked: Sequence[ScoredProposal], config: PlannerConfig) -> list[Comparison]:
    """Every candidate after the first compared with the first (the winner)."""
    if not ranked:
        return []
    return [compare(ranked[0], other, config) for other in ranked[1:]]


def _name(scored: ScoredProposal) -> str:
    return scored.proposal_id or f"#{scored.index}"


def _where(finding: dict[str, Any]) -> str:
    action = finding.get("action_id")
    if action is None:
        return ""
    loc = finding.get("loc")
    return f"{action} ({loc}) " if loc else f"{action} "


def _describe(difference: Difference) -> str:
    label = _LABELS[difference.feature]
    if difference.feature in ("validity", "cost"):
        head = f"{label} {difference.other:.3f} vs {difference.winner:.3f}"
    else:
        head = f"{label} x{difference.other:.3f} vs x{difference.winner:.3f}"
    details = [f"{_where(f)}{f['message']}" for f in difference.findings]
    return f"{head}: {'; '.join(details)}" if details else head


def render_explanation(
    ranked: Sequence[ScoredProposal], config: PlannerConfig, title: str = ""
) -> str:
    """The explanation as text: the winner and its edge over the runner-up, then each other
    candidate with the features it lost on (with the actions and policies behind them)."""
    if not ranked:
        return "no candidates"
    winner = ranked[0]
    prefix = f"{title}: " if title else ""
    if not winner.valid:
        lines = [
            f"{prefix}no candidate is valid",
            *_invalid_lines(winner, _invalid_because(winner)),
        ]
    else:
        lines = [f"{prefix}{_name(winner)} wins with score {winner.score:.4f}"]
        if len(ranked) == 1 or not ranked[1].valid:
            only = "the only candidate" if len(ranked) == 1 else "the only valid candidate"
            lines[0] += f" ({only})"
    for comparison in explain_ranking(ranked, config):
        other = comparison.candidate
        if comparison.invalid_because:
            lines.extend(_invalid_lines(other, comparison.invalid_because))
            continue
        gap = winner.score - other.score
        lines.append(f"{_name(other)} lost ({other.score:.4f}, {gap:.4f} behind) on:")
        if not comparison.lost_on:
            lines.append(
                "  - nothing: an equal score; ties go to fewer actions, then to the candidate"
                " given first"
            )
        lines.extend(f"  - {_describe(d)}" for d in comparison.lost_on)
        for better in comparison.better_on:
            if f"{better.winner:.3f}" == f"{better.other:.3f}":
                continue  # (a difference the figures shown cannot show is no edge to name)
            label = _LABELS[better.feature]
            paid = _findings(winner, other, better.feature) if better.feature != "cost" else []
            detail = "; ".join(f"{_where(f)}{f['message']}" for f in paid)
            lines.append(f"  + better on {label}" + (f" (the winner: {detail})" if detail else ""))
    return "\n".join(lines)
