"""A suggestion's later lines indented in the document's style (tabs or N spaces).

A model writes in the style it learnt (Code Llama: four spaces), which may not be the
document's. The document's style is :attr:`Cursor.indent_unit`: what its lines show, or what
the editor says (``tabSize``, ``insertSpaces``: :mod:`codellama_lsp.lsp.editor_options`) for a
document that shows none.

Which style did the model write in? Python tells: a statement line is at most one level
deeper than the statement before it, exactly when that one ends with ``:``. The lines that
begin a statement (Python's tokenizer tells them from lines inside brackets or strings) are
read under each reading in turn, and the first that keeps that rule is taken: the document's
own style; the model's unit (4, 2, 8 or 3 columns a level; a tab is one level) counted from
the cursor's line as the document indents it; the model's unit counted from column 0. Under
a reading other than the document's, each statement line is written at its level in the
document's style, and the lines inside brackets or strings move with their statement. A
suggestion already in the document's style, or that no reading explains, is left as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from codellama_lsp.completion.lexical import statement_starts
from codellama_lsp.cursor import Cursor, indentation

MODEL_UNITS = (4, 2, 8, 3)
"""Columns a level that a model may use, most likely first (Code Llama writes PEP 8's four)."""
_OPENER = re.compile(r":[ \t]*(?:#.*)?$")


@dataclass(frozen=True)
class _Line:
    index: int
    lead: str
    width: int
    """Columns of ``lead`` as the model meant them (a model tab: one document level)."""
    starts: bool
    """A statement begins on it (not a comment line, not inside brackets or a string)."""
    after_opener: bool
    """The line before it (not blank) ends with ``:``."""


@dataclass(frozen=True)
class _Reading:
    """The model indented level ``n`` below the cursor's statement at ``origin + n * unit``
    columns (``origin``: where the model put the cursor's statement)."""

    unit: int
    origin: int


def reindent(text: str, cursor: Cursor) -> str:
    """``text`` (a suggestion at ``cursor``) with its later lines in the document's style."""
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    doc = _DocumentStyle(cursor)
    filled = _lines(lines, cursor, doc.step)
    if not filled:
        return text
    base = doc.width(_base_whitespace(cursor, lines[0]))
    level = base // doc.step
    own = _Reading(doc.step, base)
    found = _reading(filled, level, own, doc)
    other_kind = any(("\t" if not doc.tabs else " ") in line.lead for line in filled)
    if found is None or (found == own and not other_kind):
        return text  # the document's style already, or no reading explains it
    shift = base - found.origin  # of the statement the next continuation line belongs to
    for line in filled:
        if line.starts:
            levels, rest = divmod(line.width - found.origin, found.unit)
            width = max(0, base + levels * doc.step + rest)
            shift = width - line.width
        else:
            width = max(0, line.width + shift)
        lines[line.index] = doc.render(width) + lines[line.index][len(line.lead) :]
    return "\n".join(lines)


def _lines(lines: list[str], cursor: Cursor, step: int) -> list[_Line]:
    starts = statement_starts(cursor.line_prefix + "\n".join(lines))
    found = []
    previous = cursor.line_prefix + lines[0]
    for index, line in enumerate(lines):
        if index > 0 and line.strip():
            lead = indentation(line)
            statement = starts[index] and not line.lstrip().startswith("#")
            opener = bool(_OPENER.search(previous))
            found.append(_Line(index, lead, len(lead.expandtabs(step)), statement, opener))
        if line.strip() and not line.lstrip().startswith("#"):
            previous = line
    return found


def _reading(
    filled: list[_Line], level: int, own: _Reading, doc: _DocumentStyle
) -> _Reading | None:
    """The first reading under which the statement lines keep Python's rule."""
    readings = [own]
    spaces = [unit for unit in MODEL_UNITS if unit != doc.step or doc.tabs]
    readings += [_Reading(unit, own.origin) for unit in spaces]
    readings += [_Reading(unit, level * unit) for unit in spaces]
    statements = [line for line in filled if line.starts]
    for reading in readings:
        if _keeps_the_rule(statements, level, reading):
            return reading
    return None


def _keeps_the_rule(statements: list[_Line], level: int, reading: _Reading) -> bool:
    previous = level
    for line in statements:
        offset = line.width - reading.origin
        if offset % reading.unit:
            return False
        current = level + offset // reading.unit
        deeper = current == previous + 1 if line.after_opener else current <= previous
        if current < 0 or not deeper:
            return False
        previous = current
    return True


def _base_whitespace(cursor: Cursor, first: str) -> str:
    """The indentation of the statement the suggestion's first line is part of."""
    if cursor.line_prefix.strip():
        return indentation(cursor.line_text)
    return cursor.line_prefix + indentation(first)


class _DocumentStyle:
    def __init__(self, cursor: Cursor) -> None:
        unit = cursor.indent_unit
        self.tabs = unit == "\t"
        self.step = cursor.tab_size if self.tabs else len(unit)
        """Columns of one level (a tab's columns in a tab-indented document)."""

    def width(self, whitespace: str) -> int:
        return len(whitespace.expandtabs(self.step))

    def render(self, width: int) -> str:
        if self.tabs:
            return "\t" * (width // self.step) + " " * (width % self.step)
        return " " * width


__all__ = ["MODEL_UNITS", "reindent"]
