"""`carlang eval` and `carlang repl`: a CEL expression evaluated in a policy's context (the
variables a condition sees for a call of one of the program's tools), with its static type and
its value — OPA's `eval`, Cedar's `evaluate`.

The context is built the way the runtime builds it (`action_activation`, `policy_declarations`):
the call's parameters are the ones given over the tool's declared defaults, and the state is the
program's initial state with the given one over it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from carlang_runtime import ir
from carlang_runtime.cel import CelEvalError, CelSyntaxError, compile, format_value
from carlang_runtime.cel.checker import Declarations, check
from carlang_runtime.cel.values import CelTimestamp
from carlang_runtime.errors import CarlangRuntimeError
from carlang_runtime.paramcheck import ParamChecker, filled_parameters, finding_message
from carlang_runtime.policy import policy_declarations, state_problem, state_type
from carlang_runtime.policy.activation import action_activation

from .explain import redacted
from .lower import suggest
from .testcases import ENTRY_HINT, history_entry_problems

__all__ = ["EvalContext", "EvalOutcome", "eval_context", "evaluate", "EvalUsageError"]


class EvalUsageError(CarlangRuntimeError):
    """The context asked for does not exist (an unknown tool, parameters not an object)."""


@dataclass
class EvalContext:
    """What an expression sees: the variables' types and values."""

    program: ir.Program
    tool: ir.ToolSchema | None
    declarations: Declarations
    activation: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalOutcome:
    """An expression's static type and value, or why it has none."""

    expression: str
    type: str
    value: Any = None
    shown: str = ""
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the expression checked and evaluated."""
        return not self.errors

    def document(self) -> dict[str, Any]:
        """The outcome as JSON data."""
        return {
            "expression": self.expression,
            "type": self.type,
            "value": self.shown if self.ok else None,
            "errors": list(self.errors),
            "warnings": list(self.warnings),
        }


def eval_context(
    program: ir.Program,
    tool: str | None = None,
    params: Mapping[str, Any] | None = None,
    state: Mapping[str, Any] | None = None,
    scope: Mapping[str, Any] | None = None,
    history: Sequence[Mapping[str, Any]] | None = None,
    now: CelTimestamp | None = None,
) -> EvalContext:
    """The context of a policy deciding a call of `tool` with `params` (no tool: a policy that
    targets every action, deciding a call of an undeclared tool) at `now` (default: the
    current time)."""
    schema: ir.ToolSchema | None = None
    if tool is not None:
        schema = next((t for t in program.tools if t.name == tool), None)
        if schema is None:
            hint = suggest(tool, [t.name for t in program.tools])
            names = ", ".join(t.name for t in program.tools) or "none"
            raise EvalUsageError(
                f"no tool `{tool}` in the program" + (f"; {hint}" if hint else f" (tools: {names})")
            )
    problem = state_problem(program.state, state or {})
    if problem is not None:  # a state no run can have (as `explain --state` and tests refuse)
        raise EvalUsageError(f"the state given: {problem}")
    # (checked as a test's `history` is: an entry no run can hold answers for nothing)
    found = [
        (message, hint)
        for number, entry in enumerate(history or (), 1)
        for _named, message, hint in history_entry_problems(program, number, entry)
    ]
    if found:
        # (the test blocks' hint shows an entry in carlang's syntax: here it is JSON)
        said = [
            message + (f" ({hint})" if hint and hint != ENTRY_HINT else "")
            for message, hint in found
        ]
        like = (
            f"; an entry is like {HISTORY_LIKE}" if any(h == ENTRY_HINT for _, h in found) else ""
        )
        raise EvalUsageError(f"the history given: {'; '.join(said)}{like}")
    if schema is not None and params:
        problem = _parameter_problem(schema, params)
        if problem is not None:  # `5 : string` would answer for a call that cannot happen
            raise EvalUsageError(f"the parameters given: {problem}")
    parameters = filled_parameters(params or {}, schema.parameters if schema is not None else {})
    current = {**program.initial_state, **(state or {})}
    action = ir.Action(
        id="eval", type=ir.ActionType.TOOL_CALL, tool=tool or "", parameters=parameters
    )
    activation = action_activation(
        action,
        proposal_id="eval",
        state=current,
        scope=scope,
        history=history,
        now=now or CelTimestamp(time.time_ns()),
    )
    # what a policy condition sees: `params` of the tool, `state` of the declared keys
    declarations = policy_declarations(
        [schema] if schema is not None else None,
        state_type(program.state),
        declared=program.tools,
        complete=True,
    )
    return EvalContext(program, schema, declarations, activation, parameters, current)


def _parameter_problem(schema: ir.ToolSchema, params: Mapping[str, Any]) -> str | None:
    """What is wrong with the parameters given for a call of `schema`'s tool: one it does
    not declare, or a value of the wrong type or out of its range. (Leaving some out is
    fine: an expression may read only the others.)"""
    properties = schema.parameters.get("properties") or {}
    for name in params:
        if properties and name not in properties:
            hint = suggest(name, properties)
            return f"tool `{schema.name}` has no parameter `{name}`" + (f"; {hint}" if hint else "")
    checker = ParamChecker(schema.name, schema.parameters)
    found = [f for f in checker.check(dict(params)) if f.kind != "missing"]
    return "; ".join(finding_message(schema.name, f) for f in found) or None


def _left_out(context: EvalContext, error: str) -> str:
    """` (the call's parameters leave out ...)`, when `error` is a missing key that is one
    of the tool's required parameters the given `params` lack (`no such key: 'amount'` said
    only that); "" for any other error."""
    tool = context.tool
    if tool is None or "no such key" not in error:
        return ""
    checker = ParamChecker(tool.name, tool.parameters)
    missing = [f.param for f in checker.check(dict(context.params)) if f.kind == "missing"]
    missing = [name for name in missing if f"'{name}'" in error]
    if not missing:
        return ""
    names = ", ".join(f"`{name}`" for name in missing)
    return f" (the call's parameters leave out {names}, which `{tool.name}` requires)"


def _not_condition_only(issue_message: str) -> bool:
    # Whole-condition findings (must be a bool, always true/false) do not apply to an
    # expression evaluated for its value.
    return not issue_message.startswith(("a condition must be a bool", "the condition is always"))


def evaluate(context: EvalContext, expression: str) -> EvalOutcome:
    """Check `expression` against the context's types, then evaluate it."""
    try:
        checked = check(expression, context.declarations)
    except CelSyntaxError as exc:
        where = f"{exc.line}:{exc.column}: " if getattr(exc, "line", None) else ""
        return EvalOutcome(expression, "-", errors=(f"{where}{exc.message}",))
    issues = [i for i in checked.issues if _not_condition_only(i.message)]
    errors = tuple(_issue_text(expression, i) for i in issues if i.severity == "error")
    warnings = tuple(_issue_text(expression, i) for i in issues if i.severity != "error")
    kind = str(checked.type)
    if errors:
        return EvalOutcome(expression, kind, errors=errors, warnings=warnings)
    try:
        value = compile(expression).evaluate(context.activation)
    except CelEvalError as exc:
        return EvalOutcome(
            expression,
            kind,
            errors=(f"evaluation error: {exc}{_left_out(context, str(exc))}",),
            warnings=warnings,
        )
    except CarlangRuntimeError as exc:
        return EvalOutcome(expression, kind, errors=(str(exc),), warnings=warnings)
    # a secret parameter's value is not shown, not even to the one who typed it (as explain)
    action = ir.Action(
        id="eval",
        type=ir.ActionType.TOOL_CALL,
        tool=context.tool.name if context.tool is not None else "",
        parameters=context.params,
    )
    shown = redacted(format_value(value), context.program, action)
    return EvalOutcome(expression, kind, value, shown, warnings=warnings)


