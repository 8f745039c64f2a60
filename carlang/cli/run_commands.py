"""Commands that run things: `run` (a proposal of a program, for real) and `events` (what a run
logged)."""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Iterable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .checking import blocking_errors, one_source
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    AutoApproveOption,
    DenyApprovalsOption,
    RootOption,
    check_output_path,
    echo,
    echo_err,
    fail_usage,
    guarded,
    require_directory,
)
from .console import terminal_text
from .lang_commands import project_root

if TYPE_CHECKING:
    from carlang_runtime import ir
    from carlang_runtime.engine import Runtime

__all__ = ["register"]


class Backend(StrEnum):
    """Where `carlang run` runs: in this process, or as a durable DBOS workflow."""

    inprocess = "inprocess"
    dbos = "dbos"


class RunFormat(StrEnum):
    """Output formats of `carlang run` and `carlang events`."""

    text = "text"
    json = "json"


# -- carlang run -------------------------------------------------------------------------------


@guarded
def run_command(
    file: Annotated[Path, typer.Argument(help="The program to run.")],
    proposal: Annotated[
        str | None, typer.Option("--proposal", help="Which proposal (needed if several).")
    ] = None,
    plan: Annotated[
        str | None,
        typer.Option(
            "--plan",
            help="Rank this plan's candidates, run the best, and fall back to the next if it"
            " does not fully succeed (each failure rolled back first).",
        ),
    ] = None,
    tools: Annotated[
        list[str] | None,
        typer.Option(
            "--tools",
            help="Tool implementations: tools.py or a module (each function it defines, or"
            " its TOOLS or setup), or module:attr / file.py:attr, a mapping of names to"
            " functions or a function taking the runtime (repeatable).",
        ),
    ] = None,
    state: Annotated[
        str | None,  # (not a Path, which tidies `//` to `/`: the JSON may be given inline)
        typer.Option(
            "--state", help="Initial state over the program's: a JSON file, or a JSON object."
        ),
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option("--events", help="Log events to run.jsonl, or to run.db (SQLite, resumable)."),
    ] = None,
    decisions_url: Annotated[
        str | None,
        typer.Option("--decisions-url", help="POST decision events to this collector URL."),
    ] = None,
    auto_approve: AutoApproveOption = False,
    deny_approvals: DenyApprovalsOption = False,
    output: Annotated[RunFormat, typer.Option("--format", help="Output format.")] = RunFormat.text,
    force: Annotated[
        bool, typer.Option("--force", help="Run even if the proposal does not verify.")
    ] = False,
    resume: Annotated[
        str | None,
        typer.Option("--resume", help="Continue this run from its --events journal (run.db)."),
    ] = None,
    rollback: Annotated[
        bool, typer.Option("--rollback", help="With --resume: undo the run instead.")
    ] = False,
    compensate: Annotated[
        bool,
        typer.Option(
            "--compensate/--no-compensate",
            help="On abort, run the compensations of what succeeded (--no-compensate: leave"
            " the world as it is, as CAR does).",
        ),
    ] = True,
    builtins: Annotated[
        bool,
        typer.Option(
            "--builtins",
            help="Implement declared tools named echo, read_file, write_file, list_dir and"
            " http_get with carlang's own.",
        ),
    ] = False,
    files_root: Annotated[
        Path | None,
        typer.Option("--files-root", help="Where the built-in file tools may read and write."),
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option("--allow-host", help="A host http_get may fetch from (repeatable)."),
    ] = None,
    backend: Annotated[
        Backend,
        typer.Option(
            "--backend",
            help="inprocess (the default) or dbos: a durable DBOS workflow that survives"
            " restarts, with approvals that wait for `carlang approve`.",
        ),
    ] = Backend.inprocess,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            metavar="URL",
            help="With --backend dbos: the runs database (sqlite:///runs.db or"
            " postgresql://...; default $CARLANG_DATABASE, else sqlite:///carlang-runs.db).",
        ),
    ] = None,
    approval_timeout: Annotated[
        float | None,
        typer.Option(
            "--approval-timeout",
            metavar="SECONDS",
            help="With --backend dbos: how long an approval may wait (default a day).",
        ),
    ] = None,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            help="With --backend dbos: queue the run for `carlang worker`, print its id (with"
            " --format json, a JSON object: run_id, queue, notices) and return.",
        ),
    ] = False,
    graph: Annotated[
        Path | None,
        typer.Option(
            "--graph",
            help="Draw the DAG after the run, coloured by outcome (.svg/.png need Graphviz;"
            " .mmd Mermaid; .dot DOT).",
        ),
    ] = None,
    root: RootOption = None,
) -> None:
    """Compile, verify and run a proposal. Exit 0 if every action succeeded, 1 if something
    failed, was rejected or skipped (or the program has errors), 2 for bad input."""
    from carlang_runtime.engine import Runtime
    from carlang_runtime.engine.journal import SQLITE_SUFFIXES

    from carlang.compiler import compile_file
    from carlang.render import render_text

    if auto_approve and deny_approvals:
        fail_usage("--auto-approve and --deny-approvals exclude each other")
    if rollback and resume is None:
        fail_usage("--rollback goes with --resume RUN_ID")
    in_process = backend is not Backend.dbos  # (a durable run is refused --resume below)
    if (
        resume is not None
        and in_process
        and (events is None or events.suffix not in SQLITE_SUFFIXES)
    ):
        fail_usage("--resume needs the run's journal: --events run.db")
    if plan is not None and (proposal is not None or resume is not None):
        fail_usage("--plan runs the plan's candidates: not with --proposal or --resume")
    check_output_path(graph, "--graph")  # (before the run: it must not end in this error)
    if graph is not None:
        _check_graph_suffix(graph)
    files = one_source(file)
    initial = _read_state(state) if state is not None else None
    result = compile_file(files[0], project_root(files, root), state=initial)
    program = result.program
    if program is None:
        echo_err(render_text(result.diagnostics.sorted()))
        raise typer.Exit(EXIT_FAILED)
    if state is not None and initial is not None:
        _refuse_undeclared_state(program, state, initial)
    _refuse_language_errors(result)  # first: a syntax error can hide the proposal asked for
    run_id = ""
    candidates: list[ir.ActionProposal] = []
    if plan is not None:
        candidates = _candidates(program, plan, file)
        chosen = candidates[0]  # (not refused when it does not verify: the ranking judges)
    else:
        if resume is not None and proposal is None and events is not None:
            run_id, proposal = _journalled_run(events, resume)
        chosen = _choose(program, proposal, file)
        _refuse_errors(result, chosen, force)
    if backend is Backend.dbos:
        from .dbos_commands import run_durably

        if resume is not None or builtins or plan is not None or decisions_url is not None:
            fail_usage(
                "--backend dbos resumes by itself; --resume, --plan, --builtins and"
                " --decisions-url are in-process"
            )
        if auto_approve or deny_approvals:  # (a durable run waited a day for an answer)
            given = "--auto-approve" if auto_approve else "--deny-approvals"
            fail_usage(
                f"{given} is in-process: a durable run asks each approval of `carlang approve"
                " RUN ACTION` or `carlang deny RUN ACTION`, from any process (leave it out)"
            )
        # (not detached: a detached run prints its id, and runs no tool here)
        with _stdout_to_stderr(output is RunFormat.json and not detach):
            outcome, run_id = run_durably(
                program,
                chosen,
                tools=tools or [],
                events=events,
                database=database,
                approval_timeout=approval_timeout,
                compensate=compensate,
                state=initial,
                detach=detach,
                as_json=output is RunFormat.json,
                # the in-process run's checks of --events (a .jsonl or .db file that can be
                # written and holds events, if anything), before anything is recorded
                check_events=lambda: _check_event_log(events),
            )
        final = _durable_state(program, chosen, initial, outcome)
        _report(output, chosen, outcome, run_id, final, graph)
        raise typer.Exit(EXIT_OK if outcome.all_succeeded() else EXIT_FAILED)
    _refuse_builtin_options(builtins, files_root, allow_host)
    if database is not None or approval_timeout is not None or detach:
        fail_usage("--database, --approval-timeout and --detach go with --backend dbos")
    reporter = _progress(output is RunFormat.text and sys.stdout.isatty(), len(chosen.actions))
    with _set_up_log(events) as log:
        http = _http_sink(decisions_url) if decisions_url is not None else None
        if http is not None:
            log.sinks.append(http)
        runtime = Runtime.from_program(
            program,
            events=log,
            approval=_approval_gate(auto_approve, deny_approvals, program, reporter),
            compensate=compensate,
        )
        if initial is not None:
            runtime.state.replace({**program.initial_state, **initial})
        if builtins:
            _register_builtins(runtime, files_root or Path.cwd(), allow_host or [])
        _register_tools(runtime, program, tools or [])
        if resume is None and plan is None:
            _refuse_unimplemented(runtime, chosen, builtins)
    runtime.use(reporter)
    diverted = _stdout_to_stderr(output is RunFormat.json)
    try:
        if resume is not None:
            run_id = run_id or resume
            # The program's proposal stands in for what the journal redacted (secrets).
            outcome = runtime.resume(run_id, rollback=rollback, proposal=chosen)
        elif plan is not None:
            from carlang_runtime.planner import plan_config

            found = program.plan(plan)
            assert found is not None  # _candidates checked it
            outcome = runtime.plan_and_execute(candidates, config=plan_config(found))
            chosen = next(c for c in candidates if c.id == outcome.proposal_id)
            run_id = runtime.events.query("run_started")[-1].run_id or ""
        else:
            outcome = runtime.execute(chosen)
            run_id = runtime.events.query("run_started")[-1].run_id or ""
        final = runtime.shown_state(candidates or [chosen])
    except KeyboardInterrupt:
        reporter.stop()
        # the command again, with what decides how the rest runs (the tools' implementations
        # above all: without them its calls would fail); the journal knows the proposal
        again = ["carlang", "run", str(file), *_repeated("--tools", tools)]
        again += ["--events", str(events)] if events is not None else []
        again += ["--builtins"] if builtins else []
        again += ["--files-root", str(files_root)] if files_root is not None else []
        again += _repeated("--allow-host", allow_host)
        again += ["--decisions-url", decisions_url] if decisions_url is not None else []
        again += ["--auto-approve"] if auto_approve else []
        again += ["--deny-approvals"] if deny_approvals else []
        again += ["--force"] if force else []
        again += [] if compensate else ["--no-compensate"]
        again += ["--root", str(root)] if root is not None else []
        _say_interrupted(runtime, events, again)
        raise
    except SystemExit as exc:  # (a tool's own sys.exit: carlang's exits are typer.Exit)
        reporter.stop()
        failed = runtime.events.query("action_failed")
        where = f"action {failed[-1].action_id}'s tool" if failed else "a tool"
        echo_err(
            f"error: the run stopped: {where} called sys.exit({exc.code!r}); what had not run"
            " was skipped and carlang's state restored (no compensation ran). A tool should"
            " raise an exception to fail its action, not exit"
        )
        raise typer.Exit(EXIT_FAILED) from None
    finally:
        diverted.close()
        reporter.stop()
        runtime.close()
        dropped = http.report() if http is not None else None
        if dropped is not None:
            echo_err(dropped)
    _report(output, chosen, outcome, run_id, final, graph)
    raise typer.Exit(EXIT_OK if outcome.all_succeeded() else EXIT_FAILED)


