"""Shared fixtures: a private cache folder for every test, and the tiny corpus (see tests.helpers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import write_tiny_corpus


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test writes generated files under one session-wide temporary cache."""
    monkeypatch.setenv("DMIX_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    return write_tiny_corpus(tmp_path_factory.mktemp("tiny-data"))
