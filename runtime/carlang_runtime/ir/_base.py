"""Shared pieces of the IR models: the base class, strict scalar types, omission rules.

CAR's IR is Rust structs serialised with serde. serde is strict about scalar types (`"3"` is not
a `u32`, `1` is not a `bool`) and ignores keys it does not know. The models here follow both rules,
so a document that CAR accepts loads unchanged and one that CAR rejects is rejected here too.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)

__all__ = [
    "CarModel",
    "Bool",
    "Str",
    "U32",
    "U64",
    "F64",
    "JsonMap",
    "Timestamp",
    "utc_now_rfc3339",
    "omit_none",
    "omit_empty",
    "short_id",
    "construct",
]

M = TypeVar("M", bound=BaseModel)

Str = StrictStr
Bool = StrictBool
U32 = Annotated[StrictInt, Field(ge=0, le=2**32 - 1)]
U64 = Annotated[StrictInt, Field(ge=0, le=2**64 - 1)]
# serde's f64 accepts integers too; pydantic's strict float does as well.
F64 = StrictFloat
JsonMap = dict[str, Any]

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})\Z")


def _rfc3339(value: str) -> str:
    # Kept as text so that CAR's nanosecond timestamps round-trip digit for digit; checked
    # here the way chrono parses a DateTime<Utc> (an RFC 3339 date-time with an offset).
    if not _RFC3339.match(value):
        raise ValueError("expected an RFC 3339 date-time with an offset, like 2026-01-31T12:00:00Z")
    try:
        datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        raise ValueError(f"not a valid date-time: {value!r}") from None
    return value


Timestamp = Annotated[StrictStr, AfterValidator(_rfc3339)]


def utc_now_rfc3339() -> str:
    """The current time as CAR writes it (RFC 3339, UTC, `Z`)."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


_new = object.__new__
_set = object.__setattr__


def construct(cls: type[M], values: dict[str, Any], fields: set[str] | None = None) -> M:
    """A model from values already valid and complete (every field given): what
    `model_construct` makes, without its per-field default handling. For the runtime's hot
    path, which builds one result per action. `fields` may be one set of every field name,
    shared between models (pydantic only ever adds names that are already there)."""
    model = _new(cls)
    _set(model, "__dict__", values)
    _set(model, "__pydantic_fields_set__", fields if fields is not None else set(values))
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


class CarModel(BaseModel):
    """Base of every IR model: unknown keys are ignored on load, as serde does in CAR.

    Validators are built on first use (`defer_build`): defining them all costs ~100 ms, which a
    command that only reads part of the IR (`carlang check`) should not pay at start-up.
    """

    model_config = ConfigDict(
        extra="ignore", populate_by_name=True, use_enum_values=False, defer_build=True
    )


def omit_none(value: object) -> bool:
    """`exclude_if` predicate for CAR's `skip_serializing_if = "Option::is_none"`."""
    return value is None


def omit_empty(value: object) -> bool:
    """`exclude_if` predicate for carlang extensions that are left out when empty."""
    return not value


def short_id() -> str:
    """CAR's default id: the first 12 hex digits of a random UUIDv4."""
    return uuid.uuid4().hex[:12]
