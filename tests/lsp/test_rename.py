"""Rename, references and highlights around names that are not written as declared names:
state keys of a family (`orders.*`), parameters read as `params.url` in conditions, keys read
as `state["k"]`, tools matched by patterns or compared with `action.tool`, policies named in a
test's strings and tables. Each rename that is made is applied, and the program must check
as cleanly as before; each one refused says why."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("lsprotocol", reason="the language server needs lsprotocol (carlang[lsp])")

from lsprotocol import types as lsp  # noqa: E402

from carlang.lsp.features import Features  # noqa: E402
from carlang.lsp.project import Project  # noqa: E402
from carlang.lsp.rename import RenameRefused  # noqa: E402
from tests.lsp.support import applied  # noqa: E402


def _features(tmp_path: Path, text: str, name: str = "p.car") -> tuple[Features, Path]:
    path = (tmp_path / name).resolve()
    path.write_text(text)
    project = Project(tmp_path)
    project.set_text(path, text)
    return Features(project), path


def _at(text: str, needle: str, delta: int = 0, nth: int = 0) -> lsp.Position:
    index = -1
    for _ in range(nth + 1):
        index = text.index(needle, index + 1)
    index += delta
    line = text.count("\n", 0, index)
    return lsp.Position(line=line, character=index - (text.rfind("\n", 0, index) + 1))


def _renamed(features: Features, path: Path, at: lsp.Position, new_name: str) -> str:
    """The file after the rename, which must leave its diagnostics as they were."""
    text = features.project.text(path)
    assert text is not None
    before = _shown(features, path)
    edit = features.rename(path, at, new_name)
    assert edit is not None and edit.changes is not None
    assert set(edit.changes) == {path.as_uri()}
    renamed = applied(text, edit.changes[path.as_uri()])
    features.project.set_text(path, renamed)
    assert _shown(features, path) == before
    return renamed


def _shown(features: Features, path: Path) -> list[tuple[str | None, str]]:
    return [(d.code, d.message) for d in features.project.diagnostics(path)]


def _lines(text: str, locations: list[lsp.Location] | list[lsp.DocumentHighlight]) -> list[str]:
    lines = text.split("\n")
    return [
        lines[r.start.line][r.start.character : r.end.character] + f"@{r.start.line + 1}"
        for r in (location.range for location in locations)
    ]


FAMILY = """\
tool ship(order: string)
state {
  orders.*: bool
  ready: bool = false
}
capability bot {
  tools allow ship
  state allow orders.*, ready
}
policy unready: deny ship when state.ready == false
policy shipped_once: deny ship when state["orders.a"] == true
proposal p under bot {
  mark = set orders.a = true
  go = ship(order: "a") after mark {
    requires orders.a == true
  }
  look = read orders.b after go
}
test "shipped twice" {
  action ship(order: "a")
  state { ready: true, "orders.a": true }
  expect deny by shipped_once
}
"""


def test_a_key_of_a_state_family_is_renamed_within_the_family(tmp_path: Path) -> None:
    features, path = _features(tmp_path, FAMILY)
    at = _at(FAMILY, "orders.a = true", 1)
    assert features.prepare_rename(path, at) == lsp.Range(
        start=_at(FAMILY, "orders.a = true"), end=_at(FAMILY, "orders.a = true", 8)
    )
    # out of the family: a key nothing declares, which `state allow orders.*` denies
    with pytest.raises(
        RenameRefused, match=r"`orders.a` is a key of the state family `orders\.\*`"
    ):
        features.rename(path, at, "shipped")
    # another key of the family, used already: two keys would become one
    with pytest.raises(RenameRefused, match="`orders.b` is already a state key, used in `p.car`"):
        features.rename(path, at, "orders.b")
    # within the family: every place it is read, in the condition and the test's state too
    renamed = _renamed(features, path, at, "orders.done")
    assert 'state["orders.done"] == true' in renamed
    assert '"orders.done": true' in renamed and "requires orders.done" in renamed
    assert "orders.a" not in renamed


def test_a_state_key_pattern_is_not_renamed_and_says_why(tmp_path: Path) -> None:
    features, path = _features(tmp_path, FAMILY)
    for at in (_at(FAMILY, "orders.*: bool", 1), _at(FAMILY, "orders.*, ready", 1)):
        with pytest.raises(RenameRefused, match=r"`orders\.\*` is a pattern of state keys"):
            features.prepare_rename(path, at)
        with pytest.raises(RenameRefused, match=r"`orders\.\*` is a pattern of state keys"):
            features.rename(path, at, "purchases.*")


def test_a_rename_keeps_the_patterns_that_allow_a_name(tmp_path: Path) -> None:
    text = """\
