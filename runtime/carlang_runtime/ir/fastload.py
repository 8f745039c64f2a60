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

from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cache
from itertools import chain, repeat
from types import ModuleType
from typing import Any, overload

from pydantic import ValidationError

from .. import speedups
from ..jsontext import (
    NESTING_LIMIT,
    JsonTextError,
    json_encoded,
    keys_all_distinct,
    keys_within,
    lone_surrogate,
    parse_json,
)
from ._base import construct, short_id
from .actions import (
    Action,
    ActionProposal,
    ActionType,
    FailureBehavior,
    InvocationMode,
    Reversibility,
)
from .load import NOT_DECODED, load_proposal

__all__ = [
    "PlainColumns",
    "LazyActions",
    "plain_columns",
    "plain_proposal",
    "load_fresh",
    "decode_plain",
    "decode_plain_array",
]


class _Missing:
    """The value of a key an action does not have (None is a value JSON can give); false,
    as msgspec's UNSET is (see `_filled`)."""

    def __bool__(self) -> bool:
        return False


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


def _filled(column: Sequence[Any], default: Any, missing: object = _MISSING) -> list[Any]:
    """`column` (as a list) with each `missing` value replaced by `default()` when it is
    callable (a fresh value each time), else by `default` itself (shared).

    The missing values are found by C-level searches (`list.count`, `list.index`: equality,
    which for JSON values and the `missing` markers is identity), a Python step each: few, in
    the usual column (one action without parameters among thousands with them).

    The markers are false: a column of true values (ids, tools, effects) has none, which
    `all` finds testing truth in C (~4 ns a value) without comparing each value with the
    marker (~13 ns: the comparison asks both types before falling back to identity)."""
    out = list(column)
    if all(out):
        return out
    count = out.count(missing)
    if count == 0:
        return out
    fresh = callable(default)
    if count == len(out) and not fresh:  # a key no action has
        return [default] * count
    if count * 4 > len(out):  # many: one pass
        if fresh:
            return [default() if v is missing else v for v in out]
        return [default if v is missing else v for v in out]
    index = -1
    for _ in range(count):
        index = out.index(missing, index + 1)
        out[index] = default() if fresh else default
    return out


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

    def __init__(
        self, columns: Mapping[str, Sequence[Any]], count: int, ids: list[str], missing: object
    ) -> None:
        # The document's values, one column per key some action has (`missing` where an action
        # has no such key); enum columns hold the enums' values or their members.
        self._columns = columns
        self._ids = ids
        self._missing = missing
        self._built: list[Action | None] = [None] * count

    def column(self, name: str) -> tuple[list[Any], object] | None:
        """Field `name` of every action as its JSON has it (read only), with the value that
        marks an action without the key; None when no action has it."""
        column = self._columns.get(name)
        if column is None:
            return None
        return (column if type(column) is list else list(column)), self._missing

    def __len__(self) -> int:
        return len(self._built)

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
        missing = self._missing
        given = {
            name: value
            for name, column in self._columns.items()
            if (value := column[index]) is not missing
        }
        values: dict[str, Any] = {}
        for name in _FIELDS:
            if name in given:
                value = given[name]
                if name in _ENUMS:
                    value = _ENUMS[name][value]  # (a member is its own value's key)
                elif type(value) is dict or type(value) is list:
                    value = type(value)(value)  # pydantic copies maps and lists
            elif name == "id":
                value = self._ids[index]
            else:
                default = _DEFAULTS[name]
                value = default() if callable(default) else default
            values[name] = value
        return construct(Action, values, set(given))


class PlainColumns:
    """The columns `Columns` holds, made from checked JSON (see `columns.Columns.of_plain`).

    Read only: the maps and lists are the document's own, and every action without a key
    shares one empty default per column."""

    __slots__ = ("proposal", "values")

    def __init__(self, proposal: ActionProposal, values: dict[str, list[Any]]) -> None:
        self.proposal = proposal
        self.values = values


def plain_proposal(source: object) -> PlainColumns | None:
    """The columns of a proposal of plain actions as `load_proposal` takes it, bare or as
    `{"proposal": ...}`: JSON text (through msgspec when it can, `decode_plain`), or JSON
    freshly decoded and owned by the caller (see `plain_columns`). None for anything else,
    which `load_proposal` then loads (and reports exactly as always when it is wrong)."""
    return _plain_and_decoded(source)[0]


