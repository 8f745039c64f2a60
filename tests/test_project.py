"""The project root (carlang.toml / .git / the file's directory) and accepted warnings."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carlang.cli import app
from carlang.diagnostics import Diagnostic
from carlang.project import find_project
from tests.conftest import ROOT

runner = CliRunner()

TOOLS = "tool pay(amount: int)\n"
APPROVAL = (
    'import "tools.car"\n'
    "policy big: require_approval pay when params.amount > 10\n"
    "proposal p {\n"
    "  a = pay(amount: 50){PRAGMA}\n"
    "}\n"
)


def program(tmp_path: Path, pragma: str = "") -> Path:
    (tmp_path / "bot").mkdir()
    (tmp_path / "bot" / "tools.car").write_text(TOOLS)
    main = tmp_path / "bot" / "main.car"
    main.write_text(APPROVAL.replace("{PRAGMA}", pragma))
    return main


def check(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["check", *args])
    return result.exit_code, result.output


def test_the_examples_check_clean_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # from elsewhere, sibling imports used to "leave the root" (the working directory)
    copy = tmp_path / "project"
    shutil.copytree(ROOT / "examples", copy / "examples")
    (copy / ".git").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out = check(os.path.relpath(copy / "examples", elsewhere))
    assert code == 0, out
    assert "0 errors" in out


def test_one_file_of_a_copy_checked_from_its_top_keeps_its_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No carlang.toml or .git above: the working directory is the root when it holds the
    file, so the README's `carlang run examples/release/release.car` works in a copy of the
    examples, and diagnostics name the file as it was typed."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    code, out = check("examples/release/release.car")
    assert code == 0, out
    (tmp_path / "examples" / "release" / "bad.car").write_text(
        'import "../shared/ops_tools.car"\nproposal p { a = nope() }\n'
    )
    code, out = check("examples/release/bad.car")
    assert code == 1 and out.startswith("examples/release/bad.car:2:18: error["), out
    monkeypatch.chdir(tmp_path / "examples" / "release")  # (the import leaves this root)
    code, out = check("bad.car")
    assert "CL0211" in out and "put a carlang.toml at the project's top" in out
    found = find_project(tmp_path / "examples" / "release" / "bad.car", working=Path("/nowhere"))
    assert found.root == (tmp_path / "examples" / "release").resolve()


def test_a_root_given_inside_a_project_is_named_with_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--root policies` inside a project whose carlang.toml is above it: an import of
    `../shared` was told to "put a carlang.toml at the project's top, or give --root", both
    done already. The help names the project's top, as --root takes it."""
    (tmp_path / "carlang.toml").write_text("")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "tools.car").write_text("tool fetch(url: string)\n")
    (tmp_path / "policies").mkdir()
    main = tmp_path / "policies" / "main.car"
    main.write_text('import "../shared/tools.car"\nproposal p { a = fetch(url: "x") }\n')
    monkeypatch.chdir(tmp_path)
    code, out = check("--root", "policies", "policies/main.car")
    assert code == 1 and "CL0211" in out
    assert (
        "help: the project root is policies, a folder inside the project at . (its"
        " carlang.toml), which holds the imported file: give --root ., or leave --root out"
    ) in out, out
    assert check("policies/main.car")[0] == 0


def test_an_absolute_import_is_outside_the_root_not_climbing_out(tmp_path: Path) -> None:
    """A trial: `import "/etc/passwd"` was labelled "this path climbs out of the project
    root"."""
    (tmp_path / "carlang.toml").write_text("")
    (tmp_path / "abs.car").write_text('import "/etc/passwd"\n')
    code, out = check(str(tmp_path / "abs.car"))
    assert code == 1 and "^^^^^^^^^^^^^ this path is outside the project root" in out, out


