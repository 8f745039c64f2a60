"""PolicySet: decisions, fail-closed evaluation, allow-lists, and CAR's built-in rule kinds."""

from __future__ import annotations

from typing import Any

import pytest
from carlang_runtime import ir
from carlang_runtime.ir import PolicyEffect
from carlang_runtime.jsonvalue import texts_of
from carlang_runtime.policy import PolicyLoadError, PolicySet
from hypothesis import given
from hypothesis import strategies as st

SECRET = "sk-live-4f9a8b7c6d5e4f3a2b1c"


def call(tool: str, **params: Any) -> ir.Action:
    return ir.Action(type="tool_call", tool=tool, parameters=params)


def write(key: str, value: Any) -> ir.Action:
    return ir.Action(type="state_write", parameters={"key": key, "value": value})


def cel(name: str, when: str | None, effect: str = "deny", tools: tuple[str, ...] = (), **kw: Any):
    return ir.CelPolicy(name=name, when=when, effect=effect, tools=list(tools), **kw)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- decisions ---------------------------------------------------------------------------


def test_no_policies_allow() -> None:
    decision = PolicySet().evaluate(call("fetch", url="x"))
    assert decision.allowed and decision.matches == ()


def test_deny_beats_approval_beats_allow() -> None:
    policies = PolicySet(
        [
            cel("ask_prod", 'params.env == "prod"', "require_approval", ("deploy",)),
            cel("no_friday", "params.day == 'fri'", "deny", ("deploy",)),
        ]
    )
    assert policies.evaluate(call("deploy", env="dev", day="mon")).allowed
    asked = policies.evaluate(call("deploy", env="prod", day="mon"))
    assert asked.needs_approval and [m.policy for m in asked.deciding] == ["ask_prod"]
    denied = policies.evaluate(call("deploy", env="prod", day="fri"))
    assert denied.denied
    assert [(m.policy, m.effect) for m in denied.matches] == [
        ("ask_prod", PolicyEffect.REQUIRE_APPROVAL),
        ("no_friday", PolicyEffect.DENY),
    ]
    assert denied.reason() == "no_friday: denied by policy no_friday"


def test_every_matching_policy_is_reported_with_its_message() -> None:
    policies = PolicySet(
        [
            cel("https_only", '!params.url.startsWith("https://")', message="https only"),
            cel("no_internal", 'params.url.contains("169.254")', message="no metadata"),
            cel("never", "false"),
        ]
    )
    decision = policies.evaluate(call("fetch", url="http://169.254.169.254/"))
    assert [(m.policy, m.reason) for m in decision.matches] == [
        ("https_only", "https only"),
        ("no_internal", "no metadata"),
    ]


def test_tools_globs_target_policies() -> None:
    policies = PolicySet([cel("no_rollback", None, tools=("rollback_*",))])
    assert policies.evaluate(call("rollback_db")).denied
    assert policies.evaluate(call("deploy")).allowed
    assert policies.evaluate(write("k", 1)).allowed


def test_untargeted_policies_see_every_action() -> None:
    policies = PolicySet([cel("no_writes", 'action.type == "state_write"')])
    assert policies.evaluate(write("k", 1)).denied
    assert policies.evaluate(call("fetch")).allowed
    # action.tool is null for a state write: comparing it is simply false.
    shells = PolicySet([cel("no_shell", 'action.tool == "shell"')])
    assert shells.evaluate(write("k", 1)).allowed
    assert shells.evaluate(call("shell")).denied


def test_conditions_see_state_scope_history_and_now() -> None:
    policies = PolicySet(
        [
            cel("frozen", 'state["deploys.frozen"] == true', tools=("deploy",)),
            cel("tenant", 'scope.tenant != "acme"'),
            cel("retry_storm", "history.filter(h, h.status == 'failed').size() >= 2"),
            cel("old_clock", "now < timestamp('2000-01-01T00:00:00Z')"),
        ]
    )
    ok = policies.evaluate(
        call("deploy"), state={"deploys.frozen": False}, scope={"tenant": "acme"}, history=[]
    )
    assert ok.allowed
    failed = [{"tool": "deploy", "status": "failed"}] * 2
    decision = policies.evaluate(
        call("deploy"), state={"deploys.frozen": True}, scope={"tenant": "other"}, history=failed
    )
    assert [m.policy for m in decision.matches] == ["frozen", "tenant", "retry_storm"]


