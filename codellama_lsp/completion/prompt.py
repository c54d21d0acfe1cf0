"""Prompts from a document and a cursor, under a token budget.

Two formats: prefix-only (Code Llama 70B and the Python models, which were not trained to
infill) and FIM in PSM order (``<PRE> {prefix} <SUF>{suffix} <MID>``) for the 7B/13B base
models. Ids are built by hand: the tokenizer's own infill path adds a stray ``▁``.

The window keeps whole lines nearest the cursor, and its first line only moves in steps of
``WINDOW_STEP`` lines, so that typing does not shift the start of the prompt on every
keystroke and the KV cache of the previous request stays reusable.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from cachetools import LRUCache

from codellama_lsp.config import Settings
from codellama_lsp.cursor import Cursor
from codellama_lsp.engines.base import Engine
from codellama_lsp.engines.model_family import infills_by_default
from codellama_lsp.engines.tokenization import CodeTokens

Format = Literal["fim", "prefix"]
WINDOW_STEP = 16
IMPORT_SHARE = 0.15
_IMPORT = re.compile(
    r"^(?:import[^\S\r\n]|from[^\S\r\n]+[^\s]+[^\S\r\n]+import[^\S\r\n]).*", re.MULTILINE
)
"""A top-level import line (searched in the lines joined: one scan, not one per line)."""


def choose_format(setting: str, model_name: str, tokens: CodeTokens) -> Format:
    """FIM only when the tokenizer has infill tokens and the model infills well
    (:func:`~codellama_lsp.engines.model_family.infills_by_default`); ``prompt_format``
    overrides."""
    if setting == "fim":
        if tokens.infill is None:
            return "prefix"
        return "fim"
    if setting == "prefix":
        return "prefix"
    if tokens.infill is None or not infills_by_default(model_name):
        return "prefix"
    return "fim"


@dataclass(frozen=True)
class Prompt:
    ids: tuple[int, ...]
    format: Format
    budget: int
    window_start_line: int
    prefix_text: str
    suffix_text: str
    context_text: str = ""

    def __len__(self) -> int:
        return len(self.ids)


class LineCounter:
    """Token counts of single lines, memoised: documents change a line at a time."""

    def __init__(self, tokens: CodeTokens, size: int = 8192) -> None:
        self.tokens = tokens
        self._memo: LRUCache[str, int] = LRUCache(maxsize=size)

    def __call__(self, line: str) -> int:
        count = self._memo.get(line)
        if count is None:
            count = len(self.tokens.encode(line + "\n", leading_space=False))
            self._memo[line] = count
        return count


MAX_CHARS_PER_TOKEN = 16
"""No Code Llama token covers more characters than this (the longest pieces are space runs)."""


class BoundedLineCounter(LineCounter):
    """A line counter that never tokenizes a line too long to fit any prompt.

    Such a line (minified code, data) gets an upper bound of its token count (one token per
    UTF-8 byte, as byte fallback gives, plus two), which is over the budget, so the prompt
    leaves it out exactly as it would after tokenizing it, in constant time.
    """

    def __init__(self, tokens: CodeTokens, max_chars: int) -> None:
        super().__init__(tokens)
        self.max_chars = max_chars

    def __call__(self, line: str) -> int:
        if len(line) > self.max_chars:
            return len(line.encode("utf-8", "surrogatepass")) + 2
        return super().__call__(line)


def window_start(counts: list[int], budget: int, step: int = WINDOW_STEP) -> int:
    """First line of the window over ``counts`` (lines before the cursor) within ``budget``.

    The minimal start is rounded up to a multiple of ``step``: it only moves when the text
    above crosses a step boundary, not on every keystroke. The step shrinks for short windows
    (token-heavy lines) so that rounding never drops more than a quarter of the lines.
    """
    total, start = 0, len(counts)
    for i in range(len(counts) - 1, -1, -1):
        if total + counts[i] > budget:
            break
        total += counts[i]
        start = i
    if start == 0:
        return 0
    step = max(1, min(step, (len(counts) - start) // 4))
    return min(len(counts), -(-start // step) * step)


def counts_within(lines: list[str], budget: int, count: LineCounter) -> list[int]:
    """Token counts of ``lines``, measured from the end only until they exceed ``budget``.

    Lines further up can never enter the window: they get ``budget + 1``, so the work per
    request depends on the budget and not on the size of the file.
    """
    counts = [budget + 1] * len(lines)
    total = 0
    for i in range(len(lines) - 1, -1, -1):
        counts[i] = count(lines[i])
        total += counts[i]
        if total > budget:
            break
    return counts


def import_block(lines: list[str], before: int) -> list[str]:
    """Module docstring's first line and top-level imports above line ``before``.

    Kept when the window starts below them: they say what the file is and which names exist.
    """
    head: list[str] = []
    first = next((line for line in lines[:before] if line.strip()), "")
    quote = first.strip()[:3]
    if quote in ('"""', "'''"):
        summary = first.strip()[3:].split(quote)[0].strip() or "..."
        head.append(f"{quote}{summary}{quote}")
    return head + _IMPORT.findall("\n".join(lines[:before]))


def _fit_lines(lines: list[str], budget: int, count: LineCounter) -> list[str]:
    kept: list[str] = []
    used = 0
    for line in lines:
        used += count(line)
        if used > budget:
            break
        kept.append(line)
    return kept


