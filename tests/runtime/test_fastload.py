"""The column-at-a-time loader (`ir.fastload`) against pydantic: on every generated proposal it
either declines (and pydantic decides) or gives exactly what pydantic's models give; `verify`
from JSON text answers and fails exactly as on the loaded model."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from carlang_runtime.columns import Columns
from carlang_runtime.errors import IRLoadError
from carlang_runtime.ir import Action, ActionProposal, Capability, fastload, load_proposal
from carlang_runtime.ir.fastload import (
    PLAIN_KEYS,
    PlainColumns,
    decode_plain,
    decode_plain_array,
    plain_columns,
    plain_proposal,
)
from carlang_runtime.verify import verify
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

#: The `fast_decoder` fixture patches modules, not per-example state: hypothesis's examples may
#: share it.
_FIXTURE = HealthCheck.function_scoped_fixture

_scalars = (
    st.none() | st.booleans() | st.integers(-5, 2**65) | st.floats(-1e3, 1e3) | st.text(max_size=3)
)
_anything = (
    _scalars
    | st.lists(_scalars, max_size=2)
    | st.dictionaries(st.text(max_size=2), _scalars, max_size=2)
)
_keys = st.sampled_from(["k0", "k1", "k2"])
#: A map's value: mostly a scalar, sometimes a list or map (msgspec's nested decoder).
_map_values = (
    _scalars
    | _scalars
    | st.lists(_scalars, max_size=2)
    | st.dictionaries(st.text(max_size=2), _scalars, max_size=2)
)

#: Per field: mostly valid values, sometimes anything at all (usually invalid).
_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "type": st.sampled_from(["tool_call", "state_write", "state_read", "assertion"]),
    "tool": st.none() | st.sampled_from(["step", "other"]),
    "parameters": st.dictionaries(
        st.sampled_from(["key", "value", "i"]), _keys | _map_values, max_size=2
    ),
    "expected_effects": st.dictionaries(_keys, _scalars, max_size=2),
    "state_dependencies": st.lists(_keys, max_size=2),
    "read_set": st.lists(_keys, max_size=2),
    "write_set": st.lists(_keys, max_size=2),
    "depends_on": st.lists(st.sampled_from(["a0", "a1", "a2", "zz"]), max_size=2),
    "invocation_mode": st.sampled_from(["one_shot", "streaming", "long_running"]),
    "reversibility": st.sampled_from(["reversible", "compensable", "irreversible"]),
    "failure_behavior": st.sampled_from(["abort", "retry", "skip"]),
    "idempotent": st.booleans(),
    "max_retries": st.integers(0, 2**32 - 1),
    "timeout_ms": st.none() | st.integers(0, 2**64 - 1),
    "metadata": st.dictionaries(st.text(max_size=2), _map_values, max_size=2),
    # not plain: these make the loader decline
    "preconditions": st.just([{"key": "k0", "operator": "exists"}]),
    "loc": st.just({"file": "f", "line": 1, "column": 2}),
    "unknown": _scalars,
}


@st.composite
def _action(draw: st.DrawFn, index: int) -> dict[str, Any]:
    action: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        action["id"] = f"a{index}"
    for name in draw(st.lists(st.sampled_from(sorted(_FIELDS)), max_size=6, unique=True)):
        broken = draw(st.integers(0, 14)) == 0
        action[name] = draw(_anything if broken else _FIELDS[name])
    if draw(st.integers(0, 19)):
        action["type"] = draw(_FIELDS["type"])
    return action


@st.composite
def _proposals(draw: st.DrawFn, id_optional: bool = False) -> dict[str, Any]:
    """A proposal (`id_optional`: sometimes without an id, so a random one; else "p")."""
    count = draw(st.integers(0, 4))
    doc: dict[str, Any] = {"actions": [draw(_action(i)) for i in range(count)]}
    if not id_optional or draw(st.integers(0, 9)):  # a string header is built directly
        doc["id"] = "p"
    if draw(st.integers(0, 4)) == 0:
        doc["source"] = draw(st.text(max_size=3) | _anything)
    return doc


def _without_random_ids(dumped: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dumped.items() if k != "id" or "id" in given}


def _columns(cols: Columns, given: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            cols.ids[i] if "id" in given[i] else None,
            cols.types[i],
            cols.tools[i],
            cols.parameters[i],
            cols.effects[i],
            cols.dependencies[i],
            cols.depends_on[i],
            list(cols.preconditions[i]),
            cols.compensations[i],
            cols.reversibility[i],
            cols.locs[i],
        )
        for i in range(len(cols))
    ]


@settings(max_examples=300, deadline=None)
@given(_proposals(id_optional=True))
def test_plain_columns_are_pydantics_or_nothing(doc: dict[str, Any]) -> None:
    data = json.loads(json.dumps(doc))
    plain = plain_columns(data)
    try:
        model = ActionProposal.model_validate(json.loads(json.dumps(doc)))
    except ValidationError:
        assert plain is None
        return
    plain_keys = all(isinstance(a, dict) and a.keys() <= PLAIN_KEYS for a in doc["actions"])
    assert (plain is not None) == plain_keys  # declines only what it does not check
    if plain is None:
        return
    given_actions = doc["actions"]
    assert _columns(Columns.of_plain(plain), given_actions) == _columns(
        Columns.of(model.actions), given_actions
    )
    _assert_actions_are(plain, model, given_actions)


def _assert_actions_are(
    plain: PlainColumns, model: ActionProposal, given_actions: list[Any]
) -> None:
    """The lazily built actions and the proposal's own fields are what pydantic made."""
    lazy = plain.proposal.actions
    assert len(lazy) == len(model.actions)
    for built, validated, given_action in zip(lazy, model.actions, given_actions, strict=True):
        assert type(built) is type(validated)
        assert _without_random_ids(built.model_dump(), given_action) == _without_random_ids(
            validated.model_dump(), given_action
        )
        assert built.model_fields_set == validated.model_fields_set
        assert built.model_dump_json(exclude={"id"}) == validated.model_dump_json(exclude={"id"})
    own = {"actions"} if "id" in plain.proposal.model_fields_set else {"actions", "id"}
    assert plain.proposal.model_dump(exclude=own) == model.model_dump(exclude=own)
    assert plain.proposal.model_fields_set == model.model_fields_set
    assert list(vars(plain.proposal)) == list(vars(model))


