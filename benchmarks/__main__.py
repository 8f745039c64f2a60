"""`python -m benchmarks [verify|compile|coldstart|cel|runtime|planner|experiments|policytest|
dbos|mcp|replay|lsp|memory|linearity|all] [--quick]`."""

from __future__ import annotations

import argparse

from . import (
    cel_bench,
    coldstart_bench,
    compile_bench,
    dbos_bench,
    experiments_bench,
    lsp_bench,
    mcp_bench,
    planner_bench,
    policytest_bench,
    replay_bench,
    runtime_bench,
    verify_bench,
)

BENCHMARKS = {
    "verify": verify_bench.run,
    "compile": compile_bench.run,
    "coldstart": coldstart_bench.run,
    "cel": cel_bench.run,
    "runtime": runtime_bench.run,
    "planner": planner_bench.run,
    "experiments": experiments_bench.run,
    "policytest": policytest_bench.run,
    "dbos": dbos_bench.run,
    "mcp": mcp_bench.run,
    "replay": replay_bench.run,
    "lsp": lsp_bench.run,
    "memory": verify_bench.run_memory,
    "linearity": verify_bench.run_linearity,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("which", nargs="*", default=["all"], choices=[*BENCHMARKS, "all"])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    names = list(BENCHMARKS) if "all" in args.which else args.which
    for name in names:
        BENCHMARKS[name](quick=args.quick)


if __name__ == "__main__":
    main()
