"""The compiler never crashes, never destroys a file, and names the real mistake first: one
test per class of input that used to end in an internal error, a lost file or a misleading
first diagnostic."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from carlang_runtime.ir import load_proposal
from carlang_runtime.ir.load import IRLoadError
from carlang_runtime.jsontext import JsonTextError, parse_json
from carlang_runtime.verify import verify
from carlang_runtime.verify.checks import MAX_LISTED_CONFLICTS
from typer.testing import CliRunner

from carlang.cli import app
from carlang.compiler import compile_file
from carlang.diagnostics import Diagnostic
from carlang.export import to_car_proposal
from carlang.fmt import NotFormattable, format_source
from carlang.source import Source
from tests.helpers import compile_diagnostics

runner = CliRunner()


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def found(text: str) -> list[Diagnostic]:
    return compile_diagnostics(text).diagnostics.sorted()


def summary(text: str) -> list[tuple[str, str, int, int]]:
    """`(code, message, line, column)` of each diagnostic, in output order."""
    return [(d.code, d.message, *d.location()[1:]) for d in found(text)]


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


# -- never destroy a file ----------------------------------------------------------------------

SURROGATE = 'state { k: string = "\\ud800" }\n'


def test_fmt_leaves_a_file_it_cannot_format_untouched(tmp_path: Path) -> None:
    path = write(tmp_path, "s.car", 'state {  k: string = "\\ud800" }\n')
    before = path.read_bytes()
    code, out = run("fmt", str(path))
    assert code == 1 and "error[CL0104]" in out and "internal error" not in out
    assert path.read_bytes() == before


def test_fmt_write_failure_leaves_the_original_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "m.car", "tool   t( )\n")

    def fail(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    code, out = run("fmt", str(path))
    assert code == 2 and "the file is unchanged" in out
    assert path.read_text() == "tool   t( )\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.car"]


def test_fmt_never_writes_unverified_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import carlang.fmt as fmt_module

    path = write(tmp_path, "m.car", "tool   t( )\n")
    monkeypatch.setattr(fmt_module, "format_module", lambda *_: "tool other()\n")
    code, out = run("fmt", str(path))
    assert code == 101 and "the file is unchanged" in out
    assert path.read_text() == "tool   t( )\n"


def test_fmt_in_a_folder_it_cannot_write_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # a read-only folder: the temporary file beside the program cannot be made
    import tempfile

    from carlang.cli.lean import lean_main

    path = write(tmp_path, "fm2" + os.sep + "a.car", "tool   t( )\n")

    def refuse(*_: object, **__: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    assert lean_main("fmt", [str(path)]) == 2
    err = capsys.readouterr().err
    assert f"error: cannot write {path}: Permission denied; the file is unchanged" in err
    assert "internal" not in err and path.read_text() == "tool   t( )\n"


def test_fmt_rewrites_nothing_when_one_file_cannot_be_read_or_formatted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    untidy = "tool   t( )\n"
    first = write(tmp_path, "fm3/a.car", untidy)
    broken = write(tmp_path, "fm3/b.car", "tool (\n")
    code, out = run("fmt", str(tmp_path / "fm3"))
    assert code == 1 and "nothing rewritten" in out and "reformatted" not in out
    assert first.read_text() == untidy
    broken.write_text("tool u()\n")  # now it formats, but cannot be read
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == "b.car":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    code, out = run("fmt", str(tmp_path / "fm3"))
    assert code == 2 and "b.car: Permission denied" in out and "reformatted" not in out
    assert first.read_text() == untidy


def test_fmt_keeps_the_file_mode(tmp_path: Path) -> None:
    path = write(tmp_path, "m.car", "tool   t( )\n")
    path.chmod(0o640)
    assert run("fmt", str(path))[0] == 0
    assert path.read_text() == "tool t()\n" and path.stat().st_mode & 0o777 == 0o640


# -- lone surrogates ---------------------------------------------------------------------------


def test_lone_surrogate_in_the_language_is_reported_at_its_column() -> None:
    [(code, message, line, column)] = summary(SURROGATE)
    assert (code, line, column) == ("CL0104", 1, 22) and "`\\ud800`" in message
    assert summary('state { k: string = "\\ud83d\\ude00 \\\\ud800" }\n') == []  # a pair; `\\`


@pytest.mark.parametrize(
    ("char", "said", "escape"),
    [("\t", "a tab", "\\t"), ("\r", "a carriage return", "\\r"), ("\x01", "U+0001", "\\u0001")],
)
def test_a_control_character_in_a_string_is_named_with_its_escape(
    char: str, said: str, escape: str
) -> None:
    """JSON strings escape control characters: a tab typed into one was called an "invalid
    escape", which it is not."""
    [(code, message, line, column)] = summary(f'state {{ k: string = "a{char}b" }}\n')
    assert (code, line, column) == ("CL0104", 1, 23) and said in message
    found = compile_diagnostics(f'state {{ k: string = "a{char}b" }}\n').diagnostics.items[0]
    assert found.help == f"write `{escape}` instead"