def test_files_outside_any_project_share_the_directory_they_have_in_common(
    tmp_path: Path,
) -> None:
    # a copy of the examples without .git: each folder's imports of its siblings, and of
    # ../shared, used to leave the first file's directory, taken for the root
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    code, out = check(str(tmp_path / "examples"))
    assert code == 0, out
    assert "0 errors, 0 warnings in 12 files" in out
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    (tmp_path / "b" / "lib.car").write_text('tool t(x: string) {\n  description "d"\n}\n')
    (tmp_path / "b" / "uses.car").write_text(
        'import "lib.car"\ntest "t" {\n  action t(x: "1")\n  expect allow\n}\n'
    )
    (tmp_path / "a" / "one.car").write_text('tool u(x: string) {\n  description "d"\n}\n')
    code, out = check(str(tmp_path / "a"), str(tmp_path / "b"))
    assert "CL0211" not in out and "0 errors" in out, out
    assert "a/one.car:1:6" in out  # named from the common root, like every file of the run


def test_the_root_is_the_nearest_carlang_toml_or_git_else_the_files_directory(
    tmp_path: Path,
) -> None:
    main = program(tmp_path)
    assert find_project(main).root == main.parent
    (tmp_path / ".git").mkdir()
    assert find_project(main).root == tmp_path
    (tmp_path / "bot" / "carlang.toml").write_text('root = ".."\nstrict = true\n')
    project = find_project(main)
    assert project.root == tmp_path and project.strict
    assert project.config == tmp_path / "bot" / "carlang.toml"


def test_a_bad_carlang_toml_is_a_clear_error(tmp_path: Path) -> None:
    main = program(tmp_path)
    (tmp_path / "bot" / "carlang.toml").write_text("stric = true\n")
    code, out = check(str(main))
    assert code == 2
    # at its line, with the setting it misspells, as the other settings' errors are
    assert "carlang.toml:1:1: error: unknown setting `stric` (did you mean `strict`?)" in out
    (tmp_path / "bot" / "carlang.toml").write_text('# the tools\nroot = "."\n\n[tools]\n')
    code, out = check(str(main))
    assert code == 2
    assert "carlang.toml:4:2: error: unknown setting `tools` (settings: accept, capability" in out
    # TOML that does not parse: at its line and column too (it was `(at line 2, column 8)`)
    (tmp_path / "bot" / "carlang.toml").write_text("strict = true\nroot = \n")
    code, out = check(str(main))
    assert code == 2
    assert "carlang.toml:2:8: error: not valid TOML: invalid value" in out, out


def test_a_pragma_accepts_the_warning_on_its_line_and_strict_reports_stale_ones(
    tmp_path: Path,
) -> None:
    main = program(tmp_path)
    code, out = check(str(main), "--strict")
    assert code == 1 and "warning[CL0521]" in out
    main.write_text(APPROVAL.replace("{PRAGMA}", "  # carlang: allow CL0521"))
    code, out = check(str(main), "--strict")
    assert code == 0, out
    main.write_text(
        APPROVAL.replace("{PRAGMA}", "").replace("50", "5") + "# carlang: allow CL0521\n"
    )
    code, out = check(str(main), "--strict")
    assert code == 1
    assert "main.car:6:18: warning[CL0525]: `# carlang: allow CL0521` accepts nothing" in out
    assert check(str(main))[0] == 0  # without --strict a stale pragma does not fail


_SPLIT_CALL = (
    "tool pay(amount: int, to: string)\n"
    "policy big: require_approval pay when params.amount > 10\n"
    "proposal q {{\n"
    "  a = pay(amount: 50,{first}\n"
    '          to: "x"){last}\n'
    '  b = pay(amount: 70, to: "y")\n'
    "}}\n"
)


@pytest.mark.parametrize(
    ("first", "last"),
    [("", "  # carlang: allow CL0521"), ("  # carlang: allow CL0521", "")],
    ids=["on the last line", "on the first line"],
)
def test_a_pragma_on_any_line_of_a_statement_accepts_its_warnings(
    tmp_path: Path, first: str, last: str
) -> None:
    """The warning of an action written over two lines is reported at its first line; a
    pragma on either line accepts it (only the statement's own: `b` still warns), so `check`
    says the same before and after `carlang fmt` (which joins the call onto one line, or
    with the pragma inside it writes it one argument a line)."""
    main = tmp_path / "main.car"
    main.write_text(_SPLIT_CALL.format(first=first, last=last))
    code, out = check(str(main), "--strict")
    assert "main.car:6:3: warning[CL0521]" in out
    assert "4:3" not in out and "CL0525" not in out, out
    assert runner.invoke(app, ["fmt", str(main)]).exit_code == 0
    formatted = main.read_text()
    # joined onto one line, or (the pragma inside the call) one argument a line
    assert ('a = pay(amount: 50, to: "x")  # carlang: allow CL0521' in formatted) == bool(last)
    line = formatted.splitlines().index('  b = pay(amount: 70, to: "y")') + 1
    after_code, after = check(str(main), "--strict")
    assert (after_code, after) == (code, out.replace("6", str(line))), after


