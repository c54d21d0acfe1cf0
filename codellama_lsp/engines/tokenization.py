"""Exact Code Llama tokenization: the whitespace fix and FIM-safe encode/decode.

transformers 5.x rebuilds Llama/CodeLlama tokenizers with ``Metaspace(prepend_scheme="first")``,
which loses leading spaces and so mis-encodes indented code. Meta's SentencePiece behaviour is
"prepend one ``▁``, then every space becomes ``▁``, no pre-splitting": :func:`load_tokenizer`
restores it, and :class:`CodeTokens` builds prompts and decodes completions on top of it
without the tokenizer's own infill path (which adds a stray ``▁`` after ``<SUF>``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from tokenizers import Tokenizer, normalizers

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SPIECE_UNDERLINE = "▁"
FIM_NAMES = ("PRE", "SUF", "MID", "EOT")
_FIM_MARKERS = tuple(f"<{n}>" for n in FIM_NAMES)
LONG_TEXT = 4096
"""Characters from which encoding releases the GIL (see `CodeTokens.encode`)."""
WORD_CACHE_ENTRIES = 1024
"""Words a BPE model remembers (tokenizers' default: 10,000). Without a pre-tokenizer a "word"
is a whole line or text under 256 characters, ~2 KB each in the cache: typing makes a new one
with every key, so the default cache grew the server by ~20 MB per tokenizer copy (issue 17).
Line token counts are memoised above it (`prompt.LineCounter`)."""


def _backend(tokenizer: AnyTokenizer) -> Tokenizer | None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend if isinstance(backend, Tokenizer) else None


def _is_spm_style(backend: Tokenizer) -> bool:
    """A Llama-style tokenizer: BPE model with byte fallback and ``▁`` for spaces."""
    state = json.loads(backend.to_str())
    model = state.get("model") or {}
    if model.get("type") != "BPE" or not model.get("byte_fallback"):
        return False
    parts = [state.get("pre_tokenizer"), state.get("normalizer"), state.get("decoder")]
    text = json.dumps(parts, ensure_ascii=False)
    return SPIECE_UNDERLINE in text


def bound_word_cache(backend: Tokenizer) -> None:
    """Keep ``backend``'s word cache to :data:`WORD_CACHE_ENTRIES` (BPE and Unigram have one)."""
    resize = getattr(backend.model, "_resize_cache", None)
    if resize is not None:
        resize(WORD_CACHE_ENTRIES)


def new_line_cost(
    backend: Tokenizer, lines: Sequence[str], heap_in_use: Callable[[], int | None]
) -> float | None:
    """C-heap bytes that encoding each of ``lines`` (never seen before) keeps, after the first
    :data:`WORD_CACHE_ENTRIES` of them filled the word cache as far as its bound lets it: ~0
    with the bound, ~2.6 KB a line without it. None without a heap figure or enough lines."""
    fill, measured = lines[:WORD_CACHE_ENTRIES], lines[WORD_CACHE_ENTRIES:]
    if not measured:
        return None
    for line in fill:
        backend.encode(line, add_special_tokens=False)
    before = heap_in_use()
    for line in measured:
        backend.encode(line, add_special_tokens=False)
    after = heap_in_use()
    return None if before is None or after is None else (after - before) / len(measured)


def sentencepiece_normalizer(*, dummy_prefix: bool = True) -> normalizers.Normalizer:
    """Meta's SentencePiece normalisation (add_dummy_prefix, no whitespace collapsing)."""
    replace = normalizers.Replace(" ", SPIECE_UNDERLINE)
    if not dummy_prefix:
        return replace
    return normalizers.Sequence([normalizers.Prepend(SPIECE_UNDERLINE), replace])


def fix_whitespace(tokenizer: AnyTokenizer) -> bool:
    """Make a Llama/CodeLlama tokenizer encode spaces like SentencePiece; True if changed."""
    backend = _backend(tokenizer)
    if backend is None or not _is_spm_style(backend):
        return False
    backend.normalizer = sentencepiece_normalizer()
    backend.pre_tokenizer = None
    bound_word_cache(backend)
    return True


def load_tokenizer(name_or_path: str, *, local_files_only: bool = True) -> PreTrainedTokenizerBase:
    """AutoTokenizer.from_pretrained, then fix the 5.x CodeLlama/Llama whitespace bug."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=local_files_only)
    fix_whitespace(tokenizer)
    return tokenizer


@dataclass
class TokenizerFiles:
    """A tokenizer read from ``tokenizer.json`` and ``tokenizer_config.json`` with ``tokenizers``
    alone: what :class:`CodeTokens` needs, without transformers (and so without torch).

    The language server of a torch-free install (``backend = http``) builds its prompts with
    it; the ids are the same as through transformers (``tests/test_tokenization.py``).
    """

    backend_tokenizer: Tokenizer
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    fill_token: str | None = None
    all_special_ids: list[int] = field(default_factory=list)
    added_tokens_decoder: dict[int, str] = field(default_factory=dict)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.backend_tokenizer.get_vocab(with_added_tokens=True))

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return list(self.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(
        self,
        ids: Sequence[int],
        skip_special_tokens: bool = True,
        clean_up_tokenization_spaces: bool = False,
    ) -> str:
        return str(
            self.backend_tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)
        )


AnyTokenizer: TypeAlias = "PreTrainedTokenizerBase | TokenizerFiles"
SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token")
EXTRA_SPECIAL_KEYS = ("extra_special_tokens", "additional_special_tokens")


def load_tokenizer_files(name_or_path: str, *, local_files_only: bool = True) -> TokenizerFiles:
    """A :class:`TokenizerFiles` from a model folder or the Hugging Face cache (or hub)."""
    folder = Path(name_or_path)

    def fetch(name: str) -> Path | None:
        if folder.is_dir():
            path = folder / name
            return path if path.exists() else None
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(name_or_path, name, local_files_only=local_files_only))
        except Exception:  # not cached, not on the hub, not a repo id: all mean "absent"
            return None

    tokenizer_json = fetch("tokenizer.json")
    if tokenizer_json is None:
        raise OSError(
            f"no tokenizer.json for {name_or_path!r} on disk (download the model's tokenizer "
            "files, e.g. `hf download MODEL tokenizer.json tokenizer_config.json`)"
        )
    config: dict[str, Any] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        path = fetch(name)
        if path is not None:
            config.update(json.loads(path.read_text(encoding="utf-8")))
    backend = Tokenizer.from_file(str(tokenizer_json))
    if _is_spm_style(backend):
        backend.normalizer = sentencepiece_normalizer()
        backend.pre_tokenizer = None
        bound_word_cache(backend)

    def text_of(value: Any) -> str | None:
        value = value.get("content") if isinstance(value, dict) else value
        return value if isinstance(value, str) else None

    def id_of(value: Any) -> int | None:
        token = text_of(value)
        found = backend.token_to_id(token) if token else None
        return int(found) if found is not None else None

    added = {int(t["id"]): str(t["content"]) for t in json.loads(backend.to_str())["added_tokens"]}
    named = [config.get(key) for key in SPECIAL_KEYS]
    for key in EXTRA_SPECIAL_KEYS:
        extra = config.get(key)
        named += list(extra.values() if isinstance(extra, dict) else extra or [])
    special = sorted({i for i in map(id_of, named) if i is not None})
    return TokenizerFiles(
        backend_tokenizer=backend,
        bos_token_id=id_of(config.get("bos_token")),
        eos_token_id=id_of(config.get("eos_token")),
        fill_token=text_of(config.get("fill_token")),
        all_special_ids=special,
        added_tokens_decoder=added,
    )


@dataclass(frozen=True)
class InfillTokens:
    """Ids of Code Llama's fill-in-the-middle markers."""

    prefix_id: int
    suffix_id: int
    middle_id: int
    eot_id: int


def _token_id(tokenizer: AnyTokenizer, vocab: dict[str, int], name: str) -> int | None:
    for piece in (f"{SPIECE_UNDERLINE}<{name}>", f"<{name}>"):
        if piece in vocab:
            return vocab[piece]
    return None


class CodeTokens:
    """Exact encoding/decoding for prompt building and completions.

    Encoding uses private copies of the tokenizer's backend without added tokens, so text in a
    document that looks like ``</s>`` or ``<PRE>`` is encoded as text and can never inject a
    special token into the prompt (SentencePiece behaves the same way).
    """

    def __init__(self, tokenizer: AnyTokenizer) -> None:
        self.tokenizer = tokenizer
        vocab: dict[str, int] = dict(tokenizer.get_vocab())
        self.bos_id: int | None = tokenizer.bos_token_id
        self.eos_id: int | None = tokenizer.eos_token_id
        ids = [_token_id(tokenizer, vocab, n) for n in FIM_NAMES]
        self.infill: InfillTokens | None = (
            None if any(i is None for i in ids) else InfillTokens(*(int(i) for i in ids if i))
        )
        special = set(tokenizer.all_special_ids)
        added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
        special.update(int(i) for i in added)
        special.update(i for i in ids if i is not None)
        self.special_ids: frozenset[int] = frozenset(special)
        fill = getattr(tokenizer, "fill_token", None)
        fill_id = vocab.get(str(fill)) if fill else None
        self.vocab_size: int = max(i for t, i in vocab.items() if i != fill_id) + 1
        self.stop_ids: frozenset[int] = frozenset(
            i for i in (self.eos_id, self.infill.eot_id if self.infill else None) if i is not None
        )
        self._first: Tokenizer | None = None
        self._cont: Tokenizer | None = None
        backend = _backend(tokenizer)
        if backend is not None and _is_spm_style(backend):
            self._first = self._plain_copy(backend, dummy_prefix=True)
            self._cont = self._plain_copy(backend, dummy_prefix=False)
        self.newline_id: int | None = vocab.get("<0x0A>", vocab.get("\n"))

    def backends(self) -> list[Tokenizer]:
        """Every backend tokenizer this object encodes with (each has its own word cache)."""
        found = [self._first, self._cont, _backend(self.tokenizer)]
        return [tok for i, tok in enumerate(found) if tok is not None and tok not in found[:i]]

    @staticmethod
    def _plain_copy(backend: Tokenizer, *, dummy_prefix: bool) -> Tokenizer:
        """A copy with no added-token matching, no post-processor, SentencePiece spacing."""
        state: dict[str, Any] = json.loads(backend.to_str())
        state["added_tokens"] = []
        state["post_processor"] = None
        state["pre_tokenizer"] = None
        state["truncation"] = None
        state["padding"] = None
        tok = Tokenizer.from_str(json.dumps(state))
        tok.normalizer = sentencepiece_normalizer(dummy_prefix=dummy_prefix)
        bound_word_cache(tok)
        return tok

    def encode(self, text: str, *, leading_space: bool = True) -> list[int]:
        """Token ids for ``text`` without BOS.

        ``leading_space=True`` adds SentencePiece's dummy ``▁`` (start of a prompt);
        ``False`` encodes text that continues other text (the FIM suffix after ``<SUF>``),
        the same as Meta's ``encode_infilling`` (``encode("☺" + s)[2:]``).
        """
        if not text:
            return []
        enc = self._first if leading_space else self._cont
        if enc is not None and len(text) > LONG_TEXT:
            # `encode_batch` lets go of the GIL while it works (`encode` holds it): the
            # event loop and other threads run meanwhile. Same ids.
            return list(enc.encode_batch([text], add_special_tokens=False)[0].ids)
        if enc is not None:
            return list(enc.encode(text, add_special_tokens=False).ids)
        return self._generic_encode(text, leading_space=leading_space)

    def _generic_encode(self, text: str, *, leading_space: bool) -> list[int]:
        """Fallback for non-SentencePiece tokenizers: sentinel trick for continuations."""
        if leading_space:
            return list(self.tokenizer.encode(text, add_special_tokens=False))
        sentinel = "\n"
        base = list(self.tokenizer.encode(sentinel, add_special_tokens=False))
        ids = list(self.tokenizer.encode(sentinel + text, add_special_tokens=False))
        if ids[: len(base)] == base:
            return ids[len(base) :]
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode_continuation(self, ids: Sequence[int]) -> str:
        """The text generated ids add after a prompt, leading spaces kept exactly.

        Stops at the first EOS/EOT, drops other special tokens, and cuts at any literal FIM
        marker text so ``<EOT>`` and friends never reach the editor.
        """
        kept: list[int] = []
        for i in ids:
            i = int(i)
            if i in self.stop_ids:
                break
            if i in self.special_ids:
                continue
            kept.append(i)
        if not kept:
            return ""
        if self.newline_id is not None:
            text = self._decode([self.newline_id, *kept])
            text = text[1:] if text.startswith("\n") else text
        else:
            text = self._decode(kept)
        return self.cut_markers(text)

    @staticmethod
    def cut_markers(text: str) -> str:
        """``text`` up to the first literal FIM marker (``<EOT>``, ``<PRE>``…), if any."""
        for marker in _FIM_MARKERS:
            cut = text.find(marker)
            if cut >= 0:
                text = text[: cut - 1] if cut > 0 and text[cut - 1] == " " else text[:cut]
        return text

    def _decode(self, ids: list[int]) -> str:
        """Backend decode: no ``clean_up_tokenization_spaces`` rewriting of the code."""
        backend = _backend(self.tokenizer)
        if backend is not None:
            return backend.decode(ids, skip_special_tokens=True)
        return str(
            self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        )

    def decode_prompt(self, ids: Sequence[int]) -> str:
        """Text of ids built by ``encode(text)`` (dummy prefix removed), specials dropped."""
        return self._decode([int(i) for i in ids])

    def count(self, text: str) -> int:
        """Number of tokens ``text`` takes at the start of a prompt."""
        return len(self.encode(text))

    def fim_ids(self, prefix: str, suffix: str, *, bos: bool = True) -> list[int]:
        """PSM prompt ``[bos, PRE] + enc(prefix) + [SUF] + enc'(suffix) + [MID]``."""
        if self.infill is None:
            raise ValueError("this tokenizer has no infilling tokens")
        head = [self.bos_id] if bos and self.bos_id is not None else []
        return [
            *head,
            self.infill.prefix_id,
            *self.encode(prefix),
            self.infill.suffix_id,
            *self.encode(suffix, leading_space=False),
            self.infill.middle_id,
        ]
