"""Each clean-up rule on the cases users complain about."""

from __future__ import annotations

import pytest

from codellama_lsp.completion import cleanup as pp
from codellama_lsp.cursor import Cursor

STOPS = ("\ndef ", "\nclass ", "\nif __name__", "\n\n\n")


def at(text: str, marker: str = "█") -> Cursor:
    """A context with the cursor where ``marker`` is."""
    offset = text.index(marker)
    before = text[:offset]
    line = before.count("\n")
    column = len(before.split("\n")[-1])
    return Cursor(text.replace(marker, ""), line, column)


def test_special_tokens_never_survive() -> None:
    ctx = at("x = █\n")
    assert pp.clean("1 <EOT> junk", ctx) == "1"
    assert pp.clean("foo</s>bar", ctx) == "foo"
    assert pp.clean("a <PRE> b <SUF>c <MID>", ctx) == "a bc"  # " <SUF>" owns its space


def test_mid_line_is_single_line() -> None:
    ctx = at("value = compute(█, 3)\n")
    assert ctx.mid_line
    assert pp.clean("x\nprint(value)", ctx) == "x"


def test_end_of_line_may_be_multi_line() -> None:
    ctx = at("def f(x):\n    if x:█\n")
    out = pp.clean("\n        return 1\n    return 2\n\ndef g():\n    pass", ctx, STOPS)
    assert out == "\n        return 1"


def test_block_end_stops_at_dedent() -> None:
    ctx = at("def f(x):\n    total = 0\n    █\n")
    out = pp.clean("for i in x:\n        total += i\n    return total\nprint(f)", ctx, STOPS)
    assert out == "for i in x:\n        total += i\n    return total"


def test_top_level_def_stop_sequence() -> None:
    ctx = at("import os\n█")
    out = pp.clean("x = 1\n\ndef other():\n    pass", ctx, STOPS)
    assert out == "x = 1"


def test_never_repeats_rest_of_line() -> None:
    ctx = at("result = max(█items)\n")
    assert pp.clean("len(items), key=len)", ctx) != "len(items), key=len)items)"
    ctx2 = at("name = get_█(user)\n")
    assert pp.clean("name(user)", ctx2) == "name"


def test_stops_before_the_next_existing_line() -> None:
    ctx = at("def f(a, b):\n    █\n    return a + b\n")
    out = pp.clean("c = a * b\n    return a + b\n", ctx, STOPS)
    assert out == "c = a * b"


def test_auto_closed_bracket_is_completed_not_doubled() -> None:
    ctx = at("print(█)\n")
    assert ctx.closers_after == ")"
    assert pp.replace_range_end(ctx) == ctx.character + 1
    assert pp.clean("'hello')", ctx) == "'hello')"
    assert pp.clean("'hello'", ctx) == "'hello')"
    assert pp.clean("len(x)", ctx) == "len(x))"


def test_no_doubled_space_after_typed_space() -> None:
    ctx = at("x = █")
    assert pp.clean(" 1", ctx) == "1"
    ctx2 = at("x =█")
    assert pp.clean(" 1", ctx2) == " 1"
    # More than one space after a typed one is alignment, not a tokenizer's extra space.
    doc = at('def f():\n    """Modes:\n\n    `load`:   load it\n    `store`: █\n    """\n')
    assert pp.clean("  store it", doc) == "  store it"


def test_indentation_unit_follows_file() -> None:
    ctx = at("def f():\n\tif x:\n\t\ty = 1\n\t█\n")
    assert ctx.indent_unit == "\t"
    out = pp.clean("for i in y:\n        print(i)", ctx, STOPS)
    assert out == "for i in y:\n\t\tprint(i)"


def test_trailing_whitespace_removed() -> None:
    ctx = at("def f():\n    █\n")
    assert pp.clean("a = 1   \n    b = 2  ", ctx) == "a = 1\n    b = 2"


@pytest.mark.parametrize("raw", ["", "   ", "\n\n", "<EOT>"])
def test_empty_results_dropped(raw: str) -> None:
    assert pp.clean(raw, at("x = █")) == ""


def test_repeated_line_loop_cut() -> None:
    ctx = at("def f():\n    █\n")
    out = pp.clean("x += 1\n    x += 1\n    x += 1\n    x += 1", ctx, STOPS)
    assert out == "x += 1"


def test_repeated_block_loop_cut() -> None:
    """The demo model's loop in the built-in example: a two-line block three times over."""
    ctx = at("def f(points):\n    for i in range(3):\n        █\n")
    block = "if not isinstance(v, int):\n            return v\n        "
    out = pp.clean(block * 3 + "return v", ctx, STOPS)
    assert out == "if not isinstance(v, int):\n            return v"


def test_a_block_written_twice_or_lines_alike_but_not_equal_are_kept() -> None:
    ctx = at("def f(a, b):\n    █\n")
    twice = "if a:\n        a = 1\n    if a:\n        a = 1\n    return a"
    assert pp.clean(twice, ctx, STOPS) == twice
    alike = "x = a[0]\n    y = a[1]\n    x = a[0]\n    y = a[2]\n    x = a[0]\n    y = a[3]"
    assert pp.clean(alike, ctx, STOPS) == alike