# -- failing closed ----------------------------------------------------------------------


def test_a_deny_policy_that_cannot_be_evaluated_denies() -> None:
    policies = PolicySet([cel("port_check", "params.port > 1024", tools=("fetch",))])
    decision = policies.evaluate(call("fetch", url="x"))  # no port: no such key
    assert decision.denied
    (match,) = decision.matches
    assert match.error is not None and match.error.kind == "no_such_field"
    assert match.reason == "denied by policy port_check (its condition failed: no such key: 'port')"


def test_an_approval_policy_that_cannot_be_evaluated_requires_approval() -> None:
    policies = PolicySet([cel("big", "params.amount > 1000", "require_approval")])
    assert policies.evaluate(call("pay", amount="lots")).needs_approval


def test_a_condition_that_is_not_a_bool_counts_as_a_failure() -> None:
    decision = PolicySet([cel("odd", "params.url")]).evaluate(call("fetch", url="x"))
    assert decision.denied and "not a bool" in decision.matches[0].reason


def test_a_malformed_policy_fails_the_load() -> None:
    with pytest.raises(PolicyLoadError) as caught:
        PolicySet([cel("ok", "true"), cel("broken", "params.url ==")])
    assert caught.value.policy == "broken"
    assert "1:14" in str(caught.value)


def test_checked_loading_refuses_conditions_with_errors() -> None:
    fetch = ir.ToolSchema(
        name="fetch",
        parameters={"type": "object", "properties": {"url": {"type": "string"}}},
    )
    with pytest.raises(PolicyLoadError) as caught:
        PolicySet([cel("typo", "params.ulr == 'x'", tools=("fetch",))], tools=[fetch], check=True)
    assert "did you mean `url`" in str(caught.value)
    PolicySet([cel("fine", "params.url == 'x'", tools=("fetch",))], tools=[fetch], check=True)


# -- allow-lists -------------------------------------------------------------------------


def test_allow_policies_make_an_allow_list_for_their_tools() -> None:
    policies = PolicySet(
        [
            cel("arxiv", 'params.url.startsWith("https://arxiv.org/")', "allow", ("fetch",)),
            cel("docs", 'params.url.startsWith("https://docs.python.org/")', "allow", ("fetch",)),
        ]
    )
    assert policies.evaluate(call("fetch", url="https://arxiv.org/abs/1")).allowed
    assert policies.evaluate(call("fetch", url="https://docs.python.org/3/")).allowed
    denied = policies.evaluate(call("fetch", url="https://evil.example/"))
    assert denied.denied
    assert denied.matches[0].policy == "arxiv, docs"
    assert (
        denied.matches[0].reason == "not allowed: no allow policy matches this call (arxiv, docs)"
    )
    # Other tools are not on the list.
    assert policies.evaluate(call("search", q="x")).allowed


def test_an_allow_list_denial_says_the_allow_policies_messages() -> None:
    """The allow policies' own words say why a call is not allowed (each once, in order);
    the generic reason only when none has a message."""
    only = 'params.to.endsWith("@bank.example")'
    policies = PolicySet(
        [
            cel("mail_to", only, "allow", ("mail",), message="mail goes to bank.example only"),
            cel("internal", 'params.to == "ops"', "allow", ("mail",)),
            cel("also", only, "allow", ("mail",), message="mail goes to bank.example only"),
        ]
    )
    denied = policies.evaluate(call("mail", to="a@evil.example"))
    assert denied.matches[0].reason == (
        "not allowed: mail goes to bank.example only (mail_to, internal, also)"
    )


def test_an_allow_policy_that_fails_does_not_allow() -> None:
    policies = PolicySet([cel("hosts", "params.host.endsWith('.corp')", "allow", ("ssh",))])
    decision = policies.evaluate(call("ssh"))
    assert decision.denied and "failed: hosts: no such key" in decision.matches[0].reason


def test_explanations_on_request() -> None:
    policies = PolicySet([cel("prod", 'params.env == "prod" && params.replicas > 3')])
    plain = policies.evaluate(call("deploy", env="prod", replicas=5))
    assert plain.matches[0].explanation is None
    explained = policies.evaluate(call("deploy", env="prod", replicas=5), explain=True)
    assert str(explained.matches[0].explanation) == (
        'params.env == "prod" -> true; params.replicas > 3 -> true'
    )


