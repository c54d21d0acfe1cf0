"""The demo model's training text: permissive licences only, and a held-out split it never sees."""

from __future__ import annotations

import pytest

from codellama_lsp.demo import corpus as demo_corpus
from codellama_lsp.demo.model import _Sampler
from codellama_lsp.engines.model_names import demo_model_dir
from codellama_lsp.engines.tokenization import CodeTokens, load_tokenizer


@pytest.mark.parametrize(
    ("licence", "permissive"),
    [
        ("MIT", True),
        ("Apache-2.0 AND MIT", True),
        ("MIT OR Apache-2.0", True),
        ("Apache-2.0 OR BSD-2-Clause", True),
        ("BSD-3-Clause", True),
        ("Apache 2.0 License", True),
        ("Apache Software License", True),
        ("PSF-2.0", True),
        ("BSD", True),
        ("MPL-2.0", False),
        ("MPL-2.0 AND MIT", False),  # tqdm: one term is not permissive
        ("BSD-3-Clause AND 0BSD AND MIT AND Zlib AND CC0-1.0", False),
        ("Apache-2.0 AND CNRI-Python", False),
        ("GPL-3.0-or-later", False),
        ("MPL-2.0 OR GPL-2.0", False),
        ("", False),
        ("Proprietary", False),
    ],
)
def test_only_mit_bsd_apache_and_psf_licences_are_taken(licence: str, permissive: bool) -> None:
    assert demo_corpus.is_permissive(licence) is permissive


def test_installed_packages_are_chosen_by_their_licence_metadata() -> None:
    sources = {f.name.split("/", 1)[0] for f in demo_corpus.package_sources()}
    assert {"pygls", "cachetools", "aiohttp"} <= sources  # Apache-2.0, MIT, Apache-2.0 AND MIT
    assert not sources & {"hypothesis", "tqdm", "certifi"}  # MPL terms
    assert "codellama-lsp" not in sources  # our own code is what the tests complete


def test_each_package_is_capped_and_tests_are_left_out() -> None:
    per_package: dict[str, int] = {}
    for f in demo_corpus.package_sources():
        package = f.name.split("/", 1)[0]
        per_package[package] = per_package.get(package, 0) + f.path.stat().st_size
        assert "/tests/" not in f.name and "/test/" not in f.name
    assert max(per_package.values()) <= demo_corpus.MAX_PACKAGE_BYTES


def test_the_held_out_split_is_fixed_by_name_and_disjoint_from_training() -> None:
    train = {f.name for f in demo_corpus.corpus("train")}
    held_out = {f.name for f in demo_corpus.corpus("held-out")}
    assert train and held_out and not train & held_out
    share = len(held_out) / (len(train) + len(held_out))
    assert 0.02 < share < 0.09  # about one in HELD_OUT_EVERY
    assert all(demo_corpus.is_held_out(n) for n in held_out)
    assert not any(demo_corpus.is_held_out(n) for n in train)
    # the split depends on the name only, so it is the same on every machine
    assert demo_corpus.is_held_out("stdlib/csv.py") and not demo_corpus.is_held_out(
        "stdlib/json/decoder.py"
    )
    with pytest.raises(ValueError):
        demo_corpus.corpus("test")


def test_training_middles_are_real_spans_that_end_where_suggestions_end() -> None:
    codes = CodeTokens(load_tokenizer(str(demo_model_dir())))
    texts = demo_corpus.read_texts(demo_corpus.stdlib_sources()[:60])
    sampler = _Sampler(texts, codes, seq_len=256, seed=5)
    parts = [sampler.fim_parts() for _ in range(1000)]
    assert all(middle.strip() for _, middle, _ in parts)  # never empty: no <EOT> at once
    at_line_end = sum(
        middle.endswith("\n") or not suffix or suffix.startswith(("\n", "\r"))
        for _, middle, suffix in parts
    )
    assert at_line_end / len(parts) > 0.85
    for prefix, middle, suffix in parts[:50]:
        assert prefix + middle + suffix  # a chunk of a real file, cut in three
