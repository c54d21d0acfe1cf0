"""``codellama-lsp check``: what this machine can run, and what is missing for the chosen model.

Someone with a GPU box should learn why a 70B will not load (no CUDA, no bitsandbytes, weights
not downloaded, not enough memory, no model server) in a few lines, before an editor is
involved. Nothing here loads weights: it reads versions, devices, the model's ``config.json``
and file sizes, and asks the model server's ``/health``. Exit status 1 when the model cannot
load (or, with ``backend = http``, no server answers).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from codellama_lsp.config import Settings
from codellama_lsp.engines.factory import LOCAL_EXTRA
from codellama_lsp.engines.model_family import code_llama_checkpoint
from codellama_lsp.engines.model_names import resolve_model

Verdict = Literal["ok", "info", "fail"]
BYTES_PER_PARAMETER = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0, "8bit": 1.0, "4bit": 0.56}
"""Weights in memory; NF4 with double quantization keeps ~4.5 bits a weight (norms and
embeddings stay in 16 bits), hence 0.56 bytes."""
OVERHEAD = 1.10
"""Activations, the CUDA context and allocator slack on top of the weights (a rule of thumb)."""
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


@dataclass(frozen=True)
class Finding:
    verdict: Verdict
    text: str

    def line(self) -> str:
        mark = {"ok": "ok  ", "info": "    ", "fail": "FAIL"}[self.verdict]
        return f"{mark} {self.text}"


def version_of(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def llama_parameters(config: dict[str, Any]) -> int:
    """Parameter count of a Llama-architecture ``config.json`` (embeddings, layers, head)."""
    hidden = int(config["hidden_size"])
    layers = int(config["num_hidden_layers"])
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    inter = int(config["intermediate_size"])
    vocab = int(config["vocab_size"])
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
    layer = attention + 3 * hidden * inter + 2 * hidden
    head = 0 if config.get("tie_word_embeddings") else vocab * hidden
    return vocab * hidden + layers * layer + hidden + head


def kv_bytes_per_token(config: dict[str, Any], bytes_per_value: float) -> float:
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or int(config["hidden_size"]) // heads)
    return 2 * int(config["num_hidden_layers"]) * kv_heads * head_dim * bytes_per_value


def gib(n: float) -> str:
    """Bytes for people: GiB, or MiB below one GiB."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def count(params: float) -> str:
    return f"{params / 1e9:.2f} B" if params >= 1e9 else f"{params / 1e6:.1f} M"


def find_weights(name: str) -> tuple[Path | None, str]:
    """The model's folder when it is on disk (a local path or the Hugging Face cache)."""
    try:
        path = Path(resolve_model(name))
    except (OSError, ValueError) as exc:
        return None, str(exc)
    if path.is_dir():
        return path, ""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True)), ""
    except Exception as exc:  # not cached, or not a valid repo id
        return None, type(exc).__name__


def system_memory_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def torch_findings(settings: Settings) -> tuple[list[Finding], int | None, bool]:
    """Versions and devices; (findings, free accelerator memory, CUDA present)."""
    found: list[Finding] = []
    try:
        import torch
    except ImportError as exc:
        message = f"torch cannot be imported ({exc}): backend = local needs {LOCAL_EXTRA}"
        found.append(Finding("fail", message))
        return found, None, False
    torch_version = version_of("torch") or torch.__version__

    versions = ", ".join(
        f"{p} {version_of(p) or 'MISSING'}" for p in ("transformers", "accelerate", "tokenizers")
    )
    found.append(Finding("ok", f"torch {torch_version}, {versions}"))
    if not torch.cuda.is_available():
        found.append(Finding("info", "no CUDA device: the model runs on the CPU"))
        return found, None, False
    free_total = 0
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        free_total += free
        name = torch.cuda.get_device_name(index)
        found.append(Finding("ok", f"cuda:{index} {name}: {gib(free)} free of {gib(total)}"))
    return found, free_total, True


