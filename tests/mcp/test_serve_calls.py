"""`carlang mcp serve`'s policy_check and explain judge only calls that can happen: a tool
the program does not declare, or parameters that do not fit it, are an error (as
`carlang explain --tool --params` says), never a decision (a false allow)."""

from __future__ import annotations

from pathlib import Path

import anyio

from tests.mcp.conftest import needs_sdk
from tests.mcp.test_serve import call, serving

pytestmark = needs_sdk

PROGRAM = """
tool read_file(path: string, limit: int = 10)
state { reads: int = 0 }
policy no_etc: deny read_file when params.path.startsWith("/etc")
  message "not /etc"
policy few_reads: deny read_file when state.reads > 100
  message "too many reads"
"""


def test_policy_check_and_explain_refuse_calls_that_cannot_happen(tmp_path: Path) -> None:
    (tmp_path / "policy.car").write_text(PROGRAM)

    async def scenario() -> None:
        async with serving(cwd=tmp_path) as session:
            for tool in ("policy_check", "explain"):
                for program in ({"path": "policy.car"}, {"program": PROGRAM}):
                    error, message = await call(session, tool, tool="nosuch", params={}, **program)
                    assert error, (tool, program, message)
                    assert "no tool is called `nosuch` in " in message
                    error, message = await call(
                        session, tool, tool="read_fil", params={"path": "x"}, **program
                    )
                    assert error and "(did you mean `read_file`?)" in message
                    error, message = await call(
                        session, tool, tool="read_file", params={"path": 3}, **program
                    )
                    assert error and message.endswith(
                        "params: tool 'read_file': parameter 'path' has wrong type:"
                        " expected string, got number"
                    )
                    error, message = await call(
                        session, tool, tool="read_file", params={"pth": "/etc/x"}, **program
                    )
                    assert error and (
                        "params: tool `read_file` has no parameter `pth` (did you mean `path`?)"
                        in message
                    )
                    # (not also "missing required parameter 'path'": one mistake, said once)
                    assert "missing" not in message
                    error, message = await call(
                        session,
                        tool,
                        tool="read_file",
                        params={"path": "x"},
                        state={"raeds": 1},
                        **program,
                    )
                    assert error and "state: no state key is called `raeds`" in message
            # a call that can happen is still decided, its left-out parameters filled in
            error, decision = await call(
                session,
                "policy_check",
                tool="read_file",
                params={"path": "/etc/x"},
                path="policy.car",
            )
            assert not error and decision["decision"] == "deny"
            error, decision = await call(
                session,
                "policy_check",
                tool="read_file",
                params={"path": "/tmp/x"},
                path="policy.car",
            )
            assert not error and decision == {"decision": "allow", "policies": []}
            error, explained = await call(
                session,
                "explain",
                tool="read_file",
                params={"path": "/tmp/x"},
                state={"reads": 101},
                program=PROGRAM,
            )
            assert not error and explained["decision"] == "deny"
            assert explained["action"]["parameters"] == {"path": "/tmp/x", "limit": 10}

    anyio.run(scenario)
