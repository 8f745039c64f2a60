"""The C speedups (`carlang_runtime._speedups`) against the Python they stand in for.

The C decoder accepts a subset of what the msgspec and json paths accept and must read it
exactly as `json.loads` does; everything else it declines (None), never raising for bad input.
The differential tests over whole proposals are in test_fastload.py (the `fast_decoder`
fixture) and test_dag_paths.py (the `speedups` fixture), and those of the parser's driver in
tests/test_parse_differential.py; these are the decoder's and the driver's own.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from carlang_runtime import speedups
from carlang_runtime.dag import _NO_DEPS
from carlang_runtime.ir import fastload
from carlang_runtime.jsontext import lone_surrogate
from carlang_runtime.verify.state import _merged_state
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.generate import generate_program
from benchmarks.verify_bench import chain, fan_out, independent_chains
from tests.conftest import ROOT

native = speedups.native()
pytestmark = pytest.mark.skipif(
    native is None, reason="the C speedups (carlang_runtime._speedups) are not built here"
)


def _decode(text: str | bytes) -> Any:
    return fastload._native_decode(text, False)


#: What `_value_of` gives when the decoder declines.
DECLINED = object()


def _value_of(text: str) -> Any:
    """What the C decoder makes of a JSON value placed in an action's parameters, or
    `DECLINED`."""
    decoded = _decode('{"actions": [{"type": "tool_call", "parameters": {"v": ' + text + "}}]}")
    return DECLINED if decoded is None else decoded[2]["parameters"][0]["v"]


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**18) + 1, 10**18 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(_json_values, st.booleans(), st.sampled_from([None, 0, 2]))
def test_values_read_as_json_loads_reads_them(value: Any, ascii_only: bool, indent: Any) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    expected = json.loads(text)
    found = _value_of(text)
    if found is DECLINED:  # only for a lone surrogate (hypothesis's text may hold one)
        assert lone_surrogate(text) is not None or any(0xD800 <= ord(c) <= 0xDFFF for c in text)
        return
    assert json.dumps(found, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert _types(found) == _types(expected)


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _types(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_types(item) for item in value]
    if isinstance(value, float) and value == 0:
        return ("float", math.copysign(1, value))  # -0.0 stays -0.0
    return type(value).__name__


@pytest.mark.parametrize(
    "text",
    [
        '"\\u00e9\\ud83d\\ude00\\n\\t\\"\\\\\\/\\b\\f\\r"',
        '"caf\u00e9 \U0001f600"',
        "-0",
        "-0.0",
        "1e-400",
        "123456789012345678",
        "-123456789012345678",
        "0.1",
        "2.5E+3",
        "[]",
        "{}",
        '{"": [true, false, null]}',
    ],
)
def test_edge_values_read_as_json_loads_reads_them(text: str) -> None:
    found = _value_of(text)
    assert found == json.loads(text) and _types(found) == _types(json.loads(text))


@pytest.mark.parametrize(
    "text",
    [
        "1234567890123456789",  # beyond 18 digits: the other paths judge its range
        "1e999",  # infinite
        "NaN",
        "Infinity",
        "01",
        "1.",
        ".5",
        "+1",
        "-",
        '"\\ud800"',  # a lone high surrogate
        '"\\udc00"',  # a lone low surrogate
        '"\\ud800\\u0041"',
        '"\\x41"',
        '"\\u12"',
        '"tab\there"',  # a raw control character
        '{"a": 1, "a": 2}',  # a repeated key
        "[1,]",
        "[1 2]",
        '{"a" 1}',
        "tru",
        "[" * 101 + "]" * 101,  # deeper than the decoder goes
    ],
)
def test_declines_what_it_does_not_read_exactly(text: str) -> None:
    assert _value_of(text) is DECLINED


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "[]",
        '{"actions": []} x',
        '{"actions": [], "actions": []}',
        '{"actions": [{"type": "tool_call"}], "extra": 1}',
        '{"actions": [{"type": "tool_call", "loc": null}]}',
        '{"actions": [{"type": "toolcall"}]}',
        '{"actions": [{"type": "tool_\\u0063all"}]}',  # an escaped enum value: declined
        '{"actions": [{"\\u0074ype": "tool_call"}]}',  # an escaped key: declined
        '{"actions": [{"tool": "t"}]}',  # no type
        '{"actions": [{"type": "tool_call", "type": "tool_call"}]}',
        '{"actions": [{"type": "tool_call", "tool": 1}]}',
        '{"actions": [{"type": "tool_call", "id": null}]}',
        '{"actions": [{"type": "tool_call", "state_dependencies": ["a", 1]}]}',
        '{"actions": [{"type": "tool_call", "max_retries": 4294967296}]}',
        '{"actions": [{"type": "tool_call", "max_retries": -1}]}',
        '{"actions": [{"type": "tool_call", "max_retries": 1.0}]}',
        '{"actions": [{"type": "tool_call", "idempotent": 1}]}',
        '{"actions": [{"type": "tool_call", "timeout_ms": "5"}]}',
        '{"actions": [{"type": "tool_call", "parameters": []}]}',
        '{"proposal": {"actions": []}}',
        '\ufeff{"actions": []}',
        '{"actions": ["a"]}',
    ],
)
def test_declines_what_is_not_a_proposal_of_plain_actions(text: str) -> None:
    assert _decode(text) is None
    assert _decode(text.encode()) is None


def test_bytes_that_are_not_utf8_are_declined() -> None:
    assert _decode(b'{"actions": [{"type": "tool_call", "tool": "\xff"}]}') is None


def test_a_str_holding_a_lone_surrogate_is_declined() -> None:
    assert _decode('{"actions": [{"type": "tool_call", "tool": "\ud800"}]}') is None


@pytest.mark.parametrize(
    "doc", [fan_out(50), chain(50), independent_chains(5, 10)], ids=["fan", "chain", "chains"]
)
@pytest.mark.parametrize("indent", [None, 2])
def test_the_usual_proposal_is_read_not_declined(doc: dict[str, Any], indent: Any) -> None:
    """The shapes the benchmarks time take the C path (a silent decline would only be slow)."""
    text = json.dumps(doc, indent=indent)
    header, count, columns = _decode(text)
    assert header == {"id": doc["id"]} and count == len(doc["actions"])
    assert columns["id"] == [action["id"] for action in doc["actions"]]
    missing = fastload._MISSING
    params = [p if p is not missing else None for p in columns["parameters"]]
    assert params == [action.get("parameters") for action in doc["actions"]]
    assert _decode(text.encode()) is not None


def test_an_array_of_proposals_is_read_whole_or_declined() -> None:
    one = json.dumps(fan_out(3))
    found = fastload._native_decode(f"[{one}, {one}]", True)
    assert found is not None and len(found) == 2 and found[0][1] == 3
    assert fastload._native_decode("[]", True) == []
    assert fastload._native_decode(f"[{one}, 1]", True) is None
    assert fastload._native_decode(f"[{one}", True) is None
    assert fastload._native_decode(one, True) is None


def test_the_columns_of_the_c_path_are_those_of_the_json_path() -> None:
    doc = fan_out(20)
    doc["actions"][3].update(metadata={"a": [1, {"b": None}]}, idempotent=True, max_retries=0)
    doc["actions"][4].update(reversibility="reversible", timeout_ms=None, depends_on=["a0"])
    text = json.dumps(doc)
    fast = fastload.decode_plain(text)
    slow = fastload.plain_columns(json.loads(text))
    assert fast is not None and slow is not None
    assert fast.values == slow.values
    assert list(fast.proposal.actions) == list(slow.proposal.actions)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_text_is_read_as_json_or_declined_never_raised(data: Any) -> None:
    """A proposal cut, spliced or sprinkled with bytes: never an exception, and what is read
    is JSON that `json.loads` reads the same way."""
    text = json.dumps(fan_out(3))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        insert = data.draw(st.text(alphabet='{}[]",:\\ 0-1.eE\ttrue\x00\u00e9\ud800', max_size=3))
        cut = data.draw(st.integers(0, 2))
        text = text[:at] + insert + text[at + cut :]
    for source in (text, text.encode("utf-8", "surrogatepass")):
        found = _decode(source)
        if found is None:
            continue
        decoded = json.loads(text)
        header, count, columns = found
        assert count == len(decoded["actions"])
        assert header == {key: value for key, value in decoded.items() if key != "actions"}
        for name, column in columns.items():
            for action, value in zip(decoded["actions"], column, strict=True):
                assert action.get(name, fastload._MISSING) == value


_keys = st.sampled_from(["a", "b", "c", "k1", "k2", "a long key past the string cache"])


@settings(max_examples=80, deadline=None)
@given(
    st.dictionaries(_keys, st.integers()),
    st.lists(st.dictionaries(_keys, st.integers() | st.none(), max_size=3), max_size=8),
    st.data(),
)
def test_merged_state_applies_effects_in_the_twins_order(
    state: dict[str, Any], effects: list[dict[str, Any]], data: Any
) -> None:
    """The same keys, values and key order as the Python twin, whatever the levels' order;
    the state given is copied, not changed."""
    assert native is not None
    order = data.draw(st.permutations(range(len(effects))))
    cuts = sorted(data.draw(st.sets(st.integers(0, len(order)), max_size=3)))
    levels = [list(order[i:j]) for i, j in zip([0, *cuts], [*cuts, len(order)], strict=True)]
    before = dict(state)
    keys = len({key for written in effects for key in written})
    merged = native.merged_state(state, effects, levels, keys)
    assert list(merged.items()) == list(_merged_state(state, effects, levels, keys).items())
    assert merged is not state and state == before


def test_merged_state_is_sized_for_the_state_and_the_written_keys() -> None:
    """A review: copying a given state with PyDict_Update took the state's own small table,
    and the sizing was lost; a proposal of actions without effects got a table per action."""
    import sys

    assert native is not None
    effects = [{f"k{i}": i} for i in range(1000)]
    levels = [list(range(1000))]
    grown = {"given": 1}
    any(map(grown.update, effects))
    sized = native.merged_state({"given": 1}, effects, levels, 1000)
    assert list(sized.items()) == list(grown.items())
    # the same table as without a state given: its copy did not replace the sized one
    assert sys.getsizeof(sized) == sys.getsizeof(native.merged_state({}, effects, levels, 1001))
    bare = native.merged_state({}, [{}] * 1000, levels, 0)
    assert bare == {} and sys.getsizeof(bare) <= sys.getsizeof({})


def test_the_dag_functions_refuse_what_they_are_not_given() -> None:
    assert native is not None
    with pytest.raises(TypeError):
        native.effect_writers([{"k": 1}, "not a map"])
    with pytest.raises(TypeError):
        native.merged_state({}, [{"k": 1}, "not a map"], [[0, 1]], 1)
    with pytest.raises(TypeError):
        native.merged_state({}, [{"k": 1}], [(0,)], 1)
    with pytest.raises(TypeError):
        native.merged_state({}, [{"k": 1}], [[0]], -1)
    with pytest.raises(IndexError):
        native.merged_state({}, [{"k": 1}], [[1]], 1)
    with pytest.raises(IndexError):
        native.merged_state({}, [{"k": 1}], [[-1]], 1)
    with pytest.raises(TypeError):
        native.edges_levels([["k"], "not a list"], {"k": 0}, _NO_DEPS)
    with pytest.raises(TypeError):
        native.decode_proposals("{}", False, ("not", "a", "schema"))


@pytest.mark.slow  # starts the C compiler
def test_the_build_hook_compiles_the_extension_or_says_why(tmp_path: Path) -> None:
    import importlib.util
    import sys
    import sysconfig

    pytest.importorskip("hatchling", reason="hatchling (the build backend) is not installed")
    sys.path.insert(0, str(ROOT))
    try:
        import hatch_build
    finally:
        sys.path.remove(str(ROOT))
    target = tmp_path / ("_speedups" + sysconfig.get_config_var("EXT_SUFFIX"))
    assert hatch_build.compile_extension(ROOT / hatch_build.SOURCE, target) is None
    spec = importlib.util.spec_from_file_location("_speedups", target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.effect_writers([{"k": 1}, {"k": 2}]) == {"k": 1}
    problem = hatch_build.compile_extension(tmp_path / "missing.c", tmp_path / "x.so")
    assert problem is not None and "failed" in problem


def test_a_build_of_another_abi_or_turned_off_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stale build left in a source tree (say, by an older install) would read today's
    schema wrongly: it is not used, nor is any build with CARLANG_NO_SPEEDUPS=1."""
    assert native is not None and native.ABI == speedups.ABI
    try:
        monkeypatch.setattr(speedups, "ABI", speedups.ABI + 1)
        speedups.native.cache_clear()
        assert speedups.native() is None
        monkeypatch.undo()
        monkeypatch.setenv("CARLANG_NO_SPEEDUPS", "1")
        speedups.native.cache_clear()
        assert speedups.native() is None
        assert fastload.decode_plain(json.dumps(fan_out(3))) is not None  # msgspec or json
    finally:
        monkeypatch.undo()
        speedups.native.cache_clear()
    assert speedups.native() is native


