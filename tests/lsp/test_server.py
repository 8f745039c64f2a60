"""End to end: a real LSP client (pytest-lsp) drives `carlang lsp` over stdio, on the examples
(the server's workspace folder is examples/), on broken files, and on a workspace made for the
test (a project inside it, compared with `carlang check`)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pygls", reason="the language server needs pygls (pip install carlang[lsp])")
pytest_lsp = pytest.importorskip("pytest_lsp", reason="pytest-lsp is not installed")

from lsprotocol import types as lsp  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
RELEASE = EXAMPLES / "release" / "release.car"
OPS = EXAMPLES / "shared" / "ops_tools.car"
PYTHONPATH = f"{ROOT}:{ROOT / 'runtime'}"
#: release.car without the pragma that accepts its intended approval (CL0521 at 65:3).
PRAGMA = "  # carlang: allow CL0521"
UNALLOWED = RELEASE.read_text().replace(PRAGMA, "")


@pytest_lsp.fixture(
    scope="module",
    config=ClientServerConfig(
        server_command=[sys.executable, "-m", "carlang", "lsp", "--debounce-ms", "10"],
        server_env={"PYTHONPATH": PYTHONPATH},
    ),
)
async def client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    await _initialize(lsp_client)
    yield
    await lsp_client.shutdown_session()


#: What the server asked the client to register (`client/registerCapability`), per client.
REGISTERED: dict[int, list[lsp.Registration]] = {}


async def _initialize(lsp_client: LanguageClient) -> None:
    """Start a session as VS Code does, on the examples folder (answering the server's
    `client/registerCapability`, as VS Code does)."""
    registered = REGISTERED.setdefault(id(lsp_client), [])

    @lsp_client.feature(lsp.CLIENT_REGISTER_CAPABILITY)
    def register(params: lsp.RegistrationParams) -> None:
        registered.extend(params.registrations)

    await lsp_client.initialize_session(
        lsp.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            root_uri=EXAMPLES.as_uri(),
        )
    )


def _position(text: str, needle: str, delta: int = 0, nth: int = 0) -> lsp.Position:
    index = -1
    for _ in range(nth + 1):
        index = text.index(needle, index + 1)
    index += delta
    line = text.count("\n", 0, index)
    return lsp.Position(line=line, character=index - (text.rfind("\n", 0, index) + 1))


async def _open(client: LanguageClient, path: Path, text: str | None = None) -> str:
    uri = path.as_uri()
    client.diagnostics.pop(uri, None)
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(
            text_document=lsp.TextDocumentItem(
                uri=uri, language_id="carlang", version=1, text=text or path.read_text()
            )
        )
    )
    await _diagnostics(client, uri)
    return uri


async def _diagnostics(client: LanguageClient, uri: str) -> list[lsp.Diagnostic]:
    while True:
        await client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        if uri in client.diagnostics:
            return list(client.diagnostics[uri])


async def _until(client: LanguageClient, uri: str, wanted) -> list[lsp.Diagnostic]:  # type: ignore[no-untyped-def]
    """Wait until the published diagnostics of `uri` satisfy `wanted` (5 s at most)."""

    async def wait() -> list[lsp.Diagnostic]:
        while uri not in client.diagnostics or not wanted(list(client.diagnostics[uri])):
            await client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        return list(client.diagnostics[uri])

    return await asyncio.wait_for(wait(), 5)


def _change(client: LanguageClient, uri: str, version: int, text: str) -> None:
    client.diagnostics.pop(uri, None)
    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


def _doc(uri: str) -> lsp.TextDocumentIdentifier:
    return lsp.TextDocumentIdentifier(uri=uri)


@pytest.mark.asyncio(loop_scope="module")
async def test_example_diagnostics_match_check(client: LanguageClient) -> None:
    # `carlang check` leaves out the warning the pragma on line 65 accepts, and so does the
    # editor (the project's carlang.toml, `accept` and pragmas, as the CLI reads them)
    assert PRAGMA in RELEASE.read_text()
    uri = await _open(client, RELEASE)
    assert list(client.diagnostics[uri]) == []
    await _open(client, RELEASE, UNALLOWED)
    found = [
        (d.code, d.range.start.line + 1, d.range.start.character + 1)
        for d in client.diagnostics[uri]
    ]
    # `carlang check` without the pragma: release.car:65:3: warning[CL0521] (prod needs approval)
    assert found == [("CL0521", 65, 3)]
    (diagnostic,) = client.diagnostics[uri]
    assert diagnostic.severity == lsp.DiagnosticSeverity.Warning
    assert "prod_approval" in diagnostic.message


@pytest.mark.asyncio(loop_scope="module")
async def test_edit_publishes_new_diagnostics_with_help_and_related(client: LanguageClient) -> None:
    text = RELEASE.read_text()
    uri = await _open(client, RELEASE)
    broken = text.replace(
        "  gate = assert tests_passed == true after test",
        "  gate = assert tests_passed == true after test, staging",
    )
    broken = broken.replace('fetch(url: "https://ci', 'fetchh(url: "https://ci')
    _change(client, uri, 2, broken)
    # the version compiled goes with the diagnostics, so an editor can drop stale ones
    while True:
        params = await client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        if params.uri == uri:
            break
    assert params.version == 2
    found = (
        await _diagnostics(client, uri)
        if uri not in client.diagnostics
        else list(client.diagnostics[uri])
    )
    codes = {(d.code, d.range.start.line + 1, d.range.start.character + 1) for d in found}
    assert ("CL0306", 49, 9) in codes  # unknown tool, at the name
    unknown = next(d for d in found if d.code == "CL0306")
    assert "did you mean `fetch`?" in unknown.message
    cycle = next(d for d in found if d.code == "CL0303")
    assert cycle.related_information, "a cycle shows the other end"
    # the did-you-mean is a quick fix
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=_doc(uri),
            range=unknown.range,
            context=lsp.CodeActionContext(diagnostics=[unknown]),
        )
    )
    titles = [a.title for a in actions or [] if isinstance(a, lsp.CodeAction)]
    assert "Change to `fetch`" in titles and "Declare tool `fetchh`" in titles
    fix = next(
        a for a in actions or [] if isinstance(a, lsp.CodeAction) and a.title == "Change to `fetch`"
    )
    assert fix.edit is not None and fix.edit.changes is not None
    (edit,) = fix.edit.changes[uri]
    assert edit.new_text == "fetch" and edit.range == unknown.range
    _change(client, uri, 3, text)
    assert [d.code for d in await _diagnostics(client, uri)] == []


@pytest.mark.asyncio(loop_scope="module")
async def test_syntax_error_and_dependants(client: LanguageClient) -> None:
    uri = await _open(client, RELEASE)
    ops = await _open(client, OPS)
    assert (
        list(client.diagnostics[ops]) == []
    )  # fetch and notify are used by the files importing it
    ops_text = OPS.read_text()
    # renaming `fetch` in the imported file breaks release.car, which is re-diagnosed
    _change(client, ops, 2, ops_text.replace("tool fetch(", "tool grab("))
    await _until(client, uri, lambda ds: "CL0306" in {d.code for d in ds})
    _change(client, ops, 3, ops_text + "\ntool broken(\n")
    syntax = await _until(client, ops, lambda ds: any(d.code.startswith("CL01") for d in ds))
    assert {d.code for d in syntax} <= {"CL0102", "CL0103"}
    _change(client, ops, 4, ops_text)
    await _until(client, uri, lambda ds: ds == [])


@pytest.mark.asyncio(loop_scope="module")
async def test_hover(client: LanguageClient) -> None:
    text = UNALLOWED  # a warning to explain
    uri = await _open(client, RELEASE, text)
    tool = await client.text_document_hover_async(
        lsp.HoverParams(
            text_document=_doc(uri), position=_position(text, 'deploy(env: "staging"', 1)
        )
    )
    assert tool is not None and isinstance(tool.contents, lsp.MarkupContent)
    assert 'tool deploy(env: "staging" | "prod", version: string)' in tool.contents.value
    assert "reversibility: compensable" in tool.contents.value
    state = await client.text_document_hover_async(
        lsp.HoverParams(text_document=_doc(uri), position=_position(text, "reads build.ok", 7))
    )
    assert state is not None and isinstance(state.contents, lsp.MarkupContent)
    assert "type `any`" in state.contents.value and "written by: `get`" in state.contents.value
    cel = await client.text_document_hover_async(
        lsp.HoverParams(text_document=_doc(uri), position=_position(text, "params.env ==", 8))
    )
    assert cel is not None and isinstance(cel.contents, lsp.MarkupContent)
    assert cel.contents.value == "`params.env`: `string`"
    policy = await client.text_document_hover_async(
        lsp.HoverParams(
            text_document=_doc(uri), position=_position(text, "prod_approval", 2, nth=0)
        )
    )
    assert policy is not None and isinstance(policy.contents, lsp.MarkupContent)
    assert "require_approval deploy" in policy.contents.value
    diagnostic = await client.text_document_hover_async(
        lsp.HoverParams(text_document=_doc(uri), position=_position(text, "prod = deploy", 1))
    )
    assert diagnostic is not None and isinstance(diagnostic.contents, lsp.MarkupContent)
    assert "CL0521** policy-requires-approval" in diagnostic.contents.value


@pytest.mark.asyncio(loop_scope="module")
async def test_definition_and_references(client: LanguageClient) -> None:
    text = RELEASE.read_text()
    uri = await _open(client, RELEASE)
    at_fetch = _position(text, 'fetch(url: "https://ci', 1)
    (definition,) = (
        await client.text_document_definition_async(
            lsp.DefinitionParams(text_document=_doc(uri), position=at_fetch)
        )
        or []
    )
    assert isinstance(definition, lsp.Location)
    assert definition.uri == OPS.as_uri()
    assert definition.range.start == _position(OPS.read_text(), "tool fetch", 5)
    imported = await client.text_document_definition_async(
        lsp.DefinitionParams(text_document=_doc(uri), position=_position(text, "../shared", 2))
    )
    assert [loc.uri for loc in imported or [] if isinstance(loc, lsp.Location)] == [OPS.as_uri()]
    after = await client.text_document_definition_async(
        lsp.DefinitionParams(text_document=_doc(uri), position=_position(text, "after staging", 7))
    )
    assert [loc.range.start for loc in after or [] if isinstance(loc, lsp.Location)] == [
        _position(text, "staging = deploy")
    ]
    param = await client.text_document_definition_async(
        lsp.DefinitionParams(
            text_document=_doc(uri), position=_position(text, 'version: "1.4.2") after staging', 1)
        )
    )
    assert [loc.range.start for loc in param or [] if isinstance(loc, lsp.Location)] == [
        _position(text, "version: string) {")
    ]
    hover = await client.text_document_hover_async(
        lsp.HoverParams(
            text_document=_doc(uri), position=_position(text, 'version: "1.4.2") after staging', 1)
        )
    )
    assert hover is not None and isinstance(hover.contents, lsp.MarkupContent)
    assert (
        "version: string" in hover.contents.value
        and "parameter of tool `deploy`" in hover.contents.value
    )
    references = await client.text_document_references_async(
        lsp.ReferenceParams(
            text_document=_doc(uri),
            position=_position(text, "tests_passed: bool"),
            context=lsp.ReferenceContext(include_declaration=False),
        )
    )
    lines = sorted(r.range.start.line + 1 for r in references or [] if r.uri == uri)
    # the capability's `state allow`, the effect of `test`, the assertion, a `requires`
    assert lines == [28, 56, 59, 61]


@pytest.mark.asyncio(loop_scope="module")
async def test_completion(client: LanguageClient) -> None:
    text = RELEASE.read_text()
    uri = await _open(client, RELEASE)

    async def labels(position: lsp.Position) -> list[str]:
        result = await client.text_document_completion_async(
            lsp.CompletionParams(text_document=_doc(uri), position=position)
        )
        items = result.items if isinstance(result, lsp.CompletionList) else result or []
        return [item.label for item in items]

    # a tool name after `name = `
    tools = await labels(_position(text, '= deploy(env: "staging"', 2))
    assert {"fetch", "deploy", "run_tests", "notify", "set", "read", "assert"} <= set(tools)
    # parameter names inside a call, then the values of an enum parameter
    assert await labels(_position(text, 'env: "staging", version', 0)) == ["env", "version"]
    assert await labels(_position(text, '"staging", version', 0)) == ['"staging"', '"prod"']
    # state keys after `reads`
    assert {"tests_passed", "build.", "deployed."} <= set(
        await labels(_position(text, "build.ok", 0))
    )
    # CEL: variables, then the targeted tools' parameters after `params.`
    cel = await labels(_position(text, 'params.env == "prod"\n', 0))
    assert {"action", "params", "state", "history"} <= set(cel) and "startsWith" not in cel
    # functions called by name; not `_?._`, the function `a.?b` stands for
    assert "optional.of" in cel and "_?._" not in cel
    assert {"env", "version"} <= set(await labels(_position(text, 'env == "prod"\n', 0)))
    # keywords inside an action body
    assert "requires" in await labels(_position(text, "    retry 3", 4))


@pytest.mark.asyncio(loop_scope="module")
async def test_formatting_symbols_and_rename(client: LanguageClient) -> None:
    text = RELEASE.read_text()
    messy = text.replace("  retry 3\n", "  retry    3\n").replace(
        "tool deploy(env:", "tool   deploy(env:"
    )
    uri = await _open(client, RELEASE, messy)
    edits = await client.text_document_formatting_async(
        lsp.DocumentFormattingParams(
            text_document=_doc(uri), options=lsp.FormattingOptions(tab_size=2, insert_spaces=True)
        )
    )
    assert edits is not None and len(edits) == 2
    assert {e.new_text.strip() for e in edits} == {
        "retry 3",
        'tool deploy(env: "staging" | "prod", version: string) {',
    }
    ranged = await client.text_document_range_formatting_async(
        lsp.DocumentRangeFormattingParams(
            text_document=_doc(uri),
            range=lsp.Range(
                start=lsp.Position(line=0, character=0), end=lsp.Position(line=12, character=0)
            ),
            options=lsp.FormattingOptions(tab_size=2, insert_spaces=True),
        )
    )
    assert [e.new_text.strip() for e in ranged or []] == [
        'tool deploy(env: "staging" | "prod", version: string) {'
    ]
    symbols = await client.text_document_document_symbol_async(
        lsp.DocumentSymbolParams(text_document=_doc(uri))
    )
    names = [s.name for s in symbols or [] if isinstance(s, lsp.DocumentSymbol)]
    assert names[:4] == ["run_tests", "deploy", "rollback_deploy", "state"] and "release" in names
    release = next(
        s for s in symbols or [] if isinstance(s, lsp.DocumentSymbol) and s.name == "release"
    )
    assert [c.name for c in release.children or []] == [
        "get",
        "test",
        "gate",
        "staging",
        "prod",
        "record",
        "announce",
    ]
    rename = await client.text_document_rename_async(
        lsp.RenameParams(
            text_document=_doc(uri),
            position=_position(messy, "tests_passed: bool"),
            new_name="suite_ok",
        )
    )
    assert rename is not None and rename.changes is not None
    assert len(rename.changes[uri]) == 5  # declaration, capability, effect, assertion, requires
    assert {e.new_text for e in rename.changes[uri]} == {"suite_ok"}
    tool = await client.text_document_rename_async(
        lsp.RenameParams(
            text_document=_doc(uri), position=_position(messy, "fetch(url"), new_name="download"
        )
    )
    assert tool is not None and tool.changes is not None
    assert OPS.as_uri() in tool.changes  # the declaration is in the imported file
    assert (EXAMPLES / "release" / "release_test.car").as_uri() in tool.changes


@pytest.mark.asyncio(loop_scope="module")
async def test_semantic_tokens(client: LanguageClient) -> None:
    text = RELEASE.read_text()
    uri = await _open(client, RELEASE)
    tokens = await client.text_document_semantic_tokens_full_async(
        lsp.SemanticTokensParams(text_document=_doc(uri))
    )
    assert tokens is not None and len(tokens.data) % 5 == 0
    decoded, line, start = [], 0, 0
    lines = text.split("\n")
    for i in range(0, len(tokens.data), 5):
        delta_line, delta_start, length, kind, modifiers = tokens.data[i : i + 5]
        line += delta_line
        start = start + delta_start if delta_line == 0 else delta_start
        decoded.append((lines[line][start : start + length], kind, modifiers))
    assert ("run_tests", 0, 1) in decoded  # the tool's declaration: a function, declared
    assert ("tests_passed", 2, 2) in decoded  # written by an effect: a property, modified
    assert ("release_bot", 4, 0) in decoded  # a capability named by `under`
    assert ("gate", 7, 1) in decoded and ("gate", 7, 0) in decoded  # an action, then its use


@pytest.mark.asyncio(loop_scope="module")
async def test_rename_refusals_are_lsp_errors_with_the_reason(client: LanguageClient) -> None:
    from pygls.exceptions import JsonRpcException

    text = RELEASE.read_text()
    uri = await _open(client, RELEASE)
    at_prod = _position(text, "prod = deploy", 1)
    prepared = await client.text_document_prepare_rename_async(
        lsp.PrepareRenameParams(text_document=_doc(uri), position=at_prod)
    )
    assert prepared == lsp.Range(
        start=_position(text, "prod = deploy"), end=_position(text, "prod = deploy", 4)
    )
    keyword = await client.text_document_prepare_rename_async(
        lsp.PrepareRenameParams(text_document=_doc(uri), position=_position(text, "proposal", 2))
    )
    assert keyword is None  # nothing to rename: the editor says so before asking for a name
    refusals = {
        "1abc": (lsp.ErrorCodes.InvalidParams, "`1abc` is not a valid action name: "),
        "staging": (lsp.LSPErrorCodes.RequestFailed, "`staging` is already an action in this"),
    }
    for new_name, (code, message) in refusals.items():
        with pytest.raises(JsonRpcException) as refused:
            await client.text_document_rename_async(
                lsp.RenameParams(text_document=_doc(uri), position=at_prod, new_name=new_name)
            )
        assert refused.value.code == code and refused.value.message.startswith(message)
        assert "Error" not in refused.value.message and refused.value.data is None


@pytest.mark.asyncio(loop_scope="module")
async def test_highlights_and_a_refused_prepare_rename(client: LanguageClient) -> None:
    from pygls.exceptions import JsonRpcException

    text = RELEASE.read_text()
    uri = await _open(client, RELEASE)
    # deploy's `env`: its declaration, its policies' `params.env`, the calls that pass it
    # (not rollback_deploy's `env`)
    highlights = await client.text_document_document_highlight_async(
        lsp.DocumentHighlightParams(
            text_document=_doc(uri), position=_position(text, "params.env ==", 7)
        )
    )
    assert sorted((h.range.start.line + 1, h.kind) for h in highlights or []) == [  # fmt: skip
        (9, lsp.DocumentHighlightKind.Text),
        (39, lsp.DocumentHighlightKind.Read),
        (41, lsp.DocumentHighlightKind.Read),
        (60, lsp.DocumentHighlightKind.Read),
        (65, lsp.DocumentHighlightKind.Read),
    ]
    # a state key pattern: the editor says why before asking for a new name
    with pytest.raises(JsonRpcException) as refused:
        await client.text_document_prepare_rename_async(
            lsp.PrepareRenameParams(
                text_document=_doc(uri), position=_position(text, "build.*: any")
            )
        )
    assert refused.value.code == lsp.LSPErrorCodes.RequestFailed
    assert refused.value.message.startswith("`build.*` is a pattern of state keys, not one name")


@pytest.mark.asyncio(loop_scope="module")
async def test_an_untitled_document_is_a_program_on_its_own(client: LanguageClient) -> None:
    uri = "untitled:Untitled-1"
    text = 'import "../shared/ops_tools.car"\ntool ping(host: string)\ntool ping(host: string)\n'
    client.diagnostics.pop(uri, None)
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(
            text_document=lsp.TextDocumentItem(uri=uri, language_id="carlang", version=1, text=text)
        )
    )
    found = await _until(client, uri, lambda ds: len(ds) > 0)
    imported = next(d for d in found if d.code == "CL0209")
    assert "an unsaved document is in no folder to import from" in imported.message
    twice = next(d for d in found if d.code == "CL0201")
    assert [r.location.uri for r in twice.related_information or []] == [uri]
    hover = await client.text_document_hover_async(
        lsp.HoverParams(text_document=_doc(uri), position=lsp.Position(line=1, character=6))
    )
    assert hover is not None and isinstance(hover.contents, lsp.MarkupContent)
    assert "tool ping(host: string)" in hover.contents.value
    definition = await client.text_document_definition_async(
        lsp.DefinitionParams(text_document=_doc(uri), position=lsp.Position(line=2, character=6))
    )
    assert {loc.uri for loc in definition or [] if isinstance(loc, lsp.Location)} == {uri}


#: Tools named in a test's history and tested by prefix in conditions.
NAMES_IN_TESTS = """\
tool fs.read(path: string)
tool fetch(url: string)
policy fetch_once: deny fetch when history.exists(h, h.tool == "fetch")
policy no_fs: deny when action.tool.startsWith("fs.") && history.exists(h, h.tool == "x")
proposal p { a = fetch(url: "x")  b = fs.read(path: "y") }
test "fetched" {
  action fetch(url: "x")
  history [{id: "a", type: "tool_call", tool: "fetch", params: {url: "x"}, status: "succeeded"}]
  expect deny by fetch_once
}
"""


@pytest.mark.asyncio(loop_scope="module")
async def test_names_in_a_tests_history_and_tool_tests(client: LanguageClient) -> None:
    from pygls.exceptions import JsonRpcException

    text = NAMES_IN_TESTS
    uri = "untitled:Untitled-2"
    client.diagnostics.pop(uri, None)
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(
            text_document=lsp.TextDocumentItem(uri=uri, language_id="carlang", version=1, text=text)
        )
    )
    assert await _until(client, uri, lambda ds: True) == []

    def shown(ranges: list[lsp.Range]) -> list[tuple[int, str]]:
        lines = text.split("\n")
        return [(r.start.line + 1, lines[r.start.line][r.start.character : r.end.character]) for r in ranges]  # fmt: skip

    async def references(position: lsp.Position) -> list[tuple[int, str]]:
        found = await client.text_document_references_async(
            lsp.ReferenceParams(
                text_document=_doc(uri),
                position=position,
                context=lsp.ReferenceContext(include_declaration=True),
            )
        )
        return shown([location.range for location in found or []])

    # the history entry's tool and the keys of its params are uses of the tool and parameter
    assert (8, "fetch") in await references(_position(text, "tool fetch", 5))
    assert await references(_position(text, "url: string")) == [
        (2, "url"),
        (5, "url"),
        (7, "url"),
        (8, "url"),
    ]
    # `startsWith("fs.")` is a use of every tool it matches
    assert await references(_position(text, "fs.read(path")) == [
        (1, "fs.read"),
        (4, "fs."),
        (5, "fs.read"),
    ]
    renamed = await client.text_document_rename_async(
        lsp.RenameParams(
            text_document=_doc(uri), position=_position(text, "url: string"), new_name="address"
        )
    )
    assert renamed is not None and renamed.changes is not None
    assert sorted(e.range.start.line + 1 for e in renamed.changes[uri]) == [2, 5, 7, 8]
    tool = await client.text_document_rename_async(
        lsp.RenameParams(
            text_document=_doc(uri), position=_position(text, "tool fetch", 5), new_name="get"
        )
    )
    assert tool is not None and tool.changes is not None
    edits = shown([e.range for e in tool.changes[uri]])
    assert edits == [(line, "fetch") for line in (2, 3, 3, 5, 7, 8)]
    # the prefix is no name: it is not renamed, and the tools it matches keep matching it
    with pytest.raises(JsonRpcException) as refused:
        await client.text_document_prepare_rename_async(
            lsp.PrepareRenameParams(text_document=_doc(uri), position=_position(text, '"fs."', 1))
        )
    assert refused.value.message.startswith('`startsWith("fs.")` tests tools\' names')
    with pytest.raises(JsonRpcException) as refused:
        await client.text_document_rename_async(
            lsp.RenameParams(
                text_document=_doc(uri),
                position=_position(text, "fs.read(path"),
                new_name="files.read",
            )
        )
    assert refused.value.code == lsp.LSPErrorCodes.RequestFailed
    assert refused.value.message.startswith('`fs.read` passes `startsWith("fs.")` in policy')
    kept = await client.text_document_rename_async(
        lsp.RenameParams(
            text_document=_doc(uri), position=_position(text, "fs.read(path"), new_name="fs.load"
        )
    )
    assert kept is not None and kept.changes is not None and len(kept.changes[uri]) == 2


#: A document the planted bug of failing_server.py crashes on (by its name, Crashing-1).
CRASHING = 'tool query(sql: string)\ndeny_tool_param_matching query.sql "x" message "x"\n'
INTERNAL = "internal error in carlang's language server: "


@pytest_lsp.fixture(
    scope="module",
    config=ClientServerConfig(
        server_command=[sys.executable, str(Path(__file__).with_name("failing_server.py"))],
        server_env={"PYTHONPATH": PYTHONPATH},
    ),
)
async def failing(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    await _initialize(lsp_client)
    yield
    await lsp_client.shutdown_session()


async def _logged(client: LanguageClient, count: int) -> list[str]:
    """The text of the client's log messages, once there are `count` (5 s at most)."""

    async def wait() -> None:
        while len(client.log_messages) < count:
            await client.wait_for_notification(lsp.WINDOW_LOG_MESSAGE)

    await asyncio.wait_for(wait(), 5)
    return [m.message for m in client.log_messages]


