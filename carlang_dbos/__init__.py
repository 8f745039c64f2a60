"""Durable, distributed carlang runs on DBOS Transact (the `carlang[dbos]` extra).

This package imports the runtime (`carlang_runtime`); the runtime never imports it. See
docs/scale-out.md for the model: a run is a DBOS workflow, each tool call's result (and its
admission decision, when a replay could decide otherwise) a DBOS step, an approval a durable wait.
"""

from __future__ import annotations

from .backend import (
    APP_NAME,
    APP_VERSION,
    DATABASE_FORMS,
    DEFAULT_DATABASE,
    RUNS_QUEUE,
    STEP_LAYOUT,
    WORKFLOW,
    ApprovalWatcher,
    DbosSteps,
    DurableApprovals,
    RunSpec,
    approval_topic,
    check_approval_timeout,
    check_database,
    check_tools,
    has_password,
    launch,
    make_spec,
    migrate,
    prepare_database,
    quiet_dbos,
    run,
    shown_url,
    shutdown,
    start_run,
    submit,
    submit_many,
)
from .control import (
    RunInfo,
    answer_approval,
    cancel_run,
    list_runs,
    pending_approvals,
    resume_run,
    show_run,
)
from .experiments import PLANNER_QUEUE, Experiments

__all__ = [
    "APP_NAME",
    "APP_VERSION",
    "STEP_LAYOUT",
    "DEFAULT_DATABASE",
    "DATABASE_FORMS",
    "WORKFLOW",
    "ApprovalWatcher",
    "DbosSteps",
    "DurableApprovals",
    "RunSpec",
    "RunInfo",
    "approval_topic",
    "check_approval_timeout",
    "check_database",
    "check_tools",
    "has_password",
    "migrate",
    "prepare_database",
    "quiet_dbos",
    "answer_approval",
    "cancel_run",
    "launch",
    "make_spec",
    "list_runs",
    "pending_approvals",
    "resume_run",
    "show_run",
    "run",
    "shown_url",
    "shutdown",
    "start_run",
    "submit",
    "submit_many",
    "RUNS_QUEUE",
    "PLANNER_QUEUE",
    "Experiments",
]
