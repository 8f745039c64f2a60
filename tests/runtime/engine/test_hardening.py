"""Damaged journals, checkpoints that are data, file tools that cannot be led out of their root,
and subprocess tools that are killed whole, say their real timeout and get a minimal
environment."""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from pathlib import Path

import pytest
from carlang_runtime.engine import (
    EventLog,
    EventLogError,
    JsonlSink,
    Runtime,
    SqliteSink,
    read_event_log,
)
from carlang_runtime.engine.builtins import builtin_tools
from typer.testing import CliRunner

from carlang.cli import app

from .support import call, errors, proposal, write

runner = CliRunner()

# -- damaged journals --------------------------------------------------------------------------


def _journal(tmp_path: Path) -> tuple[Path, str]:
    db = tmp_path / "run.db"
    rt = Runtime(events=EventLog([SqliteSink(db)]))
    rt.execute(proposal(write("w", "k", 1)))
    rt.close()
    run_id = rt.events.query("run_started")[0].run_id or ""
    return db, run_id


@pytest.mark.parametrize("name", ["run.jsonl", "run.db"])
def test_an_output_holding_a_lone_surrogate_is_logged_and_read_back_as_it_was(
    tmp_path: Path, name: str
) -> None:
    """A file name that is not UTF-8 reads in Python as `bad\\udcffname`: a tool listing a
    folder returned it, and writing the log failed the run with an internal error (its
    writes done, its journal left failed, its resume failing the same way)."""
    listed = ["bad\udcffname", "café"]
    path = tmp_path / name
    sink = JsonlSink(path) if name.endswith(".jsonl") else SqliteSink(path)
    rt = Runtime(events=EventLog([sink]))
    rt.register_tool("list", lambda: listed)
    try:
        result = rt.execute(proposal(call("a", "list")))
    finally:
        rt.close()
    assert result.results[0].status.value == "succeeded", result
    (done,) = [e for e in read_event_log(path) if e["kind"] == "action_succeeded"]
    assert done["data"]["output"] == listed


def test_a_file_that_is_not_a_journal_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    db.write_bytes(os.urandom(4096))
    with pytest.raises(EventLogError, match="run.db: not an event journal"):
        read_event_log(db)
    with pytest.raises(EventLogError, match="not an event journal"):
        Runtime().resume("abc", db)
    shown = runner.invoke(app, ["events", str(db)])
    assert shown.exit_code == 2 and "not an event journal" in shown.output


@pytest.mark.skipif(
    not Path("/proc/self").is_dir(), reason="needs /proc, a folder no one can create files in"
)
def test_a_journal_that_cannot_be_created_is_not_called_damaged() -> None:
    """`--events /proc/x.db` (a folder that cannot be written) said "not an event journal, or a
    damaged one": of a file that does not exist (bad-input sweep)."""
    with pytest.raises(EventLogError) as raised:
        SqliteSink(Path("/proc/carlang-no-such-journal.db"))
    assert "cannot create the event journal" in str(raised.value)
    assert "damaged" not in str(raised.value)


def test_a_damaged_row_is_a_clear_error(tmp_path: Path) -> None:
    db, run_id = _journal(tmp_path)
    connection = sqlite3.connect(db)
    connection.execute("UPDATE events SET data = '{not json' WHERE kind = 'proposal_received'")
    connection.commit()
    connection.close()
    with pytest.raises(EventLogError, match=r"event \d+ is damaged"):
        Runtime().resume(run_id, db)
    shown = runner.invoke(app, ["events", str(db), "--run", run_id])
    assert shown.exit_code == 2 and "is damaged" in shown.output