def memory_findings(
    settings: Settings, config: dict[str, Any] | None, free_gpu: int | None, cuda: bool
) -> list[Finding]:
    """Estimated memory for the weights in the chosen dtype/quantization vs what is free."""
    if config is not None and config.get("hidden_size"):
        params = llama_parameters(config)
        source = "config.json"
    else:
        checkpoint = code_llama_checkpoint(settings.model)
        if checkpoint is None:
            return [Finding("info", "memory: unknown until config.json is on disk")]
        params, source = checkpoint[0] * 10**9, "its name, roughly"
    dtype = settings.dtype if settings.dtype != "auto" else ("bfloat16" if cuda else "float32")
    kind = settings.quantization if settings.quantization != "none" else dtype
    need = params * BYTES_PER_PARAMETER[kind] * OVERHEAD
    text = f"{count(params)} parameters (from {source}): about {gib(need)} as {kind}"
    if config is not None and config.get("num_hidden_layers"):
        kv = kv_bytes_per_token(config, 2.0 if cuda else 4.0) * settings.max_context_tokens
        need += kv * settings.kv_cache_slots
        text += f", plus {gib(kv)} per KV slot of {settings.max_context_tokens} tokens"
    available = free_gpu if cuda and free_gpu else system_memory_available()
    where = "free on the GPUs" if cuda and free_gpu else "available RAM"
    if available is None:
        return [Finding("info", text)]
    if need > available:
        hint = " (try quantization=4bit)" if settings.quantization == "none" else ""
        return [Finding("fail", f"{text}; only {gib(available)} {where}{hint}")]
    return [Finding("ok", f"{text}; {gib(available)} {where}")]


def model_findings(settings: Settings, free_gpu: int | None, cuda: bool) -> list[Finding]:
    found: list[Finding] = []
    folder, why = find_weights(settings.model)
    config: dict[str, Any] | None = None
    if folder is None:
        found.append(
            Finding(
                "fail",
                f"model {settings.model!r} is not on disk ({why}): `hf download {settings.model}`"
                + ("" if settings.local_files_only else " (or let it download on first load)"),
            )
        )
    else:
        size = sum(
            f.stat().st_size
            for f in folder.rglob("*")
            if f.is_file() and f.name.endswith(WEIGHT_SUFFIXES)
        )
        found.append(Finding("ok", f"model {settings.model!r}: {folder} ({gib(size)} of weights)"))
        with_config = folder / "config.json"
        if with_config.exists():
            config = json.loads(with_config.read_text())
    if settings.quantization != "none":
        if version_of("bitsandbytes") is None:
            found.append(
                Finding(
                    "fail",
                    f"quantization={settings.quantization} needs bitsandbytes: "
                    "pip install 'codellama-lsp[quant]'",
                )
            )
        if not cuda:
            found.append(Finding("fail", "bitsandbytes quantization needs a CUDA GPU"))
    return found + memory_findings(settings, config, free_gpu, cuda)


def server_findings(settings: Settings) -> list[Finding]:
    """Whether the configured model server answers, and for which model."""
    from codellama_lsp.engines.http import Endpoint, probe

    try:
        status, body = Endpoint.parse(settings.server_url, settings.api_key).get("/health", 2)
    except Exception as exc:
        verdict: Verdict = "fail" if settings.backend == "http" else "info"
        suffix = "" if settings.backend == "http" else " (backend auto loads in-process)"
        return [Finding(verdict, f"no model server at {settings.server_url}: {exc}{suffix}")]
    served = body.get("model") if isinstance(body, dict) else None
    state = body.get("status") if isinstance(body, dict) else None
    usable = probe(settings, timeout=2)
    text = f"model server at {settings.server_url}: HTTP {status}, {state}, serving {served}"
    if usable:
        return [Finding("ok", text)]
    return [Finding("fail" if settings.backend == "http" else "info", f"{text} (not usable)")]


def run_check(settings: Settings) -> list[Finding]:
    found = [
        Finding(
            "ok",
            f"Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
            f"{os.cpu_count()} CPUs; codellama-lsp {version_of('codellama-lsp')}",
        )
    ]
    if settings.backend in ("http", "auto"):
        found += server_findings(settings)
    serving = settings.backend == "http" or (
        settings.backend == "auto" and found[-1].verdict == "ok"
    )
    if serving:
        found.append(Finding("info", "the model runs in the model server: local checks skipped"))
        return found
    torch_found, free_gpu, cuda = torch_findings(settings)
    found += torch_found
    if any(f.verdict == "fail" for f in torch_found):
        return found
    return found + model_findings(settings, free_gpu, cuda)


def check_main(settings: Settings, argv: Sequence[str] = ()) -> int:
    print(f"codellama-lsp check: model {settings.model}, backend {settings.backend}")
    found = run_check(settings)
    for finding in found:
        print(finding.line())
    failed = [f for f in found if f.verdict == "fail"]
    print("ready to load" if not failed else f"{len(failed)} problem(s): the model cannot load")
    return 1 if failed else 0
