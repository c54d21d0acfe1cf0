"""The engine's KV cache (reserved room, views) computes what transformers' DynamicCache does."""

from __future__ import annotations

import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

from codellama_lsp.engines.kv_cache import RESERVE_TOKENS, ReservedLayer, new_kv_cache


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
    )
    return LlamaForCausalLM(config).eval()


def run(model: LlamaForCausalLM, cache: DynamicCache) -> list[torch.Tensor]:
    """Prefill, decode, roll back (as a rejected draft), decode past the reserved room."""
    ids = torch.randint(3, 300, (1, 700), generator=torch.Generator().manual_seed(1))
    seen = []
    with torch.inference_mode():

        def feed(piece: torch.Tensor) -> None:
            seen.append(model(input_ids=piece, cache=cache, use_cache=True).logits)

        feed(ids[:, :300])  # prefill: the room is allocated
        for n in range(300, 305):
            feed(ids[:, n : n + 1])  # decode steps
        feed(ids[:, 305:310])  # a verification pass over five drafted tokens...
        cache.crop(-4)  # ...of which one is kept
        for n in range(306, 306 + RESERVE_TOKENS + 20):
            feed(ids[:, n : n + 1])  # on past the end of the reserved room
    return seen


def test_same_logits_as_dynamic_cache_through_decode_rollback_and_growth() -> None:
    model = tiny_llama()
    reserved = new_kv_cache(model.config)
    assert all(isinstance(layer, ReservedLayer) for layer in reserved.layers)
    expected, got = run(model, DynamicCache(config=model.config)), run(model, reserved)
    assert len(expected) == len(got)
    for a, b in zip(expected, got, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert reserved.get_seq_length() == 306 + RESERVE_TOKENS + 20
