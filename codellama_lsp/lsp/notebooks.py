"""Jupyter notebooks over LSP 3.17's notebook document sync: a cell's cursor sees its notebook.

The client sends ``notebookDocument/didOpen|didChange|didClose`` for the notebooks that
:data:`NOTEBOOK_SYNC` selects (VS Code's ``jupyter-notebook``); every cell is a text document
of its own (``vscode-notebook-cell:…`` URIs), and requests name a cell and a position in it.
pygls keeps the notebooks and their cells in its workspace; :class:`NotebookWorkspace` makes
that robust (a change to a notebook or a cell it never saw, a notebook opened twice, a close
that lists fewer cells than it has: each is logged and skipped, and a closed notebook leaves
none of its cells behind) and makes each cell a :class:`CellDocument`.

A cell's cursor (:meth:`CellDocument.cursor_at`, which every handler reads through
:func:`codellama_lsp.lsp.documents.cursor_at`) is over the notebook as one Python file
(:mod:`codellama_lsp.context.notebook`): the cells above, the cell, the cells below. Its
``line_shift`` is minus the lines above the cell, so that ``document_line`` is the line in the
cell: the answer's range comes back in the cell's own positions with no other change. The
completer, the prompt (window, import block, FIM suffix, KV reuse), the context sources and the
clean-up see an ordinary file.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.workspace import Workspace

from codellama_lsp.context.notebook import Cell, Joined, is_python, joined, rendered
from codellama_lsp.cursor import Cursor
from codellama_lsp.lsp.documents import LspTextDocument, LspWorkspace, excerpt_cursor
from codellama_lsp.lsp.line_index import LineIndex

log = logging.getLogger(__name__)

NOTEBOOK_SYNC = types.NotebookDocumentSyncOptions(
    notebook_selector=[types.NotebookDocumentFilterWithNotebook(notebook="jupyter-notebook")]
)
"""Jupyter notebooks, every cell (markdown ones too: they go into the prompt as comments).
Which cells are completed is the ``languages`` setting's business, as for files."""


class CellDocument(LspTextDocument):
    """A notebook cell's text document; its cursor is over the whole notebook."""

    def __init__(self, workspace: NotebookWorkspace, uri: str, **kwargs: Any) -> None:
        super().__init__(uri, **kwargs)
        self.notebooks = workspace
        self._piece: tuple[str, bool, str, str] | None = None

    def piece(self, markdown: bool, language: str) -> str:
        """This cell as another cell's prompt shows it (kept while its text is the same)."""
        source = self.source
        kept = self._piece
        if kept is not None and kept[0] is source and kept[1:3] == (markdown, language):
            return kept[3]
        text = rendered(Cell(source, self.language_id or "", markdown), language)
        self._piece = (source, markdown, language, text)
        return text

    def cursor_at(self, position: types.Position) -> Cursor:
        line, column = self.place_of(position)
        around = self.notebooks.around(self)
        if around is None:  # not a Python code cell, or its notebook is gone
            return super().cursor_at(position)
        return notebook_cursor(around, self.source, line, column).with_editor_indent(
            self.editor_indent
        )


def notebook_cursor(around: Joined, cell_text: str, line: int, column: int) -> Cursor:
    """The cursor at ``line``/``column`` of a cell (Python units) over the notebook's file:
    ``document_line`` stays the cell's line. A big notebook gets an excerpt, as a big file."""
    first = around.first_line
    cursor = excerpt_cursor(LineIndex(around.text(cell_text)), first + line, column)
    moved = dataclasses.replace(cursor, line_shift=cursor.line_shift - first, notebook=True)
    moved.__dict__["lines"] = cursor.lines  # already split: keep it
    return moved


