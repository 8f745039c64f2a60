"""The planner: scores candidate plans without running them and ranks them, best first.

config.py      PlannerConfig: every weight, target and penalty, settable by name
feedback.py    ToolFeedback: tool success rates and durations learned from event logs
montecarlo.py  simulate_monte_carlo: seeded simulated runs with tools failing at their rates
features.py    carlang's features: policy compliance, budget headroom, reversibility, duration
score.py       the score of one candidate (CAR's formula, then carlang's factors)
rank.py        rank, pick_best, rank_plan
explain.py     why the winner won and why each other candidate lost
sweep.py       scoring experiments: rankings over a grid of settings
"""

from __future__ import annotations

from .config import CARLANG_WEIGHTS, PlannerConfig, SettingError
from .feedback import ToolFeedback, ToolStats
from .governance import Governance
from .montecarlo import MonteCarloResult, simulate_monte_carlo
from .rank import pick_best, plan_config, rank, rank_plan
from .score import FEATURES, ScoredProposal, token_estimate

__all__ = [
    "rank",
    "rank_plan",
    "pick_best",
    "plan_config",
    "PlannerConfig",
    "SettingError",
    "CARLANG_WEIGHTS",
    "ScoredProposal",
    "FEATURES",
    "ToolFeedback",
    "ToolStats",
    "Governance",
    "MonteCarloResult",
    "simulate_monte_carlo",
    "token_estimate",
]
