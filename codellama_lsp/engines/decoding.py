"""The decode loop's steps, gpt-fast style: small functions a new way of decoding recombines.

``prefill`` fills a KV cache in chunks, ``decode_one_token`` is one plain step, and ``verify``
checks a draft (k tokens from a source in :mod:`~codellama_lsp.engines.drafts`, k chosen by
``DraftBudget`` from measured acceptance and ``PassCosts``) in one forward pass and crops the
cache back to what was accepted. A decode step only ever *proposes* tokens: the caller
(``LocalEngine._decode``) appends them one by one and runs the stop checks
(:mod:`~codellama_lsp.engines.stops`) after each, so the output of every step is the same
token-by-token stream plain decoding would give.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from codellama_lsp.engines.drafts import Draft, Forward, ema


def probs_of(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Temperature + nucleus (top-p) distribution, in vocabulary order (rows: positions)."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    sorted_probs, order = torch.sort(probs, descending=True, dim=-1)
    outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs > top_p
    sorted_probs[outside] = 0.0
    sorted_probs = sorted_probs / sorted_probs.sum(dim=-1, keepdim=True)
    return torch.zeros_like(probs).scatter_(-1, order, sorted_probs)


def inverse_cdf(probs: torch.Tensor, u: float) -> int:
    """The token whose slice of [0, 1) holds ``u`` (tokens of probability 0 have none)."""
    cumulative = torch.cumsum(probs, dim=-1)
    index = int(torch.searchsorted(cumulative, torch.tensor([u]), right=True).item())
    if index >= probs.shape[-1]:  # u above a total a hair under 1 (rounding)
        index = int(torch.nonzero(probs).max().item())
    return index


@dataclass
class Sampling:
    """How one request turns logits into tokens: vocabulary crop, banned ids, temperature.

    Sampling is *coupled*: the token at generated position n is the inverse CDF of the model's
    distribution at one uniform number u(seed, n). A drafted token is kept when it is the token
    the target would sample there (for greedy: its argmax), so speculative decoding gives the
    same tokens as plain decoding for the same seed, whatever was drafted and whatever k the
    engine chose; and the distribution is the model's own. A draft model samples its guesses
    with the same u(n), so it agrees with the target wherever their distributions are close.
    """

    temperature: float
    top_p: float
    vocab_size: int
    banned: torch.Tensor
    seed: int

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def clean(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits (one row or several) cut to the real vocabulary, special ids banned."""
        logits = logits[..., : self.vocab_size]
        if len(self.banned):
            logits[..., self.banned] = float("-inf")
        return logits

    def sample(self, logits: torch.Tensor, position: int) -> int:
        """The token at generated position ``position`` (0 = the first new token)."""
        if self.greedy:
            return int(torch.argmax(self.clean(logits)).item())
        return inverse_cdf(self.probs(logits), self.uniform(position))

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        return probs_of(self.clean(logits), self.temperature, self.top_p)

    def uniform(self, position: int) -> float:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + position)
        return float(torch.rand((), generator=generator).item())


def prefill(
    forward: Forward,
    ids: Sequence[int],
    cache: DynamicCache,
    chunk: int,
    cancel: threading.Event,
    in_cache: list[int],
) -> torch.Tensor | None:
    """Feed ``ids`` in chunks (a stop flag is seen between chunks); last position's logits.

    ``in_cache`` grows with every chunk fed, so a cancelled prefill still leaves a cache whose
    ids are known (and reusable). None when cancelled or when ``ids`` is empty.
    """
    logits: torch.Tensor | None = None
    for start in range(0, len(ids), chunk):
        if cancel.is_set():
            return None
        piece = list(ids[start : start + chunk])
        logits = forward(piece, cache, 1)[-1]
        in_cache.extend(piece)
    return logits


def decode_one_token(
    forward: Forward, token: int, cache: DynamicCache, in_cache: list[int]
) -> torch.Tensor:
    """One plain step: feed the token just chosen; logits for the next one."""
    logits = forward([token], cache, 1)[-1]
    in_cache.append(token)
    return logits


@dataclass
class Verified:
    """What one verification pass decided."""

    tokens: list[int]
    """The accepted draft tokens (a prefix of the draft)."""
    next_logits: torch.Tensor
    """Logits for the position after the last accepted token."""


