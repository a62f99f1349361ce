"""The rows (``engine/radar/rows.py``) give exactly the figures the records
give (``stats.window_of_records``, the path every figure was defined and
tested on), over windows that cut days anywhere, per project, after
shuffled and redelivered records, after a patch set's appearance moved it
to another day, after a prune, after a rebuild of a store filled before
the rows, and after a patch set expired; the day buckets and the newest
patch sets too. Fed with the generated month (``tests/radar/month.py``,
Gerrit lines varied from the recorded ones) and the recorded Gerrit,
GitHub and GitLab deliveries (``shared/payloads``)."""

from __future__ import annotations

import json
import math
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from engine.radar import RadarFeed, RadarSettings, RadarStore, Record, parts, rows, stats
from engine.radar.model import APPEARED, RECHECK, REPORT
from tests.conftest import delete_keys
from tests.radar import month
from tests.radar.month import DAY, END, GATE, START, H

pytestmark = pytest.mark.redis

FOREVER = 1e11
SETTINGS = RadarSettings(gate=GATE)


def records_path(store: RadarStore, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn`` with the rows switched off: the figures from every record."""
    real = rows.rolled
    rows.rolled = lambda s: False  # type: ignore[assignment]
    try:
        return fn(*args, **kwargs)
    finally:
        rows.rolled = real  # type: ignore[assignment]


def assert_same(store: RadarStore, since: float, until: float, project: str | None) -> None:
    assert rows.rolled(store)
    fast = stats.window(store, SETTINGS, since=since, until=until, project=project)
    slow = stats.window_of_records(store, SETTINGS, since=since, until=until, project=project)
    assert fast == slow, (since, until, project)


def windows(seed: int, n: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    out: list[tuple[float, float]] = [(0, END), (START, END), (END - 7 * DAY, END)]
    for _ in range(n):
        a, b = sorted((rng.uniform(START - DAY, END + DAY), rng.uniform(START, END + DAY)))
        out.append((a, b))
    out.append((START + 3 * DAY, START + 3 * DAY))  # an instant
    out.append((START + 5 * DAY + 0.5, START + 6 * DAY - 0.5))  # inside one day
    return out


@pytest.fixture(scope="module")
def fed(redis_url: str, payloads_dir: Path) -> Iterator[RadarFeed]:
    """The generated month, every event delivered once in a random order and
    a fifth of them again, plus the recorded deliveries."""
    truth = month.generate(payloads_dir / "gerrit")
    prefix = f"boss-test:{uuid.uuid4().hex}:"
    client = redis.Redis.from_url(redis_url)
    feed = RadarFeed(RadarStore(client, prefix, FOREVER), SETTINGS)
    banner = (payloads_dir / "gerrit" / "with_banner.jsonl").read_text().splitlines()[0]
    events = list(truth.events)
    rng = random.Random(17)
    rng.shuffle(events)
    events += rng.sample(events, len(events) // 5)
    result = feed.import_gerrit([banner, *(json.dumps(e) for e in events)], "month.jsonl")
    assert result.errors == [] and result.stored > 10_000
    for name in ("with_banner.jsonl", "gogerrit_events.jsonl", "recheck_comment.jsonl"):
        with (payloads_dir / "gerrit" / name).open("rb") as fh:
            assert feed.import_gerrit(fh, name).errors == []
    feed.import_deliveries([payloads_dir / "github", payloads_dir / "gitlab"])
    yield feed
    delete_keys(client, prefix)


@pytest.mark.parametrize("project", [None, month.PROJECT, "no-such-project"])
def test_the_rows_give_the_records_figures_over_any_window(
    fed: RadarFeed, project: str | None
) -> None:
    for since, until in windows(1, 12):
        assert_same(fed.store, since, until, project)


def test_the_recorded_deliveries_figures_too(fed: RadarFeed) -> None:
    """The recorded GitHub and GitLab deliveries are years apart from the
    month: windows around each of them."""
    store = fed.store
    names = [n for n in store.systems() if n not in month.SYSTEMS and n != GATE]
    assert names, "the recorded deliveries gave systems of their own"
    for name in names:
        times = store.report_times(name, 0, 2e9)
        for t in times[:5]:
            assert_same(store, t - 3600, t + 3600, None)
            assert_same(store, t - 30 * DAY, t, None)


def test_the_day_buckets_and_the_newest_patch_sets(fed: RadarFeed) -> None:
    store = fed.store
    for since, until in windows(2, 6):
        for project in (None, month.PROJECT):
            fast = stats.daily(store, SETTINGS, since=since, until=until, project=project)
            slow = records_path(
                store, stats.daily, store, SETTINGS, since=since, until=until, project=project
            )
            assert fast == slow, (since, until, project)
        everything = store.patch_sets(since, until)
        everything.sort(key=lambda ps: (ps.time, ps.psid), reverse=True)
        assert [p.psid for p in store.newest(since, until, None, 30)] == [
            p.psid for p in everything[:30]
        ]
        assert rows.count(store, since=since, until=until) == len(everything)
        mine = [p for p in everything if "Half CI" in p.reports]
        assert [p.psid for p in store.newest(since, until, None, 7, "Half CI")] == [
            p.psid for p in mine[:7]
        ]
        assert rows.count(store, since=since, until=until, system="Half CI") == len(mine)


@pytest.fixture
def store(redis_client: redis.Redis, key_prefix: str) -> RadarStore:
    return RadarStore(redis_client, key_prefix, FOREVER)


def gerrit(payloads_dir: Path) -> Any:
    from tests.radar.test_radar import Gen

    return Gen(payloads_dir)


def test_a_late_appearance_moves_the_patch_set_to_its_day(
    store: RadarStore, payloads_dir: Path
) -> None:
    """Reports first (the patch set indexed by the earliest of them, on day
    2), then its upload, a day and a half earlier: its rows move to day 1
    and the old slot is left empty."""
    gen = gerrit(payloads_dir)
    feed = RadarFeed(store, SETTINGS)
    t0 = START + 2 * DAY + 6 * H
    lines = [
        gen.vote("Vendor X CI", 700, t0, 1),
        gen.vote(GATE, 700, t0 + 600, -1),
        gen.recheck(700, t0 + 900),
        gen.vote("Vendor X CI", 700, t0 + 1200, -1),
        gen.patchset(701, t0 + 100),
        gen.vote("Vendor X CI", 701, t0 + 400, 1),
    ]
    feed.import_gerrit([json.dumps(e).encode() for e in lines])
    day2 = store.client.get(store.k("prow", str(int((t0) // DAY))))
    assert day2 is not None and len(day2) == 2 * rows.PROW.itemsize
    for since, until in ((0, 2e9), (START, t0 + 50), (t0 - 1, t0 + 7200)):
        assert_same(store, since, until, None)
    feed.import_gerrit([json.dumps(gen.patchset(700, t0 - 36 * H)).encode()])
    moved = store.client.get(store.k("prow", str(int((t0 - 36 * H) // DAY))))
    assert moved is not None and len(moved) == rows.PROW.itemsize
    left = store.client.get(store.k("prow", str(int(t0 // DAY))))
    assert left[: rows.PROW.itemsize] == b"\0" * rows.PROW.itemsize  # the old slot
    for since, until in ((0, 2e9), (t0 - 40 * H, t0 - 30 * H), (t0 - 1, t0 + 7200)):
        assert_same(store, since, until, None)
    [fig] = [f for f in stats.window(store, SETTINGS, since=0, until=2e9) if f["name"] == GATE]
    assert fig["responses"] == 1 and fig["response_p50_s"] == 36 * H + 600


def test_a_store_filled_before_the_rows_is_read_from_its_records_until_rebuilt(
    fed: RadarFeed, redis_client: redis.Redis, key_prefix: str
) -> None:
    """A copy of the month's records without any row (as a store filled by
    the code before the rows): figures from the records; after
    ``rows.rebuild`` from the rows, the same."""
    src = fed.store
    copy = RadarStore(redis_client, key_prefix, FOREVER)
    for key in src.client.scan_iter(match=src.prefix + "*", count=5000):
        if any(key.startswith((src.prefix + k + ":").encode()) for k in rows.ROW_KEYS):
            continue
        if key in ((src.prefix + "rows").encode(),):
            continue
        new = copy.prefix.encode() + key[len(src.prefix) :]
        redis_client.copy(key, new)
    for key in redis_client.scan_iter(match=copy.prefix + "psr:*", count=5000):
        # the report index of that layout: sys:<system>, <psid>\x1f<field> by report time
        psid = key[len(copy.prefix) + 4 :].decode()
        for field, raw in redis_client.hgetall(key).items():
            if not field.startswith(b"\x1e"):
                system = field.decode().partition("\x1f")[0]
                member = f"{psid}\x1f{field.decode()}"
                redis_client.zadd(copy.k("sys", system), {member: json.loads(raw)["at"]})
    assert not rows.rolled(copy)
    before = stats.window(copy, SETTINGS, since=START, until=END)
    assert before == stats.window(src, SETTINGS, since=START, until=END)
    # a report stored before the rebuild goes to that layout's index too
    [psid] = redis_client.zrange(copy.k("psets"), -1, -1)
    forge, project, key = psid.decode().split(":", 2)
    late = Record(REPORT, forge, project, key, END - 60, "late-1", system="Late CI", verdict="pass")
    assert copy.add([late], now=END) == 1
    assert not rows.rolled(copy)
    assert copy.last_report("Late CI") == END - 60
    with_late = stats.window(copy, SETTINGS, since=START, until=END)
    assert rows.rebuild(copy) == redis_client.zcard(copy.k("psets"))
    assert rows.rolled(copy)
    assert not list(redis_client.scan_iter(match=copy.prefix + "sys:*"))
    assert stats.window(copy, SETTINGS, since=START, until=END) == with_late
    for since, until in windows(3, 3):
        fast = stats.window(copy, SETTINGS, since=since, until=until)
        assert fast == stats.window_of_records(copy, SETTINGS, since=since, until=until)
        assert [f for f in fast if f["name"] != "Late CI"] == stats.window(
            src, SETTINGS, since=since, until=until
        )


def test_after_a_prune_the_rows_still_agree(
    store: RadarStore, payloads_dir: Path, redis_client: redis.Redis
) -> None:
    """A retention that cuts the month at day 12 (``prune`` with a ``now``):
    the days before it lose their rows, the cut's day keeps its rows but
    not in any window."""
    gen = gerrit(payloads_dir)
    feed = RadarFeed(store, SETTINGS)
    rng = random.Random(5)
    events = []
    for i in range(60):
        t = START + i * 6 * H + rng.randint(0, 3 * H)
        events += [gen.patchset(800 + i, t), gen.vote(GATE, 800 + i, t + 1800, rng.choice([1, -1]))]
        events.append(gen.vote("Vendor X CI", 800 + i, t + rng.randint(60, 9 * H), 1))
    feed.import_gerrit([json.dumps(e).encode() for e in events])
    cut = START + 7 * DAY + 5 * H
    store.retention = 30 * DAY
    assert store.prune(now=cut + 30 * DAY) > 0
    assert redis_client.get(store.k("prow", str(int(START // DAY)))) is None
    assert redis_client.get(store.k("prow", str(int(cut // DAY)))) is not None
    for since, until in ((0, 2e9), (START, cut + 1), (cut - 0.5, cut + 2 * DAY), (cut, END)):
        assert_same(store, since, until, None)
        fast = stats.daily(store, SETTINGS, since=max(since, 1), until=min(until, END))
        slow = records_path(
            store, stats.daily, store, SETTINGS, since=max(since, 1), until=min(until, END)
        )
        assert fast == slow


def test_an_expired_patch_set_leaves_every_window(
    store: RadarStore, redis_client: redis.Redis
) -> None:
    """A patch set whose keys expired (its newest record older than the
    retention) is in no window, through the rows as through the records,
    even before a prune trims the indexes."""
    now = time.time()
    store.retention = 365 * DAY
    store.expiry_step = 1.0  # not rounded up to the hour: it expires in 2 s
    old = now - 365 * DAY + 2  # its keys expire 2 s from now

    def records(key: str, at: float, verdict: str) -> list[Record]:
        base = {"forge": "gerrit", "project": "p", "key": key}
        return [
            Record(APPEARED, at=at, id=f"a{key}", **base),
            Record(
                REPORT, at=at + 0.5, id=f"r{key}", system="Vendor X CI", verdict=verdict, **base
            ),
        ]

    assert store.add(records("900,1", old, "pass") + records("901,1", now - 60, "fail"), now) == 4
    [fig] = stats.window(store, SETTINGS, since=0, until=now)
    assert fig["patch_sets"] == 2
    deadline = time.monotonic() + 10
    while redis_client.exists(store.k("ps", "gerrit:p:900,1")):
        assert time.monotonic() < deadline, "the patch set's key did not expire"
        time.sleep(0.05)
    assert_same(store, 0, now + 10, None)
    [fig] = stats.window(store, SETTINGS, since=0, until=now)
    assert fig["patch_sets"] == 1 and fig["verdicts"]["fail"] == 1


def test_parts_combined_give_the_figures_of_all_their_rows() -> None:
    """``parts.combine`` of a core and an edge (any split of the rows, many
    equal times) gives what one pass over all of them gives: the counts,
    the nearest-rank percentiles and the streaks computed here in plain
    Python (sorted by time, then the verdict's name, skipped ones left
    out), on 3,000 random sets."""
    import numpy as np

    rng = np.random.default_rng(0)
    for i in range(3_000):
        # now and then long ones, mostly of one verdict (the newest run past 64)
        n = int(rng.integers(0, 40 if i % 10 else 600))
        span = int(rng.integers(1, 20 if i % 10 else 2000))
        ps = {
            "rechecks": rng.integers(0, 3, n).astype(np.uint16),
            "flags": rng.choice([1, 3], n).astype(np.uint8),
            "appeared": rng.integers(0, span, n).astype(float),
        }
        row = {
            "reports": rng.integers(0, 3, n).astype(np.uint16),
            "judged": rng.integers(0, 2, n).astype(np.uint8),
            "first": rng.integers(0, span, n).astype(float),
            "last": rng.integers(0, span, n).astype(float),
            "verdict": rng.choice([0, 1, 2, 3, 4], n, p=rng.dirichlet([0.3] * 5)).astype(np.uint8),
        }
        mine = rng.random(n) < 0.8
        core = mine & (rng.random(n) < rng.random())
        got = parts.combine(
            parts.part_of(core, ps, row, None) if core.any() or rng.random() < 0.5 else None,
            parts.part_of(mine & ~core, ps, row, None),
        )
        at = [i for i in range(n) if mine[i] and row["reports"][i] > 0]
        names = {1: "pass", 2: "fail", 3: "error"}
        seq = sorted(
            (row["last"][i], names[int(row["verdict"][i])])
            for i in at
            if int(row["verdict"][i]) in names
        )
        verdicts = [v for _, v in seq]
        responses = sorted(
            max(0.0, row["first"][i] - ps["appeared"][i])
            for i in at
            if row["judged"][i] == 1 and ps["flags"][i] & 2
        )

        def rank(p: float, values: list[float] = responses) -> float | None:
            return values[max(1, math.ceil(p / 100 * len(values))) - 1] if values else None

        runs, run = [], 0
        for v in verdicts:
            run = 0 if v == "pass" else run + 1
            runs.append(run)
        same = 0
        for v in reversed(verdicts):
            if v != verdicts[-1]:
                break
            same += 1
        assert got["patch_sets"] == int(mine.sum()) and got["reported"] == len(at)
        assert got["reports"] == sum(int(row["reports"][i]) for i in at)
        assert got["responses"] == len(responses)
        assert got["response_p50_s"] == rank(50) and got["response_p90_s"] == rank(90)
        assert got["streak"] == ({"verdict": verdicts[-1], "length": same} if verdicts else None), (
            seq
        )
        assert got["fail_run"] == (runs[-1] if runs else 0), seq
        assert got["longest_fail_streak"] == max(runs, default=0), seq


def test_the_parts_of_many_systems_at_once_are_those_of_each() -> None:
    """``parts.parts_of`` (every system in one array per figure, a few at a
    time past its size) gives each system's ``parts.part_of``, the gate
    compared with every system but itself."""
    import numpy as np

    rng = np.random.default_rng(1)
    for trial in range(200):
        n = int(rng.integers(0, 60))
        ps = {
            "time": rng.random(n),
            "rechecks": rng.integers(0, 3, n).astype(np.uint16),
            "flags": rng.choice([1, 3], n).astype(np.uint8),
            "appeared": rng.integers(0, 9, n).astype(float),
        }
        names = [f"s{i}" for i in range(int(rng.integers(1, 6)))]
        table = {
            name: {
                "reports": rng.integers(0, 3, n).astype(np.uint16),
                "judged": rng.integers(0, 2, n).astype(np.uint8),
                "first": rng.integers(0, 9, n).astype(float),
                "last": rng.integers(0, 9, n).astype(float),
                "verdict": rng.choice([0, 1, 2, 3, 4], n).astype(np.uint8),
            }
            for name in names
        }
        mine = {name: rng.random(n) < 0.7 for name in names}
        gate = names[0] if trial % 3 else None
        if trial % 2:
            parts._MOST = 2 * max(n, 1)  # two systems an array
        try:
            many = parts.parts_of(mine, ps, table, gate)
        finally:
            parts._MOST = 2_000_000
        for name in names:
            gate_rows = table[gate] if gate and gate != name else None
            one = parts.part_of(mine[name], ps, table[name], gate_rows)
            assert parts.combine(None, many[name]) == parts.combine(None, one), (trial, name)
            assert many[name].t.tolist() == one.t.tolist()
            assert many[name].responses.tolist() == one.responses.tolist()
            assert many[name].tally.tolist() == one.tally.tolist()


def test_a_window_s_kept_core_follows_every_write_into_it(
    store: RadarStore, redis_client: redis.Redis
) -> None:
    """A window's core days (whole, not the newest two) are computed once
    and kept: a late report, a gate vote, a recheck and a changed report on
    a core day's patch set, and a new patch set on the newest day, each
    shows in the next answer, which equals the records' own; a patch set
    whose keys are gone is left out once past its row's expiry."""
    import numpy as np

    store.retention = 30 * DAY
    base = {"forge": "gerrit", "project": "p"}
    t0 = math.floor(time.time() / DAY) * DAY - 16 * DAY  # within the retention
    records: list[Record] = []
    for i in range(40):
        at = t0 + i * 8 * H
        key = f"{700 + i},1"
        records += [
            Record(APPEARED, at=at, id=f"a{i}", key=key, **base),
            Record(
                REPORT,
                at=at + 600,
                id=f"g{i}",
                key=key,
                system=GATE,
                gate=True,
                verdict="pass" if i % 3 else "fail",
                **base,
            ),
            Record(
                REPORT,
                at=at + 900 + i,
                id=f"x{i}",
                key=key,
                system="Vendor X CI",
                verdict="fail" if i % 4 == 0 else "pass",
                **base,
            ),
        ]
    assert store.add(records, now=t0 + 14 * DAY) == len(records)
    since, until = t0 + 3 * H, t0 + 14 * DAY
    assert_same(store, since, until, None)
    assert any(k[2].startswith("c\x1f") for k in rows.CACHE.items), "no core kept"
    core_key = "710,1"  # day 3: a core day of the window
    writes = [
        Record(
            REPORT,
            at=t0 + 12 * DAY,
            id="late",
            key=core_key,
            system="Vendor Y CI",
            verdict="error",
            **base,
        ),
        Record(
            REPORT,
            at=t0 + 12 * DAY + 1,
            id="gate-again",
            key=core_key,
            system=GATE,
            gate=True,
            verdict="fail",
            **base,
        ),
        Record(RECHECK, at=t0 + 12 * DAY + 2, id="rc", key=core_key, **base),
        Record(
            REPORT,
            at=t0 + 12 * DAY + 3,
            id="x10",
            key=core_key,
            system="Vendor X CI",
            verdict="fail",
            **base,
        ),
        Record(APPEARED, at=until - 60, id="a-new", key="799,1", **base),
        Record(
            REPORT,
            at=until - 30,
            id="x-new",
            key="799,1",
            system="Vendor X CI",
            verdict="fail",
            **base,
        ),
    ]
    for record in writes:
        before = stats.window(store, SETTINGS, since=since, until=until)
        store.add([record], now=until)
        after = stats.window(store, SETTINGS, since=since, until=until)
        assert after != before, record
        assert_same(store, since, until, None)
    # a core patch set's keys gone (expired): counted until its row's expiry, not after
    gone = "gerrit:p:712,1"
    day, slot = redis_client.hmget(store.k("ps", gone), "day", "slot")
    prow = redis_client.get(store.k("prow", day.decode()))
    expires = float(np.frombuffer(prow, dtype=rows.PROW)[int(slot)]["expires"])
    systems = store.systems()
    kept = rows.figures(store, systems, GATE, since=since, until=until, now=expires - 60)
    redis_client.delete(store.k("ps", gone), store.k("psr", gone))
    again = rows.figures(store, systems, GATE, since=since, until=until, now=expires - 30)
    assert again == kept  # its row says it is alive until then: not asked
    later = rows.figures(store, systems, GATE, since=since, until=until, now=expires + 1)
    x = {f["name"]: f for f in later}["Vendor X CI"]
    assert x["patch_sets"] == {f["name"]: f for f in kept}["Vendor X CI"]["patch_sets"] - 1


