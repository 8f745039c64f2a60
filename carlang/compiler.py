"""The compile pipeline: read -> parse -> lower -> check, with every finding at its source.

    load_program (loader.py)   files and imports, parsed
    lower (lower.py)           names, shapes, types -> ir.Program + SourceMap
    check_conditions           policy conditions: valid CEL, affordable, sound against the tools
                               they target (conditions.py)
    check (here)               each proposal verified with the
                               program's tools, state, capability and budget; verify's findings
                               mapped back to the exact clause; unused declarations

A program with errors still lowers as far as it can, so one run reports as much as possible.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carlang_runtime import ir
from carlang_runtime.cel import format_value
from carlang_runtime.ir.load import gc_paused
from carlang_runtime.verify import Analysis, ToolSet, VerifyIssue, VerifyResult, analyse, tool_set

from . import ast
from .cascade import skipped_text, without_cascades
from .conditions import check_conditions
from .diagnostics import CarlangError, Diagnostic, Diagnostics, Label
from .loader import LoadedProgram, ParseCache, load_program
from .lower import Origin, SourceMap, lower
from .policycheck import PolicyFinding, policy_findings, rejected_actions
from .source import Span

if TYPE_CHECKING:
    from .testcases import TestCase

__all__ = ["CompileResult", "compile_file", "compile_text", "compile_or_raise"]

#: A second action with one id: verify says so by position, lowering by source.
DUPLICATE_ACTION = "CL0301"
#: A tool the proposal's capability does not allow.
TOOL_NOT_ALLOWED = "CL0601"
#: An `after` naming no action, and what verify then says about where the action runs.
UNKNOWN_DEPENDENCY = "CL0302"
STATE_FLOW_CODES = frozenset({"CL0401", "CL0402", "CL0404"})
#: The same call twice, and more than twice: verify says so of the proposal (as CAR does).
REPEATED_CALL_CODES = frozenset({"CL0313", "CL0314"})
#: No resource-bound warning for authored proposals: capabilities and budgets set the limits.
_UNBOUNDED = sys.maxsize


@dataclass
class CompileResult:
    """Everything a compile produced. `program` is None only when nothing could be read."""

    loaded: LoadedProgram
    program: ir.Program | None
    source_map: SourceMap
    diagnostics: Diagnostics
    verify_results: dict[str, VerifyResult] = field(default_factory=dict)
    used: set[tuple[str, str]] = field(default_factory=set)
    #: Per proposal: what the policies will say to its actions (plan-vs-policy).
    policy_findings: dict[str, list[PolicyFinding]] = field(default_factory=dict)
    #: The program's tests, as runnable cases (`carlang test`).
    tests: list[TestCase] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when there are no errors."""
        return not self.diagnostics.has_errors


def compile_file(
    path: Path,
    root: Path | None = None,
    *,
    text: str | None = None,
    check: bool = True,
    report_unused: bool = True,
    state: Mapping[str, Any] | None = None,
    texts: dict[Path, str] | None = None,
    cache: ParseCache | None = None,
) -> CompileResult:
    """Compile the program whose entry file is `path` (its text may be given). With
    `report_unused` False, unused declarations are left to the caller (see `unused_names`).
    `state` is the state the proposals will start from, over the program's own initial
    state: what `carlang run --state` verifies against. `texts` (unsaved files by resolved
    path) and `cache` (parses kept between compiles) serve the language server."""
    with gc_paused():
        loaded = load_program(path, root, text, texts, cache)
        return _compile_loaded(loaded, check, report_unused, state)


def compile_text(text: str, name: str = "input.car", root: Path | None = None) -> CompileResult:
    """Compile source text as if it were the file `name` under `root` (default: cwd)."""
    base = (root or Path.cwd()).resolve()
    return compile_file(base / name, base, text=text)


def compile_or_raise(path: Path, root: Path | None = None) -> ir.Program:
    """The compiled program, or `CarlangError` with the diagnostics."""
    result = compile_file(path, root)
    if result.diagnostics.has_errors or result.program is None:
        raise CarlangError(result.diagnostics)
    return result.program


