"""The line index of big documents agrees with splitting the text, through any edits."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from codellama_lsp.cursor import lsp_lines
from codellama_lsp.lsp import line_index
from codellama_lsp.lsp.line_index import LineIndex

PIECES = st.lists(
    st.sampled_from(["a", "bc", "def f():", "    x = 1", "\n", "\r\n", "\r", "é", "\u2028"]),
    max_size=60,
).map("".join)


def starts(text: str) -> list[int]:
    out, offset = [], 0
    lines = lsp_lines(text)
    for line in lines:
        out.append(offset)
        offset += len(line)
        if offset < len(text):
            offset += 2 if text.startswith("\r\n", offset) else 1
    return out


def agrees(index: LineIndex, text: str) -> None:
    lines = lsp_lines(text)
    assert index.text == text
    assert index.line_count == len(lines)
    assert [index.line_start(n) for n in range(len(lines))] == starts(text)
    assert [index.line_text(n) for n in range(len(lines))] == lines
    line_starts = starts(text)
    for offset in range(len(text) + 1):
        expected = max(n for n, start in enumerate(line_starts) if start <= offset)
        assert index.line_of(offset) == expected, offset


@settings(max_examples=300, deadline=None)
@given(PIECES, st.lists(st.tuples(st.integers(0, 400), st.integers(0, 40), PIECES), max_size=8))
def test_lines_agree_with_a_split_after_every_edit(
    text: str, edits: list[tuple[int, int, str]]
) -> None:
    old_chunk = line_index.CHUNK
    line_index.CHUNK = 7  # many checkpoints, so that edits meet them
    try:
        index = LineIndex(text)
        agrees(index, text)
        for at, length, new in edits:
            start = min(at, len(text))
            end = min(len(text), start + length)
            text = text[:start] + new + text[end:]
            index.edited(start, end, new, text)
            agrees(index, text)
    finally:
        line_index.CHUNK = old_chunk