def test_lone_surrogate_in_json_is_rejected_with_its_position() -> None:
    with pytest.raises(JsonTextError) as caught:
        parse_json('{"id": "a\\ud800"}')
    assert caught.value.position.column == 10 and "surrogate" in caught.value.message
    assert parse_json('"\\ud83d\\ude00"') == "\U0001f600"


def test_verify_rejects_a_lone_surrogate_id_instead_of_crashing(tmp_path: Path) -> None:
    doc = '{"id": "a\\ud800", "source": "x", "actions": []}'
    code, out = run("verify", str(write(tmp_path, "p.json", doc)))
    assert code == 2 and "surrogate" in out and "internal error" not in out


def test_cli_output_never_fails_on_a_surrogate() -> None:
    from carlang.cli.common import printable

    assert printable("a\ud800b") == "a\\ud800b" and printable("ok é") == "ok é"


def test_compile_car_target_never_emits_a_lone_surrogate(tmp_path: Path) -> None:
    text = 'tool t(s: string)\nproposal p { a = t(s: "x\\udc00") }\n'
    code, out = run("compile", "--target", "car", str(write(tmp_path, "p.car", text)))
    assert code == 1 and "error[CL0104]" in out


# -- numbers -----------------------------------------------------------------------------------

RANGES = [
    ("budget b { max_tool_calls 4294967296 }", "4294967296 is out of range for max_tool_calls"),
    ("tool t() {\n  rate 99999999999999999999 per 1m\n}", "out of range for rate (0..4294967295)"),
    ("tool t() {\n  cache 99999999999999999999s\n}", "out of range for cache (0s.."),
    ("tool t()\nrate_limit_tool t 4294967296 per 1m", "out of range for rate_limit_tool"),
    ("tool t()\nproposal p { a = t() { retry 4294967296 } }", "out of range for retry"),
    ("tool t()\nproposal p { a = t() { timeout 99999999999999999999s } }", "for timeout"),
    (
        "tool t()\nproposal p { a = t() }\nproposal q { a = t() }\n"
        "plan x { candidates p, q\n  target tool_calls 99999999999999999999 }",
        "out of range for target tool_calls (0..4294967295)",
    ),
    (
        "tool t()\nproposal p { a = t() }\nproposal q { a = t() }\n"
        f"plan x {{ candidates p, q\n  cost_weight 1{'0' * 200} }}",
        "out of range for cost_weight (0..1)",
    ),
]


@pytest.mark.parametrize(("text", "message"), RANGES, ids=[m.split()[-2] for _, m in RANGES])
def test_numbers_out_of_range_name_the_field_and_its_range(text: str, message: str) -> None:
    errors = [d for d in found(text) if d.severity == "error"]
    assert [d.code for d in errors] == ["CL0217"] and message in errors[0].message


def test_numbers_out_of_range_exit_1_not_101(tmp_path: Path) -> None:
    code, out = run("check", str(write(tmp_path, "b.car", RANGES[0][0] + "\n")))
    assert code == 1 and "(0..4294967295)" in out


HUGE = "1" * 5000


@pytest.mark.parametrize(
    "text",
    [
        f"tool t(x: int)\nproposal p {{ a = t(x: {HUGE}) }}",
        f"budget b {{ max_actions {HUGE} }}",
        f"tool t() {{\n  cache {HUGE}s\n}}",
        f"tool t(x: int)\npolicy p: deny t when params.x > {HUGE}\nproposal q {{ a = t(x: 1) }}",
    ],
    ids=["value", "count", "duration", "cel"],
)
def test_integers_past_4300_digits_are_diagnostics(text: str) -> None:
    errors = [d for d in found(text) if d.severity == "error"]
    assert len(errors) == 1 and errors[0].code in ("CL0104", "CL0217"), errors
    assert "digits" in errors[0].message or "characters" in errors[0].message


