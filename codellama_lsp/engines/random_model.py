"""Random-weight Llama models of a chosen size (``random:hidden=H,layers=L``), for speed and
memory tests: the demo tokenizer with new weights. No imports of the model names or the demo
code: both use this. The demo model's training (:mod:`codellama_lsp.demo.model`) starts from
the same configuration."""

from __future__ import annotations

import math
import os
from pathlib import Path


def default_heads(hidden: int) -> int:
    for head_dim in (64, 32, 16):
        if hidden % head_dim == 0:
            return max(1, hidden // head_dim)
    return 1


def llama_config(
    vocab_size: int,
    *,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    intermediate_size: int | None,
    bos_id: int,
    eos_id: int,
) -> object:
    from transformers import LlamaConfig

    inter = intermediate_size or int(math.ceil(hidden_size * 8 / 3 / 32) * 32)
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=inter,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=16384,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        tie_word_embeddings=True,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=None,
    )


def build_random_model(
    out_dir: Path,
    *,
    hidden_size: int,
    num_layers: int,
    num_heads: int = 0,
    intermediate_size: int | None = None,
    seed: int = 0,
    tokenizer_dir: Path,
) -> Path:
    """Random-weight Llama with the tokenizer of ``tokenizer_dir`` (the demo's), for
    timing/memory tests at a chosen size."""
    import torch
    from transformers import LlamaForCausalLM

    from codellama_lsp.engines.tokenization import CodeTokens, load_tokenizer

    tok = load_tokenizer(str(tokenizer_dir))
    codes = CodeTokens(tok)
    config = llama_config(
        codes.vocab_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads or default_heads(hidden_size),
        intermediate_size=intermediate_size,
        bos_id=int(codes.bos_id or 1),
        eos_id=int(codes.eos_id or 2),
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)  # type: ignore[arg-type]
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + f".tmp{os.getpid()}")
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    (tmp / "README.md").write_text(
        f"Random-weight Llama (hidden={hidden_size}, layers={num_layers}, seed={seed}) with the"
        " codellama-lsp demo tokenizer. For speed and memory tests only: its output is noise.\n"
    )
    if out_dir.exists():
        import shutil

        shutil.rmtree(tmp)
        return out_dir
    tmp.rename(out_dir)
    return out_dir
