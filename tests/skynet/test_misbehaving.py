"""Participants that misbehave (tests/fixtures/skynet/misbehaving.py) drive
the FAILED/BACKOFF and kill paths of a real supervisord."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

from skynet.errors import StartFailed
from tests.skynet.conftest import MISBEHAVING, Host
from tests.waiting import wait_for


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] == "Z"


def test_a_participant_that_exits_at_once_is_reported_failed(
    make_host: Callable[..., Host], embedded_broker_url: str
) -> None:
    host = make_host(embedded_broker_url, startretries=1)
    result = host.cli(
        "install", str(MISBEHAVING), "-n", "quitter", "--class", "ExitsAtOnce", code=1
    )
    assert "FAILED: quitter@00 is BACKOFF" in result.output
    assert "exits-at-once: bye" in result.output  # the log's tail says why
    # it is installed (the code is fine), and its state says FAILED
    assert host.include_files() == ["quitter.conf"]
    assert "FAILED" in host.cli("list").output
    # supervisor gives up after startretries: FATAL, still FAILED for start
    wait_for(
        lambda: host.states("quitter") == {"quitter@00": "FATAL"}, 30, "supervisor to give up on it"
    )
    # starting it again: it is spawned again, and fails again
    with pytest.raises(StartFailed, match=r"FAILED: quitter@00 is (BACKOFF|FATAL)"):
        host.pools.start(["quitter"])
    assert host.pools.status(["quitter"])[0]["state"] == "FAILED"
    host.cli("uninstall", "quitter")
    assert host.processes() == {} and host.include_files() == []


def test_an_instance_ignoring_sigterm_is_killed_after_stopwaitsecs(host: Host) -> None:
    host.install("deaf", "IgnoresTerm", code=MISBEHAVING, instances=2)
    wait_for(
        lambda: (
            {line.split(":")[0] for line in host.pools.logs("deaf") if "SIGTERM is ignored" in line}
            == {"deaf@00", "deaf@01"}
        ),
        20,
        "the handlers to ignore SIGTERM",
    )
    pids = host.pids("deaf")
    began = time.monotonic()
    host.cli("stop", "deaf")
    took = time.monotonic() - began
    assert took >= host.config.stopwaitsecs - 0.5, "stopped before stopwaitsecs: not ignored?"
    assert took < host.config.stopwaitsecs + 10
    assert set(host.states("deaf").values()) == {"STOPPED"}
    assert all(_gone(p) for p in pids.values())
    log = (host.state / "supervisord.log").read_text()
    assert "stopped: deaf@00 (terminated by SIGKILL)" in log


def test_a_spewing_instance_keeps_logging_and_stops_gracefully(host: Host) -> None:
    host.install("spew", "Spews", code=MISBEHAVING)
    wait_for(
        lambda: len([x for x in host.pools.logs("spew", 5) if "spew line" in x]) == 5,
        20,
        "five spewed lines",
    )
    out = host.cli("log", "spew", "-n", "3").output.splitlines()
    assert len(out) == 3 and all(x.startswith("spew@00: spew line ") for x in out)
    # the log goes on growing
    n = int(out[-1].split()[3])
    wait_for(lambda: int(host.pools.logs("spew", 1)[0].split()[3]) > n + 100, 20, "more lines")
    began = time.monotonic()
    host.cli("stop", "spew")
    assert time.monotonic() - began < host.config.stopwaitsecs, "was killed, not stopped"
    assert host.states("spew") == {"spew@00": "STOPPED"}
