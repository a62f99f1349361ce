"""The rooms keep to their arrows (docs/architecture.md): the import
contracts in ``pyproject.toml`` hold, and the sans-IO core loads no I/O
library, checked in a fresh interpreter (an import inside a function is
seen by the contracts; an import that only happens at run time is seen here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

#: what importing (and using) the core must never load
IO_LIBRARIES = ("redis", "kombu", "celery", "flask", "werkzeug", "supervisor", "irc", "amqp")


def test_the_import_contracts_hold() -> None:
    lint = BIN / "lint-imports"
    if not lint.exists():
        pytest.fail(f"import-linter is not installed beside {sys.executable} (the test extras)")
    r = subprocess.run(
        [str(lint), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


_PROBE = """
import json, sys
from engine.core import interpreter, listeners, loader, messages, runstate
d = loader.load_definition("name: probe\\nsteps:\\n  - alpha\\n  - beta\\n")
res = interpreter.launch(d, "w1", now=1.0, fields={"x": 1})
print(json.dumps({"modules": sorted(sys.modules), "effects": len(res.effects),
                  "recursion": sys.getrecursionlimit()}))
"""


def test_the_core_loads_no_io_library_and_sets_nothing_process_wide() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    before = subprocess.run(
        [sys.executable, "-c", "import sys; print(sys.getrecursionlimit())"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    r = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["effects"] > 0  # the probe really ran the interpreter
    loaded = {m.split(".")[0] for m in out["modules"]}
    assert not loaded & set(IO_LIBRARIES), sorted(loaded & set(IO_LIBRARIES))
    outside = sorted(
        m for m in out["modules"] if m.startswith("engine.") and not m.startswith("engine.core")
    )
    assert outside == [], outside
    assert out["recursion"] == int(before.stdout)


def test_the_engine_raises_the_recursion_limit_the_core_needs() -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from engine.engine import Engine; from engine.store import MemoryStore;"
            " from engine.core.interpreter import RECURSION_LIMIT; Engine(MemoryStore());"
            " print(sys.getrecursionlimit() >= RECURSION_LIMIT)",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.stdout.strip() == "True", r.stderr


def test_the_product_leaves_the_name_boss_to_boss_sites(tmp_path: Path) -> None:
    # the real BOSS standard workflow's participants import their own
    # package named boss (boss.obs, boss.bz, boss.rpm ...): ours must not
    # shadow it (the applications are bossapp)
    r = subprocess.run(
        [sys.executable, "-c", "import importlib.util; print(importlib.util.find_spec('boss'))"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r.stdout.strip() == "None", r.stdout + r.stderr
