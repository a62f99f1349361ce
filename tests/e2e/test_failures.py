"""Crashes: a participant dies mid-step, the broker restarts mid-run, an
engine worker is killed with SIGKILL mid-run. Every run completes, and no
step is applied twice (issue 3, "What it must show")."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter

import pytest

from engine.core import states
from engine.embedded import EmbeddedValkey
from tests.e2e.conftest import System
from tests.waiting import wait_for


def steps(n: int, sleep: float = 0.0) -> str:
    return "name: seq\nsteps:\n" + "".join(
        f"  - bump: {{tag: s{i}, sleep: {sleep}}}\n" for i in range(n)
    )


def assert_each_step_once(system: System, wfid: str, n: int) -> None:
    """The run's fields saw each step once, in order: a step applied twice
    would show in ``trail`` and ``n``."""
    fields = system.engine.run(wfid).fields
    assert fields["trail"] == [f"s{i}" for i in range(n)]
    assert fields["n"] == n
    finished = Counter(r for r in _step_records(system, wfid))
    assert all(v == 1 for v in finished.values()), finished


def _step_records(system: System, wfid: str) -> list[str]:
    st = system.store.load_run(wfid)[0]
    return [e["eid"] for e in st.get("errors", [])]


@pytest.mark.parametrize("mode", ["holding", "leased"])
def test_a_participant_crash_mid_step_loses_nothing(system: System, mode: str) -> None:
    """Holding the delivery: the broker gives it to the other instance.
    Leased: the engine's lease runs out and it dispatches the step again."""
    system.worker()
    after = 0.3 if mode == "holding" else 1.6  # lease_after is 1 s
    system.participant("crasher", "CrashOnce", instances=2)
    wfid = system.launch(f"name: c\nsteps:\n  - crasher: {{after: {after}}}\n")
    crash = wait_for(lambda: system.events("crash"), 30, "the crash")
    system.wait_status(wfid, timeout=60)
    calls = system.events("call")
    assert len(calls) == 2 and calls[0]["subid"] == calls[1]["subid"]
    assert calls[1]["pid"] != crash[0]["pid"]  # the other instance finished it
    assert system.engine.run(wfid).fields["n"] == 1
    if mode == "leased":
        log = (system.tmp / "worker.log").read_text()
        assert "dispatched again" in log


def test_two_engine_workers_one_killed_mid_run(system: System) -> None:
    # on kombu's Redis transport a message the killed worker's BRPOP had
    # already popped is lost with it (the server pops before the client
    # has it): the dispatch lease sends that step again, and the
    # participant answers it with the reply it sent before
    a = system.worker("worker-a")
    system.worker("worker-b")
    system.participant("bump", "Bump", instances=2)
    wfids = [system.launch(steps(30, sleep=0.02)) for _ in range(4)]
    wait_for(lambda: len(system.events("call")) >= 20, 30, "the runs to be under way")
    os.kill(a.popen.pid, signal.SIGKILL)
    a.popen.wait()
    for wfid in wfids:
        system.wait_status(wfid, timeout=90)
        assert_each_step_once(system, wfid, 30)
    calls = Counter((c["wfid"], c["subid"]) for c in system.events("call"))
    # a step may be *dispatched* twice only when its worker died between
    # storing it and acknowledging; it is never *applied* twice (above)
    assert len(calls) == 4 * 30


def _restart_broker(system: System, server: EmbeddedValkey | None) -> None:
    if server is not None:
        server.stop()
        time.sleep(0.5)  # a real outage, not a blink
        server.start()
        return
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True, timeout=60)
    time.sleep(0.5)
    subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True, timeout=120)
    subprocess.run(
        ["rabbitmqctl", "-q", "await_startup"], check=True, capture_output=True, timeout=120
    )


@pytest.fixture(params=["rabbitmq", "embedded"])
def restartable(request: pytest.FixtureRequest, tmp_path, redis_url):
    """A System whose broker the test may restart: RabbitMQ (stop_app /
    start_app), or a private embedded Valkey serving as broker *and* store."""
    import uuid

    from tests.e2e.conftest import System

    if request.param == "rabbitmq":
        url = request.getfixturevalue("rabbitmq_url")
        server = None
        store_url = redis_url
    else:
        server = EmbeddedValkey(tmp_path / "valkey").start()
        url = "redis+socket://" + server.url.removeprefix("unix://")
        store_url = server.url
    (tmp_path / "processes").mkdir()
    system = System(tmp_path, url, store_url, f"e2e{uuid.uuid4().hex[:10]}")
    yield system, server
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(system.logs())
    system.cleanup()
    if server is not None:
        server.stop()


@pytest.mark.broker_exclusive
def test_a_broker_restart_mid_run(restartable) -> None:
    system, server = restartable
    system.worker()
    system.participant("bump", "Bump")
    wfid = system.launch(steps(12, sleep=0.15))
    wait_for(lambda: len(system.events("call")) >= 3, 30, "the run to be under way")
    _restart_broker(system, server)
    system.wait_status(wfid, timeout=120)
    assert_each_step_once(system, wfid, 12)
    assert system.status(wfid) == states.FINISHED
