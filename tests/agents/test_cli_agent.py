"""`carlang agent` and `carlang export tools` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from carlang.cli import app
from tests.agents.conftest import PROGRAM
from tests.agents.test_turns import turn_in

runner = CliRunner()


def test_export_tools_in_each_format(tmp_path: Path) -> None:
    source = tmp_path / "p.car"
    source.write_text(PROGRAM)
    openai = runner.invoke(app, ["export", "tools", str(source), "--capability", "agent"])
    assert openai.exit_code == 0, openai.output
    assert [t["function"]["name"] for t in json.loads(openai.stdout)] == [
        "read_file",
        "write_file",
        "list_dir",
    ]
    mcp = runner.invoke(app, ["export", "tools", str(source), "--format", "mcp"])
    assert [t["name"] for t in json.loads(mcp.stdout)][-1] == "shell"
    assert json.loads(mcp.stdout)[0]["inputSchema"]["required"] == ["path"]
    bad = runner.invoke(app, ["export", "tools", str(source), "--capability", "nope"])
    assert bad.exit_code == 2 and "no capability 'nope'" in bad.output


def test_agent_runs_a_script_against_builtin_tools(tmp_path: Path) -> None:
    source = tmp_path / "p.car"
    source.write_text(PROGRAM)
    files = tmp_path / "files"
    (files / "notes").mkdir(parents=True)
    (files / "notes" / "a.txt").write_text("alpha")
    script = tmp_path / "turns.json"
    script.write_text(
        json.dumps(
            {
                "format": "anthropic",
                "turns": [
                    turn_in("anthropic", [("t1", "read_file", {"path": "notes/a.txt"})], "reading"),
                    turn_in(
                        "anthropic", [("t2", "write_file", {"path": "out.txt", "content": "x"})]
                    ),
                    turn_in(
                        "anthropic",
                        [("t3", "write_file", {"path": "notes/b.txt", "content": "alpha"})],
                    ),
                    turn_in("anthropic", [], "copied"),
                ],
            }
        )
    )
    args = [
        "agent",
        str(source),
        "--script",
        str(script),
        "--builtins",
        "--files-root",
        str(files),
        "--capability",
        "agent",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "assistant: reading" in result.stdout
    assert (
        "<- write_file refused/failed" in result.stdout
        and "write only under notes/" in result.stdout
    )
    assert result.stdout.strip().endswith(
        "success after 4 turns; tools called: read_file, write_file"
    )
    assert (files / "notes" / "b.txt").read_text() == "alpha"
    assert not (files / "out.txt").exists()
    as_json = runner.invoke(app, [*args, "--format", "json", "--max-turns", "2"])
    assert as_json.exit_code == 1
    document = json.loads(as_json.stdout)
    calls = document.pop("calls")
    assert document == {
        "status": "max_turns",
        "summary": "stopped after 2 turns without finishing",
        "turns": 2,
        "tools_called": ["read_file"],
    }
    assert [(c["turn"], c["name"], c["ok"]) for c in calls] == [
        (1, "read_file", True),
        (2, "write_file", False),
    ]
    assert calls[0]["arguments"] == {"path": "notes/a.txt"} and calls[0]["result"] == "alpha"
    assert "write only under notes/" in calls[1]["result"]


def test_agent_usage_errors(tmp_path: Path) -> None:
    source = tmp_path / "p.car"
    source.write_text(PROGRAM)
    neither = runner.invoke(app, ["agent", str(source)])
    assert neither.exit_code == 2 and "either --script FILE or --model-url URL" in neither.output
    no_model = runner.invoke(app, ["agent", str(source), "--model-url", "http://127.0.0.1:1/v1"])
    assert no_model.exit_code == 2 and "--model-url needs --model NAME" in no_model.output
    for url, said in (
        ("notaurl", "is not an http:// or https:// URL with a host"),
        ("ftp://host/v1", "is not an http:// or https:// URL with a host"),
        ("http://127.0.0.1:notaport/v1", "has no valid port: give a number from 1 to 65535"),
        ("http://127.0.0.1:99999/v1", "has no valid port: give a number from 1 to 65535"),
        ("http://127.0.0.1:0/v1", "has no valid port: give a number from 1 to 65535"),
        ("http://user:pa55w0rd@127.0.0.1:1/v1", "user:***@127.0.0.1:1/v1 holds a user or"),
    ):
        args = ["agent", str(source), "--model-url", url, "--model", "m", "--prompt", "hi"]
        refused = runner.invoke(app, [*args, "--api-key-env", "CARLANG_TEST_NO_SUCH_KEY"])
        assert refused.exit_code == 2 and "--model-url: the model URL" in refused.output
        assert said in refused.output and "pa55w0rd" not in refused.output
        assert "warning" not in refused.output  # (no key: said only of a run that goes on)
    (tmp_path / "bad.json").write_text("{")
    bad = runner.invoke(app, ["agent", str(source), "--script", str(tmp_path / "bad.json")])
    assert bad.exit_code == 2 and "the script is not JSON" in bad.output
    (tmp_path / "empty.json").write_text('{"turns": []}')
    empty = runner.invoke(app, ["agent", str(source), "--script", str(tmp_path / "empty.json")])
    assert empty.exit_code == 2 and "the script has no turns" in empty.output


def test_one_turn_is_counted_in_words_and_a_missing_key_is_warned_about(tmp_path: Path) -> None:
    source = tmp_path / "p.car"
    source.write_text(PROGRAM)
    script = tmp_path / "s.json"
    script.write_text(json.dumps([{"role": "assistant", "content": "nothing to do"}]))
    done = runner.invoke(app, ["agent", str(source), "--script", str(script)])
    assert done.exit_code == 0 and done.stdout.strip().endswith(
        "success after 1 turn; tools called: none"
    )
    unset = runner.invoke(
        app,
        [
            "agent",
            str(source),
            "--model-url",
            "http://127.0.0.1:9/v1",
            "--model",
            "m",
            "--prompt",
            "hi",
            "--api-key-env",
            "CARLANG_TEST_NO_SUCH_KEY",
        ],
    )
    assert "warning: $CARLANG_TEST_NO_SUCH_KEY is not set" in unset.stderr


def test_a_secret_parameters_default_is_offered_to_no_model(tmp_path: Path) -> None:
    """Nor a nested secret's (a field of an object parameter)."""
    source = tmp_path / "sec.car"
    source.write_text(
        'tool login(user: string, token: string secret = "default-secret-123",\n'
        '  auth: { key: string secret = "nested-secret-456" } = {key: "nested-secret-456"})\n'
    )
    for spec_format in ("openai", "anthropic", "mcp"):
        exported = runner.invoke(app, ["export", "tools", str(source), "--format", spec_format])
        assert exported.exit_code == 0, exported.output
        assert "default-secret-123" not in exported.output and '"token"' in exported.output
        assert "nested-secret-456" not in exported.output and '"key"' in exported.output


