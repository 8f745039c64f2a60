"""Test blocks -> test cases: what each `test` gives and what it expects, one case per row of
its `where` table, every name checked against the program (reported at its source position).

    test "fetch schemes" {
      action fetch(url: $url)            # the subject: an action, a proposal or a plan
      state { frozen: true }             # optional: state (over the initial state), scope,
      expect $decision by $policy        #   history
      where
        | url           | decision | policy     |
        | "http://x"    | deny     | https_only |
    }

Expectations: `allow` / `deny` / `require_approval` [`by POLICY`] for an action; `valid` /
`invalid` for a proposal or a plan (valid: one of its candidates is); `codes C1, C2` for a
proposal; `winner NAME` for a plan.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from carlang_runtime import ir
from carlang_runtime.cel.values import CelEvalError, CelTimestamp, format_value, parse_timestamp
from carlang_runtime.globs import GlobSet
from carlang_runtime.paramcheck import ParamChecker, finding_message
from carlang_runtime.policy import HISTORY_STATUSES, state_problems
from carlang_runtime.suggest import closest, did_you_mean

from . import ast
from .cascade import FAILED_IMPORT_CODES, SkippedText
from .codes import TEST_PROBLEM
from .diagnostics import Diagnostics, Label
from .lower import Origin, SourceMap, assertion_parameters, loc_of, new_action
from .source import Source, Span

#: A table column no `$column` of its test uses.
UNUSED_COLUMN = "CL0702"
#: An action test without `now` that a policy reading the clock judges.
READS_THE_CLOCK = "CL0703"
#: The warnings about tests themselves, which `carlang test` shows too (a test that passes
#: for the wrong reason is what a test run must not hide).
TEST_WARNINGS = frozenset({UNUSED_COLUMN, READS_THE_CLOCK})
#: The column whose cells name the rows (when no `$name` uses it).
ROW_NAME = "name"

__all__ = ["TestCase", "Expectation", "build_tests", "DECISIONS", "TEST_PROBLEM"]

DECISIONS = ("allow", "deny", "require_approval")


@dataclass(frozen=True)
class Expectation:
    """What a case expects: `kind` is decision, validity, codes or winner."""

    kind: str
    word: str = ""
    by: str | None = None
    codes: tuple[str, ...] = ()
    #: `by $policy` whose cell is empty or null: decided by no policy (the default decision)
    by_no_policy: bool = False
    #: a decision expected of the shadow policies (`expect shadow deny by p`)
    shadow: bool = False

    def __str__(self) -> str:
        if self.kind == "codes":
            return "codes " + ", ".join(self.codes)
        if self.kind == "winner":
            return f"winner {self.word}"
        text = f"{self.word} by no policy" if self.by_no_policy else self.word
        text += f" by {self.by}" if self.by and not self.by_no_policy else ""
        return f"shadow {text}" if self.shadow else text


@dataclass(frozen=True)
class TestCase:
    """One runnable case: a test, or one row of a table test."""

    name: str
    loc: ir.SourceLoc
    expectations: tuple[Expectation, ...]
    action: ir.Action | None = None
    proposal: str | None = None
    plan: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    scope: dict[str, Any] = field(default_factory=dict)
    history: list[Any] = field(default_factory=list)
    #: The time the policies see (`now "..."`); None: the time the run started.
    now: CelTimestamp | None = None
    #: The whole `test` block the case comes from (its warnings are the case's: `-k`).
    block: ir.SourceLoc | None = None

    def holds(self, file: str, line: int) -> bool:
        """Whether `file:line` lies inside the case's `test` block."""
        block = self.block
        return (
            block is not None
            and block.file == file
            and block.line <= line <= (block.end_line or block.line)
        )


class _Missing(Exception):
    """A `$column` the row does not have (reported once, the case dropped)."""


def _bind(value: Any, row: dict[str, Any]) -> Any:
    if isinstance(value, ast.Column):
        if value.name not in row:
            raise _Missing(value.name)
        return row[value.name]
    if isinstance(value, list):
        return [_bind(item, row) for item in value]
    if isinstance(value, dict):
        return {key: _bind(item, row) for key, item in value.items()}
    return value


def _cell_value(cell: ast.Value | ast.Name) -> Any:
    """A table cell's value: a name is its text, an empty cell is null."""
    if isinstance(cell, ast.Name):
        return cell.text or None
    return cell.value


@cache
def _expectable_codes() -> frozenset[str]:
    """What `expect codes` may name: every code, and every check that reports one."""
    from .codes import all_codes

    return frozenset(name for c in all_codes() for name in (c.code, c.check))


