"""`carlang check`, `compile` and `fmt` from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carlang.cli import app
from tests.conftest import ROOT

runner = CliRunner()

GOOD = 'tool fetch(url: string)\nproposal p { get = fetch(url: "https://x") }\n'
WARN = 'tool fetch(url: string)\ntool unused()\nproposal p { get = fetch(url: "https://x") }\n'
BAD = 'tool fetch(url: string)\nproposal p { get = fetch(ulr: "https://x") }\n'


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def check(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["check", *args])
    return result.exit_code, result.output


def test_examples_check_clean() -> None:
    code, out = check(str(ROOT / "examples"), "--root", str(ROOT))
    assert code == 0, out
    # the only warnings: the steps that will wait for a human approval, by design
    warnings = [line for line in out.splitlines() if ": warning[" in line]
    assert all("warning[CL0521]" in line for line in warnings), out
    assert out.strip().splitlines()[-1] == f"0 errors, {len(warnings)} warnings in 12 files"


def test_exit_codes(tmp_path: Path) -> None:
    assert check(str(write(tmp_path, "good.car", GOOD)))[0] == 0
    assert check(str(write(tmp_path, "warn.car", WARN)))[0] == 0
    assert check(str(tmp_path / "warn.car"), "--strict")[0] == 1
    code, out = check(str(write(tmp_path, "bad.car", BAD)))
    # the misspelt argument, not the "missing" parameter it was meant to be
    assert code == 1 and "error[CL0203]" in out and "did you mean `url`?" in out
    assert "CL0307" not in out
    code, out = check(str(tmp_path / "missing.car"))
    assert code == 2 and "no such file or directory" in out
    code, out = check(str(write(tmp_path, "empty/readme.txt", "x").parent))
    assert code == 2 and "no .car files" in out


def test_invalid_utf8_is_a_diagnostic(tmp_path: Path) -> None:
    code, out = check(str(write(tmp_path, "bin.car", b"tool t()\n\xff\xfe\n")))
    assert code == 1 and "error[CL0105]" in out and "Traceback" not in out


def test_json_format(tmp_path: Path) -> None:
    code, out = check(str(write(tmp_path, "bad.car", BAD)), "--format", "json")
    assert code == 1
    data = json.loads(out)
    assert data["version"] == 1
    first = data["diagnostics"][0]
    assert (first["code"], first["name"], first["severity"]) == (
        "CL0203",
        "unknown-parameter",
        "error",
    )
    assert first["labels"][0]["line"] == 2 and first["labels"][0]["file"] == "bad.car"


def test_sarif_format(tmp_path: Path) -> None:
    code, out = check(str(write(tmp_path, "bad.car", BAD)), "--format", "sarif")
    assert code == 1
    sarif = json.loads(out)
    assert sarif["version"] == "2.1.0"
    run = sarif["runs"][0]
    assert run["tool"]["driver"]["name"] == "carlang"
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    for result in run["results"]:
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        region = result["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
        assert region["snippet"]["text"]  # the text the result is about
        context = result["locations"][0]["physicalLocation"]["contextRegion"]
        assert context["startLine"] <= region["startLine"] <= context["endLine"]
        assert "fetch(ulr" in context["snippet"]["text"]
    names = {r["id"]: r["name"] for r in run["tool"]["driver"]["rules"]}
    assert names["CL0203"] == "UnknownParameter" or names["CL0203"][0].isupper()
    assert all(name[0].isupper() and "-" not in name for name in names.values())
    assert not any("helpUri" in rule for rule in run["tool"]["driver"]["rules"])
    texts = {
        r["ruleId"]: r["locations"][0]["physicalLocation"]["region"]["snippet"]["text"]
        for r in run["results"]
    }
    assert texts["CL0203"] == "ulr"


def test_unused_is_judged_across_the_files_checked(tmp_path: Path) -> None:
    write(tmp_path, "lib.car", "tool shared()\ntool orphan()\n")
    write(tmp_path, "main.car", 'import "lib.car"\nproposal p { a = shared() }\n')
    code, out = check(str(tmp_path), "--root", str(tmp_path))
    assert code == 0
    assert "tool `orphan` is never used" in out and "`shared` is never used" not in out


def test_compile_carlang_target(tmp_path: Path) -> None:
    out_file = tmp_path / "out.json"
    result = runner.invoke(
        app, ["compile", str(write(tmp_path, "good.car", GOOD)), "-o", str(out_file)]
    )
    assert result.exit_code == 0, result.output
    program = json.loads(out_file.read_text())
    assert program["version"] == 1 and program["proposals"][0]["actions"][0]["tool"] == "fetch"
    result = runner.invoke(app, ["compile", str(tmp_path / "good.car"), "--proposal", "p"])
    assert json.loads(result.output)["id"] == "p"
    result = runner.invoke(app, ["compile", str(tmp_path / "good.car"), "--proposal", "nope"])
    assert result.exit_code == 2 and "proposals: p" in result.output


def test_compile_refuses_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["compile", str(write(tmp_path, "bad.car", BAD))])
    assert result.exit_code == 1 and "error[CL0203]" in result.output


def test_compile_car_target_lowers_explicit_dependencies(tmp_path: Path) -> None:
    text = "tool t(n: int)\nproposal p {\n  a = t(n: 1) after b\n  b = t(n: 2)\n}\n"
    result = runner.invoke(
        app, ["compile", str(write(tmp_path, "dep.car", text)), "--target", "car"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [a["id"] for a in doc["actions"]] == ["b", "a"]
    b, a = doc["actions"]
    assert b["expected_effects"] == {"__done.b": True} and a["state_dependencies"] == ["__done.b"]
    for action in doc["actions"]:
        assert "depends_on" not in action and "loc" not in action
    assert "capability" not in doc and "loc" not in doc


@pytest.mark.car
def test_car_target_is_accepted_by_car_runtime() -> None:
    import car_runtime
    from carlang_runtime.verify import verify

    from carlang.compiler import compile_file
    from carlang.export import to_car_proposal

    for path in sorted((ROOT / "examples").rglob("*.car")):
        program = compile_file(path, ROOT).program
        assert program is not None
        tools = [t.model_dump(mode="json") for t in program.tools]
        for proposal in program.proposals:
            exported = json.dumps(to_car_proposal(proposal))
            theirs = json.loads(
                car_runtime.verify(
                    exported, json.dumps(program.initial_state), None, 1000, json.dumps(tools)
                )
            )
            ours = verify(proposal, program.initial_state, program.tools, 1000)
            assert theirs["valid"], (path, theirs["issues"])
            ours_levels = [sorted(level) for level in ours.execution_levels]
            assert [sorted(level) for level in theirs["execution_levels"]] == ours_levels


@pytest.mark.car
def test_car_runtime_does_not_run_an_exported_after_past_its_first_step(tmp_path: Path) -> None:
    """What docs/runtime.md (difference 9) says of car-runtime 0.58: its `execute` does not
    commit `expected_effects`, so the `__done.a` that `after a` lowers to is never there and
    `b` is rejected although `a` succeeded; carlang runs both. If a car-runtime release
    commits declared effects, this fails: update the difference."""
    import car_runtime

    text = 'tool r(path: string)\ntool w(path: string)\nproposal p { a = r(path: "x")  b = w(path: "y") after a }\n'
    result = runner.invoke(
        app, ["compile", str(write(tmp_path, "two.car", text)), "--target", "car"]
    )
    assert result.exit_code == 0, result.output
    outcome = json.loads(
        car_runtime.execute(result.output, ["r", "w"], lambda name, params: json.dumps("ok"))
    )
    statuses = {r["action_id"]: (r["status"], r.get("error")) for r in outcome["results"]}
    assert statuses == {
        "a": ("succeeded", None),
        "b": ("rejected", "state dependency '__done.a' not found"),
    }


def test_fmt_check_and_write(tmp_path: Path) -> None:
    path = write(tmp_path, "messy.car", "tool   t( )\n")
    result = runner.invoke(app, ["fmt", "--check", str(path)])
    assert result.exit_code == 1 and "would reformat" in result.output
    result = runner.invoke(app, ["fmt", str(path)])
    assert result.exit_code == 0 and path.read_text() == "tool t()\n"
    result = runner.invoke(app, ["fmt", "--check", str(path)])
    assert result.exit_code == 0 and result.output == ""


def test_fmt_reports_syntax_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["fmt", str(write(tmp_path, "bad.car", "tool t("))])
    assert result.exit_code == 1 and "CL0103" in result.output
    result = runner.invoke(app, ["fmt", str(write(tmp_path, "bin.car", b"\xff"))])
    assert result.exit_code == 1 and "CL0105" in result.output


def test_check_as_a_fresh_process(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "carlang", "check", str(write(tmp_path, "bad.car", BAD))],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "bad.car:2:" in proc.stdout and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args", [["codes"], ["check", str(ROOT / "examples"), "--root", str(ROOT)], ["--help"]]
)
def test_a_closed_pipe_ends_quietly(args: list[str]) -> None:
    # `carlang codes | head -1`: the reader is gone before carlang writes
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "carlang", *args], stdout=write_end, stderr=subprocess.PIPE
        )
    finally:
        os.close(write_end)
    assert proc.stderr == b""
    assert proc.returncode in (1, 141)


@pytest.mark.parametrize(
    "args",
    [
        ["rank", str(ROOT / "examples" / "planning" / "deploy_plans.car")],
        ["run", str(ROOT / "examples" / "files" / "notes.car"), "--builtins"],
    ],
)
def test_a_table_into_a_closed_pipe_exits_141(args: list[str], tmp_path: Path) -> None:
    # `carlang rank ... | head -1`: rich's own handler would exit 1 ("the input has errors")
    read_end, write_end = os.pipe()
    os.close(read_end)
    extra = ["--files-root", str(tmp_path)] if args[0] == "run" else []
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "carlang", *args, *extra, "--root", str(ROOT)],
            stdout=write_end,
            stderr=subprocess.PIPE,
        )
    finally:
        os.close(write_end)
    assert proc.stderr == b"" and proc.returncode == 141


_FULL = Path("/dev/full")  # Linux: every write fails with ENOSPC


@pytest.mark.skipif(not _FULL.exists(), reason="no /dev/full on this system")
@pytest.mark.parametrize(
    "args",
    [
        ["codes"],
        ["check", str(ROOT / "examples" / "files" / "notes.car"), "--root", str(ROOT)],
        ["fmt", "-"],
        ["compile", str(ROOT / "examples" / "files" / "notes.car"), "--root", str(ROOT)],
        ["verify", str(ROOT / "examples" / "proposals" / "release.json")],
        ["test", str(ROOT / "examples" / "release"), "--root", str(ROOT)],
        ["rank", str(ROOT / "examples" / "planning" / "deploy_plans.car"), "--root", str(ROOT)],
    ],
)
def test_output_that_cannot_be_written_is_an_error_not_a_bug(args: list[str]) -> None:
    # a full disk or an I/O error on stdout is the system's problem: one line, exit 2
    with _FULL.open("w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "carlang", *args],
            input="tool t(x: int)\n",  # (for `fmt -`)
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert proc.stderr == "error: cannot write to standard output: No space left on device\n"
    assert proc.returncode == 2


def test_a_misspelt_policy_target_is_an_error_with_did_you_mean(tmp_path: Path) -> None:
    # a policy that can never match leaves the action it meant unguarded
    path = write(
        tmp_path,
        "p.car",
        "tool refund(amount: int)\npolicy p: deny refnd when params.amount > 5\n"
        "proposal x { a = refund(amount: 1) }\n",
    )
    code, out = check(str(path))
    assert code == 1
    assert "p.car:2:16: error[CL0502]: `refnd` matches no declared tool" in out
    assert "did you mean `refund`?" in out


def carlang_process(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The real entry point (`main`), as a user's shell runs it."""
    return subprocess.run(
        [sys.executable, "-m", "carlang", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}", **env},
    )


