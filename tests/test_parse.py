"""Parsing: every construct, exact spans, keywords as names, CEL lines, comments, recovery,
and the wording of common syntax errors."""

from __future__ import annotations

import pytest

from carlang import ast
from carlang.parse import parse
from carlang.source import Source


def parse_ok(text: str) -> ast.Module:
    result = parse(Source("t.car", text))
    assert not result.diagnostics.items, [d.message for d in result.diagnostics.items]
    assert result.module is not None
    return result.module


def test_every_declaration_kind() -> None:
    module = parse_ok("""
import "lib.car"
tool t(a: string, b?: int = 3, c: list[map[any]] = [], d: "x" | "y") -> object {
  description "d"  idempotent  cache 10s  rate 2 per 1m  reversibility reversible
}
state { k: int = 1  build.*: any }
capability c { tools allow t, r_* deny x  tools deny y  state allow build.*  max_actions 3 }
budget b { max_actions 1  max_tool_calls 2  max_duration 500ms }
policy p: require_approval t, u when params.a == "x"
  message "m"
deny_tool x, y message "no"
deny_keyword ["rm -rf /"]
deny_tool_param t.a equals "x"
deny_tool_param t.a contains "y"
deny_tool_param t.a
allow_tool_param t.d ["x"]
deny_tool_param_matching t.a "^http:"
rate_limit_tool t 10 per 1m
require_state k == 1
proposal q from "m" under c, b {
  context { x: 1 }
  a = t(a: "s") after b { requires k == 1 "why"  reads k, j  effects { k = 2 }  retry 2
    on_failure skip  timeout 1s  idempotent  compensable  compensate t(a: "u")  meta { o: 1 }
    mode streaming }
  b = set k = 3
  c = read k
  d = assert k > 1
  e = assert exists k
  f = assert not exists z
  g = t(a: "v") { compensate with a  requires k contains "x" }
}
plan pl { candidates q  cost_weight 0.5  target tool_calls 2, actions 3, duration 1m  set w = 0.1 }
test "t" {
  action t(a: $v)
  state { k: 1 }
  scope { tenant: "a" }
  history [{ tool: "t" }]
  expect $d by "deny_tool:x"
  where
    | v   | d     |
    | "1" | allow |
}
test "u" { proposal q  expect codes CL0101, CL0202 }
test "w" { plan pl  expect winner q }
test "v" { proposal q  expect valid }
""")
    kinds = [type(d).__name__ for d in module.declarations]
    assert kinds == [
        "ToolDecl",
        "StateDecl",
        "CapabilityDecl",
        "BudgetDecl",
        "PolicyDecl",
        "DenyToolDecl",
        "DenyKeywordDecl",
        "DenyToolParamDecl",
        "DenyToolParamDecl",
        "DenyToolParamDecl",
        "AllowToolParamDecl",
        "DenyToolParamMatchingDecl",
        "RateLimitToolDecl",
        "RequireStateDecl",
        "ProposalDecl",
        "PlanDecl",
        "TestDecl",
        "TestDecl",
        "TestDecl",
        "TestDecl",
    ]
    tool = module.declarations[0]
    assert isinstance(tool, ast.ToolDecl)
    assert [p.name.text for p in tool.params] == ["a", "b", "c", "d"]
    assert tool.params[1].optional and tool.params[1].default == ast.Value(3)
    assert isinstance(tool.params[2].type, ast.ListType)
    assert isinstance(tool.params[3].type, ast.EnumType)
    assert [type(i).__name__ for i in tool.items] == [
        "Description",
        "Idempotent",
        "Cache",
        "Rate",
        "ReversibilityItem",
    ]
    proposal = module.declarations[14]
    assert isinstance(proposal, ast.ProposalDecl)
    action = proposal.items[1]
    assert isinstance(action, ast.ActionDecl) and action.items is not None
    assert [type(i).__name__ for i in action.items] == [
        "Requires",
        "Reads",
        "Effects",
        "Retry",
        "OnFailure",
        "Timeout",
        "Idempotent",
        "ReversibilityItem",
        "Compensate",
        "Meta",
        "Mode",
    ]
    conditions = [
        a.kind.condition.op
        for a in proposal.items[4:7]
        if isinstance(a, ast.ActionDecl) and isinstance(a.kind, ast.AssertState)
    ]
    assert conditions == [">", "exists", "not_exists"]
    test = module.declarations[16]
    assert isinstance(test, ast.TestDecl)
    where = test.items[-1]
    assert isinstance(where, ast.Where) and len(where.rows) == 2


