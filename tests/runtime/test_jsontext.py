"""`parse_json`'s fast path (the C decoder, checks on the decoded value) against its exact path
(every check on the text): same value or same error, position included."""

from __future__ import annotations

import json
import re

import pytest
from carlang_runtime import jsontext
from carlang_runtime.jsontext import JsonTextError, parse_json
from hypothesis import given, settings
from hypothesis import strategies as st


def _exact(text: str) -> tuple[str, object]:
    fast = jsontext._parse_plain
    jsontext._parse_plain = lambda _text: jsontext._NOT_PLAIN
    try:
        return _outcome(text)
    finally:
        jsontext._parse_plain = fast


def _outcome(text: str) -> tuple[str, object]:
    try:
        return "ok", parse_json(text)
    except JsonTextError as exc:
        return "error", str(exc)


def _same(text: str) -> None:
    got, want = _outcome(text), _exact(text)
    assert got == want
    if got[0] == "ok":  # 1 == 1.0 == True: compare the kinds of numbers too
        assert json.dumps(got[1]) == json.dumps(want[1])


@pytest.mark.parametrize(
    "text",
    [
        "[" * 128 + "]" * 128,
        "[" * 129 + "]" * 129,
        '{"a":' * 128 + "1" + "}" * 128,
        '{"a":' * 129 + "1" + "}" * 129,
        "[" * 3000 + "]" * 3000,
        "[1e400]",
        "-1e400",
        "[1" + "0" * 400 + "]",
        "[" + "9" * 309 + "]",  # 309 digits, beyond a double: out of range, not a traceback
        "[-" + "9" * 309 + "]",
        "[" + "9" * 308 + "]",
        "1" + "0" * 5000,
        "[18446744073709551615, -18446744073709551615, 18446744073709551616]",
        "[NaN]",
        "[-Infinity]",
        '"\\ud800"',
        '"\\ud800\\udc00"',
        '"\\\\ud800"',
        "[1,]",
        '{"a":1}x',
        "3",
        "\ufeff{}",
        "[1.5e10, -0.0, 1E+2, 1e-400]",
        '{"a": 1, "a": 2}',
        '{"a": "x:y", "a": 2}',
        '{"a" :1, "b"\n:[{"a": 1}], "a"\t:2}',
        '[{"u": "http://x"}, {"u": "a", "v": {"u": 1, "u": 2}}]',
        '{"a": {"b": 1}, "b": {"a": 1}}',
        "",
    ],
)
def test_fast_path_decides_as_the_exact_path(text: str) -> None:
    _same(text)


def test_a_number_out_of_range_is_found_where_it_stands_not_in_a_string() -> None:
    big = "2" + "0" * 308
    text = '{"note": "' + big + '", "n": ' + big + "}"
    with pytest.raises(JsonTextError) as raised:
        parse_json(text)
    assert raised.value.position.column == text.index(": " + big) + 3


@pytest.mark.parametrize(
    ("text", "where"),
    [('{"a": "NaN", "b": NaN}', "1:19"), ("[1,\n -Infinity]", "2:2"), ('{"x": Infinity}', "1:7")],
)
def test_a_constant_json_lacks_is_found_where_it_stands(text: str, where: str) -> None:
    with pytest.raises(
        JsonTextError, match=f"^{where}: malformed JSON: the constant .* is not JSON"
    ):
        parse_json(text)


