"""The language server: thin pygls handlers that hand work to :mod:`codellama_lsp.completer`.

Everything slow happens off the event loop: the model loads and generates on the scheduler's
worker thread, so ``didChange`` and ``$/cancelRequest`` are always read at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.io_ import StdoutWriter
from pygls.lsp.server import LanguageServer
from pygls.workspace import PositionCodec, TextDocument, Workspace

from codellama_lsp import __version__
from codellama_lsp.completer import Completer, Completion
from codellama_lsp.config import Settings, SettingsError, client_overrides
from codellama_lsp.context import OpenDocumentsContext
from codellama_lsp.context_sources import ContextSources, Snapshot, take_snapshot
from codellama_lsp.cursor import CursorContext, lsp_lines
from codellama_lsp.engines.base import Engine, EngineLoadError
from codellama_lsp.engines.factory import create_engine
from codellama_lsp.engines.http import HttpEngine
from codellama_lsp.framing import read_messages
from codellama_lsp.indexing import IndexKeeper, watch_registration, workspace_roots
from codellama_lsp.memory import (
    PythonAllocations,
    bound_helper_threads,
    malloc_trim,
    memory_figures,
    newest_of_type,
)
from codellama_lsp.memory import report as memory_report
from codellama_lsp.postprocess import line_edit
from codellama_lsp.protocol import CodeLlamaProtocol, strict_converter, strict_int
from codellama_lsp.recent_edits import RecentEdits
from codellama_lsp.workspace_context import WorkspaceContext
from codellama_lsp.workspace_index import WorkspaceIndex

log = logging.getLogger(__name__)

STATUS_NOTIFICATION = "codellama/status"
ACCEPTED_COMMAND = "codellama.accepted"
DEBUG_COMMANDS_ENV = "CODELLAMA_LSP_DEBUG_COMMANDS"
"""Set to 1 to register ``codellama.debugDocument`` (tests read the server's copy of a file)."""
# Settings whose change needs a new engine (a reload); the rest apply at once.
ENGINE_SETTINGS = frozenset(
    {
        "model",
        "backend",
        "server_url",
        "api_key",
        "http_model_name",
        "dtype",
        "device_map",
        "quantization",
        "local_files_only",
        "kv_cache_slots",
        "kv_cache_max_tokens",
        "prefill_chunk_tokens",
        "draft_model",
        "naive",
    }
)


_ODD_LINE_BREAKS = re.compile("[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_LSP_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def column_of(text: str, units: int, codec: PositionCodec) -> int:
    """Index in ``text`` (one line) of a client offset in the negotiated encoding.

    Past the end means the end of the line (as LSP says); an offset inside a character (half
    a surrogate pair, part of a UTF-8 sequence) moves to the end of that character.
    """
    if units <= 0:
        return 0
    if codec.encoding == types.PositionEncodingKind.Utf32 or text.isascii():
        return min(units, len(text))
    count = 0
    for index, ch in enumerate(text):
        if count >= units:
            return index
        count += codec.impl.code_units_for_char(ch)
    return len(text)


class LspTextDocument(TextDocument):
    """pygls' document with LSP's rules for lines and out-of-range edits.

    * Lines end only at ``\\n``, ``\\r\\n`` or ``\\r``: pygls splits with ``str.splitlines``,
      which also breaks at form feeds, ``\\x85``, ``\\u2028`` …, so an edit below such a
      character would land on the wrong line and the server's text would drift from the
      editor's.
    * A position past the end of its line means the end of the line; past the last line, the
      end of the document; a range whose end comes before its start is read in order.
    """

    _lines_of: tuple[str, tuple[str, ...]] | None = None

    @property
    def lines(self) -> Sequence[str]:
        source = self.source
        cached = self._lines_of
        if cached is not None and cached[0] is source:
            return cached[1]
        if _ODD_LINE_BREAKS.search(source):
            lines = tuple(_LSP_LINE.findall(source))
        else:
            lines = tuple(source.splitlines(True))
        self._lines_of = (source, lines)
        return lines

    def offset_of(self, position: types.Position) -> int:
        """Index into ``source`` of a client position, clamped into the document."""
        lines = self.lines
        line = max(0, position.line)
        if line >= len(lines):
            return len(self.source)
        text = lines[line].rstrip("\r\n")
        start = sum(len(previous) for previous in lines[:line])
        return start + column_of(text, position.character, self.position_codec)

    def _apply_incremental_change(self, change: types.TextDocumentContentChangePartial) -> None:
        start = self.offset_of(change.range.start)
        end = self.offset_of(change.range.end)
        if end < start:
            start, end = end, start
        source = self.source
        self._source = source[:start] + change.text + source[end:]


class LspWorkspace(Workspace):
    """Creates :class:`LspTextDocument` documents."""

    def _create_text_document(
        self,
        doc_uri: str,
        source: str | None = None,
        version: int | None = None,
        language_id: str | None = None,
    ) -> TextDocument:
        return LspTextDocument(
            doc_uri,
            source=source,
            version=version,
            language_id=language_id,
            sync_kind=self._sync_kind,
            position_codec=self._position_codec,
        )


class CodeLlamaServer(LanguageServer):
    """Holds the settings, the engine and the completer for one editor session."""

    def __init__(self, settings: Settings) -> None:
        # The pool only reads stdin (no handler runs in a thread): two threads, see
        # `start_reader_threads`.
        super().__init__(
            "codellama-lsp",
            __version__,
            protocol_cls=CodeLlamaProtocol,
            converter_factory=strict_converter,
            max_workers=2,
        )
        self.exit_code = 0
        """The process's exit status: 1 after ``exit`` without ``shutdown`` (LSP)."""
        self.settings = settings
        self.completer = Completer(settings)
        self.index = WorkspaceIndex(settings.context_workspace_max_files)
        self.indexer = IndexKeeper(
            self.index, (self._progress_begin, self._index_progress, self._progress_end)
        )
        self.context = ContextSources(
            self.context_snapshot,
            lambda: self.settings,
            [WorkspaceContext(self.index), OpenDocumentsContext(), RecentEdits()],
        )
        self.completer.context_provider = self.context
        self.completer.on_result = self.send_status
        self.state = "loading"
        self.message = "Starting"
        self.load_seconds: float | None = None
        self._load_task: asyncio.Task[None] | None = None
        self._last_status: dict[str, Any] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    def start_io(self, stdin: Any = None, stdout: Any = None) -> None:
        """Serve over stdio, reading with :mod:`codellama_lsp.framing` (not pygls' reader)."""
        source: Any = stdin or sys.stdin.buffer
        protocol = self.protocol
        assert isinstance(protocol, CodeLlamaProtocol)
        self._stop_event = stop = threading.Event()
        protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))

        async def run() -> None:
            loop = asyncio.get_running_loop()
            bound_helper_threads(loop)
            await read_messages(
                lambda: loop.run_in_executor(self.thread_pool, source.read1, 1 << 16),
                protocol.handle_body,
                stop.is_set,
            )

        try:
            asyncio.run(run())
        except BrokenPipeError:
            log.error("the connection to the client is lost: exiting")
        except SystemExit as exc:  # pygls' `exit` handler: 0 after `shutdown`, else 1
            self.exit_code = exc.code if isinstance(exc.code, int) else 1
        except KeyboardInterrupt:
            pass
        finally:
            self.shutdown()

    def start_tcp(self, host: str, port: int) -> None:
        """Serve one client over TCP with the same reader and rules as stdio."""
        protocol = self.protocol
        assert isinstance(protocol, CodeLlamaProtocol)
        self._stop_event = stop = threading.Event()

        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            protocol.set_writer(writer)  # an asyncio writer: write() and close()
            try:
                await read_messages(lambda: reader.read(1 << 16), protocol.handle_body, stop.is_set)
            finally:
                self.shutdown()

        async def serve() -> None:
            bound_helper_threads(asyncio.get_running_loop())
            server = await asyncio.start_server(connection, host, port)
            self._server = server
            log.info("listening on %s:%s", host, port)
            async with server:
                await server.serve_forever()

        try:
            asyncio.run(serve())
        except asyncio.CancelledError:
            pass  # shutdown() closed the server after the client left
        except SystemExit as exc:
            self.exit_code = exc.code if isinstance(exc.code, int) else 1
        except KeyboardInterrupt:
            pass

    # --- status -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        state = self.state
        if state == "ready" and not self.settings.enabled:
            state = "disabled"
        return {
            "state": state,
            "message": self.message,
            "model": self.settings.model,
            "backend": self.settings.backend,
            "last_latency_ms": self.completer.stats.last_latency_ms,
            "load_seconds": self.load_seconds,
            "version": __version__,
        }

    def send_status(self) -> None:
        status = self.status()
        if status != self._last_status:
            self._last_status = status
            self.protocol.notify(STATUS_NOTIFICATION, status)

    def show(self, message: str, kind: types.MessageType = types.MessageType.Error) -> None:
        """Tell the user first, then log: with memory exhausted, logging may fail."""
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))
        with contextlib.suppress(Exception):
            log.log(logging.ERROR if kind == types.MessageType.Error else logging.INFO, message)

    def start_reader_threads(self) -> None:
        """Start the stdin reader's threads now, before the model takes the memory.

        The pool would start them lazily, and a thread that cannot start (no memory left
        while a big model loads) would end the server instead of letting it report the error.
        """
        # Two short tasks: whichever thread is busy (the reader, or the first task), the pool
        # starts another one, up to its two. Nothing here blocks the event loop.
        for _ in range(2):
            self.thread_pool.submit(time.sleep, 0.02)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # --- settings and loading -------------------------------------------------------------
    def update_settings(self, overrides: Mapping[str, Any]) -> bool:
        """Apply client settings; on a bad value tell the user and keep the last good ones."""
        try:
            new = self.settings.merged(client_overrides(overrides))
        except SettingsError as exc:
            self.show(f"{exc}. Keeping the previous settings.")
            return False
        old = self.settings
        self.settings = new
        self.completer.apply_settings(new)
        logging.getLogger("codellama_lsp").setLevel(new.log_level.upper())
        self.index_settings_changed(old, new)
        changed = {name for name in ENGINE_SETTINGS if getattr(old, name) != getattr(new, name)}
        if changed and self._load_task is not None:
            self.start_loading()
        self.send_status()
        return True

    def start_loading(self) -> None:
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
        self._load_task = asyncio.ensure_future(self._load())

    async def _load(self) -> None:
        settings = self.settings
        old_engine = self.completer.engine
        self.completer.set_engine(None)
        if old_engine is not None:
            await self.completer.scheduler.run_exclusive(old_engine.close)
        self.state, self.message, self.load_seconds = "loading", f"Loading {settings.model}", None
        self.send_status()
        progress = await self._progress_begin(f"codellama: loading {settings.model}")
        loop = asyncio.get_running_loop()
        last_sent = [0.0]

        def report(message: str, percent: int) -> None:
            # Called on the worker thread; hand over to the event loop.
            now = time.monotonic()
            if now - last_sent[0] < 0.2 and percent < 100:
                return
            last_sent[0] = now
            loop.call_soon_threadsafe(self._progress_report, progress, message, percent)

        # Off the event loop: `auto` probes the model server over HTTP.
        try:
            engine: Engine = await asyncio.to_thread(create_engine, settings)
        except EngineLoadError as exc:
            self.state, self.message = "error", str(exc)
            self._progress_end(progress, "Failed")
            self.show(f"codellama-lsp: {exc}")
            self.send_status()
            return
        if isinstance(engine, HttpEngine):
            engine.on_connection_change = lambda ok, message: loop.call_soon_threadsafe(
                self.connection_changed, engine, ok, message
            )
        started = time.perf_counter()
        failure = ""
        try:
            await self.completer.scheduler.run_exclusive(lambda: engine.load(report))
        except EngineLoadError as exc:
            failure = str(exc)
        except Exception as exc:
            log.exception("model load failed")
            failure = f"Could not load {settings.model}: {exc}"
        if failure:
            # Outside the except block: the traceback's frames hold the half-loaded weights in
            # reference cycles; free them now (after an out-of-memory load the server needs
            # that memory to go on answering).
            del engine
            release_memory()
            self.state, self.message = "error", failure
            self._progress_end(progress, "Failed")
            self.show(f"codellama-lsp: {failure}")
            self.send_status()
            return
        if self.settings is not settings and any(
            getattr(self.settings, n) != getattr(settings, n) for n in ENGINE_SETTINGS
        ):
            return  # a newer load is on its way
        self.load_seconds = round(time.perf_counter() - started, 3)
        self.completer.set_engine(engine)
        self.state = "ready"
        self.message = f"{settings.model} ready ({self.load_seconds:.1f} s)"
        self._progress_end(progress, "Ready")
        draft_error = str(getattr(engine, "draft_error", ""))
        if draft_error:
            self.message += f"; {draft_error}"
            self.show(f"codellama-lsp: {draft_error}", types.MessageType.Warning)
        self.send_status()

    def connection_changed(self, engine: Engine, ok: bool, message: str) -> None:
        """The model server went away or came back: tell the user once per change."""
        if self.completer.engine is not engine:
            return
        if ok:
            self.state, self.message = "ready", f"{self.settings.model} ready ({message})"
            self.show(f"codellama-lsp: {message}", types.MessageType.Info)
        else:
            self.state, self.message = "error", message
            self.show(f"codellama-lsp: {message}")
        self.send_status()

    async def _progress_begin(self, title: str) -> str | None:
        caps = self.client_capabilities.window
        if not (caps and caps.work_done_progress):
            return None
        token = f"codellama-load-{uuid.uuid4().hex[:8]}"
        try:
            await asyncio.wait_for(self.work_done_progress.create_async(token), 5)
        except Exception:
            return None
        self.work_done_progress.begin(
            token, types.WorkDoneProgressBegin(title=title, percentage=0, cancellable=False)
        )
        return token

    def _progress_report(self, token: str | None, message: str, percent: int) -> None:
        self.message = message
        if token is not None:
            self.work_done_progress.report(
                token, types.WorkDoneProgressReport(message=message, percentage=percent)
            )

    def _progress_end(self, token: str | None, message: str) -> None:
        if token is not None:
            self.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))

    # --- workspace context ---------------------------------------------------------------
    def context_snapshot(self, uri: str) -> Snapshot:
        """On the event loop: the open documents as the context sources may read them."""
        return take_snapshot(unquote(uri), self.workspace.text_documents, self.workspace.root_uri)

    def start_indexing(self) -> None:
        """(Re)index the workspace folders; the first time, ask the client for file events."""
        if not self.settings.context_workspace:
            return
        self.indexer.start(
            workspace_roots(self.workspace), self.settings.context_workspace_max_files
        )
        watched = self.client_capabilities.workspace
        watched_files = watched.did_change_watched_files if watched else None
        if watched_files and watched_files.dynamic_registration and not self.indexer.watching:
            self.indexer.watching = True
            self.spawn(self.client_register_capability_async(watch_registration()))

    def index_settings_changed(self, old: Settings, new: Settings) -> None:
        if self._load_task is None:
            return  # not initialized yet: `initialized` starts the index
        if not new.context_workspace:
            if old.context_workspace:
                self.indexer.stop()
        elif (
            not old.context_workspace
            or old.context_workspace_max_files != new.context_workspace_max_files
        ):
            self.start_indexing()

    def _index_progress(self, token: str | None, message: str, percent: int) -> None:
        if token is not None:
            self.work_done_progress.report(
                token, types.WorkDoneProgressReport(message=message, percentage=percent)
            )

    # --- completions -----------------------------------------------------------------
    def cursor(
        self, uri: str, position: types.Position
    ) -> tuple[TextDocument, CursorContext] | None:
        """The open document and the cursor in it; None for a document that is not open.

        (pygls would read an unknown URI from disk: a never-opened file, or ``/dev/zero``.)
        """
        doc = self.workspace.text_documents.get(unquote(uri))
        if doc is None:
            return None
        return doc, cursor_at(doc, position)

    async def watch_parent(self, pid: int) -> None:
        """Exit when the editor that started us is gone (it may die without ``shutdown``)."""
        while True:
            await asyncio.sleep(2)
            if not process_exists(pid):
                log.warning("parent process %s is gone: exiting", pid)
                os._exit(0)


