"""``boss demo``, the README's first command (minus the install)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import redis

from engine.embedded import EmbeddedValkey, shutdown_embedded
from tests.e2e.conftest import ROOT


def test_boss_demo_on_a_fresh_machine(tmp_path: Path) -> None:
    """No configuration: it starts an embedded Valkey as store and broker,
    an engine worker and participants as processes, shows the steps, replays
    the failing build, finishes, and stops everything it started."""
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOSS_")}
    env["BOSS_STATE_DIR"] = str(state)
    env["PYTHONPATH"] = str(ROOT)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bossapp.cli", "demo"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            cwd=tmp_path,
        )
        out = proc.stdout
        assert proc.returncode == 0, out + proc.stderr
        assert "store and broker: the embedded Valkey" in out
        assert re.search(r"web UI: http://127\.0\.0\.1:\d+/ \(log in as demo", out), out
        lines = out.splitlines()

        def first(needle: str) -> int:
            found = [i for i, x in enumerate(lines) if needle in x]
            assert found, f"{needle!r} not in the demo's output:\n{out}"
            return found[0]

        order = [
            first(needle)
            for needle in (
                "check_spec         started",
                "build              FAILED: RuntimeError: builder-1",
                "replaying the failed build",
                "run_tests          started",
                " finished",
            )
        ]
        assert order == sorted(order), out
        assert sum("run_tests          started" in x for x in lines) == 2  # in parallel
        assert "release candidate hello-c0ffee is ready" in out
        # the graph traced the change to the artifact and its confidence levels
        assert (
            "trace: change c0ffee is in 1 artifact(s) with confidence levels "
            "releaseCandidate, tested-aarch64, tested-x86_64"
        ) in out, out
        assert "lead time from the change to releaseCandidate: " in out, out
        assert "stopped 7 processes and the embedded Valkey" in out
        # everything it started is gone, and the run stayed on disk
        assert not EmbeddedValkey(state).is_running()
        assert (state / "appendonlydir").is_dir()
        for log in (state / "demo").glob("*.log"):
            assert "Traceback" not in log.read_text(), log.read_text()
        server = EmbeddedValkey(state).start()
        try:
            client = redis.Redis.from_url(server.url)
            assert client.zcard("boss:runs:status:finished") == 1
        finally:
            server.stop()
    finally:
        shutdown_embedded(state)
