"""Who may use the server: the API key and the rule that only loopback may go without one."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from aiohttp import web

from codellama_lsp.model_server.errors import error_response

OPEN_PATHS = ("/health",)
"""Answered without a key: a load balancer's health check carries none."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bearer_matches(header: str, api_key: str) -> bool:
    """``Authorization: Bearer KEY`` compared in constant time (no timing leak of the key)."""
    scheme, _, token = header.partition(" ")
    # Header bytes that are not UTF-8 arrive as surrogates: compare them as bytes.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode("utf-8", "surrogateescape"), api_key.encode()
    )


def api_key_middleware(api_key: str) -> Any:
    """An aiohttp middleware answering 401 to requests without the key (none: all pass)."""

    @web.middleware
    async def check_key(request: web.Request, handler: Any) -> web.StreamResponse:
        needs_key = api_key and request.path not in OPEN_PATHS
        if needs_key and not bearer_matches(request.headers.get("Authorization", ""), api_key):
            response = error_response(401, "missing or wrong API key", "authentication_error")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        return await handler(request)

    return check_key
