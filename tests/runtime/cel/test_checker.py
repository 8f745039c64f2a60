"""Static checks of policy conditions against declarations."""

from __future__ import annotations

import pytest
from carlang_runtime import ir
from carlang_runtime.cel import compile
from carlang_runtime.cel.checker import CelCheckError, Declarations, check
from carlang_runtime.cel.types import (
    INT,
    STRING,
    TIMESTAMP,
    from_json_schema,
    join,
    list_of,
    map_of,
)
from carlang_runtime.policy import policy_declarations

FETCH = ir.ToolSchema(
    name="fetch",
    parameters={
        "type": "object",
        "properties": {
            "url": {"type": "string"},
            "port": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "ratio": {"type": "number"},
        },
        "required": ["url", "port", "tags", "headers", "ratio"],
    },
)
DEPLOY = ir.ToolSchema(
    name="deploy",
    parameters={
        "type": "object",
        "properties": {"env": {"enum": ["staging", "prod"]}},
        "required": ["env"],
    },
)


def findings(text: str, targets: list[ir.ToolSchema] | None = None) -> list[tuple[str, str]]:
    result = check(text, policy_declarations([FETCH] if targets is None else targets))
    return [(issue.kind, text[issue.start : issue.end]) for issue in result.issues]


def messages(text: str, targets: list[ir.ToolSchema] | None = None) -> list[str]:
    result = check(text, policy_declarations([FETCH] if targets is None else targets))
    return [str(issue) for issue in result.issues]


def test_a_correct_condition_has_no_findings() -> None:
    assert findings('!params.url.startsWith("https://") && params.port in [80, 8080]') == []
    assert findings("size(params.tags) > 3 || params.headers.all(k, k.startsWith('X-'))") == []
    assert findings("params.ratio > 0.5 && params.ratio < 1") == []  # a number is either
    assert findings("now - duration('1h') > timestamp('2024-01-01T00:00:00Z')") == []
    assert findings("history.exists(h, h.tool == action.tool && h.status == 'failed')") == []


def test_unknown_field_with_a_suggestion() -> None:
    assert findings('params.ulr.startsWith("https")') == [("unknown-field", "params.ulr")]
    assert messages('params.ulr.startsWith("https")') == [
        "error: `params` has no field `ulr` (did you mean `url`?)"
    ]
    assert findings("has(params.prot)") == [("unknown-field", "has(params.prot)")]
    assert "always false" in messages("has(params.prot)")[0]
    assert findings("action.tol == 'x'") == [("unknown-field", "action.tol")]


def test_open_maps_take_any_field() -> None:
    assert findings("params.headers.authorization == 'x'") == []
    guarded = "state.anything == 1 && has(scope.claims) && scope.claims.role == 'admin'"
    assert findings(guarded) == []


def test_type_mismatches() -> None:
    assert findings('params.port == "80"') == [("type-mismatch", 'params.port == "80"')]
    # Heterogeneous equality runs (it is false), but a `deny` that can never fire fails open:
    # an error, as in Cedar's validator.
    assert messages('params.port == "80"')[0].startswith(
        'error: `params.port` is an int and `"80"` is a string: `==` between them is always false'
    )
    assert messages('params.port != "80"')[0].endswith(
        "is always true (compare with the number: `80`, without quotes)"
    )
    assert findings("params.port == 80.0") == []
    # dyn() is CEL's way to opt out of the static type (cel-go types it as dyn): no finding
    for opted_out in ('dyn(params.port) == "80"', "dyn(params.url) in [1, 2]"):
        assert findings(opted_out) == [], opted_out
    assert findings("dyn(params.port) + 1 > 2") == []
    assert findings("params.url == null") == []
    assert findings("params.port < 'x'") == [("type-mismatch", "params.port < 'x'")]
    # numbers of different types order by value, as the evaluator orders them
    for ordered in ("params.port > 1.5", "params.port > 1u", "2.5 >= params.port"):
        assert findings(ordered) == [], ordered
    assert findings("params.port < true") == [("type-mismatch", "params.port < true")]
    assert findings("size(params.port) > 1") == [("type-mismatch", "size(params.port)")]
    assert findings("params.port.startsWith('8')") == [
        ("type-mismatch", "params.port.startsWith('8')")
    ]
    assert findings("!params.url") == [("type-mismatch", "params.url")]
    assert findings("params.url && true") == [("type-mismatch", "params.url")]
    assert findings("params.port + 1.5 > 2") == [("type-mismatch", "params.port + 1.5")]
    assert findings("'x' in params.url") == [("type-mismatch", "'x' in params.url")]
    assert findings("params.tags.exists(t, t == 1)") == [("type-mismatch", "t == 1")]
    assert findings("params.url.size() > params.tags") == [
        ("type-mismatch", "params.url.size() > params.tags")
    ]


