"""Policies, approvals, sessions, tenants, middleware, cancellation, replanning, caches,
idempotency, rate limits, tool context, candidates, host-loop helpers."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import pytest
from carlang_runtime import ir
from carlang_runtime.engine import (
    Approval,
    AutoApprove,
    CallbackGate,
    CancelToken,
    DenyApprovals,
    Middleware,
    ReplanConfig,
    ReplanContext,
    Runtime,
    ToolContext,
    format_tool_result,
)
from carlang_runtime.errors import CarlangRuntimeError

from .support import FakeClock, assert_one_terminal_event_each, call, errors, proposal, statuses


def https_only() -> ir.CelPolicy:
    return ir.CelPolicy(
        name="https_only",
        tools=["fetch"],
        when='!params.url.startsWith("https://")',
        message="https only",
    )


def fetching_runtime(**options: Any) -> Runtime:
    rt = Runtime(**options)
    rt.register_tool("fetch", lambda url: {"url": url})
    return rt


# -- policies and approvals ---------------------------------------------------------------


def test_a_denied_action_is_rejected_with_the_policy_and_its_explanation() -> None:
    rt = fetching_runtime()
    rt.add_policy(https_only())
    result = rt.execute(
        proposal(
            call("a", "fetch", params={"url": "http://x"}, failure_behavior="skip"),
            call("b", "fetch", params={"url": "https://x"}),
        )
    )
    assert statuses(result) == {"a": "rejected", "b": "succeeded"}
    assert errors(result)["a"] == "policy violation: https_only: https only"
    (violation,) = rt.events.query("policy_violation")
    assert violation.action_id == "a"
    assert violation.data == {
        "policy": "https_only",
        "reason": "https only",
        "explanation": '!params.url.startsWith("https://") -> true',
    }
    assert_one_terminal_event_each(rt, result)


def test_a_denial_aborts_and_is_never_retried() -> None:
    rt = fetching_runtime(state={"before": True})
    rt.add_policy(https_only())
    calls: list[str] = []
    rt.register_tool("note", lambda: calls.append("note"))
    result = rt.execute(
        proposal(
            call("n", "note", expected_effects={"noted": True}),
            call("a", "fetch", params={"url": "http://x"}, failure_behavior="retry"),
        )
    )
    assert statuses(result) == {"n": "succeeded", "a": "rejected"}
    assert result.results[0].rolled_back and rt.state.snapshot() == {"before": True}
    assert result.cost.retries == 0 and rt.events.query("action_retrying") == []


def test_approvals_are_asked_of_the_gate() -> None:
    asking = ir.CelPolicy(
        name="prod",
        effect="require_approval",
        tools=["deploy"],
        when='params.env == "prod"',
        message="prod needs a human",
    )
    seen: list[str] = []

    def decide(request: Any) -> bool:
        seen.append(request.reason)
        return request.action.parameters["version"] != "bad"

    for gate, expected in (
        (AutoApprove(), "succeeded"),
        (DenyApprovals("nobody is around"), "rejected"),
    ):
        rt = Runtime(approval=gate)
        rt.register_tool("deploy", lambda env, version: "deployed")
        rt.add_policy(asking)
        result = rt.execute(
            proposal(
                call("d", "deploy", params={"env": "prod", "version": "1"}, failure_behavior="skip")
            )
        )
        assert statuses(result) == {"d": expected}
    assert errors(result)["d"] == "approval refused (prod: prod needs a human): nobody is around"
    rt = Runtime(approval=CallbackGate(decide))
    rt.register_tool("deploy", lambda env, version: "deployed")
    rt.add_policy(asking)
    result = rt.execute(
        proposal(
            call("ok", "deploy", params={"env": "prod", "version": "1"}, failure_behavior="skip"),
            call("no", "deploy", params={"env": "prod", "version": "bad"}, failure_behavior="skip"),
            call("dev", "deploy", params={"env": "dev", "version": "bad"}),
        )
    )
    assert statuses(result) == {"ok": "succeeded", "no": "rejected", "dev": "succeeded"}
    assert seen == ["prod: prod needs a human"] * 2
    recorded = rt.events.query("approval_recorded")
    assert [(e.action_id, e.data["approved"]) for e in recorded] == [("ok", True), ("no", False)]


@pytest.mark.parametrize("answer", ["yes", "false", 1, {"approved": True}, None])
def test_a_gate_answer_that_is_not_true_is_a_refusal(answer: Any) -> None:
    rt = Runtime(approval=CallbackGate(lambda request: answer))
    rt.register_tool("deploy", lambda: None)
    rt.add_policy(ir.CelPolicy(name="ask", effect="require_approval"))
    result = rt.execute(proposal(call("d", "deploy", failure_behavior="skip")))
    assert statuses(result) == {"d": "rejected"}


class _Answers:
    """A gate of the user's own class, answering whatever it was given."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def review(self, request: Any) -> Any:
        return self.answer