def process_exists(pid: int) -> bool:
    """Whether ``pid`` is a live process; 0 and negative numbers name process groups."""
    if not 0 < pid < 2**31:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # it exists, owned by another user
    except (ProcessLookupError, OverflowError):
        return False
    return True


def release_memory() -> None:
    """Collect reference cycles and hand freed heap pages back to the OS (glibc only)."""
    gc.collect()
    malloc_trim()


def cursor_at(doc: TextDocument, position: types.Position) -> CursorContext:
    """The cursor in Python string units, from a client position in its own encoding.

    A line past the last one means the end of the document (as LSP says for edits).
    """
    lines = lsp_lines(doc.source)
    if position.line >= len(lines):
        line, column = len(lines) - 1, len(lines[-1])
    else:
        line = max(position.line, 0)
        column = column_of(lines[line], position.character, doc.position_codec)
    return CursorContext.clamped(doc.source, line, column, lines)


def client_units(doc: TextDocument, line_text: str, column: int) -> int:
    """Column ``column`` (Python units) of ``line_text`` in the client's position encoding."""
    head = line_text[:column]
    return len(head) if head.isascii() else int(doc.position_codec.client_num_units(head))


def client_position(doc: TextDocument, line: int, column: int) -> types.Position:
    lines = lsp_lines(doc.source)
    text = lines[line] if line < len(lines) else ""
    return types.Position(line=line, character=client_units(doc, text, column))