def test_json_numbers_out_of_range_are_rejected_like_car() -> None:
    for doc in (f'{{"n": {HUGE}}}', '{"n": 1e400}', '{"n": -1e400}', f'{{"n": 1{"0" * 400}}}'):
        with pytest.raises(JsonTextError, match="number out of range"):
            parse_json(doc)
    with pytest.raises(IRLoadError):
        load_proposal(f'{{"id": "p", "source": "x", "actions": [], "context": {{"n": {HUGE}}}}}')


def test_a_double_overflow_is_cl0104_everywhere_and_nothing_else() -> None:
    text = "state { k: int = 0 }\ntool t()\nproposal p { a = t() { requires k < 1e400 } }"
    assert [d.code for d in found(text)] == ["CL0104"]  # not also "precondition will fail"
    cel = "tool t(x: float)\npolicy p: deny t when params.x < 1e400\nproposal q { a = t(x: 1.0) }"
    [(code, message, line, _)] = summary(cel)
    assert (code, line) == ("CL0104", 2) and "too large" in message


# -- nesting -----------------------------------------------------------------------------------

DEEP = [
    "state { k: any = " + "[" * 500 + "]" * 500 + " }\n",
    "tool t(x: " + "list[" * 1000 + "int" + "]" * 1000 + ")\n",
    'test "deep" {\n  state { k: ' + "[" * 300 + "]" * 300 + " }\n  expect allow\n}\n",
]


@pytest.mark.parametrize("text", DEEP, ids=["state", "type", "test"])
def test_deep_nesting_is_one_diagnostic_where_the_limit_is_passed(text: str) -> None:
    [(code, message, line, column)] = summary(text)
    assert code == "CL0106" and "128" in message
    before = text[: Source("x", text).offset(line, column)]
    assert sum(before.count(bracket) for bracket in "[{(") == 128  # this one is level 129
    with pytest.raises(NotFormattable):
        format_source(Source("deep.car", text))


def test_nesting_at_the_limit_is_fine() -> None:
    text = "state { k: any = " + "[" * 127 + "]" * 127 + " }\n"  # 128 levels with the block
    assert summary(text) == []
    formatted = format_source(Source("ok.car", text))
    assert format_source(Source("ok.car", formatted)) == formatted


def test_deep_json_is_rejected_where_the_limit_is_passed() -> None:
    with pytest.raises(JsonTextError) as caught:
        parse_json('{"a": ' + "[" * 200 + "]" * 200 + "}")
    assert caught.value.position.column == 7 + 127 and "nested too deeply" in caught.value.message


# -- imports -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("a\\u0000b.car", "NUL"),
        ("x" * 300 + ".car", "file name too long"),
        ("lib", "it is a directory"),
        ("lib/latin1.car", "not UTF-8 text (byte 0xe9 at offset 5)"),
        # another file's first word would show in a syntax error; a FIFO would block
        ("secret.txt", "only .car files can be imported"),
        ("pipe.car", "it is not a regular file"),
        # (symlinks leading to each other: an internal error before Python 3.13)
        ("loop1.car", "too many levels of symbolic links"),
    ],
)
def test_import_path_problems_are_reported_at_the_import(
    tmp_path: Path, path: str, reason: str
) -> None:
    write(tmp_path, "lib/latin1.car", "tool \xe9()\n".encode("latin-1"))
    write(tmp_path, "secret.txt", "hunter2 is the password\n")
    (tmp_path / "loop1.car").symlink_to("loop2.car")
    (tmp_path / "loop2.car").symlink_to("loop1.car")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.car")
    elif path == "pipe.car":
        pytest.skip("no FIFOs on this system")
    entry = write(tmp_path, "main.car", f'import "{path}"\n')
    result = compile_file(entry, tmp_path)
    [diagnostic] = result.diagnostics.sorted()
    assert diagnostic.code == "CL0209" and reason in diagnostic.message
    assert diagnostic.location() == ("main.car", 1, 8)
    assert "hunter2" not in str(result.diagnostics.sorted())