@pytest.mark.parametrize("approved", ["false", "true", 1, None, [True]])
@pytest.mark.parametrize("own_class", [False, True])
def test_an_approval_whose_approved_is_not_a_bool_is_a_refusal(
    approved: Any, own_class: bool
) -> None:
    """`Approval("false", ...)` approved the action (the engine tested its truth): a gate
    that builds its answer from a form's text must not approve on "false" or 1. A gate of
    the user's own class answering a bare value is taken as `CallbackGate` takes it."""
    for answer in (Approval(approved, "from a web form", "alice"), approved):
        gate = _Answers(answer) if own_class else CallbackGate(lambda request, a=answer: a)
        rt = Runtime(approval=gate)
        rt.register_tool("deploy", lambda: None)
        rt.add_policy(ir.CelPolicy(name="ask", effect="require_approval"))
        result = rt.execute(proposal(call("d", "deploy", failure_behavior="skip")))
        assert statuses(result) == {"d": "rejected"}
        (recorded,) = rt.events.query("approval_recorded")
        assert recorded.data["approved"] is False
        if isinstance(answer, Approval):
            assert "which is not True" in errors(result)["d"]


def test_a_plain_function_is_a_gate_and_anything_else_is_refused_when_set() -> None:
    """A function of the request is taken as `CallbackGate` takes it (a plain function passed
    to set_approval_gate crashed the run at its first approval, with an AttributeError); an
    object that is neither is a TypeError when it is set, not mid-run."""
    asked: list[str] = []

    def decide(request: Any) -> bool:
        asked.append(request.action.id)
        return request.action.id == "yes"

    for rt in (Runtime(approval=decide), Runtime()):
        rt.set_approval_gate(decide)
        rt.register_tool("deploy", lambda: None)
        rt.add_policy(ir.CelPolicy(name="ask", effect="require_approval"))
        result = rt.execute(
            proposal(
                call("yes", "deploy", failure_behavior="skip"),
                call("no", "deploy", failure_behavior="skip"),
            )
        )
        assert statuses(result) == {"yes": "succeeded", "no": "rejected"}
    assert asked == ["yes", "no"] * 2
    with pytest.raises(TypeError, match="an approval gate has a review"):
        Runtime().set_approval_gate("yes")  # type: ignore[arg-type]


def test_without_a_gate_approval_is_refused() -> None:
    rt = Runtime()
    rt.register_tool("deploy", lambda: None)
    rt.add_policy(ir.CelPolicy(name="ask", effect="require_approval"))
    result = rt.execute(proposal(call("d", "deploy", failure_behavior="skip")))
    assert statuses(result) == {"d": "rejected"}
    assert "no approval gate is configured" in (errors(result)["d"] or "")


def test_an_async_gate_can_take_its_time() -> None:
    async def slow(request: Any) -> Approval:
        await asyncio.sleep(0.01)
        return Approval(True, "after a pause", "someone")

    rt = Runtime(approval=CallbackGate(slow))
    rt.register_tool("deploy", lambda: None)
    rt.add_policy(ir.CelPolicy(name="ask", effect="require_approval"))
    assert statuses(rt.execute(proposal(call("d", "deploy")))) == {"d": "succeeded"}


def test_sessions_add_their_own_policies() -> None:
    rt = fetching_runtime()
    strict = rt.open_session()
    rt.add_policy(ir.DenyToolRule(name="deny_tool:fetch", tool="fetch"), session=strict)
    plan = proposal(call("a", "fetch", params={"url": "https://x"}))
    assert statuses(rt.execute(plan)) == {"a": "succeeded"}
    assert statuses(rt.execute(plan, session=strict)) == {"a": "rejected"}
    other = rt.open_session()
    assert statuses(rt.execute(plan, session=other)) == {"a": "succeeded"}
    rt.close_session(strict)
    closed = rt.execute(plan, session=strict)
    assert statuses(closed) == {"a": "rejected"}
    assert errors(closed)["a"] == f"unknown session '{strict}'"
    with pytest.raises(CarlangRuntimeError):
        rt.add_policy(https_only(), session="nope")


def test_history_is_kept_per_session_for_policies_that_read_it() -> None:
    rt = fetching_runtime()
    rt.add_policy(
        ir.CelPolicy(
            name="twice", tools=["fetch"], when="history.filter(h, h.tool == 'fetch').size() >= 2"
        )
    )
    session = rt.open_session()
    plan = proposal(call("a", "fetch", params={"url": "https://x"}, failure_behavior="skip"))
    outcomes = [statuses(rt.execute(plan, session=session))["a"] for _ in range(3)]
    assert outcomes == ["succeeded", "succeeded", "rejected"]


def _pay_once(history_limit: int) -> Runtime:
    """A runtime where `pay` runs once per session (a rule over `history`) and `ping` any
    number of times unless `n > 10` (a rule that reads no history)."""
    rt = Runtime(history_limit=history_limit)
    rt.register_tool("pay", lambda amount: "paid")
    rt.register_tool("ping", lambda n: "pong")
    rt.add_policy(
        ir.CelPolicy(
            name="once",
            tools=["pay"],
            when='history.exists(h, h.tool == "pay" && h.status != "rejected")',
        )
    )
    rt.add_policy(ir.CelPolicy(name="no_big_ping", tools=["ping"], when="params.n > 10"))
    return rt


