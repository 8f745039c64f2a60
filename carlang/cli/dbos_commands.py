"""Commands of the DBOS backend: `run --backend dbos` (through `run_durably`), `approve`, `deny`,
`runs list|show|cancel|resume` and `worker`. Each imports `carlang_dbos` (the `dbos` extra)
only when it runs, and says how to install it when it is missing."""

from __future__ import annotations

import json
import os
import shlex
import signal
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import EXIT_FAILED, EXIT_OK, echo, echo_err, fail_usage, guarded
from .mcp_commands import _stopped_as_by_ctrl_c

if TYPE_CHECKING:
    from carlang_runtime import ir

__all__ = ["register", "run_durably"]

#: The variable that names the runs database when `--database` does not (`_database`).
DATABASE_VARIABLE = "CARLANG_DATABASE"

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        metavar="URL",
        help="The runs database (sqlite:///runs.db or postgresql://...; default"
        f" ${DATABASE_VARIABLE}, else sqlite:///carlang-runs.db). A URL with a password is"
        f" better given in ${DATABASE_VARIABLE}, where commands and logs do not show it.",
    ),
]


_INSTALL = "pip install -e '.[dbos]' from a checkout, or pip install 'carlang-X.whl[dbos]'"


def _backend() -> Any:
    try:
        import carlang_dbos
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name == "dbos":
            fail_usage(f"the DBOS backend needs the dbos package: install it with {_INSTALL}")
        # Something dbos (or the backend) imports is missing or broken: its own words say what.
        fail_usage(f"the DBOS backend cannot be loaded ({exc}): reinstall it with {_INSTALL}")
    return carlang_dbos


def _database(database: str | None) -> str:
    """The runs database URL to use: `--database`, else `$CARLANG_DATABASE`, else the
    default; checked (`carlang_dbos.check_database`): a usage error with the accepted forms
    for one carlang cannot use. Every command that uses a runs database reads it here (`run
    --backend dbos` and `rank --backend dbos` too), and only then: the variable set does not
    make an in-process command's `--database` given."""
    backend = _backend()
    chosen: str = database or os.environ.get(DATABASE_VARIABLE) or backend.DEFAULT_DATABASE
    backend.check_database(chosen)
    return chosen