def test_a_pragma_does_not_reach_past_its_statement(tmp_path: Path) -> None:
    """A block's `{` ends its head: a pragma inside the block, or after its `}`, accepts
    nothing of the head's lines; two pragmas gathered on one line both count."""
    main = tmp_path / "main.car"
    main.write_text(
        "tool pay(amount: int)\n"
        "policy big: require_approval pay when params.amount > 10\n"
        "proposal q {\n"
        "  a = pay(\n"
        "    amount: 50,\n"
        "  ) {\n"
        "    retry 2  # carlang: allow CL0521\n"
        "  }  # carlang: allow CL0521\n"
        "}\n"
        "tool spare(\n  x: int,\n)  # carlang: allow CL0521  # carlang: allow CL0207\n"
    )
    code, out = check(str(main), "--strict")
    assert "main.car:4:3: warning[CL0521]" in out
    assert "main.car:7:" in out and "main.car:8:" in out  # each accepts nothing
    assert "main.car:12:21: warning[CL0525]: `# carlang: allow CL0521`" in out
    assert "CL0207" not in out.replace("allow CL0207", "")  # `spare`'s is accepted


def _allowed(tmp_path: Path, text: str) -> tuple[list[str], list[str]]:
    """`check`'s findings for `text` once its pragmas are applied, as `line:column code
    message`: (those always reported, those --strict adds)."""
    from carlang.compiler import compile_file
    from carlang.project import Project, apply_allowances

    result = compile_file(tmp_path / "t.car", tmp_path, text=text)
    kept, stale = apply_allowances(
        result.diagnostics.items, [f.source for f in result.loaded.files], Project(tmp_path)
    )

    def shown(found: list[Diagnostic]) -> list[str]:
        return [f"{d.location()[1]}:{d.location()[2]} {d.code} {d.message}" for d in found]

    return shown(kept), shown(stale)


def test_a_pragma_code_may_be_written_in_lowercase(tmp_path: Path) -> None:
    kept, stale = _allowed(tmp_path, "tool t()  # carlang: allow cl0207\n")
    assert (kept, stale) == ([], [])


@pytest.mark.parametrize(
    ("pragma", "column", "message"),
    [
        ("# carlang: allow CL207", 11, "pragma not read: `CL207` after `allow` is not a code"),
        ("# carlang: alow CL0207", 11, "`# carlang:` is followed by `alow`, not `allow`"),
        ("# carlang:", 11, "`# carlang:` is followed by nothing, not `allow`"),
        ("# Carlang: allow CL0207", 11, "`# Carlang:` is not written `# carlang:`"),
        ("# carlang: allow CL02071", 11, "`CL02071` after `allow` is not a code"),
        ("# carlang: allow CL0999", 28, "`CL0999` is no carlang code"),
        ("# carlang: allow CL0201", 28, "`CL0201` is an error: a pragma accepts warnings"),
        ("# carlang: allow CL0207, CL0999", 36, "`CL0999` is no carlang code"),
    ],
)
def test_a_pragma_that_is_not_read_or_names_no_warning_is_reported_where_it_is(
    tmp_path: Path, pragma: str, column: int, message: str
) -> None:
    """Not silently ignored, and not only with --strict (the warning it was meant to accept
    is reported then): a CL0107 at the pragma (or at its code) saying what is wrong; its
    codes that are no warnings' are not also called stale (CL0525)."""
    kept, stale = _allowed(tmp_path, f"tool t()  {pragma}\n")
    [problem] = [k for k in kept if " CL0107 " in k]
    assert problem.startswith(f"1:{column} CL0107 ") and message in problem, problem
    assert ("1:6 CL0207 tool `t` is never used" in kept) == ("CL0207," not in pragma)
    assert stale == []


