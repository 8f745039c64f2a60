"""Ranking metrics against real outcomes, per task, with bootstrap confidence intervals.

For one task, `predicted` are the candidates' scores (higher is better) and `actual` their
real success rates:

- top-1: 1 when the predicted winner's actual rate equals the best actual rate (ties for best
  count as right), else 0;
- regret: the best actual rate minus the predicted winner's;
- Spearman: the Pearson correlation of the average ranks (ties share the mean rank) of
  predicted and actual; Kendall: tau-b. Both are undefined (None) when either side is
  constant or there are fewer than two candidates, and such tasks are left out of the mean.

The predicted winner is the first of the ranking (its tie-break decides among equal scores).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

__all__ = [
    "top1",
    "regret",
    "spearman",
    "kendall_tau_b",
    "average_ranks",
    "mean",
    "bootstrap_ci",
    "MIN_RESAMPLES",
]

#: The fewest resamples a 95% percentile interval is drawn from: with fewer, its ends are a
#: handful of resampled means (with 1, one), which need not hold the mean itself.
MIN_RESAMPLES = 100


def top1(winner_actual: float, actual: Sequence[float]) -> float:
    """1.0 when the chosen candidate is among the truly best, else 0.0."""
    return 1.0 if winner_actual >= max(actual) else 0.0


def regret(winner_actual: float, actual: Sequence[float]) -> float:
    """How much better the truly best candidate was than the chosen one."""
    return max(actual) - winner_actual


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks of `values` (smallest first), ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        shared = (start + end) / 2 + 1
        for position in range(start, end + 1):
            ranks[order[position]] = shared
        start = end + 1
    return ranks


def _pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def spearman(predicted: Sequence[float], actual: Sequence[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties), or None when undefined."""
    if len(predicted) < 2:
        return None
    return _pearson(average_ranks(predicted), average_ranks(actual))


def kendall_tau_b(predicted: Sequence[float], actual: Sequence[float]) -> float | None:
    """Kendall's tau-b, or None when undefined."""
    n = len(predicted)
    concordant = discordant = ties_x = ties_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx = predicted[i] - predicted[j]
            dy = actual[i] - actual[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denominator if denominator else None


def mean(values: Sequence[float | None]) -> float | None:
    """The mean of the defined values, or None when there is none."""
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


def bootstrap_ci(
    values: Sequence[float | None],
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """A percentile bootstrap interval of the mean over tasks (resampling tasks), seeded."""
    defined = [v for v in values if v is not None]
    if not defined or resamples < 1:
        return None
    draw = random.Random(seed)
    n = len(defined)
    means = sorted(sum(draw.choices(defined, k=n)) / n for _ in range(resamples))
    low = means[int((1 - level) / 2 * resamples)]
    high = means[min(resamples - 1, int((1 + level) / 2 * resamples))]
    return low, high
