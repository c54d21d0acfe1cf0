"""Model names: a hub id or folder, ``demo`` (the bundled demo model), or
``random:hidden=H,layers=L[,heads=A,intermediate=I,seed=S]`` (random weights, built on first
use, for speed and memory tests). Both engines and ``check`` read names through here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from codellama_lsp.engines.random_model import build_random_model, default_heads

DEMO_MODEL_NAME = "demo"
_RANDOM_SPEC = re.compile(r"^random:(.*)$")
_RANDOM_OPTIONS = frozenset({"hidden", "layers", "heads", "intermediate", "seed"})


def demo_model_dir() -> Path:
    """The committed demo model folder inside the package (data: no demo code is imported)."""
    return Path(__file__).resolve().parent.parent / "demo" / "assets" / "demo-model"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "codellama-lsp"


def _parse_random_spec(spec: str) -> dict[str, int]:
    values: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, _, val = part.partition("=")
        if key not in _RANDOM_OPTIONS or not val:
            raise ValueError(f"bad random model option {part!r} (hidden,layers,heads,...)")
        values[key] = int(val)
    if "hidden" not in values or "layers" not in values:
        raise ValueError("random model needs hidden= and layers=")
    return values


def resolve_model(name: str) -> str:
    """Map ``demo`` and ``random:hidden=H,layers=L[,...]`` to folders; pass others through."""
    if name == DEMO_MODEL_NAME:
        return str(demo_model_dir())
    match = _RANDOM_SPEC.match(name)
    if not match:
        return name
    opts = _parse_random_spec(match.group(1))
    heads = opts.get("heads", default_heads(opts["hidden"]))
    inter = opts.get("intermediate")
    seed = opts.get("seed", 0)
    tag = f"random-h{opts['hidden']}-l{opts['layers']}-a{heads}-i{inter or 'auto'}-s{seed}"
    out = cache_root() / tag
    if not (out / "config.json").exists():
        build_random_model(
            out,
            hidden_size=opts["hidden"],
            num_layers=opts["layers"],
            num_heads=heads,
            intermediate_size=inter,
            seed=seed,
            tokenizer_dir=demo_model_dir(),
        )
    return str(out)