def test_kept_cores_moved_by_different_days_in_one_answer_follow_them(
    store: RadarStore,
) -> None:
    """Two systems' kept cores moved by late reports on different core days
    (one day for the one, two for the other) are each taken out and in
    again by their own days in the same answer, which equals the records'."""
    store.retention = 30 * DAY
    base = {"forge": "gerrit", "project": "p"}
    t0 = math.floor(time.time() / DAY) * DAY - 16 * DAY
    records: list[Record] = []
    for i in range(40):
        at = t0 + i * 8 * H
        key = f"{900 + i},1"
        records.append(Record(APPEARED, at=at, id=f"a{i}", key=key, **base))
        for j, system in enumerate((GATE, "Vendor X CI", "Vendor Y CI")):
            records.append(
                Record(
                    REPORT,
                    at=at + 600 + j,
                    id=f"{j}-{i}",
                    key=key,
                    system=system,
                    gate=system == GATE,
                    verdict="fail" if (i + j) % 4 == 0 else "pass",
                    **base,
                )
            )
    store.add(records, now=t0 + 14 * DAY)
    since, until = t0 + 3 * H, t0 + 14 * DAY
    assert_same(store, since, until, None)
    late = [
        ("Vendor X CI", "910,1"),  # day 3
        ("Vendor Y CI", "910,1"),  # day 3
        ("Vendor Y CI", "916,1"),  # day 5
    ]
    store.add(
        [
            Record(
                REPORT,
                at=t0 + 13 * DAY + k,
                id=f"late{k}",
                key=key,
                system=system,
                verdict="error",
                **base,
            )
            for k, (system, key) in enumerate(late)
        ],
        now=until,
    )
    assert_same(store, since, until, None)


