"""What one client may ask of a shared server, and how many requests it may have in flight."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from codellama_lsp.model_server.errors import ApiError


@dataclass(frozen=True)
class Limits:
    """What one request may ask for: a shared server must not be tied up by one client."""

    max_body_bytes: int = 1 << 20
    max_tokens: int = 1024
    max_prompt_tokens: int = 0
    """0: the model's context limit."""
    max_stop_sequences: int = 16
    max_streams_per_client: int = 4
    """Generating requests in flight per client address; more get 429."""


class StreamsPerClient:
    """Counts generating requests per client; one over the limit is refused with 429.

    The client is the peer address: every editor holding the one API key shares the key, and
    the session header is the client's own choice (varying it must not buy more concurrency),
    so both only subdivide an address in the fair queue.
    """

    def __init__(self, limit: int, on_reject: Callable[[], None]) -> None:
        self.limit = limit
        self.on_reject = on_reject
        self._in_flight: dict[str, int] = {}

    @contextlib.contextmanager
    def slot(self, client: str) -> Iterator[str]:
        if self._in_flight.get(client, 0) >= self.limit:
            self.on_reject()
            raise ApiError(
                429,
                f"too many requests in flight for this client (limit {self.limit})",
                "rate_limit_error",
            )
        self._in_flight[client] = self._in_flight.get(client, 0) + 1
        try:
            yield client
        finally:
            self._in_flight[client] -= 1
            if not self._in_flight[client]:
                del self._in_flight[client]
