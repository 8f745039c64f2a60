"""Bad input to the durable commands is refused up front in one line (exit 2), before anything
is recorded: a database URL carlang cannot use, a `--tools` that does not load, an approval
timeout that is not above 0; a database that cannot be reached is one line of carlang's, with
none of DBOS's own log lines; a broken DBOS install says what is broken."""

from __future__ import annotations

import builtins
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.dbos.support import (
    DURABLE_RUN,
    NO_DBOS,
    WORK_PROGRAM,
    WORK_TOOLS,
    carlang,
    sqlite_url,
    write_project,
)

pytest.importorskip("dbos", reason=NO_DBOS)
# slow: subprocesses that load DBOS (the default run stays under three minutes; CI runs these)
pytestmark = pytest.mark.slow

from carlang.cli import app  # noqa: E402
from carlang_dbos import DATABASE_FORMS  # noqa: E402

EXAMPLE = Path(__file__).parents[2] / "examples" / "planning" / "deploy_plans.car"

#: Every command that opens the runs database, with what it needs besides `--database`.
COMMANDS = [
    [*DURABLE_RUN],
    [*DURABLE_RUN, "--detach"],
    ["approve", "r1", "a"],
    ["deny", "r1", "a"],
    ["runs", "list"],
    ["worker"],
    ["rank", "p.car", "--backend", "dbos"],
]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return write_project(tmp_path, WORK_PROGRAM, WORK_TOOLS)


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize(
    ("database", "problem"),
    [
        ("postgresql://postgres@127.0.0.1:55432", "the Postgres URL names no database"),
        ("sqlite://x.db", "a SQLite URL names a file after three slashes"),
        ("mysql://x", "mysql:// is not a database carlang keeps runs in"),
        ("http://example.com/x", "http:// is not a database carlang keeps runs in"),
    ],
)
def test_a_database_url_carlang_cannot_use_is_refused_with_the_forms_it_takes(
    project: Path, database: str, problem: str
) -> None:
    for command in COMMANDS:
        result = _invoke(*command, "--database", database)
        assert result.exit_code == 2, (command, result.output)
        assert result.output.startswith(f"error: --database {database}: {problem}"), command
        assert "postgresql://user@host[:port]/dbname" in result.output
        assert len(result.output.splitlines()) == 1, result.output
    assert not (project / "x.db").exists()


#: Malformed Postgres URLs, each with a password that must not be shown, and what is said.
MALFORMED = [
    ("postgresql://tuser:Hunter2Secret@127.0.0.1:abc/tdb", "the port is not a number"),
    ("postgresql://tuser:Hunter2Secret@[::1]:abc/tdb", "the port is not a number"),
    ("postgresql://tuser:Hunter2Secret@127.0.0.1:99999/tdb", "the port 99999 is not from 1"),
    ("postgresql://tuser:Hunter2Secret@127.0.0.1:0/tdb", "the port 0 is not from 1 to 65535"),
    ("postgresql://tuser:Hunter2Secret@127.0.0.1:/tdb", "the port is not a number"),
    ("postgresql://tuser:Hunter2Secret@[::1/tdb", "an IPv6 address needs its closing ]"),
    ("postgresql://tuser:Hunter2Secret@[::1]x/tdb", "after an IPv6 address's ] comes :port"),
    ("postgresql://tuser:Hunter2Secret@::1:5432/tdb", "an IPv6 address goes in brackets"),
    ("postgresql://tuser:Hunter2Secret@/tdb", "the Postgres URL names no host"),
    ("postgresql://tuser:Hunter2@Secret@db/tdb", "it has more than one @"),
    ("postgresql://tuser:Hunter2Secret/tdb", "the port is not a number"),  # no @host
    ("postgresql://tuser:Hunter2/Secret@db:abc/tdb", "the port is not a number"),
]


@pytest.mark.parametrize(("database", "problem"), MALFORMED)
def test_a_malformed_postgres_url_is_one_line_with_its_password_hidden(
    project: Path, database: str, problem: str
) -> None:
    """A port that is not a number was a ValueError from deep inside SQLAlchemy: "internal
    error", exit 101. Every command says what is wrong with the URL, exit 2, no password."""
    for command in COMMANDS:
        result = _invoke(*command, "--database", database)
        assert result.exit_code == 2, (command, result.output)
        assert result.output.startswith("error: --database postgresql://tuser"), result.output
        assert f": {problem}" in result.output, (command, result.output)
        assert len(result.output.splitlines()) == 1, result.output
        assert "Secret" not in result.output, result.output
        assert "internal error" not in result.output