def _passed(first: int, n: int, start: float, after: float, uploaded: Any) -> list[Record]:
    """Patch sets ``first``, ``first + 1``, ... of project ``p``, an hour
    apart from ``start``, each passed by Vendor X CI ``after`` seconds on;
    the upload stored of those ``uploaded(i)``."""
    base = {"forge": "gerrit", "project": "p"}
    records = []
    for i in range(n):
        key, at = f"{first + i},1", start + i * H
        if uploaded(i):
            records.append(Record(APPEARED, at=at, id=f"a{i}", key=key, **base))
        who = {"system": "Vendor X CI", "verdict": "pass"}
        records.append(Record(REPORT, at=at + after, id=f"x{i}", key=key, **who, **base))
    return records


def test_an_appearance_stored_after_the_reports_shows_in_a_newest_day_kept(
    store: RadarStore,
) -> None:
    """A patch set's appearance stored after its reports (out of order) on
    one of the newest days gives the reports their response times in the
    next answer, though the systems' own rows did not move."""
    store.retention = 30 * DAY
    base = {"forge": "gerrit", "project": "p"}
    now = math.floor(time.time() / DAY) * DAY + 20 * H
    store.add(_passed(950, 6, now - 20 * H, 1800, lambda i: i % 2 == 1), now=now)
    since, until = now - 10 * DAY, now
    [before] = stats.window(store, SETTINGS, since=since, until=until)
    assert before["responses"] == 3
    store.add([Record(APPEARED, at=now - 20 * H - 60, id="a0", key="950,1", **base)], now=now)
    [after] = stats.window(store, SETTINGS, since=since, until=until)
    assert after["responses"] == 4
    assert_same(store, since, until, None)
    # one within its own day: its slot stays
    store.add([Record(APPEARED, at=now - 18 * H, id="a2", key="952,1", **base)], now=now)
    [after] = stats.window(store, SETTINGS, since=since, until=until)
    assert after["responses"] == 5
    assert_same(store, since, until, None)


