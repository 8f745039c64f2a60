"""Policy CI speed: 1,000 policy test cases (table rows over ten policies), compiled and run,
in process and as a fresh `carlang test` process. No car-runtime equivalent (CAR has no test
runner); OPA's `opa test` is the tool users compare with."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from carlang.compiler import compile_file
from carlang.testrun import Coverage, run_tests

from .timing import Row, median_time, print_table

__all__ = ["program", "run"]

_POLICIES = """\
tool fetch(url: string, port: int = 443)
tool deploy(env: "staging" | "prod", version: string)
tool query(sql: string, limit: int = 100)
policy https_only: deny fetch when !params.url.startsWith("https://")
policy odd_port: deny fetch when params.port != 443 && params.port != 8443
policy short_urls: deny fetch when size(params.url) > 200
policy prod: require_approval deploy when params.env == "prod"
policy no_rc: deny deploy when params.env == "prod" && params.version.contains("-rc")
policy bounded: deny query when params.limit > 10000
policy read_only: deny query when params.sql.matches("(?i)\\\\b(drop|delete)\\\\b")
deny_keyword ["rm -rf /", "DROP TABLE"]
deny_tool_param fetch.url contains "169.254"
policy internal: deny fetch when params.url.contains(".internal/")
"""


def program(cases: int) -> str:
    """Ten policies and `cases` test rows over them, half allowed, half not."""
    fetch = [
        f'    | "https://h{i}.example/x" | {443 if i % 3 else 8443} | allow |'
        if i % 2
        else f'    | "http://h{i}.example/x" | 443 | deny |'
        for i in range(cases // 2)
    ]
    deploy = [
        f'    | "{"prod" if i % 2 else "staging"}" | "1.{i}.0{"-rc1" if i % 4 == 1 else ""}" '
        f"| {'deny' if i % 4 == 1 else ('require_approval' if i % 2 else 'allow')} |"
        for i in range(cases - len(fetch))
    ]
    return (
        _POLICIES
        + 'test "fetches" {\n  action fetch(url: $url, port: $port)\n  expect $d\n  where\n'
        + "    | url | port | d |\n"
        + "\n".join(fetch)
        + '\n}\ntest "deploys" {\n  action deploy(env: $env, version: $v)\n  expect $d\n  where\n'
        + "    | env | v | d |\n"
        + "\n".join(deploy)
        + "\n}\n"
    )


def _in_process(path: Path) -> None:
    results = run_tests([compile_file(path, path.parent)], Coverage())
    assert len(results) == 1000 and all(r.passed for r in results)


def _fresh_process(path: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "carlang", "test", str(path), "--coverage"],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    assert done.returncode == 0 and "1000 passed, 0 failed" in done.stdout, done.stdout
    return elapsed


def run(quick: bool = False) -> list[Row]:
    """Run the policy-test benchmark and print it."""
    repeat = 3 if quick else 7
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policies_test.car"
        path.write_text(program(1000))
        inside = median_time(lambda: _in_process(path), repeat)
        fresh = sorted(_fresh_process(path) for _ in range(max(3, repeat // 2)))
    rows = [
        Row("1,000 policy test cases: compile + run", inside, None, 1.0),
        Row(
            "the same as `carlang test --coverage` (new process)", fresh[len(fresh) // 2], None, 1.0
        ),
    ]
    print_table("policy tests (median; no car-runtime equivalent)", rows)
    return rows