def test_help_shows_real_metavars() -> None:
    assert "Usage: carlang check [OPTIONS] [PATHS]..." in carlang_process("check", "--help").stdout
    run_help = carlang_process("run", "--help").stdout
    assert "Usage: carlang run [OPTIONS] FILE" in run_help
    assert "--tools TOOLS" in run_help and "--format <text|json>" in run_help
    for command in ("check", "test", "run", "rank", "explain", "verify", "events", "codes"):
        text = carlang_process(command, "--help").stdout
        assert "{" not in text.splitlines()[0] and "<list[" not in text, command


def test_shell_completion_is_offered_and_completes_commands() -> None:
    assert "--install-completion" in carlang_process("--help").stdout
    proc = carlang_process(
        COMP_WORDS="carlang ch", COMP_CWORD="1", _CARLANG_COMPLETE="complete_bash"
    )
    assert proc.stdout.split() == ["check"]


def test_check_defaults_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "good.car", GOOD)
    monkeypatch.chdir(tmp_path)
    code, out = check()
    assert code == 0 and "in 1 file" in out


def test_check_warns_of_a_parameter_read_by_a_policy_of_every_action(tmp_path: Path) -> None:
    """No tool list: the policy also judges state writes and other tools' calls, which lack
    `params.url`, and denies each (its condition fails)."""
    text = (
        "tool fetch(url: string)\ntool deploy(env: string)\n"
        'policy https_only: deny when !params.url.startsWith("https://")\n'
    )
    code, out = check(str(write(tmp_path, "p.car", text)), "--root", str(tmp_path))
    assert "p.car:3:31: warning[CL0507]" in out and "`params.url` may be missing" in out
    narrowed = text.replace("deny when", "deny fetch when")
    code, out = check(str(write(tmp_path, "p.car", narrowed)), "--root", str(tmp_path))
    assert "CL0507" not in out


