"""`plan_and_execute` never falls back after a failed candidate left an effect nothing undid,
and judges a candidate by its outcome (an optional step passed over is not a failure)."""

from __future__ import annotations

from typing import Any

import pytest
from carlang_runtime import ir
from carlang_runtime.engine import Runtime
from carlang_runtime.engine.outcome import candidate_failure

from tests.runtime.engine.support import call, proposal


async def no_wait(_: float) -> None:
    """Retries back off instantly."""


def shop(log: list[str], *, refund_works: bool = True, **options: Any) -> Runtime:
    """`charge` and `refund` log what they do; `ship` always fails; `note` works."""
    rt = Runtime(sleep=no_wait, **options)

    def charge(card: str) -> str:
        log.append(f"charge {card}")
        return "charged"

    def refund(card: str) -> str:
        log.append(f"refund {card}")
        if not refund_works:
            raise RuntimeError("the refund service is down")
        return "refunded"

    def ship() -> None:
        raise RuntimeError("no courier")

    rt.register_tool("charge", charge)
    rt.register_tool("refund", refund)
    rt.register_tool("ship", ship)
    rt.register_tool("note", lambda: "noted")
    return rt


def candidates(**charge_fields: Any) -> list[ir.ActionProposal]:
    """A cheap candidate that charges, then fails to ship; a longer one that would charge
    again (ranked second: more actions)."""
    fields: dict[str, Any] = {"max_retries": 0, **charge_fields}
    first = proposal(
        call("c", "charge", params={"card": "A"}, **fields),
        call("s", "ship", depends_on=["c"], max_retries=0),
        id="charge_then_ship",
    )
    second = proposal(
        call("n1", "note"),
        call("n2", "note"),
        call("n3", "note"),
        call("c", "charge", params={"card": "B"}, **fields),
        id="other",
    )
    return [first, second]


def test_an_irreversible_success_stops_the_fallback() -> None:
    log: list[str] = []
    rt = shop(log)
    result = rt.plan_and_execute(candidates())
    assert log == ["charge A"]  # never charged twice
    assert result.proposal_id == "charge_then_ship"
    assert result.fallback_stopped is not None
    assert "c succeeded with effects nothing undid" in result.fallback_stopped
    assert "allow_unsafe_fallback" in result.fallback_stopped
    events = rt.events.query("plan_fallback_stopped")
    assert len(events) == 1 and events[0].data["actions"] == ["c"]
    assert "fallback_stopped" in result.model_dump(mode="json")


def test_an_explicit_setting_falls_back_anyway() -> None:
    log: list[str] = []
    result = shop(log).plan_and_execute(candidates(), allow_unsafe_fallback=True)
    assert result.proposal_id == "other" and result.fallback_stopped is None
    assert log == ["charge A", "charge B"]
    assert "fallback_stopped" not in result.model_dump(mode="json")


def test_a_compensated_success_falls_back() -> None:
    log: list[str] = []
    refund = {"type": "tool", "tool": "refund", "parameters": {"card": "A"}}
    result = shop(log).plan_and_execute(candidates(compensation=refund))
    assert result.proposal_id == "other" and result.fallback_stopped is None
    assert log == ["charge A", "refund A", "charge B"]


def test_a_reversible_success_falls_back() -> None:
    log: list[str] = []
    result = shop(log).plan_and_execute(candidates(reversibility="reversible"))
    assert result.proposal_id == "other"


@pytest.mark.parametrize(
    ("options", "refund_works"),
    [({}, False), ({"compensate": False}, True)],
    ids=["compensation-failed", "compensations-off"],
)
def test_a_compensation_that_did_not_succeed_stops_the_fallback(
    options: dict[str, Any], refund_works: bool
) -> None:
    log: list[str] = []
    refund = {"type": "tool", "tool": "refund", "parameters": {"card": "A"}}
    rt = shop(log, refund_works=refund_works, **options)
    result = rt.plan_and_execute(candidates(compensation=refund, reversibility="compensable"))
    assert result.proposal_id == "charge_then_ship" and result.fallback_stopped is not None
    assert "charge B" not in log


def test_a_skipped_optional_step_is_not_a_failure() -> None:
    rt = shop([])
    optional = proposal(
        call("n", "note", expected_effects={"noted": True}),
        call("s", "ship", failure_behavior="skip"),
        call("after_ship", "note", depends_on=["s"]),
        id="optional_shipping",
    )
    longer = proposal(*(call(f"n{i}", "note") for i in range(5)), id="longer")
    result = rt.plan_and_execute([optional, longer])
    assert result.proposal_id == "optional_shipping"
    assert not any(r.rolled_back for r in result.results)
    assert rt.state.snapshot() == {"noted": True}  # kept, not rolled back
    assert candidate_failure(optional.actions, result.results) is None


def test_a_budget_skip_is_a_failure() -> None:
    actions = [call("a", "note"), call("b", "note")]
    results = [
        ir.ActionResult(action_id="a", status="succeeded"),
        ir.ActionResult(action_id="b", status="skipped", error="cost budget exceeded"),
    ]
    assert candidate_failure(actions, results) == (
        "action b did not succeed: skipped (cost budget exceeded)"
    )
