"""`carlang run` and `carlang events` from the command line."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carlang.cli import app
from tests.conftest import ROOT
from tests.helpers import budget_skipped_log

runner = CliRunner()

PROGRAM = """\
tool fetch(url: string) -> object
tool deploy(env: "staging" | "prod") {
  reversibility compensable
}
tool rollback(env: "staging" | "prod")
state { deployed.*: bool }

policy prod: require_approval deploy when params.env == "prod"

proposal release {
  get = fetch(url: "https://ci.example/build")
  ship = deploy(env: "prod") after get {
    effects { deployed.prod = true }
    compensate rollback(env: "prod")
  }
}
"""

TOOLS = """\
calls = []

def fetch(url):
    calls.append(url)
    return {"status": 200}

def deploy(env):
    return f"deployed to {env}"

def rollback(env):
    return "rolled back"

TOOLS = {"fetch": fetch, "deploy": deploy, "rollback": rollback}

def broken_deploy(env):
    raise RuntimeError("the cluster is down")

def setup(runtime):
    runtime.register_tool("fetch", fetch)
    runtime.register_tool("deploy", broken_deploy)
    runtime.register_tool("rollback", rollback)
"""


def project(tmp_path: Path) -> tuple[Path, Path]:
    program = tmp_path / "release.car"
    program.write_text(PROGRAM)
    tools = tmp_path / "release_tools.py"
    tools.write_text(TOOLS)
    return program, tools


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["run", *args])
    return result.exit_code, result.output


def run_with_tools_file(program: Path, tools: Path, text: str, *args: str) -> tuple[int, str]:
    """Write `text` to the tools file `tools` and run `program` with `--tools tools`."""
    tools.write_text(text)
    return run(str(program), "--tools", str(tools), *args)


def test_runs_a_proposal_with_tools_from_a_file(tmp_path: Path) -> None:
    program, tools = project(tmp_path)
    code, out = run(str(program), "--tools", f"{tools}:TOOLS", "--auto-approve")
    assert code == 0, out
    assert "proposal release" in out and "2 succeeded" in out
    assert "deployed to prod" in out


def test_events_count_what_a_budget_skipped(tmp_path: Path) -> None:
    """A trial: a run whose last two calls its budget skipped was listed `completed`, with no
    count and no why, as if it had done all its work."""
    _, log = budget_skipped_log(tmp_path)
    (entry,) = json.loads(runner.invoke(app, ["events", str(log), "--format", "json"]).output)
    assert (entry["status"], entry["skipped"], entry["failed"]) == ("completed", 2, 0)
    assert entry["why"] == "c: cost budget exceeded"
    line = runner.invoke(app, ["events", str(log)]).output.splitlines()[0]
    assert "completed (2 skipped)" in line and line.endswith("c: cost budget exceeded")


def test_events_keep_their_columns_under_a_long_status(tmp_path: Path) -> None:
    """A trial: after `completed (1 interrupted attempt)` the columns of its line shifted."""
    tools = tmp_path / "t_tools.py"
    tools.write_text(
        "def boom():\n    raise RuntimeError('no')\nTOOLS = {'ok': lambda n: n, 'boom': boom}\n"
    )
    log = tmp_path / "run.jsonl"
    steps = "a = boom()  b = ok(n: 1) after a  c = ok(n: 2) after b  d = ok(n: 3) after c"
    for body in ("a = ok(n: 0)", steps):
        program = tmp_path / "p.car"
        program.write_text(f"tool ok(n: int)\ntool boom()\nproposal p {{ {body} }}\n")
        run(str(program), "--tools", f"{tools}:TOOLS", "--events", str(log))
    lines = runner.invoke(app, ["events", str(log)]).output.splitlines()[:2]
    assert "aborted (1 failed, 3 skipped)" in lines[1], lines
    assert lines[0].index(" events ") == lines[1].index(" events "), lines


def test_events_escape_what_a_failing_tool_said(tmp_path: Path) -> None:
    """A tool's error text is the tool's (or its server's): an escape sequence or a line break
    in it reached the terminal raw through the `why` of `carlang events`, able to recolour or
    rewrite the operator's screen. The line shows it escaped and stays one line; the JSON keeps
    it as it was."""
    program = tmp_path / "p.car"
    program.write_text("tool boom()\nproposal p { a = boom() }\n")
    tools = tmp_path / "boom_tools.py"
    tools.write_text(
        "def boom():\n    raise RuntimeError('\\x1b[2Jgone\\nsecond line')\nTOOLS = {'boom': boom}\n"
    )
    log = tmp_path / "run.jsonl"
    code, out = run(str(program), "--tools", f"{tools}:TOOLS", "--events", str(log))
    assert code == 1, out
    (entry,) = json.loads(runner.invoke(app, ["events", str(log), "--format", "json"]).output)
    assert entry["why"] == "a: RuntimeError: \x1b[2Jgone\nsecond line"
    listing = runner.invoke(app, ["events", str(log)]).output
    assert "\x1b" not in listing and listing.count("\n") == 2, listing  # the run, the count
    assert listing.splitlines()[0].endswith("a: RuntimeError: \\x1b[2Jgone\\nsecond line")


def test_a_tool_that_prints_leaves_the_json_output_json(tmp_path: Path) -> None:
    """A trial: a tool's `print()` began `run --format json`'s output (`REFUND alice 50`),
    which then did not parse. What tools print goes to stderr while the JSON is asked for."""
    program = tmp_path / "p.car"
    program.write_text("tool loud()\nproposal p { a = loud() }\n")
    tools = tmp_path / "loud_tools.py"
    tools.write_text(
        "def loud():\n    print('REFUND alice 50')\n    return 1\nTOOLS = {'loud': loud}\n"
    )
    result = runner.invoke(
        app, ["run", str(program), "--tools", f"{tools}:TOOLS", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["result"]["results"][0]["status"] == "succeeded"
    assert "REFUND alice 50" in result.stderr
    text = runner.invoke(app, ["run", str(program), "--tools", f"{tools}:TOOLS"])
    assert "REFUND alice 50" in text.stdout  # (text output: where it always went)


def test_json_output_and_exit_status_of_a_failure(tmp_path: Path) -> None:
    program, tools = project(tmp_path)
    code, out = run(str(program), "--tools", f"{tools}:setup", "--auto-approve", "--format", "json")
    assert code == 1
    document = json.loads(out)
    results = {r["action_id"]: r for r in document["result"]["results"]}
    assert results["ship"]["status"] == "failed"
    assert results["ship"]["error"] == "RuntimeError: the cluster is down"
    assert results["get"]["rolled_back"] is True
    assert document["run_id"]


def test_approvals_are_refused_without_a_terminal_or_a_flag(tmp_path: Path) -> None:
    program, tools = project(tmp_path)
    code, out = run(str(program), "--tools", f"{tools}:TOOLS", "--format", "json")
    assert code == 1
    ship = json.loads(out)["result"]["results"][1]
    assert ship["status"] == "rejected" and "approval refused" in ship["error"]
    code, out = run(str(program), "--tools", f"{tools}:TOOLS", "--deny-approvals")
    assert code == 1


def test_a_tool_that_calls_sys_exit_stops_the_run_saying_so(tmp_path: Path) -> None:
    """A tool's own sys.exit(3) ended carlang silently with status 3, outside the documented
    0/1/2/101, no result and no word (found by a bad-input sweep)."""
    program, _ = project(tmp_path)
    exiting = tmp_path / "exiting.py"
    exiting.write_text(
        TOOLS + "\nimport sys\n\ndef deploy(env):\n    sys.exit(3)\n\nTOOLS['deploy'] = deploy\n"
    )
    result = runner.invoke(
        app, ["run", str(program), "--tools", f"{exiting}:TOOLS", "--auto-approve"]
    )
    assert result.exit_code == 1, result.output
    said = " ".join(result.stderr.split())
    assert "error: the run stopped: action ship's tool called sys.exit(3)" in said, said
    assert "raise an exception to fail its action, not exit" in said


def test_a_tool_without_an_implementation_is_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    """Known before the run: without it, the calls before the first unimplemented one would
    be made for real, and the run then fail (exit 2, nothing run, no event log left)."""
    program, _ = project(tmp_path)
    log = tmp_path / "events.jsonl"
    code, out = run(str(program), "--format", "json", "--auto-approve", "--events", str(log))
    assert code == 2, out
    assert "error: no implementation of tools `deploy`, `fetch`, which proposal" in out
    assert "warning: compensation tool `rollback` has no implementation" in out
    assert "give them with --tools tools.py or module:attr; nothing was run" in out
    assert not log.exists()
    builtin = tmp_path / "notes.car"
    builtin.write_text('tool echo(text: string)\nproposal p { a = echo(text: "hi") }\n')
    code, out = run(str(builtin))
    assert code == 2 and "(or --builtins: echo is one of carlang's own tools)" in out, out


def test_an_invalid_proposal_is_refused_unless_forced(tmp_path: Path) -> None:
    program = tmp_path / "bad.car"
    program.write_text(
        "tool fetch(url: string)\nstate { ready: bool = false }\n"
        'proposal p { get = fetch(url: "x") { requires ready == true } }\n'
    )
    tools = tmp_path / "fetch_tools.py"
    tools.write_text("def fetch(url):\n    return url\n")
    code, out = run(str(program))
    assert code == 1 and "does not verify; run anyway with --force" in out
    code, out = run(str(program), "--force", "--format", "json", "--tools", f"{tools}:fetch")
    assert code == 1 and json.loads(out)["result"]["results"][0]["status"] == "rejected"


def test_another_proposals_errors_do_not_stop_this_one(tmp_path: Path) -> None:
    """A policy will deny an action of `big`: running `small` goes ahead; running `big` is
    refused unless --force (and then the policy denies the action at run time)."""
    program = tmp_path / "two.car"
    program.write_text(
        "tool refund(amount: int)\n"
        "policy no_huge: deny refund when params.amount > 100\n"
        "proposal small { r = refund(amount: 5) }\n"
        "proposal big { r = refund(amount: 500) }\n"
    )
    tools = tmp_path / "tools.py"
    tools.write_text("TOOLS = {'refund': lambda amount: 'refunded'}\n")
    code, out = run(str(program), "--proposal", "small", "--tools", f"{tools}:TOOLS")
    assert code == 0 and "1 succeeded" in out and "CL0520" not in out, out
    code, out = run(str(program), "--proposal", "big", "--tools", f"{tools}:TOOLS")
    assert code == 1 and "error[CL0520]" in out and "run anyway with --force" in out
    code, out = run(str(program), "--proposal", "big", "--tools", f"{tools}:TOOLS", "--force")
    assert code == 1 and "policy violation: no_huge" in out


def test_the_given_state_is_what_the_plan_is_verified_against_and_starts_from(
    tmp_path: Path,
) -> None:
    program = tmp_path / "greet.car"
    program.write_text(
        "tool echo(text: string) -> string\nstate { greeting: string }\n"
        'proposal p { say = echo(text: "hi") { requires greeting == "hello" } }\n'
    )
    code, out = run(str(program), "--builtins")
    assert code == 1 and "key 'greeting' has no value" in out
    state = tmp_path / "state.json"
    state.write_text('{"greeting": "hello"}')
    code, out = run(str(program), "--builtins", "--state", str(state), "--format", "json")
    assert code == 0, out
    assert json.loads(out)["result"]["results"][0]["output"] == "hi"
    state.write_text('{"greeting": "bye"}')
    code, out = run(str(program), "--builtins", "--state", str(state))
    assert code == 1 and "does not verify" in out


def test_events_are_logged_and_listed(tmp_path: Path) -> None:
    program, tools = project(tmp_path)
    db = tmp_path / "run.db"
    code, out = run(
        str(program),
        "--tools",
        f"{tools}:TOOLS",
        "--auto-approve",
        "--events",
        str(db),
        "--format",
        "json",
    )
    assert code == 0, out
    run_id = json.loads(out)["run_id"]
    listing = runner.invoke(app, ["events", str(db)])
    assert listing.exit_code == 0 and run_id in listing.output and "completed" in listing.output
    shown = runner.invoke(
        app, ["events", str(db), "--run", run_id, "--kind", "approval_recorded", "--format", "json"]
    )
    (approval,) = json.loads(shown.output)
    assert approval["action_id"] == "ship" and approval["data"]["approved"] is True
    # a unique prefix of a run id names the run, as a commit's prefix does in git
    by_prefix = runner.invoke(
        app, ["events", str(db), "--run", run_id[:5], "--kind", "approval_recorded"]
    )
    assert by_prefix.exit_code == 0 and by_prefix.output.rstrip().endswith("1 event")
    assert "(" not in listing.output  # nothing rejected or failed: the status alone
    # a run whose action was refused says so beside its status (CAR's rule: a refusal before
    # any policy does not stop the proposal, which "completes")
    code, _ = run(
        str(program), "--tools", f"{tools}:TOOLS", "--deny-approvals", "--events", str(db)
    )
    assert code == 1
    listing = runner.invoke(app, ["events", str(db), "--format", "json"])
    last = json.loads(listing.output)[-1]
    assert last["rejected"] == 1 and last["failed"] == 0, last
    refused = (
        "ship: approval refused (prod: policy prod requires approval): refused: approvals are"
        " denied in this run (--deny-approvals)"
    )
    assert last["why"] == refused, last  # (and None for a run that did its work)
    assert json.loads(listing.output)[0]["why"] is None
    listing = runner.invoke(app, ["events", str(db)])
    # the line says why, as a gateway's operator scanning many calls wants to see it
    assert "(1 rejected)" in listing.output.splitlines()[-2]
    assert listing.output.splitlines()[-2].endswith(f"  {refused[:97]}..."), listing.output
    typo = runner.invoke(app, ["events", str(db), "--kind", "aproval_recorded"])
    assert typo.exit_code == 2
    assert "no event kind `aproval_recorded` (did you mean `approval_recorded`?)" in typo.output
    unknown = runner.invoke(app, ["events", str(db), "--run", "zzz"])
    assert unknown.exit_code == 2 and "no run `zzz`" in unknown.output
    jsonl = tmp_path / "run.jsonl"
    run(str(program), "--tools", f"{tools}:TOOLS", "--auto-approve", "--events", str(jsonl))
    text = runner.invoke(app, ["events", str(jsonl), "--action", "get"])
    assert "action_succeeded" in text.output and text.output.rstrip().endswith("events")


def test_resume_needs_a_journal(tmp_path: Path) -> None:
    program, tools = project(tmp_path)
    code, out = run(str(program), "--resume", "abc")
    assert code == 2 and "--events run.db" in out
    db = tmp_path / "run.db"
    run(str(program), "--tools", f"{tools}:TOOLS", "--auto-approve", "--events", str(db))
    code, out = run(str(program), "--events", str(db), "--resume", "nope")
    assert code == 2 and "no run `nope`" in out
    log = tmp_path / "run.jsonl"  # (a log, not a journal: said first, whatever the run id)
    run(str(program), "--tools", f"{tools}:TOOLS", "--auto-approve", "--events", str(log))
    code, out = run(str(program), "--events", str(log), "--resume", "nope")
    assert code == 2 and "--resume needs the run's journal: --events run.db" in out


def test_a_tools_file_named_alone_gives_its_tools_mapping(tmp_path: Path) -> None:
    program, tools = project(tmp_path)  # (it has TOOLS and a setup: TOOLS is taken)
    code, out = run(str(program), "--tools", str(tools), "--auto-approve")
    assert code == 0, out
    assert "2 succeeded" in out and "deployed to prod" in out


def test_a_tools_file_named_alone_gives_every_function_it_defines(tmp_path: Path) -> None:
    program, _ = project(tmp_path)
    code, out = run_with_tools_file(
        program,
        tmp_path / "plain_tools.py",
        "from json import dumps\n\n"  # (imported: not a tool)
        "def fetch(url):\n    return {'status': 200}\n\n"
        "def deploy(env):\n    return f'shipped to {env}'\n\n"
        "def rollback(env):\n    return 'rolled back'\n\n"
        "def _helper():\n    return 1\n",
        "--auto-approve",
    )
    assert code == 0, out
    assert "shipped to prod" in out
    assert "dumps" not in out and "_helper" not in out  # (no warning about undeclared tools)


def test_a_tools_file_with_no_function_says_what_it_needs(tmp_path: Path) -> None:
    program, _ = project(tmp_path)
    code, out = run_with_tools_file(program, tmp_path / "empty_tools.py", "X = 1\n")
    assert code == 2
    assert "defines no function, `TOOLS` mapping or `setup(runtime)`" in out


def test_a_tools_file_alone_takes_its_setup_or_only_the_functions_named_after_tools(
    tmp_path: Path,
) -> None:
    """A file named alone gives its `setup(runtime)`; else its functions named after the
    program's tools (not its helpers, which nothing would call); a `setup` whose parameter is
    not called `runtime` is neither run nor taken for a tool."""
    program, _ = project(tmp_path)
    code, out = run_with_tools_file(
        program,
        tmp_path / "setup_tools.py",
        "def setup(runtime):\n"
        "    runtime.register_tool('fetch', lambda url: {'status': 200})\n"
        "    runtime.register_tool('deploy', lambda env: f'set up {env}')\n"
        "    runtime.register_tool('rollback', lambda env: 'rolled back')\n",
        "--auto-approve",
    )
    assert code == 0 and "set up prod" in out, out
    code, out = run_with_tools_file(
        program,
        tmp_path / "with_helpers.py",
        "def fetch(url):\n    return {}\n"
        "def deploy(env):\n    return f'helped {env}'\n"
        "def rollback(env):\n    return 'undone'\n"
        "def format_env(env):\n    return env.upper()\n",
        "--auto-approve",
    )
    assert code == 0 and "helped prod" in out, out
    assert "format_env" not in out  # (a helper: not registered, no warning)
    code, out = run_with_tools_file(
        program, tmp_path / "misnamed_setup.py", "def setup(rt):\n    raise SystemExit('ran')\n"
    )
    assert code == 2 and "must be called `runtime`" in " ".join(out.split()), out
    code, out = run_with_tools_file(
        program, tmp_path / "unrelated.py", "def helper():\n    return 1\n"
    )
    flat = " ".join(out.split())
    assert code == 2 and "none of its functions (`helper`) is named after a tool" in flat


def test_a_function_whose_parameters_do_not_match_the_tool_is_refused_before_running(
    tmp_path: Path,
) -> None:
    program, _ = project(tmp_path)
    code, out = run_with_tools_file(
        program,
        tmp_path / "renamed_tools.py",
        "import pathlib\n"
        f"RAN = pathlib.Path({str(tmp_path / 'ran')!r})\n"
        "def fetch(url):\n    RAN.write_text('fetched')\n    return {}\n"
        "def deploy(environment):\n    return 'deployed'\n"
        "def rollback(env, reason='undo'):\n    return 'rolled back'\n",
        "--auto-approve",
    )
    assert code == 2, out
    flat = " ".join(out.split())
    assert (
        f"the function for tool `deploy` ({tmp_path / 'renamed_tools.py'}:6) needs `environment`"
        in flat
    )
    assert "which action `ship` does not give (its parameters: `env`)" in flat
    assert "nothing was run" in flat
    assert not (tmp_path / "ran").exists()


def test_bad_usage_is_reported(tmp_path: Path) -> None:
    program, tools = project(tmp_path)
    assert run(str(program), "--tools", "no_such_module_x:attr")[0] == 2
    assert run(str(program), "--tools", f"{tools}:MISSING")[0] == 2
    assert run(str(program), "--proposal", "nope")[0] == 2
    assert run(str(program), "--events", str(tmp_path / "x.txt"))[0] == 2
    assert run(str(program), "--auto-approve", "--deny-approvals")[0] == 2
    state = tmp_path / "state.json"
    state.write_text("[1]")
    assert run(str(program), "--state", str(state))[0] == 2


def test_a_tools_module_that_fails_to_import_is_the_users_error_not_an_internal_one(
    tmp_path: Path,
) -> None:
    program, _ = project(tmp_path)
    broken = tmp_path / "broken_tools.py"
    broken.write_text("TOOLS = (\n")
    code, out = run(str(program), "--tools", f"{broken}:TOOLS")
    assert code == 2
    assert f"{broken}:1:9: syntax error: '(' was never closed" in out
    assert "internal error" not in out
    raising = tmp_path / "raising_tools.py"
    raising.write_text("def f():\n    raise ValueError('no token')\n\nf()\n")
    code, out = run(str(program), "--tools", f"{raising}:TOOLS")
    assert code == 2
    assert f"the module raised ValueError at {raising}:2: no token" in out
    assert "internal error" not in out


@pytest.mark.parametrize("name", ["new.db", "new.jsonl"])
def test_a_run_that_cannot_start_leaves_no_event_log_it_created(tmp_path: Path, name: str) -> None:
    """`--tools nosuchmod:x --events new.db` left an empty new.db behind (bad-input sweep); a
    log that existed before is kept as it was."""
    program, tools = project(tmp_path)
    log = tmp_path / name
    code, out = run(str(program), "--tools", "nosuchmod_carlang:x", "--events", str(log))
    assert code == 2 and "cannot import nosuchmod_carlang" in out, out
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("new.")) == []
    code, out = run(
        str(program), "--tools", f"{tools}:TOOLS", "--auto-approve", "--events", str(log)
    )
    assert code == 0, out
    before = log.read_bytes()
    code, out = run(str(program), "--tools", "nosuchmod_carlang:x", "--events", str(log))
    assert code == 2, out
    assert log.read_bytes() == before


def test_options_of_the_builtin_tools_need_builtins(tmp_path: Path) -> None:
    """`--allow-host` and `--files-root` without `--builtins` were taken and ignored, so
    `--allow-host 'a b'` was never even checked (review of the bad-input fixes)."""
    program, tools = project(tmp_path)
    for options in (["--allow-host", "api.example.com"], ["--files-root", str(tmp_path)]):
        code, out = run(str(program), "--tools", f"{tools}:TOOLS", *options)
        assert code == 2, out
        assert f"{options[0]} sets up carlang's built-in tools: add --builtins" in out
    code, out = run(str(program), "--builtins", "--allow-host", "a b", "--events", "x.db")
    assert code == 2 and "--allow-host 'a b': give a host name or address" in out, out
    script = tmp_path / "turns.json"
    script.write_text('[{"role": "assistant", "content": "done"}]')
    agent = ["agent", str(program), "--script", str(script), "--files-root", str(tmp_path)]
    refused = runner.invoke(app, agent)
    assert refused.exit_code == 2, refused.output
    assert "--files-root sets up carlang's built-in tools: add --builtins" in refused.output


def test_events_are_not_appended_to_a_jsonl_file_that_is_no_event_log(tmp_path: Path) -> None:
    program, tools = project(tmp_path)
    dataset = tmp_path / "tasks.jsonl"
    dataset.write_text('{"id": "t1", "candidates": []}\n')
    code, out = run(str(program), "--tools", f"{tools}:TOOLS", "--events", str(dataset))
    assert code == 2 and "not an event" in out and "looks like a task of a dataset" in out
    assert dataset.read_text() == '{"id": "t1", "candidates": []}\n'  # left as it was
    log = tmp_path / "run.jsonl"
    for _ in range(2):  # an event log is appended to
        code, out = run(
            str(program), "--tools", f"{tools}:TOOLS", "--events", str(log), "--auto-approve"
        )
        assert code == 0, out


def test_a_setup_function_that_raises_is_the_users_error_at_their_line(tmp_path: Path) -> None:
    program, _ = project(tmp_path)
    tools = tmp_path / "setups.py"
    tools.write_text(
        "def fails(runtime):\n    raise RuntimeError('no cluster')\n\n"
        "def not_a_function(runtime):\n    runtime.register_tool('fetch', 42)\n"
    )
    code, out = run(str(program), "--tools", f"{tools}:fails")
    assert code == 2 and "internal error" not in out
    assert f"the setup function raised RuntimeError at {tools}:2: no cluster" in out
    code, out = run(str(program), "--tools", f"{tools}:not_a_function")
    assert code == 2 and "internal error" not in out
    # the line to fix is theirs, not the one deep in the runtime (or `inspect`) that noticed
    assert f"the setup function raised TypeError at {tools}:5: 42 is not a callable" in out


def test_a_tools_file_imports_its_neighbours(tmp_path: Path) -> None:
    """`--tools lib/tools.py:TOOLS` where tools.py does `import lib_helpers` (a file beside
    it): its folder is on the import path, as when Python runs the file itself."""
    program, _ = project(tmp_path)
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "release_helpers_x1.py").write_text("def ok(**params):\n    return 'ok'\n")
    (lib / "tools_x1.py").write_text(
        "from release_helpers_x1 import ok\nTOOLS = {'fetch': ok, 'deploy': ok, 'rollback': ok}\n"
    )
    code, out = run(str(program), "--tools", f"{lib / 'tools_x1.py'}:TOOLS", "--auto-approve")
    assert code == 0 and "No module named" not in out, out


def test_tools_the_program_does_not_declare_are_warned_about(tmp_path: Path) -> None:
    program, _ = project(tmp_path)
    tools = tmp_path / "typos.py"
    tools.write_text(
        "def fetch(url):\n    return 1\n\n"
        "TOOLS = {'fetch': fetch, 'deplyo': lambda env: env}\n\n"
        "def init(rt):\n    rt.register_tool('fetch', fetch)\n"
    )
    _, out = run(str(program), "--tools", f"{tools}:TOOLS", "--deny-approvals")
    assert (
        "`deplyo` is not a tool of the program, so nothing calls it (did you mean `deploy`?)" in out
    )
    assert "`fetch` is not" not in out
    _, out = run(str(program), "--tools", f"{tools}:init", "--deny-approvals")
    assert "`init` is not a tool of the program" in out
    assert "a setup function takes one parameter, named `runtime`" in out


def test_a_syntax_error_is_reported_even_where_it_hides_the_proposal(tmp_path: Path) -> None:
    program = tmp_path / "syn.car"
    program.write_text(
        'tool fetch(url: string) {}\nproposal p {\n  a = fetch(url: "https://x"\n'
        '  b = fetch(url: "y")\n}\n'
    )
    code, out = run(str(program))
    assert code == 1
    assert "syn.car:4:3: error[CL0102]: unexpected name `b`" in out
    assert "proposal:" not in out  # not "declares no proposal": the syntax error hides it
    empty = tmp_path / "empty.car"
    empty.write_text("tool t()\n")
    code, out = run(str(empty))
    assert code == 2 and "empty.car declares no proposal: there is nothing to run" in out


def test_the_notes_example_runs_for_real_with_builtins(tmp_path: Path) -> None:
    code, out = run(
        str(ROOT / "examples" / "files" / "notes.car"),
        "--builtins",
        "--files-root",
        str(tmp_path),
        "--root",
        str(ROOT / "examples"),
    )
    assert code == 0, out
    assert (tmp_path / "notes" / "today.md").read_text().startswith("- ship 1.4.2")
    assert "5 succeeded" in out


def test_a_files_root_that_is_missing_or_a_file_says_which(tmp_path: Path) -> None:
    notes = str(ROOT / "examples" / "files" / "notes.car")
    missing = tmp_path / "notes"
    code, out = run(notes, "--builtins", "--files-root", str(missing))
    assert code == 2 and f"--files-root {missing}: no such directory (create it first" in out
    assert not missing.exists()
    afile = tmp_path / "f.txt"
    afile.write_text("x")
    code, out = run(notes, "--builtins", "--files-root", str(afile))
    assert code == 2 and f"--files-root {afile}: not a directory" in out


PLANS = """\
tool fetch(url: string) -> object
tool deploy(env: "staging" | "prod")

proposal quick {
  ship = deploy(env: "prod")
}
proposal careful {
  get = fetch(url: "https://ci.example/build")
  ship = deploy(env: "staging") after get
}
plan release { candidates quick, careful }
"""

FLAKY = """\
def fetch(url):
    return {"status": 200}

def deploy(env):
    if env == "prod":
        raise RuntimeError("prod is down")
    return f"deployed to {env}"

TOOLS = {"fetch": fetch, "deploy": deploy}
"""


def test_run_plan_ranks_runs_the_best_and_falls_back(tmp_path: Path) -> None:
    program = tmp_path / "plans.car"
    program.write_text(PLANS)
    tools = tmp_path / "flaky_tools.py"
    tools.write_text(FLAKY)
    code, out = run(
        str(program), "--plan", "release", "--tools", f"{tools}:TOOLS", "--format", "json"
    )
    assert code == 0, out
    result = json.loads(out)["result"]
    assert result["proposal_id"] == "careful"  # quick ranked first, failed, was rolled back
    code, out = run(str(program), "--plan", "relase")
    assert code == 2 and "no plan `relase`" in out and "did you mean `release`?" in out


def test_resume_finds_the_proposal_in_the_journal(tmp_path: Path) -> None:
    program = tmp_path / "plans.car"
    program.write_text(PLANS)  # two proposals: without the journal, --proposal would be needed
    tools = tmp_path / "flaky_tools.py"
    tools.write_text(FLAKY)
    db = tmp_path / "run.db"
    code, out = run(
        str(program),
        "--proposal",
        "quick",
        "--tools",
        f"{tools}:TOOLS",
        "--events",
        str(db),
        "--format",
        "json",
    )
    assert code == 1
    run_id = json.loads(out)["run_id"]
    code, out = run(
        str(program),
        "--tools",
        f"{tools}:TOOLS",
        "--events",
        str(db),
        "--resume",
        run_id[:6],
        "--rollback",
    )
    # the run and its proposal were found from the prefix alone (this one ran to its end)
    assert "choose one with --proposal" not in out
    assert f"run '{run_id}' already finished" in out


SAGA = """\
tool book()
tool cancel()
tool pay()
proposal trip {
  hotel = book() { compensate cancel() }
  card = pay() after hotel
}
"""

SAGA_TOOLS = """\
def book():
    return "booked"

def cancel():
    return "cancelled"

def pay():
    raise RuntimeError("card declined")

TOOLS = {"book": book, "cancel": cancel, "pay": pay}
"""


def test_the_table_says_which_actions_were_compensated(tmp_path: Path) -> None:
    """CAR's text for a success undone by an abort says external effects were not undone;
    when the saga's compensation did run, the table says so, and how it went."""
    program = tmp_path / "trip.car"
    program.write_text(SAGA)
    (tmp_path / "trip_tools.py").write_text(SAGA_TOOLS)
    code, out = run(str(program), "--tools", f"{tmp_path / 'trip_tools.py'}:TOOLS")
    assert code == 1, out
    hotel = next(line for line in out.splitlines() if "hotel" in line)
    assert "succeeded (rolled back, compensated)" in hotel
    assert "compensated by cancel" in hotel


def test_the_table_says_a_rolled_back_call_was_not_undone(tmp_path: Path) -> None:
    """A call that succeeded before the run aborted, with no compensation: its state effects
    were rolled back, what it did outside was not, and the table does not let "rolled back"
    say otherwise; a state write rolled back is just that."""
    program = tmp_path / "trip.car"
    program.write_text(
        SAGA.replace(" { compensate cancel() }", "").replace(
            "  card = pay() after hotel\n",
            "  mark = set booked = true\n  card = pay() after hotel, mark\n",
        )
    )
    (tmp_path / "trip_tools.py").write_text(SAGA_TOOLS)
    code, out = run(str(program), "--tools", f"{tmp_path / 'trip_tools.py'}:TOOLS")
    assert code == 1, out
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│")}
    assert "succeeded (rolled back; the call not undone)" in rows["hotel"]
    assert "succeeded (rolled back) " in rows["mark"]
    assert "0 successful tool calls" not in out and "1 successful tool call," in out
    said = " ".join(out.split())
    assert (
        "the run aborted: its state effects were rolled back, but what 1 tool call did outside"
        " carlang was not undone (`compensate` names the call that undoes one)"
    ) in said


def test_a_state_no_run_can_have_is_refused(tmp_path: Path) -> None:
    program = tmp_path / "s.car"
    program.write_text("tool t()\nstate { done: bool = false }\nproposal p { a = t() }\n")
    for given, problem in (
        ('{"done": "yes"}', "state `done`: expected boolean, got string"),
        ('{"dnoe": true}', "no state key is called `dnoe`"),
    ):
        state = tmp_path / "state.json"
        state.write_text(given)
        code, out = run(str(program), "--state", str(state))
        assert code == 2 and f"{state}: {problem}" in out, out


def test_deny_approvals_says_it_was_the_flag(tmp_path: Path) -> None:
    program, tools = project(tmp_path)
    code, out = run(
        str(program), "--tools", f"{tools}:TOOLS", "--deny-approvals", "--format", "json"
    )
    ship = json.loads(out)["result"]["results"][1]
    assert code == 1 and ship["error"].endswith(
        "approvals are denied in this run (--deny-approvals)"
    )


@pytest.mark.slow
def test_ctrl_c_says_which_run_stopped_and_how_to_resume_it(tmp_path: Path) -> None:
    """Interrupted, `carlang run` printed nothing at all: no run id, no way back in."""
    import signal
    import subprocess
    import sys
    import time

    program = tmp_path / "slow.car"
    program.write_text(
        "tool fetch(n: int)\ntool slow(ms: int)\n"
        "proposal p { a = fetch(n: 1)  b = slow(ms: 30000) after a  c = fetch(n: 2) after b }\n"
    )
    tools = tmp_path / "slow_tools.py"
    tools.write_text(
        "import pathlib, time\ndef fetch(n):\n    return n\ndef slow(ms):\n"
        f"    pathlib.Path({str(tmp_path / 'started')!r}).touch()\n    time.sleep(ms / 1000)\n"
        "TOOLS = {'fetch': fetch, 'slow': slow}\n"
    )
    db = tmp_path / "run.db"
    command = [sys.executable, "-m", "carlang", "run", str(program), "--tools", f"{tools}:TOOLS"]
    process = subprocess.Popen(
        [*command, "--events", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C's signal as a terminal sends it: a test run started in the background (as CI
        # starts it) passes SIGINT on ignored, and Python then never raises KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (tmp_path / "started").exists():
            time.sleep(0.05)  # until the slow tool is running
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    assert "interrupted: run " in err and f"--events {db} --resume " in err, err
    run_id = err.split("interrupted: run ", 1)[1].split()[0]
    assert "Traceback" not in err
    code, out = run(
        str(program),
        "--tools",
        f"{tools}:TOOLS",
        "--events",
        str(db),
        "--rollback",
        "--resume",
        run_id,
    )
    assert code in (0, 1) and "internal error" not in out, out
    # the call Ctrl-C stopped is an interrupted attempt, not the outcome of the run's action
    (listed,) = json.loads(runner.invoke(app, ["events", str(db), "--format", "json"]).output)
    assert listed["status"] == "rolled_back" and listed["failed"] == 0, listed
    assert listed["interrupted"] == 1, listed


INTERRUPTED = """\
tool fetch(n: int)
tool slow(n: int)
proposal p {
  a = fetch(n: 1)
  b = slow(n: 2) after a
  c = fetch(n: 3) after b
}
"""

INTERRUPTING_TOOLS = """\
import pathlib

FLAG = pathlib.Path(__file__).with_name("interrupted-once")

def fetch(n):
    return n

def slow(n):
    if not FLAG.exists():  # Ctrl-C while the call runs, the first time only
        FLAG.touch()
        raise KeyboardInterrupt
    return n

TOOLS = {"fetch": fetch, "slow": slow}
"""


def test_events_do_not_count_an_interrupted_attempt_a_resume_finished(tmp_path: Path) -> None:
    """`carlang events` listed a run that a resume had finished as `completed (1 failed)`: the
    failure journaled when the run was interrupted mid-action counted, though the resumed run
    ran the action again and it succeeded."""
    program = tmp_path / "slow.car"
    program.write_text(INTERRUPTED)
    tools = tmp_path / "slow_tools.py"
    tools.write_text(INTERRUPTING_TOOLS)
    db = tmp_path / "run.db"
    code, out = run(str(program), "--tools", f"{tools}:TOOLS", "--events", str(db))
    assert code != 0 and "interrupted: run " in out, out  # as Ctrl-C stops `carlang run`
    (stopped,) = json.loads(runner.invoke(app, ["events", str(db), "--format", "json"]).output)
    assert stopped["status"] == "interrupted" and stopped["failed"] == 1, stopped
    # resumed exactly as the message says: with the tools' implementations (which it left
    # out, so the resumed run failed its next call and was aborted for good)
    said = out.split("take it up again with `", 1)[1].split("`", 1)[0]
    assert said == shlex.join(
        ["carlang", "run", str(program), "--tools", f"{tools}:TOOLS", "--events", str(db)]
        + ["--resume", stopped["run_id"]]
    )
    words = shlex.split(said)
    code, out = run(*words[2:])
    assert code == 0 and "3 succeeded" in out, out
    listing = runner.invoke(app, ["events", str(db), "--format", "json"])
    (resumed,) = json.loads(listing.output)
    assert resumed["status"] == "completed", resumed
    assert resumed["failed"] == 0 and resumed["rejected"] == 0, resumed
    assert resumed["interrupted"] == 1, resumed  # the attempt is still told
    text = runner.invoke(app, ["events", str(db)]).output
    line = text.splitlines()[0]
    assert "failed" not in line and "completed (1 interrupted attempt)" in line, text
    # the attempt's events are all there
    b = runner.invoke(app, ["events", str(db), "--action", "b"]).output
    assert "interrupted: KeyboardInterrupt" in b and "action_succeeded" in b, b


def test_run_shows_the_state_it_left(tmp_path: Path) -> None:
    """`carlang run` showed the results, never the state the run produced."""
    program, tools = project(tmp_path)
    code, out = run(str(program), "--tools", f"{tools}:TOOLS", "--auto-approve")
    assert code == 0, out
    lines = out.splitlines()
    at = lines.index("state after the run (1 key):")
    assert lines[at + 1 :] == ["  deployed.prod = true"], out
    code, out = run(str(program), "--tools", f"{tools}:TOOLS", "--auto-approve", "--format", "json")
    assert code == 0 and json.loads(out)["state"] == {"deployed.prod": True}, out
    # an aborted run leaves the state it found (its writes rolled back)
    code, out = run(str(program), "--tools", f"{tools}:setup", "--auto-approve")
    assert code == 1 and out.rstrip().endswith("state after the run: empty"), out
    code, out = run(str(program), "--tools", f"{tools}:setup", "--auto-approve", "--format", "json")
    assert json.loads(out)["state"] == {}, out


SECRET_PROGRAM = """\
tool login(user: string, token: string secret) -> string
state {
  auth.*: string
  logins: int = 0
}
proposal p {
  a = login(user: "ann", token: "sk-LIVE-4242") {
    effects { auth.token = "sk-LIVE-4242"  auth.user = "ann"  logins = 1 }
  }
}
"""

SECRET_TOOLS = """\
def login(user, token):
    return f"{user} logged in with {token}"

TOOLS = {"login": login}
"""


def test_the_state_shown_after_a_run_keeps_secrets_out(tmp_path: Path) -> None:
    program = tmp_path / "login.car"
    program.write_text(SECRET_PROGRAM)
    tools = tmp_path / "login_tools.py"
    tools.write_text(SECRET_TOOLS)
    for output in ("text", "json"):
        code, out = run(str(program), "--tools", f"{tools}:TOOLS", "--format", output)
        assert code == 0, out
        assert "sk-LIVE-4242" not in out and "LIVE" not in out, out
    code, out = run(str(program), "--tools", f"{tools}:TOOLS")
    assert '  auth.token = "[REDACTED]"' in out.splitlines(), out
    assert '  auth.user = "ann"' in out.splitlines() and "  logins = 1" in out.splitlines()
    code, out = run(str(program), "--tools", f"{tools}:TOOLS", "--format", "json")
    assert json.loads(out)["state"] == {
        "auth.token": "[REDACTED]",
        "auth.user": "ann",
        "logins": 1,
    }


def test_a_large_state_is_shown_short(tmp_path: Path) -> None:
    """At most 20 keys, each value on one line of at most 60 characters; JSON has it all."""
    program = tmp_path / "big.car"
    program.write_text("tool t()\nstate { k.*: string }\nproposal p { a = t() }\n")
    tools = tmp_path / "big_tools.py"
    tools.write_text("TOOLS = {'t': lambda: 'ok'}\n")
    given = {f"k.{i:02}": f"value {i}" for i in range(25)}
    given["k.00"] = "x" * 500 + "\nsecond line"
    state = tmp_path / "state.json"
    state.write_text(json.dumps(given))
    code, out = run(str(program), "--tools", f"{tools}:TOOLS", "--state", str(state))
    assert code == 0, out
    lines = out.splitlines()
    at = lines.index("state after the run (25 keys):")
    shown = lines[at + 1 :]
    assert len(shown) == 21 and shown[-1] == "  ... 5 more (all of them: --format json)", out
    assert shown[0] == '  k.00 = "' + "x" * 56 + "...", shown[0]  # 60 characters
    assert shown[1] == '  k.01 = "value 1"' and shown[19] == '  k.19 = "value 19"'
    code, out = run(
        str(program), "--tools", f"{tools}:TOOLS", "--state", str(state), "--format", "json"
    )
    assert json.loads(out)["state"] == given


@pytest.mark.slow
def test_a_durable_run_shows_the_state_an_in_process_run_does(tmp_path: Path) -> None:
    pytest.importorskip("dbos", reason="the DBOS backend needs the dbos package (carlang[dbos])")
    program = tmp_path / "login.car"
    program.write_text(SECRET_PROGRAM)
    tools = tmp_path / "login_tools.py"
    tools.write_text(SECRET_TOOLS)
    common = [str(program), "--tools", f"{tools}:TOOLS", "--format", "json"]
    database = f"sqlite:///{tmp_path / 'runs.db'}"
    code, durable = run(*common, "--backend", "dbos", "--database", database)
    assert code == 0, durable
    code, local = run(*common)
    assert json.loads(durable)["state"] == json.loads(local)["state"]
    assert "sk-LIVE" not in durable


def test_format_json_writes_any_output_a_tool_returns_as_json(tmp_path: Path) -> None:
    """A tool's output of bytes that are not UTF-8 stopped `--format json` with an internal
    error after the tools had run; a NaN was written `null` (or `NaN`, which is no JSON)."""
    program = tmp_path / "odd.car"
    program.write_text(
        "tool weird(kind: string) -> any\n"
        'proposal p { b = weird(kind: "bytes")  n = weird(kind: "nan")  i = weird(kind: "inf")\n'
        '  t = weird(kind: "text")  s = weird(kind: "set")  w = weird(kind: "when") }\n'
    )
    tools = tmp_path / "odd_tools.py"
    tools.write_text(
        "import datetime\n"
        "def weird(kind):\n"
        "    return {'bytes': b'\\xff\\x00', 'nan': float('nan'), 'inf': [float('-inf')],\n"
        "            'text': b'hello', 'set': {2}, 'when': datetime.datetime(2024, 1, 2,\n"
        "            tzinfo=datetime.timezone.utc)}[kind]\n"
    )
    code, out = run(str(program), "--tools", f"{tools}:weird", "--format", "json")
    assert code == 0, out

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    document = json.loads(out, parse_constant=refuse)
    outputs = [r["output"] for r in document["result"]["results"]]
    assert outputs == ["b'\\xff\\x00'", "NaN", ["-Infinity"], "hello", [2], "2024-01-02T00:00:00Z"]


def test_event_values_in_the_text_listing_are_short() -> None:
    from carlang.cli.run_commands import _event_value, _short

    assert _event_value(0.012909998986287974) == "0.01291"
    assert _event_value(1500.0) == "1500"
    assert _event_value({"a": [1, 2]}) == '{"a": [1, 2]}'
    assert _event_value("x" * 300).endswith("...") and len(_event_value("x" * 300)) == 200
    assert _short(1234567.89) == "1234567.89"  # (a tool's output in the run's table: whole)


def test_a_decorated_function_that_supplies_a_parameter_itself_is_not_refused(
    tmp_path: Path,
) -> None:
    """`functools.wraps` makes the wrapper look like the function it wraps; what the call
    must give is what the wrapper itself needs (here, nothing: it supplies `session`)."""
    program, _ = project(tmp_path)
    tools = tmp_path / "wrapped_tools.py"
    tools.write_text(
        "import functools\n"
        "def with_session(fn):\n"
        "    @functools.wraps(fn)\n"
        "    def call(*args, **kwargs):\n"
        "        return fn(*args, session='s', **kwargs)\n"
        "    return call\n"
        "def fetch(url):\n    return {}\n"
        "@with_session\n"
        "def deploy(env, session):\n    return f'deployed {env} in {session}'\n"
        "def rollback(env):\n    return 'undone'\n"
    )
    code, out = run(str(program), "--tools", str(tools), "--auto-approve")
    assert code == 0 and "deployed prod in s" in out, out
