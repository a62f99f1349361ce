"""Benchmark: the distributed runtime (engine worker + participant processes
over a real broker) against a plain Celery chain and bare kombu round trips.

For each broker (RabbitMQ in a private vhost, with the machine's Redis as
the run store; the embedded Valkey as both broker and store) it measures:

1. **BOSS end to end**: one engine worker (``boss worker``, a Celery worker
   with the engine bootstep) and one participant process
   (``participants.runtime``) whose handler does nothing but append
   ``wfid subid dispatched_at received`` to a file. ``inflight`` runs (100)
   of an ``N``-step sequence are launched at once; steps/s = participant
   steps / wall time from the first launch to the last run finished (the
   processes are started and warmed up before). Step latency = the time
   the handler was called on step k+1 minus the time it was called on
   step k of one run (the participant's clock, ``time.time()`` taken in
   the handler, microsecond resolution: the full cycle of a step, as the
   baselines' figures below are). The same from the workitems'
   ``dispatched_at`` (the engine's clock, but the wire format's
   millisecond resolution) is in the JSON (``p50_ms_by_dispatch``). Also
   with 1 run in flight (runs one after another).
2. **Celery chain**: a Celery app with one no-op task, ``chain`` of ``N``
   immutable signatures, ``inflight`` chains at once, one Celery worker
   (prefork pool, concurrency 1: Celery's default pool, one process doing
   the work as one engine worker does; ``--celery-pool solo`` for the
   other), Celery's defaults otherwise (no result backend, acks on receipt,
   no publisher confirms). Latency = time between the starts of successive
   tasks of one chain, recorded by the task.
3. **bare kombu**: one "engine" process keeps ``inflight`` messages in
   flight; one "participant" process consumes its queue, publishes a reply
   to the engine queue and acks; the engine (prefetch 16) decodes each
   reply and publishes the next message of that chain before acking.
   Durable queues, persistent JSON bodies shaped like a workitem, publisher
   confirms on RabbitMQ, in two ways side by side: each publish waiting for
   its confirm (kombu's ``confirm_publish``; the participant at prefetch 1),
   and **async confirms** (the pair publishes without waiting and
   acknowledges a delivery once the publish it caused is confirmed, the
   engine taking deliveries and confirms as they come: BOSS's guarantee
   and way, without BOSS; the participant at prefetch 8, as BOSS's). On the
   embedded broker only the first (kombu's Redis transport has no
   confirms). Latency = from the start of a chain's publish to the arrival
   of its reply (a round trip, on the engine's clock; a publish that waits
   for its confirm is part of it: the reply may arrive during that wait).
   Until 2026-12-06 it was taken from the end of the publish, which left
   out most of the round trip when confirms were waited for (0.53 ms
   against 1.29 ms a round trip at 775 round trips/s, one in flight:
   docs/benchmarks.md, "Sixth slice").

The CPU each process used during a measurement (from ``/proc``) is
reported beside the figures (% of one core; the machine has ``nproc``
cores), and ``--profile DIR`` adds one more BOSS batch per broker with
``py-spy record`` attached to the engine worker and the participant, and
prints where their samples went (by component, and what a blocked thread
waits for: a confirm, the next message, the store, ...). ``--what-if``
adds BOSS with the participant runtime's poll timeouts patched to 1 ms
(an estimate, not a verdict; the stock runtime is what the targets judge).

``--security`` measures, instead of the brokers above, what TLS and dispatch
tokens (docs/security.md) cost: a private RabbitMQ node is started under the
temp dir (its own name, ports, epmd, HOME, data and log directories; a test
CA from ``tests/security/test_broker_tls.make_pki``) with a plain TCP and a
TLS listener, and BOSS end to end (1., ``inflight`` runs then 1; run store
on the machine's Redis) is measured three times on it: ``plain``
(``amqp://``, user and password), ``tls`` (``amqps://localhost`` with
``broker_ca``, ``broker_cert``, ``broker_key``: the broker's certificate and
host name verified, the client certificate logging in by ``EXTERNAL``) and
``tls_tokens`` (the same with ``dispatch_key`` for the engine worker). It
prints each variant's figures and the ratios TLS/plain and
TLS+tokens/plain (steps/s, p50, p99, CPU of engine, participant, broker);
``--json`` has them under ``brokers.security``. No Celery nor bare kombu.

``--embedded-fsync everysec,always`` measures the embedded broker once per
append-only file fsync policy (``[boss] embedded_fsync``), side by side as
``embedded:everysec`` and ``embedded:always``: what durability against a
power cut costs.

Run: ``python bench/bench_runtime.py [--quick] [--json FILE] [--profile DIR]
[--what-if] [--keep] [--embedded-fsync POLICY,...]``, or ``python bench/bench_runtime.py --security
[--quick] [--json FILE]``; numbers and their reading are in
docs/benchmarks.md. Everything it creates (processes, the RabbitMQ vhost or
private node, Redis keys, the embedded Valkey and its directory) is removed
at exit, also on Ctrl-C.

The module doubles as the participant's handler file (``NoopRecorder``) and
as the entry point of the baseline processes (``--role ...``), so its
top-level imports are the standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PARTICIPANT = "benchnoop"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
REDIS_URL = "redis://127.0.0.1:6379/0"
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: seconds without a step done or a run finished before a batch is given up
STALL = 60.0


# -- the participant's handler (loaded by participants.runtime from this file) ------


class NoopRecorder:
    """A no-op step that appends ``wfid subid dispatched_at received`` to the
    file named by ``[bench] record`` in the participant's INI."""

    def handle_lifecycle_control(self, ctrl: Any) -> None:
        if ctrl.message == "start":
            path = ctrl.config.get("bench", "record")
            self.fh = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        elif ctrl.message in ("stop", "die"):
            self.fh.close()

    def handle_wi(self, wi: Any) -> None:
        self.fh.write(
            f"{wi.wfid} {wi.fei['subid']} {wi.to_dict()['dispatched_at']} {time.time():.6f}\n"
        )


# -- the baseline processes (``--role``) ----------------------------------------------

_stop_flag: list[bool] = []


def _on_term(_signum: int, _frame: Any) -> None:
    _stop_flag.append(True)


def _kombu_connection(url: str, amqp_confirm: bool = True) -> Any:
    import kombu

    redis = url.startswith(("redis", "socket"))
    options = {"visibility_timeout": 30.0} if redis else {"confirm_publish": amqp_confirm}
    return kombu.Connection(url, transport_options=options, connect_timeout=5)


def _queue(name: str) -> Any:
    from kombu import Exchange, Queue

    return Queue(name, exchange=Exchange(""), routing_key=name, durable=True, auto_delete=False)


