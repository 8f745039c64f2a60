"""Shadow policies: evaluated like enforced ones, recorded as `policy_shadowed`, never changing
an outcome."""

from __future__ import annotations

from pathlib import Path

from carlang_runtime import ir
from carlang_runtime.engine import AutoApprove, Runtime
from carlang_runtime.policy import PolicySet
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from carlang.cli import app
from tests.helpers import compile_ok

from .support import call, proposal, statuses

PAY = ir.ToolSchema(
    name="pay",
    parameters={
        "type": "object",
        "properties": {"amount": {"type": "integer"}, "currency": {"type": "string"}},
        "required": ["amount", "currency"],
    },
)


def pay(amount: int, currency: str) -> dict[str, int]:
    return {"paid": amount}


def _runtime(policies: list[ir.Policy]) -> Runtime:
    rt = Runtime(approval=AutoApprove())
    rt.register_tool("pay", pay, schema=PAY)
    for policy in policies:
        rt.add_policy(policy)
    return rt


def test_shadow_syntax_compiles_to_the_ir_flag_and_formats_back() -> None:
    program = compile_ok(
        "tool pay(amount: int)\npolicy big: shadow deny pay when params.amount > 100\n"
    )
    (policy,) = program.policies
    assert policy.shadow is True
    assert policy.model_dump(mode="json")["shadow"] is True
    # An enforced policy leaves the flag out of the IR: CAR documents stay as they were.
    plain = compile_ok("tool pay(amount: int)\npolicy big: deny pay when params.amount > 100\n")
    assert "shadow" not in plain.policies[0].model_dump(mode="json")


def test_a_shadow_policy_is_recorded_and_never_enforced() -> None:
    shadow = ir.CelPolicy(
        name="big", effect="deny", tools=["pay"], when="params.amount > 100", shadow=True
    )
    rt = _runtime([shadow])
    result = rt.execute(
        proposal(
            call("a", "pay", params={"amount": 500, "currency": "EUR"}),
            call("b", "pay", params={"amount": 5, "currency": "EUR"}),
        )
    )
    assert statuses(result) == {"a": "succeeded", "b": "succeeded"}
    (event,) = rt.events.query("policy_shadowed")
    assert event.action_id == "a"
    assert event.data["policy"] == "big"
    assert event.data["effect"] == "deny"
    assert event.data["explanation"] == "params.amount > 100 -> true"
    assert not rt.events.query("policy_violation")


def test_a_shadow_policy_does_not_fail_verification_and_its_test_passes(tmp_path: Path) -> None:
    program = tmp_path / "pay.car"
    program.write_text(
        "tool pay(amount: int)\n"
        "policy big: shadow deny pay when params.amount > 100\n"
        'proposal p from "a" {\n  x = pay(amount: 500)\n}\n'
        'test "big is only watched" {\n  action pay(amount: 500)\n  expect allow\n'
        "  expect shadow deny by big\n}\n"
        'test "small" {\n  action pay(amount: 5)\n  expect shadow allow\n}\n'
    )
    runner = CliRunner()
    result = runner.invoke(app, ["test", str(program)])
    assert result.exit_code == 0, result.output
    assert "2 passed" in result.output
    checked = runner.invoke(app, ["check", "--strict", str(program)])
    assert "CL0526" not in checked.output
    assert checked.exit_code == 0, checked.output


def test_a_failing_shadow_expectation_says_what_the_shadow_decided(tmp_path: Path) -> None:
    program = tmp_path / "pay.car"
    program.write_text(
        "tool pay(amount: int)\n"
        "policy big: shadow deny pay when params.amount > 100\n"
        'test "wrong" {\n  action pay(amount: 5)\n  expect shadow deny\n}\n'
    )
    result = CliRunner().invoke(app, ["test", str(program)])
    assert result.exit_code == 1
    assert "expected shadow deny, got allow" in result.output


