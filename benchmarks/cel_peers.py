"""CEL and policy sets next to their compiled peers, in one process on the same inputs: the
Rust binding (`common-expression-language`, imported as `cel`) and Google's C++ one
(`cel-expr-python`) for compile and evaluation of 13 expressions; `cedarpy` for loading an
equivalent 10-policy set. Peers that do not install are skipped with one line each.

carlang's compile is measured three ways: cold (no cache: parse, check, fold, generate Python,
Python's `compile()`), from the disk cache (a fresh process: memory cache empty) and from the
memory cache (the same condition compiled again in one process).
"""

from __future__ import annotations

import importlib
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from carlang_runtime import ir
from carlang_runtime.cel import compile as compile_cel
from carlang_runtime.cel import format_value
from carlang_runtime.cel.cache import DEFAULT as CACHE
from carlang_runtime.policy import PolicySet

from .timing import fmt_seconds, median_time

__all__ = [
    "EXPRESSIONS",
    "ACTIVATION",
    "CEDAR_POLICIES",
    "PeerRow",
    "print_rows",
    "expression_rows",
    "policy_rows",
]

HOSTS = [f"h{i}.example.com" for i in range(100)]
ACTIVATION: dict[str, Any] = {
    "action": {"tool": "http.get", "type": "tool_call", "id": "a1"},
    "params": {"url": "https://arxiv.org/abs/2401.00001", "timeout": 30, "hosts": HOSTS},
    "scope": {"tenant": "acme"},
}
#: The benchmark's 13 expressions: the shapes policies use, each true or a value on ACTIVATION.
EXPRESSIONS: list[tuple[str, str]] = [
    (
        "issue condition",
        'action.tool == "http.get" && size(params.url) < 200 && !params.url.startsWith("http://")',
    ),
    ("true", "true"),
    ("arithmetic", "params.timeout * 2 + 1 > 60 - 5"),
    ("matches", 'params.url.matches("^https://[a-z]+\\\\.org/")'),
    ("in list", 'action.tool in ["http.get", "http.post", "shell"]'),
    ("has + ==", 'has(scope.tenant) && scope.tenant != "blocked"'),
    ("ternary", 'params.timeout > 60 ? "slow" : "fast"'),
    ("index + size", 'size(params.hosts) > 3 && params.hosts[0].startsWith("h")'),
    ("all over 100", 'params.hosts.all(h, h.endsWith(".example.com"))'),
    ("exists over 100", 'params.hosts.exists(h, h == "x")'),
    (
        "map + filter over 100",
        'size(params.hosts.map(h, h + ":443").filter(h, h.startsWith("h1")))',
    ),
    (
        "duration, timestamp",
        'duration("5m") < duration("1h")'
        ' && timestamp("2026-01-01T00:00:00Z") < timestamp("2027-01-01T00:00:00Z")',
    ),
    ("map literal", '{"a": 1, "b": 2}["b"] + params.timeout'),
]


@dataclass
class PeerRow:
    """One line: carlang's median, the peer's, the target as a ratio of the peer's (carlang
    <= target x peer) or as a time, and PASS/MISS."""

    name: str
    carlang: float
    peer_name: str
    peer: float | None
    target_ratio: float | None = None
    target_seconds: float | None = None

    @property
    def target(self) -> str:
        if self.target_seconds is not None:
            return f"<= {fmt_seconds(self.target_seconds)}"
        return "-" if self.target_ratio is None else f"<= {self.target_ratio:g}x"

    @property
    def ok(self) -> str:
        if self.target_seconds is not None:
            return "PASS" if self.carlang <= self.target_seconds else "MISS"
        if self.peer is None or self.target_ratio is None:
            return ""
        return "PASS" if self.carlang <= self.target_ratio * self.peer else "MISS"


