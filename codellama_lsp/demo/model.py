"""The offline demo model: a Code-Llama-shaped tokenizer and a small Llama trained on CPU.

It exists so that the server, tests and editors run end to end without a model hub or a GPU.
It writes Python-looking lines and ends infills with ``<EOT>``, but its code has no meaning.
The text it learns from is the training split of :mod:`codellama_lsp.demo.corpus`.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from codellama_lsp.demo import corpus as demo_corpus
from codellama_lsp.engines.model_names import cache_root, demo_model_dir
from codellama_lsp.engines.random_model import build_random_model, default_heads, llama_config

FIM_PIECES = ("▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>")
DEFAULT_VOCAB = 8000


# -------------------------------------------------------------------------- tokenizer


def _first_bytes(files: list[Any], limit: int) -> list[Any]:
    """The first files (in order) up to ``limit`` bytes of text."""
    out, total = [], 0
    for f in files:
        out.append(f)
        total += f.path.stat().st_size
        if total >= limit:
            break
    return out


def train_tokenizer(out_dir: Path, *, vocab_size: int = DEFAULT_VOCAB) -> Path:
    """Train a SentencePiece-like BPE (byte fallback, ``▁`` spaces) and save it as CodeLlama."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers import CodeLlamaTokenizer

    from codellama_lsp.engines.tokenization import sentencepiece_normalizer

    texts = demo_corpus.read_texts(_first_bytes(demo_corpus.stdlib_sources(), 12_000_000))
    bytes_ = [f"<0x{i:02X}>" for i in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = sentencepiece_normalizer()
    # Training-only split: indentation runs, words and punctuation runs (pieces never span
    # lines, like SentencePiece); the saved tokenizer has no pre-tokenizer, as Llama's.
    tok.pre_tokenizer = pre_tokenizers.Split(
        Regex(r"▁+(?=▁[^▁\s])|▁?[\p{L}\p{N}_]+|▁?[^\p{L}\p{N}_▁\s]+|▁+|\s"), behavior="isolated"
    )
    n_special = 3 + len(bytes_)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(FIM_PIECES),
        special_tokens=["<unk>", "<s>", "</s>", *bytes_],
        initial_alphabet=[chr(c) for c in range(32, 127)] + ["▁", "\t", "\n"],
        limit_alphabet=n_special + 160,
        max_token_length=16,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    state = json.loads(tok.to_str())
    vocab: dict[str, int] = dict(state["model"]["vocab"])
    merges: Any = [
        tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["model"]["merges"]
    ]
    for piece in FIM_PIECES:
        vocab[piece] = len(vocab)
    hf = CodeLlamaTokenizer(vocab=vocab, merges=merges)
    out_dir.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(str(out_dir))
    return out_dir


# ------------------------------------------------------------------------------- model


def _demo_tokenizer_dir() -> Path:
    """Tokenizer folder to copy: the committed demo's, or a freshly trained one."""
    committed = demo_model_dir()
    if (committed / "tokenizer.json").exists() or (committed / "tokenizer_config.json").exists():
        return committed
    cached = cache_root() / "demo-tokenizer"
    if not (cached / "tokenizer_config.json").exists():
        train_tokenizer(cached)
    return cached


class _Sampler:
    """Training samples: ~50% PSM fill-in-the-middle, the rest left to right."""

    def __init__(self, texts: list[str], codes: object, *, seq_len: int, seed: int) -> None:
        from codellama_lsp.engines.tokenization import CodeTokens

        assert isinstance(codes, CodeTokens) and codes.infill is not None
        self.codes = codes
        self.infill = codes.infill
        self.texts = texts
        self.weights = [len(t) for t in texts]
        self.seq_len = seq_len
        self.rng = random.Random(seed)

    def _chunk(self, n_chars: int) -> str:
        text = self.rng.choices(self.texts, weights=self.weights)[0]
        lines = text.splitlines(keepends=True)
        start = self.rng.randrange(len(lines))
        out = []
        size = 0
        for line in lines[start:]:
            out.append(line)
            size += len(line)
            if size >= n_chars:
                break
        return "".join(out)

    def fim_parts(self) -> tuple[str, str, str]:
        """(prefix, middle, suffix) of one chunk, cut where an editor asks for a completion.

        Middles are never empty and end where a suggestion would: the rest of a line from a
        point inside it, whole lines after a line end, a block's body after its header, or
        (one time in ten) any span, so that the model learns to end infills with ``<EOT>``
        at a line or block end instead of at once.
        """
        chunk = self._chunk(self.seq_len * 3)
        lines = chunk.splitlines(keepends=True)
        content = [n for n, line in enumerate(lines) if line.strip()]
        if not content:
            return "", chunk or "\n", ""
        n = self.rng.choice(content)
        line = lines[n]
        start = sum(len(x) for x in lines[:n])
        indent = len(line) - len(line.lstrip(" \t"))
        body = line.rstrip("\r\n")
        kind = self.rng.random()
        if kind < 0.4 and len(body) > indent + 1:  # mid-line: the rest of the line
            a = start + self.rng.randrange(indent + 1, len(body))
            b = start + len(body)
        elif kind < 0.75:  # at a line's start: this line and maybe the next one or two
            a = start + (indent if self.rng.random() < 0.7 else 0)
            b = start + sum(len(x) for x in lines[n : n + self.rng.choice([1, 1, 1, 2, 3])])
        elif kind < 0.9:  # after a block header: its body, up to the next dedent
            a = start + len(line)
            end = n + 1
            while end < len(lines) and (
                not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip(" \t")) > indent
            ):
                end += 1
            b = start + sum(len(x) for x in lines[n:end])
        else:  # anywhere
            a = self.rng.randrange(len(chunk))
            b = min(len(chunk), a + self.rng.choice([1, 3, 10, 30, 80, 200]))
        if not chunk[a:b].strip():
            b = start + len(line)
            a = min(a, start + indent)
        return chunk[:a], chunk[a:b], chunk[b:]

    def fim(self) -> list[int]:
        """One PSM sample, prefix/suffix trimmed at their far ends to fit ``seq_len``."""
        c = self.codes
        pre, mid, suf = self.fim_parts()
        pre_ids = c.encode(pre) if pre else []
        suf_ids = c.encode(suf, leading_space=False)
        mid_ids = c.encode(mid, leading_space=False)
        budget = self.seq_len - 5 - len(mid_ids)
        if budget < 8:
            mid_ids = mid_ids[: self.seq_len // 2]
            budget = self.seq_len - 5 - len(mid_ids)
        keep_pre = min(len(pre_ids), budget // 2 + max(0, budget // 2 - len(suf_ids)))
        keep_suf = min(len(suf_ids), budget - keep_pre)
        pre_ids = pre_ids[len(pre_ids) - keep_pre :]
        suf_ids = suf_ids[:keep_suf]
        i = self.infill
        return [
            int(c.bos_id or 1),
            i.prefix_id,
            *pre_ids,
            i.suffix_id,
            *suf_ids,
            i.middle_id,
            *mid_ids,
            i.eot_id,
        ]

    def ltr(self) -> list[int]:
        c = self.codes
        ids = [int(c.bos_id or 1), *c.encode(self._chunk(self.seq_len * 4))]
        return ids[: self.seq_len + 1]

    def loss_weights(self, ids: list[int], eot_weight: float) -> list[float]:
        """Loss weight of each target: FIM middles (and most of all <EOT>) count most."""
        if len(ids) < 2 or ids[1] != self.infill.prefix_id:
            return [1.0] * len(ids)
        mid = ids.index(self.infill.middle_id)
        w = [0.3] * (mid + 1) + [1.0] * (len(ids) - mid - 1)
        w[-1] = eot_weight
        return w

    def batches(
        self, batch_size: int, *, fim_rate: float = 0.5, eot_weight: float = 1.0
    ) -> Iterator[tuple[object, object]]:
        """(ids, per-token loss weights) with padding weighted 0."""
        import torch

        pad = int(self.codes.eos_id or 2)
        while True:
            seqs = [
                self.fim() if self.rng.random() < fim_rate else self.ltr()
                for _ in range(batch_size)
            ]
            width = max(len(s) for s in seqs)
            x = torch.full((batch_size, width), pad, dtype=torch.long)
            w = torch.zeros((batch_size, width), dtype=torch.float32)
            for r, s in enumerate(seqs):
                x[r, : len(s)] = torch.tensor(s)
                w[r, : len(s)] = torch.tensor(self.loss_weights(s, eot_weight))
            yield x, w


def _prepare_tokenizer(out_dir: Path, source: Path) -> None:
    """Copy the tokenizer of ``source`` (a model folder) into ``out_dir``.

    A new demo model keeps the committed tokenizer: token ids stay the same for the random
    test models, the GGUF conversion and every test that counts tokens.
    """
    if Path(source).resolve() == out_dir.resolve():
        return
    import shutil

    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (Path(source) / name).exists():
            shutil.copyfile(Path(source) / name, out_dir / name)


def _train_step(model: Any, opt: Any, x: Any, w: Any) -> float:
    """One optimizer step on next-token loss weighted per position by ``w``; the loss."""
    import torch

    logits = model(input_ids=x).logits[:, :-1]
    per_token = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="none"
    )
    weights = w[:, 1:].reshape(-1)
    loss = (per_token * weights).sum() / weights.sum()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return float(loss.item())


def _initial_model(codes: Any, init: Path | None, hidden_size: int, num_layers: int) -> Any:
    """A new random Llama for ``codes``, or the weights of ``init`` to train on."""
    import torch
    from transformers import LlamaForCausalLM

    if init is not None:
        return LlamaForCausalLM.from_pretrained(str(init), dtype=torch.float32)
    config = llama_config(
        codes.vocab_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=default_heads(hidden_size),
        intermediate_size=None,
        bos_id=int(codes.bos_id or 1),
        eos_id=int(codes.eos_id or 2),
    )
    return LlamaForCausalLM(config)  # type: ignore[arg-type]


def _learning_rate(peak_lr: float, step: int, done: float) -> float:
    """Linear warm-up over 50 steps, then cosine decay to a tenth, by the share of time done."""
    warm = min(1.0, (step + 1) / 50)
    return peak_lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done)))