def test_the_sweep_of_the_trial_with_a_port_that_is_not_a_number(project: Path) -> None:
    """The new-user trial's command, as a process: one line, exit 2, the password hidden."""
    shutil.copy(EXAMPLE, project / "plans.car")
    database = "postgresql://tuser:Hunter2Secret@127.0.0.1:abc/tdb"
    sweep = ["rank", "plans.car", "--sweep", "cost_weight=0:1:0.5", "--backend", "dbos"]
    done = carlang(*sweep, "--database", database, cwd=project)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        "error: --database postgresql://tuser:***@127.0.0.1:abc/tdb: the port is not a number"
        f" (like host:5432); give {DATABASE_FORMS}\n"
    )
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("database", "shown"),
    [
        ("postgresql://u:s3cret@h/d", "postgresql://u:***@h/d"),
        ("postgresql://u:s3@cret@h/d", "postgresql://u:***@h/d"),
        ("postgresql://u:s3/cret@h:abc/d", "postgresql://u:***@h:abc/d"),
        ("postgresql://u:s3?cret@h/d?x=1", "postgresql://u:***@h/d?x=1"),
        ("postgresql://u:s3cret/d", "postgresql://u:***/d"),
        ("postgresql://:s3cret@h/d", "postgresql://:***@h/d"),
        ("postgresql://u@h:5432/d", "postgresql://u@h:5432/d"),
        ("postgresql://u@[::1]:5432/d", "postgresql://u@[::1]:5432/d"),
        ("sqlite:////abs/runs.db", "sqlite:////abs/runs.db"),
        ("not a url: s3cret", "not a url: s3cret"),
    ],
)
def test_shown_url_hides_any_password_well_formed_or_not(database: str, shown: str) -> None:
    from carlang_dbos import has_password, shown_url

    assert shown_url(database) == shown
    assert has_password(database) == (shown != database)


def test_an_unreachable_database_is_one_line_of_carlangs_without_dboss_logs(
    project: Path,
) -> None:
    database = "postgresql://postgres@127.0.0.1:1/carlang"  # nothing listens on port 1
    for command in COMMANDS[:3] + COMMANDS[4:]:
        done = carlang(*command, "--database", database, cwd=project)
        assert done.returncode == 2, (command, done.stderr)
        assert done.stderr.startswith(f"error: cannot open the runs database {database}: ")
        assert len(done.stderr.splitlines()) == 1, (command, done.stderr)


