"""The event log and its sinks, checkpoints, subprocess and built-in tools, and durable runs:
resuming from the SQLite journal, in process and after killing a real process mid-run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from carlang_runtime import ir
from carlang_runtime.engine import EventLog, EventStore, JsonlSink, Runtime, SqliteSink
from carlang_runtime.engine.builtins import builtin_tools, host_allowed
from carlang_runtime.errors import CarlangRuntimeError

from .support import call, errors, proposal, statuses


def counting_tool(log: list[int]) -> Any:
    def work(n: int) -> int:
        log.append(n)
        return n * 10

    return work


# -- events ---------------------------------------------------------------------------


def test_events_tell_the_story_of_a_run_as_spans() -> None:
    rt = Runtime()
    rt.register_tool("t", lambda: 1)
    result = rt.execute(proposal(call("a", "t"), write_action("w")))
    kinds = [(e.kind.value if hasattr(e.kind, "value") else e.kind) for e in rt.events]
    assert kinds == [
        "run_started",
        "proposal_received",
        "state_snapshot",
        "action_validated",
        "action_executing",
        "action_succeeded",
        "action_validated",
        "action_executing",
        "state_changed",
        "action_succeeded",
        "proposal_completed",
        "run_completed",
    ]
    run_id = rt.events.query("run_started")[0].run_id
    succeeded = rt.events.query("action_succeeded", action_id="a")[0]
    assert succeeded.trace_id == run_id
    assert succeeded.span_id == f"{run_id}/p/a" and succeeded.parent_id == f"{run_id}/p"
    assert rt.events.query("proposal_received")[0].parent_id == run_id
    document = succeeded.to_dict()
    assert document["kind"] == "action_succeeded" and document["timestamp"].endswith("Z")
    assert result.all_succeeded()


def write_action(id: str) -> ir.Action:
    return ir.Action(id=id, type="state_write", parameters={"key": "k", "value": 1})


@pytest.mark.parametrize("as_text", [False, True])
def test_jsonl_and_sqlite_sinks_record_the_same_events(tmp_path: Path, as_text: bool) -> None:
    """(`as_text`: the sinks take a path as a str too, as the docs' `JsonlSink(path)` reads;
    a str was an AttributeError.)"""
    jsonl, db = tmp_path / "run.jsonl", tmp_path / "run.db"
    paths = (str(jsonl), str(db)) if as_text else (jsonl, db)
    rt = Runtime(events=EventLog([JsonlSink(paths[0]), SqliteSink(paths[1])]))
    rt.register_tool("t", lambda: {"ok": True})
    rt.execute(proposal(call("a", "t"), call("b", "nope")))
    rt.close()
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    store = EventStore(paths[1])
    stored = [e.to_dict() for e in store.events()]
    assert [r["kind"] for r in lines] == [r["kind"] for r in stored]
    assert lines[0]["data"] == stored[0]["data"]
    (summary,) = store.runs()
    assert summary.status == "completed" and summary.events == len(lines)
    assert [e.action_id for e in store.events(kind="action_rejected")] == ["b"]
    # A durable log carries what resume needs: the proposal, the state, each output.
    received = store.events(kind="proposal_received")[0]
    assert received.data["proposal"]["actions"][0]["id"] == "a"
    assert store.events(kind="action_succeeded")[0].data["output"] == {"ok": True}
    store.close()


def test_a_jsonl_log_is_strict_json_when_a_tool_answers_nan(tmp_path: Path) -> None:
    """A tool's output of NaN or an infinity was written bare into the JSONL log (`NaN`),
    which jq and most JSON parsers refuse: such numbers are written as strings there; the
    run's own result keeps the float."""
    log = tmp_path / "run.jsonl"
    rt = Runtime(events=EventLog([JsonlSink(log)]))
    rt.register_tool("t", lambda: {"score": float("nan"), "range": [float("inf"), -1e400, 2.5]})
    result = rt.execute(proposal(call("a", "t")))
    rt.close()
    output = result.results[0].output
    assert output["score"] != output["score"]  # (NaN, kept as it is)

    def refuse(name: str) -> None:
        raise AssertionError(f"non-standard JSON: {name}")

    lines = [json.loads(line, parse_constant=refuse) for line in log.read_text().splitlines()]
    (done,) = [e for e in lines if e["kind"] == "action_succeeded"]
    assert done["data"]["output"] == {"score": "NaN", "range": ["Infinity", "-Infinity", 2.5]}


