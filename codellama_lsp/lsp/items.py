"""A completion as LSP items: the inline (ghost text) item and the completion-menu item.

Every item has a range that starts at the cursor as the server read it and ends where the
completion replaces text after it (see :func:`codellama_lsp.completion.cleanup.line_edit`).
"""

from __future__ import annotations

from lsprotocol import types
from pygls.workspace import TextDocument

from codellama_lsp.completion.cleanup import line_edit
from codellama_lsp.completion.completer import Completion
from codellama_lsp.cursor import Cursor
from codellama_lsp.lsp.acceptance import accept_command
from codellama_lsp.lsp.documents import cursor_at, on_cursor_line


def with_selected(
    doc: TextDocument, cursor: Cursor, selected: types.SelectedCompletionInfo
) -> Cursor:
    """The cursor as if the item selected in the completion menu were inserted: the result
    must extend that item."""
    start = cursor_at(doc, selected.range.start)
    end = cursor_at(doc, selected.range.end)
    text = cursor.normalized
    return Cursor(
        text[: start.offset] + selected.text + text[end.offset :],
        start.line,
        start.character + len(selected.text),
        cursor.editor_indent,
    )


def inline_item(
    uri: str,
    doc: TextDocument,
    cursor: Cursor,
    completion: Completion,
    selected: types.SelectedCompletionInfo | None,
) -> types.InlineCompletionItem:
    """Ghost text; with a menu item selected, it replaces that item's range."""
    if selected is not None:
        edit_range = selected.range
        insert_text = selected.text + completion.text
    else:
        end_character, insert_text = line_edit(cursor, completion.text, completion.end_character)
        edit_range = types.Range(
            start=on_cursor_line(doc, cursor, cursor.character),
            end=on_cursor_line(doc, cursor, end_character),
        )
    return types.InlineCompletionItem(
        insert_text=insert_text,
        range=edit_range,
        command=accept_command(uri, edit_range, insert_text),
    )


def menu_item(
    doc: TextDocument, cursor: Cursor, completion: Completion, markdown: bool
) -> types.CompletionItem:
    """One completion-menu entry: the first line as label, the whole text as documentation."""
    text = completion.text
    first, _, more = text.partition("\n")
    label = (first.strip() or text.strip().split("\n")[0]) + (" …" if more else "")
    end_character, new_text = line_edit(cursor, text, completion.end_character)
    edit_range = types.Range(
        start=on_cursor_line(doc, cursor, cursor.character),
        end=on_cursor_line(doc, cursor, end_character),
    )
    documentation: types.MarkupContent | str = text
    if markdown:
        documentation = types.MarkupContent(
            kind=types.MarkupKind.Markdown, value=f"```python\n{text}\n```"
        )
    return types.CompletionItem(
        label=label[:80],
        kind=types.CompletionItemKind.Text,
        detail="codellama",
        documentation=documentation,
        text_edit=types.TextEdit(range=edit_range, new_text=new_text),
        insert_text_format=types.InsertTextFormat.PlainText,
        # Matched against what is typed after the range's start (the cursor): typing the
        # completion's own beginning keeps the item.
        filter_text=new_text,
        sort_text="0",
        preselect=True,
    )


def renders_markdown(capabilities: types.ClientCapabilities) -> bool:
    """Whether the client shows completion-item documentation as Markdown."""
    document = capabilities.text_document
    item = document.completion.completion_item if document and document.completion else None
    return types.MarkupKind.Markdown in ((item.documentation_format if item else None) or [])