def _databases(postgres_url: str) -> set[str]:
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            return set(connection.execute(sa.text("SELECT datname FROM pg_database")).scalars())
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_mistyped_postgres_database_is_refused_not_created(
    project: Path, postgres_url: str
) -> None:
    """DBOS created any database it was given (the user may): a mistyped name became a new
    database no worker serves, and `rank --backend dbos` queued its tasks there and waited for
    ever. Every command but `carlang worker` refuses it, in one line that says how to create
    it; a worker creates the database it serves, and says so."""
    server = postgres_url.rsplit("/", 1)[0]
    missing = f"{server}/nosuchdb"
    port = postgres_url.rsplit(":", 1)[1].split("/")[0]
    said = (
        f'error: cannot open the runs database {missing}: database "nosuchdb" does not exist;'
        f" check its name, or create it (createdb -h 127.0.0.1 -p {port} -U postgres nosuchdb;"
        " or start `carlang worker` on it, which creates the database it serves)\n"
    )
    for command in [c for c in COMMANDS if c != ["worker"]]:
        refused = carlang(*command, "--database", missing, cwd=project)
        assert refused.returncode == 2, (command, refused.stdout)
        assert refused.stderr == said, command
        assert refused.stdout == ""
    assert "nosuchdb" not in _databases(postgres_url)
    with_password = carlang(
        "runs", "list", "--database", missing.replace("postgres@", "postgres:s3cret@"), cwd=project
    )
    assert with_password.returncode == 2 and "s3cret" not in with_password.stderr
    assert "createdb -h 127.0.0.1" in with_password.stderr
    with subprocess.Popen(
        [sys.executable, "-m", "carlang", "worker", "--database", missing, "--id", "w1"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as worker:
        try:
            assert worker.stdout is not None
            assert worker.stdout.readline() == (
                f"carlang worker on {missing} (a new database: it did not exist, and was created)\n"
            )
        finally:
            worker.kill()
    assert "nosuchdb" in _databases(postgres_url)
    listed = carlang("runs", "list", "--database", missing, cwd=project)
    assert (listed.returncode, listed.stdout) == (0, "no runs\n"), listed.stderr


def test_a_password_in_the_url_is_never_shown(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Errors go to terminals and CI logs: a URL's password is `***` in every one; the URL
    may come from $CARLANG_DATABASE, where no command line shows it."""
    refused = _invoke("runs", "list", "--database", "mysql://ops:s3cret@db/x")
    assert refused.exit_code == 2 and "mysql://ops:***@db/x" in refused.output
    unreachable = "postgresql://ops:s3cret@127.0.0.1:1/carlang"
    done = carlang("runs", "list", "--database", unreachable, cwd=project)
    assert done.returncode == 2 and "postgresql://ops:***@127.0.0.1:1/carlang" in done.stderr
    monkeypatch.setenv("CARLANG_DATABASE", "mysql://ops:s3cret@db/x")
    from_env = _invoke("runs", "list")
    assert from_env.exit_code == 2 and "mysql://ops:***@db/x" in from_env.output
    assert all("s3cret" not in out for out in (refused.output, done.stderr, from_env.output))


@pytest.mark.parametrize("seconds", ["-5", "0", "nan"])
def test_an_approval_timeout_not_above_zero_is_a_usage_error(project: Path, seconds: str) -> None:
    database = sqlite_url(project)
    # (--detach: before the check, the run was queued, to fail on a worker later)
    result = _invoke(*COMMANDS[1], "--database", database, f"--approval-timeout={seconds}")
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: --approval-timeout {seconds}: ")
    assert "above 0" in result.output
    assert not (project / "runs.db").exists()  # nothing recorded


@pytest.mark.parametrize("option", ["--auto-approve", "--deny-approvals"])
def test_an_in_process_approval_option_is_refused(project: Path, option: str) -> None:
    """A trial: `--backend dbos --auto-approve` waited a day for an approval, the option
    silently ignored. It is refused, saying how a durable run is answered."""
    result = _invoke(*COMMANDS[0], "--database", sqlite_url(project), option)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {option} is in-process: a durable run asks")
    assert "`carlang approve RUN ACTION`" in result.output
    assert not (project / "runs.db").exists()  # nothing recorded


@pytest.mark.slow
def test_tools_that_do_not_load_are_refused_before_anything_is_recorded(
    project: Path, postgres_database: str
) -> None:
    base = ["run", "p.car", "--backend", "dbos", "--database", postgres_database]
    first = carlang(*base, "--tools", "tools.py:TOOLS", "--detach", cwd=project)
    assert first.returncode == 0, first.stderr
    for tools, said in (("nope.py:TOOLS", "no file nope.py"), ("tools.py:NOPE", "no `NOPE`")):
        inprocess = carlang("run", "p.car", "--tools", tools, cwd=project)
        for mode in ([], ["--detach"]):
            refused = carlang(*base, "--tools", tools, *mode, cwd=project)
            assert refused.returncode == 2, refused.stdout
            assert refused.stderr == inprocess.stderr, mode  # the in-process engine's error
            assert said in refused.stderr and len(refused.stderr.splitlines()) == 1
            assert refused.stdout == ""
    listed = carlang("runs", "list", "--database", postgres_database, cwd=project)
    assert listed.stdout.split()[0] == first.stdout.strip()
    assert len(listed.stdout.splitlines()) == 1  # no run of the refused ones


def test_a_broken_dbos_install_says_what_is_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    from carlang.cli import dbos_commands
    from carlang.cli.common import UsageProblem

    real_import = builtins.__import__
    failure: list[ImportError] = []

    def broken(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "carlang_dbos":
            raise failure[0]
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", broken)
    cases = [
        (ModuleNotFoundError("No module named 'dbos'", name="dbos"), "needs the dbos package"),
        (
            ImportError("cannot import name 'DBOSClient' from 'dbos'", name="dbos"),
            "cannot be loaded (cannot import name 'DBOSClient' from 'dbos')",
        ),
        (ImportError("libpq.so.5: cannot open shared object file"), "(libpq.so.5: cannot open"),
    ]
    for error, said in cases:
        failure[:] = [error]
        with pytest.raises(UsageProblem) as raised:
            dbos_commands._backend()
        assert said in str(raised.value), str(raised.value)
        assert "None is missing" not in str(raised.value)
        assert "pip install" in str(raised.value)


def test_the_approval_prompt_leaves_a_password_to_the_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from carlang.cli.dbos_commands import _approval_prompt

    request = {"action": "r", "tool": "refund", "policies": ["big"], "timeout_s": 60}
    _approval_prompt("postgresql://ops:s3cret@db/runs")("run1", request)
    said = capsys.readouterr().err
    assert "carlang approve run1 r (with CARLANG_DATABASE set to the runs database's URL)" in said
    assert "s3cret" not in said
    _approval_prompt("postgresql://ops@db/runs")("run2", request)
    assert "carlang approve run2 r --database postgresql://ops@db/runs" in capsys.readouterr().err


def test_a_durable_run_that_cannot_start_leaves_no_event_log(project: Path) -> None:
    """`--events new.db` was checked by opening it, which created it, before `--tools` was
    found not to load: a run that never started left an empty event log (bad-input sweep)."""
    database = sqlite_url(project / "runs.db")
    for name in ("new.db", "new.jsonl"):
        refused = _invoke(
            "run", "p.car", "--tools", "nosuchmod_carlang:x", "--backend", "dbos",
            "--database", database, "--events", name,
        )  # fmt: skip
        assert refused.exit_code == 2 and "cannot import nosuchmod_carlang" in refused.output
        assert not (project / name).exists(), name


def test_tools_files_are_named_absolutely_for_workers_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker may start in another folder: a tools file given relatively, named alone or
    with its attribute, goes into the run's spec by its absolute path; a module by its name."""
    from carlang_dbos.backend import _portable

    monkeypatch.chdir(tmp_path)
    assert _portable("tools.py") == str(tmp_path / "tools.py")
    assert _portable("lib/tools.py:TOOLS") == f"{tmp_path / 'lib' / 'tools.py'}:TOOLS"
    assert _portable("mytools:TOOLS") == "mytools:TOOLS"
    assert _portable("mytools") == "mytools"
