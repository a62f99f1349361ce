"""``boss demo``, the README's first command (minus the install)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
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


# -- a taken port, and stopping by signal -------------------------------------------------


def _procs_under(root: Path) -> dict[int, str]:
    """Live processes (not zombies) whose working directory is under
    ``root``: the demo's children run in its directory, the embedded Valkey
    in its state directory (read from /proc: no psutil needed)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if stat.rpartition(")")[2].split()[0] == "Z":
            continue
        if cwd == str(root) or cwd.startswith(str(root) + "/"):
            found[int(entry.name)] = cmd
    return found


def _wait_for_line(log: Path, needle: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if needle in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} not in the demo's output:\n{text}")


def _wait_gone(pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            return
        if state == "Z":
            return
        time.sleep(0.1)
    raise AssertionError(f"the demo (pid {pid}) did not exit within {timeout}s")


def _demo_env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOSS_")}
    env["BOSS_STATE_DIR"] = str(state)
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_boss_demo_takes_a_free_port_and_stops_everything_on_sigterm(tmp_path: Path) -> None:
    """The web UI's port is taken: the demo serves on another and says
    which. SIGTERM (while serving) stops the 7 children and the embedded
    Valkey before the demo exits."""
    state = tmp_path / "state"
    log = tmp_path / "demo.out"
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    taken = holder.getsockname()[1]
    try:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bossapp.cli",
                    "demo",
                    "--serve",
                    "--web",
                    f"127.0.0.1:{taken}",
                ],
                env=_demo_env(state),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
        text = _wait_for_line(log, "serving the web UI and the demo system")
        found = re.search(r"web UI: (http://127\.0\.0\.1:(\d+)/) \(log in as demo", text)
        assert found and int(found.group(2)) != taken, text
        assert f"port {taken} was taken" in text
        with urllib.request.urlopen(found.group(1) + "login") as r:
            assert r.status == 200
        children = _procs_under(tmp_path)
        assert len(children) >= 8, children  # 7 processes (and their pool) + Valkey
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 128 + signal.SIGTERM
        text = log.read_text()
        assert "stopped by SIGTERM: stopping the demo" in text, text
        assert "stopped 7 processes and the embedded Valkey" in text, text
        assert _procs_under(tmp_path) == {}
        assert not EmbeddedValkey(state).is_running()
    finally:
        holder.close()
        shutdown_embedded(state)


def test_boss_demo_in_the_background_stops_everything_on_sigint(tmp_path: Path) -> None:
    """``boss demo &`` from a script: the shell starts it with SIGINT
    ignored; SIGINT still stops it (mid-run here), children and Valkey too."""
    state = tmp_path / "state"
    log = tmp_path / "demo.out"
    env = _demo_env(state)
    # the premise: a script's `cmd &` starts cmd with SIGINT ignored. The
    # background command reads its own dispositions: reading /proc/$!/status
    # from the shell raced the child's set-up between fork and exec (CI once
    # saw only SIGQUIT ignored).
    probe = subprocess.run(
        ["bash", "-c", "grep SigIgn /proc/self/status & wait"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(probe.stdout.split()[1], 16) & (1 << (signal.SIGINT - 1)), probe.stdout
    started = subprocess.run(
        [
            "bash",
            "-c",
            f'"{sys.executable}" -m bossapp.cli demo --serve --web 127.0.0.1:0 > "{log}" 2>&1 & '
            "echo $!",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(started.stdout.strip())
    try:
        _wait_for_line(log, "web UI: ")
        assert _procs_under(tmp_path)
        os.kill(pid, signal.SIGINT)
        _wait_gone(pid)
        text = log.read_text()
        assert "stopped by SIGINT: stopping the demo" in text, text
        assert "stopped 7 processes and the embedded Valkey" in text, text
        assert _procs_under(tmp_path) == {}
        assert not EmbeddedValkey(state).is_running()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        shutdown_embedded(state)
