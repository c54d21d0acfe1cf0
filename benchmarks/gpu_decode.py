"""Decode speed of a CodeLlama-70B-shaped model on one GPU, against the memory-bandwidth floor.

Batch-1 decoding reads every weight once per token, so the floor is weight bytes ÷ device
memory bandwidth (measured here with a device-to-device copy). The model has the 70B's shape
(hidden 8192, 64 heads, 8 KV heads, intermediate 28672, vocab 32016, rope theta 1e6) with
random bf16 weights built on the device (no download, no checkpoint): all 80 layers if they
fit, else as many as fit, and then the 80-layer figures are extrapolated per layer from two
depths (t(L) = fixed + L × per_layer, stated in the output). Reported:

* ms per decode token (plain steps after a 1,500-token prompt, the engine's KV cache) vs the
  floor, and with transformers' ``DynamicCache`` (which copies the cache at every step);
* prefill tokens/s at 1,500 tokens (one pass, and in the engine's 256-token chunks);
* first-token time with KV reuse (1,500 cached + 20 new tokens) vs a cold prompt, through
  ``LocalEngine.generate`` (the real decode loop, the demo tokenizer standing in);
* speculative decoding: the cost of a pass over n tokens relative to one (what a verification
  costs), the speed-up this gives at the acceptance measured on real code
  (``benchmarks/speculative.py``), and a run of the real loop with an exact draft.

Runs with the GPU machine's own torch/transformers, no downloads, in well under 8 minutes:

    python -m benchmarks.gpu_decode            # on an 80-141 GB GPU
    python -m benchmarks.gpu_decode --smoke    # tiny config on CPU (CI: tests/test_gpu_decode.py)
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from codellama_lsp.config import Settings
from codellama_lsp.engines.base import GenerationRequest
from codellama_lsp.engines.kv_cache import new_kv_cache
from codellama_lsp.engines.local import LocalEngine
from codellama_lsp.engines.model_names import demo_model_dir
from codellama_lsp.engines.tokenization import CodeTokens, load_tokenizer

LAYERS_70B = 80


@dataclass(frozen=True)
class Shape:
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    layers: int

    def layer_params(self) -> int:
        head_dim = self.hidden // self.heads
        attention = 2 * self.hidden * self.hidden + 2 * self.hidden * self.kv_heads * head_dim
        return attention + 3 * self.hidden * self.intermediate + 2 * self.hidden

    def other_params(self) -> int:
        return 2 * self.vocab * self.hidden + self.hidden  # embeddings, lm head, final norm


FULL = Shape(8192, 64, 8, 28672, 32016, LAYERS_70B)
SMOKE = Shape(64, 4, 2, 160, 32016, 4)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, repeat: int = 1) -> float:
    """Seconds per call (after one warm-up call)."""
    fn()
    sync(device)
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return (time.perf_counter() - started) / repeat


def copy_bandwidth(device: torch.device, gib: float) -> float:
    """Bytes/s moved by a device-to-device copy (each byte read once and written once: the
    memory traffic a weight read can at best reach)."""
    n = int(gib * 2**30) // 2
    src = torch.empty(n, dtype=torch.bfloat16, device=device)
    dst = torch.empty_like(src)
    seconds = timed(lambda: dst.copy_(src), device, repeat=5)
    return 2 * src.numel() * src.element_size() / seconds


def cache_kw() -> str:
    """transformers 5 calls the KV cache argument ``cache``; 4.x ``past_key_values``."""
    import inspect

    from transformers import LlamaForCausalLM

    params = inspect.signature(LlamaForCausalLM.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def step(model: Any, ids: torch.Tensor, cache: Any, keep: int = 1) -> torch.Tensor:
    """One forward pass extending ``cache`` by ``ids``; logits of the last ``keep``."""
    kwargs = {cache_kw(): cache}
    return model(input_ids=ids, use_cache=True, logits_to_keep=keep, **kwargs).logits


def build(shape: Shape, layers: int, device: torch.device, dtype: torch.dtype) -> Any:
    """A random-weight Llama of ``shape`` with ``layers`` layers, allocated on ``device``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        max_position_embeddings=16384,
        rope_theta=1_000_000.0,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    )
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, dtype=dtype)
    model.eval()
    with torch.no_grad():  # small weights keep 80 random layers finite
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.normal_(0.0, 0.006)
    return model