def on_cursor_line(doc: TextDocument, ctx: CursorContext, column: int) -> types.Position:
    """A client position on the cursor's line, from the context's own copy of the line."""
    return types.Position(line=ctx.line, character=client_units(doc, ctx.line_text, column))


def create_server(settings: Settings) -> CodeLlamaServer:
    server = CodeLlamaServer(settings)

    @server.feature(types.INITIALIZE)
    def initialize(ls: CodeLlamaServer, params: types.InitializeParams) -> None:
        ls.start_reader_threads()
        # pygls made the workspace just before this handler: give it LSP's line rules.
        if type(ls.workspace) is Workspace:
            ls.workspace.__class__ = LspWorkspace
        if params.initialization_options is not None:
            ls.update_settings(params.initialization_options)
        pid = params.process_id
        if pid is not None and process_exists(pid):
            ls.spawn(ls.watch_parent(pid))
        elif pid is not None:
            # Only an editor that was alive can die: any other number must not end the server.
            log.warning("processId %s is not a live process: not watching it", pid)

    @server.feature(types.INITIALIZED)
    def initialized(ls: CodeLlamaServer, params: types.InitializedParams) -> None:
        ls.start_loading()
        ls.start_indexing()

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(
        ls: CodeLlamaServer, params: types.DidChangeConfigurationParams
    ) -> None:
        if isinstance(params.settings, Mapping) and params.settings:
            ls.update_settings(params.settings)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CodeLlamaServer, params: types.DidChangeTextDocumentParams) -> None:
        """After pygls applied the edit: tell the completer (typing rate, idle prefill)."""
        uri = params.text_document.uri
        change = params.content_changes[-1] if params.content_changes else None
        doc = ls.workspace.text_documents.get(unquote(uri))
        if doc is None or not isinstance(change, types.TextDocumentContentChangePartial):
            return
        *lines, last = change.text.split("\n")
        start = change.range.start
        units = int(doc.position_codec.client_num_units(last))
        end = types.Position(
            line=start.line + len(lines), character=units + (0 if lines else start.character)
        )
        ls.completer.edited(uri, end.line, lambda: cursor_at(doc, end))

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CodeLlamaServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.completer.scheduler.cancel_key(uri)
        ls.completer.typing.forget(uri)
        ls.completer.idle_prefill.forget(uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    async def did_save(ls: CodeLlamaServer, params: types.DidSaveTextDocumentParams) -> None:
        if ls.settings.context_workspace:
            await ls.indexer.files_changed([params.text_document.uri])

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    async def did_change_watched_files(
        ls: CodeLlamaServer, params: types.DidChangeWatchedFilesParams
    ) -> None:
        if ls.settings.context_workspace:
            await ls.indexer.files_changed([change.uri for change in params.changes])

    @server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    def did_change_workspace_folders(
        ls: CodeLlamaServer, params: types.DidChangeWorkspaceFoldersParams
    ) -> None:
        # pygls has updated the folders already: index the new set.
        ls.start_indexing()

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: CodeLlamaServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList | None:
        uri = params.text_document.uri
        found = ls.cursor(uri, params.position)
        if found is None:
            return types.InlineCompletionList(items=[])
        doc, ctx = found
        selected = params.context.selected_completion_info
        prefix_text = ""
        if selected is not None:
            # The result must extend the item selected in the completion menu.
            prefix_text = selected.text
            start = cursor_at(doc, selected.range.start)
            end = cursor_at(doc, selected.range.end)
            text = ctx.normalized
            ctx = CursorContext(
                text[: start.offset] + selected.text + text[end.offset :],
                start.line,
                start.character + len(selected.text),
            )
        completion = await _complete(ls, uri, ctx)
        if completion is None:
            return types.InlineCompletionList(items=[])
        # Always a range, starting at the cursor as the server read it (see `line_edit`).
        if selected is not None:
            start_pos, end_pos = selected.range.start, selected.range.end
            insert_text = prefix_text + completion.text
        else:
            end_character, insert_text = line_edit(ctx, completion.text, completion.end_character)
            start_pos = on_cursor_line(doc, ctx, ctx.character)
            end_pos = on_cursor_line(doc, ctx, end_character)
        item = types.InlineCompletionItem(
            insert_text=insert_text,
            range=types.Range(start=start_pos, end=end_pos),
            command=types.Command(
                title="codellama: accepted",
                command=ACCEPTED_COMMAND,
                arguments=[
                    {
                        "uri": uri,
                        "line": start_pos.line,
                        "character": start_pos.character,
                        "end_line": end_pos.line,
                        "end_character": end_pos.character,
                        "text": insert_text,
                    }
                ],
            ),
        )
        return types.InlineCompletionList(items=[item])

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(resolve_provider=False))
    async def completion(
        ls: CodeLlamaServer, params: types.CompletionParams
    ) -> types.CompletionList:
        uri = params.text_document.uri
        found = ls.cursor(uri, params.position)
        if found is None:
            return types.CompletionList(is_incomplete=True, items=[])
        doc, ctx = found
        result = await _complete(ls, uri, ctx)
        if result is None:
            return types.CompletionList(is_incomplete=True, items=[])
        first, _, more = result.text.partition("\n")
        label = (first.strip() or result.text.strip().split("\n")[0]) + (" …" if more else "")
        end_character, new_text = line_edit(ctx, result.text, result.end_character)
        edit_range = types.Range(
            start=on_cursor_line(doc, ctx, ctx.character),
            end=on_cursor_line(doc, ctx, end_character),
        )
        item = types.CompletionItem(
            label=label[:80],
            kind=types.CompletionItemKind.Text,
            detail="codellama",
            documentation=_documentation(ls, result.text),
            text_edit=types.TextEdit(range=edit_range, new_text=new_text),
            insert_text_format=types.InsertTextFormat.PlainText,
            # Matched against what is typed after the range's start (the cursor): typing the
            # completion's own beginning keeps the item.
            filter_text=new_text,
            sort_text="0",
            preselect=True,
        )
        return types.CompletionList(is_incomplete=True, items=[item])

    @server.command("codellama.stats")
    def stats(ls: CodeLlamaServer, *args: Any) -> dict[str, Any]:
        completer = ls.completer
        engine = completer.engine
        extra: dict[str, Any] = {
            "cache_entries": len(completer.cache),
            "typing_through_entries": len(completer.typing),
            "state": ls.status()["state"],
            # For leak checks in long sessions (benchmarks/soak.py).
            "threads": threading.active_count(),
            "asyncio_tasks": len(asyncio.all_tasks()),
            "background_tasks": len(ls._background),
            "inflight": len(completer._inflight),
            "request_futures": len(ls.protocol._request_futures),
            "open_documents": len(ls.workspace.text_documents),
            "memory": memory_figures(),
            "workspace_index": {"files": len(ls.index), "last_build": ls.indexer.last_build},
        }
        kv = getattr(engine, "kv", None)
        if kv is not None:
            extra["kv_slots"] = len(kv)
            extra["kv_cached_tokens"] = kv.total_tokens
        return completer.stats.snapshot(**extra)

    @server.command("codellama.status")
    def status(ls: CodeLlamaServer, *args: Any) -> dict[str, Any]:
        return ls.status()

    if os.environ.get(DEBUG_COMMANDS_ENV) == "1":
        python_allocations = PythonAllocations()

        @server.command("codellama.debugMemory")
        def debug_memory(ls: CodeLlamaServer, *args: Any) -> dict[str, Any]:
            """RSS, C heap, Python growth since the last call (``PYTHONTRACEMALLOC=1``),
            threads. ``{"trim"?: bool, "snapshot"?: bool}``: also the figures after
            ``malloc_trim``; without the (slow) tracemalloc snapshot."""
            info = args[0] if args and isinstance(args[0], Mapping) else {}
            figures = memory_report(
                python_allocations,
                trim=bool(info.get("trim")),
                snapshot=bool(info.get("snapshot", True)),
            )
            if isinstance(info.get("newest"), str):
                figures["newest"] = newest_of_type(info["newest"])
            return figures

        @server.command("codellama.debugDocument")
        def debug_document(ls: CodeLlamaServer, *args: Any) -> dict[str, Any] | None:
            """The server's copy of a document: ``{"uri", "text"?: bool, "line"?, "character"?}``.

            With a position, also the cursor as the server reads it (what the prompt sees).
            """
            info = args[0] if args and isinstance(args[0], Mapping) else {}
            doc = ls.workspace.text_documents.get(unquote(str(info.get("uri", ""))))
            if doc is None:
                return None
            source = doc.source
            data: dict[str, Any] = {
                "version": doc.version,
                "length": len(source),
                "sha256": hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest(),
                "position_encoding": str(
                    getattr(doc.position_codec.encoding, "value", doc.position_codec.encoding)
                ),
            }
            if info.get("text"):
                data["text"] = source
            if "line" in info:
                try:
                    position = types.Position(
                        line=strict_int(info["line"]), character=strict_int(info["character"])
                    )
                except (KeyError, TypeError, ValueError) as exc:
                    raise JsonRpcInvalidParams.of(exc) from None
                ctx = cursor_at(doc, position)
                data["cursor"] = {
                    "line": ctx.line,
                    "column": ctx.character,
                    "line_prefix": ctx.line_prefix,
                    "line_suffix": ctx.line_suffix,
                }
            return data

    @server.command("codellama.reload")
    def reload(ls: CodeLlamaServer, *args: Any) -> dict[str, Any]:
        ls.start_loading()
        return {"state": "loading"}

    @server.command(ACCEPTED_COMMAND)
    def accepted(ls: CodeLlamaServer, *args: Any) -> None:
        ls.completer.stats.add("accepted")
        info = args[0] if args and isinstance(args[0], Mapping) else None
        if info is None and args and isinstance(args[0], list) and args[0]:
            info = args[0][0] if isinstance(args[0][0], Mapping) else None
        if info is None or not ls.settings.prefetch_after_accept:
            return
        ls.spawn(_prefetch_after_accept(ls, info))

    return server


