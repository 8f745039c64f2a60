"""For agent loops (model proposes, runtime validates and executes, observation goes back):
rendering a result for the model with a size cap."""

from __future__ import annotations

import json
from typing import Any

from ..ir import ActionResult, ActionStatus, ProposalResult

__all__ = ["cap_text", "format_tool_result"]


def format_tool_result(result: ActionResult | ProposalResult | Any, max_chars: int = 4000) -> str:
    """A result as text for a model: an action's output (or its status and error), a whole
    proposal's results one per line, anything else as JSON. Longer than `max_chars`, it is cut
    on a character boundary and says how much was left out."""
    if isinstance(result, ProposalResult):
        text = "\n".join(_one(r) for r in result.results)
    elif isinstance(result, ActionResult):
        text = _one(result)
    else:
        text = _json(result)
    return cap_text(text, max_chars)


def cap_text(text: str, max_chars: int) -> str:
    """`text`, or when longer than `max_chars` its start cut on a character boundary with a
    marker saying how much was left out."""
    if len(text) <= max_chars:
        return text
    omitted = len(text) - max_chars
    # Python strings index code points, so any cut is on a character boundary; avoid cutting
    # a surrogate pair that came from decoding invalid text.
    cut = text[:max_chars]
    if cut and "\ud800" <= cut[-1] <= "\udbff":
        cut = cut[:-1]
        omitted += 1
    return f"{cut}\n[... {omitted} more characters]"


def _one(result: ActionResult) -> str:
    if result.status is ActionStatus.SUCCEEDED and result.error is None:
        return f"{result.action_id}: {_json(result.output)}"
    detail = f": {result.error}" if result.error else ""
    return f"{result.action_id}: {result.status.value}{detail}"


def _json(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)
