"""`carlang verify` / `simulate` / `optimize` / `schema` / `codes` / `--version` from the command
line: output, exit codes, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from carlang import __version__
from carlang.cli import app

runner = CliRunner()


def write(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return path


PROPOSAL = {
    "id": "p",
    "actions": [
        {
            "id": "a",
            "type": "tool_call",
            "tool": "fetch",
            "parameters": {"url": "x"},
            "expected_effects": {"k": 1},
        },
        {
            "id": "b",
            "type": "tool_call",
            "tool": "fetch",
            "parameters": {"url": "x"},
            "state_dependencies": ["k", "zz"],
        },
        {"id": "d", "type": "state_write", "parameters": {"key": "k", "value": 2}},
    ],
}


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"carlang {__version__}"


def test_python_dash_m() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "carlang", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.strip() == f"carlang {__version__}"


def test_verify_invalid_text(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["verify", str(write(tmp_path, "p.json", PROPOSAL)), "--tools", "fetch"]
    )
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "INVALID",  # errors first, then warnings, each in verify's order
        "  [X] b: state dependency 'zz' not available at this point  [CL0402 state_dependencies]",
        "      help: nothing before it writes it: give it a value in the initial state, or write"
        " it in an earlier action",
        "  [!] proposal: duplicate tool call: fetch (2x)  [CL0313 loop_detection]",
        "  [!] a: write conflict on 'k' with action d (no dependency declared)  [CL0403 write_conflicts]",
        "conflicts:",
        "  a <-> d on key 'k'",
        "levels (1):",
        "  0: a, b, d",
        "simulated state: 1 keys",
    ]


def test_verify_valid_json_with_state(tmp_path: Path) -> None:
    proposal = write(
        tmp_path,
        "p.json",
        {
            "proposal": {
                "actions": [
                    {"id": "a", "type": "tool_call", "tool": "t", "state_dependencies": ["k"]}
                ]
            }
        },
    )
    state = write(tmp_path, "s.json", {"k": 1})
    result = runner.invoke(
        app, ["verify", str(proposal), "--state", str(state), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["valid"] is True and data["execution_levels"] == [["a"]]
    assert set(data) == {
        "valid",
        "issues",
        "simulated_state",
        "execution_levels",
        "conflicts",
        "evidence",
    }
    # the state may be given as the JSON object itself, as `explain --state` takes it
    inline = runner.invoke(app, ["verify", str(proposal), "--state", '{"k": 1}'])
    assert inline.exit_code == 0, inline.output
    bad = runner.invoke(app, ["verify", str(proposal), "--state", '{"k": tru}'])
    assert bad.exit_code == 2 and "--state:1:7: error: invalid state: malformed JSON" in bad.output


def test_verify_with_tool_schemas_and_max_actions(tmp_path: Path) -> None:
    schemas = write(
        tmp_path,
        "tools.json",
        [
            {
                "name": "fetch",
                "parameters": {"type": "object", "properties": {"url": {"type": "integer"}}},
            }
        ],
    )
    result = runner.invoke(
        app,
        [
            "verify",
            str(write(tmp_path, "p.json", PROPOSAL)),
            "--tool-schemas",
            str(schemas),
            "--max-actions",
            "2",
        ],
    )
    assert result.exit_code == 1
    assert "excessive actions: 3 (limit 2)" in result.output
    assert "parameter 'url' has wrong type: expected integer, got string" in result.output


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            '{"actions": [1,}',
            "p.json:1:16: error: invalid proposal: malformed JSON: expecting value",
        ),
        (
            '{"actions": [{"type": "tool_cal"}]}',
            "p.json:1:22: error: invalid proposal: actions[0].type: input should be 'tool_call', "
            "'state_write', 'state_read' or 'assertion'",
        ),
        ("[]", "p.json:1:1: error: invalid proposal: expected a JSON object"),
        ('{"id": "x"}', "p.json:1:1: error: invalid proposal: actions: field required"),
    ],
)
def test_bad_proposals_give_one_line_errors(tmp_path: Path, content: str, expected: str) -> None:
    result = runner.invoke(app, ["verify", str(write(tmp_path, "p.json", content))])
    assert result.exit_code == 2
    assert result.output.strip().endswith(expected.split(": error: ", 1)[1])
    assert "Traceback" not in result.output


def test_bad_state_and_missing_files(tmp_path: Path) -> None:
    proposal = str(write(tmp_path, "p.json", PROPOSAL))
    result = runner.invoke(
        app, ["verify", proposal, "--state", str(write(tmp_path, "s.json", "[1]"))]
    )
    assert result.exit_code == 2 and "invalid state" in result.output
    result = runner.invoke(app, ["verify", str(tmp_path / "none.json")])
    assert result.exit_code == 2 and "no such file" in result.output
    result = runner.invoke(app, ["verify", str(tmp_path)])
    assert result.exit_code == 2 and "it is a directory, not a file" in result.output
    result = runner.invoke(app, ["verify", proposal, "--tools", "a", "--tool-schemas", proposal])
    assert result.exit_code == 2 and "not both" in result.output
    binary = tmp_path / "b.json"
    binary.write_bytes(b"\xff\xfe{")
    result = runner.invoke(app, ["verify", str(binary)])
    assert result.exit_code == 2 and "not UTF-8" in result.output


def test_simulate_and_optimize(tmp_path: Path) -> None:
    path = str(
        write(
            tmp_path,
            "p.json",
            {
                "actions": [
                    {
                        "id": "a",
                        "type": "tool_call",
                        "tool": "t",
                        "expected_effects": {"k": 1},
                        "state_dependencies": ["ghost"],
                    },
                    {"id": "w", "type": "state_write", "parameters": {"key": "j", "value": [1]}},
                ]
            },
        )
    )
    result = runner.invoke(app, ["simulate", path])
    assert result.exit_code == 0 and result.stdout.splitlines() == ["j: [1]"]
    # as CAR's, it answers for a proposal that does not verify, and says so on stderr
    assert result.stderr.splitlines() == [
        "warning: the proposal does not verify (1 error(s)): its blocked actions are skipped,"
        " their effects not applied",
        "  a: state dependency 'ghost' not available at this point  [CL0402]",
    ]
    result = runner.invoke(
        app, ["simulate", path, "--state", str(write(tmp_path, "s.json", {"ghost": 0}))]
    )
    assert result.stdout.splitlines() == ["ghost: 0", "j: [1]", "k: 1"]
    assert result.stderr == ""  # (it verifies from that state)
    result = runner.invoke(app, ["optimize", path])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["actions"][0]["state_dependencies"] == []
    assert result.stderr == ""  # (the optimized proposal verifies: its phantom read is gone)
    cycle = {"actions": [{"id": "c", "type": "tool_call", "tool": "t", "depends_on": ["c"]}]}
    result = runner.invoke(app, ["optimize", str(write(tmp_path, "c.json", cycle))])
    assert result.exit_code == 0 and json.loads(result.stdout)["actions"][0]["id"] == "c"
    assert result.stderr.splitlines() == [
        "warning: the proposal does not verify (1 error(s)): the runtime would not run it",
        "  c: dependency cycle: c -> c  [CL0303]",
    ]


def test_schema_and_codes_commands() -> None:
    result = runner.invoke(app, ["schema", "proposal"])
    assert result.exit_code == 0 and json.loads(result.output)["title"].startswith(
        "CAR ActionProposal"
    )
    result = runner.invoke(app, ["codes"])
    assert result.exit_code == 0 and "CL0303" in result.output


def test_internal_errors_say_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib

    # the module (the package's attribute `verify` is the function)
    verify_module = importlib.import_module("carlang_runtime.verify")

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(verify_module, "verify", explode)
    result = runner.invoke(app, ["verify", str(write(tmp_path, "p.json", PROPOSAL))])
    assert result.exit_code == 101
    assert (
        "internal error: RuntimeError: kaboom" in result.output and "Traceback" not in result.output
    )


@pytest.mark.parametrize(
    "action",
    [
        {"id": "a", "type": "tool_call", "tool": "fetch", "parameters": {"url": "u"}},
        {"id": "a", "type": "tool_call", "tool": "fetch", "preconditions": [{"key": "k"}]},
    ],
)
def test_verify_from_a_file_is_verify_of_the_model(tmp_path: Path, action: dict[str, Any]) -> None:
    """Plain actions are verified by columns from the file's text, others through the model:
    the report is the same either way."""
    from carlang_runtime.ir import load_proposal
    from carlang_runtime.verify import verify

    content = json.dumps({"id": "p", "actions": [action, {**action, "id": "b"}]})
    result = runner.invoke(
        app,
        ["verify", str(write(tmp_path, "p.json", content)), "--tools", "fetch", "--format", "json"],
    )
    expected = verify(load_proposal(content), None, ["fetch"])
    assert json.loads(result.stdout) == json.loads(expected.model_dump_json())


AGENT_PROGRAM = """\
tool read_file(path: string)
tool shell(cmd: string)
capability agent { tools allow read_file }
policy no_etc: deny read_file when params.path.startsWith("/etc/")
  message "no system files"
