"""The language server: one short handler per LSP method, handing work to plain modules.

Documents and positions: :mod:`codellama_lsp.documents`; completions:
:mod:`codellama_lsp.completer` and :mod:`codellama_lsp.items`; model loading:
:mod:`codellama_lsp.loading`; the workspace index: :mod:`codellama_lsp.indexing`. Everything
slow happens off the event loop, so ``didChange`` and ``$/cancelRequest`` are always read at
once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.io_ import StdoutWriter
from pygls.lsp.server import LanguageServer
from pygls.workspace import TextDocument

from codellama_lsp import __version__
from codellama_lsp.accept import ACCEPTED_COMMAND, accepted_info, cursor_after_accept
from codellama_lsp.acceptance import Acceptance, Change, Position, leading
from codellama_lsp.client_timing import client_wait_ms
from codellama_lsp.completer import Completer, Completion
from codellama_lsp.config import Settings, SettingsError, client_overrides, needs_reload
from codellama_lsp.context_sources import ContextSources, Snapshot, take_snapshot
from codellama_lsp.cursor import Cursor
from codellama_lsp.documents import (
    LspTextDocument,
    cursor_at,
    describe_document,
    end_of_change,
    open_document,
)
from codellama_lsp.engines.base import Engine, EngineLoadError
from codellama_lsp.framing import read_messages
from codellama_lsp.indexing import IndexKeeper, watch_registration, workspace_roots
from codellama_lsp.items import inline_item, menu_item, renders_markdown, with_selected
from codellama_lsp.loading import load_engine
from codellama_lsp.memory import (
    PythonAllocations,
    bound_helper_threads,
    heap_in_use_bytes,
    helper_threads,
    memory_figures,
    newest_of_type,
)
from codellama_lsp.memory import report as memory_report
from codellama_lsp.open_documents import OpenDocumentsSource
from codellama_lsp.progress import WorkProgress
from codellama_lsp.protocol import SYNC_KIND, CodeLlamaProtocol, strict_converter, strict_int
from codellama_lsp.recent_edits import RecentEdits
from codellama_lsp.tokenization import new_line_cost
from codellama_lsp.watchdog import process_exists, watch_parent
from codellama_lsp.workspace_index import WorkspaceIndex
from codellama_lsp.workspace_source import WorkspaceSource

log = logging.getLogger(__name__)

STATUS_NOTIFICATION = "codellama/status"
# The Copilot language server's notifications for what the client showed / partly accepted.
DID_SHOW_COMPLETION = "textDocument/didShowCompletion"
DID_PARTIALLY_ACCEPT_COMPLETION = "textDocument/didPartiallyAcceptCompletion"
DEBUG_COMMANDS_ENV = "CODELLAMA_LSP_DEBUG_COMMANDS"
"""Set to 1 to register ``codellama.debugDocument`` (tests read the server's copy of a file)."""


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
            text_document_sync_kind=SYNC_KIND,
            max_workers=2,
        )
        self.exit_code = 0
        """The process's exit status: 1 after ``exit`` without ``shutdown`` (LSP)."""
        self.settings = settings
        self.progress_bars = WorkProgress(self)
        self.completer = Completer(settings)
        self.index = WorkspaceIndex(settings.context_workspace_max_files)
        self.indexer = IndexKeeper(self.index, self.progress_bars)
        self.context = ContextSources(
            self.context_snapshot,
            lambda: self.settings,
            [WorkspaceSource(self.index), OpenDocumentsSource(), RecentEdits()],
        )
        self.completer.context_provider = self.context
        self.completer.on_result = self.send_status
        self.acceptance = Acceptance()
        self.retention_timer: asyncio.Task[None] | None = None
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
            self.shutdown()  # type: ignore[no-untyped-call]  # pygls: not annotated

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
                self.shutdown()  # type: ignore[no-untyped-call]  # pygls: not annotated

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

    def set_state(self, state: str, message: str) -> None:
        self.state, self.message = state, message
        self.send_status()

    def send_status(self) -> None:
        status = self.status()
        if status != self._last_status:
            self._last_status = status
            self.protocol.notify(STATUS_NOTIFICATION, status)

    def stats(self) -> dict[str, Any]:
        """The completer's counters, and what the session holds (for leak checks in long
        sessions: benchmarks/soak.py)."""
        return self.completer.snapshot(
            state=self.status()["state"],
            threads=threading.active_count(),
            helper_threads=helper_threads(asyncio.get_running_loop()),
            asyncio_tasks=len(asyncio.all_tasks()),
            background_tasks=len(self._background),
            request_futures=len(self.protocol._request_futures),
            open_documents=len(self.workspace.text_documents),
            memory=memory_figures(),
            workspace_index={"files": len(self.index), "last_build": self.indexer.last_build},
            accepted=self.acceptance.accepted,
            acceptance=self.acceptance.snapshot(),
        )

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
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
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
        if needs_reload(old, new) and self._load_task is not None:
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
        self.load_seconds = None
        self.set_state("loading", f"Loading {settings.model}")
        token = await self.progress_bars.begin(f"codellama: loading {settings.model}")

        def report(message: str, percent: int) -> None:
            self.message = message
            self.progress_bars.report(token, message, percent)

        try:
            engine, seconds = await load_engine(
                settings, self.completer.scheduler, report, self._watch_connection
            )
        except EngineLoadError as exc:
            self.progress_bars.end(token, "Failed")
            self.show(f"codellama-lsp: {exc}")
            self.set_state("error", str(exc))
            return
        if needs_reload(settings, self.settings):
            return  # a newer load is on its way
        self.load_seconds = seconds
        self.completer.set_engine(engine)
        self.progress_bars.end(token, "Ready")
        message = f"{settings.model} ready ({seconds:.1f} s)"
        if engine.warning:
            message += f"; {engine.warning}"
            self.show(f"codellama-lsp: {engine.warning}", types.MessageType.Warning)
        self.set_state("ready", message)

    def _watch_connection(self, engine: Engine) -> None:
        loop = asyncio.get_running_loop()
        engine.on_connection_change = lambda ok, message: loop.call_soon_threadsafe(
            self.connection_changed, engine, ok, message
        )

    def connection_changed(self, engine: Engine, ok: bool, message: str) -> None:
        """The model server went away or came back: tell the user once per change."""
        if self.completer.engine is not engine:
            return
        if ok:
            self.show(f"codellama-lsp: {message}", types.MessageType.Info)
            self.set_state("ready", f"{self.settings.model} ready ({message})")
        else:
            self.show(f"codellama-lsp: {message}")
            self.set_state("error", message)

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

    async def index_files(self, uris: list[str]) -> None:
        if self.settings.context_workspace:
            await self.indexer.files_changed(uris)

    # --- completions -----------------------------------------------------------------
    async def complete(self, uri: str, ctx: Cursor) -> Completion | None:
        try:
            return await self.completer.complete(uri, ctx)
        except asyncio.CancelledError:
            self.completer.stats.add("requests_cancelled")
            raise