def test_calls_a_policy_refuses_do_not_push_a_call_out_of_history() -> None:
    """`history` keeps the last `history_limit` refused entries and as many others: a
    refused call costs its caller nothing, so a thousand denied calls do not make a second
    payment pass a once-per-session rule (they did, as the oldest entries went first)."""
    limit = 50  # (1,000 by default: the same with fewer runs)
    rt = _pay_once(limit)
    session = rt.open_session()

    def run(tool: str, **params: Any) -> tuple[str, str | None]:
        plan = proposal(call("a", tool, params=params))
        result = rt.execute(plan, session=session)
        return statuses(result)["a"], errors(result).get("a")

    assert [run("pay", amount=5)[0], run("pay", amount=5)[0]] == ["succeeded", "rejected"]
    assert {run("ping", n=1000)[0] for _ in range(limit - 1)} == {"rejected"}
    status, error = run("pay", amount=5)
    assert status == "rejected" and error is not None and "no longer kept" not in error


def test_a_rule_over_a_trimmed_history_fails_closed() -> None:
    """Past `history_limit` allowed calls the first ones leave `history`: a once-per-session
    rule then saw no payment and allowed a second one (a red-team trial: a thousand cheap
    calls, then the payment). A rule that reads `history` and does not match a trimmed one
    cannot be decided: it applies, saying why; rules that do not read it are unaffected, and
    a new session starts whole."""
    limit = 50
    rt = _pay_once(limit)
    rt.register_tool("wire", lambda amount: "sent")
    rt.add_policy(
        ir.CelPolicy(
            name="ask_after_refusal",
            effect="require_approval",
            tools=["wire"],
            when='history.exists(h, h.status == "rejected")',
        )
    )
    session = rt.open_session()

    def run(tool: str, session: str = session, **params: Any) -> tuple[str, str | None]:
        result = rt.execute(proposal(call("a", tool, params=params)), session=session)
        return statuses(result)["a"], errors(result).get("a")

    assert run("pay", amount=5)[0] == "succeeded"
    assert {run("ping", n=1)[0] for _ in range(limit)} == {"succeeded"}  # trimmed now
    status, error = run("pay", amount=5)
    assert status == "rejected" and error is not None
    assert "1 earlier call(s) of this session are no longer kept" in error
    assert run("ping", n=1)[0] == "succeeded"  # no_big_ping reads no history
    # a require_approval rule applies too: approval is asked (and refused without a gate)
    status, error = run("wire", amount=5)
    assert status == "rejected" and error is not None and error.startswith("approval refused")
    assert rt.history_dropped(session) > 0
    fresh = rt.open_session()
    assert run("pay", session=fresh, amount=5)[0] == "succeeded"
    with pytest.raises(ValueError, match="history_limit must be a positive int"):
        Runtime(history_limit=0)


def test_a_call_no_tool_could_receive_stays_out_of_history() -> None:
    """A call with a missing parameter is rejected before any policy sees it; were it in
    `history`, a rule reading that parameter would fail (closed) on every later call."""
    rt = Runtime()
    rt.register_tool(
        "echo",
        lambda text: text,
        schema={
            "parameters": {
                "type": "object",
                "required": ["text"],
                "properties": {"text": {"type": "string"}},
            }
        },
    )
    rt.add_policy(
        ir.CelPolicy(
            name="no_repeat",
            tools=["echo"],
            when="history.exists(h, h.tool == 'echo' && h.params.text == params.text)",
        )
    )
    session = rt.open_session()

    def echo(params: dict[str, Any]) -> str:
        plan = proposal(call("a", "echo", params=params, failure_behavior="skip"))
        return statuses(rt.execute(plan, session=session))["a"]

    assert [echo({}), echo({"text": "ok"}), echo({"text": "ok2"}), echo({"text": "ok"})] == [
        "rejected",
        "succeeded",
        "succeeded",
        "rejected",
    ]


def test_a_tenant_reads_and_writes_its_own_state() -> None:
    rt = Runtime(state={"shared": 1})
    plan = proposal(
        ir.Action(id="w", type="state_write", parameters={"key": "k", "value": "acme"}),
        ir.Action(id="r", type="state_read", parameters={"key": "shared"}),
    )
    result = rt.execute(plan, scope={"tenant": "acme", "caller": "bot"})
    assert result.results[1].output is None  # the shared view is not the tenant's
    assert rt.state.snapshot(tenant="acme") == {"k": "acme"}
    assert rt.state.snapshot() == {"shared": 1}


# -- middleware, cancellation, replanning ------------------------------------------------


