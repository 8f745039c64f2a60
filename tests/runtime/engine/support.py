"""Helpers for the runtime tests: proposals in one line, a fake clock, terminal-event checks."""

from __future__ import annotations

from typing import Any

from carlang_runtime import ir
from carlang_runtime.engine import EventLog, Runtime
from carlang_runtime.engine.events import TERMINAL_KINDS


def call(id: str, tool: str, **fields: Any) -> ir.Action:
    params = fields.pop("params", {})
    return ir.Action(id=id, type="tool_call", tool=tool, parameters=params, **fields)


def write(id: str, key: str, value: Any, **fields: Any) -> ir.Action:
    return ir.Action(id=id, type="state_write", parameters={"key": key, "value": value}, **fields)


def proposal(*actions: ir.Action, id: str = "p", **fields: Any) -> ir.ActionProposal:
    return ir.ActionProposal(id=id, actions=list(actions), **fields)


def statuses(result: ir.ProposalResult) -> dict[str, str]:
    return {r.action_id: r.status.value for r in result.results}


def errors(result: ir.ProposalResult) -> dict[str, str | None]:
    return {r.action_id: r.error for r in result.results}


class FakeClock:
    """A clock tests move by hand; `sleep` advances it instead of waiting."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def runtime(**options: Any) -> Runtime:
    return Runtime(**options)


def terminal_events(log: EventLog, run_id: str | None = None) -> dict[str, list[str]]:
    """Terminal event kinds per action id."""
    found: dict[str, list[str]] = {}
    for event in log:
        if event.kind in TERMINAL_KINDS and (run_id is None or event.run_id == run_id):
            found.setdefault(event.action_id or "", []).append(str(event.kind))
    return found


def assert_one_terminal_event_each(rt: Runtime, result: ir.ProposalResult) -> None:
    run_id = rt.events.query("run_started")[-1].run_id
    found = terminal_events(rt.events, run_id)
    assert sorted(found) == sorted(r.action_id for r in result.results)
    assert all(len(kinds) == 1 for kinds in found.values()), found
