"""Recovery from a syntax error: the broken top-level declaration is skipped, every other one
is still parsed, lowered and checked, and its errors are reported with the syntax error, in
one round (as rustc, ruff and TypeScript do); the broken declaration itself causes no other
finding (no "unknown" name it may have declared, no "never used" name it may have used, no
verdict from a policy cut short)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from carlang import ast
from carlang.cascade import SYNTAX_CODES
from carlang.cli import app
from carlang.compiler import compile_text
from carlang.diagnostics import Diagnostic
from carlang.parse import parse
from carlang.source import Source

# -- the user trial: `expect denied` in the last test hid eight errors of the tests before it ---

TRIAL = """\
# A refund agent: small refunds go through, large ones ask a human, five a day at most.
tool refund(order_id: string, amount: float) {
  description "refund an order"
}
tool lookup_order(order_id: string) -> object {
  description "read an order"
  read_only
}

state {
  refunds_today: int = 0
}

policy refund_cap: deny refund when state.refunds_today >= 5
  message "at most five refunds a day"
policy big_refunds: require_approval refund when params.amount > 100

proposal refund_flow {
  look = lookup_order(order_id: "A1")
  pay = refund(order_id: "A1", amount: 20) after look
}

test "a refund after a lookup is allowed" {
  action refund(order_id: "A1", amount: 20)
  history [{id: "h1", type: "tool_call", tool: "refnd", params: {}, status: "ok"}]
  expect allow
}

test "the cap applies" {
  action refund(order_id: "A2", amount: 20)
  state { refunds_todya: "five" }
  expect deny by refund_cap
}

test "big refunds ask" {
  action refund(order_id: "A3", amount: 500)
  expect require_approval by big_refund
}

test "a lookup passes anything" {
  action lookup_order(order_id: "A4")
  history [{id: "h2", type: "tool_call", tool: "lookup_order", params: {order: "A4"}, \
status: "succeeded"}]
  expect allow
}

test "refunds are checked at night too" {
  action refund(order_id: "A5", amount: 10)
  now "2026-01-05 23:00"
  expect allow
}

test "a count is a number" {
  action refund(order_id: "A6", amount: 10)
  state { refunds_today: "five" }
  expect allow
}

test "a proposal" { proposal refund_plan  expect valid }

test "lookups are never refunds" {
  action lookup_order(order_id: "A7")
  expect denied
}
"""

#: What `carlang check` says of TRIAL but its syntax error, in output order.
TRIAL_ERRORS = [
    "refunds.car:25:48: error[CL0701]: history entry 1: no tool is called `refnd`",
    "refunds.car:25:77: error[CL0701]: history entry 1: no status `ok`",
    "refunds.car:31:11: error[CL0701]: no state key is called `refunds_todya`",
    "refunds.car:37:30: error[CL0701]: no policy is called `big_refund`",
    "refunds.car:42:73: error[CL0701]: history entry 1: tool `lookup_order` has no parameter"
    " `order`",
    "refunds.car:48:7: error[CL0701]: `now`: the string is not an RFC 3339 timestamp (like"
    " 2024-05-01T12:00:00Z)",
    "refunds.car:54:11: error[CL0701]: state `refunds_today`: expected integer, got string",
    "refunds.car:58:30: error[CL0701]: no proposal is called `refund_plan`",
]
TRIAL_SYNTAX_ERROR = "refunds.car:62:10: error[CL0102]: unexpected name `denied`"
#: The headline of each diagnostic `carlang check` prints (`FILE:LINE:COL: SEVERITY[CODE]: ...`).
_HEADLINE = re.compile(r"^\S+:\d+:\d+: (?:error|warning)\[CL\d{4}\]: .*$", re.MULTILINE)


def check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> tuple[int, str]:
    """`carlang check refunds.car` on `text`, run in `tmp_path` (a project of one file)."""
    (tmp_path / "refunds.car").write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["check", "refunds.car"])
    return result.exit_code, result.stdout


def test_a_syntax_error_in_a_test_hides_no_error_of_the_other_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user trial: one round of `check` shows the typo and the eight errors before it."""
    code, out = check(tmp_path, monkeypatch, TRIAL)
    assert code == 1
    assert _HEADLINE.findall(out) == [*TRIAL_ERRORS, TRIAL_SYNTAX_ERROR]
    assert "help: did you mean `deny`?" in out
    assert out.splitlines()[-1] == "9 errors, 0 warnings in 1 file"


