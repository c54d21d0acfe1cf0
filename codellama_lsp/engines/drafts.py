"""Where speculative drafts come from; each source is one small class with ``propose``.

A source guesses the next tokens of a sequence (prompt + tokens generated so far). Guesses
cost nothing in correctness: the target model checks them (``decoding.verify``) and keeps only
what it would have produced itself. Sources, cheapest first:

* :class:`SuggestionDraft` — the rest of the suggestion shown before at (or near) this place;
* :class:`LookupDraft` — prompt-lookup decoding: the tokens that followed the last few
  generated tokens elsewhere in the prompt, in the text generated so far, or in the other open
  documents' recent prompts;
* :class:`ModelDraft` — a small model with the same tokenizer, run a few steps ahead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from transformers import DynamicCache

Forward = Callable[[list[int], DynamicCache, int], torch.Tensor]
"""``forward(ids, cache, keep)``: extend ``cache`` by ``ids``; logits of the last ``keep``."""

SOURCES = ("previous", "lookup", "draft_model")
"""Draft source names, in the order they are asked (stats are kept per name)."""


@dataclass
class Draft:
    source: str
    ids: list[int]


class DraftSource(Protocol):
    name: str

    def propose(self, seq: Sequence[int], k: int) -> Draft | None:
        """Up to ``k`` tokens that may follow ``seq``, or None."""
        ...


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def find_continuation(corpus: np.ndarray, end: int, pattern: Sequence[int], k: int) -> list[int]:
    """The ``k`` tokens after the last occurrence of ``pattern`` in ``corpus[:end]`` whose
    continuation is non-empty (vectorised: one comparison per pattern token)."""
    n = len(pattern)
    span = end - n  # occurrences may start at 0 .. span-1 (then a token follows inside end)
    if span <= 0 or n == 0:
        return []
    mask = corpus[:span] == pattern[0]
    for j in range(1, n):
        if not mask.any():
            return []
        mask &= corpus[j : span + j] == pattern[j]
    hits = np.flatnonzero(mask)
    if len(hits) == 0:
        return []
    start = int(hits[-1]) + n
    return [int(t) for t in corpus[start : min(start + k, end)]]


class LookupDraft:
    """Prompt-lookup decoding (Saxena 2023; transformers' ``PromptLookupCandidateGenerator``).

    Code repeats itself: names, argument lists, whole lines. The longest n-gram (``ngram_max``
    down to ``ngram_min`` tokens) ending the sequence is looked up, most recent occurrence
    first, in the sequence itself, then in ``others`` (other documents' recent prompts).
    """

    name = "lookup"

    def __init__(
        self,
        others: Callable[[], list[list[int]]] | None = None,
        ngram_max: int = 3,
        ngram_min: int = 2,
    ) -> None:
        self.ngram_max = ngram_max
        self.ngram_min = ngram_min
        self._others_of = others
        self._others: list[np.ndarray] | None = None
        self._seq = np.zeros(0, dtype=np.int64)
        self._len = 0

    def _sync(self, seq: Sequence[int]) -> np.ndarray:
        """The sequence as an array, copying only what was appended since the last call."""
        if len(seq) > len(self._seq):
            grown = np.zeros(max(2 * len(seq), 256), dtype=np.int64)
            grown[: self._len] = self._seq[: self._len]
            self._seq = grown
        if len(seq) < self._len:
            self._len = 0
        self._seq[self._len : len(seq)] = np.asarray(seq[self._len :], dtype=np.int64)
        self._len = len(seq)
        return self._seq

    def propose(self, seq: Sequence[int], k: int) -> Draft | None:
        arr = self._sync(seq)
        for n in range(self.ngram_max, self.ngram_min - 1, -1):
            if len(seq) <= n:
                continue
            pattern = list(seq[-n:])
            found = find_continuation(arr, len(seq), pattern, k)
            if not found:
                for other in self._other_arrays():
                    found = find_continuation(other, len(other), pattern, k)
                    if found:
                        break
            if found:
                return Draft(self.name, found)
        return None

    def _other_arrays(self) -> list[np.ndarray]:
        if self._others is None:
            lists = self._others_of() if self._others_of is not None else []
            self._others = [np.asarray(ids, dtype=np.int64) for ids in lists if ids]
        return self._others


class SuggestionDraft:
    """The suggestion shown before here: while the generation follows it, its next tokens;
    after a divergence (the user typed something else), n-gram matches inside it."""

    name = "previous"

    def __init__(self, ids: Sequence[int], start: int) -> None:
        self.ids = list(ids)
        self.start = start
        self._arr = np.asarray(self.ids, dtype=np.int64)

    def propose(self, seq: Sequence[int], k: int) -> Draft | None:
        if not self.ids:
            return None
        generated = list(seq[self.start :])
        if self.ids[: len(generated)] == generated:
            rest = self.ids[len(generated) : len(generated) + k]
            return Draft(self.name, rest) if rest else None
        for n in (3, 2, 1):
            if len(generated) >= n:
                found = find_continuation(self._arr, len(self._arr), generated[-n:], k)
                if found:
                    return Draft(self.name, found)
        return None


class ModelDraft:
    """A small model (same tokenizer) decodes ``k`` tokens ahead of the target.

    Its KV cache follows the sequence: each proposal crops it to the part the target kept and
    feeds what is new (the corrected token, in one pass), so no token is computed twice.
    ``pick(logits)`` returns the drafted token and, when sampling, its distribution.
    """

    name = "draft_model"

    def __init__(
        self,
        forward: Forward,
        cache: DynamicCache,
        in_cache: list[int],
        pick: Callable[[torch.Tensor, int], int],
        chunk: int,
        cancel: threading.Event,
        step_seconds: float = 0.0,
        catch_up_seconds: float = 0.0,
    ) -> None:
        self.forward = forward
        self.cache = cache
        self.in_cache = in_cache
        self.pick = pick
        self.chunk = chunk
        self.cancel = cancel
        self.step_seconds = step_seconds
        """Mean seconds per drafted token (what the adaptive k weighs against a target pass);
        the engine carries it from one request to the next."""
        self.catch_up_seconds = catch_up_seconds
        """Mean seconds per token fed in a long catch-up (the draft model's prefill)."""

    def behind(self, seq: Sequence[int]) -> int:
        """Tokens of ``seq`` the draft model would have to be fed before it can draft."""
        return len(seq) - common_prefix_length(self.in_cache, seq)

    def catch_up(self, seq: Sequence[int]) -> torch.Tensor | None:
        """Make the cache hold ``seq``; the logits after it (None if cancelled)."""
        keep = min(common_prefix_length(self.in_cache, seq), len(seq) - 1)
        drop = len(self.in_cache) - keep
        if drop > 0:
            self.cache.crop(-drop)
            del self.in_cache[keep:]
        logits: torch.Tensor | None = None
        for start in range(keep, len(seq), self.chunk):
            if self.cancel.is_set():
                return None
            piece = list(seq[start : start + self.chunk])
            logits = self.forward(piece, self.cache, 1)[-1]
            self.in_cache.extend(piece)
        return logits

    def propose(self, seq: Sequence[int], k: int) -> Draft | None:
        started = time.perf_counter()
        behind = self.behind(seq)
        logits = self.catch_up(seq)
        if logits is None:
            return None
        caught_up = time.perf_counter()
        ids: list[int] = []
        for i in range(k):
            token = self.pick(logits, len(seq) + i)
            ids.append(token)
            if i < k - 1:
                logits = self.forward([token], self.cache, 1)[-1]
                self.in_cache.append(token)
        ended = time.perf_counter()
        # A long catch-up (the prompt, or tokens decoded without drafts) is not a draft cost.
        if behind <= 8:
            self.step_seconds = ema(self.step_seconds, (ended - started) / k)
        else:
            per_token = (caught_up - started) / behind
            self.catch_up_seconds = ema(self.catch_up_seconds, per_token)
            if k > 1:
                self.step_seconds = ema(self.step_seconds, (ended - caught_up) / (k - 1))
        return Draft(self.name, ids)


def ema(old: float, new: float, rate: float = 0.2) -> float:
    """The moving average of a duration: ``new`` itself while nothing is measured (``old`` 0),
    then ``rate`` of the way from ``old`` to ``new``."""
    return new if not old else old + rate * (new - old)