def test_tools_without_an_implementation_are_warned_about(tmp_path: Path) -> None:
    source = tmp_path / "p.car"
    source.write_text(PROGRAM)
    script = tmp_path / "s.json"
    script.write_text(json.dumps([{"role": "assistant", "content": "done"}]))
    bare = runner.invoke(
        app, ["agent", str(source), "--script", str(script), "--capability", "agent"]
    )
    assert "warning: no implementation for read_file, write_file, list_dir" in bare.stderr
    given = runner.invoke(
        app, ["agent", str(source), "--script", str(script), "--capability", "agent", "--builtins"]
    )
    assert "no implementation" not in given.stderr


def test_an_unknown_budget_is_a_usage_error(tmp_path: Path) -> None:
    source = tmp_path / "p.car"
    source.write_text(PROGRAM)
    script = tmp_path / "s.json"
    script.write_text(json.dumps([{"role": "assistant", "content": "done"}]))
    done = runner.invoke(app, ["agent", str(source), "--script", str(script), "--budget", "nope"])
    assert (
        done.exit_code == 2 and "--budget nope: " in done.output and "no such budget" in done.output
    )


def test_a_call_without_a_tool_name_shows_as_such(tmp_path: Path) -> None:
    source = tmp_path / "p.car"
    source.write_text(PROGRAM)
    nameless = {
        "role": "assistant",
        "tool_calls": [{"id": "x", "type": "function", "function": {"arguments": "{}"}}],
    }
    script = tmp_path / "s.json"
    script.write_text(json.dumps([nameless, {"role": "assistant", "content": "done"}]))
    done = runner.invoke(app, ["agent", str(source), "--script", str(script)])
    assert "  -> (no tool name) (malformed)" in done.stdout, done.output


