"""Compile speed: generated programs of N lines, compiled and verified by carlang, next to
lark alone parsing the same text with the same grammar; and how `carlang check`'s time grows
with the number of policies. (`carlang check` of a small file as a fresh process:
`python -m benchmarks coldstart`.)
"""

from __future__ import annotations

import gc
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from carlang_runtime.ir.load import gc_paused

from carlang.compiler import compile_file
from carlang.grammar import grammar_text
from carlang.parse import parse
from carlang.source import Source

from .generate import generate_policies, generate_program
from .timing import Row, print_table

__all__ = ["run"]


def _parse(text: str) -> None:
    """The parse alone (text -> AST with spans), with the collector paused as the compiler
    runs it."""
    with gc_paused():
        result = parse(Source("program.car", text))
    assert result.module is not None and not result.diagnostics.has_errors


def _lark_parse_paused(lark: Any, text: str) -> None:
    """lark's parse with the collector paused as carlang's compiler pauses it: the two parsers
    side by side on equal terms."""
    with gc_paused():
        lark.parse(text)


def _compile(path: Path, text: str) -> None:
    result = compile_file(path, path.parent, text=text)
    assert result.program is not None and not result.diagnostics.has_errors


#: Issue 18's parser target: compile + verify at most this fraction of lark's parse alone.
LARK_RATIO_TARGET = 0.6


def _side_by_side(
    ours: Callable[[], Any], theirs: Callable[[], Any], repeat: int
) -> tuple[float, float]:
    """Medians of `ours` and `theirs`, timed in alternation (after warming both up), so that
    load from other processes falls on both alike; garbage from the previous sample is
    collected first, as `median_time` does."""
    for _ in range(2):
        ours()
        theirs()
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for fn, into in ((ours, samples[0]), (theirs, samples[1])):
            gc.collect()
            start = time.perf_counter()
            fn()
            into.append(time.perf_counter() - start)
    return statistics.median(samples[0]), statistics.median(samples[1])


def run(quick: bool = False) -> list[Row]:
    """Run the compile benchmark and print it."""
    from lark import Lark

    repeat = 5 if quick else 11
    lark = Lark(grammar_text(), parser="lalr", maybe_placeholders=True)
    rows: list[Row] = []
    ratios: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for lines in (1_000, 10_000):
            text = generate_program(lines)
            path = Path(tmp) / f"program_{lines}.car"
            ours, theirs = _side_by_side(
                partial(_compile, path, text), partial(lark.parse, text), repeat
            )
            ratios.append((lines, ours / theirs))
            parsed, lark_paused = _side_by_side(
                partial(_parse, text), partial(_lark_parse_paused, lark, text), repeat
            )
            rows.append(
                Row(
                    f"compile + verify {lines:,} lines vs lark parse",
                    ours,
                    theirs,
                    LARK_RATIO_TARGET * theirs,
                    f"({lines / ours:,.0f} lines/s; {ours / theirs:.2f}x lark alone)",
                )
            )
            rows.append(
                Row(
                    f"  parse alone, {lines:,} lines, both gc paused",
                    parsed,
                    lark_paused,
                    None,
                    f"(text -> AST with spans; {parsed / lark_paused:.2f}x lark's parse)",
                )
            )
    print_table(
        "compile (median; the reference is lark alone parsing the same text with the same "
        "grammar, to a tree; CAR has no language)",
        rows,
        reference="lark parse",
    )
    for lines, ratio in ratios:
        verdict = "PASS" if ratio <= LARK_RATIO_TARGET else "MISS"
        print(
            f"{lines:,} lines: carlang compile+verify / lark parse alone = {ratio:.2f}x "
            f"(target <= {LARK_RATIO_TARGET}x) {verdict}"
        )
    return rows + policy_growth(quick)


#: `carlang check` of 40,000 policies at most this many times the time of 4,000 (linear: 10x).
POLICY_GROWTH_TARGET = 12.0
_POLICY_COUNTS = (4_000, 40_000)


def _check_times(path: Path, env: dict[str, str], runs: int) -> tuple[float, float]:
    """Median wall time and median CPU time (user + system) of `carlang check path` as a fresh
    process, over `runs` runs after one warm-up run (which fills the disk caches, as an earlier
    check on the machine would) that must report no errors."""
    argv = [sys.executable, "-m", "carlang", "check", str(path)]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stdout[-2000:]}")
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def policy_growth(quick: bool = False) -> list[Row]:
    """`carlang check` of 4,000 and 40,000 generated CEL policies (on six tools in turn, and
    all on one), each a fresh process with a disk cache of its own, warm: a repeated check.
    The growth is judged on CPU time (wall time also counts other processes' load)."""
    runs = 1 if quick else 3
    rows: list[Row] = []
    growth: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, same_tool in (("six tools", False), ("one tool", True)):
            measured: list[tuple[float, float]] = []
            for count in _POLICY_COUNTS:
                path = Path(tmp) / f"policies_{count}_{int(same_tool)}.car"
                path.write_text(generate_policies(count, same_tool=same_tool), encoding="utf-8")
                env = {**os.environ, "CARLANG_CACHE_DIR": str(Path(tmp) / f"cache-{label}")}
                wall, cpu = _check_times(path, env, runs)
                measured.append((wall, cpu))
                note = f"(CPU {cpu:.2f} s; {cpu / count * 1e3:.2f} ms/policy)"
                rows.append(Row(f"check {count:,} policies, {label}", wall, None, None, note))
            (small_wall, small_cpu), (large_wall, large_cpu) = measured
            growth[label] = (large_cpu / small_cpu, large_wall / small_wall)
    print_table(
        "carlang check vs policy count (fresh process, CEL disk cache warm; median)",
        rows,
        reference="reference",
    )
    small, large = _POLICY_COUNTS
    for label, (cpu_growth, wall_growth) in growth.items():
        verdict = "PASS" if cpu_growth <= POLICY_GROWTH_TARGET else "MISS"
        print(
            f"check, {label}, CPU {small:,} -> {large:,} policies: {cpu_growth:.1f}x (target <= "
            f"{POLICY_GROWTH_TARGET:.0f}x; linear = 10x) {verdict}; wall {wall_growth:.1f}x"
        )
    return rows
