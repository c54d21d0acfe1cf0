"""First line first (issue 27): which part of the model's text may be shown before the rest."""

from __future__ import annotations

from codellama_lsp.completion.early_part import early_part
from codellama_lsp.cursor import Cursor


def at_end(text: str) -> Cursor:
    lines = text.split("\n")
    return Cursor(text, len(lines) - 1, len(lines[-1]))


def test_the_first_line_counts_once_a_newline_ends_it() -> None:
    cursor = at_end("def area(r):\n    ")
    assert early_part("return 3.14", cursor) is None
    assert early_part("return 3.14 * r * r\n", cursor) == "return 3.14 * r * r"
    assert early_part("return 3.14 * r * r\n\ndef", cursor) == "return 3.14 * r * r"


def test_blank_lines_before_the_first_line_are_part_of_it() -> None:
    cursor = at_end("def area(r):")
    assert early_part("\n", cursor) is None
    assert early_part("\n    return r\n", cursor) == "\n    return r"


def test_a_block_header_waits_for_the_first_line_of_its_body() -> None:
    cursor = at_end("def total(items):\n    ")
    assert early_part("for item in items:\n", cursor) is None
    assert early_part("for item in items:\n\n        s", cursor) is None
    text = "for item in items:\n\n        s += item\n    return s\n"
    assert early_part(text, cursor) == "for item in items:\n\n        s += item"


def test_the_rest_of_the_cursor_line_is_the_first_line() -> None:
    cursor = at_end("def f(x):\n    total = comp")
    assert early_part("ute(x)\n    return total\n", cursor) == "ute(x)"
    header = at_end("def f(x):\n    for item in it")
    assert early_part("ems:\n        yield item\n", header) == "ems:\n        yield item"


def test_a_single_line_completion_is_never_answered_early() -> None:
    mid_line = Cursor("x = f(a, )\n", 0, 9)
    assert mid_line.single_line
    assert early_part("b)\ny = 2\n", mid_line) is None


def test_a_statement_that_goes_on_waits_for_its_end() -> None:
    cursor = at_end("def f(a, b):\n    ")
    assert early_part("total = compute(a,\n", cursor) is None
    assert early_part("total = compute(a,\n                    b)\n", cursor) == (
        "total = compute(a,\n                    b)"
    )
    # Cut by the token budget in the middle of its first statement: nothing early.
    assert early_part("\n    if not in range(\n        x\n", at_end("while x:")) is None
