"""The seam for durable backends: how a run's decisions and its tools' results are recorded.

The in-process engine records nothing (`Runtime.steps` is None). A durable backend (the DBOS one
in `carlang_dbos`) sets `Runtime.steps` to an object with one method, `run(name, fn, *args)`:
call `fn(*args)` (sync or async) once, record what it returned under `name` (unique within the
run), and on a replay of the same run return the recorded value instead of calling it again.
The runtime makes two such steps per tool call: `admit <id>` (capability, validation and the
policy decision, which may depend on time, history or rate limits), through `run`, and the
call itself (the tool, with its attempts), through `call`, which a backend may also send to
another process (a worker of the tool's queue). What they return is plain JSON-ready data.
Everything else a run does is deterministic given those records, so it is simply done again on
a replay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..ir import Action
    from .run import ProposalRun

__all__ = ["DurableSteps"]


class DurableSteps(Protocol):
    """Records the steps of a run (see the module's docstring)."""

    async def run(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` awaited if it returns an awaitable, once; recorded under `name`."""

    async def call(self, run: ProposalRun, action: Action) -> dict[str, Any]:
        """The recorded outcome of `run.call_record(action)`: the tool call, once."""