def test_an_import_that_failed_hides_unknown_names_but_not_unknown_types(tmp_path: Path) -> None:
    """A trial: after `import "missing.car"`, `tool c(x: strin)` said nothing; the tool `d`
    the import may have declared stays unreported, but no file declares a type."""
    text = 'import "missing.car"\ntool c(x: strin)\nproposal q {\n  s = c(x: "a")\n  t = d()\n}\n'
    entry = write(tmp_path, "main.car", text)
    found = [(d.code, d.message) for d in compile_file(entry, tmp_path).diagnostics.sorted()]
    assert [code for code, _ in found] == ["CL0209", "CL0204"], found
    assert found[1][1] == "unknown type `strin`"


def test_import_path_did_you_mean(tmp_path: Path) -> None:
    write(tmp_path, "lib/support_tools.car", "tool t()\n")
    entry = write(tmp_path, "main.car", 'import "lib/suport_tools.car"\n')
    [diagnostic] = compile_file(entry, tmp_path).diagnostics.sorted()
    assert diagnostic.help == 'did you mean "lib/support_tools.car"?'


@pytest.mark.parametrize("path", ["A.car", "./A.car"])
def test_import_did_you_mean_prefers_a_case_only_difference_to_the_importing_file(
    tmp_path: Path, path: str
) -> None:
    write(tmp_path, "a.car", "tool t()\n")
    entry = write(tmp_path, "g.car", f'import "{path}"\n')
    [diagnostic] = compile_file(entry, tmp_path).diagnostics.sorted()
    assert diagnostic.code == "CL0209" and diagnostic.help == 'did you mean "a.car"?'


def test_import_did_you_mean_never_names_the_importing_file(tmp_path: Path) -> None:
    entry = write(tmp_path, "main.car", 'import "Main.car"\n')
    [diagnostic] = compile_file(entry, tmp_path).diagnostics.sorted()
    assert diagnostic.code == "CL0209" and diagnostic.help is None


# -- verify: write conflicts -------------------------------------------------------------------


def _writers(count: int, depends: int = 0) -> dict[str, object]:
    actions = []
    for i in range(count):
        action: dict[str, object] = {
            "id": f"w{i}",
            "type": "state_write",
            "parameters": {"key": "k", "value": i},
        }
        if depends and i >= depends:
            action["depends_on"] = [f"w{i - depends}"]
        actions.append(action)
    return {"id": "p", "source": "x", "actions": actions}


def test_many_writers_of_one_key_are_one_finding_with_a_count() -> None:
    result = verify(load_proposal(_writers(2000)), {}, None, 5000)
    assert len(result.conflicts) == MAX_LISTED_CONFLICTS
    assert result.conflicts[:2] == [("w0", "w1", "k"), ("w0", "w2", "k")]
    [issue] = [i for i in result.issues if i.check == "write_conflicts"]
    assert "2000 actions write it" in issue.message and "1999000 pairs" in issue.message


def test_conflict_count_respects_explicit_ordering() -> None:
    # w(i) after w(i-2): evens are ordered among themselves, odds too; even-odd pairs are not
    result = verify(load_proposal(_writers(400, depends=2)), {}, None, 5000)
    [issue] = [i for i in result.issues if i.check == "write_conflicts"]
    assert "40000 pairs" in issue.message
    assert all((int(a[1:]) - int(b[1:])) % 2 for a, b, _ in result.conflicts)


def test_few_conflicts_keep_cars_pairwise_findings() -> None:
    result = verify(load_proposal(_writers(3)), {}, None, 5000)
    assert result.conflicts == [("w0", "w1", "k"), ("w0", "w2", "k"), ("w1", "w2", "k")]
    messages = [i.message for i in result.issues if i.check == "write_conflicts"]
    assert messages[0] == "write conflict on 'k' with action w1 (no dependency declared)"


# -- the real mistake first, once ------------------------------------------------------------

UNUSED_AND_ERROR = """tool deploy(env: string)
capability deploy_bot { tools allow deploy }
proposal p under deploy_bot {
  a = deploy(env: 1)
}
"""


@pytest.mark.parametrize("output", ["text", "json", "sarif"])
def test_errors_come_before_warnings_in_every_format(tmp_path: Path, output: str) -> None:
    text = 'tool never_used()\ntool t(x: int)\nproposal p { a = t(x: "no") }\n'
    code, out = run("check", "--format", output, str(write(tmp_path, "o.car", text)))
    assert code == 1
    if output == "json":
        out = json.dumps([d["code"] for d in json.loads(out)["diagnostics"]])
    elif output == "sarif":
        out = json.dumps([r["ruleId"] for r in json.loads(out)["runs"][0]["results"]])
    assert out.index("CL0308") < out.index("CL0207")