def test_middleware_runs_in_order_and_may_refuse() -> None:
    calls: list[str] = []

    class Record(Middleware):
        def __init__(self, name: str) -> None:
            self.name = name

        def before_proposal(self, proposal: ir.ActionProposal, run_id: str) -> None:
            calls.append(f"{self.name}:start")

        def before_action(self, action: ir.Action, proposal: ir.ActionProposal) -> str | None:
            calls.append(f"{self.name}:{action.id}")
            return "no b" if (self.name == "gate" and action.id == "b") else None

        async def after_action(self, action: ir.Action, result: ir.ActionResult) -> None:
            calls.append(f"{self.name}:done {action.id} {result.status.value}")

    rt = fetching_runtime()
    rt.use(Record("metrics"))
    rt.use(Record("gate"))
    result = rt.execute(
        proposal(
            call("a", "fetch", params={"url": "u"}),
            call("b", "fetch", params={"url": "u"}, failure_behavior="skip"),
        )
    )
    assert statuses(result) == {"a": "succeeded", "b": "rejected"}
    assert errors(result)["b"] == "refused by Record: no b"
    assert calls[:5] == [
        "metrics:start",
        "gate:start",
        "metrics:a",
        "gate:a",
        "metrics:done a succeeded",
    ]


def test_cancellation_skips_what_has_not_started() -> None:
    rt = Runtime()
    token = CancelToken()

    def first() -> str:
        token.cancel("the user pressed stop")
        return "done"

    rt.register_tool("first", first)
    rt.register_tool("later", lambda: "never")
    result = rt.execute(
        proposal(
            call("a", "first", expected_effects={"x": 1}),
            call("b", "later", state_dependencies=["x"]),
        ),
        cancel=token,
    )
    assert statuses(result) == {"a": "succeeded", "b": "skipped"}
    assert errors(result)["b"] == "canceled: the user pressed stop"
    assert_one_terminal_event_each(rt, result)


def test_replanning_replaces_a_failed_proposal() -> None:
    rt = Runtime()
    rt.register_tool("primary", lambda: (_ for _ in ()).throw(RuntimeError("down")))
    rt.register_tool("backup", lambda: "ok")
    seen: list[ReplanContext] = []

    def replan(context: ReplanContext) -> ir.ActionProposal:
        seen.append(context)
        return proposal(call("b", "backup", expected_effects={"served": True}), id="p2")

    rt.with_replan(replan, ReplanConfig(max_replans=2))
    result = rt.execute(proposal(call("a", "primary", params={"region": "eu"})))
    assert result.proposal_id == "p2" and statuses(result) == {"b": "succeeded"}
    (context,) = seen
    assert context.failed_actions == [
        {
            "id": "a",
            "tool": "primary",
            "error": "RuntimeError: down",
            "parameters": {"region": "eu"},
        }
    ]
    assert context.attempt == 1 and context.replans_remaining == 1
    kinds = [e.kind for e in rt.events if e.kind.startswith("replan")]
    assert kinds == ["replan_attempted", "replan_proposal_received"]
    assert rt.state.snapshot() == {"served": True}


def test_a_replan_that_does_not_verify_is_rejected_and_replans_run_out() -> None:
    rt = Runtime()
    rt.register_tool("primary", lambda: (_ for _ in ()).throw(RuntimeError("down")))
    rt.with_replan(
        lambda ctx: proposal(call("x", "unknown_tool"), id="bad"), ReplanConfig(max_replans=2)
    )
    result = rt.execute(proposal(call("a", "primary")))
    assert result.proposal_id == "p" and statuses(result) == {"a": "failed"}
    kinds = [e.kind for e in rt.events if e.kind.startswith("replan")]
    assert kinds == [
        "replan_attempted",
        "replan_proposal_received",
        "replan_rejected",
        "replan_attempted",
        "replan_proposal_received",
        "replan_rejected",
        "replan_exhausted",
    ]


# -- caches, idempotency, rate limits ----------------------------------------------------


def test_a_cached_tool_is_not_called_again_within_its_ttl() -> None:
    clock = FakeClock()
    rt = Runtime(clock=clock)
    calls: list[str] = []
    rt.register_tool(
        "lookup", lambda q: calls.append(q) or f"answer to {q}", schema={"cache_ttl_secs": 60}
    )
    plan = proposal(call("a", "lookup", params={"q": "x"}))
    rt.execute(plan)
    rt.execute(plan)
    assert calls == ["x"]
    clock.now += 61
    assert rt.execute(plan).results[0].output == "answer to x"
    assert calls == ["x", "x"]
    assert rt.result_cache.stats().hits == 1


def test_idempotent_actions_are_deduplicated_until_rolled_back() -> None:
    rt = Runtime()
    calls: list[int] = []
    rt.register_tool("charge", lambda amount: calls.append(amount) or "charged")
    rt.register_tool("boom", lambda: (_ for _ in ()).throw(RuntimeError("x")))
    once = proposal(call("c", "charge", params={"amount": 5}, idempotent=True))
    rt.execute(once)
    second = rt.execute(once)
    assert calls == [5] and second.results[0].output == "charged"
    assert [e.action_id for e in rt.events.query("action_deduplicated")] == ["c"]
    failing = proposal(
        call("c", "charge", params={"amount": 7}, idempotent=True), call("b", "boom")
    )
    rt.execute(failing)
    rt.execute(failing)
    assert calls == [5, 7, 7]  # the rolled-back charge is no longer deduplicated


