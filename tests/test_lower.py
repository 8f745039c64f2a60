"""Lowering: what each construct becomes in the IR."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from carlang_runtime import ir

from carlang.compiler import compile_file, compile_text
from tests.helpers import codes, compile_diagnostics, compile_ok


def test_tool_schema() -> None:
    program = compile_ok(
        'tool t(a: string, b?: int, c: float = 1.5, d: list[string] = [], e: map[bool], f: "x" | "y") -> list[any] {\n'
        '  description "does t"  idempotent  cache 2m  rate 5 per 30s  reversibility compensable\n}\n'
        'proposal p { x = t(a: "s", e: {}, f: "x") { compensate with x } }\n'
    )
    tool = program.tools[0]
    assert tool.parameters == {
        "type": "object",
        "properties": {
            "a": {"type": "string"},
            "b": {"type": "integer"},
            "c": {"type": "number", "default": 1.5},
            "d": {"type": "array", "items": {"type": "string"}, "default": []},
            "e": {"type": "object", "additionalProperties": {"type": "boolean"}},
            "f": {"type": "string", "enum": ["x", "y"]},
        },
        "required": ["a", "e", "f"],
        "additionalProperties": False,  # a signature names every parameter
    }
    assert tool.returns == {"type": "array", "items": {}}
    assert (tool.description, tool.idempotent, tool.cache_ttl_secs) == ("does t", True, 120)
    assert tool.rate_limit == ir.ToolRateLimit(max_calls=5, interval_secs=30.0)
    assert tool.reversibility == ir.Reversibility.COMPENSABLE


def test_call_parameters_get_declared_defaults() -> None:
    program = compile_ok('tool t(a: string, n: int = 5)\nproposal p { x = t(a: "s") }\n')
    assert program.proposals[0].actions[0].parameters == {"a": "s", "n": 5}


def test_actions_inherit_from_their_tool() -> None:
    program = compile_ok(
        "tool get(n: int) { idempotent  reversibility reversible }\n"
        "proposal p { a = get(n: 1)  b = get(n: 2) { irreversible } }\n"
    )
    a, b = program.proposals[0].actions
    assert a.idempotent and a.reversibility == ir.Reversibility.REVERSIBLE
    assert b.idempotent and b.reversibility == ir.Reversibility.IRREVERSIBLE


def test_action_items() -> None:
    program = compile_ok(
        "tool t(n: int)\ntool undo(x: int)\nstate { k: int = 1  j: any }\n"
        'proposal p {\n  a = t(n: 1) {\n    requires k >= 1 "k set"\n    requires exists k\n    reads k\n'
        "    effects { j = [1] }\n    retry 4\n    timeout 2s\n    compensate undo(x: 1)\n"
        '    meta { owner: "me" }\n    mode long_running\n  }\n  b = t(n: 2) after a { on_failure skip }\n}\n'
    )
    a, b = program.proposals[0].actions
    assert a.preconditions == [
        ir.Precondition(key="k", operator="gte", value=1, description="k set"),
        ir.Precondition(key="k", operator="exists"),
    ]
    assert a.state_dependencies == ["k"] and a.expected_effects == {"j": [1]}
    assert (a.failure_behavior, a.max_retries, a.timeout_ms) == (ir.FailureBehavior.RETRY, 4, 2000)
    assert a.compensation == ir.ToolCompensation(tool="undo", parameters={"x": 1})
    assert a.reversibility == ir.Reversibility.COMPENSABLE  # implied by compensate
    assert a.metadata == {"owner": "me"} and a.invocation_mode == ir.InvocationMode.LONG_RUNNING
    assert b.depends_on == ["a"] and b.failure_behavior == ir.FailureBehavior.SKIP


def test_state_actions() -> None:
    program = compile_ok(
        "state { k: int = 1  z: any }\nproposal p {\n  w = set k = 2\n  r = read k\n"
        "  e = assert k == 2\n  g = assert k > 1\n  n = assert not exists z\n}\n"
    )
    w, r, e, g, n = program.proposals[0].actions
    assert (w.type, w.parameters) == (ir.ActionType.STATE_WRITE, {"key": "k", "value": 2})
    assert (r.type, r.parameters, r.state_dependencies) == (
        ir.ActionType.STATE_READ,
        {"key": "k"},
        ["k"],
    )
    assert (e.type, e.parameters) == (ir.ActionType.ASSERTION, {"key": "k", "expected": 2})
    assert g.parameters == {"key": "k", "operator": "gt", "value": 1}
    assert n.parameters == {"key": "z", "operator": "not_exists"} and n.state_dependencies == []


def test_proposal_header_and_context() -> None:
    program = compile_ok(
        "tool t()\ncapability c {}\nbudget b {}\n"
        'proposal p from "model-x" under b, c { context { a: 1 }  x = t()  context { b: 2 } }\n'
    )
    proposal = program.proposals[0]
    assert (proposal.id, proposal.source, proposal.capability, proposal.budget) == (
        "p",
        "model-x",
        "c",
        "b",
    )
    assert proposal.context == {"a": 1, "b": 2}
    assert proposal.loc is not None and proposal.loc.line == 4


def test_state_capabilities_budgets() -> None:
    program = compile_ok(
        "tool t()\nstate { ready: bool = true  build.*: any }\n"
        "capability c { tools allow t, r_* deny x  tools deny y  state allow build.*  max_actions 3 }\n"
        "budget b { max_actions 1  max_tool_calls 2  max_duration 1m }\nproposal p under c, b { a = t() }\n"
    )
    assert program.initial_state == {"ready": True}
    assert [(s.key, s.type) for s in program.state] == [
        ("ready", {"type": "boolean"}),
        ("build.*", None),
    ]
    cap = program.capabilities[0]
    assert (cap.allowed_tools, cap.denied_tools, cap.allowed_state_keys, cap.max_actions) == (
        ["t", "r_*"],
        ["x", "y"],
        ["build.*"],
        3,
    )
    assert program.budgets[0] == ir.Budget(
        name="b", max_actions=1, max_tool_calls=2, max_duration_ms=60000, loc=program.budgets[0].loc
    )


def test_policies_and_rules() -> None:
    result = compile_diagnostics(
        "tool t(a: string)\nstate { k: int = 0 }\n"
        'policy p: require_approval t when params.a == "x"\n  message "m"\n'
        "policy q: deny\n"
        'deny_tool t\ndeny_keyword ["x"]\ndeny_keyword ["y"]\ndeny_tool_param t.a equals "x"\n'
        'allow_tool_param t.a ["ok"]\ndeny_tool_param_matching t.a "^h"\nrate_limit_tool t 3 per 1s\n'
        'require_state k == 0\nproposal p1 { z = t(a: "ok") }\n'
    )
    # the proposal's only action is denied by `deny_tool t` and by `q`, both certain
    assert [d.code for d in result.diagnostics.sorted()] == ["CL0520", "CL0520"]
    assert result.program is not None
    program = result.program
    policies = {p.name: p for p in program.policies}
    assert (
        isinstance(policies["p"], ir.CelPolicy)
        and policies["p"].effect == ir.PolicyEffect.REQUIRE_APPROVAL
    )
    assert (
        policies["p"].tools == ["t"]
        and policies["p"].when == 'params.a == "x"'
        and policies["p"].message == "m"
    )
    assert policies["p"].when_loc is not None and policies["p"].when_loc.column == 35
    assert (
        isinstance(policies["q"], ir.CelPolicy)
        and policies["q"].when is None
        and policies["q"].tools == []
    )
    assert sorted(policies) == sorted(
        [
            "p",
            "q",
            "deny_tool:t",
            "deny_keyword",
            "deny_keyword:2",
            "deny_tool_param:t.a",
            "allow_tool_param:t.a",
            "deny_tool_param_matching:t.a",
            "rate_limit_tool:t",
            "require_state:k",
        ]
    )
    rate = policies["rate_limit_tool:t"]
    assert isinstance(rate, ir.RateLimitToolRule) and (rate.max_calls, rate.interval_secs) == (
        3,
        1.0,
    )


def test_plans() -> None:
    program = compile_ok(
        "tool t()\nproposal a { x = t() }\nproposal b { y = t() }\n"
        "plan choose { candidates a, b  cost_weight 0.4  target tool_calls 2, actions 3, duration 1s  set approval_penalty = 0.5 }\n"
    )
    plan = program.plans[0]
    assert plan.candidates == ["a", "b"] and plan.settings == {"approval_penalty": 0.5}
    assert plan.cost_target == ir.CostTarget(
        target_tool_calls=2, target_actions=3, target_duration_ms=1000.0, cost_weight=0.4
    )


def test_output_is_deterministic() -> None:
    text = 'tool t(a: string)\nproposal p { x = t(a: "s")  y = t(a: "q") after x }\n'
    assert compile_ok(text).model_dump_json() == compile_ok(text).model_dump_json()


def test_problems_found_while_lowering() -> None:
    assert codes("tool t(x: strng)") == ["CL0204", "CL0207"]  # errors first
    assert codes("tool t()\nproposal p { a = t(y: 1) }") == ["CL0203"]
    assert codes('state { k: int }\nproposal p { a = set k = "s" }') == ["CL0205"]
    assert codes("tool t()\nproposal p under nope { a = t() }") == ["CL0202"]


@pytest.mark.parametrize(
    ("written", "ms"), [("250ms", 250), ("1m30s", 90_000), ("1.5s", 1500), ("2h", 7_200_000)]
)
def test_durations_use_cels_duration_grammar(written: str, ms: int) -> None:
    from carlang.fmt import format_source
    from carlang.source import Source

    text = f"tool t()\nproposal p {{\n  a = t() {{\n    timeout {written}\n  }}\n}}\n"
    (action,) = compile_ok(text).proposals[0].actions
    assert action.timeout_ms == ms
    assert f"timeout {written}" in format_source(Source("d.car", text))  # kept as written


def test_a_duration_below_a_millisecond_is_an_error() -> None:
    result = compile_diagnostics("tool t()\nproposal p {\n  a = t() {\n    timeout 100us\n  }\n}\n")
    messages = [d.message for d in result.diagnostics.items if d.code == "CL0104"]
    assert messages == ["duration 100us is not a whole number of milliseconds"]


def test_a_policy_approval_timeout_is_a_carlang_extension_in_milliseconds() -> None:
    program = compile_ok(
        "tool ship(env: string)\n"
        'policy prod: require_approval ship when params.env == "prod"\n'
        '  approval_timeout 1m30s\n  message "a human decides"\n'
        "policy any: require_approval ship approval_timeout 2h\n"
    )
    prod, anytime = program.policies
    assert isinstance(prod, ir.CelPolicy) and isinstance(anytime, ir.CelPolicy)
    assert (prod.approval_timeout_ms, prod.message) == (90_000, "a human decides")
    assert anytime.approval_timeout_ms == 7_200_000
    plain = compile_ok("tool ship(env: string)\npolicy p: require_approval ship\n")
    assert "approval_timeout_ms" not in plain.model_dump(mode="json")["policies"][0]
    misplaced = "tool ship(env: string)\npolicy p: deny ship when true\n  approval_timeout 2h\n"
    assert codes(misplaced) == ["CL0504"]
    zero = "tool ship(env: string)\npolicy p: require_approval ship approval_timeout 0s\n"
    assert codes(zero) == ["CL0213"]


def test_actions_and_locations_are_whole_models_in_field_order() -> None:
    """Lowering builds actions without pydantic's `model_construct`: each still has every
    field, in the model's order, all marked as set (what `model_construct` made)."""
    from carlang.compiler import compile_text

    result = compile_text(
        'tool fetch(url: string)\nproposal p {\n  a = fetch(url: "https://x")\n'
        "  b = set k = 1 after a { retry 2 }\n}\n"
    )
    assert result.program is not None
    for action in result.program.proposals[0].actions:
        for model in (action, action.loc):
            assert list(vars(model)) == list(type(model).model_fields)
            assert model.model_fields_set == set(type(model).model_fields)
            assert model == type(model).model_construct(**vars(model))


