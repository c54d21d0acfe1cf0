"""Where the cursor is, in Python string units, with the facts prompt and clean-up need."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cached_property

CLOSERS = ")]}\"'`"
_INDENT = re.compile(r"[ \t]*")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def lsp_lines(text: str) -> list[str]:
    """The lines of ``text`` as LSP counts them: breaks are only ``\\n``, ``\\r\\n`` and ``\\r``.

    (``str.splitlines`` also breaks at form feeds, ``\\x85``, ``\\u2028``, …, which would put
    every later position on the wrong line.)
    """
    if "\r" not in text:
        return text.split("\n")
    return _LINE_BREAK.split(text)


def indentation(line: str) -> str:
    match = _INDENT.match(line)
    return match.group(0) if match else ""


def indent_width(whitespace: str, tab_size: int = 4) -> int:
    """Columns taken by leading whitespace (tabs count ``tab_size``)."""
    return len(whitespace.expandtabs(tab_size))


def detect_indent_unit(lines: list[str], default: str = "    ") -> str:
    """The document's indentation step: a tab, or the most common space step."""
    return indent_unit_of(lines) or default


def indent_unit_of(lines: list[str]) -> str | None:
    """The indentation step ``lines`` show (a tab, or the most common space step); None
    when no line is indented."""
    tabs = spaces = 0
    steps: dict[int, int] = {}
    previous = 0
    for line in lines:
        if not line.strip():
            continue
        lead = indentation(line)
        if lead.startswith("\t"):
            tabs += 1
        elif lead:
            spaces += 1
        width = len(lead.expandtabs(4))
        if width > previous:
            step = width - previous
            steps[step] = steps.get(step, 0) + 1
        previous = width
    if tabs > spaces:
        return "\t"
    if not steps:
        return None
    return " " * max(steps, key=lambda s: (steps[s], -s))


@dataclass(frozen=True)
class IndentStyle:
    """The editor's indentation for a document (LSP's ``FormattingOptions``: ``tabSize``,
    ``insertSpaces``)."""

    tab_size: int = 4
    insert_spaces: bool = True

    @property
    def unit(self) -> str:
        return " " * self.tab_size if self.insert_spaces else "\t"