def test_an_edge_day_s_verdict_that_moves_in_place_is_read_again(store: RadarStore) -> None:
    """A reader keeps each system's edges' verdicts in order from one
    answer to the next while the runs they were made of are the same
    (``parts._merged``'s memo): a later vote that turns one of a newest
    day's verdicts (the same patch sets voted on, in the same order)
    shows in the next answer's streaks."""
    store.retention = 30 * DAY
    base = {"forge": "gerrit", "project": "p"}
    now = math.floor(time.time() / DAY) * DAY + 20 * H
    store.add(_passed(960, 8, now - 19 * H, 900, lambda i: True), now=now)
    since, until = now - 10 * DAY, now
    [before] = stats.window(store, SETTINGS, since=since, until=until)
    assert before["streak"] == {"verdict": "pass", "length": 8}
    late = Record(
        REPORT, at=now - 60, id="x7b", key="967,1", system="Vendor X CI", verdict="fail", **base
    )
    store.add([late], now=now)
    [after] = stats.window(store, SETTINGS, since=since, until=until)
    assert after["streak"] == {"verdict": "fail", "length": 1}
    assert_same(store, since, until, None)


def test_a_window_of_another_length_keeps_its_own_cores(store: RadarStore) -> None:
    """A 7-day and a 30-day window asked in turn (two users' dashboards)
    each keep their cores: the 30-day one's are the same objects after a
    7-day answer, not made again, and both answer as the records do."""
    store.retention = 60 * DAY
    base = {"forge": "gerrit", "project": "p"}
    now = math.floor(time.time() / DAY) * DAY + 12 * H
    records = []
    for i in range(120):
        at = now - 40 * DAY + i * 8 * H
        key = f"{1200 + i},1"
        records.append(Record(APPEARED, at=at, id=f"a{i}", key=key, **base))
        records.append(
            Record(
                REPORT,
                at=at + 900,
                id=f"x{i}",
                key=key,
                system="Vendor X CI",
                verdict="fail" if i % 5 == 0 else "pass",
                **base,
            )
        )
    store.add(records, now=now)

    def cores() -> dict[str, Any]:
        return {k[2]: v[1][0] for k, v in rows.CACHE.items.items() if k[2].startswith("c\x1f")}

    assert_same(store, now - 30 * DAY, now, None)
    month = cores()
    assert month
    assert_same(store, now - 7 * DAY, now, None)
    assert_same(store, now - 30 * DAY, now, None)
    again = cores()
    assert all(again[k] is core for k, core in month.items())
    assert len(again) > len(month)  # the week's too


