"""Running test cases: decisions, validity, verify codes and plan winners, with policy coverage.

A decision case asks the program's policies about its action (state over the initial state,
scope, history) and checks the effect and, with `by`, that the named policy decided it. A
failure says what was decided, by which policy, and the values of the sub-expressions that
decided each condition involved. Coverage records, for every policy, whether a test reached its
true outcome (it matched) and its false outcome (it applied and did not match).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache

from carlang_runtime import ir
from carlang_runtime.planner import rank_plan
from carlang_runtime.policy import Decision, PolicySet, PolicyTrace
from carlang_runtime.policy.static import judged_contexts

from .compiler import CompileResult
from .explain import capability_problem, capability_refusal
from .testcases import Expectation, TestCase

__all__ = ["CaseResult", "Coverage", "run_tests"]


@dataclass
class CaseResult:
    """A case's outcome: `problems` is empty when it passed; `details` explain a failure."""

    case: TestCase
    file: str
    problems: list[str]
    details: list[str]
    seconds: float

    @property
    def passed(self) -> bool:
        """True when every expectation held."""
        return not self.problems


@dataclass
class Coverage:
    """Per policy (by name and where it is declared, so that programs sharing a file count
    it once): the outcomes tests reached, True (matched) and False (applied, did not match)."""

    outcomes: dict[str, set[bool]] = field(default_factory=dict)
    possible: dict[str, frozenset[bool]] = field(default_factory=dict)
    #: The policies some test made apply by failing (its condition did not evaluate): not a
    #: match, whatever it decided (it fails closed), so not the true outcome.
    failed: set[str] = field(default_factory=set)

    @staticmethod
    def possible_outcomes(policy: ir.Policy) -> frozenset[bool]:
        """The outcomes a test can reach: a rule with no condition (`deny_tool`, a policy
        without `when`) only matches; a rate limit never fires in a dry run, so only its
        false outcome is reachable by a test."""
        if policy.rule == "deny_tool" or (isinstance(policy, ir.CelPolicy) and policy.when is None):
            return frozenset({True})
        if policy.rule == "rate_limit_tool":
            return frozenset({False})
        return frozenset({True, False})

    @staticmethod
    def key(policy: ir.Policy) -> str:
        """How a policy is named in the coverage report."""
        return f"{policy.name} ({policy.loc})" if policy.loc is not None else policy.name

    def add_policies(self, program: ir.Program) -> dict[str, str]:
        """Make every policy of `program` count, exercised or not; returns name -> key."""
        keys = {}
        for policy in program.policies:
            keys[policy.name] = key = self.key(policy)
            self.outcomes.setdefault(key, set())
            self.possible[key] = self.possible_outcomes(policy)
        return keys

    def record(self, traces: list[PolicyTrace], keys: dict[str, str]) -> None:
        """Count what one decision reached."""
        for trace in traces:
            key = keys.get(trace.policy)
            if not trace.applies or key is None:
                continue
            if trace.error is not None:
                self.failed.add(key)
            else:
                self.outcomes[key].add(trace.matched)

    @property
    def percent(self) -> float:
        """Outcomes reached over outcomes there are (two per policy), as a percentage."""
        total = sum(len(self.possible[key]) for key in self.outcomes)
        if not total:
            return 100.0
        reached = sum(len(seen & self.possible[key]) for key, seen in self.outcomes.items())
        return 100.0 * reached / total

    def missing(self, key: str) -> str | None:
        """What no test reached for a policy, or None when both outcomes were."""
        seen = self.outcomes.get(key, set())
        possible = self.possible.get(key, frozenset({True, False}))
        failing = " (where tests made it apply, its condition failed to evaluate)"
        if not seen:
            return "never exercised" + (failing if key in self.failed else "")
        also = "; in some its condition failed to evaluate)" if key in self.failed else ")"
        if False in possible and False not in seen:
            return "never reached false (no test where it applies and does not match" + also
        if True in possible and True not in seen:
            return "never reached true (no test where it matches" + also
        return None


def _decision_text(decision: Decision) -> str:
    deciding = decision.deciding
    if not deciding:
        return decision.effect.value
    return f"{decision.effect.value} by " + "; ".join(
        m.policy + _own_words(m.policy, m.reason) for m in deciding
    )


def _own_words(policy: str, reason: str) -> str:
    """` (reason)`, without the words `deny by POLICY` already says (`denied by policy P`,
    the runtime's default message), so that a reason is not said twice."""
    for said in (f"denied by policy {policy}", f"policy {policy} requires approval"):
        if reason.startswith(said):
            rest = reason[len(said) :].strip()
            if rest.startswith("(") and rest.endswith(")"):
                rest = rest[1:-1]
            return f" ({rest})" if rest else ""
    return f" ({reason})"


