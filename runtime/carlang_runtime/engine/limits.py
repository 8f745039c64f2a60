"""Per-tool rate limits (token buckets that make callers wait) and the two caches: results of
cacheable tools, with a time to live, and results of idempotent actions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..ir import Budget
from ..jsonvalue import canonical_key

__all__ = [
    "TokenBucket",
    "ResultCache",
    "CacheStats",
    "SessionBudget",
    "BUDGET_SCOPE",
    "BUDGET_OWNER",
    "BUDGET_SCOPES",
    "session_budget_context",
    "call_key",
]

#: The key a proposal's `context` holds, set to "session", when its budget is its session's
#: (`SessionBudget`: the proxy's `--budget`, the assistant loop's): each call is a proposal of
#: its own, and the budget counts them all; "tenant" when every session of its tenant spends
#: one budget (the proxy's `--budget-per tenant`). The event log keeps it; replay counts so.
BUDGET_SCOPE = "carlang.budget_scope"

#: The key a proposal's `context` holds, beside `BUDGET_SCOPE` "tenant", naming what keeps the
#: tenant's budget (a proxy's id): replay counts each one's apart, as each kept its own.
BUDGET_OWNER = "carlang.budget_owner"

#: What a `SessionBudget` may be spent over: a session's calls, or a tenant's (every session
#: of one tenant; with no tenant, every session of the shared state).
BUDGET_SCOPES = ("session", "tenant")


def session_budget_context(per: str = "session") -> dict[str, str]:
    """The `context` of a proposal whose budget its session (`per`: or its tenant) spends
    (see `BUDGET_SCOPE`)."""
    return {BUDGET_SCOPE: per}


@dataclass
class SessionBudget:
    """A budget spent over a session of calls that each run as a proposal of their own (an
    MCP client's calls through the proxy, a model's in the assistant loop): a proposal's own
    budget would count one call; this counts them all. The calls it counts are the ones that
    ran (a refused call spends nothing), against `max_tool_calls` (else `max_actions`) and
    `max_duration_ms`."""

    budget: Budget
    calls: int = 0
    duration_ms: float = 0.0
    #: What it is spent over (`BUDGET_SCOPES`), as its messages say.
    per: str = "session"

    def problem(self) -> str | None:
        """Why the next call may not run (the budget is spent), or None."""
        budget, per = self.budget, self.per
        limit = budget.max_tool_calls if budget.max_tool_calls is not None else budget.max_actions
        if limit is not None and self.calls >= limit:
            return f"budget '{budget.name}' is spent: {limit} tool calls per {per}"
        if budget.max_duration_ms is not None and self.duration_ms >= budget.max_duration_ms:
            return (
                f"budget '{budget.name}' is spent: {budget.max_duration_ms} ms of calls per {per}"
            )
        return None

    def spend(self, ran: bool, duration_ms: float) -> None:
        """Count one call (`ran`: it was not refused) that took `duration_ms`."""
        self.calls += 1 if ran else 0
        self.duration_ms += duration_ms


def call_key(tool: str | None, parameters: dict[str, Any]) -> str:
    """The identity of a call: the tool and its parameters as canonical JSON."""
    return f"{tool}:{canonical_key(parameters)}"


class TokenBucket:
    """`max_calls` per `interval_secs`, refilled continuously, starting full. `reserve()` takes
    a token and returns how long to wait for it (0 when one was there): callers wait their
    turn in order rather than fail (backpressure)."""

    __slots__ = ("capacity", "rate", "tokens", "updated", "clock")

    def __init__(self, max_calls: int, interval_secs: float, clock: Callable[[], float]) -> None:
        self.capacity = float(max_calls)
        self.rate = max_calls / interval_secs if interval_secs > 0 else float("inf")
        self.tokens = float(max_calls)
        self.clock = clock
        self.updated = clock()

    def reserve(self) -> float:
        """Take a token; the seconds to wait before using it."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1.0
        if self.tokens >= 0 or self.rate == float("inf"):
            return 0.0
        return -self.tokens / self.rate


@dataclass
class CacheStats:
    """Hits, misses and live entries of a result cache."""

    hits: int = 0
    misses: int = 0
    entries: int = 0


class ResultCache:
    """Results of tool calls kept for a tool's `cache_ttl_secs`, per tool; expired entries
    count as a miss and are dropped when met. The caller's key says whose call it was (the
    runtime puts the tenant in it: a tenant never gets another's cached output)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._entries: dict[str, dict[str, tuple[float, Any]]] = {}
        self._hits = 0
        self._misses = 0

    def get(self, tool: str, key: str) -> tuple[bool, Any]:
        """(True, output) for a live entry of `tool`, else (False, None)."""
        entries = self._entries.get(tool)
        found = entries.get(key) if entries is not None else None
        if found is not None:
            expires, output = found
            if self.clock() < expires:
                self._hits += 1
                return True, output
            del entries[key]  # type: ignore[union-attr]
        self._misses += 1
        return False, None

    def put(self, tool: str, key: str, output: Any, ttl: float) -> None:
        """Keep `output` of `tool` for `ttl` seconds."""
        if ttl > 0:
            self._entries.setdefault(tool, {})[key] = (self.clock() + ttl, output)

    def invalidate(self, tool: str | None = None) -> None:
        """Drop the entries of one tool, or all."""
        if tool is None:
            self._entries.clear()
        else:
            self._entries.pop(tool, None)

    def stats(self) -> CacheStats:
        """Hits, misses and entries so far."""
        return CacheStats(self._hits, self._misses, sum(map(len, self._entries.values())))
