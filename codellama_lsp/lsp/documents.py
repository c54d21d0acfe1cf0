"""The server's copy of the editor's documents, and positions between the client and Python.

Clients count columns in their negotiated encoding (UTF-16 by default); the rest of the
server counts Python string indices (:class:`~codellama_lsp.cursor.Cursor`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.workspace import PositionCodec, TextDocument, Workspace

from codellama_lsp.cursor import Cursor, IndentStyle, lsp_lines
from codellama_lsp.lsp.line_index import LineIndex

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
    * Positions are found through a :class:`~codellama_lsp.lsp.line_index.LineIndex` that edits
      keep up to date: the text is never split into lines on the keystroke path (a 20 MB
      document has half a million of them).
    """

    _lines_of: tuple[str, tuple[str, ...]] | None = None
    _index: LineIndex | None = None
    editor_indent: IndentStyle | None = None
    """The editor's indentation for it (``codellama/didChangeEditorOptions``)."""

    @property
    def index(self) -> LineIndex:
        """Where the lines of the current text start (built once, then kept by edits)."""
        source = self.source
        index = self._index
        if index is None or index.text is not source:
            index = self._index = LineIndex(source)
        return index

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
        index = self.index
        line = max(0, position.line)
        if line >= index.line_count:
            return len(index.text)
        start = index.line_start(line)
        text = index.text[start : index.line_end(start)]
        return start + column_of(text, position.character, self.position_codec)

    def cursor_at(self, position: types.Position) -> Cursor:
        """The cursor at a client position (see :func:`cursor_at`)."""
        line, column = self.place_of(position)
        return excerpt_cursor(self.index, line, column).with_editor_indent(self.editor_indent)

    def place_of(self, position: types.Position) -> tuple[int, int]:
        """(line, column in Python units) of a client position, moved into the document."""
        index = self.index
        total = index.line_count
        if position.line >= total:
            line = total - 1
            return line, len(index.line_text(line))
        line = max(position.line, 0)
        return line, column_of(index.line_text(line), position.character, self.position_codec)

    def _apply_incremental_change(self, change: types.TextDocumentContentChangePartial) -> None:
        start = self.offset_of(change.range.start)
        end = self.offset_of(change.range.end)
        if end < start:
            start, end = end, start
        source = self.source
        index = self.index
        self._source = source[:start] + change.text + source[end:]
        index.edited(start, end, change.text, self._source)


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


def open_document(workspace: Workspace, uri: str) -> TextDocument | None:
    """The open document at ``uri``, or None.

    (pygls' ``get_text_document`` would read an unknown URI from disk: a never-opened file,
    or ``/dev/zero``.)
    """
    found: TextDocument | None = workspace.text_documents.get(unquote(uri))
    return found


EXCERPT_LINES_ABOVE = 4096
EXCERPT_CHARS = 65_536
"""A big document's excerpt keeps, above the cursor, this many lines or, if fewer make it,
lines of this many characters: whatever a prompt window of 4,096 tokens (the default
``max_context_tokens``) can hold, at one token a line at least and 16 characters a token at
most, and what the parse check may read (400 lines or 64 KB)."""
EXCERPT_LINES_BELOW = 1024
"""Below the cursor, this many lines or lines of :data:`EXCERPT_CHARS` (a FIM suffix of a
quarter of the budget, the parse check's window)."""
EXCERPT_HEAD = 256
"""The document's first lines, kept too: its docstring and imports (prompt, context)."""
EXCERPT_GRID = 256
"""The excerpt's edges move in steps of this many lines (a multiple of the prompt's and the
context's steps), counted from the top above the cursor and from the bottom below it: typing
near the cursor, new lines too, leaves the rest of the excerpt's text as it was, as it leaves
a small document's, so the completion cache, typing-through and the KV cache keep working."""


def cursor_at(doc: TextDocument, position: types.Position) -> Cursor:
    """The cursor in Python string units, from a client position in its own encoding.

    A line past the last one means the end of the document (as LSP says for edits). In a
    document of more lines than an excerpt holds, the cursor's text is the excerpt (see
    :data:`EXCERPT_CHARS`): its cost per keystroke does not grow with the document.
    """
    if not isinstance(doc, LspTextDocument):
        lines = lsp_lines(doc.source)
        if position.line >= len(lines):
            line, column = len(lines) - 1, len(lines[-1])
        else:
            line = max(position.line, 0)
            column = column_of(lines[line], position.character, doc.position_codec)
        cursor = Cursor.clamped(doc.source, line, column, lines)
        return cursor.with_editor_indent(getattr(doc, "editor_indent", None))
    return doc.cursor_at(position)