_PROGRAMS = sorted(
    p
    for folder in ("examples", "tests")
    for p in (Path(__file__).resolve().parent.parent / folder).rglob("*.car")
)

_EVERY_CONSTRUCT = """
mcp_server files { command "files-server" }
tool files.read(path: string) -> string
tool t(a: string, n: int = 2) -> object {
  description "t"  idempotent  cache 60s  rate 5 per 1m  reversibility compensable
}
tool u(x: int) { reversibility reversible }
state { done: bool = false  count.*: int  k: int = 1 }
capability c {
  tools allow t, u, files.* deny v
  state allow done, count.*, k
  max_actions 9
}
budget b { max_actions 9  max_tool_calls 8  max_duration 10s }
policy p1: deny t when params.n > 3
  message "too many"
policy p2: require_approval u
deny_tool v
deny_keyword ["rm -rf"]
deny_tool_param u.x equals 7
deny_tool_param t.a contains "y"
allow_tool_param t.n [1, 2]
deny_tool_param_matching t.a "^secret"
rate_limit_tool t 3 per 1m
require_state k == 1
tool v()
proposal one from "m" under c, b {
  a = t(a: "s") {
    requires k == 1 "why"  reads k  effects { done = true }  retry 2  on_failure skip
    timeout 5s  compensate u(x: 1)  meta { o: 1 }  mode streaming
  }
  b = u(x: 2) after a { compensate with a }
  w = set k = 3 after b
  r = read k after w
  check = assert done == true after a
  f = files.read(path: "x") after r
}
proposal two { a = t(a: "q") { compensate u(x: 1) } }
plan choose {
  candidates one, two
  cost_weight 0.3
  target tool_calls 4, actions 5, duration 2m
  set approval_penalty = 0.2
}
test "t passes" {
  action t(a: "ok")
  expect allow
}
test "state" {
  action set k = 1
  expect allow
}
test "read" {
  action read k
  expect allow
}
"""


