"""Which models were trained to fill in the middle, so that ``prompt_format = auto`` is right.

Code Llama (Rozière et al. 2023, "Code Llama: Open Foundation Models for Code", abstract of the
updated version): "7B, 13B and 70B Code Llama and Code Llama - Instruct variants support
infilling based on surrounding content". The -Python variants and every 34B model were not
trained with the infilling objective, although their tokenizers hold the same ``<PRE>``,
``<SUF>``, ``<MID>``, ``<EOT>`` tokens: a name decides, not the vocabulary. The flagship
``CodeLlama-70b-Python-hf`` is prompted left to right.
"""

from __future__ import annotations

import re
from typing import Literal

from codellama_lsp.engines.model_names import DEMO_MODEL_NAME

Variant = Literal["base", "python", "instruct"]

CODE_LLAMA_INFILLS: dict[tuple[int, Variant], bool] = {
    (7, "base"): True,
    (13, "base"): True,
    (34, "base"): False,
    (70, "base"): True,
    (7, "python"): False,
    (13, "python"): False,
    (34, "python"): False,
    (70, "python"): False,
    (7, "instruct"): True,
    (13, "instruct"): True,
    (34, "instruct"): False,
    (70, "instruct"): True,
}
"""(size in billions, variant) → trained to infill, for the twelve checkpoints of the family
(``codellama/CodeLlama-{7,13,34,70}b{,-Python,-Instruct}-hf``)."""

OWN_MODELS_LEFT_TO_RIGHT = frozenset({DEMO_MODEL_NAME})
"""Our own models that ``auto`` prompts left to right. The bundled demo model saw FIM samples in
training, but on its held-out split it answers better left to right (docs/benchmarks.md, "The
demo model on its held-out split"); ``prompt_format = fim`` still infills with it."""

_CODE_LLAMA = re.compile(r"code[-_ ]?llama[-_ ]?(\d+)b(?:[-_ .](python|instruct))?", re.IGNORECASE)
_SAYS_INFILL = re.compile(r"(?<![a-z])(fim|infill\w*)(?![a-z])", re.IGNORECASE)


def code_llama_checkpoint(name: str) -> tuple[int, Variant] | None:
    """(size, variant) of a Code Llama hub id, local folder or GGUF file name; None otherwise."""
    match = _CODE_LLAMA.search(name.rstrip("/").rsplit("/", 1)[-1]) or _CODE_LLAMA.search(name)
    if match is None:
        return None
    variants: dict[str, Variant] = {"python": "python", "instruct": "instruct"}
    return int(match.group(1)), variants.get((match.group(2) or "").lower(), "base")


def infills_by_default(name: str) -> bool:
    """Whether ``auto`` gives ``name`` FIM prompts: our own models by measurement, Code Llama by
    the family table, else the name.

    An unknown model infills only when its name says so (``…-fim``, ``…-infill``): a model
    that was not trained for it answers FIM prompts with noise or at once with ``<EOT>``.
    """
    if name in OWN_MODELS_LEFT_TO_RIGHT:
        return False
    checkpoint = code_llama_checkpoint(name)
    if checkpoint is not None:
        return CODE_LLAMA_INFILLS.get(checkpoint, False)
    return _SAYS_INFILL.search(name) is not None