def test_a_condition_must_be_a_bool() -> None:
    assert findings("params.url") == [("type-mismatch", "params.url")]
    assert "must be a bool" in messages("params.url")[0]


def test_unknown_names_and_functions() -> None:
    assert findings("parms.url == 'x'") == [("unknown-name", "parms")]
    assert "did you mean `params`" in messages("parms.url == 'x'")[0]
    assert findings("params.url.startswith('x')") == [
        ("unknown-function", "params.url.startswith('x')")
    ]
    assert "did you mean `startsWith`" in messages("params.url.startswith('x')")[0]
    assert findings("lowercase(params.url) == 'x'") == [
        ("unknown-function", "lowercase(params.url)")
    ]
    assert findings("params.url.startsWith()") == [("wrong-arguments", "params.url.startsWith()")]


def test_invalid_regex_literal() -> None:
    assert findings('params.url.matches("[a-")') == [("invalid-regex", '"[a-"')]


def test_time_zone_literals_are_checked() -> None:
    """A time zone that does not exist fails every evaluation (the policy fails closed on
    every call): reported where it is written; names, UTC and offsets that exist are fine."""
    assert findings('now.getHours("Europe/Pariss") < 9') == [
        ("invalid-time-zone", '"Europe/Pariss"')
    ]
    assert findings('now.getDayOfWeek("+25:00") == 1') == [("invalid-time-zone", '"+25:00"')]
    for zone in ("Europe/Paris", "UTC", "+02:00", "-05:30"):
        assert findings(f'now.getHours("{zone}") < 9 && now.getMinutes("{zone}") < 5') == []
    assert findings("now.getHours(params.url) < 9") == []  # (known only when it runs)


def test_constant_conditions() -> None:
    assert findings("1 == 1") == [("constant", "1 == 1")]
    assert messages("1 == 1") == [
        "warning: the condition is always true (it does not look at the action, state or scope)"
    ]
    assert findings("params.port > 1 && true") == [("constant", "true")]
    assert findings("params.port > 1 || 2 > 1") == [("constant", "2 > 1")]
    assert "the whole `||` is always true" in messages("params.port > 1 || 2 > 1")[0]
    assert findings("1 / 0 == 1") == [("constant", "1 / 0 == 1")]
    assert messages("1 / 0 == 1")[0].startswith("error: the condition always fails")
    assert findings("true") == []  # written on purpose


@pytest.mark.parametrize(
    ("text", "failing", "why"),
    [
        ('now > timestamp("2026-12-32T00:00:00Z")', 'timestamp("2026-12-32T00:00:00Z")', "day"),
        ('params.port > int("abc")', 'int("abc")', "not an integer"),
        ('params.port > int("abc") + 1', 'int("abc")', "not an integer"),  # the smallest part
        ("params.port > 1 && 1 / 0 == 1", "1 / 0", "division by zero"),
        ('[1, 2].exists(y, y > int("z")) || params.port > 1', 'int("z")', "not an integer"),
        ('now - duration("1x") > timestamp("2024-01-01T00:00:00Z")', 'duration("1x")', "not a"),
    ],
)
def test_a_constant_part_that_always_fails_is_an_error_where_it_is(
    text: str, failing: str, why: str
) -> None:
    """Not only a whole condition or an operand of && or ||: any part that reads no variable
    and fails fails the condition each time it is evaluated (a policy then fails closed on
    every call), reported at the literal call (the whole condition does vary)."""
    assert findings(text) == [("constant", failing)]
    [message] = messages(text)
    assert message.startswith(f"error: `{failing}` always fails: ") and why in message


