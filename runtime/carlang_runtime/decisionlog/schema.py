"""The `policy_decision` event: what it holds, its JSON Schema (versioned: a field is only ever
added, never renamed or retyped, within a version), and the program's content hash."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any, Final

from pydantic import BaseModel

from ..policy import PolicyMatch

__all__ = [
    "DECISION_SCHEMA_ID",
    "DECISION_VERSION",
    "content_hash",
    "decision_schema",
    "policy_entry",
]

#: The version of the decision record (`data.v`); readers check it.
DECISION_VERSION: Final = 1
#: The `$id` of the schema that describes version 1.
DECISION_SCHEMA_ID: Final = "https://carlang.dev/schemas/decision-event/v1.json"


def content_hash(program: BaseModel | Any) -> str:
    """`sha256:` and the hex digest of a program's (or any JSON-ready value's) canonical
    JSON: the same program always hashes the same, whatever process compiled it."""
    document = program.model_dump(mode="json") if isinstance(program, BaseModel) else program
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def policy_entry(match: PolicyMatch, loc: Any) -> dict[str, Any]:
    """One deciding policy in a decision record: its name, effect, reason, source position
    (when the program has one), and the values that decided it."""
    entry: dict[str, Any] = {
        "name": match.policy,
        "effect": match.effect.value,
        "reason": match.reason,
    }
    if loc is not None:
        entry["loc"] = {"file": loc.file, "line": loc.line, "column": loc.column}
    if match.explanation is not None:
        entry["explanation"] = str(match.explanation)
    if match.error is not None:
        entry["error"] = match.error.message
    return entry


@cache
def decision_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a `policy_decision` event document, as written to
    JSONL, SQLite (`carlang events --format json`) and the HTTP sink."""
    text = resources.files(__package__).joinpath("decision-event.v1.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema
