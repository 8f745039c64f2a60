"""Every input error the CLI reports reads the same way: `file:line:col: error: ...` when it
has a position, `error: ...` otherwise, in carlang's words (no Python exception text, no
`error:` twice, no pydantic prefix), and says what to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carlang.cli import app
from carlang.cli.console import error_line
from tests.conftest import ROOT

runner = CliRunner()
PROGRAM = "tool step()\nproposal p { a = step() }\n"


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("message", "line"),
    [
        ("a.json:3:7: not JSON", "a.json:3:7: error: not JSON"),
        ("cannot read a.json", "error: cannot read a.json"),
        ("http://host:8080: refused", "error: http://host:8080: refused"),
        ("a.json: the state must be an object", "error: a.json: the state must be an object"),
        (
            "--sweep w=0:1:0: the step must be above 0",
            "error: --sweep w=0:1:0: the step must be above 0",
        ),
    ],
)
def test_a_message_at_a_position_puts_error_after_it(message: str, line: str) -> None:
    assert error_line(message) == line


def test_run_reports_a_malformed_state_as_verify_does(tmp_path: Path) -> None:
    program = write(tmp_path, "p.car", PROGRAM)
    state = write(tmp_path, "state.json", "{bad")
    expected = (
        f"{state}:1:2: error: invalid state: malformed JSON: expecting property name enclosed"
        " in double quotes"
    )
    proposal = write(tmp_path, "p.json", '{"actions": []}')
    for command in (["run", str(program)], ["verify", str(proposal)]):
        code, out = cli(*command, "--state", str(state))
        assert code == 2 and expected in out.splitlines(), out
    code, out = cli("run", str(program), "--state", str(write(tmp_path, "e.json", "")))
    assert code == 2 and out.strip().endswith(
        "error: invalid state: the text is empty (expected JSON)"
    )


def test_an_event_log_that_is_not_json_is_reported_at_its_line(tmp_path: Path) -> None:
    log = write(tmp_path, "garbage.car", "tool step()\n")
    code, out = cli("events", str(log))
    assert code == 2
    assert out.strip() == (
        f"{log}:1:1: error: malformed JSON: expecting value (this is carlang source, not JSON)"
        " (an event log holds one JSON event per line)"
    )


@pytest.mark.parametrize("command", ["events", "replay"])
def test_an_event_log_that_cannot_be_read_says_why_in_words(tmp_path: Path, command: str) -> None:
    """Not UTF-8 at its line and column, a folder, a missing file: said in words, not as
    Python's codec message or `[Errno 21]`."""
    program = write(tmp_path, "p.car", "tool step()\n")
    extra = ["--program", str(program)] if command == "replay" else []
    log = write(tmp_path, "bad.jsonl", b'{"seq": 1}\n  \xc3(\n')
    code, out = cli(command, str(log), *extra)
    assert code == 2
    assert f"{log}:2:3: error: not UTF-8 text (byte 0xc3)" in out
    folder = tmp_path / "logs.jsonl"
    folder.mkdir()
    code, out = cli(command, str(folder), *extra)
    assert code == 2 and f"{folder}: it is a directory, not a file" in out
    assert "Errno" not in out


def test_eval_reads_params_as_json_is_read_elsewhere(tmp_path: Path) -> None:
    program = write(tmp_path, "p.car", "tool pay(amount: float)\n")
    code, out = cli(
        "eval", str(program), "params.amount > 1.0", "--tool", "pay", "--params", '{"amount": NaN}'
    )
    assert code == 2 and "--params is not JSON: the constant NaN is not JSON" in out


def test_a_feedback_file_that_cannot_be_read_says_why_in_words(tmp_path: Path) -> None:
    program = ROOT / "examples" / "planning" / "deploy_plans.car"
    missing = tmp_path / "nope.json"
    code, out = cli("rank", str(program), "--feedback", str(missing))
    assert code == 2 and out.strip() == f"error: {missing}: no such file"
    bad = write(tmp_path, "bad.json", '{"tools": }')
    code, out = cli("rank", str(program), "--feedback", str(bad))
    assert code == 2 and out.strip() == (
        f"{bad}:1:11: error: not a feedback file: malformed JSON: expecting value"
    )