def test_deeply_nested_arguments_are_answered_not_an_internal_error(tmp_path: Path) -> None:
    """A call's arguments nested 100,000 deep ended `carlang agent` with 'internal error'
    (RecursionError); a script file nesting that deep too."""
    source = tmp_path / "p.car"
    source.write_text(PROGRAM)
    deep = '{"path": ' + "[" * 100_000 + "]" * 100_000 + "}"
    call = {"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": deep}}
    script = tmp_path / "s.json"
    script.write_text(
        json.dumps(
            [{"role": "assistant", "tool_calls": [call]}, {"role": "assistant", "content": "ok"}]
        )
    )
    args = ["agent", str(source), "--script", str(script), "--capability", "agent"]
    done = runner.invoke(app, [*args, "--format", "json"])
    assert done.exit_code == 0, done.output
    (seen,) = json.loads(done.stdout)["calls"]
    assert "arguments are not JSON: nested too deeply (more than 128 levels)" in seen["result"]
    deep_script = tmp_path / "deep.json"
    deep_script.write_text(
        '{"format": "anthropic", "turns": ' + "[" * 100_000 + "]" * 100_000 + "}"
    )
    refused = runner.invoke(app, ["agent", str(source), "--script", str(deep_script)])
    assert refused.exit_code == 2, refused.output
    assert "the script is not JSON: nested too deeply" in refused.output


def test_no_capability_is_warned_about_and_carlang_toml_chooses_one(tmp_path: Path) -> None:
    """Without --capability, a program's capabilities were ignored without a word: the model
    was offered, and ran, `shell`, which its only capability leaves out."""
    source = tmp_path / "p.car"
    source.write_text(PROGRAM)
    script = tmp_path / "s.json"
    shell = turn_in("openai", [("c1", "shell", {"cmd": "cat ~/.ssh/id_rsa"})])
    script.write_text(json.dumps([shell, {"role": "assistant", "content": "done"}]))
    args = ["agent", str(source), "--script", str(script), "--builtins", "--format", "json"]
    bare = runner.invoke(app, args)
    assert bare.exit_code == 0, bare.output
    assert (
        "warning: no capability: the model is offered every tool of the program"
        " (choose some with --capability NAME, or `capability` in carlang.toml)" in bare.stderr
    )
    chosen = runner.invoke(app, [*args, "--capability", "agent"])
    assert "no capability" not in chosen.stderr
    (call,) = json.loads(chosen.stdout)["calls"]
    assert call["ok"] is False and "unknown tool 'shell'" in call["result"]
    (tmp_path / "carlang.toml").write_text('capability = "agent"\n')
    configured = runner.invoke(app, args)
    assert "no capability" not in configured.stderr
    (call,) = json.loads(configured.stdout)["calls"]
    assert call["ok"] is False and "unknown tool 'shell'" in call["result"]
    # a program without capabilities has nothing to choose: no warning
    (tmp_path / "carlang.toml").unlink()
    plain = tmp_path / "plain.car"
    plain.write_text("tool shell(cmd: string)\n")
    quiet = runner.invoke(app, ["agent", str(plain), "--script", str(script), "--builtins"])
    assert "no capability" not in quiet.stderr


def test_tool_names_that_collide_for_models_are_a_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "c.car"
    source.write_text(
        'tool fs__delete(path: string) { description "plain" }\n'
        'tool fs.delete() { description "dotted"\n'
        '  schema { type: "object", properties: { path: { type: "string" } } } }\n'
        "capability dotted { tools allow fs.delete }\n"
    )
    refused = runner.invoke(app, ["export", "tools", str(source)])
    assert refused.exit_code == 2, refused.output
    assert "tools fs__delete and fs.delete are both offered to models as 'fs__delete'" in (
        refused.output
    )
    one = runner.invoke(app, ["export", "tools", str(source), "--capability", "dotted"])
    assert one.exit_code == 0 and json.loads(one.stdout)[0]["function"]["description"] == "dotted"
    mcp = runner.invoke(app, ["export", "tools", str(source), "--format", "mcp"])
    assert mcp.exit_code == 0


