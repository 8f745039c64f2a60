"""What the language server's edits do to the text, in process: a quick fix that orders an
action after the writer of a key it requires (the error it is offered for goes), range
formatting that edits only the lines of the range, and completion of the second statement of a
one-line block."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("lsprotocol", reason="the language server needs lsprotocol (carlang[lsp])")

from lsprotocol import types as lsp  # noqa: E402

from carlang.lsp.features import Features  # noqa: E402
from carlang.lsp.linediff import cut_block  # noqa: E402
from carlang.lsp.project import Project  # noqa: E402
from tests.lsp.support import applied  # noqa: E402


def _features(tmp_path: Path, text: str) -> tuple[Project, Features, Path]:
    path = (tmp_path / "f.car").resolve()
    project = Project(tmp_path)
    project.set_text(path, text)
    return project, Features(project), path


def _everywhere() -> lsp.Range:
    return lsp.Range(
        start=lsp.Position(line=0, character=0), end=lsp.Position(line=99, character=0)
    )


# -- the quick fix that orders an action after the writer of a key it requires -----------------

HEAD = "tool send_email(to: string) {}\nstate { ok: bool = false }\n"


@pytest.mark.parametrize(
    ("proposal", "title", "fixed"),
    [
        # the trial's: the writer comes later, so `reads ok` would give no edge: `after d`
        (
            'proposal q {\n  c = send_email(to: "x") { requires ok == true }\n'
            "  d = set ok = true\n}\n",
            "Add `after d`",
            'c = send_email(to: "x") after d { requires ok == true }',
        ),
        # `reads ok` written already, to no avail
        (
            'proposal q {\n  c = send_email(to: "x") { requires ok == true reads ok }\n'
            "  d = set ok = true\n}\n",
            "Add `after d`",
            'c = send_email(to: "x") after d { requires ok == true reads ok }',
        ),
        # the writer comes earlier but runs later (after `a`): `reads ok`, one space each side
        (
            'proposal q {\n  a = send_email(to: "y")\n  d = set ok = true after a\n'
            '  c = send_email(to: "x") { requires ok == true }\n}\n',
            "Add `reads ok`",
            'c = send_email(to: "x") { requires ok == true reads ok }',
        ),
        # a one-line proposal
        (
            'proposal q { c = send_email(to: "x") { requires ok == true }  d = set ok = true }\n',
            "Add `after d`",
            'proposal q { c = send_email(to: "x") after d { requires ok == true }  d = set',
        ),
    ],
)
def test_the_ordering_fix_makes_the_failing_precondition_go(
    tmp_path: Path, proposal: str, title: str, fixed: str
) -> None:
    text = HEAD + proposal
    project, features, path = _features(tmp_path, text)
    assert [d.code for d in project.diagnostics(path)] == ["CL0401"]
    (fix,) = features.code_actions(path, _everywhere())
    assert fix.title.startswith(title)
    assert fix.edit is not None and fix.edit.changes is not None
    after = applied(text, fix.edit.changes[path.as_uri()])
    assert fixed in after
    project.set_text(path, after)
    assert [d.code for d in project.diagnostics(path)] == []
    assert Features(project).code_actions(path, _everywhere()) == []  # ordered now


@pytest.mark.parametrize(
    ("condition", "fixed"),
    [
        ('params.ulr == "x"', 'params.url == "x"'),
        ('action.params.ulr == "x"', 'action.params.url == "x"'),
        ("has(params.ulr)", "has(params.url)"),
        ('params["ulr"] == "x"', 'params["url"] == "x"'),
        ("state.redy", "state.ready"),
    ],
)
def test_a_did_you_mean_for_a_cel_field_changes_the_field_alone(
    tmp_path: Path, condition: str, fixed: str
) -> None:
    """`params.ulr` was replaced whole by `url`, making `when url == "x"`, a new error (a
    user trial of the editor)."""
    text = "tool fetch(url: string)\nstate { ready: bool = false }\n"
    text += f"policy p: deny fetch when {condition}\n"
    project, features, path = _features(tmp_path, text)
    (fix,) = [a for a in features.code_actions(path, _everywhere()) if "Change to" in a.title]
    assert fix.edit is not None and fix.edit.changes is not None
    after = applied(text, fix.edit.changes[path.as_uri()])
    assert f"when {fixed}\n" in after
    project.set_text(path, after)
    assert [d.code for d in project.diagnostics(path) if d.severity == "error"] == []


def test_an_after_that_is_there_gets_the_writer_added(tmp_path: Path) -> None:
    text = HEAD + (
        'proposal q {\n  a = send_email(to: "y")\n  c = send_email(to: "x") after a {\n'
        "    requires ok == true\n  }\n  d = set ok = true\n}\n"
    )
    _project, features, path = _features(tmp_path, text)
    (fix,) = features.code_actions(path, _everywhere())
    assert fix.edit is not None and fix.edit.changes is not None
    assert 'c = send_email(to: "x") after a, d {\n' in applied(
        text, fix.edit.changes[path.as_uri()]
    )


def test_no_ordering_fix_when_the_writer_runs_after_the_action(tmp_path: Path) -> None:
    """`d` writes `ok` after `c` has run: ordering `c` after `d` would close a cycle, and no
    order of the two makes `c`'s precondition hold."""
    text = HEAD + (
        'proposal q {\n  c = send_email(to: "x") { requires ok == true }\n'
        "  d = set ok = true after c\n}\n"
    )
    project, features, path = _features(tmp_path, text)
    assert [d.code for d in project.diagnostics(path)] == ["CL0401"]
    assert features.code_actions(path, _everywhere()) == []