def fitting_layers(shape: Shape, device: torch.device, reserve_gib: float) -> int:
    if device.type != "cuda":
        return shape.layers
    free, _total = torch.cuda.mem_get_info(device)
    room = free - reserve_gib * 2**30 - shape.other_params() * 2
    return max(2, min(shape.layers, int(room // (shape.layer_params() * 2))))


def engine_for(model: Any, chunk: int) -> LocalEngine:
    """The real decode loop around ``model`` (the demo tokenizer stands in for Code Llama's:
    ids are only decoded for the stop checks)."""
    settings = Settings().merged(
        {"model": "demo", "temperature": 0, "prefill_chunk_tokens": chunk, "kv_cache_slots": 4}
    )
    engine = LocalEngine(settings)
    engine.model = model
    engine._tokens = CodeTokens(load_tokenizer(str(demo_model_dir())))
    engine.state = "ready"
    return engine


def decode_ms(
    model: Any, prompt: int, steps: int, device: torch.device, dynamic: bool = False
) -> float:
    """ms per plain decode step after ``prompt`` tokens, with the engine's KV cache (reserved
    room, ``engines/kv_cache.py``) or, ``dynamic``, transformers' ``DynamicCache``."""
    from transformers import DynamicCache

    ids = torch.randint(3, 8000, (1, prompt), device=device)
    with torch.inference_mode():
        cache = DynamicCache(config=model.config) if dynamic else new_kv_cache(model.config)
        token = step(model, ids, cache)[:, -1:].argmax(-1)
        sync(device)
        started = time.perf_counter()
        for _ in range(steps):
            token = step(model, token, cache)[:, -1:].argmax(-1)
        sync(device)
    return (time.perf_counter() - started) / steps * 1000


def pass_ms(model: Any, prompt: int, tokens: int, device: torch.device, repeat: int) -> float:
    """ms of one forward pass over ``tokens`` new tokens after ``prompt`` cached ones (the
    cache is cropped back after each pass, as a rejected verification does)."""
    from transformers import DynamicCache

    with torch.inference_mode():
        cache = DynamicCache(config=model.config)
        step(model, torch.randint(3, 8000, (1, prompt), device=device), cache)
        new = torch.randint(3, 8000, (1, tokens), device=device)

        def one() -> None:
            step(model, new, cache, tokens)
            cache.crop(-tokens)

        return timed(one, device, repeat=repeat) * 1000


def prefill_tps(model: Any, tokens: int, chunk: int, device: torch.device) -> float:
    from transformers import DynamicCache

    ids = torch.randint(3, 8000, (1, tokens), device=device)

    def run() -> None:
        cache = DynamicCache(config=model.config)
        for start in range(0, tokens, chunk):
            step(model, ids[:, start : start + chunk], cache)

    with torch.inference_mode():
        return tokens / timed(run, device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny config on CPU (CI)")
    parser.add_argument("--prompt", type=int, default=1500)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--reserve-gib", type=float, default=8.0, help="left for KV/activations")
    parser.add_argument("--max-layers", type=int, default=0, help="build at most this many")
    parser.add_argument("--acceptance", type=float, default=0.6, help="draft acceptance to project")
    args = parser.parse_args()
    smoke = args.smoke or not torch.cuda.is_available()
    if smoke and not args.smoke:
        print("no GPU: running the --smoke configuration", file=sys.stderr)
    shape = SMOKE if smoke else FULL
    device = torch.device("cpu" if smoke else "cuda")
    dtype = torch.float32 if smoke else torch.bfloat16
    prompt = 96 if smoke else args.prompt
    steps = 4 if smoke else args.steps
    repeat = 2 if smoke else 5
    started = time.perf_counter()
    lines = [
        f"device: {torch.cuda.get_device_name(device) if not smoke else 'cpu (smoke)'}, "
        f"torch {torch.__version__}"
    ]
    bandwidth = copy_bandwidth(device, 0.05 if smoke else 4.0)
    lines.append(f"device copy bandwidth (read + write): {bandwidth / 1e9:.0f} GB/s")

    if device.type == "cuda":
        torch.cuda.empty_cache()  # the copy buffers: free them before measuring free memory
    layers = fitting_layers(shape, device, args.reserve_gib)
    if args.max_layers:
        layers = min(layers, args.max_layers)
    model = build(shape, layers, device, dtype)
    bytes_per_param = 4 if smoke else 2
    weight_bytes = (shape.layer_params() * layers + shape.other_params()) * bytes_per_param
    lines.append(
        f"model: {layers}/{shape.layers} layers of the 70B shape, "
        f"{weight_bytes / 1e9:.1f} GB of weights (built in {time.perf_counter() - started:.0f} s)"
    )

    # Decode: at two depths when not all layers fit, for the per-layer extrapolation.
    ms_full = decode_ms(model, prompt, steps, device)
    ms_dynamic = decode_ms(model, prompt, steps, device, dynamic=True)
    floor = weight_bytes / bandwidth * 1000
    lines.append(
        f"decode: {ms_full:.2f} ms/token with {layers} layers; bandwidth floor "
        f"{floor:.2f} ms ({floor / ms_full:.0%} of the floor reached); with DynamicCache "
        f"{ms_dynamic:.2f} ms ({ms_full / ms_dynamic:.2f}× of it)"
    )
    if layers < shape.layers:
        half = max(1, layers // 2)
        kept = model.model.layers
        model.model.layers = kept[:half]
        model.config.num_hidden_layers = half
        ms_half = decode_ms(model, prompt, steps, device)
        model.model.layers = kept
        model.config.num_hidden_layers = layers
        per_layer = (ms_full - ms_half) / (layers - half)
        fixed = ms_full - per_layer * layers
        ms_80 = fixed + per_layer * shape.layers
        bytes_80 = (shape.layer_params() * shape.layers + shape.other_params()) * bytes_per_param
        floor_80 = bytes_80 / bandwidth * 1000
        lines.append(
            f"  extrapolated to {shape.layers} layers: t(L) = {fixed:.2f} + L × {per_layer:.3f} ms "
            f"(measured at L = {half} and {layers}) → {ms_80:.1f} ms/token vs floor "
            f"{floor_80:.1f} ms ({bytes_80 / 1e9:.0f} GB)"
        )

    tps_one = prefill_tps(model, prompt, prompt, device)
    tps_chunked = prefill_tps(model, prompt, 256, device)
    scale = layers / shape.layers
    lines.append(
        f"prefill of {prompt} tokens: {tps_one:.0f} tokens/s in one pass, {tps_chunked:.0f} "
        f"tokens/s in 256-token chunks"
        + (f" (×{scale:.2f} for {shape.layers} layers)" if layers < shape.layers else "")
    )

    # Verification cost: a pass over n tokens relative to a pass over one.
    base = pass_ms(model, prompt, 1, device, repeat)
    ratios = {n: pass_ms(model, prompt, n, device, repeat) / base for n in (2, 3, 5, 9)}
    lines.append(
        "pass over n tokens / pass over 1: "
        + ", ".join(f"n={n}: {r:.2f}×" for n, r in ratios.items())
    )
    alpha = args.acceptance
    best = max(((1 - alpha ** (k + 1)) / (1 - alpha) / ratios[k + 1], k) for k in (1, 2, 4, 8))
    lines.append(
        f"projected speculative speed-up at acceptance {alpha:.0%} (lookup drafts, no draft "
        f"model cost): {best[0]:.2f}× with k={best[1]}"
    )

    # The real loop: KV reuse and an exact draft (the previous suggestion, all accepted).
    engine = engine_for(model, 256)
    tokens = engine.tokens
    text_ids = [3 + (i * 7919) % 7000 for i in range(prompt)]
    first = tuple([1, *text_ids])
    new = 8 if smoke else 64
    cold_started = time.perf_counter()
    engine.generate(GenerationRequest(first, 1, 0.0, 1.0, session="a"), threading.Event())
    cold_ms = (time.perf_counter() - cold_started) * 1000
    extended = first + tuple(3 + (i * 104729) % 7000 for i in range(20))
    warm_started = time.perf_counter()
    warm = engine.generate(GenerationRequest(extended, 1, 0.0, 1.0, session="a"), threading.Event())
    warm_ms = (time.perf_counter() - warm_started) * 1000
    lines.append(
        f"first token, cold {len(first)}-token prompt: "
        f"{cold_ms:.0f} ms; with KV reuse "
        f"({warm.reused_prompt_tokens} cached + {len(extended) - warm.reused_prompt_tokens} new): "
        f"{warm_ms:.0f} ms"
    )
    plain_request = GenerationRequest(
        extended, new, 0.0, 1.0, session="b", max_draft=0, stop_sequences=()
    )
    plain = engine.generate(plain_request, threading.Event())
    hint = tokens.decode_continuation(plain.token_ids)
    engine.adaptive_draft = False
    spec = engine.generate(
        GenerationRequest(
            extended, new, 0.0, 1.0, session="b", draft_text=hint, max_draft=8, stop_sequences=()
        ),
        threading.Event(),
    )
    same = spec.token_ids == plain.token_ids
    lines.append(
        f"real loop, {plain.generated_tokens} tokens: plain {plain.decode_seconds * 1000:.0f} ms "
        f"({plain.decode_passes} passes); exact previous-suggestion draft, k=8: "
        f"{spec.decode_seconds * 1000:.0f} ms ({spec.decode_passes} passes, "
        f"{sum(spec.accepted_drafts.values())}/{sum(spec.drafted.values())} drafts kept) → "
        f"{plain.decode_seconds / max(spec.decode_seconds, 1e-9):.2f}× ; same tokens: {same}"
    )
    lines.append("static cache + torch.compile decode path: not implemented")
    lines.append(f"total {time.perf_counter() - started:.0f} s")
    print("\n".join(lines))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