def test_a_proposal_lost_to_a_syntax_error_does_not_make_its_names_unused() -> None:
    text = "tool deploy(env: string)\ncapability bot { tools allow deploy }\n"
    text += 'proposal p under bot {\n  a = deploy(env: "x") {\n    retry\n  }\n}\n'
    assert [d.code for d in found(text)] == ["CL0102"]


def test_a_wrong_parameter_type_is_not_also_a_policy_failure() -> None:
    text = 'tool t(name: string)\npolicy p: deny t when params.name.startsWith("z")\n'
    text += "proposal q { a = t(name: 5) }\n"
    assert [d.code for d in found(text)] == ["CL0308"]


def test_a_broken_policy_does_not_judge_every_action() -> None:
    text = 'tool t(name: string)\npolicy p: deny t when params.nme == "a"\n'
    text += 'proposal q {\n  a = t(name: "b")\n  b = t(name: "c")\n}\n'
    assert [d.code for d in found(text)] == ["CL0506"]


def test_a_declaration_lost_to_a_syntax_error_is_not_also_unknown() -> None:
    text = 'tool t(x: int) { description "never closed }\nproposal p { a = t(x: 1) }\n'
    assert [d.code for d in found(text)] == ["CL0101"]


def test_unknown_candidates_are_not_also_no_candidates() -> None:
    text = "tool t()\nproposal p { a = t() }\nplan x { candidates nope }\n"
    assert [d.code for d in found(text)] == ["CL0202"]


def test_duplicate_action_is_reported_at_the_second_definition() -> None:
    text = "tool t(n: int)\nproposal p {\n  a = t(n: 1)\n  a = t(n: 2)\n}\n"
    [diagnostic] = found(text)
    assert diagnostic.code == "CL0301" and diagnostic.location()[1:] == (4, 3)
    [first] = [label for label in diagnostic.labels if not label.primary]
    assert first.message == "first defined here" and first.source.line_column(first.span.start) == (
        3,
        3,
    )


def test_unterminated_string_is_reported_at_its_opening_quote() -> None:
    [(code, message, line, column)] = summary('tool t() {\n  description "abc\n}\n')
    assert (code, message, line, column) == ("CL0101", "unterminated string", 2, 15)


@pytest.mark.parametrize(
    ("written", "unit", "help"),
    [
        ("5sec", "sec", "write it as 5s"),
        ("5d", "d", "write it as 120h"),  # the same length, not 5h or 5ms
        ("1.5days", "days", "write it as 36h"),
        ("10Mins", "Mins", "write it as 10m"),
        ("7x", "x", "write it with one of the units: 7h, 7m, 7s or 7ms"),
    ],
)
def test_a_bad_duration_unit_lists_the_units_and_says_the_same_length(
    written: str, unit: str, help: str
) -> None:
    [diagnostic] = found(f"tool t()\nproposal p {{ a = t() {{ timeout {written} }} }}\n")
    assert f"unknown duration unit `{unit}`" in diagnostic.message
    assert diagnostic.help == help
    assert "h, m, s, ms, us, ns" in diagnostic.labels[0].message


@pytest.mark.parametrize(
    ("written", "message", "help"),
    [
        ("-5s", "a duration cannot be negative: `-5s`", "write it as 5s"),
        ("-1.5m", "a duration cannot be negative: `-1.5m`", "write it as 1.5m"),
        ("-2days", "a duration cannot be negative: `-2days`", "write it as 48h"),
        ("1e3ms", "a duration's number cannot have an exponent: `1e3ms`", "write it as 1000ms"),
        ("2.5E-1s", "a duration's number cannot have an exponent: `2.5E-1s`", "write it as 0.25s"),
        ("-1e3ms", "a duration cannot be negative: `-1e3ms`", "write it as 1000ms"),
        ("1e3x", "exponent", "write it with one of the units: 1000h, 1000m, 1000s or 1000ms"),
    ],
)
def test_a_duration_with_a_sign_or_an_exponent_blames_the_number_not_the_unit(
    written: str, message: str, help: str
) -> None:
    [diagnostic] = found(f"tool t()\nproposal p {{ a = t() {{ timeout {written} }} }}\n")
    assert message in diagnostic.message
    assert "unit" not in diagnostic.message
    assert diagnostic.help == help


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("tool t()\nproposal p { a = t() { compensate tt() } }", "did you mean `t`?"),
        ("tool t()\nproposal p {\n  a = t() { compensate with aa }\n}", "did you mean `a`?"),
        ("capability cap {}\ntool t()\nproposal p under cpa { a = t() }", "did you mean `cap`?"),
        ("state { k: int = 0 }\ntool t()\nproposal p { a = t() { reads kk } }", "`k`?"),
    ],
)
def test_did_you_mean_is_in_the_first_diagnostic(text: str, hint: str) -> None:
    first = found(text)[0]
    assert first.severity == "error" and hint in (first.help or ""), found(text)
    assert all(d.code != "CL0207" for d in found(text))  # `cap` is not "never used" too


