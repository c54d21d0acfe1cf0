"""The parse check: code that parsed before a suggestion still parses after it."""

from __future__ import annotations

from codellama_lsp.completion.cleanup import replace_range_end
from codellama_lsp.completion.parse_check import (
    MAX_WINDOW_CHARS,
    is_python,
    keep_parsing,
    parses,
    window,
)
from codellama_lsp.cursor import Cursor


def at_marker(source: str) -> Cursor:
    """The cursor where ``|`` is in ``source`` (the marker removed)."""
    offset = source.index("|")
    text = source.replace("|", "", 1)
    line = text.count("\n", 0, offset)
    column = offset - (text.rfind("\n", 0, offset) + 1)
    return Cursor(text, line, column)


def check(source: str, suggestion: str) -> str:
    ctx = at_marker(source)
    return keep_parsing(suggestion, ctx, replace_range_end(ctx))


FUNCTION = "import os\n\n\ndef f(x):\n    y = x + 1\n    |\n    return y\n\n\ndef g():\n    pass\n"


def test_a_suggestion_that_keeps_the_function_parsing_is_shown_as_is() -> None:
    assert check(FUNCTION, "y = y * 2\n    print(y)") == "y = y * 2\n    print(y)"


def test_a_suggestion_that_breaks_the_function_is_cut_to_the_lines_that_parse() -> None:
    # The third line opens a bracket it never closes: the first two lines stay.
    suggestion = "y = y * 2\n    print(y)\n    z = (y"
    assert check(FUNCTION, suggestion) == "y = y * 2\n    print(y)"


def test_a_suggestion_with_no_parsing_prefix_is_dropped() -> None:
    assert check(FUNCTION, "y = = 2") == ""
    assert check(FUNCTION, "print(y))\n    y = 1") == ""  # broken from the first line


def test_a_suggestion_may_end_with_a_block_header_whose_body_comes_next() -> None:
    # "f" parsed (a name); "for line in handle:" does not by itself, but its body is what the
    # user types next: it is shown. A header that cannot take a body still breaks the code.
    source = "def f(handle):\n    total = 0\n    f|\n    return total\n"
    assert check(source, "or line in handle:") == "or line in handle:"
    assert check(source, "or line in handle:\n        total += (") == "or line in handle:"
    assert check(source, "or line in handle:)") == "or line in handle:"  # cut before the `)`


def test_half_written_code_keeps_a_suggestion_no_prefix_of_which_finishes_it() -> None:
    # Half-written code at the cursor is normal while typing: a suggestion that cannot make it
    # whole is still shown (the user may be inside a statement longer than any suggestion).
    source = "def f(x):\n    if x|\n"
    assert check(source, " > 0 and (") == " > 0 and ("


def test_half_written_code_is_finished_where_the_suggestion_makes_it_whole() -> None:
    # `x = compute(` typed, the call not closed: the suggestion ends where the statement does.
    source = "def f(a, b):\n    x = compute(|\n    return x\n"
    assert check(source, "a, b) if a else (b,") == "a, b)"
    assert check(source, "a, b)\n    y = x * (2") == "a, b)"  # whole lines first
    assert check(source, "a, b)\n    y = x * 2") == "a, b)\n    y = x * 2"  # parses: as is


def test_a_cut_inside_a_line_never_leaves_a_fragment_at_a_statement_start() -> None:
    # "y" alone would parse (a bare name), but it is not what the model meant: dropped.
    assert check(FUNCTION, "y = = 2") == ""
    source = "def f(a, b):\n    |\n"  # a blank line, no body yet: whole lines only
    assert check(source, "total = (a +\n    b") == ""


def test_the_empty_body_of_a_block_just_opened_is_guarded() -> None:
    # `for ...:` + Enter: the window does not parse until the body is written, but the code
    # around is whole, so a body that does not parse is cut or dropped, one that does is kept.
    source = "def perimeter(points):\n    total = 0.0\n    for p in points:\n        |"
    assert check(source, "total += p\n    return total") == "total += p\n    return total"
    assert check(source, "total += p\n        if not isinstance(p, (int, float):") == "total += p"
    assert check(source, "if not isinstance(len(p, int):\n            return False") == ""
    # Mid-statement on that line stays unjudged: half-written code is normal while typing.
    assert check(source.replace("|", "x = |"), "(1,") == "(1,"


def test_only_the_window_around_the_cursor_counts() -> None:
    # A broken function elsewhere in the file does not switch the check off here.
    source = FUNCTION + "\n\ndef broken(:\n    pass\n"
    assert check(source, "y = = 2") == ""
    ctx = at_marker(source)
    win = window(ctx, replace_range_end(ctx))
    assert win is not None
    assert "broken" not in win.before and "import os" not in win.before
    assert win.before.startswith("def f(x):") and "return y" in win.before


def test_mid_line_insertions_keep_the_text_after_the_cursor() -> None:
    # The item's range replaces the auto-closed `)`, so the clean-up puts it back in the text;
    # a suggestion that closes the call twice would break it.
    source = "def f(x):\n    return max(|)\n"
    assert check(source, "x, 1)") == "x, 1)"
    assert check(source, "x, 1))") == "x, 1)"  # cut inside the line, before the extra `)`
    source = "def f(x):\n    return max(|) + 1\n"
    assert check(source, "x, 1") == "x, 1"  # no auto-closer: the text after stays


def test_statements_continuing_at_column_zero_belong_to_the_window() -> None:
    source = "try:\n    x = 1\n    |\nexcept ValueError:\n    pass\n"
    ctx = at_marker(source)
    win = window(ctx, replace_range_end(ctx))
    assert win is not None and "except ValueError" in win.before
    assert check(source, "y = 2") == "y = 2"


def test_python_files_only() -> None:
    assert is_python("file:///a/b.py") and is_python("file:///a/B.PYI")
    assert not is_python("file:///a/b.js") and not is_python("untitled:Untitled-1")


def test_parses_survives_hostile_text() -> None:
    assert not parses("x = 1\0")
    assert not parses("(" * 10000)
    assert parses("x = '\\d'")  # an invalid escape is a warning, not an error


def test_a_window_of_minified_code_is_not_checked() -> None:
    # Every cut parses the window again: a huge one (a minified line) is left alone instead.
    data = ", ".join(str(i) for i in range(20_000))
    source = f"def f():\n    table = [{data}]\n    x = g(|\n"
    assert len(source) > MAX_WINDOW_CHARS
    ctx = at_marker(source)
    assert window(ctx, replace_range_end(ctx)) is None
    assert check(source, "a, b) if a else (b,") == "a, b) if a else (b,"
    assert check(source.replace(data, "1, 2"), "a, b) if a else (b,") == "a, b)"