def build_prompt(
    cursor: Cursor,
    tokens: CodeTokens,
    *,
    fmt: Format,
    budget: int,
    suffix_share: float = 0.25,
    extra_context: str = "",
    counter: LineCounter | None = None,
) -> Prompt:
    """The prompt ids for ``cursor``, never longer than ``budget`` tokens."""
    count = counter or LineCounter(tokens)
    fixed = 4  # BOS and the three infill tokens
    suffix_budget = int(budget * suffix_share) if fmt == "fim" else 0
    context_text = extra_context
    if context_text and len(tokens.encode(context_text)) > budget // 2:
        context_text = ""
    context_cost = len(tokens.encode(context_text)) if context_text else 0
    cursor_line = cursor.line_prefix
    prefix_budget = budget - fixed - suffix_budget - context_cost - count(cursor_line)

    above = cursor.lines[: cursor.line]
    start, header = _window(cursor.lines, above, prefix_budget, count)

    suffix_text = ""
    if fmt == "fim":
        rest = [cursor.line_suffix, *cursor.lines[cursor.line + 1 :]]
        suffix_text = "\n".join(_fit_lines(rest, suffix_budget, count))

    while True:
        prefix_text = context_text + header + "".join(line + "\n" for line in above[start:])
        prefix_text += cursor_line
        ids = _assemble(tokens, fmt, prefix_text, suffix_text)
        if len(ids) <= budget or (start >= len(above) and not header and not suffix_text):
            break
        # Line counts are close to, not exactly, the joint encoding: trim and retry.
        if start < len(above):
            start = min(len(above), start + WINDOW_STEP)
        elif header:
            header = ""
        else:
            suffix_text = suffix_text[: len(suffix_text) // 2]
    if len(ids) > budget:
        # Only the cursor line is left and it alone is too long: keep its end.
        ids = _line_end_only(tokens, fmt, cursor_line, budget)
        prefix_text = cursor_line
        suffix_text = ""
    return Prompt(
        ids=tuple(ids),
        format=fmt,
        budget=budget,
        window_start_line=start,
        prefix_text=prefix_text,
        suffix_text=suffix_text,
        context_text=context_text,
    )


def _window(
    lines: list[str], above: list[str], prefix_budget: int, count: LineCounter
) -> tuple[int, str]:
    """The first line above the cursor that fits, and the import block kept above it."""
    counts = counts_within(above, max(0, prefix_budget), count)
    start = window_start(counts, max(0, prefix_budget))
    if start == 0:
        return start, ""
    kept = _fit_lines(import_block(lines, start), int(prefix_budget * IMPORT_SHARE), count)
    if not kept:
        return start, ""
    start = window_start(counts, max(0, prefix_budget - sum(count(k) for k in kept)))
    return start, "\n".join(kept) + "\n"


def _line_end_only(tokens: CodeTokens, fmt: Format, cursor_line: str, budget: int) -> list[int]:
    """The prompt of the cursor line's end alone (the line by itself is over the budget)."""
    empty = _assemble(tokens, fmt, "", "")
    tail = tokens.encode(cursor_line)[len(empty) - budget :]
    # In FIM the prefix sits between <PRE> and <SUF>: the first two ids of `empty`.
    return empty[:-2] + tail + empty[-2:] if fmt == "fim" else empty + tail


def _assemble(tokens: CodeTokens, fmt: Format, prefix: str, suffix: str) -> list[int]:
    bos = [tokens.bos_id] if tokens.bos_id is not None else []
    if fmt == "prefix":
        return bos + (tokens.encode(prefix) if prefix else [])
    infill = tokens.infill
    assert infill is not None
    return (
        bos
        + [infill.prefix_id]
        + (tokens.encode(prefix) if prefix else [])
        + [infill.suffix_id]
        + (tokens.encode(suffix, leading_space=False) if suffix else [])
        + [infill.middle_id]
    )


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
"""JSON can carry half a surrogate pair (``"\\ud83d"``); tokenizers refuse such text."""
ContextBuilder = Callable[[Cursor, int], str]
"""Builds the context text (other files) from (cursor, token budget), on a worker thread."""


class PromptMaker:
    """A completer's prompts: the settings' budgets applied to :func:`build_prompt`, with one
    line-count memo per tokenizer and length bound. Callable from worker threads: the memo is
    not thread-safe, so one prompt is built at a time."""

    def __init__(self) -> None:
        self._counter: BoundedLineCounter | None = None
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Another engine (tokenizer): its line counts are not known yet."""
        with self._lock:
            self._counter = None

    def make(
        self,
        cursor: Cursor,
        engine: Engine,
        settings: Settings,
        context: ContextBuilder | None,
    ) -> Prompt:
        """The prompt at ``cursor`` for ``engine`` under ``settings``; ``context`` is the context
        sources' builder (prepared on the event loop)."""
        with self._lock:
            s = settings
            max_chars = s.max_context_tokens * MAX_CHARS_PER_TOKEN
            if self._counter is None or self._counter.max_chars != max_chars:
                self._counter = BoundedLineCounter(engine.tokens, max_chars)
            # Text further along a very long cursor line cannot fit the prompt: cut it first.
            cursor = cursor.with_line_window(max_chars)
            if _LONE_SURROGATE.search(cursor.text):
                text = _LONE_SURROGATE.sub("\ufffd", cursor.text)
                cursor = dataclasses.replace(cursor, text=text)
            new_tokens = s.max_new_tokens_single_line if cursor.single_line else s.max_new_tokens
            budget = max(16, min(s.max_context_tokens, engine.context_limit) - new_tokens)
            extra = _LONE_SURROGATE.sub("\ufffd", context(cursor, budget // 4)) if context else ""
            return build_prompt(
                cursor,
                engine.tokens,
                fmt=choose_format(s.prompt_format, engine.name, engine.tokens),
                budget=budget,
                suffix_share=s.fim_suffix_share,
                extra_context=extra,
                counter=self._counter,
            )