AFTER_WRITERS = """tool t(n: int)
state { k: int = 0 }
proposal p {
  a = t(n: 1) { effects { k = 1 } }
  m = t(n: 2) after a
  b = t(n: 3) after m { effects { k = 2 } }
  c = set k = 5 after b
}
"""


def test_after_lowered_for_car_orders_the_writers_it_orders(tmp_path: Path) -> None:
    program = compile_file(write(tmp_path, "a.car", AFTER_WRITERS), tmp_path).program
    assert program is not None
    exported = to_car_proposal(program.proposals[0])
    assert verify(load_proposal(exported), {"k": 0}, None, 100).conflicts == []
    b = next(a for a in exported["actions"] if a["id"] == "b")
    assert b["state_dependencies"] == ["__done.m", "k"]


@pytest.mark.car
def test_check_and_car_agree_on_write_conflicts(tmp_path: Path) -> None:
    import car_runtime

    root = Path(__file__).resolve().parent.parent
    paths = [*sorted((root / "examples").rglob("*.car")), write(tmp_path, "a.car", AFTER_WRITERS)]
    for path in paths:
        result = compile_file(path, path.parent if path.parent == tmp_path else root)
        assert result.program is not None
        for proposal in result.program.proposals:
            exported = json.dumps(to_car_proposal(proposal))
            theirs = json.loads(car_runtime.verify(exported, json.dumps({"k": 0}), None, 1000))
            ours = result.verify_results[proposal.id].conflicts
            assert sorted(tuple(c) for c in theirs["conflicts"]) == sorted(ours), path


def test_an_unknown_tool_is_not_also_disallowed() -> None:
    text = "tool fetch()\ncapability c { tools allow fetch }\nproposal p under c { a = fetsh() }\n"
    assert [d.code for d in found(text)] == ["CL0306"]


def test_an_unknown_after_does_not_also_fail_the_actions_state_flow() -> None:
    text = "state { k: bool = false }\ntool t()\nproposal p {\n  a = set k = true\n"
    text += "  b = t() after aa { requires k == true }\n}\n"
    [diagnostic] = found(text)
    assert diagnostic.code == "CL0302" and diagnostic.help == "did you mean `a`?"


def test_names_are_not_unknown_after_a_failed_import() -> None:
    text = 'import "nope.car"\ncapability c { tools allow fetch }\n'
    text += "proposal p under c { a = fetch() }\npolicy x: deny fetch\n"
    assert [d.code for d in found(text)] == ["CL0209"]


def test_a_misspelt_argument_is_not_also_a_missing_parameter() -> None:
    [diagnostic] = found('tool t(channel: string)\nproposal p { a = t(chanel: "x") }\n')
    assert diagnostic.code == "CL0203" and diagnostic.help == "did you mean `channel`?"


def test_a_misspelt_capability_allowance_is_named_first() -> None:
    text = "tool fetch()\ncapability c { tools allow fech }\nproposal p under c { a = fetch() }\n"
    first, second = found(text)
    assert first.code == "CL0601" and "`c` allows `fech`" in (first.help or "")
    assert second.code == "CL0223" and second.help == "did you mean `fetch`?"


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("tool t()\nproposal p { a = t() { retyr 3 } }\n", "did you mean `retry`?"),
        ("state { k: int = 0 }\nproposal p { a = asert k == 0 }\n", "did you mean `assert`?"),
        ("tool t()\ndeny_tol t\n", "did you mean `deny_tool`?"),
    ],
)
def test_a_misspelt_keyword_gets_a_did_you_mean(text: str, hint: str) -> None:
    first = found(text)[0]
    assert first.code == "CL0102" and first.help == hint