def _validated_copy(model: Any) -> Any:
    return type(model).model_validate(model.model_dump())


@pytest.mark.parametrize("path", _PROGRAMS, ids=lambda p: p.name)
def test_lowered_models_equal_their_validated_copies(path: Path) -> None:
    """Lowering builds models without validating them (`model_construct`): each must be
    exactly what validation makes of it, types included (an enum, not its string; a float,
    not an int), which `repr` shows and `==` would not."""
    result = compile_file(path, path.parent)
    _assert_same_as_validated(result)


def test_every_construct_lowers_to_what_validation_makes() -> None:
    result = compile_text(_EVERY_CONSTRUCT, root=Path("/tmp"))
    program = result.program
    assert program is not None
    assert program.tools and program.policies and program.plans and program.mcp_servers
    assert len(program.policies) >= 9 and program.budgets and program.capabilities
    assert [c for c in result.tests if c.action is not None], "no test actions lowered"
    _assert_same_as_validated(result)


def _assert_same_as_validated(result: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pydantic warns when a value is not its field's type
        if result.program is not None:
            assert repr(result.program) == repr(_validated_copy(result.program))
        for case in result.tests:
            if case.action is not None:
                assert repr(case.action) == repr(_validated_copy(case.action))


def test_a_program_without_proposals_declares_capabilities_for_the_command_line() -> None:
    """A gateway's or an agent's program names its capability and budget with `--capability`
    and `--budget`: they are not "never used"; its unused tool still is."""
    gateway = "tool t()\ntool spare()\ncapability c { tools allow t }\nbudget b { max_actions 3 }\n"
    assert codes(gateway) == ["CL0207"]
    (unused,) = compile_diagnostics(gateway).diagnostics.items
    assert unused.message == "tool `spare` is never used"
    with_proposal = gateway + "proposal p { a = t()\n  b = spare() }\n"
    assert codes(with_proposal) == ["CL0207", "CL0207"]  # now `c` and `b` could be used


def test_an_mcp_server_with_an_empty_command_is_an_error() -> None:
    (found,) = compile_diagnostics('mcp_server d { command "" }\n').diagnostics.items
    assert found.code == "CL0220" and "`command` is empty" in found.message


def test_a_pattern_holding_a_lone_surrogate_is_an_error_not_a_crash() -> None:
    """Only an editor can send one (JSON's "\\udc00"): RE2 cannot encode it."""
    text = 'tool query(sql: string)\ndeny_tool_param_matching query.sql "a\udc00" message "x"\n'
    found = [d for d in compile_diagnostics(text).diagnostics.items if d.severity == "error"]
    assert [d.code for d in found] == ["CL0503"]
    assert "lone UTF-16 surrogate" in found[0].message


def test_a_call_of_a_read_only_tool_is_reversible_unless_the_tool_says() -> None:
    program = compile_ok(
        "tool look(s: string) { read_only }\n"
        "tool peek(s: string) {\n  read_only\n  reversibility irreversible\n}\n"
        'proposal p {\n  a = look(s: "x")\n  b = peek(s: "x")\n}\n'
    )
    (proposal,) = program.proposals
    assert [a.reversibility.value for a in proposal.actions] == ["reversible", "irreversible"]


def test_a_tool_a_trace_rule_looks_for_in_history_is_used() -> None:
    """A trial: a tool only a policy's `history` condition names (`h.tool == "run_tests"`)
    was 'never used' (CL0207), which fails `check --strict` in CI."""
    program = """
tool run_tests(suite: string)
tool deploy(env: string)
tool lonely()
policy tested_first: deny deploy when !history.exists(h, h.tool == 'run_tests')
"""
    found = compile_diagnostics(program).diagnostics.items
    assert [(d.code, d.message) for d in found] == [("CL0207", "tool `lonely` is never used")]


def test_tools_a_capability_glob_matches_or_a_test_calls_are_used() -> None:
    """A trial: `allow *` (or `allow read_*`) counted as no use while `allow a, b` did, and a
    tool only a `test` block called was 'never used': `check --strict` failed a gateway's
    program of tools, a capability and tested policies."""
    program = """
tool read_notes(path: string)
tool search(q: string)
tool lonely()
capability reader { tools allow read_* }
policy no_etc: deny read_notes when params.path.startsWith("/etc")
test "a search is allowed" {
  action search(q: "x")
  expect allow
}
"""
    found = compile_diagnostics(program).diagnostics.items
    assert [(d.code, d.message) for d in found] == [("CL0207", "tool `lonely` is never used")]
    everything = program.replace("allow read_*", "allow *")
    assert compile_diagnostics(everything).diagnostics.items == []
