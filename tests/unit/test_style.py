"""The formatter and the linter are part of the suite, so CI keeps them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).parent / "ruff"


@pytest.mark.parametrize(
    "args", [["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]], ids=str
)
def test_ruff(args: list[str]) -> None:
    if not RUFF.exists():
        pytest.fail(f"ruff is not installed beside {sys.executable} (the test extras)")
    r = subprocess.run([str(RUFF), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