# -- CAR's built-in rules ----------------------------------------------------------------


def test_deny_tool() -> None:
    policies = PolicySet([ir.DenyToolRule(name="deny_tool:deploy", tool="deploy")])
    decision = policies.evaluate(call("deploy", env="prod"))
    assert [(m.policy, m.reason) for m in decision.matches] == [
        ("deny_tool:deploy", "tool 'deploy' denied")
    ]
    assert policies.evaluate(call("deploy_docs")).allowed
    assert policies.evaluate(write("deploy", 1)).allowed


def test_a_built_in_rules_message_leads_its_reason() -> None:
    """`message "..."` on a built-in rule (carlang's; CAR's rules have none) comes first,
    what the rule found after it, as a CEL policy's failure reads."""
    said = ir.DenyKeywordRule(name="deny_keyword", keywords=["ssn"], message="no SSNs")
    decision = PolicySet([said]).evaluate(call("note", text="my ssn"))
    assert decision.matches[0].reason == (
        "no SSNs (param 'text' of 'note' contains a denied keyword)"
    )
    shell = ir.DenyToolRule(name="deny_tool:shell", tool="shell", message="no shells")
    assert PolicySet([shell]).evaluate(call("shell")).matches[0].reason == (
        "no shells (tool 'shell' denied)"
    )


def test_deny_keyword_reads_every_parameter_as_text() -> None:
    policies = PolicySet([ir.DenyKeywordRule(name="deny_keyword", keywords=["DROP TABLE"])])
    decision = policies.evaluate(call("sql", query="x; DROP TABLE users", limit=3))
    assert decision.matches[0].reason == "param 'query' of 'sql' contains a denied keyword"
    nested = policies.evaluate(call("sql", body={"statements": ["DROP TABLE t"]}))
    assert nested.denied
    assert policies.evaluate(call("sql", query="select 1")).allowed
    assert policies.evaluate(write("note", "DROP TABLE")).allowed  # tool calls only


_KEYWORD_PARTS = st.sampled_from(["a", "b", ".", "*", "(", "1", "-", "ru", "e", '"', "é", ""])
_PARAM_VALUES = st.recursive(
    st.one_of(
        st.text(st.sampled_from('ab.*(1"é'), max_size=5),
        st.integers(-300, 300),
        st.sampled_from([True, False, None, 2**70, 1.5]),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("ab"), inner),
    max_leaves=6,
)


@given(
    st.lists(st.lists(_KEYWORD_PARTS, max_size=3).map("".join), max_size=3),
    st.dictionaries(st.sampled_from(["p", "q", "r"]), _PARAM_VALUES, max_size=3),
)
def test_deny_keyword_denies_exactly_a_parameter_text_holding_a_keyword(
    keywords: list[str], params: dict[str, Any]
) -> None:
    policies = PolicySet([ir.DenyKeywordRule(name="deny_keyword", keywords=keywords)])
    decision = policies.evaluate(call("t", **params))
    hit = next(
        (n for n, v in params.items() if any(k and k in t for t in texts_of(v) for k in keywords)),
        None,
    )
    if hit is None:
        assert decision.allowed
    else:
        assert decision.matches[0].reason == f"param '{hit}' of 't' contains a denied keyword"


def test_text_rules_read_strings_inside_values_as_written() -> None:
    """A list or map parameter is searched in its JSON text (CAR's string coercion) and in
    every string and key inside it as written: JSON escapes a backslash, a quote and control
    characters, so `C:\\Windows` in a list was not found in `["C:\\\\Windows"]`."""
    keyword = PolicySet([ir.DenyKeywordRule(name="deny_keyword", keywords=["C:\\Windows", 'a"b'])])
    assert keyword.evaluate(call("pay", tags=["C:\\Windows\\System32"])).denied
    assert keyword.evaluate(call("pay", tags={"note": 'say a"b'})).denied
    assert keyword.evaluate(call("pay", tags={'a"b': 1})).denied  # a key too
    assert keyword.evaluate(call("pay", tags=["D:\\data"])).allowed
    contains = PolicySet([ir.DenyToolParamRule(name="d", tool="pay", param="tags", contains="\n")])
    assert contains.evaluate(call("pay", tags=["line\nbreak"])).denied
    matching = PolicySet(
        [ir.DenyToolParamMatchingRule(name="m", tool="pay", param="tags", matches='^a"b$')]
    )
    assert matching.evaluate(call("pay", tags=['a"b'])).denied
    assert matching.evaluate(call("pay", tags=["ab"])).allowed


