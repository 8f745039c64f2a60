"""Proposal JSON decoded by msgspec straight into typed rows (the optional `fast` extra).

`fastload.plain_columns` checks decoded JSON a column at a time; with msgspec installed, the
decoder does that checking itself while it parses, in C, and makes one small struct per action
instead of a dict: about 2.5x less time and 20% less memory than `json.loads` followed by the
column checks. The structs accept exactly what the plain rules accept (string, string-list, map,
enum, bounded-integer and boolean fields, no other key); anything else raises, and the caller
takes the `json` path, which decides as before (and reports exactly as before).

This module imports msgspec at the top: import it only through `fastload.decode_plain`, which
returns None when msgspec is not installed.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import UNSET, UnsetType
from msgspec.structs import astuple

from .actions import ActionType, FailureBehavior, InvocationMode, Reversibility

__all__ = [
    "PlainAction",
    "PlainProposal",
    "DECODE_ERRORS",
    "FIELDS",
    "UNSET",
    "astuple",
    "decode",
    "decode_many",
    "present",
    "rest_of",
]

_U32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
#: A value of an action's map: msgspec checks, in C, that an integer fits 64 bits (signed, as
#: its bounds must: a larger one, rare, sends the text to the json path, which decides); values
#: inside a list or map are left to `fastload`'s walk.
_VALUE = (
    Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
    | float
    | str
    | bool
    | None
    | list[Any]
    | dict[str, Any]
)
# msgspec bounds must fit an int64: the upper bound of a u64 is checked by `fastload`.
_U64 = Annotated[int, msgspec.Meta(ge=0)]


class PlainAction(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """An action with only plain fields; UNSET marks a key the document does not have.

    gc=False: a decoded action holds only JSON values, which cannot form a cycle back to it."""

    type: ActionType
    id: str | UnsetType = UNSET
    tool: str | None | UnsetType = UNSET
    parameters: dict[str, _VALUE] | UnsetType = UNSET
    expected_effects: dict[str, _VALUE] | UnsetType = UNSET
    state_dependencies: list[str] | UnsetType = UNSET
    read_set: list[str] | UnsetType = UNSET
    write_set: list[str] | UnsetType = UNSET
    invocation_mode: InvocationMode | UnsetType = UNSET
    reversibility: Reversibility | UnsetType = UNSET
    idempotent: bool | UnsetType = UNSET
    max_retries: _U32 | UnsetType = UNSET
    failure_behavior: FailureBehavior | UnsetType = UNSET
    timeout_ms: _U64 | None | UnsetType = UNSET
    metadata: dict[str, _VALUE] | UnsetType = UNSET
    depends_on: list[str] | UnsetType = UNSET


class PlainProposal(msgspec.Struct, forbid_unknown_fields=True):
    """A proposal of plain actions; its other fields are left to pydantic (they are few)."""

    actions: list[PlainAction]
    id: Any = UNSET
    source: Any = UNSET
    timestamp: Any = UNSET
    context: Any = UNSET
    capability: Any = UNSET
    budget: Any = UNSET


#: The action fields, in declaration order.
FIELDS: tuple[str, ...] = PlainAction.__struct_fields__
#: What decoding raises for a document the structs do not accept: msgspec's errors,
#: UnicodeEncodeError for a str holding a lone surrogate, RecursionError for values nested
#: deeper than the stack allows (the json path then reports them as too deep).
DECODE_ERRORS = (msgspec.MsgspecError, UnicodeError, RecursionError)
_DECODER = msgspec.json.Decoder(PlainProposal)
_MANY = msgspec.json.Decoder(list[PlainProposal])


def decode(text: str | bytes) -> PlainProposal:
    """Decode and check `text`; raises one of `DECODE_ERRORS` when it is not a proposal of
    plain actions (or not JSON)."""
    return _DECODER.decode(text)


def decode_many(text: str | bytes) -> list[PlainProposal]:
    """`decode` of a JSON array of proposals (the planner's candidates)."""
    return _MANY.decode(text)


def present(row: PlainAction) -> dict[str, Any]:
    """The keys an action's document had, with their values (as `json.loads` gives them)."""
    return {name: value for name in FIELDS if (value := getattr(row, name)) is not UNSET}


def rest_of(doc: PlainProposal) -> dict[str, Any]:
    """The proposal's keys other than `actions`, as the document had them."""
    return {
        name: value
        for name in PlainProposal.__struct_fields__
        if name != "actions" and (value := getattr(doc, name)) is not UNSET
    }
