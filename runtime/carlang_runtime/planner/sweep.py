"""Scoring experiments: the ranking at every point of a grid of settings.

An axis is written `name=start:stop:step` (stop included) or `name=v1,v2,...`; several axes
make a grid. Each point is ranked afresh with the settings applied over a base configuration,
and `winner_changes` says where along the grid the winner changes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .config import PlannerConfig, SettingError, unknown_setting
from .score import ScoredProposal

__all__ = [
    "Axis",
    "SweepPoint",
    "parse_axis",
    "grid",
    "sweep",
    "winner_changes",
    "MAX_POINTS",
    "values_in_range",
]

#: A grid larger than this is refused: it is more likely a typo in a step than an experiment.
MAX_POINTS = 10_000


@dataclass(frozen=True)
class Axis:
    """One setting and the values it takes."""

    name: str
    values: tuple[float, ...]  # ints for an integer setting (`seed`, `monte_carlo_trials`)


@dataclass(frozen=True)
class SweepPoint:
    """The settings at one point of the grid and the ranking there."""

    settings: dict[str, float]
    ranked: list[ScoredProposal]

    @property
    def winner(self) -> ScoredProposal | None:
        """The best valid candidate at this point, if any."""
        return self.ranked[0] if self.ranked and self.ranked[0].valid else None


def values_in_range(start: float, stop: float, step: float) -> int | None:
    """How many values start, start + step, ... up to stop (both ends included) are; None
    when too many to count (a step so small that the division overflows)."""
    span = (stop - start) / step + 1e-9
    return int(span) + 1 if math.isfinite(span) else None


def _number(text: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SettingError(f"--sweep {spec}: `{text}` is not a number") from None
    if not math.isfinite(value):  # (a range of them was a ValueError or an OverflowError)
        raise SettingError(f"--sweep {spec}: `{text}` is not a finite number; write numbers")
    return value


def parse_axis(spec: str) -> Axis:
    """`cost_weight=0:1:0.1` or `cost_weight=0.1,0.5,0.9`; raises `SettingError` saying
    what is wrong."""
    name, sep, values = spec.partition("=")
    name = name.strip()
    if not sep or not name or not values.strip():
        raise SettingError(f"--sweep {spec}: write NAME=START:STOP:STEP or NAME=V1,V2,...")
    problem = unknown_setting(name)
    if problem is not None:
        raise SettingError(f"--sweep {spec}: {problem}")
    if ":" in values:
        parts = values.split(":")
        if len(parts) != 3:
            raise SettingError(f"--sweep {spec}: a range is START:STOP:STEP")
        start, stop, step = (_number(p, spec) for p in parts)
        if step <= 0:
            raise SettingError(f"--sweep {spec}: the step must be above 0")
        if stop < start:
            raise SettingError(f"--sweep {spec}: STOP is below START")
        count = values_in_range(start, stop, step)
        if count is None or count > MAX_POINTS:
            many = count if count is not None else "more"
            raise SettingError(f"--sweep {spec}: {many} values; at most {MAX_POINTS}")
        # Rounded: 0.1 * 3 is 0.30000000000000004, and a setting should print as written.
        points = tuple(round(start + i * step, 10) for i in range(count))
    else:
        points = tuple(_number(v.strip(), spec) for v in values.split(","))
    if PlannerConfig.model_fields[name].annotation is int:  # 100, not 100.0, in every output
        if not all(float(v).is_integer() for v in points):
            raise SettingError(f"--sweep {spec}: {name} takes whole numbers")
        points = tuple(int(v) for v in points)
    if len(set(points)) < len(points):  # (the same point twice: rows that say nothing new)
        if ":" in values:
            raise SettingError(
                f"--sweep {spec}: the step is finer than settings are written (10 decimals);"
                " use a coarser step"
            )
        seen: set[float] = set()
        for value in points:
            if value in seen:
                raise SettingError(f"--sweep {spec}: {value} is given twice; give each value once")
            seen.add(value)
    return Axis(name, points)


def grid(axes: Sequence[Axis]) -> list[dict[str, float]]:
    """The settings at every point of the grid the axes span (the first axis varies slowest);
    raises `SettingError` past `MAX_POINTS`."""
    size = 1
    for axis in axes:
        size *= len(axis.values)
    if size > MAX_POINTS:
        raise SettingError(f"the sweep has {size} points; at most {MAX_POINTS}")
    return [
        {axis.name: value for axis, value in zip(axes, values, strict=True)}
        for values in itertools.product(*(axis.values for axis in axes))
    ]


def sweep(
    rank_at: Callable[[PlannerConfig], list[ScoredProposal]],
    base: PlannerConfig,
    axes: Sequence[Axis],
) -> list[SweepPoint]:
    """Rank at every point of the grid the axes span (the first axis varies slowest)."""
    return [SweepPoint(at, rank_at(base.with_settings(at))) for at in grid(axes)]


def _point(settings: dict[str, float]) -> str:
    return ", ".join(f"{name}={value:g}" for name, value in settings.items())


def winner_changes(points: Sequence[SweepPoint]) -> list[str]:
    """Lines that say which candidate wins where: runs of points with the same winner."""
    lines: list[str] = []
    run_start: SweepPoint | None = None
    previous: SweepPoint | None = None

    def close() -> None:
        assert run_start is not None and previous is not None
        winner = run_start.winner
        name = winner.proposal_id if winner is not None else "no valid candidate"
        span = _point(run_start.settings)
        if previous is not run_start:
            span += f" .. {_point(previous.settings)}"
        lines.append(f"{span}: {name}")

    for point in points:
        if run_start is not None and _winner_id(point) != _winner_id(run_start):
            close()
            run_start = point
        if run_start is None:
            run_start = point
        previous = point
    if run_start is not None:
        close()
    changes = len(lines) - 1
    lines.append(
        "the winner never changes" if changes == 0 else f"the winner changes {changes} time(s)"
    )
    return lines


def _winner_id(point: SweepPoint) -> str | None:
    winner = point.winner
    return winner.proposal_id if winner is not None else None
