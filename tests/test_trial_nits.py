"""Small problems a user trial found, each reproduced here as it was met: a message in another
tool's words, a count in the wrong number, a hint that was no near miss, an error said twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from carlang_runtime.engine import EventLog, JsonlSink, Runtime
from typer.testing import CliRunner

from carlang.cli import app
from carlang.compiler import compile_file
from tests.helpers import compile_diagnostics
from tests.runtime.engine.support import proposal, write

runner = CliRunner()


# -- events: one run, one event -------------------------------------------------------------


def test_events_counts_one_run_and_one_event_in_the_singular(tmp_path: Path) -> None:
    """`carlang events run.jsonl` ended with "1 runs", and a listing of one event "1 events"."""
    log = tmp_path / "run.jsonl"
    rt = Runtime(events=EventLog([JsonlSink(log)]))
    rt.execute(proposal(write("w", "k", 1)))
    rt.close()
    runs = runner.invoke(app, ["events", str(log)])
    assert runs.exit_code == 0, runs.output
    assert runs.stdout.endswith("\n1 run\n")
    one = runner.invoke(app, ["events", str(log), "--kind", "run_completed"])
    assert one.exit_code == 0 and one.stdout.endswith("\n1 event\n"), one.output


# -- import: a did-you-mean only for a near miss --------------------------------------------


@pytest.mark.parametrize(
    ("files", "imported"),
    [
        (["eof.car"], "nope.car"),  # alike only in ".car"
        (["lib/eof.car", "lib/x/z.car"], "lib/nope.car"),  # and in the folder
        (["a/b/c/eof.car"], "a/b/c/nope.car"),
    ],
)
def test_an_import_naming_no_file_suggests_nothing_unlike(
    tmp_path: Path, files: list[str], imported: str
) -> None:
    """`import "nope.car"` beside eof.car suggested `did you mean "eof.car"?`."""
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("tool t()\n")
    entry = tmp_path / "main.car"
    entry.write_text(f'import "{imported}"\n')
    [diagnostic] = compile_file(entry, tmp_path).diagnostics.sorted()
    assert diagnostic.code == "CL0209" and diagnostic.help is None


@pytest.mark.parametrize(
    ("imported", "suggested"),
    [("ef.car", "eof.car"), ("lbi/tools.car", "lib/tools.car"), ("lib/tols.car", "lib/tools.car")],
)
def test_an_import_misspelling_a_file_or_its_folder_suggests_it(
    tmp_path: Path, imported: str, suggested: str
) -> None:
    for name in ("eof.car", "lib/tools.car"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("tool t()\n")
    entry = tmp_path / "main.car"
    entry.write_text(f'import "{imported}"\n')
    [diagnostic] = compile_file(entry, tmp_path).diagnostics.sorted()
    assert diagnostic.help == f'did you mean "{suggested}"?'


# -- fmt: which files were left unformatted --------------------------------------------------


def test_fmt_names_the_files_it_left_unformatted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With several files given, one of them broken, fmt ended "nothing rewritten: file was
    left unformatted…": which file?"""
    monkeypatch.chdir(tmp_path)  # (files are named as given: relative to the folder)
    broken = tmp_path / "a.car"
    broken.write_text("tool t(\n")
    untidy = [tmp_path / f"{name}.car" for name in "bcdef"]
    for path in untidy:
        path.write_text("tool   t()\n")

    def last_line(*paths: Path) -> str:
        result = runner.invoke(app, ["fmt", *map(str, paths)])
        assert result.exit_code == 1 and "reformatted" not in result.stdout
        return result.stderr.splitlines()[-1]

    assert last_line(broken, untidy[0]) == (
        "nothing rewritten: b.car needs formatting, and is left as it is until the errors above"
        " are fixed"
    )
    assert last_line(broken, *untidy[:2]) == (
        "nothing rewritten: 2 files need formatting (b.car, c.car), and are left as they are"
        " until the errors above are fixed"
    )
    assert "(b.car, c.car, d.car and 2 more)" in last_line(broken, *untidy)
    assert all(path.read_text() == "tool   t()\n" for path in untidy)


# -- test --threshold: a percentage --------------------------------------------------------


def test_threshold_that_is_no_number_is_refused_in_carlangs_words(tmp_path: Path) -> None:
    """`carlang test --threshold abc` answered in pydantic's words ("Input should be a valid
    number, unable to parse string as a number"); out of range, it named no value."""
    program = tmp_path / "a.car"
    program.write_text("tool t()\n")
    for value in ("abc", "150", "nan", "-5", "100.0000001", "100.00000000000001"):
        result = runner.invoke(app, ["test", str(program), f"--threshold={value}"])
        assert result.exit_code == 2, result.output
        assert f"{value}: give a percentage from 0 to 100" in result.stderr
        assert "Input should be" not in result.output


# -- check: an invalid initial value, said once; values as carlang writes them ---------------


def _findings(tmp_path: Path, text: str) -> list[tuple[str, str]]:
    """The errors `check` reports in a program of `text`: code and message."""
    path = tmp_path / "p.car"
    path.write_text(text)
    found = compile_file(path, tmp_path).diagnostics.sorted()
    return [(d.code, d.message) for d in found if d.severity == "error"]


_TIER = 'tool t()\ntool u()\nstate {\n  tier: "a" | "b" = "c"\n}\nproposal p {\n  x = t()\n%s\n}\n'


