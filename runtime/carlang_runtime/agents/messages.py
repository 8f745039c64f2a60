"""A run's results -> the tool-result messages a model API expects, one per call."""

from __future__ import annotations

import json
from typing import Any

from ..engine.hostloop import cap_text
from ..ir import ActionResult, ActionStatus, ProposalResult
from .turns import FORMATS, TurnError

__all__ = ["DEFAULT_MAX_CHARS", "results_to_messages", "tool_result_text"]

#: CAR's cap on an observation fed back to a model: 16 KiB.
DEFAULT_MAX_CHARS = 16384


def tool_result_text(result: ActionResult, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """What the model reads of one call's result: its output (text as is, anything else as
    JSON), or `{"error": ..., "status": ...}` when it did not succeed; capped at
    `max_chars` on a character boundary. A call that succeeded in a proposal that then
    aborted (its state effects rolled back) gives its output, then a note saying so, never cut."""
    if succeeded(result):
        output = result.output
        text = cap_text(output if isinstance(output, str) else _json(output), max_chars)
        if result.error:
            text += f"\n\n[note: this call succeeded, but its proposal did not: {result.error}]"
        return text
    error = _json({"error": result.error or result.status.value, "status": result.status.value})
    return cap_text(error, max_chars)


def succeeded(result: ActionResult) -> bool:
    """Whether a call succeeded (its proposal may still have aborted after it: the result's
    `error` then says so)."""
    return result.status is ActionStatus.SUCCEEDED


def results_to_messages(
    result: ProposalResult | list[ActionResult],
    format: str = "openai",
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> list[dict[str, Any]]:
    """The tool-result messages for a run's results (action id = call id): OpenAI
    `{role: "tool", tool_call_id, content}` per call; OpenAI Responses
    `{type: "function_call_output", call_id, output}` per call; Anthropic one user message of
    `{type: "tool_result", tool_use_id, content, is_error}` blocks; LangChain ToolMessage dicts
    `{type: "tool", tool_call_id, content, status}`."""
    results = result.results if isinstance(result, ProposalResult) else list(result)
    if format not in FORMATS:
        raise TurnError(f"unknown tool-call format '{format}' (use one of {', '.join(FORMATS)})")
    if format == "anthropic":
        if not results:
            return []
        blocks = [
            {
                "type": "tool_result",
                "tool_use_id": r.action_id,
                "content": tool_result_text(r, max_chars),
                "is_error": not succeeded(r),
            }
            for r in results
        ]
        return [{"role": "user", "content": blocks}]
    return [_one(r, format, max_chars) for r in results]


def _one(result: ActionResult, format: str, max_chars: int) -> dict[str, Any]:
    text = tool_result_text(result, max_chars)
    if format == "openai":
        return {"role": "tool", "tool_call_id": result.action_id, "content": text}
    if format == "openai-responses":
        return {"type": "function_call_output", "call_id": result.action_id, "output": text}
    return {
        "type": "tool",
        "tool_call_id": result.action_id,
        "content": text,
        "status": "success" if succeeded(result) else "error",
    }


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)
