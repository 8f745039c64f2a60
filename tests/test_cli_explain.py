"""`carlang explain`: the full policy decision for one action."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from carlang.cli import app

runner = CliRunner()

PROGRAM = """\
tool fetch(url: string, port: int = 443)
tool deploy(env: "staging" | "prod")
state { frozen: bool = false }

policy https_only: deny fetch when !params.url.startsWith("https://")
  message "fetch over https only"
policy odd_ports: deny fetch when params.port != 443 && params.port != 8443
policy prod: require_approval deploy when params.env == "prod"
policy freeze: deny deploy when state.frozen
deny_tool_param fetch.url contains "169.254"

proposal release {
  get = fetch(url: "http://ci.example/build")
  ship = deploy(env: "prod") after get
}
"""


def explain(tmp_path: Path, *args: str) -> tuple[int, str]:
    path = tmp_path / "p.car"
    path.write_text(PROGRAM)
    result = runner.invoke(app, ["explain", str(path), *args])
    return result.exit_code, result.output


def test_explains_an_action_of_a_proposal(tmp_path: Path) -> None:
    code, out = explain(tmp_path, "--proposal", "release", "--action", "get")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == (
        'action get in proposal release: fetch(url: "http://ci.example/build", port: 443)'
    )
    assert lines[1] == "decision: deny"
    assert "  https_only: fetch over https only" in lines
    assert any(line.strip() == '!params.url.startsWith("https://") -> true' for line in lines), out
    # Policies that did not match are listed too, with what decided them.
    odd = lines.index(next(line for line in lines if line.startswith("odd_ports")))
    assert lines[odd].split()[1:] == ["deny", "did", "not", "match"]
    assert lines[odd + 1].strip() == "params.port != 443 -> false"
    assert any(line.startswith("prod ") and "does not apply" in line for line in lines)


def test_explains_a_call_given_on_the_command_line(tmp_path: Path) -> None:
    code, out = explain(
        tmp_path, "--tool", "deploy", "--params", '{"env": "prod"}', "--state", '{"frozen": true}'
    )
    assert code == 0, out
    assert "decision: deny" in out and "freeze: denied by policy freeze" in out
    code, out = explain(tmp_path, "--tool", "deploy", "--params", '{"env": "prod"}')
    assert "decision: require_approval" in out


def test_json_output(tmp_path: Path) -> None:
    code, out = explain(
        tmp_path,
        "--tool",
        "fetch",
        "--params",
        '{"url": "https://169.254.169.254/"}',
        "--format",
        "json",
    )
    assert code == 0, out
    document = json.loads(out)
    assert document["decision"] == "deny"
    by_name = {p["name"]: p for p in document["policies"]}
    assert by_name["https_only"]["matched"] is False
    assert by_name["https_only"]["explanation"] == [
        {"expression": '!params.url.startsWith("https://")', "value": "false"}
    ]
    rule = by_name["deny_tool_param:fetch.url"]
    assert rule["matched"] is True and "169.254" not in rule["reason"]
    assert by_name["prod"]["applies"] is False


def test_bad_invocations_are_usage_errors(tmp_path: Path) -> None:
    code, out = explain(tmp_path)
    assert code == 2 and "either --proposal" in out
    code, out = explain(tmp_path, "--tool", "fetch", "--params", "[1]")
    assert code == 2 and "JSON object" in out
    code, out = explain(tmp_path, "--tool", "fetch", "--params", "{nope")
    assert code == 2 and "not JSON" in out
    code, out = explain(tmp_path, "--proposal", "release", "--action", "nope")
    assert code == 2 and "actions: get, ship" in out
    code, out = explain(tmp_path, "--proposal", "nope", "--action", "get")
    assert code == 2 and "proposals: release" in out
    # a misspelt name gets a did-you-mean, as a misspelt --tool does (a trial)
    code, out = explain(tmp_path, "--proposal", "release", "--action", "shp")
    assert code == 2 and "has no action `shp` (did you mean `ship`?)" in out
    code, out = explain(tmp_path, "--proposal", "relase", "--action", "get")
    assert code == 2 and "(did you mean `release`?)" in out


def test_an_unknown_tool_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    code, out = explain(tmp_path, "--tool", "deplyo")
    assert code == 2
    assert "no tool is called `deplyo`" in out and "did you mean `deploy`?" in out
    assert "decision" not in out


def test_params_are_checked_against_the_tools_schema_as_check_does(tmp_path: Path) -> None:
    code, out = explain(tmp_path, "--tool", "deploy", "--params", '{"env": "qa", "evn": 1}')
    assert code == 2
    assert "tool `deploy` has no parameter `evn` (did you mean `env`?)" in out
    assert "tool 'deploy': parameter 'env': 'qa' is not one of ['staging', 'prod']" in out
    code, out = explain(tmp_path, "--tool", "fetch", "--params", '{"url": 1}')
    assert code == 2
    assert "tool 'fetch': parameter 'url' has wrong type: expected string, got number" in out
    code, out = explain(tmp_path, "--tool", "deploy", "--params", '{"env": "prod"}')
    assert code == 0 and "decision: require_approval" in out


def test_an_unknown_parameter_is_reported_once(tmp_path: Path) -> None:
    """A user trial: an extra key was reported in carlang's words and again in the JSON
    Schema's ("Additional properties are not allowed"); a misspelt one also made its
    parameter "missing". Each is said once, as check says it."""
    params = '{"url": "https://x", "extra": 2}'
    code, out = explain(tmp_path, "--tool", "fetch", "--params", params)
    assert code == 2
    assert out == "error: --params: tool `fetch` has no parameter `extra`\n"
    code, out = explain(tmp_path, "--tool", "fetch", "--params", '{"ulr": "https://x"}')
    assert code == 2
    assert out == "error: --params: tool `fetch` has no parameter `ulr` (did you mean `url`?)\n"
    code, out = explain(tmp_path, "--tool", "fetch", "--params", '{"ulr": 1, "port": "x"}')
    assert code == 2 and "missing" not in out and "Additional" not in out
    assert "parameter 'port' has wrong type" in out  # the other mistake, still said


def test_the_state_given_uses_the_declared_keys_and_types(tmp_path: Path) -> None:
    """As a test's `state { }`: a typo'd key would explain a decision on a state the program
    never has."""
    call = ["--tool", "deploy", "--params", '{"env": "staging"}']
    code, out = explain(tmp_path, *call, "--state", '{"frozn": true}')
    assert code == 2
    assert "--state: no state key is called `frozn` (did you mean `frozen`?)" in out
    code, out = explain(tmp_path, *call, "--state", '{"frozen": "yes"}')
    assert code == 2 and "--state: state `frozen`: expected boolean, got string" in out
    code, out = explain(tmp_path, *call, "--state", '{"frozen": true}')
    assert code == 0 and "decision: deny" in out
    state = tmp_path / "state.json"  # (a file, as `run` and `verify` take it)
    state.write_text('{"frozen": true}')
    code, out = explain(tmp_path, *call, "--state", str(state))
    assert code == 0 and "decision: deny" in out


def test_a_left_out_parameter_gets_its_default_as_at_run_time(tmp_path: Path) -> None:
    """`port` left out is 443, as in a call written in the program, a test, and the runtime:
    the decision is the one the call gets, not a failure on a missing key."""
    code, out = explain(tmp_path, "--tool", "fetch", "--params", '{"url": "https://a.example"}')
    assert code == 0, out
    assert out.splitlines()[:2] == [
        'action call: fetch(url: "https://a.example", port: 443)',
        "decision: allow",
    ]
    code, out = explain(
        tmp_path, "--tool", "fetch", "--params", '{"url": "https://a.example", "port": 80}'
    )
    assert "decision: deny" in out and "odd_ports" in out


TRACED = """\
tool lookup(order: string)
tool refund(order: string, card: string secret, note: string)
state { looked: bool = false }
redact params.note
policy lookup_first: deny refund when !history.exists(h, h.tool == "lookup" && h.params.order == params.order)
policy looked_up: deny refund when !state.looked
policy test_card: deny refund when params.card == "tok_test_0000"
policy night: require_approval refund when now.getHours() >= 20

