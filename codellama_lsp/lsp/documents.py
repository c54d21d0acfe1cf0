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
    editor_indent: IndentStyle | None = None
    """The editor's indentation for it (``codellama/didChangeEditorOptions``)."""

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


def open_document(workspace: Workspace, uri: str) -> TextDocument | None:
    """The open document at ``uri``, or None.

    (pygls' ``get_text_document`` would read an unknown URI from disk: a never-opened file,
    or ``/dev/zero``.)
    """
    found: TextDocument | None = workspace.text_documents.get(unquote(uri))
    return found


def cursor_at(doc: TextDocument, position: types.Position) -> Cursor:
    """The cursor in Python string units, from a client position in its own encoding.

    A line past the last one means the end of the document (as LSP says for edits).
    """
    lines = lsp_lines(doc.source)
    if position.line >= len(lines):
        line, column = len(lines) - 1, len(lines[-1])
    else:
        line = max(position.line, 0)
        column = column_of(lines[line], position.character, doc.position_codec)
    cursor = Cursor.clamped(doc.source, line, column, lines)
    return cursor.with_editor_indent(getattr(doc, "editor_indent", None))


def client_units(doc: TextDocument, line_text: str, column: int) -> int:
    """Column ``column`` (Python units) of ``line_text`` in the client's position encoding."""
    head = line_text[:column]
    return len(head) if head.isascii() else int(doc.position_codec.client_num_units(head))


def client_position(doc: TextDocument, line: int, column: int) -> types.Position:
    lines = lsp_lines(doc.source)
    text = lines[line] if line < len(lines) else ""
    return types.Position(line=line, character=client_units(doc, text, column))


def on_cursor_line(doc: TextDocument, cursor: Cursor, column: int) -> types.Position:
    """A client position on the cursor's line, from the context's own copy of the line."""
    return types.Position(line=cursor.line, character=client_units(doc, cursor.line_text, column))


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
            "line": cursor.line,
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
    source = start.normalized
    if not source.startswith(text, start.offset):
        source = source[: start.offset] + text + source[max(end.offset, start.offset) :]
    lines = text.split("\n")
    line = start.line + len(lines) - 1
    column = (start.character if len(lines) == 1 else 0) + len(lines[-1])
    return Cursor.clamped(source, line, column)
