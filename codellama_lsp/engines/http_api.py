"""What the HTTP engine (the client) and ``codellama-lsp serve`` (the server) agree on, beyond
the OpenAI completions API. Light on purpose: the editor side imports it, and must not import
the model server (pydantic, prometheus_client are ``[local]`` only)."""

from __future__ import annotations

from codellama_lsp.config import DEFAULT_PORT

SESSION_HEADER = "X-Codellama-Session"
"""Who asks: the client and its document, so that the model server keeps a KV slot per
session (the ``user`` field of the body says the same to servers that do not read it)."""

__all__ = ["DEFAULT_PORT", "SESSION_HEADER"]
