"""The language server's project model and features in process: what an edit re-checks, unused
declarations across importers, positions in UTF-16, completion in a broken file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("lsprotocol", reason="the language server needs lsprotocol (carlang[lsp])")

from lsprotocol import types as lsp  # noqa: E402

from carlang.lsp.features import Features  # noqa: E402
from carlang.lsp.guard import internal_error_text, is_request  # noqa: E402
from carlang.lsp.positions import to_offset, to_position  # noqa: E402
from carlang.lsp.project import Project  # noqa: E402
from carlang.lsp.rename import RenameRefused  # noqa: E402
from carlang.source import Source  # noqa: E402

LIB = """\
# shared tools
tool fetch(url: string, mode: "fast" | "slow" = "fast")
tool unused_here(x: int)
"""
MAIN = """\
import "lib.car"
proposal p {
  get = fetch(url: "https://x")
}
"""


def _project(tmp_path: Path) -> tuple[Project, Path, Path]:
    (tmp_path / "lib.car").write_text(LIB)
    (tmp_path / "main.car").write_text(MAIN)
    project = Project(tmp_path)
    assert project.scan() == 2
    lib, main = (tmp_path / "lib.car").resolve(), (tmp_path / "main.car").resolve()
    project.set_text(main, MAIN)
    project.set_text(lib, LIB)
    return project, lib, main


def test_an_edit_rechecks_the_file_and_what_imports_it(tmp_path: Path) -> None:
    project, lib, main = _project(tmp_path)
    project.diagnostics(main)
    parsed_main = project.cache.get(main)
    # a comment changes nothing lib declares: main is not checked again, nor re-parsed
    assert project.set_text(lib, LIB.replace("# shared tools", "# the shared tools")) == [lib]
    assert project.cache.get(main) is parsed_main
    # a declaration changes: main is diagnosed again, from its kept parse
    assert project.set_text(lib, LIB.replace("url: string", "uri: string")) == [lib, main]
    codes = [d.code for d in project.diagnostics(main)]
    assert "CL0203" in codes or "CL0307" in codes
    assert project.cache.get(main) is parsed_main
    assert project.dependants(lib) == {main} and project.program_files(main) == {main, lib}


def test_unused_declarations_count_the_files_that_import_them(tmp_path: Path) -> None:
    project, lib, main = _project(tmp_path)
    unused = [d.message for d in project.diagnostics(lib) if d.code == "CL0207"]
    assert unused == ["tool `unused_here` is never used"]  # `fetch` is used by main.car
    project.diagnostics(main)
    assert project.stale_unused([main]) == []
    # main starts using `unused_here`: lib's warning is stale, and goes when lib is re-diagnosed
    uses = MAIN.replace("}", "  more = unused_here(x: 1)\n}")
    assert project.set_text(main, uses) == [main]
    project.diagnostics(main)
    assert project.stale_unused([main]) == [lib]
    assert [d for d in project.diagnostics(lib) if d.code == "CL0207"] == []
    assert project.stale_unused([main]) == []


def test_positions_count_utf16_units() -> None:
    source = Source("x.car", 'a = "🚀é" b\nnext\n')
    offset = source.text.index("b")
    position = to_position(source, offset)
    assert position == lsp.Position(line=0, character=offset + 1)  # the rocket is two units
    assert to_offset(source, position) == offset
    assert to_position(source, offset, "utf-32") == lsp.Position(line=0, character=offset)
    assert to_offset(source, lsp.Position(line=1, character=99)) == len('a = "🚀é" b\nnext')


def test_a_lone_surrogate_is_one_utf16_unit(tmp_path: Path) -> None:
    # JSON's "\\udc00" reaches the server as a lone surrogate: the editor counts it as one
    # UTF-16 unit (it used to crash hover and completion on its line)
    text = 'tool fetch(url: string) {\n  description "a \udc00 b"\n}\n'
    source = Source("x.car", text)
    offset = text.index('b"')
    assert to_position(source, offset) == lsp.Position(line=1, character=19)
    assert to_offset(source, lsp.Position(line=1, character=19)) == offset
    assert to_position(source, offset, "utf-8") == lsp.Position(line=1, character=21)
    (tmp_path / "x.car").write_text("")
    project = Project(tmp_path)
    path = (tmp_path / "x.car").resolve()
    project.set_text(path, text)
    features = Features(project)
    assert features.hover(path, lsp.Position(line=1, character=18)) is None
    assert features.completion(path, lsp.Position(line=1, character=18)) is not None


def test_completion_in_a_file_that_does_not_parse(tmp_path: Path) -> None:
    project, _lib, main = _project(tmp_path)
    broken = MAIN.replace("}", "  next = \n}")
    project.set_text(main, broken)
    features = Features(project)
    assert [d.code for d in features.diagnostics(main)] == ["CL0102"]
    items = features.completion(main, lsp.Position(line=3, character=9)).items
    fetch = next(i for i in items if i.label == "fetch")
    assert fetch.insert_text == "fetch(url: ${1})"  # the required parameters, as a snippet
    assert fetch.detail == 'tool fetch(url: string, mode: "fast" | "slow")'


def test_add_reads_for_a_required_key_another_action_writes(tmp_path: Path) -> None:
    text = """\
