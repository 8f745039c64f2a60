"""The DBOS backend's costs: the overhead per tool call of a durable run (SQLite and Postgres)
against the in-process engine on the same plan, and the throughput of 1,000 short runs with an
I/O-bound tool (it sleeps 50 ms) on one worker against two. Needs the dbos package; Postgres
rows need the server programs (a private cluster is started and removed)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

from .timing import Row, fmt_seconds, print_table

__all__ = ["run"]

CALLS = 100
TOOLS = """\
import time

def noop(n: int) -> int:
    return n

def io(n: int) -> int:
    time.sleep(0.05)
    return n

TOOLS = {"noop": noop, "io": io}
"""


#: Policies of the per-call rows: none; one on the parameters (a replay decides the same way,
#: so the decision is not recorded); one that reads the time (recorded: a second step per call).
POLICIES = {
    "": "",
    "policy on params": "policy neg: deny noop when params.n < 0",
    "policy reads now": 'policy old: deny noop when now < timestamp("2000-01-01T00:00:00Z")',
}


def _program(directory: Path, tool: str, calls: int, policy: str = "") -> Any:
    from carlang.compiler import compile_file

    lines = ["tool noop(n: int)", "tool io(n: int)", policy, "proposal p {"]
    for i in range(calls):
        after = f" after c{i - 1}" if i else ""
        lines.append(f"  c{i} = {tool}(n: {i}){after}")
    lines.append("}")
    path = directory / f"{tool}{calls}-{zlib.crc32(policy.encode())}.car"
    path.write_text("\n".join(lines) + "\n")
    compiled = compile_file(path, directory)
    assert compiled.program is not None, compiled.diagnostics
    return compiled.program


def _per_call(database: str, directory: Path, repeat: int, policy: str = "") -> float:
    """Median seconds of one durable run of CALLS chained no-op calls, in a fresh process
    (DBOS is one per process)."""
    script = f"""
import json, statistics, sys, time, uuid
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from pathlib import Path
from benchmarks.dbos_bench import _program
import carlang_dbos
program = _program(Path({str(directory)!r}), "noop", {CALLS}, {policy!r})
spec = carlang_dbos.make_spec(program, "p", tools=[{str(directory / "tools.py")!r} + ":TOOLS"])
carlang_dbos.launch({database!r})
samples = []
for _ in range({repeat} + 1):
    started = time.perf_counter()
    carlang_dbos.run(spec, uuid.uuid4().hex)
    samples.append(time.perf_counter() - started)
carlang_dbos.shutdown()
print(json.dumps(statistics.median(samples[1:])))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def _in_process(directory: Path, repeat: int, policy: str = "") -> float:
    from carlang_runtime.engine import Runtime
    from carlang_runtime.engine.loading import register_tool_spec

    from .timing import median_time

    program = _program(directory, "noop", CALLS, policy)
    proposal = program.proposal("p")

    def once() -> None:
        runtime = Runtime.from_program(program)
        register_tool_spec(runtime, f"{directory / 'tools.py'}:TOOLS")
        runtime.execute(proposal)

    return median_time(once, repeat=repeat)


def _throughput(database: str, directory: Path, workers: int, runs: int) -> float:
    """Seconds for `workers` worker processes to finish `runs` one-call runs of the 50 ms tool."""
    import carlang_dbos

    program = _program(directory, "io", 1)
    spec = carlang_dbos.make_spec(program, "p", tools=[f"{directory / 'tools.py'}:TOOLS"])
    tag = f"w{workers}-{time.time_ns()}"
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "carlang",
                "worker",
                "--database",
                database,
                "--id",
                f"{tag}-{n}",
                "--concurrency",
                "16",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(workers)
    ]
    try:
        time.sleep(3)  # the workers start up (imports, DBOS launch) before the clock starts
        started = time.perf_counter()
        carlang_dbos.submit_many(database, [(spec, f"{tag}-{i}") for i in range(runs)])
        while True:
            done = Counter(
                r.status
                for r in carlang_dbos.list_runs(database, details=False)
                if r.run_id.startswith(tag)
            )
            if done.get("SUCCESS", 0) == runs:
                return time.perf_counter() - started
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"runs did not finish: {done}")
            time.sleep(0.2)
    finally:
        for process in processes:
            process.kill()
            process.wait()


SWEEP_POINTS = 24