"""


def _call(tool: str, **params: object) -> dict[str, object]:
    action = {"id": "c1", "type": "tool_call", "tool": tool, "parameters": params}
    return {"id": "turn", "source": "model", "actions": [action], "capability": "agent"}


def test_verify_against_a_program_judges_as_check_does(tmp_path: Path) -> None:
    """An agent's proposal (JSON) against the program: its policies, its capability (the one
    the proposal names, or --capability), its tools; alone, verify sees none of them."""
    program = write(tmp_path, "agent.car", AGENT_PROGRAM)
    denied = write(tmp_path, "denied.json", _call("read_file", path="/etc/passwd"))
    result = runner.invoke(app, ["verify", str(denied), "--program", str(program)])
    assert result.exit_code == 1, result.output
    assert "[X] c1: this action will be denied by no_etc: no system files  [CL0520" in result.output
    alone = runner.invoke(app, ["verify", str(denied)])
    assert alone.exit_code == 0 and alone.stdout.startswith("VALID")
    assert "capability 'agent'" in alone.stderr  # (not checked alone, and it says so)
    shell = write(tmp_path, "shell.json", _call("shell", cmd="ls"))
    result = runner.invoke(
        app, ["verify", str(shell), "--program", str(program), "--format", "json"]
    )
    document = json.loads(result.output)
    assert result.exit_code == 1 and document["valid"] is False
    assert [i["code"] for i in document["issues"]] == ["CL0601"]  # not allowed by it
    fine = write(tmp_path, "fine.json", _call("read_file", path="/home/notes"))
    assert runner.invoke(app, ["verify", str(fine), "--program", str(program)]).exit_code == 0
    unknown = runner.invoke(
        app, ["verify", str(fine), "--program", str(program), "--capability", "agnt"]
    )
    assert unknown.exit_code == 2 and "declares no capability `agnt`" in unknown.output
    assert "did you mean `agent`?" in unknown.output
    both = runner.invoke(app, ["verify", str(fine), "--program", str(program), "--tools", "x"])
    assert both.exit_code == 2 and "--program gives the tools" in both.output


def test_verify_alone_says_the_capability_and_budget_it_cannot_check(tmp_path: Path) -> None:
    """A proposal that names the capability and budget it runs under, verified without the
    program that declares them: the verdict stands (as CAR's), and stderr says what it did not
    check and how to have it checked."""
    named = {**_call("shell", cmd="ls"), "capability": "agent", "budget": "small"}
    alone = runner.invoke(app, ["verify", str(write(tmp_path, "named.json", named))])
    assert alone.exit_code == 0 and alone.stdout.startswith("VALID")
    assert alone.stderr.splitlines() == [
        "warning: the proposal runs under capability 'agent' and budget 'small', which this"
        " verify does not check: give the program that declares them with --program FILE.car"
    ]
    unnamed = {**_call("shell"), "capability": None}
    plain = runner.invoke(app, ["verify", str(write(tmp_path, "plain.json", unnamed))])
    assert plain.exit_code == 0 and plain.stderr == ""


def test_verify_against_a_program_leaves_out_verdicts_on_rejected_calls(tmp_path: Path) -> None:
    """As `check` does: no policy verdict on a call verify already rejects for its parameters
    (the runtime never asks the policies; the parameter error says what to fix), and the
    issues come in the proposal's order, errors before warnings on each action."""
    program = write(
        tmp_path,
        "pay.car",
        """\
tool pay(amount: int, currency: "EUR" | "USD")
tool mail(to: string)
policy big: deny pay when params.amount > 100
policy ask: require_approval mail when params.to.endsWith("@x.example")
policy outside: deny mail when !params.to.endsWith(".example")
""",
    )
    actions = [
        {"id": "m1", "type": "tool_call", "tool": "mail", "parameters": {"to": "a@x.example"}},
        {
            "id": "p",
            "type": "tool_call",
            "tool": "pay",
            "parameters": {"amount": 500, "currency": "GBP"},
        },
        {"id": "m2", "type": "tool_call", "tool": "mail", "parameters": {"to": "b@evil.org"}},
    ]
    proposal = write(tmp_path, "p.json", {"id": "turn", "actions": actions})
    result = runner.invoke(
        app, ["verify", str(proposal), "--program", str(program), "--format", "json"]
    )
    assert result.exit_code == 1, result.output
    issues = [(i["action_id"], i["code"]) for i in json.loads(result.output)["issues"]]
    assert issues == [("m1", "CL0521"), ("p", "CL0309"), ("m2", "CL0520")]


def test_verify_against_a_program_checks_its_state_writes_as_check_does(tmp_path: Path) -> None:
    """A trial: `check` refused the program's own `set balance = "lots"` (CL0205) and warned
    of an undeclared key (CL0206), but an agent's JSON doing the same was VALID against it."""
    program = write(tmp_path, "typ.car", "state { balance: int = 100 }\ntool t()\n")
    writes = [
        {"id": "w", "type": "state_write", "parameters": {"key": "balance", "value": "lots"}},
        {"id": "x", "type": "state_write", "parameters": {"key": "balanse", "value": 1}},
        {"id": "y", "type": "tool_call", "tool": "t", "expected_effects": {"balance": 2}},
    ]
    proposal = write(tmp_path, "p.json", {"id": "p", "actions": writes})
    result = runner.invoke(
        app, ["verify", str(proposal), "--program", str(program), "--format", "json"]
    )
    assert result.exit_code == 1, result.output
    found = {
        (i["action_id"], i["code"], i["severity"]) for i in json.loads(result.output)["issues"]
    }
    assert ("w", "CL0205", "error") in found and ("x", "CL0206", "warning") in found
    assert not any(action == "y" for action, code, _ in found if code in ("CL0205", "CL0206"))
    text = runner.invoke(app, ["verify", str(proposal), "--program", str(program)]).output
    assert "w: value for `balance` does not fit its declared type: expected integer, got" in text
    assert "x: state key `balanse` is not declared  [CL0206 names]" in text
    assert "      help: did you mean `balance`?" in text  # (the JSON's help, shown in text too)


def test_a_programs_own_car_export_verifies_against_it_without_warnings(tmp_path: Path) -> None:
    """A trial: `compile --target car` lowers `after` to `__done.<id>` keys, and verifying
    that output against its own program warned of each as an undeclared state key."""
    source = (
        "state { ready: bool = false }\ntool t(i: int)\n"
        "proposal p {\n  a = t(i: 1)\n  b = t(i: 2) after a\n}\n"
    )
    program = write(tmp_path, "p.car", source)
    exported = runner.invoke(app, ["compile", str(program), "--target", "car"])
    assert exported.exit_code == 0, exported.output
    assert "__done.a" in exported.output
    proposal = tmp_path / "p.json"
    proposal.write_text(exported.output)
    result = runner.invoke(
        app, ["verify", str(proposal), "--program", str(program), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["issues"] == []


def test_optimize_takes_the_state_its_warning_is_judged_from() -> None:
    """A trial: optimize warned that release.json's precondition will fail (no
    `tests_passed`) and had no --state to give it, as verify and simulate have."""
    from tests.conftest import ROOT

    release = str(ROOT / "examples" / "proposals" / "release.json")
    warned = runner.invoke(app, ["optimize", release])
    assert "key 'tests_passed' has no value" in warned.stderr
    given = runner.invoke(app, ["optimize", release, "--state", '{"tests_passed": true}'])
    assert given.exit_code == 0 and given.stderr == "", given.stderr


def test_simulate_says_when_there_is_no_state(tmp_path: Path) -> None:
    """A proposal without effects printed nothing at all (exit 0), which read as a failure."""
    path = tmp_path / "hold.json"
    path.write_text('{"id": "hold", "actions": [{"id": "a", "type": "tool_call", "tool": "x"}]}')
    result = CliRunner().invoke(app, ["simulate", str(path)])
    assert result.exit_code == 0 and result.stdout == ""
    assert "no state: no effect was applied" in result.stderr
    shown = CliRunner().invoke(app, ["simulate", str(path), "--format", "json"])
    assert shown.stdout.strip() == "{}"


def test_a_cost_line_counts_in_words_that_agree() -> None:
    """`1 actions, 1 tool calls` in rank's findings (and --explain)."""
    from carlang_runtime.planner import rank

    [one] = rank([{"id": "one", "actions": [{"id": "a", "type": "tool_call", "tool": "x"}]}])
    [cost] = [f["message"] for f in one.findings if f["feature"] == "cost"]
    assert cost.startswith("1 action, 1 tool call, 1 level, ") and cost.endswith(" tokens")