# --- handlers: one per LSP method -----------------------------------------------------------
def initialize(ls: CodeLlamaServer, params: types.InitializeParams) -> None:
    ls.start_reader_threads()
    if params.initialization_options is not None:
        ls.update_settings(params.initialization_options)
    client = params.client_info
    ls.completer.client_wait_ms = client_wait_ms(
        client.name if client else None, client.version if client else None
    )
    pid = params.process_id
    if pid is not None and process_exists(pid):
        ls.spawn(watch_parent(pid))
    elif pid is not None:
        # Only an editor that was alive can die: any other number must not end the server.
        log.warning("processId %s is not a live process: not watching it", pid)


def initialized(ls: CodeLlamaServer, params: types.InitializedParams) -> None:
    ls.start_loading()
    ls.start_indexing()


def did_change_configuration(
    ls: CodeLlamaServer, params: types.DidChangeConfigurationParams
) -> None:
    if isinstance(params.settings, Mapping) and params.settings:
        ls.update_settings(params.settings)


def did_change(ls: CodeLlamaServer, params: types.DidChangeTextDocumentParams) -> None:
    """After pygls applied the edit: tell the completer (typing rate, idle prefill)."""
    uri = params.text_document.uri
    change = params.content_changes[-1] if params.content_changes else None
    doc = open_document(ls.workspace, uri)
    if doc is not None:
        ls.acceptance.edited(uri, _changes(doc, params.content_changes), _text_at(ls))
    if doc is None or not isinstance(change, types.TextDocumentContentChangePartial):
        return
    end = end_of_change(doc, change)
    ls.completer.edited(uri, lambda: cursor_at(doc, end))