def test_a_reader_s_cache_follows_every_write(
    store: RadarStore, payloads_dir: Path, redis_client: redis.Redis
) -> None:
    """A reader keeps what it read (``rows.CACHE``) and reads again only what
    a later write stamped: a vote stored through another store object (as
    another process would) shows at once; a store emptied and filled again
    under the same prefix (a flushed Redis) is not answered from the old."""
    gen = gerrit(payloads_dir)
    t0 = START + 6 * H
    other = RadarFeed(RadarStore(redis_client, store.prefix[: -len("radar:")], FOREVER), SETTINGS)
    feed = RadarFeed(store, SETTINGS)
    feed.import_gerrit(
        [json.dumps(e).encode() for e in (gen.patchset(600, t0), gen.vote(GATE, 600, t0 + 60, 1))]
    )
    before = stats.window(store, SETTINGS, since=START, until=END)
    other.import_gerrit([json.dumps(gen.vote("Vendor X CI", 600, t0 + 120, -1)).encode()])
    after = stats.window(store, SETTINGS, since=START, until=END)
    assert after != before and {f["name"] for f in after} == {GATE, "Vendor X CI"}
    assert_same(store, START, END, None)
    for key in redis_client.scan_iter(match=store.prefix + "*"):
        redis_client.delete(key)
    feed.import_gerrit(
        [json.dumps(e).encode() for e in (gen.patchset(601, t0), gen.vote(GATE, 601, t0 + 90, -1))]
    )
    [gate] = stats.window(store, SETTINGS, since=START, until=END)
    assert gate["verdicts"]["fail"] == 1 and gate["verdicts"]["pass"] == 0
    assert_same(store, START, END, None)