@dataclass(frozen=True)
class Cursor:
    """A document split at the cursor. ``line`` and ``character`` are Python string indices.

    In a big document ``text`` is an excerpt (:func:`codellama_lsp.lsp.documents.cursor_at`): the
    document's first lines and the lines around the cursor, all that prompts and clean-up
    read. ``line`` counts lines of ``text``; the document's own number of the cursor's line is
    :attr:`document_line`.
    """

    text: str
    line: int
    character: int
    line_shift: int = 0
    """``document_line - line``: lines of the document left out above the cursor; negative
    for a notebook cell, whose text has the cells above added (see :attr:`notebook`)."""
    editor_indent: IndentStyle | None = None
    """What the editor says about the document's indentation (see :attr:`indent_unit`)."""
    notebook: bool = False
    """``text`` is a notebook's Python cells joined (:mod:`codellama_lsp.context.notebook`):
    Python whatever the document's URI says (the parse check applies)."""

    @property
    def document_line(self) -> int:
        """The cursor's line in the whole document (what the client counts)."""
        return self.line + self.line_shift

    @cached_property
    def lines(self) -> list[str]:
        # Keep "\r" out of line content: CRLF files still complete with plain "\n" lines.
        return lsp_lines(self.text)

    @cached_property
    def offset(self) -> int:
        """Index of the cursor in ``normalized``."""
        return sum(len(line) + 1 for line in self.lines[: self.line]) + self.character

    @cached_property
    def normalized(self) -> str:
        return "\n".join(self.lines)

    @property
    def prefix(self) -> str:
        return self.normalized[: self.offset]

    @property
    def suffix(self) -> str:
        return self.normalized[self.offset :]

    @property
    def line_text(self) -> str:
        return self.lines[self.line]

    @property
    def line_prefix(self) -> str:
        return self.line_text[: self.character]

    @property
    def line_suffix(self) -> str:
        return self.line_text[self.character :]

    @property
    def mid_line(self) -> bool:
        """Real code after the cursor on this line (auto-closed brackets do not count)."""
        rest = self.line_suffix.strip()
        return bool(rest) and not all(ch in CLOSERS or ch in ":," for ch in rest)

    @property
    def single_line(self) -> bool:
        """Complete this line only: code, or an editor's auto-closed brackets, follow."""
        return self.mid_line or bool(self.closers_after)

    @property
    def closers_after(self) -> str:
        """Closing brackets/quotes right after the cursor, e.g. an editor's auto-closed ``)``."""
        rest = self.line_suffix.rstrip()
        return rest if rest and all(ch in CLOSERS for ch in rest) else ""

    @property
    def base_indent(self) -> int:
        """Columns of indentation of the cursor's line (what is typed so far if blank)."""
        if self.line_prefix.strip():
            return indent_width(indentation(self.line_text))
        return indent_width(self.line_prefix)

    @cached_property
    def indent_unit(self) -> str:
        """The document's indentation step: what its lines show; where they show none (a new
        file), what the editor says; else four spaces."""
        shown = indent_unit_of(self.lines)
        if shown is not None:
            return shown
        return self.editor_indent.unit if self.editor_indent is not None else "    "

    @property
    def tab_size(self) -> int:
        """Columns of a tab: the editor's ``tabSize``, else 4."""
        return self.editor_indent.tab_size if self.editor_indent is not None else 4

    def next_nonblank_lines(self, count: int) -> list[str]:
        """The first ``count`` non-blank lines after the cursor's line."""
        found: list[str] = []
        for line in self.lines[self.line + 1 :]:
            if line.strip():
                found.append(line)
                if len(found) == count:
                    break
        return found

    def offset_at(self, line: int, character: int) -> int:
        """Index in :attr:`normalized` of a place given in this text's lines (clamped)."""
        lines = self.lines
        line = min(max(line, 0), len(lines) - 1)
        if line == self.line:
            start = self.offset - self.character
        else:
            start = sum(len(text) + 1 for text in lines[:line])
        return start + min(max(character, 0), len(lines[line]))

    def replaced(self, start: int, end: int, new_text: str) -> Cursor:
        """The cursor at the end of ``new_text`` put over ``normalized[start:end]``, in the
        same excerpt of the document (so with the same :attr:`line_shift`)."""
        source = self.normalized
        source = source[:start] + new_text + source[max(start, end) :]
        head = source[: start + len(new_text)]
        line = head.count("\n")
        column = len(head) - (head.rfind("\n") + 1)
        moved = Cursor.clamped(
            source, line, column, line_shift=self.line_shift, notebook=self.notebook
        )
        return moved.with_editor_indent(self.editor_indent)

    @classmethod
    def clamped(
        cls,
        text: str,
        line: int,
        character: int,
        lines: list[str] | None = None,
        *,
        line_shift: int = 0,
        notebook: bool = False,
    ) -> Cursor:
        """A context whose position is moved into the document if it lies outside.

        ``lines``: ``lsp_lines(text)`` when the caller already split it (one split per
        request, not three).
        """
        lines = lsp_lines(text) if lines is None else lines
        line = min(max(line, 0), len(lines) - 1)
        character = min(max(character, 0), len(lines[line]))
        cursor = cls(text, line, character, line_shift=line_shift, notebook=notebook)
        cursor.__dict__["lines"] = lines  # prime the cached_property
        return cursor

    def with_editor_indent(self, style: IndentStyle | None) -> Cursor:
        """The same cursor with the editor's indentation for its document."""
        if style == self.editor_indent:
            return self
        cursor = replace(self, editor_indent=style)
        cursor.__dict__["lines"] = self.lines  # already split: keep it
        return cursor

    def with_line_window(self, limit: int) -> Cursor:
        """The same cursor with its line cut to ``limit`` characters on each side.

        A prompt holds a bounded number of tokens, so text further along a very long line
        (minified code, data) can never reach it; cutting it keeps prompt building fast.
        """
        if len(self.line_text) <= 2 * limit:
            return self
        before = self.line_prefix[-limit:]
        lines = list(self.lines)
        lines[self.line] = before + self.line_suffix[:limit]
        return replace(self, text="\n".join(lines), character=len(before))