def did_close(ls: CodeLlamaServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.completer.forget(params.text_document.uri)
    ls.acceptance.closed(params.text_document.uri)


async def did_save(ls: CodeLlamaServer, params: types.DidSaveTextDocumentParams) -> None:
    await ls.index_files([params.text_document.uri])


async def did_change_watched_files(
    ls: CodeLlamaServer, params: types.DidChangeWatchedFilesParams
) -> None:
    await ls.index_files([change.uri for change in params.changes])


def did_change_workspace_folders(
    ls: CodeLlamaServer, params: types.DidChangeWorkspaceFoldersParams
) -> None:
    ls.start_indexing()  # pygls has updated the folders already: index the new set


async def inline_completion(
    ls: CodeLlamaServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
    uri = params.text_document.uri
    doc = open_document(ls.workspace, uri)
    if doc is None:
        return types.InlineCompletionList(items=[])
    ctx = cursor_at(doc, params.position)
    selected = params.context.selected_completion_info
    if selected is not None:
        ctx = with_selected(doc, ctx, selected)
    completion = await ls.complete(uri, ctx)
    if completion is None:
        return types.InlineCompletionList(items=[])
    ls.acceptance.offered(uri, ctx.prefix, completion.text)
    found = [completion]
    if params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked:
        # Asked for explicitly: more candidates to cycle through (typing gets one).
        more = await ls.completer.alternatives(uri, ctx, completion.text, ls.settings.candidates)
        found += [Completion(text, completion.end_character, completion.source) for text in more]
    items = [inline_item(uri, doc, ctx, each, selected) for each in found]
    return types.InlineCompletionList(items=items)


async def completion(ls: CodeLlamaServer, params: types.CompletionParams) -> types.CompletionList:
    uri = params.text_document.uri
    doc = open_document(ls.workspace, uri)
    if doc is None:
        return types.CompletionList(is_incomplete=True, items=[])
    ctx = cursor_at(doc, params.position)
    result = await ls.complete(uri, ctx)
    if result is None:
        return types.CompletionList(is_incomplete=True, items=[])
    item = menu_item(doc, ctx, result, renders_markdown(ls.client_capabilities))
    return types.CompletionList(is_incomplete=True, items=[item])


# --- commands ------------------------------------------------------------------------------
def stats(ls: CodeLlamaServer, *args: Any) -> dict[str, Any]:
    return ls.stats()


def status(ls: CodeLlamaServer, *args: Any) -> dict[str, Any]:
    return ls.status()


def reload(ls: CodeLlamaServer, *args: Any) -> dict[str, Any]:
    ls.start_loading()
    return {"state": "loading"}


def accepted(ls: CodeLlamaServer, *args: Any) -> None:
    """Count the accept; compute the completion at the cursor after it, so it is ready."""
    info = accepted_info(args)
    _accepted(ls, info, None)
    if info is None or not ls.settings.prefetch_after_accept:
        return
    uri = str(info.get("uri", ""))
    doc = open_document(ls.workspace, uri)
    ctx = cursor_after_accept(doc, info) if doc is not None else None
    if ctx is not None:
        ls.spawn(ls.completer.prefetch(uri, ctx))


def did_show_completion(ls: CodeLlamaServer, params: Any) -> None:
    params = plain(params)
    item = params.get("item") if isinstance(params, Mapping) else None
    info = _item_info_of(ls, _command_info(item))
    if info is not None:
        ls.acceptance.reported_shown(info.uri, info.before, info.text)


def did_partially_accept_completion(ls: CodeLlamaServer, params: Any) -> None:
    params = plain(params)
    length = params.get("acceptedLength") if isinstance(params, Mapping) else None
    if isinstance(length, int) and not isinstance(length, bool) and length > 0:
        _accepted(ls, _command_info(params.get("item")), length)


PYTHON_ALLOCATIONS = PythonAllocations()


def debug_memory(ls: CodeLlamaServer, *args: Any) -> dict[str, Any]:
    """RSS, C heap, Python growth since the last call (``PYTHONTRACEMALLOC=1``), threads.
    ``{"trim"?: bool, "snapshot"?: bool, "newest"?: type name, "new_lines"?: int}``: also the
    figures after ``malloc_trim``; without the (slow) tracemalloc snapshot; the newest objects
    of a type; what each tokenizer keeps per new line encoded (its word cache's bound)."""
    info = args[0] if args and isinstance(args[0], Mapping) else {}
    figures = memory_report(
        PYTHON_ALLOCATIONS, trim=bool(info.get("trim")), snapshot=bool(info.get("snapshot", True))
    )
    if isinstance(info.get("newest"), str):
        figures["newest"] = newest_of_type(info["newest"])
    engine = ls.completer.engine
    count = info.get("new_lines")
    if isinstance(count, int) and count > 0 and engine is not None:
        lines = [
            f"probe_{id(figures)}_{i} = compute({i}, {i * 7919 % 10007})\n" for i in range(count)
        ]
        figures["bytes_per_new_line"] = [
            new_line_cost(backend, lines, heap_in_use_bytes) for backend in engine.tokens.backends()
        ]
    return figures


def debug_document(ls: CodeLlamaServer, *args: Any) -> dict[str, Any] | None:
    """The server's copy of a document: ``{"uri", "text"?: bool, "line"?, "character"?}``.

    With a position, also the cursor as the server reads it (what the prompt sees).
    """
    info = args[0] if args and isinstance(args[0], Mapping) else {}
    doc = open_document(ls.workspace, str(info.get("uri", "")))
    if doc is None:
        return None
    position = None
    if "line" in info:
        try:
            position = types.Position(
                line=strict_int(info["line"]), character=strict_int(info["character"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise JsonRpcInvalidParams.of(exc) from None
    return describe_document(doc, bool(info.get("text")), position)


FEATURES: list[tuple[str, Any, Any]] = [
    (types.INITIALIZE, None, initialize),
    (types.INITIALIZED, None, initialized),
    (types.WORKSPACE_DID_CHANGE_CONFIGURATION, None, did_change_configuration),
    (types.TEXT_DOCUMENT_DID_CHANGE, None, did_change),
    (types.TEXT_DOCUMENT_DID_CLOSE, None, did_close),
    (types.TEXT_DOCUMENT_DID_SAVE, None, did_save),
    (types.WORKSPACE_DID_CHANGE_WATCHED_FILES, None, did_change_watched_files),
    (types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS, None, did_change_workspace_folders),
    (types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions(), inline_completion),
    (
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(resolve_provider=False),
        completion,
    ),
    (DID_SHOW_COMPLETION, None, did_show_completion),
    (DID_PARTIALLY_ACCEPT_COMPLETION, None, did_partially_accept_completion),
]
COMMANDS: list[tuple[str, Any]] = [
    ("codellama.stats", stats),
    ("codellama.status", status),
    ("codellama.reload", reload),
    (ACCEPTED_COMMAND, accepted),
]
DEBUG_COMMANDS: list[tuple[str, Any]] = [
    ("codellama.debugDocument", debug_document),
    ("codellama.debugMemory", debug_memory),
]


def create_server(settings: Settings) -> CodeLlamaServer:
    server = CodeLlamaServer(settings)
    for method, options, handler in FEATURES:
        server.feature(method, options)(handler)
    commands = COMMANDS + (DEBUG_COMMANDS if os.environ.get(DEBUG_COMMANDS_ENV) == "1" else [])
    for name, handler in commands:
        server.command(name)(handler)
    return server


# --- acceptance reports (codellama_lsp.acceptance) -------------------------------------
@dataclass(frozen=True)
class ItemInfo:
    """An inline completion item of ours, as a client sends it back (its command's argument)."""

    uri: str
    start: Position
    text: str
    before: str
    """The document's text before the item's start, as the server reads it now."""
    doc: TextDocument


def plain(value: Any) -> Any:
    """Params of a method pygls does not know, as JSON values (pygls makes namedtuples)."""
    if hasattr(value, "_asdict"):
        return {key: plain(item) for key, item in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def _command_info(item: Any) -> Mapping[str, Any] | None:
    """The ``codellama.accepted`` argument inside an item a client sent back."""
    command = item.get("command") if isinstance(item, Mapping) else None
    arguments = command.get("arguments") if isinstance(command, Mapping) else None
    if isinstance(arguments, list) and arguments and isinstance(arguments[0], Mapping):
        return arguments[0]
    return None


def _item_info_of(ls: CodeLlamaServer, info: Mapping[str, Any] | None) -> ItemInfo | None:
    if info is None:
        return None
    uri, text = info.get("uri"), info.get("text")
    if not (isinstance(uri, str) and isinstance(text, str)):
        return None
    try:
        position = types.Position(
            line=strict_int(info["line"]), character=strict_int(info["character"])
        )
    except (KeyError, TypeError, ValueError):
        return None
    doc = ls.workspace.text_documents.get(unquote(uri))
    if doc is None:
        return None
    before = cursor_at(doc, position).prefix
    return ItemInfo(uri, (position.line, position.character), text, before, doc)


def _accepted(ls: CodeLlamaServer, info: Mapping[str, Any] | None, length: int | None) -> None:
    """An accept: whole (``length`` None) or the first ``length`` client units of the item."""
    item = _item_info_of(ls, info)
    if item is None:
        if length is None:
            ls.acceptance.accepted_unknown()
        return
    codec = item.doc.position_codec

    def units(text: str) -> int:
        return int(codec.client_num_units(text))

    text = item.text.replace("\r\n", "\n")
    if length is None:
        ls.acceptance.accepted_whole(item.uri, item.start, text, units)
    else:
        ls.acceptance.accepted_part(item.uri, item.start, leading(text, length, units), units)
    ls.acceptance.look(item.uri, _text_at(ls))
    if ls.retention_timer is None or ls.retention_timer.done():
        ls.retention_timer = ls.spawn(_measure_retention(ls))


async def _measure_retention(ls: CodeLlamaServer) -> None:
    """One timer for all accepts: measure each :data:`RETENTION_SECONDS` after it."""
    while (wait := ls.acceptance.next_due_s()) is not None:
        await asyncio.sleep(wait + 0.05)
        ls.acceptance.measure_due(_text_at(ls))


def _changes(doc: TextDocument, changes: Sequence[Any]) -> list[Change]:
    """``didChange``'s incremental changes as :class:`Change` (in the client's units)."""

    def units(line: str) -> int:
        return int(doc.position_codec.client_num_units(line))

    return [
        Change.of(
            (c.range.start.line, c.range.start.character),
            (c.range.end.line, c.range.end.character),
            c.text,
            units,
        )
        for c in changes
        if isinstance(c, types.TextDocumentContentChangePartial)
    ]


def _text_at(ls: CodeLlamaServer) -> Callable[[str, Position, Position], str | None]:
    def text_at(uri: str, start: Position, end: Position) -> str | None:
        doc = ls.workspace.text_documents.get(unquote(uri))
        if not isinstance(doc, LspTextDocument):
            return None
        a = doc.offset_of(types.Position(line=start[0], character=start[1]))
        b = doc.offset_of(types.Position(line=end[0], character=end[1]))
        return doc.source[a:b].replace("\r\n", "\n")

    return text_at