tool rollback_deploy(env: string)
tool fetch(url: string)
state { flags.x: bool = false  other: bool = false }
capability bot {
  tools allow fetch, rollback_*
  state allow flags.*, other
}
policy no_rollbacks: deny rollback_* when params.env == "prod"
proposal p under bot {
  a = rollback_deploy(env: "x")
  b = set flags.x = true
}
"""
    features, path = _features(tmp_path, text)
    with pytest.raises(
        RenameRefused,
        match=r"`rollback_deploy` is matched by `rollback_\*` \(`tools allow` of capability "
        r"`bot` in `p.car`\), and `undo_deploy` would not be",
    ):
        features.rename(path, _at(text, "rollback_deploy("), "undo_deploy")
    with pytest.raises(RenameRefused, match=r"`flags.x` is matched by `flags\.\*`"):
        features.rename(path, _at(text, "flags.x:"), "done")
    with pytest.raises(
        RenameRefused,
        match=r"`rollback_fetch` would be matched by `rollback_\*` \(the tools of policy "
        r"`no_rollbacks` in `p.car`\), which does not match `fetch`",
    ):
        features.rename(path, _at(text, "tool fetch", 5), "rollback_fetch")
    # a name the list allows by itself and by the pattern: allowed either way
    assert "flags.other" in _renamed(features, path, _at(text, "other:"), "flags.other")
    assert "rollback_env" in _renamed(features, path, _at(text, "rollback_deploy("), "rollback_env")


PARAMS = """\
tool fetch(url: string, mode: string = "fast")
tool post(url: string, body: string)
policy https_only: deny fetch when !params.url.startsWith("https://")
policy short_posts: deny post when size(params.body) > 10 || has(params.url) && params.url == ""
deny_tool_param fetch.url contains "169.254"
proposal p {
  a = fetch(url: "https://x")
  b = post(url: "https://y", body: "hi")
}
test "http" {
  action fetch(url: "http://x")
  expect deny by https_only
}
"""


def test_params_in_a_condition_are_the_parameter_of_the_policys_tools(tmp_path: Path) -> None:
    features, path = _features(tmp_path, PARAMS)
    fetch_url = _at(PARAMS, "url: string")
    in_condition = _at(PARAMS, "params.url.startsWith", 7)
    expected = ["url@1", "url@3", "url@5", "url@7", "url@11"]
    assert _lines(PARAMS, features.references(path, fetch_url)) == expected
    assert _lines(PARAMS, features.references(path, in_condition)) == expected
    assert _lines(PARAMS, features.definition(path, in_condition)) == ["url@1"]
    # post's `url`: its own condition reads it (`has(params.url)` too), not https_only's
    assert _lines(PARAMS, features.references(path, _at(PARAMS, "url: string", nth=1))) == [
        "url@2",
        "url@4",
        "url@4",
        "url@8",
    ]
    highlights = features.highlights(path, in_condition)
    assert _lines(PARAMS, highlights) == expected
    assert {h.kind for h in highlights} == {
        lsp.DocumentHighlightKind.Text,  # the declaration
        lsp.DocumentHighlightKind.Read,
    }
    # the condition's type hover is as it was
    hover = features.hover(path, in_condition)
    assert hover is not None and isinstance(hover.contents, lsp.MarkupContent)
    assert hover.contents.value == "`params.url`: `string`"
    renamed = _renamed(features, path, in_condition, "uri")
    assert "!params.uri.startsWith" in renamed and "deny_tool_param fetch.uri" in renamed
    assert 'fetch(uri: "https://x")' in renamed and 'fetch(uri: "http://x")' in renamed
    assert 'has(params.url) && params.url == ""' in renamed  # post's, left alone


def test_params_read_for_several_tools_are_not_renamed_for_one(tmp_path: Path) -> None:
    text = PARAMS + 'policy no_local: deny when has(params.url) && params.url.contains("local")\n'
    features, path = _features(tmp_path, text)
    anywhere = _at(text, "params.url.contains", 7)
    # a policy with no tools reads the `url` of every tool that has one
    assert _lines(text, features.definition(path, anywhere)) == ["url@1", "url@2"]
    assert "url@14" in _lines(text, features.references(path, _at(text, "url: string")))
    refusal = "policy `no_local` in `p.car` reads the parameter `url` of `fetch` and `post`"
    with pytest.raises(RenameRefused, match=re.escape(refusal)):
        features.prepare_rename(path, anywhere)
    with pytest.raises(
        RenameRefused, match=re.escape("policy `no_local` in `p.car` reads `params.url` of `post`")
    ):
        features.rename(path, _at(text, "url: string"), "uri")
    redacted = PARAMS + "redact params.url\n"
    features, path = _features(tmp_path, redacted)
    with pytest.raises(RenameRefused, match=re.escape("`redact` in `p.car` reads `params.url`")):
        features.rename(path, _at(redacted, "url: string"), "uri")
    assert "url@14" in _lines(redacted, features.references(path, _at(redacted, "url: string")))


def test_a_parameter_rename_is_refused_where_it_would_read_another(tmp_path: Path) -> None:
    features, path = _features(tmp_path, PARAMS)
    with pytest.raises(RenameRefused, match="`mode` is already a parameter of `fetch`"):
        features.rename(path, _at(PARAMS, "url: string"), "mode")
    with pytest.raises(RenameRefused, match="`1x` is not a valid parameter name"):
        features.rename(path, _at(PARAMS, "url: string"), "1x")
    # `params.true` is not CEL
    with pytest.raises(RenameRefused, match="`true` is a keyword where the parameter `url`"):
        features.rename(path, _at(PARAMS, "url: string"), "true")
    # `params.body` is read by post's policy only: fetch's `url` may be called `body`
    assert "fetch(body:" in _renamed(features, path, _at(PARAMS, "url: string"), "body")


def test_names_in_strings_tables_and_conditions_are_renamed(tmp_path: Path) -> None:
    text = """\