def test_two_findings_differing_only_in_their_span_end_sort() -> None:
    from carlang.diagnostics import Diagnostics
    from carlang.source import Span

    source = Source("a.car", "abcdef")
    diagnostics = Diagnostics()
    diagnostics.error("CL0101", "same", source, Span(0, 2))
    diagnostics.error("CL0101", "same", source, Span(0, 1))
    assert [d.labels[0].span.end for d in diagnostics.sorted()] == [1, 2]


def test_a_byte_order_mark_says_what_it_is_and_how_to_save_without_it() -> None:
    [diagnostic] = found("\ufefftool t() {}\n")
    assert diagnostic.message == "unexpected character `U+FEFF`"
    assert diagnostic.help == "this is a byte-order mark: save the file as UTF-8 without one"


def test_a_short_table_row_is_reported_on_that_row() -> None:
    text = (
        "tool fetch(url: string) {}\n"
        'policy https: deny fetch when !params.url.startsWith("https://")\n'
        'test "schemes" {\n'
        "  action fetch(url: $url)\n"
        "  expect $decision\n"
        "  where\n"
        "    | url | decision |\n"
        '    | "http://a" | deny |\n'
        '    | "https://a" |\n'
        "}\n"
    )
    [diagnostic] = [d for d in found(text) if d.severity == "error"]
    assert diagnostic.message == "a table row has 1 cell, the header 2"
    assert diagnostic.labels[0].source.line_column(diagnostic.labels[0].span.start) == (9, 7)


# -- a line of megabytes -----------------------------------------------------------------------


def test_a_long_line_shows_a_window_around_the_mark(tmp_path: Path) -> None:
    """A minified or generated file can hold megabytes on one line: a diagnostic shows the
    columns around its mark, cut with `...`, and quotes a long token by its ends."""
    long = "x" * 200_000
    path = write(tmp_path, "long.car", f'proposal p {{ "{long}" }}\n')
    code, out = run("check", str(path))
    assert code == 1 and len(out) < 1000, len(out)
    first, source, caret = out.splitlines()[:3]
    assert first.startswith('long.car:1:14: error[CL0102]: unexpected string "xxx')
    assert first.endswith('...xxxxxxxxx"')
    assert source == "1 | proposal p { " + '"' + "x" * 106 + "..."
    assert caret == "  | " + " " * 13 + "^" * 107 + " expected `context`, `}`, a name"


def test_a_mark_far_along_a_long_line_is_shown_with_the_text_around_it(tmp_path: Path) -> None:
    path = write(tmp_path, "long.car", "proposal p { " + "y" * 200_000 + " !ok }\n")
    code, out = run("check", str(path))
    source, caret = out.splitlines()[1:3]
    assert code == 1 and len(source) < 140
    assert source.startswith("1 | ...yyy") and source.endswith(" !ok }")
    assert caret.index("^") == source.index("!")


