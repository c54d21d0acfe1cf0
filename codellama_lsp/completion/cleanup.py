"""Turn raw model text into a completion that fits where it lands.

Each rule is a small function ``(text, cursor) -> text``; :func:`rules` lists them in order.
They never add text the model did not write, except closing brackets the editor had already
typed (the inline item's range replaces those, see :func:`replace_range_end`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from codellama_lsp.completion.indentation import reindent
from codellama_lsp.cursor import CLOSERS, Cursor, indent_width, indentation
from codellama_lsp.engines.stops import text_stop_index

Rule = Callable[[str, Cursor], str]

_SPECIAL = re.compile(r"\s?<(?:PRE|SUF|MID|EOT|FILL_ME)>|</?s>|<unk>|<pad>")
_PAIRS = {")": "(", "]": "[", "}": "{"}
_CELL_START = re.compile(r"\n[ \t]*#[ \t]*%%")
"""A line that starts a notebook cell (Jupytext's percent format: ``# %%``, ``#%%``)."""


def strip_special_tokens(text: str, cursor: Cursor) -> str:
    """Nothing after an end-of-text marker, and no marker text at all."""
    for marker in ("<EOT>", "</s>"):
        cut = text.find(marker)
        if cut >= 0:
            text = text[:cut]
    return _SPECIAL.sub("", text)


def normalize_newlines(text: str, cursor: Cursor) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def stop_at_sequences(stop_sequences: Iterable[str]) -> Rule:
    """Cut at the first configured stop sequence (a new top-level def, two blank lines...)."""
    stops = tuple(stop_sequences)

    def stop_at_sequences(text: str, cursor: Cursor) -> str:
        cut = text_stop_index(text, stops)
        return text if cut is None else text[:cut]

    return stop_at_sequences


def stop_at_cell_start(text: str, cursor: Cursor) -> str:
    """End before a line that starts a cell (``# %%``): in a notebook (its cells joined, see
    :mod:`codellama_lsp.context.notebook`) or a percent-format file, what comes after it
    belongs to the next cell, not to the one being edited."""
    found = _CELL_START.search(text)
    return text if found is None else text[: found.start()].rstrip()


def drop_unfinished_statement(text: str, cursor: Cursor) -> str:
    """A multi-line completion cut by the token budget ends with its last finished statement.

    The budget cuts anywhere, mid-name or mid-call; half a line is worse than a shorter
    suggestion. Where no statement finishes (a long call still open), the last whole line.
    """
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    ends = statement_ends(cursor.line_prefix + text)[:-1]  # the last line is the cut one
    finished = [i for i, end in enumerate(ends) if end]
    keep = finished[-1] + 1 if finished else len(lines) - 1
    return "\n".join(lines[:keep]).rstrip()


def statement_ends(code: str) -> list[bool]:
    """For each line of ``code``: does a statement end with it? (brackets closed, no string
    or backslash continuing; a light scanner, since the code is half-written)."""
    ends: list[bool] = []
    depth, quote, i = 0, "", 0
    while i <= len(code):
        ch = code[i] if i < len(code) else "\n"
        if quote:
            if ch == "\\":
                i += 2
                continue
            if code.startswith(quote, i):
                i += len(quote)
                quote = ""
                continue
            if ch == "\n" and len(quote) == 1:
                quote = ""  # a one-line string left open ends with its line
        if not quote:
            if ch == "#":
                nl = code.find("\n", i)
                i = len(code) if nl < 0 else nl
                continue
            if ch in "\"'":
                quote = ch * 3 if code.startswith(ch * 3, i) else ch
                i += len(quote)
                continue
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth = max(0, depth - 1)
        if ch == "\n":
            continued = code[:i].endswith("\\")
            ends.append(depth == 0 and not quote and not continued)
        i += 1
    return ends


def single_line_mid_line(text: str, cursor: Cursor) -> str:
    """With code after the cursor on its line, complete that line only."""
    if cursor.single_line:
        return text.split("\n", 1)[0]
    return text


def fix_leading_space(text: str, cursor: Cursor) -> str:
    """No doubled space after a typed space, no indentation after typed indentation.

    Mid-line, the doubled space is one space too many (a tokenizer's word-start space on top
    of the one typed); a longer run of spaces is alignment (a docstring's indented text, a
    table, columns of comments) and stays.
    """
    if cursor.line_prefix.endswith((" ", "\t")) and text.startswith((" ", "\t")):
        if cursor.line_prefix.strip():
            if text.startswith("  "):
                return text
            return text.lstrip(" \t")
        # On an indented blank line the typed indentation already counts.
        first, _, rest = text.partition("\n")
        first_ws = indentation(first)
        if indent_width(cursor.line_prefix) + indent_width(first_ws) > cursor.base_indent:
            first = first[len(first_ws) :]
        return first + ("\n" + rest if rest or text.endswith("\n") else "")
    return text


def stop_at_block_end(text: str, cursor: Cursor) -> str:
    """Multi-line completions end where the cursor's block ends.

    That is the first line indented less than the cursor's line; when the cursor's line opens
    a block (ends with ``:``), the first line back at its own indentation.
    """
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    base = cursor.base_indent
    # The user typed a block header (``if x:``) and the completion starts its body.
    opens_block = cursor.line_prefix.rstrip().endswith(":") and not lines[0].strip()
    blank_start = not cursor.line_prefix.strip() and not lines[0].strip()
    seen_body = False
    for i, line in enumerate(lines[1:], start=1):
        if not line.strip():
            continue
        width = indent_width(indentation(line))
        if blank_start and not seen_body:
            # Cursor on an empty line: the first real line sets the block's indentation.
            base = width
            seen_body = True
            continue
        if width < base or (opens_block and seen_body and width <= base):
            return "\n".join(lines[:i]).rstrip("\n ")
        if width > base:
            seen_body = True
        elif opens_block:
            return "\n".join(lines[:i]).rstrip("\n ")
    return text


def stop_before_suffix_lines(text: str, cursor: Cursor) -> str:
    """Stop where the completion rejoins the code after the cursor.

    It rejoins at a line equal (but for spacing) to the next non-blank line after the cursor,
    at the same indentation. One equal line followed by more of the model's own text is often
    something else (an inner ``try:`` before the real one, a parallel line), so there the
    completion's next non-blank line must equal the line after that too. An equal line at the
    end of the completion rejoins by itself: nothing of the model's own follows it (what
    follows, if anything, lies past the end of the cursor's block, which
    :func:`stop_at_block_end` cuts). Where the completion goes on but the file ends (nothing to
    compare), the line must be distinctive: four characters or more. A line of closing quotes
    or brackets (a docstring's ``\"\"\"``) at the same indentation always ends it.
    """
    upcoming = cursor.next_nonblank_lines(2)
    if not upcoming:
        return text
    lines = text.split("\n")
    full = [cursor.line_prefix + lines[0], *lines[1:]]
    # Lines past the block's end are not the model's own continuation here.
    own = stop_at_block_end(text, cursor).count("\n") + 1
    nonblank = [i for i, line in enumerate(full[:own]) if line.strip()]
    for k, i in enumerate(nonblank):
        if not _same_line(full[i], upcoming[0]):
            continue
        following = nonblank[k + 1] if k + 1 < len(nonblank) else None
        target = upcoming[0].strip()
        if _closers_only(target) or following is None:
            rejoins = True
        elif len(upcoming) > 1:
            rejoins = _same_line(full[following], upcoming[1])
        else:
            rejoins = len(target) >= 4
        if rejoins:
            return "\n".join(lines[:i]).rstrip("\n ") if i else ""
    return text


def _same_line(a: str, b: str) -> bool:
    return _nearly_equal(a, b) and indent_width(indentation(a)) == indent_width(indentation(b))


def _closers_only(line: str) -> bool:
    return bool(line) and all(ch in CLOSERS or ch in ",;" for ch in line)


def _nearly_equal(a: str, b: str) -> bool:
    """Equal but for spacing and a trailing comma/semicolon.

    A similarity ratio would be too loose: parallel lines (``x = f(a)`` / ``y = f(b)``) are
    everywhere in real code and must not end a completion.
    """

    def norm(line: str) -> str:
        return "".join(line.split()).rstrip(",;")

    return norm(a) == norm(b)


def drop_suffix_overlap(text: str, cursor: Cursor) -> str:
    """Drop the end of a single-line completion that repeats the rest of the line."""
    rest = cursor.line_suffix.rstrip()
    if not rest or "\n" in text or cursor.closers_after:
        return text
    if text.rstrip().endswith(rest):
        return text.rstrip()[: -len(rest)]
    return text


def balance_closers(text: str, cursor: Cursor) -> str:
    """When the editor auto-closed brackets after the cursor, the completion replaces them.

    The result must close what the line opens: we append the closers the completion lacks
    (taken from the text being replaced, never invented beyond it).
    """
    closers = cursor.closers_after
    if not closers:
        return text
    # A string the completion opened and left open: cut it off rather than close the call
    # inside it (``f('abc`` + ``)`` would put the parenthesis in the string).
    left_open = open_string_start(cursor.line_prefix + text)
    opened_here = left_open is not None and left_open[0] >= len(cursor.line_prefix)
    if left_open is not None and opened_here and not closers.startswith(left_open[1]):
        text = text[: left_open[0] - len(cursor.line_prefix)].rstrip()
    # Count brackets opened but not closed on the cursor line + completion.
    stack: list[str] = []
    for ch in cursor.line_prefix + text:
        if ch in "([{":
            stack.append(ch)
        elif ch in _PAIRS and stack and stack[-1] == _PAIRS[ch]:
            stack.pop()
    needed = ""
    for ch in closers:
        if ch in _PAIRS and stack and stack[-1] == _PAIRS[ch]:
            stack.pop()
            needed += ch
        elif (ch in "\"'`" and (cursor.line_prefix + text).count(ch) % 2 == 1) or (
            ch not in _PAIRS and ch not in "\"'`"
        ):
            needed += ch
    return text + needed


def open_string_start(code: str) -> tuple[int, str] | None:
    """Where a string literal left open at the end of one line of code starts, and its quote."""
    quote, start, i = "", -1, 0
    while i < len(code):
        ch = code[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch == "#":
            break
        elif ch in "\"'":
            quote, start = ch, i
        i += 1
    return (start, quote) if quote else None


def strip_trailing_whitespace(text: str, cursor: Cursor) -> str:
    """No trailing blanks, except before code that follows on the cursor's line."""
    if cursor.mid_line and "\n" not in text:
        return text
    lines = text.split("\n")
    cleaned = [line.rstrip(" \t") for line in lines]
    result = "\n".join(cleaned)
    return result.rstrip("\n") if len(lines) > 1 else result


MAX_LOOP_LINES = 8
"""The longest run of lines :func:`drop_repeated_lines` looks for."""


def drop_repeated_lines(text: str, cursor: Cursor) -> str:
    """Cut a loop: the same run of lines (up to :data:`MAX_LOOP_LINES`, not all blank) three
    times in a row keeps only its first time. Small models repeat a line or a block until the
    token budget ends; code written by people does not repeat a block three times over
    (Tabby's clean-up cuts both as well)."""
    lines = text.split("\n")
    full = [cursor.line_prefix + lines[0], *lines[1:]]
    for start in range(len(full)):
        for size in range(1, MAX_LOOP_LINES + 1):
            end = start + size
            if end + 2 * size > len(full):
                break
            run = full[start:end]
            if run == full[end : end + size] == full[end + size : end + 2 * size] and any(
                line.strip() for line in run
            ):
                return "\n".join(lines[:end])
    return text


def drop_blank(text: str, cursor: Cursor) -> str:
    return text if text.strip() else ""


def rules(stop_sequences: Iterable[str], *, truncated: bool = False) -> list[Rule]:
    """The rules in order; ``truncated``: the model stopped at its token budget."""
    return [
        strip_special_tokens,
        normalize_newlines,
        stop_at_sequences(stop_sequences),
        stop_at_cell_start,
        *([drop_unfinished_statement] if truncated else []),
        single_line_mid_line,
        fix_leading_space,
        stop_before_suffix_lines,
        stop_at_block_end,
        drop_suffix_overlap,
        reindent,
        drop_repeated_lines,
        strip_trailing_whitespace,
        balance_closers,
        drop_blank,
    ]


def clean(
    text: str, cursor: Cursor, stop_sequences: Iterable[str] = (), *, truncated: bool = False
) -> str:
    """All rules, in order."""
    for rule in rules(stop_sequences, truncated=truncated):
        text = rule(text, cursor)
        if not text:
            return ""
    return text


def replace_range_end(cursor: Cursor) -> int:
    """Column (Python units) where the inline item's range ends: past auto-closed brackets."""
    return cursor.character + len(cursor.closers_after)


def line_edit(cursor: Cursor, text: str, end_character: int) -> tuple[int, str]:
    """The edit that shows ``text`` at the cursor: (column where its range ends, new text).

    Clients read an item's range from its start: VS Code takes an item without a range as
    replacing the word at the cursor (and drops text that does not start with that word), and
    Neovim 0.12 draws a ranged item over the line from the range start. So every item gets a
    range that starts at the cursor; where code would stay after the range on the cursor's
    line, the range runs to the line's end and the item puts that code back after ``text``,
    so that what is drawn is exactly the line after an accept.
    """
    rest = cursor.line_text[end_character:]
    if not rest.strip():
        return end_character, text
    return len(cursor.line_text), text + rest


def block_done(cursor: Cursor) -> Callable[[str], bool]:
    """Early stop for the engine: true once the text has left the cursor's block."""

    def done(text: str) -> bool:
        if _CELL_START.search(text):
            return True
        if cursor.single_line:
            return "\n" in text
        head, _, tail = text.rpartition("\n")
        if not head or not tail.strip():
            return False  # wait until the last line shows its indentation
        return stop_at_block_end(text, cursor) != text

    return done


__all__ = [
    "CLOSERS",
    "Rule",
    "block_done",
    "clean",
    "line_edit",
    "replace_range_end",
    "rules",
]
