"""Values between cel-python and carlang: conversion both ways, a tagged JSON encoding for
fixtures that keeps every CEL type apart, and structural equality with types. Importing this
does not touch cel-python's behaviour (celpy_bridge does)."""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from carlang_runtime.cel import CelType, CelUint
from carlang_runtime.cel.values import CelDuration, CelTimestamp, cel_value, parse_timestamp
from celpy import celtypes

__all__ = ["from_celpy", "to_celpy", "encode", "decode", "same"]

_TYPE_NAMES = {
    celtypes.IntType: "int",
    celtypes.UintType: "uint",
    celtypes.DoubleType: "double",
    celtypes.BoolType: "bool",
    celtypes.StringType: "string",
    celtypes.BytesType: "bytes",
    celtypes.ListType: "list",
    celtypes.MapType: "map",
    type(None): "null_type",
    celtypes.TypeType: "type",
    celtypes.TimestampType: "google.protobuf.Timestamp",
    celtypes.DurationType: "google.protobuf.Duration",
}
_CLASSES = {name: cls for cls, name in _TYPE_NAMES.items()}


def from_celpy(value: Any) -> Any:
    """A celpy value as carlang's plain data."""
    if value is None:
        return None
    if isinstance(value, celtypes.BoolType) or type(value) is bool:
        return bool(value)
    if isinstance(value, celtypes.UintType):
        return CelUint(int(value))
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, celtypes.BytesType) or type(value) is bytes:
        return bytes(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, celtypes.TimestampType):
        return cel_value(
            datetime.fromtimestamp(0, UTC)
            + (value - celtypes.TimestampType("1970-01-01T00:00:00Z"))
        )
    if isinstance(value, timedelta):
        return cel_value(
            timedelta(days=value.days, seconds=value.seconds, microseconds=value.microseconds)
        )
    if isinstance(value, (list, tuple)):
        return [from_celpy(item) for item in value]
    if isinstance(value, dict):
        return {from_celpy(k): from_celpy(v) for k, v in value.items()}
    if isinstance(value, type) and value in _TYPE_NAMES:
        return CelType(_TYPE_NAMES[value])
    raise TypeError(f"no carlang value for celpy {value!r}")


def to_celpy(value: Any) -> Any:
    """carlang plain data as celpy values."""
    kind = type(value)
    if value is None:
        return None
    if kind is bool:
        return celtypes.BoolType(value)
    if kind is CelUint:
        return celtypes.UintType(int(value))
    if kind is int:
        return celtypes.IntType(value)
    if kind is float:
        return celtypes.DoubleType(value)
    if kind is str:
        return celtypes.StringType(value)
    if kind is bytes:
        return celtypes.BytesType(value)
    if kind in (list, tuple):
        return celtypes.ListType([to_celpy(item) for item in value])
    if kind is dict:
        return celtypes.MapType({to_celpy(k): to_celpy(v) for k, v in value.items()})
    if kind is CelTimestamp:
        # cel-python holds microseconds: the differential generator keeps to values it can hold.
        return celtypes.TimestampType(value.to_datetime())
    if kind is CelDuration:
        return celtypes.DurationType(value.to_timedelta())
    if kind is datetime:
        return celtypes.TimestampType(value.astimezone(UTC))
    if kind is timedelta:
        return celtypes.DurationType(value)
    if kind is CelType:
        return _CLASSES[value.name]
    raise TypeError(f"no celpy value for {value!r}")


# -- tagged JSON, for fixtures ---------------------------------------------------------------


def encode(value: Any) -> Any:
    """carlang data as JSON that keeps every CEL type apart."""
    kind = type(value)
    if value is None:
        return {"null": None}
    if kind is bool:
        return {"bool": value}
    if kind is CelUint:
        return {"uint": str(int(value))}
    if kind is int:
        return {"int": str(value)}
    if kind is float:
        return {"double": repr(value) if math.isfinite(value) else str(value)}
    if kind is str:
        return {"string": value}
    if kind is bytes:
        return {"bytes": base64.b64encode(value).decode()}
    if kind in (list, tuple):
        return {"list": [encode(item) for item in value]}
    if kind is dict:
        return {"map": [[encode(k), encode(v)] for k, v in value.items()]}
    if kind is datetime or kind is timedelta:
        return encode(cel_value(value))
    if kind is CelTimestamp:
        return {"timestamp": repr(value)[11:-2]}
    if kind is CelDuration:
        return {"duration": str(value.nanos)}
    if kind is CelType:
        return {"type": value.name}
    raise TypeError(f"cannot encode {value!r}")


def decode(data: Any) -> Any:
    """The inverse of `encode`."""
    ((tag, body),) = data.items()
    if tag == "null":
        return None
    if tag == "bool":
        return bool(body)
    if tag == "uint":
        return CelUint(int(body))
    if tag == "int":
        return int(body)
    if tag == "double":
        return float(body)
    if tag == "string":
        return str(body)
    if tag == "bytes":
        return base64.b64decode(body)
    if tag == "list":
        return [decode(item) for item in body]
    if tag == "map":
        return {decode(k): decode(v) for k, v in body}
    if tag == "timestamp":  # RFC 3339; older fixtures: Python's isoformat (+00:00)
        return parse_timestamp(body.replace("+00:00", "Z"))
    if tag == "duration":  # nanoseconds; older fixtures: [days, seconds, microseconds]
        if isinstance(body, list):
            return cel_value(timedelta(days=body[0], seconds=body[1], microseconds=body[2]))
        return CelDuration(int(body))
    if tag == "type":
        return CelType(body)
    raise ValueError(f"unknown tag {tag}")


def same(left: Any, right: Any) -> bool:
    """Equal as CEL data, types included (1 is not 1.0 nor true; NaN equals NaN here); a
    Python datetime/timedelta is the CEL timestamp/duration it stands for."""
    left, right = cel_value(left), cel_value(right)
    if type(left) is not type(right) and not (
        type(left) in (list, tuple) and type(right) in (list, tuple)
    ):
        return False
    if type(left) is float:
        return (math.isnan(left) and math.isnan(right)) or left == right
    if type(left) in (list, tuple):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    if type(left) is dict:
        keys = {(type(k), k) for k in left}
        return keys == {(type(k), k) for k in right} and all(
            same(v, right[k]) for k, v in left.items()
        )
    return bool(left == right)
