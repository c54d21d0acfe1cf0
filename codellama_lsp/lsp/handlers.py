"""The LSP methods: one short handler each, handing the work to the server's state and to
plain modules (the server itself: :mod:`codellama_lsp.lsp.server`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from lsprotocol import types

from codellama_lsp.completion.completer import Completion
from codellama_lsp.config import Settings
from codellama_lsp.lsp.acceptance import (
    ACCEPTED_COMMAND,
    accepted_info,
    changes_of,
    command_info,
    document_text,
    item_info_of,
    plain,
    record_accept,
)
from codellama_lsp.lsp.client_timing import client_wait_ms
from codellama_lsp.lsp.debug_commands import DEBUG_COMMANDS, DEBUG_COMMANDS_ENV
from codellama_lsp.lsp.documents import (
    cursor_after_accept,
    cursor_at,
    end_of_change,
    open_document,
)
from codellama_lsp.lsp.editor_options import EDITOR_OPTIONS_NOTIFICATION, apply_editor_options
from codellama_lsp.lsp.items import inline_item, menu_item, renders_markdown, with_selected
from codellama_lsp.lsp.notebooks import cell_changes, closed_cells
from codellama_lsp.lsp.server import (
    DID_PARTIALLY_ACCEPT_COMPLETION,
    DID_SHOW_COMPLETION,
    CodeLlamaServer,
)
from codellama_lsp.lsp.snooze import SNOOZE_COMMAND
from codellama_lsp.lsp.watchdog import process_exists, watch_parent

log = logging.getLogger(__name__)


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
        ls.acceptance.edited(uri, changes_of(doc, params.content_changes), document_text(ls))
    if doc is None or not isinstance(change, types.TextDocumentContentChangePartial):
        return
    end = end_of_change(doc, change)
    if ls.rules.document_refusal(ls.workspace, uri) is None:
        ls.completer.edited(uri, lambda: cursor_at(doc, end))


def did_close(ls: CodeLlamaServer, params: types.DidCloseTextDocumentParams) -> None:
    forget(ls, params.text_document.uri)


def forget(ls: CodeLlamaServer, uri: str) -> None:
    """A document (or a notebook's cell) is closed: nothing kept for it stays."""
    ls.completer.forget(uri)
    ls.acceptance.closed(uri)


def did_change_notebook(ls: CodeLlamaServer, params: types.DidChangeNotebookDocumentParams) -> None:
    """After the workspace took it (:mod:`codellama_lsp.lsp.notebooks`): cells closed are
    forgotten, each cell edited is a ``didChange`` of its document."""
    did_open_or_close_notebook(ls, params)
    for change in cell_changes(params):
        did_change(ls, change)


def did_open_or_close_notebook(ls: CodeLlamaServer, params: Any) -> None:
    for uri in closed_cells(ls.workspace):
        forget(ls, uri)


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
    cursor = cursor_at(doc, params.position)
    selected = params.context.selected_completion_info
    if selected is not None:
        cursor = with_selected(doc, cursor, selected)
    completion = await ls.complete(uri, cursor)
    if completion is None or open_document(ls.workspace, uri) is not doc:
        return types.InlineCompletionList(items=[])  # nothing, or the document is gone
    ls.acceptance.offered(uri, cursor.prefix, completion.text)
    found = [completion]
    if params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked:
        # Asked for explicitly: candidates to cycle through (typing gets one). The first is
        # answered at once; the others come when the user cycles (the editor asks again).
        more = await ls.completer.more_candidates(
            uri, cursor, completion.text, ls.settings.candidates
        )
        found += [Completion(text, completion.end_character, completion.origin) for text in more]
    items = [inline_item(uri, doc, cursor, each, selected) for each in found]
    return types.InlineCompletionList(items=items)


async def completion(ls: CodeLlamaServer, params: types.CompletionParams) -> types.CompletionList:
    uri = params.text_document.uri
    doc = open_document(ls.workspace, uri)
    if doc is None:
        return types.CompletionList(is_incomplete=True, items=[])
    cursor = cursor_at(doc, params.position)
    result = await ls.complete(uri, cursor)
    if result is None:
        return types.CompletionList(is_incomplete=True, items=[])
    item = menu_item(doc, cursor, result, renders_markdown(ls.client_capabilities))
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
    record_accept(ls, info, None)
    if info is None or not ls.settings.prefetch_after_accept:
        return
    uri = str(info.get("uri", ""))
    doc = open_document(ls.workspace, uri)
    cursor = cursor_after_accept(doc, info) if doc is not None else None
    if cursor is not None:
        ls.spawn(ls.completer.prefetch(uri, cursor))


def snooze(ls: CodeLlamaServer, *args: Any) -> dict[str, Any]:
    """``codellama.snooze [minutes]``: none = until the server stops, 0 = end it now."""
    ls.rules.snooze_for(plain(list(args)), ls.show)
    return ls.status()


def did_change_editor_options(ls: CodeLlamaServer, params: Any) -> None:
    apply_editor_options(ls.workspace, plain(params))


def did_show_completion(ls: CodeLlamaServer, params: Any) -> None:
    params = plain(params)
    item = params.get("item") if isinstance(params, Mapping) else None
    info = item_info_of(ls, command_info(item))
    if info is not None:
        ls.acceptance.reported_shown(info.uri, info.before, info.text)


def did_partially_accept_completion(ls: CodeLlamaServer, params: Any) -> None:
    params = plain(params)
    length = params.get("acceptedLength") if isinstance(params, Mapping) else None
    if isinstance(length, int) and not isinstance(length, bool) and length > 0:
        record_accept(ls, command_info(params.get("item")), length)


FEATURES: list[tuple[str, Any, Any]] = [
    (types.INITIALIZE, None, initialize),
    (types.INITIALIZED, None, initialized),
    (types.WORKSPACE_DID_CHANGE_CONFIGURATION, None, did_change_configuration),
    (types.TEXT_DOCUMENT_DID_CHANGE, None, did_change),
    (types.TEXT_DOCUMENT_DID_CLOSE, None, did_close),
    (types.TEXT_DOCUMENT_DID_SAVE, None, did_save),
    (types.NOTEBOOK_DOCUMENT_DID_OPEN, None, did_open_or_close_notebook),
    (types.NOTEBOOK_DOCUMENT_DID_CHANGE, None, did_change_notebook),
    (types.NOTEBOOK_DOCUMENT_DID_CLOSE, None, did_open_or_close_notebook),
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
    (EDITOR_OPTIONS_NOTIFICATION, None, did_change_editor_options),
]
COMMANDS: list[tuple[str, Any]] = [
    ("codellama.stats", stats),
    ("codellama.status", status),
    ("codellama.reload", reload),
    (ACCEPTED_COMMAND, accepted),
    (SNOOZE_COMMAND, snooze),
]


def create_server(settings: Settings) -> CodeLlamaServer:
    server = CodeLlamaServer(settings)
    for method, options, handler in FEATURES:
        server.feature(method, options)(handler)
    commands = COMMANDS + (DEBUG_COMMANDS if os.environ.get(DEBUG_COMMANDS_ENV) == "1" else [])
    for name, handler in commands:
        server.command(name)(handler)
    return server