def _issue_text(expression: str, issue: Any) -> str:
    part = expression[issue.start : issue.end]
    help = f" ({issue.help})" if issue.help else ""
    # `line:column:` as a syntax error says it (the expression may span lines)
    line = expression.count("\n", 0, issue.start) + 1
    column = issue.start - (expression.rfind("\n", 0, issue.start) + 1) + 1
    where = f"{line}:{column}: "
    return f"{where}{issue.message}{help}" + (f" in `{part}`" if part else "")


def _parse_json(text: str, what: str) -> Any:
    """JSON given on the command line, or `EvalUsageError` saying what is wrong."""
    from carlang_runtime.jsontext import JsonTextError, parse_json

    try:  # (the strict reader, as explain's: NaN and Infinity are not JSON)
        return parse_json(text)
    except JsonTextError as exc:
        problem, where = exc.message.removeprefix("malformed JSON: "), exc.position.column
        raise EvalUsageError(f"{what} is not JSON: {problem} at column {where}") from None


def parse_json_object(text: str, what: str) -> dict[str, Any]:
    """A JSON object given on the command line, or `EvalUsageError` saying what is wrong."""
    value = _parse_json(text, what)
    if not isinstance(value, dict):
        raise EvalUsageError(f'{what} must be a JSON object, like {{"key": 1}}')
    return value


#: A `history` entry as JSON, for messages.
HISTORY_LIKE = '{"id": "a", "type": "tool_call", "tool": "t", "params": {}, "status": "succeeded"}'


def parse_history(text: str, what: str = "--history") -> list[dict[str, Any]]:
    """`--history` (or `what`): a JSON array of entries as `history` holds them, or
    `EvalUsageError`."""
    entries = _parse_json(text, what)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise EvalUsageError(f"{what} must be a JSON array of entries, like [{HISTORY_LIKE}]")
    return entries