def test_check_strict_lists_shadow_policies_that_never_fired(tmp_path: Path) -> None:
    program = tmp_path / "pay.car"
    program.write_text(
        "tool pay(amount: int)\n"
        "policy watched: shadow deny pay when params.amount > 100000\n"
        'test "small" {\n  action pay(amount: 5)\n  expect shadow allow\n}\n'
    )
    result = CliRunner().invoke(app, ["check", "--strict", str(program)])
    assert result.exit_code == 1
    assert "CL0526" in result.output
    assert "shadow policy `watched` never fired in any test" in result.output
    assert "pay.car:2:8" in result.output


def test_events_shows_shadow_decisions(tmp_path: Path) -> None:
    rt = _runtime(
        [ir.CelPolicy(name="big", effect="require_approval", when="params.amount > 1", shadow=True)]
    )
    log = tmp_path / "run.jsonl"
    from carlang_runtime.engine import JsonlSink

    rt.events.sinks.append(JsonlSink(log))
    rt.execute(proposal(call("a", "pay", params={"amount": 5, "currency": "EUR"})))
    rt.events.close()
    result = CliRunner().invoke(app, ["events", str(log), "--kind", "policy_shadowed"])
    assert result.exit_code == 0, result.output
    assert "policy_shadowed" in result.output
    assert "effect=require_approval" in result.output


# -- the property: enforcing vs shadow -----------------------------------------------------------

_CONDITIONS = [
    "params.amount > 100",
    "params.amount % 3 == 0",
    'params.currency != "EUR"',
    'params.currency == "USD" && params.amount > 50',
    "params.amount < 10 || params.amount > 900",
    "params.missing > 1",  # cannot be evaluated: a deny/approval policy applies (fail closed)
]


@st.composite
def _policies(draw: st.DrawFn) -> list[ir.CelPolicy]:
    count = draw(st.integers(1, 4))
    policies = []
    for index in range(count):
        policies.append(
            ir.CelPolicy(
                name=f"p{index}",
                effect=draw(st.sampled_from(["deny", "require_approval", "allow"])),
                tools=draw(st.sampled_from([[], ["pay"]])),
                when=draw(st.sampled_from(_CONDITIONS)),
            )
        )
    return policies


_ACTIONS = st.lists(
    st.tuples(st.integers(0, 1000), st.sampled_from(["EUR", "USD", "GBP"])), min_size=1, max_size=6
)


@settings(max_examples=60, deadline=None)
@given(base=_policies(), candidates=_policies(), calls=_ACTIONS)
def test_shadow_policies_never_change_an_outcome_and_record_what_enforcing_decides(
    base: list[ir.CelPolicy], candidates: list[ir.CelPolicy], calls: list[tuple[int, str]]
) -> None:
    candidates = [c.model_copy(update={"name": f"s{i}"}) for i, c in enumerate(candidates)]
    shadows = [c.model_copy(update={"shadow": True}) for c in candidates]
    actions = [
        call(
            f"a{i}", "pay", params={"amount": amount, "currency": currency}, failure_behavior="skip"
        )
        for i, (amount, currency) in enumerate(calls)
    ]
    plain = _runtime(base).execute(proposal(*actions))
    watched_rt = _runtime([*base, *shadows])
    watched = watched_rt.execute(proposal(*actions))
    # The outcome never changes.
    assert statuses(watched) == statuses(plain)
    assert [r.error for r in watched.results] == [r.error for r in plain.results]
    # Each action the policies decided has the shadow events enforcement would have given.
    enforced = PolicySet(candidates, tools=[PAY])
    recorded: dict[str, set[tuple[str, str]]] = {}
    for event in watched_rt.events.query("policy_shadowed"):
        recorded.setdefault(event.action_id or "", set()).add(
            (event.data["policy"], event.data["effect"])
        )
    for action in actions:
        decision = enforced.evaluate(action, admit=False)
        expected = (
            set() if decision.allowed else {(m.policy, m.effect.value) for m in decision.deciding}
        )
        assert recorded.get(action.id, set()) == expected, action.id
