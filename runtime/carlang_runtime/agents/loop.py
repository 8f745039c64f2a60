"""`AgentLoop`: CAR's assistant loop (propose -> validate -> execute -> observe).

Each turn the model gets the whole history and the tools the capability allows; the runtime
verifies and executes its tool calls under the program's capability, budget, policies and
approval gate (each call on its own, in the order emitted, as CAR runs them; the budget
counted over the conversation); the results
go back as tool-result messages, capped at 16 KiB each. The loop stops on a final answer
(`success`), after `max_turns` (`max_turns`), when cancelled (`cancelled`) or on an inference
or runtime error (`error`); a turn written in another format than the generator's is such an
error, never a final answer (read in the wrong format, its tool calls would be lost).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from ..engine.cancel import CancelToken
from ..engine.limits import SessionBudget, session_budget_context
from ..errors import CarlangRuntimeError
from ..ir import ActionProposal, ActionResult, ActionStatus
from ..redact import Scrubber
from ..suggest import did_you_mean
from .messages import DEFAULT_MAX_CHARS, results_to_messages, succeeded, tool_result_text
from .specs import model_names, model_tool_name, tool_specs, visible_tools
from .turns import (
    ToolCall,
    Turn,
    TurnError,
    TurnFormatError,
    assistant_message,
    parse_turn,
    proposal_from_calls,
)

__all__ = ["AgentEvent", "AgentLoop", "AgentOutcome", "ModelGenerator"]

EventKind = Literal["text", "tool_call", "tool_result", "done", "error"]
Status = Literal["success", "max_turns", "error", "cancelled"]


class ModelGenerator(Protocol):
    """A model: given the messages so far and the tool specs, the next assistant message in
    its `format` (one of `FORMATS`)."""

    format: str

    def generate(self, messages: Sequence[Any], tools: Sequence[Mapping[str, Any]]) -> Any:
        """The next assistant message."""
        ...


@dataclass(frozen=True)
class AgentEvent:
    """What the loop streams: `text` {turn, text}, `tool_call` {turn, id, name, params},
    `tool_result` {turn, id, name, ok, content}, `done` {text}, `error` {message}."""

    kind: EventKind
    data: dict[str, Any]


@dataclass
class AgentOutcome:
    """How a loop ended: its status, a summary (the final text, or why it stopped), the
    turns used, the tools that succeeded (in order) and the whole message history."""

    status: Status
    summary: str
    turns: int
    tools_called: list[str] = field(default_factory=list)
    messages: list[Any] = field(default_factory=list)
    #: every call the model made: turn, id, name, its arguments as shown (secrets and
    #: `redact` paths `[REDACTED]`), whether it succeeded and what the model was told
    calls: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The outcome as JSON-ready data: the calls as shown, not the message history (which
        holds the model's own arguments, secrets included)."""
        return {
            "status": self.status,
            "summary": self.summary,
            "turns": self.turns,
            "tools_called": list(self.tools_called),
            "calls": [dict(call) for call in self.calls],
        }


