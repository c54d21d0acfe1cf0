"""``codellama-lsp check``: a few lines on what is missing, and exit status 1 when the model
cannot load (issue 16). Runs the real command."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support import CLI
from tests.support.model_servers import scripted_model_server

SHAPE_70B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 8192,
    "num_hidden_layers": 80,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "intermediate_size": 28672,
    "vocab_size": 32016,
}


def check(*args: str) -> tuple[int, str]:
    out = subprocess.run(
        [*CLI, "check", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return out.returncode, out.stdout + out.stderr


def test_demo_model_is_ready_to_load() -> None:
    code, text = check("--model", "demo", "--backend", "local")
    assert code == 0, text
    assert "torch " in text and "model 'demo'" in text and text.rstrip().endswith("ready to load")


def test_missing_weights_name_the_download() -> None:
    code, text = check("--model", "codellama/CodeLlama-70b-Python-hf", "--backend", "local")
    assert code == 1, text
    assert "`hf download codellama/CodeLlama-70b-Python-hf`" in text
    assert "the model cannot load" in text


def test_memory_estimate_from_the_config(tmp_path: Path) -> None:
    """A 70B-shaped config with no weights: 68.98 B parameters; bf16 on this CPU-only box does
    not fit, and 4-bit says what it needs (bitsandbytes, a CUDA GPU)."""
    (tmp_path / "config.json").write_text(json.dumps(SHAPE_70B))
    code, text = check("--model", str(tmp_path), "--backend", "local", "--dtype", "bfloat16")
    assert code == 1, text
    assert "68.98 B parameters (from config.json)" in text
    assert "as bfloat16" in text and "try quantization=4bit" in text
    code, text = check("--model", str(tmp_path), "--backend", "local", "--quantization", "4bit")
    assert code == 1
    assert "as 4bit" in text and "needs a CUDA GPU" in text


def test_model_server_answers_or_not(tmp_path: Path) -> None:
    code, text = check("--backend", "http", "--server-url", "http://127.0.0.1:9")
    assert code == 1 and "no model server at http://127.0.0.1:9" in text
    with scripted_model_server("x = 1\n", tmp_path) as settings:
        url = settings["server_url"]
        code, text = check("--model", "demo", "--backend", "http", "--server-url", url)
    assert code == 0, text
    assert "serving demo" in text