def _iso(ts: float) -> str:
    t = datetime.fromtimestamp(ts, UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _confirm_async(channel: Any, on_ack: Callable[[int, bool], None]) -> None:
    """Put a py-amqp ``channel`` in confirm mode and publish on it without
    waiting for each confirm, as BOSS does (``engine.broker.Publisher``):
    ``on_ack(tag, multiple)`` is called from ``drain_events``."""
    channel.confirm_select()
    channel.events["basic_ack"].add(on_ack)
    channel.basic_publish = channel._basic_publish


def _waits_for_confirms(args: argparse.Namespace) -> bool:
    """Whether each publish waits for its confirm (``--confirms wait``, and
    always on kombu's Redis transport, which has none)."""
    return args.confirms != "async" or args.broker.startswith(("redis", "socket"))


class _Owed:
    """Deliveries to acknowledge once the publish each caused is confirmed
    (``async`` confirms: the guarantee BOSS gives, without waiting). Every
    publish on the channel counts (``sent``): the broker's confirms are by
    the channel's publish number."""

    def __init__(self) -> None:
        self.seq = 0
        self.confirmed = 0
        self.owed: list[tuple[int, Any]] = []

    def sent(self) -> None:
        """A publish went out on the confirming channel."""
        self.seq += 1

    def owe(self, message: Any) -> None:
        """Acknowledge ``message`` once the last publish is confirmed."""
        self.owed.append((self.seq, message))

    def on_ack(self, tag: int, multiple: bool) -> None:
        # (confirms come in order on one channel; a single ack of a tag
        # past one not yet acked does not happen there)
        self.confirmed = max(self.confirmed, tag)

    def settle(self) -> None:
        while self.owed and self.owed[0][0] <= self.confirmed:
            self.owed.pop(0)[1].ack()


def role_kombu_participant(args: argparse.Namespace) -> None:
    """Consume the participant queue; for each message publish a reply (the
    JSON, decoded and re-encoded with two keys added, as the runtime does)
    to ``reply_to``, then ack. ``--confirms wait`` (kombu's
    ``confirm_publish``): the publish returns once confirmed, prefetch 1;
    ``async``: the ack once the reply is confirmed, without waiting for it
    (prefetch 8, as BOSS's participant); on kombu's Redis transport both
    are the same (no confirms)."""
    from kombu import Consumer, Producer

    signal.signal(signal.SIGTERM, _on_term)
    waits = _waits_for_confirms(args)
    conn = _kombu_connection(args.broker, amqp_confirm=waits)
    conn.ensure_connection(max_retries=3)
    producer = Producer(conn.channel())
    for q in (args.queue, args.reply):
        _queue(q)(producer.channel).declare()
    owed = _Owed()
    if not waits:
        _confirm_async(producer.channel, owed.on_ack)
    instance = f"{platform.node()}:{os.getpid()}"

    def on_message(message: Any) -> None:
        data = json.loads(message.body)
        data["started_at"] = _iso(time.time())
        data["instance"] = instance
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        producer.publish(
            body,
            exchange="",
            routing_key=message.properties.get("reply_to") or args.reply,
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
            mandatory=True,
        )
        if waits:
            message.ack()
        else:
            owed.sent()
            owed.owe(message)

    consumer = Consumer(
        conn.channel(),
        [_queue(args.queue)],
        on_message=on_message,
        prefetch_count=1 if waits else 8,
        accept=["application/json"],
    )
    consumer.consume()
    print("consuming", flush=True)
    while not _stop_flag:
        with contextlib.suppress(TimeoutError):
            conn.drain_events(timeout=0.2)
        owed.settle()
    conn.release()


def role_kombu_engine(args: argparse.Namespace) -> None:
    """Keep ``inflight`` chains of messages in flight for ``warmup`` +
    ``seconds``; write the round trips counted in the last ``seconds`` and
    their latencies (JSON) to ``out``; then let the chains drain. A round
    trip's latency is from the start of a chain's publish to its reply's
    arrival: with ``--confirms wait`` the publish returns once confirmed,
    and the reply may arrive meanwhile (that wait is part of the round
    trip); with ``async`` a reply is acknowledged once the publish it
    caused is confirmed, as BOSS's engine does."""
    import select

    from kombu import Consumer, Producer

    signal.signal(signal.SIGTERM, _on_term)
    waits = _waits_for_confirms(args)
    conn = _kombu_connection(args.broker)
    conn.ensure_connection(max_retries=3)
    # as the engine worker: consume on one connection, publish (confirmed)
    # on another
    pub = _kombu_connection(args.broker, amqp_confirm=waits)
    pub.ensure_connection(max_retries=3)
    producer = Producer(pub.channel())
    for q in (args.queue, args.reply):
        _queue(q)(producer.channel).declare()
    owed = _Owed()
    if not waits:
        _confirm_async(producer.channel, owed.on_ack)
    started: dict[int, float] = {}
    seq: dict[int, int] = {}
    lat: list[float] = []
    state = {"measuring": False, "stopping": False, "count": 0, "outstanding": 0}

    def publish(i: int) -> None:
        seq[i] = n = seq.get(i, 0) + 1
        wi = {
            "fei": {
                "wfid": f"kombu-{i:04d}",
                "expid": f"0_{n}",
                "subid": f"0_{n}-{n}",
                "engine_id": "bench",
            },
            "fields": {"params": {}},
            "participant_name": PARTICIPANT,
            "wf_name": "bench-seq",
            "wf_revision": "",
            "dispatched_at": _iso(time.time()),
        }
        body = json.dumps(wi, separators=(",", ":"), ensure_ascii=False).encode()
        started[i] = time.perf_counter()
        producer.publish(
            body,
            exchange="",
            routing_key=args.queue,
            reply_to=args.reply,
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
        )
        owed.sent()

    def on_message(message: Any) -> None:
        data = json.loads(message.body)
        i = int(data["fei"]["wfid"].rsplit("-", 1)[1])
        now = time.perf_counter()
        if state["measuring"]:
            lat.append(now - started[i])
            state["count"] += 1
        if state["stopping"]:
            state["outstanding"] -= 1
            message.ack()
            return
        publish(i)
        if waits:
            message.ack()
        else:
            owed.owe(message)

    consumer = Consumer(
        conn.channel(),
        [_queue(args.reply)],
        on_message=on_message,
        prefetch_count=16,
        accept=["application/json"],
    )
    consumer.consume()
    for i in range(args.inflight):
        publish(i)

    def drain(timeout: float) -> None:
        if waits:
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=timeout)
            return
        # deliveries and confirms, whichever comes first (as the engine
        # worker waits: ``engine.worker._EngineConsumer.wait``)
        socks = [conn.connection.sock, pub.connection.sock]
        ready, _, _ = select.select(socks, [], [], timeout)
        for c, sock in ((conn, socks[0]), (pub, socks[1])):
            if sock in ready:
                with contextlib.suppress(TimeoutError):
                    c.drain_events(timeout=0)
        owed.settle()

    def drain_until(t_end: float) -> None:
        while time.perf_counter() < t_end and not _stop_flag:
            drain(0.05)

    drain_until(time.perf_counter() + args.warmup)
    state["measuring"] = True
    t0 = time.perf_counter()
    drain_until(t0 + args.seconds)
    elapsed = time.perf_counter() - t0
    state["measuring"] = False
    state["stopping"] = True
    state["outstanding"] = args.inflight
    deadline = time.perf_counter() + 30
    while state["outstanding"] > 0 and time.perf_counter() < deadline and not _stop_flag:
        drain(0.05)
    Path(args.out).write_text(
        json.dumps(
            {
                "round_trips": state["count"],
                "seconds": elapsed,
                "latencies": lat,
                "drained": state["outstanding"] <= 0,
            }
        )
    )
    conn.release()
    pub.release()


def celery_app(broker: str, queue: str, record: str | None = None) -> Any:
    """The baseline's Celery app: one no-op task that appends
    ``chain k time`` to ``record``."""
    from celery import Celery

    app = Celery("bench", broker=broker, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        task_default_queue=queue,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )
    fh: list[Any] = []

    @app.task(name="bench.noop")
    def noop(chain_id: str, k: int) -> None:
        if not fh:
            fh.append(open(record, "a", buffering=1, encoding="utf-8"))  # noqa: SIM115
        fh[0].write(f"{chain_id} {k} {time.time():.6f}\n")

    app.bench_noop = noop  # type: ignore[attr-defined]
    return app


def role_whatif_participant(args: argparse.Namespace) -> None:
    """The stock participant runtime with its two poll timeouts patched
    (``participants.runtime.POLL``, ``participants.link.REDIS_POLL``): what
    BOSS would do if the runtime's main loop woke when the handler returns."""
    import participants.link
    import participants.runtime

    participants.runtime.POLL = float(args.poll)
    participants.link.REDIS_POLL = float(args.poll)
    participants.runtime.main([args.record, "--log-level", "INFO"])


def role_celery_worker(args: argparse.Namespace) -> None:
    app = celery_app(args.broker, args.queue, args.record)
    argv = [
        "worker",
        f"--pool={args.pool}",
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
        f"--hostname=bench-{uuid.uuid4().hex[:6]}@bench",
        "--queues",
        args.queue,
    ]
    if args.pool == "prefork":
        argv.append("--concurrency=1")
    app.worker_main(argv)


# -- processes and their CPU ----------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def _proc_ticks(pid: int) -> int:
    """utime + stime of one process (all its threads), in clock ticks."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(x) for x in (task / "children").read_text().split()]
    return out


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += _children(p)
    return pids


def _pids_named(*names: str) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                if (d / "comm").read_text().strip() in names:
                    out.append(int(d.name))
    return out


def _is_aggregator(pid: int) -> bool:
    """Whether ``pid`` is an engine worker's trace aggregator child."""
    try:
        return b"engine.trace" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _machine_ticks() -> int:
    """Busy clock ticks of the whole machine (all cores; idle and iowait left out)."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values) - values[3] - values[4]


class CpuMeter:
    """CPU used by named process trees between ``start`` and ``stop`` (% of
    one core over the wall time), and ``others``: what the rest of the
    machine used meanwhile (another job on the machine spoils a figure)."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups

    def _read(self) -> dict[str, int]:
        out = {
            name: sum(_proc_ticks(p) for root in pids for p in _tree(root))
            for name, pids in self.groups.items()
        }
        if "aggregator" in out and "engine" in out:
            # the aggregator is a child of the engine worker: counted apart
            out["engine"] -= out["aggregator"]
        out["_machine"] = _machine_ticks()
        return out

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.before = self._read()

    def stop(self) -> dict[str, float]:
        after = self._read()
        wall = time.perf_counter() - self.t0
        used = {name: after[name] - self.before[name] for name in after}
        machine = used.pop("_machine")
        used["others"] = max(0, machine - sum(used.values()))
        return {name: round(100.0 * ticks / CLK_TCK / wall, 1) for name, ticks in used.items()}


