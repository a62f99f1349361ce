"""The radar's rows: the window figures without reading every report.

``RadarStore.add``'s script keeps, next to the records, what the figures
need of them, in fixed-width binary rows, one per patch set and one per
(system, patch set), laid out by the patch set's UTC day (the day of its
index time) and its *slot* in that day (the order the day's patch sets
were first seen):

=======================  ======  ==============================================
key                      type    what
=======================  ======  ==============================================
``prow:<day>``           string  a patch set per slot (``PROW``: its index
                                 time, when it appeared, when it expired when
                                 the row was written (a lower bound), its
                                 project's number, its rechecks, flags)
``rows:<system>:<day>``  string  the system on the patch set in that slot
                                 (``ROW``: its first and last report with a
                                 verdict, its reports, its verdict)
``rt:<system>:<day>``    string  its reports by report day (``RT``: the time,
                                 the patch set's day and slot); the days in
                                 ``rtdays:<system>`` (zset)
``pslist:<day>``         list    the day's patch sets by slot
``projids``, ``projn``   hash    a project's number
``psr:<psid>`` field     string  ``<system>\\x1e``: the system's summary
                                 (``<reports>;<at>,<code>...``), from which
                                 its row is computed again when a recheck or
                                 the patch set's appearance comes later
``rows``                 string  set when the rows hold every record (a store
                                 filled before them: :func:`rebuild`)
=======================  ======  ==============================================

A patch set whose index time moves to another day (it appeared before its
first record said) leaves a zero row in the old slot. The same script
writes the records and their rows, so they never disagree.

:func:`figures` computes over these rows, with numpy, exactly what
:func:`engine.radar.stats.system_figures` computes over the records (the
same float arithmetic on the same doubles; ``tests/radar/test_rows.py``
checks it over random windows). A 7-day window at 50 systems x 2,000 patch
sets a day reads about 20 MB of rows instead of 700,000 reports
(docs/benchmarks.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from engine.radar.model import ERROR, FAIL, PASS, SKIPPED

__all__ = ["PROW", "ROW", "count", "daily_figures", "figures", "rebuild", "rolled"]

DAY = 86400.0
PROW = np.dtype(
    [
        ("time", "<f8"),
        ("appeared", "<f8"),
        ("expires", "<f8"),
        ("project", "<u4"),
        ("rechecks", "<u2"),
        ("flags", "u1"),
        ("pad", "u1"),
    ]
)
ROW = np.dtype(
    [
        ("first", "<f8"),
        ("last", "<f8"),
        ("reports", "<u2"),
        ("verdict", "u1"),
        ("judged", "u1"),
        ("pad", "V4"),
    ]
)
#: a report in ``rt:<system>:<day>``: its time, its patch set's day and slot
RT = np.dtype([("at", "<f8"), ("day", "<u4"), ("slot", "<u4")])
LIVE, APPEARED = 1, 2
#: a verdict's code in the rows, and back
CODES = {PASS: 1, FAIL: 2, ERROR: 3, SKIPPED: 4}
NAMES = {c: v for v, c in CODES.items()}
#: ``sorted()`` of (time, verdict name) ties by name: the codes in that order
_ALPHA = np.zeros(5, dtype=np.int8)
for _i, _name in enumerate(sorted(CODES)):
    _ALPHA[CODES[_name]] = _i


#: the rows' Lua: a system's row from its summary and the patch set's rechecks
ROW_OF = """local DAY, PW, RW = 86400, 32, 24
local ZP, ZR = string.rep('\\0', PW), string.rep('\\0', RW)
local CODE = {pass='1', fail='2', error='3', skipped='4'}
local RANK = {1, 3, 2, 0}
-- a report's time (and its patch set's day and slot) in its system's rt:<day>
local function add_rt(system, at, day, slot)
  local d = math.floor(at / DAY)
  local key = P .. 'rt:' .. system .. ':' .. d
  local n = redis.call('APPEND', key, struct.pack('<dII', at, day, slot))
  if n == 16 then redis.call('ZADD', P .. 'rtdays:' .. system, d, d) end
