"""`rank_plan`: a compiled program's plan ranked with the plan's settings, as `carlang rank`
ranks it; a wrong plan name or a program not compiled is a clear error."""

from __future__ import annotations

import pytest
from carlang_runtime.planner import rank_plan

from carlang.compiler import compile_or_raise
from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "planning" / "deploy_plans.car"


def test_a_plan_ranks_as_the_command_ranks_it() -> None:
    program = compile_or_raise(EXAMPLE)
    ranked = rank_plan(program, "hotfix_rollout")
    # (tests/golden/rank/deploy_plans.txt: carlang rank on the same file)
    assert [(s.proposal_id, round(s.score, 4)) for s in ranked] == [
        ("fast_path", 0.7357),
        ("safe_path", 0.7146),
        ("careful_path", 0.6261),
    ]
    assert rank_plan(program, program.plans[0]) == ranked


def test_a_wrong_plan_or_a_path_for_a_program_is_a_clear_error() -> None:
    program = compile_or_raise(EXAMPLE)
    with pytest.raises(KeyError, match="no plan is called 'hotfix'"):
        rank_plan(program, "hotfix")
    # a path where the program goes raised AttributeError: 'str' object has no attribute 'plan'
    with pytest.raises(TypeError, match="rank_plan takes a compiled Program, not str"):
        rank_plan(str(EXAMPLE), "hotfix_rollout")  # type: ignore[arg-type]