def _compile_loaded(
    loaded: LoadedProgram,
    check: bool,
    report_unused: bool,
    state: Mapping[str, Any] | None = None,
) -> CompileResult:
    diagnostics = loaded.diagnostics
    parse_findings = list(diagnostics.items)
    lowered = lower(loaded, diagnostics)
    result = CompileResult(
        loaded, lowered.program, lowered.source_map, diagnostics, used=lowered.used
    )
    if check:
        broken = check_conditions(lowered.program, result.source_map, result.diagnostics)
        analyses: dict[str, Analysis] = {}
        _verify_proposals(result, state, analyses)
        _judge_proposals(result, state, broken, analyses)
        if result.source_map.tests:  # most files have none: testcases is not even imported
            from .testcases import build_tests

            skipped = skipped_text(loaded, parse_findings)
            result.tests = build_tests(
                lowered.program, result.source_map, result.diagnostics, skipped, loaded.root
            )
            # a tool a test calls is used (by the tests of the policies that judge it)
            result.used.update(
                ("tool", case.action.tool)
                for case in result.tests
                if case.action is not None and case.action.tool
            )
    if check and report_unused:
        _report_unused(result, unused_declarations(result, entry_only=True))
    diagnostics.items = without_cascades(diagnostics.items, loaded, parse_findings)
    return result


# -- verification ------------------------------------------------------------------------------


def _verify_proposals(
    result: CompileResult, state: Mapping[str, Any] | None, analyses: dict[str, Analysis]
) -> None:
    """Verify each proposal, its findings as diagnostics at their clauses; each verification
    kept in `analyses` by proposal id."""
    program = result.program
    assert program is not None
    if not program.proposals:
        return
    initial = {**program.initial_state, **state} if state else program.initial_state
    # (a `redact` path's value is quoted by no diagnostic, as a secret parameter's is not)
    tools: ToolSet | None = tool_set(program.tools, program.redactions)
    capabilities = {c.name: c for c in program.capabilities}
    budgets = {b.name: b for b in program.budgets}
    for proposal in program.proposals:
        # `verify` of the model, keeping its columns and DAG for plan-vs-policy
        analysis = analyse(
            proposal,
            initial,
            tools,
            _UNBOUNDED,
            capabilities.get(proposal.capability or ""),
            budgets.get(proposal.budget or ""),
            show=format_value,  # values as carlang writes them, `"c"`, not CAR's `String("c")`
        )
        analyses[proposal.id] = analysis
        outcome = analysis.result
        result.verify_results[proposal.id] = outcome
        unordered = {i.action_id for i in outcome.issues if i.code == UNKNOWN_DEPENDENCY}
        # (the calls made again, found only for a proposal verify says makes some)
        repeated = any(i.code in REPEATED_CALL_CODES for i in outcome.issues)
        repeats = _repeated_calls(proposal) if repeated else []
        for issue in outcome.issues:
            if issue.action_id in unordered and issue.code in STATE_FLOW_CODES:
                continue  # with its `after` unknown, the action's place in the flow is a guess
            diagnostic = _issue_diagnostic(result.source_map, proposal.id, issue)
            if diagnostic is not None and issue.code in REPEATED_CALL_CODES and repeats:
                diagnostic = _at_the_repeat(diagnostic, repeats.pop(0), result.source_map, proposal)
            if diagnostic is not None:
                result.diagnostics.add(diagnostic)


def _repeated_calls(proposal: ir.ActionProposal) -> list[list[str]]:
    """The ids of the calls made more than once (same tool, same parameters), a list per
    call, in the order of each call's first occurrence: the order verify reports them in."""
    from carlang_runtime.jsonvalue import canonical_key

    groups: dict[tuple[str, str], list[str]] = {}
    for action in proposal.actions:
        if action.type is ir.ActionType.TOOL_CALL and action.tool is not None:
            key = (action.tool, canonical_key(action.parameters))
            groups.setdefault(key, []).append(action.id)
    return [ids for ids in groups.values() if len(ids) > 1]


def _at_the_repeat(
    diagnostic: Diagnostic, ids: list[str], source_map: SourceMap, proposal: ir.ActionProposal
) -> Diagnostic:
    """A repeated call's finding at the call made again (the first one noted), rather than at
    the proposal's name."""
    origins = [source_map.actions.get((proposal.id, action_id)) for action_id in ids]
    if any(origin is None for origin in origins):
        return diagnostic
    first, again, *more = [o for o in origins if o is not None]
    labels = (
        again.label("the same call again", _path_span(again.node, "parameters")),
        first.label("first here", _path_span(first.node, "parameters"), primary=False),
        *(o.label("and again", _path_span(o.node, "parameters"), primary=False) for o in more),
    )
    return replace(diagnostic, labels=labels)