def test_crlf_document() -> None:
    ctx = at("def f():\r\n    return █\r\n")
    assert ctx.line_prefix == "    return "
    assert pp.clean("42\r\n", ctx) == "42"


def test_empty_file() -> None:
    ctx = Cursor("", 0, 0)
    assert pp.clean("import os\nimport sys", ctx, STOPS) == "import os\nimport sys"


def test_block_done_stops_generation_early() -> None:
    done = pp.block_done(at("def f(x):\n    y = 1\n    █\n"))
    assert not done("return y")
    assert not done("return y\n")
    assert done("return y\nprint(1)")
    single = pp.block_done(at("call(█, 2)"))
    assert single("abc\n")


def test_mid_line_keeps_space_before_following_code() -> None:
    ctx = at("if line █in lines:\n")
    assert pp.clean("is not None and line in lines:", ctx) == "is not None and line "


def test_string_left_open_before_an_auto_closed_bracket_is_cut() -> None:
    ctx = at("call(█)\n")
    assert pp.clean("self._w, '__', '", ctx) == "self._w, '__',)"
    assert pp.clean("'it''s'", ctx) == "'it''s')"
    ctx2 = at("print('█')\n")  # the editor closed the quote too: that is the completion's end
    assert pp.clean("hello", ctx2) == "hello')"


def test_open_string_scanner() -> None:
    assert pp.open_string_start("f('a', 'b") == (7, "'")
    assert pp.open_string_start('f("a\\"b")') is None
    assert pp.open_string_start("x = 1  # it's") is None


def test_docstring_completion_stops_at_the_closing_quotes() -> None:
    """Mid-docstring, the next line is a lone closing quote (shorter than 4 characters)."""
    ctx = at('def f(x):\n    """Compute the █\n    """\n    return x\n')
    raw = 'square of x.\n    """\n    y = x * x\n    return y\n'
    assert pp.clean(raw, ctx, STOPS) == "square of x."


def test_an_inner_copy_of_the_next_line_does_not_end_the_completion() -> None:
    """The line after the cursor (``try:``) also occurs inside the completion, deeper or
    followed by other code: only the place where the completion rejoins the code ends it."""
    text = "def f(path):\n    █\n    try:\n        return load(path)\n    except OSError:\n"
    ctx = at(text)
    raw = (
        "if not path:\n        return None\n    try:\n        check(path)\n    except ValueError:\n"
        "        return None\n    try:\n        return load(path)\n"
    )
    assert pp.clean(raw, ctx, STOPS) == (
        "if not path:\n        return None\n    try:\n        check(path)\n    except ValueError:\n"
        "        return None"
    )
    deeper = "for p in paths:\n        try:\n            load(p)\n        except OSError:\n"
    assert pp.clean(deeper + "    try:\n        return load(path)\n", ctx, STOPS) == (
        deeper.rstrip("\n")
    )


def test_one_agreeing_line_at_the_end_of_the_completion_rejoins() -> None:
    """Issue 28: the rest of a line, then a copy of the line below as the block's last line.
    Nothing of the model's own follows the copy (the block ends after it), so it is the code
    after the cursor, not new code: shown once it would be there twice."""
    ctx = at(
        "class Item:\n"
        "    def describe(self):\n"
        "        name = self.name\n"
        '        label = f"{name}: █\n'
        "        return label\n"
        "\n"
        "    def other(self):\n"
        "        pass\n"
    )
    copy = '{self.kind}"\n        return label'
    # The model's text ends with the copy; the engine stopped where the block ended; or the
    # model went on with code of its own past the block's end.
    for after in ("", "\n", "\n\n    d", "\n\n    def kind(self):\n        return self._kind\n"):
        assert pp.clean(copy + after, ctx, STOPS) == '{self.kind}"', after
    # A blank-line body followed by a copy of the line below, at the end of the block.
    body = at("def f(items):\n    total = sum(items)\n    █\n    return total\n\n\nx = 1\n")
    out = pp.clean("total *= 2\n    return total\n\n\nprint(x)", body, STOPS)
    assert out == "total *= 2"


def test_budget_truncated_completion_ends_with_a_finished_statement() -> None:
    ctx = at("def f(items):\n    █\n")
    raw = "total = 0\n    for item in items:\n        total += weigh(item,\n            fact"
    assert pp.clean(raw, ctx, STOPS, truncated=True) == "total = 0\n    for item in items:"
    # Not truncated: the model's own end is kept.
    assert pp.clean("x = 1\n    y = 2", ctx, STOPS) == "x = 1\n    y = 2"
    # Still inside the user's open call: the last whole line.
    ctx2 = at("result = compute(█\n")
    assert pp.clean("a,\n    b,\n    c", ctx2, STOPS, truncated=True) == "a,\n    b,"
