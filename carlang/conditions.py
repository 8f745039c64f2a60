"""Policy conditions, checked at compile time: each `when` must be valid CEL, affordable, and
sound against the tools its policy targets (unknown fields, type mismatches, unknown
functions, constant conditions), with every finding at its line and column in the file."""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Final

from carlang_runtime import ir
from carlang_runtime.cel import CelSyntaxError, Limits
from carlang_runtime.cel.build import parse
from carlang_runtime.cel.checker import CelIssue, Declarations, check_tree
from carlang_runtime.cel.cost import estimate
from carlang_runtime.cel.types import Type
from carlang_runtime.digests import blake2b
from carlang_runtime.globs import GlobSet, is_glob
from carlang_runtime.policy import policy_declarations, state_type

from . import ast
from .diagnostics import Diagnostics
from .lower import Origin, SourceMap
from .source import Span

__all__ = ["check_conditions", "declarations_of", "policy_targets", "CHECK_CODES"]

#: The diagnostic code of each kind of checker finding.
CHECK_CODES: Final = {
    "unknown-name": "CL0505",
    "unknown-field": "CL0506",
    "partial-field": "CL0507",
    "type-mismatch": "CL0508",
    "unknown-function": "CL0509",
    "wrong-arguments": "CL0509",
    "constant": "CL0510",
    "invalid-regex": "CL0503",
    "invalid-time-zone": "CL0513",
}


def check_conditions(
    program: ir.Program, source_map: SourceMap, diagnostics: Diagnostics
) -> set[str]:
    """Report every problem of every policy condition of `program`; the names of the policies
    whose conditions have errors (what they would say about an action is not to be trusted)."""
    limits = Limits()
    seen = _Seen(program)
    broken: set[str] = set()
    for policy in program.policies:
        errors_before = diagnostics.count("error")
        _check_condition(program, policy, source_map, diagnostics, limits, seen)
        if diagnostics.count("error") > errors_before and isinstance(policy, ir.CelPolicy):
            broken.add(policy.name)
    return broken


@dataclass(frozen=True, slots=True)
class _Findings:
    """What checking one condition against one set of declarations found: a syntax error,
    or its estimated cost and the checker's issues (none when the cost is over the limit)."""

    error: CelSyntaxError | None
    cost: int = 0
    issues: tuple[CelIssue, ...] = ()


#: Findings by (condition, declarations' fingerprint): an editor checks a program again at
#: every keystroke, and a file of a thousand policies re-checked each condition (130 ms),
#: though only the one edited changed. Bounded: emptied when full.
_FINDINGS: dict[tuple[str, Hashable], _Findings] = {}
_FINDINGS_LIMIT = 20_000


class _Seen:
    """The fingerprints of what a program's conditions are checked against: each tool's
    parameters and the declared state, computed once per check of the program."""

    def __init__(self, program: ir.Program) -> None:
        self.index = tool_index(program)
        self.state_type: Type | None = None  # (made when a condition is first checked)
        self.tools = {tool.name: _fingerprint(tool.parameters) for tool in program.tools}
        self.state = _fingerprint([(e.key, e.type) for e in program.state])
        self.every_tool = _fingerprint(sorted(self.tools.items()))

    def key(self, program: ir.Program, policy: ir.CelPolicy) -> Hashable:
        """The fingerprint of `declarations_of(program, policy)`."""
        targets = policy_targets(program, policy, self.index)
        if targets is None:
            return (None, self.every_tool, self.state)
        return (tuple((t.name, self.tools[t.name]) for t in targets), self.state)


def _fingerprint(value: object) -> bytes:
    """A digest of `value` as JSON: a key of a few bytes however large the schemas are."""
    text = json.dumps(value, sort_keys=True, default=repr)
    return blake2b(text.encode(), digest_size=16).digest()


def _check_condition(
    program: ir.Program,
    policy: ir.Policy,
    source_map: SourceMap,
    diagnostics: Diagnostics,
    limits: Limits,
    seen: _Seen,
) -> None:
    if not isinstance(policy, ir.CelPolicy) or not policy.when:
        return
    origin = source_map.policies.get(policy.name)
    if origin is None or not isinstance(origin.node, ast.PolicyDecl) or not origin.node.when:
        return
    when = origin.node.when
    key = (when.cel, seen.key(program, policy))
    found = _FINDINGS.get(key)
    if found is None:
        found = _findings(program, policy, when.cel, limits, seen)
        if len(_FINDINGS) >= _FINDINGS_LIMIT:
            _FINDINGS.clear()
        _FINDINGS[key] = found
    if found.error is not None:
        _syntax_error(policy, origin, when, found.error, diagnostics)
        return
    if found.cost > limits.max_cost:
        diagnostics.error(
            "CL0511",
            f"policy `{policy.name}`: the condition is too expensive (estimated cost"
            f" {found.cost}, the limit is {limits.max_cost})",
            origin.source,
            when.span,
            help=(
                "split it into several policies (each is costed alone), or check fewer lists"
                " at a time: macros inside macros over lists multiply"
            ),
        )
        return
    for issue in found.issues:
        _report(policy, origin, when, issue, diagnostics)