def _train(
    model: Any, batches: Any, start: float, deadline: float, peak_lr: float, log: bool
) -> tuple[int, int, float | None]:
    """Train on ``batches`` until ``deadline``: (steps, tokens, loss EMA)."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=peak_lr, weight_decay=0.01, betas=(0.9, 0.95))
    total_s = max(1.0, deadline - time.monotonic())
    step = 0
    ema = None
    tokens = 0
    for x, w in batches:
        now = time.monotonic()
        if now >= deadline:
            break
        lr = _learning_rate(peak_lr, step, 1 - (deadline - now) / total_s)
        for g in opt.param_groups:
            g["lr"] = lr
        assert isinstance(x, torch.Tensor) and isinstance(w, torch.Tensor)
        value = _train_step(model, opt, x, w)
        step += 1
        tokens += int((w[:, 1:] > 0).sum())
        ema = value if ema is None else 0.95 * ema + 0.05 * value
        if log and step % 25 == 0:
            el = time.monotonic() - start
            print(f"step {step} loss {ema:.3f} lr {lr:.2e} {tokens / el:.0f} tok/s", flush=True)
    return step, tokens, ema


def train_demo_model(
    out_dir: Path,
    *,
    minutes: float,
    seed: int = 0,
    hidden_size: int = 128,
    num_layers: int = 4,
    seq_len: int = 256,
    batch_size: int = 8,
    init: Path | None = None,
    fim_rate: float = 0.5,
    eot_weight: float = 1.0,
    peak_lr: float = 3e-3,
    log: bool = True,
) -> Path:
    """Train a small Llama on the corpus's training split for ``minutes`` of wall time; save it
    in fp16 with the committed tokenizer.

    With ``init`` (an earlier demo folder) it keeps that model's tokenizer and continues
    training its weights, e.g. with more FIM samples and a heavier ``<EOT>`` weight.
    """
    import torch

    from codellama_lsp.engines.tokenization import CodeTokens, load_tokenizer

    start = time.monotonic()
    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    random.seed(seed)
    _prepare_tokenizer(out_dir, init if init is not None else _demo_tokenizer_dir())
    tok = load_tokenizer(str(out_dir))
    codes = CodeTokens(tok)
    model = _initial_model(codes, init, hidden_size, num_layers)
    model.train()
    files = demo_corpus.corpus("train")
    texts = demo_corpus.read_texts(files)
    sampler = _Sampler(texts, codes, seq_len=seq_len, seed=seed)
    batches = sampler.batches(batch_size, fim_rate=fim_rate, eot_weight=eot_weight)
    step, tokens, ema = _train(model, batches, start, start + minutes * 60, peak_lr, log)
    model.eval()
    model = model.half()
    model.save_pretrained(str(out_dir))
    info: dict[str, Any] = {
        **_outcome(model, step, tokens, ema, start),
        "minutes_arg": minutes,
        "seed": seed,
        "init": str(init) if init else None,
        "fim_rate": fim_rate,
        "eot_weight": eot_weight,
        "peak_lr": peak_lr,
        "batch_size": batch_size,
        "seq_len": seq_len,
        **_environment(files),
    }
    _write_training_info(out_dir, info, init)
    if log:
        print(json.dumps({k: v for k, v in info.items() if k != "corpus"}), flush=True)
    return out_dir


def _outcome(
    model: Any, steps: int, tokens: int, ema: float | None, start: float
) -> dict[str, Any]:
    """What the training made: steps, target tokens, the final loss, the model's size, time."""
    return {
        "steps": steps,
        "tokens": tokens,
        "final_loss_ema": round(ema or float("nan"), 3),
        "params": sum(p.numel() for p in model.parameters()),
        "hidden_size": model.config.hidden_size,
        "num_layers": model.config.num_hidden_layers,
        "minutes": round((time.monotonic() - start) / 60, 2),
    }


