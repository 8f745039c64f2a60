"""The JSON Schemas of the IR, generated from the models and shipped in `ir/schemas/`.

The checked-in files are what tools outside Python validate against; a test regenerates them and
fails when they drift from the models (regenerate with `carlang schema NAME > FILE`).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from pydantic import BaseModel

from .actions import ActionProposal
from .program import Program

__all__ = ["SCHEMA_MODELS", "SCHEMA_FILES", "json_schema", "schema_text", "shipped_schema_text"]

SCHEMA_MODELS: dict[str, type[BaseModel]] = {"program": Program, "proposal": ActionProposal}
SCHEMA_FILES: dict[str, str] = {
    "program": "program.schema.json",
    "proposal": "action_proposal.schema.json",
}
_TITLES = {
    "program": "carlang compiled program (IR version 1)",
    "proposal": "CAR ActionProposal (with carlang extensions)",
}


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the model called `name` ("program" or "proposal")."""
    schema = SCHEMA_MODELS[name].model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://carlang.dev/schemas/{SCHEMA_FILES[name]}",
        **schema,
        "title": _TITLES[name],
    }


def schema_text(name: str) -> str:
    """`json_schema(name)` as the exact text of the shipped file."""
    return json.dumps(json_schema(name), indent=2, sort_keys=True) + "\n"


def shipped_schema_text(name: str) -> str:
    """The schema file shipped with the package."""
    return (resources.files(__package__) / "schemas" / SCHEMA_FILES[name]).read_text("utf-8")