def test_the_help_of_a_short_code_in_a_pragma_writes_it_in_full(tmp_path: Path) -> None:
    main = tmp_path / "main.car"
    main.write_text('tool t()  # carlang: allow CL207\ntool u() { description "# carlang: x" }\n')
    code, out = check(str(main))
    assert code == 0, out  # a warning, with or without --strict
    assert "main.car:1:11: warning[CL0107]" in out and "help: write the code `CL0207`" in out
    assert out.count("CL0107") == 1  # not in the string
    assert check(str(main), "--strict")[0] == 1


def test_carlang_toml_accepts_warnings_by_code_and_glob_and_sets_strict(tmp_path: Path) -> None:
    main = program(tmp_path)
    config = tmp_path / "bot" / "carlang.toml"
    config.write_text('strict = true\naccept = ["CL0521:main.car"]\n')
    code, out = check(str(main))
    assert code == 0, out
    config.write_text('strict = true\naccept = ["CL0521:other/*.car"]\n')
    code, out = check(str(main))  # strict from the file: the warning fails the check
    assert code == 1 and "warning[CL0521]" in out
    assert "carlang.toml:2:11: warning[CL0525]: accepted warning `CL0521:other/*.car`" in out


def test_an_accept_entry_is_judged_only_when_the_whole_project_is_checked(
    tmp_path: Path,
) -> None:
    """A pre-commit hook checks the changed files: the warning an entry accepts may be in
    a file not checked, and `strict` would fail the commit for an entry that is in use."""
    main = program(tmp_path)
    tools = tmp_path / "bot" / "tools.car"
    config = tmp_path / "bot" / "carlang.toml"
    config.write_text('strict = true\naccept = ["CL0521:main.car"]\n')
    code, out = check(str(tools))  # the entry's warning is in main.car, not checked
    assert code == 0 and "CL0207" not in out, out  # `pay` is used there too
    assert check(str(tmp_path / "bot"))[0] == 0  # in use
    main.write_text(APPROVAL.replace("{PRAGMA}", "").replace("50", "5"))  # no CL0521 now
    assert check(str(tools))[0] == 0
    code, out = check(str(tmp_path / "bot"))
    assert code == 1 and "warning[CL0525]: accepted warning `CL0521:main.car`" in out


CAPABLE = (
    "tool read_note(path: string)\n"
    "tool delete_note(path: string)\n"
    "capability reader { tools allow read_note }\n"
)


def exported(program: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["export", "tools", str(program), "--format", "mcp", *args])
    return result.exit_code, result.output


def test_carlang_toml_names_the_default_capability(tmp_path: Path) -> None:
    program = tmp_path / "p.car"
    program.write_text(CAPABLE)
    code, out = exported(program)
    assert code == 0 and "delete_note" in out  # no project default: every tool
    (tmp_path / "carlang.toml").write_text('capability = "reader"\n')
    code, out = exported(program)
    assert code == 0 and "read_note" in out and "delete_note" not in out
    # --capability still wins over the project's default
    (tmp_path / "carlang.toml").write_text('capability = "nothing_like_it"\n')
    code, out = exported(program, "--capability", "reader")
    assert code == 0 and "delete_note" not in out


