"""Speculative decoding in the local engine: same output as plain decoding, fewer passes.

Greedy: token-for-token equality with plain decoding over 200+ prompts (prefix and FIM, with
and without KV reuse, with every draft source). Sampling is coupled (one uniform number per
position and seed): speculative sampling gives plain sampling's tokens, seed for seed, and the
sampler draws from the model's distribution (a chi-square test that can fail: it is shown to
catch a real change of distribution). Draft-model failures leave a working engine.
All on real (tiny random or demo) Llamas; forward passes are counted, never timed.
"""

from __future__ import annotations

import json
import math
import shutil
import threading
from collections import Counter
from collections.abc import Hashable
from pathlib import Path
from typing import TypeVar

import pytest
import torch

from codellama_lsp.engines.base import GenerationRequest, GenerationResult
from codellama_lsp.engines.decoding import Sampling
from codellama_lsp.engines.local import LocalEngine, vocabulary_mismatch
from codellama_lsp.engines.model_names import demo_model_dir
from tests.support import DEMO, wait_until
from tests.support.engines import load_engine
from tests.support.raw_client import RawClient

TINY = "random:hidden=64,layers=2,heads=4,seed=1"
OTHER_TINY = "random:hidden=64,layers=1,heads=4,seed=2"
SOURCE = Path(json.__file__).parent.joinpath("decoder.py").read_text().split("\n")
SOURCE += Path(threading.__file__).read_text().split("\n")[:300]
NEW_TOKENS = 10


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def request(
    prompt: tuple[int, ...],
    *,
    session: str = "doc",
    max_new_tokens: int = NEW_TOKENS,
    temperature: float = 0.0,
    draft_text: str = "",
    seed: int = 0,
) -> GenerationRequest:
    return GenerationRequest(
        prompt_ids=prompt,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=0.9 if temperature else 1.0,
        session=session,
        draft_text=draft_text,
        seed=seed,
    )


def prompts(engine: LocalEngine, count: int) -> list[tuple[int, ...]]:
    """Prefix and FIM prompts at many places of two standard-library files."""
    tokens = engine.tokens
    out: list[tuple[int, ...]] = []
    for i in range(count):
        line = 10 + (i * 7) % (len(SOURCE) - 20)
        before = "\n".join(SOURCE[max(0, line - 12) : line]) + "\n" + SOURCE[line][: i % 9]
        if i % 2:
            after = "\n".join(SOURCE[line + 1 : line + 4])
            out.append(tuple(tokens.fim_ids(before, after)))
        else:
            out.append((tokens.bos_id or 1, *tokens.encode(before)))
    return out


def test_greedy_speculative_output_equals_plain_decoding_over_200_prompts() -> None:
    plain = load_engine(TINY, speculative=False, kv_cache_slots=0)
    lookup = load_engine(TINY, kv_cache_slots=0)  # lookup + previous-suggestion drafts, adaptive k
    drafted = load_engine(
        TINY, draft_model=TINY, speculative_max_draft=4
    )  # self-draft, KV reuse on
    drafted.adaptive_draft = False  # always 4 drafts: every token goes through verification
    try:
        assert drafted.draft_model is not None, drafted.warning
        checked = 0
        for i, prompt in enumerate(prompts(plain, 200)):
            expected = plain.generate(request(prompt), threading.Event())
            # Drafts from the previous suggestion: sometimes right, sometimes another text.
            hint = expected.text if i % 3 == 0 else ("x = y\n" if i % 3 == 1 else "")
            for engine in (lookup, drafted):
                got = engine.generate(request(prompt, draft_text=hint), threading.Event())
                assert got.token_ids == expected.token_ids, (i, engine.settings.draft_model)
                assert (got.text, got.finish_reason) == (expected.text, expected.finish_reason)
                checked += 1
            for slot in drafted.kv._slots.values():
                assert slot.cache.get_seq_length() == len(slot.ids)
        assert checked == 400
        # Every source was used, and the self-draft was always right.
        assert lookup.budgets["previous"].drafted_total > 0
        assert lookup.budgets["lookup"].drafted_total > 0
        assert drafted.budgets["draft_model"].drafted_total > 0
    finally:
        for engine in (plain, lookup, drafted):
            engine.close()


def test_self_draft_accepts_everything_and_needs_one_pass_per_k_plus_1_tokens() -> None:
    engine = load_engine(TINY, draft_model=TINY, speculative_max_draft=4, kv_cache_slots=0)
    engine.adaptive_draft = False
    engine.draft_sources = ("draft_model",)
    try:
        prompt = prompts(engine, 1)[0]
        result = engine.generate(request(prompt, max_new_tokens=31, session="s"), threading.Event())
        if result.finish_reason != "length":
            pytest.skip("the random model stopped early on this prompt")
        assert result.drafted["draft_model"] == result.accepted_drafts["draft_model"]
        # 31 tokens: 1 from the prefill, then 6 passes of 1 + 4 drafted tokens.
        assert result.decode_passes == 6
        assert result.verify_passes["draft_model"] == 6
    finally:
        engine.close()


