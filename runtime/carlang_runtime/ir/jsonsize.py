"""The size of a list of actions' compact JSON, without writing it.

The planner's token estimate is the size of a proposal's JSON (as CAR counts it). Dumping a
10,000-action proposal through pydantic costs ~30 ms, and a proposal loaded from JSON text by
columns (`ir.fastload`) has no models to dump at all. The JSON of `[action, ...]` is the sum of
its parts, and each part can be sized a field at a time over every action, at C speed: one
`to_json` of a field's whole column (the same serializer pydantic uses for the model's values),
or a count of each distinct value for enums. tests/runtime/test_jsonsize.py checks the sum
against pydantic's dump.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cache
from itertools import repeat
from typing import Any, get_args

from pydantic import BaseModel, TypeAdapter
from pydantic_core import PydanticUndefined, to_json

from ._base import omit_empty, omit_none
from .actions import Action
from .fastload import LazyActions

__all__ = ["actions_json_size"]


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    #: Bytes of `"name":` plus the comma that separates it from the next member.
    overhead: int
    #: Bytes of the default's JSON; None when the default is left out (or there is none).
    default_size: int | None
    #: The field's `exclude_if` (None: always written).
    omit: Callable[[Any], bool] | None
    #: Whether the field is an enum (sized by counting its few distinct values).
    enum: bool
    #: Whether its values may hold models (written by the field type's own serializer).
    models: bool


def _size_of(value: Any) -> int:
    # The model's serializer writes non-finite floats as null (ser_json_inf_nan's default)
    return len(to_json(value, inf_nan_mode="null"))


def _holds_models(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_models(arg) for arg in get_args(annotation))


@cache
def _column_adapter(name: str) -> TypeAdapter[list[Any]]:
    """The serializer of a list of `Action.<name>` values. Models nested in an `Action` get no
    serializer of their own until used alone (`defer_build`), which `to_json` would need;
    built on first use, only for a column that has such values."""
    item: Any = Action.model_fields[name].annotation
    return TypeAdapter(list[item])


@cache
def _fields() -> tuple[_Field, ...]:
    """`Action`'s fields in the order pydantic writes them (built on first use: start-up)."""
    fields = []
    for name, info in Action.model_fields.items():
        omit = info.exclude_if
        if omit not in (None, omit_none, omit_empty):  # the sizes below know only these
            raise TypeError(f"internal error: Action.{name} has an omission rule jsonsize lacks")
        if info.default_factory is not None:
            default = info.default_factory()  # type: ignore[call-arg]
        else:
            default = info.default
        if default is PydanticUndefined or (omit is not None and omit(default)):
            default_size = None
        else:
            default_size = _size_of(default)
        annotation = info.annotation
        enum = isinstance(annotation, type) and issubclass(annotation, Enum)
        models = _holds_models(annotation)
        fields.append(_Field(name, len(name) + 4, default_size, omit, enum, models))
    return tuple(fields)


def actions_json_size(
    actions: Sequence[Action],
    exclude: Collection[str] = (),
    known: Mapping[str, Sequence[Any]] | None = None,
) -> int:
    """The length in bytes of `actions` as pydantic writes a `list[Action]` in compact JSON
    (`[{...},...]`, UTF-8), leaving out the fields named in `exclude`. `known`: columns
    already at hand, by field name, each action's value as its model has it.

    Actions loaded by columns (`LazyActions`) are sized from their JSON, whose absent keys
    take `Action`'s defaults (an absent id is CAR's 12-digit short id): no model is built."""
    count = len(actions)
    if not count:
        return 2
    if isinstance(actions, LazyActions):
        column = actions.column
    else:
        rows = list(map(vars, actions))  # a model's field values, every field there

        def column(name: str) -> tuple[list[Any], object] | None:
            return list(map(dict.get, rows, repeat(name))), _NOTHING

    # Every action writes at least its id and type, so each of its members but the last is
    # followed by a comma: `{` `}` plus, per member, `"name":`, its value and a comma, less one
    # comma per action; then `[` `]` and a comma between actions.
    total = 2 + (count - 1) + count * 2 - count
    for field in _fields():
        if field.name in exclude:
            continue
        given = known.get(field.name) if known is not None else None
        found = column(field.name) if given is None else (given, _NOTHING)
        written, size = _column_size(field, found, count)
        total += written * field.overhead + size
    return total


#: The marker of an absent key in a column that has none.
_NOTHING = object()


def _column_size(
    field: _Field, found: tuple[Sequence[Any], object] | None, count: int
) -> tuple[int, int]:
    """How many of `count` actions write `field`, and the bytes of its values over all of
    them. `found`: the field's values and the marker of an absent key (None: none has it)."""
    default_size = field.default_size
    if found is None:
        return (0, 0) if default_size is None else (count, count * default_size)
    column, missing = found
    if field.omit is omit_empty:
        values = [v for v in column if v and v is not missing]
    elif field.omit is omit_none:
        values = [v for v in column if v is not None and v is not missing]
    elif missing is not _NOTHING:
        values = [v for v in column if v is not missing]
    else:
        values = list(column)
    written, size = len(values), 0
    absent = count - written if field.omit is None else 0
    if absent and default_size is not None:
        written += absent
        size += absent * default_size
    if not values:
        return written, size
    if field.enum:
        # an enum member and its value (as decoded JSON gives it) are equal and written alike
        size += sum(_size_of(value) * n for value, n in Counter(values).items())
    elif field.models and any(values):  # (a model is true; an empty list of them is not)
        size += len(_column_adapter(field.name).dump_json(values)) - 2 - (len(values) - 1)
    else:
        size += _size_of(values) - 2 - (len(values) - 1)  # less `[`, `]` and the commas
    return written, size