def test_an_undeclared_default_capability_names_its_line(tmp_path: Path) -> None:
    program = tmp_path / "p.car"
    program.write_text(CAPABLE)
    (tmp_path / "carlang.toml").write_text('# the project\nstrict = false\ncapability = "readr"\n')
    code, out = exported(program)
    assert code == 2
    # at its value, as `check` reports it, saying what to do (a user trial: export, verify
    # and the agent exited 2 on a setting `check` of some files does not judge)
    assert f"{tmp_path / 'carlang.toml'}:3:14: error: capability `readr` is not declared by" in out
    assert (
        "(did you mean `reader`?): name one it declares in carlang.toml, or give --capability NAME"
    ) in out
    bare = tmp_path / "bare.car"
    bare.write_text("tool read_note(path: string)\n")
    code, out = exported(bare)
    assert code == 2 and "is not declared by" in out and "(it declares none): declare it in" in out
    assert "or remove this setting" in out and "--capability" not in out
    (tmp_path / "carlang.toml").write_text("capability = 3\n")
    code, out = exported(program)
    assert code == 2 and "`capability` must be a string" in out


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("strict = 1", "carlang.toml:2:1: error: `strict` must be true or false"),
        ('accept = "CL0521"', 'carlang.toml:2:1: error: `accept` must be a list, like ["CL0521"]'),
        (
            'accept = ["CL9999"]',
            "carlang.toml:2:11: error: `accept` names CL9999, which is no carlang code",
        ),
        ('accept = ["CL0502"]', "`accept` names CL0502, an error: errors are never accepted"),
        ('accept = ["CL0521", 5]', "carlang.toml:2:1: error: `accept` entries are codes"),
    ],
)
def test_a_setting_that_cannot_be_used_is_named_at_its_line(
    tmp_path: Path, setting: str, message: str
) -> None:
    main = program(tmp_path)
    (tmp_path / "bot" / "carlang.toml").write_text(f"# the bot's project\n{setting}\n")
    code, out = check(str(main))
    assert code == 2 and message in out, out


def test_a_folders_walk_passes_over_hidden_folders_and_other_tools_folders(
    tmp_path: Path,
) -> None:
    """A trial: an IPFS CAR archive under node_modules (same suffix, binary) stopped every
    `carlang check .` and `carlang test .` (CL0105: not UTF-8); .git and .venv were walked."""
    (tmp_path / "policies.car").write_text(
        'tool fetch(url: string)\npolicy p: deny fetch when params.url == "x"\n'
        'test "t" {\n  action fetch(url: "x")\n  expect deny by p\n}\n'
    )
    for folder in ("node_modules/@ipld/car/test", ".venv/lib", ".git/hooks", "__pycache__"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "fixture.car").write_bytes(b"\x0a\xa1\x67roots\x81\xd8\x2a\xff")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "more.car").write_text("tool other()\n")
    for command in (["check"], ["test"], ["fmt", "--check"]):
        done = runner.invoke(app, [*command, str(tmp_path)])
        assert done.exit_code == 0, (command, done.output)
        assert "fixture.car" not in done.output
    # a hidden folder given by name is still the user's to check
    hidden = runner.invoke(app, ["check", str(tmp_path / ".venv")])
    assert hidden.exit_code == 1 and "not UTF-8" in hidden.output, hidden.output


def test_a_finding_a_test_expects_of_its_proposal_is_a_note_not_an_error(tmp_path: Path) -> None:
    """A trial: a proposal written to be refused, with `expect invalid` (or `expect codes
    CL0520`), made every `carlang check` fail, and no pragma or `accept` may accept an error:
    negative tests could never pass CI. The finding a test expects is now a note saying so;
    another error of that proposal is still an error."""
    program = tmp_path / "neg.car"
    program.write_text(
        "tool fetch(url: string)\n"
        'policy https_only: deny fetch when !params.url.startsWith("https://")\n'
        'proposal bad {\n  f = fetch(url: "http://x")\n}\n'
        'proposal worse {\n  f = fetch(url: "http://x")\n  g = nosuch()\n}\n'
        'proposal kept {\n  f = fetch(url: "http://y")\n}\n'
        'test "bad is invalid" {\n  proposal bad\n  expect invalid\n}\n'
        'test "worse is denied" {\n  proposal worse\n  expect codes CL0520\n}\n'
    )
    done = runner.invoke(app, ["check", str(program), "--format", "json"])
    assert done.exit_code == 1, done.output
    found = [
        (d["code"], d["severity"], d["labels"][0]["line"])
        for d in json.loads(done.stdout)["diagnostics"]
    ]
    assert sorted(found) == [
        ("CL0306", "error", 8),  # not what the test expects: still an error
        ("CL0520", "error", 11),  # no test expects `kept` refused
        ("CL0520", "info", 4),
        ("CL0520", "info", 7),
    ]
    program.write_text(program.read_text().replace("  g = nosuch()\n", "").replace("kept", "k"))
    program.write_text(
        program.read_text().replace('proposal k {\n  f = fetch(url: "http://y")\n}\n', "")
    )
    assert runner.invoke(app, ["check", str(program)]).exit_code == 0


