"""Benchmark: the CI-systems dashboard ("radar", issue 17; engine.radar).

Two measurements, on one Redis:

1. **ingest of votes** (``--votes``, default 200,000 records: patch sets
   appearing and ``--systems`` CI systems voting on them, a few rechecks):
   ``RadarStore.add`` (the product's ingest path: what ``RadarFeed`` calls
   for the live stream, the imports and the runs' sync; one Lua script per
   record, pipelined) in batches of 500, against **raw pipelined writes of
   the same data** in the same run, chunk by chunk alternating so both see
   the same machine: every record's compact JSON ``HSET`` into its patch
   set's hash under the record's id (the least a store of the records as
   given has to write), (a) with the JSON encoding in the timed loop and
   (b) pre-encoded. Ratio = ingest / raw (the issue's target: >= 0.5 of raw).
2. **the dashboard's API answer time** over a loaded dataset of
   ``--systems`` systems x ``--days`` days x ``--per-day`` patch sets a
   day (default 50 x 90 x 2,000 = 180,000 patch sets, 9 million votes; the
   issue's size). The dataset is written in bulk, straight into the store's
   key layout (``engine/radar/store.py``'s table: the same keys and values
   ``RadarStore.add`` writes, big pipelines, no Lua), which is checked first
   on a small sample: the same records through ``RadarStore.add`` and
   through the bulk writer give the same ``window`` figures. The load time
   and Redis ``used_memory`` are reported. Then the web UI's JSON endpoints
   (``webui/blueprints/ci.py``, Flask's test client: the server's own time,
   no network) are asked ``--requests`` times each (after one request not
   counted), each endpoint at most ``--budget`` seconds (at least
   ``--min-requests`` answers), p50/p99 in ms: ``/api/ci/systems`` for the
   default window (7 d) and for 90 d, ``/api/ci/systems/<name>`` (7 d and
   90 d: its figures, reports and day buckets), ``/api/ci/patchsets`` (7 d).
   The issue's target: p99 <= 100 ms at the full size.

``--quick``: 6,000 votes; 12 systems x 3 days x 100 patch sets; 10 requests.

Run: ``python bench/bench_radar.py [--quick] [--redis-url URL] [--json FILE]
[--systems 50 --days 90 --per-day 2000]``. The default Redis is
``redis://127.0.0.1:6379/0``; keys are written under
``bench-radar:<pid>:`` and deleted at the end. Numbers and their reading:
docs/benchmarks.md ("The CI-systems dashboard (issue 17)").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.radar import RadarSettings, RadarStore, Record, rows, window
from engine.radar.model import APPEARED, FAIL, PASS, RECHECK, REPORT, SKIPPED
from engine.radar.store import RECHECK_FIELD, SEP

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
DAY = 86400.0
BATCH = 500
CHUNK = 20_000
RETENTION = 400 * DAY  # the dataset is within it whatever the day
GATE = "Zuul"
FIELDS = tuple(f.name for f in dataclasses.fields(Record))
DETAIL = {PASS: "Verified+1", FAIL: "Verified-1", "error": "Verified-1 ERROR", SKIPPED: "skipped"}


def encode(r: Record) -> str:
    """A record's compact JSON, every field and its psid (the raw writes' data)."""
    data = {f: getattr(r, f) for f in FIELDS}
    data["psid"] = r.psid
    return _dumps(data)


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
    """The nearest-rank ``q``-th percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


# -- the generated activity --------------------------------------------------------------