def _key_span(source: Source, within: Span, key: str) -> Span | None:
    """Where `key` is written as a key (`key:` or `"key":`) inside `within`, if it is."""
    text = source.text[within.start : within.end]
    found = re.search(rf'(?<![\w."]){re.escape(key)}"?\s*:', text)
    if found is None:
        return None
    start = within.start + found.start()
    return Span(start, start + len(key))


def _named_span(source: Source, within: Span, name: str) -> Span | None:
    """Where `name` is written inside `within`, as a key or a string (`name:`, `"name"`)."""
    if not name:
        return None
    text = source.text[within.start : within.end]
    found = re.search(rf'(?<![\w."])"?{re.escape(name)}(?![\w.])"?', text)
    if found is None:
        return None
    start = within.start + found.start()
    return Span(start, within.start + found.end())


def _declared_beside(root: Path | None, file: str, kind: str, name: str) -> str | None:
    """Help for a name a test's file does not know and a file beside it declares: the usual
    slip of a `*_test.car` that does not `import` the program it tests."""
    if root is None:
        return None
    here = root / file
    declared = re.compile(rf"^[ \t]*{re.escape(kind)}[ \t]+{re.escape(name)}\b", re.MULTILINE)
    for other in sorted(here.parent.glob("*.car")):
        if other.name == here.name:
            continue
        try:
            text = other.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if declared.search(text):
            return (
                f"{other.name} declares it, and this file does not import it: add"
                f' `import "{other.name}"` at the top of {here.name}'
            )
    return None


#: What a `history` entry is, and the statuses one can have (`policy.history_entry`): the
#: hint of a problem with one that no other hint explains.
ENTRY_HINT = (
    'an entry is like {id: "t", type: "tool_call", tool: "fetch", params: {}, status: "succeeded"}'
)
#: The fields of a `history` entry, and the types an action can have.
_ENTRY_FIELDS = ("id", "type", "tool", "params", "status")
_ACTION_TYPES = tuple(t.value for t in ir.ActionType)
#: A problem with a test's value: what to point at (a name written in it), the problem, help.
_Problem = tuple[str, str, str | None]


def _word(word: ast.Name | ast.Column | None, row: dict[str, Any]) -> str | None:
    if word is None:
        return None
    if isinstance(word, ast.Column):
        value = _bind(word, row)
        return value if isinstance(value, str) else str(value)
    return word.text


