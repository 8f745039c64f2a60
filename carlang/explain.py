"""`carlang explain`: the full policy decision for one action, as text or JSON.

Every policy is listed, matched or not, with the values of the sub-expressions that decided its
condition, so "why was this denied" (and "why was this not denied") has an answer.
"""

from __future__ import annotations

import json
from typing import Any

from carlang_runtime import ir
from carlang_runtime.cel import CelEvalError, Explanation, format_value
from carlang_runtime.policy import Decision, PolicyMatch, PolicyTrace
from carlang_runtime.redact import Scrubber, redaction_path, secret_paths, secret_values

__all__ = [
    "render_text",
    "render_json",
    "describe_action",
    "redacted",
    "call_problems",
    "capability_problem",
    "under_capability",
    "capability_refusal",
]

_MARK = {True: "matched", False: "did not match"}


def describe_action(action: ir.Action, proposal: str | None) -> str:
    """`ship: deploy(env: "prod")`, the action as the heading shows it."""
    args = ", ".join(f"{k}: {format_value(v)}" for k, v in action.parameters.items())
    what = f"{action.tool}({args})" if action.tool else f"{action.type.value}({args})"
    where = f" in proposal {proposal}" if proposal else ""
    return f"action {action.id}{where}: {what}"


def call_problems(
    program: ir.Program, tool: str, params: dict[str, Any], file: str
) -> tuple[ir.ToolSchema | None, list[str]]:
    """The tool `program` declares as `tool` and what is wrong with calling it with `params`
    (worded as `check` words it, each mistake once, a secret's value redacted); (None, [why])
    when there is no such tool. A decision about a call that cannot happen misleads:
    `explain`, and `mcp serve`'s `explain` and `policy_check`, refuse it."""
    from carlang_runtime.suggest import did_you_mean

    declared = program.tool(tool)
    if declared is None:
        hint = did_you_mean(tool, [t.name for t in program.tools], "`")
        return None, [f"no tool is called `{tool}` in {file}" + (f" ({hint})" if hint else "")]
    properties = declared.parameters.get("properties", {})
    unknown = [name for name in params if properties and name not in properties]
    problems = [_unknown_parameter(tool, name, properties) for name in unknown]
    known = {name: value for name, value in params.items() if name not in unknown}
    problems += _schema_problems(declared, known, _misspelt(unknown, properties))
    # (`'tok_x' is not one of [...]`: a secret parameter's value is not echoed either)
    call = ir.Action(id="call", type="tool_call", tool=tool, parameters=params)
    return declared, [redacted(problem, program, call) for problem in problems]


def _unknown_parameter(tool: str, name: str, properties: dict[str, Any]) -> str:
    """`tool `t` has no parameter `knwn` (did you mean `known`?)`, as check says it."""
    from carlang_runtime.suggest import did_you_mean

    hint = did_you_mean(name, properties, "`")
    return f"tool `{tool}` has no parameter `{name}`" + (f" ({hint})" if hint else "")


def _misspelt(unknown: list[str], properties: dict[str, Any]) -> set[str]:
    """The parameters that `unknown` arguments look like misspellings of."""
    from carlang_runtime.suggest import closest

    return {close for name in unknown if (close := closest(name, properties)) is not None}


def _schema_problems(tool: ir.ToolSchema, known: dict[str, Any], misspelt: set[str]) -> list[str]:
    """What verify finds wrong with calling `tool` with `known` (the arguments it has), but
    a misspelt parameter's being missing: as check says each mistake once (`cascade`), an
    unknown argument is not also in the schema's "additional properties are not allowed",
    nor the parameter it misspells "missing"."""
    from carlang_runtime.verify import verify

    from .cascade import MISSING_PARAMETER

    call = ir.Action(id="call", type="tool_call", tool=tool.name, parameters=known)
    found = verify(ir.ActionProposal(id="explain", actions=[call]), tools=[tool])
    return [
        issue.message
        for issue in found.issues
        if issue.severity == "error"
        and not (issue.code == MISSING_PARAMETER and _parameter(issue.path) in misspelt)
    ]


def _parameter(path: str | None) -> str | None:
    """The parameter a verify finding's `path` is about (`parameters.known`), or None."""
    return path.removeprefix("parameters.") if path and path.startswith("parameters.") else None