class Activity:
    """``systems`` CI systems voting on ``projects`` projects: system 0 is the
    gate (votes on everything), one votes on half, one fails everything,
    one is slow; the others pass ~88%, fail ~8%, error ~2%, skip ~2%, on
    95% of the patch sets, answering in minutes to hours (whole seconds, as
    Gerrit's times). 3% of the patch sets are rechecked two hours later and
    every system that voted votes again."""

    def __init__(self, systems: int, seed: int = 1, projects: int = 4) -> None:
        self.rng = random.Random(seed)
        self.projects = [f"openstack/project-{i}" for i in range(projects)]
        self.systems: list[tuple[str, float, float, tuple[float, float, float]]] = []
        for i in range(systems):
            name = GATE if i == 0 else f"Vendor {i:02d} CI"
            coverage = 1.0 if i == 0 else 0.5 if i == 1 else 0.95
            mean = 6 * 3600.0 if i == 3 else 600.0 + 300.0 * (i % 12)
            verdicts = (0.0, 1.0, 1.0) if i == 2 else (0.88, 0.96, 0.98)
            self.systems.append((name, coverage, mean, verdicts))
        self.change = 100_000

    def patch_set(self, appeared: float) -> Iterator[Record]:
        rng = self.rng
        self.change += 1
        project = self.projects[self.change % len(self.projects)]
        change = str(self.change)
        key = f"{change},1"
        base = {"forge": "gerrit", "project": project, "key": key}
        base |= {"change": change, "patchset": "1"}
        yield Record(APPEARED, at=appeared, id=f"a{change}", **base)
        recheck = appeared + 7200 if rng.random() < 0.03 else None
        if recheck is not None:
            yield Record(RECHECK, at=recheck, id=f"r{change}", **base)
        for name, coverage, mean, (p_pass, p_fail, p_error) in self.systems:
            if rng.random() >= coverage:
                continue
            rounds = [appeared] if recheck is None else [appeared, recheck]
            for n, start in enumerate(rounds):
                x = rng.random()
                verdict = (
                    PASS
                    if x < p_pass
                    else FAIL
                    if x < p_fail
                    else "error"
                    if x < p_error
                    else SKIPPED
                )
                at = float(math.floor(start + 60 + rng.expovariate(1 / mean)))
                yield Record(
                    REPORT,
                    at=at,
                    id=f"{name[:6]}{change}{n}",
                    system=name,
                    verdict=verdict,
                    gate=name == GATE,
                    detail=DETAIL[verdict],
                    **base,
                )

    def day(self, start: float, per_day: int) -> Iterator[Record]:
        """``per_day`` patch sets appearing through the day from ``start``."""
        times = sorted(float(math.floor(start + self.rng.random() * DAY)) for _ in range(per_day))
        for t in times:
            yield from self.patch_set(t)


# -- 1. ingest against raw writes ----------------------------------------------------------


def bench_ingest(client: redis.Redis, base: str, args: argparse.Namespace) -> dict[str, Any]:
    prefix, raw = f"{base}ingest:", f"{base}raw:"
    store = RadarStore(client, prefix, RETENTION)
    activity = Activity(args.systems, args.seed)
    now = time.time()
    records: list[Record] = []
    day0 = math.floor(now / DAY) * DAY - 30 * DAY
    d = 0
    while len(records) < args.votes:
        records.extend(activity.day(day0 + d * DAY, 200))
        d += 1
    records = records[: args.votes]
    votes = sum(r.kind == REPORT for r in records)
    t_store = t_raw = t_pre = 0.0
    mem0 = used_memory(client)
    for start in range(0, len(records), CHUNK):
        chunk = records[start : start + CHUNK]
        t0 = time.perf_counter()
        for i in range(0, len(chunk), BATCH):
            store.add(chunk[i : i + BATCH], now)
        t_store += time.perf_counter() - t0
        # raw (a): the encoding in the timed loop
        t0 = time.perf_counter()
        for i in range(0, len(chunk), BATCH):
            pipe = client.pipeline(transaction=False)
            for r in chunk[i : i + BATCH]:
                pipe.hset(raw + r.psid, r.id, encode(r))
            pipe.execute()
        t_raw += time.perf_counter() - t0
        delete_prefix(client, raw)
        # raw (b): pre-encoded
        blobs = [(raw + r.psid, r.id, encode(r).encode()) for r in chunk]
        t0 = time.perf_counter()
        for i in range(0, len(blobs), BATCH):
            pipe = client.pipeline(transaction=False)
            for key, field, blob in blobs[i : i + BATCH]:
                pipe.hset(key, field, blob)
            pipe.execute()
        t_pre += time.perf_counter() - t0
        delete_prefix(client, raw)
    store_mem = used_memory(client) - mem0
    n = len(records)
    # one at a time, the first 2,000
    first = records[:2000]
    one = RadarStore(client, f"{base}one:", RETENTION)
    t0 = time.perf_counter()
    for r in first:
        one.add([r], now)
    t_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    for r in first:
        client.hset(raw + r.psid, r.id, encode(r))
    t_one_raw = time.perf_counter() - t0
    delete_prefix(client, f"{base}one:")
    delete_prefix(client, raw)
    delete_prefix(client, prefix)
    return {
        "records": n,
        "votes": votes,
        "systems": args.systems,
        "ingest_rps": round(n / t_store),
        "raw_rps": round(n / t_raw),
        "raw_preencoded_rps": round(n / t_pre),
        "ratio_vs_raw": round(t_raw / t_store, 2),
        "ratio_vs_raw_preencoded": round(t_pre / t_store, 2),
        "ingest_one_rps": round(len(first) / t_one),
        "raw_one_rps": round(len(first) / t_one_raw),
        "memory_per_record_bytes": round(store_mem / n),
    }


