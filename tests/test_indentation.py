"""Suggestions re-indented to the document's style (issue 30): tabs, two spaces, the editor's
options for a document that shows none; a suggestion in the document's style is untouched."""

from __future__ import annotations

import pytest

from codellama_lsp.completion import cleanup
from codellama_lsp.completion.indentation import reindent
from codellama_lsp.cursor import Cursor, IndentStyle

FOUR_SPACE_BODY = "for item in items:\n        total += item\n    return total"
TABS = "for item in items:\n\t\ttotal += item\n\treturn total"
"""What a model that writes four spaces suggests on an indented line of a function body."""


def at(marked: str, style: IndentStyle | None = None) -> Cursor:
    index = marked.index("█")
    text = marked.replace("█", "")
    before = text[:index]
    return Cursor(text, before.count("\n"), len(before.split("\n")[-1]), editor_indent=style)


def test_a_tab_indented_file_gets_tabs() -> None:
    cursor = at("def total(items):\n\ttotal = 0\n\t█\n")
    assert reindent(FOUR_SPACE_BODY, cursor) == TABS


def test_a_tab_is_as_wide_as_the_editor_says() -> None:
    tabs_of_eight = IndentStyle(tab_size=8, insert_spaces=False)
    cursor = at("def total(items):\n\ttotal = 0\n\t█\n", tabs_of_eight)
    assert reindent(FOUR_SPACE_BODY, cursor) == TABS


def test_a_two_space_file_gets_two_spaces() -> None:
    cursor = at("def total(items):\n  total = 0\n  █\n")
    two = "for item in items:\n    total += item\n  return total"
    assert reindent(FOUR_SPACE_BODY, cursor) == two


def test_a_nested_block_keeps_its_depth() -> None:
    cursor = at("class A:\n  def f(self):\n    if x:█\n")
    text = "\n        y = [\n            1,\n        ]\n        for z in y:\n            print(z)"
    assert reindent(text, cursor) == (
        "\n      y = [\n          1,\n      ]\n      for z in y:\n        print(z)"
    )


def test_the_models_unit_from_the_cursors_line() -> None:
    cursor = at("def f():\n  if x:\n    y = 1\n    if z:█\n")
    text = "\n        w = 2\n    return y"  # four columns deeper than the cursor's line
    assert reindent(text, cursor) == "\n      w = 2\n    return y"


def test_lines_at_the_cursors_indentation_stay_at_its_level() -> None:
    cursor = at("def f():\n  if x:\n    █")
    text = 'y = 1\n    z = """\n    doc\n    """\n    if y:\n        w = 2'
    assert reindent(text, cursor) == (
        'y = 1\n    z = """\n    doc\n    """\n    if y:\n      w = 2'
    )


def test_a_suggestion_no_reading_explains_is_untouched() -> None:
    cursor = at("def f():\n  if x:\n    y = 1\n    if z:█\n")
    text = "\n        w = 2\n  return y"  # its own step inside, the file's outside
    assert reindent(text, cursor) == text


@pytest.mark.parametrize(
    ("marked", "text"),
    [
        ("def f():\n    x = 1\n    █\n", FOUR_SPACE_BODY),
        ("def f():\n  x = 1\n  █\n", "for item in items:\n    total += item\n  return total"),
        ("def f():\n\tx = 1\n\t█\n", "for item in items:\n\t\ttotal += item\n\treturn total"),
        ("def f():\n  █\n", "x = 1\n    # a comment anywhere\n  y = 2"),
        # Continuation lines (a hanging indent of 8) are not steps of the block.
        ("def f():\n    x = 1\n    █\n", "y = call(\n        a,\n        b)\nreturn y"),
        ("def f():\n    █\n", "x = 1\ny = 2"),  # no step at all
    ],
)
def test_a_suggestion_in_the_documents_style_is_untouched(marked: str, text: str) -> None:
    assert reindent(text, at(marked)) == text


def test_the_editors_options_count_where_the_document_shows_none() -> None:
    new_file = "import os\n█"
    text = "def f():\n    return os.sep"
    assert reindent(text, at(new_file)) == text
    assert reindent(text, at(new_file, IndentStyle(2, True))) == "def f():\n  return os.sep"
    assert reindent(text, at(new_file, IndentStyle(4, False))) == "def f():\n\treturn os.sep"
    # The document's own lines win over the editor's options.
    shown = "def g():\n  pass\n█"
    assert reindent(text, at(shown, IndentStyle(8, True))) == "def f():\n  return os.sep"


def test_the_clean_up_re_indents() -> None:
    cursor = at("def total(items):\n  total = 0\n  █\n")
    assert cleanup.clean(FOUR_SPACE_BODY, cursor) == (
        "for item in items:\n    total += item\n  return total"
    )
