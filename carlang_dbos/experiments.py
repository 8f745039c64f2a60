"""Planner experiments on the workers: a sweep's grid points, a large Monte Carlo estimate's
trials and a settings search's configs, split into batches, each batch a workflow on the queue
`carlang_planner` that any `carlang worker` takes. The results are exactly the in-process
ones: a batch of grid points is ranked as the in-process sweep ranks each point, a Monte Carlo
batch draws from the stream `MonteCarloJob` gives it wherever it runs, and a search's batch
(`SearchBatch`) is judged by the same code as in process.

The submitting process needs no DBOS of its own: it enqueues through a `DBOSClient` and waits.
A batch's workflow id is a digest of its inputs (and carlang's version), so running the same
experiment again, after the submitter died say, picks up the batches already done.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from carlang_runtime import __version__
from carlang_runtime.errors import CarlangRuntimeError
from carlang_runtime.experiments import Task, rank_task
from carlang_runtime.experiments.search import SearchBatch
from carlang_runtime.ir import ActionProposal, Budget, Capability, Plan, Policy, ToolSchema
from carlang_runtime.planner import Governance, PlannerConfig, ToolFeedback
from carlang_runtime.planner.montecarlo import BatchCounts, MonteCarloJob
from carlang_runtime.planner.score import ScoredProposal
from carlang_runtime.planner.sweep import Axis, SweepPoint, grid
from carlang_runtime.policy import PolicySet
from dbos import DBOS, DBOSClient
from pydantic import TypeAdapter

from . import records
from .backend import (
    PLANNER_QUEUE,
    POLLING_INTERVAL,
    SEEN_WITHIN_S,
    WorkerLook,
    app_version,
    check_database,
    migrate,
    opening,
    prepare_database,
    shown_url,
    sqlite_problem,
    start_a_worker,
)

__all__ = [
    "PLANNER_QUEUE",
    "RANK_WORKFLOW",
    "MONTE_CARLO_WORKFLOW",
    "SEARCH_WORKFLOW",
    "DEFAULT_SWEEP_BATCH",
    "Experiments",
    "task_document",
    "task_from_document",
]

#: The workflow that ranks a batch of a sweep's grid points.
RANK_WORKFLOW = "carlang_rank_batch"
#: The workflow that runs one batch of a Monte Carlo estimate's trials.
MONTE_CARLO_WORKFLOW = "carlang_monte_carlo_batch"
#: The workflow that judges one batch of a settings search's configs.
SEARCH_WORKFLOW = "carlang_search_batch"
#: Grid points per batch when none is asked for.
DEFAULT_SWEEP_BATCH = 10

_POLICY: TypeAdapter[Policy] = TypeAdapter(Policy)


# -- tasks as JSON data -------------------------------------------------------------------------


def task_document(task: Task) -> dict[str, Any]:
    """A ranking task as JSON data (`task_from_document` reads it back): its candidates,
    tools, state, policies (shadow ones marked), capabilities, budgets and plan."""
    return {
        "id": task.id,
        "candidates": [c.model_dump(mode="json") for c in task.candidates],
        "tools": _tools_document(task.tools),
        "state": dict(task.state),
        "policies": [_policies_document(p) for p in task.policies],
        "governance": {
            "capabilities": [
                c.model_dump(mode="json") for c in task.governance.capabilities.values()
            ],
            "budgets": [b.model_dump(mode="json") for b in task.governance.budgets.values()],
            "capability": _dump(task.governance.capability),
            "budget": _dump(task.governance.budget),
        },
        # only what the plan wrote: a cost target's unset fields are not the plan's settings
        # (`target actions 3` alone must not fix cost_weight on the workers either)
        "plan": task.plan.model_dump(mode="json", exclude_unset=True) if task.plan else None,
    }


def task_from_document(document: Mapping[str, Any]) -> Task:
    """A task written by `task_document`."""
    governance = document["governance"]
    tools = document["tools"]
    return Task(
        id=document["id"],
        candidates=[ActionProposal.model_validate(c) for c in document["candidates"]],
        tools=(
            [ToolSchema.model_validate(t) for t in tools["schemas"]]
            if isinstance(tools, Mapping)
            else tools
        ),
        state=dict(document["state"]),
        policies=[_policies_from(p) for p in document["policies"]],
        governance=Governance.of(
            [Capability.model_validate(c) for c in governance["capabilities"]],
            [Budget.model_validate(b) for b in governance["budgets"]],
            capability=_load(Capability, governance["capability"]),
            budget=_load(Budget, governance["budget"]),
        ),
        plan=_load(Plan, document["plan"]),
    )


def _dump(model: Any) -> Any:
    return None if model is None else model.model_dump(mode="json")


def _load(kind: Any, document: Any) -> Any:
    return None if document is None else kind.model_validate(document)


def _tools_document(tools: Any) -> Any:
    if tools is None or isinstance(tools, str):
        return tools
    items = list(tools) if not isinstance(tools, Mapping) else None
    if items is None:
        raise CarlangRuntimeError("internal error: a task's tools cannot be sent to workers")
    if items and all(isinstance(t, ToolSchema) for t in items):
        return {"schemas": [t.model_dump(mode="json") for t in items]}
    if all(isinstance(t, (str, Mapping)) for t in items):
        return [t if isinstance(t, str) else dict(t) for t in items]
    raise CarlangRuntimeError("internal error: a task's tools cannot be sent to workers")


def _policies_document(policies: PolicySet) -> dict[str, Any]:
    shadow = policies.shadow.declared if policies.shadow is not None else []
    enforced = policies.declared[: len(policies.declared) - len(shadow)]
    return {
        "policies": [p.model_dump(mode="json") for p in enforced]
        + [p.model_copy(update={"shadow": True}).model_dump(mode="json") for p in shadow],
        "tools": [t.model_dump(mode="json") for t in policies.tools.values()],
        "check": policies.check,
    }


def _policies_from(document: Mapping[str, Any]) -> PolicySet:
    return PolicySet(
        (_POLICY.validate_python(p) for p in document["policies"]),
        tools=[ToolSchema.model_validate(t) for t in document["tools"]],
        check=bool(document["check"]),
    )


# -- the workflows the workers run --------------------------------------------------------------


@DBOS.workflow(name=RANK_WORKFLOW)
def rank_batch(
    task: dict[str, Any],
    config: dict[str, Any],
    feedback: dict[str, Any] | None,
    points: list[dict[str, float]],
) -> list[list[dict[str, Any]]]:
    """Rank `task` at each of `points` (settings over `config`), as the in-process sweep
    does: its rankings, as JSON data. Deterministic, so a worker that died is simply
    replaced: the batch runs again from the start."""
    loaded = task_from_document(task)
    base = PlannerConfig.model_validate(config)
    history = ToolFeedback.from_document(feedback) if feedback is not None else None
    cache: dict[tuple[Any, ...], Any] = {}  # Monte Carlo results, shared across the points
    return [
        [
            s.model_dump(mode="json")
            for s in rank_task(loaded, base.with_settings(at), history, cache, own_settings=False)
        ]
        for at in points
    ]


@DBOS.workflow(name=MONTE_CARLO_WORKFLOW)
def monte_carlo_batch(job: dict[str, Any], index: int) -> dict[str, Any]:
    """Batch `index` of a Monte Carlo estimate: its counts, as JSON data."""
    return MonteCarloJob.from_document(job).run_batch(index).to_document()


@DBOS.workflow(name=SEARCH_WORKFLOW)
def search_batch(batch: dict[str, Any]) -> list[float | None]:
    """A search's batch of configs (`SearchBatch.to_document`): each config's objective."""
    values: list[float | None] = SearchBatch.from_document(batch).run()
    return values


# -- the submitting side ------------------------------------------------------------------------


#: The statuses of a batch's workflow that are final: its result (or error) is there.
_FINISHED = frozenset({"SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"})
#: How often the wait looks at the batches' statuses, in seconds.
_POLL_S = 0.2


@dataclass
class Experiments:
    """Planner work sent to the workers of `database` (see the module's docstring). Use it
    in a `with` block (it holds a connection).

    `progress` is told, a line at a time, what goes on: once, when the first tasks go to the
    workers (where, and how to start a worker); when no worker serving the queue has been
    seen for `notice_after` seconds while tasks wait (a worker says it is alive every few
    seconds: `records.beat`), and when one is seen again; and at the end, how many tasks there
    were in all, how many were queued now and how many an earlier run of the same experiment
    had queued or already done (a batch's workflow id is a digest of its inputs: those are
    collected, not queued again)."""

    database: str
    progress: Callable[[str], None] | None = None
    notice_after: float = 10.0
    _client: DBOSClient | None = None
    _queued: int = 0  # tasks queued by this process
    _earlier: int = 0  # tasks an earlier run queued, unfinished when this one looked
    _done: int = 0  # tasks already done when this one looked
    _started: bool = False  # whether the first line was said
    _failed: bool = False

    def __enter__(self) -> Experiments:
        problem = sqlite_problem() if self.database.startswith("sqlite:") else None
        if problem is not None:
            raise CarlangRuntimeError(problem)
        # A Postgres database must exist (a mistyped name is refused, not created: no worker
        # would serve a new one, and the wait for them would never end).
        prepare_database(check_database(self.database))
        migrate(self.database)  # a fresh database gets DBOS's tables
        with opening(self.database):
            self._client = DBOSClient(system_database_url=self.database)
            self._client.register_queue(
                PLANNER_QUEUE,
                polling_interval_sec=POLLING_INTERVAL[PLANNER_QUEUE],
                on_conflict="never_update",
            )
        return self

    def __exit__(self, kind: object, error: BaseException | None, _trace: object) -> None:
        if self._client is not None:
            self._client.destroy()
            self._client = None
            records.dispose(self.database)
        total = self._queued + self._earlier + self._done
        if total and _ended_well(error) and not self._failed:
            counts = [
                f"{self._queued} queued now" if self._queued else "",
                f"{self._earlier} queued by an earlier run" if self._earlier else "",
                f"{self._done} done by an earlier run, collected" if self._done else "",
            ]
            self._say(
                f"done: {total} task(s) on {PLANNER_QUEUE} in {self._shown}"
                f" ({', '.join(c for c in counts if c)})"
            )

    @property
    def _shown(self) -> str:
        return shown_url(self.database)

    def _say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)

    def _start_a_worker(self) -> str:
        """The command that starts a worker on this database (its password left to the
        environment, never shown)."""
        return start_a_worker(self.database)

    def _worker_look(self) -> WorkerLook:
        """The look for a worker serving the planner queue, saying what it finds (`progress`),
        over the last `notice_after` seconds (at least three heartbeats)."""
        within = max(self.notice_after, SEEN_WITHIN_S)
        return WorkerLook(self.database, PLANNER_QUEUE, self._say, within)

    def sweep(
        self,
        task: Task,
        config: PlannerConfig,
        feedback: ToolFeedback | None,
        axes: Sequence[Axis],
        batch: int = DEFAULT_SWEEP_BATCH,
    ) -> list[SweepPoint]:
        """The sweep's points, each ranked on a worker (`batch` points per task): what
        `planner.sweep.sweep` gives in process."""
        settings = grid(axes)
        fixed = [
            task_document(task),
            config.model_dump(mode="json"),
            feedback.to_document() if feedback is not None else None,
        ]
        batches = [settings[i : i + batch] for i in range(0, len(settings), max(batch, 1))]
        results = self._run(RANK_WORKFLOW, [[*fixed, points] for points in batches])
        ranked = [
            [ScoredProposal.model_validate(s) for s in point]
            for result in results
            for point in result
        ]
        return [SweepPoint(at, r) for at, r in zip(settings, ranked, strict=True)]

    def monte_carlo(self, job: MonteCarloJob) -> list[BatchCounts]:
        """A `BatchRunner`: a job of one batch runs here; a larger one's batches on the
        workers."""
        count = len(job.batch_sizes())
        if count == 1:
            return [job.run_batch(0)]
        document = job.to_document()
        results = self._run(MONTE_CARLO_WORKFLOW, [[document, i] for i in range(count)])
        return [BatchCounts.from_document(r) for r in results]

    def search(self, batches: Sequence[SearchBatch]) -> list[list[float | None]]:
        """A `SearchBatchRunner`: every batch of configs judged on a worker, results in order."""
        return self._run(SEARCH_WORKFLOW, [[b.to_document()] for b in batches])

    def _run(self, workflow: str, batches: list[list[Any]]) -> list[Any]:
        """Enqueue one workflow per batch of arguments (unless an earlier run did: then it is
        collected); their results, in order."""
        try:
            return self._wait(self._enqueue(workflow, batches))
        except BaseException:
            self._failed = True
            raise

    def _enqueue(self, workflow: str, batches: list[list[Any]]) -> list[str]:
        client = self._client
        if client is None:
            raise CarlangRuntimeError("internal error: Experiments used outside `with`")
        ids = [
            f"{workflow}-{_digest([workflow, __version__, arguments])}-{number}"
            for number, arguments in enumerate(batches)
        ]
        known = {
            w.workflow_id: str(w.status)
            for w in client.list_workflows(workflow_ids=ids, load_input=False, load_output=False)
        }
        version = app_version()  # a worker of this version takes them (`WorkerLook` too)
        for workflow_id, arguments in zip(ids, batches, strict=True):
            if workflow_id in known:
                continue
            client.enqueue(
                {
                    "workflow_name": workflow,
                    "queue_name": PLANNER_QUEUE,
                    "workflow_id": workflow_id,
                    "app_version": version,
                },
                *arguments,
            )
        done = sum(status in _FINISHED for status in known.values())
        self._queued += len(ids) - len(known)
        self._earlier += len(known) - done
        self._done += done
        if len(ids) > done and not self._started:
            self._started = True
            self._say(
                f"sending tasks to {PLANNER_QUEUE} in {self._shown}: the workers on it take"
                f" them (start one with: {self._start_a_worker()})"
            )
        return ids

    def _wait(self, ids: list[str]) -> list[Any]:
        """The results of the workflows `ids`, in order, once each has finished; saying so
        (`progress`) when no worker serving the queue is seen while they wait."""
        client = self._client
        assert client is not None
        waiting = set(ids)
        started = time.monotonic()
        look_at = started + self.notice_after  # when to look for workers next
        workers = self._worker_look()
        while True:
            statuses = client.list_workflows(
                workflow_ids=sorted(waiting), load_input=False, load_output=False
            )
            for status in statuses:
                if str(status.status) in _FINISHED:
                    waiting.discard(status.workflow_id)
                    if str(status.status) != "SUCCESS":  # failed: said now, not after the rest
                        self._result(ids, status.workflow_id)
            if not waiting:
                break
            now = time.monotonic()
            if now >= look_at:
                look_at = now + records.HEARTBEAT_S
                workers.look(f"{len(waiting)} task(s) wait for one")
            time.sleep(_POLL_S)
        return [self._result(ids, workflow_id) for workflow_id in ids]

    def _result(self, ids: list[str], workflow_id: str) -> Any:
        """The result of a finished batch, or `CarlangRuntimeError` saying which failed."""
        assert self._client is not None
        try:
            return self._client.retrieve_workflow(workflow_id).get_result()
        except Exception as exc:  # a worker's failure, re-raised here: say which batch
            number = ids.index(workflow_id) + 1
            raise CarlangRuntimeError(
                f"batch {number} of {len(ids)} failed on a worker: {exc}"
            ) from None


def _ended_well(error: BaseException | None) -> bool:
    """Whether a `with` block ended well: no error, or an exit with status 0 (how the CLI ends
    a sweep that went well: click's `Exit`, or `SystemExit`)."""
    if error is None:
        return True
    if isinstance(error, SystemExit):
        return error.code in (0, None)
    return getattr(error, "exit_code", 1) == 0


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]
