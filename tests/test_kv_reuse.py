"""KV prefix reuse and cancellation in the local engine (demo model, no server).

Greedy output with a reused KV cache must equal a fresh run; a stop flag must end the work
within one prefill chunk or one decode step, counted in forward passes, not in wall time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from codellama_lsp.engines.base import GenerationRequest, GenerationResult
from codellama_lsp.engines.local import KVSlots, LocalEngine
from tests.support.engines import load_engine

SOURCE = Path(threading.__file__).read_text().split("\n")[:140]
CHUNK = 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def engines() -> Iterator[tuple[LocalEngine, LocalEngine]]:
    reusing = load_engine(prefill_chunk_tokens=CHUNK, kv_cache_slots=2)
    fresh = load_engine(prefill_chunk_tokens=CHUNK, kv_cache_slots=0)
    yield reusing, fresh
    reusing.close()
    fresh.close()


def prompt_of(engine: LocalEngine, lines: list[str]) -> tuple[int, ...]:
    tokens = engine.tokens
    return tuple([tokens.bos_id or 1, *tokens.encode("\n".join(lines) + "\n")])


def run(
    engine: LocalEngine, prompt: tuple[int, ...], *, cancel: threading.Event | None = None
) -> GenerationResult:
    request = GenerationRequest(
        prompt_ids=prompt, max_new_tokens=8, temperature=0.0, top_p=1.0, session="doc"
    )
    return engine.generate(request, cancel or threading.Event())


def edits() -> list[tuple[str, list[str]]]:
    base = SOURCE[:30]
    appended = [*base, "    def run_more(self):"]
    mid = [*appended]
    mid[15] = mid[15] + "  # edited"
    deleted = mid[:25] + mid[26:]
    return [("base", base), ("append", appended), ("mid-file edit", mid), ("deletion", deleted)]


def test_reused_output_equals_fresh_output(engines: tuple[LocalEngine, LocalEngine]) -> None:
    reusing, fresh = engines
    reusing.kv.clear()
    for name, lines in edits():
        prompt = prompt_of(reusing, lines)
        with_reuse, without = run(reusing, prompt), run(fresh, prompt)
        assert with_reuse.token_ids == without.token_ids, name
        assert with_reuse.text == without.text, name
        assert without.reused_prompt_tokens == 0
        if name != "base":
            assert with_reuse.reused_prompt_tokens > 50, name
    # Every slot's cache holds exactly the ids it claims.
    for slot in reusing.kv._slots.values():
        assert slot.cache.get_seq_length() == len(slot.ids)


@contextmanager
def forwards_counted(
    engine: LocalEngine, stop_at: int, cancel: threading.Event
) -> Iterator[list[int]]:
    """Count the model's forward passes; set ``cancel`` during pass number ``stop_at``."""
    calls = [0]

    def hook(*_args: object) -> None:
        calls[0] += 1
        if calls[0] == stop_at:
            cancel.set()

    handle = engine.model.register_forward_hook(hook)
    try:
        yield calls
    finally:
        handle.remove()


@pytest.mark.parametrize("stop_at", [1, 3])
def test_cancel_during_prefill_stops_after_that_chunk(
    engines: tuple[LocalEngine, LocalEngine], stop_at: int
) -> None:
    reusing, _ = engines
    reusing.kv.clear()
    prompt = prompt_of(reusing, SOURCE[:40])
    assert len(prompt) > 5 * CHUNK
    cancel = threading.Event()
    with forwards_counted(reusing, stop_at, cancel) as calls:
        result = run(reusing, prompt, cancel=cancel)
    assert result.cancelled and result.text == "" and result.generated_tokens == 0
    assert calls[0] == stop_at  # no forward pass after the one during which the flag was set
    assert result.prompt_tokens == stop_at * CHUNK  # the work done, kept for the next request
    again = run(reusing, prompt)
    assert again.reused_prompt_tokens == stop_at * CHUNK


def test_cancel_during_decode_stops_after_that_step(
    engines: tuple[LocalEngine, LocalEngine],
) -> None:
    reusing, _ = engines
    reusing.kv.clear()
    prompt = prompt_of(reusing, SOURCE[:20])
    chunks = -(-len(prompt) // CHUNK)
    cancel = threading.Event()
    with forwards_counted(reusing, chunks + 2, cancel) as calls:  # the second decode step
        result = run(reusing, prompt, cancel=cancel)
    assert result.cancelled and result.text == ""
    assert calls[0] == chunks + 2
    assert result.generated_tokens == 2  # sampled before the flag was seen


def test_kv_slots_respect_their_bounds() -> None:
    def cache_of(n: int) -> object:
        return torch.zeros(n)

    slots = KVSlots(max_slots=2, max_tokens=300)
    for session, n in [("a", 100), ("b", 120), ("c", 90), ("d", 150)]:
        slots.put(session, list(range(n)), cache_of(n))  # type: ignore[arg-type]
        assert len(slots) <= 2 and slots.total_tokens <= 300
    slots.put("huge", list(range(301)), cache_of(301))  # type: ignore[arg-type]
    assert slots.total_tokens <= 300 and len(slots) <= 2
    assert KVSlots(max_slots=0, max_tokens=300).take("a", (1, 2, 3)) == (None, 0)


def test_engine_keeps_kv_memory_bounded() -> None:
    engine = load_engine(prefill_chunk_tokens=CHUNK, kv_cache_slots=3, kv_cache_max_tokens=400)
    try:
        for i in range(4):
            prompt = prompt_of(engine, SOURCE[i * 8 : i * 8 + 16])
            run_request = GenerationRequest(
                prompt_ids=prompt,
                max_new_tokens=4,
                temperature=0.0,
                top_p=1.0,
                session=f"doc{i}",
            )
            engine.generate(run_request, threading.Event())
            assert len(engine.kv) <= 3
            assert engine.kv.total_tokens <= 400
            held = sum(s.cache.get_seq_length() for s in engine.kv._slots.values())
            assert held == engine.kv.total_tokens
    finally:
        engine.close()