def test_policies_and_approvals_decide_before_the_idempotency_cache_answers() -> None:
    """A cached output never stands in for a decision: every gate (policies, approval) decides
    the action first, and only the same caller (the same scope: tenant, caller, claims) gets
    the output cached for it (a security review found the intern reading the payroll the
    admin's call left in the cache, and a denied approval answered from a session that had
    one)."""
    rt = Runtime()
    calls: list[str] = []
    rt.register_tool("read_payroll", lambda dept: calls.append(dept) or {"dept": dept, "ceo": 9})
    rt.add_policy(
        ir.CelPolicy(
            name="admins_only",
            tools=["read_payroll"],
            when='scope.claims.role != "admin"',
            message="payroll is for admins",
        )
    )
    rt.add_policy(
        ir.CelPolicy(
            name="ask",
            effect="require_approval",
            tools=["read_payroll"],
            when='params.dept == "exec"',
            message="exec payroll needs approval",
        )
    )
    eng = proposal(call("r", "read_payroll", params={"dept": "eng"}, idempotent=True))
    admin = {"tenant": "acme", "caller": "alice", "claims": {"role": "admin"}}
    intern = {"tenant": "acme", "caller": "mallory", "claims": {"role": "intern"}}
    assert rt.execute(eng, scope=admin).results[0].status.value == "succeeded"
    refused = rt.execute(eng, scope=intern).results[0]
    assert (refused.status.value, refused.output) == ("rejected", None)
    assert refused.error == "policy violation: admins_only: payroll is for admins"
    assert rt.execute(eng, scope=admin).results[0].output == {"dept": "eng", "ceo": 9}
    assert calls == ["eng"]  # the same caller: answered from the cache
    other_admin = {**admin, "caller": "bob"}
    assert rt.execute(eng, scope=other_admin).results[0].status.value == "succeeded"
    assert calls == ["eng", "eng"]  # another caller: not someone else's cached output
    exec_payroll = proposal(call("r", "read_payroll", params={"dept": "exec"}, idempotent=True))
    rt.set_approval_gate(AutoApprove())
    assert rt.execute(exec_payroll, scope=admin).results[0].status.value == "succeeded"
    rt.set_approval_gate(DenyApprovals("no"))
    denied = rt.execute(exec_payroll, scope=admin).results[0]
    assert denied.status.value == "rejected" and denied.error is not None
    assert denied.error.startswith("approval refused")
    deduplicated = rt.events.query("action_deduplicated")
    assert len(deduplicated) == 1  # the admin's second read of eng, and nothing else
    kinds = [e.kind for e in rt.events if e.run_id == deduplicated[0].run_id and e.action_id]
    assert kinds == ["action_validated", "action_deduplicated"]


def test_cached_results_are_per_caller_and_a_scope_that_is_not_json_shares_none() -> None:
    rt = Runtime()
    counter = iter(range(100))
    rt.register_tool("now", lambda: next(counter), schema={"cache_ttl_secs": 60})
    rt.register_tool("once", lambda: next(counter))

    def run(tool: str, scope: dict[str, Any]) -> Any:
        action = call("a", tool, idempotent=tool == "once")
        return rt.execute(proposal(action), scope=scope).results[0].output

    alice = {"tenant": "acme", "caller": "alice", "claims": {"role": "admin"}}
    assert run("now", alice) == 0
    assert run("now", dict(alice)) == 0  # the same scope: cached
    assert run("now", {**alice, "caller": "bob"}) == 1
    assert run("now", {**alice, "claims": {"role": "intern"}}) == 2
    odd = {"tenant": "acme", "caller": object()}  # no identity to key a cache by
    assert run("now", odd) == 3
    assert run("now", odd) == 4
    assert run("once", odd) == 5
    assert run("once", odd) == 6
    # one scope, one key: an int claim key (written "1" by JSON) and a NaN share nothing
    assert run("now", {"tenant": "acme", "claims": {1: "x"}}) == 7
    assert run("now", {"tenant": "acme", "claims": {"1": "x"}}) == 8
    nan = {"tenant": "acme", "claims": {"level": float("nan")}}
    assert run("now", nan) == 9 and run("now", nan) == 10


def test_rate_limits_make_callers_wait() -> None:
    clock = FakeClock()
    rt = Runtime(clock=clock, sleep=clock.sleep)
    rt.register_tool(
        "api", lambda: None, schema={"rate_limit": {"max_calls": 2, "interval_secs": 10}}
    )
    result = rt.execute(proposal(*(call(f"a{i}", "api") for i in range(4))))
    assert set(statuses(result).values()) == {"succeeded"}
    assert clock.slept == [5.0, 5.0]


