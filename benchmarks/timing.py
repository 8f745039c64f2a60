"""Timing helpers shared by the benchmarks: medians over repeats, tables, the car-runtime probe."""

from __future__ import annotations

import gc
import importlib.util
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Row", "median_time", "has_car", "print_table", "fmt_seconds"]


def has_car() -> bool:
    """Whether car-runtime (the real CAR) is importable."""
    return importlib.util.find_spec("car_runtime") is not None


def median_time(
    fn: Callable[[], Any], repeat: int = 7, warmup: int = 2, min_time: float = 0.0
) -> float:
    """Median wall time of `fn()` in seconds over `repeat` runs after `warmup` runs.

    With `min_time`, each sample loops `fn` until it has run that long and reports the mean
    per call, for operations too short to time one at a time. The garbage collector stays on
    (what users see includes it), but garbage left by the previous sample is collected before
    each one, so a sample does not pay for its predecessor.
    """
    return paired_median_times([fn], repeat, warmup, min_time)[0]


def paired_median_times(
    fns: list[Callable[[], Any]], repeat: int = 7, warmup: int = 2, min_time: float = 0.0
) -> list[float]:
    """`median_time` of each of `fns`, their samples taken in turn (the order reversed every
    round): when the machine's speed drifts during a run (a shared, virtual machine's does, by
    up to 2x over a minute), each function is timed at the same speeds as the others, and
    their ratio holds though each median moves."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    for round_ in range(repeat):
        order = range(len(fns)) if round_ % 2 == 0 else reversed(range(len(fns)))
        for index in order:
            samples[index].append(_sample(fns[index], min_time))
    return [statistics.median(taken) for taken in samples]


def _sample(fn: Callable[[], Any], min_time: float) -> float:
    """One sample: the mean wall time per call of `fn` looped for `min_time` (once at least),
    after collecting the garbage earlier samples left."""
    gc.collect()
    calls = 0
    start = time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / calls


def fmt_seconds(seconds: float | None) -> str:
    """A duration with a sensible unit."""
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.2f} µs"


@dataclass
class Row:
    """One benchmark line: carlang's median, the reference's (car-runtime, cel-python) when
    measured, and a target."""

    name: str
    carlang: float
    reference: float | None = None
    target: float | None = None
    note: str = ""


def print_table(title: str, rows: Sequence[Row], reference: str = "car-runtime") -> None:
    """Print rows with the carlang/reference ratio and whether the target is met."""
    print(f"\n{title}")
    header = f"{'case':<46} {'carlang':>11} {reference:>12} {'speed-up':>9} {'target':>10}  ok"
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio = f"{row.reference / row.carlang:.1f}x" if row.reference else "-"
        ok = "" if row.target is None else ("yes" if row.carlang <= row.target else "NO")
        measured = f"{fmt_seconds(row.carlang):>11} {fmt_seconds(row.reference):>12}"
        print(
            f"{row.name:<46} {measured} {ratio:>9} {fmt_seconds(row.target):>10}  {ok} {row.note}"
        )
