"""`carlang lsp`: the language server over stdio (pygls), wiring editor requests to `Features`.

Diagnostics are published when a file is opened or saved, and shortly after it changes: edits
that arrive within the debounce window are compiled once. A change re-diagnoses the open files
that import the changed one. Every handler runs inside one guard (`guard.py`): a bug in the
server or the compiler is reported as an internal error, in one line without a traceback, and
never takes the server down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer

from carlang import __version__

from .features import TOKEN_LEGEND, Features, path_of_uri, uri_of
from .guard import guarded, internal_error_text, log_traceback
from .project import Project
from .rename import RenameRefused

__all__ = ["CarlangServer", "build_server", "serve", "DEFAULT_DEBOUNCE"]

#: Seconds to wait after an edit for more edits before compiling.
DEFAULT_DEBOUNCE = 0.03
F = TypeVar("F", bound=Callable[..., Any])


class CarlangServer(LanguageServer):
    """The language server's state: the project, its features, edits waiting to be compiled."""

    def __init__(self) -> None:
        super().__init__("carlang", __version__)
        self.project: Project | None = None
        self.debounce = DEFAULT_DEBOUNCE
        self._pending: set[Path] = set()
        self._timer: asyncio.Task[None] | None = None
        self._features: Features | None = None
        self._last_change = 0.0
        #: When the last compile ended: edits that queued up while it ran are a burst too
        self._last_compiled = 0.0
        self._edited: Path | None = None
        self._shown_problems: set[str] = set()

    @property
    def features(self) -> Features:
        """The features over the project (the project is made on first use)."""
        if self._features is None:
            self.project = self.project or Project(self._root())
            encoding = str(self.workspace.position_encoding or "utf-16")
            self._features = Features(self.project, encoding)
        return self._features

    def project_of(self) -> Project:
        """The project (made on first use, at the workspace root)."""
        self.features  # noqa: B018 - makes the project
        assert self.project is not None
        return self.project

    def feature(self, feature_name: str, options: Any | None = None) -> Callable[[F], F]:
        """Register a handler, as pygls does, inside the guard (see `guard.py`): whatever
        handler is added, an unexpected exception in it is reported as an internal error."""
        register = super().feature(feature_name, options)

        def decorator(handler: F) -> F:
            register(guarded(feature_name, handler, self.report_internal_error))
            return handler

        return decorator

    def report_internal_error(self, what: str, exc: Exception) -> str:
        """Tell the user, in the client's log, that `what` failed with `exc` (one line, no
        traceback: that goes to stderr); the text said."""
        log_traceback(what, exc)
        text = internal_error_text(what, exc)
        self.window_log_message(lsp.LogMessageParams(type=lsp.MessageType.Error, message=text))
        return text

    def _root(self) -> Path:
        root = self.workspace.root_path if self.workspace else None
        return Path(root) if root else Path.cwd()

    def watch_files(self) -> None:
        """Ask the client to report changes on disk to .car files and to `carlang.toml` (its
        root, `accept` and `strict` change every file's diagnostics), when it can be asked:
        else a changed carlang.toml was noticed only at the next edit."""
        capabilities = self.client_capabilities.workspace
        watched = capabilities.did_change_watched_files if capabilities else None
        if watched is None or not watched.dynamic_registration:
            return
        watchers = [
            lsp.FileSystemWatcher(glob_pattern="**/*.car"),
            lsp.FileSystemWatcher(glob_pattern="**/carlang.toml"),
        ]
        options = lsp.DidChangeWatchedFilesRegistrationOptions(watchers=watchers)
        registration = lsp.Registration(
            id="carlang-files",
            method=lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES,
            register_options=options,
        )
        self.client_register_capability(lsp.RegistrationParams(registrations=[registration]))

    def publish(self, path: Path) -> None:
        """Compile `path` (if needed) and publish its diagnostics."""
        try:
            diagnostics = self.features.diagnostics(path)
        except Exception as exc:  # noqa: BLE001 - a compiler bug must not stop the server
            # Outside any handler's guard when the debounce timer publishes: report it here,
            # and go on with the other files.
            self.report_internal_error(f"diagnosing {path.name}", exc)
            return
        finally:
            self._last_compiled = _now()
        uri = uri_of(path)
        # the version of the open text compiled (compiled just now: the newest), so that an
        # editor can drop diagnostics that arrive after a newer edit
        version = self._open_version(uri)
        self.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=version)
        )
        self._show_settings_problem()

    def _show_settings_problem(self) -> None:
        """Say once that a `carlang.toml` cannot be used (`carlang check` refuses to run on
        it; the editor still diagnoses, without its settings): again only once it has been
        fixed and breaks anew, however the files of other projects alternate with its own."""
        problems = set(self.project.settings_problems.values()) if self.project else set()
        for problem in sorted(problems - self._shown_problems):
            self.window_show_message(
                lsp.ShowMessageParams(
                    type=lsp.MessageType.Warning,
                    message=f"{problem} (its settings are not applied until it is fixed)",
                )
            )
        self._shown_problems = problems

    def _open_version(self, uri: str) -> int | None:
        """The version of the open document `uri` (None: not open, or no workspace yet)."""
        try:
            document = self.workspace.text_documents.get(uri)
        except RuntimeError:  # (not initialized: the tests' servers, a publish at start-up)
            return None
        return document.version if document is not None else None

    def schedule(self, edited: Path, paths: list[Path], arrived: float | None = None) -> None:
        """Publish `paths` soon: at once after a pause in editing, else once the edits have
        paused for the debounce window (restarted by each new edit), so a burst of edits is
        compiled once. The edited file comes first, then the files that import it. `arrived`:
        when the edit was read, before its text was parsed (default: now)."""
        loop = asyncio.get_running_loop()
        now = loop.time() if arrived is None else arrived
        # An edit read right after a compile, or right after the edit before it was handled
        # (it waited for either: both block the loop), is part of a burst, however long ago
        # its predecessor was read: else each edit typed during a long compile, or during the
        # parse of a large file's edit (longer than the window), got a compile of its own,
        # and the server fell behind (a trial: 15 compiles for 15 keystrokes, 23 s behind).
        burst = now - max(self._last_change, self._last_compiled) < self.debounce
        self._last_change = loop.time()  # (handled: the next edit read now is a burst's)
        self._pending.update(paths)
        self._edited = edited
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
        self._timer = loop.create_task(self._publish_later(self.debounce if burst else 0.0))

    async def _publish_later(self, delay: float) -> None:
        try:
            # Even with no delay, yield once: edits already received are applied first.
            await asyncio.sleep(delay)
            published = []
            while self._pending:
                path = self._edited if self._edited in self._pending else min(self._pending)
                self._pending.discard(path)
                self.publish(path)
                published.append(path)
                # A new edit may arrive between files: it cancels this task, and the files
                # not yet published wait for the next one, compiled from the newer text.
                await asyncio.sleep(0)
            # The edited file went first, its unused warnings judged on what the files that
            # import it used before; and an edit to a file changes what the files it imports
            # have unused: where that changed, say so again.
            for path in self.project.stale_unused(published) if self.project else []:
                self.publish(path)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # noqa: BLE001 - a task's failure would go unseen
            self.report_internal_error("publishing diagnostics", exc)