def excerpt_cursor(index: LineIndex, line: int, column: int) -> Cursor:
    """The cursor at ``line``/``column`` of the indexed text, over an excerpt if it is big."""
    text, total = index.text, index.line_count
    if len(text) <= 2 * EXCERPT_CHARS or total <= 2 * EXCERPT_HEAD + 2 * EXCERPT_GRID:
        return Cursor.clamped(text, line, column)
    line_start = index.line_start(line)
    first = max(line - EXCERPT_LINES_ABOVE, index.line_of(max(0, line_start - EXCERPT_CHARS)))
    first -= first % EXCERPT_GRID
    line_end = index.line_end(line_start)
    last = min(line + EXCERPT_LINES_BELOW, index.line_of(min(len(text), line_end + EXCERPT_CHARS)))
    dropped = max(0, total - 1 - last)
    dropped -= dropped % EXCERPT_GRID
    end_line = total - dropped  # the lines [first, end_line) are kept
    body_end = len(text)
    if end_line < total:
        next_start = index.line_start(end_line)
        body_end = next_start - (2 if text.startswith("\r\n", next_start - 2) else 1)
    if first <= EXCERPT_HEAD:
        excerpt, shift = text[:body_end], 0
    else:
        head = text[: index.line_start(EXCERPT_HEAD)]
        excerpt, shift = head + text[index.line_start(first) : body_end], first - EXCERPT_HEAD
    return Cursor.clamped(excerpt, line - shift, column, line_shift=shift)


def client_units(doc: TextDocument, line_text: str, column: int) -> int:
    """Column ``column`` (Python units) of ``line_text`` in the client's position encoding."""
    head = line_text[:column]
    return len(head) if head.isascii() else int(doc.position_codec.client_num_units(head))


def client_position(doc: TextDocument, line: int, column: int) -> types.Position:
    if isinstance(doc, LspTextDocument):
        index = doc.index
        text = index.line_text(line) if line < index.line_count else ""
    else:
        lines = lsp_lines(doc.source)
        text = lines[line] if line < len(lines) else ""
    return types.Position(line=line, character=client_units(doc, text, column))


def on_cursor_line(doc: TextDocument, cursor: Cursor, column: int) -> types.Position:
    """A client position on the cursor's line, from the context's own copy of the line."""
    return types.Position(
        line=cursor.document_line, character=client_units(doc, cursor.line_text, column)
    )


def describe_document(
    doc: TextDocument, with_text: bool, position: types.Position | None
) -> dict[str, Any]:
    """The server's copy of ``doc`` (for tests): its hash, and the cursor at ``position`` as
    the server reads it (what the prompt sees)."""
    source = doc.source
    encoding = doc.position_codec.encoding
    data: dict[str, Any] = {
        "version": doc.version,
        "length": len(source),
        "sha256": hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest(),
        "position_encoding": str(getattr(encoding, "value", encoding)),
    }
    if with_text:
        data["text"] = source
    if position is not None:
        cursor = cursor_at(doc, position)
        data["cursor"] = {
            "line": cursor.document_line,
            "column": cursor.character,
            "line_prefix": cursor.line_prefix,
            "line_suffix": cursor.line_suffix,
        }
    return data


def end_of_change(
    doc: TextDocument, change: types.TextDocumentContentChangePartial
) -> types.Position:
    """Where an incremental change's new text ends (the cursor after typing it)."""
    *lines, last = change.text.split("\n")
    start = change.range.start
    units = int(doc.position_codec.client_num_units(last))
    return types.Position(
        line=start.line + len(lines), character=units + (0 if lines else start.character)
    )


def cursor_after_accept(doc: TextDocument, info: Mapping[str, Any]) -> Cursor | None:
    """The cursor after the accepted text, in the document as it will be then.

    It does not wait for the edit's ``didChange`` (Neovim sends it up to 150 ms later): when
    the document does not hold the accepted text yet, the text is applied to a copy. None for
    arguments that do not name a place.
    """
    try:
        text = str(info["text"]).replace("\r\n", "\n")
        line, character = int(info["line"]), int(info["character"])
        start = cursor_at(doc, types.Position(line=line, character=character))
        end = cursor_at(
            doc,
            types.Position(
                line=int(info.get("end_line", line)),
                character=int(info.get("end_character", character)),
            ),
        )
    except (KeyError, TypeError, ValueError):
        return None
    if start.normalized.startswith(text, start.offset):
        return start.replaced(start.offset, start.offset + len(text), text)
    # In the start's text (an excerpt of a big document): the same excerpt as after the edit.
    end_offset = start.offset_at(end.document_line - start.line_shift, end.character)
    return start.replaced(start.offset, end_offset, text)