def _stdout_to_stderr(on: bool) -> contextlib.ExitStack:
    """With `on`, what is printed to standard output goes to standard error until the stack
    returned is closed: a tool's `print()` (`--format json`: the one document on standard
    output stays JSON; a trial's began with a tool's `REFUND alice 50`)."""
    stack = contextlib.ExitStack()
    if on:
        stack.enter_context(contextlib.redirect_stdout(sys.stderr))
    return stack


def _repeated(option: str, values: list[str] | None) -> list[str]:
    """`option` before each of `values` (a repeatable option, as given)."""
    return [word for value in values or [] for word in (option, value)]


def _say_interrupted(runtime: Runtime, events: Path | None, again: list[str]) -> None:
    """On Ctrl-C: which run stopped, and how to take it up again (a durable journal: the
    command `again` with `--resume`) or why it cannot be (the actions that ran are done; what
    was running is not known to be)."""
    import shlex

    from carlang_runtime.engine.journal import SQLITE_SUFFIXES

    started = runtime.events.query("run_started")
    run_id = started[-1].run_id if started else None
    if run_id is None:
        echo_err("interrupted before the run started: nothing ran")
        return
    if events is not None and events.suffix in SQLITE_SUFFIXES:
        echo_err(
            f"interrupted: run {run_id} stopped; take it up again with"
            f" `{shlex.join([*again, '--resume', run_id])}` (add --rollback to undo what it did)"
        )
    else:
        echo_err(
            f"interrupted: run {run_id} stopped; the actions that finished are done (give"
            " --events run.db to be able to resume a run)"
        )


