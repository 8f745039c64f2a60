"""cel-spec's conformance cases that cel-python passes (tests/data/cel_conformance.json,
extracted by tests/tools/extract_cel_conformance.py), run through carlang.

Every case must pass, except the few where cel-python passes by a reading carlang does not
share; each of those is listed in DIFFERENT with the reason (docs/cel.md, "Differences").
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from carlang_runtime.cel import CelEvalError, Limits, compile

from tests.conftest import DATA

from .celpy_values import decode, same

_DOCUMENT = json.loads((DATA / "cel_conformance.json").read_text("utf-8"))
CASES: list[dict[str, Any]] = _DOCUMENT["cases"]

# name -> why carlang's answer differs from the case's (which cel-python also gives).
DIFFERENT: dict[str, str] = {}


def _id(case: dict[str, Any]) -> str:
    return str(case["name"])


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_conformance_case(case: dict[str, Any]) -> None:
    if case["name"] in DIFFERENT:
        pytest.skip(DIFFERENT[case["name"]])
    bindings = {name: decode(value) for name, value in case["bindings"].items()}
    program = compile(
        case["expr"], limits=Limits(max_cost=10**12), container=case.get("container", "")
    )
    if case.get("error"):
        with pytest.raises(CelEvalError):
            program.evaluate(bindings)
        return
    assert same(program.evaluate(bindings), decode(case["value"])), case["expr"]


def test_the_suite_is_substantial() -> None:
    assert len(CASES) > 600
    assert len(DIFFERENT) < len(CASES) // 20