def test_spans_cover_what_was_written() -> None:
    text = 'tool fetch(url: string)\nproposal p {\n  get = fetch(url: "https://x") after a\n}\n'
    module = parse_ok(text)
    proposal = module.declarations[1]
    assert isinstance(proposal, ast.ProposalDecl)
    action = proposal.items[0]
    assert isinstance(action, ast.ActionDecl)
    assert text[action.span.start : action.span.end] == 'get = fetch(url: "https://x") after a'
    assert isinstance(action.kind, ast.Call)
    assert (
        text[action.kind.args[0].value.span.start : action.kind.args[0].value.span.end]
        == '"https://x"'
    )
    assert text[proposal.span.start : proposal.span.end].endswith("}")


def test_spans_take_no_part_in_equality() -> None:
    a = parse_ok("tool t(x: int)\n")
    b = parse_ok("\n\n   tool   t( x :int )   # c\n")
    assert a == b


def test_keywords_are_names_where_a_name_is_meant() -> None:
    module = parse_ok(
        "tool retry(state: string)\ntool deny()\nproposal timeout {\n"
        '  retry = retry(state: "x")\n  effects = deny() after retry\n}\n'
    )
    proposal = module.declarations[2]
    assert isinstance(proposal, ast.ProposalDecl)
    assert [a.name.text for a in proposal.items if isinstance(a, ast.ActionDecl)] == [
        "retry",
        "effects",
    ]


def test_cel_runs_to_end_of_line_and_groups_continue() -> None:
    module = parse_ok(
        'policy a: deny t when x == "#not a comment" # a comment\n'
        'policy b: deny t when (x == 1 ||\n   y == [1,\n 2])\n  message "m"\n'
    )
    first, second = module.declarations
    assert isinstance(first, ast.PolicyDecl) and isinstance(second, ast.PolicyDecl)
    assert first.when is not None and first.when.text == 'x == "#not a comment"'
    assert second.when is not None and second.when.text == "(x == 1 ||\n   y == [1,\n 2])"
    assert second.message == ast.Value("m")


def test_a_group_in_a_condition_may_hold_comments() -> None:
    """`#` comments at the ends of a grouped condition's lines (or on their own) belong to
    the text `fmt` keeps; the CEL parser reads them as spaces, offsets unchanged."""
    text = '(x > 1 && # first\n  # on its own\n  y != "me#1")'
    module = parse_ok(f"policy p: deny t when {text}  # after\n")
    (policy,) = module.declarations
    assert isinstance(policy, ast.PolicyDecl) and policy.when is not None
    assert policy.when.text == text
    cel = policy.when.cel
    assert len(cel) == len(text) and "#" not in cel.replace("me#1", "")
    assert cel.split() == ["(x", ">", "1", "&&", "y", "!=", '"me#1")']


def test_comments_are_collected() -> None:
    result = parse(Source("t.car", "# one\ntool t() # two\n"))
    assert [c.text for c in result.comments] == ["# one", "# two"]


def test_values() -> None:
    module = parse_ok(
        'tool t(x: any)\nproposal p { a = t(x: [1, -2.5e3, "é\\n", true, false, null, { k: 1, "q r": [] }]) }\n'
    )
    proposal = module.declarations[1]
    assert isinstance(proposal, ast.ProposalDecl)
    action = proposal.items[0]
    assert isinstance(action, ast.ActionDecl) and isinstance(action.kind, ast.Call)
    assert action.kind.args[0].value.value == [
        1,
        -2500.0,
        "é\n",
        True,
        False,
        None,
        {"k": 1, "q r": []},
    ]


def test_durations() -> None:
    module = parse_ok("budget b { max_duration 500ms }\nbudget c { max_duration 2h }\n")
    durations = [d.items[0].duration for d in module.declarations if isinstance(d, ast.BudgetDecl)]  # type: ignore[union-attr]
    assert [(d.text, d.ms) for d in durations] == [("500ms", 500), ("2h", 7_200_000)]


def test_recovery_reports_several_errors_and_keeps_good_declarations() -> None:
    text = "tool a(x string)\ntool b(y: int)\nproposal p { q = b(y: 1\n}\nbudget c { max_actions }\ntool d()\n"
    result = parse(Source("t.car", text))
    assert [d.code for d in result.diagnostics.items] == ["CL0102", "CL0102", "CL0102"]
    assert result.module is not None
    assert [d.name.text for d in result.module.declarations if isinstance(d, ast.ToolDecl)] == [
        "b",
        "d",
    ]


def test_a_complete_declaration_survives_a_following_error() -> None:
    result = parse(Source("t.car", 'tool t(x: int)\nimport "x.car"\n'))
    assert result.module is not None and len(result.module.declarations) == 1
    (diagnostic,) = result.diagnostics.items
    assert diagnostic.help == "imports must come before all declarations"


