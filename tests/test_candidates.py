"""Several candidates when the user asks explicitly; one while typing."""

from __future__ import annotations

import dataclasses

from lsprotocol import types

from codellama_lsp.completion.candidates import add_distinct, alternative_requests
from codellama_lsp.engines.base import GenerationRequest
from tests.support import GREEDY
from tests.support.documents import SAMPLE, end_of
from tests.support.lsp_session import lsp_session


def test_candidates_that_clean_up_to_the_same_text_count_once() -> None:
    kept = ["x = 1"]
    assert not add_distinct(kept, "x = 1   \n")  # trailing whitespace only
    assert not add_distinct(kept, "  \n")
    assert add_distinct(kept, "x = 2")
    assert not add_distinct(kept, "x = 2")
    assert kept == ["x = 1", "x = 2"]


def test_alternatives_sample_with_new_seeds_even_when_greedy() -> None:
    base = GenerationRequest(prompt_ids=(1, 2), max_new_tokens=8, temperature=0.0, top_p=0.9)
    requests = alternative_requests(base, 2)
    assert len({r.seed for r in requests}) == len(requests) >= 2
    assert base.seed not in {r.seed for r in requests}
    assert all(r.temperature > 0 for r in requests)
    assert all(dataclasses.replace(r, seed=0, temperature=0.0) == base for r in requests)


async def test_invoked_request_gives_distinct_candidates_sharing_the_prompt_cache() -> None:
    async with lsp_session(GREEDY) as s:
        uri = "file:///project/files.py"
        s.open(uri, SAMPLE)
        line, col = end_of(SAMPLE)
        typed = await s.inline(uri, line, col)
        assert len(typed) == 1  # typing (automatic trigger) gets one item
        before = await s.stats()

        params = s.inline_params(uri, line, col)
        params.context.trigger_kind = types.InlineCompletionTriggerKind.Invoked
        result = await s.client.text_document_inline_completion_async(params)
        assert isinstance(result, types.InlineCompletionList)
        items = result.items
        texts = [item.insert_text for item in items]
        # The first candidate is what typing showed; the others differ from it and each other.
        assert texts[0] == typed[0].insert_text
        assert 2 <= len(items) <= 3
        assert len(set(texts)) == len(texts)
        for item in items:
            assert item.range == typed[0].range
            assert item.command is not None and item.command.arguments is not None
            argument = item.command.arguments[0]
            assert isinstance(argument, dict) and argument["text"] == item.insert_text

        after = await s.stats()
        generated = after["candidates_generated"] - before["candidates_generated"]
        assert generated >= len(items) - 1
        # Each extra candidate re-fed at most the prompt's last token: no second prefill.
        prompt = after["prompt_tokens"] - before["prompt_tokens"]
        reused = after["reused_prompt_tokens"] - before["reused_prompt_tokens"]
        assert prompt - reused <= generated


async def test_candidates_setting_of_one_keeps_a_single_item() -> None:
    async with lsp_session({**GREEDY, "candidates": 1}) as s:
        uri = "file:///project/files.py"
        s.open(uri, SAMPLE)
        params = s.inline_params(uri, *end_of(SAMPLE))
        params.context.trigger_kind = types.InlineCompletionTriggerKind.Invoked
        result = await s.client.text_document_inline_completion_async(params)
        assert isinstance(result, types.InlineCompletionList) and len(result.items) == 1