def run_durably(
    program: ir.Program,
    chosen: ir.ActionProposal,
    *,
    tools: list[str],
    events: Path | None,
    database: str | None,
    approval_timeout: float | None,
    compensate: bool,
    state: dict[str, Any] | None,
    detach: bool,
    as_json: bool = False,
    check_events: Callable[[], None] = lambda: None,
) -> tuple[ir.ProposalResult, str]:
    """Run `chosen` as a DBOS workflow; its result and run id (or, detached, print the id, or
    with `as_json` a JSON object of it, its queue and the notices, and exit). Everything that
    can be checked here is, before anything is recorded: the database URL, `--events` (not
    the runs database itself, then `check_events`: the in-process run's checks),
    `--approval-timeout`, and the `--tools` (loaded as the in-process engine loads them), so
    that a run that cannot work is refused (exit 2), not queued to fail.

    In the foreground this process runs its own run and nothing else: it takes no work from
    any queue (another's queued run, a call on a tool's queue), and its DBOS executor id is
    its own (`carlang_dbos.foreground_id`), so it recovers no one's runs as it starts, and
    no one takes its run as theirs. A call of a tool bound to a queue waits for a worker
    serving that queue (said on stderr when none is seen)."""
    backend = _backend()
    url = _database(database)
    runs_file = backend.database_file(url)
    if events is not None and runs_file is not None and events.resolve() == runs_file.resolve():
        fail_usage(
            f"--events {events} is the runs database ({backend.shown_url(url)}): name another"
            " file for the events (like run-events.db)"
        )
    check_events()
    if approval_timeout is not None:
        backend.check_approval_timeout(approval_timeout, "--approval-timeout")
    spec = backend.make_spec(
        program,
        chosen.id,
        tools=tools,
        events=events,
        approval_timeout=approval_timeout,
        compensate=compensate,
        state=state,
    )
    run_id = uuid.uuid4().hex[:16]
    if detach:  # queued for a worker; nothing here needs to stay up
        backend.submit(url, spec, run_id)
        # No worker serving its queue (or its tools' queues) seen: nothing would run it.
        notices = backend.unserved_queues(url, spec, run_id)
        if as_json:
            document = {"run_id": run_id, "queue": backend.RUNS_QUEUE, "notices": notices}
            echo(json.dumps(document, indent=2))
        else:
            echo(run_id)  # alone on stdout: what a script reads
        for line in notices:
            echo_err(f"note: {line}")
        raise typer.Exit(EXIT_OK)
    # DBOS's log lines stay out of the user's stderr: carlang reports what goes wrong. A
    # SIGTERM (or SIGHUP) stops the run as Ctrl-C does, leaving it resumable.
    stopped_by_signal = False
    with backend.quiet_dbos(), _stopped_as_by_ctrl_c() as caught:
        try:
            # Serving no queue, under an id of its own (a mistyped database name is refused,
            # not created).
            backend.launch(
                url,
                queues=[],
                executor=backend.foreground_id(run_id),
                create=False,
                notices=echo_err,
            )
            return backend.run(spec, run_id, on_approval=_approval_prompt(url)), run_id
        except KeyboardInterrupt:
            stopped_by_signal = True
            echo_err(_interrupted(url, run_id))
            raise typer.Exit(128 + (caught[0] if caught else signal.SIGINT)) from None
        except backend.RunStopped as stopped:
            resume = backend.resume_command(run_id, url)
            echo_err(f"{stopped}; resume with `{resume}`")
            raise typer.Exit(EXIT_FAILED) from None
        finally:
            # (stopped: the process ends, and waits for DBOS's threads a few seconds at most)
            backend.shutdown(_STOPPING_WAIT_S if stopped_by_signal else None)


#: How long a foreground run stopped by Ctrl-C (or SIGTERM) waits for DBOS to stop, in
#: seconds: the run waits in the database, and DBOS may take 10 s per thread it joins.
_STOPPING_WAIT_S = 5.0


def _interrupted(database: str, run_id: str) -> str:
    """What a foreground run stopped by Ctrl-C (or SIGTERM) says: that it waits, and the
    command that takes it up again; or that it had not started, or had ended."""
    backend = _backend()
    status = backend.run_status(run_id)
    if status is None:
        return "interrupted before the run started: nothing ran"
    if status in ("PENDING", "ENQUEUED", "CANCELLED"):
        return (
            f"interrupted: run {run_id} stopped; it waits in the runs database: take it up"
            f" again with `{backend.resume_command(run_id, database)}` (a worker serving"
            f" {backend.RUNS_QUEUE} runs the rest)"
        )
    return f"interrupted: run {run_id} had ended ({status}): see `carlang runs show {run_id}`"


def _approval_prompt(database: str) -> Any:
    """What a foreground run says on stderr when it starts waiting for an approval (once per
    action): which action, for which policy, until when, and the commands that answer it."""
    told: set[tuple[str, str]] = set()

    def prompt(run_id: str, request: Mapping[str, Any]) -> None:
        action = str(request.get("action"))
        if (run_id, action) in told:
            return
        told.add((run_id, action))
        policies = list(request.get("policies") or [])
        why = str(request.get("reason") or ", ".join(policies))
        label = "policy" if len(policies) == 1 else "policies"
        answer = f"{shlex.quote(run_id)} {shlex.quote(action)}"
        if _backend().has_password(database):  # never printed: $CARLANG_DATABASE carries it
            answer += " (with CARLANG_DATABASE set to the runs database's URL)"
        else:
            answer += f" --database {shlex.quote(database)}"
        echo_err(
            f"run {run_id} is waiting for approval of `{action}` ({request.get('tool')}), asked"
            f" by {label} {why}; it expires in {float(request.get('timeout_s') or 0):g}s."
            f" Answer it from another shell:\n"
            f"  carlang approve {answer}\n"
            f"  carlang deny {answer}"
        )

    return prompt