# -- 2. the dataset, in bulk ---------------------------------------------------------------


class BulkWriter:
    """The records of whole patch sets written straight into
    ``RadarStore``'s key layout (what its Lua script writes for them, for
    patch sets whose ``appeared`` record is among them), in big pipelines."""

    def __init__(self, store: RadarStore) -> None:
        self.store = store
        self.client = store.client
        self.systems: dict[str, str] = {}
        self.sysproj: set[tuple[str, str]] = set()

    def write(self, records: list[Record]) -> None:
        k = self.store.k
        retention = self.store.retention
        by_ps: dict[str, list[Record]] = {}
        for r in records:
            by_ps.setdefault(r.psid, []).append(r)
        pipe = self.client.pipeline(transaction=False)
        psets: dict[str, dict[str, float]] = {}
        for psid, recs in by_ps.items():
            first = recs[0]
            appeared = min(r.at for r in recs if r.kind == APPEARED)
            expires = max(r.at for r in recs) + retention
            meta = {"forge": first.forge, "project": first.project}
            meta |= {"change": first.change or "", "patchset": first.patchset or ""}
            meta |= {"appeared": repr(appeared), "expires": repr(expires)}
            fields: dict[str, str] = {}
            for r in recs:
                if r.kind == RECHECK:
                    fields[RECHECK_FIELD + r.id] = repr(r.at)
                elif r.kind == REPORT:
                    system = r.system or ""
                    name = f"{system}{SEP}{r.id}"
                    fields[name] = _dumps({"at": r.at, "verdict": r.verdict, "detail": r.detail})
                    if system not in self.systems:
                        self.systems[system] = _dumps(
                            {"classified": r.classified, "gate": r.gate, "forge": r.forge}
                        )
                        pipe.hset(k("systems"), system, self.systems[system])
                    if (system, r.project) not in self.sysproj:
                        self.sysproj.add((system, r.project))
                        pipe.sadd(k("sysproj", system), r.project)
            at_ms = math.floor(expires * 1000)
            pipe.hset(k("ps", psid), mapping=meta)
            pipe.pexpireat(k("ps", psid), at_ms)
            if fields:
                pipe.hset(k("psr", psid), mapping=fields)
                pipe.pexpireat(k("psr", psid), at_ms)
            psets.setdefault("", {})[psid] = appeared
            psets.setdefault(first.project, {})[psid] = appeared
            if first.change:
                change_key = k("change", first.forge, first.project, first.change)
                pipe.set(change_key, psid)
                pipe.pexpireat(change_key, at_ms)
        for project, members in psets.items():
            pipe.zadd(k("psets", project) if project else k("psets"), members)
        pipe.execute()


def check_bulk_writer(client: redis.Redis, base: str, seed: int) -> int:
    """The same records through ``RadarStore.add`` and through the bulk
    writer: the same figures (raises otherwise); returns the records."""
    a = RadarStore(client, f"{base}check-a:", RETENTION)
    b = RadarStore(client, f"{base}check-b:", RETENTION)
    activity = Activity(12, seed)
    day0 = math.floor(time.time() / DAY) * DAY - 3 * DAY
    records = [r for d in range(3) for r in activity.day(day0 + d * DAY, 60)]
    shuffled = records[:]
    random.Random(seed).shuffle(shuffled)  # any order: the store's answer is the same
    a.add(shuffled)
    BulkWriter(b).write(records)
    rows.rebuild(b)  # the rows and report entries of what was written in bulk
    settings = RadarSettings()
    until = day0 + 3 * DAY
    for since in (day0, day0 + 0.5 * DAY, 0.0):
        fa = window(a, settings, since=since, until=until)
        fb = window(b, settings, since=since, until=until)
        if fa != fb:
            raise AssertionError(f"the bulk writer's figures differ from the store's: {fa} {fb}")
    delete_prefix(client, f"{base}check-a:")
    delete_prefix(client, f"{base}check-b:")
    return len(records)


