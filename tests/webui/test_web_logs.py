"""``boss web`` logs as the other long-running commands do: with
``log_format = json`` every line it writes to stderr, werkzeug's request
lines included, is one JSON object (issue 18's structured logs)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from tests.waiting import wait_for

pytestmark = pytest.mark.redis


def test_boss_web_logs_json_lines(redis_url: str, key_prefix: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "BOSS_REDIS_URL": redis_url,
        "BOSS_KEY_PREFIX": key_prefix,
        "BOSS_LOG_FORMAT": "json",
        "BOSS_CONFIG": os.devnull,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bossapp.cli", "web", "--bind", "127.0.0.1:0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:

        def port() -> int | None:
            for line in lines:
                m = re.search(r"Running on http://127\.0\.0\.1:(\d+)", line)
                if m:
                    return int(m.group(1))
            if proc.poll() is not None:
                raise AssertionError(f"boss web exited {proc.returncode}: {lines}")
            return None

        p = wait_for(port, 30, "boss web to say where it listens")
        with urllib.request.urlopen(f"http://127.0.0.1:{p}/runs", timeout=10) as response:
            assert response.status == 200
        wait_for(lambda: any("GET /runs" in line for line in lines), 10, "the request's log line")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        reader.join(timeout=5)
    records = [json.loads(line) for line in lines if line.strip()]  # every line is JSON
    request = next(r for r in records if "GET /runs" in r["message"])
    assert request["logger"] == "werkzeug" and request["level"] == "INFO", request
