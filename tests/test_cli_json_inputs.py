"""The JSON and JSONL inputs of the CLI (event logs, feedback files, configs, outcomes): bad
input is a usage error (exit 2) saying where and what, never an internal error."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carlang.cli import app

runner = CliRunner()

ROOT = Path(__file__).resolve().parent.parent
PLANS = str(ROOT / "examples" / "planning" / "deploy_plans.car")


def carlang(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


DEEP_COMMANDS = [
    ("events", "{}"),
    ("replay", "{} --program " + PLANS),
    ("planner learn", "{} -o {out}"),
    ("rank", PLANS + " --config {}"),
    ("rank", PLANS + " --feedback {}"),
    ("planner eval", PLANS + " --outcomes {}"),
]


@pytest.mark.parametrize(("command", "args"), DEEP_COMMANDS)
@pytest.mark.parametrize("name", ["deep.json", "deep.jsonl"])
def test_deep_nesting_is_a_located_usage_error(
    tmp_path: Path, command: str, args: str, name: str
) -> None:
    deep = tmp_path / name
    deep.write_text("[" * 100_000 + ("\n" if name.endswith("l") else ""))
    argv = command.split() + args.format(str(deep), out=str(tmp_path / "out.json")).split()
    code, output = carlang(*argv)
    assert code == 2, output
    assert f"{deep}:1:129:" in output and "nested too deeply (more than 128 levels)" in output
    assert "cut short" not in output


EVENT = {
    "seq": 1,
    "kind": "run_started",
    "trace_id": "r1",
    "proposal_id": "p",
    "timestamp": "2024-01-01T00:00:00Z",
    "data": {},
}
EVENT_COMMANDS = [
    ("events", "{}"),
    ("replay", "{} --program " + PLANS),
    ("planner learn", "{} -o {out}"),
    ("rank", PLANS + " --feedback {}"),
    ("planner eval", PLANS + " --outcomes {}"),
]


@pytest.mark.parametrize(("command", "args"), EVENT_COMMANDS)
@pytest.mark.parametrize(
    ("field", "value", "said"),
    [("proposal_id", {"x": 1}, "a string or null, not an object"), ("data", [1], "an object")],
)
def test_a_wrongly_typed_event_field_is_a_located_usage_error(
    tmp_path: Path, command: str, args: str, field: str, value: object, said: str
) -> None:
    import json

    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({**EVENT, field: value}) + "\n")
    argv = command.split() + args.format(str(log), out=str(tmp_path / "out.json")).split()
    code, output = carlang(*argv)
    column = json.dumps({**EVENT, field: value}).index(json.dumps(value)) + 1
    assert code == 2, output
    assert f"{log}:1:{column}: error: not a valid event: {field} must be {said}" in output


NOT_FILES = [
    "verify {dev}",
    "simulate {dev}",
    "verify {proposal} --state {dev}",
    "verify {proposal} --tool-schemas {dev}",
    "run " + PLANS + " --state {dev}",
    "events {dev}",
    "replay {dev} --program " + PLANS,
    "rank " + PLANS + " --feedback {dev}",
    "rank " + PLANS + " --config {dev}",
    "agent " + PLANS + " --script {dev} --prompt x",
    "planner learn {dev} -o {out}",
    "planner eval " + PLANS + " --outcomes {dev}",
    "planner search " + PLANS + " --outcomes {runs} --space {dev}",
]


@pytest.mark.parametrize("command", NOT_FILES)
@pytest.mark.parametrize("dev", ["/dev/zero", "fifo"])
def test_a_device_or_fifo_is_refused_before_it_is_read(
    tmp_path: Path, command: str, dev: str
) -> None:
    import os

    if dev == "fifo":
        dev = str(tmp_path / "fifo")
        os.mkfifo(dev)
    proposal = tmp_path / "p.json"
    proposal.write_text('{"id": "p", "actions": []}')
    runs = ROOT / "examples" / "experiments" / "runs.jsonl"
    argv = command.format(dev=dev, proposal=proposal, out=tmp_path / "o.json", runs=runs)
    code, output = carlang(*argv.split())
    assert code == 2, output
    assert f"{dev}: it is not a regular file" in output


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b'{"a": 1}\n\x83', "{name}:2:1: error: not UTF-8 text (byte 0x83); save it as UTF-8"),
        ("a = 1".encode("utf-16"), "{name}:1:1: error: not UTF-8 text (byte 0xff); it looks like"),
        (
            gzip.compress(b'{"a": 1}\n', mtime=0),
            "{name}: gzip-compressed, not text: decompress it first",
        ),
        (None, "{name}: it is a directory, not a file"),
    ],
)
@pytest.mark.parametrize(
    ("command", "suffix"),
    [
        ("planner search " + PLANS + " --outcomes {runs} --space {}", ".toml"),
        ("rank " + PLANS + " --config {}", ".json"),
        ("planner eval " + PLANS + " --outcomes {}", ".jsonl"),
        ("rank {}", ".json"),
    ],
)
def test_a_file_that_is_not_utf8_text_is_said_so(
    tmp_path: Path, data: bytes | None, said: str, command: str, suffix: str
) -> None:
    if data is None and command == "rank {}":
        pytest.skip("rank reads the datasets of a folder")
    path = tmp_path / ("input" + suffix)
    if data is None:
        path.mkdir()
    else:
        path.write_bytes(data)
    runs = ROOT / "examples" / "experiments" / "runs.jsonl"
    code, output = carlang(*command.format(str(path), runs=runs).split())
    assert code == 2, output
    assert said.format(name=path) in output


def test_a_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_bytes(b'\xef\xbb\xbf{"cost_weight": 0.3}')
    code, output = carlang("rank", PLANS, "--config", str(config))
    assert code == 0, output


@pytest.mark.parametrize("values", ["nan:1:0.1", "0:inf:1", "0:1:nan", "0.1,-inf"])
def test_a_sweep_of_values_that_are_not_finite_is_a_usage_error(values: str) -> None:
    code, output = carlang("rank", PLANS, "--sweep", f"cost_weight={values}")
    assert code == 2, output
    assert "is not a finite number" in output


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        (
            "--state",
            "[1]",
            "--state takes a JSON object or a JSON file of one, and `[1]` is a JSON array",
        ),
        ("--state", "5", "`5` is a JSON number"),
        ("--state", "null", "`null` is JSON null"),
        (
            "--tool-schemas",
            "{}",
            "--tool-schemas takes a JSON array or a JSON file of one, and `{}` is a JSON object",
        ),
        ("--state", "nofile.json", "nofile.json: no such file"),
    ],
)
def test_an_option_that_is_json_of_the_wrong_kind_says_so_not_no_such_file(
    tmp_path: Path, option: str, value: str, said: str
) -> None:
    """A trial: `verify P --state '[1]'` said "[1]: no such file"."""
    proposal = tmp_path / "p.json"
    proposal.write_text('{"actions": [{"id": "a", "type": "tool_call", "tool": "t"}]}')
    code, out = carlang("verify", str(proposal), option, value)
    assert code == 2 and said in out, out


def test_tool_schemas_may_be_the_list_itself(tmp_path: Path) -> None:
    proposal = tmp_path / "p.json"
    proposal.write_text('{"actions": [{"id": "a", "type": "tool_call", "tool": "t"}]}')
    assert carlang("verify", str(proposal), "--tool-schemas", '[{"name": "t"}]')[0] == 0
    code, out = carlang("verify", str(proposal), "--tool-schemas", "[]")
    assert code == 1 and "tool 't' is not registered" in out
    code, out = carlang("verify", str(proposal), "--tool-schemas", '[{"nam": "t"}]')
    assert (
        code == 2
        and "--tool-schemas:1:2: error: invalid tool list: [0].name: field required" in out
    )


def test_a_compiled_program_or_a_folder_given_to_verify_says_what_it_is(tmp_path: Path) -> None:
    """A trial: a program's IR gave 'actions: field required', and a folder named `x.car`
    was taken for a program."""
    program = tmp_path / "ok.car"
    program.write_text("tool t(i: int)\nproposal p { a = t(i: 1) }\n")
    code, compiled = carlang("compile", str(program))
    assert code == 0
    (tmp_path / "prog.json").write_text(compiled)
    code, out = carlang("verify", str(tmp_path / "prog.json"))
    assert code == 2 and "this is a compiled program (`carlang compile`), not a proposal" in out
    assert "--target car" in out
    (tmp_path / "folder.car").mkdir()
    code, out = carlang("verify", str(tmp_path / "folder.car"))
    assert code == 2 and out.strip().endswith("folder.car: it is a directory, not a file"), out


def test_inline_json_options_are_read_as_typed(tmp_path: Path) -> None:
    """A review: the options were Paths, which tidy `//` to `/`, so an inline state's
    `https://x.org` became `https:/x.org`, and a long value not JSON of the expected kind
    crashed on "file name too long"."""
    proposal = tmp_path / "p.json"
    proposal.write_text('{"actions": [{"id": "a", "type": "tool_call", "tool": "t"}]}')
    code, out = carlang(
        "verify", str(proposal), "--state", '{"u": "https://x.org"}', "--format", "json"
    )
    assert code == 0 and json.loads(out)["simulated_state"] == {"u": "https://x.org"}
    pattern = {"type": "object", "properties": {"p": {"type": "string", "pattern": "^a//b$"}}}
    schema = json.dumps([{"name": "t", "parameters": pattern}])
    (tmp_path / "c.json").write_text(
        '{"actions": [{"id": "a", "type": "tool_call", "tool": "t", "parameters": {"p": "a//b"}}]}'
    )
    assert carlang("verify", str(tmp_path / "c.json"), "--tool-schemas", schema)[0] == 0
    code, out = carlang("verify", str(proposal), "--state", "[" + "1," * 300 + "1]")
    assert code == 2 and "is a JSON array" in out and "internal error" not in out
