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
    (  # a built-in rule's IR name unquoted (a trial)
        'test "t" {\n  action shell(cmd: "ls")\n  expect deny by deny_tool:shell\n}',
        "CL0102",
        "unexpected `:`",
        'a rule\'s name holds a `:`: write it in quotes, by "deny_tool:shell"',
    ),
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


def test_a_bracket_left_open_before_a_declaration_keyword_is_named() -> None:
    """`tool t(x: int` then `policy ...` on the next line: the `(` still open is the mistake,
    not the `policy` where parsing stopped."""
    from tests.helpers import compile_diagnostics

    found = compile_diagnostics("tool t(x: int\npolicy p: deny t when true\n").diagnostics
    (error,) = found.sorted()
    assert (
        error.code == "CL0102"
        and error.help == "close the `(` opened at 1:7 with `)` before `policy`"
    )
    assert [(label.message, label.primary) for label in error.labels][1] == (
        "opened here, and still open",
        False,
    )
    # a parameter named like a keyword after a missing comma: the comma is what is missing
    text = "tool t(\n  x: int\n  state: string)\n"
    (error,) = compile_diagnostics(text).diagnostics.sorted()
    assert error.help is None or "close the" not in error.help


@pytest.mark.parametrize(
    ("text", "help"),
    [
        # a tool's block left open, the next tool in the first column
        (
            'tool charge(n: int) {\n  description "charge"\n\ntool refund(n: int)\n',
            "close the `{` opened at 1:21 with `}` before `tool`",
        ),
        # a call left open, the next action on the next line (it said "separate items with ,")
        (
            'tool t(to: string)\nproposal p {\n  a = t(to: "x"\n  b = t(to: "y")\n}\n',
            "close the `(` opened at 3:8 with `)` before `b =`",
        ),
    ],
)
def test_a_bracket_left_open_before_the_next_line_of_code_is_named(text: str, help: str) -> None:
    from tests.helpers import compile_diagnostics

    (error,) = [d for d in compile_diagnostics(text).diagnostics.sorted() if d.severity == "error"]
    assert error.code == "CL0102" and error.help == help
    assert error.labels[1].message == "opened here, and still open"


def test_a_missing_comma_between_arguments_on_their_own_lines_is_still_said() -> None:
    from tests.helpers import compile_diagnostics

    text = "tool t(x: int, y: int)\nproposal p {\n  a = t(\n    x: 1\n    y: 2\n  )\n}\n"
    (error,) = compile_diagnostics(text).diagnostics.sorted()
    assert error.help == "separate items with `,`"


def test_a_table_cut_short_names_no_grammar_terminal() -> None:
    """`expected ..., empty_cell` named lark's terminal to the user."""
    text = 'tool f(u: string)\ntest "t" { action f(u: $u) expect allow where\n | u |\n | "x" \n'
    messages = [
        d.message + " " + " ".join(lab.message for lab in d.labels)
        for d in parse(Source("t.car", text)).diagnostics.items
    ]
    assert messages and not any("empty_cell" in m.lower() for m in messages), messages


# -- bidirectional control characters ("Trojan Source", CVE-2021-42574) -----------------------

RLO, LRI, PDI, RLM, ALM = "\u202e", "\u2066", "\u2069", "\u200f", "\u061c"


def direction_findings(text: str) -> list[tuple[str, str, int, int, str]]:
    """`(code, severity, line, column, message)` of each parse diagnostic, in output order."""
    result = parse(Source("t.car", text))
    return [(d.code, d.severity, *d.location()[1:], d.message) for d in result.diagnostics.sorted()]


@pytest.mark.parametrize(
    ("text", "severity", "place"),
    [
        # a condition's CEL string: the "stretched string" of the paper, an error
        (
            f'tool t(a: string)\npolicy p: deny t when params.a != "admin{RLO} {LRI}# x{PDI}"\n',
            "error",
            "in a policy condition",
        ),
        # a note of a condition's group over several lines: an error too (CEL's text)
        (f"tool t()\npolicy p: deny t when (1 == 1 # n{RLM}\n  )\n", "error", "condition"),
        # a condition runs to the end of its line, past its group's end
        (f'tool t()\npolicy p: deny t when (1 ==\n  1) && "{RLM}" == ""\n', "error", "condition"),
        # a comment, a string: a warning
        (f"tool t()  # a {RLO}comment\n", "warning", "in a comment"),
        (f'tool t() {{ description "a {RLO}b" }}\n', "warning", "in a string"),
        (f'tool t()\npolicy p: deny t when (1 ==\n  1)\n  message "{RLM}"\n', "warning", "string"),
        (f"tool t()\npolicy p: deny t when (1 ==\n  1) # {ALM}\n", "warning", "comment"),
        # a pragma's comment
        (f"tool t()  # carlang: allow CL0521 {RLM}\n", "warning", "in a comment"),
    ],
)
def test_a_direction_control_is_reported_at_its_column_by_where_it_is(
    text: str, severity: str, place: str
) -> None:
    at = next(i for i, char in enumerate(text) if char in (RLO, LRI, PDI, RLM, ALM))
    line = text.count("\n", 0, at) + 1
    column = at - text.rfind("\n", 0, at)
    (code, found_severity, *where, message) = direction_findings(text)[0]
    assert (code, found_severity, *where) == ("CL0108", severity, line, column)
    assert place in message and "U+" in message


