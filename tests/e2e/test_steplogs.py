"""Step logs end to end, on both brokers: a participant process logs and
prints while it works; the engine worker's aggregator process stores the
lines; ``boss logs`` prints them tagged by step, and ``-f`` follows a run
while its step is still working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, System
from tests.e2e.steplog_handlers import start_talker
from tests.waiting import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.timeout(180)]


def test_boss_logs_prints_each_steps_lines(system: System) -> None:
    system.worker()
    start_talker(system)
    wfid = system.launch(
        "name: talk\nsteps:\n  - talker: {tag: first, lines: 3}\n  - talker: {tag: second}\n"
    )
    system.wait_status(wfid)
    # -f: the lines may reach the store a moment after the run ended (the
    # writer may hold them unwritten): each reply named its step-log job,
    # the engine noted it before the run could end, and -f waits for it
    out = system.boss("logs", wfid, "-f", "--json").stdout
    lines = [json.loads(x) for x in out.splitlines()]
    by_text = {x["text"]: x for x in lines}
    first, second = by_text["first print 0"]["step"], by_text["second print 0"]["step"]
    assert first != second
    mine = [x["text"] for x in lines if x["step"] == first]
    assert mine == [
        "boss.participant.talker: first log 0",
        "first print 0",
        "boss.participant.talker: first log 1",
        "first print 1",
        "boss.participant.talker: first log 2",
        "first print 2",
        "first done",
    ]
    assert [x["level"] for x in lines if x["step"] == first][-2:] == ["stdout", "stderr"]
    assert {x["participant"] for x in lines} == {"talker"}
    # the engine noted both steps' jobs from their replies; both are stored
    meta = system.store.client.hgetall(f"{system.config.key_prefix}logs:{wfid}:m")
    noted = {k.decode()[2:] for k in meta if k.startswith(b"s:")}
    assert noted == {x["job"] for x in lines} and len(noted) == 2
    assert all(f"f:{job}".encode() in meta for job in noted)
    text = system.boss("logs", wfid, "--step", second).stdout
    assert "second log 1" in text and "first" not in text
    assert f" {second} talker INFO: boss.participant.talker: second log 0" in text
    assert system.boss("logs", "no-such-run", check=False).returncode == 1


def test_boss_logs_follows_a_step_at_work(system: System, tmp_path: Path) -> None:
    system.worker()
    start_talker(system)
    release = tmp_path / "release"
    wfid = system.launch(
        f"name: talk\nsteps:\n  - talker: {{tag: slow, lines: 1, wait: '{release}'}}\n"
    )
    out = tmp_path / "follow.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOSS_")}
    env["PYTHONPATH"] = str(ROOT)
    with out.open("w") as fh:
        follower = subprocess.Popen(
            [sys.executable, "-m", "bossapp.cli", "-c", str(system.ini), "logs", wfid, "-f"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    try:
        wait_for(lambda: "slow print 0" in out.read_text(), 30, "the first lines, followed")
        assert follower.poll() is None  # the step works on: it keeps following
        assert system.status(wfid) == "running"
        release.touch()
        assert follower.wait(60) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    text = out.read_text()
    assert text.index("slow print 0") < text.index("slow done")
    assert system.status(wfid) == "finished"
