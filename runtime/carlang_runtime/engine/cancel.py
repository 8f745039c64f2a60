"""Cancellation: a token the host sets, the runtime checks at level boundaries and tools may
check as they go."""

from __future__ import annotations

import threading

__all__ = ["CancelToken"]


class CancelToken:
    """Set once with `cancel(reason)`; safe to set from any thread."""

    __slots__ = ("_event", "reason")

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "canceled by the host") -> None:
        """Ask the run to stop: actions not yet started are skipped."""
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether `cancel` was called."""
        return self._event.is_set()