def test_fixing_the_typo_leaves_the_same_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the syntax error's round showed is all there is: fixing it reveals nothing new."""
    code, out = check(tmp_path, monkeypatch, TRIAL.replace("expect denied", "expect deny"))
    assert code == 1
    assert _HEADLINE.findall(out) == TRIAL_ERRORS
    assert out.splitlines()[-1] == "8 errors, 0 warnings in 1 file"


def test_the_trial_file_is_clean_once_every_error_is_fixed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trial's errors are the intended ones, nothing else in it is wrong."""
    fixed = TRIAL
    for wrong, right in [
        ('"refnd"', '"refund"'),
        ('"ok"', '"succeeded"'),
        ('refunds_todya: "five"', "refunds_today: 5"),
        ("by big_refund\n", "by big_refunds\n"),
        ('{order: "A4"}', '{order_id: "A4"}'),
        ('"2026-01-05 23:00"', '"2026-01-05T23:00:00Z"'),
        ('refunds_today: "five"', "refunds_today: 1"),
        ("refund_plan", "refund_flow"),
        ("expect denied", "expect allow"),
    ]:
        assert wrong in fixed
        fixed = fixed.replace(wrong, right)
    assert check(tmp_path, monkeypatch, fixed) == (0, "0 errors, 0 warnings in 1 file\n")


# -- a syntax error in each kind of declaration -----------------------------------------------

#: Every kind of top-level declaration, valid, and four semantic errors in declarations that
#: depend on none of the others: a CEL field typo in `quiet`, an unknown argument in the
#: proposal, and an unknown tool and status in the last test's history.
BASE = """\
tool refund(order_id: string, amount: float) {
  description "refund an order"
}
tool notify(channel: string)
tool shell(cmd: string)

state {
  refunds_today: int = 0
}

capability support_bot {
  tools allow refund, notify
  max_actions 5
}
budget small {
  max_actions 5
}

deny_tool shell
policy refund_cap: deny refund when state.refunds_today >= 5
policy quiet: deny notify when params.chanel == "ops"

proposal refund_one under support_bot, small {
  pay = refund(order_id: "A1", amount: 20)
  tell = notify(channel: "ops", urgent: true) after pay
}

plan refunds {
  candidates refund_one
}

test "small refunds pass" {
  action refund(order_id: "A1", amount: 20)
  expect allow
}
test "the cap applies" {
  action refund(order_id: "A2", amount: 20)
  state { refunds_today: 5 }
  expect deny by refund_cap
}
test "shell is denied" { action shell(cmd: "ls")  expect deny by "deny_tool:shell" }
test "the plan wins" { plan refunds  expect winner refund_one }
test "history typo" {
  action notify(channel: "ops")
  history [{id: "h", type: "tool_call", tool: "refnd", params: {}, status: "ok"}]
  expect allow
}
"""
QUIET = ("CL0506", "policy `quiet`: `params` has no field `chanel`")
URGENT = ("CL0203", "tool `notify` has no parameter `urgent`")
HISTORY = [
    ("CL0701", "history entry 1: no tool is called `refnd`"),
    ("CL0701", "history entry 1: no status `ok`"),
]
BASE_FINDINGS = [QUIET, URGENT, *HISTORY]