@dataclass
class _Builder:
    program: ir.Program
    diagnostics: Diagnostics
    cases: list[TestCase] = field(default_factory=list)
    #: the table row being built (a problem with a cell's value is reported on its row)
    row_span: Span = field(default_factory=lambda: Span(0, 0))
    #: The current row's cells, by column (a value from one is wrong in that cell).
    cells: dict[str, Span] = field(default_factory=dict)
    row_cells: list[dict[str, Span]] = field(default_factory=list)
    #: whether an import of the program did not load (see `known`)
    imports_failed: bool = False
    #: the text the parser skipped after a syntax error: a name declared there is unknown
    skipped: SkippedText = field(default_factory=SkippedText)
    #: the project root, which sources' names are relative to (None: files are not looked at)
    root: Path | None = None
    #: the policies whose condition reads `now` (see `clock_policies`)
    _clock_policies: list[ir.CelPolicy] | None = None

    def error(self, source: Source, span: Span, message: str, help: str | None = None) -> None:
        self.diagnostics.error(TEST_PROBLEM, message, source, span, help=help)

    def known(
        self, source: Source, name: ast.Name, kind: str, names: list[str], help: str | None = None
    ) -> bool:
        """Whether `name` is one of `names`; reports it (with a did-you-mean) if not, unless
        an import failed (what that file declares is unknown, so no name is reported unknown)
        or a declaration a syntax error made the parser skip may have declared it (as
        `cascade.without_cascades` drops the compiler's own lookups then)."""
        if name.text in names:
            return True
        if self.imports_failed or self.skipped.may_declare(name.text):
            return False
        help = (
            help
            or did_you_mean(name.text, names, "`")
            or _declared_beside(self.root, source.name, kind, name.text)
        )
        self.error(source, name.span, f"no {kind} is called `{name.text}`", help)
        return False

    def build(self, origin: Origin) -> None:
        source, decl = origin.source, origin.node
        title = str(decl.name.value)
        items = decl.items
        subjects = [
            i for i in items if isinstance(i, (ast.GivenAction, ast.GivenProposal, ast.GivenPlan))
        ]
        expects = [i for i in items if isinstance(i, ast.Expect)]
        if len(subjects) != 1:
            what = "no subject" if not subjects else "more than one subject"
            self.error(
                source,
                decl.name.span,
                f'test "{title}" has {what}',
                "give one `action ...`, `proposal NAME` or `plan NAME`",
            )
            return
        if not expects:
            self.error(
                source,
                decl.name.span,
                f'test "{title}" expects nothing',
                "add `expect allow`, `expect valid`, `expect winner NAME`, ...",
            )
            return
        if not self.columns_fit(source, decl):
            return
        self.row_cells = []
        rows = self.rows(source, decl)
        labels = _row_labels([row for row, _ in rows], decl)
        built = len(self.cases)
        for number, (row, where) in enumerate(rows, start=1):
            name = title if len(rows) == 1 else f"{title} [{labels[number - 1]}]"
            try:
                self.row_span = where
                self.cells = self.row_cells[number - 1] if self.row_cells else {}
                case = self.case(source, decl, name, subjects[0], expects, row, where)
            except _Missing as missing:
                self.error(
                    source,
                    decl.name.span,
                    f'test "{title}" uses `${missing}`, which its table does not have',
                )
                return
            if case is not None:
                self.cases.append(case)
        self.clock_warning(source, decl, self.cases[built:])

    def clock_warning(self, source: Source, decl: ast.TestDecl, cases: list[TestCase]) -> None:
        """CL0703 when the test's action, given no `now`, is judged by a policy that reads
        `now`: the test decides at the time it runs, so it passes at 09:00 and fails at 22:00
        (a trial found it under `faketime`)."""
        readers = sorted(
            {
                policy.name
                for case in cases
                if case.action is not None and case.now is None
                for policy in self.clock_policies()
                if _judges(policy, case.action.tool)
                # (a shadow policy decides only what `expect shadow` asks)
                and (not policy.shadow or any(e.shadow for e in case.expectations))
            }
        )
        if readers:
            named = ", ".join(f"`{name}`" for name in readers)
            which = f"policy {named} reads" if len(readers) == 1 else f"policies {named} read"
            self.diagnostics.warning(
                READS_THE_CLOCK,
                f"{which} `now`, and this test gives none: it passes or fails by the time it runs",
                source,
                decl.name.span,
                help='give the test its time: `now "2026-01-05T12:00:00Z"` (or a `$column`)',
            )

    def clock_policies(self) -> list[ir.CelPolicy]:
        """The program's policies whose condition reads `now` (found once)."""
        if self._clock_policies is None:
            self._clock_policies = [
                p for p in self.program.policies if isinstance(p, ir.CelPolicy) and _reads_now(p)
            ]
        return self._clock_policies

    def rows(self, source: Source, decl: ast.TestDecl) -> list[tuple[dict[str, Any], Span]]:
        """Each row's values by column, with the row's span (a failure points at its row)."""
        tables = [i for i in decl.items if isinstance(i, ast.Where)]
        if not tables:
            return [({}, decl.span)]
        table = tables[0]
        header, *body = table.rows
        names = [c.text if isinstance(c, ast.Name) else str(c.value) for c in header]
        if "" in names:
            self.error(source, table.span, "every column of a table needs a name in its header")
            return []
        rows = []
        for cells in body:
            if len(cells) != len(names):
                counted = f"{len(cells)} cell" + ("" if len(cells) == 1 else "s")
                where = cells[0].span.cover(cells[-1].span) if cells else table.span
                self.error(source, where, f"a table row has {counted}, the header {len(names)}")
                continue
            values = {name: _cell_value(cell) for name, cell in zip(names, cells, strict=True)}
            self.row_cells.append(
                {name: cell.span for name, cell in zip(names, cells, strict=True)}
            )
            rows.append((values, cells[0].span.cover(cells[-1].span)))
        return rows

    def columns_fit(self, source: Source, decl: ast.TestDecl) -> bool:
        """The test's `$columns` and its table agree: each one used is in the header (else
        reported where it is used, with the closest name), no header names one twice, and a
        table has a row. False (reported) when they do not."""
        tables = [i for i in decl.items if isinstance(i, ast.Where)]
        header: list[str] = []
        if tables and tables[0].rows:
            header = [
                c.text if isinstance(c, ast.Name) else str(c.value) for c in tables[0].rows[0]
            ]
            if "" in header:
                return True  # a column without a name: `rows` says so, first
            twice = next((name for name in header if header.count(name) > 1), None)
            if twice is not None:
                self.error(source, tables[0].span, f"the table names column `{twice}` twice")
                return False
            if len(tables[0].rows) == 1:
                self.error(
                    source,
                    tables[0].span,
                    "the table has a header and no row: the test would run no case",
                    "add a row under the header, one case per row",
                )
                return False
        fits = True
        for column in _columns(decl.items):
            if column.name in header:
                continue
            fits = False
            near = closest(column.name, header)
            if not tables:
                help = "add a `where` table with a column of that name"
            elif near is not None:
                help = f"did you mean `${near}`?"
            else:
                help = f"its columns: {', '.join(header)}"
            self.error(source, column.span, f"`${column.name}` is not a column of the table", help)
        if fits:  # (else the column an error suggests for a misspelt `$name` would be "unused")
            self.unused_columns(source, tables[0] if tables else None, decl)
        return fits

    def unused_columns(self, source: Source, table: ast.Where | None, decl: ast.TestDecl) -> None:
        """Warn of each column of `table` that no `$column` of the test uses (but `name`)."""
        used = {column.name for column in _columns(decl.items)}
        for cell in table.rows[0] if table is not None and table.rows else ():
            named = cell.text if isinstance(cell, ast.Name) else str(cell.value)
            if named not in used and named != ROW_NAME:
                self.diagnostics.warning(
                    UNUSED_COLUMN,
                    f"no `${named}` uses column `{named}`: its cells change nothing",
                    source,
                    cell.span,
                    help=f"use `${named}` in the test, remove the column, or call a column of"
                    f" row names `{ROW_NAME}`",
                )

    def case(
        self,
        source: Source,
        decl: ast.TestDecl,
        name: str,
        subject: ast.GivenAction | ast.GivenProposal | ast.GivenPlan,
        expects: list[ast.Expect],
        row: dict[str, Any],
        where: Span,
    ) -> TestCase | None:
        # Every part is checked, each reporting its own problems, before the case is dropped:
        # a test file that does not import its program names an unknown tool and an unknown
        # policy, and both are worth one CI round.
        given: dict[str, Any] = {"state": {}, "scope": {}, "history": []}
        fits = True
        for item in decl.items:
            if isinstance(item, ast.GivenState):
                given["state"] = _bind(item.data.value, row)
                fits &= self.state_fits(source, item.data, given["state"])
            elif isinstance(item, ast.GivenScope):
                given["scope"] = _bind(item.data.value, row)
            elif isinstance(item, ast.GivenHistory):
                given["history"] = _bind(item.data.value, row)
                fits &= self.history_fits(source, item.data, given["history"])
            elif isinstance(item, ast.GivenNow):
                at = self.time(source, item, subject, row)
                fits &= at is not None
                given["now"] = at
        checked = [self.expectation(source, expect, subject, row) for expect in expects]
        expectations = [expectation for expectation in checked if expectation is not None]
        fits &= len(expectations) == len(checked)
        fits &= self.consistent(source, expects, checked)
        fields: dict[str, Any] = {}
        if isinstance(subject, ast.GivenAction):
            fields["action"] = self.action(source, subject, row)
            fits &= fields["action"] is not None
        elif isinstance(subject, ast.GivenProposal):
            names = [p.id for p in self.program.proposals]
            fits &= self.known(source, subject.name, "proposal", names)
            fields["proposal"] = subject.name.text
        else:
            names = [p.name for p in self.program.plans]
            fits &= self.known(source, subject.name, "plan", names)
            fields["plan"] = subject.name.text
        if not fits:
            return None
        block = loc_of(source, decl.span)
        return TestCase(
            name, loc_of(source, where), tuple(expectations), **given, **fields, block=block
        )

    def time(
        self,
        source: Source,
        item: ast.GivenNow,
        subject: ast.GivenAction | ast.GivenProposal | ast.GivenPlan,
        row: dict[str, Any],
    ) -> CelTimestamp | None:
        """The time `now "..."` gives the policies; None (reported) unless it is an RFC 3339
        timestamp, given to a test of an action (only a decision about one reads `now`)."""
        given = item.time.value
        span = self.cell(given) if isinstance(given, ast.Column) else item.time.span
        if not isinstance(subject, ast.GivenAction):
            self.error(
                source,
                item.span,
                "`now` sets the time for a decision about an action",
                "a proposal's or a plan's checks leave out what depends on the time",
            )
            return None
        text = _bind(item.time.value, row)
        try:
            if not isinstance(text, str):
                raise CelEvalError("invalid_argument", f"{format_value(text)} is not a string")
            return parse_timestamp(text)
        except CelEvalError as exc:
            self.error(
                source,
                span,
                f"`now`: {exc.message}",
                'write it like now "2026-01-05T10:00:00Z" (a zone: Z or +02:00)',
            )
            return None

    def consistent(
        self, source: Source, expects: list[ast.Expect], checked: list[Expectation | None]
    ) -> bool:
        """Whether no two expectations contradict each other (`expect deny` and `expect
        allow`, `expect valid` and `expect invalid`): such a test could never pass. The
        second is the error."""
        first: dict[tuple[str, bool], Expectation] = {}
        for expect, expectation in zip(expects, checked, strict=True):
            if expectation is None or expectation.kind not in ("decision", "validity"):
                continue
            key = (expectation.kind, expectation.shadow)
            earlier = first.setdefault(key, expectation)
            if earlier.word != expectation.word:
                self.error(
                    source,
                    expect.span,
                    f"this test already expects `{earlier.word}`: it cannot also expect"
                    f" `{expectation.word}`",
                    "keep the one the test is about, or make another test for the other",
                )
                return False
        return True

    def expectation(
        self,
        source: Source,
        expect: ast.Expect,
        subject: ast.GivenAction | ast.GivenProposal | ast.GivenPlan,
        row: dict[str, Any],
    ) -> Expectation | None:
        fits: tuple[type, ...] = {
            "decision": (ast.GivenAction,),
            "validity": (ast.GivenProposal, ast.GivenPlan),
            "codes": (ast.GivenProposal,),
            "winner": (ast.GivenPlan,),
        }[expect.kind]
        if not isinstance(subject, fits):
            wanted = {
                "decision": "an action",
                "validity": "a proposal or a plan",
                "codes": "a proposal",
                "winner": "a plan",
            }[expect.kind]
            self.error(source, expect.span, f"`expect {expect.kind}` needs {wanted} as subject")
            return None
        word = _word(expect.word, row) or ""
        if expect.kind == "decision":
            if word not in DECISIONS:
                self.error(
                    source,
                    self.cell(expect.word) if isinstance(expect.word, ast.Column) else expect.span,
                    f"`{word}` is not a decision",
                    "expect allow, deny or require_approval",
                )
                return None
            if isinstance(expect.by, ast.Column) and _bind(expect.by, row) in (None, ""):
                return Expectation("decision", word, by_no_policy=True, shadow=expect.shadow)
            by = _word(expect.by, row)
            if by is not None and not self.known_policy(source, expect, by):
                return None
            if by is not None and not self.by_fits_shadow(source, expect, by):
                return None
            if by is not None and not self.by_can_decide(source, expect, word, by):
                return None
            return Expectation("decision", word, by, shadow=expect.shadow)
        if expect.kind == "codes":
            known = _expectable_codes()
            unknown = [code for code in expect.codes if code.text not in known]
            for code in unknown:  # each one: fixing one at a time, a run per name, is slow
                help = did_you_mean(code.text, sorted(known), "`")
                self.error(
                    source,
                    code.span,
                    f"no code or check is called `{code.text}`",
                    help or "see `carlang codes` for the codes and the checks reporting them",
                )
            if unknown:
                return None
            return Expectation("codes", codes=tuple(c.text for c in expect.codes))
        if expect.kind == "winner":
            plan = (
                self.program.plan(subject.name.text) if isinstance(subject, ast.GivenPlan) else None
            )
            if plan is not None and word not in plan.candidates:
                if self.skipped.may_declare(word):
                    return None  # (a candidate the parser skipped: the plan lost it)
                self.error(
                    source,
                    expect.span,
                    f"`{word}` is not a candidate of plan `{plan.name}`",
                    did_you_mean(word, plan.candidates, "`"),
                )
                return None
        return Expectation(expect.kind, word)

    def by_fits_shadow(self, source: Source, expect: ast.Expect, name: str) -> bool:
        """Whether `by NAME` asks the side NAME decides on: a shadow policy never decides an
        action (only `expect shadow ...` sees it), an enforced one never a shadow decision."""
        policy = next((p for p in self.program.policies if p.name == name), None)
        if policy is None or policy.shadow == expect.shadow:
            return True
        span = self.cell(expect.by) if isinstance(expect.by, ast.Column) else expect.span
        # what the policy decides when it fires (an allow policy denies what it does not allow)
        effect = getattr(policy, "effect", ir.PolicyEffect.DENY)
        decided = "require_approval" if effect is ir.PolicyEffect.REQUIRE_APPROVAL else "deny"
        if policy.shadow:
            self.error(
                source,
                span,
                f"`{name}` is a shadow policy: it never decides an action",
                f"write `expect shadow {decided} by {name}` for what it would decide",
            )
        else:
            self.error(
                source,
                span,
                f"`{name}` is enforced, not a shadow policy: `expect shadow` asks the shadow"
                " policies",
                f"write `expect {decided} by {name}`",
            )
        return False

    def by_can_decide(self, source: Source, expect: ast.Expect, word: str, name: str) -> bool:
        """Whether policy NAME can make the decision `word` in a test: a deny policy never
        asks for approval (a test expecting it could only fail, and said only "did not
        match"), and a rate limit never fires when a test decides a call alone."""
        policy = next((p for p in self.program.policies if p.name == name), None)
        if policy is None:  # (`capability:NAME`)
            return True
        span = self.cell(expect.by) if isinstance(expect.by, ast.Column) else expect.span
        if policy.rule == "rate_limit_tool":
            self.error(
                source,
                span,
                f"`{name}` is a rate limit: it never fires in a test, which decides one call"
                " with no calls before it",
                "a rate limit counts the calls of a run: see it fire in `carlang run`",
            )
            return False
        effect = getattr(policy, "effect", ir.PolicyEffect.DENY)
        # (an allow policy allows what it matches and denies the rest of its tools' calls)
        can = {
            ir.PolicyEffect.DENY: ("deny",),
            ir.PolicyEffect.REQUIRE_APPROVAL: ("require_approval",),
        }.get(effect, ("allow", "deny"))
        if word in can:
            return True
        self.error(
            source,
            span,
            f"`{name}` decides {' or '.join(can)}, never {word}",
            f"write `expect {can[0]} by {name}`, or name the policy that decides {word}",
        )
        return False

    def cell(self, column: ast.Column) -> Span:
        """Where the current row gives `column` (its cell; the row, if it has no such cell)."""
        return self.cells.get(column.name, self.row_span)

    def known_policy(self, source: Source, expect: ast.Expect, name: str) -> bool:
        # a name from a table cell is wrong on its row: point there
        span = expect.by.span if expect.by is not None else expect.span
        if isinstance(expect.by, ast.Column):
            span = self.cell(expect.by)
        names = [p.name for p in self.program.policies]
        # (a call the project's capability refuses is decided by it: `capability:NAME`)
        names += [f"capability:{c.name}" for c in self.program.capabilities if c.name]
        # a built-in rule goes by its IR name (`deny_tool:shell`), which `by shell` misses
        rules = [known for known in names if known.endswith(f":{name}")]
        help = (
            f'did you mean "{rules[0]}"? (a rule is named as in the IR, quoted)' if rules else None
        )
        return self.known(source, ast.Name(name, span=span), "policy", names, help)

    def state_fits(self, source: Source, data: ast.Value, state: Any) -> bool:
        """Whether a test's `state { ... }` uses only keys the program declares, each with a
        value of its declared type (when the program declares state at all); reports each
        key that does not, at the key (a value from a table cell: on its row)."""
        if not isinstance(state, dict) or self.imports_failed:
            return True
        declared = {entry.key for entry in self.program.state}
        problems = [
            problem
            for problem in state_problems(self.program.state, state)
            if problem[0] in declared or not self.skipped.may_declare(problem[0])
        ]
        for key, problem, help in problems:
            given = data.value.get(key) if isinstance(data.value, dict) else None
            if isinstance(given, ast.Column):
                span = self.cell(given)
            else:
                span = _key_span(source, data.span, key) or data.span
            self.error(source, span, problem, help)
        return not problems

    def history_fits(self, source: Source, data: ast.Value, history: Any) -> bool:
        """Whether a test's `history [...]` is a list of entries that name tools the program
        declares, with parameters those tools have and a status an entry can have (a rule
        over history would otherwise be tested against calls that can never be made: a
        tool renamed, a parameter misspelt); reports each that does not, at what it names
        (the list, when it cannot be found there)."""
        if self.imports_failed:
            return True
        if not isinstance(history, list):
            self.error(source, data.span, "`history` is a list of earlier actions", ENTRY_HINT)
            return False
        fits = True
        for number, entry in enumerate(history, 1):
            # (each problem where its own entry names it, not where an earlier entry does)
            within = data.part_span(f"[{number - 1}]")
            for named, problem, help in self.history_entry_problems(number, entry):
                self.error(source, _named_span(source, within, named) or within, problem, help)
                fits = False
        return fits

    def history_entry_problems(self, number: int, entry: Any) -> list[_Problem]:
        """`history_entry_problems` of entry `number` of a test's history, in this program
        (a tool the parser skipped may be declared)."""
        return history_entry_problems(self.program, number, entry, self.skipped.may_declare)

    def argument_span(self, call: ast.Call, param: str) -> Span:
        """Where a call's argument `param` is written (its row's cells when a column gives
        it); the tool's name when the call leaves it out."""
        for arg in call.args:
            if arg.name.text == param:
                given = arg.value.value
                return self.cell(given) if isinstance(given, ast.Column) else arg.value.span
        return call.tool.span

    def action(
        self, source: Source, given: ast.GivenAction, row: dict[str, Any]
    ) -> ir.Action | None:
        # Built from checked values, not validated again: see carlang/lower.py's docstring.
        kind = given.kind
        if isinstance(kind, ast.Call):
            tool = self.program_tool(kind.tool.text)
            if tool is None:
                self.known(source, kind.tool, "tool", [t.name for t in self.program.tools])
                return None
            properties = (tool.parameters or {}).get("properties", {})
            params: dict[str, Any] = {}
            for arg in kind.args:
                if properties and arg.name.text not in properties:
                    self.error(
                        source,
                        arg.name.span,
                        f"tool `{tool.name}` has no parameter `{arg.name.text}`",
                        did_you_mean(arg.name.text, properties, "`"),
                    )
                    return None
                params[arg.name.text] = _bind(arg.value.value, row)
            for param, spec in properties.items():
                if param not in params and isinstance(spec, dict) and "default" in spec:
                    params[param] = spec["default"]
            if tool.parameters:
                # the runtime would reject the call before any policy saw it: say so here
                findings = ParamChecker(tool.name, tool.parameters).check(params)
                for finding in findings:
                    span = self.argument_span(kind, finding.param)
                    missing = finding.kind == "missing"
                    help = f"add `{finding.param}: ...` to the call" if missing else None
                    self.error(source, span, finding_message(tool.name, finding), help)
                if findings:
                    return None
            return new_action(
                {
                    "id": "test",
                    "type": ir.ActionType.TOOL_CALL,
                    "tool": tool.name,
                    "parameters": params,
                }
            )
        if isinstance(kind, ast.SetState):
            value = _bind(kind.value.value, row)
            return new_action(
                {
                    "id": "test",
                    "type": ir.ActionType.STATE_WRITE,
                    "parameters": {"key": kind.key.text, "value": value},
                }
            )
        if isinstance(kind, ast.ReadState):
            return new_action(
                {
                    "id": "test",
                    "type": ir.ActionType.STATE_READ,
                    "parameters": {"key": kind.key.text},
                }
            )
        params = _bind(assertion_parameters(kind.condition), row)
        return new_action({"id": "test", "type": ir.ActionType.ASSERTION, "parameters": params})

    def program_tool(self, name: str) -> ir.ToolSchema | None:
        return next((t for t in self.program.tools if t.name == name), None)


