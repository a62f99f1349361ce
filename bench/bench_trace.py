"""Benchmark: the traceability graph store (engine.trace.graph).

For each size (default 10k, 100k and 1M events of
``engine.trace.synthetic``: changes, builds, tests, baselines, confidence
levels, deployments) it measures, on one server:

1. **ingest, batched**: ``Graph.ingest`` in batches of 500, events/s (the
   time to generate the events is not counted; the time to encode them is).
2. **raw pipelined writes of the same bytes**, in the same run, chunk by
   chunk alternating with (1) so both see the same machine: every event's
   compact JSON ``SET`` under its own key in pipelines of 500, (a) with the
   ``json`` encoding in the timed loop (what a store of the events as given
   has to do too) and (b) pre-encoded (the server and the client library
   alone). Ratio = ingest / raw.
3. **ingest one at a time** (``ingest_one``, one round trip per event) and
   raw one at a time (``SET`` per event), on the first 2,000 events, in a
   separate prefix.
4. **query latency** (p50, p99 over ``--queries`` random starts):
   ``queries.trace_up`` from a SourceChangeCreated, ``queries.trace_down``
   from a CompositionDefined (a baseline) and from an ArtifactCreated, and
   plain ``Graph.upstream``/``downstream`` from any event; all with depth 10
   and at most 100 results.
5. **memory**: ``used_memory`` after minus before, per event, with the raw
   keys deleted; the raw JSON's own cost per event (``SET`` of the same
   bytes); and ``MEMORY USAGE`` of the nodes of the activity events
   (ActivityTriggered/Started/Finished) plus each event's share of the
   indexes (time index, chain lists).

Run: ``python bench/bench_trace.py [--sizes 10k,100k,1M] [--redis-url URL]
[--json FILE] [--queries 500]``. Without ``--redis-url`` it starts an
embedded Valkey (``engine.embedded``) in a temporary directory, with its
append-only file off (``--aof`` keeps it on): the bench measures the graph,
not the disk. Keys are written under ``bench-trace:<pid>:`` and deleted at
the end. Numbers and their reading: docs/traceability-graph.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.embedded import EmbeddedValkey
from engine.trace import Graph, PipelineGenerator, trace_down, trace_up

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
CHUNK = 20_000
BATCH = 500
ACTIVITY = (
    "EiffelActivityTriggeredEvent",
    "EiffelActivityStartedEvent",
    "EiffelActivityFinishedEvent",
)


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    batch = []
    for key in client.scan_iter(match=prefix + "*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def raw_write(client: redis.Redis, prefix: str, blobs: list[tuple[str, str | bytes]]) -> None:
    for i in range(0, len(blobs), BATCH):
        pipe = client.pipeline(transaction=False)
        for key, blob in blobs[i : i + BATCH]:
            pipe.set(prefix + key, blob)
        pipe.execute()


class Sampler:
    """Reservoir samples of ids by event type."""

    def __init__(self, rng: random.Random, size: int = 2000) -> None:
        self.rng = rng
        self.size = size
        self.seen: dict[str, int] = {}
        self.ids: dict[str, list[str]] = {}

    def add(self, event: dict[str, Any]) -> None:
        etype = event["meta"]["type"]
        n = self.seen[etype] = self.seen.get(etype, 0) + 1
        ids = self.ids.setdefault(etype, [])
        if len(ids) < self.size:
            ids.append(event["meta"]["id"])
        else:
            j = self.rng.randrange(n)
            if j < self.size:
                ids[j] = event["meta"]["id"]

    def all_ids(self) -> list[str]:
        return [i for ids in self.ids.values() for i in ids]


def latencies(fn: Any, starts: list[str]) -> dict[str, float]:
    for start in starts[:20]:  # warm up
        fn(start)
    times = []
    results = []
    for start in starts:
        t0 = time.perf_counter()
        out = fn(start)
        times.append((time.perf_counter() - t0) * 1000)
        results.append(len(out) if isinstance(out, list) else sum(map(len, out.values())))
    return {
        "p50_ms": round(pct(times, 50), 3),
        "p99_ms": round(pct(times, 99), 3),
        "mean_results": round(statistics.mean(results), 1),
        "n": len(times),
    }


def bench_size(client: redis.Redis, base: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"{base}{n}:"
    raw_prefix = f"{base}raw:"
    delete_prefix(client, prefix)
    graph = Graph(client, prefix, batch_size=BATCH)
    rng = random.Random(args.seed)
    sampler = Sampler(rng)
    stream = iter(PipelineGenerator(seed=args.seed))
    t_graph = t_raw = t_pre = 0.0
    bytes_json = 0
    raw_mem_per_event = None
    mem0 = used_memory(client)
    done = 0
    first: list[dict[str, Any]] = []
    while done < n:
        chunk = list(itertools.islice(stream, min(CHUNK, n - done)))
        if not first:
            first = chunk[:2000]
        for event in chunk:
            sampler.add(event)
        # (1) the graph
        t0 = time.perf_counter()
        graph.ingest(chunk)
        t_graph += time.perf_counter() - t0
        # (2a) raw, encoding included
        m_raw0 = used_memory(client)
        t0 = time.perf_counter()
        for i in range(0, len(chunk), BATCH):
            pipe = client.pipeline(transaction=False)
            for event in chunk[i : i + BATCH]:
                pipe.set(raw_prefix + event["meta"]["id"], _dumps(event))
            pipe.execute()
        t_raw += time.perf_counter() - t0
        if raw_mem_per_event is None:
            raw_mem_per_event = (used_memory(client) - m_raw0) / len(chunk)
        delete_prefix(client, raw_prefix)
        # (2b) raw, pre-encoded
        blobs = [(e["meta"]["id"], _dumps(e).encode()) for e in chunk]
        bytes_json += sum(len(b) for _, b in blobs)
        t0 = time.perf_counter()
        raw_write(client, raw_prefix, blobs)
        t_pre += time.perf_counter() - t0
        delete_prefix(client, raw_prefix)
        done += len(chunk)
        print(f"  {n:>9,}: {done:,} events in", file=sys.stderr)
    mem1 = used_memory(client)
    stats = graph.stats()
    assert stats["events"] == n, stats

    # memory of the activity events: their nodes plus their share of the indexes
    index_bytes = 0
    for key in itertools.chain(
        client.scan_iter(match=prefix + "t:*", count=1000),
        client.scan_iter(match=prefix + "c:*", count=5000),
    ):
        index_bytes += client.memory_usage(key, samples=0) or 0
    node_sizes: dict[str, float] = {}
    for etype in ACTIVITY:
        ids = sampler.ids.get(etype, [])[:300]
        if ids:
            node_sizes[etype] = statistics.mean(
                client.memory_usage(f"{prefix}e:{i}", samples=0) for i in ids
            )
    activity_node = statistics.mean(node_sizes.values())

    # (3) one at a time
    one = Graph(client, f"{base}one:")
    t0 = time.perf_counter()
    for event in first:
        one.ingest_one(event)
    t_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    for event in first:
        client.set(raw_prefix + event["meta"]["id"], _dumps(event))
    t_one_raw = time.perf_counter() - t0
    delete_prefix(client, f"{base}one:")
    delete_prefix(client, raw_prefix)

    # (4) queries
    q = args.queries
    pick = random.Random(args.seed + 1)
    changes = sampler.ids["EiffelSourceChangeCreatedEvent"]
    baselines = sampler.ids["EiffelCompositionDefinedEvent"]
    artifacts = sampler.ids["EiffelArtifactCreatedEvent"]
    anything = sampler.all_ids()

    def starts(ids: list[str]) -> list[str]:
        return [pick.choice(ids) for _ in range(q)]

    queries = {
        "trace_up(change)": latencies(lambda i: trace_up(graph, i), starts(changes)),
        "trace_down(baseline)": latencies(lambda i: trace_down(graph, i), starts(baselines)),
        "trace_down(artifact)": latencies(lambda i: trace_down(graph, i), starts(artifacts)),
        "upstream(any)": latencies(lambda i: graph.upstream(i), starts(anything)),
        "downstream(any)": latencies(lambda i: graph.downstream(i), starts(anything)),
        "downstream(change)": latencies(lambda i: graph.downstream(i), starts(changes)),
    }
    if not args.keep:
        delete_prefix(client, prefix)
    result = {
        "events": n,
        "mean_event_json_bytes": round(bytes_json / n, 1),
        "ingest_batched_eps": round(n / t_graph),
        "raw_pipelined_eps": round(n / t_raw),
        "raw_preencoded_eps": round(n / t_pre),
        "ratio_vs_raw": round(t_raw / t_graph, 2),
        "ratio_vs_raw_preencoded": round(t_pre / t_graph, 2),
        "ingest_one_eps": round(len(first) / t_one),
        "raw_one_eps": round(len(first) / t_one_raw),
        "memory_per_event_bytes": round((mem1 - mem0) / n),
        "raw_memory_per_event_bytes": round(raw_mem_per_event or 0),
        "activity_node_bytes": {k: round(v) for k, v in node_sizes.items()},
        "index_bytes_per_event": round(index_bytes / n),
        "typical_activity_event_bytes": round(activity_node + index_bytes / n),
        "queries": queries,
        "counts": dict(sampler.seen),
    }
    return result


def print_table(results: list[dict[str, Any]]) -> None:
    def row(label: str, values: list[Any]) -> None:
        print(f"{label:<44}" + "".join(f"{v:>14}" for v in values))

    row("events", [f"{r['events']:,}" for r in results])
    row("mean event JSON (bytes)", [r["mean_event_json_bytes"] for r in results])
    row("ingest batched (ev/s)", [f"{r['ingest_batched_eps']:,}" for r in results])
    row(
        "raw pipelined SET, encoding incl. (ev/s)", [f"{r['raw_pipelined_eps']:,}" for r in results]
    )
    row("raw pipelined SET, pre-encoded (ev/s)", [f"{r['raw_preencoded_eps']:,}" for r in results])
    row("ingest / raw (target >= 0.5)", [r["ratio_vs_raw"] for r in results])
    row("ingest / raw pre-encoded", [r["ratio_vs_raw_preencoded"] for r in results])
    row("ingest one at a time (ev/s)", [f"{r['ingest_one_eps']:,}" for r in results])
    row("raw SET one at a time (ev/s)", [f"{r['raw_one_eps']:,}" for r in results])
    row("used_memory per event (bytes)", [r["memory_per_event_bytes"] for r in results])
    row("raw JSON SET per event (bytes)", [r["raw_memory_per_event_bytes"] for r in results])
    row(
        "activity event, node + index share (B)",
        [r["typical_activity_event_bytes"] for r in results],
    )
    for name in results[0]["queries"]:
        row(
            f"{name} p50 / p99 (ms)",
            [
                f"{r['queries'][name]['p50_ms']:.2f}/{r['queries'][name]['p99_ms']:.2f}"
                for r in results
            ],
        )
        row(f"{name} mean results", [r["queries"][name]["mean_results"] for r in results])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10k,100k,1M")
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--json", default=os.path.join(tempfile.gettempdir(), "bench_trace.json"))
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--aof", action="store_true", help="keep the embedded AOF on")
    parser.add_argument("--keep", action="store_true", help="keep the graphs' keys")
    args = parser.parse_args()
    sizes = [parse_size(s) for s in args.sizes.split(",")]

    server = None
    if args.redis_url is None:
        state = tempfile.mkdtemp(prefix="bench-trace-")
        config = {} if args.aof else {"appendonly": "no"}
        server = EmbeddedValkey(state, config=config).start()
        url = server.url
    else:
        url = args.redis_url
    client = redis.Redis.from_url(url)
    info = client.info("server")
    base = f"bench-trace:{os.getpid()}:"
    results = []
    try:
        for n in sizes:
            print(f"size {n:,} ...", file=sys.stderr)
            results.append(bench_size(client, base, n, args))
    finally:
        if not args.keep:
            delete_prefix(client, base)
        if server is not None:
            server.stop()
    meta = {
        "server": f"{info.get('server_name', 'redis')} "
        f"{info.get('valkey_version') or info.get('redis_version')}",
        "url": url if args.redis_url else "embedded",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%d"),
    }
    Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(
        f"\n{meta['server']} ({meta['url']}), Python {meta['python']}, "
        f"{meta['cpus']} CPUs; JSON in {args.json}\n"
    )
    print_table(results)


if __name__ == "__main__":
    main()
