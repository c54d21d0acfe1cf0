"""JSON-RPC and LSP rules that pygls leaves to the server: every request gets an answer.

pygls drops what it cannot handle: a body that is not JSON, a batch, a request before
``initialize`` or after ``shutdown``, params that do not parse. An editor waits for the answer
to such a request forever. Here each one is answered with the error code the specifications
name, before pygls sees the message:

* not JSON (or nested too deep to parse): ``-32700`` ParseError, with the request's id when it
  can be read from the bytes, else ``null`` (JSON-RPC);
* a batch (LSP has none), a message that is not a JSON-RPC 2.0 object: ``-32600``;
* any request before ``initialize``: ``-32002`` ServerNotInitialized; notifications then are
  dropped (LSP);
* a second ``initialize``, or any request after ``shutdown``: ``-32600`` InvalidRequest;
* params that do not match the method's type: ``-32602`` InvalidParams. Integers are strict:
  ``"3"``, ``1.5`` or ``true`` is not a line number (cattrs would read them as 3, 1 and 1).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Generator
from functools import partial
from typing import Any

import cattrs
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.protocol import LanguageServerProtocol, default_converter
from pygls.protocol.language_server import lsp_method

from codellama_lsp.lsp.notebooks import NotebookWorkspace

log = logging.getLogger(__name__)

SYNC_KIND = types.TextDocumentSyncKind.Incremental
"""How clients send edits (the server's ``text_document_sync_kind``)."""

PARSE_ERROR = types.ErrorCodes.ParseError
INVALID_REQUEST = types.ErrorCodes.InvalidRequest
NOT_INITIALIZED = types.ErrorCodes.ServerNotInitialized
INVALID_PARAMS_TEXT = "Invalid params: they do not match the method's parameter types"

_ID_BEFORE_PARAMS = re.compile(rb'"id"\s*:\s*(-?\d{1,18}|"(?:[^"\\\r\n]|\\.){0,200}")')


def strict_int(value: Any, kind: Any = int) -> Any:
    """An LSP integer is a JSON integer: no strings, floats or booleans.

    The hook also gets lsprotocol's integer enums (``class X(int, Enum)``: trigger kinds, …),
    which are read as members of their enum, so an unknown value is still refused.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value if kind is int else kind(value)


def strict_bool(value: Any, _type: Any = bool) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


def strict_converter() -> cattrs.Converter:
    converter: cattrs.Converter = default_converter()
    converter.register_structure_hook(int, strict_int)
    converter.register_structure_hook(bool, strict_bool)  # else bool would get int's hook
    return converter


def is_id(value: Any) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


def guess_id(body: bytes | bytearray) -> int | str | None:
    """The id of a request whose body does not parse, when it stands before ``"params"``.

    Only the part before ``"params"`` is searched, so an ``"id"`` inside the params (a
    ``$/cancelRequest``, a document's text) is never mistaken for the message's own.
    """
    end = body.find(b'"params"')  # no copy of a big body
    match = _ID_BEFORE_PARAMS.search(body, 0, len(body) if end < 0 else end)
    if match is None:
        return None
    try:
        value = json.loads(match.group(1))
    except ValueError:
        return None
    return value if is_id(value) else None


class CodeLlamaProtocol(LanguageServerProtocol):
    """pygls' protocol with every request answered (see the module docstring)."""

    _initialize_seen = False

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(
        self, params: types.InitializeParams
    ) -> Generator[Any, Any, types.InitializeResult]:
        """pygls' ``initialize``, with a workspace that follows LSP's line rules (and holds
        notebooks robustly: :mod:`codellama_lsp.lsp.notebooks`).

        pygls makes its workspace, then yields to the server's ``initialize`` handler; the
        workspace is replaced in between, before any document exists.
        """
        steps = super().lsp_initialize(params)
        reply = None
        try:
            step = steps.send(reply)
            made = self.workspace
            self._workspace = NotebookWorkspace(
                made.root_uri,
                SYNC_KIND,
                list(made.folders.values()),
                made.position_encoding,
            )
            while True:
                reply = yield step
                step = steps.send(reply)
        except StopIteration as done:
            result: types.InitializeResult = done.value
            return result

    # --- entry point for one framed body ------------------------------------------------
    def handle_body(self, body: bytes | bytearray) -> None:
        """Parse, check and dispatch one message body read from the client."""
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:
            msg_id = guess_id(body)
            log.warning("message %r is not valid JSON (%s)", msg_id, type(exc).__name__)
            self.refuse(msg_id, PARSE_ERROR, "Parse error: the message is not valid JSON")
            return
        if isinstance(data, list):
            requests = [m for m in data if isinstance(m, dict) and "method" in m]
            ids = [m["id"] for m in requests if is_id(m.get("id"))]
            log.warning("refused a batch of %d messages", len(data))
            for msg_id in ids or [None]:
                self.refuse(msg_id, INVALID_REQUEST, "LSP has no batches: send one message")
            return
        if not self.admits(data):
            return
        try:
            message = self.structure_message(data)
        except JsonRpcException:
            return  # answered in structure_message
        if data.get("method") == types.INITIALIZE:
            self._initialize_seen = True
        self.handle_message(message)

    def _execute_handler(
        self,
        msg_id: Any,
        handler: Any,
        callback: Any,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        """pygls keeps the future of every handler that is not a plain function in
        ``_request_futures`` and removes it only when it answers a request: for notifications
        (its built-in ``didOpen``/``didChange``/``didClose`` are generators) and the steps of
        generator handlers, keyed by a fresh uuid, it stayed for good: one future, with its
        lock and condition, per keystroke (issue 17). Drop those when they are done."""
        super()._execute_handler(msg_id, handler, callback, args, kwargs)
        if isinstance(callback, partial) and callback.func == self._send_handler_result:
            return  # a request: removed when answered
        future = self._request_futures.get(msg_id)
        if future is not None:
            future.add_done_callback(lambda _: self._request_futures.pop(msg_id, None))

    def refuse(self, msg_id: int | str | None, code: int, message: str) -> None:
        """Answer a request with an error; ``msg_id`` None sends ``"id": null`` (JSON-RPC)."""
        self._send_data(
            {"jsonrpc": "2.0", "id": msg_id, "error": {"code": int(code), "message": message}}
        )

    def admits(self, data: Any) -> bool:
        """Whether a parsed message may go on to pygls; refused requests are answered here."""
        if not isinstance(data, dict):
            self.refuse(None, INVALID_REQUEST, "a message must be a JSON object")
            return False
        msg_id = data.get("id")
        method = data.get("method")
        if "method" not in data:
            if is_id(msg_id) and ("result" in data or "error" in data):
                return data.get("jsonrpc") == self.VERSION  # a response to our request
            self.refuse(msg_id if is_id(msg_id) else None, INVALID_REQUEST, "not a request")
            return False
        request = "id" in data
        if data.get("jsonrpc") != self.VERSION or not isinstance(method, str):
            if request:
                text = 'a request needs "jsonrpc": "2.0", a string "method" and an id'
                self.refuse(msg_id if is_id(msg_id) else None, INVALID_REQUEST, text)
            return False
        if request and not is_id(msg_id):
            self.refuse(None, INVALID_REQUEST, "a request id must be a number or a string")
            return False
        if method == types.EXIT:
            return True
        if not request:
            # Before initialize and after shutdown, notifications are dropped (LSP).
            return self._initialize_seen and not self._shutdown
        if self._shutdown:
            self.refuse(msg_id, INVALID_REQUEST, "the server is shut down: only exit is accepted")
            return False
        if method == types.INITIALIZE:
            if self._initialize_seen:
                self.refuse(msg_id, INVALID_REQUEST, "the server is already initialized")
                return False
            return True
        if not self._initialize_seen:
            self.refuse(msg_id, NOT_INITIALIZED, "the server is not initialized yet")
            return False
        return True

    # --- pygls hooks ----------------------------------------------------------------------
    def structure_message(self, data: dict[str, Any]) -> Any:
        """Answer a request whose params do not parse with -32602 (pygls drops it)."""
        try:
            return super().structure_message(data)
        except JsonRpcException:
            msg_id = data.get("id")
            if "method" in data and is_id(msg_id):
                # Whatever failed while reading the params, it is the params' fault.
                self.refuse(msg_id, types.ErrorCodes.InvalidParams, INVALID_PARAMS_TEXT)
            raise
