"""Plan-vs-policy before anything runs (`static_verdicts`, `carlang check`'s CL0520): a history
rule judged with what the runtime's `history` will hold, unordered siblings included, as well
as with the actions that come before on every path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from carlang_runtime import ir
from carlang_runtime.engine import Runtime
from carlang_runtime.policy import PolicySet, static_verdicts
from carlang_runtime.policy.static import judged_context, judged_contexts
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from carlang.cli import app

ONCE = ir.CelPolicy(
    name="once", tools=["pay"], when='history.exists(h, h.tool == "pay")', message="one payment"
)
TESTS_FIRST = ir.CelPolicy(
    name="tests_first",
    tools=["deploy"],
    when='!history.exists(h, h.tool == "run_tests" && h.status == "succeeded")',
)
BUSY = ir.CelPolicy(
    name="busy", tools=["pay"], when='history.exists(h, h.status == "running")', message="busy"
)


def _call(
    id: str, tool: str, fb: str = "skip", after: tuple[str, ...] = (), **params: Any
) -> ir.Action:
    return ir.Action(
        id=id,
        type="tool_call",
        tool=tool,
        parameters=params,
        failure_behavior=fb,
        depends_on=list(after),
    )


def _plan(*actions: ir.Action) -> ir.ActionProposal:
    return ir.ActionProposal(id="p", actions=list(actions))


def _denied(policies: list[ir.Policy], plan: ir.ActionProposal) -> list[tuple[str, str, bool]]:
    found = static_verdicts(PolicySet(policies), plan)
    return [(v.action_id, v.policy, v.certain) for v in found if v.effect is ir.PolicyEffect.DENY]


def _ran(policies: list[ir.Policy], plan: ir.ActionProposal) -> list[str]:
    """The actions the runtime rejects by a policy, when every tool succeeds."""
    rt = Runtime()
    for policy in policies:
        rt.add_policy(policy)
    for tool in {a.tool for a in plan.actions if a.tool}:
        rt.register_tool(tool, lambda **params: params)
    result = rt.execute(plan)
    return [
        r.action_id
        for r in result.results
        if r.status.value == "rejected" and (r.error or "").startswith("policy violation")
    ]


def test_unordered_siblings_a_history_rule_denies_are_predicted() -> None:
    plan = _plan(*(_call(f"p{n}", "pay", n=n) for n in (1, 2, 3)))
    assert _denied([ONCE], plan) == [("p2", "once", True), ("p3", "once", True)]
    assert _ran([ONCE], plan) == ["p2", "p3"]


def test_what_an_earlier_level_ran_is_seen_though_not_an_ancestor() -> None:
    # a and x run side by side; b runs after x only, yet after a too (a level earlier)
    plan = _plan(_call("a", "pay", n=1), _call("x", "fetch"), _call("b", "pay", after=("x",), n=2))
    assert _denied([ONCE], plan) == [("b", "once", True)]
    assert _ran([ONCE], plan) == ["b"]


def test_the_running_status_is_predicted_as_the_runtime_sets_it() -> None:
    side_by_side = _plan(_call("a", "pay", n=1), _call("b", "pay", n=2))
    assert _denied([BUSY], side_by_side) == [("b", "busy", True)]
    assert _ran([BUSY], side_by_side) == ["b"]
    # a level that runs in order (an `abort` action): a ended before b is decided
    in_order = _plan(_call("a", "pay", "abort", n=1), _call("b", "pay", "abort", n=2))
    assert _denied([BUSY], in_order) == []
    assert _ran([BUSY], in_order) == []


def test_a_rule_that_needs_a_step_first_still_needs_it_ordered() -> None:
    """Judged with the ancestors too: a deploy that merely runs after the tests (a level later,
    not `after` them) is still reported, as before."""
    plan = _plan(_call("t", "run_tests"), _call("x", "fetch"), _call("d", "deploy", after=("x",)))
    assert _denied([TESTS_FIRST], plan) == [("d", "tests_first", True)]
    ordered = _plan(_call("t", "run_tests"), _call("d", "deploy", after=("t",)))
    assert _denied([TESTS_FIRST], ordered) == []


def test_judged_context_gives_the_history_that_decided() -> None:
    plan = _plan(*(_call(f"p{n}", "pay", n=n) for n in (1, 2)))
    assert judged_context(plan, 1) == ({}, [])  # no policies: the ancestors (none)
    state, history = judged_context(plan, 1, policies=PolicySet([ONCE]))
    assert [(h["id"], h["status"]) for h in history] == [("p1", "running")]
    ordered = _plan(_call("t", "run_tests"), _call("d", "deploy", after=("t",)))
    assert judged_context(ordered, 1, policies=PolicySet([TESTS_FIRST]))[1][0]["id"] == "t"


_STEP = st.tuples(
    st.sampled_from(["pay", "run_tests", "deploy", "fetch"]),
    st.sampled_from(["skip", "abort"]),
    st.lists(st.integers(0, 5), max_size=2),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_STEP, min_size=1, max_size=6))
def test_every_context_from_one_walk_is_the_one_judged_context_gives(steps: list[Any]) -> None:
    """`judged_contexts` (one walk, for coverage of a proposal test) gives each action what
    `judged_context` (a walk to that action) gives it."""
    actions = []
    for index, (tool, fb, after) in enumerate(steps):
        earlier = tuple(sorted({f"a{i}" for i in after if i < index}))
        effects = {f"k{index % 2}": index}
        action = _call(f"a{index}", tool, fb, earlier, n=index)
        actions.append(action.model_copy(update={"expected_effects": effects}))
    plan = _plan(*actions)
    rule = ir.CelPolicy(name="seen", tools=["pay"], when="has(state.k0) && state.k0 > 2")
    policies = PolicySet([ONCE, TESTS_FIRST, BUSY, rule])
    every = judged_contexts(plan, {"k1": 0}, policies)
    assert set(every) == set(range(len(actions)))
    for index in range(len(actions)):
        assert every[index] == judged_context(plan, index, {"k1": 0}, policies)


def test_carlang_check_reports_unordered_payments(tmp_path: Path) -> None:
    source = tmp_path / "h.car"
    source.write_text(
        'tool pay(n: int) -> object { description "pay" }\n'
        'policy once: deny pay when history.exists(h, h.tool == "pay")\n'
        '  message "one payment"\n'
        "proposal pr {\n"
        "  a = pay(n: 1) { on_failure skip }\n"
        "  b = pay(n: 2) { on_failure skip }\n"
        "  c = pay(n: 3) { on_failure skip }\n"
        "}\n"
    )
    result = CliRunner().invoke(app, ["check", str(source)])
    assert result.exit_code == 1, result.output
    assert result.output.count("error[CL0520]: this action will be denied by once") == 2
    assert "h.car:6:3" in result.output and "h.car:7:3" in result.output


PAID = ir.CelPolicy(
    name="paid", tools=["pay"], when='"paid" in state && state.paid == true', message="paid"
)


def _payment(id: str, fb: str, effects: dict[str, Any] | None = None) -> ir.Action:
    action = _call(id, "pay", fb, amount=100)
    return action.model_copy(update={"expected_effects": effects or {}})


def test_a_state_rule_sees_the_writes_of_the_actions_before_it_in_a_level() -> None:
    """Two payments in one level, the first declaring `paid = true`: run alongside each other
    (`on_failure skip`), the second was judged before the first wrote, and paid twice. A level
    whose actions write while a policy reads the state runs in order; `check` predicts the
    same, in order (`abort`) as alongside (it predicted neither)."""
    for fb in ("skip", "abort"):
        plan = _plan(_payment("p1", fb, {"paid": True}), _payment("p2", fb))
        assert _ran([PAID], plan) == ["p2"], fb
        assert _denied([PAID], plan) == [("p2", "paid", False)], fb  # (state: predicted)
    # nothing written in the level: it runs alongside, each seeing the state it starts from
    plan = _plan(_payment("p1", "skip"), _payment("p2", "skip"))
    assert _ran([PAID], plan) == [] and _denied([PAID], plan) == []
