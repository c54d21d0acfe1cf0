"""``/metrics``: the server's counters, histograms and gauges, kept by ``prometheus_client``."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """One server's metrics in a registry of its own (several servers may share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = self._counter(
            "requests", "HTTP requests answered, by endpoint and status", "endpoint", "status"
        )
        self.generations = self._counter(
            "generations", "generations finished, by finish reason", "finish_reason"
        )
        self.prompt_tokens = self._counter("prompt_tokens", "prompt tokens received")
        self.reused_prompt_tokens = self._counter(
            "reused_prompt_tokens", "prompt tokens served from a KV prefix slot"
        )
        self.generated_tokens = self._counter(
            "generated_tokens", "tokens generated (cancelled generations included)"
        )
        self.cancellations = self._counter(
            "cancellations",
            "generations stopped because the client disconnected or closed the stream",
        )
        self.model_loads = self._counter("model_loads", "times the model was loaded")
        self.rejected_requests = self._counter(
            "rejected_requests", "requests refused before running, by reason", "reason"
        )
        self.request_duration = self._histogram(
            "request_duration_seconds", "completion request latency, arrival to last token"
        )
        self.queue_wait = self._histogram(
            "queue_wait_seconds", "time a generation waited for the model worker"
        )
        self.cancel_stop = self._histogram(
            "cancel_stop_seconds", "time from a client's disconnect to its generation stopping"
        )

    def _counter(self, name: str, doc: str, *labels: str) -> Counter:
        return Counter(f"codellama_{name}", doc, labels, registry=self.registry)

    def _histogram(self, name: str, doc: str) -> Histogram:
        return Histogram(f"codellama_{name}", doc, buckets=LATENCY_BUCKETS, registry=self.registry)

    def gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """A gauge whose value is read from ``read`` at each scrape."""
        Gauge(f"codellama_{name}", doc, registry=self.registry).set_function(read)

    def render(self) -> bytes:
        """The Prometheus text exposition format."""
        return generate_latest(self.registry)