def _report(
    output: RunFormat,
    chosen: ir.ActionProposal,
    outcome: ir.ProposalResult,
    run_id: str,
    state: dict[str, Any],
    graph: Path | None = None,
) -> None:
    """The run's result and the state it left (secrets redacted): a table and a summary, or
    one JSON document (`run_id`, `result`, `state`, the state whole); then the graph, so that
    a graph that cannot be written loses nothing of the result."""
    if output is RunFormat.json:
        # (python mode: a tool's output may be any value, bytes not UTF-8 among them, which
        # pydantic's JSON mode cannot write; `_plain` writes what JSON cannot hold as text)
        result = outcome.model_dump(mode="python")
        document = {"run_id": run_id, "result": result, "state": state}
        echo(json.dumps(_plain(document), indent=2, default=str, allow_nan=False))
    else:
        _print_result(chosen, outcome, run_id)
        _print_state(state)
    if graph is not None:
        _draw_run(chosen, outcome, graph)


def _durable_state(
    program: ir.Program,
    chosen: ir.ActionProposal,
    initial: dict[str, Any] | None,
    outcome: ir.ProposalResult,
) -> dict[str, Any]:
    """The state a DBOS run left, as `run` shows it: the state it started from with the state
    changes of its results that stand (a rolled-back result's are gone), in the order they were
    made, secrets redacted as the in-process run's are."""
    from carlang_runtime.engine import Runtime

    state = {**program.initial_state, **(initial or {})}
    standing = [r for r in outcome.results if r.state_changes and not r.rolled_back]
    for result in sorted(standing, key=lambda r: r.timestamp):
        for key, change in result.state_changes.items():
            if isinstance(change, dict) and change.get("op") == "delete":
                state.pop(key, None)
            elif isinstance(change, dict):
                state[key] = change.get("value")
    return Runtime.from_program(program).shown_state([chosen], state=state)


def _candidates(program: ir.Program, name: str, file: Path) -> list[ir.ActionProposal]:
    """The proposals of plan `name`, or a usage error (with did-you-mean)."""
    from carlang_runtime.suggest import did_you_mean

    found = program.plan(name)
    if found is None:
        hint = did_you_mean(name, [p.name for p in program.plans], "`")
        names = ", ".join(p.name for p in program.plans) or "none"
        fail_usage(f"no plan `{name}` in {file} ({hint or f'plans: {names}'})")
    return [p for n in found.candidates if (p := program.proposal(n)) is not None]


def _journalled_run(events: Path, given: str) -> tuple[str, str | None]:
    """(the run id `given` names, its proposal's id), from the run's journal."""
    if not events.exists():
        fail_usage(f"--resume: no journal {events}")
    records = read_log(events)
    run_id = resolve_run_id(records, given, events)
    received = [
        r for r in records if r.get("trace_id") == run_id and r["kind"] == "proposal_received"
    ]
    return run_id, (received[0].get("proposal_id") if received else None)


def _check_graph_suffix(path: Path) -> None:
    """A usage error for a `--graph` file whose suffix names no format: `run` has no
    `--format` for the picture (run.xyz was written as Mermaid, saying nothing)."""
    from .editor_commands import suffix_format

    if suffix_format(path) is None:
        fail_usage(
            f"--graph {path}: name a .svg or .png (Graphviz), .mmd (Mermaid) or .dot file: its"
            " suffix says what to draw"
        )


def _draw_run(proposal: ir.ActionProposal, outcome: ir.ProposalResult, path: Path) -> None:
    """`--graph`: the proposal's DAG with each action's outcome."""
    from carlang.graph import graph_of_run, render

    from .editor_commands import graph_format, write_graph

    fmt = graph_format(None, path)
    write_graph(render([graph_of_run(proposal, outcome)], fmt.value), fmt, path)
    echo_err(f"wrote {path}")


def _choose(program: ir.Program, name: str | None, file: Path) -> ir.ActionProposal:
    names = ", ".join(p.id for p in program.proposals) or "none"
    if name is not None:
        found = program.proposal(name)
        if found is None:
            fail_usage(f"no proposal `{name}` in {file} (proposals: {names})")
        return found
    if not program.proposals:
        fail_usage(
            f"{file} declares no proposal: there is nothing to run (write one:"
            " `proposal NAME { step = tool(...) }`)"
        )
    if len(program.proposals) != 1:
        fail_usage(
            f"{file} has {len(program.proposals)} proposals: choose one with --proposal ({names})"
        )
    return program.proposals[0]


