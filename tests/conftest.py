"""Fixtures several test modules share (helpers that are not fixtures: ``tests/support``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """A tiny model on a busy 2-core machine runs far faster on one thread (a KV test: 28 s
    with two, 0.26 s with one). Use with ``pytestmark = pytest.mark.usefixtures(...)``."""
    import torch  # here: most test modules never need torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment for a server process whose cache (``XDG_CACHE_HOME``) is the module's own."""
    return {"XDG_CACHE_HOME": str(tmp_path_factory.mktemp("xdg-cache"))}