# (source, code, message, help): the classification of common mistakes stays stable
SYNTAX_ERROR_EXAMPLES = [
    ("tool t(x string)", "CL0102", "unexpected name `string`", None),
    (
        "state { r: bool = true }\nproposal p { a = assert r = true }",
        "CL0102",
        "unexpected `=`",
        "comparisons use `==`",
    ),
    (
        "tool t(u: string)\nproposal p { a = t(u: https) }",
        "CL0102",
        "unexpected name `https`",
        'strings need double quotes: "https"',
    ),
    (
        "tool t(u: string)\nproposal p { a = t(u: 'x') }",
        "CL0101",
        "unexpected character `'`",
        'strings use double quotes: "..."',
    ),
    (
        'tool t(u: string, v: int)\nproposal p { a = t(u: "x" v: 1) }',
        "CL0102",
        "unexpected name `v`",
        "separate items with `,`",
    ),
    (
        "proposal p {\n  a = t() {\n",
        "CL0103",
        "unexpected end of file: `{` opened at 2:11 is still open",
        None,
    ),
    (
        'tool t()\nimport "a.car"',
        "CL0102",
        "unexpected `import`",
        "imports must come before all declarations",
    ),
    (
        'proposal p { a = t(u: "bad \\q") }',
        "CL0104",
        'invalid escape in string "bad \\q"',
        r"use JSON escapes: \" \\ \n \t \uXXXX",
    ),
    (
        "proposal p { a = t(n: 99999999999999999999999) }",
        "CL0104",
        "integer 99999999999999999999999 is out of range",
        "JSON numbers fit in 64 bits",
    ),
    ("budget b { max_actions ten }", "CL0102", "unexpected name `ten`", None),
]


@pytest.mark.parametrize(("text", "code", "message", "help"), SYNTAX_ERROR_EXAMPLES)
def test_syntax_error_examples(text: str, code: str, message: str, help: str | None) -> None:
    result = parse(Source("t.car", text))
    first = result.diagnostics.items[0]
    assert (first.code, first.message, first.help) == (code, message, help)


def test_expected_words_never_show_grammar_internals() -> None:
    for text, *_ in SYNTAX_ERROR_EXAMPLES:
        for diagnostic in parse(Source("t.car", text)).diagnostics.items:
            for label in diagnostic.labels:
                assert "__ANON" not in label.message and "IDENT" not in label.message


@pytest.mark.parametrize(
    ("condition", "message", "help"),
    [
        (
            'params.p.endsWith(".env") message "m"',
            "unexpected `message`",
            "`message` goes on its own line, after the condition",
        ),
        ('params.p = "x"', "unexpected character `=`", "compare with `==`"),
        ('params.p\u00a0== "x"', "unexpected character `U+00A0`", None),
        ("params.p ==", "unexpected end of condition", "a condition ends with its line"),
        ('params.p == "x', "unterminated string", 'close the string with `"` on its line'),
    ],
)
def test_a_condition_that_does_not_parse_says_how_to_fix_it(
    condition: str, message: str, help: str | None
) -> None:
    from tests.helpers import compile_diagnostics

    result = compile_diagnostics(f"tool t(p: string)\npolicy q: deny t when {condition}\n")
    (found,) = [d for d in result.diagnostics.items if d.code == "CL0501"]
    assert message in found.message
    assert (found.help is None) if help is None else (help in (found.help or ""))


def test_a_block_left_open_before_the_next_declaration_is_named() -> None:
    """`}` missing at the end of a proposal: the next `test "x"` reads as an action there;
    the error points back at the `{` still open, and no knock-on 'no proposal' follows."""
    from tests.helpers import compile_diagnostics

    text = (
        "tool t()\nproposal p {\n  a = t()\n\n"
        'test "p is valid" {\n  proposal p\n  expect valid\n}\n'
    )
    found = compile_diagnostics(text).diagnostics.sorted()
    assert [d.code for d in found] == ["CL0102"]
    (error,) = found
    assert error.help == "close the `{` opened at 2:12 with `}` before `test`"
    assert [(label.message, label.primary) for label in error.labels][1] == (
        "opened here, and still open",
        False,
    )


def test_a_table_cut_short_names_no_grammar_terminal() -> None:
    """`expected ..., empty_cell` named lark's terminal to the user."""
    text = 'tool f(u: string)\ntest "t" { action f(u: $u) expect allow where\n | u |\n | "x" \n'
    messages = [
        d.message + " " + " ".join(lab.message for lab in d.labels)
        for d in parse(Source("t.car", text)).diagnostics.items
    ]
    assert messages and not any("empty_cell" in m.lower() for m in messages), messages