proposal small {
  look = lookup(order: "o1") { effects { looked = true } }
  give = refund(order: "o1", card: "tok_secret_123", note: "private note 42") after look
}
"""


def test_an_action_of_a_plan_is_explained_as_check_judges_it(tmp_path: Path) -> None:
    """Its ancestors are in `history` (succeeded) and the state is the one the plan predicts
    when it runs (`looked` set by the action before): `check` finds no error, and explain
    agrees instead of blaming `lookup_first` and `looked_up`."""
    path = tmp_path / "t.car"
    path.write_text(TRACED)
    assert runner.invoke(app, ["check", str(path)]).exit_code == 0
    args = ["explain", str(path), "--proposal", "small", "--action", "give"]
    result = runner.invoke(app, [*args, "--now", "2026-01-05T10:00:00Z"])
    assert result.exit_code == 0 and "decision: allow" in result.output, result.output
    assert re.search(r"lookup_first +deny +did not match", result.output)
    assert re.search(r"looked_up +deny +did not match", result.output)


def test_now_can_be_pinned(tmp_path: Path) -> None:
    path = tmp_path / "t.car"
    path.write_text(TRACED)
    args = ["explain", str(path), "--proposal", "small", "--action", "give"]
    for now, decision in (
        ("2026-01-05T19:59:59Z", "allow"),
        ("2026-01-05T20:00:00Z", "require_approval"),
    ):
        result = runner.invoke(app, [*args, "--now", now])
        assert f"decision: {decision}" in result.output, result.output
    bad = runner.invoke(app, [*args, "--now", "tomorrow"])
    assert (
        bad.exit_code == 2
        and "--now tomorrow: the string is not an RFC 3339 timestamp" in bad.output
    )


def test_secret_parameters_and_redact_paths_are_never_shown(tmp_path: Path) -> None:
    path = tmp_path / "t.car"
    path.write_text(TRACED)
    params = '{"order": "o1", "card": "tok_secret_123", "note": "private note 42"}'
    for args in (
        ["--proposal", "small", "--action", "give"],
        ["--tool", "refund", "--params", params],
    ):
        for output in ("text", "json"):
            result = runner.invoke(app, ["explain", str(path), *args, "--format", output])
            assert result.exit_code == 0, result.output
            assert "tok_secret_123" not in result.output and "private note" not in result.output
            assert "[REDACTED]" in result.output and "o1" in result.output


def test_a_usage_error_about_a_secret_parameter_does_not_echo_it(tmp_path: Path) -> None:
    path = tmp_path / "s.car"
    path.write_text('tool pay(card: "tok_live_1" | "tok_live_2" secret)\n')
    params = '{"card": "tok_secret_zz"}'
    result = runner.invoke(app, ["explain", str(path), "--tool", "pay", "--params", params])
    assert result.exit_code == 2 and "is not one of" in result.output, result.output
    assert "tok_secret_zz" not in result.output


GUARDED = """\
tool read_file(path: string) -> string { read_only }
tool shell(cmd: string) -> string
tool mail(to: string) -> object
state { sent: int = 0 }
capability agent {
  tools allow read_file, shell, mail  deny shell
  state allow sent
}
capability reader { tools allow read_file }
policy no_etc: deny read_file when params.path.startsWith("/etc")
"""


def test_a_capability_decides_before_the_policies(tmp_path: Path) -> None:
    """What `explain --capability NAME` builds on (carlang/explain.py): the capability's
    refusal, worded as the runtime's (`gate(capability=)`, `execute`), makes the decision deny;
    an allowed call keeps the policies' decision; an undeclared name is a problem too."""
    from carlang_runtime import ir
    from carlang_runtime.engine import Runtime
    from carlang_runtime.policy import PolicySet

    from carlang.compiler import compile_text
    from carlang.explain import capability_problem, render_text, under_capability

    program = compile_text(GUARDED).program
    assert program is not None
    shell = ir.Action(id="call", type="tool_call", tool="shell", parameters={"cmd": "ls"})
    read = ir.Action(id="call", type="tool_call", tool="read_file", parameters={"path": "/etc"})
    mail = ir.Action(id="call", type="tool_call", tool="mail", parameters={"to": "x"})
    problem = capability_problem(program, shell, "agent", "g.car")
    assert problem == "tool 'shell' is denied by capability 'agent'"
    rt = Runtime.from_program(program)
    assert rt.gate(shell, capability="agent").reason == problem  # the runtime's own words
    assert capability_problem(program, mail, "reader", "g.car") == (
        "tool 'mail' is not allowed by capability 'reader'"
    )
    write = ir.Action(id="w", type="state_write", parameters={"key": "other", "value": 1})
    assert capability_problem(program, write, "agent", "g.car") == (
        "state key 'other' is not allowed by capability 'agent'"
    )
    assert capability_problem(program, read, "agent", "g.car") is None
    assert capability_problem(program, shell, None, "g.car") is None
    unknown = capability_problem(program, shell, "agnet", "g.car")
    assert unknown == "no capability `agnet` in g.car (did you mean `agent`?)"
    policies = PolicySet(program.policies, tools=program.tools)
    decision, traces = policies.trace(shell, proposal_id="", state={}, scope={}, history=[])
    assert decision.effect is ir.PolicyEffect.ALLOW  # no policy is about shell
    denied = under_capability(decision, problem, "agent")
    text = render_text("action call: shell(...)", denied, traces)
    assert text.splitlines()[1:3] == [
        "decision: deny",
        "  capability:agent: tool 'shell' is denied by capability 'agent'",
    ]
    decided, _ = policies.trace(read, proposal_id="", state={}, scope={}, history=[])
    assert under_capability(decided, None, "agent") is decided