def test_a_reader_behind_by_many_writes_or_a_lost_log_follows_them(
    store: RadarStore, payloads_dir: Path, redis_client: redis.Redis, monkeypatch: Any
) -> None:
    """A reader's mirror of the rows' versions (``engine/radar/versions.py``)
    takes the writes since it last looked from the log: one write, more
    than the log's tail it reads with the stamp (a second read), and reads
    every version again only when it is further behind than the log holds
    or the log lost entries it needs. Each time its figures are the
    records' own."""
    from engine.radar import versions

    gen = gerrit(payloads_dir)
    t0 = START + 6 * H
    other = RadarFeed(RadarStore(redis_client, store.prefix[: -len("radar:")], FOREVER), SETTINGS)
    feed = RadarFeed(store, SETTINGS)
    feed.import_gerrit([json.dumps(gen.patchset(700 + i, t0 + i * H)).encode() for i in range(6)])
    assert_same(store, START, END, None)
    mirror = versions.mirror(store)
    full = mirror.full_reads
    counter = iter(range(10**6))

    def votes(n: int) -> None:  # one write (one stamp) each, as another process
        for _ in range(n):
            i = next(counter)
            vote = gen.vote(GATE if i % 2 else "Vendor X CI", 700 + i % 6, t0 + 4 * H + i, 1)
            other.import_gerrit([json.dumps(vote).encode()])

    votes(1)
    assert_same(store, START, END, None)
    assert mirror.full_reads == full
    votes(versions.TAIL + 5)  # past the tail read with the stamp
    assert_same(store, START, END, None)
    assert mirror.full_reads == full
    votes(2)
    redis_client.delete(store.k("vlog"))  # entries it needs are gone
    votes(1)
    assert_same(store, START, END, None)
    assert mirror.full_reads == full + 1
    monkeypatch.setattr(versions, "LOG", versions.TAIL + 2)  # further behind than the log
    votes(versions.TAIL + 3)
    assert_same(store, START, END, None)
    assert mirror.full_reads == full + 2
    assert redis_client.llen(store.k("vlog")) > 0