def test_a_bad_choice_is_reported_without_pydantics_prefix(tmp_path: Path) -> None:
    """(The command itself: `carlang.cli.typer_app.main` tidies typer's messages.)"""
    proposal = str(write(tmp_path, "p.json", "{}"))
    done = subprocess.run(
        [sys.executable, "-m", "carlang", "verify", proposal, "--format", "nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "Invalid value for '--format': 'nope' is not one of 'text', 'json'." in done.stderr
    assert "Value error" not in done.stderr


def test_a_command_that_compiles_one_program_refuses_a_directory(tmp_path: Path) -> None:
    write(tmp_path, "a.car", PROGRAM)
    write(tmp_path, "b.car", PROGRAM)
    for command in ("run", "compile"):
        code, out = cli(command, str(tmp_path))
        assert code == 2 and out.strip() == (
            f"error: {tmp_path}: a directory; this command takes one .car file"
            " (it holds a.car, b.car)"
        ), out


def test_nothing_to_check_names_where_it_looked(tmp_path: Path) -> None:
    code, out = cli("check", str(tmp_path))
    assert code == 2 and out.strip() == f"error: no .car files in {tmp_path}"


def test_standard_input_is_refused_with_what_to_do_instead() -> None:
    code, out = cli("check", "-")
    assert code == 2 and "save it as a .car file and give its path" in out


def test_verify_given_a_program_says_which_command_takes_one(tmp_path: Path) -> None:
    program = write(tmp_path, "p.car", PROGRAM)
    code, out = cli("verify", str(program))
    assert code == 2 and f"`carlang check {program}`" in out


def test_machine_formats_still_get_a_document_when_nothing_could_be_checked(
    tmp_path: Path,
) -> None:
    """`check --format sarif > out.sarif || true` then an upload: an empty file would be
    refused as invalid SARIF; a run whose invocation failed, saying why, is shown."""
    import json

    import jsonschema

    missing = str(tmp_path / "nope.car")
    code, out = cli("check", missing, "--format", "sarif")
    document = json.loads(out[: out.rindex("}") + 1])
    schema = json.loads((ROOT / "tests/data/schemas/sarif-2.1.0-subset.schema.json").read_text())
    jsonschema.validate(document, schema)
    (invocation,) = document["runs"][0]["invocations"]
    assert code == 2 and invocation["executionSuccessful"] is False
    notification = invocation["toolExecutionNotifications"][0]["message"]["text"]
    assert notification == f"{missing}: no such file or directory"
    code, out = cli("check", missing, "--format", "json")
    document = json.loads(out[: out.rindex("}") + 1])
    assert code == 2 and document == {
        "version": 1,
        "diagnostics": [],
        "error": f"{missing}: no such file or directory",
    }


def test_a_name_with_a_letter_beyond_ascii_says_names_are_ascii(tmp_path: Path) -> None:
    code, out = cli("check", str(write(tmp_path, "n.car", "tool pay(empfänger: string)\n")))
    assert code == 1 and "error[CL0101]: unexpected character `ä`" in out
    assert "help: names are ASCII letters, digits and `_`" in out


def test_verify_given_a_file_for_tool_names_points_at_tool_schemas(tmp_path: Path) -> None:
    proposal = write(tmp_path, "p.json", '{"actions": []}')
    code, out = cli("verify", str(proposal), "--tools", "tools.json")
    assert code == 2 and "use --tool-schemas tools.json" in out
    code, out = cli("verify", str(proposal), "--tools", "tools.py")  # (what `run` takes)
    assert code == 2 and "give --program FILE.car" in " ".join(out.split())


@pytest.mark.parametrize(
    ("before", "cells"),
    [("日本", 4), ("😀😀", 4), ("e\u0301", 1), ("❤\ufe0f", 1), ("ab", 2)],
)
def test_the_caret_stands_under_its_mark_in_terminal_cells(
    tmp_path: Path, before: str, cells: int
) -> None:
    """A wide character takes two cells and a combining mark none: the caret is placed by
    cells, not characters, so it stays under the argument it points at."""
    program = f'tool t(a: string)\nproposal p {{\n  x = t(a: "{before}", b: 1)\n}}\n'
    code, out = cli("check", str(write(tmp_path, "w.car", program)))
    assert code == 1 and "error[CL0203]" in out
    lines = out.splitlines()
    source = next(i for i, line in enumerate(lines) if line.startswith("3 | "))
    caret = lines[source + 1]
    prefix = '  x = t(a: "'
    assert caret.index("^") == len("3 | ") + len(prefix) + cells + len('", ')
    assert caret.count("^") == 1  # `b`


def test_a_directory_given_as_a_file_is_said_so_in_the_same_words_everywhere(
    tmp_path: Path,
) -> None:
    """The compiler's loader, the CLI and the runtime's input reader share one wording."""
    folder = tmp_path / "given.json"
    folder.mkdir()
    (tmp_path / "lib.car").mkdir()
    program = write(tmp_path, "p.car", PROGRAM)
    importer = write(tmp_path, "i.car", 'import "lib.car"\n' + PROGRAM)
    said = []
    for args in (
        ["verify", str(folder)],
        ["run", str(program), "--state", str(folder)],
        ["events", str(folder)],
        ["check", str(importer)],
    ):
        code, out = cli(*args)
        assert code in (1, 2), out
        said.append(out)
    assert all("it is a directory, not a file" in out for out in said), said