def _refuse_language_errors(result: Any) -> None:
    """Language errors always stop the run (with every error shown); a finding that only
    makes a proposal invalid (verify's, an action a policy will deny) does not: it stops
    the run of that proposal only (`_refuse_errors`)."""
    from carlang.render import render_text

    fatal = blocking_errors(result.diagnostics.sorted(), proposal_errors_ok=True)
    if fatal:
        echo_err(render_text([d for d in result.diagnostics.sorted() if d.severity == "error"]))
        raise typer.Exit(EXIT_FAILED)


def _refuse_errors(result: Any, chosen: ir.ActionProposal, force: bool) -> None:
    """The chosen proposal's errors (it does not verify, or a policy will deny one of its
    actions) stop the run unless --force; another proposal's do not."""
    from carlang.render import render_text

    origin = result.source_map.proposals.get(chosen.id)
    errors = [
        d
        for d in result.diagnostics.sorted()
        if d.severity == "error" and origin is not None and _within(d, origin)
    ]
    verdict = result.verify_results.get(chosen.id)
    if (errors or (verdict is not None and not verdict.valid)) and not force:
        echo_err(render_text(errors))
        echo_err(f"proposal `{chosen.id}` does not verify; run anyway with --force")
        raise typer.Exit(EXIT_FAILED)


def _within(diagnostic: Any, origin: Any) -> bool:
    """Whether a diagnostic points inside a declaration (its file, its span)."""
    primary = diagnostic.primary
    if primary is None or primary.source is not origin.source:
        return False
    span = origin.node.span
    return bool(span.start <= primary.span.start and primary.span.end <= span.end)


def _event_log(path: Path | None) -> Any:
    from carlang_runtime.engine import EventLog, JsonlSink, SqliteSink
    from carlang_runtime.engine.journal import SQLITE_SUFFIXES

    if path is None:
        return EventLog()
    try:
        if path.suffix in SQLITE_SUFFIXES:
            return EventLog([SqliteSink(path)])
        if path.suffix == ".jsonl":
            _refuse_other_jsonl(path)
            return EventLog([JsonlSink(path)])
    except OSError as exc:
        fail_usage(f"cannot write events to {path}: {(exc.strerror or str(exc)).lower()}")
    fail_usage(f"--events {path}: use a .jsonl file or a .db (SQLite) file")


@contextlib.contextmanager
def _set_up_log(path: Path | None) -> Iterator[Any]:
    """The event log of a run being set up (`_event_log`): when the set-up in the block fails
    (tools that do not load, a files root that is not a folder), a log file this command
    created is removed, so that a run that never started leaves none (an empty one would hold
    no run, and a later `--events` of the same name would append to it)."""
    new = path is not None and not path.exists()
    log = _event_log(path)
    try:
        yield log
    except BaseException:
        log.close()
        if new:
            _remove_log(path)
        raise


def _check_event_log(path: Path | None) -> None:
    """`_event_log`'s checks of `path` (a usage error for one that cannot be a log), leaving
    no file behind that they created: the run that writes it may yet not start."""
    if path is None:
        return
    new = not path.exists()
    _event_log(path).close()
    if new:
        _remove_log(path)


def _remove_log(path: Path | None) -> None:
    """Remove an event log this command created, and a journal's SQLite side files."""
    from carlang_runtime.engine.journal import SQLITE_SUFFIXES

    if path is None:
        return
    path.unlink(missing_ok=True)
    if path.suffix in SQLITE_SUFFIXES:
        for end in ("-wal", "-shm", "-journal"):
            path.with_name(path.name + end).unlink(missing_ok=True)


def _refuse_other_jsonl(path: Path) -> None:
    """A usage error when `path` holds lines that are not events (a dataset, a proposal):
    appended to, it would be no event log (`carlang events` and `replay` would refuse it),
    as a SQLite database of another program is refused."""
    from carlang_runtime.engine.journal import EventLogError, json_line, not_an_event

    try:
        with path.open(encoding="utf-8") as lines:
            first = next((line for line in lines if line.strip()), None)
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError) as exc:
        fail_usage(f"--events {path}: cannot read it: {exc}")
    if first is None:
        return
    try:
        record = json_line(path, 1, first)
    except EventLogError as exc:
        fail_usage(f"--events {exc}; name a new file for the events")
    if not (isinstance(record, dict) and "kind" in record):
        problem = not_an_event(path, 1, record)
        fail_usage(f"--events {problem}; name a new file for the events")


def _http_sink(url: str) -> Any:
    from carlang_runtime.decisionlog import HttpSink

    try:
        return HttpSink(url)
    except ValueError as exc:
        fail_usage(f"--decisions-url: {exc}")


def _read_state(path: str) -> dict[str, Any]:
    """The initial state `--state` gives (a file, or the JSON object itself), its problems
    reported as `verify --state` reports them."""
    from .inputs import load_state_option

    return load_state_option(path)


def _refuse_undeclared_state(program: ir.Program, path: str, given: dict[str, Any]) -> None:
    """A usage error for a --state no run of the program can have: a key its `state { }`
    does not declare, a value not of its declared type (as `explain --state` and a test's
    state are checked)."""
    from carlang_runtime.policy import state_problem

    problem = state_problem(program.state, given)
    if problem is not None:
        fail_usage(f"{path}: {problem}")


def _approval_gate(
    auto_approve: bool, deny_approvals: bool, program: ir.Program, reporter: Any = None
) -> Any:
    """The approval gate the flags ask for; at a terminal, a prompt that pauses `reporter`'s
    live display (if there is one) while it asks."""
    from carlang_runtime.engine import AutoApprove, DenyApprovals

    from .approval_prompt import ConsoleGate

    if auto_approve:
        return AutoApprove()
    if deny_approvals:
        return DenyApprovals("refused: approvals are denied in this run (--deny-approvals)")
    if not sys.stdin.isatty():
        return DenyApprovals("refused (run with --auto-approve, or at a terminal to be asked)")
    if reporter is None:
        return ConsoleGate(lambda: None, lambda: None)
    return ConsoleGate(reporter.pause, reporter.resume)


