"""The speed mechanisms, seen through the real server over stdio (counters, not timings)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lsprotocol import types

from tests.support import GREEDY
from tests.support.documents import SAMPLE, end_of
from tests.support.lsp_session import lsp_session

ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # far faster for a tiny model on a busy 2-core machine
LONG = Path(asyncio.__file__).parent.joinpath("tasks.py").read_text()[:30000]


def text_of(item: types.InlineCompletionItem) -> str:
    assert isinstance(item.insert_text, str)
    return item.insert_text


async def test_repeated_request_and_typing_through_need_no_generation() -> None:
    async with lsp_session(env=ONE_THREAD) as s:
        uri = "file:///project/walk.py"
        s.open(uri, SAMPLE)
        line, col = end_of(SAMPLE)
        first = await s.inline(uri, line, col)
        assert first, "the demo model completes this sample"
        shown = text_of(first[0])
        assert len(shown) >= 3
        before = await s.stats()
        assert before["generations_started"] == 1

        again = await s.inline(uri, line, col)
        assert [text_of(i) for i in again] == [shown]
        after = await s.stats()
        assert after["generations_started"] == 1
        assert after["cache_hits"] == before["cache_hits"] + 1

        # Type the first two characters of what was shown: the rest comes back, no model.
        for typed in (1, 2):
            s.edit(uri, (line, col + typed - 1), (line, col + typed - 1), shown[typed - 1])
            items = await s.inline(uri, line, col + typed)
            assert [text_of(i) for i in items] == [shown[typed:]]
        stats = await s.stats()
        assert stats["generations_started"] == 1
        assert stats["typing_through_hits"] == 2

        # Typing something else forgets it: the model runs again.
        s.edit(uri, (line, col + 2), (line, col + 2), "\u00a7")
        await s.inline(uri, line, col + 3)
        assert (await s.stats())["generations_started"] == 2


async def test_superseded_requests_are_cancelled_and_never_answered() -> None:
    # One token per prefill chunk makes the long prompt's prefill slow enough to interrupt.
    options = {**GREEDY, "prefill_chunk_tokens": 1, "max_context_tokens": 2048}
    async with lsp_session(options, env=ONE_THREAD) as s:
        uri = "file:///project/tasks.py"
        s.open(uri, LONG)
        line, col = end_of(LONG)
        params = s.inline_params(uri, line, col)
        first = asyncio.ensure_future(s.client.text_document_inline_completion_async(params))
        await s.wait_stats(lambda st: st["generations_started"] >= 1)

        # The user types on; the client never sends $/cancelRequest (as Neovim).
        s.edit(uri, (line, col), (line, col), "x")
        second = asyncio.ensure_future(
            s.client.text_document_inline_completion_async(s.inline_params(uri, line, col + 1))
        )
        old = await asyncio.wait_for(first, 60)
        assert old is None or not getattr(old, "items", old), "a superseded result was shown"
        stats = await s.wait_stats(lambda st: st["generations_cancelled"] >= 1)
        assert stats["requests_superseded"] >= 1
        assert stats["timings_ms"]["cancel_to_idle_prefill"]["count"] >= 1
        # Closing the document stops the newer one too.
        await s.wait_stats(lambda st: st["generations_started"] >= 2)
        s.client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        latest = await asyncio.wait_for(second, 60)
        assert latest is None or not getattr(latest, "items", latest)
        await s.wait_stats(lambda st: st["generations_cancelled"] >= 2)


async def test_accepting_a_completion_prefetches_the_next_one() -> None:
    async with lsp_session(env=ONE_THREAD) as s:
        uri = "file:///project/accept.py"
        s.open(uri, SAMPLE)
        line, col = end_of(SAMPLE)
        items = await s.inline(uri, line, col)
        assert items and items[0].command is not None
        text = text_of(items[0])

        # The editor inserts the item, then runs its command.
        s.edit(uri, (line, col), (line, col), text)
        await s.command(items[0].command.command, *(items[0].command.arguments or []))
        stats = await s.wait_stats(
            lambda st: st["prefetches"] == 1 and st["generations_completed"] == 2
        )
        assert stats["accepted"] == 1

        new_line, new_col = end_of(SAMPLE + text)
        await s.inline(uri, new_line, new_col)
        after = await s.stats()
        assert after["generations_started"] == stats["generations_started"]
        assert after["cache_hits"] == stats["cache_hits"] + 1


async def test_prefetch_never_supersedes_a_newer_request() -> None:
    from codellama_lsp.completion.completer import Completer
    from codellama_lsp.config import Settings
    from codellama_lsp.cursor import Cursor
    from codellama_lsp.engines.local import LocalEngine

    settings = Settings().merged({**GREEDY, "debounce_ms": 300})
    engine = LocalEngine(settings)
    engine.load(lambda _message, _percent: None)
    completer = Completer(settings, engine=engine)
    uri = "file:///project/prefetch.py"
    line, col = end_of(SAMPLE)
    typed_on = Cursor(SAMPLE + "x", line, col + 1)
    request = asyncio.ensure_future(completer.complete(uri, typed_on))
    await asyncio.sleep(0.05)  # the user's request waits in its debounce
    await completer.prefetch(uri, Cursor(SAMPLE, line, col))  # a late prefetch
    assert completer.stats.counts["requests_superseded"] == 0
    await request
    assert completer.stats.counts["generations_started"] == 1
    completer.scheduler.shutdown()
    engine.close()


async def test_a_fast_model_answers_without_a_debounce_once_measured() -> None:
    # The default (adaptive) debounce; 12 new tokens: the demo model answers in ~30 ms.
    options = {"model": "demo", "temperature": 0, "max_new_tokens": 12}
    async with lsp_session(options, env=ONE_THREAD) as s:
        uri = "file:///project/fast.py"
        s.open(uri, SAMPLE)
        line, col = end_of(SAMPLE)
        for typed in ("f", "o", "r"):
            s.edit(uri, (line, col), (line, col), typed)
            col += 1
            await s.inline(uri, line, col)
        waits = (await s.stats())["timings_ms"]["debounce_wait"]
        # The first request waits as before; the demo model then proves faster than a pause.
        assert waits["count"] == 3 and waits["max"] == 60 and waits["p50"] == 0


async def test_an_idle_model_keeps_the_cache_at_the_cursor_while_the_user_types() -> None:
    # A slow model waits for a pause; meanwhile each edit prefills the prompt up to the cursor
    # (a whole one at a new place, then the few tokens typed since), so the request at the
    # pause prefills the word being typed, not the place's prompt or the line typed since.
    options = {**GREEDY, "max_context_tokens": 2048, "prompt_format": "prefix"}
    async with lsp_session(options, env=ONE_THREAD) as s:
        uri = "file:///project/tasks.py"
        s.open(uri, LONG)
        line = len(LONG.split("\n")) // 2
        s.edit(uri, (line, 0), (line, 0), "    x")  # the user starts typing there
        stats = await s.wait_stats(lambda st: st["idle_prefills_completed"] == 1)
        assert stats["generations_started"] == 0
        assert stats["idle_prefill_tokens"] > 1000
        typed = " = compute(values, limit=10) + offset"
        s.edit(uri, (line, 5), (line, 5), typed)
        stats = await s.wait_stats(lambda st: st["idle_prefills_completed"] == 2)
        assert stats["generations_started"] == 0

        await s.inline(uri, line, 5 + len(typed))
        stats = await s.stats()
        assert stats["generations_started"] == 1
        assert stats["reused_prompt_tokens"] >= stats["idle_prefill_tokens"] - 8
        assert stats["prompt_tokens"] - stats["reused_prompt_tokens"] <= 4


async def test_a_request_elsewhere_stops_the_idle_prefill_one_here_waits_for_it() -> None:
    # Eight tokens per prefill chunk make the background prefill slow enough to interrupt.
    options = {**GREEDY, "max_context_tokens": 2048, "prefill_chunk_tokens": 8}
    async with lsp_session({**options, "prompt_format": "prefix"}, env=ONE_THREAD) as s:
        uri, other = "file:///project/tasks.py", "file:///project/walk.py"
        s.open(uri, LONG)
        s.open(other, SAMPLE)
        line = len(LONG.split("\n")) // 2
        s.edit(uri, (line, 0), (line, 0), "    x")
        await s.wait_stats(lambda st: st["idle_prefills_started"] == 1)
        # A request on that line needs the same tokens first: it queues behind the prefill.
        await s.inline(uri, line, 5)
        stats = await s.stats()
        assert stats["idle_prefills_completed"] == 1 and stats["idle_prefills_stopped"] == 0
        assert stats["reused_prompt_tokens"] >= stats["idle_prefill_tokens"] - 8 > 1000

        # The user moves further down and types: a new prefill, stopped by a request elsewhere.
        s.edit(uri, (line * 3 // 2, 0), (line * 3 // 2, 0), "    y")
        await s.wait_stats(lambda st: st["idle_prefills_started"] == 2)
        await s.inline(other, *end_of(SAMPLE))
        stats = await s.stats()
        assert stats["idle_prefills_stopped"] == 1
        assert stats["generations_completed"] == 2 + stats["parse_check_retries"]
