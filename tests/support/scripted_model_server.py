"""A model server whose answers are known in advance, for the editor tests.

The editor tests must tell "the editor dropped the suggestion" from "the model wrote nothing":
with the tiny demo model they cannot. This OpenAI-compatible server (the subset the HTTP engine
uses: ``/health``, ``/v1/models``, streaming ``/v1/completions``) knows the file the user is
typing (``--target``). For each prompt it finds the longest beginning of the target that the
prompt ends with, and answers the rest of that line of the target, streamed in small pieces.
So whatever was typed so far, the right ghost text is known: what the target has next on the
line. The language server runs unchanged in front of it (``backend = http``, demo tokenizer),
with its real prompt building and clean-up.

``--block-lines N`` answers N more lines of the target after that one (a block, as a big model
writes it), and ``--hold-after-lines K`` stops streaming after K newlines until ``POST /release``
(each release lets go the answers held then): the tests see what the editor shows while the rest
of a block is still being written, with no timing involved. ``--answers FILE`` (JSON: a list of
``[prompt end, answer]``) adds answers of several lines: the first whose prompt end the prompt
ends with is streamed instead.

    python tests/support/scripted_model_server.py --target FILE --port-file PATH [--piece-delay S]
        [--block-lines N] [--hold-after-lines K] [--answers FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from codellama_lsp.engines.model_names import resolve_model
from codellama_lsp.engines.tokenization import CodeTokens, load_tokenizer_files

MODEL = "demo"

TYPING_TARGET = (
    "import os\n\n\n"
    "def count_lines(path):\n"
    "    total = 0\n"
    "    with open(path) as handle:\n"
    "        for line in handle:\n"
    "            total += len(line)\n"
    "            print(line, os.sep)\n"
    "    return total\n"
)
"""The file the scripted tests type (protocol tests and the real editors)."""
TYPING_HEAD = TYPING_TARGET[: TYPING_TARGET.index("        for")]

INDENT_HEAD = "def total(items):\n{unit}total = 0\n{unit}"
"""A function body's start in a file indented with ``unit``; the cursor at its end."""
FOUR_SPACE_BODY = "for item in items:\n        total += item\n    return total"
"""What a model that writes four spaces answers there, whatever the file's indentation."""
NEW_FILE = "import os\n"
NEW_FILE_ANSWER = "def separator():\n    return os.sep"
"""A file with no indented line yet: the editor's options decide (tabs or N spaces)."""
INDENT_ANSWERS = [
    ("total = 0\n\t", FOUR_SPACE_BODY),
    ("total = 0\n  ", FOUR_SPACE_BODY),
    (NEW_FILE, NEW_FILE_ANSWER),
]

COMMENT_TYPED = "# count the "
MENU_SELECTED = "            total += len(line)"
"""The line with the completion menu's item in it (the ghost text must follow that item)."""
MENU_NEXT_LINE = "\n            print(line, os.sep)"
STRING_TYPED = 'name = "lines of '
RULE_ANSWERS = [
    *INDENT_ANSWERS,
    (COMMENT_TYPED, "lines in the file"),
    (STRING_TYPED, "the file"),
    (MENU_SELECTED, MENU_NEXT_LINE),
]
"""Answers in a comment and in a string too (shown only where the settings allow), and after
the completion menu's item (the next line)."""


def body_in(unit: str) -> str:
    """:data:`FOUR_SPACE_BODY` as it must be shown in a file indented with ``unit``."""
    return FOUR_SPACE_BODY.replace("    ", unit)


def continuation(target: str, prompt: str, more_lines: int = 0) -> str:
    """The rest of the target's line after the longest target beginning that ends ``prompt``,
    and ``more_lines`` lines after it."""
    for end in range(len(target), 0, -1):
        if prompt.endswith(target[:end]):
            return "\n".join(target[end:].split("\n")[: 1 + more_lines])
    return ""


def answer(target: str, answers: list[tuple[str, str]], prompt: str, more_lines: int = 0) -> str:
    """The first of ``answers`` whose prompt end ``prompt`` ends with, else the target's line
    (and ``more_lines`` after it)."""
    for end, text in answers:
        if prompt.endswith(end):
            return text
    return continuation(target, prompt, more_lines)


class ScriptedServer:
    def __init__(
        self,
        target: str,
        tokens: CodeTokens,
        piece_delay: float = 0.002,
        answers: list[tuple[str, str]] | None = None,
        block_lines: int = 0,
        hold_after_lines: int = 0,
    ) -> None:
        self.target = target
        self.tokens = tokens
        self.piece_delay = piece_delay
        self.answers = answers or []
        self.block_lines = block_lines
        self.hold_after_lines = hold_after_lines
        self.released = asyncio.Event()
        self.holding = 0
        """Answers waiting for a release now."""
        self.prompts: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/prompts", self.prompt_log)
        app.router.add_post("/release", self.release)
        app.router.add_get("/holding", self.holding_now)
        return app

    async def holding_now(self, request: web.Request) -> web.Response:
        return web.json_response(self.holding)

    async def release(self, request: web.Request) -> web.Response:
        """Let every answer held now go on (waiting up to a minute for one to be held, so that
        a release never comes too early); later ones are held again."""
        for _ in range(6000):
            if self.holding:
                break
            await asyncio.sleep(0.01)
        released = self.holding
        self.released.set()
        self.released = asyncio.Event()
        return web.json_response({"released": released})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ready", "model": MODEL, "message": "scripted"})

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    async def prompt_log(self, request: web.Request) -> web.Response:
        return web.json_response(self.prompts)

    def prompt_text(self, prompt: Any) -> str:
        if isinstance(prompt, str):
            return prompt
        ids = [int(i) for i in prompt]
        if ids and ids[0] == self.tokens.bos_id:
            ids = ids[1:]
        return self.tokens.decode_prompt(ids)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        prompt = self.prompt_text(body["prompt"])
        self.prompts.append(prompt)
        text = answer(self.target, self.answers, prompt, self.block_lines)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
        newlines, held = 0, False
        for piece in pieces:
            if self.hold_after_lines and newlines >= self.hold_after_lines and not held:
                held = True
                self.holding += 1
                try:
                    await self.released.wait()
                finally:
                    self.holding -= 1
            newlines += piece.count("\n")
            event = {"choices": [{"index": 0, "text": piece, "finish_reason": None}]}
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
            await asyncio.sleep(self.piece_delay)
        done = {"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}
        await response.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
        await response.write_eof()
        return response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, type=Path)
    parser.add_argument("--port-file", required=True, type=Path, help="written once listening")
    parser.add_argument(
        "--piece-delay", type=float, default=0.002, help="seconds between streamed pieces"
    )
    parser.add_argument("--block-lines", type=int, default=0, help="lines after the cursor's")
    parser.add_argument(
        "--hold-after-lines", type=int, default=0, help="newlines, then wait for POST /release"
    )
    parser.add_argument("--answers", type=Path, help="JSON list of [prompt end, answer]")
    args = parser.parse_args()
    tokens = CodeTokens(load_tokenizer_files(resolve_model(MODEL)))
    answers = (
        [(end, text) for end, text in json.loads(args.answers.read_text())] if args.answers else []
    )
    server = ScriptedServer(
        args.target.read_text(),
        tokens,
        args.piece_delay,
        answers,
        args.block_lines,
        args.hold_after_lines,
    )

    async def serve() -> None:
        runner = web.AppRunner(server.app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        args.port_file.write_text(str(port))
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
