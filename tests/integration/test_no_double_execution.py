"""A participant that sends no heartbeats (no ``started``, no ``alive``: a
python-ruote-amqp client, or any plain kombu consumer that holds the
delivery unacknowledged while it works and then replies) never gets a step
again while it works on it, however long the step, on the embedded broker
(kombu's Redis transport) and on RabbitMQ; a workitem lost with a killed
consumer is still done.

The participant here is a plain kombu consumer in a subprocess (prefetch 1,
holds the delivery, replies to ``reply_to``, then acknowledges), writing a
line per execution to a file; the engine is a real in-process worker. Every
timeout that could hand the step to someone else (``lease_after``,
``lease``, ``visibility_timeout``, ``dispatch_lease``) is a few seconds, and
the step outlives them all several times.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from engine.broker import Publisher
from engine.config import Config
from engine.core import messages
from engine.engine import Engine
from engine.service import LOOK_AGAIN
from engine.worker import EngineWorker
from tests.conftest import delete_keys
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
#: every timeout that could give a held step to another consumer, in seconds
#: (``BOSS_NDX_TIMEOUT``; for a manual check, e.g. 30 as the defaults)
TIMEOUT = float(os.environ.get("BOSS_NDX_TIMEOUT", "2"))
#: a step that outlives all of them several times over (``BOSS_NDX_STEP``:
#: e.g. 600 for a manual ten-minute check)
STEP = float(os.environ.get("BOSS_NDX_STEP", 0)) or 6 * TIMEOUT + LOOK_AGAIN

#: a participant without heartbeats: plain kombu, nothing of BOSS's runtime
#: (only ``engine.redis_transport`` imported, so that the ``bossredis``
#: scheme exists: on the embedded broker it is the transport to use)
PARTICIPANT = r"""
import json, os, sys, time
import kombu
import engine.redis_transport  # noqa: F401  (registers bossredis://)

url, queue, log, step, vt = sys.argv[1:6]
if url.startswith("redis+socket://"):
    url = "bossredis+socket://" + url.removeprefix("redis+socket://")

def note(what, subid="-"):
    with open(log, "a") as f:
        f.write(f"{time.time():.6f} {os.getpid()} {what} {subid}\n")

with kombu.Connection(url, transport_options={"visibility_timeout": float(vt)}) as conn:
    producer = kombu.Producer(conn.channel())

    def on_message(message):
        wi = json.loads(message.body)
        subid = wi["fei"]["subid"]
        note("start", subid)
        time.sleep(float(step))  # the work (a build), delivery held unacked
        wi["fields"]["done_by"] = os.getpid()
        # noted before the reply: the run can finish (and the test read
        # this log) the moment the reply is out
        note("end", subid)
        producer.publish(
            json.dumps(wi).encode(), exchange="",
            routing_key=message.properties.get("reply_to"),
            content_type="application/json", content_encoding="utf-8", delivery_mode=2,
        )
        message.ack()

    consumer = kombu.Consumer(
        conn.channel(), [kombu.Queue(queue, durable=True)], on_message=on_message,
        prefetch_count=1,
    )
    consumer.consume()
    note("ready")
    while True:
        try:
            conn.drain_events(timeout=0.2)
        except TimeoutError:
            pass
