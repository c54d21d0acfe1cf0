"""Where lines start in a big text, kept up to date through edits, without splitting it.

A 20 MB document has half a million lines: splitting it (``str.splitlines``) takes a tenth
of a second and a few hundred megabytes of line objects, and an edit makes a new text, so
doing it per keystroke made every keystroke as slow as the document is big. The index keeps
the start of a line every :data:`CHUNK` characters or so (a *checkpoint*: its offset and its
line number) and finds any other line from the checkpoint before it, scanning at most a
chunk. An edit drops the checkpoints it touched and shifts the ones after it: work in the
number of checkpoints, a few thousand for 20 MB, plus the inserted text.

Lines end at ``\\n``, ``\\r\\n`` or ``\\r`` (LSP's rules), nowhere else.
"""

from __future__ import annotations

import bisect
import re

CHUNK = 16_384
"""Characters between checkpoints (a lookup scans at most about this much)."""
_BREAK = re.compile(r"\r\n|\r|\n")


def count_breaks(text: str, start: int = 0, end: int | None = None) -> int:
    """Line breaks in ``text[start:end]`` (a ``\\r\\n`` counts once)."""
    end = len(text) if end is None else end
    newlines = text.count("\n", start, end)
    returns = text.count("\r", start, end)
    if returns:
        newlines += returns - text.count("\r\n", start, end)
    return newlines


class LineIndex:
    """Line starts of ``text`` (one version of a document); :meth:`edited` gives the next."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._has_cr = "\r" in text
        self._offsets: list[int] = [0]
        """Checkpoint offsets: each the start of a line, increasing."""
        self._lines: list[int] = [0]
        """The line number of each checkpoint."""
        self._scan(0, 0, len(text))
        self.breaks = count_breaks(text) if self._has_cr else text.count("\n")

    @property
    def line_count(self) -> int:
        """Lines as LSP counts them (a text ending with a break has an empty last line)."""
        return self.breaks + 1

    # --- lookups ----------------------------------------------------------------------
    def line_start(self, line: int) -> int:
        """Offset where ``line`` starts (0 ≤ ``line`` < :attr:`line_count`)."""
        at = bisect.bisect_right(self._lines, line) - 1
        offset, found = self._offsets[at], self._lines[at]
        text = self.text
        if not self._has_cr:
            find = text.find
            while found < line:
                offset = find("\n", offset) + 1
                found += 1
            return offset
        while found < line:
            match = _BREAK.search(text, offset)
            assert match is not None
            offset = match.end()
            found += 1
        return offset

    def line_of(self, offset: int) -> int:
        """The line that holds ``offset`` (0 ≤ ``offset`` ≤ the text's length)."""
        at = bisect.bisect_right(self._offsets, offset) - 1
        start = self._offsets[at]
        line = self._lines[at] + count_breaks(self.text, start, offset)
        if offset and self.text.startswith("\r\n", offset - 1):
            line -= 1  # between the two characters of one break: still the line before
        return line

    def line_end(self, start: int) -> int:
        """Offset where the line starting at ``start`` ends (before its line break)."""
        text = self.text
        if not self._has_cr:
            end = text.find("\n", start)
            return len(text) if end < 0 else end
        match = _BREAK.search(text, start)
        return len(text) if match is None else match.start()

    def line_text(self, line: int) -> str:
        start = self.line_start(line)
        return self.text[start : self.line_end(start)]

    # --- edits ------------------------------------------------------------------------
    def edited(self, start: int, end: int, new_text: str, result: str) -> None:
        """``text[start:end]`` was replaced by ``new_text``, giving ``result``: follow it."""
        old = self.text
        delta = len(new_text) - (end - start)
        # One character of margin either side: a "\r" + "\n" pair may form or split there.
        low, high = max(0, start - 1), min(len(old), end + 1)
        new_breaks = count_breaks(result, low, high + delta)
        lines_delta = new_breaks - count_breaks(old, low, high)
        self.text = result
        self._has_cr = self._has_cr or "\r" in new_text
        self.breaks += lines_delta
        # Checkpoints up to `low` stay; those past `high` move; the ones between are gone.
        keep = bisect.bisect_right(self._offsets, low)
        after = bisect.bisect_right(self._offsets, high)
        moved_offsets = [offset + delta for offset in self._offsets[after:]]
        moved_lines = [line + lines_delta for line in self._lines[after:]]
        del self._offsets[keep:], self._lines[keep:]
        if len(new_text) > CHUNK:
            # A long insertion: checkpoints inside it, so that lookups stay short. (The scan
            # must not start between the "\r" and "\n" of one break.)
            begin = start + (result.startswith("\r\n", start - 1) if start else 0)
            line = self._lines[-1] + count_breaks(result, self._offsets[-1], begin)
            self._scan(begin, line, start + len(new_text))
        self._offsets += moved_offsets
        self._lines += moved_lines

    def _scan(self, offset: int, line: int, end: int) -> None:
        """Add checkpoints about every :data:`CHUNK` characters from ``offset`` (the start of
        line ``line``, or inside it) up to ``end``."""
        text = self.text
        last = self._offsets[-1]
        while True:
            target = offset + CHUNK
            if target >= end:
                return
            if self._has_cr:
                match = _BREAK.search(text, target)
                nxt = -1 if match is None else match.end()
            else:
                nxt = text.find("\n", target)
                nxt = -1 if nxt < 0 else nxt + 1
            if nxt < 0 or nxt >= end:
                return
            if self._has_cr:
                line += count_breaks(text, offset, nxt)
            else:
                line += text.count("\n", offset, nxt)
            offset = nxt
            if offset > last:
                self._offsets.append(offset)
                self._lines.append(line)
                last = offset