def test_a_torn_jsonl_tail_is_a_clear_error(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    rt = Runtime(events=EventLog([JsonlSink(log)]))
    rt.execute(proposal(write("w", "k", 1)))
    rt.close()
    text = log.read_text()
    log.write_text(text[: len(text) - 20])
    with pytest.raises(EventLogError, match="the last line is cut short"):
        read_event_log(log)
    shown = runner.invoke(app, ["events", str(log)])
    assert shown.exit_code == 2 and "cut short" in shown.output


@pytest.mark.parametrize(
    "tail", ['{"kind": "action_succ', '{"seq": 9, "kind": "x", ', '{"kind": "x",\n\n']
)
def test_a_torn_last_line_with_a_newline_after_it_is_cut_short_too(
    tmp_path: Path, tail: str
) -> None:
    log = tmp_path / "run.jsonl"
    rt = Runtime(events=EventLog([JsonlSink(log)]))
    rt.execute(proposal(write("w", "k", 1)))
    rt.close()
    whole = log.read_text()
    log.write_text(whole + tail + "\n")
    with pytest.raises(EventLogError, match="the last line is cut short"):
        read_event_log(log)
    log.write_text(whole + '{"kind": "x" "seq": 3}\n')  # (broken inside: not cut short)
    with pytest.raises(EventLogError, match="malformed JSON: expecting ',' delimiter"):
        read_event_log(log)


# -- checkpoints -------------------------------------------------------------------------------


def test_an_interrupted_save_leaves_nothing_behind_for_long(tmp_path: Path) -> None:
    stray = tmp_path / ".cp.json.999999999.abc.tmp"  # a dead process's half-written save
    stray.write_text("{")
    rt = Runtime(state={"a": 1})
    rt.save_checkpoint(tmp_path / "cp.json")
    assert not stray.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["cp.json"]


# -- built-in file tools -----------------------------------------------------------------------


def test_the_file_tools_follow_no_symlink_anywhere_on_the_path(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "inside").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret")
    tools = builtin_tools(root)
    # A directory swapped for a symlink out of the root (what a racing process would do).
    os.symlink(outside, root / "swapped")
    os.symlink(outside / "secret.txt", root / "inside" / "file.txt")
    for path in ("swapped/secret.txt", "inside/file.txt"):
        with pytest.raises(Exception, match="symlink"):
            tools["read_file"](path=path)
    with pytest.raises(Exception, match="symlink"):
        tools["write_file"](path="swapped/new.txt", content="x")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert tools["list_dir"](path="inside") == ["file.txt"]


def test_the_file_tools_never_write_or_read_through_a_hard_link(tmp_path: Path) -> None:
    """A hard link in the root to a file outside it: write_file replaces the name (a new file
    renamed over it) and leaves the outside file as it was; read_file refuses a file with
    other names. A symlink or a directory at the name is still refused; an ordinary file is
    replaced whole, with nothing left beside it."""
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    os.link(outside, root / "linked.txt")
    tools = builtin_tools(root)
    with pytest.raises(Exception, match="hard links"):
        tools["read_file"](path="linked.txt")
    assert tools["write_file"](path="linked.txt", content="new") == {
        "path": "linked.txt",
        "bytes": 3,
    }
    assert outside.read_text() == "keep me"
    assert tools["read_file"](path="linked.txt") == "new"  # its own file now
    (root / "plain.txt").write_text("old text, longer than the new")
    tools["write_file"](path="plain.txt", content="short")
    assert (root / "plain.txt").read_text() == "short"
    os.symlink(outside, root / "sym.txt")
    with pytest.raises(Exception, match="symlink"):
        tools["write_file"](path="sym.txt", content="x")
    (root / "dir").mkdir()
    with pytest.raises(Exception, match="is a directory"):
        tools["write_file"](path="dir", content="x")
    assert outside.read_text() == "keep me"
    assert sorted(p.name for p in root.iterdir()) == [
        "dir",
        "linked.txt",
        "plain.txt",
        "sym.txt",
    ]


def test_write_file_keeps_a_files_permissions_and_takes_the_longest_names(tmp_path: Path) -> None:
    """The new file renamed over the name gets the old one's mode (a 0600 file stayed 0600
    before it was written through a temporary file), a new file the usual mode, and a name
    as long as the file system allows still works (the temporary name is short)."""
    tools = builtin_tools(tmp_path)
    private = tmp_path / "private.txt"
    private.write_text("old")
    private.chmod(0o600)
    tools["write_file"](path="private.txt", content="new")
    assert (private.stat().st_mode & 0o777, private.read_text()) == (0o600, "new")
    tools["write_file"](path="fresh.txt", content="x")
    mask = os.umask(0o022)
    os.umask(mask)
    assert (tmp_path / "fresh.txt").stat().st_mode & 0o777 == 0o644 & ~mask
    long_name = "n" * 250 + ".txt"
    tools["write_file"](path=long_name, content="x")
    assert (tmp_path / long_name).read_text() == "x"


def test_read_file_checks_the_size_before_reading_and_refuses_what_is_not_a_file(
    tmp_path: Path,
) -> None:
    tools = builtin_tools(tmp_path)
    big = tmp_path / "big.bin"
    with big.open("wb") as file:
        file.truncate(8 * 1024**3)  # sparse: reading it would take a while
    started = time.perf_counter()
    with pytest.raises(Exception, match="larger than"):
        tools["read_file"](path="big.bin")
    assert time.perf_counter() - started < 1.0
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(Exception, match="not a regular file"):
        tools["read_file"](path="pipe")


# -- subprocess tools --------------------------------------------------------------------------


def test_a_subprocess_timeout_kills_the_whole_group_and_says_so(tmp_path: Path) -> None:
    marker = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time;"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        f"open({str(marker)!r}, 'w').write(str(p.pid));"
        "time.sleep(60)"
    )
    rt = Runtime()
    rt.register_subprocess_tool("slow", [sys.executable, "-c", script], timeout=0.5)
    result = rt.execute(proposal(call("s", "slow", failure_behavior="skip")))
    assert errors(result) == {"s": "timed out after 500 ms"}
    grandchild = int(marker.read_text())
    deadline = time.time() + 5
    while time.time() < deadline and _running(grandchild):
        time.sleep(0.05)
    assert not _running(grandchild)


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return status != "Z"


def test_a_subprocess_tool_gets_an_allow_listed_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARLANG_TEST_CREDENTIAL", "do-not-leak")
    script = "import json, os; print(json.dumps(sorted(os.environ)))"
    rt = Runtime()
    rt.register_subprocess_tool("env", [sys.executable, "-c", script], env={"MINE": "1"})
    rt.register_subprocess_tool(
        "wide", [sys.executable, "-c", script], inherit_env=["PATH", "CARLANG_TEST_CREDENTIAL"]
    )
    result = rt.execute(proposal(call("a", "env"), call("b", "wide")))
    names, wide = result.results[0].output, result.results[1].output
    assert "CARLANG_TEST_CREDENTIAL" not in names and "MINE" in names and "PATH" in names
    assert "CARLANG_TEST_CREDENTIAL" in wide


def test_resuming_from_a_damaged_journal_exits_2(tmp_path: Path) -> None:
    (tmp_path / "p.car").write_text("tool t()\nproposal p {\n  a = t()\n}\n")
    db = tmp_path / "run.db"
    db.write_bytes(b"SQLite format 3\x00" + os.urandom(2048))
    shown = runner.invoke(
        app,
        [
            "run",
            str(tmp_path / "p.car"),
            "--events",
            str(db),
            "--resume",
            "abc",
            "--root",
            str(tmp_path),
        ],
    )
    assert shown.exit_code == 2, shown.output
    assert "run.db" in shown.output and "internal error" not in shown.output
