"""The symbolic state model shared by `verify` and `simulate`.

State is what the initial state says plus the *declared* effects of the actions walked so far:
a state_write sets `parameters.key` to `parameters.value` (null when absent), then every
`expected_effects` entry is applied. What a tool does without declaring it is invisible.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

from .. import speedups
from ..columns import STATE_WRITE, Columns
from ..precondition import check_precondition

__all__ = ["apply_effects", "is_blocked", "merged_state"]


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


def merged_state(
    state: dict[str, Any], effects: list[dict[str, Any]], levels: list[list[int]], keys: int
) -> dict[str, Any]:
    """A copy of `state` with the `expected_effects` of the actions of `levels` (positions,
    level by level) applied in order: the walk of a proposal without state writes, when it
    has nothing to check on the way. `keys`: how many distinct keys the effects write
    (`Dag.effect_keys`). In C where the speedups are built: the copy is sized for the state's
    keys and those at once, where a map grown a key at a time rebuilds its table as it grows
    (at 100,000 keys a third of the pass)."""
    native = speedups.native()
    if native is not None:
        merged: dict[str, Any] = native.merged_state(state, effects, levels, keys)
        return merged
    return _merged_state(state, effects, levels, keys)


def _merged_state(
    state: dict[str, Any], effects: list[dict[str, Any]], levels: list[list[int]], keys: int
) -> dict[str, Any]:
    """`merged_state` in Python: the twin of the C function, and what runs without it
    (`keys` is only the C's size hint)."""
    merged = dict(state)
    # (update returns None: all run; one map over every level, not a Python step per level)
    any(map(merged.update, map(effects.__getitem__, chain.from_iterable(levels))))
    return merged


def is_blocked(cols: Columns, index: int, state: dict[str, Any]) -> bool:
    """Whether the runtime would reject action `index` in `state`: a failing precondition
    or a state dependency that is not there."""
    for pre in cols.preconditions[index]:
        if check_precondition(pre, state) is not None:
            return True
    return any(key not in state for key in cols.dependencies[index])
