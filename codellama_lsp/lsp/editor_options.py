"""The editor's indentation for a document: ``codellama/didChangeEditorOptions``.

The editors send it when a document is opened in them and when its indentation options
change: ``{"textDocument": {"uri": …}, "options": {"tabSize": 2, "insertSpaces": true}}``
(``options`` is LSP's ``FormattingOptions``, as ``textDocument/formatting`` sends it; VS Code
reads ``TextEditor.options``, Neovim ``'shiftwidth'``/``'expandtab'``, like
``vim.lsp.util.make_formatting_params``). Tabby's ``tabby/editorOptions`` is the precedent.
The server keeps it on the open document; every cursor in that document carries it
(:attr:`codellama_lsp.cursor.Cursor.editor_indent`), and the clean-up indents suggestions
in the document's style (:mod:`codellama_lsp.completion.indentation`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pygls.workspace import Workspace

from codellama_lsp.cursor import IndentStyle
from codellama_lsp.lsp.documents import LspTextDocument, open_document

EDITOR_OPTIONS_NOTIFICATION = "codellama/didChangeEditorOptions"
MAX_TAB_SIZE = 16


def indent_style(options: Any) -> IndentStyle | None:
    """``FormattingOptions`` (a mapping with ``tabSize`` and ``insertSpaces``) → the style;
    None when they are missing or out of range."""
    if not isinstance(options, Mapping):
        return None
    size, spaces = options.get("tabSize"), options.get("insertSpaces")
    if isinstance(size, bool) or not isinstance(size, int | float) or not isinstance(spaces, bool):
        return None
    if size != int(size) or not 1 <= size <= MAX_TAB_SIZE:
        return None
    return IndentStyle(tab_size=int(size), insert_spaces=spaces)


def apply_editor_options(workspace: Workspace, params: Any) -> bool:
    """Keep the style the notification ``params`` carries on its open document; False when
    the document is not open or the options are not usable."""
    if not isinstance(params, Mapping):
        return False
    document = params.get("textDocument")
    uri = document.get("uri") if isinstance(document, Mapping) else None
    doc = open_document(workspace, uri) if isinstance(uri, str) else None
    style = indent_style(params.get("options"))
    if not isinstance(doc, LspTextDocument) or style is None:
        return False
    doc.editor_indent = style
    return True


__all__ = ["EDITOR_OPTIONS_NOTIFICATION", "apply_editor_options", "indent_style"]
