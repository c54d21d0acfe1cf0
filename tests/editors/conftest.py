"""Fixtures of the end-to-end editor tests (their helpers: ``tests/support/editors.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.editors import ARTIFACTS


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