def test_explain_decides_under_a_capability(tmp_path: Path) -> None:
    path = tmp_path / "g.car"
    path.write_text(GUARDED + 'proposal p under agent {\n  s = shell(cmd: "ls")\n}\n')
    shell = ["--tool", "shell", "--params", '{"cmd": "ls"}']
    result = runner.invoke(app, ["explain", str(path), *shell, "--capability", "agent"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1:3] == [
        "decision: deny",
        "  capability:agent: tool 'shell' is denied by capability 'agent'",
    ]
    assert "decision: allow" in runner.invoke(app, ["explain", str(path), *shell]).output
    result = runner.invoke(app, ["explain", str(path), "--proposal", "p", "--action", "s"])
    assert "decision: deny" in result.output  # the proposal's own capability
    (tmp_path / "carlang.toml").write_text('capability = "agent"\n')
    result = runner.invoke(app, ["explain", str(path), *shell])
    assert "decision: deny" in result.output, result.output  # carlang.toml's
    result = runner.invoke(app, ["explain", str(path), *shell, "--capability", "agnet"])
    assert result.exit_code == 2 and "did you mean `agent`?" in result.output
    document = json.loads(
        runner.invoke(app, ["explain", str(path), *shell, "--format", "json"]).output
    )
    assert document["decision"] == "deny"
    assert document["reasons"][0]["policy"] == "capability:agent"