# -- range formatting --------------------------------------------------------------------------

TOOLS = "tool t(x: int)   {}\ntool u(y: int)   {}\nproposal p {\n  a = t(x: 1)\n  b = u(y: 1)\n}\n"


def _format(features: Features, path: Path, start: tuple[int, int], end: tuple[int, int]) -> list:  # type: ignore[type-arg]
    within = lsp.Range(
        start=lsp.Position(line=start[0], character=start[1]),
        end=lsp.Position(line=end[0], character=end[1]),
    )
    return [
        (e.range.start.line, e.range.end.line, e.new_text)
        for e in features.formatting(path, within)
    ]


def test_range_formatting_edits_only_the_lines_of_the_range(tmp_path: Path) -> None:
    _project, features, path = _features(tmp_path, TOOLS)
    # both lines change, one block for difflib: a range over one edits that one
    assert _format(features, path, (1, 0), (1, 19)) == [(1, 2, "tool u(y: int)\n")]
    assert _format(features, path, (0, 0), (0, 19)) == [(0, 1, "tool t(x: int)\n")]
    # a range that ends at the start of a line leaves that line out
    assert _format(features, path, (0, 0), (1, 0)) == [(0, 1, "tool t(x: int)\n")]
    assert _format(features, path, (0, 0), (2, 0)) == [(0, 2, "tool t(x: int)\ntool u(y: int)\n")]
    assert _format(features, path, (2, 0), (5, 1)) == []
    # the whole document is one edit of the two lines, as before
    whole = features.formatting(path)
    assert [(e.range.start.line, e.range.end.line) for e in whole] == [(0, 2)]


def test_range_formatting_cuts_a_line_that_becomes_several(tmp_path: Path) -> None:
    text = (
        "tool t(x: int)   {}\r\nbudget b { max_actions 5  max_tool_calls 3 }\r\n"
        "proposal p under b {\r\n    a = t(x: 1)  # c\r\n}\r\n"
    )
    _project, features, path = _features(tmp_path, text)
    assert _format(features, path, (1, 0), (1, 5)) == [
        (1, 2, "budget b {\r\n  max_actions 5\r\n  max_tool_calls 3\r\n}\r\n")
    ]
    assert _format(features, path, (3, 0), (3, 3)) == [(3, 4, "  a = t(x: 1)  # c\r\n")]


