"""Fixtures of the converter's tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def processes(compat_dir: Path) -> Path:
    """The real boss-standard-workflow processes directory (read in place)."""
    path = compat_dir / "boss-standard-workflow" / "processes"
    if not path.is_dir():
        pytest.skip(f"no processes directory in {compat_dir / 'boss-standard-workflow'}")
    return path
