"""Datasets of ranking tasks: each task is a set of candidate plans ranked together against its
tools, state, policies and budgets.

A task comes from a program's plan (`task_from_plan`), from CAR JSON proposals (a file holding
one proposal, an array of them, or a group `{"id": ..., "candidates": [...]}`), or from one
line of a JSONL file of groups (`load_groups`): `{"id": "t1", "candidates": [...], "state":
{...}, "tools": [...]}` (state and tools optional). Task ids must be unique in a dataset.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from pydantic import TypeAdapter, ValidationError

from ..errors import CarlangRuntimeError
from ..ir import ActionProposal, Plan, Policy, Program, load_proposal
from ..ir.load import validation_problems
from ..ir.program import BuiltinRule, CelPolicy
from ..jsontext import JsonPosition, JsonTextError, loads, locate, parse_json
from ..planner import Governance, PlannerConfig, ScoredProposal, ToolFeedback, plan_config, rank
from ..planner.montecarlo import BatchRunner
from ..policy import PolicySet
from ..suggest import did_you_mean
from ..textfile import InputFileError, read_input
from ..verify import ToolsArg, tool_set

__all__ = [
    "Task",
    "DatasetError",
    "task_from_plan",
    "tasks_from_program",
    "load_groups",
    "load_proposals",
    "load_stdin",
    "rank_task",
    "check_unique",
    "not_a_dataset",
]


_POLICY: TypeAdapter[Policy] = TypeAdapter(Policy)
#: The `rule` each kind of IR policy has (the union's tag).
_POLICY_KINDS = frozenset(
    kind.model_fields["rule"].default for kind in (CelPolicy, *get_args(BuiltinRule))
)


class DatasetError(CarlangRuntimeError):
    """A dataset that cannot be read: says where and what is wrong."""


@dataclass(frozen=True)
class Task:
    """One ranking problem: candidates and everything they are judged against. `settings`
    are the plan's own (its cost target and `set` lines), applied over the dataset's config."""

    id: str
    candidates: Sequence[ActionProposal]
    tools: ToolsArg = None
    state: Mapping[str, Any] = field(default_factory=dict)
    policies: Sequence[PolicySet] = ()
    governance: Governance = field(default_factory=Governance)
    plan: Plan | None = None
    #: Where it was read (`file:line:col` of a group's id, a file), for errors; "" unknown.
    origin: str = ""

    def config(self, base: PlannerConfig) -> PlannerConfig:
        """The config this task is ranked with: `base`, then its plan's own settings."""
        return plan_config(self.plan, base) if self.plan is not None else base


def rank_task(
    task: Task,
    config: PlannerConfig,
    feedback: ToolFeedback | None = None,
    monte_carlo_cache: dict[tuple[Any, ...], Any] | None = None,
    *,
    own_settings: bool = True,
    monte_carlo_batches: BatchRunner | None = None,
) -> list[ScoredProposal]:
    """Rank one task's candidates, best first (see `planner.rank` for the order): with
    `config` and then the plan's own settings, or `config` alone (`own_settings=False`).
    `monte_carlo_batches`: where a large Monte Carlo estimate's batches run (default: here)."""
    return rank(
        task.candidates,
        task.tools,
        dict(task.state),
        task.config(config) if own_settings else config,
        feedback,
        list(task.policies),
        governance=task.governance,
        monte_carlo_cache=monte_carlo_cache,
        monte_carlo_batches=monte_carlo_batches,
    )


def task_from_plan(program: Program, plan: Plan, task_id: str | None = None) -> Task:
    """A program's plan as a task (its candidates, the program's tools, initial state,
    policies, capabilities and budgets)."""
    candidates = []
    for name in plan.candidates:
        proposal = program.proposal(name)
        if proposal is None:
            raise DatasetError(f"plan {plan.name} names no proposal '{name}'")
        candidates.append(proposal)
    return Task(
        id=task_id or plan.name,
        candidates=candidates,
        tools=program.tools,
        state=dict(program.initial_state),
        policies=[PolicySet(program.policies, tools=program.tools)],
        governance=Governance.from_program(program),
        plan=plan,
        origin=str(plan.loc) if plan.loc is not None else "",
    )


def tasks_from_program(program: Program, prefix: str = "") -> list[Task]:
    """Every plan of a program as a task (ids `prefix` + plan name); a program without plans
    gives one task of all its proposals."""
    plans = list(program.plans) or [
        Plan(name="(all proposals)", candidates=[p.id for p in program.proposals])
    ]
    return [task_from_plan(program, plan, prefix + plan.name) for plan in plans]


