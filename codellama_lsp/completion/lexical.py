"""Is the cursor in code, a comment or a string? Python's own tokenizer reads the code up to it.

A regex cannot tell a ``#`` in a string from a comment, or know that the cursor is in a
docstring opened forty lines above; :mod:`tokenize` can. It runs on the text before the
cursor only (what comes after is not written yet, or is an editor's auto-closed quote), from
a line where a statement surely starts (:func:`window_start`), with each line's indentation
taken off: indentation cannot change what is a string or a comment, and half-typed code
often has indentation the tokenizer refuses (``unindent does not match``).
"""

from __future__ import annotations

import io
import re
import tokenize
from typing import Literal

Place = Literal["code", "comment", "string"]

MAX_WINDOW_LINES = 400
"""Lines read back from the cursor at most (the tokenizer takes ~2 µs per character)."""
_STATEMENT_START = re.compile(
    r"[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+\w+[ \t]*[(:]"
    r"|@[\w.]+|import[ \t]+\w|from[ \t]+[\w.]+[ \t]+import\b|if __name__\b"
)
"""A line that surely starts a statement, outside every string: a ``def`` or ``class``
header at any indentation; at column 0, a decorator, an import, ``if __name__``. (A docstring
line like these is possible but rare; prose lines such as "if you…" or "from here…" do not
match.)"""
_QUOTES = ("'", '"')


def window_start(lines: list[str], line: int) -> int:
    """The line to tokenize from: the nearest sure statement start above ``line`` (within
    :data:`MAX_WINDOW_LINES`), or the document's start when it is that close."""
    lowest = max(0, line - MAX_WINDOW_LINES)
    for index in range(line - 1, lowest - 1, -1):
        if _STATEMENT_START.match(lines[index]):
            return index
    return lowest


def place_at(lines: list[str], line: int, character: int) -> Place:
    """Where the cursor at (``line``, ``character``) of ``lines`` is: code, comment or string."""
    start = window_start(lines, line)
    window = [text.lstrip(" \t\f") for text in lines[start:line]]
    window.append(lines[line][:character].lstrip(" \t\f"))
    return place_in("\n".join(window))


def place_in(prefix: str) -> Place:
    """Where the end of ``prefix`` is, for Python code that ends at the cursor."""
    last_line = prefix.count("\n") + 1
    found: Place = "code"
    tokens = tokenize.generate_tokens(io.StringIO(prefix).readline)
    try:
        for token in tokens:
            if token.start[0] != last_line:
                continue
            if found == "code" and token.type == tokenize.COMMENT:
                found = "comment"  # a comment runs to the line's end: the cursor is in it
            elif found == "code" and _opens_string(token):
                found = "string"  # a string left open on the cursor's line (Python < 3.12)
    except tokenize.TokenError as exc:
        # "EOF in multi-line string" (3.11), "unterminated (triple-quoted) string literal" and
        # "unterminated f-string literal" (3.12+); "EOF in multi-line statement" is an open
        # bracket: code.
        if "string" in str(exc.args[0] if exc.args else exc).lower():
            return "string"
    except SyntaxError:
        return found  # (3.12+ raises it for stray characters): what was read so far
    return found


def statement_starts(code: str) -> list[bool]:
    """For each line of ``code`` (Python): does a statement (or a comment line) begin on it,
    rather than go on from the line before (open brackets, a string over several lines, a
    backslash)? Lines after a point the tokenizer cannot read past count as going on."""
    lines = code.split("\n")
    starts = [False] * len(lines)
    starts[0] = True
    depth = 0
    stripped = "\n".join(line.lstrip(" \t\f") for line in lines)
    try:
        for token in tokenize.generate_tokens(io.StringIO(stripped).readline):
            if token.type == tokenize.OP and token.string in "([{":
                depth += 1
            elif token.type == tokenize.OP and token.string in ")]}":
                depth = max(0, depth - 1)
            elif token.type == tokenize.NEWLINE or (token.type == tokenize.NL and depth == 0):
                line = token.start[0]  # 1-based: the next line, 0-based, begins afresh
                if line < len(lines):
                    starts[line] = True
    except (tokenize.TokenError, SyntaxError):
        pass
    return starts


def _opens_string(token: tokenize.TokenInfo) -> bool:
    """Python < 3.12 marks a quote that opens a string not closed on its line as an error
    token and goes on reading the rest of the line as code."""
    return token.type == tokenize.ERRORTOKEN and token.string.startswith(_QUOTES)


__all__ = ["Place", "place_at", "place_in", "statement_starts", "window_start"]