# -- checkpoints ----------------------------------------------------------------------


def shout(text: str) -> str:
    """Upper-cased."""
    return text.upper()


def test_checkpoints_save_and_restore_state_and_tools(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    rt = Runtime(state={"a": 1})
    rt.register_tool("shout", shout)
    rt.register_subprocess_tool("py", [sys.executable, "-c", "print(42)"])
    rt.register_tool("lambda", lambda: None)
    rt.execute(proposal(write_action("w")))
    rt.execute(proposal(call("s", "shout", params={"text": "x"}, idempotent=True)))
    assert rt.idempotency
    rt.save_checkpoint(path, metadata={"note": "before the migration"})
    assert not list(tmp_path.glob("*.tmp"))  # written atomically
    # A checkpoint is data: without trust, its tools come back declared, never runnable.
    untrusted = Runtime()
    assert untrusted.load_checkpoint(path) == {"note": "before the migration"}
    assert untrusted.state.snapshot() == {"a": 1, "k": 1}
    assert [untrusted.tools[n].fn for n in ("shout", "py", "lambda")] == [None, None, None]
    fresh = Runtime()
    assert fresh.load_checkpoint(path, trust_tools=True) == {"note": "before the migration"}
    assert fresh.state.snapshot() == {"a": 1, "k": 1}
    assert fresh.tools["shout"].fn is shout
    assert fresh.execute(proposal(call("p", "py"))).results[0].output == 42
    assert fresh.tools["lambda"].fn is None  # a lambda cannot be rebuilt: declared only
    rt.load_checkpoint(path)
    assert not rt.idempotency  # restore clears the idempotency cache
    with pytest.raises(CarlangRuntimeError):
        fresh.load_checkpoint(tmp_path / "missing.json")


# -- subprocess and built-in tools -------------------------------------------------------


def test_subprocess_tools_take_argv_and_json(tmp_path: Path) -> None:
    rt = Runtime()
    script = "import json, sys; d = json.load(sys.stdin); print(json.dumps({'got': d}))"
    rt.register_subprocess_tool("py", [sys.executable, "-c", script, "{name}"])
    rt.register_subprocess_tool("fail", [sys.executable, "-c", "import sys; sys.exit('nope')"])
    rt.register_subprocess_tool(
        "slow", [sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.2
    )
    result = rt.execute(
        proposal(
            call("a", "py", params={"name": "x; rm -rf /"}),
            call("b", "fail", failure_behavior="skip"),
            call("c", "slow", failure_behavior="skip"),
        )
    )
    assert result.results[0].output == {"got": {"name": "x; rm -rf /"}}
    assert errors(result)["b"].endswith("exited with status 1: nope")
    assert statuses(result)["c"] == "skipped"


def test_builtin_file_tools_stay_inside_their_root(tmp_path: Path) -> None:
    tools = builtin_tools(tmp_path)
    assert tools["write_file"](path="a/b.txt", content="hé") == {"path": "a/b.txt", "bytes": 3}
    assert tools["read_file"](path="a/b.txt") == "hé"
    assert tools["list_dir"](path=".") == ["a/"]
    assert tools["echo"](text="x") == "x"
    for bad in ("../escape.txt", "/etc/passwd", "a/../../x"):
        with pytest.raises(Exception, match="take no '..'|absolute"):
            tools["read_file"](path=bad)
    # (one that stays inside is refused too, saying so: it "left the files root")
    with pytest.raises(Exception, match=r"path 'a/\.\./a/b.txt' holds '\.\.': the file tools"):
        tools["read_file"](path="a/../a/b.txt")
    os.symlink("/etc", tmp_path / "link")
    with pytest.raises(Exception, match="symlink, which the file tools never follow"):
        tools["list_dir"](path="link")


def test_http_get_needs_an_allowed_host() -> None:
    tools = builtin_tools(".", ["example.com", "*.internal.test"])
    with pytest.raises(Exception, match="not on the allow-list"):
        tools["http_get"](url="https://evil.test/")
    with pytest.raises(Exception, match="not an http"):
        tools["http_get"](url="file:///etc/passwd")
    assert host_allowed("api.internal.test", ["*.internal.test"])
    assert not host_allowed("internal.test", ["*.internal.test"])
    assert host_allowed("EXAMPLE.com", ["example.com"])


@pytest.mark.parametrize(
    "entry",
    ["a b", "https://api.example.com", "api.example.com:443", "api.example.com/x", "*", "*."]
    + ["*.10.0.0.5", "*.[::1]", "*.::1"],
)
def test_an_allow_list_entry_that_is_no_host_is_refused(entry: str) -> None:
    """`--allow-host 'a b'` (or a URL, or a port) was taken and never matched any host, so
    http_get refused every URL with "not on the allow-list" (bad-input sweep)."""
    with pytest.raises(CarlangRuntimeError, match="give a host name or address as a URL holds"):
        builtin_tools(".", [entry])


def test_an_ipv6_address_is_allowed_with_or_without_brackets() -> None:
    for entry in ("::1", "[::1]"):
        tools = builtin_tools(".", [entry, "10.0.0.5", "*.example.com"])
        with pytest.raises(Exception, match="not on the allow-list"):
            tools["http_get"](url="http://[::2]:9/")
        # allowed: the request goes out and fails to connect (nothing listens on port 9)
        with pytest.raises(Exception) as raised:
            tools["http_get"](url="http://[::1]:9/", timeout_ms=2000)
        assert "allow-list" not in str(raised.value)


# -- durable runs ----------------------------------------------------------------------


def crashing_proposal() -> ir.ActionProposal:
    return proposal(
        *(
            call(f"a{i}", "work", params={"n": i}, expected_effects={f"done.{i}": True})
            for i in range(5)
        )
    )


def test_resume_after_an_interruption_runs_only_what_did_not_finish(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    log: list[int] = []

    def crashing(n: int) -> int:
        log.append(n)
        if n == 3 and len(log) == 4:
            raise KeyboardInterrupt
        return n * 10

    rt = Runtime(events=EventLog([SqliteSink(db)]))
    rt.register_tool("work", crashing)
    with pytest.raises(KeyboardInterrupt):
        rt.execute(crashing_proposal())
    run_id = rt.events.query("run_started")[0].run_id
    rt.close()
    again = Runtime(events=EventLog([SqliteSink(db)]))
    again.register_tool("work", crashing)
    result = again.resume(run_id)
    assert log == [0, 1, 2, 3, 3, 4]
    assert result.all_succeeded()
    assert [r.output for r in result.results] == [0, 10, 20, 30, 40]
    assert again.state.snapshot() == {f"done.{i}": True for i in range(5)}
    again.close()
    with closing(EventStore(db)) as store:
        assert all(len(kinds) == 1 for kinds in terminal_events_of(store, run_id).values())
    with pytest.raises(CarlangRuntimeError, match="already finished"):
        Runtime().resume(run_id, db)


def test_a_ctrl_c_while_the_loop_waits_on_an_async_tool_ends_the_run_as_interrupted(
    tmp_path: Path,
) -> None:
    """A trial: Ctrl-C while an MCP tool's answer was awaited (the loop waiting, no Python
    frame of the run on the stack) left the run's coroutine pending: it was finalised after
    the log closed (a traceback: I/O on a closed file) and the run stayed "unfinished". The
    run is now cancelled and ends, recorded interrupted, resumable, as with a local tool."""
    import asyncio

    db = tmp_path / "run.db"

    def ctrl_c() -> None:
        raise KeyboardInterrupt  # (from a loop callback: outside the run's coroutine)

    async def wait() -> str:
        asyncio.get_running_loop().call_soon(ctrl_c)
        await asyncio.sleep(30)
        return "never"

    rt = Runtime(events=EventLog([SqliteSink(db)]))
    rt.register_tool("wait", wait)
    with pytest.raises(KeyboardInterrupt):
        rt.execute(proposal(call("a", "wait")))
    run_id = rt.events.query("run_started")[0].run_id
    rt.close()
    with closing(EventStore(db)) as store:
        events = list(store.events(run_id))
    assert events[-1].kind == "run_completed" and events[-1].data["status"] == "interrupted"
    (failed,) = [e for e in events if e.kind == "action_failed"]
    assert failed.data["error"] == "interrupted: KeyboardInterrupt"
    again = Runtime(events=EventLog([SqliteSink(db)]))
    again.register_tool("wait", lambda: "done")
    assert again.resume(run_id).all_succeeded()
    again.close()


def terminal_events_of(store: EventStore, run_id: str) -> dict[str, list[str]]:
    """The terminal events of each action that stand: an interruption ends an action too (one
    terminal event per run segment), marked so that the resumed run runs it again."""
    found: dict[str, list[str]] = {}
    for event in store.events(run_id):
        if event.data.get("interrupted"):
            continue
        if event.kind in (
            "action_succeeded",
            "action_failed",
            "action_skipped",
            "action_rejected",
            "action_deduplicated",
        ):
            found.setdefault(event.action_id or "", []).append(event.kind)
    return found


def test_resume_with_rollback_undoes_the_run(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    rt = Runtime(state={"before": True}, events=EventLog([SqliteSink(db)]))

    def work(n: int) -> int:
        if n == 2:
            raise KeyboardInterrupt
        return n

    rt.register_tool("work", work)
    with pytest.raises(KeyboardInterrupt):
        rt.execute(crashing_proposal())
    run_id = rt.events.query("run_started")[0].run_id
    rt.close()
    again = Runtime(events=EventLog([SqliteSink(db)]))
    result = again.resume(run_id, rollback=True)
    assert statuses(result) == {
        "a0": "succeeded",
        "a1": "succeeded",
        "a2": "skipped",
        "a3": "skipped",
        "a4": "skipped",
    }
    assert [r.rolled_back for r in result.results[:2]] == [True, True]
    # no abort came before them (a trial read "skipped due to earlier abort" of the action
    # that was running when the run stopped): a person chose the rollback
    assert errors(result)["a2"] == (
        "not run: the run was rolled back on resume (an action running when it stopped may"
        " have run)"
    )
    assert again.state.snapshot() == {"before": True}
    again.close()
    with closing(EventStore(db)) as store:
        assert store.runs()[0].status == "rolled_back"


_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from carlang_runtime import ir
    from carlang_runtime.engine import EventLog, Runtime, SqliteSink

    db, ledger = Path(sys.argv[1]), Path(sys.argv[2])

    def work(n: int) -> int:
        with ledger.open("a") as f:  # the external effect, to count executions
            f.write(f"{n}\\n")
        time.sleep(0.004)
        return n

    rt = Runtime(state={"start": 0}, events=EventLog([SqliteSink(db)]))
    rt.register_tool("work", work)
    print("started", flush=True)
    rt.execute(ir.ActionProposal(id="long", actions=[
        ir.Action(id=f"a{i}", type="tool_call", tool="work", parameters={"n": i},
                  expected_effects={f"done.{i}": i}) for i in range(60)]))
    """
)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_killed_process_is_resumed_from_its_journal(tmp_path: Path, seed: int) -> None:
    db, ledger = tmp_path / "run.db", tmp_path / "ledger.txt"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(db), str(ledger)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert child.stdout is not None and child.stdout.readline().strip() == b"started"
    # Killed only once the run is under way (its first call made, so its start journaled): on
    # a loaded machine "started" can come long before the run does.
    deadline = time.monotonic() + 30
    while not (ledger.exists() and ledger.read_text()) and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(random.Random(seed).uniform(0.03, 0.2))
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    child.stdout.close()
    store = EventStore(db)
    (summary,) = store.runs()
    assert summary.status == "interrupted"
    finished = {e.action_id for e in store.events(kind="action_succeeded")}
    store.close()
    ran_before = [int(n) for n in ledger.read_text().split()]

    def work(n: int) -> int:
        with ledger.open("a") as f:
            f.write(f"{n}\n")
        return n

    rt = Runtime(events=EventLog([SqliteSink(db)]))
    rt.register_tool("work", work)
    result = rt.resume(summary.run_id)
    rt.close()
    assert result.all_succeeded() and len(result.results) == 60
    assert rt.state.snapshot() == {"start": 0, **{f"done.{i}": i for i in range(60)}}
    ran_after = [int(n) for n in ledger.read_text().split()][len(ran_before) :]
    # Nothing the journal shows finished ran again; everything else ran exactly once more
    # (an action cut off mid-call may have run twice in all: at least once, never lost).
    assert not {f"a{n}" for n in ran_after} & finished
    assert sorted(ran_after) == sorted(i for i in range(60) if f"a{i}" not in finished)
    store = EventStore(db)
    assert all(len(k) == 1 for k in terminal_events_of(store, summary.run_id).values())
    assert len(terminal_events_of(store, summary.run_id)) == 60
    store.close()


def test_a_journal_is_never_added_to_another_programs_database(tmp_path: Path) -> None:
    """A .db that holds other tables is refused, and left exactly as it was (no events
    table, not switched to WAL); a journal already written is opened again."""
    import sqlite3

    other = tmp_path / "app.db"
    with closing(sqlite3.connect(other)) as connection:
        connection.execute("CREATE TABLE users (id INTEGER)")
        connection.commit()
    before = other.read_bytes()
    with pytest.raises(CarlangRuntimeError, match=r"app.db: a SQLite database that is not an"):
        SqliteSink(other)
    assert other.read_bytes() == before
    journal = tmp_path / "run.db"
    SqliteSink(journal).close()
    SqliteSink(journal).close()  # (its own tables: opened again)


def test_a_new_journal_waits_for_another_process_writing_the_file(tmp_path: Path) -> None:
    """Switching a new database to WAL needs the file to itself, and SQLite fails that at
    once, ignoring its busy timeout, while another connection is writing it (two workers
    opening one new runs database together failed that way). The journal waits instead."""
    import sqlite3
    import threading

    path = tmp_path / "run.db"
    SqliteSink(path).close()
    with closing(sqlite3.connect(path)) as made:
        made.execute("PRAGMA journal_mode=DELETE")  # as new: the rollback journal
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")  # a write lock, held
    with closing(sqlite3.connect(path, timeout=5)) as plain:
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            plain.execute("PRAGMA journal_mode=WAL")  # what SQLite does by itself
        assert time.monotonic() - started < 1  # (at once)
    threading.Timer(0.3, lambda: writer.execute("COMMIT")).start()
    SqliteSink(path).close()
    writer.close()
    with closing(sqlite3.connect(path)) as opened:
        assert opened.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_journal_in_a_missing_directory_names_the_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "run.db"
    with pytest.raises(CarlangRuntimeError, match=r"no such directory .*nope: create it"):
        SqliteSink(missing)
    assert not missing.parent.exists()


def test_a_redacted_run_that_relied_on_a_default_resumes(tmp_path: Path) -> None:
    """The journal keeps the proposal with its defaults filled and its secret redacted; the
    caller's proposal, without the default, is the same proposal once filled."""
    db = tmp_path / "run.db"
    limit = {"limit": {"type": "integer", "default": 5}}
    secret = {"user": "b", "token": "tok_abcdef123"}
    plan, (login, run_login, calls) = _interrupted_login_run(db, secret, limit)
    again = Runtime(events=EventLog([SqliteSink(db)]))
    again.register_tool("login", run_login, login)
    with closing(EventStore(db)) as store:
        run_id = store.runs()[0].run_id
    try:
        assert again.resume(run_id, proposal=plan).all_succeeded()
    finally:
        again.close()  # (its journal's connection: Python 3.13 warns of one left open)
    assert calls == ["a", "b", "b"]


def _interrupted_login_run(
    db: Path, b_params: dict[str, Any], more: dict[str, Any] | None = None
) -> tuple[ir.ActionProposal, Any]:
    """A run of `a = login(token: secret)` then `b = login(**b_params)`, stopped during b
    (`more`: more parameters of `login`, in JSON Schema)."""
    login = ir.ToolSchema(
        name="login",
        parameters={
            "type": "object",
            "properties": {
                "user": {"type": "string"},
                "token": {"type": "string", "writeOnly": True},
                "note": {"type": "string"},
                **(more or {}),
            },
            "required": ["user"],
        },
    )
    calls: list[str] = []

    def run_login(user: str, token: str = "", note: str = "", **more: Any) -> str:
        calls.append(user)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process stops mid-run
        return user

    plan = proposal(
        call("a", "login", params={"user": "a", "token": "tok_abcdef123"}),
        call("b", "login", params=b_params, depends_on=["a"]),
    )
    first = Runtime(events=EventLog([SqliteSink(db)]))
    first.register_tool("login", run_login, login)
    with pytest.raises(KeyboardInterrupt):
        first.execute(plan)
    first.close()
    return plan, (login, run_login, calls)


def test_a_run_whose_secret_is_quoted_in_another_parameter_resumes(tmp_path: Path) -> None:
    """The journal takes a secret's text out of every string, a plain parameter that quotes
    it too (`note: "uses tok_..."`): the caller's proposal, written down the same way, is the
    one it ran (it was refused as another proposal, so the run could never be resumed)."""
    db = tmp_path / "run.db"
    b_params = {"user": "b", "note": "uses tok_abcdef123"}
    plan, (login, run_login, calls) = _interrupted_login_run(db, b_params)
    again = Runtime(events=EventLog([SqliteSink(db)]))
    again.register_tool("login", run_login, login)
    with closing(EventStore(db)) as store:
        run_id = store.runs()[0].run_id
    other = proposal(plan.actions[0], call("b", "login", params={**b_params, "user": "c"}))
    try:
        with pytest.raises(CarlangRuntimeError, match="the proposal given is not the one run"):
            again.resume(run_id, proposal=other)  # (another proposal is still refused)
        # ... saying where it differs, and what to resume with (a trial: an edited program)
        with pytest.raises(
            CarlangRuntimeError,
            match=r"action 'b' differs in depends_on, parameters\): resume with the program",
        ):
            again.resume(run_id, proposal=other)
        extra = proposal(*plan.actions, call("c", "login", params={"user": "c"}))
        with pytest.raises(CarlangRuntimeError, match="it has action 'c', the run had none"):
            again.resume(run_id, proposal=extra)
        assert again.resume(run_id, proposal=plan).all_succeeded()
    finally:
        again.close()
    assert calls == ["a", "b", "b"]


def test_a_run_is_not_resumed_without_its_tools_implementations(tmp_path: Path) -> None:
    """Resumed without an implementation of a tool it calls, the run's next call would fail
    and abort it for good: refused before anything runs, and resumable once given them."""
    db = tmp_path / "run.db"
    plan, (login, run_login, calls) = _interrupted_login_run(db, {"user": "b"})
    with closing(EventStore(db)) as store:
        run_id = store.runs()[0].run_id
    bare = Runtime(events=EventLog([SqliteSink(db)]))
    bare.declare_tool(login)  # declared, as a program declares it, but not implemented
    try:
        with pytest.raises(CarlangRuntimeError, match="tool 'login' has no implementation here"):
            bare.resume(run_id, proposal=plan)
    finally:
        bare.close()
    again = Runtime(events=EventLog([SqliteSink(db)]))
    again.register_tool("login", run_login, login)
    try:
        assert again.resume(run_id, proposal=plan).all_succeeded()
    finally:
        again.close()
    assert calls == ["a", "b", "b"]


def test_the_journal_says_which_process_runs_a_run_while_it_runs(tmp_path: Path) -> None:
    import os
    import sqlite3

    db = tmp_path / "run.db"
    seen: list[list[tuple[Any, ...]]] = []

    def look() -> str:
        with closing(sqlite3.connect(db)) as connection:
            seen.append(connection.execute("SELECT pid FROM run_owners").fetchall())
        return "ok"

    runtime = Runtime(events=EventLog([SqliteSink(db)]))
    runtime.register_tool("look", look)
    try:
        assert runtime.execute(proposal(call("a", "look"))).all_succeeded()
    finally:
        runtime.close()
    assert seen == [[(os.getpid(),)]]
    with closing(sqlite3.connect(db)) as connection:
        assert connection.execute("SELECT * FROM run_owners").fetchall() == []  # it ended


def test_a_run_another_live_process_runs_is_not_resumed(tmp_path: Path) -> None:
    """Resumed while its process still ran it, a run ran every action twice (and the journal
    showed one clean run): the journal keeps which process runs each run, and a resume is
    refused while that process lives; once it has died (kill -9), the run is resumed."""
    import os
    import socket
    import sqlite3
    import subprocess
    import sys

    from carlang_runtime.engine.journal import _process_start

    db = tmp_path / "run #1.db"  # (a name a URI must escape)
    plan, (login, run_login, calls) = _interrupted_login_run(db, {"user": "b"})
    with closing(EventStore(db)) as store:
        run_id = store.runs()[0].run_id
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with closing(sqlite3.connect(db)) as connection:  # as that process's run_started does
            connection.execute(
                "INSERT INTO run_owners VALUES (?, ?, ?, ?)",
                (run_id, socket.gethostname(), other.pid, _process_start(other.pid)),
            )
            connection.commit()
        again = Runtime(events=EventLog([SqliteSink(db)]))
        again.register_tool("login", run_login, login)
        with pytest.raises(
            CarlangRuntimeError,
            match=rf"run '{run_id}' is still running \(process {other.pid} of this machine runs",
        ):
            again.resume(run_id, proposal=plan)
        assert calls == ["a", "b"]  # nothing ran
    finally:
        other.kill()
        other.wait()
    try:
        assert again.resume(run_id, proposal=plan).all_succeeded()  # its process is gone
    finally:
        again.close()
    assert calls == ["a", "b", "b"]
    with closing(sqlite3.connect(db)) as connection:
        assert connection.execute("SELECT * FROM run_owners").fetchall() == []  # it ended
    assert os.getpid() != other.pid


CLAIM = """
import sys, time
from pathlib import Path
from carlang_runtime.engine.journal import claim_run
print(claim_run(Path(sys.argv[1]), "r1"), flush=True)
time.sleep(2)
"""


@pytest.mark.slow  # (two processes)
def test_of_two_resumes_started_together_one_takes_the_run(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    SqliteSink(db).close()
    started = [
        subprocess.Popen([sys.executable, "-c", CLAIM, str(db)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    said = [process.communicate(timeout=60)[0].strip() for process in started]
    assert sorted(said, key=len)[0] == "None", said
    assert said.count("None") == 1 and "of this machine runs it now" in max(said, key=len), said


def test_a_budget_counts_what_the_run_did_before_it_was_resumed(tmp_path: Path) -> None:
    """A resumed run started its budget again: killed after two of its three calls allowed
    (`max_tool_calls 3`), it made three more once resumed. The calls and actions the journal
    shows count, and the result counts every call of the run."""
    db = tmp_path / "run.db"
    calls: list[int] = []

    def step(n: int) -> int:
        calls.append(n)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process stops during the third call
        return n

    plan = proposal(
        *(call(f"a{n}", "step", params={"n": n}, failure_behavior="skip") for n in range(5))
    )
    for n in range(1, 5):
        plan.actions[n].depends_on.append(f"a{n - 1}")

    def runtime() -> Runtime:
        rt = Runtime(events=EventLog([SqliteSink(db)]))
        rt.set_budget(ir.Budget(max_tool_calls=3))
        rt.register_tool("step", step)
        return rt

    first = runtime()
    with pytest.raises(KeyboardInterrupt):
        first.execute(plan)
    first.close()
    with closing(EventStore(db)) as store:
        run_id = store.runs()[0].run_id
    again = runtime()
    try:
        result = again.resume(run_id)
    finally:
        again.close()
    assert calls == [0, 1, 2, 2]  # the interrupted call again, then the budget is spent
    assert statuses(result) == {
        "a0": "succeeded",
        "a1": "succeeded",
        "a2": "succeeded",
        "a3": "skipped",
        "a4": "skipped",
    }
    assert result.cost.tool_calls == 3


def test_two_runs_share_one_journal_while_a_tool_of_one_takes_its_time(tmp_path: Path) -> None:
    """Two runtimes (two processes, in production) writing one journal: while a tool of the
    first runs, no write transaction of its holds the journal, so the second run writes its
    events (it waited 5 s, then failed with 'database is locked' in the middle of its plan)."""
    import threading

    db = tmp_path / "shared.db"
    second_done = threading.Event()
    outcome: dict[str, Any] = {}

    def waits_for_the_other() -> str:
        assert second_done.wait(20), "the second run never finished"
        return "done"

    first = Runtime(events=EventLog([SqliteSink(db)]))
    first.register_tool("wait", waits_for_the_other)
    second = Runtime(events=EventLog([SqliteSink(db)]))
    second.register_tool("quick", lambda: "quick")

    def run_first() -> None:
        outcome["first"] = first.execute(proposal(call("w", "wait")))

    worker = threading.Thread(target=run_first)
    worker.start()
    time.sleep(0.3)  # the first run is inside its tool now
    started = time.monotonic()
    outcome["second"] = second.execute(proposal(call("q", "quick")))
    waited = time.monotonic() - started
    second_done.set()
    worker.join(30)
    first.close()
    second.close()
    assert statuses(outcome["second"]) == {"q": "succeeded"} and waited < 3
    assert statuses(outcome["first"]) == {"w": "succeeded"}
    with closing(EventStore(db)) as store:
        assert len(store.runs()) == 2