NESTED = """tool f(x: string) {}
tool g(y: string) {}
proposal q from "x" {
a=f(x:"u")   {
retry 2
}
  b = g(y:"t") after a
}
"""


def _apply(text: str, edits: list) -> str:  # type: ignore[type-arg]
    lines = text.splitlines(keepends=True)
    for first, end, new in sorted(edits, reverse=True):
        lines[first:end] = [new] if new else []
    return "".join(lines)


def test_range_formatting_never_repeats_or_loses_a_line(tmp_path: Path) -> None:
    """The old `}` of a re-indented block was paired with the new `}` closing the proposal,
    and a range over the block wrote `b = g(...)` twice (a user trial of the editor)."""
    from carlang.fmt import format_source
    from carlang.source import Source

    _project, features, path = _features(tmp_path, NESTED)
    whole = format_source(Source("p.car", NESTED))
    for start, end in [((3, 0), (4, 3)), ((3, 0), (5, 0)), ((4, 0), (4, 3)), ((3, 0), (3, 5))]:
        edited = _apply(NESTED, _format(features, path, start, end))
        assert edited.count("b = g") + edited.count("b=g") == 1, edited
        assert format_source(Source("p.car", edited)) == whole
    assert _format(features, path, (3, 0), (5, 0)) == [
        (3, 4, '  a = f(x: "u") {\n'),
        (4, 5, "    retry 2\n"),
    ]


def test_a_block_is_cut_where_the_text_on_both_sides_allows() -> None:
    old = ["budget b { max_actions 5\n", "  max_tool_calls 3 }\n"]
    new = ["budget b {\n", "  max_actions 5\n", "  max_tool_calls 3\n", "}\n"]
    assert cut_block(old, new, (0, 2, 0, 4)) == [(0, 1, 0, 2), (1, 2, 2, 4)]
    # a line whose text goes to both sides of every cut: no cut
    old = ["a b\n", "c\n"]
    new = ["a\n", "b c\n"]
    assert cut_block(old, new, (0, 2, 0, 2)) == [(0, 2, 0, 2)]


# -- completion in a one-line block ------------------------------------------------------------

PROGRAM = """\
tool send_email(to: string, subject: string)
tool lookup(id: int)
state { ok: bool = false }
policy internal_only: deny send_email when !params.to.endsWith("@example.com")
proposal p1 { u = lookup(id: 3) }
"""


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('test "x" { proposal p1 expect v| }', {"valid", "invalid", "codes"}),
        ('test "x" { proposal p1  expect | }', {"valid", "invalid", "codes"}),
        (
            'test "x" { action send_email(to: "a", subject: "b") expect deny by | }',
            {"internal_only"},
        ),
        ('test "x" { action send_email(to: "proposal", subject: "b")  expect | }', {"deny"}),
        ("proposal q { x = lookup(id: 1)  y = lookup(id: 2) after | }", {"x"}),
        ("proposal q { x = lookup(id: 1)  y = set ok = true after | }", {"x"}),
        ("proposal q { x = lookup(id: 1) { retry 2  on_failure | } }", {"abort", "skip"}),
        ("proposal q { x = lookup(id: 1) { on_failure retry  reads | } }", {"ok"}),
        ("budget b { max_actions 5  max_tool_calls | }", set()),
        # over several lines, as before
        ('test "x" {\n  proposal p1\n  expect v|\n}', {"valid", "invalid", "codes"}),
        ("proposal q {\n  x = lookup(id: 1)\n  y = lookup(id: 2) after |\n}", {"x"}),
    ],
)
def test_completion_of_a_later_statement_in_a_one_line_block(
    tmp_path: Path, line: str, expected: set[str]
) -> None:
    text = PROGRAM + line.replace("|", "") + "\n"
    offset = len(PROGRAM) + line.index("|")
    _project, features, path = _features(tmp_path, text)
    position = lsp.Position(
        line=text.count("\n", 0, offset), character=offset - text.rfind("\n", 0, offset) - 1
    )
    labels = {item.label for item in features.completion(path, position).items}
    assert expected <= labels if expected else labels == set()
    if "after" in line:
        assert labels == expected  # not the action being written, nor `ok` of `set ok`


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(0, 7), st.integers(0, 7))
def test_any_range_formatted_formats_as_the_whole(tmp_path: Path, one: int, other: int) -> None:
    from carlang.fmt import format_source
    from carlang.source import Source

    _project, features, path = _features(tmp_path, NESTED)
    first, last = min(one, other), max(one, other)
    edited = _apply(NESTED, _format(features, path, (first, 0), (last, 80)))
    assert format_source(Source("p.car", edited)) == format_source(Source("p.car", NESTED))