def load_fresh(source: str | bytes | Mapping[str, Any]) -> PlainColumns | ActionProposal:
    """A proposal from JSON text, or from JSON freshly decoded and owned by the caller: its
    columns when its actions are plain (`plain_proposal`), else the model `load_proposal`
    builds, with its exact errors. JSON text is parsed once either way."""
    plain, decoded = _plain_and_decoded(source)
    if plain is not None:
        return plain
    if isinstance(source, (str, bytes)):
        return load_proposal(source, decoded=decoded)  # (NOT_DECODED: it reports the text)
    return load_proposal(source)


def _plain_and_decoded(source: object) -> tuple[PlainColumns | None, object]:
    """`plain_proposal`, and what `parse_json` made of text `source` when it had to parse it
    (`NOT_DECODED` when it did not, or could not)."""
    data = source
    decoded = NOT_DECODED
    if isinstance(source, (str, bytes)):
        fast = decode_plain(source)
        if fast is not None:
            return fast, decoded
        try:
            data = decoded = parse_json(source)
        except JsonTextError:
            return None, decoded
    if isinstance(data, dict) and set(data) == {"proposal"}:
        data = data["proposal"]
    if not isinstance(data, dict):
        return None, decoded
    return plain_columns(data), decoded


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
    except (_Unfit, TypeError):
        return None
    rest = {k: v for k, v in data.items() if k != "actions"}
    return _finish(rest, len(actions), columns, _MISSING, members=False)


#: The columns `Columns` needs, filled with `Action`'s defaults where an action has no value.
_COLUMNS = ("id", "tool", "parameters", "expected_effects", "state_dependencies", "depends_on")
#: Defaults shared by every action without the key, one per column: the columns are read,
#: never changed (an `Action` is built from its own JSON, with fresh defaults), and a million
#: empty maps would cost 64 MB.
_COLUMN_DEFAULTS: dict[str, Any] = {
    "parameters": {},
    "expected_effects": {},
    "state_dependencies": [],
    "depends_on": [],
}


#: The proposal's own keys whose values need no validator when they are strings: what agents
#: send besides `actions`.
_PLAIN_HEADER = frozenset(("id", "source"))


def _proposal_without_actions(rest: dict[str, Any]) -> ActionProposal | None:
    """The `ActionProposal` of `rest` (every key but `actions`) with no actions yet; None when
    pydantic refuses it. A header of string `id` and `source` alone is built directly: its
    values are valid as they are, and validating them would first build the validator of the
    whole proposal model (its actions' too), ~17 ms of a fresh process's `carlang verify`."""
    if rest.keys() <= _PLAIN_HEADER and all(type(value) is str for value in rest.values()):
        values = _header_defaults(rest)
        return construct(ActionProposal, values, {*rest, "actions"})
    try:
        return ActionProposal.model_validate({**rest, "actions": []})
    except (ValidationError, TypeError):
        return None


def _header_defaults(given: dict[str, Any]) -> dict[str, Any]:
    """Every field of `ActionProposal`, in the fields' order: the `given` values, else the
    defaults (a fresh id and context each time), with no actions."""
    values, factories = _header_fields()
    fresh = {**values, **given, "actions": []}  # (updating keeps each key's place)
    for name, make in factories:
        if name not in given:
            fresh[name] = make()
    return fresh


@cache
def _header_fields() -> tuple[dict[str, Any], tuple[tuple[str, Callable[[], Any]], ...]]:
    """`ActionProposal`'s fields with their plain defaults (in order; None where a factory
    makes the value), and the fields whose default a factory makes. Read once: pydantic's
    `get_default` inspects a factory's signature at every call (~4 us per field)."""
    values: dict[str, Any] = {}
    factories: list[tuple[str, Callable[[], Any]]] = []
    for name, field in ActionProposal.model_fields.items():
        values[name] = None if field.default_factory is not None else field.default
        if field.default_factory is not None and name != "actions":
            # (ActionProposal's factories take no argument: short_id, dict)
            factories.append((name, field.default_factory))  # type: ignore[arg-type]
    return values, tuple(factories)