def test_a_direction_control_says_which_it_is_and_how_to_fix_it() -> None:
    result = parse(Source("t.car", f'tool t() {{ description "a{RLO}" }}\n'))
    (diagnostic,) = result.diagnostics.items
    assert diagnostic.message == (
        "bidirectional control character U+202E (RIGHT-TO-LEFT OVERRIDE) in a string"
    )
    assert diagnostic.help is not None and "`\\u202e`" in diagnostic.help
    assert "Trojan Source" in diagnostic.notes[0]
    assert RLO not in diagnostic.message + diagnostic.help + "".join(diagnostic.notes)


def test_every_direction_control_is_reported_once() -> None:
    from carlang.parse import DIRECTION_CONTROLS

    assert len(DIRECTION_CONTROLS) == 12
    for char in sorted(DIRECTION_CONTROLS):
        text = f"tool t()  # {char}{char}\n"
        found = direction_findings(text)
        assert [(f[0], f[3]) for f in found] == [("CL0108", 13), ("CL0108", 14)], hex(ord(char))
        assert f"U+{ord(char):04X}" in found[0][4]


def test_escapes_and_other_text_beyond_ascii_are_not_direction_controls() -> None:
    parse_ok(
        'tool t(a: string) { description "\\u202e \\u2066 مرحبا שלום 日本 \\u200f" }\n'
        'policy p: deny t when params.a == "\\u202e" || params.a == "مرحبا"  # שלום 😀\n'
    )


def test_a_stray_direction_control_is_one_syntax_error_not_two() -> None:
    """CL0101 (a character that starts nothing) is already at the first; the rest of the
    declaration is skipped by recovery, where the next one is reported outside any string."""
    text = f"tool t()\npolicy p: deny t {RLO} x {LRI}\ntool u()\n"
    found = direction_findings(text)
    assert [(f[0], f[1], f[2], f[3]) for f in found] == [
        ("CL0101", "error", 2, 18),
        ("CL0108", "error", 2, 22),
    ]
    assert "outside any string or comment" in found[1][4]
    result = parse(Source("t.car", text))
    help = result.diagnostics.sorted()[0].help
    assert help is not None and "U+202E (RIGHT-TO-LEFT OVERRIDE)" in help and RLO not in help


def test_a_direction_control_in_a_conditions_code_is_left_to_cel() -> None:
    """Outside its strings and notes, CEL's parser rejects the character (CL0501): carlang's
    parser does not report it a second time."""
    from tests.helpers import compile_diagnostics

    text = f"tool t()\npolicy p: deny t when 1 == 1 {RLO}&& true\n"
    assert direction_findings(text) == []
    found = compile_diagnostics(text).diagnostics.sorted()
    assert [(d.code, *d.location()[1:]) for d in found] == [("CL0501", 2, 30)]
    assert "U+202E" in found[0].message


def test_a_file_cut_short_at_the_limit_of_syntax_errors_says_so() -> None:
    """The parser stops after 20 syntax errors: the last one says that the rest of the file
    was not read (a user fixed 20, and 20 more appeared, each time reported as all)."""
    broken = "".join(f'tool t{i}(x: int) {{\n  description "tool {i}\n}}\n' for i in range(30))
    errors = parse(Source("t.car", broken)).diagnostics.items
    assert len(errors) == 20
    assert all(not d.notes for d in errors[:-1])
    assert errors[-1].notes[-1] == (
        "carlang stops reading a file after 20 syntax errors: the rest of t.car is not"
        " checked; fix these and check it again"
    )
    # twenty errors that end the file: nothing was left unread, nothing is said
    last = "".join(f'tool t{i}(x: int) {{\n  description "tool {i}\n}}\n' for i in range(19))
    at_end = parse(Source("t.car", last + "tool z(x: int")).diagnostics.items
    assert len(at_end) == 20 and not any("stops reading" in n for d in at_end for n in d.notes)


def test_a_misspelt_keyword_after_a_broken_declaration_gets_its_own_error() -> None:
    """Recovery resumes at a line starting with a declaration keyword; a misspelt one
    (`polcy p1: ...`) was skipped with the broken declaration before it, its typo never
    said. Now it is where recovery resumes too, for its own error; an action line in the
    first column (`tol = ...`, no declaration's shape) is not."""
    text = (
        'tool email(to: string) {\n  description "mail @\n}\n'
        'polcy p1: deny email when params.to == "x"\n'
    )
    errors = parse(Source("t.car", text)).diagnostics.items
    assert [(d.message, d.help) for d in errors][1] == (
        "unexpected name `polcy`",
        "did you mean `policy`?",
    )
    assert len(errors) == 2
    action = "tool t()\nproposal p {\n  a = t(\ntol = t()\n}\n"
    assert len(parse(Source("t.car", action)).diagnostics.items) == 1


def test_a_keyword_of_a_block_in_the_first_column_is_no_misspelt_declaration() -> None:
    # `tools` is close to `tool`, but a keyword itself (a capability's item): after an error
    # in its block it is skipped with the block, not reported as a typo of `tool`
    text = "capability c {\n  tools allow (\ntools allow t\n}\n"
    errors = parse(Source("t.car", text)).diagnostics.items
    assert [d.message for d in errors] == ["unexpected `(`"]  # (no knock-on at line 3)