# (kind, text replaced, its replacement, the syntax error (line, column, message)); when the
# proposal is the broken one, its own error (URGENT) goes with it.
BROKEN = [
    (
        "tool",
        '  description "refund an order"',
        "  description refund an order",
        (2, 15, "unexpected name `refund`"),
    ),
    (
        "state",
        "  refunds_today: int = 0",
        "  refunds_today int = 0",
        (8, 17, "unexpected name `int`"),
    ),
    (
        "capability",
        "  tools allow refund, notify",
        "  tools allow refund notify",
        (12, 22, "unexpected name `notify`"),
    ),
    (
        "budget",
        "  max_actions 5\n}\n\ndeny",
        "  max_actions five\n}\n\ndeny",
        (16, 15, "unexpected name `five`"),
    ),
    ("rule", "deny_tool shell\n", "deny_tool shell shell2\n", (19, 17, "unexpected name `shell2`")),
    (
        "policy",
        "deny refund when state",
        "deny refund whn state",
        (20, 32, "unexpected name `whn`"),
    ),
    (
        "proposal",
        '  pay = refund(order_id: "A1"',
        '  pay = refund(order_id "A1"',
        (24, 25, 'unexpected string "A1"'),
    ),
    ("plan", "  candidates refund_one\n", "  candidates refund_one,\n", (30, 1, "unexpected `}`")),
    (
        "test",
        "  expect allow\n}\ntest",
        "  expect denied\n}\ntest",
        (34, 10, "unexpected name `denied`"),
    ),
    (
        "test left open",
        "  expect allow\n}\ntest",
        "  expect allow\n\ntest",
        (36, 1, "unexpected `test`"),
    ),
    # `plan` is read as an action's name in the proposal left open: the error is after it
    ("proposal left open", "after pay\n}\n", "after pay\n\n", (28, 6, "unexpected name `refunds`")),
    # a `}` too many closes the block early: what it then holds is not the block written
    ("capability closed early", "refund, notify", "refund }, notify", (12, 23, "unexpected `,`")),
    (
        "state closed early",
        "  refunds_today: int = 0",
        "  refunds_today: int } = 0",
        (8, 24, "unexpected `=`"),
    ),
    # a keyword starts a declaration mid-line: `policy refund_cap: deny` is complete before it
    (
        "policy cut mid-line",
        "deny refund when",
        "deny test refund when",
        (20, 30, "unexpected name `refund`"),
    ),
]


def findings(text: str) -> list[Diagnostic]:
    """Every diagnostic `check` gives `text` (unused declarations included)."""
    return compile_text(text, "base.car", Path("/tmp")).diagnostics.sorted()


def test_the_base_program_has_only_its_four_errors() -> None:
    assert sorted((d.code, d.message) for d in findings(BASE)) == sorted(BASE_FINDINGS)


@pytest.mark.parametrize(
    ("kind", "old", "new", "syntax_error"),
    [pytest.param(*case, id=case[0]) for case in BROKEN],
)
def test_a_broken_declaration_hides_no_error_of_another(
    kind: str, old: str, new: str, syntax_error: tuple[int, int, str]
) -> None:
    """One syntax error, at the broken declaration, and the other declarations' errors; no
    finding about what the broken one declared or used (its names are not "unknown" to the
    tests, proposals and plans that use them, nor "never used")."""
    assert BASE.count(old) == 1
    found = findings(BASE.replace(old, new))
    syntax = [d for d in found if d.code in SYNTAX_CODES]
    assert [(*d.location()[1:], d.message) for d in syntax] == [syntax_error]
    expected = [f for f in BASE_FINDINGS if not (f == URGENT and kind.startswith("proposal"))]
    others = [(d.code, d.message) for d in found if d.code not in SYNTAX_CODES]
    assert sorted(others) == sorted(expected)


def test_a_block_left_open_keeps_the_declaration_after_it() -> None:
    """The error is at the next declaration's keyword (the `}` before it is missing): parsing
    resumes at that keyword, so that declaration is parsed, not skipped with the open one."""
    text = BASE.replace("  expect allow\n}\ntest", "  expect allow\n\ntest")
    module = parse(Source("base.car", text)).module
    assert module is not None
    names = [d.name.value for d in module.declarations if isinstance(d, ast.TestDecl)]
    assert names == ["the cap applies", "shell is denied", "the plan wins", "history typo"]


def test_a_proposal_left_open_keeps_the_declaration_after_it() -> None:
    """In a proposal, `plan` in the first column reads as an action's name; the error comes
    at the token after it. Parsing resumes at `plan`, which is then a keyword: the plan is
    parsed, and the error says which `{` to close."""
    result = parse(Source("base.car", BASE.replace("after pay\n}\n", "after pay\n\n")))
    assert result.module is not None
    kinds = [type(d).__name__ for d in result.module.declarations]
    assert "PlanDecl" in kinds and "ProposalDecl" not in kinds
    (error,) = result.diagnostics.items
    assert error.help == "close the `{` opened at 23:46 with `}` before `plan`"