def planner_experiments(database: str | None) -> Any:
    """`carlang_dbos.Experiments` on the runs database, for `rank --backend dbos` and
    `planner search --backend dbos`: it says on stderr where the tasks go, when no worker
    serves them, and at the end how many there were (queued now, or collected from an earlier
    run of the same command)."""
    backend = _backend()
    return backend.Experiments(_database(database), echo_err)


# -- approvals ---------------------------------------------------------------------------------


@guarded
def approve_command(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run waiting for approval.")],
    action: Annotated[str, typer.Argument(metavar="ACTION", help="The action to approve.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "approved",
    approver: Annotated[str | None, typer.Option("--approver", help="Who approves.")] = None,
    database: DatabaseOption = None,
) -> None:
    """Approve an action a durable run is waiting on."""
    _answer(run_id, action, True, reason, approver, database)


@guarded
def deny_command(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run waiting for approval.")],
    action: Annotated[str, typer.Argument(metavar="ACTION", help="The action to deny.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "denied",
    approver: Annotated[str | None, typer.Option("--approver", help="Who denies.")] = None,
    database: DatabaseOption = None,
) -> None:
    """Deny an action a durable run is waiting on."""
    _answer(run_id, action, False, reason, approver, database)


def _answer(
    run_id: str,
    action: str,
    approved: bool,
    reason: str,
    approver: str | None,
    database: str | None,
) -> None:
    whole = _backend().answer_approval(
        _database(database), run_id, action, approved=approved, reason=reason, approver=approver
    )
    echo(f"{'approved' if approved else 'denied'} {action} of run {whole}")


# -- runs --------------------------------------------------------------------------------------

runs_app = typer.Typer(
    help="Durable runs (--backend dbos): list, show, cancel, resume.", no_args_is_help=True
)


@runs_app.command("list")
@guarded
def runs_list(
    database: DatabaseOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Every durable run, newest first."""
    runs = _backend().list_runs(_database(database))
    if as_json:
        echo(json.dumps([_run_document(r) for r in runs], indent=2))
        return
    if not runs:
        echo("no runs")
        return
    for info in runs:
        echo(
            f"{info.run_id}  {info.shown_status:<11}  {info.created or '-'}"
            f"  {info.proposal or '-'}  {info.version or '-'}"
        )


@runs_app.command("show")
@guarded
def runs_show(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    database: DatabaseOption = None,
) -> None:
    """One run: its status, the worker that holds it, its result, the approvals it waits for,
    and what it waits for on a queue no worker serves (also said on stderr)."""
    backend = _backend()
    url = _database(database)
    info, waiting = backend.show_run(url, run_id)  # (a unique prefix may name it)
    notices = backend.unserved_waits(url, info.run_id)
    document = {**_run_document(info), "waiting_for_approval": waiting, "notices": notices}
    echo(json.dumps(document, indent=2))
    for line in notices:
        echo_err(f"note: {line}")


@runs_app.command("cancel")
@guarded
def runs_cancel(
    run_id: Annotated[str, typer.Argument(metavar="RUN")], database: DatabaseOption = None
) -> None:
    """Cancel a run: it stops at its next step."""
    whole = _backend().cancel_run(_database(database), run_id)  # (a prefix may name it)
    echo(f"cancelled run {whole}")


@runs_app.command("resume")
@guarded
def runs_resume(
    run_id: Annotated[str, typer.Argument(metavar="RUN")], database: DatabaseOption = None
) -> None:
    """Resume a cancelled run, or one whose worker died, from its last recorded step: a worker
    serving the runs queue takes it."""
    backend = _backend()
    url = _database(database)
    before = backend.resume_run(url, run_id)
    echo(f"resumed run {before.run_id}")
    for line in backend.unserved_waits(url, before.run_id):  # no worker to take it
        echo_err(f"note: {line}")
    if before.status == "CANCELLED":
        # DBOS does not record a step that ends after the cancel; carlang keeps its result
        # once it ends, but a call still running now cannot be kept (docs/scale-out.md).
        echo_err(
            "note: a tool call that was still running when the run was cancelled is kept if it"
            " had finished by now; one still running runs again (at least once)"
        )


def _run_document(info: Any) -> dict[str, Any]:
    document = {
        "run_id": info.run_id,
        "status": info.shown_status,
        "dbos_status": info.status,
        "worker": info.worker,
        "created": info.created,
        "updated": info.updated,
        "proposal": info.proposal,
        "error": info.error,
        "result": info.result,
        "version": info.version,
    }
    if info.outcome_reason:
        document["reason"] = info.outcome_reason
    return document


# -- workers -----------------------------------------------------------------------------------


@guarded
def worker_command(
    queue: Annotated[
        list[str] | None,
        typer.Option("--queue", help="Serve this queue only (repeatable); default: every run."),
    ] = None,
    worker_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="A stable id of this worker's own: started again with it, it recovers the runs"
            " it left unfinished (default: this machine's host name, or $DBOS__VMID; two"
            " workers on one machine need an id each).",
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency", min=1, help="At most this many runs of a queue at once, here."
        ),
    ] = None,
    global_concurrency: Annotated[
        list[str] | None,
        typer.Option(
            "--global-concurrency",
            metavar="QUEUE=N",
            help="At most N workflows of QUEUE at once across every worker (repeatable).",
        ),
    ] = None,
    database: DatabaseOption = None,
) -> None:
    """Serve durable runs until stopped (Ctrl-C): recover the runs this worker's id left
    unfinished, and take work from the queues named."""
    backend = _backend()
    url = _database(database)
    limits = _queue_limits(global_concurrency or [])
    if limits and url.startswith("sqlite:"):
        # Measured: three SQLite workers with a limit of 2 ran 3 at once (no row locks to
        # dequeue under), so a limit there would be a promise that is not kept.
        fail_usage(
            "--global-concurrency needs Postgres (--database postgresql://...): on SQLite,"
            " workers in separate processes can take more than the limit at once"
        )
    # (before the launch: a SIGTERM as soon as it is seen working stops it cleanly, not by
    # the signal's default, which would leave its runs for recovery)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # A worker creates the database it serves (and says so: a mistyped name shows here).
    created = backend.prepare_database(url, create=True)
    backend.launch(
        url,
        queues=queue,
        executor=worker_id,
        concurrency=concurrency,
        global_concurrency=limits,
        notices=echo_err,  # a run's call waiting on a queue no worker serves
    )
    shown = backend.shown_url(url)
    echo(
        f"carlang worker on {shown}"
        + (f", queues {', '.join(queue)}" if queue else "")
        + (" (a new database: it did not exist, and was created)" if created else "")
    )
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        backend.shutdown()


def _queue_limits(pairs: list[str]) -> dict[str, int]:
    limits: dict[str, int] = {}
    for pair in pairs:
        name, _, count = pair.partition("=")
        if not name.strip() or not count.strip().isdigit() or int(count) < 1:
            fail_usage(f"--global-concurrency {pair}: write QUEUE=N with N >= 1, like gpu=2")
        limits[name.strip()] = int(count)
    return limits


def register(app: typer.Typer) -> None:
    """Add `approve`, `deny`, `runs` and `worker` to the CLI."""
    app.command("approve")(approve_command)
    app.command("deny")(deny_command)
    app.add_typer(runs_app, name="runs")
    app.command("worker")(worker_command)