class _QuietRefusals(logging.Filter):
    """Keeps pygls from logging a request carlang refuses on purpose (a rename to a name that
    is taken) as a failure with its traceback: the client gets the refusal and shows it, and
    a traceback in the editor's output panel reads as a crash."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, JsonRpcException) and error.code != lsp.ErrorCodes.InternalError:
            return False
        return True


def build_server() -> CarlangServer:
    """The server with every feature registered."""
    rpc = logging.getLogger("pygls.protocol.json_rpc")
    if not any(isinstance(f, _QuietRefusals) for f in rpc.filters):
        rpc.addFilter(_QuietRefusals())
    server = CarlangServer()

    @server.feature(lsp.INITIALIZE)
    def initialize(ls: CarlangServer, params: lsp.InitializeParams) -> None:
        options = params.initialization_options
        if isinstance(options, dict) and isinstance(options.get("debounceMs"), int | float):
            ls.debounce = max(0.0, float(options["debounceMs"]) / 1000)

    @server.feature(lsp.INITIALIZED)
    def initialized(ls: CarlangServer, params: lsp.InitializedParams) -> None:
        ls.project_of().scan()
        ls.watch_files()

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: CarlangServer, params: lsp.DidOpenTextDocumentParams) -> None:
        path = path_of_uri(params.text_document.uri)
        for stale in ls.project_of().set_text(path, params.text_document.text):
            ls.publish(stale)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: CarlangServer, params: lsp.DidChangeTextDocumentParams) -> None:
        arrived = asyncio.get_running_loop().time()  # (before parsing it: see `schedule`)
        uri = params.text_document.uri
        text = ls.workspace.get_text_document(uri).source
        path = path_of_uri(uri)
        ls.schedule(path, ls.project_of().set_text(path, text), arrived)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: CarlangServer, params: lsp.DidSaveTextDocumentParams) -> None:
        path = path_of_uri(params.text_document.uri)
        for stale in ls.project_of().disk_changed(path):
            ls.publish(stale)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CarlangServer, params: lsp.DidCloseTextDocumentParams) -> None:
        path = path_of_uri(params.text_document.uri)
        stale = ls.project_of().close(path)
        ls.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[])
        )
        for other in stale:
            ls.publish(other)

    @server.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def watched(ls: CarlangServer, params: lsp.DidChangeWatchedFilesParams) -> None:
        stale: set[Path] = set()
        for change in params.changes:
            if "%00" in change.uri or "\x00" in change.uri:
                continue  # names no file (a path cannot hold a NUL): nothing on disk changed
            stale.update(ls.project_of().disk_changed(path_of_uri(change.uri)))
        for path in sorted(stale):
            ls.publish(path)

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def hover(ls: CarlangServer, params: lsp.HoverParams) -> lsp.Hover | None:
        return ls.features.hover(path_of_uri(params.text_document.uri), params.position)

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: CarlangServer, params: lsp.DefinitionParams) -> list[lsp.Location]:
        return ls.features.definition(path_of_uri(params.text_document.uri), params.position)

    @server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
    def references(ls: CarlangServer, params: lsp.ReferenceParams) -> list[lsp.Location]:
        return ls.features.references(
            path_of_uri(params.text_document.uri),
            params.position,
            params.context.include_declaration,
        )

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_HIGHLIGHT)
    def highlight(
        ls: CarlangServer, params: lsp.DocumentHighlightParams
    ) -> list[lsp.DocumentHighlight]:
        return ls.features.highlights(path_of_uri(params.text_document.uri), params.position)

    @server.feature(
        lsp.TEXT_DOCUMENT_COMPLETION,
        lsp.CompletionOptions(trigger_characters=[".", "(", ",", " ", ":"]),
    )
    def completion(ls: CarlangServer, params: lsp.CompletionParams) -> lsp.CompletionList:
        return ls.features.completion(path_of_uri(params.text_document.uri), params.position)

    @server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
    def formatting(ls: CarlangServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit]:
        return ls.features.formatting(path_of_uri(params.text_document.uri))

    @server.feature(lsp.TEXT_DOCUMENT_RANGE_FORMATTING)
    def range_formatting(
        ls: CarlangServer, params: lsp.DocumentRangeFormattingParams
    ) -> list[lsp.TextEdit]:
        return ls.features.formatting(path_of_uri(params.text_document.uri), params.range)

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def symbols(ls: CarlangServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
        return ls.features.symbols(path_of_uri(params.text_document.uri))

    @server.feature(
        lsp.TEXT_DOCUMENT_CODE_ACTION,
        lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix]),
    )
    def code_action(ls: CarlangServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
        return ls.features.code_actions(path_of_uri(params.text_document.uri), params.range)

    @server.feature(lsp.TEXT_DOCUMENT_PREPARE_RENAME)
    def prepare_rename(ls: CarlangServer, params: lsp.PrepareRenameParams) -> lsp.Range | None:
        try:
            return ls.features.prepare_rename(
                path_of_uri(params.text_document.uri), params.position
            )
        except RenameRefused as refused:  # the editor shows why before asking for a name
            raise JsonRpcException(refused.message, refused.code) from None

    @server.feature(lsp.TEXT_DOCUMENT_RENAME)
    def rename(ls: CarlangServer, params: lsp.RenameParams) -> lsp.WorkspaceEdit | None:
        try:
            return ls.features.rename(
                path_of_uri(params.text_document.uri), params.position, params.new_name
            )
        except RenameRefused as refused:  # the editor shows the message
            raise JsonRpcException(refused.message, refused.code) from None

    @server.feature(lsp.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL, TOKEN_LEGEND)
    def semantic_tokens(ls: CarlangServer, params: lsp.SemanticTokensParams) -> lsp.SemanticTokens:
        return ls.features.semantic_tokens(path_of_uri(params.text_document.uri))

    return server


def serve(debounce: float | None = None, **_: Any) -> None:
    """Run the server on stdin/stdout until the client exits."""
    import sys

    server = build_server()
    if debounce is not None:
        server.debounce = debounce
    logging.getLogger("pygls.server").addFilter(_NotJsonSaidInOneLine())
    server.start_io(stdin=cast(BinaryIO, _FramedInput(sys.stdin.buffer, sys.stderr)))
    # LSP: `exit` with no `shutdown` before it ends the server with status 1 (pygls asks for
    # it from a callback, which its loop swallows; the process then ended with 0)
    if not getattr(server.protocol, "_shutdown", True):
        sys.exit(1)


#: The largest message the server reads (a `.car` document is a few hundred kilobytes).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class _FramedInput:
    """Standard input as pygls reads it, refusing a message whose `Content-Length` is past
    `MAX_MESSAGE_BYTES` (a huge or garbled length made the read an internal OverflowError):
    said on stderr in one line, and read as the end of input, since where the next message
    starts can no longer be known."""

    def __init__(self, stream: Any, errors: Any) -> None:
        self.stream = stream
        self.errors = errors

    def readline(self) -> bytes:
        line: bytes = self.stream.readline()
        return line

    def read(self, size: int) -> bytes:
        if size > MAX_MESSAGE_BYTES:
            self.errors.write(
                f"carlang lsp: a message of {size} bytes (its Content-Length) is past the"
                f" {MAX_MESSAGE_BYTES}-byte limit; the stream cannot be read on: stopping\n"
            )
            self.errors.flush()
            return b""
        data: bytes = self.stream.read(size)
        return data


class _NotJsonSaidInOneLine(logging.Filter):
    """pygls logs a message body that is not JSON with a traceback (the client is told too,
    by a showMessage): one line says it."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ValueError):  # (json.JSONDecodeError, UnicodeDecodeError)
            record.msg, record.args, record.exc_info = (
                "carlang lsp: a message that is not JSON: %s",
                (error,),
                None,
            )
        return True


def _now() -> float:
    """The event loop's clock (the one `schedule` reads), or the monotonic clock it uses."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:  # published outside the loop (tests, the start-up scan)
        return time.monotonic()