@pytest.mark.slow  # builds a wheel
def test_without_a_compiler_the_wheel_is_pure_python_and_says_why(tmp_path: Path) -> None:
    """CC naming no compiler: the build goes on without the C, warns, and the wheel is the
    pure-Python one (py3-none-any) that runs the twins."""
    import os
    import subprocess
    import sys

    pytest.importorskip("hatchling", reason="hatchling (the build backend) is not installed")
    env = {**os.environ, "CC": str(tmp_path / "no-such-compiler"), "PIP_NO_INPUT": "1"}
    env.pop("CARLANG_NO_SPEEDUPS", None)  # (which skips the build before it can fail)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation"]
        + ["--disable-pip-version-check", "-w", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "the C speedups were not built" in done.stdout + done.stderr
    [wheel] = (tmp_path / "dist").glob("*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")


def test_the_build_hook_takes_cc_and_cflags_as_setuptools_does(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """CC replaces the compiler LDSHARED starts with (a `ccache gcc` as a whole), CFLAGS adds
    flags, and a quote left open in either is a reason not to build, not a traceback."""
    import sys
    import sysconfig

    pytest.importorskip("hatchling", reason="hatchling (the build backend) is not installed")
    sys.path.insert(0, str(ROOT))
    try:
        import hatch_build
    finally:
        sys.path.remove(str(ROOT))
    config = {"CC": "ccache gcc", "LDSHARED": "ccache gcc -shared -L/x"}
    monkeypatch.setattr(sysconfig, "get_config_var", config.get)
    monkeypatch.setenv("CC", "clang")
    monkeypatch.setenv("CFLAGS", "-DX=1 -g")
    command = hatch_build._command(Path("s.c"), Path("t.so"))
    assert command[:3] == ["clang", "-shared", "-L/x"] and command[5:7] == ["-DX=1", "-g"]
    monkeypatch.setenv("CFLAGS", "-DX='a")
    problem = hatch_build.compile_extension(Path("s.c"), tmp_path / "t.so")
    assert problem is not None and problem.startswith("CC, CFLAGS or LDSHARED cannot be read")
    monkeypatch.setenv("CFLAGS", "")
    monkeypatch.setenv("CC", " ")  # blank: not set
    assert hatch_build._command(Path("s.c"), Path("t.so"))[:2] == ["ccache", "gcc"]


def test_the_c_driver_takes_the_parses_it_is_given() -> None:
    """The C driver parses (it does not hand every run back to the Python one), and hands
    back, untouched, a run it is not shaped for."""
    from carlang_runtime.lalr import _DRIVER_CONSTANTS, Outcome, _Run

    from carlang import ast
    from carlang.diagnostics import Diagnostics
    from carlang.parse import AstBuilder
    from carlang.source import Source
    from carlang.syntax import engine

    text = generate_program(40, seed=2)
    run = _Run(engine(), text, AstBuilder(Source("t.car", text), Diagnostics()))
    outcome = native.lalr_run(run, _DRIVER_CONSTANTS)
    assert isinstance(outcome, Outcome) and isinstance(outcome.value, ast.Module)
    odd = _Run(engine(), text, object())
    odd.state_stack = ()  # type: ignore[assignment]
    assert native.lalr_run(odd, _DRIVER_CONSTANTS) is NotImplemented
    assert odd.value_stack == []
