"""Compile speed: generated programs of N lines, compiled and verified by carlang, next to
lark alone parsing the same text with the same grammar; and `carlang check` as a fresh process.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from carlang.compiler import compile_file
from carlang.grammar import grammar_text

from .generate import generate_program
from .timing import Row, fmt_seconds, median_time, print_table

__all__ = ["run"]


def _compile(path: Path, text: str) -> None:
    result = compile_file(path, path.parent, text=text)
    assert result.program is not None and not result.diagnostics.has_errors


def _cold_start(path: Path, runs: int) -> tuple[float, float]:
    """Median wall time of `carlang check FILE` in a new interpreter, and of `python -c pass`.

    Bytecode is allowed to be cached (as it is in an installed wheel), whatever this shell's
    PYTHONDONTWRITEBYTECODE says; the first run writes it.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def wall(argv: list[str]) -> float:
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(argv, check=False, capture_output=True, env=env)
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    wall([sys.executable, "-m", "carlang", "check", str(path)])  # warm the file cache
    return wall([sys.executable, "-m", "carlang", "check", str(path)]), wall(
        [sys.executable, "-c", "pass"]
    )


def run(quick: bool = False) -> list[Row]:
    """Run the compile benchmark and print it."""
    from lark import Lark

    repeat = 3 if quick else 7
    lark = Lark(grammar_text(), parser="lalr", maybe_placeholders=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for lines in (1_000, 10_000):
            text = generate_program(lines)
            path = Path(tmp) / f"program_{lines}.car"
            ours = median_time(lambda path=path, text=text: _compile(path, text), repeat=repeat)
            theirs = median_time(lambda text=text: lark.parse(text), repeat=repeat)
            target = 1.0 if lines == 10_000 else None
            note = f"({lines / ours:,.0f} lines/s; {ours / theirs:.2f}x lark alone)"
            rows.append(Row(f"compile + verify {lines:,} lines", ours, None, target, note))
            rows.append(
                Row(
                    f"lark alone, parse {lines:,} lines", theirs, None, None, "(tree, same grammar)"
                )
            )
        small = Path(tmp) / "small.car"
        small.write_text(generate_program(50, seed=11))
        cold, python = _cold_start(small, 5 if quick else 11)
    rows.append(
        Row(
            "carlang check, 50 lines, fresh process",
            cold,
            None,
            0.3,
            f"(python -c pass: {fmt_seconds(python)}; net {fmt_seconds(cold - python)})",
        )
    )
    print_table("compile (median; no car-runtime equivalent: CAR has no language)", rows)
    ratio = rows[2].carlang / rows[3].carlang
    print(f"10k lines: carlang compile+verify / lark parse = {ratio:.2f}x (target <= 1.5x)")
    return rows