@pytest.mark.parametrize("command", ["check", "run", "compile", "test"])
def test_a_json_file_given_as_a_program_is_refused_with_the_command_for_it(
    tmp_path: Path, command: str
) -> None:
    """`carlang run plan.json` (a CAR proposal) was a syntax error at its first `{`."""
    path = write(tmp_path, "plan.json", '{"id": "p", "source": "x", "actions": []}')
    result = runner.invoke(app, [command, str(path)])
    assert result.exit_code == 2, result.output
    assert f"a JSON file, not a carlang program (.car): `carlang verify {path}`" in result.output
    assert "CL0102" not in result.output


@pytest.mark.parametrize("command", ["check", "run", "compile", "test"])
def test_a_python_file_given_as_a_program_says_where_tools_go(tmp_path: Path, command: str) -> None:
    """A trial: `carlang check tools.py` was CL0102 `unexpected name def`."""
    path = write(tmp_path, "tools.py", "def fetch(url):\n    return url\n")
    result = runner.invoke(app, [command, str(path)])
    assert result.exit_code == 2, result.output
    assert "a Python file, not a carlang program (.car)" in result.output
    assert f"`carlang run FILE.car --tools {path}`" in " ".join(result.output.split())


def test_check_quotes_no_value_at_a_redact_path(tmp_path: Path) -> None:
    """`redact params.card_number`: a diagnostic on that parameter says `[REDACTED]`, as one
    on a `secret` parameter does (the value is in the file, but CI logs keep the output)."""
    text = (
        'tool pay(card_number: string(pattern: "^[0-9]{16}$"))\nredact params.card_number\n'
        'proposal p { x = pay(card_number: "4111-1111-1111-1111") }\n'
    )
    code, out = check(str(write(tmp_path, "p.car", text)), "--root", str(tmp_path))
    assert code == 1 and "'[REDACTED]' does not match" in out
    assert "4111-1111-1111-1111'" not in out.split("\n")[0]