def test_deny_tool_param_equals_a_number_whatever_its_form() -> None:
    """A denied 100 written 100.0 or 1e2 (a JSON Schema `integer` accepts both) is denied,
    at any depth; a bool is still no number, and an allow list stays exact (fail closed)."""
    equals = PolicySet([ir.DenyToolParamRule(name="d", tool="pay", param="amount", equals=100)])
    for value in (100, 100.0, 1e2):
        assert equals.evaluate(call("pay", amount=value)).denied, value
    assert equals.evaluate(call("pay", amount=100.5)).allowed
    nested = PolicySet(
        [ir.DenyToolParamRule(name="d", tool="pay", param="split", equals=[1, {"n": 2}])]
    )
    assert nested.evaluate(call("pay", split=[1.0, {"n": 2.0}])).denied
    flag = PolicySet([ir.DenyToolParamRule(name="d", tool="pay", param="n", equals=1)])
    assert flag.evaluate(call("pay", n=True)).allowed
    allowed = PolicySet([ir.AllowToolParamRule(name="a", tool="pay", param="amount", allow=[100])])
    assert allowed.evaluate(call("pay", amount=100.0)).denied


def test_deny_tool_param_contains_equals_and_presence() -> None:
    contains = PolicySet(
        [
            ir.DenyToolParamRule(
                name="deny_tool_param:http.url", tool="http", param="url", contains="169.254"
            )
        ]
    )
    decision = contains.evaluate(call("http", url="http://169.254.169.254/latest"))
    assert decision.matches[0].reason == "param 'url' of 'http' matches a denied value"
    assert contains.evaluate(call("http", url="https://example.com")).allowed
    assert contains.evaluate(call("http")).allowed  # absent: nothing to match
    equals = PolicySet(
        [
            ir.DenyToolParamRule(
                name="deny_tool_param:deploy.env", tool="deploy", param="env", equals="prod"
            )
        ]
    )
    assert equals.evaluate(call("deploy", env="prod")).denied
    assert equals.evaluate(call("deploy", env="production")).allowed
    present = PolicySet(
        [ir.DenyToolParamRule(name="deny_tool_param:shell.sudo", tool="shell", param="sudo")]
    )
    assert present.evaluate(call("shell", sudo=False)).denied
    assert present.evaluate(call("shell", cmd="ls")).allowed


def test_allow_tool_param_fails_closed_three_ways() -> None:
    rule = ir.AllowToolParamRule(
        name="allow_tool_param:send.to",
        tool="send",
        param="to",
        allow=["+15550100", "oncall@example.invalid"],
    )
    policies = PolicySet([rule])
    assert policies.evaluate(call("send", to="+15550100")).allowed
    unlisted = policies.evaluate(call("send", to="+15559999"))
    assert unlisted.matches[0].reason == "param 'to' of 'send' is not one of the allowed values"
    assert policies.evaluate(call("send", to="ONCALL@example.invalid")).denied  # case-sensitive
    missing = policies.evaluate(call("send", body="hi"))
    assert "missing" in missing.matches[0].reason
    empty = PolicySet([rule.model_copy(update={"allow": []})])
    assert "no value" in empty.evaluate(call("send", to="+15550100")).matches[0].reason
    assert policies.evaluate(call("other", to="anyone")).allowed


def test_deny_tool_param_matching() -> None:
    rule = ir.DenyToolParamMatchingRule(
        name="deny_tool_param_matching:send.body",
        tool="send",
        param="body",
        matches="sk-[A-Za-z0-9-]{20,}",
    )
    policies = PolicySet([rule])
    decision = policies.evaluate(call("send", body=f"here is the key {SECRET} ok"))
    assert decision.matches[0].reason == "param 'body' of 'send' matches a denied pattern"
    assert policies.evaluate(call("send", body="nothing secret")).allowed
    assert policies.evaluate(call("send")).allowed  # absent: not a violation
    broken = PolicySet([rule.model_copy(update={"matches": "sk-[unclosed"})])
    reason = broken.evaluate(call("send", body="anything")).matches[0].reason
    assert "does not compile" in reason and "missing ]" in reason
    assert broken.evaluate(call("other", body="x")).allowed