tool fetch(url: string)
tool probe(host: string)
policy https_only: deny fetch when !params.url.startsWith("https://")
policy no_refetch: deny when action.tool == "fetch" && history.exists(h, h.tool in ["fetch"])
proposal fast { a = fetch(url: "https://x") }
proposal slow { a = probe(host: "y") }
plan pick { candidates fast, slow }
test "by string" {
  action fetch(url: "http://x")
  expect deny by "https_only"
}
test "table" {
  action fetch(url: $u)
  expect deny by $p
  where
    | u          | p            |
    | "http://x" | https_only   |
    | "http://y" | "https_only" |
}
test "winner" { plan pick  expect winner fast }
"""
    features, path = _features(tmp_path, text)
    policy = _renamed(features, path, _at(text, "https_only:"), "tls_only")
    assert policy.count("tls_only") == 4 and "https_only" not in policy
    proposal = _renamed(features, path, _at(policy, "proposal fast", 9), "quick")
    assert "expect winner quick" in proposal and "candidates quick, slow" in proposal
    tool = _renamed(features, path, _at(proposal, "tool fetch", 5), "download")
    assert 'action.tool == "download"' in tool and 'h.tool in ["download"]' in tool


def test_a_tool_of_an_mcp_server_keeps_the_tool_it_calls(tmp_path: Path) -> None:
    text = """\
