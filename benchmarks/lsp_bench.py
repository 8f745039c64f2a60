"""Language server latency: `carlang lsp` in a subprocess, driven over stdio by pygls' client as
an editor would. Each sample is the wall time from sending an edit (`didChange`, one character)
to receiving the diagnostics it causes (`publishDiagnostics`), debounce window included.

- a 1,000-line file: target p50 <= 100 ms;
- a 10,000-line project (a shared declarations file imported by ten ~1,000-line files, all open):
  an edit to one file, target p50 <= 300 ms; and an edit to the shared file, after which all ten
  files that import it are diagnosed again (the worst case; its p50 is shown against the same
  target).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from .generate import generate_policies, generate_program
from .timing import Row, print_table

__all__ = ["run", "project_files"]


def project_files(root: Path, files: int = 10, lines: int = 1000) -> tuple[Path, list[Path]]:
    """Write a project: `lib.car` (tools, state, capability, budget, policies) and `files`
    files of about `lines` lines of proposals that import it."""
    sample = generate_program(lines)
    header, _, _ = sample.partition("\nproposal ")
    lib = root / "lib.car"
    lib.write_text(header + "\n")
    paths = []
    for index in range(files):
        text = generate_program(lines, seed=index)
        body = "proposal " + text.partition("\nproposal ")[2]
        path = root / f"plans_{index}.car"
        path.write_text('import "lib.car"\n\n' + body)
        paths.append(path)
    return lib, paths


class _Session:
    """A client connected to `carlang lsp`, collecting published diagnostics."""

    def __init__(self) -> None:
        from lsprotocol import types as lsp
        from pygls.lsp.client import BaseLanguageClient

        self.lsp = lsp
        self.client = BaseLanguageClient("carlang-bench", "1")
        self.published: dict[str, asyncio.Event] = {}
        self.stamps: dict[str, float] = {}

        @self.client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def published(params: lsp.PublishDiagnosticsParams) -> None:
            self.stamps[params.uri] = time.perf_counter()
            self.published.setdefault(params.uri, asyncio.Event()).set()

    async def start(self, root: Path) -> None:
        lsp = self.lsp
        await self.client.start_io(sys.executable, "-m", "carlang", "lsp")
        await self.client.initialize_async(
            lsp.InitializeParams(capabilities=lsp.ClientCapabilities(), root_uri=root.as_uri())
        )
        self.client.initialized(lsp.InitializedParams())

    def _expect(self, uris: list[str]) -> list[asyncio.Event]:
        events = []
        for uri in uris:
            event = self.published[uri] = asyncio.Event()
            events.append(event)
        return events

    async def open(self, path: Path) -> None:
        lsp = self.lsp
        (event,) = self._expect([path.as_uri()])
        self.client.text_document_did_open(
            lsp.DidOpenTextDocumentParams(
                text_document=lsp.TextDocumentItem(
                    uri=path.as_uri(), language_id="carlang", version=1, text=path.read_text()
                )
            )
        )
        await asyncio.wait_for(event.wait(), 60)

    async def edit(
        self, path: Path, version: int, line: int, column: int, text: str, wait: list[Path]
    ) -> tuple[float, float]:
        """Replace the character at `line`:`column` with `text`; seconds until the edited
        file's diagnostics are published, and until every file in `wait` has been."""
        lsp = self.lsp
        events = self._expect([p.as_uri() for p in wait])
        start = time.perf_counter()
        self.client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(
                    uri=path.as_uri(), version=version
                ),
                content_changes=[
                    lsp.TextDocumentContentChangePartial(
                        range=lsp.Range(
                            start=lsp.Position(line=line, character=column),
                            end=lsp.Position(line=line, character=column + 1),
                        ),
                        text=text,
                    )
                ],
            )
        )
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 60)
        return self.stamps[path.as_uri()] - start, time.perf_counter() - start

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()


def _place(path: Path, needle: str) -> tuple[int, int, str]:
    """Line, column and character of the first character of `needle` in the file."""
    for number, line in enumerate(path.read_text().split("\n")):
        column = line.find(needle)
        if column >= 0:
            return number, column, line[column]
    raise ValueError(f"{needle!r} is not in {path}")


async def _edits(
    session: _Session, path: Path, wait: list[Path], samples: int, needle: str
) -> tuple[list[float], list[float]]:
    """Edits that change the program: a letter of a string toggled between cases. The
    latencies of the edited file's diagnostics, and of the last file's."""
    line, column, char = _place(path, needle)
    first, last = [], []
    for version in range(2, samples + 2):
        text = char.swapcase() if version % 2 == 0 else char
        edited, every = await session.edit(path, version, line, column, text, wait)
        first.append(edited)
        last.append(every)
    return first, last


async def _measure(quick: bool) -> list[Row]:
    samples = 9 if quick else 25
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp).resolve()
        times = await _one_file(root / "single", generate_program(1000), "svc", samples)
        rows.append(_row("edit a 1,000-line file -> diagnostics", times, 0.100))
        # a policy file: each keystroke used to check every condition again (322 ms)
        times = await _one_file(root / "policies", generate_policies(1000), "h0.example", samples)
        rows.append(_row("edit a file of 1,000 policies -> diagnostics", times, 0.100))

        project = root / "project"
        project.mkdir()
        lib, files = project_files(project)
        total = sum(p.read_text().count("\n") for p in [lib, *files])
        session = _Session()
        await session.start(project)
        for path in files:
            await session.open(path)
        await session.open(lib)
        times, _ = await _edits(session, files[0], [files[0]], samples, "svc")
        rows.append(_row(f"edit 1 file of a {total:,}-line project", times, 0.300))
        first, times = await _edits(session, lib, [lib, *files], samples, "only https")
        rows.append(_row("edit the shared file: its own diagnostics", first, 0.300))
        rows.append(_row("edit the shared file: all 11 files re-diagnosed", times, 0.300))
        await session.stop()
    return rows


async def _one_file(folder: Path, text: str, needle: str, samples: int) -> list[float]:
    """The latencies of edits to a project of one file holding `text` (see `_edits`)."""
    folder.mkdir()
    path = folder / "program.car"
    path.write_text(text)
    session = _Session()
    await session.start(folder)
    await session.open(path)
    times, _ = await _edits(session, path, [path], samples, needle)
    await session.stop()
    return times


def _row(name: str, times: list[float], target: float) -> Row:
    p50 = statistics.median(times)
    p90 = sorted(times)[int(len(times) * 0.9) - 1]
    return Row(name, p50, None, target, f"(p50; p90 {p90 * 1e3:.0f} ms; {len(times)} edits)")


def run(quick: bool = False) -> list[Row]:
    """Run the language server benchmark and print it."""
    rows = asyncio.run(_measure(quick))
    print_table("language server: edit -> publishDiagnostics (stdio, debounce included)", rows, "-")
    return rows