def test_sarif_leaves_out_snippets_of_a_long_line(tmp_path: Path) -> None:
    """A snippet is the region's exact text: past the limit it is left out, not cut."""
    path = write(tmp_path, "long.car", 'proposal p { "' + "x" * 200_000 + '" }\n')
    code, out = run("check", str(path), "--format", "sarif")
    location = json.loads(out)["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert code == 1 and len(out) < 5000
    assert "snippet" not in location["region"] and "snippet" not in location["contextRegion"]
    assert location["region"]["startColumn"] == 14


# -- bidirectional control characters ("Trojan Source", CVE-2021-42574) -----------------------


def test_a_snippet_shows_direction_controls_escaped_with_the_caret_under_them(
    tmp_path: Path,
) -> None:
    """Printed as itself, U+202E would make the terminal show the rest of the snippet's line
    backwards (and the caret under another character)."""
    text = 'tool t(a: string)\npolicy p: deny t when params.a != "日本\u202e \u2066# x\u2069"\n'
    code, out = run("check", str(write(tmp_path, "b.car", text)))
    assert code == 1 and "\u202e" not in out and "\u2066" not in out and "\u2069" not in out
    lines = out.splitlines()
    assert lines[0] == (
        "b.car:2:38: error[CL0108]: bidirectional control character U+202E (RIGHT-TO-LEFT"
        " OVERRIDE) in a policy condition"
    )
    source, caret = lines[1], lines[2]
    assert source == '2 | policy p: deny t when params.a != "日本\\u202e \\u2066# x\\u2069"'
    # `日本` takes four cells: the caret covers the escape, in cells
    assert caret.index("^") == source.index("\\u202e") + 2 and caret.count("^") == 6


def test_text_a_diagnostic_quotes_has_its_direction_controls_escaped() -> None:
    from carlang.render import render_text

    diagnostic = found('tool "a\u202eb"\n')[0]
    assert diagnostic.code == "CL0102" and "\u202e" in diagnostic.message  # (the model: as read)
    rendered = render_text([diagnostic])
    assert "\u202e" not in rendered and 'unexpected string "a\\u202eb"' in rendered


@pytest.mark.parametrize(
    ("char", "shown"),
    [
        ("\u00a0", "\\u00a0"),
        ("\u200b", "\\u200b"),
        ("\u2028", "\\u2028"),
        ("\U000e0041", "\\U000e0041"),
    ],
)
def test_a_snippet_shows_invisible_characters_escaped(char: str, shown: str) -> None:
    from carlang.render import render_text

    diagnostics = found(f'tool t(x: int)\nproposal p {{ a = t(x: "{char}") }}\n')
    source, caret = render_text(diagnostics).splitlines()[1:3]
    assert source == f'2 | proposal p {{ a = t(x: "{shown}") }}'
    assert caret == "  | " + " " * (source.index('"') - 4) + "^" * (len(shown) + 2)


def test_a_crlf_line_is_shown_without_its_carriage_return() -> None:
    from carlang.render import render_text

    text = 'tool t(x: int)\r\nproposal p { a = t(x: "no") }\r\n'
    source, caret = render_text(found(text)).splitlines()[1:3]
    assert source == '2 | proposal p { a = t(x: "no") }'


def test_a_direction_control_warning_can_be_accepted_and_an_error_cannot(
    tmp_path: Path,
) -> None:
    warned = (
        'tool t() { description "مرحبا\u200f" }  # carlang: allow CL0108\nproposal p { a = t() }\n'
    )
    code, out = run("check", "--strict", str(write(tmp_path, "w.car", warned)))
    assert code == 0, out
    erred = (
        'tool t(a: string)\npolicy p: deny t when params.a == "\u200f"  # carlang: allow CL0108\n'
    )
    code, out = run("check", str(write(tmp_path, "e.car", erred)))
    assert code == 1 and "error[CL0108]" in out


def test_the_renderer_and_the_parser_agree_on_the_direction_controls() -> None:
    from carlang.parse import DIRECTION_CONTROLS
    from carlang.render import _DIRECTION_ESCAPES

    assert {chr(c) for c in _DIRECTION_ESCAPES} == DIRECTION_CONTROLS


def test_the_editor_shows_direction_controls_from_the_same_diagnostics(tmp_path: Path) -> None:
    pytest.importorskip("lsprotocol", reason="the language server needs lsprotocol")
    from lsprotocol import types as lsp

    from carlang.lsp.features import Features
    from carlang.lsp.project import Project

    text = 'tool t(a: string)\npolicy p: deny t when params.a != "x\u202e"  # y\u2066\n'
    path = write(tmp_path, "l.car", text).resolve()
    project = Project(tmp_path)
    project.set_text(path, text)
    found = [
        (d.code, d.severity, d.range.start.line, d.range.start.character)
        for d in Features(project).diagnostics(path)
    ]
    assert sorted(found) == [
        ("CL0108", lsp.DiagnosticSeverity.Error, 1, 36),
        ("CL0108", lsp.DiagnosticSeverity.Warning, 1, 43),
    ]


def test_a_long_line_with_a_direction_control_is_cut_around_its_escaped_mark(
    tmp_path: Path,
) -> None:
    text = "tool t()  # " + "\u202e" + "y" * 100_000 + " \u2066 z\n"
    code, out = run("check", str(write(tmp_path, "long.car", text)))
    lines = out.splitlines()
    first, second = (lines[i + 1 : i + 3] for i, line in enumerate(lines) if "[CL0108]" in line)
    assert code == 0 and first[0].startswith("1 | tool t()  # \\u202eyyy")
    assert first[0].endswith("yyy...") and first[1].index("^") == first[0].index("\\u202e")
    assert second[0].startswith("1 | ...yyy") and second[0].endswith("yyy \\u2066 z")
    assert second[1].index("^") == second[0].index("\\u2066") and second[1].count("^") == 6