@pytest.mark.parametrize(
    ("written", "cursor"),
    [('env: "st', len('env: "st')), ('env: ""', len('env: "')), ('env: "stag"', len('env: "st'))],
)
def test_an_enum_value_chosen_inside_its_quotes_replaces_them(
    tmp_path: Path, written: str, cursor: int
) -> None:
    """Choosing `"staging"` with the cursor inside a string already opened gave
    `env: ""staging""` (a user trial of the editor): the item replaces the quoted text."""
    from carlang.lsp.completion import Completer

    head = 'tool deploy(env: "staging" | "prod")\nproposal q {\n  a = deploy('
    text = head + written + ")\n}\n"
    _project, features, path = _features(tmp_path, text)
    line = text[: len(head) + cursor].count("\n")
    column = len(head) + cursor - (text.rfind("\n", 0, len(head) + cursor) + 1)
    items = Completer(features).completion(path, lsp.Position(line=line, character=column)).items
    (staging,) = [i for i in items if i.label == '"staging"']
    assert isinstance(staging.text_edit, lsp.TextEdit)
    after = applied(text, [staging.text_edit])
    assert 'a = deploy(env: "staging")\n' in after


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("history.", {"exists", "all", "filter", "map", "exists_one", "size"}),
        ('history.filter(h, h.tool == "fetch" && h.', {"tool", "params", "status", "id"}),
        ("history.exists(e, e.", {"tool", "params", "status"}),
    ],
)
def test_completion_knows_macros_and_what_their_variable_holds(
    tmp_path: Path, written: str, expected: set[str]
) -> None:
    """`history.` offered no `exists`, `filter`...; `h.` inside `history.filter(h, ...)` was
    of unknown type, so no field of a history entry was offered (a user trial)."""
    from carlang.lsp.completion import Completer

    head = "tool fetch(url: string)\npolicy p: deny fetch when "
    text = head + written + "\n"
    _project, features, path = _features(tmp_path, text)
    position = lsp.Position(line=1, character=len(head.split("\n")[1]) + len(written))
    labels = {i.label for i in Completer(features).completion(path, position).items}
    assert expected <= labels, labels


BLOCKS_CLOSED_APART = (
    "tool build(commit: string) {\n  idempotent\n  reversibility reversible }\n"
    "tool canary(version: string) { reversibility compensable\n}\n"
    "tool promote(version: string) { reversibility irreversible\n}\n"
)


@pytest.mark.parametrize(
    ("line", "edit"),
    [
        (2, (2, 3, "  reversibility reversible\n}\n")),
        (3, (3, 4, "tool canary(version: string) {\n  reversibility compensable\n")),
        (5, (5, 6, "tool promote(version: string) {\n  reversibility irreversible\n")),
    ],
)
def test_a_range_gets_its_own_lines_formatted_where_no_pairing_of_lines_fits(
    tmp_path: Path, line: int, edit: tuple[int, int, str]
) -> None:
    """Each `}` on a line of its own pairs with another tool's under either pairing of lines:
    the edits were refused as unsafe and the range formatted nothing (a review). The lines
    are then cut by their characters."""
    _project, features, path = _features(tmp_path, BLOCKS_CLOSED_APART)
    assert _format(features, path, (line, 0), (line, 80)) == [edit]
