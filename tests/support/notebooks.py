"""A notebook as a client drives it over LSP 3.17 notebook sync, and ``.ipynb`` files.

:class:`NotebookClient` sends what VS Code's language client sends (``notebookDocument/didOpen``,
``didChange`` with a cell array change, its cells' ``didOpen``/``didClose`` and text edits,
``didClose``), and keeps the client's view of the cells to compare prompts with.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lsprotocol import types

from tests.support.lsp_session import Session

MARKDOWN = "markdown"
CAPABILITIES = types.NotebookDocumentClientCapabilities(
    synchronization=types.NotebookDocumentSyncClientCapabilities()
)


@dataclass
class ClientCell:
    uri: str
    language: str
    text: str
    version: int = 1

    @property
    def kind(self) -> types.NotebookCellKind:
        markdown = self.language == MARKDOWN
        return types.NotebookCellKind.Markup if markdown else types.NotebookCellKind.Code

    def item(self) -> types.TextDocumentItem:
        return types.TextDocumentItem(
            uri=self.uri, language_id=self.language, version=self.version, text=self.text
        )

    def cell(self) -> types.NotebookCell:
        return types.NotebookCell(kind=self.kind, document=self.uri)


class NotebookClient:
    """One notebook of a :class:`~tests.support.lsp_session.Session`'s client."""

    def __init__(self, session: Session, uri: str) -> None:
        self.session = session
        self.uri = uri
        self.version = 0
        self.cells: list[ClientCell] = []
        self._made = 0

    def new_cell(self, text: str, language: str = "python") -> ClientCell:
        """A cell with a fresh URI (as VS Code makes them: the notebook's path and a fragment)."""
        self._made += 1
        path = self.uri.removeprefix("file://")
        return ClientCell(f"vscode-notebook-cell:{path}#W{self._made}sZmlsZQ%3D%3D", language, text)

    def open(self, *cells: ClientCell) -> None:
        self.cells = list(cells)
        self.version = 1
        self.session.client.notebook_document_did_open(
            types.DidOpenNotebookDocumentParams(
                notebook_document=types.NotebookDocument(
                    uri=self.uri,
                    notebook_type="jupyter-notebook",
                    version=1,
                    cells=[c.cell() for c in cells],
                ),
                cell_text_documents=[c.item() for c in cells],
            )
        )

    def _change(self, cells: types.NotebookDocumentCellChanges) -> None:
        self.version += 1
        self.session.client.notebook_document_did_change(
            types.DidChangeNotebookDocumentParams(
                notebook_document=types.VersionedNotebookDocumentIdentifier(
                    version=self.version, uri=self.uri
                ),
                change=types.NotebookDocumentChangeEvent(cells=cells),
            )
        )

    def splice(
        self,
        start: int,
        delete: int,
        new: list[ClientCell],
        opened: Sequence[ClientCell] = (),
        closed: Sequence[ClientCell] = (),
    ) -> None:
        """One cell array change (VS Code's language client sends a move as one, with the
        moved cells neither opened nor closed)."""
        self.cells[start : start + delete] = new
        structure = types.NotebookDocumentCellChangeStructure(
            array=types.NotebookCellArrayChange(
                start=start, delete_count=delete, cells=[c.cell() for c in new]
            ),
            did_open=[c.item() for c in opened] or None,
            did_close=[types.TextDocumentIdentifier(uri=c.uri) for c in closed] or None,
        )
        self._change(types.NotebookDocumentCellChanges(structure=structure))

    def insert(self, index: int, cell: ClientCell) -> None:
        self.splice(index, 0, [cell], opened=[cell])

    def delete(self, index: int) -> None:
        cell = self.cells[index]
        self.splice(index, 1, [], closed=[cell])

    def move(self, source: int, target: int) -> None:
        order = list(self.cells)
        order.insert(target, order.pop(source))
        first = min(source, target)
        last = max(source, target) + 1
        self.splice(first, last - first, order[first:last])

    def edit(
        self, cell: ClientCell, start: tuple[int, int], end: tuple[int, int], text: str
    ) -> None:
        """An edit of one cell's text (a ``textContent`` change)."""
        lines = cell.text.split("\n")
        a = sum(len(line) + 1 for line in lines[: start[0]]) + start[1]
        b = sum(len(line) + 1 for line in lines[: end[0]]) + end[1]
        cell.text = cell.text[:a] + text + cell.text[b:]
        cell.version += 1
        change = types.TextDocumentContentChangePartial(
            range=types.Range(
                start=types.Position(line=start[0], character=start[1]),
                end=types.Position(line=end[0], character=end[1]),
            ),
            text=text,
        )
        content = types.NotebookDocumentCellContentChanges(
            document=types.VersionedTextDocumentIdentifier(uri=cell.uri, version=cell.version),
            changes=[change],
        )
        self._change(types.NotebookDocumentCellChanges(text_content=[content]))

    def type_at_end(self, cell: ClientCell, text: str) -> None:
        lines = cell.text.split("\n")
        end = (len(lines) - 1, len(lines[-1]))
        self.edit(cell, end, end, text)

    def close(self, listed: list[ClientCell] | None = None) -> None:
        cells = self.cells if listed is None else listed
        self.session.client.notebook_document_did_close(
            types.DidCloseNotebookDocumentParams(
                notebook_document=types.NotebookDocumentIdentifier(uri=self.uri),
                cell_text_documents=[types.TextDocumentIdentifier(uri=c.uri) for c in cells],
            )
        )


def write_ipynb(path: Path, cells: list[tuple[str, str]]) -> Path:
    """A Jupyter notebook file (nbformat 4, Python kernel, no outputs) of ``(kind, source)``
    cells, kind ``code`` or ``markdown``."""
    notebook = {
        "cells": [
            {
                "cell_type": kind,
                "metadata": {},
                "source": source.splitlines(keepends=True),
                **({"execution_count": None, "outputs": []} if kind == "code" else {}),
            }
            for kind, source in cells
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook, indent=1))
    return path