def _finish(
    rest: dict[str, Any],
    count: int,
    columns: Mapping[str, Sequence[Any]],
    missing: object,
    *,
    members: bool,
) -> PlainColumns | None:
    """The proposal and filled columns from the checked `columns` of its `count` actions
    (`missing` marks an absent key; a column absent from `columns` is absent from every
    action; the enum columns hold members when `members`, else their values); None when
    pydantic refuses the proposal's own fields (`rest`: every key but `actions`)."""
    proposal = _proposal_without_actions(rest)
    if proposal is None:
        return None
    values: dict[str, list[Any]] = {}
    for name in _COLUMNS:
        default = _COLUMN_DEFAULTS.get(name, _DEFAULTS[name])
        given = columns.get(name)
        if given is not None:
            values[name] = _filled(given, default, missing)
        else:
            values[name] = (
                [default() for _ in range(count)] if callable(default) else [default] * count
            )
    enum_members, default = _ENUMS["reversibility"], _DEFAULTS["reversibility"]
    types, given = columns.get("type", ()), columns.get("reversibility")
    if not members:  # (decoded JSON: the enums' values)
        types = list(map(_ENUMS["type"].__getitem__, types))  # never missing
        given = [enum_members[v] if v is not missing else default for v in given] if given else None
    values["type"] = list(types)
    values["reversibility"] = _filled(given, default, missing) if given else [default] * count
    proposal.__dict__["actions"] = LazyActions(columns, count, values["id"], missing)
    return PlainColumns(proposal, values)


#: How deep a value inside an action's map field may nest: the document, `actions` and the
#: action itself are the three levels above the map (see `jsontext.keys_within`).
_MAP_LEVELS = NESTING_LIMIT - 4


def decode_plain(text: str | bytes) -> PlainColumns | None:
    """`plain_columns` straight from JSON text: read by the C speedups into columns where they
    were built (`speedups.native`), else decoded and checked by msgspec (the optional `fast`
    extra); None without either, or for text that is not a proposal of plain actions, or whose
    values `jsontext.parse_json` would look at more closely (the caller then takes the `json`
    path, which decides, and reports, exactly as without them)."""
    native = _native_decode(text, many=False)
    if native is not None:
        return _native_columns(native)
    decoded = _msgspec_decode(text, many=False)
    if decoded is None:
        return None
    plain, keys = _plain_of(decoded, 0)
    return plain if keys_all_distinct(text, keys, lambda: json_encoded(decoded)) else None


def decode_plain_array(text: str | bytes) -> list[PlainColumns | None] | None:
    """`decode_plain` of a JSON array of proposals: None when neither the C speedups nor
    msgspec read the text as an array of proposals of plain actions; else each proposal's
    columns, or None for one whose values `parse_json` would look at more closely (the caller
    then takes the `json` path for the text, which decides as without them)."""
    native = _native_decode(text, many=True)
    if native is not None:
        return list(map(_native_columns, native))
    decoded = _msgspec_decode(text, many=True)
    if decoded is None:
        return None
    found = [_plain_of(doc, 1) for doc in decoded]
    keys = sum(keys for _plain, keys in found)
    distinct = keys_all_distinct(text, keys, lambda: json_encoded(decoded))
    return [plain for plain, _keys in found] if distinct else None


#: A proposal as the C decoder reads it: its keys but `actions`, how many actions it has,
#: and a column per action key some action has (`_MISSING` where one has not).
_NativeProposal = tuple[dict[str, Any], int, dict[str, list[Any]]]


def _native_decode(text: str | bytes, many: bool) -> Any:
    """The C decoder's proposal (`many`: list of proposals) for `text`, or None: not built, or
    declined (the text is then for msgspec or json, which decide; the decoder accepts a
    subset of what they accept, and reads it as they do)."""
    native = speedups.native()
    if native is None:
        return None
    return native.decode_proposals(text, many, _native_schema())


def _native_columns(found: _NativeProposal) -> PlainColumns | None:
    rest, count, columns = found
    return _finish(rest, count, columns, _MISSING, members=True)


#: What the C decoder checks each action key holds (`_speedups.c`'s kinds).
_K_STR, _K_OPT_STR, _K_MAP, _K_STR_LIST, _K_ENUM, _K_BOOL, _K_U32, _K_OPT_U63 = range(8)
#: A proposal's own keys the fast decoders read (msgspec's `_ProposalFields` too): anything
#: else, `loc` included, is for pydantic to judge.
HEADER_KEYS = ("id", "source", "timestamp", "context", "capability", "budget")


@cache
def _native_schema() -> tuple[Any, ...]:
    """The plain rules (`_check`) as the C decoder takes them: the action keys in `Action`'s
    order (the order keys usually come in), a kind and an enum map (or None) per key, the
    required keys, the proposal's own keys, and the marker of an absent key. Integers are
    narrower there (18 digits at most), which only sends more texts to the other paths."""
    names = tuple(name for name in _FIELDS if name in PLAIN_KEYS)
    return (
        names,
        tuple(map(_native_kind, names)),
        tuple(_ENUMS.get(name) for name in names),
        ("type",),
        HEADER_KEYS,
        _MISSING,
    )


