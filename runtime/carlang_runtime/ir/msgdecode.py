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
    "NestedAction",
    "NestedProposal",
    "DECODE_ERRORS",
    "FIELDS",
    "UNSET",
    "astuple",
    "decode",
    "decode_many",
    "rest_of",
]

_U32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
#: A value of an action's map, in `PlainAction`: a scalar. msgspec checks, in C, that an
#: integer fits 64 bits (signed, as its bounds must: a larger one, rare, sends the text to the
#: json path, which decides).
_SCALAR = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)] | float | str | bool | None
#: A value of an action's map, in `NestedAction`: a scalar, or a list or map whose values
#: `fastload` walks (for their depth and integers).
_VALUE = _SCALAR | list[Any] | dict[str, Any]
#: A timeout: msgspec bounds must fit an int64, so one past it (up to a u64, rare) sends the
#: text to the json path, which decides.
_U63 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class _ActionFields(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
    """An action's fields; UNSET marks a key the document does not have. The maps' values are
    typed by each subclass, which keeps the fields' places.

    The fields are in `Action`'s order, the order CAR and carlang write an action's keys in:
    msgspec looks for each key from the field after the last one it found, so keys in field
    order are each found at the first comparison (~40 ns, 8% of decoding an action).
    kw_only: `type`, which has no default, is not the first field. gc=False: a decoded action
    holds only JSON values, which cannot form a cycle back to it."""

    id: str | UnsetType = UNSET
    type: ActionType
    tool: str | None | UnsetType = UNSET
    parameters: dict[str, Any] | UnsetType = UNSET
    expected_effects: dict[str, Any] | UnsetType = UNSET
    state_dependencies: list[str] | UnsetType = UNSET
    read_set: list[str] | UnsetType = UNSET
    write_set: list[str] | UnsetType = UNSET
    invocation_mode: InvocationMode | UnsetType = UNSET
    reversibility: Reversibility | UnsetType = UNSET
    idempotent: bool | UnsetType = UNSET
    max_retries: _U32 | UnsetType = UNSET
    failure_behavior: FailureBehavior | UnsetType = UNSET
    timeout_ms: _U63 | None | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    depends_on: list[str] | UnsetType = UNSET


class PlainAction(_ActionFields, forbid_unknown_fields=True, kw_only=True, gc=False):
    """An action with only plain fields, whose maps hold scalars: nothing in them needs a
    closer look."""

    parameters: dict[str, _SCALAR] | UnsetType = UNSET
    expected_effects: dict[str, _SCALAR] | UnsetType = UNSET
    metadata: dict[str, _SCALAR] | UnsetType = UNSET


class NestedAction(_ActionFields, forbid_unknown_fields=True, kw_only=True, gc=False):
    """An action with only plain fields, whose maps may hold lists and maps (`fastload` walks
    them)."""

    parameters: dict[str, _VALUE] | UnsetType = UNSET
    expected_effects: dict[str, _VALUE] | UnsetType = UNSET
    metadata: dict[str, _VALUE] | UnsetType = UNSET


class _ProposalFields(msgspec.Struct, forbid_unknown_fields=True):
    """A proposal's fields but its actions, left to pydantic (they are few)."""

    id: Any = UNSET
    source: Any = UNSET
    timestamp: Any = UNSET
    context: Any = UNSET
    capability: Any = UNSET
    budget: Any = UNSET


class PlainProposal(_ProposalFields, forbid_unknown_fields=True, kw_only=True):
    """A proposal of `PlainAction`s."""

    actions: list[PlainAction]


class NestedProposal(_ProposalFields, forbid_unknown_fields=True, kw_only=True):
    """A proposal of `NestedAction`s."""

    actions: list[NestedAction]


#: The action fields, in declaration order.
FIELDS: tuple[str, ...] = PlainAction.__struct_fields__
#: What decoding raises for a document the structs do not accept: msgspec's errors,
#: UnicodeEncodeError for a str holding a lone surrogate, RecursionError for values nested
#: deeper than the stack allows (the json path then reports them as too deep).
DECODE_ERRORS = (msgspec.MsgspecError, UnicodeError, RecursionError)
_DECODERS = (msgspec.json.Decoder(PlainProposal), msgspec.json.Decoder(NestedProposal))
_MANY = (msgspec.json.Decoder(list[PlainProposal]), msgspec.json.Decoder(list[NestedProposal]))


def decode(text: str | bytes) -> PlainProposal | NestedProposal:
    """Decode and check `text`: a `PlainProposal` when its actions' maps hold only scalars
    (the usual proposal, whose maps then need no closer look), else a `NestedProposal`; raises
    one of `DECODE_ERRORS` when it is not a proposal of plain actions (or not JSON)."""
    scalars, nested = _DECODERS
    try:
        return scalars.decode(text)
    except msgspec.ValidationError:  # a list or map in a map, or not plain at all
        return nested.decode(text)


def decode_many(text: str | bytes) -> list[PlainProposal] | list[NestedProposal]:
    """`decode` of a JSON array of proposals (the planner's candidates): all `PlainProposal`s,
    or all `NestedProposal`s."""
    scalars, nested = _MANY
    try:
        return scalars.decode(text)
    except msgspec.ValidationError:
        return nested.decode(text)


def rest_of(doc: PlainProposal | NestedProposal) -> dict[str, Any]:
    """The proposal's keys other than `actions`, as the document had them."""
    return {
        name: value
        for name in _ProposalFields.__struct_fields__
        if (value := getattr(doc, name)) is not UNSET
    }
