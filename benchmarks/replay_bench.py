"""Replay throughput: recorded actions re-decided per second by `carlang replay`'s engine
(reading the JSONL log included), at 10,000 and 100,000 recorded actions with 10 policies.
The log comes from real runs of the runtime (100 runs of 100 actions, with decision events);
the 100,000-action log repeats those runs under new run ids. Target: 100,000 in under 5 s."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from carlang_runtime import ir
from carlang_runtime.engine import AutoApprove, JsonlSink, Runtime
from carlang_runtime.replay import Judge, read_runs, replay

from carlang.compiler import compile_text

from .timing import Row, median_time, print_table

__all__ = ["run"]

_PROGRAM = """\
tool fetch(url: string, port: int = 443)
tool deploy(env: string, version: string)
tool query(sql: string, limit: int = 100)
policy https_only: deny fetch when !params.url.startsWith("https://")
policy odd_port: deny fetch when params.port != 443 && params.port != 8443
policy short_urls: deny fetch when size(params.url) > 200
policy prod: require_approval deploy when params.env == "prod"
policy no_rc: deny deploy when params.env == "prod" && params.version.contains("-rc")
policy bounded: deny query when params.limit > LIMIT
policy read_only: deny query when params.sql.matches("(?i)\\\\b(drop|delete)\\\\b")
policy internal: deny fetch when params.url.contains(".internal/")
policy tenant_fetch: deny fetch when scope.tenant == "t9" && params.port == 8443
policy busy: require_approval query when size(history) > 90
"""


def _program(limit: int) -> ir.Program:
    result = compile_text(_PROGRAM.replace("LIMIT", str(limit)), root=Path("/tmp"))
    assert result.program is not None
    return result.program


def _actions(run: int) -> list[ir.Action]:
    actions = []
    for i in range(100):
        kind = i % 3
        if kind == 0:
            tool, params = "fetch", {"url": f"https://h{i}.example/x", "port": 443 + (i % 7)}
        elif kind == 1:
            tool, params = "deploy", {"env": "prod" if i % 2 else "staging", "version": f"1.{i}"}
        else:
            tool, params = "query", {"sql": "select 1", "limit": 100 * (i % 40)}
        actions.append(
            ir.Action(
                id=f"a{i}", type="tool_call", tool=tool, parameters=params, failure_behavior="skip"
            )
        )
    return actions


def _record(path: Path) -> None:
    rt = Runtime.from_program(_program(10_000), approval=AutoApprove())
    rt.events.keep = False
    rt.events.sinks.append(JsonlSink(path))
    for name in ("fetch", "deploy", "query"):
        rt.register_tool(name, lambda **params: "ok")
    for run in range(100):
        proposal = ir.ActionProposal(id=f"p{run}", actions=_actions(run))
        rt.execute(proposal, scope={"tenant": f"t{run % 10}"})
    rt.close()


def _repeat(small: Path, big: Path, times: int) -> None:
    text = small.read_text()
    runs = sorted({line.split('"trace_id": "', 1)[1][:16] for line in text.splitlines()})
    with big.open("w") as out:
        for copy in range(times):
            chunk = text
            for run_id in runs:
                chunk = chunk.replace(run_id, f"{copy:04d}{run_id[4:]}")
            out.write(chunk)


def _replay(path: Path, candidate: Judge, expected: int) -> None:
    report = replay(read_runs([path]), candidate)
    assert report.actions == expected, report.actions
    assert report.changes and not report.unjudged


def run(quick: bool = False) -> list[Row]:
    """Run the replay benchmark and print it."""
    repeat = 3 if quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        small, big = Path(tmp) / "10k.jsonl", Path(tmp) / "100k.jsonl"
        started = time.perf_counter()
        _record(small)
        recorded = time.perf_counter() - started
        _repeat(small, big, 10)
        candidate = Judge(_program(1_000), "candidate.car")  # `bounded` tightened
        ten = median_time(lambda: _replay(small, candidate, 10_000), repeat)
        hundred = median_time(lambda: _replay(big, candidate, 100_000), max(1, repeat // 2))
    rows = [
        Row(
            "replay 10,000 recorded actions, 10 policies",
            ten,
            None,
            0.5,
            f"{10_000 / ten:,.0f} actions/s",
        ),
        Row(
            "replay 100,000 recorded actions, 10 policies",
            hundred,
            None,
            5.0,
            f"{100_000 / hundred:,.0f} actions/s",
        ),
    ]
    print_table(f"replay (median; the 10k log took {recorded:.1f} s to record)", rows)
    return rows