# -- one broker's rig -------------------------------------------------------------------


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.02
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class LineCounter:
    """Counts the lines appended to a file since it was made."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self.lines = 0

    def count(self) -> int:
        with contextlib.suppress(FileNotFoundError), self.path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
            self.offset += len(data)
            self.lines += data.count(b"\n")
        return self.lines


@dataclass
class Rig:
    """One broker with its store, and the processes started on it."""

    kind: str  # "rabbitmq" or "embedded" (or "embedded:POLICY": its appendfsync)
    tmp: Path
    broker_url: str = ""
    redis_url: str = ""
    prefix: str = field(default_factory=lambda: f"bossbench{uuid.uuid4().hex[:8]}")
    procs: list[Proc] = field(default_factory=list)
    vhost: str | None = None
    server: Any = None
    versions: dict[str, str] = field(default_factory=dict)
    #: a private RabbitMQ node (``--security``) instead of the machine's
    node: TlsNode | None = None
    #: the broker users given the rig's vhost
    users: tuple[str, ...] = ("guest",)
    #: ``[boss]`` settings for every BOSS process (the TLS keys)
    settings: dict[str, str] = field(default_factory=dict)
    #: the store's server process (``INFO server``'s ``process_id``)
    store_pid: int = 0
    #: ``[boss]`` settings for the engine workers only (``dispatch_key``:
    #: participants never hold it)
    engine_settings: dict[str, str] = field(default_factory=dict)

    def ctl(self, *args: str, check: bool = True) -> str:
        """``rabbitmqctl -q ARGS`` on the rig's node (the machine's, or the
        private one)."""
        if self.node is not None:
            return self.node.ctl(*args, check=check)
        ctl = shutil.which("rabbitmqctl")
        if ctl is None:
            raise RuntimeError("rabbitmqctl not found: cannot make a private vhost")
        return _run([ctl, "-q", *args], check=check)

    # -- set-up and tear-down -------------------------------------------------------
    def setup(self, amqp_url: str, redis_url: str) -> None:
        import redis

        if self.kind == "rabbitmq":
            self.vhost = self.prefix
            self.ctl("add_vhost", self.vhost)
            for user in self.users:
                self.ctl("set_permissions", "-p", self.vhost, user, ".*", ".*", ".*")
            self.broker_url = amqp_url.rstrip("/") + "/" + self.vhost
            self.redis_url = redis_url
            self.versions["rabbitmq"] = self.ctl("version", check=False).strip()
        else:
            from engine.embedded import EmbeddedValkey

            # "embedded:always": the embedded Valkey with appendfsync always
            fsync = self.kind.partition(":")[2]
            config = {"appendfsync": fsync} if fsync else None
            self.server = EmbeddedValkey(self.tmp / "valkey", config=config).start()
            if fsync:
                self.versions["appendfsync"] = fsync
            self.redis_url = self.server.url
            self.broker_url = "redis+socket://" + self.server.url.removeprefix("unix://")
        client = redis.Redis.from_url(self.redis_url)
        info = client.info("server")
        self.store_pid = int(info.get("process_id") or 0)
        self.versions["store"] = (
            f"{'Valkey' if 'valkey_version' in info else 'Redis'} "
            f"{info.get('valkey_version') or info.get('redis_version')}"
        )
        client.close()
        from engine.broker import Publisher
        from engine.config import Config
        from engine.engine import Engine
        from engine.store import RedisStore

        (self.tmp / "processes").mkdir(exist_ok=True)
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
            **self.settings,
            **self.engine_settings,
        )
        self.ini = self.tmp / "boss.ini"
        keys = (
            "broker_url",
            "redis_url",
            "key_prefix",
            "engine_queue",
            "deadletter_queue",
            "control_exchange",
            "process_dir",
        )
        # the participant's INI has ``boss_section``; the engine workers'
        # (``ini``) the engine-only settings too
        self.boss_section = (
            "[boss]\n"
            + "".join(f"{k} = {getattr(self.config, k)}\n" for k in keys)
            + "".join(f"{k} = {v}\n" for k, v in {**self.settings, **BOSS_SETTINGS}.items())
        )
        self.ini.write_text(
            self.boss_section + "".join(f"{k} = {v}\n" for k, v in self.engine_settings.items())
        )
        self.store = RedisStore(self.redis_url, prefix=self.config.key_prefix)
        self.engine = Engine(self.store)
        self.publisher = Publisher(self.config)

    def cleanup(self) -> None:
        self.stop_all()
        for closer in ("publisher", "store"):
            obj = getattr(self, closer, None)
            if obj is not None:
                with contextlib.suppress(Exception):
                    obj.close()
        if self.kind == "rabbitmq":
            import redis

            with contextlib.suppress(Exception):
                client = redis.Redis.from_url(self.redis_url)
                _delete_keys(client, f"{self.prefix}:")
                client.close()
            if self.vhost is not None:
                with contextlib.suppress(Exception):
                    self.ctl("delete_vhost", self.vhost, check=False)
        elif self.server is not None:
            with contextlib.suppress(Exception):
                self.server.stop()

    # -- processes ---------------------------------------------------------------------
    def spawn(self, name: str, argv: list[str]) -> Proc:
        log = self.tmp / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOSS_")}
        env["PYTHONPATH"] = str(ROOT)
        with log.open("ab") as fh:
            popen = subprocess.Popen(
                argv, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc, timeout: float = 20.0) -> None:
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(signal.SIGTERM)
        try:
            proc.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: its pool too
            proc.popen.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # a pool child left behind
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(reversed(self.procs)):
            self.stop(proc)

    def check_alive(self, *procs: Proc) -> None:
        for p in procs:
            if not p.alive():
                raise RuntimeError(f"{p.name} exited with {p.popen.returncode}:\n{p.tail()}")

    def broker_pids(self) -> list[int]:
        if self.node is not None:
            return self.node.pids()
        if self.kind == "rabbitmq":
            return _pids_named("beam.smp")
        return [self.server.pid] if self.server is not None and self.server.pid else []

    def store_pids(self) -> list[int]:
        """The store's server process (its ``INFO`` names it: not every
        redis-server of the machine, another job's included)."""
        if self.kind == "rabbitmq":
            return [self.store_pid] if self.store_pid else []
        return []  # the embedded server is the broker too: counted there

    def meter(self, **procs: Proc | list[Proc]) -> CpuMeter:
        groups = {
            name: [q.pid for q in (p if isinstance(p, list) else [p])] for name, p in procs.items()
        }
        groups["broker"] = self.broker_pids()
        if self.kind == "rabbitmq":
            groups["redis"] = self.store_pids()
        return CpuMeter(groups)


def _run(argv: list[str], check: bool = True, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env=env)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr}")
    return done.stdout


def _delete_keys(client: Any, prefix: str) -> None:
    pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
    batch = []
    for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 500:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)


# -- a private RabbitMQ node with TLS (``--security``) ---------------------------------

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TlsNode:
    """A private RabbitMQ node (``tests/rabbitmq_node.py``'s ``RabbitNode``,
    as ``tests/security/test_broker_tls.py``'s) under ``base``, with a plain
    TCP listener (``port``) and a TLS one (``tls_port``: certificates from
    the tests' ``make_pki``, client certificates verified when presented,
    ``EXTERNAL`` login by their common name). The machine's RabbitMQ is
    neither touched nor needed."""

    base: Path
    #: the client certificate's common name: the user it logs in as
    client_cn: str = ""
    pki: Any = None
    rabbit: Any = None

    def __post_init__(self) -> None:
        from tests.rabbitmq_node import RabbitNode

        self.rabbit = RabbitNode(
            self.base,
            plugins=["rabbitmq_auth_mechanism_ssl"],
            conf=(
                "auth_mechanisms.1 = PLAIN\n"
                "auth_mechanisms.2 = EXTERNAL\n"
                "ssl_cert_login_from = common_name\n"
            ),
            node=f"bossbench{uuid.uuid4().hex[:8]}@localhost",
        )

    @property
    def port(self) -> int:
        return int(self.rabbit.port)

    @property
    def tls_port(self) -> int:
        return int(self.rabbit.tls_port)

    @property
    def user(self) -> str:
        return str(self.rabbit.user)

    def start(self, timeout: float = 90.0) -> TlsNode:
        from tests.security.test_broker_tls import CLIENT_CN, make_pki

        self.base.mkdir(parents=True)
        self.pki = make_pki(self.base / "pki")
        self.client_cn = CLIENT_CN
        self.rabbit.tls = self.pki
        self.rabbit.start(timeout)
        # the client certificate's user: no password (EXTERNAL)
        self.ctl("add_user", self.client_cn, uuid.uuid4().hex)
        self.ctl("clear_password", self.client_cn)
        return self

    def ctl(self, *args: str, check: bool = True) -> str:
        done = self.rabbit.ctl(*args, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl {' '.join(args)} exited {done.returncode}: {done.stderr}"
            )
        return str(done.stdout)

    def plain_url(self) -> str:
        return f"amqp://{self.rabbit.user}:{self.rabbit.password}@127.0.0.1:{self.port}"

    def tls_url(self) -> str:
        """No password: the client certificate logs in (``EXTERNAL``)."""
        return f"amqps://localhost:{self.tls_port}"

    def pids(self) -> list[int]:
        return list(self.rabbit.pids())

    def stop(self) -> None:
        """Stop the node and its epmd, remove its directories."""
        self.rabbit.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


