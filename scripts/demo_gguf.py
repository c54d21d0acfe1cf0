"""Convert the demo model to GGUF for llama.cpp (cached by the demo model's content).

Usage: python scripts/demo_gguf.py DEST   (DEST made by scripts/setup_llama_cpp.sh); prints the
path of the GGUF file. Runs llama.cpp's own converter (``convert_hf_to_gguf.py`` from the
llama-cpp-python sdist in DEST) on the project's interpreter.

The converter is given the demo model with one change: its tokenizer without ``<FILL_ME>``.
That token is transformers' text marker for "infill here", never a model input: it sits at id
8000, outside the model's 8000-row embedding, so a GGUF vocabulary that kept it would have one
token more than the embedding has rows and llama.cpp refuses to load it. Real Code Llama
tokenizers keep ``<FILL_ME>`` out of the vocabulary in the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from codellama_lsp.demo_model import DEMO_MODEL_NAME, resolve_model

MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors")


def demo_gguf_path(dest: Path, model: Path) -> Path:
    """Where the GGUF of this exact demo model lives in the cache."""
    digest = hashlib.sha256()
    for name in (*MODEL_FILES, "tokenizer.json", "tokenizer_config.json"):
        digest.update((model / name).read_bytes())
    return dest / "gguf" / f"demo-{digest.hexdigest()[:12]}.gguf"


def stage_for_converter(model: Path, stage: Path) -> None:
    """``stage``: the model's files, with the tokenizer cut to the model's vocabulary size."""
    vocab_size = json.loads((model / "config.json").read_text())["vocab_size"]
    for name in MODEL_FILES:
        (stage / name).symlink_to(model / name)
    tokenizer = json.loads((model / "tokenizer.json").read_text(encoding="utf-8"))
    dropped = {t["content"] for t in tokenizer["added_tokens"] if t["id"] >= vocab_size}
    tokenizer["added_tokens"] = [t for t in tokenizer["added_tokens"] if t["id"] < vocab_size]
    (stage / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    config = json.loads((model / "tokenizer_config.json").read_text(encoding="utf-8"))
    for key in ("extra_special_tokens", "additional_special_tokens"):
        if isinstance(config.get(key), list):
            config[key] = [t for t in config[key] if t not in dropped]
    if config.get("fill_token") in dropped:
        config["fill_token"] = None  # absent, CodeLlamaTokenizer would add its default again
        config.get("model_specific_special_tokens", {}).pop("fill_token", None)
    (stage / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False))


def convert(dest: Path) -> Path:
    model = Path(resolve_model(DEMO_MODEL_NAME))
    out = demo_gguf_path(dest, model)
    if out.exists():
        return out
    (source,) = dest.glob("llama_cpp_python-*/vendor/llama.cpp")
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(source / "gguf-py"), str(dest / "converter-packages")]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp)
        stage_for_converter(model, stage)
        part = out.with_suffix(".part")
        command = [sys.executable, str(source / "convert_hf_to_gguf.py"), str(stage)]
        done = subprocess.run(
            [*command, "--outfile", str(part), "--outtype", "f16"],
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            sys.exit(f"convert_hf_to_gguf.py failed:\n{done.stderr[-3000:]}")
        part.rename(out)
    return out


if __name__ == "__main__":
    print(convert(Path(sys.argv[1]).resolve()))