def _documentation(ls: CodeLlamaServer, text: str) -> types.MarkupContent | str:
    """The whole completion as a Python code block where the client renders Markdown."""
    completion = ls.client_capabilities.text_document
    item = completion.completion.completion_item if completion and completion.completion else None
    formats = (item.documentation_format if item else None) or []
    if types.MarkupKind.Markdown in formats:
        return types.MarkupContent(kind=types.MarkupKind.Markdown, value=f"```python\n{text}\n```")
    return text


async def _complete(ls: CodeLlamaServer, uri: str, ctx: CursorContext) -> Completion | None:
    try:
        return await ls.completer.complete(uri, ctx)
    except asyncio.CancelledError:
        ls.completer.stats.add("requests_cancelled")
        raise


async def _prefetch_after_accept(ls: CodeLlamaServer, info: Mapping[str, Any]) -> None:
    """After an accept, compute the completion at the new cursor so it is ready.

    It does not wait for the edit's ``didChange`` (Neovim sends it up to 150 ms later): when
    the document does not hold the accepted text yet, the text is applied to a copy. The
    cache key is the text around the cursor, so the editor's next request finds the result.
    """
    try:
        uri = str(info["uri"])
        text = str(info["text"]).replace("\r\n", "\n")
        doc = ls.workspace.text_documents[unquote(uri)]
        start = cursor_at(
            doc, types.Position(line=int(info["line"]), character=int(info["character"]))
        )
        end = cursor_at(
            doc,
            types.Position(
                line=int(info.get("end_line", info["line"])),
                character=int(info.get("end_character", info["character"])),
            ),
        )
    except (KeyError, TypeError, ValueError):
        return
    source = start.normalized
    if not source.startswith(text, start.offset):
        source = source[: start.offset] + text + source[max(end.offset, start.offset) :]
    lines = text.split("\n")
    line = start.line + len(lines) - 1
    column = (start.character if len(lines) == 1 else 0) + len(lines[-1])
    await ls.completer.prefetch(uri, CursorContext.clamped(source, line, column))