def test_middleware_hears_of_each_wait_for_a_rate_limit_before_it() -> None:
    """`rate_limited(action, seconds)`: once per call that waits, with the wait ahead of it
    (a coroutine hook is awaited), and never for a call that goes at once."""
    clock = FakeClock()
    heard: list[tuple[str, float, int]] = []

    class Listen(Middleware):
        async def rate_limited(self, action: ir.Action, seconds: float) -> None:
            heard.append((action.id, seconds, len(clock.slept)))

    rt = Runtime(clock=clock, sleep=clock.sleep)
    rt.use(Listen())
    rt.register_tool(
        "api", lambda: None, schema={"rate_limit": {"max_calls": 2, "interval_secs": 10}}
    )
    result = rt.execute(proposal(*(call(f"a{i}", "api") for i in range(4))))
    assert set(statuses(result).values()) == {"succeeded"}
    # a2 and a3 wait 5 s each; each is heard of before its own wait (none slept, then one)
    assert heard == [("a2", 5.0, 0), ("a3", 5.0, 1)]
    assert clock.slept == [5.0, 5.0]


# -- tools ------------------------------------------------------------------------------


def test_a_tool_with_a_context_writes_state_only_if_it_succeeds() -> None:
    rt = Runtime(state={"count": 1})

    def bump(context: ToolContext) -> int:
        value = context.state["count"] + 1
        context.state.set("count", value)
        context.state.delete("stale")
        return value

    def bump_then_fail(context: ToolContext) -> None:
        context.state.set("count", 100)
        raise RuntimeError("changed my mind")

    rt.register_tool("bump", bump)
    rt.register_tool("bad", bump_then_fail)
    result = rt.execute(proposal(call("a", "bump"), call("b", "bad", failure_behavior="skip")))
    assert statuses(result) == {"a": "succeeded", "b": "skipped"}
    assert rt.state.snapshot() == {"count": 2}
    assert result.results[0].state_changes == {"count": {"op": "set", "value": 2}}


def test_declared_effects_are_written_first_and_the_tools_own_writes_win() -> None:
    rt = Runtime()

    def measure(context: ToolContext) -> None:
        context.state.set("size", 42)

    rt.register_tool("measure", measure)
    plan = proposal(call("m", "measure", expected_effects={"size": 0, "measured": True}))
    result = rt.execute(plan)
    assert rt.state.snapshot() == {"size": 42, "measured": True}
    assert result.results[0].state_changes == {
        "size": {"op": "set", "value": 42},
        "measured": {"op": "set", "value": True},
    }
    changed = [(e.data or {})["key"] for e in rt.events if e.kind == "state_changed"]
    assert changed == ["size", "measured", "size"]


def test_schemas_come_from_type_hints() -> None:
    rt = Runtime()

    def deploy(
        env: Literal["staging", "prod"],
        version: str,
        replicas: int = 1,
        tags: list[str] | None = None,
        context: ToolContext | None = None,
    ) -> dict:
        """Deploy a version."""
        return {}

    rt.register_tool("deploy", deploy)
    schema = rt.tools["deploy"].schema
    assert schema.description == "Deploy a version."
    assert schema.parameters == {
        "type": "object",
        "properties": {
            "env": {"enum": ["staging", "prod"]},
            "version": {"type": "string"},
            "replicas": {"type": "integer", "default": 1},
            "tags": {
                "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                "default": None,
            },
        },
        "required": ["env", "version"],
    }
    assert rt.tools["deploy"].context_param == "context"


def test_plan_and_execute_falls_back_to_the_next_candidate() -> None:
    rt = Runtime(state={"clean": True})
    rt.register_tool("risky", lambda: (_ for _ in ()).throw(RuntimeError("nope")))
    rt.register_tool("safe", lambda: "ok")
    invalid = proposal(call("x", "not_a_tool"), id="invalid")
    risky = proposal(
        call("r", "safe", expected_effects={"dirty": True}),
        call("r2", "risky", failure_behavior="skip"),
        id="risky",
    )
    safe = proposal(call("s", "safe", expected_effects={"done": True}), id="safe")
    result = rt.plan_and_execute([invalid, risky, safe])
    assert result.proposal_id == "safe"
    assert rt.state.snapshot() == {"clean": True, "done": True}  # risky's write undone


def test_gate_answers_before_running() -> None:
    rt = fetching_runtime()
    rt.add_policy(https_only())
    rt.add_policy(
        ir.CelPolicy(
            name="big", effect="require_approval", tools=["fetch"], when="params.url.size() > 30"
        )
    )
    assert rt.gate(call("a", "fetch", params={"url": "https://x"})).decision == "allow"
    denied = rt.gate(call("a", "fetch", params={"url": "http://x"}))
    assert (denied.decision, denied.policies) == ("deny", ("https_only",))
    asked = rt.gate(call("a", "fetch", params={"url": "https://" + "x" * 40}))
    assert asked.decision == "require_approval" and asked.policies == ("big",)
    unknown = rt.gate(call("a", "nope"))
    assert unknown == type(unknown)("deny", "tool 'nope' is not registered")
    assert rt.events.query("action_executing") == []


