"""`carlang events LOG [RUN_ID] --tenant T`: the runs of one tenant (a gateway's log holds many),
and the run given as an argument as well as by --run."""

from __future__ import annotations

from pathlib import Path

from carlang_runtime import ir
from carlang_runtime.engine import EventLog, JsonlSink, Runtime
from typer.testing import CliRunner

from carlang.cli import app

runner = CliRunner()


def _log(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A log of three runs: one of tenant acme, one of globex, one with no tenant; their ids."""
    log = tmp_path / "run.jsonl"
    runtime = Runtime(events=EventLog([JsonlSink(log)]))
    runtime.register_tool("t", lambda: "ok")
    ids = {}
    try:
        for who in ("acme", "globex", None):
            proposal = ir.ActionProposal(
                id=f"p-{who}", actions=[ir.Action(id="a", type="tool_call", tool="t")]
            )
            runtime.execute(proposal, scope={"tenant": who} if who else {})
            ids[str(who)] = runtime.events.query("run_started")[-1].run_id
    finally:
        runtime.close()
    return log, ids


def test_tenant_keeps_the_runs_of_one_tenant(tmp_path: Path) -> None:
    log, ids = _log(tmp_path)
    listed = runner.invoke(app, ["events", str(log), "--tenant", "acme"])
    assert listed.exit_code == 0, listed.output
    assert ids["acme"] in listed.stdout and ids["globex"] not in listed.stdout
    assert listed.stdout.rstrip().endswith("1 run")
    events = runner.invoke(app, ["events", str(log), "--tenant", "globex", "--kind", "run_started"])
    assert events.exit_code == 0 and events.stdout.rstrip().endswith("1 event"), events.output
    unknown = runner.invoke(app, ["events", str(log), "--tenant", "initech"])
    assert unknown.exit_code == 2
    assert "no run of tenant `initech`" in unknown.stderr and "acme, globex" in unknown.stderr
    # another tenant's run is said to be so (it was "no run ...", which is not so)
    other = runner.invoke(app, ["events", str(log), ids["acme"], "--tenant", "globex"])
    assert other.exit_code == 2
    said = " ".join(other.stderr.split())
    assert f"run `{ids['acme']}` in {log} is tenant `acme`'s, not one of tenant `globex`" in said
    untenanted = runner.invoke(app, ["events", str(log), ids["None"], "--tenant", "acme"])
    assert "is a run with no tenant, not one of tenant `acme`" in " ".join(
        untenanted.stderr.split()
    )


def test_the_runs_listed_say_their_tenant(tmp_path: Path) -> None:
    import json

    log, ids = _log(tmp_path)
    listed = runner.invoke(app, ["events", str(log)])
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()[:-1]}
    assert lines[ids["acme"]].endswith("tenant acme")
    assert lines[ids["globex"]].endswith("tenant globex")
    assert "tenant" not in lines[ids["None"]]
    as_json = json.loads(runner.invoke(app, ["events", str(log), "--format", "json"]).stdout)
    assert [run["tenant"] for run in as_json] == ["acme", "globex", None]


def test_the_run_may_be_given_as_an_argument(tmp_path: Path) -> None:
    log, ids = _log(tmp_path)
    by_argument = runner.invoke(app, ["events", str(log), ids["acme"][:8]])
    by_option = runner.invoke(app, ["events", str(log), "--run", ids["acme"][:8]])
    assert by_argument.exit_code == 0 and by_argument.stdout == by_option.stdout
    assert "run_started" in by_argument.stdout
    both = runner.invoke(app, ["events", str(log), ids["acme"], "--run", ids["globex"]])
    assert both.exit_code == 2 and "give one" in both.stderr


def test_an_action_no_event_is_about_is_a_usage_error(tmp_path: Path) -> None:
    # (a mistyped id listed nothing, with exit 0, as if the action had no events)
    log, ids = _log(tmp_path)
    kept = runner.invoke(app, ["events", str(log), ids["acme"], "--action", "a"])
    assert kept.exit_code == 0 and kept.stdout.rstrip().endswith("events"), kept.output
    typo = runner.invoke(app, ["events", str(log), "--action", "aa"])
    assert typo.exit_code == 2
    assert "no event of" in typo.stderr and "did you mean `a`?" in typo.stderr
    unknown = runner.invoke(app, ["events", str(log), ids["acme"], "--action", "zzz"])
    assert unknown.exit_code == 2
    said = " ".join(unknown.stderr.split())
    assert f"no event of run `{ids['acme']}` is about an action `zzz` (its actions: a)" in said


def test_the_events_of_several_runs_say_whose_they_are(tmp_path: Path) -> None:
    log, ids = _log(tmp_path)
    listed = runner.invoke(app, ["events", str(log), "--kind", "run_started"])
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert sorted(line.split()[0] for line in lines[:-1]) == sorted(ids.values())
    assert lines[-1] == "3 events of 3 runs"
    one = runner.invoke(app, ["events", str(log), ids["acme"], "--kind", "run_started"])
    assert one.stdout.splitlines()[0].split()[0] != ids["acme"]  # (one run: said once, above)
    assert one.stdout.splitlines()[-1] == "1 event"
