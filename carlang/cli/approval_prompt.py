"""The approval question `carlang run` asks at a terminal.

It pauses the live progress display while it asks (otherwise the bar redraws over the
question), shows what would run (the tool, its parameters with secrets and `redact` paths
redacted, the policies that asked and their messages) and takes y(es), n(o), a(ll: approve
this and every later request of the run) or q(uit: refuse this and every later one).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from .console import terminal_text

__all__ = ["ConsoleGate", "describe_request"]

_ANSWERS = {"y": "yes", "yes": "yes", "n": "no", "no": "no", "": "no", "a": "all", "all": "all"}
_ANSWERS |= {"q": "quit", "quit": "quit"}


class ConsoleGate:
    """Asks at the terminal whether an action that needs approval may run. `pause` and
    `resume` stop and restart the live display around the question."""

    def __init__(
        self,
        pause: Callable[[], None],
        resume: Callable[[], None],
        ask: Callable[[str], str] = input,
    ) -> None:
        self.pause, self.resume, self.ask = pause, resume, ask
        self.sticky: str | None = None  # "all" or "quit": the answer for the rest of the run
        self._lock: asyncio.Lock | None = None

    async def review(self, request: Any) -> Any:
        """Ask (one question at a time, even when a DAG level asks for several)."""
        from carlang_runtime.engine import Approval

        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            sticky = self.sticky
            answer = (
                sticky if sticky is not None else await asyncio.to_thread(self._question, request)
            )
        if answer in ("all", "quit"):
            self.sticky = answer
        approved = answer in ("yes", "all")
        reason = {
            "yes": "approved at the terminal",
            "all": "approved at the terminal (all)",
            "no": "refused at the terminal",
            "quit": "refused at the terminal (quit)",
        }[answer]
        return Approval(approved, reason, "console")

    def _question(self, request: Any) -> str:
        self.pause()
        try:
            print(describe_request(request), flush=True)
            while True:
                try:
                    reply = self.ask("approve? [y]es / [N]o / [a]ll / [q]uit: ")
                except EOFError:
                    print(flush=True)
                    return "quit"
                answer = _ANSWERS.get(reply.strip().lower())
                if answer is not None:
                    return answer
                print("answer y, n, a or q", flush=True)
        finally:
            self.resume()


def describe_request(request: Any) -> str:
    """What is asked: the action, the tool and its parameters as the runtime shows them to a
    person (`ApprovalRequest.parameters`: secret parameters and `redact` paths
    `[REDACTED]`), each policy that asked with its message; control characters escaped
    (`console.terminal_text`; values are JSON, which escapes them), so that no id or name
    can rewrite the question on the screen."""
    shown = terminal_text  # (ids and names may come from a model: no escape reaches the terminal)
    action = request.action
    what = shown(action.tool or action.type.value)
    params = request.parameters
    lines = [f"approval needed: action {shown(action.id)} of proposal {shown(request.proposal_id)}"]
    lines.append(f"  tool:   {what}")
    if params:
        lines.append("  params:")
        lines += [f"    {shown(k)}: {json.dumps(v, default=str)}" for k, v in params.items()]
    for match in request.policies:
        lines.append(f"  policy: {shown(match.policy)}: {shown(match.reason)}")
    return "\n".join(lines)
