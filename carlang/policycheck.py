"""Plan-vs-policy at compile time: what the program's policies will say to each action of each
proposal, reported at the action's source line before anything runs.

Every parameter of an action is written in the plan, so a policy whose verdict depends only on
the action is certain: "will be denied by https_only" is an error. A require_approval verdict
is a warning; so is a deny predicted from the state the plan declares (the policy reads
`state`). Trace rules (policies over `history`) are judged against the actions that precede
the guarded one on every path of the DAG, all taken to have succeeded, and against the history
the runtime will hold when it decides the action (it admits a level's actions in proposal
order, each in `history` from then on: an unordered sibling counts, "running"): a rule that
denies either way is not met by the plan (see `carlang_runtime.policy.static`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from carlang_runtime import ir
from carlang_runtime.policy import (
    POLICY_ASKS,
    POLICY_DENIES,
    POLICY_MAY_DENY,
    UNDECLARED_STATE_KEY,
    PolicyLoadError,
    PolicySet,
    StaticVerdict,
    state_problems,
    static_verdicts,
)
from carlang_runtime.verify import Analysis, VerifyIssue, VerifyResult

from .export import DONE_PREFIX

__all__ = [
    "PolicyFinding",
    "policy_findings",
    "finding_of",
    "judged_verdict",
    "DENIED",
    "APPROVAL",
    "PREDICTED_DENY",
]

#: The codes of a plan's policy verdicts (the planner's findings carry the same ones).
DENIED, APPROVAL, PREDICTED_DENY = POLICY_DENIES, POLICY_ASKS, POLICY_MAY_DENY


@dataclass(frozen=True)
class PolicyFinding:
    """One policy's verdict on one action, as a diagnostic would say it."""

    proposal: str
    action_id: str
    code: str
    severity: Literal["error", "warning"]
    message: str
    #: The policy that gave the verdict.
    policy: str = ""


def policy_findings(
    program: ir.Program,
    state: Mapping[str, Any] | None = None,
    analyses: Mapping[str, Analysis] | None = None,
) -> dict[str, list[PolicyFinding]]:
    """Per proposal id, what its actions will meet (empty when the program has no policies
    or a policy does not load: the compiler reports that one itself). `analyses`: verify's
    analysis of each proposal by id, whose columns and DAG are used rather than made again."""
    if not program.policies:
        return {}
    try:
        policies = PolicySet(program.policies, tools=program.tools)
    except PolicyLoadError:
        return {}
    initial = {**program.initial_state, **(state or {})}
    found: dict[str, list[PolicyFinding]] = {}
    for proposal in program.proposals:
        known = analyses.get(proposal.id) if analyses is not None else None
        verdicts = static_verdicts(
            policies,
            proposal,
            initial,
            cols=known.cols if known is not None else None,
            dag=known.dag if known is not None else None,
        )
        items = [finding_of(proposal.id, verdict) for verdict in verdicts]
        if items:
            found[proposal.id] = items
    return found


def finding_of(proposal_id: str, verdict: StaticVerdict) -> PolicyFinding:
    """A policy's verdict on an action as a finding: a certain deny is an error (CL0520), a
    deny predicted from the state the plan declares (CL0522) and an approval (CL0521) are
    warnings."""
    severity: Literal["error", "warning"] = "warning"
    # A policy without a `message` gives the runtime's default, which only repeats what the
    # finding says ("will be denied by p: denied by policy p"): left out.
    defaults = (f"denied by policy {verdict.policy}", f"policy {verdict.policy} requires approval")
    reason = "" if verdict.reason in defaults else f": {verdict.reason}"
    if verdict.effect is ir.PolicyEffect.DENY and verdict.certain:
        code, severity = DENIED, "error"
        message = f"this action will be denied by {verdict.policy}{reason}"
    elif verdict.effect is ir.PolicyEffect.DENY:
        code = PREDICTED_DENY
        message = f"this action is predicted to be denied by {verdict.policy}{reason}"
    else:
        code = APPROVAL
        message = f"this action will require approval by {verdict.policy}{reason}"
    return PolicyFinding(proposal_id, verdict.action_id, code, severity, message, verdict.policy)


def rejected_actions(issues: Iterable[VerifyIssue]) -> set[str]:
    """The actions verify rejects for their tool or parameters: the runtime never asks the
    policies about them, so no policy verdict is reported on them (the first error says what
    to fix)."""
    return {
        issue.action_id
        for issue in issues
        if issue.severity == "error" and (issue.path or "").startswith(("tool", "parameters"))
    }