def _register_tools(runtime: Runtime, program: ir.Program, specs: list[str]) -> None:
    """Register the `--tools` specs, warning about each name the program does not declare:
    its implementation is never called (a typo in a mapping's key, or a setup function
    taken for a tool because its parameter is not called `runtime`)."""
    from carlang_runtime.engine.loading import register_tool_spec
    from carlang_runtime.suggest import did_you_mean

    declared = [tool.name for tool in program.tools]
    for spec in specs:
        for name in register_tool_spec(runtime, spec):
            if name in declared:
                continue
            hint = did_you_mean(name, declared, "`")
            if hint is None and name == spec.rpartition(":")[2]:
                hint = "a setup function takes one parameter, named `runtime`"
            echo_err(
                f"warning: --tools {spec}: `{name}` is not a tool of the program, so nothing "
                f"calls it" + (f" ({hint})" if hint else "")
            )


def _refuse_unimplemented(runtime: Runtime, proposal: ir.ActionProposal, builtins: bool) -> None:
    """A usage error, before anything runs, for the tools `proposal`'s actions call that have
    no implementation: the run would fail at the first one, after the calls before it were
    made for real. A compensation's tool without one is a warning: it runs only if the run
    aborts (and then fails, saying so)."""
    from carlang_runtime.engine.builtins import BUILTIN_NAMES
    from carlang_runtime.ir import ToolCompensation

    def unimplemented(names: Iterable[str | None]) -> list[str]:
        tools = runtime.tools
        return sorted({n for n in names if n in tools and tools[n].fn is None})

    undoing = [c for a in proposal.actions if isinstance(c := a.compensation, ToolCompensation)]
    for name in unimplemented(c.tool for c in undoing):
        echo_err(
            f"warning: compensation tool `{name}` has no implementation: if the run aborts,"
            " the undo steps that call it fail (give it with --tools tools.py or module:attr)"
        )
    missing = unimplemented(a.tool for a in proposal.actions if a.type == "tool_call")
    if not missing:
        _refuse_mismatched_functions(runtime, proposal)
        return
    runtime.close()
    names = ", ".join(f"`{name}`" for name in missing)
    built_in = [name for name in missing if name in BUILTIN_NAMES]
    builtin_hint = (
        f" (or --builtins: {', '.join(built_in)}"
        f" {'are among' if len(built_in) > 1 else 'is one of'} carlang's own tools)"
        if built_in and not builtins
        else ""
    )
    fail_usage(
        f"no implementation of {'tools' if len(missing) > 1 else 'tool'} {names}, which proposal"
        f" `{proposal.id}` calls: give them with --tools tools.py or module:attr{builtin_hint};"
        " nothing was run"
    )


def _refuse_mismatched_functions(runtime: Runtime, proposal: ir.ActionProposal) -> None:
    """A usage error, before anything runs, for an action whose tool's function needs a
    parameter the action does not give (the function's parameters named otherwise than the
    tool's): the call would fail with a TypeError, after the calls before it were made."""
    import inspect

    for action in proposal.actions:
        calls = action.type == "tool_call" and action.tool is not None
        tool = runtime.tools.get(action.tool) if calls and action.tool is not None else None
        if tool is None or tool.fn is None:
            continue
        lacking = tool.missing_arguments(action.parameters)
        if not lacking:
            continue
        runtime.close()
        code = getattr(inspect.unwrap(tool.fn), "__code__", None)
        where = f" ({code.co_filename}:{code.co_firstlineno})" if code is not None else ""
        given = ", ".join(f"`{name}`" for name in sorted(action.parameters)) or "none"
        fail_usage(
            f"the function for tool `{tool.name}`{where} needs"
            f" {', '.join(f'`{name}`' for name in lacking)}, which action `{action.id}` does"
            f" not give (its parameters: {given}): name the function's parameters as the tool"
            " declares them, or give them defaults; nothing was run"
        )


def _refuse_builtin_options(
    builtins: bool, files_root: Path | None, allow_host: list[str] | None = None
) -> None:
    """A usage error for --files-root or --allow-host without --builtins: they set up the
    built-in tools, and were ignored without them."""
    given = [
        name
        for name, value in (("--files-root", files_root), ("--allow-host", allow_host))
        if value
    ]
    if given and not builtins:
        fail_usage(
            f"{' and '.join(given)} set{'s' if len(given) == 1 else ''} up carlang's built-in"
            " tools: add --builtins"
        )


def _register_builtins(runtime: Runtime, files_root: Path, hosts: list[str]) -> None:
    from carlang_runtime.engine.builtins import builtin_tools
    from carlang_runtime.errors import CarlangRuntimeError

    require_directory("--files-root", files_root)
    try:
        tools = builtin_tools(files_root, hosts)
    except CarlangRuntimeError as exc:
        fail_usage(str(exc))
    for name, fn in tools.items():
        if name in runtime.tools:
            runtime.register_tool(name, fn)


def _progress(enabled: bool, total: int) -> Any:
    """The progress reporter (a Middleware, imported only when `run` runs)."""
    from carlang_runtime.engine import Middleware

    class Reporter(Middleware):
        """Live progress on a terminal: a bar and a line per finished action. Middleware,
        so it sees each result as it happens."""

        def __init__(self, enabled: bool, total: int) -> None:
            self.enabled = enabled
            self._progress: Any = None
            self._task: Any = None
            self.total = total

        def before_proposal(self, proposal: ir.ActionProposal, run_id: str) -> None:
            if not self.enabled:
                return
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
            from rich.progress import Progress as Bar

            self._progress = Bar(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), transient=True
            )
            self._task = self._progress.add_task(
                f"running {proposal.id}", total=len(proposal.actions)
            )
            self._progress.start()

        def after_proposal(self, proposal: ir.ActionProposal, result: ir.ProposalResult) -> None:
            self.stop()

        def before_action(self, action: ir.Action, proposal: ir.ActionProposal) -> None:
            return None

        def after_action(self, action: ir.Action, result: ir.ActionResult) -> None:
            if self._progress is not None:
                style = _STYLE.get(result.status.value, "")
                detail = f": {result.error}" if result.error else ""
                self._progress.console.print(
                    f"[{style}]{result.status.value:>9}[/] {action.id}{detail}", highlight=False
                )
                self._progress.advance(self._task)

        def stop(self) -> None:
            if self._progress is not None:
                self._progress.stop()
                self._progress = None

        def pause(self) -> None:
            """Take the live display off the screen (while a question is asked)."""
            if self._progress is not None:
                self._progress.stop()

        def resume(self) -> None:
            """Put it back."""
            if self._progress is not None:
                self._progress.start()

    return Reporter(enabled, total)


