"""One tidy table for a whole dataset: a row per (task, candidate), one header.

Columns: task, candidate, rank, score, valid, tie_break, every number of the score (CAR's fields
first), each feature's multiplier (`factor_<feature>`, empty where the feature had nothing to
say), then config_hash, carlang_version and seed, so a row says what produced it.

Ties: `rank` orders valid before invalid, then by score, then by fewer actions (as car-runtime),
then by input order. `tie_break` is set on a row whose score equals the next row's, naming the
rule that put it first (`fewer actions` or `input order`); on rank 1 it means the winner was
decided by a tie-break.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from typing import Any

from .._version import __version__
from ..planner import FEATURES, PlannerConfig, ScoredProposal

__all__ = [
    "SCALAR_FIELDS",
    "TABLE_COLUMNS",
    "config_hash",
    "tie_breaks",
    "table_rows",
    "write_csv",
]

#: Every number of a score, CAR's fields first.
SCALAR_FIELDS = (
    "index",
    "score",
    "valid",
    "validity",
    "cost_efficiency",
    "historical_confidence",
    "policy_compliance",
    "budget_headroom",
    "reversibility",
    "monte_carlo_success",
    "base_score",
    "error_count",
    "warning_count",
    "action_count",
    "tool_call_count",
    "parallelism_levels",
    "state_keys_written",
    "has_write_conflicts",
    "token_estimate",
    "quality_per_token",
    "approvals",
    "denials",
    "predicted_denials",
    "irreversible_actions",
    "estimated_duration_ms",
)

TABLE_COLUMNS = (
    "task",
    "candidate",
    "rank",
    "tie_break",
    *SCALAR_FIELDS,
    *(f"factor_{name}" for name in FEATURES),
    "config_hash",
    "carlang_version",
    "seed",
)


def config_hash(config: PlannerConfig) -> str:
    """A short, stable hash of every setting (12 hex digits of SHA-256 of its JSON)."""
    text = config.model_dump_json()
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def tie_breaks(ranked: Sequence[ScoredProposal]) -> list[str]:
    """Per position: the rule that put it before the next candidate of equal score, or ''."""
    out = []
    for here, after in zip(ranked, [*ranked[1:], None], strict=True):
        if after is None or (here.valid, here.score) != (after.valid, after.score):
            out.append("")
        elif here.action_count != after.action_count:
            out.append("fewer actions")
        else:
            out.append("input order")
    return out


def table_rows(
    task: str, ranked: Sequence[ScoredProposal], config: PlannerConfig
) -> list[dict[str, Any]]:
    """The table's rows for one ranked task (ranked with `config`)."""
    digest = config_hash(config)
    rows = []
    for place, (scored, rule) in enumerate(zip(ranked, tie_breaks(ranked), strict=True), 1):
        row: dict[str, Any] = {"task": task, "candidate": scored.proposal_id, "rank": place}
        row["tie_break"] = rule
        row.update({name: getattr(scored, name) for name in SCALAR_FIELDS})
        row.update({f"factor_{name}": scored.factors.get(name) for name in FEATURES})
        row.update(config_hash=digest, carlang_version=__version__, seed=config.seed)
        rows.append(row)
    return rows


def write_csv(rows: Sequence[dict[str, Any]], leading: Sequence[str] = ()) -> str:
    """The rows as CSV with one header: `leading` columns (a sweep's settings) first, and
    a column among them (a swept `seed`) not again after."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = [*leading, *(c for c in TABLE_COLUMNS if c not in leading)]
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return buffer.getvalue()
