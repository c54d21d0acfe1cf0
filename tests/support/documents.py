"""The Python source most tests complete, and small helpers about text and waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

SAMPLE = '''import os


def list_python_files(root):
    """Return the Python files below ``root``."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            '''
"""A file being typed, cursor at its end (inside a loop: the demo model completes it)."""


def end_of(text: str) -> tuple[int, int]:
    """The LSP position (line, character) at the end of ``text`` (ASCII text)."""
    lines = text.split("\n")
    return len(lines) - 1, len(lines[-1])


def wait_until(check: Callable[[], T | None], timeout: float = 30, what: str = "condition") -> T:
    """Poll ``check`` until it returns a true value, and return that; TimeoutError(``what``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