def test_an_invalid_initial_value_is_one_error_not_also_the_assertions_on_it(
    tmp_path: Path,
) -> None:
    """`assert tier == "z"` on a key whose declared initial value does not fit its type was a
    second error, about that value, worded in Rust (`String("c"), expected String("z")`)."""
    for check in ('  y = assert tier == "z" after x', '  y = u() { requires tier == "z" }'):
        found = _findings(tmp_path, _TIER % check)
        assert found == [
            (
                "CL0205",
                'initial value of `tier` does not fit its type: expected one of "a", "b", got "c"',
            )
        ]


def test_the_state_flow_still_judges_a_value_the_plan_writes(tmp_path: Path) -> None:
    """Not an initial value's follow-on: the plan wrote the value the assertion fails on."""
    plan = '  w = u() { effects { tier = "a" } }\n  y = assert tier == "b" after w'
    found = _findings(tmp_path, _TIER % plan)
    assert found[0][0] == "CL0205"
    assert found[1:] == [("CL0404", """assertion will fail: state['tier'] = "a", expected "b\"""")]


def test_the_state_flow_shows_values_as_carlang_writes_them(tmp_path: Path) -> None:
    program = (
        'tool t()\nstate {\n  count: int = 1\n  tags: list[string] = ["x"]\n}\n'
        "proposal p {\n  a = assert count == 2\n  b = t() { requires count > 5 }\n"
        '  c = assert tags == ["y"]\n}\n'
    )
    assert _findings(tmp_path, program) == [
        ("CL0404", "assertion will fail: state['count'] = 1, expected 2"),
        ("CL0401", "precondition will fail: 'count' is 1, need gt 5"),
        ("CL0404", """assertion will fail: state['tags'] = ["x"], expected ["y"]"""),
    ]


# -- the bad-input sweep: messages that named the wrong thing -------------------------------


def test_fmt_of_standard_input_beside_files_says_it_goes_alone(tmp_path: Path) -> None:
    """`carlang fmt - a.car` said "carlang reads programs from files, not standard input",
    though `carlang fmt -` does read it."""
    program = tmp_path / "a.car"
    program.write_text("tool   t()\n")
    result = runner.invoke(app, ["fmt", "-", str(program)], input="tool  t()\n")
    assert result.exit_code == 2, result.output
    assert "`carlang fmt -` formats standard input alone" in result.stderr
    assert program.read_text() == "tool   t()\n"


def test_an_empty_path_is_said_to_be_the_current_folder(tmp_path: Path) -> None:
    """`carlang verify p.json --state ''` said ".: it is a directory, not a file", naming a
    path the user never typed: an empty value is `.` by the time carlang sees it."""
    proposal_file = tmp_path / "p.json"
    proposal_file.write_text('{"id": "p", "actions": []}')
    result = runner.invoke(app, ["verify", str(proposal_file), "--state", ""])
    assert result.exit_code == 2, result.output
    assert "it is a directory, not a file (`.`: the current folder, which an empty path names" in (
        result.stderr
    )


def test_fmt_rewrites_no_read_only_file(tmp_path: Path) -> None:
    """`carlang fmt` replaced a 0444 file (a new file takes its name, which the folder's write
    permission allows, and root may write anyway); now none of the files is rewritten."""
    locked, open_one = tmp_path / "locked.car", tmp_path / "open.car"
    for path in (locked, open_one):
        path.write_text("tool   t()\n")
    locked.chmod(0o444)
    result = runner.invoke(app, ["fmt", str(locked), str(open_one)])
    assert result.exit_code == 2, result.output
    assert "locked.car needs formatting, and it is read-only; make it writable first" in (
        result.stderr
    )
    assert locked.read_text() == open_one.read_text() == "tool   t()\n"
    assert runner.invoke(app, ["fmt", "--check", str(locked)]).exit_code == 1


@pytest.mark.parametrize(
    ("text", "help"),
    [
        (
            "tool refund(amount: float)\npolicy p: deny refund if params.amount > 5\n",
            "a policy's condition follows `when`: `deny TOOLS when CONDITION`",
        ),
        (
            'tool t(c: string)\npolicy p: deny t when params.c =~ "US.*"\n',
            'CEL matches a regular expression with `.matches()`: `x.matches("US.*")`',
        ),
        (
            "tool t(n: int)\npolicy big: deny t when params.n > 5\n"
            'test "x" {\n  action t(n: 6)\n  expect deny by policy big\n}\n',
            "`by` takes the policy's name alone: `by big`",
        ),
        (
            "tool t(n: int) {\n  reversible\n}\n",
            "a tool's reversibility is an item: `reversibility reversible`",
        ),
        (
            "tool t(n: int)\npolicy p: deny t when params.n > 5\n"
            'test "x" {\n  action t(n: 6), expect deny\n}\n',
            "a test's items go one a line, without `,`",
        ),
    ],
)
def test_a_mistake_from_another_language_gets_a_hint(text: str, help: str) -> None:
    """A trial's mistakes: `if` for `when`, Perl's `=~`, `by policy NAME`, `reversible` alone,
    a comma between a test's items; each was an error without a way out."""
    [first, *_] = compile_diagnostics(text).diagnostics.sorted()
    assert first.help == help, first
