"""Precondition checking, shared by static verification and runtime validation (as in CAR,
where `StaticState` and the runtime `StateStore` both feed `check_precondition`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .ir import Precondition
from .jsonvalue import as_number, json_equal, rust_debug, to_json_text

__all__ = ["check_precondition", "check_assertion", "comparison_help", "contains", "Show"]

#: How a message shows a value: CAR's Rust Debug form (`String("c")`, `rust_debug`) by
#: default, as car-runtime words it; carlang's compiler passes its own (`"c"`).
Show = Callable[[Any], str]

_COMPARISONS = {
    "gt": lambda a, b: a > b,
    "lt": lambda a, b: a < b,
    "gte": lambda a, b: a >= b,
    "lte": lambda a, b: a <= b,
}


def contains(actual: Any, pattern: Any) -> bool:
    """CAR's `contains`: a substring test on the text of both sides (a string as itself, any
    other value as its JSON text), which also covers membership of a scalar in an array."""
    haystack = actual if isinstance(actual, str) else to_json_text(actual)
    needle = pattern if isinstance(pattern, str) else to_json_text(pattern)
    return needle in haystack


def check_precondition(
    pre: Precondition, state: Mapping[str, Any], show: Show = rust_debug
) -> str | None:
    """None when `pre` holds in `state`, else the reason it fails (CAR's wording, each value
    as `show` writes it).

    An operator this version does not know fails the check, so that a newer proposal is never
    run with a guard silently dropped.
    """
    key, op = pre.key, pre.operator
    present = key in state
    if op == "exists":
        return None if present else f"key '{key}' does not exist"
    if op == "not_exists":
        return f"key '{key}' exists" if present else None
    if not present:
        if op == "contains":
            return f"key '{key}' has no value, cannot check contains"
        return f"key '{key}' has no value"
    actual = state[key]
    if op == "eq":
        if json_equal(actual, pre.value):
            return None
        return f"'{key}' is {show(actual)}, need {show(pre.value)}"
    if op == "neq":
        if not json_equal(actual, pre.value):
            return None
        return f"'{key}' is {show(actual)}, must not be"
    compare = _COMPARISONS.get(op)
    if compare is not None:
        left, right = as_number(actual), as_number(pre.value)
        if left is None or right is None:
            return f"cannot compare '{key}': {show(actual)} {op} {show(pre.value)}"
        if compare(left, right):
            return None
        return f"'{key}' is {show(actual)}, need {op} {show(pre.value)}"
    if op == "contains":
        if contains(actual, pre.value):
            return None
        return f"key '{key}' does not contain {show(pre.value)}"
    return f"unknown operator '{op}'"


#: How the language writes each ordering operator (`requires count > 5`).
_SYMBOLS = {"gt": ">", "lt": "<", "gte": ">=", "lte": "<="}


def comparison_help(pre: Precondition, state: Mapping[str, Any]) -> str | None:
    """How to fix an ordering precondition that cannot compare (`cannot compare 'count': 0
    gt "5"`, CAR's words): which side is no number, and the number a quoted one may mean;
    None for any other precondition."""
    from .paramcheck import json_type_name

    symbol = _SYMBOLS.get(pre.operator)
    if symbol is None or pre.key not in state:
        return None
    actual, wanted = state[pre.key], pre.value
    if as_number(actual) is not None and as_number(wanted) is not None:
        return None
    if as_number(actual) is not None and isinstance(wanted, str):
        try:
            number = float(wanted)
        except ValueError:
            number = None
        if number is not None:
            return f"`{symbol}` compares numbers: write {wanted} without quotes"
    return (
        f"`{symbol}` compares numbers; `{pre.key}` holds {json_type_name(actual)} and the"
        f" precondition gives {json_type_name(wanted)}"
    )


def check_assertion(
    params: Mapping[str, Any], state: Mapping[str, Any], show: Show = rust_debug
) -> str | None:
    """None when an assertion action's check holds in `state`, else why not (values as `show`
    writes them). CAR's assertion is `{key, expected}`: the value under `key` (null when
    absent) equals `expected`. carlang's may name an `operator` and a `value` instead, checked
    as a precondition."""
    key = params.get("key")
    if not isinstance(key, str):
        return f"assertion needs a string 'key' parameter, got {show(key)}"
    operator = params.get("operator")
    if isinstance(operator, str):
        return check_precondition(
            Precondition.model_construct(
                key=key, operator=operator, value=params.get("value"), description=""
            ),
            state,
            show,
        )
    actual = state.get(key)
    expected = params.get("expected")
    if json_equal(actual, expected):
        return None
    return f"state['{key}'] = {show(actual)}, expected {show(expected)}"