def verify(
    forward: Forward,
    token: int,
    draft: Draft,
    cache: DynamicCache,
    in_cache: list[int],
    sampling: Sampling,
    position: int,
) -> Verified:
    """Check ``draft`` after ``token`` in one target forward pass; crop the cache to the result.

    Draft token i stands at generated position ``position + i``; it is kept while it is the
    token the target samples there (:class:`Sampling`: the argmax when greedy, the coupled
    sample otherwise), so the tokens are exactly those plain decoding would pick.
    """
    fed = [token, *draft.ids]
    logits = forward(fed, cache, len(fed))
    in_cache.append(token)
    accepted: list[int] = []
    for i, proposed in enumerate(draft.ids):
        if sampling.sample(logits[i], position + i) != proposed:
            break
        accepted.append(proposed)
    drop = len(draft.ids) - len(accepted)
    if drop:
        cache.crop(-drop)
    in_cache.extend(accepted)
    return Verified(accepted, logits[len(accepted)])


@dataclass
class PassCosts:
    """Measured seconds of target forward passes: t(n) = one_token + per_extra * (n - 1).

    On a GPU a pass over 5 tokens costs about one over 1 (weights are read once), so
    ``per_extra`` is tiny; on a CPU it is not, and drafting then rarely pays.
    """

    one_token: float = 0.0
    per_extra: float = 0.0
    rate: float = 0.2
    since_one_token: int = 0
    """Multi-token passes since the last one-token pass: a one-token time measured while the
    machine was busy must not keep drafting on for good, so it is re-measured now and then."""
    refresh_every: int = 16

    @property
    def stale(self) -> bool:
        return self.since_one_token >= self.refresh_every

    def observe(self, tokens: int, seconds: float) -> None:
        if tokens <= 1:
            self.one_token = ema(self.one_token, seconds, self.rate)
            self.since_one_token = 0
            return
        self.since_one_token += 1
        if self.one_token:
            extra = max(0.0, (seconds - self.one_token) / (tokens - 1))
            self.per_extra = ema(self.per_extra, extra, self.rate)

    def seconds(self, tokens: int) -> float:
        return self.one_token + self.per_extra * (tokens - 1)


@dataclass
class DraftBudget:
    """How many tokens to draft from one source: the k with most expected tokens per second.

    Acceptance is modelled as each draft token being kept with probability ``alpha`` (given the
    ones before it were), so a pass with k drafts yields 1 + alpha + ... + alpha^k tokens and
    costs ``PassCosts.seconds(k + 1)`` plus k draft steps. k = 0 is plain decoding: when no k
    beats it the source is not asked (except for a cheap probe every ``probe_every`` steps,
    so that a source that starts paying again is noticed).
    """

    max_draft: int
    kept: float = 1.0
    tried: float = 2.0
    decay: float = 0.95
    probe_every: int = 64
    idle: int = 0
    drafted_total: int = field(default=0)

    @property
    def alpha(self) -> float:
        return self.kept / self.tried

    def update(self, drafted: int, accepted: int) -> None:
        trials = accepted + (1 if accepted < drafted else 0)
        self.kept = self.kept * self.decay**trials + accepted
        self.tried = self.tried * self.decay**trials + trials
        self.drafted_total += drafted

    def choose(
        self, costs: PassCosts, draft_step_seconds: float = 0.0, setup_per_token: float = 0.0
    ) -> int:
        """The best k now; ``setup_per_token`` is a one-off cost of using the source at all
        (a draft model's prefill of the prompt), spread over the tokens still to generate."""
        if self.max_draft <= 0:
            return 0
        base = costs.one_token
        if base <= 0 or costs.stale:
            return 0  # a plain step (first, then now and then): the baseline k is weighed against
        alpha = min(self.alpha, 0.999)
        best_k, best_rate = 0, 1.0 / base
        expected = 1.0
        for k in range(1, self.max_draft + 1):
            expected += alpha**k
            per_token = (costs.seconds(k + 1) + k * draft_step_seconds) / expected
            rate = 1.0 / (per_token + setup_per_token)
            if rate > best_rate * 1.1:  # a clear gain only: the measurements are noisy
                best_k, best_rate = k, rate
        if best_k == 0:
            self.idle += 1
            if self.idle >= self.probe_every and not setup_per_token:
                self.idle = 0
                return 1
        else:
            self.idle = 0
        return best_k


def timed(forward: Forward, costs: PassCosts) -> Forward:
    """``forward`` that records its duration in ``costs`` (decode passes only)."""

    def run(ids: list[int], cache: DynamicCache, keep: int) -> torch.Tensor:
        started = time.perf_counter()
        out = forward(ids, cache, keep)
        costs.observe(len(ids), time.perf_counter() - started)
        return out

    return run