def history_entry_problems(
    program: ir.Program,
    number: int,
    entry: Any,
    may_declare: Callable[[str], bool] = lambda _name: False,
) -> list[_Problem]:
    """What is wrong with entry `number` of a test's history: a field an entry does not
    have, a type or status no action has, a tool the program does not declare, or
    parameters that tool cannot have been called with (unknown, of the wrong type or
    breaking the schema's constraints; not checked for a refused call, which may have been
    refused for exactly that). `may_declare`: whether a tool the program does not have may
    still be declared (in text the parser skipped). Each problem: what it names in the entry
    (a key, a value), the message, and a hint (`carlang eval --history` checks its entries
    so too)."""
    if not isinstance(entry, dict):
        return [("", f"history entry {number} is not a map", ENTRY_HINT)]
    problems: list[_Problem] = []
    for key in entry:
        if key not in _ENTRY_FIELDS:
            hint = did_you_mean(str(key), _ENTRY_FIELDS, "`") or ENTRY_HINT
            problems.append((str(key), f"history entry {number} has no field `{key}`", hint))
    for field_name, allowed in (("status", HISTORY_STATUSES), ("type", _ACTION_TYPES)):
        value = entry.get(field_name)
        if field_name in entry and (not isinstance(value, str) or value not in allowed):
            named, shown = (
                (value, value) if isinstance(value, str) else (field_name, json.dumps(value))
            )
            problems.append((named, f"history entry {number}: no {field_name} `{shown}`",
                             f"a {field_name} is one of {', '.join(allowed)}"))  # fmt: skip
    # (as a run writes them: the id a string, the tool a string or null for a state action)
    for field_name, nullable in (("id", False), ("tool", True)):
        value = entry.get(field_name)
        if field_name in entry and not (isinstance(value, str) or (nullable and value is None)):
            kind = "a string or null" if nullable else "a string"
            problems.append((field_name, f"history entry {number}: `{field_name}` is not {kind}",
                             ENTRY_HINT))  # fmt: skip
    name, params = entry.get("tool"), entry.get("params")
    if "params" in entry and not isinstance(params, dict):  # (a run writes a map, maybe `{}`)
        problems.append(("params", f"history entry {number}: `params` is not a map", ENTRY_HINT))
        params = None
    if not isinstance(name, str):
        return problems
    tool = next((t for t in program.tools if t.name == name), None)
    if tool is None and not may_declare(name):
        names = [t.name for t in program.tools]
        problems.append((name, f"history entry {number}: no tool is called `{name}`",
                         did_you_mean(name, names, "`")))  # fmt: skip
    if tool is None or not params or not tool.parameters:
        return problems
    properties = tool.parameters.get("properties") or {}
    closed = tool.parameters.get("additionalProperties") is False
    for key in params:
        if closed and key not in properties:
            problems.append((str(key),
                f"history entry {number}: tool `{name}` has no parameter `{key}`",
                did_you_mean(str(key), list(properties), "`")))  # fmt: skip
    if entry.get("status") != "rejected":
        for finding in ParamChecker(tool.name, tool.parameters).check(params):
            # (not "missing": an entry may leave out what a rule does not read; unknown
            # parameters, a constraint without a parameter, are said above)
            if finding.kind == "type" or (finding.kind == "constraint" and finding.param):
                message = f"history entry {number}: {finding_message(name, finding)}"
                problems.append((finding.param, message, None))
    return problems


