"""The real ``codellama-lsp`` server with a continuation-oracle engine, for benchmarks/quality.py.

The oracle stands in for a perfect model: it answers with what truly follows the cursor in the
original file, and more (the rest of the file), so that everything else — prompt building,
the LSP path, clean-up — is measured for real. The benchmark hands it the true continuation
through a small JSON file before each request (``CODELLAMA_ORACLE_FILE``); the oracle checks
that the prompt it got really ends at the cursor and logs each prompt's length
(``CODELLAMA_ORACLE_LOG``), so that the benchmark can check the token budget.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from codellama_lsp.config import Settings
from codellama_lsp.engines.base import (
    ConnectionListener,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
)
from codellama_lsp.engines.model_names import resolve_model
from codellama_lsp.engines.stops import stopped_text
from codellama_lsp.engines.tokenization import CodeTokens, load_tokenizer
from codellama_lsp.lsp import loading


class OracleEngine:
    """Answers with the true continuation, token by token, honouring the request's stops."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = "oracle"
        self.warning = ""
        self.last_step_seconds = 0.0
        self.on_connection_change: ConnectionListener | None = None
        self._tokens: CodeTokens | None = None
        self.answers = Path(os.environ["CODELLAMA_ORACLE_FILE"])
        self.log = Path(os.environ["CODELLAMA_ORACLE_LOG"])

    @property
    def tokens(self) -> CodeTokens:
        assert self._tokens is not None
        return self._tokens

    @property
    def reuses_prompts(self) -> bool:
        return False

    def cache_stats(self) -> dict[str, int]:
        return {}

    @property
    def context_limit(self) -> int:
        return self.settings.max_context_tokens

    def load(self, progress: ProgressCallback) -> None:
        self._tokens = CodeTokens(load_tokenizer(resolve_model("demo")))
        progress("Ready", 100)

    def close(self) -> None:
        pass

    def _prompt_prefix(self, ids: tuple[int, ...]) -> str:
        tokens = self.tokens
        body = list(ids)
        if body and body[0] == tokens.bos_id:
            body = body[1:]
        if tokens.infill is not None and tokens.infill.prefix_id in body:
            start = body.index(tokens.infill.prefix_id) + 1
            end = body.index(tokens.infill.suffix_id)
            body = body[start:end]
        return tokens.decode_prompt(body)

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> GenerationResult:
        answer = json.loads(self.answers.read_text(encoding="utf-8"))
        prefix = self._prompt_prefix(request.prompt_ids)
        tail = answer["prefix_tail"]
        with self.log.open("a", encoding="utf-8") as log:
            log.write(
                json.dumps(
                    {
                        "id": answer["id"],
                        "prompt_tokens": len(request.prompt_ids),
                        "prompt_ends_at_cursor": prefix.endswith(tail),
                        "max_new_tokens": request.max_new_tokens,
                    }
                )
                + "\n"
            )
        ids = self.tokens.encode(answer["continuation"], leading_space=False)
        ids = ids[: request.max_new_tokens]
        result = GenerationResult("", "length", prompt_tokens=len(request.prompt_ids))
        for n in range(1, len(ids) + 1):
            text = self.tokens.decode_continuation(ids[:n])
            kept = stopped_text(text, request)
            if kept is not None:
                result.text, result.finish_reason = kept, "stop"
                break
            result.text = text
        result.generated_tokens = len(ids)
        return result


def main() -> None:
    loading.create_engine = OracleEngine  # type: ignore[assignment]
    from codellama_lsp.cli import main as cli_main

    raise SystemExit(cli_main())


if __name__ == "__main__":
    main()