def test_a_constant_part_that_succeeds_or_is_never_evaluated_is_no_error() -> None:
    assert findings('now > timestamp("2026-12-31T00:00:00Z") + duration("1h")') == []
    # `true ? 1 : ...` never evaluates its other branch (its own warning: always true)
    assert findings('params.port > 1 && (true ? 1 : int("q")) == 1') == [
        ("constant", '(true ? 1 : int("q")) == 1')
    ]
    # a macro's variable is a variable inside it: `10 / y` is not constant
    assert findings("[1, 2].all(y, 10 / y > 1) || params.port > 1") == [
        ("constant", "[1, 2].all(y, 10 / y > 1)")
    ]


def test_fields_only_some_targets_have() -> None:
    both = [FETCH, DEPLOY]
    assert findings("params.env == 'prod'", both) == [("partial-field", "params.env")]
    assert "guard it" in messages("params.env == 'prod'", both)[0]
    # A has() guard first makes it safe; so does the ternary form.
    assert findings("has(params.env) && params.env == 'prod'", both) == []
    assert findings("has(params.env) ? params.env == 'prod' : false", both) == []
    # In neither: an error.
    assert findings("params.nope == 1", both) == [("unknown-field", "params.nope")]


def test_the_guard_suggested_for_a_name_a_dot_cannot_select_is_valid_cel() -> None:
    """`scope["x y"]` was told to guard with `has(scope.x y)`, which does not parse."""
    (issue,) = check('scope["x y"] == "bad"', policy_declarations([FETCH])).issues
    assert '`"x y" in scope && ...`' in (issue.help or "")
    assert issue.message.startswith('`scope["x y"]` may be missing')
    guarded = check('"x y" in scope && scope["x y"] == "bad"', policy_declarations([FETCH]))
    assert guarded.issues == []
    (issue,) = check('scope["in"] == 1', policy_declarations([FETCH])).issues
    assert '`"in" in scope && ...`' in (issue.help or "")


def test_guards_in_either_order_and_in_a_disjunction() -> None:
    """CEL's `&&` is false when any operand is false, errors or not, so a guard after the
    read guards it too; `!has(x) || ...` guards the rest of a `||`; `||` with a plain
    has() does not (when it is false, the other side still reads the field)."""
    both = [FETCH, DEPLOY]
    assert findings("params.env == 'prod' && has(params.env)", both) == []
    assert findings("!has(params.env) || params.env != 'prod'", both) == []
    assert findings("params.env != 'prod' || !has(params.env)", both) == []
    assert findings("has(params.env) || params.env == 'prod'", both) == [
        ("partial-field", "params.env")
    ]


def test_a_policy_of_every_action_reads_parameters_some_actions_lack() -> None:
    """A policy with no tool list applies to every action: state writes and the other tools'
    calls lack `params.url`, and the condition fails (the policy fails closed) on each. A
    test of `action.tool` narrows it by hand; an undeclared field is not an error (a tool of
    an MCP server the program does not declare may be called)."""

    def every(text: str) -> list[tuple[str, str]]:
        result = check(text, policy_declarations(None, declared=[FETCH, DEPLOY]))
        return [(issue.kind, text[issue.start : issue.end]) for issue in result.issues]

    assert every("params.url.startsWith('http:')") == [("partial-field", "params.url")]
    assert every("has(params.url) && params.url.startsWith('http:')") == []
    assert every("action.tool == 'fetch' && params.url.startsWith('http:')") == []
    assert every("params.url.startsWith('http:') && action.tool in ['fetch']") == []
    assert every("params.url.startsWith('http:') || action.tool == 'fetch'") == [
        ("partial-field", "params.url")
    ]
    assert every("params.other == 1") == []
    assert ("type-mismatch", "params.url == 1") in every("params.url == 1")
    # without the declared tools (a bare policy set), `params` is any map, as before
    assert findings_of_none("params.url.startsWith('http:')") == []


