"""The in-process engine: a transformers causal LM loaded once, and a small generation loop.

The loop is written out (as in gpt-fast) instead of calling ``model.generate`` because we need
three things ``generate`` does not give together: prefill in chunks with a stop-flag check
between them, a stop-flag check before every decode step, and KV-cache reuse across requests
that share a prompt prefix (see :class:`KVSlots`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import torch
from cachetools import LRUCache
from transformers import AutoModelForCausalLM, DynamicCache

from codellama_lsp.config import Settings
from codellama_lsp.demo_model import resolve_model
from codellama_lsp.engines.base import (
    EngineLoadError,
    EngineState,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
    text_stop_index,
)
from codellama_lsp.tokenization import CodeTokens, load_tokenizer

log = logging.getLogger(__name__)


@dataclass
class KVSlot:
    """A KV cache and the exact token ids whose keys/values it holds."""

    ids: list[int]
    cache: DynamicCache


def common_prefix_length(a: list[int] | tuple[int, ...], b: list[int] | tuple[int, ...]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class KVSlots:
    """Recent KV caches, bounded by slot count and total tokens (LRU).

    A request takes the slot sharing the longest token-id prefix with its prompt out of the
    store, crops it to that prefix and extends it in place, then puts it back: no copies.
    Matching on token ids (not text) makes the reused keys/values exactly those a fresh
    prefill would compute, so nothing needs to be backed off except the prompt's last token,
    which is always fed again to get the next-token logits.
    """

    def __init__(self, max_slots: int, max_tokens: int) -> None:
        self.max_slots = max_slots
        self._slots: LRUCache[str, KVSlot] = LRUCache(
            maxsize=max(1, max_tokens), getsizeof=lambda slot: max(1, len(slot.ids))
        )
        self._lock = threading.Lock()

    def take(self, session: str, prompt: tuple[int, ...]) -> tuple[DynamicCache | None, int]:
        """The best cache for ``prompt`` cropped to its reusable length, and that length."""
        if self.max_slots == 0:
            return None, 0
        with self._lock:
            best_key, best_len = None, 0
            for key, slot in self._slots.items():
                n = common_prefix_length(slot.ids, prompt)
                if n > best_len or (n == best_len and n > 0 and key == session):
                    best_key, best_len = key, n
            if best_key is None:
                return None, 0
            slot = self._slots.pop(best_key)
        reuse = min(best_len, len(prompt) - 1)
        if reuse <= 0:
            return None, 0
        drop = slot.cache.get_seq_length() - reuse
        if drop > 0:
            slot.cache.crop(-drop)
        return slot.cache, reuse

    def put(self, session: str, ids: list[int], cache: DynamicCache) -> None:
        if self.max_slots == 0 or not ids:
            return
        with self._lock:
            self._slots.pop(session, None)
            if len(ids) > self._slots.maxsize:
                return
            self._slots[session] = KVSlot(ids, cache)
            while len(self._slots) > self.max_slots:
                self._slots.popitem()

    def clear(self) -> None:
        with self._lock:
            self._slots.clear()

    @property
    def total_tokens(self) -> int:
        return int(self._slots.currsize)

    def __len__(self) -> int:
        return len(self._slots)


def hub_offline(offline: bool) -> None:
    """Put huggingface_hub offline while ``local_files_only`` is on.

    ``local_files_only`` alone is not enough: huggingface_hub still calls the Hub (to fetch
    its agent registry for the User-Agent header) before it looks in the local cache. The
    user's own ``HF_HUB_OFFLINE=1`` always wins.
    """
    import huggingface_hub.constants as hub

    if not hasattr(hub_offline, "user_offline"):
        hub_offline.user_offline = bool(hub.HF_HUB_OFFLINE)  # type: ignore[attr-defined]
    hub.HF_HUB_OFFLINE = offline or hub_offline.user_offline  # type: ignore[attr-defined]


def pick_dtype(name: str) -> torch.dtype | str:
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def quantization_config(kind: str) -> Any:
    """bitsandbytes settings for 4/8-bit weights, or None; fails clearly when unavailable."""
    if kind == "none":
        return None
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise EngineLoadError(
            f"quantization={kind} needs bitsandbytes: pip install 'codellama-lsp[quant]'"
        ) from exc
    from transformers import BitsAndBytesConfig

    if kind == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True,
        )
    return BitsAndBytesConfig(load_in_8bit=True)


def sample_next(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator
) -> int:
    """Greedy at temperature 0, otherwise temperature + nucleus (top-p) sampling."""
    if temperature <= 0.0:
        return int(torch.argmax(logits).item())
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    sorted_probs, order = torch.sort(probs, descending=True)
    outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs > top_p
    sorted_probs[outside] = 0.0
    choice = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
    return int(order[choice].item())


class LocalEngine:
    """A transformers model kept in memory for the life of the server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = settings.model
        self.state: EngineState = "idle"
        self.error = ""
        self.model: Any = None
        self._tokens: CodeTokens | None = None
        slots = 0 if settings.naive else settings.kv_cache_slots
        self.kv = KVSlots(slots, settings.kv_cache_max_tokens)
        self.load_seconds = 0.0
        self.last_forward_seconds = 0.0
        """Duration of the latest forward pass (a cancel waits for at most this one)."""

    @property
    def tokens(self) -> CodeTokens:
        if self._tokens is None:
            raise RuntimeError("model not loaded")
        return self._tokens

    @property
    def supports_infill(self) -> bool:
        return self._tokens is not None and self._tokens.infill is not None

    @property
    def context_limit(self) -> int:
        limit = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)
        return (
            min(self.settings.max_context_tokens, limit)
            if limit
            else self.settings.max_context_tokens
        )

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    def load(self, progress: ProgressCallback) -> None:
        self.state = "loading"
        started = time.perf_counter()
        try:
            hub_offline(self.settings.local_files_only)
            path = resolve_model(self.settings.model)
            progress(f"Loading tokenizer of {self.settings.model}", 5)
            self._tokens = CodeTokens(
                load_tokenizer(path, local_files_only=self.settings.local_files_only)
            )
            progress(f"Loading weights of {self.settings.model}", 15)
            self.model = AutoModelForCausalLM.from_pretrained(
                path,
                dtype=pick_dtype(self.settings.dtype),
                device_map=self.settings.device_map or None,
                quantization_config=quantization_config(self.settings.quantization),
                local_files_only=self.settings.local_files_only,
                low_cpu_mem_usage=True,
            )
            self.model.eval()
            progress("Warming up", 90)
            self._warm_up()
        except EngineLoadError as exc:
            self._fail(str(exc))
        except MemoryError:
            self._fail(
                f"Not enough memory to load model {self.settings.model!r}: close other "
                "programs, pick a smaller model, or use quantization=4bit"
            )
        except (OSError, ValueError, RuntimeError, ImportError, KeyError) as exc:
            hint = ""
            text = str(exc).lower()
            if self.settings.local_files_only and any(
                word in text for word in ("local", "offline", "cached files", "connect")
            ):
                hint = (
                    " (local_files_only is on: download the model first, e.g. "
                    f"`hf download {self.settings.model}`, or set local_files_only=false)"
                )
            self._fail(f"Could not load model {self.settings.model!r}: {exc}{hint}")
        self.load_seconds = time.perf_counter() - started
        self.state = "ready"
        progress("Ready", 100)

    def _fail(self, message: str) -> None:
        self.state = "error"
        self.error = message
        self.model = None
        raise EngineLoadError(message)

    def _warm_up(self) -> None:
        bos = self.tokens.bos_id if self.tokens.bos_id is not None else 0
        with torch.inference_mode():
            self.model(input_ids=torch.tensor([[bos]], device=self.device), use_cache=False)

    def close(self) -> None:
        self.kv.clear()
        self.model = None
        self._tokens = None
        self.state = "idle"
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _forward(self, ids: list[int], cache: DynamicCache) -> torch.Tensor:
        """Extend ``cache`` by ``ids``; logits of the last position only."""
        started = time.perf_counter()
        out = self.model(
            input_ids=torch.tensor([ids], device=self.device),
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.last_forward_seconds = time.perf_counter() - started
        return out.logits[0, -1]

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> GenerationResult:
        if self.model is None:
            return GenerationResult("", "error")
        prompt = request.prompt_ids
        result = GenerationResult("", "length", prompt_tokens=len(prompt))
        if cancel.is_set():
            result.finish_reason = "cancelled"
            return result
        tokens = self.tokens
        self.last_forward_seconds = 0.0
        cache, reused = self.kv.take(request.session, prompt)
        if cache is None:
            cache = DynamicCache(config=self.model.config)
        result.reused_prompt_tokens = reused
        in_cache = list(prompt[:reused])
        chunk = self.settings.prefill_chunk_tokens
        stop_ids = {i for i in (tokens.eos_id,) if i is not None}
        if tokens.infill is not None:
            stop_ids.add(tokens.infill.eot_id)
        banned = torch.tensor(
            [i for i in tokens.special_ids if i not in stop_ids and i < tokens.vocab_size],
            dtype=torch.long,
            device=self.device,
        )
        generator = torch.Generator().manual_seed(request.seed)
        generated: list[int] = []
        started = time.perf_counter()
        keep_cache = False
        try:
            with torch.inference_mode():
                logits: torch.Tensor | None = None
                for start in range(reused, len(prompt), chunk):
                    if cancel.is_set():
                        # Report the work done: the prompt tokens now in the cache.
                        result.prompt_tokens = len(in_cache)
                        result.finish_reason = "cancelled"
                        return result
                    piece = list(prompt[start : start + chunk])
                    logits = self._forward(piece, cache)
                    in_cache.extend(piece)
                result.prefill_seconds = time.perf_counter() - started
                decode_started = time.perf_counter()
                assert logits is not None
                for _ in range(request.max_new_tokens):
                    if cancel.is_set():
                        result.finish_reason = "cancelled"
                        break
                    logits = logits[: tokens.vocab_size]
                    if len(banned):
                        logits[banned] = float("-inf")
                    token = sample_next(logits, request.temperature, request.top_p, generator)
                    if token in stop_ids:
                        result.finish_reason = "eot"
                        break
                    generated.append(token)
                    text = tokens.decode_continuation(generated)
                    cut = text_stop_index(text, request.stop_sequences)
                    if cut is not None:
                        result.text = text[:cut]
                        result.finish_reason = "stop"
                        break
                    if request.is_done is not None and request.is_done(text):
                        result.finish_reason = "stop"
                        break
                    if len(generated) == request.max_new_tokens:
                        break
                    logits = self._forward([token], cache)
                    in_cache.append(token)
                result.decode_seconds = time.perf_counter() - decode_started
            keep_cache = True
        finally:
            # After an exception the cache may hold a half-written chunk: never reuse it.
            if keep_cache or result.finish_reason == "cancelled":
                self.kv.put(request.session, in_cache, cache)
        result.generated_tokens = len(generated)
        result.token_ids = generated
        if result.finish_reason != "stop":
            result.text = tokens.decode_continuation(generated)
        if result.finish_reason == "cancelled":
            result.text = ""
        return result
