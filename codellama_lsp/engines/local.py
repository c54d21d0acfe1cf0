"""The in-process engine: a transformers causal LM loaded once, and a small generation loop.

The loop is written out (as in gpt-fast) instead of calling ``model.generate`` because we need
things ``generate`` does not give together: prefill in chunks with a stop-flag check between
them, a stop-flag check before every decode step, KV-cache reuse across requests that share a
prompt prefix (see :class:`KVSlots`), and speculative decoding with drafts from the editor's
previous suggestion, the prompt and other documents, or a draft model. ``generate`` is the
sequence take KV slot → ``prefill`` → decode steps (``decode_one_token`` or ``verify``, see
:mod:`~codellama_lsp.engines.decoding`) → stop checks → put the slot back.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import torch
from cachetools import LRUCache
from transformers import AutoModelForCausalLM, DynamicCache

from codellama_lsp.config import Settings
from codellama_lsp.engines.base import (
    UNKNOWN_CONTEXT_LIMIT,
    ConnectionListener,
    EngineLoadError,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
)
from codellama_lsp.engines.decoding import (
    DraftBudget,
    PassCosts,
    Sampling,
    decode_one_token,
    prefill,
    timed,
    verify,
)
from codellama_lsp.engines.drafts import (
    SOURCES,
    Draft,
    DraftSource,
    LookupDraft,
    ModelDraft,
    SuggestionDraft,
    common_prefix_length,
)
from codellama_lsp.engines.kv_cache import new_kv_cache
from codellama_lsp.engines.model_names import resolve_model
from codellama_lsp.engines.stops import stopped_text
from codellama_lsp.engines.tokenization import CodeTokens, load_tokenizer

log = logging.getLogger(__name__)


@dataclass
class KVSlot:
    """A KV cache and the exact token ids whose keys/values it holds."""

    ids: list[int]
    cache: DynamicCache


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

    def token_ids(self) -> list[list[int]]:
        """The ids of every slot held (other sessions' prompts: text to look drafts up in)."""
        with self._lock:
            return [slot.ids for slot in self._slots.values()]

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


def vocabulary_mismatch(target: CodeTokens, draft: CodeTokens) -> str:
    """Why ``draft``'s token ids do not mean the same text as ``target``'s ('' if they do).

    Every id both vocabularies have must be the same piece, and the draft must cover the
    target's ordinary tokens (it may lack the target's extra special ones, e.g. FIM tokens:
    a draft never proposes those, the target still may).
    """
    mine = target.tokenizer.get_vocab()
    theirs = draft.tokenizer.get_vocab()
    by_id = {i: piece for piece, i in theirs.items()}
    shared = min(target.vocab_size, draft.vocab_size)
    ordinary = [i for i in range(target.vocab_size) if i not in target.special_ids]
    if ordinary and max(ordinary) >= draft.vocab_size:
        return f"{draft.vocab_size} tokens for {target.vocab_size}"
    for piece, i in mine.items():
        if i < shared and by_id.get(i) != piece:
            return f"token {i} is {piece!r} in the model but {by_id.get(i)!r} in the draft"
    return ""


class LocalEngine:
    """A transformers model kept in memory for the life of the server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = settings.model
        self.model: Any = None
        self._tokens: CodeTokens | None = None
        self.kv = KVSlots(settings.kv_cache_slots, settings.kv_cache_max_tokens)
        self.last_step_seconds = 0.0
        """Duration of the latest forward pass (a cancel waits for at most this one)."""
        self.draft_model: Any = None
        self.draft_kv = KVSlots(settings.kv_cache_slots, settings.kv_cache_max_tokens)
        self.draft_step_seconds = 0.0
        self.draft_catch_up_seconds = 0.0
        self.warning = ""
        """Why the ``draft_model`` setting is not in use (empty when it is, or none is set)."""
        self.on_connection_change: ConnectionListener | None = None  # never: no connection
        self.pass_costs = PassCosts()
        self.budgets = {name: DraftBudget(settings.speculative_max_draft) for name in SOURCES}
        self.adaptive_draft = True
        """False: always draft ``max_draft`` tokens (benchmarks that test the mechanics)."""
        self.draft_sources: tuple[str, ...] = SOURCES
        """Draft sources asked, in this order (benchmarks and tests narrow it down)."""

    @property
    def tokens(self) -> CodeTokens:
        if self._tokens is None:
            raise RuntimeError("model not loaded")
        return self._tokens

    @property
    def reuses_prompts(self) -> bool:
        return self.kv.max_slots > 0

    def cache_stats(self) -> dict[str, int]:
        return {"kv_slots": len(self.kv), "kv_cached_tokens": self.kv.total_tokens}

    @property
    def context_limit(self) -> int:
        """The model's own limit; ``max_context_tokens`` is applied per request by the caller
        (from the live settings, so raising it takes effect without a reload)."""
        limit = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)
        return limit or UNKNOWN_CONTEXT_LIMIT

    @property
    def device(self) -> torch.device:
        device: torch.device = self.model.get_input_embeddings().weight.device
        return device

    def load(self, progress: ProgressCallback) -> None:
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
            if self.settings.draft_model:
                progress(f"Loading draft model {self.settings.draft_model}", 92)
                self._load_draft_model()
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
        progress("Ready", 100)

    def _fail(self, message: str) -> None:
        self.model = None
        raise EngineLoadError(message)

    def _warm_up(self) -> None:
        bos = self.tokens.bos_id if self.tokens.bos_id is not None else 0
        with torch.inference_mode():
            self.model(input_ids=torch.tensor([[bos]], device=self.device), use_cache=False)

    def _load_draft_model(self) -> None:
        """Load ``draft_model`` beside the target; on any failure serve without it and say why."""
        name = self.settings.draft_model
        self.warning = ""
        try:
            path = resolve_model(name)
            draft_tokens = CodeTokens(
                load_tokenizer(path, local_files_only=self.settings.local_files_only)
            )
            mismatch = vocabulary_mismatch(self.tokens, draft_tokens)
            if mismatch:
                raise ValueError(
                    f"its tokenizer differs from {self.settings.model!r}'s: {mismatch}"
                )
            model = AutoModelForCausalLM.from_pretrained(
                path,
                dtype=pick_dtype(self.settings.dtype),
                device_map=self.settings.device_map or None,
                local_files_only=self.settings.local_files_only,
                low_cpu_mem_usage=True,
            )
            model.eval()
        except (
            MemoryError,
            EngineLoadError,
            OSError,
            ValueError,
            RuntimeError,
            ImportError,
            KeyError,
        ) as exc:
            self.warning = (
                f"Draft model {name!r} not used (completions still work, without it): {exc}"
            )
            log.warning("%s", self.warning)
        if self.warning:
            gc.collect()  # outside the except block: no traceback holds half-loaded weights
            return
        self.draft_model = model

    def close(self) -> None:
        self.kv.clear()
        self.draft_kv.clear()
        self.draft_model = None
        self.model = None
        self._tokens = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _forward(self, ids: list[int], cache: DynamicCache, keep: int = 1) -> torch.Tensor:
        """Extend ``cache`` by ``ids``; logits of the last ``keep`` positions."""
        started = time.perf_counter()
        out = self.model(
            input_ids=torch.tensor([ids], device=self.device),
            cache=cache,
            use_cache=True,
            logits_to_keep=keep,
        )
        self.last_step_seconds = time.perf_counter() - started
        logits: torch.Tensor = out.logits[0, -keep:]
        return logits

    def _draft_forward(self, ids: list[int], cache: DynamicCache, keep: int = 1) -> torch.Tensor:
        out = self.draft_model(
            input_ids=torch.tensor([ids], device=self.draft_model.device),
            cache=cache,
            use_cache=True,
            logits_to_keep=keep,
        )
        logits: torch.Tensor = out.logits[0, -keep:].to(self.device)
        return logits

    def _sampling(self, request: GenerationRequest) -> Sampling:
        tokens = self.tokens
        banned = [
            i for i in tokens.special_ids if i not in self.tokens.stop_ids and i < tokens.vocab_size
        ]
        return Sampling(
            temperature=request.temperature,
            top_p=request.top_p,
            vocab_size=tokens.vocab_size,
            banned=torch.tensor(banned, dtype=torch.long, device=self.device),
            seed=request.seed,
        )

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> GenerationResult:
        """Take a KV slot → prefill in chunks → decode → put the slot back."""
        if self.model is None:
            return GenerationResult("", "error")
        prompt = request.prompt_ids
        result = GenerationResult("", "length", prompt_tokens=len(prompt))
        if cancel.is_set():
            result.finish_reason = "cancelled"
            return result
        self.last_step_seconds = 0.0
        cache, reused = self.kv.take(request.session, prompt)
        if cache is None:
            cache = new_kv_cache(self.model.config)
        result.reused_prompt_tokens = reused
        in_cache = list(prompt[:reused])
        generated: list[int] = []
        sampling = self._sampling(request)
        model_draft = self._take_model_draft(request, sampling, cancel)
        started = time.perf_counter()
        keep_cache = False
        try:
            with torch.inference_mode():
                chunk = self.settings.prefill_chunk_tokens
                logits = prefill(self._forward, prompt[reused:], cache, chunk, cancel, in_cache)
                if logits is None:
                    # Report the work done: the prompt tokens now in the cache.
                    result.prompt_tokens = len(in_cache)
                    result.finish_reason = "cancelled"
                    return result
                result.prefill_seconds = time.perf_counter() - started
                decode_started = time.perf_counter()
                if request.max_new_tokens == 0 and model_draft is not None:
                    model_draft.catch_up(prompt)  # background prefill: the draft's too
                self._decode(
                    request,
                    logits,
                    cache,
                    in_cache,
                    generated,
                    sampling,
                    model_draft,
                    cancel,
                    result,
                )
                result.decode_seconds = time.perf_counter() - decode_started
            keep_cache = True
        finally:
            # After an exception the cache may hold a half-written chunk: never reuse it.
            keep_cache = keep_cache or result.finish_reason == "cancelled"
            self._put_back(request.session, in_cache, cache, model_draft, keep_cache)
        result.generated_tokens = len(generated)
        result.token_ids = generated
        if result.finish_reason != "stop":
            result.text = self.tokens.decode_continuation(generated)
        if result.finish_reason == "cancelled":
            result.text = ""
        return result

    def _put_back(
        self,
        session: str,
        in_cache: list[int],
        cache: DynamicCache,
        model_draft: ModelDraft | None,
        keep: bool,
    ) -> None:
        """Return the KV caches to their slots (when ``keep``) and note the draft's timings."""
        if keep:
            self.kv.put(session, in_cache, cache)
            if model_draft is not None:
                self.draft_kv.put(session, model_draft.in_cache, model_draft.cache)
        if model_draft is not None:
            self.draft_step_seconds = model_draft.step_seconds
            self.draft_catch_up_seconds = model_draft.catch_up_seconds

    def _decode(
        self,
        request: GenerationRequest,
        logits: torch.Tensor,
        cache: DynamicCache,
        in_cache: list[int],
        generated: list[int],
        sampling: Sampling,
        model_draft: ModelDraft | None,
        cancel: threading.Event,
        result: GenerationResult,
    ) -> None:
        """Choose a token → stop checks → draft → one forward pass (a plain step or a
        verification) → … ; every token, drafted or not, passes the same stop checks."""
        sources = self._draft_sources(request, model_draft)
        forward = timed(self._forward, self.pass_costs)
        prompt_length = len(request.prompt_ids)
        finish: FinishReason | None = None
        while len(generated) < request.max_new_tokens:
            if cancel.is_set():
                result.finish_reason = "cancelled"
                return
            token = sampling.sample(logits, len(generated))
            finish = self._append(token, generated, request, result)
            if finish is not None:
                break
            draft = self._draft([*request.prompt_ids, *generated], sources, request, generated)
            result.decode_passes += 1
            if draft is None:
                logits = decode_one_token(forward, token, cache, in_cache)
                continue
            verified = verify(forward, token, draft, cache, in_cache, sampling, len(generated))
            self._count(result, draft, len(verified.tokens))
            for kept in verified.tokens:
                finish = self._append(kept, generated, request, result)
                if finish is not None:
                    break
            if finish is not None:
                break
            logits = verified.next_logits
        if finish is not None:
            result.finish_reason = finish
        # Keep the KV cache exactly as plain decoding leaves it: every token fed but the last
        # one appended (a stop token is never appended), so verified tokens past a stop go.
        fed = prompt_length + len(generated) - (0 if finish == "eot" else 1)
        drop = len(in_cache) - max(fed, prompt_length)
        if drop > 0:
            cache.crop(-drop)
            del in_cache[-drop:]

    def _append(
        self,
        token: int,
        generated: list[int],
        request: GenerationRequest,
        result: GenerationResult,
    ) -> FinishReason | None:
        """Add one token and run the stop checks; the finish reason, or None to go on."""
        if token in self.tokens.stop_ids:
            return "eot"
        generated.append(token)
        text = self.tokens.decode_continuation(generated)
        kept = stopped_text(text, request)
        if kept is not None:
            result.text = kept
            return "stop"
        if len(generated) == request.max_new_tokens:
            return "length"
        return None

    def _draft_sources(
        self, request: GenerationRequest, model_draft: ModelDraft | None
    ) -> list[DraftSource]:
        """The draft sources of this request, cheapest first (none when speculation is off)."""
        max_draft = self._max_draft(request)
        if max_draft <= 0 or request.max_new_tokens <= 1:
            return []
        for budget in self.budgets.values():
            budget.max_draft = max_draft
        sources: list[DraftSource] = []
        for name in self.draft_sources:
            if name == "previous" and request.draft_text:
                ids = self.tokens.encode(request.draft_text, leading_space=False)
                sources.append(SuggestionDraft(ids, len(request.prompt_ids)))
            elif name == "lookup":
                sources.append(LookupDraft(self.kv.token_ids))
            elif name == "draft_model" and model_draft is not None:
                sources.append(model_draft)
        return sources

    def _max_draft(self, request: GenerationRequest) -> int:
        if request.max_draft is not None:
            return request.max_draft
        return self.settings.speculative_max_draft if self.settings.speculative else 0

    def _draft(
        self,
        seq: list[int],
        sources: list[DraftSource],
        request: GenerationRequest,
        generated: list[int],
    ) -> Draft | None:
        """The first source's draft worth verifying, with k set by measured acceptance/cost."""
        room = request.max_new_tokens - len(generated)
        for source in sources:
            budget = self.budgets[source.name]
            step, setup = 0.0, 0.0
            if isinstance(source, ModelDraft):
                step = source.step_seconds
                behind = source.behind(seq)
                if behind > 8:  # its prefill, paid once, spread over the tokens still to come
                    setup = behind * source.catch_up_seconds / room
            k = (
                budget.choose(self.pass_costs, step, setup)
                if self.adaptive_draft
                else budget.max_draft
            )
            k = min(k, room)
            if k <= 0:
                continue
            draft = source.propose(seq, k)
            if draft is not None and draft.ids:
                return draft
        return None

    def _count(self, result: GenerationResult, draft: Draft, accepted: int) -> None:
        self.budgets[draft.source].update(len(draft.ids), accepted)
        for stats, amount in (
            (result.drafted, len(draft.ids)),
            (result.accepted_drafts, accepted),
            (result.verify_passes, 1),
        ):
            stats[draft.source] = stats.get(draft.source, 0) + amount

    def _take_model_draft(
        self, request: GenerationRequest, sampling: Sampling, cancel: threading.Event
    ) -> ModelDraft | None:
        """The draft model with its KV slot for this session (None without a draft model)."""
        if self.draft_model is None or self._max_draft(request) <= 0:
            return None
        cache, reused = self.draft_kv.take(request.session, request.prompt_ids)
        if cache is None:
            cache = new_kv_cache(self.draft_model.config)

        def pick(logits: torch.Tensor, index: int) -> int:
            """The draft model's guess at sequence index ``index``, coupled to the target."""
            vocab = sampling.vocab_size
            if logits.shape[-1] < vocab:  # a draft without the target's extra (FIM) tokens
                logits = torch.nn.functional.pad(logits, (0, vocab - logits.shape[-1]), value=-1e9)
            return sampling.sample(logits, index - len(request.prompt_ids))

        return ModelDraft(
            self._draft_forward,
            cache,
            list(request.prompt_ids[:reused]),
            pick,
            self.settings.prefill_chunk_tokens,
            cancel,
            self.draft_step_seconds,
            self.draft_catch_up_seconds,
        )