def findings_of_none(text: str) -> list[tuple[str, str]]:
    result = check(text, policy_declarations(None))
    return [(issue.kind, text[issue.start : issue.end]) for issue in result.issues]


def test_an_optional_parameter_without_a_default_may_be_missing() -> None:
    """`limit?: int`: a call may leave it out, and the condition then fails (the policy fails
    closed on every such call): the same finding as a field only some tools have. A default
    is filled in before any policy sees the call, and a required one is always there."""
    query = ir.ToolSchema(
        name="db_query",
        parameters={
            "type": "object",
            "properties": {
                "sql": {"type": "string"},
                "limit": {"type": "integer"},
                "page": {"type": "integer", "default": 1},
                "opts": {"type": "object", "properties": {"fast": {"type": "boolean"}}},
            },
            "required": ["sql"],
        },
    )
    assert findings("params.limit > 10", [query]) == [("partial-field", "params.limit")]
    assert "`params.limit` may be missing" in messages("params.limit > 10", [query])[0]
    assert findings("has(params.limit) && params.limit > 10", [query]) == []
    assert findings("params.page > 10 && params.sql != ''", [query]) == []
    assert ("partial-field", "params.opts.fast") in findings("params.opts.fast", [query])
    # joined with a tool that requires it: still missing from the other's calls
    required = ir.ToolSchema(
        name="other",
        parameters={
            "type": "object",
            "properties": {"limit": {"type": "integer"}},
            "required": ["limit"],
        },
    )
    both = [query, required]
    assert findings("params.limit > 10", both) == [("partial-field", "params.limit")]


def test_a_tool_without_parameters_has_no_fields() -> None:
    """`tool ping()` (or an MCP tool with no arguments): `properties: {}` lists none, so
    every field is a mistake; a schema that lists no properties at all says nothing."""
    ping = ir.ToolSchema(name="ping", parameters={"type": "object", "properties": {}})
    assert findings("params.x == 1", [ping]) == [("unknown-field", "params.x")]
    assert messages("params.x == 1", [ping]) == [
        "error: `params` has no field `x` (the tools it applies to take no parameters)"
    ]
    assert findings("params.url == 'x'", [ping, FETCH]) == [("partial-field", "params.url")]
    anything = ir.ToolSchema(name="any", parameters={"type": "object"})
    assert findings("params.x == 1", [anything]) == []
    extra = {"type": "object", "properties": {}, "additionalProperties": True}
    assert findings("params.x == 1", [ir.ToolSchema(name="e", parameters=extra)]) == []


def test_a_dotted_state_key_read_as_fields_is_pointed_at_its_index_form() -> None:
    from carlang_runtime.policy import state_type

    state = state_type([ir.StateDecl(key="order.found", type={"type": "boolean"})])
    declarations = policy_declarations([FETCH], state)
    (issue,) = check("state.order.found", declarations).issues
    assert str(issue) == (
        "error: `state` has no field `order` (a key with dots in its name is read by index:"
        ' `state["order.found"]`)'
    )
    assert check('state["order.found"]', declarations).issues == []