def _reads_now(policy: ir.CelPolicy) -> bool:
    """Whether the policy's condition reads `now` (False when it does not compile: that is
    reported where it is written)."""
    from carlang_runtime.cel import CelCompileError, CelSyntaxError, compile

    if policy.when is None or "now" not in policy.when:
        return False
    try:
        return "now" in compile(policy.when).variables
    except (CelCompileError, CelSyntaxError):
        return False


def _judges(policy: ir.CelPolicy, tool: str | None) -> bool:
    """Whether `policy` judges a call of `tool` (None: an action that is no call)."""
    return not policy.tools or (tool is not None and GlobSet(policy.tools).matches(tool))


def build_tests(
    program: ir.Program,
    source_map: SourceMap,
    diagnostics: Diagnostics,
    skipped: SkippedText | None = None,
    root: Path | None = None,
) -> list[TestCase]:
    """Every test of the program as runnable cases; problems go to `diagnostics`. `skipped`:
    the text the parser skipped after syntax errors (`cascade.skipped_text`); `root`: the
    project root (a name no import brings is looked for in the files beside the test's)."""
    skipped = skipped or SkippedText()
    # After an import that failed (or that the parser skipped), what the program declares is
    # not known: no name is reported unknown. After a declaration the parser skipped, only
    # the names written in it are (a test's own errors are reported with the syntax error).
    failed = skipped.anything or any(d.code in FAILED_IMPORT_CODES for d in diagnostics.items)
    builder = _Builder(program, diagnostics, imports_failed=failed, skipped=skipped, root=root)
    named: dict[tuple[str, str], Origin] = {}
    for origin in source_map.tests:
        _check_name(origin, named, diagnostics)
        builder.build(origin)
    return builder.cases