def test_reasons_never_echo_the_matched_value() -> None:
    policies = PolicySet(
        [
            ir.DenyKeywordRule(name="deny_keyword", keywords=[SECRET[:12]]),
            ir.DenyToolParamRule(
                name="deny_tool_param:send.body", tool="send", param="body", contains=SECRET[:10]
            ),
            ir.DenyToolParamMatchingRule(
                name="deny_tool_param_matching:send.body",
                tool="send",
                param="body",
                matches="sk-live-[0-9a-f]+",
            ),
            ir.AllowToolParamRule(
                name="allow_tool_param:send.body", tool="send", param="body", allow=["hello"]
            ),
        ]
    )
    decision = policies.evaluate(call("send", body=SECRET))
    assert len(decision.matches) == 4
    for match in decision.matches:
        assert SECRET[:8] not in match.reason, match


def test_rate_limit_tool_is_a_sliding_window_spent_at_admission() -> None:
    clock = FakeClock()
    policies = PolicySet(
        [
            ir.RateLimitToolRule(
                name="rate_limit_tool:send", tool="send", max_calls=2, interval_secs=60
            ),
        ],
        clock=clock,
    )
    assert policies.evaluate(call("send")).allowed
    clock.now += 10
    assert policies.evaluate(call("send")).allowed
    clock.now += 10
    refused = policies.evaluate(call("send"))
    assert refused.matches[0].reason == "tool 'send' is over its limit of 2 calls per 60s"
    # A refused call takes no slot: once the first admission ages out, one more is admitted.
    clock.now = 1000 + 60
    assert policies.evaluate(call("send")).allowed
    assert policies.evaluate(call("send")).denied
    # A dry run spends nothing.
    clock.now += 100
    for _ in range(5):
        assert policies.evaluate(call("send"), admit=False).allowed
    assert policies.evaluate(call("send")).allowed
    assert policies.evaluate(call("other")).allowed


def test_rate_limit_budget_is_spent_even_when_another_rule_denies() -> None:
    clock = FakeClock()
    policies = PolicySet(
        [
            ir.RateLimitToolRule(
                name="rate_limit_tool:send", tool="send", max_calls=1, interval_secs=60
            ),
            cel("no_spam", "params.body == 'spam'", tools=("send",)),
        ],
        clock=clock,
    )
    assert policies.evaluate(call("send", body="spam")).denied  # by no_spam, slot taken
    decision = policies.evaluate(call("send", body="hi"))
    assert [m.policy for m in decision.matches] == ["rate_limit_tool:send"]
    zero = PolicySet([ir.RateLimitToolRule(name="r", tool="send", max_calls=0, interval_secs=1)])
    assert zero.evaluate(call("send")).denied


def test_require_state_is_exact_equality() -> None:
    policies = PolicySet([ir.RequireStateRule(name="require_state:tests", key="tests", value=True)])
    assert policies.evaluate(call("deploy"), state={"tests": True}).allowed
    decision = policies.evaluate(call("deploy"), state={"tests": "true"})
    assert decision.matches[0].reason == "state['tests'] must be true"
    assert policies.evaluate(call("deploy"), state={}).denied
    assert policies.evaluate(write("x", 1), state={}).denied  # every action
    numbers = PolicySet([ir.RequireStateRule(name="r", key="level", value=2)])
    assert numbers.evaluate(call("t"), state={"level": 2}).allowed
    # CAR compares serde_json values: the float 2.0 is not the integer 2.
    assert numbers.evaluate(call("t"), state={"level": 2.0}).denied
    objects = PolicySet([ir.RequireStateRule(name="r", key="cfg", value={"a": [1]})])
    assert objects.evaluate(call("t"), state={"cfg": {"a": [1]}}).allowed
    assert objects.evaluate(call("t"), state={"cfg": {"a": [1, 2]}}).denied