def test_state_is_typed_by_the_programs_declarations() -> None:
    """A policy reads `state` as the program declares it: a key it does not declare is a
    mistake (with a did-you-mean), a declared type is checked, a family (`build.*`) takes
    any key it matches; a program that declares no state leaves `state` open."""
    from carlang_runtime.policy import state_type

    declared = [
        ir.StateDecl(key="budget_left", type={"type": "integer"}),
        ir.StateDecl(key="build.*", type={}),
    ]
    state = state_type(declared)

    def state_findings(text: str) -> list[tuple[str, str]]:
        result = check(text, policy_declarations([FETCH], state))
        return [(issue.kind, text[issue.start : issue.end]) for issue in result.issues]

    assert state_findings("state.budget_left < 10 && state['build.web'] == 1") == []
    assert state_findings("state.budget_lft < 10") == [("unknown-field", "state.budget_lft")]
    assert "did you mean `budget_left`?" in str(
        check("state.budget_lft < 10", policy_declarations([FETCH], state)).issues[0]
    )
    assert state_findings('state.budget_left < "10"') == [
        ("type-mismatch", 'state.budget_left < "10"')
    ]
    assert state_findings("state['deploy.web'] == 1") == [("unknown-field", "state['deploy.web']")]
    assert state_type([]) is None
    assert check("state.anything == 1", policy_declarations([FETCH], None)).issues == []


def test_untargeted_policies_know_nothing_about_params() -> None:
    result = check("params.whatever == 1 && action.tool == 'x'", policy_declarations(None))
    assert result.issues == []


def test_compile_with_declarations_raises_on_errors() -> None:
    declarations = policy_declarations([FETCH])
    with pytest.raises(CelCheckError) as caught:
        compile("params.ulr == 'x'", declarations)
    assert [issue.kind for issue in caught.value.issues] == ["unknown-field"]
    program = compile("params.url == 'x'", declarations)
    assert program.evaluate({"params": {"url": "x"}}) is True


def test_json_schema_types() -> None:
    assert from_json_schema({"type": "integer"}) == INT
    assert from_json_schema({"type": ["string", "null"]}).kind == "dyn"
    assert from_json_schema({"enum": ["a", "b"]}) == STRING
    assert from_json_schema({"type": "array", "items": {"type": "string"}}) == list_of(STRING)
    assert (
        str(from_json_schema({"type": "object", "properties": {"b": {}, "a": {}}})) == "map{a, b}"
    )
    assert from_json_schema({"anyOf": [{"type": "integer"}, {"type": "number"}]}).kind == "number"
    assert join([map_of(fields={"a": INT}), map_of(fields={"b": INT})]).partial == {"a", "b"}


def test_declarations_are_plain() -> None:
    declarations = Declarations({"now": TIMESTAMP})
    assert check("now > timestamp('2024-01-01T00:00:00Z')", declarations).issues == []
    assert [i.kind for i in check("then > 1", declarations).issues] == ["unknown-name"]


def test_a_history_entry_has_its_fields_and_no_other() -> None:
    """`h.tol` would fail the condition (and deny) once history has an entry: a typo, found."""
    assert findings('history.exists(h, h.tol == "fetch")') == [("unknown-field", "h.tol")]
    assert "did you mean `tool`" in messages('history.exists(h, h.tol == "fetch")')[0]
    assert findings('history.exists(h, h.tool == "fetch" && h.params.url == "x")') == []


def test_comparing_with_a_value_the_enum_does_not_have_is_constant() -> None:
    """`params.env == "production"` where env is "staging" | "prod": never true, so the
    policy never matches (`!=`: always, so it matches every call)."""
    assert findings("params.env == 'production'", [DEPLOY]) == [
        ("constant", "params.env == 'production'")
    ]
    assert 'is one of "prod", "staging"' in messages("params.env == 'x'", [DEPLOY])[0]
    assert findings("'x' != params.env", [DEPLOY]) == [("constant", "'x' != params.env")]
    assert findings("params.env == 'prod'", [DEPLOY]) == []
    # joined with a tool whose parameter takes any string: it may be anything
    free = ir.ToolSchema(
        name="free",
        parameters={
            "type": "object",
            "properties": {"env": {"type": "string"}},
            "required": ["env"],
        },
    )
    assert findings("params.env == 'production'", [DEPLOY, free]) == []