@settings(max_examples=300, deadline=None, suppress_health_check=[_FIXTURE])
@given(doc=_proposals(), indent=st.integers(0, 2))
def test_fast_decoding_is_the_json_path_or_nothing(
    fast_decoder: str, doc: dict[str, Any], indent: int
) -> None:
    """`decode_plain` (C, or msgspec) declines or gives exactly what `plain_columns` gives."""
    text = json.dumps(doc, indent=indent or None)
    fast = decode_plain(text)
    slow = plain_columns(json.loads(text))
    if fast is None:
        # it may decline more (numbers beyond 64 bits); never a proposal the json path loads
        # with plain actions whose maps hold only small numbers
        return
    assert slow is not None
    given_actions = doc["actions"]
    assert _columns(Columns.of_plain(fast), given_actions) == _columns(
        Columns.of_plain(slow), given_actions
    )
    assert decode_plain(text.encode()) is not None
    _assert_actions_are(fast, load_proposal(text), given_actions)


@pytest.mark.parametrize(
    "text",
    [
        '{"actions": [{"type": "tool_call", "parameters": {"n": 18446744073709551616}}]}',
        '{"actions": [{"type": "tool_call", "parameters": {"n": [-18446744073709551616]}}]}',
        '{"actions": [{"type": "tool_call", "parameters": {"n": 1e999}}]}',
        '{"actions": [{"type": "tool_call", "parameters": {"s": "\\ud800"}}]}',
        '{"actions": [{"type": "tool_call", "timeout_ms": 18446744073709551616}]}',
        '{"actions": [{"type": "tool_call"}], "extra": 1}',
        '{"actions": [{"type": "tool_call", "loc": null}]}',
        '{"proposal": {"actions": []}}',
        '{"actions": [{"type": "tool_call", "metadata": {"n": %s}}]}' % ("[" * 125 + "]" * 125),
        '{"actions": [], "context": {"n": %s}}' % ("[" * 127 + "]" * 127),
        '{"actions": [{"type": "tool_call"}]} x',
    ],
)
def test_fast_decoding_declines_what_parse_json_looks_at(fast_decoder: str, text: str) -> None:
    assert decode_plain(text) is None
    assert decode_plain(text.encode()) is None


def test_msgspec_decoding_takes_the_deepest_value_the_json_path_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("msgspec", reason="msgspec (the `fast` extra) is not installed")
    deep = '{"actions": [{"type": "tool_call", "metadata": {"n": %s}}]}' % ("[" * 124 + "]" * 124)
    assert plain_columns(json.loads(deep)) is not None
    assert decode_plain(deep) is not None  # (the C decoder declines it: msgspec takes it)
    monkeypatch.setattr(fastload, "_msgspec_decode", lambda _text, many: None)
    assert decode_plain(deep) is None