def _environment(files: list[demo_corpus.SourceFile]) -> dict[str, Any]:
    """Where it was trained: torch's threads, the Python version, the text's licences."""
    import torch

    return {
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "corpus": [list(row) for row in demo_corpus.licence_table(files)],
        "held_out_every": demo_corpus.HELD_OUT_EVERY,
    }


def _write_training_info(out_dir: Path, info: dict[str, Any], init: Path | None) -> None:
    """``training.json`` (with the history of ``init``'s training) and the README."""
    if init is not None and (Path(init) / "training.json").exists():
        earlier = json.loads((Path(init) / "training.json").read_text())
        info["history"] = [*earlier.pop("history", []), earlier]
    (out_dir / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    write_readme(out_dir, info)


_README = """# codellama-lsp demo model (NOT Code Llama)

A small Llama-architecture model ({params:,} parameters, float16) with a Code-Llama-shaped
tokenizer, committed so that codellama-lsp, its tests and the editor demos run offline with no
model hub and no GPU. It writes plausible-looking Python one or two lines at a time, often
wrong: its code has no real meaning. Use a real Code Llama model for actual completions.

- Tokenizer: BPE with byte fallback and SentencePiece-style `▁` spaces, trained with the
  `tokenizers` library on Python 3.11.7's standard library (no tests), saved as the
  transformers `CodeLlamaTokenizer` class, with `<unk>` `<s>` `</s>` and the infill pieces
  `▁<PRE>` `▁<SUF>` `▁<MID>` `▁<EOT>` (looked up by string, never by id). New models keep it.
- Model: `LlamaForCausalLM` (`model_type` llama, no custom code), hidden size {hidden},
  {layers} layers, tied embeddings, max_position_embeddings 16384, trained from scratch on
  CPU cores: samples are fill-in-the-middle in Code Llama's PSM format
  (`<s> ▁<PRE> prefix ▁<SUF>suffix ▁<MID>middle ▁<EOT>`) or left to right. Middles are cut
  where an editor asks (the rest of a line, whole lines, a block's body; a tenth anywhere),
  never empty.
- Source text (`codellama_lsp/demo/corpus.py`): the Python standard library and installed
  packages whose licence metadata has only MIT, BSD, Apache or PSF terms, at most 2 MB of each
  package, tests left out. One file in {held_out_every} (by a hash of its name) is held out:
  training never reads it, `python -m benchmarks.quality --corpus held-out` measures on it.
  The model and tokenizer are released with this project. Training files per source:

{corpus}
Training stages (wall time includes loading the text):

{stages}
Rebuild (results depend on the CPU, its load, the installed packages and the Python version):

{commands}
"""


def _stage_line(info: dict[str, Any]) -> str:
    return (
        f"- {info['minutes']} min, {info['steps']} steps, {info['tokens']:,} target tokens,"
        f" FIM rate {info.get('fim_rate', 0.5)}, <EOT> weight {info.get('eot_weight', 1.0)},"
        f" final loss ~{info['final_loss_ema']}"
    )


def _stage_command(info: dict[str, Any], out: str, init: str | None) -> str:
    cmd = f"python -m codellama_lsp.demo.model train --minutes {info.get('minutes_arg')}"
    cmd += f" --seed {info['seed']}"
    if init:
        cmd += f" --init {init}"
    elif "hidden_size" in info:
        cmd += f" --hidden {info['hidden_size']} --layers {info['num_layers']}"
    if init or "hidden_size" in info:
        cmd += f" --fim-rate {info['fim_rate']} --eot-weight {info['eot_weight']}"
        cmd += f" --lr {info['peak_lr']}"
    threads = "OMP_NUM_THREADS=1 " if info.get("torch_threads") == 1 else ""
    return f"    {threads}{cmd} --out {out}"


def write_readme(out_dir: Path, info: dict[str, Any]) -> None:
    """Label the folder honestly as a demo, with how it was made (all stages)."""
    history: list[dict[str, Any]] = list(info.get("history", []))
    stages = [*history, info]
    lines, commands = [], []
    for n, stage in enumerate(stages):
        lines.append(_stage_line(stage))
        out = "/tmp/demo-stage1" if n < len(stages) - 1 else "codellama_lsp/demo/assets/demo-model"
        commands.append(_stage_command(stage, out, "/tmp/demo-stage1" if n else None))
    corpus = "| source | licence | files | bytes |\n|---|---|---|---|\n" + "".join(
        f"| {source} | {licence} | {files:,} | {size:,} |\n"
        for source, licence, files, size in info.get("corpus", [])
    )
    text = _README.format(
        params=info["params"],
        hidden=info.get("hidden_size", "?"),
        layers=info.get("num_layers", "?"),
        held_out_every=info.get("held_out_every", "?"),
        corpus=corpus,
        stages="\n".join(lines) + "\n",
        commands="\n".join(commands),
    )
    (Path(out_dir) / "README.md").write_text(text)


def main(argv: list[str] | None = None) -> int:
    """``python -m codellama_lsp.demo.model train|random ...``."""
    parser = argparse.ArgumentParser(prog="python -m codellama_lsp.demo.model")
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train the tiny demo model")
    t.add_argument("--minutes", type=float, default=8.0)
    t.add_argument("--out", type=Path, default=demo_model_dir())
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--init", type=Path, default=None, help="continue from this demo folder")
    t.add_argument("--fim-rate", type=float, default=0.5)
    t.add_argument("--eot-weight", type=float, default=1.0)
    t.add_argument("--lr", dest="peak_lr", metavar="LR", type=float, default=3e-3)
    t.add_argument(
        "--hidden",
        dest="hidden_size",
        metavar="HIDDEN",
        type=int,
        default=128,
        help="hidden size of a new model",
    )
    t.add_argument(
        "--layers",
        dest="num_layers",
        metavar="LAYERS",
        type=int,
        default=4,
        help="layers of a new model",
    )
    t.add_argument("--batch", dest="batch_size", metavar="BATCH", type=int, default=8)
    t.add_argument("--seq-len", type=int, default=256)
    r = sub.add_parser("random", help="build a random-weight model of a given size")
    r.add_argument("--hidden", dest="hidden_size", metavar="HIDDEN", type=int, required=True)
    r.add_argument("--layers", dest="num_layers", metavar="LAYERS", type=int, required=True)
    r.add_argument("--heads", dest="num_heads", metavar="HEADS", type=int, default=0)
    r.add_argument("--intermediate", dest="intermediate_size", metavar="INTERMEDIATE", type=int)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", type=Path, required=True)
    # Each option's dest is the keyword of the function it goes to.
    options = vars(parser.parse_args(argv))
    command, out = options.pop("cmd"), options.pop("out")
    if command == "train":
        print(train_demo_model(out, **options))
    else:
        print(build_random_model(out, tokenizer_dir=_demo_tokenizer_dir(), **options))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