tool fetch(url: string)
state { ready: bool = false }
proposal p {
  warm = set ready = true
  get = fetch(url: "https://x") {
    requires ready == true
  }
}
"""
    path = (tmp_path / "reads.car").resolve()
    project = Project(tmp_path)
    project.set_text(path, text)
    actions = Features(project).code_actions(
        path,
        lsp.Range(start=lsp.Position(line=5, character=0), end=lsp.Position(line=5, character=0)),
    )
    (add,) = [a for a in actions if a.title.startswith("Add `reads ready`")]
    assert add.edit is not None and add.edit.changes is not None
    (edit,) = add.edit.changes[path.as_uri()]
    lines = text.split("\n")
    line, column = edit.range.start.line, edit.range.start.character
    lines[line] = lines[line][:column] + edit.new_text + lines[line][column:]
    fixed = "\n".join(lines)
    assert "    requires ready == true\n    reads ready\n  }" in fixed
    project.set_text(path, fixed)
    assert not [a for a in Features(project).code_actions(path, edit.range) if "reads" in a.title]


def test_rename_refuses_a_name_of_the_wrong_shape(tmp_path: Path) -> None:
    project, _lib, main = _project(tmp_path)
    features = Features(project)
    at_action = lsp.Position(line=2, character=3)  # `get`
    for bad in ("get.it", "ship two", "1abc", "déploy"):
        with pytest.raises(RenameRefused, match=f"`{re.escape(bad)}` is not a valid action name"):
            features.rename(main, at_action, bad)
    with pytest.raises(RenameRefused, match="an empty name is not a valid") as refused:
        features.rename(main, at_action, "")
    assert refused.value.code == lsp.ErrorCodes.InvalidParams
    edit = features.rename(main, at_action, "fetch_it")
    assert edit is not None and edit.changes is not None
    assert [e.new_text for e in edit.changes[main.as_uri()]] == ["fetch_it"]


CLASHES = """\
tool deploy(env: string)
tool notify(text: string)
proposal p {
  get = deploy(env: "x")
  tell = notify(text: "y") after get
}
"""


def test_rename_refuses_a_name_taken_or_read_as_a_keyword(tmp_path: Path) -> None:
    path = (tmp_path / "c.car").resolve()
    path.write_text(CLASHES)
    project = Project(tmp_path)
    project.set_text(path, CLASHES)
    features = Features(project)
    at_tell, at_deploy = lsp.Position(line=4, character=3), lsp.Position(line=0, character=6)
    with pytest.raises(RenameRefused, match="`get` is already an action in this proposal"):
        features.rename(path, at_tell, "get")
    with pytest.raises(RenameRefused, match="`notify` is already a tool, declared in `c.car`"):
        features.rename(path, at_deploy, "notify")
    with pytest.raises(RenameRefused, match="`context` is a keyword where") as refused:
        features.rename(path, at_tell, "context")  # `context` starts a proposal's item
    assert refused.value.code == lsp.LSPErrorCodes.RequestFailed
    # a word that is a keyword elsewhere, not where the name is written, is a name
    edit = features.rename(path, at_tell, "proposal")
    assert edit is not None and edit.changes is not None
    assert len(edit.changes[path.as_uri()]) == 1
    assert features.rename(path, at_tell, "tell") == lsp.WorkspaceEdit(changes={})


def test_lsp_command_without_pygls_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from carlang.cli import app, editor_commands

    real = editor_commands.importlib.util.find_spec
    monkeypatch.setattr(
        editor_commands.importlib.util,
        "find_spec",
        lambda name: None if name == "pygls" else real(name),
    )
    result = CliRunner().invoke(app, ["lsp"])
    assert result.exit_code == 2 and "pip install 'carlang[lsp]'" in result.stderr


def test_a_burst_of_edits_is_compiled_once(tmp_path: Path) -> None:
    import asyncio

    pytest.importorskip("pygls", reason="the language server needs pygls (carlang[lsp])")
    from carlang.lsp.server import CarlangServer

    server = CarlangServer()
    server.debounce = 0.3  # long enough that a loaded machine still sees one burst
    published: list[Path] = []
    server.publish = published.append  # type: ignore[method-assign]
    main, lib = tmp_path / "main.car", tmp_path / "lib.car"

    async def edits() -> None:
        server.schedule(main, [main])  # after a pause: at once
        await asyncio.sleep(0.01)
        assert published == [main]
        for _ in range(5):  # a burst: one compile, after the burst
            server.schedule(lib, [main, lib])
            await asyncio.sleep(0.005)
        assert published == [main]
        await asyncio.sleep(0.6)
        assert published == [main, lib, main]  # the edited file first, then what imports it

    asyncio.run(edits())


def test_edits_queued_behind_a_slow_compile_are_one_burst(tmp_path: Path) -> None:
    """A compile blocks the server's loop: the edits typed meanwhile are read one after the
    other once it ends, each long after the edit before it was read. They are still one burst,
    compiled once (each got a compile of its own, and a large file fell minutes behind)."""
    import asyncio
    import time

    pytest.importorskip("pygls", reason="the language server needs pygls (carlang[lsp])")
    from carlang.lsp.server import CarlangServer

    server = CarlangServer()
    server.debounce = 0.1
    compiles: list[Path] = []
    main = (tmp_path / "main.car").resolve()

    class SlowFeatures:
        def diagnostics(self, path: Path) -> list[object]:
            compiles.append(path)
            time.sleep(0.3)  # a large file's compile, on the loop
            return []

    server._features = SlowFeatures()  # type: ignore[assignment]
    server.text_document_publish_diagnostics = lambda params: None  # type: ignore[method-assign]

    async def typing() -> None:
        server.schedule(main, [main])  # after a pause: compiled at once (0.3 s, blocking)
        for _ in range(5):  # the keystrokes that queued up meanwhile, each read when the
            await asyncio.sleep(0.01)  # loop is free again: after the compile before it
            server.schedule(main, [main])
        await asyncio.sleep(0.6)

    asyncio.run(typing())
    assert len(compiles) == 2, compiles  # the first edit's, then one for the whole burst


def test_edits_of_a_file_slower_to_parse_than_the_window_are_one_burst(tmp_path: Path) -> None:
    """A trial: in a 10,000-line file each edit's parse (40-70 ms, before `schedule`) was
    longer than the 30 ms window, so every keystroke looked like one after a pause and got a
    compile of its own: 15 compiles for 15 keystrokes, diagnostics 23 s behind. An edit is
    timed from when it was read, and a burst from when the edit before it was handled."""
    import asyncio
    import time

    pytest.importorskip("pygls", reason="the language server needs pygls (carlang[lsp])")
    from carlang.lsp.server import CarlangServer

    server = CarlangServer()
    server.debounce = 0.03
    compiles: list[Path] = []
    server.publish = compiles.append  # type: ignore[method-assign]
    main = (tmp_path / "main.car").resolve()

    async def typing() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(6):  # each edit queued behind the one before, its parse 60 ms long
            arrived = loop.time()
            time.sleep(0.06)  # `Project.set_text` re-parsing a large file, on the loop
            server.schedule(main, [main], arrived)
            await asyncio.sleep(0.002)  # (the reader waits for the next edit: timers may run)
        await asyncio.sleep(0.3)

    asyncio.run(typing())
    assert len(compiles) <= 2, compiles  # (the first edit's, then the burst's)


ALLOWED = """\
tool unused() {}
tool used() {}
tool other() {}  # carlang: allow CL0207
proposal p { a = used() }
"""


def _codes_by_line(project: Project, path: Path) -> list[tuple[str, int]]:
    return [(d.code, d.location()[1]) for d in project.diagnostics(path)]


def test_warnings_the_project_accepts_are_left_out_as_check_leaves_them(tmp_path: Path) -> None:
    path = (tmp_path / "a.car").resolve()
    path.write_text(ALLOWED)
    project = Project(tmp_path)
    project.set_text(path, ALLOWED)
    assert _codes_by_line(project, path) == [("CL0207", 1)]  # the pragma accepts line 3's
    (tmp_path / "carlang.toml").write_text('accept = ["CL0207"]\n')
    assert project.disk_changed(tmp_path / "carlang.toml") == [path]
    assert _codes_by_line(project, path) == []


def test_strict_reports_a_pragma_that_accepts_nothing(tmp_path: Path) -> None:
    path = (tmp_path / "a.car").resolve()
    text = ALLOWED.replace("used() }", "used() }  # carlang: allow CL0521")
    path.write_text(text)
    # an `accept` entry is judged on every file checked together: not from one open file
    (tmp_path / "carlang.toml").write_text('strict = true\naccept = ["CL0207:a.car", "CL0523"]\n')
    project = Project(tmp_path)
    project.set_text(path, text)
    assert _codes_by_line(project, path) == [("CL0525", 4)]


def test_accept_globs_are_relative_to_the_project_root(tmp_path: Path) -> None:
    # the workspace folder is above the project: diagnostics name the file `sub/a.car`
    sub = tmp_path / "sub"
    sub.mkdir()
    path = (sub / "a.car").resolve()
    path.write_text(ALLOWED)
    (sub / "carlang.toml").write_text('accept = ["CL0207:a.car"]\n')
    project = Project(tmp_path)
    project.set_text(path, ALLOWED)
    assert _codes_by_line(project, path) == []
    (sub / "carlang.toml").write_text('accept = ["CL0207:other/*.car"]\n')
    assert _codes_by_line(project, path) == [("CL0207", 1)]


def test_a_file_is_named_from_its_own_project_root(tmp_path: Path) -> None:
    # sub/ is a project inside the workspace folder: its files are named from sub/, so the
    # other end of a duplicate is sub/lib.car, not the workspace folder's lib.car
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "carlang.toml").write_text("")
    (sub / "lib.car").write_text("tool fetch(url: string)\n")
    main = (sub / "main.car").resolve()
    main.write_text('import "lib.car"\ntool fetch(url: string)\n')
    project = Project(tmp_path)
    project.set_text(main, main.read_text())
    assert project.root_of(main) == sub.resolve()
    (twice,) = [d for d in Features(project).diagnostics(main) if d.code == "CL0201"]
    related = [r.location.uri for r in twice.related_information or []]
    assert related == [(sub / "lib.car").resolve().as_uri()]
    # the carlang.toml goes (unreported): the next diagnosis finds the root again, and the
    # file is compiled again under it
    (sub / "carlang.toml").unlink()
    project.diagnostics(main)
    assert project.root_of(main) == tmp_path.resolve()
    assert project.compile(main).loaded.root == tmp_path.resolve()
    file = project.file(main)
    assert file is not None and file.source.name == "sub/main.car"


def test_a_carlang_toml_that_cannot_be_used_is_reported_not_raised(tmp_path: Path) -> None:
    path = (tmp_path / "a.car").resolve()
    path.write_text(ALLOWED)
    (tmp_path / "carlang.toml").write_text("accept = [1]\n")
    project = Project(tmp_path)
    project.set_text(path, ALLOWED)
    assert _codes_by_line(project, path) == [("CL0207", 1)]
    (problem,) = project.settings_problems.values()
    assert "`accept` entries" in problem


COMPLETING = """\
tool deploy(env: string, tags: list[string])
policy p: deny deploy when params.env.startsWith("x") && params.tags.size() > 1
proposal rel { go = deploy(env: "x", tags: []) }

