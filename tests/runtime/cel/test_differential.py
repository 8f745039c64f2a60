"""carlang's CEL against cel-python on thousands of generated expressions and activations.

Results must be equal (types included); errors must be errors of the same kind. cel-python
runs with carlang's documented deliberate differences applied (celpy_bridge). When an
expression holds several errors CEL may report any of them; a different kind is accepted only
if some sub-expression on its own fails with that kind.
"""

from __future__ import annotations

from typing import Any

import pytest
from carlang_runtime.cel import CelEvalError, Limits, compile
from carlang_runtime.cel import nodes as n
from carlang_runtime.cel.build import parse
from hypothesis import given, settings
from hypothesis import strategies as st

from .celpy_bridge import ReferenceError_, reference_evaluate, same
from .generator import activations, expressions

# Generated expressions may nest macros over lists of unknown size; the cost bound is tested
# on its own (test_cel_limits), here every expression must run.
# The run-time bounds too: a loaded machine must not turn a value into a cost_limit error.
_UNBOUNDED = Limits(max_cost=10**15, max_steps=10**15, max_seconds=600.0)


def _reference(expression: str, activation: dict[str, Any]) -> tuple[str, Any]:
    try:
        return ("value", reference_evaluate(expression, activation))
    except ReferenceError_ as exc:
        return ("error", exc.kinds)


def _error_kinds_inside(expression: str, activation: dict[str, Any]) -> set[str]:
    kinds: set[str] = set()
    for node in n.walk(parse(expression)):
        if isinstance(node, n.Macro):
            continue  # its body refers to the macro's variable
        outcome = _reference(expression[node.start : node.end], activation)
        if outcome[0] == "error":
            kinds |= outcome[1]
    return kinds


def _agree(expression: str, activation: dict[str, Any]) -> None:
    reference = _reference(expression, activation)
    program = compile(expression, limits=_UNBOUNDED)
    try:
        ours: tuple[str, Any] = ("value", program.evaluate(activation))
    except CelEvalError as exc:
        ours = ("error", exc.kind)
    context = f"{expression!r} with {activation!r}: celpy {reference}, carlang {ours}"
    assert reference[0] == ours[0], context
    if ours[0] == "value":
        assert same(reference[1], ours[1]), context
    elif ours[1] not in reference[1]:
        assert ours[1] in _error_kinds_inside(expression, activation), context


@pytest.mark.slow  # 700 random expressions against cel-python (9 s)
@settings(max_examples=700)
@given(expressions(), st.lists(activations(), min_size=3, max_size=3))
def test_any_expression_agrees_with_celpy(expression: str, cases: list[dict[str, Any]]) -> None:
    for activation in cases:
        _agree(expression, activation)


@pytest.mark.slow  # (the default run stays under three minutes; CI runs it)
@settings(max_examples=500)
@given(expressions("bool", depth=4), st.lists(activations(), min_size=3, max_size=3))
def test_conditions_agree_with_celpy(expression: str, cases: list[dict[str, Any]]) -> None:
    for activation in cases:
        _agree(expression, activation)


@pytest.mark.parametrize(
    "expression",
    [
        'action.tool == "http.get" && size(params.url) < 200 && !params.url.startsWith("http://")',
        'params.env in ["prod", "staging"] || has(params.force)',
        "history.exists(h, h.tool == action.tool && h.status == 'failed')",
        "params.hosts.all(h, h.endsWith('.example.com')) && size(params.hosts) <= 3",
        "state.deployed ? params.version != state.version : true",
        "params.ulr.startsWith('https')",
        "params.port == '80'",
        "params.amount / params.count > 10",
    ],
)
def test_policy_shaped_conditions_agree(expression: str) -> None:
    activation = {
        "action": {"tool": "http.get", "type": "tool_call"},
        "params": {
            "url": "http://a.example.com/x",
            "env": "dev",
            "hosts": ["a.example.com"],
            "port": 80,
            "amount": 100,
            "count": 0,
            "version": "1.2",
        },
        "history": [{"tool": "http.get", "status": "failed"}],
        "state": {"deployed": True, "version": "1.1"},
    }
    _agree(expression, activation)


# Known cel-python deviations (docs/cel.md, "Differences from cel-python", 23): cel-python has
# neither cel-go's optional library nor backtick-quoted field names (cel-spec 0.24), so it
# cannot parse these. carlang's answer is the spec's (cel-go's optional library; cel-spec
# langdef, "Field Selection"), tested in test_optionals.py; here, that cel-python still lacks it.
CELPY_LACKS = {
    "m.?a.orValue(0)": 1,
    "m[?'b'].hasValue()": False,
    "[?m.?a, ?m.?b]": [1],
    "{?'x': m.?b}": {},
    "optional.of(1).value()": 1,
    "optional.none().or(optional.ofNonZeroValue(2)).value()": 2,
    "[3, 4].first().value() + [3, 4].last().value()": 7,
    "m.`a-b`": 2,
    "has(m.`a-b`)": True,
}


@pytest.mark.parametrize(("expression", "expected"), list(CELPY_LACKS.items()))
def test_what_cel_python_lacks_is_recorded(expression: str, expected: Any) -> None:
    activation = {"m": {"a": 1, "a-b": 2}}
    assert compile(expression).evaluate(activation) == expected
    with pytest.raises(ReferenceError_):
        reference_evaluate(expression, activation)
