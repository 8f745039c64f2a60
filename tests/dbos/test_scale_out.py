"""Several processes on one Postgres database: two workers and a submitter, 200 runs of a
20-action plan, one worker killed with SIGKILL at random moments and started again with its id.
Every run finishes with the result the in-process engine gives; every tool step's effect happens
exactly once (the tool keys its effect by run and action id, the documented contract), and a
step runs a second time only when its worker died during it."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.dbos.support import NO_DBOS, start_worker, stop_all

pytest.importorskip("dbos", reason=NO_DBOS)
pytestmark = [pytest.mark.slow, pytest.mark.scale]

RUNS = 200
ACTIONS = 20

TOOLS = """\
import os
from carlang_runtime.engine import ToolContext

HERE = os.path.dirname(__file__)

def step(n: int, context: ToolContext) -> int:
    key = f"{context.run_id} {context.action.id}"
    with open(os.path.join(HERE, "calls.txt"), "a") as calls:
        calls.write(key + "\\n")
    effects = os.path.join(HERE, "effects", key.replace(" ", "."))
    try:  # the effect, at most once per (run, action): what an idempotent tool does
        os.close(os.open(effects, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        pass
    return n * n

TOOLS = {"step": step}
"""


def _program(tmp_path: Path) -> Path:
    lines = ["tool step(n: int)", "proposal p {"]
    for i in range(ACTIONS):
        after = f" after s{i - 4}" if i >= 4 else ""  # five levels of four
        lines.append(f"  s{i} = step(n: {i}){after} {{ effects {{ k{i} = {i} }} }}")
    lines.append("}")
    path = tmp_path / "p.car"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_two_workers_finish_every_run_once_whatever_dies(tmp_path: Path, postgres_url: str) -> None:
    from carlang_runtime.engine import Runtime
    from carlang_runtime.engine.loading import register_tool_spec

    from carlang.compiler import compile_file
    from carlang_dbos import list_runs, make_spec, submit_many

    (tmp_path / "tools.py").write_text(TOOLS)
    (tmp_path / "effects").mkdir()
    compiled = compile_file(_program(tmp_path), tmp_path)
    assert compiled.program is not None
    program = compiled.program
    spec = make_spec(program, "p", tools=[f"{tmp_path / 'tools.py'}:TOOLS"])

    processes: list[subprocess.Popen[str]] = []  # every worker started, to kill at the end

    def worker(name: str) -> subprocess.Popen[str]:
        options = ["--id", name, "--concurrency", "8"]
        return start_worker(postgres_url, *options, cwd=tmp_path, started=processes)

    workers = {"w1": worker("w1"), "w2": worker("w2")}
    rng = random.Random(11)
    kills = 0
    try:
        started = time.monotonic()
        submit_many(postgres_url, [(spec, f"run{number:03d}") for number in range(RUNS)])
        submitted = time.monotonic() - started
        deadline = time.monotonic() + 600
        next_kill = time.monotonic() + rng.uniform(0.5, 1.5)
        while time.monotonic() < deadline:
            if kills < 3 and time.monotonic() >= next_kill:
                workers["w1"].send_signal(signal.SIGKILL)
                workers["w1"].wait()
                kills += 1
                time.sleep(rng.uniform(0.2, 1.0))
                workers["w1"] = worker("w1")  # the same id: it recovers what it left
                next_kill = time.monotonic() + rng.uniform(1.0, 3.0)
            statuses = Counter(r.status for r in list_runs(postgres_url, details=False))
            if statuses.get("SUCCESS", 0) == RUNS:
                break
            assert not statuses.get("ERROR"), statuses
            time.sleep(0.3)
        else:
            raise AssertionError(f"runs did not finish: {statuses}")
    finally:
        stop_all(processes)
    assert kills >= 1
    # The in-process engine's result of the same plan.
    local = Runtime.from_program(program)
    register_tool_spec(local, f"{tmp_path / 'tools.py'}:TOOLS")
    expected = [
        (r.action_id, r.status.value, r.output, r.state_changes)
        for r in local.execute(program.proposal("p")).results  # type: ignore[arg-type]
    ]
    runs = list_runs(postgres_url)
    assert len(runs) == RUNS
    for info in runs:
        assert info.result is not None
        got = [
            (r["action_id"], r["status"], r.get("output"), r["state_changes"])
            for r in info.result["results"]
        ]
        assert got == expected, info.run_id
    effects = [p.name for p in (tmp_path / "effects").iterdir() if p.name.startswith("run")]
    assert len(effects) == RUNS * ACTIONS  # every step's effect, exactly once
    calls = Counter(
        line for line in (tmp_path / "calls.txt").read_text().splitlines() if line.startswith("run")
    )
    assert len(calls) == RUNS * ACTIONS
    repeated = sum(count - 1 for count in calls.values())
    # A step runs again only if its worker died while it ran: at most the steps in flight.
    assert repeated <= kills * 8 * 4, repeated
    report = {"kills": kills, "repeated": repeated, "submitted_s": submitted}
    (tmp_path / "report.json").write_text(json.dumps(report))
    print(report)