#: A capability whose key check reads every action model (built lazily on the column path).
_CAPABILITY = Capability(allowed_tools=["step"], allowed_state_keys=["k0", "k1"])


def _verify_outcome(source: object) -> object:
    try:
        result = verify(source, tools=["step"], capability=_CAPABILITY)  # type: ignore[arg-type]
    except IRLoadError as exc:
        return [(p.path, p.message, p.position) for p in exc.problems]
    return result.model_dump()


@settings(max_examples=150, deadline=None)
@given(_proposals(), st.booleans())
def test_verify_from_text_is_verify_of_the_model(doc: dict[str, Any], wrapped: bool) -> None:
    for action in doc["actions"]:
        if isinstance(action, dict):
            action.setdefault("id", "same")  # random ids would differ between the two loads
    text = json.dumps({"proposal": doc} if wrapped else doc, indent=1)
    try:
        model = load_proposal(text)
    except IRLoadError as exc:
        with pytest.raises(IRLoadError) as raised:
            verify(text, tools=["step"])
        assert raised.value.problems == exc.problems  # same messages and positions
        return
    assert _verify_outcome(text) == _verify_outcome(model)


def test_a_plain_proposal_takes_the_column_path() -> None:
    doc = {"actions": [{"id": "a", "type": "tool_call", "tool": "step"}, {"type": "state_read"}]}
    plain = plain_columns(doc)
    assert plain is not None
    assert plain.values["id"][0] == "a" and len(plain.values["id"][1]) == 12  # CAR's short id
    assert plain.proposal.actions[1].id == plain.values["id"][1]


@pytest.mark.parametrize(
    "action",
    [
        {"type": "tool_call", "max_retries": -1},
        {"type": "tool_call", "max_retries": True},
        {"type": "tool_call", "timeout_ms": 2**64},
        {"type": "tool_call", "parameters": None},
        {"type": "tool_call", "state_dependencies": ["k", 1]},
        {"type": "tool_call", "reversibility": "undoable"},
        {"type": "tool_call", "idempotent": 1},
        {"type": "tool_call", "id": 7},
        {"tool": "step"},
    ],
)
def test_invalid_plain_actions_fail_as_before(action: dict[str, Any]) -> None:
    text = json.dumps({"actions": [{"id": "ok", "type": "tool_call"}, action]}, indent=2)
    assert plain_columns(json.loads(text)) is None
    with pytest.raises(IRLoadError) as from_load:
        load_proposal(text)
    with pytest.raises(IRLoadError) as from_verify:
        verify(text)
    assert from_verify.value.problems == from_load.value.problems
    assert all(p.position is not None for p in from_verify.value.problems)


@pytest.mark.slow  # (the default run stays under three minutes; CI runs it)
@settings(max_examples=300, deadline=None, suppress_health_check=[_FIXTURE])
@given(doc=_proposals(), data=st.data())
def test_fast_decoding_never_accepts_what_json_refuses(
    fast_decoder: str, doc: dict[str, Any], data: Any
) -> None:
    """A document one character away from a valid one: a fast decoder reads it only if it is
    JSON that the json path reads the same way."""
    text = json.dumps(doc)
    at = data.draw(st.integers(0, len(text)))
    char = data.draw(st.sampled_from(["\t", "\x01", "\x7f", ",", "}", "]", '"', "\\", "1", " "]))
    cut = data.draw(st.integers(0, 1))
    mutated = text[:at] + char + text[at + cut :]
    fast = decode_plain(mutated)
    if fast is None:
        return
    decoded = json.loads(mutated)  # raises if the text is not JSON
    given_actions = list(decoded["actions"])
    slow = plain_columns(decoded)
    assert slow is not None
    assert _columns(Columns.of_plain(fast), given_actions) == _columns(
        Columns.of_plain(slow), given_actions
    )


def test_msgspec_rows_have_the_plain_keys() -> None:
    msgdecode = pytest.importorskip("carlang_runtime.ir.msgdecode", reason="msgspec not installed")
    assert set(msgdecode.FIELDS) == PLAIN_KEYS
    assert msgdecode._ProposalFields.__struct_fields__ == fastload.HEADER_KEYS
    # in Action's order, the order actions are written in: msgspec finds keys in that order
    # fastest (a struct field declared out of place costs every action a few comparisons)
    assert list(msgdecode.FIELDS) == [name for name in Action.model_fields if name in PLAIN_KEYS]


