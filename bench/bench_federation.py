"""Benchmark: events crossing between two BOSS sites (issue 16, docs/federation.md).

Two sites, ODL and OPNFV, each with its own broker (or vhost), aggregator,
graph (key prefix) and federation bridge, as ``tests/federation``'s
``two_sites`` makes them; ODL publishes ``ArtifactCreated`` events, which
it shares with OPNFV. For each transport:

* ``http``: ODL on the embedded broker (an embedded Valkey started here,
  kombu's Redis transport), OPNFV on the machine's RabbitMQ (its default
  vhost, queue and exchange names of its own), the bridge between them
  over CloudEvents/HTTP on localhost;
* ``shovel``: both sites on a private RabbitMQ node with ``rabbitmq_shovel``
  (``tests/rabbitmq_node.py``), a vhost each, the real shovel between
  them set up as docs/federation.md says (skipped if the node cannot run).

it measures, in one run:

1. **throughput**: ``--events`` artifacts published at ODL in batches of
   100 as fast as the bus takes them; the time until the last is stored in
   ODL's own graph (local) and in OPNFV's graph (remote): events/s end to
   end (publish at ODL -> stored in OPNFV's graph), and the local figure
   beside it;
2. **latency**: ``--latency`` artifacts published one at a time at
   ``--rate`` a second; for each, the time from publish to stored in ODL's
   graph and to stored in OPNFV's graph (polled every ``--poll`` seconds:
   that is the resolution), and the added latency (remote - local, per
   event): p50 and p99.

The graphs go to ``--redis-url`` (default the machine's Redis) under keys
of their own, deleted at the end with the sites' queues, vhosts and the
private node. Run: ``python bench/bench_federation.py [--quick] [--json
FILE] [--transports http,shovel]``. Figures: docs/benchmarks.md
("Federation (issue 16)").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.embedded import EmbeddedValkey  # noqa: E402
from engine.trace import eiffel  # noqa: E402

MACHINE_AMQP = os.environ.get("BOSS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
MACHINE_REDIS = os.environ.get("BOSS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of ``values``."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


def artifact(i: int) -> dict[str, Any]:
    return eiffel.artifact_created(
        f"pkg:generic/odl-bench@{i}-{uuid.uuid4().hex[:6]}",
        source={"name": "odl", "domainId": "odl"},
    )


def wait_until(pred: Any, timeout: float, what: str, interval: float = 0.002) -> float:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
    return time.monotonic()


def measure(odl: Any, opnfv: Any, args: argparse.Namespace) -> dict[str, Any]:
    # warm-up: the path is open (connections, first request)
    warm = [artifact(-i) for i in range(20)]
    odl.bus.publish(warm)
    wait_until(lambda: all(opnfv.graph.exists(e["meta"]["id"]) for e in warm), 60, "warm-up")
    base_local = odl.graph.count("EiffelArtifactCreatedEvent")
    base_remote = opnfv.graph.count("EiffelArtifactCreatedEvent")

    # 1. throughput
    n = args.events
    events = [artifact(i) for i in range(n)]
    start = time.monotonic()
    for i in range(0, n, 100):
        odl.bus.publish(events[i : i + 100])
    published = time.monotonic()
    local_done = remote_done = None
    deadline = start + args.timeout
    while local_done is None or remote_done is None:
        now = time.monotonic()
        if local_done is None and odl.graph.count("EiffelArtifactCreatedEvent") >= base_local + n:
            local_done = now
        if remote_done is None and opnfv.graph.count("EiffelArtifactCreatedEvent") >= (
            base_remote + n
        ):
            remote_done = now
        if now > deadline:
            raise RuntimeError(f"throughput: not all {n} events stored in {args.timeout}s")
        time.sleep(0.002)
    assert all(opnfv.graph.exists(e["meta"]["id"]) for e in events[-10:])
    out: dict[str, Any] = {
        "events": n,
        "publish_s": round(published - start, 3),
        "local_s": round(local_done - start, 3),
        "remote_s": round(remote_done - start, 3),
        "local_per_s": round(n / (local_done - start)),
        "remote_per_s": round(n / (remote_done - start)),
    }

    # 2. latency, one event at a time at --rate/s
    local: list[float] = []
    remote: list[float] = []
    added: list[float] = []
    pending: dict[str, list[float | None]] = {}  # id -> [published, local, remote]
    interval = 1.0 / args.rate
    sent = 0
    next_at = time.monotonic()
    deadline = next_at + args.latency * interval + args.timeout
    while sent < args.latency or pending:
        now = time.monotonic()
        if sent < args.latency and now >= next_at:
            ev = artifact(n + sent)
            t0 = time.monotonic()
            odl.bus.publish(ev)
            pending[ev["meta"]["id"]] = [t0, None, None]
            sent += 1
            next_at += interval
        for eid, times in list(pending.items()):
            now = time.monotonic()
            if times[1] is None and odl.graph.exists(eid):
                times[1] = now
            if times[2] is None and opnfv.graph.exists(eid):
                times[2] = now
            if times[1] is not None and times[2] is not None:
                t0, t1, t2 = times
                local.append((t1 - t0) * 1000)  # type: ignore[operator]
                remote.append((t2 - t0) * 1000)  # type: ignore[operator]
                added.append((t2 - t1) * 1000)  # type: ignore[operator]
                del pending[eid]
        if time.monotonic() > deadline:
            raise RuntimeError(f"latency: {len(pending)} events not stored in time")
        time.sleep(args.poll)

    def ms(values: list[float], q: float) -> float | None:
        v = percentile(values, q)
        return None if v is None else round(v, 1)

    out.update(
        {
            "latency_events": len(added),
            "local_p50_ms": ms(local, 50),
            "local_p99_ms": ms(local, 99),
            "remote_p50_ms": ms(remote, 50),
            "remote_p99_ms": ms(remote, 99),
            "added_p50_ms": ms(added, 50),
            "added_p99_ms": ms(added, 99),
        }
    )
    return out


@contextlib.contextmanager
def http_sites(tmp: Path, redis_url: str) -> Iterator[tuple[Any, Any]]:
    from tests.federation.conftest import two_sites

    valkey = EmbeddedValkey(tmp / "valkey", config={"appendonly": "no"}).start()
    try:
        embedded = "redis+socket://" + valkey.url.removeprefix("unix://")
        brokers = {"odl": embedded, "opnfv": MACHINE_AMQP}
        with two_sites(tmp, brokers, redis_url) as pair:
            yield pair
    finally:
        valkey.stop()


@contextlib.contextmanager
def shovel_sites(tmp: Path, redis_url: str) -> Iterator[tuple[Any, Any]]:
    from tests.federation.conftest import two_sites
    from tests.federation.test_real_shovel import PLUGINS, operator_setup, shovel_states
    from tests.rabbitmq_node import RabbitNode, missing

    why = missing(PLUGINS)
    if why:
        raise LookupError(why)
    node = RabbitNode(tmp / "rabbit", plugins=PLUGINS).start()
    tag = uuid.uuid4().hex[:6]
    try:
        brokers = {name: node.add_vhost(f"fed{tag}{name}") for name in ("odl", "opnfv")}
        with two_sites(tmp, brokers, redis_url, transport="shovel") as (odl, opnfv):
            operator_setup(node, odl, opnfv, tag)
            operator_setup(node, opnfv, odl, tag)
            wait_until(
                lambda: list(shovel_states(node).values()) == ["running", "running"],
                30,
                "both shovels running",
                0.2,
            )
            yield odl, opnfv
    finally:
        node.stop()


TRANSPORTS = {"http": http_sites, "shovel": shovel_sites}
LABELS = {
    "http": "HTTP bridge (embedded broker -> RabbitMQ)",
    "shovel": "RabbitMQ shovel (two vhosts, private node)",
}


def print_table(results: dict[str, Any]) -> None:
    rows = [
        ("events (throughput)", "events"),
        ("publish at ODL, s", "publish_s"),
        ("stored in ODL's graph (local), s", "local_s"),
        ("stored in OPNFV's graph (remote), s", "remote_s"),
        ("local events/s", "local_per_s"),
        ("end to end events/s (ODL -> OPNFV's graph)", "remote_per_s"),
        ("latency: events", "latency_events"),
        ("local p50 ms", "local_p50_ms"),
        ("local p99 ms", "local_p99_ms"),
        ("remote p50 ms", "remote_p50_ms"),
        ("remote p99 ms", "remote_p99_ms"),
        ("added p50 ms (remote - local)", "added_p50_ms"),
        ("added p99 ms (remote - local)", "added_p99_ms"),
    ]
    names = list(results)
    print(f"{'':<46}" + "".join(f"{n:>14}" for n in names))
    for label, key in rows:
        values = []
        for n in names:
            v = results[n].get(key) if isinstance(results[n], dict) else None
            values.append("-" if v is None else f"{v:,}" if isinstance(v, int) else str(v))
        print(f"{label:<46}" + "".join(f"{v:>14}" for v in values))
    for n in names:
        if "skipped" in results[n]:
            print(f"{n}: skipped: {results[n]['skipped']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer events (a smoke run)")
    parser.add_argument("--events", type=int, default=None, help="throughput events (5000)")
    parser.add_argument("--latency", type=int, default=None, help="latency events (600)")
    parser.add_argument("--rate", type=float, default=50.0, help="latency events a second")
    parser.add_argument("--poll", type=float, default=0.001, help="graph polling interval, s")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--transports", default="http,shovel")
    parser.add_argument("--redis-url", default=MACHINE_REDIS)
    parser.add_argument(
        "--json", default=os.path.join(tempfile.gettempdir(), "bench_federation.json")
    )
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line a request otherwise
    if args.events is None:
        args.events = 500 if args.quick else 5000
    if args.latency is None:
        args.latency = 100 if args.quick else 600

    results: dict[str, Any] = {}
    for name in args.transports.split(","):
        tmp = Path(tempfile.mkdtemp(prefix=f"bench-federation-{name}-"))
        print(f"[{name}] {LABELS[name]} ...", file=sys.stderr, flush=True)
        try:
            with TRANSPORTS[name](tmp, args.redis_url) as (odl, opnfv):
                results[name] = measure(odl, opnfv, args)
        except LookupError as exc:
            results[name] = {"skipped": str(exc)}
        print(f"[{name}] {results[name]}", file=sys.stderr, flush=True)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "commit": commit,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "quick": args.quick,
        "rate": args.rate,
        "poll_ms": args.poll * 1000,
    }
    Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(
        f"\n{meta['date']} commit {commit}, Python {meta['python']}, {meta['cpus']} CPUs; "
        f"latency at {args.rate:g}/s, polled every {args.poll * 1000:g} ms; JSON in {args.json}\n"
    )
    print_table(results)


if __name__ == "__main__":
    main()