def _in_plan_order(
    issues: list[dict[str, Any]], proposal: ir.ActionProposal
) -> list[dict[str, Any]]:
    """Issues in the order of the actions they are about (the proposal's own first), errors
    before warnings on each, as `check` lists them by position."""
    position = {action.id: index for index, action in enumerate(proposal.actions)}

    def key(issue: dict[str, Any]) -> tuple[int, int]:
        found = position.get(str(issue.get("action_id")), -1)
        return found, issue.get("severity") != "error"

    return sorted(issues, key=key)


def state_write_issues(program: ir.Program, proposal: ir.ActionProposal) -> list[VerifyIssue]:
    """What `carlang check` says of a plan's writes to the program's declared state, for a
    proposal from outside (an agent's JSON): a key no `state` entry declares (CL0206, a
    warning) and a value not of its key's type (CL0205, an error); nothing when the program
    declares no state."""
    if not program.state:
        return []
    issues = []
    for action in proposal.actions:
        for key, value, path in _writes(action):
            for _key, problem, hint in state_problems(program.state, {key: value}):
                undeclared = problem.startswith(UNDECLARED_STATE_KEY)
                issue = VerifyIssue(
                    action_id=action.id,
                    severity="warning" if undeclared else "error",
                    message=(
                        f"state key `{key}` is not declared"
                        if undeclared
                        else f"value for `{key}` does not fit its declared type: "
                        + problem.removeprefix(f"state `{key}`: ")
                    ),
                    check="names" if undeclared else "types",
                    code="CL0206" if undeclared else "CL0205",
                    help=(hint or "declare it in a `state { }` block") if undeclared else None,
                    path=path,
                )
                issues.append(issue)
    return issues


def _writes(action: ir.Action) -> Iterable[tuple[str, Any, str]]:
    """The (key, value, IR path) of each state write an action declares: a state_write's,
    then its expected effects."""
    if action.type is ir.ActionType.STATE_WRITE and isinstance(action.parameters.get("key"), str):
        yield action.parameters["key"], action.parameters.get("value"), "parameters.value"
    for key, value in action.expected_effects.items():
        if value is True and key.startswith(DONE_PREFIX):
            continue  # the key `compile --target car` writes for an `after`: not the program's
        yield key, value, f"expected_effects.{key}"


def judged_verdict(
    result: VerifyResult,
    program: ir.Program,
    proposal: ir.ActionProposal,
    state: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`verify`'s verdict on a proposal (as JSON data) with what `program`'s policies will
    say to its actions added, as `carlang check` judges a plan: a certain deny is an error,
    so `valid` is false; the other verdicts are warnings; a `plan_policies` evidence record."""
    from carlang_runtime.verify import CheckRecord

    data: dict[str, Any] = result.model_dump(mode="json")
    written = [i.model_dump(mode="json") for i in state_write_issues(program, proposal)]
    if written:
        data["issues"] = _in_plan_order([*data["issues"], *written], proposal)
        data["valid"] = not any(i["severity"] == "error" for i in data["issues"])
    if not program.policies:
        return data
    try:
        policies = PolicySet(program.policies, tools=program.tools)
    except PolicyLoadError:  # (the compiler reported it: the program has errors)
        return data
    initial = {**program.initial_state, **(state or {})}
    rejected = rejected_actions(result.issues)
    issues = []
    for verdict in static_verdicts(policies, proposal, initial):
        if verdict.action_id in rejected:
            continue  # the runtime never asks the policies: the call's own error says it
        finding = finding_of(proposal.id, verdict)
        issue = VerifyIssue(
            action_id=finding.action_id,
            severity=finding.severity,
            message=finding.message,
            tier="decision_procedure" if verdict.certain else "heuristic",
            check="plan_policies",
            code=finding.code,
        )
        issues.append(issue.model_dump(mode="json"))
    data["issues"] = _in_plan_order([*data["issues"], *issues], proposal)
    data["valid"] = not any(i["severity"] == "error" for i in data["issues"])
    record = CheckRecord(
        name="plan_policies",
        ran=True,
        verifies="what the program's policies will say to each action, from its parameters,"
        " the state the plan declares and the actions before it",
        cannot_verify="what policies decide from what only the run knows (tool outputs, time,"
        " rate limits, a person's approval)",
        findings=len(issues),
        tier="decision_procedure",
    )
    evidence = data["evidence"]
    evidence["checks"] = [*evidence["checks"], record.model_dump(mode="json")]
    warnings = sum(1 for i in data["issues"] if i["severity"] == "warning")
    risks = [r for r in evidence["residual_risks"] if "not blocking the verdict" not in r]
    if warnings:
        risks.insert(0, f"{warnings} warning(s) not blocking the verdict")
    evidence["residual_risks"] = risks
    return data