def test_names_and_growth() -> None:
    policies = PolicySet([ir.DenyToolRule(name="deny_tool:a", tool="a")])
    assert policies.evaluate(call("b")).allowed
    policies.add(ir.DenyToolRule(name="deny_tool:b", tool="b"))
    assert policies.evaluate(call("b")).denied  # the per-tool cache was refreshed
    assert policies.names == ["deny_tool:a", "deny_tool:b"] and len(policies) == 2


def test_trace_lists_every_policy_matched_or_not() -> None:
    policies = PolicySet(
        [
            cel("https_only", '!params.url.startsWith("https://")', tools=("fetch",)),
            cel("arxiv", 'params.url.startsWith("https://arxiv.org/")', "allow", ("fetch",)),
            cel("prod", 'params.env == "prod"', "require_approval", ("deploy",)),
            ir.RateLimitToolRule(name="rate", tool="fetch", max_calls=1, interval_secs=60),
        ]
    )
    decision, traces = policies.trace(call("fetch", url="https://arxiv.org/abs/1"))
    assert decision.allowed
    assert [(t.policy, t.applies, t.matched) for t in traces] == [
        ("https_only", True, False),
        ("arxiv", True, True),
        ("prod", False, False),
        ("rate", True, False),
    ]
    assert str(traces[0].explanation) == '!params.url.startsWith("https://") -> false'
    assert traces[1].reason == "allowed by policy arxiv"
    # A trace is a dry run: the rate limit still has its one slot.
    assert policies.evaluate(call("fetch", url="https://arxiv.org/abs/1")).allowed
    assert policies.evaluate(call("fetch", url="https://arxiv.org/abs/1")).denied


@pytest.mark.parametrize(
    ("when", "reads"),
    [
        ('params.card.startsWith("4")', {"card"}),
        ('params["a"] > 1 && has(params.b)', {"a", "b"}),
        ('action.params.c == 1 && action.tool == "pay"', {"c"}),
        ("state.open == true", set()),
        ("params.size() > 2", None),  # the map whole
        ('params.exists(k, k == "a")', None),
        ("params[state.key] == 1", None),  # a computed key
        ("action == {}", None),  # `action` whole holds the params
    ],
)
def test_the_parameters_a_policy_reads(when: str, reads: set[str] | None) -> None:
    policies = PolicySet(
        [
            cel("p", when, tools=("pay",)),
            cel("other_tool", "params.x == 1", tools=("refund",)),
            ir.DenyToolParamRule(name="no_test_cards", tool="pay", param="card", equals="4242"),
            ir.DenyKeywordRule(name="deny_keyword", keywords=["DROP"]),
        ]
    )
    found = dict(policies.parameter_readers("pay"))
    expected = None if reads is None else frozenset(reads)
    if reads == set():
        assert "p" not in found  # it reads no parameter at all
    else:
        assert found["p"] == expected
    assert found["no_test_cards"] == {"card"} and found["deny_keyword"] is None
    assert "other_tool" not in found


# -- declared effects are state writes ---------------------------------------------------


def test_a_tool_calls_declared_effects_are_judged_as_state_writes() -> None:
    """A tool call's `expected_effects` are committed to state when it succeeds: a rule
    against writing a key holds for them as for a `state_write` (it was bypassed by declaring
    the write as an effect of a harmless call)."""
    policies = PolicySet(
        [
            cel("no_admin", 'action.type == "state_write" && params.key == "admin"'),
            cel("ask_big", 'action.type == "state_write" && params.value > 10', "require_approval"),
        ]
    )
    sneaky = ir.Action(
        type="tool_call", tool="echo", parameters={"text": "hi"}, expected_effects={"admin": True}
    )
    decision = policies.evaluate(sneaky)
    assert decision.denied
    assert decision.reason() == (
        "no_admin: denied by policy no_admin (on its declared effect `admin`, a state write)"
    )
    big = sneaky.model_copy(update={"expected_effects": {"count": 11}})
    assert policies.evaluate(big).needs_approval
    fine = sneaky.model_copy(update={"expected_effects": {"count": 3}})
    assert policies.evaluate(fine).allowed
    # a policy that targets tools judges the call only: a state write is no tool's call
    targeted = PolicySet([cel("echo_writes", 'action.type == "state_write"', tools=("echo",))])
    assert targeted.evaluate(sneaky).allowed
    # an allow-list for every action must allow the write too
    listed = PolicySet([cel("calls_only", 'action.type == "tool_call"', "allow")])
    assert listed.evaluate(call("echo", text="hi")).allowed
    assert listed.evaluate(sneaky).denied
    # explained (`carlang explain`): the values that decided the match are the write's
    _, traces = policies.trace(sneaky)
    assert traces[0].matched
    assert str(traces[0].explanation) == (
        'action.type == "state_write" -> true; params.key == "admin" -> true'
    )