# -- statistics -------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of ``values``."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


def summary(steps: int, seconds: float, latencies_s: list[float], **extra: Any) -> dict[str, Any]:
    ms = [x * 1000 for x in latencies_s]
    return {
        "steps": steps,
        "seconds": round(seconds, 3),
        "steps_per_s": round(steps / seconds, 1) if seconds > 0 else None,
        "p50_ms": _r(percentile(ms, 50)),
        "p99_ms": _r(percentile(ms, 99)),
        "latency_samples": len(ms),
        **extra,
    }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


# -- the measurements --------------------------------------------------------------------


def sequence(n: int) -> str:
    return "name: bench-seq\nsteps:\n" + f"  - {PARTICIPANT}\n" * n


class BossSystem:
    """An engine worker and a no-op participant on a rig."""

    def __init__(self, rig: Rig, poll: float | None = None, workers: int = 1) -> None:
        self.rig = rig
        #: engine worker processes (``--engine-workers``)
        self.n_workers = workers
        self.workers: list[Proc] = []
        #: None: the stock runtime; else the what-if runtime with this poll
        self.poll = poll
        self.record = rig.tmp / "boss-steps.txt"
        self.record.touch()
        self.queue = f"{rig.prefix}.{PARTICIPANT}"
        #: wfids of this system's runs start with it (a launch reusing a
        #: wfid, even of a finished run, is ignored as a duplicate)
        self.ns = uuid.uuid4().hex[:6]

    def start(self) -> None:
        rig = self.rig
        rig.engine.register(PARTICIPANT, self.queue, regex=False)
        before = {e["id"] for e in rig.store.engines()}
        for k in range(self.n_workers):
            self.workers.append(
                rig.spawn(
                    f"boss-worker{k or ''}",
                    [
                        sys.executable,
                        "-m",
                        "bossapp.cli",
                        "-c",
                        str(rig.ini),
                        "worker",
                        "--loglevel",
                        "WARNING",
                        "--hostname",
                        f"bench-{uuid.uuid4().hex[:6]}@bench",
                    ],
                )
            )
        self.worker = self.workers[0]
        wait_for(
            lambda: (
                len({e["id"] for e in rig.store.engines()} - before) >= self.n_workers
                or rig.check_alive(*self.workers)
            ),
            60,
            "the engine workers' heartbeats",
        )
        ini = rig.tmp / f"{PARTICIPANT}.ini"
        ini.write_text(
            f"[participant]\nname = {PARTICIPANT}\nqueue = {self.queue}\n"
            f"code = {Path(__file__).resolve()}\nclass = NoopRecorder\n\n"
            f"{rig.boss_section}\n[bench]\nrecord = {self.record}\n"
        )
        if self.poll is None:
            argv = [sys.executable, "-m", "participants.runtime", str(ini), "--log-level", "INFO"]
        else:
            argv = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--role",
                "whatif-participant",
                "--poll",
                str(self.poll),
                "--record",
                str(ini),
            ]
        self.participant = rig.spawn("boss-participant", argv)
        wait_for(
            lambda: (
                "consuming" in self.participant.tail(100_000) or rig.check_alive(self.participant)
            ),
            60,
            "the participant to consume",
        )
        self.batch("warm", 10, 3)

    def _done(self) -> tuple[int, int]:
        counts = self.rig.store.count_runs()
        return counts["finished"], counts["error"] + counts["cancelled"] + counts["killed"]

    def batch(self, tag: str, runs: int, steps: int, timeout: float = 900) -> float:
        """Launch ``runs`` runs of ``steps`` steps at once; seconds until all
        finished."""
        from engine.core import messages

        rig = self.rig
        definition = sequence(steps)
        finished0, bad0 = self._done()
        progress = LineCounter(self.record)
        t0 = time.perf_counter()
        for i in range(runs):
            wfid = f"{self.ns}{tag}-{i:04d}"
            rig.publisher.send(messages.launch_item(definition=definition, fields={}, wfid=wfid))
        deadline = time.monotonic() + timeout
        seen, stalled = 0, time.monotonic() + STALL
        while True:
            finished, bad = self._done()
            if finished - finished0 >= runs:
                return time.perf_counter() - t0
            if bad > bad0:
                raise RuntimeError(
                    f"{bad - bad0} run(s) of {tag} ended badly:\n" + self.worker.tail()
                )
            rig.check_alive(*self.workers, self.participant)
            now = time.monotonic()
            if progress.count() + finished > seen:
                seen, stalled = progress.lines + finished, now + STALL
            if now > deadline or now > stalled:
                raise RuntimeError(
                    f"{tag}: {finished - finished0} of {runs} runs finished, "
                    f"{progress.lines} steps done; no progress for "
                    f"{STALL:.0f}s or out of time\n{self.worker.tail()}"
                )
            time.sleep(0.02)

    def full_load(
        self, tag: str, inflight: int, steps: int, seconds: float
    ) -> tuple[float, int, dict[str, float], int, list[float], list[float]]:
        """``inflight`` runs at once, in batches (tags ``<tag><k>``) until at
        least ``seconds``: (seconds, batches, CPU, steps recorded, latencies
        by dispatch time, by receive time)."""
        meter = self.rig.meter(engine=self.workers, participant=self.participant)
        meter.groups["aggregator"] = [
            p for w in self.workers for p in _tree(w.pid) if _is_aggregator(p)
        ]
        meter.start()
        total, batches = 0.0, 0
        while total < seconds or batches == 0:
            total += self.batch(f"{tag}{batches}", inflight, steps)
            batches += 1
        cpu = meter.stop()
        n, by_dispatch, by_receive = 0, [], []
        for b in range(batches):
            k, d, r = self.latencies(f"{tag}{b}")
            n, by_dispatch, by_receive = n + k, by_dispatch + d, by_receive + r
        return total, batches, cpu, n, by_dispatch, by_receive

    def sequential(self, tag: str, steps: int, seconds: float) -> tuple[float, int]:
        """Runs one at a time for at least ``seconds``; (wall time, runs)."""
        t0 = time.perf_counter()
        n = 0
        while time.perf_counter() - t0 < seconds:
            self.batch_one(f"{self.ns}{tag}-{n:04d}", steps)
            n += 1
        return time.perf_counter() - t0, n

    def batch_one(self, wfid: str, steps: int) -> None:
        rig = self.rig
        from engine.core import messages, runstate

        rig.publisher.send(messages.launch_item(definition=sequence(steps), fields={}, wfid=wfid))

        deadline = time.monotonic() + 120
        while True:
            loaded = rig.store.load_run(wfid)
            status = runstate.status(runstate.upgrade(loaded[0])) if loaded else None
            if status == "finished":
                return
            if status in ("error", "cancelled", "killed"):
                raise RuntimeError(f"run {wfid} is {status}:\n{self.worker.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {wfid} not finished after 120s")
            time.sleep(0.005)

    def records(self, tag: str) -> dict[str, list[tuple[float, float]]]:
        """wfid -> [(dispatched_at, received)] of the runs tagged ``tag``."""
        out: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for line in self.record.read_text().splitlines():
            wfid, _subid, dispatched, received = line.split()
            if wfid.startswith(f"{self.ns}{tag}-"):
                out[wfid].append((_ts(dispatched), float(received)))
        return out

    def latencies(self, tag: str) -> tuple[int, list[float], list[float]]:
        """(steps, dispatch-to-dispatch latencies, receive-to-receive ones)."""
        steps, by_dispatch, by_receive = 0, [], []
        for recs in self.records(tag).values():
            recs.sort(key=lambda r: r[1])
            steps += len(recs)
            by_dispatch += [b[0] - a[0] for a, b in pairwise(recs)]
            by_receive += [b[1] - a[1] for a, b in pairwise(recs)]
        return steps, by_dispatch, by_receive


