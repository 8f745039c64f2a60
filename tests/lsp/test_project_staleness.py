"""The editor's diagnostics stay those of `carlang check` for the same files when another file
changes (a user trial): an importer is checked again while the file it imports has syntax
errors (its findings about names the parser skipped over are judged on that text), and an
import cycle is reported in each file of it, as `carlang check .` reports it. A real LSP
client (pytest-lsp) drives `carlang lsp`; what `carlang check` says is asked of the command."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls", reason="the language server needs pygls (pip install carlang[lsp])")
pytest_lsp = pytest.importorskip("pytest_lsp", reason="pytest-lsp is not installed")

from lsprotocol import types as lsp  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities  # noqa: E402

from carlang.lsp.project import Project  # noqa: E402

#: A real language server per test, driven by a real client: with the slower tests.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PYTHONPATH = f"{ROOT}:{ROOT / 'runtime'}"
SERVER = ClientServerConfig(
    server_command=[sys.executable, "-m", "carlang", "lsp", "--debounce-ms", "10"],
    server_env={"PYTHONPATH": PYTHONPATH},
)

#: Imported files with a syntax error, and an edit that renames the tool `m.car` calls (the
#: trial's cases): `carlang check m.car` then says `deploy` is not registered.
BROKEN = [
    ('tool deploy(env: string) {\n  description "x"\n', "deploy(", "deplox("),  # typing
    ("tool (deploy(env: string) {}\n", "deploy(env", "deplox(env"),
    ("tool 1deploy(env: string) {}\n", "1deploy", "1deplox"),
    ('tool deploy(env: string) {\n  description "x\n}\n', "deploy(", "deplox("),
    ("tool deploy(env: string {}\n", "deploy(", "deplox("),
]
IMPORTER = 'import "{}"\nproposal q from "x" {{ a = deploy(env: "s") }}\n'


@pytest_lsp.fixture(config=SERVER)
async def workspace(lsp_client: LanguageClient, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A server whose workspace folder is `tmp_path`, a project (it has a carlang.toml) of
    the files the test writes before it starts."""
    (tmp_path / "carlang.toml").write_text("")
    for index, (text, _, _) in enumerate(BROKEN):
        (tmp_path / f"t{index}.car").write_text(text)
        (tmp_path / f"m{index}.car").write_text(IMPORTER.format(f"t{index}.car"))
    (tmp_path / "ca.car").write_text('import "cb.car"\ntool ta() {}\n')
    (tmp_path / "cb.car").write_text('import "ca.car"\ntool tb() {}\n')
    (tmp_path / "lib.car").write_text("tool fetch(url: string)\n")
    (tmp_path / "main.car").write_text(
        'import "lib.car"\ntool fetch(url: string)\nproposal p from "x" { a = fetch(url: "x") }\n'
    )

    @lsp_client.feature(lsp.CLIENT_REGISTER_CAPABILITY)
    def register(params: lsp.RegistrationParams) -> None:
        pass

    await lsp_client.initialize_session(
        lsp.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"), root_uri=tmp_path.as_uri()
        )
    )
    yield
    await lsp_client.shutdown_session()


def _open(client: LanguageClient, path: Path) -> str:
    uri = path.as_uri()
    client.diagnostics.pop(uri, None)  # (`_until` waits for the first publish)
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(
            text_document=lsp.TextDocumentItem(
                uri=uri, language_id="carlang", version=1, text=path.read_text()
            )
        )
    )
    return uri


def _change(client: LanguageClient, path: Path, version: int, text: str) -> None:
    """The editor's text of `path` is now `text`; it is saved too (for `carlang check`)."""
    path.write_text(text)
    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=path.as_uri(), version=version),
            content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


Shown = list[tuple[str, int, int, str]]


def _shown(diagnostics: list[lsp.Diagnostic]) -> Shown:
    """Code, line, column and message (without what the editor adds to it)."""
    return sorted(
        (str(d.code), d.range.start.line + 1, d.range.start.character + 1, d.message)
        for d in diagnostics
    )


async def _until(client: LanguageClient, path: Path, wanted: Shown) -> Shown:
    """The diagnostics published for `path` once they are `wanted` (what was published last,
    after 5 s without)."""
    uri = path.as_uri()

    async def wait() -> None:
        while uri not in client.diagnostics or _shown(list(client.diagnostics[uri])) != wanted:
            await client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)

    try:
        await asyncio.wait_for(wait(), 5)
    except TimeoutError:
        pass
    return _shown(list(client.diagnostics.get(uri, [])))