@pytest.mark.asyncio(loop_scope="module")
async def test_a_crash_in_a_request_is_an_internal_error_without_a_traceback(
    failing: LanguageClient,
) -> None:
    from pygls.exceptions import JsonRpcException

    client = failing

    uri = "untitled:Crashing-1"
    before = len(client.log_messages)
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(
            text_document=lsp.TextDocumentItem(
                uri=uri, language_id="carlang", version=1, text=CRASHING
            )
        )
    )
    # the diagnostics of the document cannot be published: the user is told why, once
    (published,) = (await _logged(client, before + 1))[before:]
    assert published.startswith(f"{INTERNAL}diagnosing Crashing-1 failed with UnicodeEncodeError:")
    assert published.endswith("; please report it") and "Traceback" not in published
    with pytest.raises(JsonRpcException) as failed:
        await client.text_document_hover_async(
            lsp.HoverParams(text_document=_doc(uri), position=lsp.Position(line=1, character=40))
        )
    error = failed.value
    assert error.code == lsp.ErrorCodes.InternalError and error.data is None
    assert error.message.startswith(
        f"{INTERNAL}textDocument/hover failed with UnicodeEncodeError: 'utf-8' codec"
    )
    assert error.message.endswith("; please report it") and "Traceback" not in error.message
    # logged once, in the same words; nothing shown in a pop-up
    assert (await _logged(client, before + 2))[before + 1 :] == [error.message]
    assert not [m for m in client.messages if INTERNAL in m.message]
    # the server goes on answering
    symbols = await client.text_document_document_symbol_async(
        lsp.DocumentSymbolParams(text_document=_doc(uri))
    )
    assert [s.name for s in symbols or []][:1] == ["query"]


