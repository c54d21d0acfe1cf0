"""Client positions (UTF-16 by default, UTF-8/32 when negotiated) to Python string indices."""

from __future__ import annotations

import pytest
from lsprotocol import types
from pygls.workspace import PositionCodec, TextDocument

from codellama_lsp.lsp.documents import client_position, cursor_at

TEXT = 'label = "héllo 😀 世界"; x = \nprint(label)\n'


def units(text: str, encoding: str) -> int:
    if encoding == types.PositionEncodingKind.Utf8:
        return len(text.encode("utf-8"))
    if encoding == types.PositionEncodingKind.Utf16:
        return len(text.encode("utf-16-le")) // 2
    return len(text)


@pytest.mark.parametrize(
    "encoding",
    [
        types.PositionEncodingKind.Utf8,
        types.PositionEncodingKind.Utf16,
        types.PositionEncodingKind.Utf32,
    ],
)
def test_cursor_after_emoji_and_cjk(encoding: types.PositionEncodingKind) -> None:
    doc = TextDocument("file:///p.py", TEXT, position_codec=PositionCodec(encoding=encoding))
    line = TEXT.split("\n")[0]
    column = len(line)  # after "x = "
    position = types.Position(line=0, character=units(line, encoding))
    ctx = cursor_at(doc, position)
    assert ctx.line_prefix == line
    assert ctx.prefix == line
    assert client_position(doc, 0, column) == position


def test_positions_past_the_end_are_clamped() -> None:
    doc = TextDocument("file:///p.py", TEXT)
    ctx = cursor_at(doc, types.Position(line=99, character=99))
    assert ctx.line == len(TEXT.split("\n")) - 1 and ctx.character == 0
    ctx = cursor_at(doc, types.Position(line=1, character=500))
    assert ctx.line_prefix == "print(label)"


def test_crlf_document_positions() -> None:
    doc = TextDocument("file:///p.py", "a = 1\r\nb = \r\n")
    ctx = cursor_at(doc, types.Position(line=1, character=4))
    assert ctx.line_prefix == "b = " and ctx.prefix == "a = 1\nb = "