def test_a_system_forgotten_by_prune_is_known_again_by_its_next_report(
    store: RadarStore, redis_client: redis.Redis
) -> None:
    """A writer does not write a (system, project) pair it wrote before;
    a prune that forgets the system voids that memo in every writer (this
    one and another), so the system's next report names its project again."""
    other = RadarStore(redis_client, store.prefix[: -len("radar:")], FOREVER)

    def report(n: int, at: float) -> Record:
        return Record(
            REPORT,
            "gerrit",
            "nemo/apps",
            f"{n},1",
            at,
            f"r{n}",
            change=str(n),
            patchset="1",
            system="Old CI",
            verdict="pass",
            detail="Verified+1",
        )

    for writer in (store, other):
        # the first call learns the store's generation, the second fills the memo
        writer.add([report(1, START)], now=START + H)
        writer.add([report(2, START + H)], now=START + H)
        assert writer._pairs == {("Old CI", "nemo/apps")}
        assert store.projects("Old CI") == {"nemo/apps"}
    store.retention = 10 * DAY
    for n, writer in ((3, other), (4, store)):
        # the system's reports are all older than the retention: forgotten
        store.prune(now=START + (n - 2) * 20 * DAY)
        assert "Old CI" not in store.systems() and store.projects("Old CI") == set()
        at = START + (n - 2) * 20 * DAY - DAY
        writer.add([report(n, at)], now=at)
        assert store.projects("Old CI") == {"nemo/apps"}, n
        assert "Old CI" in store.systems()


