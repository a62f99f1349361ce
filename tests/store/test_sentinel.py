"""The run store with high availability: a Valkey primary, replicas and a
Sentinel (``tests.store.cluster``, the embedded Valkey's binary as all
three), the store opened by a ``redis+sentinel://`` URL.

* the URL opens a ``RedisStore`` on the primary the Sentinel names, with
  ``WAIT 1`` after each run save;
* the primary is killed (SIGKILL) mid-workload: the Sentinel promotes a
  replica, the store's client waits the failover out and goes on, and no
  acknowledged save is lost;
* a real engine worker (on the embedded broker) with its store on the
  Sentinel finishes every run across the failover, each step done once;
* what a failover loses of acknowledged saves, with WAIT and without, when
  the replica had not received the last writes (its link cut just before
  the primary dies): the numbers ``docs/install.md`` quotes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from engine.broker import Publisher
from engine.config import Config
from engine.core import messages
from engine.doctor import FAIL, OK, diagnose
from engine.engine import Engine
from engine.store import RedisStore, open_store
from engine.store.connection import parse_sentinel_url, sanitize
from engine.store.redis_store import ReplicationError
from engine.worker import EngineWorker
from tests.store.cluster import Cluster
from tests.waiting import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def run_state(wfid: str, n: int = 0) -> dict[str, Any]:
    return {"wfid": wfid, "status": "running", "name": "ha", "launched_at": 1.0, "n": n}


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    replicas = getattr(request, "param", 1)
    c = Cluster(tmp_path).start(replicas=replicas)
    try:
        yield c
    finally:
        c.stop()


def test_a_node_whose_port_another_server_took_starts_on_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tests run in parallel: another test's server may take the port
    ``free_port`` gave between it and the bind (CI saw a replica sync with
    another test's replica that answered there). The node whose bind failed
    is started again on another port, and its replicas follow it."""
    from tests.store import cluster as cluster_module

    real_free_port = cluster_module.free_port
    (tmp_path / "other").mkdir()
    taken = real_free_port()
    squatter = Cluster(tmp_path / "other")._server("squatter", taken)
    ports = iter([taken])
    monkeypatch.setattr(cluster_module, "free_port", lambda: next(ports, None) or real_free_port())
    (tmp_path / "mine").mkdir()
    c = Cluster(tmp_path / "mine")
    try:
        wait_for(lambda: squatter.client().ping(), 10, "the other server")
        c.start(replicas=1)
        assert c.primary is not None and c.primary.port != taken
        assert (tmp_path / "mine" / "primary.1").is_dir()  # started again
        with c.replicas[0].client() as r:
            assert r.info("replication")["master_port"] == c.primary.port
            assert r.info("replication")["master_link_status"] == "up"
    finally:
        c.stop()
        squatter.kill()


# -- the URL ------------------------------------------------------------------------


def test_sentinel_urls_parse() -> None:
    u = parse_sentinel_url("redis+sentinel://:s3cret@h1:26379,h2:26380,[::1]:5/boss/2?x=1")
    assert u.sentinels == [("h1", 26379), ("h2", 26380), ("::1", 5)]
    assert (u.service, u.db, u.password, u.tls, u.options) == (
        "boss",
        2,
        "s3cret",
        False,
        {"x": "1"},
    )
    assert parse_sentinel_url("valkeys+sentinel://h/svc").sentinels == [("h", 26379)]
    assert parse_sentinel_url("valkeys+sentinel://h/svc").tls
    for bad in ("redis+sentinel://h:1", "redis+sentinel://h:1/a/b/c", "redis+sentinel://h:x/a"):
        with pytest.raises(ValueError):
            parse_sentinel_url(bad)
    shown = sanitize("redis+sentinel://u:s3cret@h:1/boss?sentinel_password=pw")
    assert "s3cret" not in shown and "pw" not in shown and "h:1/boss" in shown


def test_config_adds_wait_replicas_and_tls_files_to_the_url() -> None:
    def url(**kw: Any) -> str:
        return Config.load(None, environ={"HOME": "/nonexistent"}, **kw).resolved_redis_url()

    assert url(redis_url="redis+sentinel://h:1/boss") == "redis+sentinel://h:1/boss"
    assert url(redis_url="redis+sentinel://h:1/boss", redis_wait_replicas=2).endswith(
        "/boss?wait_replicas=2"
    )
    assert url(redis_url="redis://h:1/0", redis_wait_replicas=2) == "redis://h:1/0"
    assert url(redis_url="rediss://h:1/0", redis_ca="/etc/ca.pem") == (
        "rediss://h:1/0?ssl_ca_certs=/etc/ca.pem"
    )
    # TLS files on a plain URL mean nothing: not added
    assert url(redis_url="redis://h:1/0", redis_ca="/etc/ca.pem") == "redis://h:1/0"