def _judge_proposals(
    result: CompileResult,
    state: Mapping[str, Any] | None,
    broken_policies: set[str],
    analyses: dict[str, Analysis],
) -> None:
    """Plan-vs-policy: each policy verdict on an action, at the action's source line. Not
    reported: verdicts of a policy whose condition has errors, and verdicts on a call that
    verify already rejects (a wrong parameter, an unknown tool): the runtime would never ask
    the policy, and the first error says what to fix."""
    program = result.program
    assert program is not None
    result.policy_findings = policy_findings(program, state, analyses)
    for proposal_id, findings in result.policy_findings.items():
        outcome = result.verify_results.get(proposal_id)
        rejected = rejected_actions(outcome.issues) if outcome is not None else set()
        for finding in findings:
            if finding.policy in broken_policies or finding.action_id in rejected:
                continue
            origin = result.source_map.actions.get((proposal_id, finding.action_id))
            if origin is None:
                continue
            label = origin.label("", _path_span(origin.node, ""))
            result.diagnostics.add(
                Diagnostic(finding.code, finding.severity, finding.message, (label,))
            )


def _issue_diagnostic(
    source_map: SourceMap, proposal_id: str, issue: VerifyIssue
) -> Diagnostic | None:
    labels: tuple[Label, ...]
    if issue.code == DUPLICATE_ACTION:
        return None  # lowering reports it at the second definition, pointing at the first
    if issue.action_id == "proposal":
        origin = source_map.proposals.get(proposal_id)
        if origin is None:
            return None
        decl = origin.node
        labels = (origin.label("", decl.name.span),)
    else:
        origin = _action_origin(source_map, proposal_id, issue.action_id, issue.loc)
        if origin is None:
            return None
        labels = _action_labels(origin, issue, source_map, proposal_id)
    help = issue.help.replace("'", "`") if issue.help else None
    if issue.code == TOOL_NOT_ALLOWED:
        help = help or _misspelt_allowance(source_map, issue)
        allowance = _allowance_label(source_map, issue)
        labels = (*labels, allowance) if allowance is not None else labels
    return Diagnostic(issue.code, issue.severity, issue.message, labels, help)


def _allowance_label(source_map: SourceMap, issue: VerifyIssue) -> Label | None:
    """For a tool a capability does not allow: where the capability says what it allows
    (its `tools allow` line, else its name)."""
    found = _refusing_capability(source_map, issue)
    if found is None:
        return None
    name, origin = found
    allows = [item for item in origin.node.items if isinstance(item, ast.ToolsAllow)]
    span = allows[0].span if allows else origin.node.name.span
    return origin.label(f"what `{name}` allows", span, primary=False)


def _refusing_capability(source_map: SourceMap, issue: VerifyIssue) -> tuple[str, Origin] | None:
    """The capability a not-allowed finding names (`tool 'x' is not allowed by capability
    'c'`: the last name quoted) and its declaration, if the program has it."""
    names = re.findall(r"'([^']+)'", issue.message)
    origin = source_map.capabilities.get(names[-1]) if names else None
    return (names[-1], origin) if origin is not None else None


def _action_origin(
    source_map: SourceMap, proposal_id: str, action_id: str, loc: ir.SourceLoc | None
) -> Origin | None:
    """The declaration of the action a finding is about: by its id, or, where a proposal
    reuses the id (an error of its own), the one at the finding's position (the findings of
    the second `a` were shown at the first)."""
    first = source_map.actions.get((proposal_id, action_id))
    later = source_map.redefined.get((proposal_id, action_id))
    if first is None or not later or loc is None:
        return first
    for origin in (first, *later):
        line, column = origin.source.line_column(origin.node.span.start)
        if (origin.source.name, line, column) == (loc.file, loc.line, loc.column):
            return origin
    return first