@dataclass(frozen=True)
class _Where:
    """Where a document is read from: its file, its text and, for a line of a JSONL file, that
    line's number; `at` names a place in it as `file:line:col`."""

    file: str
    text: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    def at(self, path: Sequence[str | int], position: JsonPosition | None = None) -> str:
        """`file:line:col` of the value at `path` (or of `position`, in the text)."""
        if self.text is None:
            return str(self)
        found = position or locate(self.text, path)
        return f"{self.file}:{found.line + (self.line or 1) - 1}:{found.column}"


def _proposals(items: Any, where: _Where, base: list[str | int] | None) -> list[ActionProposal]:
    """The candidates `items`, each at `[*base, position]` of the document (`base` None: the
    document is the one candidate)."""
    if not isinstance(items, list) or not items:
        raise DatasetError(f"{where}: candidates must be a non-empty array of proposals")
    out: list[ActionProposal] = []
    first_at: dict[str, int] = {}
    for position, item in enumerate(items):
        try:
            out.append(load_proposal(item))
        except CarlangRuntimeError as exc:
            at = _problem_at(item, where, [] if base is None else [*base, position])
            raise DatasetError(f"{at}: candidate {position + 1}: {exc}") from None
        first = first_at.setdefault(out[-1].id, position)
        if first != position:  # rows no one could tell apart, outcomes joined to either
            raise DatasetError(
                f"{where}: candidates {first + 1} and {position + 1} have the id"
                f" `{out[-1].id}`: a task's candidate ids must be unique (rename one)"
            )
    return out


def _problem_at(item: Any, where: _Where, path: list[str | int]) -> str:
    """`file:line:col` of the first problem of a candidate that is no proposal, as `verify`
    places it (a pretty-printed group's `"max_retries": -1` at its line)."""
    if isinstance(item, Mapping) and set(item) == {"proposal"}:  # (CAR's wrapper)
        item, path = item["proposal"], [*path, "proposal"]
    if isinstance(item, Mapping) and where.text is not None:
        try:
            ActionProposal.model_validate(item)
        except ValidationError as exc:
            [first, *_] = validation_problems(exc, item, where.text, path)
            return where.at(path, first.position)
    return where.at(path)


#: What a group (a task of a dataset) holds.
_GROUP_KEYS = ("id", "candidates", "tools", "state", "policies")


def _group(document: Any, where: _Where, default_id: str) -> Task:
    if isinstance(document, list):
        return Task(id=default_id, candidates=_proposals(document, where, []), origin=str(where))
    if not isinstance(document, Mapping):
        raise DatasetError(f"{where}: expected a proposal, an array of them or a group")
    if "candidates" not in document:
        if "actions" not in document:  # (a proposal's "actions: field required" misled)
            raise DatasetError(
                f"{where}: no `candidates`: a task is a group, like"
                ' {"id": "t1", "candidates": [...]}, or a proposal (with `actions`)'
            )
        return Task(
            id=default_id, candidates=_proposals([document], where, None), origin=str(where)
        )
    unknown = [key for key in document if key not in _GROUP_KEYS]
    if unknown:  # `polices` would quietly rank without the policies
        hint = did_you_mean(str(unknown[0]), _GROUP_KEYS, "`")
        keys = ", ".join(f"`{key}`" for key in _GROUP_KEYS)
        raise DatasetError(
            f"{where}: a group has no key `{unknown[0]}` ({hint or f'it takes {keys}'})"
        )
    task_id = document.get("id", default_id)
    if not isinstance(task_id, str) or not task_id:
        raise DatasetError(f"{where}: a group's id must be a non-empty string")
    state = document.get("state") or {}
    if not isinstance(state, Mapping):
        raise DatasetError(f"{where}: a group's state must be an object")
    candidates = _proposals(document["candidates"], where, ["candidates"])
    return Task(
        id=task_id,
        candidates=candidates,
        tools=_tools(document.get("tools"), where),
        state=dict(state),
        policies=_policies(document.get("policies") or [], where),
        origin=where.at(["id"]) if "id" in document else str(where),
    )


def _tools(tools: Any, where: _Where) -> Any:
    """A group's `tools`, checked now (the ranking would read them later, and say less of
    where they came from): tool names or tool schemas, in an array."""
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise DatasetError(
            f"{where}: a group's tools must be an array of tool names or tool schemas,"
            f' like ["fetch"], not {json.dumps(tools)[:60]}'
        )
    try:
        tool_set(tools)
    except CarlangRuntimeError as exc:
        raise DatasetError(f"{where}: invalid tools: {exc}") from None
    return tools