def test_a_refused_approval_tells_the_model_no_more_than_that(tmp_path: Path) -> None:
    """Without a terminal, the model was told '(run with --auto-approve, or at a terminal to
    be asked)': the operator's instructions. It hears that approval was not given; the hint
    goes to the operator's terminal."""
    source = tmp_path / "p.car"
    source.write_text(
        "tool send(to: string) -> object\n"
        'policy outside: require_approval send when !params.to.endsWith("@example.com")\n'
        '  message "external mail needs approval"\n'
    )
    script = tmp_path / "s.json"
    call = turn_in("openai", [("c1", "send", {"to": "x@evil.com"})])
    script.write_text(json.dumps([call, {"role": "assistant", "content": "done"}]))
    args = ["agent", str(source), "--script", str(script), "--builtins", "--format", "json"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    (seen,) = json.loads(done.stdout)["calls"]
    told = json.loads(seen["result"])["error"]
    assert (
        told == "approval refused (outside: external mail needs approval): approval was not given"
    )
    assert (
        "approval needed for send (outside: external mail needs approval): refused"
        " (run with --auto-approve, or at a terminal to be asked)" in done.stderr
    )


def test_what_a_model_writes_reaches_the_terminal_without_escape_sequences(
    tmp_path: Path,
) -> None:
    """The model's text and tool names are shown with their control characters escaped: an
    escape sequence in them could hide or fake the lines after it (an approval question)."""
    source = tmp_path / "p.car"
    source.write_text(PROGRAM)
    (tmp_path / "files").mkdir()
    script = tmp_path / "turns.json"
    hide = "fine\x1b[8m\x1b[30;40m"
    turns = [
        turn_in("anthropic", [("t1", "list\x1b[2Kdir", {})], f"line one\n{hide}"),
        turn_in("anthropic", [], "done"),
    ]
    script.write_text(json.dumps({"format": "anthropic", "turns": turns}))
    args = ["agent", str(source), "--script", str(script), "--builtins"]
    result = runner.invoke(app, [*args, "--files-root", str(tmp_path / "files")])
    assert "\x1b" not in result.stdout
    assert "assistant: line one\nfine\\x1b[8m\\x1b[30;40m\n" in result.stdout
    assert "  -> list\\x1b[2Kdir {}" in result.stdout


SECRET_PROGRAM = """
tool login(user: string, password: string secret) -> string
tool note(text: string) -> string
"""


def test_a_secret_value_is_shown_nowhere_the_run_prints(tmp_path: Path) -> None:
    """A secret parameter's value given again in an argument the tool does not declare was
    printed (`-> login {"user": "bob", "password": "[REDACTED]", "extra": "hunter2xyz"}`, and
    under `calls[].arguments` with --format json), though the event log had it redacted. So
    were the model's text, a later turn's arguments and the final answer that repeat it."""
    source = tmp_path / "p.car"
    source.write_text(SECRET_PROGRAM)
    tools = tmp_path / "secret_tools.py"
    tools.write_text('TOOLS = {"login": lambda user, password: "in", "note": lambda text: text}\n')
    secret = "hunter2xyz"
    script = tmp_path / "s.json"
    login = {"user": "bob", "password": secret, "extra": secret}
    turns = [
        turn_in("openai", [("c1", "login", login)], f"logging in with {secret}"),
        turn_in("openai", [("c2", "note", {"text": f"pw={secret}"})]),
        {"role": "assistant", "content": f"done: {secret}"},
    ]
    script.write_text(json.dumps(turns))
    events = tmp_path / "run.jsonl"
    args = ["agent", str(source), "--script", str(script), "--tools", f"{tools}:TOOLS"]
    text = runner.invoke(app, [*args, "--events", str(events)])
    assert text.exit_code == 0, text.output
    assert '-> login {"user": "bob", "password": "[REDACTED]", "extra": "[REDACTED]"}' in (
        text.stdout
    )
    assert "assistant: logging in with [REDACTED]" in text.stdout
    assert secret not in text.output and secret not in events.read_text()
    shown = runner.invoke(app, [*args, "--format", "json"])
    assert shown.exit_code == 0, shown.output
    assert secret not in shown.output
    outcome = json.loads(shown.stdout)
    assert outcome["calls"][0]["arguments"]["extra"] == "[REDACTED]"
    assert outcome["calls"][1]["arguments"] == {"text": "pw=[REDACTED]"}
    assert outcome["summary"] == "done: [REDACTED]"
