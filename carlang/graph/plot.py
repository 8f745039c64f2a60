"""`carlang rank --sweep ... --plot FILE`: each candidate's score over the swept setting, with
the points where the winner changes marked (matplotlib, an optional extra: `carlang[plot]`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from carlang_runtime.errors import CarlangRuntimeError

if TYPE_CHECKING:
    from carlang_runtime.planner.sweep import SweepPoint

__all__ = ["plot_sweep", "PlotUnavailable"]


class PlotUnavailable(CarlangRuntimeError):
    """matplotlib is not installed, or the sweep cannot be drawn as asked."""


def plot_sweep(points: Sequence[SweepPoint], setting: str, path: Path) -> None:
    """Draw the scores of a sweep over `setting` to `path` (format from its suffix)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        raise PlotUnavailable("--plot needs matplotlib: pip install 'carlang[plot]'") from None
    xs = [p.settings[setting] for p in points]
    names = list(dict.fromkeys(s.proposal_id for p in points for s in p.ranked))
    figure, axes = pyplot.subplots(figsize=(7.5, 4.2), dpi=110)
    for name in names:
        scores = [next((s.score for s in p.ranked if s.proposal_id == name), None) for p in points]
        valid = [next((s.valid for s in p.ranked if s.proposal_id == name), False) for p in points]
        axes.plot(
            xs,
            [s if s is not None else float("nan") for s in scores],
            marker="o",
            markersize=3,
            label=name,
        )
        invalid = [
            (x, s) for x, s, ok in zip(xs, scores, valid, strict=True) if s is not None and not ok
        ]
        if invalid:
            axes.scatter(*zip(*invalid, strict=True), marker="x", color="#c62828", zorder=3)
    previous = None
    for point in points:
        winner = point.winner.proposal_id if point.winner is not None else None
        if previous is not None and winner != previous:
            x = point.settings[setting]
            axes.axvline(x, color="#757575", linestyle="--", linewidth=1)
            axes.annotate(
                f"→ {winner or 'none'}",
                (x, 1),
                xycoords=("data", "axes fraction"),
                xytext=(3, -12),
                textcoords="offset points",
                fontsize=8,
            )
        previous = winner
    axes.set_xlabel(setting)
    axes.set_ylabel("score (higher ranks first)")
    axes.set_title(f"candidate scores over {setting}; dashed: the winner changes", fontsize=10)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    try:
        figure.savefig(path)
    except (OSError, ValueError) as exc:
        raise PlotUnavailable(f"cannot write {path}: {exc}") from None
    finally:
        pyplot.close(figure)
