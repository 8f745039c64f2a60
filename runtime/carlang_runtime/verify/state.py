"""The symbolic state model shared by `verify` and `simulate`.

State is what the initial state says plus the *declared* effects of the actions walked so far:
a state_write sets `parameters.key` to `parameters.value` (null when absent), then every
`expected_effects` entry is applied. What a tool does without declaring it is invisible.
"""

from __future__ import annotations

from typing import Any

from ..columns import STATE_WRITE, Columns
from ..precondition import check_precondition

__all__ = ["apply_effects", "is_blocked"]


def apply_effects(cols: Columns, index: int, state: dict[str, Any]) -> None:
    """Apply action `index`'s declared effects to `state`, in CAR's order."""
    if cols.types[index] is STATE_WRITE:
        params = cols.parameters[index]
        key = params.get("key")
        if isinstance(key, str):
            state[key] = params.get("value")
    effects = cols.effects[index]
    if effects:
        state.update(effects)


def is_blocked(cols: Columns, index: int, state: dict[str, Any]) -> bool:
    """Whether the runtime would reject action `index` in `state`: a failing precondition
    or a state dependency that is not there."""
    for pre in cols.preconditions[index]:
        if check_precondition(pre, state) is not None:
            return True
    return any(key not in state for key in cols.dependencies[index])