@pytest.mark.parametrize("field", ["context", "source", "parameters", "metadata"])
def test_values_nested_beyond_the_stack_are_too_deep_not_a_traceback(field: str) -> None:
    deep = "[" * 1000 + "]" * 1000
    if field in ("context", "source"):
        text = '{"actions": [], "' + field + '": ' + deep + "}"
    else:
        text = '{"actions": [{"type": "tool_call", "' + field + '": {"a": ' + deep + "}}]}"
    for source in (text, text.encode()):
        with pytest.raises(IRLoadError, match="nested too deeply"):
            verify(source)


def test_without_msgspec_verify_takes_the_json_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import carlang_runtime.ir
    from carlang_runtime import speedups
    from carlang_runtime.ir import fastload

    monkeypatch.setattr(speedups, "native", lambda: None)

    text = json.dumps({"actions": [{"id": "a", "type": "tool_call", "tool": "step"}]})
    expected = verify(text, tools=["step"]).model_dump()
    monkeypatch.setitem(sys.modules, "msgspec", None)  # import msgspec now fails
    monkeypatch.delitem(sys.modules, "carlang_runtime.ir.msgdecode", raising=False)
    monkeypatch.delattr(carlang_runtime.ir, "msgdecode", raising=False)
    fastload._msgdecode.cache_clear()
    try:
        assert fastload.decode_plain(text) is None
        assert verify(text, tools=["step"]).model_dump() == expected
        assert fastload._msgdecode.cache_info().misses == 1  # looked for once, not per call
    finally:
        fastload._msgdecode.cache_clear()


@pytest.mark.parametrize("value", [2**63, 2**64 - 1, -(2**63) - 1, -(2**64) + 1])
def test_a_map_integer_past_msgspecs_bounds_is_kept_by_the_json_path(value: int) -> None:
    # msgspec's integer bounds are signed 64 bits: a larger integer that JSON text may still
    # hold (up to 64 bits unsigned, as CAR reads it) sends the text to the json path.
    pytest.importorskip("msgspec", reason="msgspec (the `fast` extra) is not installed")
    text = json.dumps(
        {"actions": [{"type": "tool_call", "tool": "step", "parameters": {"n": value}}]}
    )
    assert decode_plain(text) is None
    plain = plain_proposal(text)
    assert plain is not None and plain.values["parameters"] == [{"n": value}]
    assert verify(text, tools=["step"]).valid


def test_a_timeout_past_63_bits_is_kept_by_the_json_path() -> None:
    pytest.importorskip("msgspec", reason="msgspec (the `fast` extra) is not installed")
    action = {"type": "tool_call", "tool": "step", "timeout_ms": 2**64 - 1}
    text = json.dumps({"actions": [action]})
    assert decode_plain(text) is None
    plain = plain_proposal(text)
    assert plain is not None and plain.proposal.actions[0].timeout_ms == 2**64 - 1


def test_a_proposal_that_is_not_plain_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # preconditions make the columns decline: pydantic then validates what was parsed already
    from carlang_runtime.ir import fastload, load

    calls: list[object] = []
    original = fastload.parse_json

    def counting(text: str | bytes) -> object:
        calls.append(text)
        return original(text)

    monkeypatch.setattr(fastload, "parse_json", counting)
    monkeypatch.setattr(load, "parse_json", counting)
    action = {"id": "a", "type": "tool_call", "tool": "step"}
    text = json.dumps(
        {"actions": [{**action, "preconditions": [{"key": "k", "operator": "exists"}]}]}
    )
    issues = verify(text, tools=["step"]).issues
    assert [i.message for i in issues] == ["precondition will fail: key 'k' does not exist"]
    assert len(calls) == 1
    bad = text.replace('"tool": "step"', '"tool": "step", "timeout_ms": "soon"')
    with pytest.raises(IRLoadError) as raised:
        verify(bad, tools=["step"])
    assert len(calls) == 2
    assert raised.value.problems[0].position is not None  # still placed in the text


def test_false_values_are_kept_and_only_missing_keys_take_the_default() -> None:
    """`_filled` looks for the missing-key markers only among false values: a false value is
    still a value, and a column of true values is returned as it is."""
    from carlang_runtime.ir.fastload import _MISSING, _filled

    assert _filled(["", 0, _MISSING, {}, False, None], "d") == ["", 0, "d", {}, False, None]
    assert _filled([_MISSING, [], _MISSING], list) == [[], [], []]
    assert _filled(["a", "b"], "d") == ["a", "b"]


