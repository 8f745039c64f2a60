"""Ranking from JSON text (actions loaded by columns, `ir.fastload`) against ranking the same
candidates loaded as models: the same order, scores, findings and load errors, whichever way
each candidate loads (columns, or pydantic for what the column loader declines)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from carlang_runtime import ir, speedups
from carlang_runtime.errors import IRLoadError
from carlang_runtime.ir import ActionProposal, fastload, load_proposal
from carlang_runtime.ir.fastload import LazyActions
from carlang_runtime.jsontext import JsonTextError, parse_json
from carlang_runtime.planner import Governance, PlannerConfig, ToolFeedback, ToolStats, rank
from carlang_runtime.planner.rank import _load_candidates
from carlang_runtime.planner.score import token_estimate
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.runtime.test_fastload import _proposals


def _problems(exc: IRLoadError) -> object:
    return [(p.path, p.message, p.position) for p in exc.problems]


def _outcome(candidates: Any, **options: Any) -> object:
    """What `rank` answers: every field of every scored candidate, or the load problems."""
    try:
        ranked = rank(candidates, **options)
    except IRLoadError as exc:
        return _problems(exc)
    return [s.model_dump() for s in ranked]


def _as_models(sources: list[Any], **options: Any) -> object:
    """`_outcome` of the candidates loaded as models first (by pydantic, as before)."""
    try:
        models = [load_proposal(source) for source in sources]
    except IRLoadError as exc:
        return _problems(exc)
    return _outcome(models, **options)


def _same(docs: list[Any], **options: Any) -> None:
    """Rank `docs` from one JSON array, and from a list of JSON texts, as from models."""
    text = json.dumps(docs)
    assert _outcome(text, **options) == _as_models(json.loads(text), **options)
    texts = [json.dumps(doc, indent=1) for doc in docs]  # errors located in each text
    assert _outcome(texts, **options) == _as_models(texts, **options)


def _chain(name: str, n: int, tool: str = "step", **extra: Any) -> dict[str, Any]:
    actions = [
        {
            "id": f"a{i}",
            "type": "tool_call",
            "tool": tool,
            "parameters": {"i": i, "text": "naïve ✓"},
            "expected_effects": {f"k{i}": i},
            "state_dependencies": [f"k{i - 1}"] if i else [],
        }
        for i in range(n)
    ]
    return {"id": name, "actions": actions, **extra}


_POLICIES = [
    ir.CelPolicy(name="no_http", tools=["fetch"], when='params.url.startsWith("http:")'),
    ir.CelPolicy(name="prod", effect="require_approval", tools=["deploy"], when="params.prod"),
]
_FEEDBACK = ToolFeedback(
    stats={"step": ToolStats(10, 9, 120.0, 5), "fetch": ToolStats(4, 2, 900.0, 2)}
)

_SHAPES: dict[str, list[Any]] = {
    "chains": [
        _chain("long", 40),
        _chain("short", 5),
        _chain("stamped", 3, timestamp="2026-01-02T03:04:05Z"),
    ],
    "unknown tool and conflicts": [
        _chain("bad-tool", 3, tool="missing"),
        {
            "id": "conflicts",
            "actions": [
                {"id": "w1", "type": "state_write", "parameters": {"key": "k", "value": 1}},
                {"id": "w2", "type": "state_write", "parameters": {"key": "k", "value": 2}},
                {"id": "r", "type": "state_read", "state_dependencies": ["nowhere"]},
            ],
        },
    ],
    "a cycle and an unknown dependency": [
        {
            "id": "cycle",
            "actions": [
                {"id": "a", "type": "tool_call", "tool": "step", "depends_on": ["b"]},
                {"id": "b", "type": "tool_call", "tool": "step", "depends_on": ["a", "zz"]},
            ],
        },
        _chain("fine", 2),
    ],
    "preconditions, compensations, locations (pydantic loads these)": [
        {
            "id": "pre",
            "actions": [
                {
                    "id": "a",
                    "type": "tool_call",
                    "tool": "step",
                    "preconditions": [{"key": "ready", "operator": "eq", "value": True}],
                    "compensation": {"type": "tool", "tool": "undo"},
                    "reversibility": "compensable",
                },
                {
                    "id": "b",
                    "type": "tool_call",
                    "tool": "step",
                    "loc": {"file": "p.car", "line": 3, "column": 5},
                },
            ],
        },
        _chain("plain", 4),
    ],
    "policies, feedback and governance": [
        {
            "id": "web",
            "capability": "net",
            "budget": "small",
            "actions": [
                {
                    "id": "get",
                    "type": "tool_call",
                    "tool": "fetch",
                    "parameters": {"url": "http:x"},
                },
                {"id": "go", "type": "tool_call", "tool": "deploy", "parameters": {"prod": True}},
            ],
        },
        {
            "proposal": {
                "id": "wrapped",
                "actions": [{"id": "s", "type": "tool_call", "tool": "step", "timeout_ms": 5}],
            }
        },
        _chain("steps", 6),
    ],
    "a candidate that does not load": [
        _chain("fine", 2),
        {"id": "broken", "actions": [{"id": "x", "type": "tool_call", "max_retries": -1}]},
    ],
    "a candidate that is not a proposal": [_chain("fine", 2), ["not", "a", "proposal"]],
}


@pytest.fixture(params=["c", "msgspec", "json"])
def decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Text decoded by the C speedups alone (where they are built), by msgspec alone (the
    `fast` extra, where it is installed), or by `json` alone."""
    if request.param == "c" and speedups.native() is None:
        pytest.skip("the C speedups (carlang_runtime._speedups) are not built here")
    if request.param == "msgspec":
        pytest.importorskip("msgspec", reason="msgspec (the `fast` extra) is not installed")
    if request.param != "c":
        monkeypatch.setattr(speedups, "native", lambda: None)
    if request.param != "msgspec":
        monkeypatch.setattr(fastload, "_msgspec_decode", lambda _text, many: None)
    return str(request.param)