_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "rejected": "red",
    "skipped": "yellow",
}


def _print_result(proposal: ir.ActionProposal, result: ir.ProposalResult, run_id: str) -> None:
    from rich.markup import escape

    from carlang.render import plural

    from .tables import Column, print_table, stdout_console

    rows = []
    undone = {c.action_id: c for c in result.compensations}
    calls = {a.id: a for a in proposal.actions if a.type == "tool_call"}
    not_undone: list[ir.Action] = []
    for entry in result.results:
        status = entry.status.value
        if entry.rolled_back and entry.action_id in calls and entry.action_id not in undone:
            # its state effects were undone; what the call did outside was not
            status += " (rolled back; the call not undone)"
            not_undone.append(calls[entry.action_id])
        elif entry.rolled_back:
            status += " (rolled back)"
        text = entry.error if entry.error and not entry.rolled_back else _short(entry.output)
        compensation = undone.get(entry.action_id)
        if compensation is not None:  # (CAR's text for the entry says nothing was undone)
            status, text = _compensated(entry.status.value, compensation)
        duration = f"{entry.duration_ms:.1f}" if entry.duration_ms is not None else ""
        style = _STYLE.get(entry.status.value, "")
        rows.append([escape(entry.action_id), f"[{style}]{status}[/]", duration, escape(text)])
    columns = [
        Column("action"),
        Column("status"),
        Column("ms", "right"),
        Column("output / error", max_width=80),
    ]
    print_table(columns, rows, title=f"proposal {proposal.id}  (run {run_id})")
    console = stdout_console()
    counts = result.summary()
    shown = ", ".join(f"{n} {status.value}" for status, n in counts.items())
    cost = result.cost
    console.print(
        # (CAR's count: a call that failed is not in it, so the words say what it counts)
        f"{shown}; {plural(cost.tool_calls, 'successful tool call')},"
        f" {plural(cost.retries, 'retry', 'retries')}, {cost.total_duration_ms:.1f} ms in actions"
    )
    if not_undone:
        declared = any(action.compensation is not None for action in not_undone)
        console.print(
            f"the run aborted: its state effects were rolled back, but what"
            f" {plural(len(not_undone), 'tool call')} did outside carlang was not undone"
            + (
                " (the compensations declared did not run: --no-compensate)"
                if declared
                else " (`compensate` names the call that undoes one)"
            )
        )


#: The most state keys `run` lists, and the longest a value it shows (the rest: --format json).
STATE_KEYS_SHOWN = 20
STATE_VALUE_WIDTH = 60


def _print_state(state: dict[str, Any]) -> None:
    """The state the run left, one `key = value` line per key (sorted), after the result:
    long values cut short, at most `STATE_KEYS_SHOWN` keys (then how many more)."""
    from carlang.render import plural

    if not state:
        echo("state after the run: empty")
        return
    echo(f"state after the run ({plural(len(state), 'key')}):")
    keys = sorted(state)
    for key in keys[:STATE_KEYS_SHOWN]:
        echo(f"  {_clipped(_shown_key(key))} = {_clipped(_json_text(state[key]))}")
    if len(keys) > STATE_KEYS_SHOWN:
        echo(f"  ... {len(keys) - STATE_KEYS_SHOWN} more (all of them: --format json)")


def _shown_key(key: str) -> str:
    """A state key as written, or as a JSON string when it holds spaces, `=`, quotes or
    control characters (so that each line still reads as one key and one value)."""
    plain = key and key.isprintable() and not any(c in key for c in ' ="')
    return key if plain else json.dumps(key)


#: How a number JSON cannot hold is written (as the text table shows it).
_NOT_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _plain(value: Any) -> Any:
    """`value` (a tool's output, the state: anything) as JSON values, as pydantic's JSON mode
    writes them (bytes as text, a set as a list, a datetime in ISO 8601), except what that
    cannot write: bytes that are not UTF-8 as their repr, and the numbers JSON cannot hold
    (NaN, infinities) as their names (pydantic wrote them `null`)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else _NOT_FINITE[value]
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(item) for item in value]
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return str(value)
    from pydantic_core import to_jsonable_python

    return _plain(to_jsonable_python(value, fallback=str))


def _json_text(value: Any) -> str:
    """A value on one line, as JSON."""
    return json.dumps(value, default=str, ensure_ascii=False)


def _clipped(text: str, width: int = STATE_VALUE_WIDTH) -> str:
    """`text`, cut to `width` characters (ending in `...`) when longer."""
    if len(text) <= width:
        return text
    return text[: width - 3] + "..."


def _compensated(status: str, compensation: ir.CompensationResult) -> tuple[str, str]:
    """The status and text of a success the saga's compensation undid (or tried to)."""
    if compensation.status.value == "succeeded":
        return f"{status} (rolled back, compensated)", f"compensated by {compensation.tool}"
    return (
        f"{status} (rolled back, not compensated)",
        f"compensation {compensation.tool} {compensation.status.value}: {compensation.error or ''}",
    )


