"""Fixtures of the reporter tests: fake forges (``fakes.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reporters.fakes import FakeForge


@pytest.fixture
def github() -> Iterator[FakeForge]:
    f = FakeForge("github")
    yield f
    f.close()


@pytest.fixture
def gitlab() -> Iterator[FakeForge]:
    f = FakeForge("gitlab")
    yield f
    f.close()


@pytest.fixture
def gerrit() -> Iterator[FakeForge]:
    f = FakeForge("gerrit")
    yield f
    f.close()
