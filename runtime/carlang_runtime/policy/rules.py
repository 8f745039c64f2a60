"""CAR's built-in rule kinds, evaluated natively with CAR's semantics.

Each rule answers "does this action violate me, and why" with a reason that names the tool and
the parameter but never echoes the parameter's value: the value is what a rule exists to catch
(a secret, an address), and reasons end up in event logs.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final

from ..cel.functions import compile_regex
from ..cel.values import CelEvalError
from ..ir import (
    Action,
    AllowToolParamRule,
    BuiltinRule,
    DenyKeywordRule,
    DenyToolParamMatchingRule,
    DenyToolParamRule,
    DenyToolRule,
    RateLimitToolRule,
    RequireStateRule,
)
from ..jsonvalue import json_equal, same_value, texts_of, to_json_text

__all__ = ["NativeRule", "native_rule", "as_text"]

# (action, state, admit) -> a reason when violated, None when not. `admit` is false for a
# dry run (a test, an explanation), which must not spend a rate limit's budget.
Check = Callable[[Action, Mapping[str, Any], bool], "str | None"]


#: What a rule's verdict on an action can depend on, in the names of a CEL condition's
#: variables: the action alone, its parameters, the state, or the time and what ran before.
ON_ACTION: Final = frozenset({"action"})
ON_PARAMS: Final = frozenset({"params"})
ON_STATE: Final = frozenset({"state"})
ON_TIME: Final = frozenset({"now", "history"})


class NativeRule:
    """A built-in rule made runnable: `tool` is the tool it is about (None: every action);
    `reads` what its verdict depends on (see `PolicyMatch.reads`); `calls_only` when it never
    matches an action that calls no tool (a state write, an assertion)."""

    __slots__ = ("tool", "check", "reads", "calls_only")

    def __init__(
        self, tool: str | None, check: Check, reads: frozenset[str], calls_only: bool = False
    ) -> None:
        self.tool = tool
        self.check = check
        self.reads = reads
        self.calls_only = calls_only


def as_text(value: Any) -> str:
    """A parameter as CAR compares it with substrings and patterns: a string as itself,
    anything else as its JSON text."""
    return value if isinstance(value, str) else to_json_text(value)


def native_rule(rule: BuiltinRule, clock: Callable[[], float]) -> NativeRule:
    """The runnable form of one built-in rule; `clock` (seconds) drives rate limits."""
    if isinstance(rule, DenyToolRule):
        denied = f"tool '{rule.tool}' denied"
        return NativeRule(rule.tool, lambda action, state, admit: denied, ON_ACTION)
    if isinstance(rule, DenyKeywordRule):
        return NativeRule(None, _deny_keyword(rule), ON_PARAMS, calls_only=True)
    if isinstance(rule, DenyToolParamRule):
        return NativeRule(rule.tool, _deny_tool_param(rule), ON_PARAMS)
    if isinstance(rule, AllowToolParamRule):
        return NativeRule(rule.tool, _allow_tool_param(rule), ON_PARAMS)
    if isinstance(rule, DenyToolParamMatchingRule):
        return NativeRule(rule.tool, _deny_matching(rule), ON_PARAMS)
    if isinstance(rule, RateLimitToolRule):
        return NativeRule(rule.tool, _rate_limit(rule, clock), ON_TIME)
    return NativeRule(None, _require_state(rule), ON_STATE)


def _deny_keyword(rule: DenyKeywordRule) -> Check:
    keywords = [keyword for keyword in rule.keywords if keyword]
    # Whether any keyword is in a text (`keyword in text` for each), in one search.
    contains = re.compile("|".join(map(re.escape, keywords))).search if keywords else None
    # Values whose text cannot hold a keyword, skipped without making it: an integer's text is
    # digits and a sign (unless it is out of 64 bits), a boolean's `true` or `false`.
    integers_clear = not any(_INTEGER_CHARACTERS.issuperset(keyword) for keyword in keywords)
    clear_booleans = {
        value for value in (True, False) if contains is None or not contains(as_text(value))
    }

    def check(action: Action, state: Mapping[str, Any], admit: bool) -> str | None:
        if action.tool is None or contains is None:
            return None
        for name, value in action.parameters.items():
            kind = type(value)
            if kind is str:
                hit = contains(value) is not None
            elif kind is int and integers_clear and _I64_MIN <= value <= _U64_MAX:
                continue
            elif kind is bool and value in clear_booleans:
                continue
            else:  # its JSON text, and the strings in it as written (JSON escapes `\`, `"`)
                hit = any(contains(text) is not None for text in texts_of(value))
            if hit:
                return f"param '{name}' of '{action.tool}' contains a denied keyword"
        return None

    return check


_INTEGER_CHARACTERS = frozenset("-0123456789")
_I64_MIN, _U64_MAX = -(2**63), 2**64 - 1  # the integers serde writes as they are


def _deny_tool_param(rule: DenyToolParamRule) -> Check:
    param = rule.param

    def check(action: Action, state: Mapping[str, Any], admit: bool) -> str | None:
        if param not in action.parameters:
            return None
        value = action.parameters[param]
        if rule.equals is not None:
            hit = same_value(value, rule.equals)  # (a denied 100 written 100.0 is denied)
        elif rule.contains is not None:
            hit = any(rule.contains in text for text in texts_of(value))
        else:
            return f"param '{param}' is not allowed on '{rule.tool}'"
        return f"param '{param}' of '{rule.tool}' matches a denied value" if hit else None

    return check


def _allow_tool_param(rule: AllowToolParamRule) -> Check:
    param = rule.param

    def check(action: Action, state: Mapping[str, Any], admit: bool) -> str | None:
        if param not in action.parameters:
            return f"param '{param}' of '{rule.tool}' is missing; only listed values are allowed"
        if not rule.allow:
            return f"no value of param '{param}' of '{rule.tool}' is allowed"
        value = action.parameters[param]
        if any(json_equal(value, allowed) for allowed in rule.allow):
            return None
        return f"param '{param}' of '{rule.tool}' is not one of the allowed values"

    return check


def _deny_matching(rule: DenyToolParamMatchingRule) -> Check:
    param = rule.param
    try:
        regex = compile_regex(rule.matches)
    except CelEvalError as exc:
        # CAR: a pattern that does not compile denies the tool, with the reason why.
        broken = f"the pattern for param '{param}' of '{rule.tool}' does not compile: {exc.message}"
        return lambda action, state, admit: broken

    def check(action: Action, state: Mapping[str, Any], admit: bool) -> str | None:
        if param not in action.parameters:
            return None
        if not any(regex.search(text) for text in texts_of(action.parameters[param])):
            return None
        return f"param '{param}' of '{rule.tool}' matches a denied pattern"

    return check


def _rate_limit(rule: RateLimitToolRule, clock: Callable[[], float]) -> Check:
    admitted: deque[float] = deque()
    window = rule.interval_secs
    reason = f"tool '{rule.tool}' is over its limit of {rule.max_calls} calls per {window:g}s"

    def check(action: Action, state: Mapping[str, Any], admit: bool) -> str | None:
        # A sliding window of admissions. A call refused here takes no slot; an admitted call
        # keeps its slot even if another rule refuses it (CAR: budget is spent at admission).
        now = clock()
        while admitted and admitted[0] <= now - window:
            admitted.popleft()
        if len(admitted) >= rule.max_calls:
            return reason
        if admit:
            admitted.append(now)
        return None

    return check


def _require_state(rule: RequireStateRule) -> Check:
    expected = to_json_text(rule.value)
    reason = f"state['{rule.key}'] must be {expected}"

    def check(action: Action, state: Mapping[str, Any], admit: bool) -> str | None:
        if rule.key in state and json_equal(state[rule.key], rule.value):
            return None
        return reason

    return check
