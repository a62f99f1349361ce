"""Benchmark: steps per second through the interpreter, and Redis memory per run.

A *step* is one participant step of a 10-step sequence: the reply message
goes through the engine (load the run, apply the message with the sans-IO
core, store the state with compare-and-set, carry out the effects: the next
dispatch). The figures (each the median of three measurements):

1. ``core``: the interpreter alone (``interpreter.handle`` on a state dict,
   no store), the ceiling.
2. ``core + memory``: load, ``interpreter.handle``, compare-and-set save on
   ``MemoryStore`` (the target: >= 50,000 steps/s); and ``memory``: the
   whole ``Engine.deliver`` (plus listener matching and effect plumbing).
3. ``redis``: ``Engine.deliver`` over ``RedisStore`` (the machine's Redis, or
   ``--redis-url``; an embedded Valkey when none is reachable), beside
   ``raw``: the same reads and writes as raw Redis commands (one HMGET of the
   run, one pipelined MULTI/HSET/EXEC of a state of the same size, per step),
   measured in the same run. The target is redis >= raw / 2.
4. ``memory per waiting run``: Redis ``MEMORY USAGE`` of the run's hash plus
   its index entries, for a run of the 10-step process waiting on its first
   participant; and the used_memory delta over many such runs.

Run: ``python bench/bench_interpreter.py [--steps N] [--redis-url URL]``.
Prints a table and (with ``--json``) a JSON document.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from typing import Any

from engine.core import effects as fx
from engine.core import interpreter, messages, runstate
from engine.core.loader import load_definition
from engine.core.registrations import Registration, Registrations
from engine.engine import Engine
from engine.store import MemoryStore, RedisStore

PROCESS = {
    "name": "bench10",
    "fields": {"project": "home:bench", "status": "SUCCESS", "msg": []},
    "steps": [{f"step{i}": {"target": "${project}", "n": i}} for i in range(10)],
}
REGS = Registrations(Registration(f"step{i}", f"q.step{i}") for i in range(10))


class Collect:
    """A dispatcher that keeps the workitems to reply to."""

    def __init__(self) -> None:
        self.out: list[dict[str, Any]] = []

    def dispatch(self, effect: fx.Dispatch) -> None:
        self.out.append(effect.workitem)

    def cancel(self, effect: fx.CancelWorkitem) -> None:
        pass


def _reply(wi: dict[str, Any]) -> dict[str, Any]:
    return messages.reply(wi, wi["fei"]["wfid"])


def bench_core(runs: int) -> float:
    d = load_definition(PROCESS)
    states = []
    pending = []
    for _ in range(runs):
        res = interpreter.launch(d, uuid.uuid4().hex, now=time.time(), registrations=REGS)
        states.append(res.state)
        pending.append(next(e.workitem for e in res.effects if isinstance(e, fx.Dispatch)))
    steps = 0
    t0 = time.perf_counter()
    for st, wi in zip(states, pending, strict=True):
        while wi is not None:
            res = interpreter.handle(d, st, _reply(wi), now=time.time(), registrations=REGS)
            steps += 1
            wi = next((e.workitem for e in res.effects if isinstance(e, fx.Dispatch)), None)
    return steps / (time.perf_counter() - t0)


def bench_core_store(store: Any, runs: int) -> float:
    """The core with a store around it: load the run, apply the reply,
    compare-and-set the new state (what every engine does per message,
    without the adapter's listener matching and effect plumbing)."""
    d = load_definition(PROCESS)
    pending = []
    for _ in range(runs):
        res = interpreter.launch(d, uuid.uuid4().hex, now=time.time(), registrations=REGS)
        store.create_run(res.state)
        pending.append(next(e.workitem for e in res.effects if isinstance(e, fx.Dispatch)))
    steps = 0
    t0 = time.perf_counter()
    while pending:
        nxt = []
        for wi in pending:
            state, version = store.load_run(wi["fei"]["wfid"])
            state = runstate.upgrade(state)
            res = interpreter.handle(d, state, _reply(wi), now=time.time(), registrations=REGS)
            store.save_run(res.state, version)
            steps += 1
            wi = next((e.workitem for e in res.effects if isinstance(e, fx.Dispatch)), None)
            if wi is not None:
                nxt.append(wi)
        pending = nxt
    return steps / (time.perf_counter() - t0)


def bench_engine(store: Any, runs: int) -> float:
    col = Collect()
    eng = Engine(store, dispatcher=col, registrations_ttl=3600)
    for r in REGS:
        eng.register(r.pattern, r.queue, regex=False)
    d = eng.load(PROCESS)
    for _ in range(runs):
        eng.launch(d)
    steps = 0
    t0 = time.perf_counter()
    while col.out:
        batch, col.out = col.out, []
        for wi in batch:
            eng.deliver(_reply(wi))
            steps += 1
    return steps / (time.perf_counter() - t0)


def bench_redis_interleaved(
    store: Any, client: Any, prefix: str, runs: int, rounds: int = 10
) -> tuple[float, float, int]:
    """Engine steps/s and raw steps/s, measured in alternating rounds so
    that both see the same server and network conditions (this machine's
    loopback latency changes mode from one second to the next)."""
    col = Collect()
    eng = Engine(store, dispatcher=col, registrations_ttl=3600)
    for r in REGS:
        eng.register(r.pattern, r.queue, regex=False)
    d = eng.load(PROCESS)
    w = eng.launch(d)
    size = len(json.dumps(store.load_run(w)[0], separators=(",", ":")))
    col.out.clear()
    blob = "x" * size
    key = f"{prefix}raw"
    client.hset(key, mapping={"state": blob, "v": 1})
    t_engine = t_raw = 0.0
    steps = 0
    per_round = max(runs // rounds, 1)
    for _ in range(rounds):
        for _ in range(per_round):
            eng.launch(d)
        n = 0
        t0 = time.perf_counter()
        while col.out:
            batch, col.out = col.out, []
            for wi in batch:
                eng.deliver(_reply(wi))
                n += 1
        t_engine += time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(n):
            client.hmget(key, "state", "v")
            p = client.pipeline(transaction=True)
            p.hset(key, mapping={"state": blob, "v": i + 2, "status": "running"})
            p.execute()
        t_raw += time.perf_counter() - t0
        steps += n
    client.delete(key)
    return steps / t_engine, steps / t_raw, size


def memory_per_run(store: RedisStore, client: Any, prefix: str, runs: int) -> dict[str, float]:
    col = Collect()
    eng = Engine(store, dispatcher=col, registrations_ttl=3600)
    for r in REGS:
        eng.register(r.pattern, r.queue, regex=False)
    d = eng.load(PROCESS)
    wfids = [eng.launch(d) for _ in range(min(runs, 50))]
    usage = []
    for w in wfids:
        total = client.memory_usage(f"{prefix}run:{w}") or 0
        usage.append(total)
    # index entries: measure used_memory delta over a larger population
    before = client.info("memory")["used_memory"]
    for _ in range(runs):
        eng.launch(d)
    after = client.info("memory")["used_memory"]
    state_json = len(json.dumps(store.load_run(wfids[0])[0], separators=(",", ":")))
    return {
        "hash_bytes_median": statistics.median(usage),
        "used_memory_per_run": (after - before) / runs,
        "state_json_bytes": state_json,
    }


def _best(measure: Any, repeat: int = 3) -> float:
    """The median of ``repeat`` measurements (this machine's speed wanders)."""
    return statistics.median(measure() for _ in range(repeat))


def _cleanup(client: Any, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for i in range(0, len(keys), 1000):
        client.delete(*keys[i : i + 1000])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000, help="runs per measurement (10 steps each)")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--memory-runs", type=int, default=10000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    results: dict[str, Any] = {}
    results["core_steps_per_s"] = _best(lambda: bench_core(args.runs))
    results["core_memory_steps_per_s"] = _best(lambda: bench_core_store(MemoryStore(), args.runs))
    results["memory_steps_per_s"] = _best(lambda: bench_engine(MemoryStore(), args.runs))

    import redis

    embedded = None
    try:
        client = redis.Redis.from_url(args.redis_url)
        client.ping()
        url = args.redis_url
    except redis.RedisError:
        from engine.embedded import EmbeddedValkey

        embedded = EmbeddedValkey(state_dir=f"/tmp/boss-bench-{uuid.uuid4().hex[:8]}").start()
        url = embedded.url
        client = redis.Redis.from_url(url)
    results["redis_url"] = url
    prefix = f"boss-bench:{uuid.uuid4().hex[:8]}:"
    try:
        store = RedisStore(url, prefix=prefix)
        engine_rate, raw_rate, _ = bench_redis_interleaved(store, client, prefix, args.runs)
        results["redis_steps_per_s"] = engine_rate
        results["raw_steps_per_s"] = raw_rate
        results["redis_vs_raw"] = engine_rate / raw_rate
        _cleanup(client, prefix)
        results["memory"] = memory_per_run(store, client, prefix, args.memory_runs)
    finally:
        _cleanup(client, prefix)
        if embedded is not None:
            embedded.stop()

    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{'core (no store)':<34}{results['core_steps_per_s']:>12,.0f} steps/s")
        print(
            f"{'core + MemoryStore (load/CAS)':<34}"
            f"{results['core_memory_steps_per_s']:>12,.0f} steps/s"
        )
        print(f"{'engine + MemoryStore':<34}{results['memory_steps_per_s']:>12,.0f} steps/s")
        print(f"{'engine + RedisStore':<34}{results['redis_steps_per_s']:>12,.0f} steps/s")
        print(f"{'raw Redis, same reads/writes':<34}{results['raw_steps_per_s']:>12,.0f} steps/s")
        print(f"{'engine / raw':<34}{results['redis_vs_raw']:>12.2f}")
        m = results["memory"]
        print(f"{'waiting run: hash (MEMORY USAGE)':<34}{m['hash_bytes_median']:>12,.0f} bytes")
        print(f"{'waiting run: used_memory delta':<34}{m['used_memory_per_run']:>12,.0f} bytes")
        print(f"{'waiting run: state JSON':<34}{m['state_json_bytes']:>12,.0f} bytes")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