def _short(value: Any) -> str:
    """A value in a text listing: a string as it is, else JSON; cut to 200 characters."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 200 else text[:197] + "..."


# -- carlang events ----------------------------------------------------------------------------


def _event_value(value: Any) -> str:
    """An event's field in the text listing: a float, a measurement of carlang's own
    (`duration_ms`), to 6 significant digits (`0.01291`, not `0.012909998986287974`); else as
    `_short` shows it. (`--format json` keeps every digit.)"""
    return f"{value:.6g}" if isinstance(value, float) else _short(value)


@guarded
def events_command(
    log: Annotated[Path, typer.Argument(help="An event log: run.db (SQLite) or run.jsonl.")],
    run_id: Annotated[
        str | None, typer.Argument(help="Only this run (as --run).", show_default=False)
    ] = None,
    run: Annotated[str | None, typer.Option("--run", help="Only this run.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Only events of this kind.")] = None,
    action: Annotated[str | None, typer.Option("--action", help="Only this action's.")] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only the runs of this tenant (scope.tenant).")
    ] = None,
    output: Annotated[RunFormat, typer.Option("--format", help="Output format.")] = RunFormat.text,
) -> None:
    """List the runs in an event log, or the events of one run (filtered by kind and action).
    RUN_ID (or --run) takes a run id or a unique prefix of one; --kind must be a kind of event;
    --tenant keeps the runs whose scope names that tenant."""
    if run_id is not None and run is not None and run_id != run:
        fail_usage(f"two runs given, {run_id} and --run {run}: give one")
    run = run if run is not None else run_id
    records = read_log(log)
    tenants = _run_tenants(records)
    if run is not None:  # (in the whole log: a run of another tenant is said to be so)
        run = resolve_run_id(records, run, log)
    if tenant is not None:
        if run is not None:
            _check_run_tenant(tenants, run, tenant, log)
        records = _tenant_records(records, tenants, tenant, log)
    if kind is not None:
        _check_kind(records, kind)
    if action is not None:
        _check_action(records, action, run, log)
    if run is None and kind is None and action is None:
        _print_runs(records, tenants, output)
        return
    chosen = [
        r
        for r in records
        if (run is None or r.get("trace_id") == run)
        and (kind is None or r.get("kind") == kind)
        and (action is None or r.get("action_id") == action)
    ]
    if output is RunFormat.json:
        echo(json.dumps(chosen, indent=2))
        return
    from carlang.render import plural

    # the events of several runs (a --kind or --action across the log): each says whose
    runs = {record.get("trace_id") for record in chosen}
    several = len(runs) > 1
    for record in chosen:
        data = record.get("data") or {}
        detail = " ".join(f"{k}={_event_value(v)}" for k, v in data.items() if k != "proposal")
        where = record.get("action_id") or record.get("proposal_id") or ""
        whose = f"{record.get('trace_id') or '-'}  " if several else ""
        echo(f"{whose}{record['timestamp']}  {record['kind']:<26} {where:<16} {detail}".rstrip())
    echo(plural(len(chosen), "event") + (f" of {plural(len(runs), 'run')}" if several else ""))


def _run_tenants(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Each run's tenant, as its `run_started` scope names it (None: no tenant)."""
    tenants: dict[str, Any] = {}
    for record in records:
        if record.get("kind") == "run_started" and record.get("trace_id"):
            scope = (record.get("data") or {}).get("scope")
            tenants[str(record["trace_id"])] = (
                scope.get("tenant") if isinstance(scope, dict) else None
            )
    return tenants


def _check_run_tenant(tenants: dict[str, Any], run: str, tenant: str, log: Path) -> None:
    """A usage error when run `run` of the log is not a run of `tenant` (`tenants`: each
    run's, `_run_tenants`), saying whose it is."""
    found = tenants.get(run)
    if found != tenant:
        whose = f"tenant `{found}`'s" if found is not None else "a run with no tenant"
        fail_usage(f"run `{run}` in {log} is {whose}, not one of tenant `{tenant}`")


def _tenant_records(
    records: list[dict[str, Any]], tenants: dict[str, Any], tenant: str, log: Path
) -> list[dict[str, Any]]:
    """The records of the runs of `tenant` (`tenants`: each run's, `_run_tenants`); a usage
    error, with the tenants the log has, when there is none."""
    runs = {run_id for run_id, named in tenants.items() if named == tenant}
    if not runs:
        known = sorted({str(t) for t in tenants.values() if t is not None})
        listed = ", ".join(known) if known else "none: its runs have no tenant"
        fail_usage(f"no run of tenant `{tenant}` in {log} (tenants: {listed})")
    return [r for r in records if r.get("trace_id") in runs]