@given(
    url=st.sampled_from(["https://a", "http://a", "ftp://b", ""]),
    n=st.integers(-3, 3),
)
def test_a_trace_without_explanations_decides_and_matches_as_one_with_them(
    url: str, n: int
) -> None:
    """`carlang test` traces without explanations (they were most of its time) and explains
    only a failing case: what each policy made of the action must be the same either way."""
    policies = PolicySet(
        [
            cel("https", '!params.url.startsWith("https://")', tools=("fetch",)),
            cel("ask", "params.n > 1", effect="require_approval", tools=("fetch",)),
            cel("fails", "params.missing == 1", tools=("fetch",)),  # an error: it applies
            cel("only", "params.n >= 0", effect="allow", tools=("fetch",)),
            cel("only_err", "params.nope > 0", effect="allow", tools=("fetch",)),
            cel("elsewhere", "true", tools=("other",)),
        ]
    )
    action = call("fetch", url=url, n=n)
    told, explained = policies.trace(action), policies.trace(action, explained=False)

    def decided(decision: Any) -> tuple[Any, ...]:  # (errors are compared as text)
        return decision.effect, [(m.policy, m.reason, str(m.error)) for m in decision.matches]

    assert decided(told[0]) == decided(explained[0])

    def seen(trace: Any) -> tuple[Any, ...]:
        return (trace.policy, trace.applies, trace.matched, trace.reason, str(trace.error))

    assert [seen(t) for t in told[1]] == [seen(t) for t in explained[1]]
    assert all(t.explanation is None for t in explained[1])
    assert any(t.explanation is not None for t in told[1])


_TARGETS = st.lists(st.sampled_from(["a", "b", "c", "a*", "*", "b?"]), max_size=3)


@given(
    st.lists(
        st.tuples(st.booleans(), _TARGETS, st.sampled_from(["deny", "require_approval", "allow"])),
        min_size=1,
        max_size=8,
    )
)
def test_the_rules_for_a_tool_are_those_every_rule_checked_would_give(
    rules: list[tuple[bool, list[str], str]],
) -> None:
    """The rules that apply to a tool are found from an index by name (checking every rule
    for every tool made 3,000 tools and policies quadratic): the same rules, in declaration
    order, as testing each rule, for CEL policies with names, patterns or no target and for
    built-in rules with a tool or none."""
    declared: list[ir.Policy] = []
    for n, (native, targets, effect) in enumerate(rules):
        if native:
            tool = next((t for t in targets if "*" not in t and "?" not in t), None)
            if tool is None:  # (a rule for every tool)
                declared.append(ir.DenyKeywordRule(name=f"k{n}", keywords=["x"]))
            else:
                declared.append(ir.DenyToolRule(name=f"k{n}", tool=tool))
        else:
            declared.append(cel(f"p{n}", "true", effect, tuple(targets)))
    policies = PolicySet(declared)
    for tool in ("a", "b", "c", "ab", "bb", None):
        found = policies._for_tool(tool)
        expected = [
            p.name
            for p in declared
            if (
                isinstance(p, ir.CelPolicy)
                and (not p.tools or (tool is not None and any(_glob(t, tool) for t in p.tools)))
            )
            or (not isinstance(p, ir.CelPolicy) and getattr(p, "tool", None) in (None, tool))
        ]
        shown = [r.policy.name if hasattr(r, "policy") else r[0].name for r in found.rules]
        allowed = [r.policy.name for r in found.allows]
        assert sorted(shown + allowed, key=expected.index) == expected
        assert shown == [name for name in expected if name not in allowed]


def _glob(pattern: str, name: str) -> bool:
    from fnmatch import fnmatchcase

    return fnmatchcase(name, pattern)