class AgentLoop:
    """Drives a model and a `Runtime` through a multi-turn tool-use conversation."""

    def __init__(
        self,
        runtime: Any,
        generator: ModelGenerator,
        *,
        capability: str | None = None,
        budget: str | None = None,
        max_turns: int = 10,
        max_chars: int = DEFAULT_MAX_CHARS,
        on_event: Callable[[AgentEvent], None] | None = None,
        cancel: CancelToken | None = None,
        system: str | None = None,
    ) -> None:
        if max_turns < 1:
            raise CarlangRuntimeError("max_turns must be at least 1")
        self.runtime = runtime
        self.generator = generator
        self.format = getattr(generator, "format", "openai")
        self.capability = capability
        self.budget = budget
        self.max_turns = max_turns
        self.max_chars = max_chars
        self.on_event = on_event
        self.cancel = cancel or CancelToken()
        self.system = system
        #: the calls of the conversation under way (`AgentOutcome.calls`)
        self._calls: list[dict[str, Any]] = []
        #: what keeps the conversation's secrets out of what the loop shows (`_keep_out`)
        self._scrub: Scrubber | None = None
        # the spec list checks the capability's name too, before any turn, and that no two
        # tools offered share a model name
        spec_format = "anthropic" if self.format == "anthropic" else "openai"
        self.tools = tool_specs(runtime, spec_format, capability=capability)
        offered = visible_tools(runtime, capability)
        #: the names the model was given (`model_tool_name` of each offered tool)
        self.offered = [model_tool_name(t.name) for t in offered]
        #: the tools the model may call, by the names it may call them: its own (`fs__read`)
        #: and the carlang name (`fs.read`); a call of any other is an unknown tool
        self._callable = {t.name: t.name for t in offered} | model_names(offered)
        if self.format == "openai-responses":
            # the Responses API takes function tools flat: {type, name, description, parameters}
            self.tools = [{"type": "function", **t["function"]} for t in self.tools]

    def _spent(self) -> SessionBudget | None:
        """The budget of one conversation, counted over all its calls (None: no budget)."""
        named = ActionProposal(id="conversation", actions=[], budget=self.budget)
        budget = self.runtime.budget_for(named)
        return SessionBudget(budget) if budget is not None else None

    def run(self, prompt: str | Sequence[Any]) -> AgentOutcome:
        """Run the conversation from a user prompt (or a message history) to its end."""
        messages: list[Any] = []
        if isinstance(prompt, str):
            if self.system and self.format != "anthropic":
                messages.append({"role": "system", "content": self.system})
            messages.append({"role": "user", "content": prompt})
        else:
            messages.extend(prompt)
        session = self.runtime.open_session()
        spent = self._spent()
        called: list[str] = []
        self._calls, self._scrub = [], None
        try:
            for turn_number in range(1, self.max_turns + 1):
                if self.cancel.cancelled:
                    return self._end(
                        "cancelled", self.cancel.reason, turn_number - 1, called, messages
                    )
                try:
                    message = self.generator.generate(messages, self.tools)
                    turn = parse_turn(message, self.format, turn=turn_number)
                except TurnFormatError as exc:
                    # (not the final answer a turn without calls it can read would be)
                    return self._fail(_misread(exc, turn_number), turn_number, called, messages)
                except (TurnError, CarlangRuntimeError, OSError, ValueError) as exc:
                    return self._fail(f"inference failed: {exc}", turn_number, called, messages)
                self._keep_out(turn, session)  # (before anything of the turn is shown)
                if turn.text:
                    self._emit("text", turn=turn_number, text=turn.text)
                self._append_assistant(messages, message, turn)
                if not turn.calls:
                    self._emit("done", text=turn.text)
                    return self._end("success", turn.text, turn_number, called, messages)
                try:
                    results = self._execute(turn, turn_number, session, spent)
                except CarlangRuntimeError as exc:
                    return self._fail(str(exc), turn_number, called, messages)
                # (results are in the calls' order: ids may repeat, so they are not keys)
                for call, result in zip(turn.calls, results, strict=True):
                    ok = succeeded(result)
                    if ok:
                        called.append(self._tool_of(call) or call.name)
                    content = tool_result_text(result, self.max_chars)
                    self._calls.append(
                        self._scrubbed(
                            {
                                "turn": turn_number,
                                "id": call.id,
                                "name": call.name,
                                "arguments": self._shown(call),
                                "ok": ok,
                                "result": content,
                            }
                        )
                    )
                    self._emit(
                        "tool_result",
                        turn=turn_number,
                        id=result.action_id,
                        name=call.name,
                        ok=ok,
                        content=content,
                    )
                messages.extend(results_to_messages(results, self.format, max_chars=self.max_chars))
            summary = f"stopped after {self.max_turns} turns without finishing"
            return self._end("max_turns", summary, self.max_turns, called, messages)
        finally:
            self.runtime.close_session(session)

    # -- one turn ------------------------------------------------------------------------------

    def _execute(
        self, turn: Turn, turn_number: int, session: str, spent: SessionBudget | None
    ) -> list[ActionResult]:
        """Run a turn's calls, each as a proposal of its own, in the order emitted, as CAR
        runs them: a call's refusal or failure is its own observation, never the others' (one
        proposal would abort, and roll back, the calls that ran before a refused one). The
        capability's `max_actions` counts the turn's calls; the budget, the conversation's
        (`SessionBudget`). A malformed call is answered with its problem and not run."""
        good = [call for call in turn.calls if call.problem is None]
        too_many = self._count_problem(len(good))
        results: list[ActionResult] = []
        schemas = {name: tool.schema for name, tool in self.runtime.tools.items()}
        for index, call in enumerate(turn.calls, 1):
            self._emit(
                "tool_call", turn=turn_number, id=call.id, name=call.name, params=self._shown(call)
            )
            refusal = (
                call.problem  # (malformed, or its id used by an earlier call of the turn)
                or self._unknown_tool(call)
                or self._unknown_argument(call)
                or too_many
                or (spent.problem() if spent else None)
            )
            suffix = f"_{index}" if len(turn.calls) > 1 else ""
            tool = self._tool_of(call)
            proposal = proposal_from_calls(
                [replace(call, name=tool) if tool is not None else call],
                tools=schemas,
                proposal_id=f"turn_{turn_number}{suffix}",
                capability=self.capability,
                budget=self.budget,
            )
            if spent is not None:  # (the budget is the conversation's: replay counts it so)
                proposal.context.update(session_budget_context())
            started = time.monotonic()
            # a refusal of the loop's own goes through the runtime too: logged as any other
            done = self.runtime.execute(
                proposal, session=session, cancel=self.cancel, refused=refusal
            )
            (outcome,) = done.results
            if spent is not None and refusal is None:
                ran = outcome.status is not ActionStatus.REJECTED
                spent.spend(ran, (time.monotonic() - started) * 1000.0)
            results.append(outcome)
        return results

    def _tool_of(self, call: ToolCall) -> str | None:
        """The tool a call means among those the model was offered, or None."""
        return self._callable.get(call.name)

    def _unknown_tool(self, call: ToolCall) -> str | None:
        """Why a call names no tool the model was offered (an invented name, a typo, a tool
        the capability leaves out: to the model, which never saw it, no tool at all), with
        the closest it was offered; None when it names one."""
        if self._tool_of(call) is not None:
            return None
        hint = did_you_mean(call.name, self.offered)
        return f"unknown tool '{call.name}'" + (f" ({hint})" if hint else "")

    def _unknown_argument(self, call: ToolCall) -> str | None:
        """An argument the tool does not declare, or None. The runtime lets extras through
        and leaves them out of the call (CAR's rule, for proposals); from a model, a
        misspelt `environment` for `env` would quietly run with `env`'s default instead, so
        a tool whose schema lists its parameters (and does not allow more) refuses it."""
        tool = self.runtime.tools.get(self._tool_of(call) or call.name)
        schema = tool.schema.parameters if tool is not None else {}
        declared = schema.get("properties")
        if not declared or schema.get("additionalProperties", False) is not False:
            return None
        for name in call.arguments or {}:
            if name not in declared:
                hint = did_you_mean(name, declared)
                return f"tool '{tool.schema.name}' has no parameter '{name}'" + (
                    f" ({hint})" if hint else f" (its parameters: {', '.join(declared)})"
                )
        return None

    def _count_problem(self, count: int) -> str | None:
        """Why a turn of `count` calls is too many for the capability, or None."""
        named = ActionProposal(id="turn", actions=[], capability=self.capability)
        check = self.runtime.capability_for(named)
        return check.count_problem(count) if check is not None else None

    def _shown(self, call: ToolCall) -> dict[str, Any] | None:
        """A call's arguments as the live view may show them: secret parameters and the
        program's `redact` paths are `[REDACTED]`, and so is any value of them wherever it
        occurs (an argument the tool does not declare, that repeats a secret one), a value
        equal to a short one too, as a tool's output is scrubbed."""
        if call.arguments is None:
            return None
        tool = self._tool_of(call) or call.name
        shown: dict[str, Any] = self.runtime.shown_parameters(tool, call.arguments)
        return self._scrub.output(shown) if self._scrub is not None else shown

    def _keep_out(self, turn: Turn, session: str) -> None:
        """Learn what to keep out of what the loop shows (its events, the outcome's summary
        and calls) before any of a turn is shown: the runtime's own scrubber for a run of the
        turn's calls in the conversation's session (`Runtime.scrubber`), as the event log
        has it: the values of their secret parameters and `redact` paths, and those of the
        session's earlier runs, wherever they occur."""
        calls = [
            replace(call, name=self._tool_of(call) or call.name)
            for call in turn.calls
            if call.arguments is not None
        ]
        proposal = proposal_from_calls(calls, proposal_id=f"shown_{session}")
        policies = self.runtime.policy_sets(session)
        self._scrub = self.runtime.scrubber(proposal, policies, None, session)

    def _scrubbed(self, data: dict[str, Any]) -> dict[str, Any]:
        """`data` with the conversation's secret values `[REDACTED]` (see `_keep_out`)."""
        return dict(self._scrub.value(data)) if self._scrub is not None else data

    def _append_assistant(self, messages: list[Any], message: Any, turn: Turn) -> None:
        """Put the assistant's turn into the history, in the generator's format (Responses
        items go in flat; OpenAI calls get the ids the loop gave them)."""
        plain = assistant_message(message)
        if self.format == "openai-responses":
            items = (
                plain.get("output") if isinstance(plain, Mapping) and "output" in plain else plain
            )
            messages.extend(items if isinstance(items, list) else [items])
            return
        if self.format == "openai" and isinstance(plain, Mapping) and plain.get("tool_calls"):
            calls = [
                {**dict(raw), "id": call.id}
                for raw, call in zip(plain["tool_calls"], turn.calls, strict=False)
            ]
            plain = {**dict(plain), "tool_calls": calls}
        if self.format == "anthropic" and isinstance(plain, list):
            plain = {"role": "assistant", "content": plain}
        messages.append(plain)

    # -- ends and events -----------------------------------------------------------------------

    def _emit(self, kind: EventKind, **data: Any) -> None:
        if self.on_event is not None:
            self.on_event(AgentEvent(kind, self._scrubbed(data)))

    def _fail(
        self, message: str, turns: int, called: list[str], messages: list[Any]
    ) -> AgentOutcome:
        self._emit("error", message=message)
        return self._end("error", message, turns, called, messages)

    def _end(
        self, status: Status, summary: str, turns: int, called: list[str], messages: list[Any]
    ) -> AgentOutcome:
        if self._scrub is not None:
            summary = self._scrub.text(summary)
        return AgentOutcome(status, summary, turns, called, messages, list(self._calls))


def _misread(exc: TurnFormatError, turn: int) -> str:
    """The error of a turn the model wrote in another format than its generator's: a server
    that is not the kind the generator speaks, or a generator that says the wrong `format`;
    or of a turn no format reads (a legacy `function_call`, another role's message)."""
    if not exc.shape.readable:
        return f"turn {turn}: the model answered {exc.shape.refusal()}"
    return (
        f"turn {turn}: the model answered {exc.shape.named()}, but its generator reads"
        f" {exc.format}: its tool calls cannot be read (does the model's server speak the"
        " generator's format?)"
    )