def test_gate_decides_under_the_capability_named_as_execute_does() -> None:
    """`gate(action, capability=...)` answers as `execute` of a proposal under that capability
    would: a tool it denies, or does not allow, is `deny` with execute's reason; one it allows
    goes on to the policies; a capability the runtime does not have is an error (never a
    silent allow)."""
    program = ir.Program(
        tools=[
            ir.ToolSchema(name="shell", parameters={"type": "object"}),
            ir.ToolSchema(name="read", parameters={"type": "object"}),
        ],
        capabilities=[
            ir.Capability(name="agent", allowed_tools=["read", "shell"], denied_tools=["shell"]),
            ir.Capability(name="reader", allowed_tools=["read"]),
        ],
    )
    rt = Runtime.from_program(program)
    rt.register_tool("shell", lambda cmd: "RAN " + cmd)
    rt.register_tool("read", lambda path: path)
    shell = call("c1", "shell", params={"cmd": "ls"})
    gated = rt.gate(shell, capability="agent")
    ran = rt.execute(proposal(shell, capability="agent", id="turn")).results[0]
    assert ran.status.value == "rejected"
    assert (gated.decision, gated.reason) == ("deny", ran.error)
    assert gated.reason == "tool 'shell' is denied by capability 'agent'"
    assert rt.gate(shell, capability="reader").decision == "deny"
    assert rt.gate(call("r", "read", params={"path": "a"}), capability="reader").decision == "allow"
    assert rt.gate(shell).decision == "allow"  # no capability named, none set: as execute
    with pytest.raises(CarlangRuntimeError, match="capability 'nope'"):
        rt.gate(shell, capability="nope")


def test_a_pinned_capability_is_every_proposals_whatever_it_names() -> None:
    """A proposal an agent writes may name a capability (`"capability": "admin"`), which the
    runtime honoured: the agent chose its own rights. `from_program(capability=...)` pins
    one: a proposal naming none runs under it, one naming another is refused."""
    program = ir.Program(
        tools=[ir.ToolSchema(name="shell", parameters={"type": "object"})],
        capabilities=[
            ir.Capability(name="agent", denied_tools=["shell"]),
            ir.Capability(name="admin", allowed_tools=["shell"]),
        ],
        budgets=[ir.Budget(name="small", max_tool_calls=1)],
    )
    rt = Runtime.from_program(program, capability="agent", budget="small")
    rt.register_tool("shell", lambda cmd: "RAN " + cmd)
    shell = call("c1", "shell", params={"cmd": "ls"})
    plain = rt.execute(proposal(shell, id="turn")).results[0]
    assert (plain.status.value, plain.error) == (
        "rejected",
        "tool 'shell' is denied by capability 'agent'",
    )
    assert rt.execute(proposal(shell, capability="agent")).results[0].status.value == "rejected"
    with pytest.raises(CarlangRuntimeError, match="names capability 'admin', but this runtime"):
        rt.execute(proposal(shell, capability="admin", id="escalate"))
    # refused before anything is logged: no run that failed (which a resume would take up)
    assert not [e for e in rt.events if e.proposal_id == "escalate"]
    # a replan naming another is a replan that does not verify, not a crash of the run
    rt.register_tool("boom", lambda: 1 / 0)
    rt.with_replan(lambda context: proposal(shell, capability="admin", id="again"))
    aborted = rt.execute(proposal(call("b", "boom", failure_behavior="abort"), id="first"))
    assert aborted.results[0].status.value == "failed"
    (rejected,) = rt.events.query("replan_rejected")
    assert "names capability 'admin'" in rejected.data["issues"][0]
    with pytest.raises(CarlangRuntimeError, match="no capability 'root' to pin"):
        Runtime.from_program(program, capability="root")
    # ranked as `execute` runs them: a candidate naming another capability cannot run
    escalating = proposal(shell, capability="admin", id="escalating")
    assert [r.valid for r in rt.rank_candidates([escalating])] == [False]
    unpinned = Runtime.from_program(program)  # (a proposal's own choice, without a pin)
    assert [r.valid for r in unpinned.rank_candidates([escalating])] == [True]
    unpinned.register_tool("shell", lambda cmd: "RAN " + cmd)
    assert unpinned.execute(proposal(shell, capability="admin")).all_succeeded()


def test_format_tool_result_caps_on_a_character_boundary() -> None:
    rt = fetching_runtime()
    result = rt.execute(proposal(call("a", "fetch", params={"url": "é" * 50})))
    text = format_tool_result(result.results[0], max_chars=20)
    assert text.startswith('a: {"url": "éééééééé')
    assert text.endswith("more characters]") and len(text.splitlines()[0]) == 20
    assert format_tool_result(result) == 'a: {"url": "' + "é" * 50 + '"}'
    failed = ir.ActionResult(action_id="b", status="failed", error="boom")
    assert format_tool_result(failed) == "b: failed: boom"