def _sweep(directory: Path, database: str | None, workers: int) -> tuple[float, str]:
    """Wall seconds and CSV of a CPU-bound sweep (SWEEP_POINTS seeds, 20,000 Monte Carlo trials
    per candidate at each) of the shipped deploy plans: in process (no database), or ranked by
    `workers` worker processes, two points per task."""
    from carlang_runtime.planner import ToolFeedback, ToolStats

    plans = Path(__file__).resolve().parents[1] / "examples" / "planning" / "deploy_plans.car"
    feedback = directory / "feedback.json"
    ToolFeedback(
        stats={
            "build": ToolStats(10, 9, 500.0, 10),
            "canary": ToolStats(10, 7, 300.0, 10),
            "smoke_test": ToolStats(20, 15, 100.0, 20),
        }
    ).save(feedback)
    command = [sys.executable, "-m", "carlang", "rank", str(plans), "--feedback", str(feedback)]
    command += ["--set", "monte_carlo_trials=20000", "--sweep", f"seed=1:{SWEEP_POINTS}:1"]
    command += ["--format", "csv"]
    processes = []
    if database is not None:
        command += ["--backend", "dbos", "--database", database, "--batch", "2"]
        tag = f"sweep{workers}-{time.time_ns()}"
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "carlang", "worker", "--database", database]
                + ["--id", f"{tag}-{n}", "--concurrency", "1"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for n in range(workers)
        ]
        time.sleep(3)  # the workers start up before the clock starts
    try:
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=True)
        return time.perf_counter() - started, done.stdout
    finally:
        for process in processes:
            process.kill()
            process.wait()


def run(quick: bool = False) -> list[Row]:
    """Run the DBOS benchmark and print it."""
    try:
        import carlang_dbos  # noqa: F401
        from carlang_dbos.localpg import private_postgres
    except ImportError:
        print("\nDBOS backend: skipped (the dbos package is not installed: carlang[dbos])")
        return []
    from carlang_runtime.errors import CarlangRuntimeError

    repeat = 3 if quick else 7
    runs = 200 if quick else 1000
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        (directory / "tools.py").write_text(TOOLS)
        local = _in_process(directory, repeat)
        sqlite = _per_call(f"sqlite:///{directory / 'runs.db'}", directory, repeat)
        rows.append(
            Row("per tool call, DBOS on SQLite", (sqlite - local) / CALLS, note="(overhead)")
        )
        try:
            with private_postgres() as url:
                for name, policy in POLICIES.items():
                    postgres = _per_call(url, directory, repeat, policy)
                    base = _in_process(directory, repeat, policy) if policy else local
                    reads_time = "now" in policy
                    rows.append(
                        Row(
                            f"per tool call, DBOS on Postgres{', ' + name if name else ''}",
                            (postgres - base) / CALLS,
                            target=None if reads_time else 5e-3,
                            note="(overhead; 2 steps per call)" if reads_time else "(overhead)",
                        )
                    )
                one = _throughput(url, directory, 1, runs)
                two = _throughput(url, directory, 2, runs)
                here, expected = _sweep(directory, None, 0)
                sweeps = []
                for workers in (1, 2):
                    # Each its own database: the same sweep twice would collect the first's.
                    seconds, csv = _sweep(directory, f"{url}_{workers}", workers)
                    assert csv == expected, "a sweep on the workers must print the same CSV"
                    sweeps.append(seconds)
        except CarlangRuntimeError as exc:
            print(f"\nPostgres rows skipped: {exc}")
            one = two = None
            sweeps = []
    print_table(
        f"DBOS backend: overhead per tool call (a chain of {CALLS} no-op calls; in process"
        f" {fmt_seconds(local / CALLS)} per call)",
        rows,
        reference="-",
    )
    if one is not None and two is not None:
        ratio = one / two
        verdict = "PASS" if ratio >= 1.6 else "MISS"
        print(
            f"\n{runs:,} runs of one 50 ms tool call, 16 at a time per worker:"
            f" 1 worker {one:.2f} s, 2 workers {two:.2f} s: {ratio:.2f}x"
            f" (target >= 1.6x: {verdict}; this machine has 2 cores for the workers, the"
            " database and the submitter)"
        )
    if sweeps:
        print(
            f"\nA sweep of {SWEEP_POINTS} points (20,000 Monte Carlo trials per candidate each),"
            f" CPU-bound: in process {here:.2f} s; on 1 worker {sweeps[0]:.2f} s, on 2 workers"
            f" {sweeps[1]:.2f} s ({sweeps[0] / sweeps[1]:.2f}x; the same CSV each time; 2 cores"
            " for the workers, the database and the submitter)"
        )
    return rows