def capability_problem(
    program: ir.Program, action: ir.Action, capability: str | None, file: str
) -> str | None:
    """Why `action` cannot run under `program`'s capability `capability`, worded as the
    runtime rejects it (`Runtime.gate(..., capability=)` and `execute` say the same): a tool
    it denies or does not allow, a state key it does not allow; a capability the program does
    not declare is a problem too. None when it may run, or no capability is named (a decision
    about a call the capability refuses misleads: `explain --capability`, whose default is
    carlang.toml's `capability`, or the proposal's own, says deny)."""
    from carlang_runtime.capability import CapabilityCheck, touched_keys
    from carlang_runtime.suggest import did_you_mean

    if capability is None:
        return None
    declared = program.capability(capability)
    if declared is None:
        names = [c.name for c in program.capabilities]
        hint = did_you_mean(capability, names, "`") or f"capabilities: {', '.join(names) or 'none'}"
        return f"no capability `{capability}` in {file} ({hint})"
    check = CapabilityCheck(declared)
    problems = []
    if action.type is ir.ActionType.TOOL_CALL and action.tool is not None:
        denied = check.tool_problem(action.tool)
        if denied is not None:
            problems.append(denied[1])
    if check.allowed_keys is not None:
        problems += [p for p in map(check.key_problem, touched_keys(action)) if p is not None]
    return "; ".join(problems) or None


def under_capability(decision: Decision, problem: str | None, capability: str | None) -> Decision:
    """The decision on an action as its run makes it under a capability: the policies' when
    the capability lets it run (`problem` None), else deny, the capability deciding (listed
    first, as `capability:NAME`, as `mcp serve`'s explain and policy_check name it; the
    policies' traces still say what they would decide)."""
    if problem is None:
        return decision
    return Decision(
        ir.PolicyEffect.DENY, (capability_refusal(capability, problem), *decision.matches)
    )


def capability_refusal(capability: str | None, problem: str) -> PolicyMatch:
    """The deny of a call capability `capability` refuses, named `capability:NAME` (as
    `explain`, `mcp serve` and a test's `by` name it)."""
    return PolicyMatch(f"capability:{capability}", ir.PolicyEffect.DENY, problem)


def redacted(text: str, program: ir.Program, action: ir.Action) -> str:
    """An explanation of `action` (text or JSON) with the values of its tool's secret
    parameters and of the program's `redact` paths replaced by `[REDACTED]` wherever they
    show: the heading, the action, the values that decided a condition, error messages. (A
    secret never reaches a message, not even one echoing what the user typed.)"""
    tool = program.tool(action.tool or "") if action.tool else None
    paths = [
        *(secret_paths(tool.parameters) if tool else ()),
        *map(redaction_path, program.redactions),
    ]
    values = secret_values(action.parameters, paths)
    return Scrubber(values).text(text) if values else text


def render_text(heading: str, decision: Decision, traces: list[PolicyTrace]) -> str:
    """A heading, the decision, and one block per policy."""
    lines = [heading, f"decision: {decision.effect.value}"]
    if decision.deciding:
        lines += [f"  {m.policy}: {m.reason}" for m in decision.deciding]
    lines.append("")
    width = max((len(t.policy) for t in traces), default=0)
    for trace in traces:
        if not trace.applies:
            lines.append(f"{trace.policy:<{width}}  {trace.effect.value:<16}  does not apply")
            continue
        state = _MARK[trace.matched]
        reason = f"  {trace.reason}" if trace.reason else ""
        lines.append(f"{trace.policy:<{width}}  {trace.effect.value:<16}  {state}{reason}")
        if trace.explanation is not None:
            lines += [f"{'':<{width}}    {term}" for term in trace.explanation.terms]
    return "\n".join(lines)


def render_json(action: ir.Action, decision: Decision, traces: list[PolicyTrace]) -> str:
    """The same as JSON: the action, the decision and every policy's trace."""
    document = {
        "action": action.model_dump(mode="json", exclude_defaults=True),
        "decision": decision.effect.value,
        "reasons": [{"policy": m.policy, "reason": m.reason} for m in decision.deciding],
        "policies": [_trace(t) for t in traces],
    }
    return json.dumps(document, indent=2)


def _trace(trace: PolicyTrace) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": trace.policy,
        "rule": trace.rule,
        "effect": trace.effect.value,
        "applies": trace.applies,
        "matched": trace.matched,
    }
    if trace.reason is not None:
        entry["reason"] = trace.reason
    if trace.error is not None:
        entry["error"] = {"kind": trace.error.kind, "message": trace.error.message}
    if trace.explanation is not None:
        entry["explanation"] = _explanation(trace.explanation)
    return entry


def _explanation(explanation: Explanation) -> list[dict[str, Any]]:
    return [
        {
            "expression": term.text,
            "value": (
                {"error": term.value.message}
                if isinstance(term.value, CelEvalError)
                else format_value(term.value)
            ),
        }
        for term in explanation.terms
    ]