def test_a_fixture_in_another_file_than_its_test_and_a_check_name_are_expected_too(
    tmp_path: Path,
) -> None:
    """Review: with the proposal in lib.car and its test in tests.car (importing it),
    `check .` kept lib.car's own copy of the finding, an error; and `expect codes
    plan_policies` (a check's name, which `test` takes) did not count."""
    (tmp_path / "carlang.toml").write_text("")
    (tmp_path / "lib.car").write_text(
        "tool fetch(url: string)\n"
        'policy https_only: deny fetch when !params.url.startsWith("https://")\n'
        'proposal bad {\n  f = fetch(url: "http://x")\n}\n'
        'proposal worse {\n  f = fetch(url: "http://y")\n}\n'
    )
    (tmp_path / "tests.car").write_text(
        'import "lib.car"\n'
        'test "bad is invalid" {\n  proposal bad\n  expect invalid\n}\n'
        'test "worse is denied" {\n  proposal worse\n  expect codes plan_policies\n}\n'
    )
    done = runner.invoke(app, ["check", str(tmp_path), "--format", "json"])
    assert done.exit_code == 0, done.output
    found = json.loads(done.stdout)["diagnostics"]
    assert [(d["code"], d["severity"]) for d in found] == [("CL0520", "info")] * 2


def test_every_problem_of_a_carlang_toml_is_reported_at_once(tmp_path: Path) -> None:
    """A trial fixed `capabilty`, ran again, met `strict = "yes"`, ran again, met
    `accept = ["CL05211"]`: each problem is reported at its line, in the file's order."""
    from typer.testing import CliRunner

    from carlang.cli import app

    (tmp_path / "carlang.toml").write_text(
        'capabilty = "bot"\nstrict = "yes"\naccept = ["CL05211"]\n'
    )
    (tmp_path / "a.car").write_text("tool t()\n")
    result = CliRunner().invoke(app, ["check", str(tmp_path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert [line.split(": error: ")[0].rsplit(":", 2)[1:] for line in lines] == [
        ["1", "1"],
        ["2", "1"],
        ["3", "11"],
    ]
    assert "unknown setting `capabilty`" in lines[0] and "`strict` must be" in lines[1]


def test_test_fails_on_a_project_capability_no_program_declares(tmp_path: Path) -> None:
    """`capability = "nobot"`: `check` exits 1 with CL0202, `test` exited 0 without a word."""
    from typer.testing import CliRunner

    from carlang.cli import app

    (tmp_path / "carlang.toml").write_text('capability = "nobot"\n')
    (tmp_path / "a.car").write_text(
        "tool t(n: int)\ncapability bot { tools allow t }\n"
        'test "x" {\n  action t(n: 1)\n  expect allow\n}\n'
    )
    result = CliRunner().invoke(app, ["test", str(tmp_path)])
    assert result.exit_code == 1
    assert "error[CL0202]: capability `nobot` is not declared" in result.stderr
    assert result.stdout.strip().endswith("1 passed, 0 failed; 1 error in carlang.toml")
    report = CliRunner().invoke(app, ["test", str(tmp_path), "--format", "json"])
    assert [e["code"] for e in json.loads(report.stdout)["errors"]] == ["CL0202"]


def test_a_root_no_path_can_name_is_a_problem_of_the_file(tmp_path: Path) -> None:
    """`root = "a\\u0000b"` made resolving the root raise, an internal error."""
    from typer.testing import CliRunner

    from carlang.cli import app

    (tmp_path / "carlang.toml").write_text('root = "a\\u0000b"\nstrict = 1\n')
    (tmp_path / "a.car").write_text("tool t()\n")
    result = CliRunner().invoke(app, ["check", str(tmp_path), "--format", "json"])
    assert result.exit_code == 2
    failure = json.loads(result.stdout)["error"]
    assert "root `a\\x00b` is not a directory" in failure and "`strict` must be" in failure
