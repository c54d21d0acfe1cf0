"""What an idle-time prefill computes: the prompt up to the cursor that the next keys keep."""

from __future__ import annotations

import inspect
import textwrap
import time
from functools import cache

import pytest

from codellama_lsp.completion.idle_prefill import cursor_prefix_ids, word_being_typed
from codellama_lsp.completion.prompt import build_prompt
from codellama_lsp.cursor import Cursor
from codellama_lsp.engines.model_names import resolve_model
from codellama_lsp.engines.tokenization import CodeTokens, load_tokenizer

SOURCE = inspect.getsource(textwrap)


@cache
def tokens() -> CodeTokens:
    return CodeTokens(load_tokenizer(resolve_model("demo")))


@pytest.mark.parametrize("fmt", ["prefix", "fim"])
def test_each_key_keeps_what_the_prefill_before_it_computed(fmt: str) -> None:
    """Typed one character at a time, each prompt starts with the ids prefilled after the key
    before, so the request at a pause reuses them all; only the word being typed is left to it.
    Checked on 20 real lines of textwrap.py (except where the window's first line moves)."""
    t = tokens()
    lines = SOURCE.split("\n")
    picked = [i for i in range(300, len(lines)) if len(lines[i].strip()) > 20][:20]

    def prompt_at(line: int, typed: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The prompt with ``typed`` on ``line``, and what an idle prefill computes for it."""
        indent = lines[line][: len(lines[line]) - len(lines[line].lstrip())]
        text = "\n".join([*lines[:line], indent + typed, *lines[line + 1 :]])
        ctx = Cursor(text, line, len(indent + typed))
        prompt = build_prompt(ctx, t, fmt=fmt, budget=1024)  # type: ignore[arg-type]
        return prompt.ids, cursor_prefix_ids(prompt, t, ctx.line_prefix)

    held_back, moves, keys = [], 0, 0
    for line in picked:
        body = lines[line].strip()
        for k in range(len(body)):
            ids, shared = prompt_at(line, body[:k])
            following, _ = prompt_at(line, body[: k + 1])
            keys += 1
            if following[:16] != ids[:16]:
                moves += 1  # the window's first line moved: a new prompt from the top
                continue
            assert following[: len(shared)] == shared, (line, body[: k + 1])
            end = len(ids) if fmt == "prefix" else ids.index(t.infill.suffix_id)  # type: ignore[union-attr]
            held_back.append(end - len(shared))
    assert moves <= keys // 50
    assert max(held_back) <= 8 and sum(held_back) / len(held_back) < 3


def test_the_word_being_typed_is_found_in_linear_time() -> None:
    assert word_being_typed("    total = comp") == " comp"
    assert word_being_typed("    x = f(a, ") == " "
    assert word_being_typed("name_2") == "name_2"
    assert word_being_typed("") == ""
    # A minified line: a regular expression anchored at the end took seconds on this.
    line = "a" * 300_000 + "("
    started = time.process_time()
    assert word_being_typed(line) == ""
    assert word_being_typed(line + " bc") == " bc"
    assert time.process_time() - started < 1.0