mcp_server fs { command "x" }
tool fs.read_text_file(path: string)
tool fetch(url: string)
proposal p {
  a = fs.read_text_file(path: "x")
  b = fetch(url: "y")
}
"""
    features, path = _features(tmp_path, text)
    with pytest.raises(
        RenameRefused, match=r"it would call `read`; add `remote \"read_text_file\"`"
    ):
        features.rename(path, _at(text, "fs.read_text_file("), "fs.read")
    with pytest.raises(RenameRefused, match="`fs.fetch` would bind the tool to the MCP server"):
        features.rename(path, _at(text, "tool fetch", 5), "fs.fetch")
    with_remote = text.replace("(path: string)", '(path: string) { remote "read_text_file" }')
    features, path = _features(tmp_path, with_remote)
    assert "fs.read(" in _renamed(features, path, _at(with_remote, "fs.read_text_file("), "fs.read")


def test_a_capability_rename_renames_the_one_carlang_toml_runs_under(tmp_path: Path) -> None:
    (tmp_path / "carlang.toml").write_text('strict = false\ncapability = "bot"  # agents\n')
    text = "tool t()\ncapability bot { tools allow t }\nproposal p under bot { a = t() }\n"
    features, path = _features(tmp_path, text)
    edit = features.rename(path, _at(text, "bot {"), "robot")
    assert edit is not None and edit.changes is not None
    (toml,) = edit.changes[(tmp_path / "carlang.toml").resolve().as_uri()]
    assert toml.new_text == "robot"
    assert toml.range == lsp.Range(
        start=lsp.Position(line=1, character=14), end=lsp.Position(line=1, character=17)
    )
    assert len(edit.changes[path.as_uri()]) == 2


HISTORY = """\
tool fetch(url: string)
tool post(url: string, body: string)
policy fetch_once: deny fetch when history.exists(h, h.tool == "fetch" && h.status == "succeeded")
proposal p { a = fetch(url: "https://x")  b = post(url: "https://x", body: "b") }
test "fetched already" {
  action fetch(url: "https://x")
  history [
    {id: "a", type: "tool_call", tool: "fetch", params: {url: "https://x"}, status: "succeeded"},
    {id: "b", type: "tool_call", tool: "post", params: {"url": "https://x"}, status: "succeeded"},
    {id: "c", type: "state_write", tool: null, params: {}, status: "succeeded"},  # url: "fetch"
  ]
  expect deny by fetch_once
}
test "after a fetch" {
  action post(url: "https://x", body: "b")
  history [{id: "a", tool: $tool, params: {}, status: "succeeded"}, $entry]
  expect allow
  where
    | tool    | entry                                                      |
    | fetch   | {id: "b", tool: "fetch", params: {"url": "x"}, status: "succeeded"} |
    | "post"  | {id: "b", tool: "post", params: {url: "y"}, status: "succeeded"}    |
}
"""


def test_a_tests_history_names_tools_and_their_parameters(tmp_path: Path) -> None:
    features, path = _features(tmp_path, HISTORY)
    assert _shown(features, path) == []
    # an entry's `tool`, in the history or in a table's cells that fill it (`tool: $tool`,
    # a whole entry `$entry`), is a use of the tool
    fetch = _at(HISTORY, "tool fetch", 5)
    expected = ["fetch@1", "fetch@3", "fetch@3", "fetch@4", "fetch@6", "fetch@8"]
    assert _lines(HISTORY, features.references(path, fetch)) == [*expected, "fetch@20", "fetch@20"]
    in_history = _at(HISTORY, 'tool: "fetch"', 7)
    assert _lines(HISTORY, features.definition(path, in_history)) == ["fetch@1"]
    assert features.prepare_rename(path, in_history) == lsp.Range(
        start=in_history, end=_at(HISTORY, 'tool: "fetch"', 12)
    )
    hover = features.hover(path, in_history)
    assert hover is not None and isinstance(hover.contents, lsp.MarkupContent)
    assert "tool fetch(url: string)" in hover.contents.value
    # the keys of its `params` are that tool's parameters (post's `url` is not fetch's)
    assert _lines(HISTORY, features.references(path, _at(HISTORY, "url: string"))) == [
        "url@1",
        "url@4",
        "url@6",
        "url@8",
        "url@20",
    ]
    assert _lines(HISTORY, features.references(path, _at(HISTORY, "url: string", nth=1))) == [
        "url@2",
        "url@4",
        "url@9",
        "url@15",
        "url@21",
    ]
    renamed = _renamed(features, path, fetch, "download")
    assert 'tool: "download", params: {url: "https://x"}' in renamed
    assert '| download   | {id: "b", tool: "download", params: {"url"' in renamed
    assert 'tool: "post"' in renamed and '# url: "fetch"' in renamed
    renamed = _renamed(features, path, _at(renamed, "url: string"), "address")
    assert 'tool: "download", params: {address: "https://x"}' in renamed
    assert 'tool: "download", params: {"address": "x"}' in renamed
    assert 'tool: "post", params: {"url": "https://x"}' in renamed
    assert 'tool: "post", params: {url: "y"}' in renamed


def test_a_history_parameter_is_not_renamed_to_a_key_its_entry_has(tmp_path: Path) -> None:
    text = HISTORY.replace('params: {url: "https://x"}', 'params: {url: "x", mode: "fast"}')
    features, path = _features(tmp_path, text)
    with pytest.raises(
        RenameRefused, match="`mode` is already a key or argument written beside the parameter"
    ):
        features.rename(path, _at(text, "url: string"), "mode")
    # a name written with escapes is a use, renamed by hand
    escaped = HISTORY.replace('tool: "fetch", params: {url', 'tool: "fe\\u0074ch", params: {url')
    features, path = _features(tmp_path, escaped)
    at_fetch = _at(escaped, "tool fetch", 5)
    assert '"fe\\u0074ch"@8' in _lines(escaped, features.references(path, at_fetch))
    with pytest.raises(RenameRefused, match=r'`fetch` is written `"fe\\u0074ch"` in `p.car`'):
        features.rename(path, at_fetch, "download")


TOOL_TESTS = """\
tool fs.read(path: string)
tool fs.write(path: string, text: string)
tool read_file(path: string)
tool fetch(url: string)
policy no_fs_twice: deny when action.tool.startsWith("fs.") && history.exists(h, h.tool.startsWith("fs."))
policy files: require_approval when action.tool.endsWith("_file") || matches(action.tool, "^fs[.]w")
policy no_fetch: deny when action.tool in ["fetch", "fs.read"] && !action.tool.contains("rea")
proposal p {
  a = fs.read(path: "a")
  b = fs.write(path: "a", text: "b")
  c = read_file(path: "a")
  d = fetch(url: "https://x")
}
"""


def test_a_test_of_tools_names_is_a_use_of_each_tool_it_matches(tmp_path: Path) -> None:
    features, path = _features(tmp_path, TOOL_TESTS)
    # a literal a condition tests tool names with is a reference of every tool it matches
    at_read = _at(TOOL_TESTS, "fs.read(path", 1)
    assert _lines(TOOL_TESTS, features.references(path, at_read)) == [
        "fs.read@1",
        "fs.@5",
        "fs.@5",
        "fs.read@7",
        "rea@7",
        "fs.read@9",
    ]
    assert "^fs[.]w@6" in _lines(TOOL_TESTS, features.references(path, _at(TOOL_TESTS, "fs.write")))
    assert _lines(TOOL_TESTS, features.references(path, _at(TOOL_TESTS, "read_file("))) == [
        "read_file@3",
        "_file@6",
        "rea@7",
        "read_file@11",
    ]
    prefix = _at(TOOL_TESTS, '"fs.")', 1)
    assert _lines(TOOL_TESTS, features.definition(path, prefix)) == ["fs.read@1", "fs.write@2"]
    # it is not one name: it is not renamed, and says why before asking for a new name
    with pytest.raises(
        RenameRefused,
        match=re.escape('`startsWith("fs.")` tests tools\' names (it matches `fs.read` and '),
    ):
        features.prepare_rename(path, prefix)
    with pytest.raises(RenameRefused, match=re.escape('`endsWith("_file")` tests tools')):
        features.rename(path, _at(TOOL_TESTS, '"_file"', 1), "x")


def test_a_tool_keeps_passing_or_failing_the_tests_of_its_name(tmp_path: Path) -> None:
    features, path = _features(tmp_path, TOOL_TESTS)
    at_read = _at(TOOL_TESTS, "fs.read(path", 1)
    # out of `startsWith("fs.")`: the policy would no longer deny it
    with pytest.raises(
        RenameRefused,
        match=re.escape(
            '`fs.read` passes `startsWith("fs.")` in policy `no_fs_twice` in `p.car`, and '
            "`files.read` would not"
        ),
    ):
        features.rename(path, at_read, "files.read")
    # into one: a policy would start to apply to it
    with pytest.raises(
        RenameRefused,
        match=re.escape(
            '`fs.fetch` would pass `startsWith("fs.")` in policy `no_fs_twice` in `p.car`, '
            "which `fetch` does not"
        ),
    ):
        features.rename(path, _at(TOOL_TESTS, "tool fetch", 5), "fs.fetch")
    with pytest.raises(RenameRefused, match=re.escape('`matches("^fs[.]w")`')):
        features.rename(path, _at(TOOL_TESTS, "fs.write"), "fs.put")
    with pytest.raises(RenameRefused, match=re.escape('would pass `contains("rea")`')):
        features.rename(path, _at(TOOL_TESTS, "tool fetch", 5), "fetch_area")
    # a name that passes and fails them as the old one did: the tests are left as they are,
    # the names compared with `action.tool` are renamed
    renamed = _renamed(features, path, at_read, "fs.read_text")
    assert 'action.tool in ["fetch", "fs.read_text"]' in renamed and "a = fs.read_text(" in renamed
    assert renamed.count('startsWith("fs.")') == 2
    renamed = _renamed(features, path, _at(renamed, "tool fetch", 5), "download")
    assert 'action.tool in ["download", "fs.read_text"]' in renamed


def test_a_name_compared_with_action_tool_written_with_escapes_is_renamed_by_hand(
    tmp_path: Path,
) -> None:
    text = """\