def _explain(traces: list[PolicyTrace], names: set[str]) -> list[str]:
    lines = []
    for trace in traces:
        if trace.policy not in names or not trace.applies:
            continue
        verdict = "matched" if trace.matched else "did not match"
        if trace.error is not None and trace.matched:
            verdict = "applied, failing closed,"  # (not a match: see `check_decision`)
        line = f"{trace.policy}: {verdict}"
        if trace.explanation is not None and str(trace.explanation):
            line += f" because {trace.explanation}"
        if trace.error is not None and trace.error.message not in line:
            # (an explanation that shows the failing part says it already)
            line += f" (its condition failed: {trace.error.message})"
        lines.append(line)
    return lines


class _Runner:
    def __init__(
        self, result: CompileResult, coverage: Coverage, capability: str | None = None
    ) -> None:
        assert result.program is not None
        self.result = result
        self.program = result.program
        #: The capability calls run under (the project's), when this program declares it.
        self.capability = capability if self.program.capability(capability or "") else None
        self.policies = PolicySet(self.program.policies, tools=self.program.tools)
        self.coverage = coverage
        self.keys = coverage.add_policies(self.program)
        self.winners: dict[str, str | None] = {}
        self.now = datetime.now(UTC)

    def run(self, case: TestCase) -> tuple[list[str], list[str]]:
        if case.action is not None:
            return self.decide(case, case.action)
        if case.proposal is not None:
            return self.proposal(case, case.proposal), []
        assert case.plan is not None
        return self.plan(case, case.plan), []

    def decide(self, case: TestCase, action: ir.Action) -> tuple[list[str], list[str]]:
        decision, traces = self.traced(self.policies, case, action, explained=False)
        refused = None
        if self.capability is not None:  # what a run under it decides (as `explain` says)
            refused = capability_problem(self.program, action, self.capability, case.loc.file)
        if refused is not None:
            # the run refuses the call before any policy: the capability alone decides, and
            # no policy is exercised (the traces still show what they would say)
            refusal = capability_refusal(self.capability, refused)
            decision = Decision(ir.PolicyEffect.DENY, (refusal,))
        else:
            self.coverage.record(traces, self.keys)
        shadow_decision, shadow_traces = self.shadow_trace(case, action, explained=False)
        if refused is None:
            self.coverage.record(shadow_traces, self.keys)
        problems = []
        for expected in case.expectations:
            if expected.shadow:
                problem = self.check_decision(expected, shadow_decision, shadow_traces)
            else:
                problem = self.check_decision(expected, decision, traces)
            if problem is not None:
                problems.append(problem)
        if not problems:
            return [], []
        # (a failing case says why: only then are its policies' values worth finding)
        _, traces = self.traced(self.policies, case, action)
        if shadow_traces:
            _, shadow_traces = self.shadow_trace(case, action, explained=True)
        involved = {name for m in decision.matches for name in m.policies}
        involved.update(e.by for e in case.expectations if e.by is not None)
        details = [f"decision: {_decision_text(decision)}", *_explain(traces, involved)]
        if shadow_traces:
            involved |= {name for m in shadow_decision.matches for name in m.policies}
            details.append(f"shadow decision: {_decision_text(shadow_decision)}")
            details.extend(_explain(shadow_traces, involved))
        return problems, details

    def shadow_trace(
        self, case: TestCase, action: ir.Action, explained: bool
    ) -> tuple[Decision, list[PolicyTrace]]:
        """What the shadow policies decide about the case's action (allow, with no traces,
        when there are none)."""
        shadow = self.policies.shadow
        if shadow is None:
            return Decision(ir.PolicyEffect.ALLOW), []
        return self.traced(shadow, case, action, explained)

    def traced(
        self, policies: PolicySet, case: TestCase, action: ir.Action, explained: bool = True
    ) -> tuple[Decision, list[PolicyTrace]]:
        """`policies`' decision on the case's action, and each one's trace (see
        `PolicySet.trace`)."""
        return policies.trace(
            action,
            proposal_id="test",
            state={**self.program.initial_state, **case.state},
            scope=case.scope,
            history=case.history,
            now=case.now or self.now,
            explained=explained,
        )

    @staticmethod
    def check_decision(
        expected: Expectation, decision: Decision, traces: list[PolicyTrace]
    ) -> str | None:
        got = decision.effect.value
        if got != expected.word:
            return f"expected {expected}, got {got}"
        if expected.by is None and not expected.by_no_policy:
            return None
        if expected.word == "allow":
            deciders = {t.policy for t in traces if t.matched and t.effect.value == "allow"}
        else:
            deciders = {name for m in decision.deciding for name in m.policies}
        if expected.by_no_policy:
            if not deciders:
                return None
            return f"expected {expected}, but it was decided by {', '.join(sorted(deciders))}"
        if expected.by not in deciders:
            by = ", ".join(sorted(deciders)) or "no policy"
            return f"expected {expected}, but it was decided by {by}"
        failures = [t.error for t in traces if t.policy == expected.by and t.matched and t.error]
        if failures and len(failures) == sum(t.policy == expected.by and t.matched for t in traces):
            return (
                f"expected {expected}: {expected.by} decided it only because its condition"
                f" failed to evaluate ({failures[0].message}), as a policy fails closed; give"
                " the test the values the condition reads (or `expect"
                f" {expected.word}` without `by` to test the failure)"
            )
        return None

    def proposal(self, case: TestCase, name: str) -> list[str]:
        self.cover_proposal(name)
        verdict = self.result.verify_results.get(name)
        findings = self.result.policy_findings.get(name, [])
        issues = list(verdict.issues) if verdict is not None else []
        errors = [i.message for i in issues if i.severity == "error"]
        errors += [f.message for f in findings if f.severity == "error"]
        found_codes = sorted({i.code for i in issues} | {f.code for f in findings})
        checks = checks_of()
        codes = {
            *found_codes,
            *(checks.get(c, "") for c in found_codes),
            *(i.check for i in issues),
        }
        problems = []
        for expected in case.expectations:
            if expected.kind == "validity":
                valid = not errors
                if expected.word == "valid" and not valid:
                    problems.append(f"expected valid, got invalid: {'; '.join(errors)}")
                elif expected.word == "invalid" and valid:
                    problems.append("expected invalid, got valid")
            else:
                missing = [c for c in expected.codes if c not in codes]
                if missing:
                    found = ", ".join(found_codes) or "none"
                    problems.append(f"expected codes {', '.join(missing)}; found {found}")
        return problems

    def cover_proposal(self, name: str) -> None:
        """Record what the policies decide of each action of proposal `name` as `check`
        judges it (the state the plan predicts, its ancestors as history): a proposal test
        exercises the policies its actions meet, and coverage counts them."""
        proposal = self.program.proposal(name)
        if proposal is None:
            return
        contexts = judged_contexts(proposal, self.program.initial_state, self.policies)
        for index, (state, history) in contexts.items():
            _, traces = self.policies.trace(
                proposal.actions[index],
                proposal_id=name,
                state=state,
                history=history,
                now=self.now,
            )
            self.coverage.record(traces, self.keys)

    def plan(self, case: TestCase, name: str) -> list[str]:
        if name not in self.winners:
            ranked = rank_plan(self.program, name)
            self.winners[name] = ranked[0].proposal_id if ranked and ranked[0].valid else None
        winner = self.winners[name]
        problems = []
        for expected in case.expectations:
            if expected.kind == "validity":  # a plan is valid when one candidate is
                if (expected.word == "valid") != (winner is not None):
                    got = "no valid candidate" if winner is None else f"{winner} is valid"
                    problems.append(f"expected the plan {expected.word}, but {got}")
            elif expected.word != winner:
                problems.append(
                    f"expected winner {expected.word}, got {winner or 'no valid candidate'}"
                )
        return problems


def run_tests(
    results: list[CompileResult],
    coverage: Coverage | None = None,
    capability: str | None = None,
) -> list[CaseResult]:
    """Run the test cases of every compiled program, in order; `coverage` collects what the
    decisions reached. `capability` (the project's, carlang.toml's `capability`): the one an
    action test's call is decided under, in each program that declares it, as `run`,
    `explain` and the agent loop decide it (a call it refuses is denied by
    `capability:NAME`)."""
    coverage = coverage if coverage is not None else Coverage()
    outcomes = []
    seen: set[tuple[str, int, str]] = set()  # a test in a file two programs import runs once
    for result in results:
        if result.program is None:
            continue
        runner = _Runner(result, coverage, capability)
        for case in result.tests:
            where = (case.loc.file, case.loc.line, case.name)
            if where in seen:
                continue
            seen.add(where)
            start = time.perf_counter()
            problems, details = runner.run(case)
            seconds = time.perf_counter() - start
            outcomes.append(CaseResult(case, case.loc.file, problems, details, seconds))
    return outcomes


@cache
@cache
def checks_of() -> dict[str, str]:
    """The check that reports each code (`expect codes` may name either)."""
    from .codes import all_codes

    return {c.code: c.check for c in all_codes()}
