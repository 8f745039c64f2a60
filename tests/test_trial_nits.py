"""Small problems a user trial found, each reproduced here as it was met: a message in another
tool's words, a count in the wrong number, a hint that was no near miss, an error said twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from carlang_runtime.engine import EventLog, JsonlSink, Runtime
from typer.testing import CliRunner

from carlang.cli import app
from carlang.compiler import compile_file
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
    for value in ("abc", "150", "nan", "-5"):
        result = runner.invoke(app, ["test", str(program), f"--threshold={value}"])
        assert result.exit_code == 2, result.output
        assert f"{value}: give a percentage from 0 to 100" in result.stderr
        assert "Input should be" not in result.output
