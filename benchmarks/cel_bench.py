"""CEL policies: carlang's compiled evaluator next to cel-python (its default runner and its
CompiledRunner), on the same expressions and data in one process; compile time; and a
PolicySet deciding one action.

cel-python gets its activation converted once, outside the timed loop (in a policy engine it
would pay that per action); carlang reads the plain dicts as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from carlang_runtime import ir
from carlang_runtime.cel import compile as compile_cel
from carlang_runtime.policy import PolicySet

from . import cel_peers
from .timing import Row, median_time

__all__ = ["run", "POLICY"]

#: The issue's reference condition.
POLICY = 'action.tool == "http.get" && size(params.url) < 200 && !params.url.startsWith("http://")'
ACTIVATION: dict[str, Any] = {
    "action": {"tool": "http.get", "type": "tool_call", "id": "a1"},
    "params": {"url": "https://arxiv.org/abs/2401.00001", "timeout": 30},
}
MACRO = "params.hosts.all(h, h.endsWith('.example.com')) && !params.hosts.exists(h, h == 'x')"
MACRO_ACTIVATION: dict[str, Any] = {
    "params": {"hosts": [f"h{i}.example.com" for i in range(20)]},
}
BATCH = 1_000  # evaluations per timed call: one call is too short to time alone


def _per_call(fn: Callable[[], Any], repeat: int, batch: int = BATCH) -> float:
    def many() -> None:
        for _ in range(batch):
            fn()

    return median_time(many, repeat=repeat, min_time=0.05) / batch


def _environment(runner: Any) -> Any:
    import celpy
    from celpy.celparser import CELParser

    # celpy's parser is a process-wide singleton whose tree class fits one runner only.
    CELParser.CEL_PARSER = None
    return celpy.Environment(runner_class=runner)


def _celpy(source: str, activation: dict[str, Any], runner: Any) -> Callable[[], Any]:
    import celpy

    env = _environment(runner)
    program = env.program(env.compile(source))
    converted = {name: celpy.json_to_cel(value) for name, value in activation.items()}
    return lambda: program.evaluate(converted)


def run(quick: bool = False) -> list[Row]:
    """Run the CEL benchmark and print it."""
    import celpy

    repeat = 5 if quick else 9
    program = compile_cel(POLICY)
    assert program.evaluate(ACTIVATION) is True
    ours = _per_call(lambda: program.evaluate(ACTIVATION), repeat)
    interpreted = _per_call(_celpy(POLICY, ACTIVATION, celpy.InterpretedRunner), repeat, 50)
    compiled_runner = _per_call(_celpy(POLICY, ACTIVATION, celpy.CompiledRunner), repeat, 200)
    true_program = compile_cel("true")
    true_ours = _per_call(lambda: true_program.evaluate({}), repeat)
    true_celpy = _per_call(_celpy("true", {}, celpy.CompiledRunner), repeat, 200)
    macro = compile_cel(MACRO)
    macro_ours = _per_call(lambda: macro.evaluate(MACRO_ACTIVATION), repeat, 200)
    macro_celpy = _per_call(_celpy(MACRO, MACRO_ACTIVATION, celpy.CompiledRunner), repeat, 20)

    env = _environment(celpy.CompiledRunner)

    def compile_both() -> None:
        env.program(env.compile(POLICY))

    compile_ours = median_time(lambda: compile_cel(POLICY, cache=None), repeat=repeat, min_time=0.2)
    compile_celpy = median_time(compile_both, repeat=repeat, min_time=0.2)

    policies = PolicySet(cel_peers.ten_policies())
    action = ir.Action(type="tool_call", tool="http.get", parameters=ACTIVATION["params"])
    state = {"online": True}
    assert policies.evaluate(action, state=state).allowed
    decide = _per_call(lambda: policies.evaluate(action, state=state), repeat)
    denied = ir.Action(
        type="tool_call",
        tool="http.get",
        parameters={"url": "http://127.0.0.1/internal.iso", "timeout": 90},
    )
    assert policies.evaluate(denied, state=state).denied
    decide_denied = _per_call(lambda: policies.evaluate(denied, state=state), repeat)
    explained = _per_call(lambda: policies.evaluate(denied, state=state, explain=True), repeat, 50)

    PeerRow = cel_peers.PeerRow
    celpy_name = "cel-python"
    rows = [
        PeerRow(
            "eval: issue condition (default runner)", ours, celpy_name, interpreted, None, 2e-6
        ),
        PeerRow("eval: issue condition (CompiledRunner)", ours, celpy_name, compiled_runner),
        PeerRow("eval: `true` (CompiledRunner)", true_ours, celpy_name, true_celpy),
        PeerRow("eval: all() + exists() over 20 hosts", macro_ours, celpy_name, macro_celpy),
        PeerRow(
            "compile: issue condition (no cache)",
            compile_ours,
            celpy_name,
            compile_celpy,
            target_seconds=1e-3,
        ),
    ]
    cel_peers.print_rows("CEL: carlang vs cel-python (median per evaluation)", rows)
    policy_rows = [
        PeerRow("PolicySet of 10, action allowed", decide, "-", None, target_seconds=6e-6),
        PeerRow(
            "PolicySet of 10, denied by 5 (+1 approval)", decide_denied, "-", None, None, 10e-6
        ),
        PeerRow("PolicySet of 10, denied, with explanations", explained, "-", None),
    ]
    cel_peers.print_rows("Policies: one decision", policy_rows)
    speedup = compiled_runner / ours
    verdict = "PASS" if speedup >= 30 else "MISS"
    print(f"\ncarlang is {speedup:.0f}x cel-python's CompiledRunner (target >= 30x)  {verdict}")
    peer_rows = cel_peers.expression_rows(quick) + cel_peers.policy_rows(quick)
    return [
        Row(f"{r.name} vs {r.peer_name}", r.carlang, r.peer, None)
        for r in [*rows, *policy_rows, *peer_rows]
    ]
