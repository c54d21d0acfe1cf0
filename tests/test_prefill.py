"""What an idle-time prefill computes: the prompt that every request on the line shares."""

from __future__ import annotations

import inspect
import textwrap
from functools import cache

import pytest

from codellama_lsp.cursor import Cursor
from codellama_lsp.models import resolve_model
from codellama_lsp.prefill import line_prefix_ids
from codellama_lsp.prompt import build_prompt
from codellama_lsp.tokenization import CodeTokens, load_tokenizer

SOURCE = inspect.getsource(textwrap)


@cache
def tokens() -> CodeTokens:
    return CodeTokens(load_tokenizer(resolve_model("demo")))


@pytest.mark.parametrize("fmt", ["prefix", "fim"])
def test_the_line_prefix_is_shared_by_every_request_typed_on_that_line(fmt: str) -> None:
    t = tokens()
    lines = SOURCE.split("\n")
    line = next(i for i in range(300, len(lines)) if lines[i].strip().startswith("return"))
    indent = lines[line][: len(lines[line]) - len(lines[line].lstrip())]
    body = lines[line].strip()

    def prompt_after(typed: str) -> tuple[int, ...]:
        text = "\n".join([*lines[:line], indent + typed, *lines[line + 1 :]])
        ctx = Cursor(text, line, len(indent + typed))
        return build_prompt(ctx, t, fmt=fmt, budget=1024).ids  # type: ignore[arg-type]

    first = Cursor("\n".join(lines), line, len(indent))  # the user starts on this line
    start = build_prompt(first, t, fmt=fmt, budget=1024)  # type: ignore[arg-type]
    shared = line_prefix_ids(start, t, first.line_prefix)
    assert len(shared) > 600  # the ~1,000-token window above the line
    for typed in (body[:1], body[:5], body):
        assert prompt_after(typed)[: len(shared)] == shared
