"""Policy conditions' findings are remembered by condition and by what the condition is checked
against (each tool's parameters, the declared state), so that an editor's check of a program
after a keystroke does not check every condition again, and never answers from a stale one."""

from __future__ import annotations

import pytest

from tests.helpers import codes, compile_diagnostics


@pytest.mark.parametrize(
    ("before", "after"),
    [
        # the tool's parameters change: the same condition is checked again
        ("tool fetch(url: string)", "tool fetch(ulr: string)"),
        # the declared state changes
        ("tool fetch(url: string)\nstate { ready: bool = false }", "tool fetch(url: string)"),
    ],
)
def test_a_condition_is_checked_again_when_what_it_sees_changes(before: str, after: str) -> None:
    policy = '\npolicy p: deny fetch when params.ulr == "x"\npolicy q: deny when state.redy\n'
    first = codes(before + policy)
    second = codes(after + policy)
    assert first != second
    assert codes(before + policy) == first  # remembered, the same


def test_remembered_findings_are_reported_at_each_policys_own_place() -> None:
    text = (
        "tool fetch(url: string)\n"
        'policy a: deny fetch when params.ulr == "x"\n'
        'policy b: deny fetch when params.ulr == "x"\n'
    )
    found = compile_diagnostics(text).diagnostics.items
    places = sorted(
        (d.primary.span.start, d.message) for d in found if d.code == "CL0506" and d.primary
    )
    assert len(places) == 2 and places[0][0] != places[1][0]
    assert "policy `a`" in places[0][1] and "policy `b`" in places[1][1]


def test_a_remembered_syntax_error_keeps_no_program_alive() -> None:
    """An editor makes a condition that does not parse at nearly every keystroke: the error
    remembered held its traceback, whose frame held the whole program (a review)."""
    import gc
    import weakref

    tools = "\n".join(f"tool t{i}(p: string)" for i in range(5))
    alive = []
    for k in range(5):
        result = compile_diagnostics(tools + f"\npolicy p: deny t1 when params.p == {k} &&\n")
        assert result.program is not None
        alive.append(weakref.ref(result.program))
        del result
    gc.collect()
    assert [ref() for ref in alive] == [None] * 5


def test_the_state_type_is_made_once_per_program_not_per_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Made per policy, it made a program of N state keys and N policies quadratic to check
    # (4,000 of each: 15 s). Each policy's findings still see the declared state.
    from carlang import conditions

    made: list[int] = []
    real = conditions.state_type

    def counted(declared):  # type: ignore[no-untyped-def]
        made.append(1)
        return real(declared)

    monkeypatch.setattr(conditions, "state_type", counted)
    monkeypatch.setattr(conditions, "_FINDINGS", {})
    state = "state {\n" + "".join(f"  k{i}: int = {i}\n" for i in range(30)) + "}\n"
    policies = "".join(f"policy p{i}: deny t when state.k{i} > 0\n" for i in range(30))
    found = codes(
        "tool t(x: int)\n" + state + policies + "policy typo: deny t when state.k99 > 0\n"
    )
    assert len(made) == 1
    assert found == ["CL0506"]  # (`state.k99`: no such key; the other 30 are declared)