def test_impossible_rule_values_are_judged_against_the_whole_schema(tmp_path: Path) -> None:
    """CL0512 on a tool whose schema (from a file) reaches its enum through `$ref`: judged in
    the whole schema, "staging" is possible and "qa" is not."""
    write(
        tmp_path,
        "s.json",
        json.dumps(
            {
                "type": "object",
                "$defs": {"Env": {"type": "string", "enum": ["staging", "prod"]}},
                "properties": {"env": {"$ref": "#/$defs/Env"}},
                "required": ["env"],
            }
        ),
    )
    text = (
        'tool deploy() { schema from "s.json" }\nallow_tool_param deploy.env ["staging"]\n'
        'deny_tool_param deploy.env equals "qa"\n'
    )
    code, out = check(str(write(tmp_path, "p.car", text)), "--root", str(tmp_path))
    assert "error" not in out.split("\n")[0] and code == 0, out
    assert 'warning[CL0512]: `deny_tool_param deploy.env`: `env` can never be "qa"' in out


def test_check_counts_the_files_it_read_imports_too(tmp_path: Path) -> None:
    """An error in an imported file is in a file the summary counts."""
    write(tmp_path, "tools.car", "tool fetch(url: strin)\n")
    entry = write(tmp_path, "main.car", 'import "tools.car"\ntool other()\n')
    code, out = check(str(entry), "--root", str(tmp_path))
    assert code == 1 and "tools.car:1:" in out
    assert out.rstrip().endswith("1 error, 2 warnings in 2 files")