def load(client: redis.Redis, prefix: str, args: argparse.Namespace) -> dict[str, Any]:
    store = RadarStore(client, prefix, RETENTION)
    writer = BulkWriter(store)
    activity = Activity(args.systems, args.seed)
    today = math.floor(time.time() / DAY) * DAY
    day0 = today - args.days * DAY  # the newest day is yesterday
    mem0 = used_memory(client)
    t0 = time.perf_counter()
    records = votes = 0
    for d in range(args.days):
        batch: list[Record] = []
        for r in activity.day(day0 + d * DAY, args.per_day):
            batch.append(r)
            if len(batch) >= 50_000 and r.kind == APPEARED:  # whole patch sets per write
                last = batch.pop()
                writer.write(batch)
                records += len(batch)
                votes += sum(x.kind == REPORT for x in batch)
                batch = [last]
        writer.write(batch)
        records += len(batch)
        votes += sum(x.kind == REPORT for x in batch)
        if d % 10 == 9 or d == args.days - 1:
            took = time.perf_counter() - t0
            print(f"  loaded {d + 1} days, {records:,} records in {took:.0f} s", file=sys.stderr)
    took = time.perf_counter() - t0
    records_mb = round((used_memory(client) - mem0) / 2**20)
    t1 = time.perf_counter()
    rows.rebuild(store)  # the rows of what was written in bulk (RadarStore.add keeps them)
    rebuild_s = time.perf_counter() - t1
    print(f"  rows rebuilt in {rebuild_s:.0f} s", file=sys.stderr)
    return {
        "systems": args.systems,
        "days": args.days,
        "per_day": args.per_day,
        "patch_sets": args.days * args.per_day,
        "records": records,
        "votes": votes,
        "load_s": round(took, 1),
        "load_rps": round(records / took),
        "used_memory_mb": round((used_memory(client) - mem0) / 2**20),
        "records_mb": records_mb,
        "rebuild_s": round(rebuild_s, 1),
        "day0": day0,
    }


# -- 2. the API ----------------------------------------------------------------------------


def make_app(url: str, prefix: str, tmp: Path) -> Any:
    from engine.config import Config
    from webui.app import create_app
    from webui.settings import WebConfig

    config = Config.load(
        None,
        environ={},
        redis_url=url,
        broker_url=url,
        key_prefix=prefix,
        state_dir=str(tmp),
        process_dir=str(tmp / "processes"),
    )
    (tmp / "processes").mkdir(exist_ok=True)
    web = WebConfig(secret_key="bench", anonymous=True)
    return create_app(config, web=web, publisher=object())


def live_writer(client: redis.Redis, prefix: str, mode: str = "one", seed: int = 1) -> Any:
    """A function that stores, through ``RadarStore.add``, what comes
    between two requests (the readers' cached days of it go stale), and
    says whether that was a recheck of an old patch set:

    * ``one``: one report on the newest patch set, by a system of its own;
    * ``stream``: about what 30 s of the generated activity brings at this
      size (a dashboard refreshed every 30 s): 35 reports by random
      systems on patch sets of the last two days, a new patch set 7 times
      in 10, and once in 20 a recheck of a patch set 3 to 30 days old (a
      change not updated since) with the gate's and three systems' new
      votes on it."""
    store = RadarStore(client, prefix, RETENTION)
    [(newest, _)] = client.zrevrange(store.k("psets"), 0, 0, withscores=True)
    systems = sorted(store.systems())
    rng = random.Random(seed)
    counter = iter(range(10**9))

    def ident(psid: bytes | str) -> tuple[str, str, str]:
        forge, project, key = (psid.decode() if isinstance(psid, bytes) else psid).split(":", 2)
        return forge, project, key

    def report(psid: bytes | str, system: str, n: int) -> Record:
        forge, project, key = ident(psid)
        verdict = PASS if rng.random() < 0.85 else FAIL
        return Record(
            REPORT,
            forge,
            project,
            key,
            time.time(),
            f"live-{os.getpid()}-{n}",
            system=system,
            gate=system == GATE,
            verdict=verdict,
            detail="Verified",
        )

    def write() -> bool:
        n = next(counter)
        if mode == "one":
            store.add([replace(report(newest, "Live CI", n), verdict=PASS if n % 3 else FAIL)])
            return False
        now = time.time()
        recent = client.zrangebyscore(store.k("psets"), now - 2 * DAY, now) or [newest]
        batch = [report(rng.choice(recent), rng.choice(systems), next(counter)) for _ in range(35)]
        if rng.random() < 0.7:
            project = rng.choice(["openstack/project-0", "openstack/project-1"])
            key = f"{9_000_000 + n},1"
            batch.append(Record(APPEARED, "gerrit", project, key, now, f"live-a-{os.getpid()}-{n}"))
        older = client.zrangebyscore(store.k("psets"), now - 30 * DAY, now - 3 * DAY)
        rechecked = bool(older) and rng.random() < 0.05
        if rechecked:
            old = rng.choice(older)
            forge, project, key = ident(old)
            batch.append(Record(RECHECK, forge, project, key, now, f"live-r-{os.getpid()}-{n}"))
            for system in [GATE, *rng.sample(systems, 3)]:
                batch.append(report(old, system, next(counter)))
        store.add(batch)
        return rechecked

    return write


