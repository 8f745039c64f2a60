"""`rank`: candidates scored and ordered, best first; `rank_plan` for a program's plans."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..columns import Columns
from ..ir import ActionProposal, Plan, Policy, Program, load_proposal
from ..ir.fastload import PlainColumns, decode_plain_array, load_fresh
from ..ir.load import gc_paused
from ..jsontext import parse_json
from ..policy import PolicySet
from ..verify import ToolsArg, load_state, tool_set
from .config import PlannerConfig
from .feedback import ToolFeedback
from .governance import Governance
from .montecarlo import BatchRunner
from .score import ScoredProposal, ScoringContext, score_candidate

__all__ = ["rank", "pick_best", "plan_config", "rank_plan"]

PoliciesArg = PolicySet | Sequence[PolicySet] | Iterable[Policy] | None
CandidatesArg = Sequence[ActionProposal | Mapping[str, Any] | str] | str


def rank(
    candidates: CandidatesArg,
    tools: ToolsArg = None,
    state: Mapping[str, Any] | str | None = None,
    config: PlannerConfig | None = None,
    feedback: ToolFeedback | None = None,
    policies: PoliciesArg = None,
    *,
    governance: Governance | None = None,
    monte_carlo_cache: dict[tuple[Any, ...], Any] | None = None,
    monte_carlo_batches: BatchRunner | None = None,
) -> list[ScoredProposal]:
    """Score every candidate and order them best first: valid before invalid, then by score;
    equal scores go to the candidate with fewer actions (as car-runtime orders them), then to
    the earlier one. Nothing runs.

    `candidates`: proposals (models, dicts, JSON texts) or one JSON array of them. `tools`,
    `state`: as for `verify`. `config`: weights and targets (default `PlannerConfig()`).
    `feedback`: tool history (enables historical confidence, durations, Monte Carlo).
    `policies`: `PolicySet`s or policies, judged against each action beforehand.
    `governance`: the capabilities and budgets candidates run under. `monte_carlo_cache`:
    a dict that keeps Monte Carlo results across calls on the same proposal objects (an
    experiment ranking one dataset at many weights). `monte_carlo_batches`: where the batches
    of a large Monte Carlo estimate run (default: here; see `MonteCarloJob`).
    """
    # Scoring builds many small acyclic objects; the collector's passes over them would cost
    # as much as the scoring (see `gc_paused`).
    with gc_paused():
        proposals = _load_candidates(candidates)
        on = ScoringContext(
            tools=tool_set(tools),
            state=load_state(state),
            config=config or PlannerConfig(),
            feedback=feedback,
            policies=_policy_sets(policies),
            governance=governance or Governance(),
            monte_carlo_cache=monte_carlo_cache,
            monte_carlo_batches=monte_carlo_batches,
        )
        scored = [score_candidate(i, p, on, cols) for i, (p, cols) in enumerate(proposals)]
    return sorted(scored, key=lambda s: (not s.valid, -s.score, s.action_count, s.index))


def pick_best(*args: Any, **kwargs: Any) -> ScoredProposal | None:
    """The best valid candidate (`rank`'s arguments), or None when none is valid."""
    ranked = rank(*args, **kwargs)
    return ranked[0] if ranked and ranked[0].valid else None


def plan_config(plan: Plan, base: PlannerConfig | None = None) -> PlannerConfig:
    """The configuration a plan asks for: `base` aimed at its cost target, then its
    `set` lines. Raises `SettingError` for a setting the planner does not have."""
    config = base or PlannerConfig()
    if plan.cost_target is not None:
        config = config.with_cost_target(plan.cost_target)
    return config.with_settings(plan.settings) if plan.settings else config


def rank_plan(
    program: Program,
    plan: Plan | str,
    *,
    config: PlannerConfig | None = None,
    feedback: ToolFeedback | None = None,
    state: Mapping[str, Any] | None = None,
) -> list[ScoredProposal]:
    """Rank a program's plan: its candidates against the program's tools, initial state (with
    `state` over it), policies, capabilities and budgets. `config` is used as given; without
    it, the plan's own (`plan_config(plan)`)."""
    if not isinstance(program, Program):  # (a path gave AttributeError: 'str' ... 'plan')
        raise TypeError(
            f"rank_plan takes a compiled Program, not {type(program).__name__}: compile a"
            " .car file with carlang.compiler.compile_or_raise(path), or load a program's JSON"
            " with Program.model_validate_json(text)"
        )
    if isinstance(plan, str):
        found = program.plan(plan)
        if found is None:
            raise KeyError(f"no plan is called '{plan}'")
        plan = found
    candidates = []
    for name in plan.candidates:
        proposal = program.proposal(name)
        if proposal is None:
            raise KeyError(f"plan {plan.name} names no proposal '{name}'")
        candidates.append(proposal)
    return rank(
        candidates,
        program.tools,
        {**program.initial_state, **(state or {})},
        config if config is not None else plan_config(plan),
        feedback,
        PolicySet(program.policies, tools=program.tools),
        governance=Governance.from_program(program),
    )


def _load_candidates(candidates: CandidatesArg) -> list[tuple[ActionProposal, Columns | None]]:
    """Each candidate, with its columns when they came from JSON text without a model per
    action (`ir.fastload`)."""
    if isinstance(candidates, (str, bytes)):
        fast = decode_plain_array(candidates) or []
        plains = [plain for plain in fast if plain is not None]
        if plains and len(plains) == len(fast):  # else the json path decides, as without msgspec
            return [(plain.proposal, Columns.of_plain(plain)) for plain in plains]
        data = parse_json(candidates)
        if not isinstance(data, list):
            raise TypeError("candidates as JSON text must be an array of proposals")
        return [_load(item, fresh=True) for item in data]
    return [
        (c, None) if isinstance(c, ActionProposal) else _load(c, isinstance(c, (str, bytes)))
        for c in candidates
    ]


def _load(candidate: Any, fresh: bool) -> tuple[ActionProposal, Columns | None]:
    """A candidate loaded by columns when it is `fresh` (JSON text, or JSON decoded here, whose
    maps and lists may become the columns) and its actions are plain; else by `load_proposal`,
    whose errors stay what they were (a caller's own mapping is always validated)."""
    if not fresh:
        return load_proposal(candidate), None
    loaded = load_fresh(candidate)
    if isinstance(loaded, PlainColumns):
        return loaded.proposal, Columns.of_plain(loaded)
    return loaded, None


def _policy_sets(policies: PoliciesArg) -> list[PolicySet]:
    if policies is None:
        return []
    if isinstance(policies, PolicySet):
        return [policies]
    items = list(policies)
    sets = [item for item in items if isinstance(item, PolicySet)]
    plain = [item for item in items if not isinstance(item, PolicySet)]
    return [*sets, PolicySet(plain)] if plain else sets
