"""Cold start: carlang commands as fresh processes, next to `python -c pass` (the interpreter's
own start-up, the floor every command pays). Issue 18's targets: `carlang check` on a small
file <= 150 ms, `carlang --version` <= 60 ms (medians of wall time). `carlang verify` of a small
proposal, what an agent's gateway runs once per proposal, is held to the check's target.

Each command runs as a new `python -m carlang ...` with this interpreter and environment, so
the worktree's code is measured. Bytecode may be cached (as in an installed wheel), whatever
this shell's PYTHONDONTWRITEBYTECODE says: one warm-up run of each command writes it, and
fills carlang's disk caches as any earlier run on the machine would (compiled conditions,
regexes and dataclass methods: `carlang_runtime.diskcache`; run with `CARLANG_CACHE_DIR=off`
to measure without them: ~50 ms more per check). The
commands run in turns (one sample of each per round), so load from other processes falls on
all of them alike.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .generate import generate_program
from .timing import Row, fmt_seconds
from .verify_bench import fan_out

__all__ = ["run", "CHECK_TARGET", "VERSION_TARGET"]

#: Issue 18's targets (seconds, median wall time of a fresh process).
CHECK_TARGET = 0.150
VERSION_TARGET = 0.060

_EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "files" / "notes.car"
#: Policy tests (9 cases over 3 policies), as policy CI runs them.
_TESTS = _EXAMPLE.parent.parent / "release"


def _commands(small: Path, proposal: Path) -> list[tuple[str, list[str], float | None]]:
    """(name, argv, target) of each command measured; the first is the floor."""
    carlang = [sys.executable, "-m", "carlang"]
    verify = [*carlang, "verify", str(proposal), "--tools", "step"]
    example = _EXAMPLE if _EXAMPLE.is_file() else small
    tests = _TESTS if _TESTS.is_dir() else small.parent
    lines = len(example.read_text(encoding="utf-8").splitlines())
    return [
        ("python -c pass", [sys.executable, "-c", "pass"], None),
        ("carlang --version", [*carlang, "--version"], VERSION_TARGET),
        (f"carlang check, {lines}-line example", [*carlang, "check", str(example)], CHECK_TARGET),
        ("carlang check, 50 generated lines", [*carlang, "check", str(small)], CHECK_TARGET),
        (
            "carlang check --format json, 50 lines",
            [*carlang, "check", "--format", "json", str(small)],
            CHECK_TARGET,
        ),
        (f"carlang test, {tests.name} example", [*carlang, "test", str(tests)], None),
        ("carlang verify, 10 actions", verify, CHECK_TARGET),
        ("carlang verify --format json, 10 actions", [*verify, "--format", "json"], CHECK_TARGET),
        (
            f"carlang fmt --check, {lines}-line example",
            [*carlang, "fmt", "--check", str(example)],
            None,
        ),
        ("carlang --help", [*carlang, "--help"], None),
    ]


def _medians(commands: list[list[str]], runs: int) -> list[float]:
    """Median wall time of each command over `runs` rounds, after one warm-up round in which
    each must succeed (a failing command would be timed doing something else)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for argv in commands:
        done = subprocess.run(argv, check=False, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}")
    samples: list[list[float]] = [[] for _ in commands]
    for _ in range(runs):
        for argv, into in zip(commands, samples, strict=True):
            start = time.perf_counter()
            subprocess.run(argv, check=False, capture_output=True, env=env)
            into.append(time.perf_counter() - start)
    return [statistics.median(s) for s in samples]


def run(quick: bool = False) -> list[Row]:
    """Run the cold-start benchmark and print it."""
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "small.car"
        small.write_text(generate_program(50, seed=11), encoding="utf-8")
        proposal = Path(tmp) / "proposal.json"
        proposal.write_text(json.dumps(fan_out(10)), encoding="utf-8")
        commands = _commands(small, proposal)
        medians = _medians([argv for _, argv, _ in commands], 7 if quick else 21)
    floor = medians[0]
    rows = [
        Row(name, seconds, None, target, f"{seconds / floor:.1f}x python -c pass")
        for (name, _, target), seconds in zip(commands, medians, strict=True)
    ]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        "\ncold start (median wall time of a fresh process; the floor is `python -c pass` "
        f"with this interpreter; 1-minute load average {load:.2f} on {os.cpu_count()} cores)"
    )
    header = f"{'command':<40} {'median':>9} {'net':>9} {'target':>9}  {'':<4}  vs floor"
    print(header)
    print("-" * len(header))
    for row in rows:
        verdict = "" if row.target is None else ("PASS" if row.carlang <= row.target else "MISS")
        net = "-" if row is rows[0] else fmt_seconds(row.carlang - floor)
        print(
            f"{row.name:<40} {fmt_seconds(row.carlang):>9} {net:>9} "
            f"{fmt_seconds(row.target):>9}  {verdict:<4}  {row.note}"
        )
    return rows