tool fetch(url: string)
policy no_fetch: deny when action.tool == "fe\\x74ch" || action.tool.startsWith('f\\x65')
proposal p { a = fetch(url: "x") }
"""
    features, path = _features(tmp_path, text)
    assert _lines(text, features.references(path, _at(text, "tool fetch", 5))) == [
        "fetch@1",
        '"fe\\x74ch"@2',
        "'f\\x65'@2",
        "fetch@3",
    ]
    with pytest.raises(RenameRefused, match=re.escape('`fetch` is written `"fe\\x74ch"`')):
        features.rename(path, _at(text, "tool fetch", 5), "fetcher")
    with pytest.raises(RenameRefused, match=re.escape("`fetch` passes `startsWith('f\\x65')`")):
        features.rename(path, _at(text, "tool fetch", 5), "get")


HISTORY_CONDITIONS = """\
tool fetch(url: string)
tool post(url: string, body: string)
tool ping(host: string)
policy refetch: deny fetch when history.exists(h, h.tool == "fetch" && h.params.url == params.url)
policy reposted: deny post when history.exists(h, h.tool in ["post"] && has(h.params.body))
policy any_url: deny when history.exists(h, h.params.url == "x")
policy hosts: deny when history.exists(e, e.status == "ok" && "ping" == e.tool && e.params.host == "y")
"""


def test_a_history_entrys_params_are_its_pinned_tools_parameters(tmp_path: Path) -> None:
    """`h.params.url` over `history` reads the parameter of the tool `h.tool` is pinned to in
    the condition (`h.tool == "fetch" && ...`), or of any tool: renamed with that parameter,
    refused when it may read another tool's."""
    text = HISTORY_CONDITIONS
    features, path = _features(tmp_path, text)
    fetch_url = _at(text, "url: string")
    assert _lines(text, features.references(path, fetch_url)) == [
        "url@1",
        "url@4",
        "url@4",
        "url@6",
    ]
    post_body = _at(text, "body: string")
    assert _lines(text, features.references(path, post_body)) == ["body@2", "body@5"]
    # `e.params.host`: `e.tool` is pinned by `"ping" == e.tool`, the second test of three
    renamed = _renamed(features, path, _at(text, "host: string"), "address")
    assert 'e.params.address == "y"' in renamed
    renamed = _renamed(features, path, _at(renamed, "body: string"), "payload")
    assert "has(h.params.payload)" in renamed
    # `any_url` reads `url` of an entry of any tool: fetch's and post's
    with pytest.raises(
        RenameRefused, match=r"pin its history entry's tool \(`.tool == \"fetch\"`\)"
    ):
        features.rename(path, fetch_url, "address")
    features, path = _features(
        tmp_path,
        text.replace('policy any_url: deny when history.exists(h, h.params.url == "x")\n', ""),
    )
    renamed = _renamed(features, path, fetch_url, "address")
    assert 'h.tool == "fetch" && h.params.address == params.address' in renamed
    assert "tool post(url: string" in renamed
    # a name compared with `==` is exact: `"fs.*"` is no pattern, and pins no declared tool
    globbed = 'tool fs.read(path: string)\npolicy p: deny when history.exists(h, h.tool == "fs.*" && h.params.path == "x")\n'
    features, path = _features(tmp_path, globbed)
    assert _lines(globbed, features.references(path, _at(globbed, "path: string"))) == ["path@1"]