def measure_boss(
    rig: Rig,
    inflight: int,
    steps: int,
    seconds: float,
    profile: Path | None,
    poll: float | None = None,
) -> dict[str, Any]:
    """BOSS with ``inflight`` runs, then with 1; keys ``boss_many``,
    ``boss_one`` (``boss_whatif_...`` for the what-if participant)."""
    system = BossSystem(rig, poll)
    system.start()
    key = "boss" if poll is None else "boss_whatif"
    results: dict[str, Any] = {}
    try:
        # ``inflight`` runs at once, in batches until at least ``seconds``
        total, batches, cpu, n, by_dispatch, by_receive = system.full_load(
            "many", inflight, steps, seconds
        )
        expected = batches * inflight * steps
        many = results[f"{key}_many"] = summary(
            n,
            total,
            by_receive,
            inflight=inflight,
            steps_per_run=steps,
            runs=batches * inflight,
            expected_steps=expected,
            cpu=cpu,
            p50_ms_by_dispatch=_r(percentile([x * 1000 for x in by_dispatch], 50)),
            p99_ms_by_dispatch=_r(percentile([x * 1000 for x in by_dispatch], 99)),
        )
        if n != expected:
            many["warning"] = f"{n} steps recorded, {expected} expected"
        # 1 in flight: runs one after another
        meter = rig.meter(engine=system.workers, participant=system.participant)
        meter.start()
        wall, runs = system.sequential("oneseq", steps, seconds)
        cpu = meter.stop()
        n, by_dispatch, by_receive = system.latencies("oneseq")
        results[f"{key}_one"] = summary(
            n,
            wall,
            by_receive,
            inflight=1,
            steps_per_run=steps,
            runs=runs,
            cpu=cpu,
            p50_ms_by_dispatch=_r(percentile([x * 1000 for x in by_dispatch], 50)),
            p99_ms_by_dispatch=_r(percentile([x * 1000 for x in by_dispatch], 99)),
        )
        if poll is not None:
            for r in (results[f"{key}_many"], results[f"{key}_one"]):
                r["participant_poll_s"] = poll
        if profile is not None:
            # about ``seconds`` of samples, whatever the rate
            psteps = max(2, min(steps, round(many["steps_per_s"] * seconds / inflight)))
            results[f"{key}_profiled"] = profile_boss(
                rig, system, inflight, psteps, seconds, profile, key
            )
    finally:
        rig.stop(system.participant)
        for w in system.workers:
            rig.stop(w)
    return results


def measure_scaleout(
    rig: Rig, inflight: int, steps: int, seconds: float, counts: list[int]
) -> dict[str, Any]:
    """BOSS with ``inflight`` runs for each number of engine worker
    processes in ``counts`` (one participant process throughout); keys
    ``boss_workers_<n>``."""
    results: dict[str, Any] = {}
    for n in counts:
        system = BossSystem(rig, workers=n)
        system.start()
        try:
            total, _, cpu, k, _, by_receive = system.full_load(
                f"scale{n}-", inflight, steps, seconds
            )
            results[f"boss_workers_{n}"] = summary(
                k, total, by_receive, inflight=inflight, workers=n, cpu=cpu
            )
        finally:
            rig.stop(system.participant)
            for w in system.workers:
                rig.stop(w)
        print(f"[{rig.kind}] BOSS with {n} engine worker(s) done", file=sys.stderr, flush=True)
    return results


def measure_celery(
    rig: Rig, inflight: int, steps: int, seconds: float, pool: str
) -> dict[str, Any]:
    from celery import chain

    record = rig.tmp / "celery-tasks.txt"
    record.touch()
    queue = f"{rig.prefix}.celery"
    worker = rig.spawn(
        "celery-worker",
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--role",
            "celery-worker",
            "--broker",
            rig.broker_url,
            "--queue",
            queue,
            "--record",
            str(record),
            "--pool",
            pool,
        ],
    )
    app = celery_app(rig.broker_url, queue)
    noop = app.bench_noop
    results: dict[str, Any] = {}

    def launch(tag: str, i: int) -> None:
        chain(*(noop.si(f"{tag}-{i:04d}", k) for k in range(steps))).apply_async()

    def wait_lines(counter: LineCounter, n: int, timeout: float) -> None:
        wait_for(
            lambda: counter.count() >= n or rig.check_alive(worker),
            timeout,
            f"{n} Celery tasks",
            interval=0.005 if n <= steps else 0.02,
        )

    try:
        counter = LineCounter(record)
        for i in range(10):
            launch("warm", i)
        wait_lines(counter, 10 * steps, 120)
        meter = rig.meter(worker=worker)
        meter.start()
        total, batches = 0.0, 0
        while total < seconds or batches == 0:
            counter = LineCounter(record)
            t0 = time.perf_counter()
            for i in range(inflight):
                launch(f"many{batches}", i)
            wait_lines(counter, inflight * steps, 900)
            total += time.perf_counter() - t0
            batches += 1
        cpu = meter.stop()
        lat = _chain_latencies(record, "many")
        results["celery_many"] = summary(
            batches * inflight * steps,
            total,
            lat,
            inflight=inflight,
            steps_per_run=steps,
            pool=pool,
            cpu=cpu,
        )
        meter = rig.meter(worker=worker)
        meter.start()
        t0 = time.perf_counter()
        n = 0
        while time.perf_counter() - t0 < seconds:
            counter = LineCounter(record)
            launch("one", n)
            wait_lines(counter, steps, 120)
            n += 1
        wall = time.perf_counter() - t0
        cpu = meter.stop()
        results["celery_one"] = summary(
            n * steps,
            wall,
            _chain_latencies(record, "one"),
            inflight=1,
            steps_per_run=steps,
            pool=pool,
            cpu=cpu,
        )
    finally:
        with contextlib.suppress(Exception):
            app.close()
        rig.stop(worker)
    return results


def _chain_latencies(record: Path, tag: str) -> list[float]:
    by_chain: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for line in record.read_text().splitlines():
        cid, k, t = line.split()
        if cid.startswith(tag):
            by_chain[cid].append((int(k), float(t)))
    out = []
    for recs in by_chain.values():
        recs.sort()
        out += [b[1] - a[1] for a, b in pairwise(recs)]
    return out


def measure_kombu(rig: Rig, inflights: list[int], seconds: float, warmup: float) -> dict[str, Any]:
    """The bare kombu pair at each of ``inflights``: keys ``kombu_many``,
    ``kombu_one`` (each publish waits for its confirm, kombu's
    ``confirm_publish``) and, on RabbitMQ, ``kombu_async_many``,
    ``kombu_async_one`` (confirms taken as they come, acks once confirmed:
    BOSS's guarantee without its engine)."""
    results: dict[str, Any] = {}
    variants = ["wait"] if rig.kind == "embedded" else ["wait", "async"]
    for confirms in variants:
        results.update(_measure_kombu(rig, inflights, seconds, warmup, confirms))
    return results


def _measure_kombu(
    rig: Rig, inflights: list[int], seconds: float, warmup: float, confirms: str
) -> dict[str, Any]:
    tag = "bare" if confirms == "wait" else f"bare{confirms}"
    queue, reply = f"{rig.prefix}.{tag}.participant", f"{rig.prefix}.{tag}.engine"
    me = str(Path(__file__).resolve())
    common = ["--broker", rig.broker_url, "--queue", queue, "--reply", reply]
    common += ["--confirms", confirms]
    part = rig.spawn(
        f"kombu-participant-{confirms}",
        [sys.executable, me, "--role", "kombu-participant", *common],
    )
    key = "kombu" if confirms == "wait" else f"kombu_{confirms}"
    results: dict[str, Any] = {}
    try:
        wait_for(
            lambda: "consuming" in part.tail() or rig.check_alive(part), 60, "the bare participant"
        )
        for k in inflights:
            out = rig.tmp / f"kombu-{confirms}-{k}.json"
            eng = rig.spawn(
                f"kombu-engine-{confirms}-{k}",
                [
                    sys.executable,
                    me,
                    "--role",
                    "kombu-engine",
                    *common,
                    "--inflight",
                    str(k),
                    "--seconds",
                    str(seconds),
                    "--warmup",
                    str(warmup),
                    "--out",
                    str(out),
                ],
            )
            meter = rig.meter(engine=eng, participant=part)
            time.sleep(min(warmup, 1.0) / 2)
            meter.start()
            try:
                wait_for(
                    lambda eng=eng, out=out: out.exists() or rig.check_alive(eng),
                    seconds + warmup + 60,
                    "the bare kombu engine",
                )
                cpu = meter.stop()
                eng.popen.wait(60)
            finally:
                rig.stop(eng)
            data = json.loads(out.read_text())
            results[f"{key}_{'one' if k == 1 else 'many'}"] = summary(
                data["round_trips"],
                data["seconds"],
                data["latencies"],
                inflight=k,
                drained=data["drained"],
                cpu=cpu,
                confirms=confirms,
            )
    finally:
        rig.stop(part)
    return results