@pytest.mark.parametrize("command", ["check", "test"])
def test_check_and_test_colour_on_a_terminal_only(tmp_path: Path, command: str) -> None:
    pexpect = pytest.importorskip("pexpect", reason="pexpect is not installed")
    path = write(
        tmp_path,
        "bad.car",
        BAD
        if command == "check"
        else GOOD + 'test "t" {\n  action fetch(url: "x")\n  expect deny\n}\n',
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}", "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    argv = f"{sys.executable} -m carlang {command} {path}"
    shown = pexpect.run(argv, env=env, encoding="utf-8", timeout=30)
    assert "\x1b[1;31m" in shown  # `error` / `FAIL` in red
    plain = pexpect.run(argv, env={**env, "NO_COLOR": "1"}, encoding="utf-8", timeout=30)
    assert "\x1b[" not in plain and ("error[" in plain or "FAIL" in plain)
    piped = carlang_process(command, str(path))
    assert "\x1b[" not in piped.stdout + piped.stderr


def test_compile_never_writes_over_its_own_program(tmp_path: Path) -> None:
    program = write(tmp_path, "x.car", "tool t(x: int)\nproposal p { a = t(x: 1) }\n")
    before = program.read_text()
    link = tmp_path / "link.car"
    link.symlink_to(program)
    for out in (program, tmp_path / "sub" / ".." / "x.car", link):
        (tmp_path / "sub").mkdir(exist_ok=True)
        result = CliRunner().invoke(app, ["compile", str(program), "-o", str(out)])
        assert result.exit_code == 2, result.output
        assert "that is the program" in result.output
        assert program.read_text() == before
    out = tmp_path / "x.json"
    assert CliRunner().invoke(app, ["compile", str(program), "-o", str(out)]).exit_code == 0
    assert json.loads(out.read_text()) and program.read_text() == before


def test_an_output_that_is_a_link_loop_is_a_usage_error(tmp_path: Path) -> None:
    """`compile -o loop.json`, a link to itself: checking that the output is not the program
    resolved the link and ended in an internal error."""
    program = tmp_path / "p.car"
    program.write_text("tool t()\nproposal p { a = t() }\n")
    (tmp_path / "loop.json").symlink_to(tmp_path / "loop.json")
    result = CliRunner().invoke(app, ["compile", str(program), "-o", str(tmp_path / "loop.json")])
    assert result.exit_code == 2, result.output
    assert "cannot write" in result.stderr and "internal error" not in result.output