def _native_kind(name: str) -> int:
    if name in _STRINGS:
        return _K_STR
    if name in _OPTIONAL_STRINGS:
        return _K_OPT_STR
    if name in _MAPS:
        return _K_MAP
    if name in _STRING_LISTS:
        return _K_STR_LIST
    if name in _ENUMS:
        return _K_ENUM
    if name in _BOOLS:
        return _K_BOOL
    low, _high, nullable = _INTEGERS[name]
    assert low == 0, "the decoder's integers are never negative"
    return _K_OPT_U63 if nullable else _K_U32


@cache
def _msgdecode() -> ModuleType | None:
    """The msgspec decoding module, or None without msgspec (looked for once: Python does not
    remember an import that failed, and looking again costs most of a small verify)."""
    try:
        from . import msgdecode
    except ImportError:
        return None
    return msgdecode


def _msgspec_decode(text: str | bytes, many: bool) -> Any:
    """msgspec's structs for `text` (`many`: an array of proposals), or None (see
    `decode_plain`)."""
    msgdecode = _msgdecode()
    if msgdecode is None:
        return None
    # Escapes are rare: looking for a backslash (one character: memchr) first saves looking
    # for `\u` (two: a slower search, ~1 ms per megabyte) in most texts.
    if b"\\" in text if isinstance(text, bytes) else "\\" in text:
        if isinstance(text, bytes) and b"\\u" in text:
            try:
                text = text.decode("utf-8")  # to look for lone surrogates (escapes only)
            except UnicodeDecodeError:
                return None
        if isinstance(text, str) and "\\u" in text and lone_surrogate(text) is not None:
            return None  # parse_json reports lone surrogates: msgspec's own errors differ
    try:
        return msgdecode.decode_many(text) if many else msgdecode.decode(text)
    except msgdecode.DECODE_ERRORS:
        return None


def _plain_of(doc: Any, depth: int) -> tuple[PlainColumns | None, int]:
    """The columns of a proposal msgspec decoded `depth` levels inside the document, or None
    when `parse_json` would look at its values more closely; and how many keys the proposal's
    document has, for `keys_all_distinct` (msgspec, as `json`, keeps one value of a repeated
    key), or 0 when the columns are None."""
    msgdecode = _msgdecode()
    assert msgdecode is not None, "only msgspec's structs come here"
    rest = msgdecode.rest_of(doc)
    keys = keys_within(rest, NESTING_LIMIT - 1 - depth)
    if keys is None:
        return None, 0
    keys += 1  # "actions"
    rows = doc.actions
    if not rows:
        return _finish(rest, 0, {}, msgdecode.UNSET, members=True), keys
    # Every field of every row, a column per field: one C call per row (`astuple`) and one
    # transposition, about half what an attribute getter per field and row costs.
    columns = dict(
        zip(msgdecode.FIELDS, zip(*map(msgdecode.astuple, rows), strict=True), strict=True)
    )
    unset = msgdecode.UNSET
    keys += sum(len(rows) - column.count(unset) for column in columns.values())
    nested = type(doc) is not msgdecode.PlainProposal  # maps holding lists or maps: walked
    for name in ("parameters", "expected_effects", "metadata"):
        given = list(filter(None, columns[name]))  # UNSET is false, as an empty map is
        inner = _map_keys(given, _MAP_LEVELS - depth) if nested else sum(map(len, given))
        if inner is None:
            return None, 0
        keys += inner
    return _finish(rest, len(rows), columns, unset, members=True), keys


def _map_keys(maps: list[dict[str, Any]], levels: int) -> int | None:
    """How many keys these action maps hold, theirs and their values' (`keys_within`), or None
    when `parse_json`'s walk would not pass them: nested too deeply, or holding an integer
    beyond 64 bits (msgspec has checked the integers the maps hold themselves,
    `msgdecode._VALUE`, and refuses infinities; lists and maps are walked)."""
    kinds = set(map(type, chain.from_iterable(map(dict.values, maps))))
    if dict not in kinds and list not in kinds:
        return sum(map(len, maps))
    keys = 0
    for mapping in maps:
        inner = keys_within(mapping, levels)
        if inner is None:
            return None
        keys += inner
    return keys