# -- profiling --------------------------------------------------------------------------


def profile_boss(
    rig: Rig, system: BossSystem, inflight: int, steps: int, seconds: float, outdir: Path, key: str
) -> dict[str, Any]:
    """One more batch with ``py-spy record`` on the engine worker and the
    participant (raw folded stacks, with thread ids and idle samples, so a
    thread's samples are its wall time)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return {"error": "py-spy not found (pip install py-spy)"}
    outdir.mkdir(parents=True, exist_ok=True)
    rate = 250
    spies = {}
    for name, proc in (("engine", system.worker), ("participant", system.participant)):
        path = outdir / f"{rig.kind}-{key}-{name}.txt"
        spies[name] = (
            path,
            subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(proc.pid),
                    "--rate",
                    str(rate),
                    "--format",
                    "raw",
                    "--threads",
                    "--idle",
                    "--output",
                    str(path),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            ),
        )
    time.sleep(1.0)  # py-spy attaches
    try:
        meter = rig.meter(engine=system.workers, participant=system.participant)
        meter.start()
        total, batches = 0.0, 0
        while total < seconds or batches == 0:
            total += system.batch(f"prof{batches}", inflight, steps)
            batches += 1
        cpu = meter.stop()
    finally:
        for _path, p in spies.values():
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGINT)
        for _path, p in spies.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    out: dict[str, Any] = {
        "steps_per_s_under_pyspy": round(batches * inflight * steps / total, 1),
        "steps_per_run": steps,
        "cpu": cpu,
        "rate_hz": rate,
    }
    for name, (path, _p) in spies.items():
        marker = "on_message (" if name == "engine" else "_serve ("
        out[name] = summarise_profile(path, marker) if path.exists() else {"error": "no output"}
        out[name]["file"] = str(path)
    return out


#: where a frame's file puts it, for the profile's breakdown (innermost match wins)
BUCKETS = (
    ("jsonschema validation", ("jsonschema/", "referencing/", "rpds")),
    ("redis client (store round trips)", ("redis/", "hiredis", "engine/store/")),
    ("json encode/decode", ("json/",)),
    (
        "interpreter (sans-IO core)",
        (
            "engine/core/interpreter.py",
            "engine/core/substitution.py",
            "engine/core/conditions.py",
            "engine/core/merge.py",
            "engine/core/lifecycle.py",
            "engine/core/loader.py",
            "transitions/",
        ),
    ),
    (
        "engine adapter",
        (
            "engine/engine.py",
            "engine/service.py",
            "engine/worker.py",
            "engine/broker.py",
            "engine/core/effects.py",
            "engine/wire.py",
        ),
    ),
    ("kombu / py-amqp (broker)", ("kombu/", "amqp/", "vine/")),
    ("participant runtime", ("participants/",)),
    ("threading / queue", ("threading.py", "queue.py")),
    ("logging", ("logging/",)),
)

#: leaf functions that block in a system call: the thread waits (for the
#: broker, the store, a thread or a timeout), it does not compute
WAITING_FUNCTIONS = frozenset(
    {
        "_read",
        "read",
        "recv",
        "recv_into",
        "read_from_socket",
        "_read_from_socket",
        "readline",
        "wait",
        "select",
        "poll",
        "sleep",
        "_socket_can_read",
        "can_read",
        "read_frame",
        "_wait_for",
        "retry_over_time",
        "accept",
        "brpop",
        "_brpop_read",
    }
)


#: why a waiting sample waits, by what its stack holds (first match wins)
WAIT_REASONS = (
    ("a publisher confirm", ("basic_publish_confirm",)),
    ("a publish on kombu's Redis transport (LPUSH)", ("Channel._put (",)),
    (
        "basic.cancel / basic.consume round trips",
        (
            "Channel.basic_cancel (",
            "Channel.basic_consume (",
            "BrokerLink.stop_consuming (",
            "BrokerLink.consume (",
        ),
    ),
    ("the run store (Redis round trips)", ("engine/store/",)),
    ("kombu's Redis transport: sleep between empty polls", ("virtual/base.py:1012",)),
    (
        "the next message (drain_events with a timeout)",
        ("drain_events", "_epoll.poll", "create_loop"),
    ),
    ("the handler thread", ("threading.py",)),
)


def _function(frame: str) -> str:
    """``Class.method (file.py:12)`` -> ``method``."""
    return frame.split(" (", 1)[0].rsplit(".", 1)[-1]


def summarise_profile(path: Path, marker: str) -> dict[str, Any]:
    """The samples of the thread whose stacks contain ``marker`` (the
    consumer thread): their share per component (by the innermost frame
    that names one), the share waiting in a blocking call (by the leaf),
    and the top leaf and inclusive functions."""
    stacks: dict[str, list[tuple[list[str], int]]] = defaultdict(list)
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        thread = next((f for f in frames if f.startswith("thread (")), "?")
        stacks[thread].append((frames, int(count)))
    if not stacks:
        return {"samples": 0}
    marked = [t for t, ss in stacks.items() if any(marker in f for fr, _ in ss for f in fr)]
    thread = marked[0] if marked else max(stacks, key=lambda t: sum(n for _, n in stacks[t]))
    total = sum(n for _, n in stacks[thread])
    buckets: dict[str, int] = defaultdict(int)
    leaves: dict[str, int] = defaultdict(int)
    inclusive: dict[str, int] = defaultdict(int)
    waiting: dict[str, int] = defaultdict(int)
    reasons: dict[str, int] = defaultdict(int)
    for frames, n in stacks[thread]:
        code = [f for f in frames if "(" in f and not f.startswith(("thread (", "process "))]
        leaf = code[-1] if code else "?"
        leaves[leaf] += n
        for f in set(code):
            inclusive[f] += n
        bucket = "other"
        for f in reversed(code):
            hit = next((b for b, keys in BUCKETS if any(k in f for k in keys)), None)
            if hit is not None:
                bucket = hit
                break
        buckets[bucket] += n
        if (
            _function(leaf) in WAITING_FUNCTIONS
            or " (socket.py" in leaf
            or "virtual/base.py:1012" in leaf
        ):
            waiting[bucket] += n
            # the first reason any frame names: the generic "next message" is
            # last, as handlers (and confirm waits) run inside drain_events
            joined = ";".join(code)
            why = next(
                (w for w, keys in WAIT_REASONS if any(k in joined for k in keys)), "something else"
            )
            reasons[why] += n

    def pct(d: dict[str, int], top: int) -> list[tuple[str, float]]:
        return [
            (k, round(100 * v / total, 1))
            for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]
        ]

    return {
        "thread": thread,
        "samples": total,
        "buckets_pct": pct(buckets, 20),
        "waiting_pct": pct(waiting, 20),
        "waiting_for_pct": pct(reasons, 10),
        "top_self_pct": pct(leaves, 25),
        "top_inclusive_pct": pct(inclusive, 60),
    }


# -- the report ---------------------------------------------------------------------------

ROWS = (
    ("boss_many", "BOSS end to end"),
    ("boss_one", "BOSS end to end"),
    ("boss_whatif_many", "BOSS, what-if poll"),
    ("boss_whatif_one", "BOSS, what-if poll"),
    ("celery_many", "Celery chain"),
    ("celery_one", "Celery chain"),
    ("kombu_many", "bare kombu round trip"),
    ("kombu_one", "bare kombu round trip"),
    ("kombu_async_many", "bare kombu, async confirms"),
    ("kombu_async_one", "bare kombu, async confirms"),
)

#: the bare kombu baselines: (results key, how the targets name it)
BARE = (("kombu", "bare kombu"), ("kombu_async", "bare kombu with async confirms"))


def print_table(results: dict[str, Any]) -> None:
    w = max([9, *(len(b) for b in results["brokers"])])
    head = (
        f"{'broker':<{w}} {'what':<26} {'in flight':>9} {'steps/s':>9} {'p50 ms':>8} "
        f"{'p99 ms':>8}  CPU % of a core"
    )
    print(head)
    print("-" * len(head) + "-" * 30)
    for broker, res in results["brokers"].items():
        scale = [
            (k, f"BOSS, {res[k]['workers']} engine workers")
            for k in res
            if k.startswith("boss_workers_")
        ]
        for key, label in [*ROWS, *scale]:
            r = res.get(key)
            if r is None:
                continue
            cpu = ", ".join(f"{k} {v:.0f}" for k, v in (r.get("cpu") or {}).items())
            what = label + (f" ({r['pool']})" if "pool" in r else "")
            print(
                f"{broker:<{w}} {what:<26} {r['inflight']:>9} {r['steps_per_s']:>9,.0f} "
                f"{_f(r['p50_ms'], 2):>8} {_f(r['p99_ms'], 2):>8}  {cpu}"
            )


def _f(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, PASS/FAIL; with ``--what-if`` the same ratios for
    the patched participant follow, marked ``what_if`` (not a verdict on
    BOSS as it is)."""
    out = []

    def add(
        name: str, value: float | None, limit: float, higher_is_better: bool, what_if: bool
    ) -> None:
        ok = value is not None and (value >= limit if higher_is_better else value <= limit)
        out.append(
            {
                "target": name,
                "value": None if value is None else round(value, 2),
                "limit": limit,
                "higher_is_better": higher_is_better,
                "pass": ok,
                "what_if": what_if,
            }
        )

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or b == 0 else a / b

    for what_if in (False, True):
        key = "boss_whatif" if what_if else "boss"
        label = "BOSS (what-if poll)" if what_if else "BOSS"
        for broker, res in results["brokers"].items():
            bm, bo = res.get(f"{key}_many"), res.get(f"{key}_one")
            if bm is None or bo is None:
                continue
            for base, base_label in BARE:
                km, ko = res.get(f"{base}_many"), res.get(f"{base}_one")
                if km is None or ko is None:
                    continue
                add(
                    f"{broker}: {label} steps/s / {base_label} round trips/s (100 in flight)",
                    ratio(bm.get("steps_per_s"), km.get("steps_per_s")),
                    0.7,
                    True,
                    what_if,
                )
                for load, b, k in (("1 in flight", bo, ko), ("100 in flight", bm, km)):
                    for q, limit in (("p50", 3.0), ("p99", 20.0)):
                        what = f"{q} step latency / {base_label} round trip {q} ({load})"
                        add(
                            f"{broker}: {label} {what}",
                            ratio(b.get(f"{q}_ms"), k.get(f"{q}_ms")),
                            limit,
                            False,
                            what_if,
                        )
            cm = res.get("celery_many", {})
            add(
                f"{broker}: {label} steps/s / Celery chain steps/s (100 in flight)",
                ratio(bm.get("steps_per_s"), cm.get("steps_per_s")),
                1.0,
                True,
                what_if,
            )
    return out