"""


@dataclass
class Line:
    at: float
    pid: int
    what: str
    subid: str


@dataclass
class Setup:
    config: Config
    worker: EngineWorker
    engine: Engine
    queue: str
    log: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_participant(self, step: float) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        before = len([x for x in self.lines() if x.what == "ready"])
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                PARTICIPANT,
                self.config.broker_url,
                self.queue,
                str(self.log),
                str(step),
                str(self.config.visibility_timeout),
            ],
            env=env,
            cwd=ROOT,
        )
        self.procs.append(proc)
        wait_for(
            lambda: len([x for x in self.lines() if x.what == "ready"]) > before,
            20,
            "the participant to consume",
        )
        return proc

    def lines(self) -> list[Line]:
        if not self.log.exists():
            return []
        out = []
        for text in self.log.read_text().splitlines():
            at, pid, what, subid = text.split()
            out.append(Line(float(at), int(pid), what, subid))
        return out

    def launch(self) -> str:
        wfid = f"ndx-{uuid.uuid4().hex[:12]}"
        publisher = Publisher(self.config)
        try:
            publisher.send(
                messages.launch_item(definition="name: slow\nsteps:\n  - slow_build\n", wfid=wfid)
            )
        finally:
            publisher.close()
        return wfid

    def finished(self, wfid: str, timeout: float) -> None:
        def done() -> bool:
            try:
                return self.engine.status(wfid) == "finished"
            except Exception:
                return False

        wait_for(done, timeout, f"run {wfid} to finish")


@pytest.fixture
def setup(broker_url: str, embedded_url: str, key_prefix: str, tmp_path: Path) -> Iterator[Setup]:
    suffix = uuid.uuid4().hex[:8]
    config = Config.load(
        None,
        environ={"HOME": "/nonexistent"},
        broker_url=broker_url,
        redis_url=embedded_url,
        key_prefix=key_prefix,
        engine_queue=f"boss.engine.{suffix}",
        deadletter_queue=f"boss.deadletter.{suffix}",
        control_exchange=f"boss.control.{suffix}",
        events=False,
        trace_threads=0,
        heartbeat=0.5,
        lease_after=TIMEOUT / 4,
        lease=TIMEOUT,
        visibility_timeout=TIMEOUT,
        dispatch_lease=TIMEOUT,
    )
    worker = EngineWorker(config, threads=1).start()
    engine = Engine(worker.store())
    queue = f"q.slow.{suffix}"
    engine.register("slow_build", queue)
    s = Setup(config, worker, engine, queue, tmp_path / "executions.log")
    try:
        yield s
    finally:
        for proc in s.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        worker.stop(timeout=10)
        delete_keys(worker.store().client, key_prefix)


def test_a_step_without_heartbeats_outliving_every_timeout_runs_once(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="boss.worker")
    holder = setup.start_participant(STEP)
    idle = setup.start_participant(STEP)  # would take the step if it were given again
    started = time.monotonic()
    wfid = setup.launch()
    setup.finished(wfid, STEP + 30)
    took = time.monotonic() - started
    lines = setup.lines()
    starts = [x for x in lines if x.what == "start"]
    ends = [x for x in lines if x.what == "end"]
    assert len(starts) == 1, lines
    assert len(ends) == 1 and ends[0].pid == starts[0].pid, lines
    assert starts[0].pid in (holder.pid, idle.pid)
    assert setup.engine.fields(wfid)["done_by"] == starts[0].pid
    assert took >= STEP
    if setup.config.redis_broker:
        # the dispatch lease came due while the step ran, and the engine
        # found the workitem held instead of dispatching it again
        assert any("the workitem is held" in r.getMessage() for r in caplog.records), [
            r.getMessage() for r in caplog.records if "lease" in r.getMessage()
        ]


def test_a_participant_killed_mid_step_has_its_step_done_by_another(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="boss.worker")
    victim = setup.start_participant(10 * STEP)
    wfid = setup.launch()
    wait_for(lambda: [x for x in setup.lines() if x.what == "start"], 20, "the step to start")
    rescuer = setup.start_participant(1.0)
    # the rescuer is consuming while the victim holds the step: it must not get it
    if setup.config.redis_broker:
        # held past visibility_timeout twice over (the engine found it held
        # at two dispatch-lease checks), the rescuer sweeping all along
        def held_twice() -> bool:
            return sum("the workitem is held" in r.getMessage() for r in caplog.records) >= 2

        wait_for(held_twice, 10 * TIMEOUT, "two dispatch-lease checks finding the step held")
    killed_at = time.time()
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    setup.finished(wfid, 30 + 4 * TIMEOUT)
    lines = setup.lines()
    starts = [x for x in lines if x.what == "start"]
    ends = [x for x in lines if x.what == "end"]
    assert [x.pid for x in starts] == [victim.pid, rescuer.pid], lines
    assert [x.pid for x in ends] == [rescuer.pid], lines
    # never two live executions at once: the second began after the first died
    assert starts[1].at > killed_at, lines
    assert setup.engine.fields(wfid)["done_by"] == rescuer.pid


def test_a_workitem_lost_as_a_consumer_took_it_is_dispatched_again(
    setup: Setup, embedded_url: str
) -> None:
    if not setup.config.redis_broker:
        pytest.skip("RabbitMQ loses no delivery to a killed consumer")
    client = redis.Redis(unix_socket_path=embedded_url.removeprefix("unix://"))
    try:
        wfid = setup.launch()
        # what a consumer killed between BRPOP and recording the delivery
        # leaves on a Redis without BLMOVE (or what a power cut can take
        # from a Valkey that fsyncs every second): the workitem is gone from
        # the queue and in no bookkeeping. The dispatch lease (off by
        # default, set here) dispatches it again.
        wait_for(lambda: client.rpop(setup.queue), 20, "the workitem on its queue")
        setup.start_participant(1.0)
        setup.finished(wfid, 30 + 4 * TIMEOUT)
    finally:
        client.close()
    starts = [x for x in setup.lines() if x.what == "start"]
    assert len(starts) == 1, setup.lines()


# -- the limit: RabbitMQ's consumer_timeout ---------------------------------------------


def _rabbit_env(key: str) -> str | None:
    out = subprocess.run(
        ["rabbitmqctl", "-q", "eval", f"application:get_env(rabbit, {key})."],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    return out[4:-1] if out.startswith("{ok,") and out.endswith("}") else None


def _set_rabbit_env(key: str, value: str | None) -> None:
    expr = (
        f"application:unset_env(rabbit, {key})."
        if value is None
        else f"application:set_env(rabbit, {key}, {value})."
    )
    subprocess.run(["rabbitmqctl", "-q", "eval", expr], capture_output=True, check=True, timeout=30)


@pytest.fixture
def consumer_timeout_3s(rabbitmq_url: str) -> Iterator[None]:
    """RabbitMQ's consumer_timeout at 3 s for the channels opened meanwhile
    (as tests/participants/test_leases_and_cancel.py does), restored after."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("no rabbitmqctl to set the broker's consumer_timeout")
    old = {key: _rabbit_env(key) for key in ("consumer_timeout", "channel_tick_interval")}
    try:
        _set_rabbit_env("consumer_timeout", "3000")
        _set_rabbit_env("channel_tick_interval", "500")
        yield
    finally:
        for key, value in old.items():
            _set_rabbit_env(key, value)


@pytest.mark.usefixtures("consumer_timeout_3s")
@pytest.mark.parametrize("broker_url", ["rabbitmq"], indirect=True)
@pytest.mark.rabbitmq
def test_the_limit_a_step_outliving_rabbitmqs_consumer_timeout_runs_twice(setup: Setup) -> None:
    """What BOSS cannot prevent, shown so the docs stay honest: RabbitMQ
    closes the channel of a consumer that holds a delivery longer than its
    consumer_timeout and gives the workitem to another, while the first is
    still working. The configuration names it (``broker_warnings``)."""
    first = setup.start_participant(8.0)
    wfid = setup.launch()
    wait_for(lambda: [x for x in setup.lines() if x.what == "start"], 20, "the step to start")
    second = setup.start_participant(1.0)
    setup.finished(wfid, 30)
    starts = [x.pid for x in setup.lines() if x.what == "start"]
    assert starts == [first.pid, second.pid], setup.lines()
    warned = Config.load(
        None, environ={}, broker_url=setup.config.broker_url, max_step_time=8, consumer_timeout=3
    ).broker_warnings()
    assert any("consumer_timeout" in w for w in warned)