test "x" { proposal rel expect valid }
"""


def _labels(features: Features, path: Path, line: int, after: str) -> list[str]:
    character = COMPLETING.split("\n")[line].index(after) + len(after)
    position = lsp.Position(line=line, character=character)
    return [item.label for item in features.completion(path, position).items]


def test_completion_offers_what_fits_where_the_cursor_is(tmp_path: Path) -> None:
    path = (tmp_path / "c.car").resolve()
    project = Project(tmp_path)
    project.set_text(path, COMPLETING)
    features = Features(project)
    top = [
        item.label for item in features.completion(path, lsp.Position(line=3, character=0)).items
    ]
    assert top.count("import") == 1 and top[0] == "import" and "proposal" in top
    # a one-line test block: what follows its `{` is the statement being written
    assert _labels(features, path, 4, "{ proposal ") == ["rel"]
    # after `params.` its fields; a method after a value of a type that has it
    fields = _labels(features, path, 1, "when params.")
    assert fields == ["env", "tags"]
    methods = _labels(features, path, 1, "when params.env.")
    assert "startsWith" in methods and "distinct" not in methods
    listed = _labels(features, path, 1, "&& params.tags.")
    assert {"distinct", "size"} <= set(listed) and "charAt" not in listed
    # a policy's effect, `shadow` among them (a trial found it missing), then after it
    effects = _labels(features, path, 1, "policy p: ")
    assert effects == ["deny", "require_approval", "allow", "shadow"]
    shadowed = "policy p: shadow "
    project.set_text(path, COMPLETING.replace("policy p: deny", "policy p: shadow deny"))
    character = len(shadowed)
    items = features.completion(path, lsp.Position(line=1, character=character)).items
    assert [item.label for item in items] == ["deny", "require_approval", "allow"]
    character = len("policy p: shadow deny ")
    items = features.completion(path, lsp.Position(line=1, character=character)).items
    assert "deploy" in [item.label for item in items]  # its tools, as after `deny `


# (the cursor after `set `: the lines end in a space, written out so no editor trims it)
STATEFUL = "\n".join(
    [
        "tool deploy(env: string)",
        "state { ready: bool = false  build.*: bool }",
        "proposal rel {",
        "  s = set ",
        "  r = read ",
        '  go = deploy(env: "x") after s',
        "}",
        'test "x" {',
        "  action set ",
        "  state {  }",
        "  expect allow",
        "}",
        "",
    ]
)


def test_state_keys_are_offered_after_set_read_and_in_a_tests_state(tmp_path: Path) -> None:
    """`s = set |` in a proposal (the line starts with the action's name, not `set`),
    `action set |` in a test, and a test's `state { | }`: the program's state keys."""
    path = (tmp_path / "s.car").resolve()
    project = Project(tmp_path)
    project.set_text(path, STATEFUL)
    features = Features(project)
    lines = STATEFUL.split("\n")

    def labels(line: int, after: str) -> list[str]:
        character = lines[line].index(after) + len(after)
        position = lsp.Position(line=line, character=character)
        return [item.label for item in features.completion(path, position).items]

    for line, after in ((3, "set "), (4, "read "), (8, "action set "), (9, "state { ")):
        assert "ready" in labels(line, after), (line, after)
    # the program's own `state { }` declares keys: nothing to offer there
    assert "ready" not in labels(1, "state { ")


def test_definition_of_a_missing_import_goes_nowhere(tmp_path: Path) -> None:
    project, _lib, main = _project(tmp_path)
    text = 'import "missing.car"\n' + MAIN
    project.set_text(main, text)
    features = Features(project)
    missing, present = lsp.Position(line=0, character=9), lsp.Position(line=1, character=9)
    assert features.definition(main, missing) == []  # CL0209 already says it is missing
    hover = features.hover(main, missing)
    assert hover is not None and "(no such file)" in str(hover.contents)
    (location,) = features.definition(main, present)
    assert location.uri == (tmp_path / "lib.car").resolve().as_uri()


def test_an_import_of_a_path_with_a_nul_byte_is_an_error_not_a_crash(tmp_path: Path) -> None:
    # `Path.resolve` raises on a NUL: the project model used to, on every edit of the file
    project, _lib, main = _project(tmp_path)
    text = 'import "lib\\u0000.car"\n' + MAIN
    project.set_text(main, text)
    features = Features(project)
    (nul,) = [d for d in features.diagnostics(main) if d.code == "CL0209"]
    assert "cannot hold a NUL character" in nul.message
    at_import = lsp.Position(line=0, character=9)
    hover = features.hover(main, at_import)
    assert hover is not None and "not a path a file can have" in str(hover.contents)
    assert features.definition(main, at_import) == []
    assert project.program_files(main) == {main, (tmp_path / "lib.car").resolve()}


def test_the_outline_selects_the_keyword_of_a_declaration_without_a_name(tmp_path: Path) -> None:
    text = "tool shell(cmd: string)\n\nstate {\n  ready: bool = false\n}\ndeny_tool shell\n"
    path = (tmp_path / "o.car").resolve()
    project = Project(tmp_path)
    project.set_text(path, text)
    symbols = {s.name: s for s in Features(project).symbols(path)}

    def span(line: int, start: int, end: int) -> lsp.Range:
        return lsp.Range(
            start=lsp.Position(line=line, character=start),
            end=lsp.Position(line=line, character=end),
        )

    state = symbols["state"]
    assert state.selection_range == span(2, 0, 5)  # `state`, inside the block's range
    assert state.range.start.line == 2 and state.range.end.line == 4
    assert symbols["deny_tool shell"].selection_range == span(5, 0, 9)


def test_the_server_says_once_that_a_carlang_toml_cannot_be_used(tmp_path: Path) -> None:
    pytest.importorskip("pygls", reason="the language server needs pygls (carlang[lsp])")
    from carlang.lsp.server import CarlangServer

    path = (tmp_path / "a.car").resolve()
    path.write_text(ALLOWED)
    (tmp_path / "carlang.toml").write_text("strict = 1\n")
    server = CarlangServer()
    server.project = Project(tmp_path)
    server._features = Features(server.project)
    shown: list[str] = []
    server.window_show_message = lambda params: shown.append(params.message)  # type: ignore[method-assign]
    server.text_document_publish_diagnostics = lambda params: None  # type: ignore[method-assign]
    server.publish(path)
    server.publish(path)
    assert len(shown) == 1 and "`strict` must be true or false" in shown[0]
    # a second project, whose carlang.toml is fine: diagnosing its files in between does
    # not make the first one's warning come back
    other = (tmp_path / "other" / "b.car").resolve()
    other.parent.mkdir()
    other.write_text(ALLOWED)
    (other.parent / "carlang.toml").write_text("strict = false\n")
    for _ in range(2):
        server.publish(other)
        server.publish(path)
    assert len(shown) == 1
    # fixed, then broken again: said again
    (tmp_path / "carlang.toml").write_text("strict = true\n")
    server.publish(path)
    (tmp_path / "carlang.toml").write_text("strict = 2\n")
    server.publish(path)
    assert len(shown) == 2 and "`strict` must be true or false" in shown[1]


def test_an_internal_error_is_one_short_line() -> None:
    text = internal_error_text("textDocument/hover", ValueError("first line\nsecond line"))
    assert text == (
        "internal error in carlang's language server: textDocument/hover failed with"
        " ValueError: first line; please report it"
    )
    long = internal_error_text("diagnosing a.car", KeyError("x" * 500))
    assert len(long) < 320 and "...; please report it" in long
    assert "failed with RecursionError;" in internal_error_text("x", RecursionError())
    assert is_request(lsp.TEXT_DOCUMENT_HOVER) and is_request(lsp.SHUTDOWN)
    assert not is_request(lsp.TEXT_DOCUMENT_DID_OPEN) and not is_request(lsp.INITIALIZED)


def test_a_refusal_is_not_logged_as_a_failure_with_a_traceback() -> None:
    """pygls logs every JSON-RPC error with its traceback; a rename refused on purpose is
    the client's to show, and a traceback in the editor's output panel reads as a crash."""
    import logging
    import sys

    pytest.importorskip("pygls", reason="the language server needs pygls (carlang[lsp])")
    from pygls.exceptions import JsonRpcException

    from carlang.lsp.server import build_server

    build_server()
    rpc = logging.getLogger("pygls.protocol.json_rpc")

    def record(code: int) -> logging.LogRecord:
        try:
            raise JsonRpcException("`x` is already a tool", code)
        except JsonRpcException:
            info = sys.exc_info()
        return rpc.makeRecord(rpc.name, logging.ERROR, __file__, 1, "failed", (), info)

    assert not rpc.filter(record(lsp.ErrorCodes.InvalidParams))
    assert rpc.filter(record(lsp.ErrorCodes.InternalError))  # a bug is still logged


def test_a_hover_over_a_huge_declaration_is_cut(tmp_path: Path) -> None:
    """A tool whose default is a 200,000-character string: the hover shows its start and how
    much is left out, not all of it."""
    path = (tmp_path / "h.car").resolve()
    text = f'tool t(x: string = "{"a" * 200_000}")\nproposal p {{ s = t() }}\n'
    project = Project(tmp_path)
    project.set_text(path, text)
    hover = Features(project).hover(path, lsp.Position(line=1, character=18))
    assert hover is not None
    shown = str(hover.contents)
    assert len(shown) < 3000 and "more characters)" in shown


def test_a_hover_past_the_end_of_the_text_is_none(tmp_path: Path) -> None:
    """A trial: a hover at line 999 of a three-line file was clamped to the text's end and
    answered with the diagnostic there."""
    path = (tmp_path / "h.car").resolve()
    project = Project(tmp_path)
    project.set_text(path, "tool t()\nproposal p { s = nosuch() }\n")
    features = Features(project)
    assert features.hover(path, lsp.Position(line=1, character=19)) is not None
    assert features.hover(path, lsp.Position(line=999, character=999)) is None
    assert features.hover(path, lsp.Position(line=3, character=0)) is None


def test_compensate_with_offers_the_other_actions_while_the_file_does_not_parse(
    tmp_path: Path,
) -> None:
    """`compensate with |` half typed: the proposal does not parse, its actions are read from
    the text; the action being written is left out."""
    text = (
        "tool deploy(env: string)\ntool undo()\nproposal p {\n  a = undo()\n"
        '  b = deploy(env: "x") {\n    compensate with \n  }\n  c = undo()\n}\n'
    )
    path = (tmp_path / "c.car").resolve()
    project = Project(tmp_path)
    project.set_text(path, text)
    position = lsp.Position(line=5, character=len("    compensate with "))
    labels = [item.label for item in Features(project).completion(path, position).items]
    assert labels == ["a", "c"]


def test_a_budget_after_under_is_coloured_as_a_budget(tmp_path: Path) -> None:
    """`under bot, small`: each name gets its declaration's token type (a budget was given
    the capability's)."""
    from carlang.lsp.features import _TOKEN_TYPES

    text = (
        "tool t()\ncapability bot { tools allow t }\nbudget small { max_actions 2 }\n"
        "proposal p under bot, small { a = t() }\n"
    )
    path = (tmp_path / "u.car").resolve()
    project = Project(tmp_path)
    project.set_text(path, text)
    data = Features(project).semantic_tokens(path).data
    tokens, line, start = {}, 0, 0
    for index in range(0, len(data), 5):
        delta_line, delta_start, length, kind, _ = data[index : index + 5]
        line += delta_line
        start = start + delta_start if delta_line == 0 else delta_start
        tokens[(line, text.split("\n")[line][start : start + length])] = kind
    assert tokens[(3, "bot")] == _TOKEN_TYPES["capability"]
    assert tokens[(3, "small")] == _TOKEN_TYPES["budget"]


def test_the_editor_shows_a_finding_a_test_expects_as_check_does(tmp_path: Path) -> None:
    """A proposal a test expects `invalid` is the test's fixture: its refusal is a note in
    the editor too, as `carlang check` shows it (it was an error in both)."""
    text = (
        "tool fetch(url: string)\n"
        'policy https_only: deny fetch when !params.url.startsWith("https://")\n'
        'proposal bad {\n  f = fetch(url: "http://x")\n}\n'
        'test "bad is invalid" {\n  proposal bad\n  expect invalid\n}\n'
    )
    path = tmp_path / "neg.car"
    path.write_text(text)
    project = Project(tmp_path)
    project.scan()
    project.set_text(path.resolve(), text)
    found = [(d.code, d.severity) for d in project.diagnostics(path.resolve())]
    assert found == [("CL0520", "info")]


def test_a_fixture_file_opened_alone_shows_what_a_test_elsewhere_expects(tmp_path: Path) -> None:
    """`bad.car` holds a proposal that `bad_test.car` (importing it) expects invalid: opened
    alone in the editor, its refusal was an error, where `carlang check` made it a note."""
    fixture = (
        "tool fetch(url: string)\n"
        'policy https_only: deny fetch when !params.url.startsWith("https://")\n'
        'proposal bad {\n  f = fetch(url: "http://x")\n}\n'
    )
    tests = 'import "bad.car"\ntest "bad is invalid" {\n  proposal bad\n  expect invalid\n}\n'
    (tmp_path / "bad.car").write_text(fixture)
    (tmp_path / "bad_test.car").write_text(tests)
    project = Project(tmp_path)
    assert project.scan() == 2
    path = (tmp_path / "bad.car").resolve()
    project.set_text(path, fixture)
    assert [(d.code, d.severity) for d in project.diagnostics(path)] == [("CL0520", "info")]
    # a test that expects it valid does not make it a note
    # both open: an edit of the fixture keeps what its tests expect (a review: the test
    # file's compile was dropped and not made again, and the note became an error)
    test_path = (tmp_path / "bad_test.car").resolve()
    project.set_text(test_path, tests)
    assert project.diagnostics(test_path) == []
    edited = fixture.replace("tool fetch(url: string)", "tool fetch(url: string)\ntool other()")
    project.set_text(path, edited)
    found = [(d.code, d.severity) for d in project.diagnostics(path)]
    assert ("CL0520", "info") in found and ("CL0520", "error") not in found, found
    project.set_text(path, fixture)
    # (an edit of the tests diagnoses the open fixture again: what they expect changed)
    assert project.set_text(test_path, tests.replace("invalid", "valid")) == [path, test_path]
    assert [(d.code, d.severity) for d in project.diagnostics(path)] == [("CL0520", "error")]


def test_a_hover_gives_a_read_only_tools_calls_as_reversible(tmp_path: Path) -> None:
    """A trial: the hover said `irreversible (not declared)` of a read_only tool, whose
    calls compile reversible (docs/language.md)."""
    text = 'tool fetch(url: string) { read_only }\nproposal p { a = fetch(url: "x") }\n'
    path = (tmp_path / "r.car").resolve()
    path.write_text(text)
    project = Project(tmp_path)
    project.scan()
    project.set_text(path, text)
    hover = Features(project).hover(path, lsp.Position(line=1, character=18))
    assert hover is not None
    shown = str(hover.contents)
    assert "reversibility: reversible (read_only)" in shown and "irreversible" not in shown