def test_a_policy_cut_short_is_not_judged() -> None:
    """`deny refund whn ...`: the policy was complete after `refund`, so recovery could keep
    `deny refund` (every refund denied) and `check` would report it denying the proposal's
    call (CL0520). It is a broken declaration, skipped whole."""
    text = BASE.replace("deny refund when state", "deny refund whn state")
    module = parse(Source("base.car", text)).module
    assert module is not None
    policies = [d.name.text for d in module.declarations if isinstance(d, ast.PolicyDecl)]
    assert policies == ["quiet"]
    assert "CL0520" not in [d.code for d in findings(text)]


def test_a_declaration_is_not_cut_by_an_error_on_a_line_of_its_own() -> None:
    """A mistake in the first column starts a declaration (a misspelt keyword), as recovery
    reads it: the complete declaration before it stays."""
    text = BASE.replace("policy quiet:", "polcy quiet:")
    module = parse(Source("base.car", text)).module
    assert module is not None
    assert [d.name.text for d in module.declarations if isinstance(d, ast.PolicyDecl)] == [
        "refund_cap"
    ]
    assert any(d.code == "CL0102" for d in findings(text))


def test_each_broken_declaration_is_one_syntax_error() -> None:
    text = BASE
    for _, old, new, _ in [BROKEN[0], BROKEN[3], BROKEN[5], BROKEN[8]]:
        text = text.replace(old, new)
    found = findings(text)
    assert [d.location()[1] for d in found if d.code in SYNTAX_CODES] == [2, 16, 20, 34]
    assert Counter(d.code for d in found if d.code not in SYNTAX_CODES) == Counter(
        {"CL0506": 1, "CL0203": 1, "CL0701": 2}
    )


def test_a_tool_only_broken_text_uses_is_not_never_used() -> None:
    """The proposal is the only user of `refund`: broken, it may still use it (no CL0207);
    a tool nothing names anywhere is still reported."""
    text = BASE.replace('  pay = refund(order_id: "A1"', '  pay = refund(order_id "A1"')
    text = text.replace("policy refund_cap: deny refund", "policy refund_cap: deny notify")
    text += "tool forgotten()\n"
    unused = [d.message for d in findings(text) if d.code == "CL0207"]
    assert unused == ["tool `forgotten` is never used"]


def test_what_a_broken_test_calls_is_no_use() -> None:
    """A test's call does not make a tool used, broken or not."""
    text = BASE + 'tool lonely()\ntest "t" {\n  action lonely()\n  expect maybe\n}\n'
    unused = [d.message for d in findings(text) if d.code == "CL0207"]
    assert unused == ["tool `lonely` is never used"]


def test_a_state_block_cut_short_judges_no_state_flow() -> None:
    """A key of a broken `state` block has no value in the plan's state: the precondition
    that reads it is not reported to fail (CL0401), nor a deny predicted from it (CL0522)."""
    text = BASE.replace(
        '  pay = refund(order_id: "A1", amount: 20)\n',
        '  pay = refund(order_id: "A1", amount: 20) {\n    requires refunds_today < 5\n  }\n',
    )
    assert sorted((d.code, d.message) for d in findings(text)) == sorted(BASE_FINDINGS)
    broken = findings(text.replace("  refunds_today: int = 0", "  refunds_today int = 0"))
    assert [d.code for d in broken if d.code not in SYNTAX_CODES] == ["CL0506", "CL0203"] + [
        "CL0701"
    ] * 2


def test_an_import_the_parser_skipped_may_declare_anything() -> None:
    """A late `import` is not loaded: any name may be declared in the file it names."""
    text = 'tool t()\nimport "more.car"\ntest "x" { action elsewhere()  expect allow }\n'
    assert [d.code for d in findings(text)] == ["CL0102"]


def test_the_language_server_reports_the_other_errors_too(tmp_path: Path) -> None:
    """The editor shows what `check` shows: the syntax error and the other tests' errors."""
    pytest.importorskip("lsprotocol", reason="the language server needs lsprotocol")
    from carlang.lsp.project import Project

    path = tmp_path / "refunds.car"
    path.write_text(TRIAL, encoding="utf-8")
    project = Project(tmp_path)
    project.scan()
    project.set_text(path.resolve(), TRIAL)
    found = project.diagnostics(path.resolve())
    assert [d.code for d in found].count("CL0701") == len(TRIAL_ERRORS)
    assert [d.code for d in found if d.code in SYNTAX_CODES] == ["CL0102"]