def test_a_core_takes_days_out_and_in_again_as_if_made_anew() -> None:
    """``parts.Core.replaced``: a core of random days without some of them
    (moved or left) and with their new rows and new days gives what a core
    made from the final days' rows at once gives."""
    import numpy as np

    rng = np.random.default_rng(2)

    def day_rows(n: int, day: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        base = day * 100.0
        ps = {
            "time": base + rng.random(n) * 100,
            "rechecks": rng.integers(0, 2, n).astype(np.uint16),
            "flags": rng.choice([1, 3], n).astype(np.uint8),
            "appeared": base + rng.integers(0, 50, n).astype(float),
            "project": np.zeros(n, dtype=np.uint32),
        }

        def system() -> dict[str, Any]:
            return {
                "reports": rng.integers(0, 3, n).astype(np.uint16),
                "judged": rng.integers(0, 2, n).astype(np.uint8),
                "first": base + rng.integers(0, 300, n).astype(float),
                "last": base + rng.integers(0, 300, n).astype(float),  # late: into later days
                "verdict": rng.choice([0, 1, 2, 3, 4], n).astype(np.uint8),
            }

        return ps, system(), system()

    def core_of(layout: dict[int, Any]) -> Any:
        days = sorted(layout)
        ps = {f: np.concatenate([layout[d][0][f] for d in days]) for f in layout[days[0]][0]}
        rows = {
            who: {f: np.concatenate([layout[d][i][f] for d in days]) for f in layout[days[0]][i]}
            for i, who in ((1, "X"), (2, "G"))
        }
        day_of = np.repeat(days, [len(layout[d][0]["time"]) for d in days])
        mine = {"X": np.ones(len(day_of), dtype=bool)}
        return parts.cores_of(mine, ps, rows, "G", day_of.astype(np.int64))["X"]

    for _ in range(300):
        layout = {d: day_rows(int(rng.integers(0, 12)), d) for d in range(int(rng.integers(2, 9)))}
        layout = {d: r for d, r in layout.items() if len(r[0]["time"])} or {0: day_rows(3, 0)}
        core = core_of(layout)
        days = sorted(layout)
        moved = [d for d in days if rng.random() < 0.3]
        left = [d for d in days if d not in moved and rng.random() < 0.2]
        joined = [max(days) + 1 + i for i in range(int(rng.integers(0, 3)))]
        final = {d: r for d, r in layout.items() if d not in left}
        for d in moved + joined:
            if d in layout and rng.random() < 0.5:  # a recheck: the same rows, other counts
                ps, x, g = layout[d]
                n = len(ps["time"])
                final[d] = ({**ps, "rechecks": rng.integers(0, 3, n).astype(np.uint16)}, x, g)
            else:
                final[d] = day_rows(int(rng.integers(1, 12)), d)
        if not final:
            continue
        redo = {d: final[d] for d in moved + joined}
        new = core_of(redo) if redo else parts.Core.empty()
        got = core.replaced(np.asarray(moved + left, np.int64), new)
        want = core_of(final)
        assert got.days.tolist() == want.days.tolist()
        assert got.counts.tolist() == want.counts.tolist()
        assert got.part.responses.tolist() == want.part.responses.tolist()
        assert got.part.v.tolist() == want.part.v.tolist()
        assert got.part.t.tolist() == want.part.t.tolist()
        assert parts.combine(got.part, want.part) == parts.combine(want.part, want.part)


def test_a_sliding_window_s_core_follows_it(store: RadarStore) -> None:
    """The same reader asked for windows a day later each time (its core
    loses its first day and gains one) answers as the records do."""
    store.retention = 60 * DAY
    base = {"forge": "gerrit", "project": "p"}
    t0 = math.floor(time.time() / DAY) * DAY - 40 * DAY
    records: list[Record] = []
    rng = random.Random(4)
    for i in range(120):
        at = t0 + i * 7 * H
        key = f"{500 + i},1"
        records.append(Record(APPEARED, at=at, id=f"a{i}", key=key, **base))
        for system in (GATE, "Vendor X CI", "Vendor Y CI"):
            if rng.random() < 0.9:
                records.append(
                    Record(
                        REPORT,
                        at=at + rng.randint(60, 30 * H),
                        id=f"{system}{i}",
                        key=key,
                        system=system,
                        gate=system == GATE,
                        verdict=rng.choice(["pass", "pass", "fail", "error"]),
                        **base,
                    )
                )
    store.add(records, now=t0 + 36 * DAY)
    for shift in range(0, 12, 1):
        since = t0 + 2 * DAY + shift * DAY + 3 * H
        assert_same(store, since, since + 12 * DAY, None)
        # and a day later, with the gate's vote changed on a core day's patch set
        i = 3 * shift + 20
        store.add(
            [
                Record(
                    REPORT,
                    at=t0 + 36 * DAY + shift,
                    id=f"again{shift}",
                    key=f"{500 + i},1",
                    system=GATE,
                    gate=True,
                    verdict="fail" if shift % 2 else "pass",
                    **base,
                )
            ],
            now=t0 + 36 * DAY,
        )


def test_a_system_s_kept_report_days_follow_a_late_report_after_the_window_moved(
    store: RadarStore,
) -> None:
    """A reader keeps each whole day's first and last report and longest gap
    per system; a report stored later into one of those days (an import of
    history) shows in the next window, one that moved a day as well, as in
    one that did not: each day's figures as the report times give them."""
    store.retention = 60 * DAY
    base = {"forge": "gerrit", "project": "p"}
    t0 = math.floor(time.time() / DAY) * DAY - 30 * DAY
    times: list[float] = []

    def report(i: int, at: float) -> Record:
        times.append(at)
        return Record(
            REPORT,
            at=at,
            id=f"z{i}",
            key=f"{700 + i % 5},1",
            system="Vendor Z CI",
            verdict="pass",
            **base,
        )

    store.add(
        [Record(APPEARED, at=t0, id=f"a{i}", key=f"{700 + i},1", **base) for i in range(5)]
        + [report(i, t0 + i * DAY + (i % 3) * H) for i in range(20)]
        + [report(100 + i, t0 + i * DAY + 9 * H) for i in range(0, 20, 2)],
        now=t0 + 21 * DAY,
    )

    def check(floor: float, until: float, late: list[float]) -> None:
        ctx = rows._context(store, ["Vendor Z CI"], floor)
        got = rows._report_days(store, ["Vendor Z CI"], ctx["rt"], ctx["newest"], floor, until)
        days = got["Vendor Z CI"]
        assert len(days.days) and all(math.floor(t / DAY) in days.days for t in late)
        for d, row in zip(days.days, days.summary, strict=True):
            mine = np.sort([t for t in times if math.floor(t / DAY) == d and floor <= t <= until])
            np.testing.assert_array_equal(row, rows._gaps(mine))

    floor = t0 + 2 * DAY + 3 * H
    check(floor, floor + 10 * DAY, [])
    store.add([report(200, t0 + 6 * DAY + 20 * H)], now=t0 + 21 * DAY)
    check(floor, floor + 10 * DAY, times[-1:])  # the same window
    store.add([report(201, t0 + 8 * DAY + 23 * H)], now=t0 + 21 * DAY)
    check(floor + DAY, floor + 11 * DAY, times[-1:])  # a day later


def test_the_longest_run_but_some_is_that_of_the_others() -> None:
    """``Part.longest_but`` (block maxima, the touched blocks run by run)
    against the maximum over the runs left, on random verdicts of up to
    5,000 runs."""
    import numpy as np

    rng = np.random.default_rng(3)
    for _ in range(300):
        n = int(rng.integers(1, 20_000))
        v = rng.choice([1, 2, 3], n, p=rng.dirichlet([1, 1, 1])).astype(np.uint8)
        part = parts.cores_of(
            {"X": np.zeros(0, dtype=bool)},
            {f: np.zeros(0) for f in ("time", "appeared")}
            | {"rechecks": np.zeros(0, np.uint16), "flags": np.zeros(0, np.uint8)},
            {"X": {f: np.zeros(0, t) for f, t in _ROW_TYPES}},
            None,
        )["X"].part
        part.v = v
        runs = part.runs()[1]
        touched = np.unique(rng.integers(0, len(runs), int(rng.integers(1, 50))))
        left = np.delete(runs, touched)
        assert part.longest_but(touched) == (int(left.max()) if len(left) else 0)


_ROW_TYPES = (
    ("reports", np.uint16),
    ("judged", np.uint8),
    ("first", float),
    ("last", float),
    ("verdict", np.uint8),
)
