"""Cost limits: a static estimate rejects an expensive expression at compile time, and a
step and time bound stops a runaway evaluation."""

from __future__ import annotations

import pytest
from carlang_runtime.cel import (
    CelCompileError,
    CelCostError,
    CelEvalError,
    ErrorKind,
    Limits,
    compile,
)
from carlang_runtime.cel.build import parse
from carlang_runtime.cel.cost import estimate


def test_a_policy_sized_condition_is_cheap() -> None:
    program = compile(
        'action.tool == "http.get" && size(params.url) < 200 && !params.url.startsWith("http://")'
    )
    assert program.cost < 30


def test_nested_macros_over_unknown_lists_multiply() -> None:
    one = estimate(parse("history.exists(h, h.tool == 'x')"), assumed_size=100).cost
    two = estimate(parse("history.exists(h, history.exists(g, g.id == h.id))"), 100).cost
    three = estimate(parse("a.all(x, b.all(y, c.all(z, x + y + z > 0)))"), assumed_size=100).cost
    assert 100 <= one < 1_000
    assert 10_000 <= two < 100_000
    assert three > 1_000_000


def test_literal_lists_count_as_their_size() -> None:
    assert estimate(parse("[1, 2, 3].all(x, x > 0)"), 1000).cost < 30
    assert estimate(parse("[1, 2, 3].map(x, x * 2).all(y, y > 0)"), 1000).cost < 50


def test_compile_rejects_a_condition_above_the_bound() -> None:
    with pytest.raises(CelCostError) as caught:
        compile("a.all(x, b.all(y, c.all(z, x + y + z > 0)))")
    assert caught.value.cost > caught.value.limit == Limits().max_cost
    assert "too expensive" in str(caught.value)
    # The bound is configurable, in both directions.
    compile("a.all(x, b.all(y, c.all(z, x + y + z > 0)))", limits=Limits(max_cost=10**9))
    with pytest.raises(CelCostError):
        compile("history.exists(h, h.tool == 'x')", limits=Limits(max_cost=50))


def test_evaluation_stops_after_max_steps() -> None:
    program = compile(
        "items.all(x, items.all(y, x + y >= 0))", limits=Limits(max_cost=10**9, max_steps=5_000)
    )
    with pytest.raises(CelEvalError) as caught:
        program.evaluate({"items": list(range(1_000))})
    assert caught.value.kind == ErrorKind.COST_LIMIT
    assert "5000 macro steps" in caught.value.message
    # Under the bound it runs to the end.
    assert program.evaluate({"items": list(range(50))}) is True


def test_evaluation_stops_after_max_seconds() -> None:
    program = compile(
        "items.all(x, items.all(y, items.all(z, x + y + z >= 0)))",
        limits=Limits(max_cost=10**12, max_steps=10**12, max_seconds=0.05),
    )
    with pytest.raises(CelEvalError) as caught:
        program.evaluate({"items": list(range(400))})  # 64 million steps
    assert caught.value.kind == ErrorKind.COST_LIMIT
    assert "0.05 s" in caught.value.message


def test_an_expression_too_deep_to_compile_is_refused_cleanly() -> None:
    deep = " && ".join(f"(a{i} || (b{i} && (c{i} || d{i})))" for i in range(3))
    compile(deep)  # ordinary nesting is fine
    very_deep = "x"
    for i in range(40):
        very_deep = f"(a{i} || (b{i} && {very_deep}))"
    with pytest.raises(CelCompileError) as caught:
        compile(very_deep)
    assert "nests too deeply" in str(caught.value)
    assert "split it" in str(caught.value)


def test_long_chains_compile_and_explain() -> None:
    # A generated allow-list can be hundreds of alternatives long.
    hosts = " || ".join(f'params.host == "h{i}.example.com"' for i in range(500))
    program = compile(hosts)
    assert program.evaluate({"params": {"host": "h499.example.com"}}) is True
    assert program.evaluate({"params": {"host": "elsewhere"}}) is False
    explanation = program.explain({"params": {"host": "h250.example.com"}})
    assert [t.text for t in explanation.terms] == ['params.host == "h250.example.com"']
    checks = compile(" && ".join(f"params.n != {i}" for i in range(300)))
    assert [t.text for t in checks.explain({"params": {"n": 7}}).terms] == ["params.n != 7"]
