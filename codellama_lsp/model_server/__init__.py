"""``codellama-lsp serve``: one loaded model shared by every editor on a machine (or a team).

A 70B model takes minutes and tens of GB to load, so it must not be loaded once per editor
window. This aiohttp server loads it once with :class:`~codellama_lsp.engines.local.LocalEngine`
(same chunked prefill, stop flag and KV prefix slots as in-process) and speaks the OpenAI
completions API, so the language server's HTTP engine, curl, or any OpenAI client can use it.

One module per job:

* ``app``: the routes and handlers (:class:`ModelServer`);
* ``worker``: the thread that owns the model, and the fair queue in front of it;
* ``prompts``: a request's prompt as token ids (ids, text, infilling text);
* ``streaming``: OpenAI answers and server-sent events;
* ``admission``: per-request limits and requests in flight per client;
* ``auth``: the API key and the loopback rule;
* ``errors``: OpenAI-shaped error answers;
* ``metrics``: ``/metrics`` with ``prometheus_client``;
* ``serve``: the ``codellama-lsp serve`` command line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codellama_lsp.engines.http_api import DEFAULT_PORT, SESSION_HEADER
    from codellama_lsp.model_server.admission import Limits
    from codellama_lsp.model_server.app import ENDPOINTS, ModelServer
    from codellama_lsp.model_server.errors import ApiError
    from codellama_lsp.model_server.serve import serve_main

# Imported when first used: ``codellama-lsp serve`` must be able to refuse a bad command line
# before the model's packages (torch, transformers: seconds) are imported through ``app``.
_WHERE = {
    "DEFAULT_PORT": "codellama_lsp.engines.http_api",
    "SESSION_HEADER": "codellama_lsp.engines.http_api",
    "Limits": "codellama_lsp.model_server.admission",
    "ENDPOINTS": "codellama_lsp.model_server.app",
    "ModelServer": "codellama_lsp.model_server.app",
    "ApiError": "codellama_lsp.model_server.errors",
    "serve_main": "codellama_lsp.model_server.serve",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


__all__ = [
    "DEFAULT_PORT",
    "ENDPOINTS",
    "SESSION_HEADER",
    "ApiError",
    "Limits",
    "ModelServer",
    "serve_main",
]
