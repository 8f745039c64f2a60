"""Cascades: findings that only follow from another finding, dropped so that the real mistake
is the one a user reads (and reads once). Recognised here, after every stage has run:

- a literal no field can hold (CL0104, CL0217 from the parser) is replaced by a stand-in value
  so that later stages can go on; whatever they then say about a clause that contains that
  literal ("precondition will fail" on `k < 1e400`) is about the stand-in, not the program;
- a syntax error makes the parser skip text up to the next declaration; a name that is
  "unknown" (a tool, an action, a state key) but is written in that skipped text was very
  likely declared there, so the lookup failure is a consequence of the syntax error (not in
  a skipped `test`, which declares nothing: `SkippedText`); and after an import that failed,
  or one the parser skipped, no name is reported unknown at all (but a type: types are built
  in, and no file declares one);
- anything else said at the very place of an unknown name (that the capability does not allow
  the tool, say) follows from the name being wrong;
- a required parameter is "missing" from a call whose unknown argument is its misspelling
  (`chanel:` for `channel`): the misspelling is the finding; and the schema's "additional
  properties are not allowed" about arguments the signature does not have (CL0203 names each);
- a precondition or an assertion "will fail" on a state key the plan writes a value of the
  wrong type to (`paid = "yes"` for a bool), or on the initial value of a key that does not
  fit its type (`tier: "a" | "b" = "c"`, then `assert tier == "z"`): the value is the finding;
- a warning that repeats an error: "not declared" about a state key where an error already
  suggests the declared one, or "never used" about a declaration an error suggests instead of
  a misspelt name.

Other cascades are avoided where they arise: policy verdicts on a call whose parameters are
wrong, or from a policy whose condition has errors (`compiler._judge_proposals`); a test's
unknown names after an import that failed, or that skipped text may declare
(`testcases.build_tests`); where an action runs in the state flow when its `after` names no
action (`compiler._verify_proposals`); and declarations "never used" that skipped text names
(`compiler.unused_declarations`).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise

from carlang_runtime.globs import GlobSet

from . import ast
from .diagnostics import Diagnostic
from .loader import LoadedProgram, ParsedFile
from .source import Span
from .syntax import DECLARATION_KEYWORDS, RULE_KEYWORDS

__all__ = [
    "LOOKUP_CODES",
    "SYNTAX_CODES",
    "FAILED_IMPORT_CODES",
    "UNUSED",
    "SkippedText",
    "without_repeated_warnings",
    "has_syntax_errors",
    "skipped_text",
    "without_cascades",
]

#: Findings that a name is not declared (or matches nothing declared).
LOOKUP_CODES = frozenset(
    {
        "CL0202",
        "CL0204",
        "CL0206",
        "CL0223",
        "CL0302",
        "CL0306",
        "CL0311",
        "CL0312",
        "CL0502",
        "CL0505",
    }
)
#: The parser's own errors: the text itself is wrong.
SYNTAX_CODES = frozenset({"CL0101", "CL0102", "CL0103", "CL0105", "CL0106"})
#: Literals reported by the parser and replaced by a stand-in value.
_LITERAL_CODES = frozenset({"CL0104", "CL0217"})
_SUGGESTED = re.compile(r"did you mean `([^`]+)`")
#: Imports that did not load: what the file declared is unknown, so no name is "unknown".
FAILED_IMPORT_CODES = frozenset({"CL0209", "CL0211"})
#: Lookups of names no file can declare (types are built in): neither an import that failed
#: nor skipped text explains them, so they are reported whatever else failed.
_BUILT_IN_LOOKUPS = frozenset({"CL0204"})
#: A call without a required parameter, and an argument the tool does not have.
MISSING_PARAMETER = "CL0307"
UNKNOWN_PARAMETER = "CL0203"
#: A call's parameters against its tool's schema, and its words for arguments a closed
#: schema (a signature's) does not have.
PARAMETER_SCHEMA = "CL0309"
_UNEXPECTED = re.compile(
    r"^tool '[^']*': parameters: Additional properties are not allowed \((.*) (?:was|were)"
    r" unexpected\)$"
)
#: A declaration nothing uses.
UNUSED = "CL0207"
#: A value that does not have its declared type, and what the state flow then finds about
#: the key it is written to (a precondition or an assertion that fails on that value).
VALUE_TYPE = "CL0205"
STATE_FLOW_CODES = frozenset({"CL0401", "CL0404"})
#: What is judged from the state a plan starts from: the state flow's findings, and a deny
#: predicted from that state (policycheck's CL0522). A key whose declaration the parser
#: skipped has no value there, so what is said about it is a guess.
STATE_GUESS_CODES = STATE_FLOW_CODES | {"CL0522"}
_STATE_KINDS = frozenset({"state"})
_MISTYPED = re.compile(r"value for `([^`]+)` does not fit its declared type")
_BAD_INITIAL = re.compile(r"initial value of `([^`]+)` does not fit its type")
#: A state key no `state` block declares.
UNDECLARED_KEY = "CL0206"
_WORD = re.compile(r"[A-Za-z_*][A-Za-z0-9_.*]*")
_QUOTED_NAME = re.compile(r"[`']([^`']+)[`']")


def has_syntax_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    """Whether any of `diagnostics` is a syntax error (something was not parsed)."""
    return any(d.code in SYNTAX_CODES and d.severity == "error" for d in diagnostics)


def without_cascades(
    items: list[Diagnostic], loaded: LoadedProgram, parse_findings: list[Diagnostic]
) -> list[Diagnostic]:
    """`items` without the findings that follow from another one (see the module's doc).
    `parse_findings` are the diagnostics the parser reported."""
    literals = _literal_spans(parse_findings)
    parsed = {id(d) for d in parse_findings}
    skipped = skipped_text(loaded, parse_findings)
    unknown_at = {
        (id(label.source), label.span)
        for d in items
        if d.code in LOOKUP_CODES and d.severity == "error" and (label := d.primary)
    }
    import_failed = skipped.anything or any(d.code in FAILED_IMPORT_CODES for d in items)
    misspelt = _misspelt_arguments(items)
    unboundable = _tools_with_bound_errors(items, loaded)
    mistyped = _mistyped_keys(items, loaded)
    bad_initial = _invalid_initial_values(items, loaded)
    kept = []
    for diagnostic in items:
        label = diagnostic.primary
        if id(diagnostic) in parsed:
            kept.append(diagnostic)
        elif _contains_literal(diagnostic, literals):
            continue
        elif (
            diagnostic.code in LOOKUP_CODES
            and diagnostic.code not in _BUILT_IN_LOOKUPS
            and (import_failed or _names_skipped(diagnostic, skipped))
        ):
            continue
        elif diagnostic.code in STATE_GUESS_CODES and _names_skipped(
            diagnostic, skipped, _STATE_KINDS
        ):
            continue  # about a key whose `state` declaration was skipped ("has no value")
        elif diagnostic.code == MISSING_PARAMETER and _is_misspelt(diagnostic, misspelt):
            continue
        elif diagnostic.code == PARAMETER_SCHEMA and _only_unknown_arguments(diagnostic, items):
            continue  # the schema's "additional properties" about arguments CL0203 names
        elif diagnostic.code == PARAMETER_SCHEMA and _about_tools(diagnostic, unboundable):
            continue  # a call checked against bounds that leave no value (CL0217 says so)
        elif diagnostic.code in STATE_FLOW_CODES and any(
            (f"state['{key}']" in diagnostic.message or f": '{key}' is " in diagnostic.message)
            and _within_one(diagnostic, where)
            for key, where in mistyped
        ):
            continue  # about a value its plan writes with the wrong type ("assertion will fail")
        elif diagnostic.code in STATE_FLOW_CODES and _about_a_value(diagnostic, bad_initial):
            continue  # about an initial value already reported as not fitting its type
        elif (
            diagnostic.code not in LOOKUP_CODES
            and label is not None
            and (id(label.source), label.span) in unknown_at
        ):
            continue  # about a name that does not exist ("tool `fetsh` is not allowed")
        else:
            kept.append(diagnostic)
    return without_repeated_warnings(kept)


#: A bound that cannot be used: no such bound, a value of the wrong kind, none left to take.
BOUND_PROBLEM = "CL0217"
_SCHEMA_OF_TOOL = re.compile(r"^tool '([^']*)'")


def _tools_with_bound_errors(items: list[Diagnostic], loaded: LoadedProgram) -> set[str]:
    """The tools with a bound that cannot be used in their declaration (CL0217): every call's
    check against that schema (CL0309, "3 is greater than the maximum of 1", or "an invalid
    registered JSON Schema") follows from it."""
    at = [
        (id(d.primary.source), d.primary.span)
        for d in items
        if d.code == BOUND_PROBLEM and d.primary
    ]
    if not at:
        return set()
    return {
        decl.name.text
        for parsed in loaded.files
        for decl in parsed.module.declarations
        if isinstance(decl, ast.ToolDecl)
        and any(source == id(parsed.source) and _within(span, decl.span) for source, span in at)
    }


def _about_tools(diagnostic: Diagnostic, tools: set[str]) -> bool:
    """Whether a parameter-schema finding is about a call of one of `tools`."""
    found = _SCHEMA_OF_TOOL.match(diagnostic.message) if tools else None
    return found is not None and found.group(1) in tools


def _mistyped_keys(
    items: list[Diagnostic], loaded: LoadedProgram
) -> list[tuple[str, tuple[int, Span]]]:
    """Each state key a plan writes a value of the wrong type to (CL0205), with the proposal
    it is written in (its source by id, and its span): what the state flow says of that key
    in another proposal is its own finding."""
    proposals = [
        (parsed.source, decl.span)
        for parsed in loaded.files
        for decl in parsed.module.declarations
        if isinstance(decl, ast.ProposalDecl)
    ]
    found = []
    for d in items:
        match = _MISTYPED.match(d.message) if d.code == VALUE_TYPE else None
        label = d.primary
        if match is None or label is None:
            continue
        for source, span in proposals:
            if source is label.source and _within(label.span, span):
                found.append((match.group(1), (id(source), span)))
    return found


def _invalid_initial_values(
    items: list[Diagnostic], loaded: LoadedProgram
) -> list[tuple[str, str]]:
    """`(key, value)` for each state key whose initial value does not fit its type (CL0205),
    the value as the state flow's findings show it (`compiler._verify_proposals`)."""
    from carlang_runtime.cel import format_value

    keys = {
        found.group(1)
        for d in items
        if d.code == VALUE_TYPE and (found := _BAD_INITIAL.match(d.message)) is not None
    }
    if not keys:
        return []
    return [
        (entry.key.text, format_value(entry.default.value))
        for parsed in loaded.files
        for decl in parsed.module.declarations
        if isinstance(decl, ast.StateDecl)
        for entry in decl.entries
        if entry.key.text in keys and entry.default is not None
    ]


def _about_a_value(diagnostic: Diagnostic, values: list[tuple[str, str]]) -> bool:
    """Whether a state-flow finding says a key holds one of `values` (`(key, value)`): the
    assertion's `state['k'] = V,`, a precondition's `'k' is V,` or `'k': V <op>`. A value the
    plan wrote instead is its own finding."""
    message = diagnostic.message
    return any(
        f"state['{key}'] = {value}," in message
        or f"'{key}' is {value}," in message
        or f"'{key}': {value} " in message
        for key, value in values
    )


def _within_one(diagnostic: Diagnostic, where: tuple[int, Span]) -> bool:
    """Whether `diagnostic` is inside the span of source (by id) `where`."""
    label = diagnostic.primary
    return label is not None and id(label.source) == where[0] and _within(label.span, where[1])


def without_repeated_warnings(items: list[Diagnostic]) -> list[Diagnostic]:
    """`items` without the warnings that repeat one of its errors (see `_shadowed`)."""
    errors = [d for d in items if d.severity == "error"]
    error_spans = {
        (id(label.source), label.span)
        for d in errors
        if _SUGGESTED.search(d.help or "") and (label := d.primary)
    }
    suggested = {name for d in errors for name in _SUGGESTED.findall(d.help or "")}
    return [d for d in items if d.severity == "error" or not _shadowed(d, error_spans, suggested)]


def _shadowed(warning: Diagnostic, error_spans: set[tuple[int, Span]], suggested: set[str]) -> bool:
    """A warning that says again what an error says: an undeclared state key where an error
    (the key is not available there) already suggests the declared one, or "never used"
    about the very name an error suggests (`under cpa` with `did you mean cap?`: `cap` is
    unused only because of it)."""
    label = warning.primary
    if warning.code == UNDECLARED_KEY and label is not None:
        return (id(label.source), label.span) in error_spans
    if warning.code == UNUSED:
        return any(f"`{name}`" in warning.message for name in suggested)
    return False


def _misspelt_arguments(items: list[Diagnostic]) -> list[tuple[str, Diagnostic]]:
    """`(parameter, diagnostic)` for each unknown argument that a parameter's name is
    suggested for (`chanel:` -> did you mean `channel`?)."""
    return [
        (name, d)
        for d in items
        if d.code == UNKNOWN_PARAMETER
        for name in _SUGGESTED.findall(d.help or "")
    ]


def _only_unknown_arguments(finding: Diagnostic, items: list[Diagnostic]) -> bool:
    """A parameter-schema finding that only says a call has arguments its signature does not
    have, each of which an unknown-parameter finding inside the call names already."""
    found = _UNEXPECTED.search(finding.message)
    label = finding.primary
    if found is None or label is None:
        return False
    named = {
        name
        for d in items
        if d.code == UNKNOWN_PARAMETER
        and (inner := d.primary) is not None
        and inner.source is label.source
        and _within(inner.span, label.span)
        for name in _QUOTED_NAME.findall(d.message)[-1:]
    }
    return set(_QUOTED_NAME.findall(found.group(1))) <= named


def _is_misspelt(missing: Diagnostic, misspelt: list[tuple[str, Diagnostic]]) -> bool:
    """A required parameter reported missing from a call that misspells its name."""
    names = _QUOTED_NAME.findall(missing.message)
    label = missing.primary
    if label is None or not names:
        return False
    for name, unknown in misspelt:
        inner = unknown.primary
        if name == names[-1] and inner is not None and inner.source is label.source:
            if _within(inner.span, label.span):
                return True
    return False


def _literal_spans(parse_findings: list[Diagnostic]) -> dict[int, list[tuple[int, int]]]:
    """Per source (by id), the `(start, end)` of each replaced literal, in order."""
    spans: dict[int, list[tuple[int, int]]] = {}
    for d in parse_findings:
        label = d.primary
        if d.code in _LITERAL_CODES and label is not None:
            spans.setdefault(id(label.source), []).append((label.span.start, label.span.end))
    for found in spans.values():
        found.sort()
    return spans


def _contains_literal(diagnostic: Diagnostic, literals: dict[int, list[tuple[int, int]]]) -> bool:
    label = diagnostic.primary
    if label is None or not label.span or id(label.source) not in literals:
        return False
    found = literals[id(label.source)]
    index = bisect_left(found, (label.span.start, -1))
    while index < len(found) and found[index][0] < label.span.end:
        if found[index][1] <= label.span.end:
            return True
        index += 1
    return False


def _within(inner: Span, outer: Span) -> bool:
    return outer.start <= inner.start and inner.end <= outer.end


#: A declaration keyword in the first column: where recovery resumes, so where one skipped
#: declaration ends and the next begins.
_DECLARATION_START = re.compile(
    r"^(?:" + "|".join(sorted(DECLARATION_KEYWORDS, key=lambda k: (-len(k), k))) + r")\b",
    re.MULTILINE,
)
#: Skipped declarations that declare one name, on their first line.
_NAMED = frozenset({"tool", "mcp_server", "capability", "budget", "policy", "proposal", "plan"})
#: Built-in rules: each declares only its own name, which starts with its keyword (a test's
#: `by deny_tool:shell`, `by deny_keyword`).
_RULES = RULE_KEYWORDS
#: Skipped declarations whose words declare nothing: a rule, a redaction, a test.
_DECLARE_NO_WORD = _RULES | {"redact", "test"}


@dataclass(frozen=True)
class SkippedText:
    """What the parser skipped after syntax errors (the text of broken declarations, in every
    file of a program), for telling a finding about a name that text may hold from a finding
    of its own. Each skipped piece runs from a declaration keyword in the first column to the
    next (or from the text an error left, when it starts with no keyword): a piece of a named
    declaration (`tool NAME`, `policy NAME`, ...) may declare a word of its first line; a
    `state` block, an `import`, or text that starts with no keyword, any of its words."""

    #: By the first word of each skipped piece (its keyword, or whatever an error left
    #: there), the names those pieces may declare.
    declared: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: Every word of the skipped text but a test's (what a test calls is no use of a tool).
    used: frozenset[str] = frozenset()

    @property
    def anything(self) -> bool:
        """Whether an `import` was skipped: then any name may be declared (in its file)."""
        return "import" in self.declared

    def may_declare(self, name: str, kinds: frozenset[str] | None = None) -> bool:
        """Whether a declaration the parser skipped may have declared `name`: see the class.
        `kinds`: only pieces that start with one of these keywords (or with none) count."""
        if self.anything:
            return True
        for kind, names in self.declared.items():
            if kinds is not None and kind in DECLARATION_KEYWORDS and kind not in kinds:
                continue
            if _written(name, names) or (kind in _RULES and name.split(":", 1)[0] == kind):
                return True
        return False

    def may_use(self, name: str) -> bool:
        """Whether the skipped text may use `name` (a proposal's call, a policy's target, a
        proposal's `under`, ...): it is written there, or matches a pattern written there;
        any name, when an `import` was skipped (the file it names may use it)."""
        return self.anything or _written(name, self.used)


def _written(name: str, words: frozenset[str]) -> bool:
    """Whether `name` is one of `words` or matches one of those that are patterns."""
    return name in words or GlobSet(word for word in words if "*" in word).matches(name)


#: Nothing skipped: the common case, shared.
_NOTHING_SKIPPED = SkippedText()


def skipped_text(loaded: LoadedProgram, diagnostics: Iterable[Diagnostic]) -> SkippedText:
    """The text the parser skipped in the files of `loaded` that `diagnostics` report a syntax
    error in (see `SkippedText`)."""
    broken = {
        id(label.source)
        for d in diagnostics
        if d.code in SYNTAX_CODES and d.severity == "error" and (label := d.primary) is not None
    }
    if not broken:
        return _NOTHING_SKIPPED
    declared: dict[str, frozenset[str]] = {}
    used: set[str] = set()
    for parsed in loaded.files:
        if id(parsed.source) not in broken:
            continue
        for piece in _skipped_pieces(parsed):
            words = _WORD.findall(piece)
            if not words:
                continue  # (the blank lines between declarations)
            kind = words[0]
            if kind != "test":
                used.update(words)
            declared[kind] = declared.get(kind, frozenset()) | _declared_names(kind, piece, words)
    return SkippedText(declared, frozenset(used))


def _declared_names(kind: str, piece: str, words: list[str]) -> frozenset[str]:
    """The names a skipped piece of `kind` (its text and its words) may declare: none for a
    rule, a redaction or a test; the words of its first line, where the name is, for a named
    declaration (the word after the keyword may be the mistake: `tool x refund(`); else any."""
    if kind in _DECLARE_NO_WORD:
        return frozenset()
    if kind in _NAMED:
        return frozenset(_WORD.findall(piece.lstrip().split("\n", 1)[0]))
    return frozenset(words)


def _skipped_pieces(parsed: ParsedFile) -> list[str]:
    """The text of a file that no import or declaration covers, comments taken out, cut at
    each declaration keyword in the first column: one piece per skipped declaration."""
    text = parsed.source.text
    nodes = (*parsed.module.imports, *parsed.module.declarations)
    covered = sorted((node.span.start, node.span.end) for node in nodes)
    comments = sorted((comment.span.start, comment.span.end) for comment in parsed.comments)
    pieces = []
    position = 0
    for start, end in [*covered, (len(text), len(text))]:
        if start > position:
            cuts = [m.start() for m in _DECLARATION_START.finditer(text, position, start)]
            bounds = [position, *(c for c in cuts if c > position), start]
            for left, right in pairwise(bounds):
                pieces.append(_without_comments(text, left, right, comments))
        position = max(position, end)
    return pieces


def _without_comments(text: str, start: int, end: int, comments: list[tuple[int, int]]) -> str:
    """`text[start:end]` with its comments left out (their words are not code)."""
    kept = []
    position = start
    for comment_start, comment_end in comments[bisect_left(comments, (start, -1)) :]:
        if comment_start >= end:
            break
        kept.append(text[position:comment_start])
        position = max(position, comment_end)
    kept.append(text[position:end])
    return " ".join(kept)


def _names_skipped(
    diagnostic: Diagnostic, skipped: SkippedText, kinds: frozenset[str] | None = None
) -> bool:
    """Whether a name `diagnostic` quotes may be declared by skipped text (of `kinds`)."""
    names = _QUOTED_NAME.findall(diagnostic.message)
    return any(skipped.may_declare(name, kinds) for name in names)
