"""When suggestions come too late to use, and what the user is told would help."""

from __future__ import annotations

from codellama_lsp.completion.latency_health import LatencyHealth, remedies, warning
from codellama_lsp.config import Settings


def test_a_fast_model_is_healthy_and_a_slow_one_is_not() -> None:
    health = LatencyHealth()
    for _ in range(7):
        health.answered(4000)
    assert health.verdict() is None  # too few to judge
    health.answered(4000)
    assert health.verdict() == "suggestions take 4.0 s (median of the last 8)"
    for _ in range(20):
        health.answered(300)
    assert health.verdict() is None  # the window moved on


def test_most_suggestions_given_up_on_is_unhealthy() -> None:
    health = LatencyHealth()
    for _ in range(3):
        health.answered(200)
    for _ in range(5):
        health.gave_up()
    assert health.verdict() == "5 of the last 8 suggestions came after you had typed on"
    health.forget()
    assert health.verdict() is None


def test_remedies_fit_where_the_model_runs() -> None:
    big = Settings(model="codellama/CodeLlama-70b-Python-hf")
    cpu = remedies(big, "cpu")
    assert "GPU" in cpu[0]
    assert any("smaller model" in r for r in cpu)
    gpu = remedies(big, "cuda:0")
    assert any("quantization = 4bit" in r for r in gpu)
    assert any("draft_model" in r for r in gpu)
    tuned = remedies(
        Settings(model="codellama/CodeLlama-7b-Python-hf", quantization="4bit", draft_model="x"),
        "cuda:0",
    )
    assert tuned == ["shorter suggestions (max_new_tokens = 64; now 128)"]
    server = remedies(Settings(backend="http"), None)
    assert "model server" in server[0]
    text = warning("suggestions take 4.0 s", big, "cpu")
    assert text.startswith("codellama-lsp: suggestions take 4.0 s") and "What would help:" in text