@pytest.mark.parametrize(
    ("condition", "fix"),
    [
        ("params.ratio * 2 > 1.0", "double(params.ratio) * 2.0"),
        ("3 * params.ratio > 1.0", "3.0 * double(params.ratio)"),
        ("params.ratio + 0.5 > 1.0", "double(params.ratio) + 0.5"),
        ("params.ratio - params.port > 1.0", "double(params.ratio) - double(params.port)"),
        ("params.ratio * 2 + 1 > 5.0", "double(params.ratio) * 2.0"),  # said once
    ],
)
def test_arithmetic_on_a_json_number_is_a_warning_with_its_fix(condition: str, fix: str) -> None:
    """A `number` (a `float` parameter) is an int or a double as the JSON holds it (50 or
    7.5): CEL's arithmetic fails when the sides differ, so the policy fails closed on some
    calls. Comparisons mix ints and doubles; they stay silent."""
    result = check(condition, policy_declarations([FETCH]))
    (issue,) = result.issues
    assert (issue.severity, issue.kind) == ("warning", "type-mismatch")
    assert "CEL does not mix them in arithmetic" in issue.message
    assert issue.help == f"convert to double: `{fix}`"
    # the fix is silent, and decides as meant for 50 and 7.5 alike
    fixed = condition.replace(condition.split(" > ")[0], fix)
    assert check(fixed, policy_declarations([FETCH])).issues == []
    program = compile(fixed)
    for ratio in (50, 7.5):
        params = {"ratio": ratio, "port": 1}
        assert isinstance(program.evaluate({"params": params}), bool)


def test_comparisons_of_a_json_number_stay_silent() -> None:
    assert findings("params.ratio > 1 && params.ratio <= 2.5 && params.ratio != 3") == []


@pytest.mark.parametrize(
    "condition", ['scope.tenant in ["blocked-co"]', "scope.claims.role != 'admin'"]
)
def test_a_scope_field_read_unguarded_is_a_warning(condition: str) -> None:
    """A host gives the scope it has: no tenant in a single-tenant run, the MCP proxy only
    its session. A condition reading a scope field without a guard fails without it, and a
    deny policy then denies every call."""
    result = check(condition, policy_declarations([FETCH]))
    (issue,) = result.issues
    assert (issue.severity, issue.kind) == ("warning", "partial-field")
    assert "may be missing (a run whose host gives no such scope" in issue.message
    assert "has(scope." in (issue.help or "")
    assert (
        check(
            f"has(scope.tenant) && has(scope.claims) && {condition}", policy_declarations([FETCH])
        ).issues
        == []
    )


def test_a_scope_field_no_host_sets_is_warned_with_the_one_meant() -> None:
    """`scope.tennant` read as nothing: the condition failed on every call and the deny
    policy denied every tenant's call, with nothing said at check (found by a user trial);
    a scope a host of one's own sets is warned about too, guarded it is quiet."""
    (issue,) = check('scope.tennant == "acme"', policy_declarations([FETCH])).issues
    assert (issue.severity, issue.kind) == ("warning", "partial-field")
    assert "`scope.tennant` may be missing (carlang's hosts set `tenant`, `caller`" in (
        issue.message
    )
    assert (issue.help or "").startswith("did you mean `tenant`? If `tennant` is a scope")
    (issue,) = check('scope.region == "eu"', policy_declarations([FETCH])).issues
    assert "did you mean" not in (issue.help or "") and "has(scope.region)" in (issue.help or "")
    guarded = 'has(scope.region) && scope.region == "eu"'
    assert check(guarded, policy_declarations([FETCH])).issues == []
    assert check("has(scope.tennant)", policy_declarations([FETCH])).issues == []