@pytest.mark.asyncio(loop_scope="module")
async def test_a_crash_in_a_notification_is_logged_and_the_server_goes_on(
    failing: LanguageClient,
) -> None:
    client = failing
    before = len(client.log_messages)
    # a URI that names no file is no change on disk; then the planted bug: the handler fails,
    # and nothing answers a notification, so the log is all the user gets
    client.workspace_did_change_watched_files(
        lsp.DidChangeWatchedFilesParams(
            changes=[
                lsp.FileEvent(uri="file:///nul%00.car", type=lsp.FileChangeType.Changed),
                lsp.FileEvent(uri="file:///tmp/Crashing.car", type=lsp.FileChangeType.Changed),
            ]
        )
    )
    (logged,) = (await _logged(client, before + 1))[before:]
    assert logged == (
        f"{INTERNAL}workspace/didChangeWatchedFiles failed with UnicodeEncodeError: 'utf-8'"
        " codec can't encode character '\\udc00' in position 0: surrogates not allowed;"
        " please report it"
    )
    uri = await _open(client, RELEASE)
    assert list(client.diagnostics[uri]) == []
    assert len(client.log_messages) == before + 1


SERVER = ClientServerConfig(
    server_command=[sys.executable, "-m", "carlang", "lsp", "--debounce-ms", "10"],
    server_env={"PYTHONPATH": PYTHONPATH},
)