class NotebookWorkspace(LspWorkspace):
    """pygls' workspace with notebooks handled as bad input requires, and cells that know
    their notebook (:class:`CellDocument`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._closed: list[str] = []

    # --- what the handlers read --------------------------------------------------------
    def take_closed(self) -> list[str]:
        """The cells closed since the last call (the server forgets what it kept for them)."""
        closed, self._closed = self._closed, []
        return closed

    def notebook_of(self, uri: str) -> str | None:
        """The URI of the notebook that has the cell ``uri``; None for other documents."""
        found: str | None = self._cell_in_notebook.get(unquote(uri))
        return found

    def around(self, cell: CellDocument) -> Joined | None:
        """The notebook's file around ``cell``; None unless it is a Python code cell of an
        open notebook."""
        uri = unquote(cell.uri)
        notebook = self._notebook_documents.get(self._cell_in_notebook.get(uri, ""))
        if notebook is None:
            return None
        uris = [unquote(c.document) for c in notebook.cells]
        if uri not in uris:
            return None
        index = uris.index(uri)
        if not is_python(Cell("", cell.language_id or "", _markdown(notebook.cells[index]))):
            return None
        language = cell.language_id or ""
        above = self._pieces(notebook.cells[:index], uris[:index], language)
        below = self._pieces(notebook.cells[index + 1 :], uris[index + 1 :], language)
        return joined(above, cell.source, below)

    def _pieces(
        self, cells: Sequence[types.NotebookCell], uris: list[str], language: str
    ) -> list[str]:
        pieces = []
        for cell, uri in zip(cells, uris, strict=True):
            doc = self._text_documents.get(uri)
            if isinstance(doc, CellDocument):
                pieces.append(doc.piece(_markdown(cell), language))
        return pieces

    # --- pygls' workspace methods --------------------------------------------------------
    def put_text_document(
        self, text_document: types.TextDocumentItem, notebook_uri: str | None = None
    ) -> None:
        if notebook_uri is None:
            super().put_text_document(text_document)
            return
        uri = unquote(text_document.uri)
        self._text_documents[uri] = CellDocument(
            self,
            text_document.uri,
            source=text_document.text,
            version=text_document.version,
            language_id=text_document.language_id,
            sync_kind=self._sync_kind,
            position_codec=self._position_codec,
        )
        self._cell_in_notebook[uri] = unquote(notebook_uri)

    def put_notebook_document(self, params: types.DidOpenNotebookDocumentParams) -> None:
        uri = unquote(params.notebook_document.uri)
        if uri in self._notebook_documents:
            log.warning("notebook %s opened again: its cells start afresh", uri)
            self._drop(uri)
        super().put_notebook_document(params)

    def remove_notebook_document(self, params: types.DidCloseNotebookDocumentParams) -> None:
        """Every cell of the notebook goes, whether the close lists it or not."""
        self._drop(unquote(params.notebook_document.uri))

    def _drop(self, notebook: str) -> None:
        self._notebook_documents.pop(notebook, None)
        for cell in [c for c, n in self._cell_in_notebook.items() if n == notebook]:
            self._close_cell(cell)

    def _close_cell(self, uri: str) -> None:
        doc = self._text_documents.get(uri)
        self.remove_text_document(uri)
        # The URI as the client wrote it: the completer keeps its work under that one.
        self._closed.append(uri if doc is None else doc.uri)

    def update_notebook_document(self, params: types.DidChangeNotebookDocumentParams) -> None:
        """pygls' update, with what it would fail on skipped: a notebook or cell it does not
        hold, a cell range outside the notebook."""
        uri = unquote(params.notebook_document.uri)
        notebook = self._notebook_documents.get(uri)
        if notebook is None:
            log.warning("change to notebook %s, which is not open: ignored", uri)
            return
        notebook.version = params.notebook_document.version
        if params.change.metadata is not None:
            notebook.metadata = params.change.metadata
        cells = params.change.cells
        if cells is None:
            return
        known = {unquote(cell.document): cell for cell in notebook.cells}
        for data in cells.data or []:
            cell = known.get(unquote(data.document))
            if cell is not None:
                cell.kind, cell.metadata = data.kind, data.metadata
                cell.execution_summary = data.execution_summary
        if cells.structure is not None:
            self._restructure(uri, notebook, cells.structure)
        for content in cells.text_content or []:
            doc = self._text_documents.get(unquote(content.document.uri))
            if self._cell_in_notebook.get(unquote(content.document.uri)) != uri or doc is None:
                log.warning("change to cell %s, which is not open: ignored", content.document.uri)
                continue
            for change in content.changes:
                doc.apply_change(change)
            doc.version = content.document.version

    def _restructure(
        self,
        uri: str,
        notebook: types.NotebookDocument,
        structure: types.NotebookDocumentCellChangeStructure,
    ) -> None:
        cells = list(notebook.cells)
        start = min(max(structure.array.start, 0), len(cells))
        end = min(start + max(structure.array.delete_count, 0), len(cells))
        notebook.cells = [*cells[:start], *(structure.array.cells or []), *cells[end:]]
        for closed in structure.did_close or []:
            if self._cell_in_notebook.get(unquote(closed.uri)) == uri:
                self._close_cell(unquote(closed.uri))
        for opened in structure.did_open or []:
            self.put_text_document(opened, notebook_uri=uri)


def _markdown(cell: types.NotebookCell) -> bool:
    return bool(cell.kind == types.NotebookCellKind.Markup)


def closed_cells(workspace: Workspace) -> list[str]:
    """The cells closed since the last call (see :meth:`NotebookWorkspace.take_closed`)."""
    return workspace.take_closed() if isinstance(workspace, NotebookWorkspace) else []


def context_uri(workspace: Workspace, uri: str) -> str:
    """The document whose imports and path the context sources read for ``uri``: a cell's
    notebook (its imports are the notebook's; it sits where the notebook file does)."""
    notebook = workspace.notebook_of(uri) if isinstance(workspace, NotebookWorkspace) else None
    return notebook if notebook is not None else uri


def cell_changes(
    params: types.DidChangeNotebookDocumentParams,
) -> list[types.DidChangeTextDocumentParams]:
    """A notebook change's cell edits, as the ``didChange`` of each cell's document."""
    cells = params.change.cells
    return [
        types.DidChangeTextDocumentParams(
            text_document=content.document, content_changes=list(content.changes)
        )
        for content in (cells.text_content or [] if cells is not None else [])
    ]


def notebook_figures(workspace: Workspace) -> dict[str, int]:
    """For ``codellama.stats``: the notebooks open and the cells they hold."""
    return {
        "notebooks": len(workspace.notebook_documents),
        "notebook_cells": len(workspace._cell_in_notebook),
    }


__all__ = [
    "NOTEBOOK_SYNC",
    "CellDocument",
    "NotebookWorkspace",
    "cell_changes",
    "closed_cells",
    "context_uri",
    "notebook_cursor",
    "notebook_figures",
]
