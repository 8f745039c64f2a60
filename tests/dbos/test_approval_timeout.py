"""How long a durable approval waits: the asking policies' `approval_timeout` (the shortest),
else the run's `--approval-timeout`, else a day."""

from __future__ import annotations

import pytest

from tests.dbos.support import NO_DBOS

pytest.importorskip("dbos", reason=NO_DBOS)

from carlang_runtime import ir  # noqa: E402
from carlang_runtime.engine import ApprovalRequest  # noqa: E402
from carlang_runtime.policy.policyset import PolicyMatch  # noqa: E402

from carlang_dbos import DurableApprovals  # noqa: E402
from tests.helpers import compile_ok  # noqa: E402

PROGRAM = """\
tool ship(env: string)
policy slow: require_approval ship
  approval_timeout 2h
policy fast: require_approval ship when params.env == "prod"
  approval_timeout 90s
policy plain: require_approval ship
"""


def _request(*policies: str) -> ApprovalRequest:
    action = ir.Action(id="s", type=ir.ActionType.TOOL_CALL, tool="ship")
    matches = tuple(
        PolicyMatch(name, ir.PolicyEffect.REQUIRE_APPROVAL, "asks") for name in policies
    )
    return ApprovalRequest(action=action, proposal_id="p", policies=matches)


def test_the_asking_policies_timeout_wins_over_the_runs() -> None:
    gate = DurableApprovals.for_program(compile_ok(PROGRAM), 600.0)
    assert gate.timeout_for(_request("slow", "plain")) == 7200.0
    assert gate.timeout_for(_request("slow", "fast", "plain")) == 90.0  # the shortest
    assert gate.timeout_for(_request("plain")) == 600.0  # the run's --approval-timeout
    assert (
        DurableApprovals.for_program(compile_ok(PROGRAM), None).timeout_for(_request("plain"))
        == 86_400.0
    )
