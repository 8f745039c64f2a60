"""What a capability allows, checked one way for verification and for execution.

CAR's `CapabilitySet` with glob patterns: deny wins over allow, an empty allow list allows
everything, `max_actions` None means no limit.
"""

from __future__ import annotations

from .globs import GlobSet
from .ir import Action, ActionType, Capability
from .suggest import plural_with_verb

__all__ = ["CapabilityCheck", "touched_keys"]


def touched_keys(action: Action) -> list[str]:
    """The state keys an action writes or reads: a state_write's key and the declared
    effects, its dependencies and precondition keys, a read's or assertion's key."""
    keys: list[str] = []
    if action.type is ActionType.STATE_WRITE:
        key = action.parameters.get("key")
        if isinstance(key, str):
            keys.append(key)
    for key in action.expected_effects:
        if key not in keys:
            keys.append(key)
    for key in action.state_dependencies:
        if key not in keys:
            keys.append(key)
    for pre in action.preconditions:
        if pre.key not in keys:
            keys.append(pre.key)
    if action.type is ActionType.STATE_READ or action.type is ActionType.ASSERTION:
        read = action.parameters.get("key")
        if isinstance(read, str) and read not in keys:
            keys.append(read)
    return keys


class CapabilityCheck:
    """A capability, compiled: answers whether a tool or a state key is allowed, and why not."""

    __slots__ = ("capability", "allowed_tools", "denied_tools", "allowed_keys")

    def __init__(self, capability: Capability) -> None:
        self.capability = capability
        self.allowed_tools = GlobSet(capability.allowed_tools) or None
        self.denied_tools = GlobSet(capability.denied_tools) or None
        self.allowed_keys = GlobSet(capability.allowed_state_keys) or None

    def tool_problem(self, tool: str, what: str = "tool") -> tuple[str, str] | None:
        """None if the capability allows `tool`, else (`tool-denied` or `tool-not-allowed`,
        the message)."""
        if self.denied_tools is not None and self.denied_tools.matches(tool):
            return "tool-denied", f"{what} '{tool}' is denied by {self.capability.label}"
        if self.allowed_tools is not None and not self.allowed_tools.matches(tool):
            return "tool-not-allowed", f"{what} '{tool}' is not allowed by {self.capability.label}"
        return None

    def key_problem(self, key: str) -> str | None:
        """None if the capability allows touching state key `key`, else the message."""
        if self.allowed_keys is not None and not self.allowed_keys.matches(key):
            return f"state key '{key}' is not allowed by {self.capability.label}"
        return None

    def count_problem(self, count: int) -> str | None:
        """None if `count` actions are within `max_actions`, else the message."""
        limit = self.capability.max_actions
        if limit is not None and count > limit:
            exceed = plural_with_verb(count, "action", "exceed")
            return f"{exceed} {self.capability.label} (max_actions {limit})"
        return None