# -- one store on the Sentinel ---------------------------------------------------------


def test_a_sentinel_url_opens_the_store_on_the_primary(cluster: Cluster) -> None:
    store = open_store(cluster.url, prefix="ha:")
    try:
        assert isinstance(store, RedisStore)
        assert store.wait_replicas == 1  # the default on Sentinel
        assert store.create_run(run_state("w1")) == 1
        assert store.save_run(run_state("w1", 1), 1) == 2
        assert store.load_run("w1") == (run_state("w1", 1), 2)
        # WAIT 1 returned: the replica has the save already
        with cluster.replicas[0].client() as replica:
            assert replica.hget("ha:run:w1", "v") == b"2"
    finally:
        store.close()
    # boss doctor's store check goes through the Sentinel too
    report = diagnose(
        environ={"HOME": "/nonexistent"},
        redis_url=cluster.url,
        broker_url="redis://127.0.0.1:1/0",
        timeout=2,
    )
    finding = report.get("store")
    assert finding is not None and finding.status == OK, finding
    report = diagnose(
        environ={"HOME": "/nonexistent"},
        redis_url=cluster.url.replace("/boss/", "/nosuch/"),
        broker_url="redis://127.0.0.1:1/0",
        timeout=2,
    )
    finding = report.get("store")
    assert finding is not None and finding.status == FAIL, finding
    assert f"Sentinel 127.0.0.1:{cluster.sentinel.port}: no such service" in finding.found  # type: ignore[union-attr]
    # the URL's own wait_replicas, and no WAIT at all with 0
    store = open_store(cluster.url + "?wait_replicas=0", prefix="ha:")
    assert isinstance(store, RedisStore) and store.wait_replicas == 0
    assert store.save_run(run_state("w1", 2), 2) == 3
    store.close()


def test_too_few_replicas_is_a_transient_error(cluster: Cluster) -> None:
    store = RedisStore(cluster.url, prefix="ha:", wait_replicas=2, wait_timeout=100)
    try:
        store.create_run(run_state("w2"))
        with pytest.raises(ReplicationError, match="acknowledged by 1 of 2 replicas") as err:
            store.save_run(run_state("w2", 1), 1)
        # what the engine worker takes for "the store is away: the message
        # comes again", not for a failed message
        assert isinstance(err.value, redis.TimeoutError)
    finally:
        store.close()


@pytest.mark.parametrize("cluster", [2], indirect=True)
@pytest.mark.parametrize("wait", [1, 0])
def test_the_store_waits_out_a_failover_and_loses_no_acknowledged_save(
    cluster: Cluster, wait: int
) -> None:
    """Two replicas (WAIT 1 still has one to wait for after the failover);
    a writer saves one run as fast as it can; the primary is killed. Without
    WAIT the loss is only measured (printed): a healthy replica on the same
    host is rarely more than a write behind."""
    store = open_store(f"{cluster.url}?wait_replicas={wait}", prefix="ha:")
    assert isinstance(store, RedisStore) and store.wait_replicas == wait
    store.create_run(run_state("w3"))
    acked = 0
    version = 1
    stop = threading.Event()
    latencies: list[float] = []
    errors: list[BaseException] = []

    def writer() -> None:
        nonlocal acked, version
        try:
            while not stop.is_set():
                t0 = time.monotonic()
                version = store.save_run(run_state("w3", acked + 1), version)
                latencies.append(time.monotonic() - t0)
                acked += 1
        except BaseException as exc:  # the test fails on it below
            errors.append(exc)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        wait_for(lambda: acked >= 200 or errors, 20, "200 saves before the kill")
        old = cluster.kill_primary()
        at_kill = acked
        new = cluster.wait_failover(old)
        wait_for(lambda: acked >= at_kill + 200 or errors, 30, "200 saves after the failover")
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors
    assert new.port in [r.port for r in cluster.replicas]
    state, stored = store.load_run("w3")  # type: ignore[misc]
    stall = max(latencies)
    print(
        f"WAIT {wait}: the longest save took {stall:.2f}s; {acked} saves acknowledged, "
        f"{acked - state['n']} lost"
    )
    if wait:
        assert state["n"] == acked and stored == version  # nothing acknowledged was lost
    assert stall > 0.4  # the kill was waited out inside a save, not raised
    store.close()


# -- what a failover loses --------------------------------------------------------------


