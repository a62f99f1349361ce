"""Where the shared conformance data is (read at test time, never copied).

``$BOSS_CONFORMANCE_DIR`` if set; else ``shared/conformance`` beside the
checkout or beside any directory above it (the workplace keeps it at
``../shared`` from the repository); else the workplace's own copy at
``/work/shared/conformance``. Tests that need it skip, naming where they
looked, when none exists.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _find() -> Path:
    env = os.environ.get("BOSS_CONFORMANCE_DIR")
    if env:
        return Path(env)
    for base in (ROOT, *ROOT.parents):
        candidate = base / "shared" / "conformance"
        if candidate.is_dir():
            return candidate
    return Path("/work/shared/conformance")


#: the conformance directory (it may not exist: the tests that need it skip)
CONFORMANCE: Path = _find()