def _check(folder: Path, *files: str) -> dict[str, Shown]:
    """What `carlang check --format json FILES` says, run in `folder`, by file."""
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    run = subprocess.run(
        [sys.executable, "-m", "carlang", "check", "--format", "json", *files],
        cwd=folder, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    found: dict[str, Shown] = {}
    for d in json.loads(run.stdout)["diagnostics"]:
        (label,) = [x for x in d["labels"] if x["primary"]]
        message = d["message"] + (f" ({label['message']})" if label["message"] else "")
        message += f"\nhelp: {d['help']}" if d["help"] else ""
        found.setdefault(label["file"], []).append(
            (d["code"], label["line"], label["column"], message)
        )
    return {file: sorted(shown) for file, shown in found.items()}


@pytest.mark.asyncio
async def test_an_importer_is_checked_again_while_its_import_has_syntax_errors(
    workspace: LanguageClient, tmp_path: Path
) -> None:
    for index, (text, old, new) in enumerate(BROKEN):
        imported, importer = tmp_path / f"t{index}.car", tmp_path / f"m{index}.car"
        _open(workspace, importer)
        _open(workspace, imported)
        assert await _until(workspace, importer, []) == [], text
        # the edit changes no declaration the parser kept, nor how many errors it found:
        # only the text it skipped, which is what the importer may use
        _change(workspace, imported, 2, text.replace(old, new))
        expected = _check(tmp_path, importer.name).get(importer.name, [])
        assert [e[0] for e in expected] == ["CL0306"], text
        assert await _until(workspace, importer, expected) == expected, text
        # and back: the error goes
        _change(workspace, imported, 3, text)
        assert await _until(workspace, importer, []) == [], text


@pytest.mark.asyncio
async def test_import_cycles_are_reported_in_each_file_as_check_reports_them(
    workspace: LanguageClient, tmp_path: Path
) -> None:
    ca, cb = tmp_path / "ca.car", tmp_path / "cb.car"
    _open(workspace, ca)
    _open(workspace, cb)
    expected = _check(tmp_path, ".")
    assert [e[:3] for e in expected["ca.car"]] == [("CL0207", 2, 6), ("CL0210", 1, 8)]
    assert [e[:3] for e in expected["cb.car"]] == [("CL0207", 2, 6), ("CL0210", 1, 8)]
    assert await _until(workspace, ca, expected["ca.car"]) == expected["ca.car"]
    assert await _until(workspace, cb, expected["cb.car"]) == expected["cb.car"]
    # cb.car stops importing ca.car: the cycle goes from both files
    _change(workspace, cb, 2, "tool tb() {}\n")
    expected = _check(tmp_path, ".")
    assert [e[:3] for e in expected["ca.car"]] == [("CL0207", 2, 6)]
    assert await _until(workspace, ca, expected["ca.car"]) == expected["ca.car"]
    assert [e[:3] for e in expected["cb.car"]] == [("CL0207", 1, 6)]
    assert await _until(workspace, cb, expected["cb.car"]) == expected["cb.car"]


@pytest.mark.asyncio
async def test_a_layout_edit_moves_what_an_importers_findings_point_at(
    workspace: LanguageClient, tmp_path: Path
) -> None:
    """`fetch` is declared twice: main.car's error points at lib.car's declaration too, and a
    line added above it there moves that place."""
    lib, main = tmp_path / "lib.car", tmp_path / "main.car"
    uri = _open(workspace, main)
    _open(workspace, lib)

    def related() -> list[tuple[str, int]] | None:
        if uri not in workspace.diagnostics:
            return None
        found = workspace.diagnostics[uri]
        return [
            (r.location.uri, r.location.range.start.line)
            for d in found
            for r in d.related_information or []
        ]

    async def until(wanted: list[tuple[str, int]]) -> list[tuple[str, int]] | None:
        async def wait() -> None:
            while related() != wanted:
                await workspace.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)

        try:
            await asyncio.wait_for(wait(), 5)
        except TimeoutError:
            pass
        return related()

    assert await until([(lib.as_uri(), 0)]) == [(lib.as_uri(), 0)]
    _change(workspace, lib, 2, "# the tools\n\ntool fetch(url: string)\n")
    assert await until([(lib.as_uri(), 2)]) == [(lib.as_uri(), 2)]


def test_what_an_edit_of_an_imported_file_checks_again(tmp_path: Path) -> None:
    """In process: the importer is checked again after any edit of a file with a syntax
    error, but not after a comment edit of one without (nothing it sees changed)."""
    lib, main = (tmp_path / "lib.car").resolve(), (tmp_path / "main.car").resolve()
    lib.write_text("tool fetch(url: string)\n")
    main.write_text('import "lib.car"\nproposal p from "x" { a = fetch(url: "x") }\n')
    project = Project(tmp_path)
    project.scan()
    project.set_text(main, main.read_text())
    project.set_text(lib, lib.read_text())
    project.diagnostics(main)
    assert project.set_text(lib, "# tools\ntool fetch(url: string)\n") == [lib]
    broken = "# tools\ntool fetch(url: string)\ntool x(\n"
    assert project.set_text(lib, broken) == [lib, main]
    assert project.set_text(lib, broken.replace("x(", "y(")) == [lib, main]
    assert project.set_text(lib, broken.replace("# tools", "# the tools")) == [lib, main]