def _misspelt_allowance(source_map: SourceMap, issue: VerifyIssue) -> str | None:
    """For a tool a capability does not allow: the allowed name that looks like a misspelling
    of it (`tools allow fech` for `fetch`), as the first thing to check."""
    from carlang_runtime.suggest import closest

    names = re.findall(r"'([^']+)'", issue.message)
    found = _refusing_capability(source_map, issue)
    if len(names) < 2 or found is None:
        return None
    tool, (capability, origin) = names[0], found
    allowed = [
        n.text for item in origin.node.items if isinstance(item, ast.ToolsAllow) for n in item.allow
    ]
    close = closest(tool, allowed)
    return f"`{capability}` allows `{close}`: is it a misspelling of `{tool}`?" if close else None


def _action_labels(
    origin: Origin, issue: VerifyIssue, source_map: SourceMap, proposal_id: str
) -> tuple[Label, ...]:
    decl: ast.ActionDecl = origin.node
    path = issue.path or ""
    span = _path_span(decl, path)
    label = ""
    if path.startswith("parameters.") and isinstance(decl.kind, ast.Call):
        name = path.removeprefix("parameters.")
        if _argument_at(decl.kind, name)[0] is None:
            label = f"`{name}` is missing"
    labels = [origin.label(label, span)]
    inherited = _inherited_reversibility(decl, issue, source_map)
    if inherited is not None:
        labels.append(inherited)
    if issue.check == "cycles":
        proposal = source_map.proposals.get(proposal_id)
        for member in _cycle_members(issue.message):
            other = source_map.actions.get((proposal_id, member))
            if other is not None and member != decl.name.text and proposal is not None:
                after = other.node.after
                where = after[0].span if after else other.node.name.span
                labels.append(other.label(f"`{member}` waits here", where, primary=False))
    return tuple(labels)


def _inherited_reversibility(
    decl: ast.ActionDecl, issue: VerifyIssue, source_map: SourceMap
) -> Label | None:
    """For an action `compensable` without a compensation: where its tool declares it so,
    when the call does not say it itself (the action inherits the tool's reversibility)."""
    if issue.code != "CL0310" or not isinstance(decl.kind, ast.Call):
        return None
    if any(isinstance(item, ast.ReversibilityItem) for item in decl.items or ()):
        return None
    tool = source_map.tools.get(decl.kind.tool.text)
    if tool is None:
        return None
    for item in tool.node.items:
        if isinstance(item, ast.ReversibilityItem):
            name = decl.kind.tool.text
            return tool.label(f"`{name}` is declared {item.word.text} here", item.span, False)
    return None


def _cycle_members(message: str) -> list[str]:
    path = message.split(": ", 1)[1].split(" (also", 1)[0]
    return list(dict.fromkeys(path.split(" -> ")))


def _names_in(decl: ast.ActionDecl) -> list[ast.Name]:
    """State keys named in an action, in source order."""
    names: list[ast.Name] = []
    kind = decl.kind
    if isinstance(kind, (ast.SetState, ast.ReadState)):
        names.append(kind.key)
    elif isinstance(kind, ast.AssertState):
        names.append(kind.condition.key)
    for item in decl.items or ():
        if isinstance(item, ast.Requires):
            names.append(item.condition.key)
        elif isinstance(item, ast.Reads):
            names.extend(item.keys)
        elif isinstance(item, ast.Effects):
            names.extend(e.key for e in item.entries)
    return names


def _argument_at(call: ast.Call, path: str) -> tuple[ast.Arg | None, str]:
    """The argument a parameter path (`trip.legs[1].to`, after `parameters.`) is in, and the
    path inside its value (`.legs[1].to`); (None, "") when the call has no such argument."""
    # (the longest name first: `a.b` is a name an argument may have, beside `a`)
    for arg in sorted(call.args, key=lambda a: -len(a.name.text)):
        name = arg.name.text
        if path == name or (path.startswith(name) and path[len(name)] in ".["):
            return arg, path[len(name) :]
    return None, ""