def resolve_run_id(records: list[dict[str, Any]], given: str, log: Path) -> str:
    """The run id `given` names: itself, or the one run id it is a prefix of (as git takes a
    commit's prefix); a usage error when it names none or several."""
    ids: list[str] = list(dict.fromkeys(str(r["trace_id"]) for r in records if r.get("trace_id")))
    if given in ids:
        return given
    matches = [i for i in ids if i.startswith(given)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        fail_usage(f"--run {given} is ambiguous in {log}: {', '.join(matches)}")
    known = ", ".join(ids[-5:]) or "none"
    if len(ids) > 5:
        known = f"the last 5 of {len(ids)}: {known}"
    fail_usage(f"no run `{given}` in {log} (runs: {known}; see `carlang events {log}`)")


def _check_kind(records: list[dict[str, Any]], kind: str) -> None:
    """A usage error, with did-you-mean, for a kind no event can have."""
    from carlang_runtime.engine.events import EventKind
    from carlang_runtime.suggest import did_you_mean

    kinds = {k.value for k in EventKind} | {str(r.get("kind")) for r in records}
    if kind not in kinds:
        hint = did_you_mean(kind, sorted(kinds), "`")
        fail_usage(
            f"--kind: no event kind `{kind}`"
            + (f" ({hint})" if hint else f" (kinds: {', '.join(sorted(kinds))})")
        )


def _check_action(records: list[dict[str, Any]], action: str, run: str | None, log: Path) -> None:
    """A usage error, with did-you-mean or the actions there are, for an action no event of
    `run` (or of the log) is about: a mistyped id listed nothing, as if it had no events."""
    from carlang_runtime.suggest import did_you_mean

    ids = {
        str(r["action_id"])
        for r in records
        if r.get("action_id") and (run is None or r.get("trace_id") == run)
    }
    if action in ids:
        return
    where = f"run `{run}`" if run is not None else str(log)
    hint = did_you_mean(action, sorted(ids), "`")
    listed = ", ".join(sorted(ids)[:20]) + (", ..." if len(ids) > 20 else "")
    fail_usage(
        f"--action: no event of {where} is about an action `{action}`"
        + (f" ({hint})" if hint else f" (its actions: {listed})" if ids else " (it has none)")
    )


def read_log(path: Path) -> list[dict[str, Any]]:
    """The events of a log (SQLite journal or JSONL), or a usage error saying what is wrong."""
    from carlang_runtime.engine import EventLogError, read_event_log

    try:
        return read_event_log(path)
    except EventLogError as exc:
        fail_usage(str(exc))


def _print_runs(records: list[dict[str, Any]], tenants: dict[str, Any], output: RunFormat) -> None:
    runs: dict[str, dict[str, Any]] = {}
    ends: dict[str, dict[tuple[Any, Any], dict[str, Any]]] = {}
    for record in records:
        run_id = record.get("trace_id")
        if run_id is None:
            continue
        entry = runs.setdefault(
            run_id,
            {
                "run_id": run_id,
                "started": record["timestamp"],
                # no run_completed (yet): still running, or stopped before it ended
                "status": "unfinished",
                "events": 0,
                "proposal": record.get("proposal_id"),
                "rejected": 0,
                "failed": 0,
                "skipped": 0,
                "interrupted": 0,
            },
        )
        entry["events"] += 1
        kind = record["kind"]
        if kind == "run_completed":
            entry["status"] = (record.get("data") or {}).get("status", "completed")
        elif kind in _TERMINAL_KINDS:
            # An action's outcome is its last terminal event in the run: an attempt a resume
            # ran again (interrupted mid-call, then resumed) is superseded, not a failure.
            key = (record.get("proposal_id"), record.get("action_id"))
            outcomes = ends.setdefault(run_id, {})
            earlier = outcomes.get(key)
            if earlier is not None and _interrupted_attempt(earlier):
                entry["interrupted"] += 1
            outcomes[key] = record
    for run_id, outcomes in ends.items():
        for record in outcomes.values():
            if record["kind"] in ("action_rejected", "action_failed", "action_skipped"):
                # a run "completed" with its only call refused (CAR's rule for a refusal before
                # any policy: the proposal goes on), or its last calls skipped for its budget,
                # is not a run that did all its work
                runs[run_id][record["kind"].removeprefix("action_")] += 1
        first = next(
            (r for r in outcomes.values() if r["kind"] in ("action_rejected", "action_failed")),
            next((r for r in outcomes.values() if r["kind"] == "action_skipped"), None),
        )  # (what was refused or failed says why; else what was skipped)
        if first is not None:
            runs[run_id]["why"] = _why(first)
    for run_id, entry in runs.items():
        entry.setdefault("why", None)
        entry["tenant"] = tenants.get(run_id)
    if output is RunFormat.json:
        echo(json.dumps(list(runs.values()), indent=2))
        return
    from carlang.render import plural

    statuses = [_status_shown(entry) for entry in runs.values()]
    # (the column as wide as its widest status: `completed (1 interrupted attempt)` shifted
    # the columns after it on its line)
    width = max([24, *map(len, statuses)])
    for entry, status in zip(runs.values(), statuses, strict=True):
        count = entry["events"]
        # (not `plural`: the counts stay right-aligned in a column, the word padded after)
        word = "event" if count == 1 else "events"
        whose = f"  tenant {entry['tenant']}" if entry["tenant"] is not None else ""
        why = f"  {_clipped(terminal_text(entry['why']), _WHY_WIDTH)}" if entry["why"] else ""
        echo(
            f"{entry['run_id']}  {entry['started']}  {status:<{width}}"
            f" {count:>6} {word:<6}  {entry['proposal'] or ''}{whose}{why}".rstrip()
        )
    echo(plural(len(runs), "run"))


def _status_shown(entry: dict[str, Any]) -> str:
    """A run's status as `carlang events` lists it: with how many of its actions were
    rejected, failed or skipped, and its interrupted attempts."""
    from carlang.render import plural

    counts = [f"{entry[what]} {what}" for what in ("rejected", "failed", "skipped") if entry[what]]
    if entry["interrupted"]:
        counts.append(plural(entry["interrupted"], "interrupted attempt"))
    return f"{entry['status']} ({', '.join(counts)})" if counts else str(entry["status"])


def _why(record: dict[str, Any]) -> str:
    """Why an action was refused or failed, from its terminal event: `b: policy violation:
    no_secret: no secrets` (what a gateway's operator looks for first, among many calls)."""
    error = (record.get("data") or {}).get("error")
    return f"{record.get('action_id')}: {error or record['kind'].removeprefix('action_')}"


#: The most of a run's `why` a line of `carlang events` shows (the JSON holds it whole).
_WHY_WIDTH = 100


#: The kinds of event that end an action (`engine.events.TERMINAL_KINDS`, as text).
_TERMINAL_KINDS = frozenset(
    {
        "action_succeeded",
        "action_failed",
        "action_skipped",
        "action_rejected",
        "action_deduplicated",
    }
)


def _interrupted_attempt(record: dict[str, Any]) -> bool:
    """Whether a terminal event ended a call that was running when its run was stopped from
    outside (Ctrl-C, a cancellation): a resumed run calls it again."""
    data = record.get("data") or {}
    return record["kind"] == "action_failed" and bool(data.get("interrupted"))


def register(app: typer.Typer) -> None:
    """Add `run` and `events` to the CLI."""
    app.command("run")(run_command)
    app.command("events")(events_command)
