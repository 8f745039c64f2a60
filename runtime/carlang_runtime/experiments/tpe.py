"""`--method optuna`: the points of a search proposed by Optuna's TPE sampler (seeded).

Optuna is an optional extra (`pip install 'carlang[optuna]'`): it is imported only here, only
when this method is asked for. The space is the search's own (`search.Dimension`): a list of
values is a categorical choice, `{ min, max, step }` a float (an int for an integer setting)
with that step, `{ min, max }` a continuous float. Each proposed point is judged by `judge`
before the next is asked for, so the sampler learns from the objective; the same seed gives
the same points.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..planner import PlannerConfig, SettingError

__all__ = ["INSTALL", "tpe_points"]

#: What to install when Optuna is missing.
INSTALL = "pip install 'carlang[optuna]'"


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise SettingError(
            f"--method optuna needs Optuna, which is not installed: {INSTALL}"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial otherwise
    return optuna


def _distribution(optuna: Any, dimension: Any) -> Any:
    distributions = optuna.distributions
    if dimension.values:
        return distributions.CategoricalDistribution(dimension.values)
    annotation = PlannerConfig.model_fields[dimension.name].annotation
    if annotation is int:
        step = int(dimension.step or 1)
        return distributions.IntDistribution(int(dimension.low), int(dimension.high), step=step)
    return distributions.FloatDistribution(dimension.low, dimension.high, step=dimension.step)


def _value(value: Any) -> float | int:
    return round(value, 10) if isinstance(value, float) else int(value)


def tpe_points(
    dimensions: Sequence[Any],
    trials: int,
    seed: int,
    judge: Callable[[Mapping[str, Any]], float | None],
) -> list[dict[str, Any]]:
    """`trials` points proposed by a TPE sampler seeded with `seed`, each judged by `judge`
    (higher is better; None: the point could not be judged) before the next is proposed."""
    optuna = _optuna()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    space = {d.name: _distribution(optuna, d) for d in dimensions}
    tried = []
    for _ in range(trials):
        trial = study.ask(space)
        settings = {d.name: _value(trial.params[d.name]) for d in dimensions}
        value = judge(settings)
        if value is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, value)
        tried.append(settings)
    return tried