def test_an_integer_beyond_a_double_is_out_of_range() -> None:
    with pytest.raises(JsonTextError, match="1:2: malformed JSON: number out of range"):
        parse_json("[" + "9" * 309 + "]")
    assert parse_json("[" + "9" * 308 + "]") == [int("9" * 308)]


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(_json, st.integers(min_value=0, max_value=140))
def test_fast_path_agrees_on_generated_documents(value: object, depth: int) -> None:
    text = json.dumps(value, allow_nan=True)
    _same(text)
    _same("[" * depth + text + "]" * depth)
    _same(text[: len(text) // 2])  # usually malformed


@given(st.text(st.sampled_from(list("ab\"'#\\\n{}()[] ")), max_size=30))
def test_source_brackets_in_one_pass_are_those_outside_strings_and_comments(text: str) -> None:
    """`_source_depth`'s one regex pass keeps what dropping strings and comments, then every
    character but a bracket, keeps."""
    two_passes = re.sub(r"[^\[\]{}()]+", "", jsontext._SOURCE_SKIPPED.sub("", text))
    assert jsontext._SOURCE_NOT_BRACKET.sub("", text) == two_passes


@pytest.mark.parametrize(
    ("text", "where", "key"),
    [
        ('{"a": 1, "a": 2}', "1:10", "a"),
        ('{"x": {"u": "https://a", "u": "b"}}', "1:26", "u"),
        ('[{"a": 1}, {"a": 1}, {"k": "::", "k"\n : 0}]', "1:34", "k"),
        ('{"q\\"": 1, "q\\"": 2}', "1:12", 'q"'),
    ],
)
def test_a_key_repeated_in_one_object_is_refused_where_it_repeats(
    text: str, where: str, key: str
) -> None:
    # CAR refuses a proposal field given twice; which value an agent meant is ambiguous, and
    # readers disagree on it (json and msgspec keep the last, others the first)
    for path in (_outcome, _exact):
        kind, message = path(text)
        assert kind == "error"
        assert message.startswith(f"{where}: duplicate key {json.dumps(key)} in an object")


def test_objects_may_share_keys_with_each_other() -> None:
    text = '{"a": {"a": 1, "b": 2}, "b": [{"a": 1}, {"a": 2}], "c": "a: b"}'
    assert parse_json(text) == json.loads(text)


_key = st.sampled_from(["a", "b", "a:b", ":", "u\\"])
_spacing = st.sampled_from(["", " ", "\n", "\t ", "\r\n"])


@st.composite
def _object_text(draw: st.DrawFn, depth: int = 0) -> tuple[str, bool]:
    """JSON text of an object whose keys may repeat (with colons in its strings and white
    space around them), and whether some object in it repeats a key."""
    members, keys, repeats = [], [], False
    for _ in range(draw(st.integers(0, 4))):
        key = draw(_key)
        if depth < 2 and draw(st.booleans()):
            value, inner = draw(_object_text(depth + 1))
            repeats |= inner
        else:
            value = json.dumps(draw(st.sampled_from(["x", "a:b", ' "k" :', 1, None])))
        keys.append(key)
        members.append(f"{json.dumps(key)}{draw(_spacing)}:{draw(_spacing)}{value}")
    return "{" + ", ".join(members) + "}", repeats or len(set(keys)) < len(keys)


@settings(max_examples=60, deadline=None)
@given(_object_text())
def test_a_repeated_key_is_refused_exactly_when_an_object_repeats_one(
    case: tuple[str, bool],
) -> None:
    text, repeats = case
    _same(text)
    kind, message = _outcome(text)
    assert (kind == "error") == repeats, message
    if repeats:
        assert "duplicate key" in str(message)


@pytest.mark.parametrize(
    "text",
    ["tool fetch(url: string)\n", "# my agent\ntool t()\n", "  \n\tpolicy p: deny t\n"],
)
def test_carlang_source_where_json_was_expected_is_said_to_be_so(text: str) -> None:
    """`cat p.car | carlang rank -` (or `verify -`) said only 'malformed JSON: expecting
    value' (a trial)."""
    with pytest.raises(JsonTextError) as caught:
        parse_json(text)
    assert caught.value.message.endswith(
        "malformed JSON: expecting value (this is carlang source, not JSON)"
    )


@pytest.mark.parametrize(
    "text",
    ["tooling", '{"tool": 1', "[1, tool]", "toolx()", "state:\n  x: 1", "# TOML\n[x]", "plan: b"],
)
def test_other_text_that_is_not_json_gets_no_such_hint(text: str) -> None:
    with pytest.raises(JsonTextError) as caught:
        parse_json(text)
    assert "carlang source" not in caught.value.message