def _findings(
    program: ir.Program, policy: ir.CelPolicy, cel: str, limits: Limits, seen: _Seen
) -> _Findings:
    try:
        tree = parse(cel)
    except CelSyntaxError as exc:
        # a fresh error, with no traceback: kept in `_FINDINGS`, the raised one's frames
        # would keep the whole program alive
        return _Findings(CelSyntaxError(exc.message, exc.line, exc.column, literal=exc.literal))
    cost = estimate(tree, limits.assumed_size).cost
    if cost > limits.max_cost:
        return _Findings(None, cost)
    if seen.state_type is None:
        seen.state_type = state_type(program.state)
    declarations = declarations_of(program, policy, seen.index, seen.state_type)
    issues = check_tree(cel, tree, declarations).issues
    return _Findings(None, cost, tuple(issues))


def _syntax_error(
    policy: ir.CelPolicy,
    origin: Origin,
    when: ast.CelText,
    exc: CelSyntaxError,
    diagnostics: Diagnostics,
) -> None:
    """Report a condition that is not CEL, at its place in the file."""
    lines = when.text.split("\n")
    offset = sum(len(line) + 1 for line in lines[: exc.line - 1]) + exc.column - 1
    at = when.span.start + min(offset, len(when.text))
    message = exc.message
    quote = when.text[offset : offset + 1]
    if quote in ("'", '"') and message.startswith("unexpected character"):
        message = "unterminated string"  # a quote the lexer could not close on its line
    if exc.literal:  # a number no value can hold: reported like one anywhere else
        diagnostics.error(
            "CL0104", f"policy `{policy.name}`: {exc.message}", origin.source, Span(at, at + 1)
        )
        return
    diagnostics.error(
        "CL0501",
        f"policy `{policy.name}`: {message}",
        origin.source,
        Span(at, at + 1),
        label="not valid CEL here",
        help=(
            f"close the string with `{quote}` on its line"
            if message == "unterminated string"
            else _syntax_help(when.text, offset)
        ),
    )


#: The clauses that may follow a policy's condition (`policy_decl` in the grammar).
_AFTER_CONDITION = ("approval_timeout", "message")


def _syntax_help(text: str, offset: int) -> str | None:
    """How to fix a condition that does not parse at `offset`: a clause written on the
    condition's line, or a condition cut by its line's end, or nothing to add."""
    rest = text[offset:]
    for clause in _AFTER_CONDITION:
        if rest.startswith(clause) and not rest[len(clause) : len(clause) + 1].isalnum():
            return f"`{clause}` goes on its own line, after the condition"
    if rest.startswith("=~"):  # (Perl's and Ruby's match operator)
        return 'CEL matches a regular expression with `.matches()`: `x.matches("US.*")`'
    if rest.startswith("=") and not rest.startswith("=="):
        return "compare with `==` (a condition assigns nothing)"
    if not rest.split("\n", 1)[0].strip():
        return "a condition ends with its line; wrap a long one in ( ) to continue it"
    return None


def declarations_of(
    program: ir.Program,
    policy: ir.CelPolicy,
    index: ToolIndex | None = None,
    state: Type | None = None,
) -> Declarations:
    """What a policy's condition sees: `params` of the tools it targets, `state` of the keys
    the program declares (`index`: `tool_index(program)`, and `state`: `state_type` of its
    state, when made already: once per program, not per policy, which made checking a
    program of N state keys and N policies quadratic)."""
    targets = policy_targets(program, policy, index)
    if state is None:
        state = state_type(program.state)
    complete = not any(is_glob(pattern) for pattern in policy.tools)
    return policy_declarations(targets, state, declared=program.tools, complete=complete)


#: The positions of a program's tools, by name (`tool_index`).
ToolIndex = Mapping[str, int]


def tool_index(program: ir.Program) -> ToolIndex:
    """The positions of the program's tools by name: for `policy_targets`, which then looks a
    policy's named tools up rather than testing every tool (a program of 3,000 tools and as
    many policies took 16 s to check)."""
    return {tool.name: position for position, tool in enumerate(program.tools)}


def policy_targets(
    program: ir.Program, policy: ir.CelPolicy, index: ToolIndex | None = None
) -> list[ir.ToolSchema] | None:
    """The declared tools a policy applies to, in the program's order (None: every
    action)."""
    if not policy.tools:
        return None
    globs = GlobSet(policy.tools)
    if index is None or not globs.exact_only:
        return [tool for tool in program.tools if globs.matches(tool.name)]
    positions = sorted({index[name] for name in globs.patterns if name in index})
    return [program.tools[position] for position in positions]


def _report(
    policy: ir.CelPolicy,
    origin: Origin,
    when: ast.CelText,
    issue: CelIssue,
    diagnostics: Diagnostics,
) -> None:
    span = Span(when.span.start + issue.start, when.span.start + max(issue.end, issue.start + 1))
    report = diagnostics.error if issue.severity == "error" else diagnostics.warning
    report(
        CHECK_CODES[issue.kind],
        f"policy `{policy.name}`: {issue.message}",
        origin.source,
        span,
        help=issue.help,
    )