def time_api(app: Any, args: argparse.Namespace, write: Any = None) -> dict[str, dict[str, Any]]:
    """Each endpoint's answer times; with ``write``, one report stored before
    each request (timed apart)."""
    client = app.test_client()
    some = "Vendor 05 CI" if args.systems > 5 else GATE
    name = some.replace(" ", "%20")
    urls = {
        "/api/ci/systems (7 d)": "/api/ci/systems",
        "/api/ci/systems?since=90d": "/api/ci/systems?since=90d",
        "/api/ci/systems/<name> (7 d)": f"/api/ci/systems/{name}",
        "/api/ci/systems/<name>?since=90d": f"/api/ci/systems/{name}?since=90d",
        "/api/ci/patchsets (7 d)": "/api/ci/patchsets",
    }
    wanted = [w for w in args.endpoints.split(",") if w]
    if wanted:
        urls = {k: v for k, v in urls.items() if any(w in k for w in wanted)}
    out: dict[str, dict[str, Any]] = {}
    for label, url in urls.items():
        t0 = time.perf_counter()
        r = client.get(url)  # warm-up, not counted
        first = (time.perf_counter() - t0) * 1000
        assert r.status_code == 200, (url, r.status_code, r.data[:300])
        times: list[float] = []
        rechecked: list[float] = []  # the answers right after a weeks-old recheck
        started = time.perf_counter()
        while len(times) < args.requests:
            if len(times) >= args.min_requests and time.perf_counter() - started > args.budget:
                break
            old = write() if write is not None else False
            t0 = time.perf_counter()
            r = client.get(url)
            times.append((time.perf_counter() - t0) * 1000)
            if old:
                rechecked.append(times[-1])
            assert r.status_code == 200, (url, r.status_code)
        body = r.get_json()
        systems = body.get("systems")
        out[label] = {
            "p50_ms": round(pct(times, 50), 1),
            "p99_ms": round(pct(times, 99), 1),
            "max_ms": round(max(times), 1),
            "after_recheck_ms": [round(t, 1) for t in rechecked],
            "first_ms": round(first, 1),
            "n": len(times),
            "answer_bytes": len(r.data),
            "patch_sets": (
                systems[0]["patch_sets"]
                if isinstance(systems, list) and systems and isinstance(systems[0], dict)
                else body.get("total", (body.get("figures") or {}).get("patch_sets"))
            ),
        }
        print(f"  {label}: p50 {out[label]['p50_ms']} ms ({len(times)})", file=sys.stderr)
    return out


def print_table(ingest: dict[str, Any], data: dict[str, Any], api: dict[str, Any]) -> None:
    def row(label: str, value: Any) -> None:
        print(f"{label:<48}{value:>24}")

    print("1. ingest of votes")
    row("records (patch sets, votes, rechecks)", f"{ingest['records']:,}")
    row("RadarStore.add, batches of 500 (rec/s)", f"{ingest['ingest_rps']:,}")
    row("raw pipelined HSET, encoding incl. (rec/s)", f"{ingest['raw_rps']:,}")
    row("raw pipelined HSET, pre-encoded (rec/s)", f"{ingest['raw_preencoded_rps']:,}")
    row("ingest / raw (target >= 0.5)", ingest["ratio_vs_raw"])
    row("ingest / raw pre-encoded", ingest["ratio_vs_raw_preencoded"])
    row("RadarStore.add one at a time (rec/s)", f"{ingest['ingest_one_rps']:,}")
    row("raw HSET one at a time (rec/s)", f"{ingest['raw_one_rps']:,}")
    row("used_memory per record, store (bytes)", ingest["memory_per_record_bytes"])
    if not data:
        return
    if "reused" not in data:
        print("\n2. the dataset")
        row(
            "systems x days x patch sets a day",
            f"{data['systems']}x{data['days']}x{data['per_day']:,}",
        )
        row("records (of which votes)", f"{data['records']:,} ({data['votes']:,})")
        row("bulk load (s)", data["load_s"])
        row("bulk load (rec/s)", f"{data['load_rps']:,}")
        row("Redis used_memory (MB)", data["used_memory_mb"])
        row("  of which the records' (MB)", data.get("records_mb"))
        row("rows rebuilt from the bulk-written records (s)", data.get("rebuild_s"))
    print("\n3. API answer time, Flask test client (ms)")
    print(
        f"{'':<40}{'p50':>9}{'p99':>9}{'max':>9}{'first':>9}{'n':>5}{'patch sets':>12}{'bytes':>11}"
    )
    for label, r in api.items():
        print(
            f"{label:<40}{r['p50_ms']:>9}{r['p99_ms']:>9}{r['max_ms']:>9}{r['first_ms']:>9}"
            f"{r['n']:>5}{r['patch_sets'] or '-':>12}{r['answer_bytes']:>11,}"
        )
    for label, r in api.items():
        if r["after_recheck_ms"]:
            print(f"  {label}, right after a weeks-old recheck: {r['after_recheck_ms']}")
    if data.get("reader_cache_mb") is not None:
        row("the reader's kept rows and cores (MB)", data["reader_cache_mb"])
        row("this process's peak RSS (MB)", data["max_rss_mb"])


