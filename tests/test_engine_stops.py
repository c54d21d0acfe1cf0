"""How a local generation ends: the text made so far is the answer, whatever stopped it."""

from __future__ import annotations

import threading

import pytest

from codellama_lsp.engines.base import GenerationRequest
from codellama_lsp.engines.local import LocalEngine
from tests.support.engines import load_engine

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPT = "import os\n\n\ndef list_python_files(root):\n    "


@pytest.mark.parametrize("speculative", [True, False])
def test_a_generation_stopped_by_should_stop_returns_its_text(speculative: bool) -> None:
    """The completer stops a generation once it has left the cursor's block; what it made up
    to there is the suggestion (it used to come back empty: no ghost text for any multi-line
    completion that ended a block)."""
    engine: LocalEngine = load_engine(speculative=speculative)
    try:
        ids = (engine.tokens.bos_id or 1, *engine.tokens.encode(PROMPT))

        def request(**extra: object) -> GenerationRequest:
            return GenerationRequest(ids, 24, 0.0, 1.0, session="doc", **extra)  # type: ignore[arg-type]

        plain = engine.generate(request(), threading.Event())
        assert len(plain.text) >= 12, plain.text
        stopped = engine.generate(
            request(should_stop=lambda text: len(text) >= 12), threading.Event()
        )
        assert stopped.finish_reason == "stop"
        made = engine.tokens.decode_continuation(plain.token_ids[: stopped.generated_tokens])
        assert stopped.text == made and len(made) >= 12
        assert plain.text.startswith(stopped.text)
    finally:
        engine.close()
