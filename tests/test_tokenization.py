"""Exact tokenization: SentencePiece spacing, FIM ids, continuation decoding.

Most tests use the committed demo tokenizer (same CodeLlamaTokenizer class as the real model).
``test_real_llama_vocab_*`` use Llama-2's real vocabulary and llama.cpp's reference vectors:
run ``scripts/fetch_llama_vocab.sh DEST`` and set ``CODELLAMA_LSP_LLAMA_VOCAB=DEST``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from codellama_lsp.engines.model_names import demo_model_dir
from codellama_lsp.engines.tokenization import CodeTokens, load_tokenizer
from codellama_lsp.memory import native_heap
from tests.support.engines import hf_tokenizer

SAMPLES = [
    "def f(x):\n    if x:\n        return x + 1\n    return 0\n",
    "class A:\n\tdef m(self):\n\t\treturn 'tab'\n",
    "if a:\r\n    b = 1\r\n\r\n    c = 2\r\n",
    "    indented_first_line = True\n",
    "\n\n\n    x = 1\n\n",
    "def deep():\n"
    + "".join("    " * i + f"if v{i}:\n" for i in range(1, 9))
    + " " * 36
    + "pass\n",
    'msg = "héllo wörld ñ — ünïcode"  # 注释\n',
    "emoji = '🦙🐍✨'  \n  trailing  spaces   \n",
    " leading space",
    "  two leading spaces",
    "x =",
    " ",
    "\t",
    "a</s>b <PRE> <EOT> <s>",
]


@pytest.fixture(scope="module")
def codes() -> CodeTokens:
    return CodeTokens(load_tokenizer(str(demo_model_dir())))


@pytest.mark.parametrize("text", SAMPLES)
def test_prompt_round_trip(codes: CodeTokens, text: str) -> None:
    ids = codes.encode(text)
    assert codes.bos_id not in ids
    assert hf_tokenizer(codes).decode(ids) == text
    assert codes.decode_prompt(ids) == text
    # the fixed tokenizer itself agrees with our encoder on ordinary text
    if "<" not in text:
        assert hf_tokenizer(codes)(text, add_special_tokens=False)["input_ids"] == ids


@pytest.mark.parametrize("text", SAMPLES[:-1])
def test_continuation_round_trip(codes: CodeTokens, text: str) -> None:
    ids = codes.encode(text, leading_space=False)
    assert codes.decode_continuation(ids) == text


def test_leading_space_controls_dummy_prefix(codes: CodeTokens) -> None:
    with_prefix = hf_tokenizer(codes).convert_ids_to_tokens(codes.encode("return x"))
    without = hf_tokenizer(codes).convert_ids_to_tokens(
        codes.encode("return x", leading_space=False)
    )
    assert with_prefix[0].startswith("▁")
    assert not without[0].startswith("▁")
    # Meta's encode_infilling: encode(sentinel + s) minus the sentinel's tokens
    for text in SAMPLES[:-1]:
        sentinel = codes.encode("☺")
        full = codes.encode("☺" + text)
        assert full[: len(sentinel)] == sentinel
        assert full[len(sentinel) :] == codes.encode(text, leading_space=False)


def test_indented_line_keeps_its_spaces(codes: CodeTokens) -> None:
    """The 5.x bug: an indented line encoded alone lost its leading spaces."""
    ids = codes.encode("    return x", leading_space=False)
    pieces = "".join(hf_tokenizer(codes).convert_ids_to_tokens(ids))
    assert pieces.startswith("▁▁▁▁return")


def test_fim_tokens_found_by_string(codes: CodeTokens) -> None:
    assert codes.infill is not None
    tok = hf_tokenizer(codes)
    assert tok.convert_ids_to_tokens(codes.infill.prefix_id) == "▁<PRE>"
    assert tok.convert_ids_to_tokens(codes.infill.suffix_id) == "▁<SUF>"
    assert tok.convert_ids_to_tokens(codes.infill.middle_id) == "▁<MID>"
    assert tok.convert_ids_to_tokens(codes.infill.eot_id) == "▁<EOT>"
    fim = {codes.infill.prefix_id, codes.infill.suffix_id, codes.infill.middle_id}
    assert fim | {codes.infill.eot_id, codes.bos_id, codes.eos_id} <= codes.special_ids
    # <FILL_ME> exists in the tokenizer but is not part of the model's vocabulary
    assert len(tok) == codes.vocab_size + 1
    assert max(fim | {codes.infill.eot_id}) < codes.vocab_size


def test_document_text_never_becomes_special_tokens(codes: CodeTokens) -> None:
    ids = codes.encode("x = '</s> <s> ▁<PRE> <EOT> <FILL_ME>'")
    assert not set(ids) & codes.special_ids


def test_fim_prompt_layout(codes: CodeTokens) -> None:
    assert codes.infill is not None
    ids = codes.fim_ids("def f():\n    ", "\n    return 1\n")
    inf = codes.infill
    assert ids[:2] == [codes.bos_id, inf.prefix_id]
    assert ids[-1] == inf.middle_id
    s = ids.index(inf.suffix_id)
    assert ids[2:s] == codes.encode("def f():\n    ")
    assert ids[s + 1 : -1] == codes.encode("\n    return 1\n", leading_space=False)
    # no stray "▁" token after <SUF> (the built-in infill path adds one)
    assert hf_tokenizer(codes).convert_ids_to_tokens(ids[s + 1]) != "▁"


def test_decode_continuation_keeps_leading_space(codes: CodeTokens) -> None:
    ids = codes.encode(" 1", leading_space=False)
    assert hf_tokenizer(codes).convert_ids_to_tokens(ids)[0].startswith("▁")
    assert "x =" + codes.decode_continuation(ids) == "x = 1"
    assert codes.decode_continuation(codes.encode("    pass", leading_space=False)) == "    pass"


def test_decode_continuation_drops_special_tokens(codes: CodeTokens) -> None:
    assert codes.infill is not None
    body = codes.encode(" y\n", leading_space=False)
    inf = codes.infill
    assert codes.decode_continuation([inf.middle_id, *body, inf.eot_id]) == " y\n"
    assert codes.decode_continuation([*body, inf.eot_id, *body]) == " y\n"
    assert codes.decode_continuation([*body, codes.eos_id or 0, *body]) == " y\n"
    assert codes.decode_continuation([inf.eot_id]) == ""
    assert codes.decode_continuation([]) == ""
    # marker text spelled out in ordinary pieces is cut too
    spelled = codes.encode(" y <EOT> z", leading_space=False)
    assert codes.decode_continuation(spelled) == " y"
    for special in (inf.prefix_id, inf.suffix_id, codes.bos_id or 1):
        text = codes.decode_continuation([special, *body])
        assert "<" not in text and text == " y\n"


def test_count(codes: CodeTokens) -> None:
    assert codes.count("") == 0
    text = SAMPLES[0]
    assert codes.count(text) == len(codes.encode(text)) > 5


@pytest.mark.skipif(native_heap() is None, reason="needs glibc's mallinfo2")
def test_encoding_new_lines_keeps_memory_flat() -> None:
    """Typing sends a new line to the tokenizer with every key: its word cache must not keep
    them all (tokenizers' default kept 10,000, ~2 KB each, per copy: issue 17)."""
    codes = CodeTokens(load_tokenizer(str(demo_model_dir())))
    lines = [f"    result = compute(value_{i}, other={i * 7}, name='{i}')" for i in range(6000)]
    for line in lines[:2000]:  # fills a bounded cache
        codes.encode(line + "\n", leading_space=False)
        codes.encode(line)
    heap = native_heap()
    assert heap is not None
    before = heap["in_use_mib"]
    for line in lines[2000:]:
        codes.encode(line + "\n", leading_space=False)
        codes.encode(line)
    heap = native_heap()
    assert heap is not None
    # 8,000 new encodings: ~16 MiB kept with the default cache, none with a bounded one.
    assert heap["in_use_mib"] - before < 2


# --------------------------------------------------------------------- real Llama vocabulary

VOCAB_ENV = "CODELLAMA_LSP_LLAMA_VOCAB"
GGUF = "ggml-vocab-llama-spm.gguf"


def _reference_vectors(folder: Path) -> list[tuple[str, list[int]]]:
    raw = (folder / f"{GGUF}.inp").read_text(encoding="utf-8")
    inputs = raw.split("\n__ggml_vocab_test__\n")
    if inputs and inputs[-1] in ("", "\n"):
        inputs = inputs[:-1]
    outputs = (folder / f"{GGUF}.out").read_text(encoding="utf-8").split("\n")
    assert len(outputs) >= len(inputs)
    return [(t, [int(x) for x in o.split()]) for t, o in zip(inputs, outputs, strict=False)]


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real Llama-2 vocabulary saved as a CodeLlamaTokenizer with Code Llama's 16 extra pieces."""
    folder = os.environ.get(VOCAB_ENV)
    if not folder:
        pytest.skip(f"{VOCAB_ENV} not set (run scripts/fetch_llama_vocab.sh DEST)")
    src = Path(folder)
    assert (src / GGUF).exists(), f"{src / GGUF} missing"
    from transformers import AutoTokenizer, CodeLlamaTokenizer

    base = AutoTokenizer.from_pretrained(str(src), gguf_file=GGUF)
    state = json.loads(base.backend_tokenizer.to_str())
    vocab: dict[str, int] = dict(state["model"]["vocab"])
    assert len(vocab) == 32000
    merges = [
        tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["model"]["merges"]
    ]
    # Code Llama's pieces 32000-32015; the infill ones at their real ids, the rest placeholders
    infill = {32007: "▁<PRE>", 32008: "▁<SUF>", 32009: "▁<MID>", 32010: "▁<EOT>"}
    for i in range(32000, 32016):
        vocab[infill.get(i, f"<codellama_reserved_{i}>")] = i
    out = tmp_path_factory.mktemp("codellama-vocab")
    # Pairs work; the annotation names only the "a b" string form.
    CodeLlamaTokenizer(vocab=vocab, merges=merges).save_pretrained(str(out))  # type: ignore[arg-type]
    return out


def test_real_llama_vocab_matches_reference_vectors(llama_dir: Path) -> None:
    from transformers import AutoTokenizer

    vectors = _reference_vectors(Path(os.environ[VOCAB_ENV]))
    assert len(vectors) >= 40
    codes = CodeTokens(load_tokenizer(str(llama_dir)))
    wrong = [(t, codes.encode(t), ids) for t, ids in vectors if codes.encode(t) != ids]
    assert not wrong, f"{len(wrong)}/{len(vectors)} differ, first: {wrong[0]}"
    # and the fixed HF tokenizer itself agrees (no special-token text in these inputs)
    for text, ids in vectors:
        assert hf_tokenizer(codes)(text, add_special_tokens=False)["input_ids"] == ids
    # the unfixed 5.x tokenizer really is wrong on some of them (this is what we fix)
    raw = AutoTokenizer.from_pretrained(str(llama_dir))
    bad = sum(raw(t, add_special_tokens=False)["input_ids"] != ids for t, ids in vectors)
    assert bad > 0


def test_real_llama_vocab_code_llama_layout(llama_dir: Path) -> None:
    codes = CodeTokens(load_tokenizer(str(llama_dir)))
    assert codes.infill is not None
    assert (codes.infill.prefix_id, codes.infill.suffix_id) == (32007, 32008)
    assert (codes.infill.middle_id, codes.infill.eot_id) == (32009, 32010)
    assert codes.vocab_size == 32016
    assert (codes.bos_id, codes.eos_id) == (1, 2)
    # Meta's encode_infilling is encode("☺" + s)[2:]: "▁" then "☺"
    assert len(codes.encode("☺")) == 2
    for text in SAMPLES[:-1]:
        assert codes.encode("☺" + text)[2:] == codes.encode(text, leading_space=False)
        assert hf_tokenizer(codes).decode(codes.encode(text)) == text
        assert codes.decode_continuation(codes.encode(text, leading_space=False)) == text
    # known Llama-2 ids: "▁▁▁" is 1678 and "<0x0A>" 13
    assert codes.encode("\n", leading_space=False) == [13]
    assert codes.encode("   ", leading_space=False) == [1678]
    assert "x =" + codes.decode_continuation(codes.encode(" 1", leading_space=False)) == "x = 1"


def test_torch_free_tokenizer_gives_the_same_ids() -> None:
    """``load_tokenizer_files`` (``tokenizers`` alone, for the HTTP backend) builds the same
    CodeTokens as transformers' tokenizer: same specials, FIM ids and encodings."""
    from codellama_lsp.engines.tokenization import load_tokenizer_files

    full = CodeTokens(load_tokenizer(str(demo_model_dir())))
    light = CodeTokens(load_tokenizer_files(str(demo_model_dir())))
    for name in ("bos_id", "eos_id", "infill", "special_ids", "vocab_size", "newline_id"):
        assert getattr(light, name) == getattr(full, name), name
    for text in SAMPLES:
        assert light.encode(text) == full.encode(text)
        assert light.encode(text, leading_space=False) == full.encode(text, leading_space=False)
        ids = full.encode(text, leading_space=False)
        assert light.decode_continuation(ids) == full.decode_continuation(ids)


def test_real_llama_vocab_torch_free_matches_reference_vectors(llama_dir: Path) -> None:
    from codellama_lsp.engines.tokenization import load_tokenizer_files

    vectors = _reference_vectors(Path(os.environ[VOCAB_ENV]))
    codes = CodeTokens(load_tokenizer_files(str(llama_dir)))
    wrong = [(t, codes.encode(t), ids) for t, ids in vectors if codes.encode(t) != ids]
    assert not wrong, f"{len(wrong)}/{len(vectors)} differ, first: {wrong[0]}"
    full = CodeTokens(load_tokenizer(str(llama_dir)))
    assert (codes.infill, codes.vocab_size, codes.bos_id, codes.eos_id) == (
        full.infill,
        full.vocab_size,
        full.bos_id,
        full.eos_id,
    )