class _Done(Exception):
    """``--ingest-only``: part 1 done."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run (seconds)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--json", default=os.path.join(tempfile.gettempdir(), "bench_radar.json"))
    parser.add_argument("--votes", type=int, default=200_000)
    parser.add_argument("--systems", type=int, default=50)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--per-day", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--min-requests", type=int, default=3)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per endpoint")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ingest-only", action="store_true", help="part 1 alone")
    parser.add_argument(
        "--endpoints", default="", help="only the endpoints whose label contains one of these (,)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the dataset's keys")
    parser.add_argument(
        "--live",
        choices=["one", "stream", "none"],
        default="stream",
        help="what is stored between two requests (live_writer): one report, about 30 s of "
        "the activity (the default), or nothing",
    )
    parser.add_argument(
        "--reuse", default="", help="a kept dataset's key prefix (printed with --keep): no load"
    )
    args = parser.parse_args()
    if args.quick:
        args.votes, args.systems, args.days, args.per_day = 6000, 12, 3, 100
        args.requests = 10

    client = redis.Redis.from_url(args.redis_url)
    info = client.info("server")
    base = f"bench-radar:{os.getpid()}:"
    data_prefix = f"{base}data:"
    tmp = Path(tempfile.mkdtemp(prefix="bench-radar-"))
    try:
        print("checking the bulk writer against RadarStore.add ...", file=sys.stderr)
        checked = check_bulk_writer(client, base, args.seed)
        print(f"ingest ({args.votes:,} records) ...", file=sys.stderr)
        ingest = bench_ingest(client, base, args)
        data: dict[str, Any] = {}
        api: dict[str, Any] = {}
        if args.ingest_only:
            raise _Done
        if args.reuse:
            data_prefix = args.reuse
            data = {"reused": data_prefix}
        else:
            print(f"loading {args.systems}x{args.days}x{args.per_day} ...", file=sys.stderr)
            data = load(client, data_prefix, args)
            if args.keep:
                print(f"  the dataset is kept under {data_prefix}", file=sys.stderr)
        data["bulk_writer_checked_records"] = checked
        app = make_app(args.redis_url, data_prefix, tmp)
        try:
            writer = None if args.live == "none" else live_writer(client, data_prefix, args.live)
            api = time_api(app, args, writer)
            data["reader_cache_mb"] = round(rows.CACHE.nbytes / 2**20)
            data["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        finally:
            app.extensions["boss"].close()
    except _Done:
        pass
    finally:
        if not args.keep:
            delete_prefix(client, base)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    meta = {
        "server": f"{info.get('server_name', 'redis')} "
        f"{info.get('valkey_version') or info.get('redis_version')}",
        "url": args.redis_url,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%d"),
        "commit": commit,
        "quick": args.quick,
        "live": args.live,
    }
    Path(args.json).write_text(
        json.dumps({"meta": meta, "ingest": ingest, "data": data, "api": api}, indent=2)
    )
    print(
        f"\n{meta['server']} ({meta['url']}), Python {meta['python']}, "
        f"{meta['cpus']} CPUs, commit {commit}, live writes: {args.live}; JSON in {args.json}\n"
    )
    print_table(ingest, data, api)


if __name__ == "__main__":
    main()