end
-- a project's number (P: the key prefix, set before)
local pids = {}
local function pid_of(proj)
  local pid = pids[proj]
  if not pid then
    pid = redis.call('HGET', P .. 'projids', proj)
    if not pid then
      pid = redis.call('INCR', P .. 'projn')
      redis.call('HSET', P .. 'projids', proj, pid)
    end
    pid = tonumber(pid)
    pids[proj] = pid
  end
  return pid
end  -- a verdict code's rank: pass 1, fail 3, error 2, skipped 0
-- a system's row from its summary ('<reports>' then ';<at>,<code>' per report
-- with a verdict) and the patch set's rechecks ('<at> <at> ...')
local function row_of(s, rch)
  local n = tonumber(string.match(s, '^%d+'))
  local ts, cs, first, last = {}, {}, nil, nil
  for t, c in string.gmatch(s, ';([^,;]+),(%d)') do
    t = tonumber(t)
    ts[#ts + 1] = t
    cs[#cs + 1] = tonumber(c)
    if (not first) or t < first then first = t end
    if (not last) or t > last then last = t end
  end
  if n > 65535 then n = 65535 end
  if not first then return struct.pack('<ddHBBxxxx', 0, 0, n, 0, 0) end
  local start = -math.huge
  for r in string.gmatch(rch, '[^ ]+') do
    r = tonumber(r)
    if r <= last and r > start then start = r end
  end
  local v, best = 0, -1
  for i = 1, #ts do
    if ts[i] >= start and RANK[cs[i]] > best then best = RANK[cs[i]]; v = cs[i] end
  end
  return struct.pack('<ddHBBxxxx', first, last, n, v, 1)
end
"""

_REBUILD = (
    "local P = ARGV[1]\n"
    + ROW_OF
    + """
for i = 2, #ARGV do
  local psid = ARGV[i]
  local pskey, psrkey = P .. 'ps:' .. psid, P .. 'psr:' .. psid
  local h = redis.call('HMGET', pskey, 'appeared', 'expires', 'project')
  local score = redis.call('ZSCORE', P .. 'psets', psid)
  if h[2] and score then
    local tidx = tonumber(score)
    local appeared = h[1] and tonumber(h[1])
    local day = math.floor(tidx / DAY)
    local slot = redis.call('RPUSH', P .. 'pslist:' .. day, psid) - 1
    local all = redis.call('HGETALL', psrkey)
    local sums, order, rch = {}, {}, {}
    for j = 1, #all, 2 do
      local f = all[j]
      if string.byte(f, 1) == 30 then
        rch[#rch + 1] = all[j + 1]
      elseif string.byte(f, -1) ~= 30 then
        local sys = string.match(f, '^(.-)\\31')
        local r = cjson.decode(all[j + 1])
        local s = sums[sys]
        if not s then s = {0, ''}; sums[sys] = s; order[#order + 1] = sys end
        s[1] = s[1] + 1
        local c = CODE[r.verdict]
        if c then s[2] = s[2] .. ';' .. string.format('%.17g', r.at) .. ',' .. c end
        add_rt(sys, r.at, day, slot)
      end
    end
    local rchs = table.concat(rch, ' ')
    redis.call('HSET', pskey, 'day', day, 'slot', slot, 'rch', rchs)
    local pid = pid_of(h[3] or '')
    redis.call('SETRANGE', P .. 'prow:' .. day, slot * PW,
      struct.pack('<dddIHBx', tidx, appeared or 0, tonumber(h[2]), pid, #rch, appeared and 3 or 1))
    for _, sys in ipairs(order) do
      local sm = sums[sys][1] .. sums[sys][2]
      redis.call('HSET', psrkey, sys .. '\\30', sm)
      redis.call('SETRANGE', P .. 'rows:' .. sys .. ':' .. day, slot * RW, row_of(sm, rchs))
    end
  end
end
return 1
"""
)
#: the rows' keys (``rows.rebuild`` and ``RadarStore.prune`` delete them)
ROW_KEYS = ("prow", "rows", "rt", "rtdays", "pslist")


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def rolled(store: Any) -> bool:
    """Whether ``store``'s rows hold every record (else: :func:`rebuild`)."""
    return bool(store.client.exists(store.k("rows")))


class Span:
    """The rows of the days ``[first, last]`` (every patch set's, and per
    system its rows) and per system its report times of the days ``rt``
    gives it, read in one pipelined round trip."""

    def __init__(
        self,
        store: Any,
        systems: Iterable[str],
        first: int,
        last: int,
        rt: Mapping[str, list[int]],
        pruned: float = -math.inf,
    ) -> None:
        self.days = list(range(first, last + 1))
        names = list(systems)
        pipe = store.client.pipeline(transaction=False)
        for d in self.days:
            pipe.get(store.k("prow", str(d)))
        for name in names:
            for d in self.days:
                pipe.get(store.k("rows", name, str(d)))
            for d in rt.get(name, []):
                pipe.get(store.k("rt", name, str(d)))
        answers = pipe.execute()
        nd = len(self.days)
        prows = [a or b"" for a in answers[:nd]]
        self.sizes = [len(p) // PROW.itemsize for p in prows]
        self.ps = np.frombuffer(b"".join(prows), dtype=PROW)
        self.rows: dict[str, np.ndarray] = {}
        self.times: dict[str, np.ndarray] = {}
        at = nd
        for name in names:
            parts = []
            for size, blob in zip(self.sizes, answers[at : at + nd], strict=True):
                blob = blob or b""
                parts.append(blob + b"\0" * (size * ROW.itemsize - len(blob)))
            self.rows[name] = np.frombuffer(b"".join(parts), dtype=ROW)
            at += nd
            n = len(rt.get(name, []))
            blobs = b"".join(a or b"" for a in answers[at : at + n])
            times = np.frombuffer(blobs, dtype=RT)["at"]
            self.times[name] = np.sort(times[times >= pruned])
            at += n


def _bounds(store: Any, since: float, until: float) -> tuple[int, int] | None:
    """The first and last day with a patch set in ``[since, until]``."""
    index = store.k("psets")
    pipe = store.client.pipeline(transaction=False)
    pipe.zrangebyscore(index, since, until, start=0, num=1, withscores=True)
    pipe.zrevrangebyscore(index, until, since, start=0, num=1, withscores=True)
    lo, hi = pipe.execute()
    if not lo:
        return None
    return math.floor(lo[0][1] / DAY), math.floor(hi[0][1] / DAY)


def _context(store: Any, names: list[str], since: float, until: float) -> dict[str, Any]:
    """Per system its projects, the days it reported on in ``[since,
    until]`` and its newest; the project numbers; the prune watermark: one
    pipelined round trip."""
    pipe = store.client.pipeline(transaction=False)
    pipe.hgetall(store.k("projids"))
    pipe.get(store.k("pruned"))
    lo, hi = str(math.floor(since / DAY)), str(math.floor(until / DAY))
    for name in names:
        key = store.k("rtdays", name)
        pipe.smembers(store.k("sysproj", name))
        pipe.zrangebyscore(key, lo, hi)
        pipe.zrevrange(key, 0, 0)
    answers = pipe.execute()
    out: dict[str, Any] = {
        "pids": {_s(k): int(v) for k, v in answers[0].items()},
        "pruned": float(answers[1]) if answers[1] is not None else -math.inf,
        "projects": {},
        "rt": {},
        "newest": {},
    }
    for i, name in enumerate(names):
        projects, days, newest = answers[1 + 3 * i + 1 : 1 + 3 * i + 4]
        out["projects"][name] = {_s(p) for p in projects}
        out["rt"][name] = [int(d) for d in days]
        if newest:
            out["newest"][name] = int(newest[0])
            if int(newest[0]) not in out["rt"][name]:
                out["rt"][name].append(int(newest[0]))
    return out


def _alive(
    store: Any, span: Span, floor: float, now: float | None, among: np.ndarray | None = None
) -> np.ndarray:
    """The slots holding a patch set indexed at or after ``floor`` whose
    keys have not expired by ``now`` (of those in ``among``, when given).
    A row's expiry is that of its patch set when the row was last written,
    a lower bound: a patch set past it (older than the retention, not
    pruned yet) is asked for its key."""
    ps = span.ps
    now_ms = math.floor((time.time() if now is None else now) * 1000)
    alive = ((ps["flags"] & LIVE) != 0) & (ps["time"] >= floor)
    if among is not None:
        alive &= among
    doubt = np.flatnonzero(alive & (np.floor(ps["expires"] * 1000) < now_ms))
    if len(doubt):
        offsets = np.cumsum(span.sizes)
        day_of = np.searchsorted(offsets, doubt, side="right")
        starts = offsets - np.asarray(span.sizes)
        pipe = store.client.pipeline(transaction=False)
        for i, d in zip(doubt, day_of, strict=True):
            pipe.lindex(store.k("pslist", str(span.days[d])), int(i - starts[d]))
        psids = pipe.execute()
        pipe = store.client.pipeline(transaction=False)
        for psid in psids:
            pipe.exists(store.k("ps", _s(psid or b"")))
        gone = [i for i, there in zip(doubt, pipe.execute(), strict=True) if not there]
        alive[np.asarray(gone, dtype=np.int64)] = False
    return alive


def _percentile(values: np.ndarray, p: float) -> float | None:
    if not len(values):
        return None
    rank = max(1, math.ceil(p / 100 * len(values)))
    return float(np.partition(values, rank - 1)[rank - 1])


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _streaks(last: np.ndarray, verdict: np.ndarray) -> tuple[dict[str, Any] | None, int, int]:
    """``streak``, ``fail_run``, ``longest_fail_streak`` of verdicts ordered
    as ``stats.system_figures`` orders them (time, then the verdict's name),
    skipped ones left out."""
    order = np.lexsort((_ALPHA[verdict], last))
    v = verdict[order]
    v = v[v != CODES[SKIPPED]]
    if not len(v):
        return None, 0, 0
    change = np.flatnonzero(v[1:] != v[:-1])
    length = len(v) - (int(change[-1]) + 1 if len(change) else 0)
    streak = {"verdict": NAMES[int(v[-1])], "length": length}
    failed = (v == CODES[FAIL]) | (v == CODES[ERROR])
    # runs of failed: positions of the verdicts that did not fail cut them
    cuts = np.concatenate(([-1], np.flatnonzero(~failed), [len(v)]))
    runs = np.diff(cuts) - 1
    longest = int(runs.max()) if len(runs) else 0
    return streak, int(runs[-1]), longest


def _system(
    name: str,
    mine: np.ndarray,
    ps: np.ndarray,
    rows: np.ndarray,
    gate_rows: np.ndarray | None,
    *,
    since: float,
    until: float,
    times: np.ndarray,
    last_report: float | None,
    meta: Mapping[str, Any],
    gate: str | None,
) -> dict[str, Any]:
    """``stats.system_figures`` over the rows (``mine``: the window's patch
    sets in the system's scope)."""
    r = rows[mine]
    p = ps[mine]
    own = r["reports"] > 0
    ro, po = r[own], p[own]
    reported = int(own.sum())
    reports = int(ro["reports"].sum(dtype=np.int64))
    rch = po["rechecks"]
    rechecked = int((rch > 0).sum())
    rechecks = int(rch.sum(dtype=np.int64))
    judged = ro["judged"] == 1
    answered = judged & ((po["flags"] & APPEARED) != 0)
    responses = np.maximum(0.0, ro["first"][answered] - po["appeared"][answered])
    v = ro["verdict"]
    counts = {n: int((v == c).sum()) for n, c in CODES.items()}
    gate_passed = gate_passed_failed = both = agreed = 0
    if gate_rows is not None:
        g = gate_rows[mine][own]
        decisive = (v >= 1) & (v <= 3)
        theirs = g["verdict"]
        compared = decisive & (g["reports"] > 0) & (theirs >= 1) & (theirs <= 3)
        mine_pass = v == CODES[PASS]
        their_pass = theirs == CODES[PASS]
        both = int(compared.sum())
        agreed = int((compared & (mine_pass == their_pass)).sum())
        gate_passed = int((compared & their_pass).sum())
        gate_passed_failed = int((compared & their_pass & ~mine_pass).sum())
    decided = counts[PASS] + counts[FAIL] + counts[ERROR]
    has = v > 0
    streak, fail_run, longest = _streaks(ro["last"][has], v[has])
    start = since if since > 0 or not len(times) else float(times[0])
    edges = np.concatenate(([start], times, [until]))
    silence = float(np.diff(edges).max())
    arrived = int((p["time"] > last_report).sum()) if last_report is not None else int(mine.sum())
    return {
        "name": name,
        "classified": bool(meta.get("classified", True)),
        "gate": name == gate or bool(meta.get("gate")),
        "forge": meta.get("forge"),
        "patch_sets": int(mine.sum()),
        "reported": reported,
        "reports": reports,
        "coverage": _ratio(reported, int(mine.sum())),
        "verdicts": counts,
        "success_rate": _ratio(counts[PASS], decided),
        "gate_passed": gate_passed,
        "gate_pass_failure_rate": _ratio(gate_passed_failed, gate_passed),
        "agreement": _ratio(agreed, both),
        "compared_with_gate": both,
        "response_p50_s": _percentile(responses, 50),
        "response_p90_s": _percentile(responses, 90),
        "responses": len(responses),
        "rechecks": rechecks,
        "recheck_rate": _ratio(rechecked, reported),
        "last_report": last_report,
        "since_last_s": None if last_report is None else max(0.0, until - last_report),
        "arrived_since_last": arrived,
        "longest_silence_s": max(0.0, silence),
        "streak": streak,
        "fail_run": fail_run,
        "longest_fail_streak": longest,
    }


def _scope(
    ps: np.ndarray, projects: set[str], pids: Mapping[str, int], project: str | None
) -> np.ndarray:
    wanted = [pids[p] for p in projects if p in pids and (project is None or p == project)]
    return np.isin(ps["project"], np.array(wanted, dtype=np.uint32))


def figures(
    store: Any,
    systems: Mapping[str, Mapping[str, Any]],
    gate: str | None,
    *,
    since: float,
    until: float,
    project: str | None = None,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """``stats.system_figures`` of every system in ``systems`` over
    ``[since, until]`` (the systems that do not report on ``project``, when
    given, left out), from the rows."""
    names = list(systems)
    ctx = _context(store, names, since, until)
    if project:
        names = [n for n in names if project in ctx["projects"][n]]
    floor = max(since, ctx["pruned"])
    bounds = _bounds(store, floor, until)
    first, last = bounds if bounds else (0, -1)
    wanted = names + ([gate] if gate and gate in systems and gate not in names else [])
    span = Span(store, wanted, first, last, ctx["rt"], ctx["pruned"])
    ps = span.ps
    window = _alive(store, span, floor, now, ps["time"] <= until)
    out = []
    for name in names:
        times = span.times[name]
        newest = ctx["newest"].get(name)
        in_newest = times[times >= newest * DAY] if newest is not None else times[:0]
        if len(in_newest):
            last_report: float | None = float(in_newest[-1])
        else:  # its newest day's reports are all before the last prune's cut
            last_report = store.last_report(name) if newest is not None else None
        out.append(
            _system(
                name,
                window & _scope(ps, ctx["projects"][name], ctx["pids"], project),
                ps,
                span.rows[name],
                span.rows[gate] if gate and gate != name and gate in span.rows else None,
                since=since,
                until=until,
                times=times[(times >= floor) & (times <= until)],
                last_report=last_report,
                meta=systems[name],
                gate=gate,
            )
        )
    return out


def daily_figures(
    store: Any,
    systems: Iterable[str],
    spans: list[tuple[float, float]],
    *,
    project: str | None = None,
    now: float | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Per system, ``stats.daily``'s day buckets over ``spans``
    (``stats.days_of``: each within one UTC day, the last inclusive of its
    end), from the rows: ``{"patch_sets", "reported", "reports",
    "coverage", "success_rate", "response_p50_s"}`` a day."""
    names = list(systems)
    if not spans:
        return {n: [] for n in names}
    ctx = _context(store, names, spans[0][0], spans[-1][1])
    first = math.floor(spans[0][0] / DAY)
    span = Span(store, names, first, math.floor(spans[-1][1] / DAY), {})
    ps = span.ps
    offsets = np.concatenate(([0], np.cumsum(span.sizes, dtype=np.int64)))
    in_spans = (ps["time"] >= spans[0][0]) & (ps["time"] <= spans[-1][1])
    alive = _alive(store, span, ctx["pruned"], now, in_spans)
    last = len(spans) - 1
    # each day's patch sets of the window, whatever the system
    days = []
    for i, (a, b) in enumerate(spans):
        lo, hi = (
            int(x) for x in offsets[math.floor(a / DAY) - first : math.floor(a / DAY) - first + 2]
        )
        t = ps["time"][lo:hi]
        days.append(
            (lo, hi, alive[lo:hi] & (t >= a) & ((t < b) | ((t <= b) if i == last else False)))
        )
    out: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        if project and project not in ctx["projects"][name]:
            scope = np.zeros(len(ps), dtype=bool)
        else:
            scope = _scope(ps, ctx["projects"][name], ctx["pids"], project)
        rows = span.rows[name]
        buckets = []
        for (a, b), (lo, hi, inday) in zip(spans, days, strict=True):
            mine = inday & scope[lo:hi]
            r = rows[lo:hi][mine]
            p = ps[lo:hi][mine]
            own = r["reports"] > 0
            ro, po = r[own], p[own]
            n, reported = int(mine.sum()), int(own.sum())
            answered = (ro["judged"] == 1) & ((po["flags"] & APPEARED) != 0)
            responses = np.maximum(0.0, ro["first"][answered] - po["appeared"][answered])
            v = ro["verdict"]
            passed = int((v == CODES[PASS]).sum())
            decided = int(((v >= 1) & (v <= 3)).sum())
            buckets.append(
                {
                    "day": _day(a),
                    "since": a,
                    "until": b,
                    "patch_sets": n,
                    "reported": reported,
                    "reports": int(ro["reports"].sum(dtype=np.int64)),
                    "coverage": _ratio(reported, n),
                    "success_rate": _ratio(passed, decided),
                    "response_p50_s": _percentile(responses, 50),
                }
            )
        out[name] = buckets
    return out


def count(
    store: Any,
    *,
    since: float,
    until: float,
    project: str | None = None,
    system: str | None = None,
    now: float | None = None,
) -> int:
    """The patch sets of ``[since, until]`` (of ``project``, when given;
    those ``system`` reported on, when given), from the rows."""
    pruned = store.client.get(store.k("pruned"))
    floor = max(since, float(pruned)) if pruned is not None else since
    bounds = _bounds(store, floor, until)
    if bounds is None:
        return 0
    span = Span(store, [system] if system else [], bounds[0], bounds[1], {})
    ps = span.ps
    mine = _alive(store, span, floor, now, ps["time"] <= until)
    if project:
        pid = store.client.hget(store.k("projids"), project)
        mine &= ps["project"] == (int(pid) if pid is not None else -1)
    if system:
        mine &= span.rows[system]["reports"] > 0
    return int(mine.sum())


def _day(t: float) -> str:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(t, _dt.UTC).strftime("%Y-%m-%d")


def rebuild(store: Any, batch: int = 200) -> int:
    """The rows again from every stored record (a store filled before the
    rows existed, or one loaded in bulk); returns the patch sets laid out.
    Run it with the collector stopped: a record stored while it runs may be
    counted twice in its system's report times."""
    client = store.client
    client.delete(store.k("rows"))
    for kind in ROW_KEYS:
        doomed = list(client.scan_iter(match=store.k(kind) + ":*", count=10_000))
        for i in range(0, len(doomed), 1000):
            client.delete(*doomed[i : i + 1000])
    script = client.register_script(_REBUILD)
    done, start = 0, 0
    while True:
        psids = client.zrange(store.k("psets"), start, start + batch - 1)
        if not psids:
            break
        start += len(psids)
        script(args=[store.prefix, *psids])
        done += len(psids)
    client.set(store.k("rows"), "1")
    # the report index of the layout before the rows, now in rt:<system>:<day>
    for key in list(client.scan_iter(match=store.k("sys") + ":*", count=10_000)):
        client.delete(key)
    return done