def test_cancel_during_verification_leaves_a_reusable_cache() -> None:
    plain = load_engine(TINY, speculative=False, kv_cache_slots=0)
    engine = load_engine(TINY, draft_model=TINY, speculative_max_draft=4)
    engine.adaptive_draft = False
    engine.draft_sources = ("draft_model",)
    try:
        prompt = prompts(engine, 3)[2]
        cancel = threading.Event()
        calls = [0]

        def hook(*_args: object) -> None:
            calls[0] += 1
            if calls[0] == 3:  # prefill, first verification, second verification
                cancel.set()

        handle = engine.model.register_forward_hook(hook)
        try:
            result = engine.generate(request(prompt, max_new_tokens=40), cancel)
        finally:
            handle.remove()
        assert result.cancelled and result.text == ""
        assert calls[0] == 3  # nothing ran after the pass during which the flag was set
        assert result.generated_tokens == 2 * 5  # 1 + 4 drafts per pass, all kept
        slot = engine.kv._slots["doc"]
        assert slot.cache.get_seq_length() == len(slot.ids) == len(prompt) + 10
        draft_slot = engine.draft_kv._slots["doc"]
        assert draft_slot.cache.get_seq_length() == len(draft_slot.ids)
        again = engine.generate(request(prompt, max_new_tokens=40), threading.Event())
        assert again.reused_prompt_tokens == len(prompt) - 1
        fresh = plain.generate(request(prompt, max_new_tokens=40), threading.Event())
        assert again.token_ids == fresh.token_ids
    finally:
        plain.close()
        engine.close()


def test_background_prefill_still_generates_nothing() -> None:
    engine = load_engine(TINY, draft_model=TINY)
    try:
        prompt = prompts(engine, 1)[0]
        result = engine.generate(request(prompt, max_new_tokens=0), threading.Event())
        assert result.generated_tokens == 0 and result.decode_passes == 0
        assert engine.kv._slots["doc"].ids == list(prompt)
        assert engine.draft_kv._slots["doc"].ids == list(prompt)
    finally:
        engine.close()


# ------------------------------------------------------------------ sampling distribution


K = TypeVar("K", bound=Hashable)


def chi_square_differs(a: Counter[K], b: Counter[K]) -> bool:
    """Two-sample chi-square test at p < 0.001 (categories under 5 expected merged)."""
    n_a, n_b = sum(a.values()), sum(b.values())
    keys = sorted(set(a) | set(b), key=lambda k: -(a[k] + b[k]))
    big = [k for k in keys if (a[k] + b[k]) * min(n_a, n_b) / (n_a + n_b) >= 5]
    rest_a = n_a - sum(a[k] for k in big)
    rest_b = n_b - sum(b[k] for k in big)
    cells = [(a[k], b[k]) for k in big] + ([(rest_a, rest_b)] if rest_a + rest_b else [])
    if len(cells) < 2:
        return False
    stat = 0.0
    for x, y in cells:
        total = x + y
        for observed, n in ((x, n_a), (y, n_b)):
            expected = total * n / (n_a + n_b)
            stat += (observed - expected) ** 2 / expected
    df = len(cells) - 1
    z = 3.09  # one-sided p = 0.001; Wilson-Hilferty approximation of the critical value
    critical = df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3
    return stat > critical


def samples(
    engine: LocalEngine, prompt: tuple[int, ...], n: int, temperature: float, draft: str = ""
) -> list[tuple[int, ...]]:
    """The tokens generated for seeds 0..n-1."""
    found = []
    for seed in range(n):
        result = engine.generate(
            request(
                prompt,
                max_new_tokens=3,
                temperature=temperature,
                seed=seed,
                session="",
                draft_text=draft,
            ),
            threading.Event(),
        )
        found.append(tuple(result.token_ids))
    return found


def test_speculative_sampling_gives_plain_sampling_s_tokens_seed_for_seed() -> None:
    """Demo model at temperature 0.7 / top_p 0.9. Drafts: the likeliest continuation as the
    previous suggestion (often rejected), then a different (random) model's samples."""
    plain = load_engine("demo", speculative=False, kv_cache_slots=0)
    spec = load_engine("demo", draft_model=OTHER_TINY, speculative_max_draft=2, kv_cache_slots=0)
    spec.adaptive_draft = False
    spec.draft_sources = ("previous", "draft_model")
    try:
        assert spec.draft_model is not None, spec.warning
        tokens = plain.tokens
        prompt = (tokens.bos_id or 1, *tokens.encode("import os\nimport sys\n\n\ndef main("))
        n = 200
        reference = samples(plain, prompt, n, 0.7)
        speculative = samples(spec, prompt, n, 0.7, draft="self):\n    pass\n")
        assert len(set(reference)) > 3, "too little spread for a meaningful test"
        assert spec.budgets["previous"].drafted_total > 0
        assert spec.budgets["draft_model"].drafted_total > 0
        assert speculative == reference
        # Another temperature is another distribution, and the test below would see it.
        assert chi_square_differs(Counter(reference), Counter(samples(plain, prompt, n, 1.4)))
    finally:
        plain.close()
        spec.close()


