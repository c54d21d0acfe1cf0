"""The frame reader on its own: the same bodies whatever the chunk boundaries."""

from __future__ import annotations

import json

import pytest

from codellama_lsp.lsp.framing import FrameReader


def frame(body: bytes, length: int | None = None, extra: bytes = b"") -> bytes:
    size = len(body) if length is None else length
    return b"Content-Length: %d\r\n" % size + extra + b"\r\n" + body


def message(msg_id: int, text: str = "x") -> bytes:
    params = {"textDocument": {"uri": "file:///a.py", "text": text}}
    return json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": "m", "params": params}).encode()


def bodies(stream: bytes, chunk: int) -> list[bytes | bytearray]:
    reader = FrameReader()
    found = []
    for start in range(0, len(stream), chunk):
        reader.feed(stream[start : start + chunk])
        while (body := reader.next_body()) is not None:
            found.append(body)
    return found


# Text that looks like a header, inside a JSON string (escaped, as JSON must write it).
TRICKY = "Content-Length: 12\r\n\r\n{}"
STREAM = (
    frame(message(1))
    + frame(message(2, TRICKY), extra=b"Content-Type: application/vscode-jsonrpc\r\n")
    + b"garbage\r\n\r\n"
    + frame(message(3), len(message(3)) - 6)  # too short: its tail is skipped
    + frame(message(4), len(message(4)) + 50)  # too long: cut at the next header
    + frame(message(5))
)


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, 1 << 16])
def test_same_bodies_whatever_the_chunks(chunk: int) -> None:
    got = bodies(STREAM, chunk)
    assert got == [message(1), message(2, TRICKY), message(3)[:-6], message(4), message(5)]


def test_whole_json_is_taken_when_the_client_goes_quiet() -> None:
    reader = FrameReader()
    reader.feed(frame(message(6), len(message(6)) + 10))
    assert reader.next_body() is None
    assert reader.flush_partial() == message(6)
    reader.feed(frame(message(7)))
    assert reader.next_body() == message(7)


def test_a_partial_body_that_is_not_whole_json_waits() -> None:
    reader = FrameReader()
    reader.feed(frame(message(8))[:-3])
    assert reader.next_body() is None
    assert reader.flush_partial() is None
