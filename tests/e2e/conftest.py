"""The end-to-end suite: engine workers and participants as separate OS
processes on a real broker (RabbitMQ, and the embedded Valkey through
kombu's Redis transport) and a real store.

* ``system``: a ``System`` for one test on ``broker_url`` (parametrised over
  both brokers): its own queue and key prefix, one ``boss.ini``, helpers to
  start engine workers (``boss worker``) and participant pools
  (``boss-participant``), an ``Engine`` on the store to look at runs, and a
  ``boss`` CLI runner. Everything it started is stopped, and its keys and
  queues removed, afterwards; process logs are printed when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from engine.broker import Publisher
from engine.config import Config
from engine.core import states
from engine.engine import Engine
from engine.store import RedisStore
from tests.conftest import delete_keys
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = Path(__file__).with_name("handlers.py")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class System:
    tmp: Path
    broker_url: str
    redis_url: str
    prefix: str
    settings: dict[str, Any] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.config = Config.load(
            None,
            environ={},
            broker_url=self.broker_url,
            redis_url=self.redis_url,
            key_prefix=f"{self.prefix}:",
            engine_queue=f"{self.prefix}.engine",
            deadletter_queue=f"{self.prefix}.deadletter",
            control_exchange=f"{self.prefix}.control",
            process_dir=str(self.tmp / "processes"),
            event_exchange=f"{self.prefix}.eiffel",
            trace_queue=f"{self.prefix}.trace",
            trace_deadletter_queue=f"{self.prefix}.trace.deadletter",
            heartbeat=0.5,
            lease_after=1.0,
            lease=3.0,
            visibility_timeout=4.0,
            engine_threads=2,  # two consumer threads per worker: races inside one too
            **self.settings,
        )
        self.ini = self.tmp / "boss.ini"
        self.ini.write_text(self._boss_section())
        self.store = RedisStore(self.redis_url, prefix=self.config.key_prefix)
        self.engine = Engine(self.store)
        self.publisher = Publisher(self.config)
        self.report = self.tmp / "report.jsonl"

    def _boss_section(self) -> str:
        keys = (
            "broker_url",
            "redis_url",
            "key_prefix",
            "engine_queue",
            "deadletter_queue",
            "control_exchange",
            "process_dir",
            "heartbeat",
            "lease_after",
            "lease",
            "visibility_timeout",
            "engine_threads",
            "event_exchange",
            "trace_queue",
            "trace_deadletter_queue",
        )
        return "[boss]\n" + "".join(f"{k} = {getattr(self.config, k)}\n" for k in keys)

    # -- processes -------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> Proc:
        log = self.tmp / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOSS_")}
        env["PYTHONPATH"] = str(ROOT)
        fh = log.open("ab")
        popen = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        fh.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def worker(self, name: str = "worker") -> Proc:
        """An engine worker; returns once its heartbeat is in the store."""
        before = {e["id"] for e in self.store.engines()}
        proc = self._spawn(
            name,
            [
                sys.executable,
                "-m",
                "bossapp.cli",
                "-c",
                str(self.ini),
                "worker",
                "--loglevel",
                "INFO",
                "--hostname",
                f"{name}-{uuid.uuid4().hex[:6]}@test",
            ],
        )
        wait_for(
            lambda: {e["id"] for e in self.store.engines()} - before or _dead(proc),
            30,
            f"engine worker {name} to start",
        )
        assert proc.alive(), self.logs()
        return proc

    def engine_id(self, proc: Proc) -> str:
        return next(e["id"] for e in self.store.engines() if e["pid"] == proc.popen.pid)

    def participant(
        self,
        name: str,
        cls: str,
        *,
        instances: int = 1,
        preregister: bool = True,
        queue: str | None = None,
        **options: Any,
    ) -> list[Proc]:
        """A pool of ``instances`` participant processes on one queue
        (registered by the test unless ``preregister`` is false; ``options``
        are further ``[participant]`` keys)."""
        queue = queue or f"{self.prefix}.{name}"
        ini = self.tmp / f"{name}.ini"
        extra = "".join(f"{k} = {v}\n" for k, v in options.items())
        ini.write_text(
            f"[participant]\nname = {name}\nqueue = {queue}\ncode = {HANDLERS}\n"
            f"class = {cls}\n{extra}\n"
            + self._boss_section()
            + f"\n[report]\npath = {self.report}\n"
        )
        if preregister:
            self.engine.register(name, queue, regex=False)
        procs = [
            self._spawn(f"{name}-{i}", [sys.executable, "-m", "participants.runtime", str(ini)])
            for i in range(instances)
        ]
        self.wait_consumers(queue, instances)
        return procs

    def wait_consumers(self, queue: str, n: int) -> None:
        """Until ``n`` consumers are on ``queue`` (RabbitMQ counts them; on the
        Redis transport, until each process said it is consuming)."""
        from engine.broker import is_redis, queue_info

        if is_redis(self.broker_url):
            procs = [p for p in self.procs if p.name.rsplit("-", 1)[0] == queue.split(".", 1)[1]]
            wait_for(
                lambda: (
                    all("consuming" in p.log.read_text(errors="replace") for p in procs)
                    or any(_dead(p) for p in procs)
                ),
                30,
                f"{n} consumers on {queue}",
            )
            return
        with self.publisher.connection.clone() as conn:
            wait_for(
                lambda: (queue_info(conn, queue).consumers or 0) >= n,
                30,
                f"{n} consumers on {queue}",
            )

    def stop(self) -> None:
        for p in self.procs:
            if p.alive():
                p.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for p in self.procs:
            try:
                p.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait()

    def logs(self) -> str:
        out = []
        for p in self.procs:
            text = p.log.read_text(errors="replace") if p.log.exists() else ""
            out.append(f"==== {p.name} (exit {p.popen.poll()}) ====\n{text[-6000:]}")
        return "\n".join(out)

    # -- runs -------------------------------------------------------------------------

    def launch(
        self, definition: str, fields: dict[str, Any] | None = None, wfid: str | None = None
    ) -> str:
        wfid = wfid or f"{self.prefix}-{uuid.uuid4().hex[:8]}"
        self.publisher.send({"definition": definition, "fields": fields or {}, "wfid": wfid})
        return wfid

    def status(self, wfid: str) -> str | None:
        loaded = self.store.load_run(wfid)
        return loaded[0]["status"] if loaded else None

    def wait_status(self, wfid: str, *wanted: str, timeout: float = 60) -> str:
        wanted = wanted or (states.FINISHED,)
        try:
            return wait_for(
                lambda: self.status(wfid) in wanted and self.status(wfid),
                timeout,
                f"run {wfid} to be {'/'.join(wanted)}",
            )
        except AssertionError:
            st = self.store.load_run(wfid)
            where = (
                [(p.expid, p.name, p.state) for p in self.engine.positions(wfid)] if st else None
            )
            outbox = [(x[0], x[1]) for x in (st[0].get("outbox") or [])] if st else None
            raise AssertionError(
                f"run {wfid} is {self.status(wfid)}, not {wanted}; "
                f"errors: {st[0]['errors'] if st else None}; at {where}; "
                f"outbox {outbox}; timers {self.store.timers(wfid)}; "
                f"engines {self.store.engines()}\n" + self.broker_state() + self.logs()
            ) from None

    def broker_state(self) -> str:
        """On the Redis transport: kombu's unacknowledged-message bookkeeping
        (shared by every client of the server) and the engine queue's length,
        for a run that waits on a message nobody took."""
        from engine.broker import is_redis

        if not is_redis(self.broker_url):
            return ""
        sock = self.broker_url.split("://", 1)[1]
        r = (
            redis.Redis(unix_socket_path=sock)
            if sock.startswith("/")
            else redis.Redis.from_url(self.broker_url)
        )
        now = time.time()
        index = r.zrange("unacked_index", 0, -1, withscores=True)
        mine = []
        for tag, score in index:
            raw = r.hget("unacked", tag)
            rk = json.loads(raw)[2] if raw else None
            mine.append((tag.decode(), round(now - score, 1), rk))
        return (
            f"broker: engine queue length {r.llen(self.config.engine_queue)}; "
            f"unacked_mutex ttl {r.pttl('unacked_mutex')} ms; "
            f"{len(index)} unacked: {mine[-40:]}\n"
        )

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        if not self.report.exists():
            return []
        out = [json.loads(x) for x in self.report.read_text().splitlines() if x.strip()]
        return [e for e in out if event is None or e["event"] == event]

    def boss(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run the ``boss`` CLI against this system."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOSS_")}
        env["PYTHONPATH"] = str(ROOT)
        proc = subprocess.run(
            [sys.executable, "-m", "bossapp.cli", "-c", str(self.ini), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"boss {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def invalid_events(self) -> list[str]:
        """The reasons of the events the aggregators dead-lettered. When a
        worker is still there, a sentinel event is published first and
        waited for in the graph: the queue is in order, so what came before
        it has been judged."""
        from engine.broker import list_deadletters
        from engine.trace import eiffel
        from engine.trace.aggregator import graph_prefix
        from engine.trace.bus import EventBus, TraceTopology
        from engine.trace.graph import Graph

        if any(p.alive() and "worker" in p.name for p in self.procs):
            sentinel = eiffel.artifact_created(f"pkg:generic/sentinel@{self.prefix}")
            bus = EventBus(self.config, self.publisher)
            bus.publish(sentinel)
            graph = Graph(self.store.client, prefix=graph_prefix(self.config))
            with contextlib.suppress(AssertionError):
                wait_for(
                    lambda: graph.exists(sentinel["meta"]["id"]),
                    15,
                    "the sentinel event in the graph",
                )
        with self.publisher.connection.clone() as conn:
            letters = list_deadletters(TraceTopology(self.config).deadletter_config, conn)
        return [x["reason"] for x in letters]

    def cleanup(self) -> None:
        self.stop()
        self.publisher.close()
        client = redis.Redis.from_url(self.redis_url)
        delete_keys(client, self.config.key_prefix)
        client.close()
        _delete_queues(self)
        self.store.close()


def _dead(proc: Proc) -> bool:
    return proc.popen.poll() is not None


def _delete_queues(system: System) -> None:
    """Remove this test's queues from the broker (RabbitMQ: queue.delete;
    the Redis transport: its keys)."""
    from engine.broker import is_redis

    if is_redis(system.broker_url):
        path = system.broker_url.split("://", 1)[1]
        client = (
            redis.Redis(unix_socket_path=path)
            if path.startswith("/")
            else redis.Redis.from_url(system.broker_url)
        )
        delete_keys(client, system.prefix)
        for key in client.scan_iter(match="_kombu.binding.*"):
            for member in client.smembers(key):
                if system.prefix.encode() in member:
                    client.srem(key, member)
        client.close()
        return
    import kombu

    with kombu.Connection(system.broker_url) as conn:
        channel = conn.channel()
        for name in (
            "engine",
            "deadletter",
            "trace",
            "trace.deadletter",
            *{p.name.rsplit("-", 1)[0] for p in system.procs},
        ):
            with contextlib.suppress(Exception):
                channel.queue_delete(f"{system.prefix}.{name}")
        for name in ("control", "eiffel"):
            with contextlib.suppress(Exception):
                channel.exchange_delete(f"{system.prefix}.{name}")


def running_system(
    tmp_path: Path, broker_url: str, redis_url: str, prefix: str, request: pytest.FixtureRequest
) -> Iterator[System]:
    """The body of a ``System`` fixture: its logs printed when the test
    failed; at the end, every Eiffel event the engine and the participants
    published passed the aggregator's validation (schema, link rules); then
    everything it started is stopped and its keys and queues removed."""
    sys_ = System(tmp_path, broker_url, redis_url, prefix)
    (tmp_path / "processes").mkdir()
    yield sys_
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print(sys_.logs())
    try:
        invalid = sys_.invalid_events()
        assert not invalid, f"invalid Eiffel events were dead-lettered: {invalid}"
    finally:
        sys_.cleanup()


@pytest.fixture
def system(
    broker_url: str, redis_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[System]:
    yield from running_system(
        tmp_path, broker_url, redis_url, f"e2e{uuid.uuid4().hex[:10]}", request
    )