def test_carlangs_own_tool_errors_keep_their_words_others_get_their_type() -> None:
    """An MCP server's answer or a subprocess tool's exit is worded already (`McpError: `
    before it told the client nothing); a Python tool's exception keeps its type name."""
    from carlang_runtime.mcp import McpError

    def offline() -> None:
        raise McpError("MCP server 'fs' is not running")

    def broken() -> None:
        raise RuntimeError("kaboom")

    rt = Runtime()
    rt.register_tool("offline", offline)
    rt.register_tool("broken", broken)
    result = rt.execute(
        proposal(
            call("a", "offline", failure_behavior="skip"),
            call("b", "broken", failure_behavior="skip"),
        )
    )
    assert errors(result) == {"a": "MCP server 'fs' is not running", "b": "RuntimeError: kaboom"}


def test_a_tools_own_timeout_error_is_its_failure_not_the_actions_deadline() -> None:
    """A tool that raises TimeoutError at once (its own client gave up) failed as "timed out
    after 5000 ms", the action's timeout, which never passed."""
    import time as clock

    def gives_up() -> None:
        raise TimeoutError("the upstream did not answer")

    async def gives_up_async() -> None:
        raise TimeoutError("the upstream did not answer")

    def sleeps() -> str:
        clock.sleep(0.3)
        return "late"

    rt = Runtime()
    rt.register_tool("gives_up", gives_up)
    rt.register_tool("gives_up_async", gives_up_async)
    rt.register_tool("sleeps", sleeps)
    result = rt.execute(
        proposal(
            call("a", "gives_up", timeout_ms=5000, failure_behavior="skip"),
            call("b", "gives_up_async", timeout_ms=5000, failure_behavior="skip"),
            call("c", "gives_up", failure_behavior="skip"),
            call("d", "sleeps", timeout_ms=50, failure_behavior="skip"),
        )
    )
    own = "TimeoutError: the upstream did not answer"
    assert errors(result) == {"a": own, "b": own, "c": own, "d": "timed out after 50 ms"}


def test_gate_denies_what_the_budget_would_skip() -> None:
    """A budget that allows no tool call (or no action) makes `gate` say deny with the
    reason `execute` gives the skipped action; a budget with room lets the policies decide;
    a budget the runtime does not have is an error, as for execute."""
    program = ir.Program(
        tools=[ir.ToolSchema(name="read", parameters={"type": "object"})],
        budgets=[
            ir.Budget(name="none", max_tool_calls=0),
            ir.Budget(name="still", max_actions=0),
            ir.Budget(name="some", max_tool_calls=3),
        ],
    )
    rt = Runtime.from_program(program)
    rt.register_tool("read", lambda path: path)
    read = call("r", "read", params={"path": "a"})
    ran = rt.execute(proposal(read, budget="none", id="turn")).results[0]
    for name in ("none", "still"):
        gated = rt.gate(read, budget=name)
        assert (gated.decision, gated.reason) == ("deny", ran.error)
    assert rt.gate(read, budget="some").decision == "allow"
    assert rt.gate(read).decision == "allow"
    rt.set_budget(ir.Budget(max_tool_calls=0))
    assert rt.gate(read).decision == "deny"
    with pytest.raises(CarlangRuntimeError, match="budget 'nope'"):
        rt.gate(read, budget="nope")


def test_a_retry_is_a_call_the_rate_limit_policies_count() -> None:
    """`rate_limit_tool flaky 2 per 1h`: each attempt calls the tool, so a proposal's
    `retry 8` makes two calls, not nine; the failure says why it was not retried. Another
    tool's limit does not stop it, and with room in the window it retries as ever."""
    calls: list[int] = []

    def flaky(n: int) -> None:
        calls.append(n)
        raise RuntimeError("down")

    rt = Runtime(sleep=lambda _seconds: asyncio.sleep(0))
    rt.register_tool("flaky", flaky)
    rt.add_policy(
        ir.RateLimitToolRule(
            name="rate_limit_tool:flaky", tool="flaky", max_calls=2, interval_secs=3600
        )
    )
    action = call("a", "flaky", params={"n": 1}, failure_behavior="retry", max_retries=8)
    result = rt.execute(proposal(action))
    assert calls == [1, 1]
    assert statuses(result) == {"a": "failed"}
    assert result.results[0].error == (
        "RuntimeError: down; not retried: rate_limit_tool:flaky: tool 'flaky' is over its"
        " limit of 2 calls per 3600s"
    )
    other = Runtime(sleep=lambda _seconds: asyncio.sleep(0))
    other.register_tool("flaky", flaky)
    other.add_policy(
        ir.RateLimitToolRule(name="rate_limit_tool:g", tool="g", max_calls=1, interval_secs=3600)
    )
    calls.clear()
    other.execute(proposal(action.model_copy(update={"max_retries": 3})))
    assert calls == [1, 1, 1, 1]
