"""`carlang eval` and `carlang repl`: CEL in a policy's context, with its type and value."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from carlang.cli import app
from carlang.compiler import compile_file
from carlang.repl import Repl

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
RELEASE = str(EXAMPLES / "release" / "release.car")
runner = CliRunner()


def _eval(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["eval", RELEASE, *args, "--root", str(EXAMPLES)])
    return result.exit_code, result.stdout, result.stderr


def test_eval_gives_type_and_value() -> None:
    params = '{"env": "prod", "version": "2.0-rc1"}'
    code, out, _ = _eval(
        'params.env == "prod" && params.version.contains("-rc")',
        "--tool",
        "deploy",
        "--params",
        params,
    )
    assert (code, out) == (0, "true : bool\n")
    code, out, _ = _eval("size(params.version) * 2", "--tool", "deploy", "--params", params)
    assert (code, out) == (0, "14 : int\n")
    # the tool's declared defaults fill what is not given, as in a compiled call
    code, out, _ = _eval("params.timeout_ms", "--tool", "fetch", "--params", '{"url": "https://x"}')
    assert (code, out) == (0, "5000 : int\n")
    # the program's initial state, with --state over it
    assert _eval("state.tests_passed")[1] == "false : bool\n"
    assert _eval("state.tests_passed", "--state", '{"tests_passed": true}')[1] == "true : bool\n"
    code, out, _ = _eval("action.tool", "--tool", "deploy", "--json")
    assert json.loads(out) == {
        "expression": "action.tool",
        "type": "string",
        "value": '"deploy"',
        "errors": [],
        "warnings": [],
    }


def test_eval_at_a_pinned_time() -> None:
    assert _eval("now.getHours()", "--now", "2026-01-05T21:30:00Z")[1] == "21 : int\n"
    code, out, _ = _eval("string(now)", "--now", "2026-01-05T21:30:00+01:00", "--json")
    assert code == 0 and json.loads(out)["value"] == '"2026-01-05T20:30:00Z"'  # (in UTC)
    code, _, err = _eval("now", "--now", "yesterday")
    assert code == 2 and "--now yesterday: the string is not an RFC 3339 timestamp" in err


def test_eval_errors() -> None:
    code, out, _ = _eval("params.ulr", "--tool", "fetch")
    assert code == 1 and "`params` has no field `ulr`" in out and "`url`" in out
    # parameters a call cannot have are refused, not evaluated (`5 : string` misled)
    code, _, err = _eval("params.env", "--tool", "deploy", "--params", '{"env": 5}')
    assert code == 2 and "parameter 'env' has wrong type: expected string, got number" in err
    code, _, err = _eval("params.env", "--tool", "deploy", "--params", '{"envv": "prod"}')
    assert code == 2 and "no parameter `envv`; did you mean `env`?" in err
    code, _, err = _eval("params.env", "--tool", "deploy", "--params", '{"env": "prod"}')
    assert code == 0  # (and leaving `version` out is fine: the expression reads `env` alone)
    code, out, _ = _eval("true &&\n  params.ulr == 'x'", "--tool", "fetch")
    assert out.startswith("error: 2:3: `params` has no field `ulr`")  # as a syntax error says
    code, out, _ = _eval("1 / 0")
    assert code == 1 and out.startswith("error: evaluation error: division_by_zero")
    code, out, _ = _eval("params.env ==")
    assert code == 1 and out.startswith("error: 1:14: unexpected end")
    code, _, err = _eval("true", "--tool", "deplyo")
    assert code == 2 and "no tool `deplyo` in the program; did you mean `deploy`?" in err
    code, _, err = _eval("true", "--params", "[1]")
    assert code == 2 and "--params must be a JSON object" in err


def test_repl_over_piped_input() -> None:
    lines = [
        ":tool deploy",
        ':params {"env": "staging"}',
        'params.env == "prod"',
        "params",
        ":tool nope",
        ":state {",
        ":frob",
        ":quit",
        "never read",
    ]
    result = runner.invoke(
        app, ["repl", RELEASE, "--root", str(EXAMPLES)], input="\n".join(lines) + "\n"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "deciding a call of `deploy`",
        'params = {"env": "staging"}',
        "false : bool",
        '{"env": "staging"} : map{env, version}',
        "error: no tool `nope` in the program (tools: notify, fetch, shell, run_tests, deploy, rollback_deploy)",
        "error: state is not JSON: expecting property name enclosed in double quotes at column 2",
        "error: unknown command `:frob` (:help lists them)",
    ]


def test_repl_completion() -> None:
    result = compile_file(EXAMPLES / "release" / "release.car", EXAMPLES)
    assert result.program is not None
    repl = Repl(result.program, "deploy")
    assert repl.completions(":t") == [":tool", ":tools"]
    assert repl.completions("par") == ["params"]
    assert repl.completions("params.e") == ["params.endsWith", "params.env"]
    assert repl.completions("st") == ["state", "string", "strings.quote"]  # not startsWith


def test_the_state_may_be_a_file(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text('{"tests_passed": true}')
    assert _eval("state.tests_passed", "--state", str(state))[1] == "true : bool\n"


def test_state_is_typed_from_the_declarations_as_a_policy_sees_it() -> None:
    code, out, _ = _eval("state.tests_passed")
    assert (code, out) == (0, "false : bool\n")
    code, out, _ = _eval("state.tests_pased")  # (the answer, an error, is the output)
    assert code == 1 and "`state` has no field `tests_pased`" in out
    assert "did you mean `tests_passed`?" in out


def test_a_mixed_arithmetic_names_the_conversion_that_fits() -> None:
    _, out, _ = _eval('"v" + 1')
    assert "convert one side, e.g. string(x) to join text" in out
    _, out, _ = _eval("1.5 + 1")
    assert "convert one side, e.g. double(x)" in out


def test_a_state_no_run_can_have_is_refused_and_the_repl_keeps_its_own() -> None:
    code, _, err = _eval("true", "--state", '{"tests_passed": "yes"}')
    assert code == 2 and "the state given: state `tests_passed`: expected boolean" in err
    program = compile_file(Path(RELEASE), EXAMPLES).program
    assert program is not None
    repl = Repl(program)
    assert (repl.handle(':state {"tests_passed": true}') or "").startswith("state = {")
    answer = repl.handle(':state {"nope": 1}')
    assert answer is not None and answer.startswith("error: the state given: no state key")
    assert repl.handle("state.tests_passed") == "true : bool"  # the state before the refusal


def test_a_secret_parameter_is_not_shown_in_a_value(tmp_path: Path) -> None:
    """`carlang eval` printed a secret parameter's value (`explain`, `verify` and `mcp serve`
    show it `[REDACTED]`), in text and in --json, and so did the repl."""
    program = tmp_path / "login.car"
    program.write_text("tool login(user: string, token: string secret)\n")
    given = ["--tool", "login", "--params", '{"user": "bob", "token": "hunter2xyz"}']
    for extra in ([], ["--json"]):
        result = runner.invoke(app, ["eval", str(program), 'params.token + "!"', *given, *extra])
        assert result.exit_code == 0 and "hunter2xyz" not in result.output
        assert "[REDACTED]!" in result.output
    shown = runner.invoke(app, ["eval", str(program), "params.user", *given])
    assert shown.exit_code == 0 and '"bob"' in shown.output


def test_eval_takes_a_scope_and_a_history(tmp_path: Path) -> None:
    """A tenant rule or a trace rule could not be evaluated for one call: `eval` had no
    `--scope` and no `--history` (`explain` has `--scope`)."""
    path = tmp_path / "p.car"
    path.write_text("tool refund(order_id: string, amount: float)\n")
    entry = '{"id": "x", "type": "tool_call", "tool": "refund", "params": {}, "status": "failed"}'
    condition = 'scope.tenant == "a" && history.exists(h, h.status == "failed")'
    args = ["eval", str(path), condition, "--scope", '{"tenant": "a"}']
    result = CliRunner().invoke(app, [*args, "--history", f"[{entry}]"])
    assert result.exit_code == 0 and result.stdout.startswith("true : bool"), result.output
    bad = CliRunner().invoke(app, [*args, "--history", '{"a": 1}'])
    assert bad.exit_code == 2 and "--history must be a JSON array of entries" in bad.stderr
    # each entry is checked as a test's `history` is: an entry no run holds answers nothing
    wrong = '[{"tol": "refund", "status": "succeded"}, {"tool": "refnd"}]'
    bad = CliRunner().invoke(app, [*args, "--history", wrong])
    assert (bad.exit_code, bad.stdout) == (2, "")
    assert bad.stderr == (
        "error: the history given: history entry 1 has no field `tol` (did you mean `tool`?);"
        " history entry 1: no status `succeded` (a status is one of running, succeeded,"
        " failed, skipped, rejected); history entry 2: no tool is called `refnd` (did you"
        " mean `refund`?)\n"
    )
    # fields of a kind no run writes: a number for an id or tool, a null status
    odd = '[{"id": 3, "tool": 5, "status": null}, {"tool": null, "type": "state_write"}]'
    bad = CliRunner().invoke(app, [*args, "--history", odd])
    assert bad.stderr.startswith(
        "error: the history given: history entry 1: no status `null` (a status is one of"
    )
    assert "history entry 1: `id` is not a string;" in bad.stderr
    assert "history entry 1: `tool` is not a string or null;" in bad.stderr
    assert "entry 2" not in bad.stderr  # (a state action's tool is null)
    bad = CliRunner().invoke(app, [*args, "--history", '[{"tool": "refund", "params": null}]'])
    assert "history entry 1: `params` is not a map" in bad.stderr
    # the hint of a field no entry has is an entry in JSON, as the option takes it
    bad = CliRunner().invoke(app, [*args, "--history", '[{"tool": "refund", "at": 3}]'])
    assert bad.stderr.endswith(
        'no field `at`; an entry is like {"id": "a", "type": "tool_call", "tool": "t",'
        ' "params": {}, "status": "succeeded"}\n'
    )


def test_the_repl_takes_a_scope_and_a_history_too() -> None:
    """`eval --scope/--history` had no repl commands: a tenant or trace rule could not be
    tried there. A refused history leaves the one before."""
    program = compile_file(Path(RELEASE), EXAMPLES).program
    assert program is not None
    repl = Repl(program)
    assert repl.handle(':scope {"tenant": "a"}') == 'scope = {"tenant": "a"}'
    assert (repl.handle("scope.tenant") or "").startswith('"a" : string')
    entry = '{"tool": "deploy", "status": "failed"}'
    assert repl.handle(f":history [{entry}]") == f"history = [{entry}]"
    assert repl.handle('history.exists(h, h.status == "failed")') == "true : bool"
    answer = repl.handle(':history [{"tol": "deploy"}]') or ""
    assert (
        answer
        == "error: the history given: history entry 1 has no field `tol` (did you mean `tool`?)"
    )
    assert repl.handle(":history {}") == (
        "error: history must be a JSON array of entries, like "
        '[{"id": "a", "type": "tool_call", "tool": "t", "params": {}, "status": "succeeded"}]'
    )
    assert repl.handle("size(history)") == "1 : int"
    assert repl.handle(":history") == "history = []"


def test_an_evaluation_that_read_a_left_out_parameter_says_so(tmp_path: Path) -> None:
    path = tmp_path / "p.car"
    path.write_text("tool refund(order_id: string, amount: float)\n")
    args = ["eval", str(path), "params.amount > 100.0", "--tool", "refund"]
    result = CliRunner().invoke(app, [*args, "--params", '{"order_id": "o"}'])
    assert result.exit_code == 1
    assert "no such key: 'amount' (the call's parameters leave out `amount`" in result.output
    other = CliRunner().invoke(app, ["eval", str(path), "state.x == 1", "--tool", "refund"])
    assert other.exit_code == 1 and "leave out" not in other.output  # (not what failed)