def _check_name(
    origin: Origin, named: dict[tuple[str, str], Origin], diagnostics: Diagnostics
) -> None:
    """A test's name says which failed, selects it (`-k`) and names its JUnit case: it must
    say something, and be the only one of its file (reports name a test with its file: two
    imported files may each have a "smoke" test)."""
    decl = origin.node
    assert isinstance(decl, ast.TestDecl)
    name = str(decl.name.value)
    if not name.strip():
        diagnostics.error(
            TEST_PROBLEM,
            "a test needs a name",
            origin.source,
            decl.name.span,
            help='say what it shows: `test "prod deploys need approval" { ... }`',
        )
        return
    first = named.setdefault((origin.source.name, name), origin)
    if first is not origin:
        diagnostics.error(
            TEST_PROBLEM,
            f'two tests are called "{name}"',
            origin.source,
            decl.name.span,
            related=[Label(first.source, first.node.name.span, "the first", False)],
            help="give each test its own name: reports and `-k` tell them apart by it",
        )


def _row_labels(rows: list[dict[str, Any]], decl: ast.TestDecl) -> list[str]:
    """How reports and `-k` name each row: its `name` cell (a column no `$name` uses), or
    `row N` when it has none, or shares its name with another row."""
    uses_name = any(column.name == ROW_NAME for column in _columns(decl.items))
    given = [
        row.get(ROW_NAME) if not uses_name and isinstance(row.get(ROW_NAME), str) else None
        for row in rows
    ]
    labels = [
        label.strip() if label and label.strip() else f"row {n}"
        for n, label in enumerate(given, start=1)
    ]
    # A name two rows share (" a" and "a" too, or a cell saying "row 2" above row 2, which has
    # none) goes back to each row's number; as positions differ, this ends.
    while len(set(labels)) < len(labels):
        labels = [
            label if labels.count(label) == 1 else f"row {n}"
            for n, label in enumerate(labels, start=1)
        ]
    return labels


def _columns(value: Any) -> list[ast.Column]:
    """Every `$column` in a test's items (their values, their expectations), in order."""
    if isinstance(value, ast.Column):
        return [value]
    if isinstance(value, (list, tuple)):
        return [column for item in value for column in _columns(item)]
    if isinstance(value, dict):
        return [column for item in value.values() for column in _columns(item)]
    if isinstance(value, ast.Node) and not isinstance(value, ast.Where):
        parts = (getattr(value, name) for name in ast.compared_fields(type(value)))
        return [column for part in parts for column in _columns(part)]
    return []
