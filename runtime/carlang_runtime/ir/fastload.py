"""Verifier columns straight from decoded JSON, without a pydantic model per action.

Validating a 10,000-action proposal with pydantic costs more than verifying it. Most proposals
agents send use only CAR's plain action fields (strings, string lists, maps, enums, integers),
whose rules are simple enough to check a whole column at a time at C speed (`map`, `set`):
`plain_columns` does that and returns the columns `verify` needs, with the action models built
only if a check asks for one. A proposal with anything else (preconditions, assumptions,
compensations, locations, keys the model ignores, any value the rules refuse) gets None, and the
caller loads it with pydantic as before, so every error message and position is pydantic's.

The rules mirror `Action`'s field types; tests/runtime/test_fastload.py checks them against
pydantic differentially.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from itertools import chain, repeat
from typing import Any, overload

from pydantic import ValidationError

from ._base import construct, short_id
from .actions import (
    Action,
    ActionProposal,
    ActionType,
    FailureBehavior,
    InvocationMode,
    Reversibility,
)

__all__ = ["PlainColumns", "LazyActions", "plain_columns"]


class _Missing:
    """The value of a key an action does not have (None is a value JSON can give)."""


_MISSING = _Missing()
_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1

_STRINGS = ("id",)
_OPTIONAL_STRINGS = ("tool",)
_MAPS = ("parameters", "expected_effects", "metadata")
_STRING_LISTS = ("state_dependencies", "read_set", "write_set", "depends_on")
_ENUMS: dict[str, Mapping[str, Any]] = {
    "type": ActionType._value2member_map_,
    "invocation_mode": InvocationMode._value2member_map_,
    "reversibility": Reversibility._value2member_map_,
    "failure_behavior": FailureBehavior._value2member_map_,
}
#: Integer fields: (lowest, highest, whether null is allowed).
_INTEGERS = {"max_retries": (0, _U32_MAX, False), "timeout_ms": (0, _U64_MAX, True)}
_BOOLS = ("idempotent",)
#: The fields checked here; an action with any other key goes to pydantic (with the proposal).
PLAIN_KEYS = frozenset(
    (*_STRINGS, *_OPTIONAL_STRINGS, *_MAPS, *_STRING_LISTS, *_ENUMS, *_INTEGERS, *_BOOLS)
)


class _Unfit(Exception):
    """A column the plain rules do not accept (pydantic decides what is wrong with it)."""


def _types(column: list[Any]) -> set[type]:
    types = set(map(type, column))
    types.discard(_Missing)
    return types


def _check(column: list[Any], key: str) -> None:
    """Raise `_Unfit` unless every present value of `column` is valid for field `key`."""
    types = _types(column)
    if key in _STRINGS:
        ok = types <= {str}
    elif key in _OPTIONAL_STRINGS:
        ok = types <= {str, type(None)}
    elif key in _MAPS:
        ok = types <= {dict}
    elif key in _STRING_LISTS:
        ok = types <= {list} and _types(list(chain.from_iterable(_present(column)))) <= {str}
    elif key in _ENUMS:
        ok = types <= {str} and set(_present(column)) <= _ENUMS[key].keys()
    elif key in _INTEGERS:
        low, high, nullable = _INTEGERS[key]
        ints = [v for v in column if type(v) is int]
        ok = types <= ({int, type(None)} if nullable else {int}) and (
            not ints or (low <= min(ints) and max(ints) <= high)
        )
    else:  # _BOOLS
        ok = types <= {bool}
    if not ok:
        raise _Unfit


def _present(column: list[Any]) -> list[Any]:
    return [v for v in column if v is not _MISSING]


def _filled(column: list[Any], default: Any) -> list[Any]:
    """`column` with each missing value replaced by `default()` (or `default` itself)."""
    make = default if callable(default) else None
    if make is None:
        return [default if v is _MISSING else v for v in column]
    return [make() if v is _MISSING else v for v in column]


#: `Action`'s defaults (a callable makes a fresh one each time, as default_factory does).
_DEFAULTS: dict[str, Any] = {
    "id": short_id,
    "tool": None,
    "parameters": dict,
    "preconditions": list,
    "expected_effects": dict,
    "state_dependencies": list,
    "read_set": list,
    "write_set": list,
    "assumptions": list,
    "invocation_mode": InvocationMode.ONE_SHOT,
    "reversibility": Reversibility.IRREVERSIBLE,
    "compensation": None,
    "idempotent": False,
    "max_retries": 3,
    "failure_behavior": FailureBehavior.ABORT,
    "timeout_ms": None,
    "metadata": dict,
    "depends_on": list,
    "loc": None,
}
_FIELDS = tuple(Action.model_fields)


class LazyActions(Sequence[Action]):
    """The actions of a proposal whose plain fields were checked a column at a time; each
    `Action` is built (as pydantic would, without validating again) when first asked for."""

    def __init__(self, data: list[dict[str, Any]], ids: list[str]) -> None:
        self._data = data
        self._ids = ids
        self._built: list[Action | None] = [None] * len(data)

    def __len__(self) -> int:
        return len(self._data)

    @overload
    def __getitem__(self, index: int) -> Action: ...
    @overload
    def __getitem__(self, index: slice) -> list[Action]: ...
    def __getitem__(self, index: int | slice) -> Action | list[Action]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        action = self._built[index]
        if action is None:
            action = self._built[index] = self._build(index)
        return action

    def __iter__(self) -> Iterator[Action]:
        return (self[i] for i in range(len(self)))

    def _build(self, index: int) -> Action:
        data = self._data[index]
        values: dict[str, Any] = {}
        for name in _FIELDS:
            if name in data:
                value = data[name]
                if name in _ENUMS:
                    value = _ENUMS[name][value]
                elif type(value) is dict or type(value) is list:
                    value = type(value)(value)  # pydantic copies maps and lists
            elif name == "id":
                value = self._ids[index]
            else:
                default = _DEFAULTS[name]
                value = default() if callable(default) else default
            values[name] = value
        return construct(Action, values, set(data))


class PlainColumns:
    """The columns `Columns` holds, made from checked JSON (see `columns.Columns.of_plain`)."""

    __slots__ = ("proposal", "values")

    def __init__(self, proposal: ActionProposal, values: dict[str, list[Any]]) -> None:
        self.proposal = proposal
        self.values = values


def plain_columns(data: Mapping[str, Any]) -> PlainColumns | None:
    """The proposal (its actions lazy) and one list per action field, when `data` is a valid
    proposal of plain actions; None otherwise (then validate it with pydantic).

    `data` must be freshly decoded JSON owned by the caller: its maps and lists become the
    columns' values."""
    actions = data.get("actions")
    if type(actions) is not list or _types(actions) - {dict}:
        return None
    keys = set(chain.from_iterable(actions))
    if not keys <= PLAIN_KEYS or not all(map(dict.__contains__, actions, repeat("type"))):
        return None
    columns: dict[str, list[Any]] = {}
    try:
        for key in keys:
            column = list(map(dict.get, actions, repeat(key), repeat(_MISSING)))
            _check(column, key)
            columns[key] = column
        proposal = ActionProposal.model_validate({**data, "actions": []})
    except (_Unfit, ValidationError, TypeError):
        return None
    n = len(actions)
    values: dict[str, list[Any]] = {}
    for name in ("id", "tool", "parameters", "expected_effects", "state_dependencies"):
        default = _DEFAULTS[name]
        values[name] = (
            _filled(columns[name], default) if name in columns else _filled([_MISSING] * n, default)
        )
    values["depends_on"] = (
        _filled(columns["depends_on"], list) if "depends_on" in keys else ([[] for _ in range(n)])
    )
    for name in ("type", "reversibility"):
        members = _ENUMS[name]
        default = _DEFAULTS.get(name)  # none for `type`: every action has one
        if name not in columns:
            values[name] = [default] * n
        else:
            values[name] = [members[v] if v is not _MISSING else default for v in columns[name]]
    proposal.__dict__["actions"] = LazyActions(actions, values["id"])
    return PlainColumns(proposal, values)
