"""The Python source most tests complete, and where its end is."""

from __future__ import annotations

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


def long_source() -> str:
    """A long real Python file: the first 60,000 characters of argparse."""
    import argparse
    import inspect

    return inspect.getsource(argparse)[:60000]
