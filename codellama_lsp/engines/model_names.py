"""Model names: a hub id or folder, ``demo`` (the bundled demo model), or
``random:hidden=H,layers=L[,heads=A,intermediate=I,seed=S]`` (random weights, built on first
use, for speed and memory tests). Both engines and ``check`` read names through here.
"""

from __future__ import annotations

import re

from codellama_lsp.engines.model_paths import cache_root, default_heads, demo_model_dir

__all__ = ["DEMO_MODEL_NAME", "cache_root", "default_heads", "demo_model_dir", "resolve_model"]

DEMO_MODEL_NAME = "demo"
_RANDOM_SPEC = re.compile(r"^random:(.*)$")
_RANDOM_OPTIONS = frozenset({"hidden", "layers", "heads", "intermediate", "seed"})


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
        from codellama_lsp.demo.model import build_random_model  # torch: only for random:

        build_random_model(
            out,
            hidden_size=opts["hidden"],
            num_layers=opts["layers"],
            num_heads=heads,
            intermediate_size=inter,
            seed=seed,
        )
    return str(out)