def test_coupled_sampler_draws_from_the_model_distribution() -> None:
    """Goodness of fit of the inverse-CDF sampler against the distribution it should follow."""
    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(40, generator=generator) * 2
    sampling = Sampling(0.7, 0.9, 40, torch.tensor([3], dtype=torch.long), seed=11)
    probs = sampling.probs(logits.clone())
    assert probs[3] == 0 and abs(float(probs.sum()) - 1) < 1e-5
    n = 3000
    drawn = Counter(sampling.sample(logits.clone(), position) for position in range(n))
    assert 3 not in drawn and all(probs[token] > 0 for token in drawn)
    expected = Counter({i: round(float(p) * n) for i, p in enumerate(probs) if p > 0})
    assert not chi_square_differs(drawn, expected)
    hotter = Sampling(1.4, 0.9, 40, torch.tensor([3], dtype=torch.long), seed=11)
    assert chi_square_differs(drawn, Counter(hotter.sample(logits.clone(), k) for k in range(n)))


# ------------------------------------------------------------------ draft-model failures


def test_missing_draft_model_is_reported_and_the_engine_serves_without_it(
    tmp_path: Path,
) -> None:
    engine = load_engine(TINY, draft_model=str(tmp_path / "no-such-model"))
    try:
        assert engine.model is not None and engine.draft_model is None
        assert "no-such-model" in engine.warning and "not used" in engine.warning
        prompt = prompts(engine, 1)[0]
        assert engine.generate(request(prompt), threading.Event()).finish_reason != "error"
    finally:
        engine.close()


def test_draft_model_with_another_tokenizer_is_refused_clearly(tmp_path: Path) -> None:
    other = tmp_path / "other-tokenizer"
    other.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(demo_model_dir() / name, other / name)
    state = json.loads((other / "tokenizer.json").read_text())
    vocab = state["model"]["vocab"]
    a, b = "▁return", "▁self"
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (other / "tokenizer.json").write_text(json.dumps(state))
    engine = load_engine(TINY, draft_model=str(other))
    try:
        assert engine.draft_model is None
        assert "tokenizer differs" in engine.warning, engine.warning
        assert "▁return" in engine.warning or "▁self" in engine.warning
        assert vocabulary_mismatch(engine.tokens, engine.tokens) == ""
        result: GenerationResult = engine.generate(
            request(prompts(engine, 1)[0]), threading.Event()
        )
        assert result.finish_reason != "error"
    finally:
        engine.close()


# ------------------------------------------------------------------ the previous suggestion


def test_previous_suggestion_draft_follows_the_typing() -> None:
    from codellama_lsp.completion.cache import TypingThrough

    typing = TypingThrough()
    typing.remember("a.py", "x = fo", "", "o(bar, baz)")
    assert typing.draft("a.py", "x = foo(") == "bar, baz)"  # typed its first characters
    assert typing.draft("a.py", "x = fox") == "o(bar, baz)"  # typed something else
    assert typing.draft("a.py", "x = f") == "oo(bar, baz)"  # deleted back a little
    assert typing.draft("a.py", "y = 1") == ""  # elsewhere
    assert typing.draft("b.py", "x = fo") == ""
    typing.lookup("a.py", "x = fox", "")  # typing-through forgets it; the draft stays
    assert typing.draft("a.py", "x = foo(") == "bar, baz)"
    typing.forget("a.py")
    assert typing.draft("a.py", "x = foo(") == ""


@pytest.mark.timeout(180)
def test_server_warns_about_a_draft_model_it_cannot_load_and_keeps_completing(
    tmp_path: Path,
) -> None:
    client = RawClient()
    try:
        client.initialize({**DEMO, "draft_model": str(tmp_path / "my-draft")})
        status = client.wait_state("ready", timeout=60)
        assert "my-draft" in status["message"] and "not used" in status["message"]
        messages = wait_until(client.messages, 10, "a window/showMessage")
        assert any("my-draft" in m for m in messages)
        client.open("file:///a.py", "import os\n\n\ndef list_files(root):\n    found = []\n    ")
        assert client.inline("file:///a.py", 5, 4)
    finally:
        client.close()