def print_targets(rows: list[dict[str, Any]]) -> None:
    width = max(len(r["target"]) for r in rows)
    for what_if in (False, True):
        some = [r for r in rows if r["what_if"] == what_if]
        if what_if and some:
            print(
                "\nthe same with the what-if participant (not a verdict, an estimate of the fix):"
            )
        for r in some:
            cmp = ">=" if r["higher_is_better"] else "<="
            value = _f(r["value"]) if r["value"] is None else f"{r['value']:.2f}"
            verdict = "PASS" if r["pass"] else "FAIL"
            print(
                f"{r['target']:<{width}}  {value:>7}  (target {cmp} {r['limit']:g})  "
                f"{verdict if not what_if else '(' + verdict.lower() + ')'}"
            )


# -- main -------------------------------------------------------------------------------


#: extra ``[boss]`` settings for the engine worker and participants
#: (``--boss-setting events=false``: what traceability costs)
BOSS_SETTINGS: dict[str, str] = {}


def run_broker(kind: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    rig = Rig(kind, tmp / kind)
    rig.tmp.mkdir(parents=True)
    results: dict[str, Any] = {}
    try:
        rig.setup(args.amqp_url, args.redis_url)
        results["versions"] = rig.versions
        steps = args.steps
        results["steps_per_run"] = steps
        broker_pids = sorted(rig.broker_pids())
        print(
            f"[{kind}] broker {rig.broker_url.split('@')[-1]}, store "
            f"{rig.versions['store']}; runs of {steps} steps",
            file=sys.stderr,
            flush=True,
        )
        profile = Path(args.profile) if args.profile else None
        results.update(measure_boss(rig, args.inflight, steps, args.seconds, profile))
        print(f"[{kind}] BOSS done", file=sys.stderr, flush=True)
        if args.what_if is not None:
            results.update(
                measure_boss(rig, args.inflight, steps, args.seconds, profile, poll=args.what_if)
            )
            print(f"[{kind}] BOSS what-if done", file=sys.stderr, flush=True)
        if args.engine_workers:
            counts = [int(x) for x in args.engine_workers.split(",") if x.strip()]
            results.update(measure_scaleout(rig, args.inflight, steps, args.seconds, counts))
        results.update(measure_celery(rig, args.inflight, steps, args.seconds, args.celery_pool))
        print(f"[{kind}] Celery done", file=sys.stderr, flush=True)
        results.update(measure_kombu(rig, [args.inflight, 1], args.seconds, args.warmup))
        print(f"[{kind}] kombu done", file=sys.stderr, flush=True)
        if sorted(rig.broker_pids()) != broker_pids:
            results["warning"] = (
                "the broker restarted during the measurements (another job "
                "on this machine?): figures are suspect"
            )
            print(f"[{kind}] WARNING: {results['warning']}", file=sys.stderr)
    except BaseException:
        for p in rig.procs:
            print(f"==== {p.name} (exit {p.popen.poll()}) ====\n{p.tail()}", file=sys.stderr)
        raise
    finally:
        rig.cleanup()
    return results


#: ``--security``'s variants: (key, label)
SECURITY_VARIANTS = (
    ("plain", "plain amqp://"),
    ("tls", "TLS, client cert"),
    ("tls_tokens", "TLS + dispatch tokens"),
)


def run_security(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """``--security``: BOSS end to end (``measure_boss``: ``inflight`` runs
    at once, then 1) three times on one private RabbitMQ node (``TlsNode``),
    the run store on the machine's Redis: ``plain`` (``amqp://`` to its TCP
    listener, user and password), ``tls`` (``amqps://localhost`` to its TLS
    listener with ``broker_ca``, ``broker_cert``, ``broker_key``: the
    broker's certificate and host name verified, the client certificate
    logging in by ``EXTERNAL``) and ``tls_tokens`` (the same with
    ``dispatch_key``: every workitem signed, every reply checked). Each
    variant has a vhost, key prefix and processes of its own. Keys
    ``<variant>_many``, ``<variant>_one`` and ``ratios`` (each TLS variant's
    figures / plain's)."""
    node = TlsNode(tmp / "rabbit")
    results: dict[str, Any] = {"steps_per_run": args.steps}
    try:
        node.start()
        pki = node.pki
        tls = {
            "broker_ca": str(pki.ca),
            "broker_cert": str(pki.client_cert),
            "broker_key": str(pki.client_key),
        }
        variants: dict[str, tuple[str, dict[str, str], dict[str, str]]] = {
            "plain": (node.plain_url(), {}, {}),
            "tls": (node.tls_url(), tls, {}),
            "tls_tokens": (node.tls_url(), tls, {"dispatch_key": uuid.uuid4().hex * 2}),
        }
        results["node"] = {"port": node.port, "tls_port": node.tls_port}
        broker_pids = sorted(node.pids())
        for key, (url, settings, engine_settings) in variants.items():
            rig = Rig(
                "rabbitmq",
                tmp / f"security-{key}",
                node=node,
                users=(node.user, node.client_cn),
                settings=settings,
                engine_settings=engine_settings,
            )
            rig.tmp.mkdir(parents=True)
            try:
                rig.setup(url, args.redis_url)
                results["versions"] = rig.versions
                print(
                    f"[security] {key}: broker {rig.broker_url.split('@')[-1]}, store "
                    f"{rig.versions['store']}; runs of {args.steps} steps",
                    file=sys.stderr,
                    flush=True,
                )
                measured = measure_boss(rig, args.inflight, args.steps, args.seconds, None)
                for load in ("many", "one"):
                    results[f"{key}_{load}"] = measured[f"boss_{load}"]
                results[f"{key}_many"]["settings"] = sorted({**settings, **engine_settings})
            except BaseException:
                for p in rig.procs:
                    print(
                        f"==== {p.name} (exit {p.popen.poll()}) ====\n{p.tail()}", file=sys.stderr
                    )
                raise
            finally:
                rig.cleanup()
        if sorted(node.pids()) != broker_pids:
            results["warning"] = "the private RabbitMQ node restarted: figures are suspect"
    finally:
        node.stop()
    results["ratios"] = security_ratios(results)
    return results


def security_ratios(res: dict[str, Any]) -> dict[str, Any]:
    """``tls/plain`` and ``tls_tokens/plain``, by load (``many``, ``one``):
    steps/s, p50, p99 and each process's CPU (above 1: more)."""

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or b == 0 else round(a / b, 2)

    out: dict[str, Any] = {}
    for key, _ in SECURITY_VARIANTS[1:]:
        for load in ("many", "one"):
            r, base = res.get(f"{key}_{load}"), res.get(f"plain_{load}")
            if r is None or base is None:
                continue
            row = {m: ratio(r.get(m), base.get(m)) for m in ("steps_per_s", "p50_ms", "p99_ms")}
            for proc in ("engine", "participant", "broker"):
                row[f"cpu_{proc}"] = ratio(r["cpu"].get(proc), base["cpu"].get(proc))
            out.setdefault(f"{key}/plain", {})[load] = row
    return out


def print_security(res: dict[str, Any]) -> None:
    head = (
        f"{'variant':<22} {'in flight':>9} {'steps/s':>9} {'p50 ms':>8} {'p99 ms':>8}  "
        "CPU % of a core"
    )
    print(head)
    print("-" * len(head) + "-" * 40)
    for load in ("many", "one"):
        for key, label in SECURITY_VARIANTS:
            r = res.get(f"{key}_{load}")
            if r is None:
                continue
            cpu = ", ".join(f"{k} {v:.0f}" for k, v in (r.get("cpu") or {}).items())
            print(
                f"{label:<22} {r['inflight']:>9} {r['steps_per_s']:>9,.0f} "
                f"{_f(r['p50_ms']):>8} {_f(r['p99_ms']):>8}  {cpu}"
            )
    print()
    head = (
        f"{'ratio':<22} {'in flight':>9} {'steps/s':>9} {'p50':>8} {'p99':>8}  "
        "CPU engine, participant, broker"
    )
    print(head)
    print("-" * len(head))
    for load in ("many", "one"):
        for name, by_load in res.get("ratios", {}).items():
            r = by_load.get(load)
            if r is None:
                continue
            inflight = res[f"plain_{load}"]["inflight"]
            cpu = ", ".join(_f(r[f"cpu_{p}"], 2) for p in ("engine", "participant", "broker"))
            print(
                f"{name:<22} {inflight:>9} {_f(r['steps_per_s'], 2):>9} "
                f"{_f(r['p50_ms'], 2):>8} {_f(r['p99_ms'], 2):>8}  {cpu}"
            )
    if res.get("warning"):
        print(f"WARNING: {res['warning']}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run, about a minute per broker (figures meaningless)",
    )
    ap.add_argument("--json", metavar="FILE", help="write the raw numbers here")
    ap.add_argument(
        "--profile",
        metavar="DIR",
        help="add a BOSS batch per broker under py-spy; folded stacks go here",
    )
    ap.add_argument("--brokers", default="rabbitmq,embedded")
    ap.add_argument(
        "--embedded-fsync",
        metavar="POLICY,POLICY,...",
        default="",
        help="measure the embedded broker once per appendfsync policy (everysec, "
        "always, no), side by side as embedded:POLICY (the [boss] embedded_fsync "
        "setting); default: once, with the server's default (everysec)",
    )
    ap.add_argument("--inflight", type=int, default=100)
    ap.add_argument(
        "--steps",
        type=int,
        default=0,
        help="steps per run / tasks per chain (default 20; 5 with --quick)",
    )
    ap.add_argument(
        "--what-if",
        type=float,
        metavar="POLL",
        nargs="?",
        const=0.001,
        help="also measure BOSS with the participant runtime's poll timeouts "
        "(its idle poll and kombu's Redis polling interval) patched to "
        "POLL seconds (default 0.001): an estimate, not a verdict",
    )
    ap.add_argument("--seconds", type=float, default=10.0, help="least length of each measurement")
    ap.add_argument("--warmup", type=float, default=2.0, help="bare kombu warm-up seconds")
    ap.add_argument(
        "--keep", action="store_true", help="keep the work directory (process logs, step records)"
    )
    ap.add_argument("--celery-pool", choices=["prefork", "solo"], default="prefork")
    ap.add_argument(
        "--engine-workers",
        metavar="N,N,...",
        default="",
        help="also measure BOSS at --inflight with each of these numbers of engine "
        "worker processes (e.g. 1,2,4): how the engine scales out",
    )
    ap.add_argument(
        "--boss-setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra [boss] setting for BOSS's processes (repeatable), e.g. "
        "events=false trace_threads=0 dispatch_lease=0",
    )
    ap.add_argument(
        "--security",
        action="store_true",
        help="instead of the brokers: BOSS on a private RabbitMQ node, plain, over TLS "
        "with a client certificate, and over TLS with dispatch tokens (what security costs)",
    )
    ap.add_argument("--amqp-url", default=AMQP_URL, help="RabbitMQ (a vhost is added)")
    ap.add_argument("--redis-url", default=REDIS_URL, help="the store in RabbitMQ mode")
    # the baseline processes
    ap.add_argument(
        "--role",
        choices=["kombu-participant", "kombu-engine", "celery-worker", "whatif-participant"],
        help=argparse.SUPPRESS,
    )
    for opt in (
        "--broker",
        "--queue",
        "--reply",
        "--out",
        "--record",
        "--pool",
        "--poll",
        "--confirms",
    ):
        ap.add_argument(opt, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.role:
        {
            "kombu-participant": role_kombu_participant,
            "kombu-engine": role_kombu_engine,
            "celery-worker": role_celery_worker,
            "whatif-participant": role_whatif_participant,
        }[args.role](args)
        return {}
    for setting in args.boss_setting:
        key, _, value = setting.partition("=")
        BOSS_SETTINGS[key.strip()] = value.strip()
    if args.quick:
        args.seconds, args.warmup = 2.0, 0.5
    args.steps = args.steps or (5 if args.quick else 20)

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    # SIGINT too: a shell starts background jobs with it ignored
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    sys.path.insert(0, str(ROOT))
    results: dict[str, Any] = {
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
        },
        "settings": {
            k: getattr(args, k) for k in ("inflight", "seconds", "warmup", "celery_pool", "quick")
        },
        "brokers": {},
    }
    if args.security:
        with _tempdir(keep=args.keep) as tmp:
            results["brokers"]["security"] = run_security(args, tmp)
        print()
        print_security(results["brokers"]["security"])
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
        return results
    with _tempdir(keep=args.keep) as tmp:
        for kind in broker_kinds(args.brokers, args.embedded_fsync):
            results["brokers"][kind] = run_broker(kind, args, tmp)
    results["targets"] = targets(results)
    print()
    print_table(results)
    print()
    print_targets(results["targets"])
    for broker, res in results["brokers"].items():
        for key in ("boss_profiled", "boss_whatif_profiled"):
            if res.get(key):
                print_profile(f"{broker}, {key.removesuffix('_profiled')}", res[key])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


def broker_kinds(brokers: str, fsync: str) -> list[str]:
    """``--brokers`` with ``embedded`` once per ``--embedded-fsync`` policy
    (``embedded:always``, ...)."""
    policies = [x.strip() for x in fsync.split(",") if x.strip()]
    for policy in policies:
        if policy not in ("everysec", "always", "no"):
            raise SystemExit(f"--embedded-fsync: {policy!r} is not everysec, always or no")
    out: list[str] = []
    for kind in [b.strip() for b in brokers.split(",") if b.strip()]:
        if kind == "embedded" and policies:
            out += [f"embedded:{policy}" for policy in policies]
        else:
            out.append(kind)
    return out


def print_profile(broker: str, prof: dict[str, Any]) -> None:
    print(
        f"\n[{broker}] BOSS under py-spy ({prof.get('rate_hz')} Hz, idle samples kept): "
        f"{prof.get('steps_per_s_under_pyspy')} steps/s; CPU % of a core: {prof.get('cpu')}"
    )
    for name in ("engine", "participant"):
        p = prof.get(name) or {}
        if "thread" not in p:
            print(f"  {name}: {p}")
            continue
        waiting = dict(p["waiting_pct"])
        print(
            f"  {name}: consumer thread {p['thread']}, {p['samples']} samples "
            f"({sum(waiting.values()):.0f}% waiting in a blocking call); by component "
            f"(of which waiting):"
        )
        for bucket, share in p["buckets_pct"]:
            print(f"    {share:5.1f}%  {bucket}  ({waiting.get(bucket, 0.0):.1f}%)")
        print("   waiting for:")
        for why, share in p["waiting_for_pct"]:
            print(f"    {share:5.1f}%  {why}")
        print("   top leaf functions:")
        for fn, share in p["top_self_pct"][:10]:
            print(f"    {share:5.1f}%  {fn}")


@contextlib.contextmanager
def _tempdir(keep: bool = False) -> Iterator[Path]:
    # short: the embedded Valkey's unix socket path must fit in sun_path
    path = Path(tempfile.mkdtemp(prefix="bossbench-", dir="/tmp"))
    try:
        yield path
    finally:
        if keep:
            print(f"process logs and records kept in {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
