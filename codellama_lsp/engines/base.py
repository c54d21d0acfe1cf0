"""What every engine offers: load once, then generate with a stop flag.

Engines are blocking on purpose: the server runs them in one worker thread, so the event
loop stays free and the model never runs two generations at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from codellama_lsp.engines.tokenization import CodeTokens

FinishReason = Literal["eot", "stop", "length", "cancelled", "error"]
UNKNOWN_CONTEXT_LIMIT = 1 << 30
"""An engine's ``context_limit`` when the model does not state one."""
ProgressCallback = Callable[[str, int], None]
"""Called while loading with a message and a percentage (0–100)."""
ConnectionListener = Callable[[bool, str], object]
"""Called (on the worker thread) with (connected, message) when a model server goes or comes
back."""


@dataclass(frozen=True)
class GenerationRequest:
    """One completion to generate; ``prompt_ids`` already hold BOS and any FIM tokens."""

    prompt_ids: tuple[int, ...]
    max_new_tokens: int
    temperature: float
    top_p: float
    stop_sequences: tuple[str, ...] = ()
    should_stop: Callable[[str], bool] | None = None
    """Extra early stop on the text so far (e.g. the cursor's block has ended)."""
    on_text: Callable[[str], None] | None = None
    """Told the text so far after each token, before ``should_stop`` (the completer records
    it for kept generations; the model server streams it). See :mod:`~.engines.stops`."""
    session: str = ""
    """Who asked (document URI, client id): engines keep per-session state such as KV slots."""
    seed: int = 0
    draft_text: str = ""
    """Text the completion probably contains (the rest of the suggestion shown before here):
    a speculative draft, never part of the output unless the model agrees token by token."""
    max_draft: int | None = None
    """Most tokens drafted per verification pass; 0 = no speculation, None = engine default."""


@dataclass
class GenerationResult:
    text: str
    finish_reason: FinishReason
    prompt_tokens: int = 0
    reused_prompt_tokens: int = 0
    generated_tokens: int = 0
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0
    token_ids: list[int] = field(default_factory=list)
    decode_passes: int = 0
    """Target forward passes while decoding (plain steps and verifications)."""
    drafted: dict[str, int] = field(default_factory=dict)
    """Draft tokens proposed, per source (see ``engines.drafts.SOURCES``)."""
    accepted_drafts: dict[str, int] = field(default_factory=dict)
    """Draft tokens the target kept, per source."""
    verify_passes: dict[str, int] = field(default_factory=dict)
    """Verification passes, per source."""

    @property
    def cancelled(self) -> bool:
        return self.finish_reason == "cancelled"


class Engine(Protocol):
    """A loaded model that turns prompt ids into text."""

    name: str
    warning: str
    """A problem the user should hear of that did not stop the load (empty: none)."""
    last_step_seconds: float
    """Duration of the latest forward pass (a cancel waits for at most this one); 0 when the
    model runs elsewhere."""
    on_connection_change: ConnectionListener | None
    """Told when the model server goes away or comes back (never called for a model in
    this process)."""

    @property
    def tokens(self) -> CodeTokens:
        """The model's tokenizer wrapper (valid once loaded)."""
        ...

    @property
    def reuses_prompts(self) -> bool:
        """Keeps the KV caches of recent prompts: a prefill ahead of time pays off."""
        ...

    def cache_stats(self) -> dict[str, int]:
        """What the KV caches hold (for ``codellama.stats``); empty when there are none."""
        ...

    @property
    def context_limit(self) -> int:
        """The most prompt + new tokens the model itself accepts (callers also apply the live
        ``max_context_tokens``); :data:`UNKNOWN_CONTEXT_LIMIT` when the model does not say."""
        ...

    def load(self, progress: ProgressCallback) -> None:
        """Load (blocking); raise with a clear message on failure."""
        ...

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> GenerationResult:
        """Generate until a stop condition or until ``cancel`` is set (checked every step)."""
        ...

    def close(self) -> None: ...


class EngineLoadError(RuntimeError):
    """Loading failed; the message is shown to the user as is."""