def _policies(items: Any, where: _Where) -> list[PolicySet]:
    if not items:
        return []
    if not isinstance(items, list):
        raise DatasetError(f"{where}: policies must be an array of IR policies")
    policies = []
    for position, item in enumerate(items, 1):
        try:
            policies.append(_POLICY.validate_python(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            at = ".".join(str(part) for part in first["loc"][1:])  # (past the union's tag)
            name = item.get("name") if isinstance(item, Mapping) else None
            which = f"policy {position}" + (f" (`{name}`)" if isinstance(name, str) else "")
            if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
                kinds = ", ".join(sorted(_POLICY_KINDS))
                problem = f"its `rule` must be one of {kinds}"
            else:
                problem = f"{at}: {first['msg']}" if at else first["msg"]
            raise DatasetError(f"{where}: invalid {which}: {problem}") from None
    try:
        return [PolicySet(policies)]
    except CarlangRuntimeError as exc:
        raise DatasetError(f"{where}: invalid policy: {exc}") from None


def load_proposals(path: Path, text: str | None = None) -> Task:
    """A CAR JSON file as one task: a proposal, an array of proposals, or a group (`text`:
    the file's, when it is read already)."""
    text = read_input(path) if text is None else text
    try:
        document = parse_json(text)
    except JsonTextError as exc:  # (NaN, a lone surrogate, ...: what verify refuses too)
        raise DatasetError(f"{path}:{exc}") from None
    return _group(document, _Where(str(path), text), _stem(path))


def load_groups(path: Path, text: str | None = None) -> list[Task]:
    """A JSONL file of candidate groups, one task per line (blank lines ignored; `text`: the
    file's, when it is read already)."""
    lines = (read_input(path) if text is None else text).splitlines()
    tasks = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = _Where(str(path), line, number)
        try:
            document = parse_json(line)
        except JsonTextError as exc:
            raise DatasetError(f"{where}:{exc.position.column}: {exc.message}") from None
        tasks.append(_group(document, where, f"{_stem(path)}:{number}"))
    return check_unique(tasks)


def load_stdin(path: Path) -> list[Task]:
    """The tasks of standard input (`path` is `-`): JSONL groups, one per line, when its
    first line is a JSON document and another follows; else one CAR JSON document (a
    proposal, an array of them, or a group, pretty-printed or not)."""
    text = read_input(path)
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        jsonl = len(lines) > 1 and parse_json(lines[0]) is not None
    except JsonTextError:
        jsonl = False
    return load_groups(path, text) if jsonl else [load_proposals(path, text)]


def _stem(path: Path) -> str:
    """The default id of a file's tasks: its name's stem (`stdin` for `-`)."""
    return "stdin" if str(path) == "-" else path.stem


def check_unique(tasks: Iterable[Task]) -> list[Task]:
    """The tasks, refusing two with one id (outcomes are joined by id), at the second's place
    and naming the first's."""
    seen: dict[str, Task] = {}
    for task in tasks:
        first = seen.get(task.id)
        if first is not None:
            at = f"{task.origin}: " if task.origin else ""
            also = f" (the first at {first.origin})" if first.origin else ""
            raise DatasetError(
                f"{at}two tasks are called '{task.id}'{also}: task ids must be unique (rename"
                " one: a group's `id`, a plan's name)"
            )
        seen[task.id] = task
    return list(seen.values())


def not_a_dataset(path: Path) -> str | None:
    """What a `.json` or `.jsonl` file is when it is recognisably another of carlang's files
    (an event log, `planner learn`'s feedback, `planner search -o`'s output, a planner
    config, the JSON output of `rank`, `rank --sweep` or `planner eval`), with the option
    that takes it; None for anything else (a dataset, or a file its loader will say is a bad
    one)."""
    try:
        text = read_input(path)
        if path.suffix == ".jsonl":
            document = loads(next((line for line in text.splitlines() if line.strip()), ""))
        else:
            document = loads(text)
    except (InputFileError, ValueError):
        return None
    if isinstance(document, list) and document and isinstance(document[0], dict):
        if {"settings", "winner", "ranking"} <= document[0].keys():
            return "a sweep's output (`carlang rank --sweep --format json`'s)"
    if not isinstance(document, dict) or not document:
        return None
    if "candidates" in document or "actions" in document:
        return None
    if {"tasks", "carlang_version", "rows"} <= document.keys():
        return "a ranking's output (`carlang rank --format json`'s)"
    if {"tasks", "runs", "rankers"} <= document.keys():
        return "an evaluation's output (`planner eval --json`'s)"
    if path.suffix == ".jsonl" and isinstance(document.get("kind"), str):
        return "an event log of recorded runs (for --outcomes, or --feedback)"
    if "tool_success_rates" in document:
        return "a feedback file (`planner learn`'s, for --feedback)"
    if isinstance(document.get("config"), dict) and "best" in document:
        return "a search's output (`planner search -o`'s, for --config)"
    if all(key in PlannerConfig.model_fields for key in document):
        return "a planner config (for --config)"
    return None