@pytest.mark.parametrize("shape", sorted(_SHAPES))
def test_rank_from_text_is_rank_of_the_models(shape: str, decoder: str) -> None:
    docs = _SHAPES[shape]
    _same(docs, tools=["step", "fetch", "deploy"], config=PlannerConfig.car())
    governance = Governance.of(
        capabilities=[ir.Capability(name="net", allowed_tools=["fetch", "deploy"])],
        budgets=[ir.Budget(name="small", max_actions=3)],
    )
    _same(docs, feedback=_FEEDBACK, policies=_POLICIES, governance=governance, state={"ready": 1})


@settings(max_examples=100, deadline=None)
@given(st.lists(_proposals(), min_size=1, max_size=3))
def test_rank_of_generated_candidates_from_text_is_rank_of_the_models(
    docs: list[dict[str, Any]],
) -> None:
    # msgspec decodes the array when it is installed; each text of the list on its own, or
    # the json path when it declines
    for doc in docs:
        for action in doc["actions"]:
            if isinstance(action, dict):
                action.setdefault("id", "same")  # random ids would differ between the two loads
    _same(docs, tools=["step"], config=PlannerConfig.car())


def _any_outcome(text: str) -> object:
    """`_outcome`, or the type and text of any other error."""
    try:
        return _outcome(text, tools=["step"], config=PlannerConfig.car())
    except Exception as exc:  # compared, not hidden
        return (type(exc).__name__, str(exc))


@settings(max_examples=200, deadline=None)
@given(st.lists(_proposals(), min_size=1, max_size=3), st.data())
def test_fast_decoders_rank_every_text_as_the_json_path_does(
    docs: list[dict[str, Any]], data: Any
) -> None:
    """A JSON array, possibly one character away from valid JSON: the C decoder's path, then
    msgspec's, then the json path's give the same ranking or the same error."""
    for doc in docs:
        for action in doc["actions"]:
            if isinstance(action, dict):
                action.setdefault("id", "same")
    text = json.dumps(docs)
    at = data.draw(st.integers(0, len(text)))
    char = data.draw(st.sampled_from(["", "\t", "\x01", ",", "}", "]", '"', "\\", "1", " "]))
    cut = data.draw(st.integers(0, 1))
    text = text[:at] + char + text[at + cut :]
    with_both = _without_generated_ids(_any_outcome(text), text)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(speedups, "native", lambda: None)
        assert _without_generated_ids(_any_outcome(text), text) == with_both
        patch.setattr(fastload, "_msgspec_decode", lambda _text, many: None)
        assert _without_generated_ids(_any_outcome(text), text) == with_both


_SHORT_ID = re.compile(r"\b[0-9a-f]{12}\b")


def _without_generated_ids(outcome: object, text: str) -> str:
    """`outcome` as text, each id CAR's loader made up (one a mutation took from the text:
    12 hex digits the text does not hold) replaced by one placeholder."""
    dumped = json.dumps(outcome, default=repr, sort_keys=True)
    return _SHORT_ID.sub(lambda m: m.group() if m.group() in text else "<generated>", dumped)


def test_plain_candidates_are_ranked_without_a_model_per_action(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded = _load_candidates(
        json.dumps(_SHAPES["preconditions, compensations, locations (pydantic loads these)"])
    )
    assert [cols is not None for _, cols in loaded] == [False, True]

    def build(*_args: object) -> None:
        raise AssertionError("an action model was built")

    monkeypatch.setattr(LazyActions, "_build", build)
    ranked = rank(json.dumps(_SHAPES["chains"]), ["step"], config=PlannerConfig.car())
    assert [s.proposal_id for s in ranked] == ["stamped", "short", "long"]


@pytest.mark.parametrize("depth", [123, 124])
def test_nesting_is_limited_in_the_array_as_before(depth: int, decoder: str) -> None:
    nested = "[" * depth + "]" * depth  # 124: 129 levels with the array, proposal, action, map
    text = '[{"actions": [{"type": "tool_call", "metadata": {"n": ' + nested + "}}]}]"
    if depth == 123:
        assert [s.action_count for s in rank(text)] == [1]
        return
    with pytest.raises(JsonTextError) as expected:
        parse_json(text)
    with pytest.raises(JsonTextError) as raised:
        rank(text)
    assert str(raised.value) == str(expected.value)  # the same error, at the same place


def test_a_text_that_is_not_an_array_is_refused() -> None:
    with pytest.raises(TypeError, match="array of proposals"):
        rank(json.dumps(_chain("one", 1)))


_NOT_CAR = {"loc": True, "capability": True, "budget": True, "actions": {"__all__": {"loc"}}}


@settings(max_examples=100, deadline=None)
@given(_proposals(), st.booleans())
def test_the_token_estimate_is_the_size_of_cars_json(doc: dict[str, Any], located: bool) -> None:
    try:
        model = ActionProposal.model_validate(doc)
    except ValueError:
        return
    if located and model.actions:
        loc = ir.SourceLoc(file="x.car", line=1, column=1)
        first = model.actions[0].model_copy(update={"loc": loc})
        model = model.model_copy(update={"actions": [first, *model.actions[1:]], "budget": "b"})
    written = len(model.model_dump_json(exclude=_NOT_CAR).encode())  # CAR's view, as CAR counts
    assert token_estimate(model) == (written + 45) // 4  # 45: the timestamp CAR would add