@pytest_lsp.fixture(config=SERVER)
async def workspace(lsp_client: LanguageClient, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A server whose workspace folder is `tmp_path`: app/ is a project of its own (it has a
    carlang.toml) that imports ../shared/tools.car, outside it."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "tools.car").write_text("tool fetch(url: string)\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "carlang.toml").write_text("strict = false\n")
    (tmp_path / "app" / "main.car").write_text(
        'import "../shared/tools.car"\nproposal p {\n  get = fetch(url: "https://x")\n}\n'
    )

    @lsp_client.feature(lsp.CLIENT_REGISTER_CAPABILITY)
    def register(params: lsp.RegistrationParams) -> None:
        pass  # as VS Code does: it watches the files asked for

    await lsp_client.initialize_session(
        lsp.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"), root_uri=tmp_path.as_uri()
        )
    )
    yield
    await lsp_client.shutdown_session()


def _check(folder: Path, file: str) -> list[tuple[str, int, int, str]]:
    """What `carlang check --format json FILE` says, run in `folder` (as the editor is opened
    on it): each diagnostic as the editor shows it (code, line, column, message)."""
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    run = subprocess.run(
        [sys.executable, "-m", "carlang", "check", "--format", "json", file],
        cwd=folder, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    found = []
    for d in json.loads(run.stdout)["diagnostics"]:
        (label,) = [x for x in d["labels"] if x["primary"]]
        message = f"{d['message']} ({label['message']})\nhelp: {d['help']}"
        found.append((d["code"], label["line"], label["column"], message))
    return found


def _shown(diagnostics: list[lsp.Diagnostic]) -> list[tuple[str, int, int, str]]:
    return [
        (str(d.code), d.range.start.line + 1, d.range.start.character + 1, d.message)
        for d in diagnostics
    ]


@pytest.mark.asyncio
async def test_each_file_has_the_root_carlang_check_gives_it(
    workspace: LanguageClient, tmp_path: Path
) -> None:
    # the workspace folder holds both files, but app/ is a project: its import of
    # ../shared/tools.car leaves its root, for the editor as for the command line
    main = tmp_path / "app" / "main.car"
    uri = await _open(workspace, main)
    expected = _check(tmp_path, "app/main.car")
    assert [e[:3] for e in expected] == [("CL0211", 1, 8)]
    assert _shown(list(workspace.diagnostics[uri])) == expected
    # without the carlang.toml the workspace folder is the root (the working directory's
    # place): the import is inside it, and nothing is said, there either
    (tmp_path / "app" / "carlang.toml").unlink()
    workspace.diagnostics.pop(uri, None)
    workspace.workspace_did_change_watched_files(
        lsp.DidChangeWatchedFilesParams(
            changes=[
                lsp.FileEvent(
                    uri=(tmp_path / "app" / "carlang.toml").as_uri(),
                    type=lsp.FileChangeType.Deleted,
                )
            ]
        )
    )
    assert await _diagnostics(workspace, uri) == []
    assert _check(tmp_path, "app/main.car") == []


@pytest.mark.asyncio(loop_scope="module")
async def test_the_server_asks_to_hear_of_carlang_toml_changes(client: LanguageClient) -> None:
    """An edited carlang.toml (its root, `accept`, `strict`) changes every file's diagnostics:
    the server asks the client to report it, with the .car files (it was noticed only at the
    next edit in clients that watch what the server asks for)."""
    for _ in range(50):  # (the request may still be on its way)
        registered = [r for rs in REGISTERED.values() for r in rs]
        if registered:
            break
        await asyncio.sleep(0.1)
    watching = [r for r in registered if r.method == lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES]
    assert watching  # (one per session started in this module so far)
    for registration in watching:
        options: Any = registration.register_options
        watchers = options["watchers"] if isinstance(options, dict) else options.watchers
        globs = {w["globPattern"] if isinstance(w, dict) else w.glob_pattern for w in watchers}
        assert globs == {"**/*.car", "**/carlang.toml"}


@pytest.mark.parametrize(
    ("framed", "said"),
    [
        (b'Content-Length: 5\r\n\r\n{"a":', "carlang lsp: a message that is not JSON"),
        (
            b"Content-Length: 99999999999999999999\r\n\r\n{}",
            "carlang lsp: a message of 99999999999999999999 bytes (its Content-Length) is past",
        ),
    ],
)
def test_a_garbled_message_is_one_line_on_stderr_not_a_traceback(framed: bytes, said: str) -> None:
    """A body that is not JSON, and a Content-Length past any message (the read was an
    internal OverflowError that killed the server): one line on stderr each, and the end of
    input with no `shutdown` before it, status 1 (as LSP asks of `exit` without one)."""
    run = subprocess.run(
        [sys.executable, "-m", "carlang", "lsp"],
        input=framed,
        env={**os.environ, "PYTHONPATH": PYTHONPATH},
        capture_output=True,
        timeout=60,
        check=False,
    )
    stderr = run.stderr.decode()
    assert run.returncode == 1, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    assert said in stderr


@pytest.mark.slow  # (a process each: the default run stays under three minutes)
@pytest.mark.parametrize(("shutdown", "status"), [(True, 0), (False, 1)])
def test_exit_ends_the_server_with_the_status_lsp_asks(shutdown: bool, status: int) -> None:
    """`exit` after `shutdown` ends the server with 0, without it with 1 (it ended with 0)."""

    def framed(message: dict[str, object]) -> bytes:
        body = json.dumps(message).encode()
        return b"Content-Length: %d\r\n\r\n" % len(body) + body

    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}},
        {"jsonrpc": "2.0", "method": "initialized", "params": {}},
        *([{"jsonrpc": "2.0", "id": 2, "method": "shutdown"}] if shutdown else []),
        {"jsonrpc": "2.0", "method": "exit"},
    ]
    done = subprocess.run(
        [sys.executable, "-m", "carlang", "lsp"],
        input=b"".join(map(framed, messages)),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == status, done.stderr