def _path_span(decl: ast.ActionDecl, path: str) -> Span:
    """The span inside an action that an IR path refers to (the action's name if unknown)."""
    kind = decl.kind
    items = decl.items or ()
    if path == "tool" and isinstance(kind, ast.Call):
        return kind.tool.span
    if path.startswith("parameters.") and isinstance(kind, ast.Call):
        arg, inside = _argument_at(kind, path.removeprefix("parameters."))
        return arg.value.part_span(inside) if arg is not None else kind.span
    if path.startswith("parameters"):
        return kind.span
    if path.startswith("preconditions["):
        index = int(path[len("preconditions[") : -1])
        requires = [i for i in items if isinstance(i, ast.Requires)]
        return requires[index].condition.span if index < len(requires) else decl.name.span
    if path.startswith("depends_on[") and decl.after:
        index = int(path[len("depends_on[") : -1])
        return decl.after[index].span if index < len(decl.after) else decl.name.span
    if path.startswith("state_dependencies[") or path.startswith("state_key:"):
        key = path.split(":", 1)[1] if path.startswith("state_key:") else None
        names = _names_in(decl)
        if key is None:
            keys = list(dict.fromkeys(n.text for n in names))
            index = int(path[len("state_dependencies[") : -1])
            key = keys[index] if index < len(keys) else None
        found = next((n for n in names if n.text == key), None)
        return found.span if found is not None else decl.name.span
    if path.startswith("compensation"):
        for item in items:
            if isinstance(item, ast.Compensate):
                return item.call.tool.span if path == "compensation.tool" else item.span
            if isinstance(item, ast.CompensateWith):
                return item.action.span
        return decl.name.span
    if path == "reversibility":
        for item in items:
            if isinstance(item, ast.ReversibilityItem):
                return item.span
    return decl.name.span


# -- unused declarations -----------------------------------------------------------------------


def unused_declarations(
    result: CompileResult, entry_only: bool = False
) -> list[tuple[str, str, Origin]]:
    """`(kind, name, origin)` of tools, capabilities and budgets nothing in this program uses
    (only those of the entry file with `entry_only`). Capabilities and budgets count only in
    a program with proposals or plans: one without (a gateway's, an agent's) declares them for
    `--capability` and `--budget`."""
    entry = result.loaded.entry
    # A name the parser skipped over (after a syntax error) may be used there: "never used"
    # would be a guess. (`skipped_text` reads only the parser's errors among these.)
    skipped = skipped_text(result.loaded, result.loaded.diagnostics.items)
    found = []
    named = _tools_named_in_conditions(result.program)
    tables: list[tuple[str, dict[str, Origin]]] = [("tool", result.source_map.tools)]
    if result.source_map.proposals or result.source_map.plans:
        tables += [
            ("capability", result.source_map.capabilities),
            ("budget", result.source_map.budgets),
        ]
    for kind, table in tables:
        for name, origin in table.items():
            if (kind, name) in result.used or skipped.may_use(name):
                continue
            if kind == "tool" and name in named:
                continue  # (a trace rule's `h.tool == "run_tests"`: used by the policies)
            if entry_only and (entry is None or origin.source is not entry.source):
                continue
            found.append((kind, name, origin))
    return found


#: A string literal in a CEL condition, either quote (its escapes are rare in tool names).
_CEL_STRING = re.compile(r""""((?:[^"\\\n]|\\.)*)"|'((?:[^'\\\n]|\\.)*)'""")


def _tools_named_in_conditions(program: ir.Program | None) -> set[str]:
    """The strings the policies' CEL conditions hold: a tool named there is used by a
    policy (a trace rule looks for its calls in `history`), though no proposal calls it."""
    if program is None:
        return set()
    named: set[str] = set()
    for policy in program.policies:
        when = getattr(policy, "when", None)
        if isinstance(when, str):
            named.update(a or b for a, b in _CEL_STRING.findall(when))
    return named


def unused_diagnostic(kind: str, name: str, origin: Origin) -> Diagnostic:
    """The warning for an unused declaration."""
    use = {
        "tool": "use it from a proposal or policy",
        "capability": f"use it from a proposal (`under {name}`) or with `--capability {name}`",
        "budget": f"use it from a proposal (`under {name}`) or with `--budget {name}`",
    }[kind]
    return Diagnostic(
        "CL0207",
        "warning",
        f"{kind} `{name}` is never used",
        (origin.label("", origin.node.name.span),),
        f"remove it, or {use}",
    )


def _report_unused(result: CompileResult, unused: list[tuple[str, str, Origin]]) -> None:
    for kind, name, origin in unused:
        result.diagnostics.add(unused_diagnostic(kind, name, origin))