def _lost_acknowledged_saves(cluster: Cluster, wait_replicas: int, saves: int = 5) -> int:
    """A replica that lags: stopped (SIGSTOP), with 32 MB written past what
    the socket buffers between it and the primary hold, so that what comes
    next stays in the primary's memory; then ``saves`` saves, the primary
    killed, the replica let go (SIGCONT: it reads what reached it, well
    within the Sentinel's 1000 ms) and promoted: how many acknowledged saves
    the new primary lacks."""
    store = RedisStore(cluster.url, prefix="ha:", wait_replicas=wait_replicas, wait_timeout=100)
    assert cluster.primary is not None
    replica = cluster.replicas[0]
    try:
        version = store.create_run(run_state("w4"))
        for n in range(1, 11):
            version = store.save_run(run_state("w4", n), version)
        acked = 10
        replica.process.send_signal(signal.SIGSTOP)
        try:
            with cluster.primary.client() as primary:
                filler = b"x" * (2 << 20)
                for i in range(16):
                    primary.set(f"ha:filler:{i}", filler)
            for n in range(acked + 1, acked + 1 + saves):
                try:
                    version = store.save_run(run_state("w4", n), version)
                except ReplicationError:
                    break  # not acknowledged: the message would come again
                acked = n
            old = cluster.kill_primary()
        finally:
            replica.process.send_signal(signal.SIGCONT)
        cluster.wait_failover(old)
        state, _ = store.load_run("w4")  # type: ignore[misc]
        return max(0, acked - state["n"])
    finally:
        store.close()


def test_with_wait_a_failover_loses_no_acknowledged_save(cluster: Cluster) -> None:
    assert _lost_acknowledged_saves(cluster, wait_replicas=1) == 0


def test_without_wait_a_failover_loses_the_saves_the_replica_had_not_received(
    cluster: Cluster,
) -> None:
    lost = _lost_acknowledged_saves(cluster, wait_replicas=0, saves=5)
    print(f"without WAIT: {lost} of 5 acknowledged saves lost")
    assert lost == 5


# -- runs across a failover ---------------------------------------------------------------

PARTICIPANT = r"""
import json, sys, time
import kombu
import engine.redis_transport  # noqa: F401  (registers bossredis://)

url, queue, log = sys.argv[1:4]
if url.startswith("redis+socket://"):
    url = "bossredis+socket://" + url.removeprefix("redis+socket://")

with kombu.Connection(url) as conn:
    producer = kombu.Producer(conn.channel())

    def on_message(message):
        wi = json.loads(message.body)
        with open(log, "a") as f:
            f.write(f"{wi['fei']['wfid']} {wi['fei']['expid']}\n")
        time.sleep(0.05)
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
    open(log + ".ready", "w").close()
    while True:
        try:
            conn.drain_events(timeout=0.2)
        except TimeoutError:
            pass
"""

DEFINITION = "name: ha\nsteps:\n  - ha_a\n  - ha_b\n  - ha_c\n  - ha_d\n"


@pytest.mark.parametrize("cluster", [2], indirect=True)
def test_runs_finish_across_a_failover_each_step_done_once(
    cluster: Cluster, embedded_broker_url: str, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    config = Config.load(
        None,
        environ={"HOME": "/nonexistent"},
        broker_url=embedded_broker_url,
        redis_url=cluster.url,
        key_prefix=f"ha-{suffix}:",
        engine_queue=f"boss.engine.{suffix}",
        deadletter_queue=f"boss.deadletter.{suffix}",
        control_exchange=f"boss.control.{suffix}",
        events=False,
        trace_threads=0,
        heartbeat=0.5,
    )
    assert config.resolved_redis_url() == cluster.url
    queue = f"q.ha.{suffix}"
    log = tmp_path / "steps.log"
    worker = EngineWorker(config, threads=2).start()
    store = worker.store()
    assert isinstance(store, RedisStore) and store.wait_replicas == 1
    engine = Engine(store)
    engine.register("ha_.*", queue)
    participant = subprocess.Popen(
        [sys.executable, "-c", PARTICIPANT, embedded_broker_url, queue, str(log)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    try:
        wait_for(lambda: Path(f"{log}.ready").exists(), 20, "the participant to consume")
        wfids = [f"ha-{suffix}-{i}" for i in range(12)]
        publisher = Publisher(config)
        try:
            for wfid in wfids:
                publisher.send(messages.launch_item(definition=DEFINITION, wfid=wfid))
        finally:
            publisher.close()

        def lines() -> list[str]:
            return log.read_text().splitlines() if log.exists() else []

        total = 4 * len(wfids)
        wait_for(lambda: len(lines()) >= total // 4, 30, "a quarter of the steps")
        old = cluster.kill_primary()
        at_kill = len(lines())
        assert at_kill < total, "every step was done before the kill: nothing was tested"
        cluster.wait_failover(old)

        def finished() -> bool:
            try:
                return all(engine.status(w) == "finished" for w in wfids)
            except redis.RedisError:
                return False

        wait_for(finished, 45, "every run to finish after the failover")
        done = lines()
        assert sorted(done) == sorted(set(done)), "a step ran twice"
        assert len(done) == total
        print(f"{at_kill} of {total} steps done when the primary was killed")
    finally:
        participant.kill()
        participant.wait(10)
        worker.stop(timeout=10)
