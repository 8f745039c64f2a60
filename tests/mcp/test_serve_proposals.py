"""`carlang mcp serve` checks the proposals `simulate`, `optimize` and `equivalent` are given
as `verify` does: one that does not verify (a cycle, an unknown or duplicate id, a malformed
action, a key read before anything writes it) is a tool error listing verify's errors, code,
action and message, never a state simulated through a cycle or an optimized proposal the
runtime would refuse. A proposal that is not one says, for every tool, each problem at its
place in its argument. (In process: the SDK's client on its in-memory transport.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from tests.mcp.conftest import needs_sdk
from tests.mcp.test_serve import call

pytestmark = needs_sdk


@asynccontextmanager
async def in_process() -> AsyncIterator[Any]:
    """An initialized SDK client session with `carlang mcp serve`'s server, in this process."""
    from mcp.shared.memory import create_connected_server_and_client_session

    from carlang.mcp_serve import build_server

    async with create_connected_server_and_client_session(build_server()) as session:
        yield session


def _action(action_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": action_id, "type": "tool_call", "tool": f"t_{action_id}", **fields}


def _proposal(*actions: dict[str, Any]) -> dict[str, Any]:
    return {"id": "p", "actions": list(actions)}


BROKEN = {
    "cycle": _proposal(
        _action("a", depends_on=["b"], expected_effects={"x": 1}),
        _action("b", depends_on=["a"], expected_effects={"y": 2}),
    ),
    "unknown dependency": _proposal(_action("a", depends_on=["zz"], expected_effects={"x": 1})),
    "duplicate ids": _proposal(
        _action("a", expected_effects={"x": 1}),
        {**_action("a", expected_effects={"x": 2}), "tool": "other"},
    ),
    "malformed action": _proposal({"id": "w", "type": "state_write"}),
    "read before written": _proposal(
        _action("a", state_dependencies=["k"], expected_effects={"x": 1}),
        _action("b", expected_effects={"k": 1}),
    ),
    "failing precondition": _proposal(
        _action("a", preconditions=[{"key": "ready", "operator": "eq", "value": True}])
    ),
}

TWICE = _proposal(
    {**_action("a", expected_effects={"x": 1}), "tool": "t"},
    {**_action("b", expected_effects={"x": 1}, depends_on=["a"]), "tool": "t"},
)

#: verify's help for a key that no action writes before the one reading it.
NOTHING_WRITES = (
    "nothing before it writes it: give it a value in the initial state, or write it in an"
    " earlier action"
)

HEAD = (
    "`proposal` does not verify from an empty state, so the runtime would not run it; fix"
    " these (the `verify` tool gives the whole verdict):\n"
)


def test_a_proposal_that_does_not_verify_is_an_error_with_verify_s_errors() -> None:
    async def scenario() -> None:
        async with in_process() as session:
            for name, proposal in BROKEN.items():
                error, verdict = await call(session, "verify", proposal=proposal)
                assert not error and verdict["valid"] is False, name
                errors = [
                    f"error[{i['code']}] {i['action_id']}: {i['message']}"
                    + (f" ({i['help']})" if i.get("help") else "")
                    for i in verdict["issues"]
                    if i["severity"] == "error"
                ]
                assert errors, name
                for tool, arguments in (
                    ("simulate", {"proposal": proposal}),
                    ("optimize", {"proposal": proposal}),
                    ("equivalent", {"first": proposal, "second": _proposal()}),
                ):
                    error, message = await call(session, tool, **arguments)
                    assert error, (name, tool, message)
                    for line in errors:  # (each of verify's errors, as verify says it)
                        assert line in message.split("\n"), (name, tool, message)
                    assert "internal error" not in message

            error, message = await call(session, "simulate", proposal=BROKEN["cycle"])
            assert message == HEAD + "error[CL0303] a: dependency cycle: a -> b -> a"
            error, message = await call(session, "optimize", proposal=BROKEN["unknown dependency"])
            assert message == (
                HEAD + "error[CL0302] a: depends on 'zz', which is not an action of this proposal"
            )
            # a warning (the same call twice: CL0313) does not stop an answer
            error, verdict = await call(session, "verify", proposal=TWICE)
            assert verdict["valid"] and [i["code"] for i in verdict["issues"]] == ["CL0313"]
            error, simulated = await call(session, "simulate", proposal=TWICE)
            assert not error and simulated == {"state": {"x": 1}}
            error, optimized = await call(session, "optimize", proposal=TWICE)
            assert not error and optimized["id"] == "p"
            error, same = await call(session, "equivalent", first=TWICE, second=TWICE)
            assert not error and same == {"equivalent": True}

    anyio.run(scenario)


def test_a_key_read_from_the_state_verifies_once_the_state_is_given() -> None:
    """A key no action writes is read from the state the proposal starts from: without it
    the runtime would refuse the action (simulate skipped it, optimize dropped the dependency
    and so made it run); with it, simulate and optimize answer."""
    reads = _proposal(
        _action("a", expected_effects={"x": 1}),
        _action("b", depends_on=["a"], state_dependencies=["x", "config"]),
    )

    async def scenario() -> None:
        async with in_process() as session:
            for tool in ("simulate", "optimize"):
                error, message = await call(session, tool, proposal=reads)
                assert error and message == (
                    HEAD + "error[CL0402] b: state dependency 'config' not available at this"
                    f" point ({NOTHING_WRITES})\n(no `state` was given: give the state it starts"
                    " from)"
                ), (tool, message)
            error, message = await call(session, "simulate", proposal=reads, state={"ready": 1})
            assert error and message.startswith("`proposal` does not verify from `state`, so")
            # (no hint on how to give a state: it was given)
            assert message.endswith(f"not available at this point ({NOTHING_WRITES})")
            error, simulated = await call(session, "simulate", proposal=reads, state={"config": 1})
            assert not error and simulated == {"state": {"config": 1, "x": 1}}
            error, optimized = await call(session, "optimize", proposal=reads, state={"config": 1})
            assert not error
            assert [a["state_dependencies"] for a in optimized["actions"]] == [[], ["x"]]

    anyio.run(scenario)


def test_equivalent_names_the_proposal_and_the_test_state() -> None:
    needs_ready = _proposal(
        _action("a", preconditions=[{"key": "ready", "operator": "eq", "value": True}])
    )
    fine = _proposal(_action("a"))

    async def scenario() -> None:
        async with in_process() as session:
            error, message = await call(
                session,
                "equivalent",
                first=fine,
                second=needs_ready,
                test_states=[{"ready": True}, {"ready": False}],
            )
            assert error and message.startswith(
                "`second` does not verify from `test_states[1]`, so the runtime would not run"
                " it; fix these (the `verify` tool gives the whole verdict):\nerror[CL0401] a:"
            ), message
            assert "`first`" not in message
            error, message = await call(session, "equivalent", first=needs_ready, second=fine)
            assert error and message.startswith(
                "`first` does not verify from the default test state {}, so"
            ), message
            assert message.endswith("\n(give `test_states`: the states both start from)")
            error, message = await call(
                session, "equivalent", first=fine, second=fine, test_states=[]
            )
            assert error and message == (
                "argument `test_states` is empty: give the states to compare from, or leave it"
                " out for the default ones"
            )
            error, same = await call(
                session,
                "equivalent",
                first=needs_ready,
                second=needs_ready,
                test_states=[{"ready": True}],
            )
            assert not error and same == {"equivalent": True}

    anyio.run(scenario)


def test_what_is_not_a_proposal_is_said_at_its_place_in_each_argument() -> None:
    bad = {"id": 3, "actions": [1, {"type": "launch"}]}
    problems = [
        "`{}.id`: input should be a valid string",
        "`{}.actions[0]`: input should be a valid dictionary or instance of Action",
        "`{}.actions[1].type`: input should be 'tool_call', 'state_write', 'state_read' or"
        " 'assertion'",
    ]

    def said(argument: str) -> list[str]:
        return ["argument " + line.format(argument) for line in problems]

    async def scenario() -> None:
        async with in_process() as session:
            for tool in ("verify", "simulate", "optimize"):
                error, message = await call(session, tool, proposal=bad)
                assert error and message.split("\n") == said("proposal"), (tool, message)
            error, message = await call(session, "equivalent", first=_proposal(), second=bad)
            assert error and message.split("\n") == said("second")
            error, message = await call(session, "rank", candidates=[_proposal(), bad])
            assert error and message.split("\n") == said("candidates[1]")
            many = {"id": "p", "actions": [{"type": "launch"}] * 25}
            error, message = await call(session, "simulate", proposal=many)
            lines = message.split("\n")
            assert len(lines) == 21 and lines[-1] == "... and 5 more", lines

    anyio.run(scenario)


RANKED = """
tool deploy(env: "staging" | "prod", version: string)
policy no_latest: deny deploy when params.version == "latest"
  message "pin a version"
capability agent { tools allow deploy }
capability reader { tools allow read }
tool read()
"""


def _deploy(proposal_id: str, version: str = "1.2", **fields: Any) -> dict[str, Any]:
    call = {"env": "staging", "version": version}
    action = {"id": "a", "type": "tool_call", "tool": "deploy", "parameters": call}
    return {"id": proposal_id, "actions": [action], **fields}


def test_rank_says_why_a_candidate_is_invalid_and_judges_it_as_verify_does() -> None:
    """Each candidate's findings say what makes it invalid (an unknown tool, a policy's deny,
    a capability that does not allow a tool); a capability the program declares is the one
    it runs under (it was "not given": every candidate naming one was invalid, unsaid), and
    without a program a name is not checked, as `verify` does not check it."""
    unknown = {**_deploy("unknown"), "actions": [{**_deploy("x")["actions"][0], "tool": "deploi"}]}
    candidates = [
        _deploy("agent", capability="agent"),
        unknown,
        _deploy("latest", version="latest"),
        _deploy("reader", capability="reader"),
        _deploy("plain"),
    ]

    async def scenario() -> None:
        async with in_process() as session:
            error, ranked = await call(session, "rank", candidates=candidates, program=RANKED)
            assert not error, ranked
            by_id = {r["proposal_id"]: r for r in ranked["ranking"]}
            codes = {}  # each candidate's errors' codes, as verify gives them
            for proposal in candidates:
                error, verdict = await call(session, "verify", proposal=proposal, program=RANKED)
                assert by_id[proposal["id"]]["valid"] is verdict["valid"], proposal["id"]
                for issue in verdict["issues"]:
                    codes[proposal["id"]] = issue["code"]
            assert by_id["agent"]["valid"] and by_id["agent"]["findings"] == []
            assert by_id["unknown"]["findings"] == [
                {
                    "feature": "validity",
                    "message": "error: tool 'deploi' is not registered",
                    "code": "CL0306",  # (verify's unknown-tool)
                    "action_id": "a",
                }
            ]
            assert by_id["latest"]["findings"] == [
                {
                    "feature": "policy",
                    "message": "will be denied by no_latest: pin a version",
                    "code": "CL0520",  # (as `carlang check` says of such a plan)
                    "action_id": "a",
                }
            ]
            assert by_id["reader"]["findings"] == [
                {
                    "feature": "validity",
                    "message": "error: tool 'deploy' is not allowed by capability 'reader'",
                    "code": codes["reader"],
                    "action_id": "a",
                }
            ]
            # without a program: the names are not checked (verify does not check them)
            error, ranked = await call(session, "rank", candidates=[_deploy("x", capability="c")])
            assert not error and ranked["ranking"][0]["valid"], ranked
            error, verdict = await call(session, "verify", proposal=_deploy("x", capability="c"))
            assert verdict["valid"]

    anyio.run(scenario)
