"""OpenAI completion answers: the JSON objects, and server-sent events for ``stream: true``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from codellama_lsp.engines.base import GenerationRequest, GenerationResult


class TextStream:
    """Turns "the text so far" (called after every token) into deltas safe to send.

    Holds back a trailing partial UTF-8 character and any tail that could still become a stop
    sequence, so a streaming client never sees text the final answer will not contain.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.sent = ""

    def _safe(self, text: str) -> str:
        text = text.rstrip("\ufffd")
        hold = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(text)), 0, -1):
                if text.endswith(stop[:n]):
                    hold = max(hold, n)
                    break
        return text[: len(text) - hold]

    def push(self, text: str) -> str:
        return self._delta(self._safe(text))

    def finish(self, text: str) -> str:
        return self._delta(text)

    def _delta(self, text: str) -> str:
        if len(text) <= len(self.sent) or not text.startswith(self.sent):
            return ""
        delta, self.sent = text[len(self.sent) :], text
        return delta


def with_text_hook(gen: GenerationRequest, hook: Callable[[str], None]) -> GenerationRequest:
    """``gen`` with ``hook`` as its ``on_text`` (told the text after every token): streaming."""
    return replace(gen, on_text=hook)


def hand_over(
    loop: asyncio.AbstractEventLoop, deltas: asyncio.Queue[str | None], delta: str
) -> None:
    """From the worker thread: queue a delta for the event loop that streams it."""
    if delta:
        loop.call_soon_threadsafe(deltas.put_nowait, delta)


async def send_event(response: web.StreamResponse, data: dict[str, Any]) -> None:
    await response.write(f"data: {json.dumps(data)}\n\n".encode())


def openai_finish(result: GenerationResult) -> str:
    return "length" if result.finish_reason == "length" else "stop"


def usage(result: GenerationResult) -> dict[str, Any]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.generated_tokens,
        "total_tokens": result.prompt_tokens + result.generated_tokens,
        "prompt_tokens_details": {"cached_tokens": result.reused_prompt_tokens},
    }