def print_rows(title: str, rows: Sequence[PeerRow]) -> None:
    """The rows with the peer, carlang/peer and the target."""
    print(f"\n{title}")
    header = (
        f"{'case':<40} {'carlang':>10} {'peer':<10} {'peer time':>10} {'carlang/peer':>12}"
        f" {'target':>10}  ok"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio = f"{row.carlang / row.peer:.2f}x" if row.peer else "-"
        print(
            f"{row.name:<40} {fmt_seconds(row.carlang):>10} {row.peer_name:<10}"
            f" {fmt_seconds(row.peer):>10} {ratio:>12} {row.target:>10}  {row.ok}"
        )


def _peer(module: str, distribution: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        print(f"(skipped: {distribution} is not installed: pip install {distribution})")
        return None


def _per_call(fn: Callable[[], Any], repeat: int, batch: int) -> float:
    def many() -> None:
        for _ in range(batch):
            fn()

    return median_time(many, repeat=repeat, min_time=0.02) / batch


def _plain(value: Any) -> Any:
    """A peer's result as carlang prints it, to check that all agree."""
    if hasattr(value, "plain_value"):
        value = value.plain_value()
    return format_value(value)


def _cold_compile(source: str) -> Any:
    return compile_cel(source, cache=None)


def _disk_compile(source: str) -> Any:
    CACHE.clear()
    return compile_cel(source)


def expression_rows(quick: bool) -> list[PeerRow]:
    """Compile and evaluate each expression in carlang and each peer that installs."""
    repeat = 3 if quick else 7
    rust = _peer("cel", "common-expression-language")
    cpp_module = _peer("cel_expr_python.cel", "cel-expr-python")
    cpp_env = None
    cpp_activation = None
    if cpp_module is not None:
        dyn = cpp_module.Type.DYN
        cpp_env = cpp_module.NewEnv(variables={name: dyn for name in ACTIVATION})
        cpp_activation = cpp_env.Activation(ACTIVATION)
    if CACHE.directory is None:
        print("(the disk cache is off: CARLANG_CACHE_DIR=off; 'cached (disk)' rows measure memory)")
    compile_rows: list[PeerRow] = []
    eval_rows: list[PeerRow] = []
    for name, source in EXPRESSIONS:
        program = compile_cel(source)
        value = program.evaluate(ACTIVATION)
        cold = median_time(lambda s=source: _cold_compile(s), repeat=repeat, min_time=0.02)
        compile_cel(source)  # stored on disk
        disk = median_time(lambda s=source: _disk_compile(s), repeat=repeat, min_time=0.02)
        memory = median_time(lambda s=source: compile_cel(s), repeat=repeat, min_time=0.01)
        ours = _per_call(lambda p=program: p.evaluate(ACTIVATION), repeat, 200)
        if rust is not None:
            rust_compile = median_time(
                lambda s=source: rust.compile(s), repeat=repeat, min_time=0.02
            )
            for label, time in (
                ("cold", cold),
                ("cached (disk)", disk),
                ("cached (memory)", memory),
            ):
                compile_rows.append(PeerRow(f"{name}: {label}", time, "Rust", rust_compile, 2.0))
            rust_program = rust.compile(source)
            assert _plain(rust_program.execute(ACTIVATION)) == format_value(value), name
        if cpp_env is not None:
            cpp_compile = median_time(
                lambda s=source: cpp_env.compile(s), repeat=repeat, min_time=0.02
            )
            compile_rows.append(PeerRow(f"{name}: cold", cold, "cel-cpp", cpp_compile))
            expression = cpp_env.compile(source)
            assert _plain(expression.eval(cpp_activation)) == format_value(value), name
            cpp_eval = _per_call(lambda e=expression: e.eval(cpp_activation), repeat, 200)
            eval_rows.append(PeerRow(name, ours, "cel-cpp", cpp_eval, 1.0))
        if rust is not None:
            rust_eval = _per_call(lambda p=rust_program: p.execute(ACTIVATION), repeat, 50)
            eval_rows.append(PeerRow(name, ours, "Rust", rust_eval))
    if compile_rows:
        print_rows("CEL compile, 13 expressions (median per compile)", compile_rows)
        _summary(compile_rows)
    if eval_rows:
        print_rows(
            "CEL evaluation, prebuilt activation (median per evaluation; Rust converts the dict"
            " per call)",
            eval_rows,
        )
    return compile_rows + eval_rows


def _summary(rows: Sequence[PeerRow]) -> None:
    for label in ("cold", "cached (disk)", "cached (memory)"):
        ratios = [
            r.carlang / r.peer
            for r in rows
            if r.peer_name == "Rust" and r.peer and r.name.endswith(": " + label)
        ]
        if ratios:
            print(
                f"compile {label} / Rust: median {statistics.median(ratios):.2f}x,"
                f" max {max(ratios):.2f}x over {len(ratios)} expressions (target <= 2x)"
            )


def ten_policies() -> list[ir.Policy]:
    """A realistic set for one tool: CEL conditions of several shapes and built-in rules."""
    return [
        ir.CelPolicy(
            name="https_only", tools=["http.get"], when='!params.url.startsWith("https://")'
        ),
        ir.CelPolicy(name="short_urls", tools=["http.get"], when="size(params.url) > 2000"),
        ir.CelPolicy(name="no_metadata", when='params.url.contains("169.254.169.254")'),
        ir.CelPolicy(
            name="no_local",
            tools=["http.*"],
            when='params.url.matches("^https?://(localhost|127\\\\.)")',
        ),
        ir.CelPolicy(name="timeouts", tools=["http.get"], when="params.timeout > 60"),
        ir.CelPolicy(
            name="tenant", when='has(scope.tenant) && scope.tenant == "blocked"', effect="deny"
        ),
        ir.CelPolicy(
            name="big_downloads",
            tools=["http.get"],
            when='params.url.endsWith(".iso")',
            effect="require_approval",
        ),
        ir.DenyToolRule(name="deny_tool:shell", tool="shell"),
        ir.DenyToolParamRule(
            name="deny_tool_param:http.get.url", tool="http.get", param="url", contains="internal"
        ),
        ir.RequireStateRule(name="require_state:online", key="online", value=True),
    ]


#: The same ten policies in Cedar, as close as Cedar allows: no string length (a context
#: attribute stands in), no regular expressions (`like` patterns), no approval effect (an
#: annotation), and the permit every Cedar set needs, since Cedar denies by default.
CEDAR_POLICIES = """
@id("https_only")
forbid(principal, action == Action::"call", resource == Tool::"http.get")
when { !(context.params.url like "https://*") };
@id("short_urls")
forbid(principal, action == Action::"call", resource == Tool::"http.get")
when { context.params.url_length > 2000 };
@id("no_metadata")
forbid(principal, action == Action::"call", resource)
when { context.params.url like "*169.254.169.254*" };
@id("no_local")
forbid(principal, action == Action::"call", resource)
when { context.tool like "http.*" && (context.params.url like "http://localhost*"
  || context.params.url like "https://localhost*" || context.params.url like "http://127.*"
  || context.params.url like "https://127.*") };
@id("timeouts")
forbid(principal, action == Action::"call", resource == Tool::"http.get")
when { context.params.timeout > 60 };
@id("tenant")
forbid(principal, action == Action::"call", resource)
when { context.scope has tenant && context.scope.tenant == "blocked" };
@id("big_downloads") @effect("require_approval")
forbid(principal, action == Action::"call", resource == Tool::"http.get")
when { context.params.url like "*.iso" };
@id("deny_tool:shell")
forbid(principal, action == Action::"call", resource == Tool::"shell");
@id("deny_tool_param:http.get.url")
forbid(principal, action == Action::"call", resource == Tool::"http.get")
when { context.params.url like "*internal*" };
@id("require_state:online")
forbid(principal, action == Action::"call", resource)
unless { context.state.online == true };
@id("allow")
permit(principal, action, resource);
"""


def policy_rows(quick: bool) -> list[PeerRow]:
    """Loading the ten policies (cold, from the disk cache, from memory) next to cedarpy."""
    repeat = 5 if quick else 9
    policies = ten_policies()
    saved = CACHE._directory

    def cold() -> None:
        CACHE.clear()
        CACHE._directory = None
        try:
            PolicySet(policies)
        finally:
            CACHE._directory = saved

    def disk() -> None:
        CACHE.clear()
        PolicySet(policies)

    PolicySet(policies)  # stored on disk
    load_cold = median_time(cold, repeat=repeat, min_time=0.05)
    load_disk = median_time(disk, repeat=repeat, min_time=0.05)
    load_memory = median_time(lambda: PolicySet(policies), repeat=repeat, min_time=0.05)
    cedar = _peer("cedarpy", "cedarpy")
    cedar_load = None
    if cedar is not None:
        cedar_load = median_time(
            lambda: cedar.PolicySet.from_str(CEDAR_POLICIES), repeat=repeat, min_time=0.05
        )
        _check_cedar(cedar)
    rows = [
        PeerRow("load 10 policies: cold (no cache)", load_cold, "cedarpy", cedar_load, 1.0),
        PeerRow("load 10 policies: cached (disk)", load_disk, "cedarpy", cedar_load, 1.0),
        PeerRow("load 10 policies: cached (memory)", load_memory, "cedarpy", cedar_load, 1.0),
    ]
    if cedar is None:
        rows = [PeerRow(r.name, r.carlang, "-", None) for r in rows]
    print_rows("Policy set: load (median)", rows)
    return rows


def _check_cedar(cedar: Any) -> None:
    """The Cedar set decides the benchmark's two actions as carlang's does."""
    policies = cedar.PolicySet.from_str(CEDAR_POLICIES)

    def decide(url: str, timeout: int) -> bool:
        request = {
            "principal": 'Agent::"a"',
            "action": 'Action::"call"',
            "resource": 'Tool::"http.get"',
            "context": {
                "tool": "http.get",
                "params": {"url": url, "timeout": timeout, "url_length": len(url)},
                "scope": {},
                "state": {"online": True},
            },
        }
        return bool(cedar.is_authorized(request, policies, []).allowed)

    assert decide(str(ACTIVATION["params"]["url"]), 30)
    assert not decide("http://127.0.0.1/internal.iso", 90)