# -- the property: junk in one declaration removes no finding of another ----------------------

#: Tokens as a user mistypes them (as tests/test_properties.py cuts text into tokens).
_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[A-Za-z_*][A-Za-z0-9_.*]*|[0-9]+|\S')
_JUNK = ["zzz", "42", "@", ")", "}", "{", "]", "=", ":", '"x"', "->", "|", "per"]
_BASE_MODULE = parse(Source("base.car", BASE)).module
assert _BASE_MODULE is not None
# Every declaration but `tool notify`, which the other findings are about.
_TARGETS = [
    (d.span.start, d.span.end)
    for d in _BASE_MODULE.declarations
    if not (isinstance(d, ast.ToolDecl) and d.name.text == "notify")
]
_BASE_FOUND = findings(BASE)


@st.composite
def junk_in_a_declaration(draw: st.DrawFn) -> tuple[str, tuple[int, int], int, int]:
    """BASE with a junk token put after one of a declaration's tokens (never in the first
    column, where a declaration starts): the text, the declaration's span in BASE, where the
    junk is and its size."""
    start, end = draw(st.sampled_from(_TARGETS))
    at = draw(st.sampled_from([m.end() for m in _TOKEN.finditer(BASE, start, end)]))
    junk = f" {draw(st.sampled_from(_JUNK))} "  # (a token of its own, never glued to one)
    return BASE[:at] + junk + BASE[at:], (start, end), at, len(junk)


def _outside(found: list[Diagnostic], span: tuple[int, int]) -> Counter[tuple[str, str, int]]:
    """`(code, message, offset)` of the findings outside `span` (a finding at its very end,
    as CEL's "unexpected end of condition", is inside)."""
    kept: Counter[tuple[str, str, int]] = Counter()
    for d in found:
        label = d.primary
        assert label is not None
        if not span[0] <= label.span.start <= span[1]:
            kept[(d.code, d.message, label.span.start)] += 1
    return kept


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk_in_a_declaration())
def test_junk_in_one_declaration_keeps_the_findings_of_the_others(
    case: tuple[str, tuple[int, int], int, int],
) -> None:
    """Whatever a junk token does to its declaration, the other declarations say what they
    said (nothing removed, nothing added), and the file has at most one syntax error (which
    may be at the next declaration, when the junk leaves a block open)."""
    text, (start, end), at, size = case
    everything = findings(text)
    assert sum(d.code in SYNTAX_CODES for d in everything) <= 1, [d.message for d in everything]
    found = [d for d in everything if d.code not in SYNTAX_CODES]
    # the findings after the junk, moved back to where they are in BASE
    after = Counter(
        {
            (code, message, offset - size if offset >= at + size else offset): count
            for (code, message, offset), count in _outside(found, (start, end + size)).items()
        }
    )
    assert after == _outside(_BASE_FOUND, (start, end)), [d.message for d in found]


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (
            "tool fetch(url: string)  // what it fetches\n"
            'proposal q {\n  a = fetch(ulr: "x")\n}\n'
            'policy p: deny fetch when params.ulr == "y"\n',
            ["CL0101", "CL0203", "CL0506"],
        ),
        (
            "tool fetch(url: string)\nstate { ready: bool = false }  // flags\n"
            "policy p: deny fetch when state.redy\n",
            ["CL0101", "CL0506"],
        ),
        (
            'tool send(to: string) -> string,\nproposal q { a = send(too: "x") }\n',
            ["CL0102", "CL0203"],
        ),
    ],
)
def test_a_stray_token_after_a_whole_declaration_hides_no_other_error(
    text: str, kept: list[str]
) -> None:
    """A tool or a one-line block followed on its line by junk (a `//` comment) is whole: it
    was dropped as cut short, and the errors of what uses it went unsaid (a review)."""
    found = [d.code for d in compile_text(text, "p.car", Path("/tmp")).diagnostics.sorted()]
    assert [c for c in found if c != "CL0207"] == kept
