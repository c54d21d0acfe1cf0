"""Convert the demo model to GGUF for llama.cpp (cached by the demo model's content).

Usage: python scripts/demo_gguf.py DEST   (DEST made by scripts/setup_llama_cpp.sh); prints the
path of the GGUF file. Runs llama.cpp's own converter (``convert_hf_to_gguf.py`` from the
llama-cpp-python sdist in DEST) on the project's interpreter.

The converter gets the demo model plus one file it needs, a SentencePiece ``tokenizer.model``
(real Code Llama checkpoints ship one), made here from ``tokenizer.json``. Without it the
converter takes its ``tokenizer.json`` path, which gives every token the same score, and
llama.cpp, which merges by score, then tokenizes differently from the model's tokenizer
("▁dirname s" for "▁dir names"). Here each merged token scores minus its id, and the demo
tokenizer's ids follow its merge order, so llama.cpp merges in the same order as the
tokenizer. ``<FILL_ME>`` (transformers' infill marker, id 8000, outside the 8000-row
embedding) stays out, as in Code Llama's own ``tokenizer.model``.

The GGUF names its infilling tokens (``tokenizer.ggml.fim_pre/fim_suf/fim_mid/eot_token_id``,
written with the sdist's ``gguf_new_metadata.py``): llama.cpp finds ``▁<PRE>``/``▁<SUF>``/
``▁<MID>`` by their text, but looks for ``_<EOT>`` (an ASCII underscore) and so, without the
key, never ends a generation at Code Llama's ``▁<EOT>``. Real Code Llama GGUFs made by older
converters have the same gap: ``--override-kv tokenizer.ggml.eot_token_id=int:32010`` fixes
them (docs/deployment.md). Weights are kept in float32 (the model's float16 values, exactly):
llama.cpp then multiplies in float32 like the in-process engine on a CPU, so their greedy
outputs can be compared token for token (tests/test_llama_server.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from codellama_lsp.engines.model_names import DEMO_MODEL_NAME, resolve_model

MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors")
FORMAT = "3"  # bump when the conversion changes: the cached GGUF is remade
NAME = "codellama-demo"
"""File names ``codellama-demo-<digest>.gguf`` (format 2 wrote ``demo-…``: left to it)."""


def demo_gguf_path(dest: Path, model: Path) -> Path:
    """Where the GGUF of this exact demo model lives in the cache."""
    digest = hashlib.sha256(FORMAT.encode())
    for name in (*MODEL_FILES, "tokenizer.json", "tokenizer_config.json"):
        digest.update((model / name).read_bytes())
    return dest / "gguf" / f"{NAME}-{digest.hexdigest()[:12]}.gguf"


def sentencepiece_model(model: Path) -> bytes:
    """A SentencePiece BPE model with the tokenizer's pieces, in id order, scored by merge rank."""
    from sentencepiece import sentencepiece_model_pb2 as spm

    vocab_size = json.loads((model / "config.json").read_text())["vocab_size"]
    tokenizer = json.loads((model / "tokenizer.json").read_text(encoding="utf-8"))
    special = {t["id"] for t in tokenizer["added_tokens"] if t["special"]}
    unk = tokenizer["model"]["vocab"][tokenizer["model"]["unk_token"]]
    kind = spm.ModelProto.SentencePiece
    proto = spm.ModelProto()
    pieces = sorted(tokenizer["model"]["vocab"].items(), key=lambda item: item[1])
    for piece, token_id in pieces[:vocab_size]:
        entry = proto.pieces.add(piece=piece, score=-float(token_id), type=kind.NORMAL)
        if token_id == unk:
            entry.type, entry.score = kind.UNKNOWN, 0.0
        elif token_id in special:
            entry.type, entry.score = kind.CONTROL, 0.0
        elif re.fullmatch(r"<0x[0-9A-F]{2}>", piece):
            entry.type, entry.score = kind.BYTE, 0.0
    proto.trainer_spec.model_type = spm.TrainerSpec.BPE
    proto.trainer_spec.vocab_size = len(proto.pieces)
    proto.trainer_spec.byte_fallback = True
    proto.trainer_spec.unk_id, proto.trainer_spec.bos_id, proto.trainer_spec.eos_id = unk, 1, 2
    proto.trainer_spec.pad_id = -1
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = True
    proto.normalizer_spec.remove_extra_whitespaces = False
    proto.normalizer_spec.escape_whitespaces = True
    return bytes(proto.SerializeToString())


def stage_for_converter(model: Path, stage: Path) -> None:
    """``stage``: the model's files (linked) and a ``tokenizer.model`` for the converter."""
    for name in (*MODEL_FILES, "tokenizer.json", "tokenizer_config.json"):
        (stage / name).symlink_to(model / name)
    (stage / "tokenizer.model").write_bytes(sentencepiece_model(model))


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
    sys.path.insert(0, str(dest / "converter-packages"))
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / "model"
        stage.mkdir()
        stage_for_converter(model, stage)
        converted, part = Path(tmp) / "converted.gguf", out.with_suffix(".part")
        command = [sys.executable, str(source / "convert_hf_to_gguf.py"), str(stage)]
        run([*command, "--outfile", str(converted), "--outtype", "f32"], env)
        metadata = [sys.executable, str(source / "gguf-py/gguf/scripts/gguf_new_metadata.py")]
        run([*metadata, str(converted), str(part), "--force", *fim_token_args(model)], env)
        part.rename(out)
    for stale in out.parent.glob(f"{NAME}-*.gguf"):
        if stale != out:
            stale.unlink()  # an older demo model or conversion
    return out


def fim_token_args(model: Path) -> list[str]:
    """``--special-token-by-id`` arguments naming the model's four infilling tokens."""
    tokenizer = json.loads((model / "tokenizer.json").read_text(encoding="utf-8"))
    ids = {t["content"]: t["id"] for t in tokenizer["added_tokens"]}
    args: list[str] = []
    for name, piece in (("fim_pre", "▁<PRE>"), ("fim_suf", "▁<SUF>"), ("fim_mid", "▁<MID>")):
        args += ["--special-token-by-id", name, str(ids[piece])]
    return [*args, "--special-token-by-id", "eot", str(ids["▁<EOT>"])]


def run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{Path(command[1]).name} failed:\n{done.stderr[-3000:]}")


if __name__ == "__main__":
    print(convert(Path(sys.argv[1]).resolve()))
