"""Never show a suggestion that breaks code which parsed; end one where the code is whole.

The check looks at a bounded window of the file, the top-level statement(s) around the cursor,
and compares "parsed before the insertion" with "parses after". A suggestion after which the
window does not parse is cut to its longest prefix that makes it parse: whole lines first,
then, when the cursor is inside a statement, a cut inside the first line (after ``x = g(``,
``a, b) if a else (b,`` becomes ``a, b)``). When no prefix parses:

* code that was whole before (a block's empty body on a blank line counts as whole: the
  statement the user starts there is what the suggestion writes) gets no suggestion;
* half-written code keeps the suggestion unchanged: the user may be in the middle of a long
  statement that no short suggestion can finish, or the window may be broken elsewhere.
"""

from __future__ import annotations

import ast
import re
import time
import warnings
from dataclasses import dataclass

from codellama_lsp.cursor import Cursor, indentation
from codellama_lsp.stats import Stats

MAX_WINDOW_LINES = 400
MAX_WINDOW_CHARS = 64_000
"""A window larger than this (a huge top-level block, minified code) is not checked: the cost
stays bounded (``ast.parse`` of 64 KB takes ~10 ms, and it holds the GIL)."""
MAX_CUTS = 32
"""At most this many prefixes are parsed per suggestion (~1 ms each for a 300-line window)."""
_TOKEN_END = re.compile(r"\w+|\S")
PYTHON_SUFFIXES = (".py", ".pyi", ".pyw")
_CONTINUES_STATEMENT = ("else", "elif", "except", "finally", "case")
"""Column-0 words that continue the statement above (``case`` only inside ``match``, which
never sits at column 0, but a soft keyword named ``case`` at column 0 is merely kept)."""


def is_python(uri: str) -> bool:
    """Python by file name; untitled buffers and other languages are not checked."""
    return uri.lower().endswith(PYTHON_SUFFIXES)


def parses(source: str) -> bool:
    """True when ``source`` is valid Python (a module)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences and the like
            ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _starts_statement(line: str) -> bool:
    """Does ``line`` begin a new top-level statement (column 0, not a continuation)?"""
    if not line or line[0] in " \t#)]}\f" or not line.strip():
        return False
    word = line.split(None, 1)[0].rstrip(":")
    return word not in _CONTINUES_STATEMENT


@dataclass(frozen=True)
class Window:
    """Lines ``[start, end)`` of the document around the cursor, as text before and after."""

    before: str
    head: str
    """Window text up to the cursor."""
    tail: str
    """Window text from the end of the replaced range on."""

    def after(self, text: str) -> str:
        return self.head + text + self.tail

    def keeps_parsing(self, text: str) -> bool:
        """Does the window parse with ``text`` inserted? A suggestion may end with a block's
        header (``for line in f:``): its body is what the user types next, so a header
        counts as whole when an indented body after it would make the window parse."""
        if parses(self.after(text)):
            return True
        if not text.rstrip().endswith(":"):
            return False
        last_line = (self.head + text).rsplit("\n", 1)[-1]
        body = indentation(last_line) + "    pass"
        return parses(self.after(text.rstrip() + "\n" + body + "\n"))


def window(cursor: Cursor, end_character: int) -> Window | None:
    """The top-level statements around the cursor (None when too large to check)."""
    lines = cursor.lines
    line = min(cursor.line, len(lines) - 1)
    start = line
    while start > 0 and not _starts_statement(lines[start]):
        start -= 1
    end = line + 1
    while end < len(lines) and not _starts_statement(lines[end]):
        end += 1
    if end - start > MAX_WINDOW_LINES:
        return None
    if sum(len(text) + 1 for text in lines[start:end]) > MAX_WINDOW_CHARS:
        return None
    cursor_line = lines[line]
    head = "\n".join([*lines[start:line], cursor_line[: cursor.character]])
    tail = "\n".join([cursor_line[end_character:], *lines[line + 1 : end]])
    before = "\n".join(lines[start:end])
    return Window(before, head, tail)


def was_whole(win: Window, cursor: Cursor) -> bool:
    """Was the code around the cursor whole before the insertion? Either the window parses,
    or the cursor starts a statement on a blank line and the window parses with one there
    (``pass`` stands in): the empty body of a block just opened (``for i in x:`` + Enter), the
    place where most multi-line suggestions are asked for."""
    if parses(win.before):
        return True
    return not cursor.line_prefix.strip() and parses(win.after("pass"))


def cuts(text: str, mid_statement: bool) -> list[str]:
    """The prefixes of ``text`` worth showing, longest first: whole lines, then (when the
    cursor is inside a statement) the first line cut after each of its words and symbols. At a
    statement's start a cut inside a line would leave a fragment such as a bare name."""
    lines = text.split("\n")
    found = ["\n".join(lines[:keep]).rstrip() for keep in range(len(lines) - 1, 0, -1)]
    if mid_statement:
        first = lines[0]
        ends = [match.end() for match in _TOKEN_END.finditer(first)]
        found += [first[:end] for end in reversed(ends) if end < len(first.rstrip())]
    unique = list(dict.fromkeys(cut for cut in found if cut.strip()))
    return unique[:MAX_CUTS]


def keep_parsing(text: str, cursor: Cursor, end_character: int) -> str:
    """``text`` as inserted at ``cursor`` (replacing up to ``end_character`` on the cursor's line):
    unchanged when the window parses with it; else its longest prefix (:func:`cuts`) that
    makes the window parse; else ``""`` where the window was whole (:func:`was_whole`) and
    ``text`` unchanged where it was not."""
    if not text:
        return text
    win = window(cursor, end_character)
    if win is None or win.keeps_parsing(text):
        return text
    for shorter in cuts(text, bool(cursor.line_prefix.strip())):
        if win.keeps_parsing(shorter):
            return shorter
    return "" if was_whole(win, cursor) else text


def checked(text: str, cursor: Cursor, end_character: int, stats: Stats) -> str:
    """:func:`keep_parsing`, timed and counted in ``stats`` (runs on a worker thread)."""
    started = time.perf_counter()
    kept = keep_parsing(text, cursor, end_character)
    stats.timing("parse_check", (time.perf_counter() - started) * 1000)
    if kept != text:
        stats.add("parse_check_trimmed" if kept else "parse_check_dropped")
    return kept