def _with_a_repeated_key(value: Any, data: Any) -> str | None:
    """JSON text of `value` with one member of one of its objects written twice (the second
    time with another value); None when it has no object with a member."""
    objects: list[dict[str, Any]] = []
    _objects_in(value, objects)
    objects = [o for o in objects if o]
    if not objects:
        return None
    chosen = data.draw(st.sampled_from(objects))
    key = data.draw(st.sampled_from(sorted(chosen)))

    def render(node: Any) -> str:
        if isinstance(node, dict):
            members = [f"{json.dumps(k)}: {render(v)}" for k, v in node.items()]
            if node is chosen:
                members.append(f"{json.dumps(key)}: {json.dumps(data.draw(_scalars))}")
            return "{" + ", ".join(members) + "}"
        if isinstance(node, list):
            return "[" + ", ".join(map(render, node)) + "]"
        return json.dumps(node)

    return render(value)


def _objects_in(value: Any, into: list[dict[str, Any]]) -> None:
    if isinstance(value, dict):
        into.append(value)
        for child in value.values():
            _objects_in(child, into)
    elif isinstance(value, list):
        for child in value:
            _objects_in(child, into)


@settings(max_examples=100, deadline=None, suppress_health_check=[_FIXTURE])
@given(doc=_proposals(), data=st.data())
def test_a_key_repeated_anywhere_is_refused_on_every_path(
    fast_decoder: str, doc: dict[str, Any], data: Any
) -> None:
    """CAR refuses a proposal field given twice; carlang refuses any repeated key, with or
    without msgspec, where it repeats."""
    text = _with_a_repeated_key(doc, data)
    if text is None:
        return
    assert decode_plain(text) is None  # (None without msgspec too)
    assert decode_plain_array(f"[{text}]") is None
    with pytest.raises(IRLoadError) as from_load:
        load_proposal(text)
    with pytest.raises(IRLoadError) as from_verify:
        verify(text, tools=["step"])
    assert from_verify.value.problems == from_load.value.problems
    [problem] = from_load.value.problems
    assert "duplicate key" in problem.message and problem.position is not None


def test_a_repeated_action_field_is_refused_where_it_repeats() -> None:
    text = '{"actions": [{"id": "a", "type": "tool_call", "tool": "step", "tool": "evil"}]}'
    with pytest.raises(IRLoadError) as raised:
        verify(text, tools=["step", "evil"])
    [problem] = raised.value.problems
    assert problem.message.startswith('duplicate key "tool" in an object')
    assert (problem.position.line, problem.position.column) == (1, text.index('"tool": "evil"') + 1)


@pytest.mark.parametrize(
    "text",
    [
        # strings holding colons after a quote or a space: the exact check (the value encoded
        # again) decides, and a repeated key is still refused
        '{"actions": [{"type": "tool_call", "parameters": {"b": "{\\"a\\":1}", "b": 2}}]}',
        '{"actions": [{"type": "tool_call", "id": "x", "id": "Attention : lire"}]}',
        '{"actions": [{"type": "tool_call", "metadata": {"n": "a :", "n": "b"}}], "id": "p"}',
        '{"id": " : ", "actions": [], "id": "q"}',
    ],
)
def test_a_repeated_key_among_strings_holding_colons_is_refused(
    fast_decoder: str, text: str
) -> None:
    assert decode_plain(text) is None
    assert decode_plain_array(f"[{text}]") is None
    with pytest.raises(IRLoadError, match="duplicate key"):
        load_proposal(text)


@pytest.mark.parametrize("note", ['{\\"a\\":1}', "Attention : lire", '\\" :'])
def test_strings_holding_colons_keep_the_column_path(fast_decoder: str, note: str) -> None:
    """No repeated key: the value encoded again has the text's colons (msgspec), or the C
    decoder sees each key, and the proposal takes the column path (a slow re-parse cost up to
    11 times as much)."""
    text = '{"actions": [{"type": "tool_call", "parameters": {"note": "' + note + '"}}]}'
    assert decode_plain(text) is not None
    assert decode_plain_array(f"[{text}, {text}]") is not None


def test_msgspec_rows_encode_only_the_keys_the_text_had() -> None:
    """`keys_all_distinct`'s exact check counts the colons of the rows encoded again: a field
    with a default other than UNSET would be written though the text lacked it, and could
    hide a repeated key. Every field but the required ones defaults to UNSET."""
    msgdecode = pytest.importorskip("carlang_runtime.ir.msgdecode", reason="msgspec not installed")
    import msgspec

    for struct in (msgdecode.PlainAction, msgdecode.PlainProposal, msgdecode.NestedProposal):
        for field in msgspec.structs.fields(struct):
            if field.name in ("type", "actions"):
                continue
            assert field.default is msgdecode.UNSET, (struct.__name__, field.name)
