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
                                 time, when it appeared, when its keys expire
                                 as of the row's last write (a lower bound),
                                 its project's number, its rechecks, flags)
``rows:<system>:<day>``  string  the system on the patch set in that slot
                                 (``ROW``: its first and last report with a
                                 verdict, its reports, its verdict)
``rt:<system>:<day>``    string  its reports by report day (``RT``: the time,
                                 the patch set's day and slot); the days in
                                 ``rtdays:<system>`` (zset)
``pslist:<day>``         list    the day's patch sets by slot
``projids``, ``projn``   hash    a project's number
``vers``, ``vlog``       hash,   the rows' versions (``vseq``'s stamps) and
                         list    the stamps' log (``engine/radar/versions.py``)
``rows``                 string  set when the rows hold every record (a store
                                 filled before them: :func:`rebuild`)
=======================  ======  ==============================================

A system's row takes a new report from the row as it was (no recheck:
the worst verdict, the first and last time); a recheck, a late upload or a
report whose content changed recompute it from the patch set's reports. A
patch set whose index time moves to another day (it appeared before its
first record said) leaves a zero row in the old slot. The same script
writes the records and their rows, so they never disagree; its calls stamp
what they wrote in ``vers`` (from ``vseq``) and in the log ``vlog``
(``engine/radar/versions.py``: a reader keeps a mirror of the versions)
so that a reader's :data:`CACHE` reads again only what moved.

:func:`figures` computes over these rows, with numpy, exactly what
:func:`engine.radar.stats.system_figures` computes over the records (the
same float arithmetic on the same doubles; ``tests/radar/test_rows.py``
checks it over random windows). What a window's core days give (whole
days, not the newest three: ``engine/radar/parts.py``) is kept by the
versions of their rows and combined with its edge days, computed per
request. A 7-day window at 50 systems x 2,000 patch
sets a day computes over about 20 MB of rows, read from Redis once and
then only what changed, instead of 700,000 reports (docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from engine.radar import parts
from engine.radar.model import PASS
from engine.radar.parts import APPEARED, CODES, LIVE
from engine.radar.parts import ratio as _ratio
from engine.radar.versions import STAMP, mirror

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
#: the rows' Lua: a system's row from its summary and the patch set's rechecks
ROW_OF = (
    """local DAY, PW, RW = 86400, 32, 24
local ZP, ZR = string.rep('\\0', PW), string.rep('\\0', RW)
local CODE = {pass='1', fail='2', error='3', skipped='4'}
local RANK = {1, 3, 2, 0}
-- what this call wrote, its versions bumped at its end (readers' caches):
-- p<day> a day's patch sets' rows, w<day>:<system> a system's rows of the
-- day, t<day>:<system> its reports of the day
local touched = {}
-- the rows this call writes, by key and slot, and the report entries it
-- appends, by key: written at its end (bump), a key's adjacent slots in one
-- SETRANGE, a key's entries in one APPEND
local prows, rows, rts = {}, {}, {}
local function put_slots(width, byslot)
  for key, t in pairs(byslot) do
    local slots = {}
    for slot in pairs(t) do slots[#slots + 1] = slot end
    table.sort(slots)
    local i = 1
    while i <= #slots do
      local j, parts = i, {t[slots[i]]}
      while slots[j + 1] == slots[j] + 1 do j = j + 1; parts[#parts + 1] = t[slots[j]] end
      redis.call('SETRANGE', key, slots[i] * width, table.concat(parts))
      i = j + 1
    end
  end
end
local function flush_rt(key)
  local t = rts[key]
  if not t then return end
  rts[key] = nil
  local blob = table.concat(t, '', 3)
  if redis.call('APPEND', key, blob) == #blob then
    redis.call('ZADD', P .. 'rtdays:' .. t[1], t[2], t[2])
  end
end
"""
    + STAMP
    + """local function bump()
  put_slots(PW, prows)
  put_slots(RW, rows)
  for key in pairs(rts) do flush_rt(key) end
  -- one stamp for all of them: a reader only asks whether a version moved
  local args = {}
  for v in pairs(touched) do args[#args + 1] = v; args[#args + 1] = 0 end
  stamp(args)
end
local function set_prow(day, slot, data)
  local key = P .. 'prow:' .. day
  local t = prows[key]
  if not t then t = {}; prows[key] = t end
  t[slot] = data
  touched['p' .. day] = true
end
local function set_row(system, day, slot, data)
  local key = P .. 'rows:' .. system .. ':' .. day
  local t = rows[key]
  if not t then t = {}; rows[key] = t end
  t[slot] = data
  touched['w' .. day .. ':' .. system] = true
end
-- a system's row as this call left it (zero: fresh, a slot given in this call)
local function get_row(system, day, slot, fresh)
  local key = P .. 'rows:' .. system .. ':' .. day
  local t = rows[key]
  if t and t[slot] then return t[slot] end
  if fresh then return ZR end
  return redis.call('GETRANGE', key, slot * RW, slot * RW + RW - 1)
end
-- a report's time (and its patch set's day and slot) in its system's rt:<day>
local function add_rt(system, at, day, slot)
  local d = math.floor(at / DAY)
  touched['t' .. d .. ':' .. system] = true
  local key = P .. 'rt:' .. system .. ':' .. d
  local t = rts[key]
  if not t then t = {system, d}; rts[key] = t end
  t[#t + 1] = struct.pack('<dII', at, day, slot)
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
-- a system's row from its reports (n of them; ts, cs: the times and verdict
-- codes of those with a verdict) and the patch set's rechecks ('<at> <at> ...')
local function row_of(n, ts, cs, rch)
  if n > 65535 then n = 65535 end
  if #ts == 0 then return struct.pack('<ddHBBxxxx', 0, 0, n, 0, 0) end
  local first, last = ts[1], ts[1]
  for i = 2, #ts do
    if ts[i] < first then first = ts[i] end
    if ts[i] > last then last = ts[i] end
  end
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
-- every system's reports on a patch set (or one system's), from its psr: hash:
-- {reports, times with a verdict, their codes, every report's time} by system
local function reports_of(psrkey, only)
  local all, out, order = redis.call('HGETALL', psrkey), {}, {}
  for j = 1, #all, 2 do
    local f = all[j]
    local b = string.byte(f, 1)
    if b ~= 30 and string.byte(f, -1) ~= 30 then
      local sys = string.match(f, '^(.-)\\31')
      if (not only) or sys == only then
        local r = cjson.decode(all[j + 1])
        local e = out[sys]
        if not e then e = {0, {}, {}, {}}; out[sys] = e; order[#order + 1] = sys end
        e[1] = e[1] + 1
        e[4][e[1]] = r.at
        local c = CODE[r.verdict]
        if c then e[2][#e[2] + 1] = r.at; e[3][#e[3] + 1] = tonumber(c) end
      end
    end
  end
  return out, order
end
-- a system's row again from its reports on the patch set
local function row_again(psrkey, system, day, slot, rch)
  local e = reports_of(psrkey, system)[system]
  set_row(system, day, slot, row_of(e[1], e[2], e[3], rch))
end
-- a system's row with one more report (at, code or nil) when the patch set has
-- no recheck: from its row as it was
local function row_plus(old, at, code)
  if #old < RW then old = ZR end
  local first, last, n, v, judged = struct.unpack('<ddHBB', old)
  if n < 65535 then n = n + 1 end
  if not code then return struct.pack('<ddHBBxxxx', first, last, n, v, judged) end
  if judged == 0 then return struct.pack('<ddHBBxxxx', at, at, n, code, 1) end
  if at < first then first = at end
  if at > last then last = at end
  if RANK[code] > RANK[v] then v = code end
  return struct.pack('<ddHBBxxxx', first, last, n, v, 1)
end
"""
)

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
    local sums, order = reports_of(psrkey, nil)
    local rch = {}
    local fields = redis.call('HGETALL', psrkey)
    for j = 1, #fields, 2 do
      if string.byte(fields[j], 1) == 30 then rch[#rch + 1] = fields[j + 1] end
    end
    for _, sys in ipairs(order) do
      for i = 1, #sums[sys][4] do add_rt(sys, sums[sys][4][i], day, slot) end
    end
    local rchs = table.concat(rch, ' ')
    redis.call('HSET', pskey, 'day', day, 'slot', slot, 'rch', rchs)
    local pid = pid_of(h[3] or '')
    set_prow(day, slot,
      struct.pack('<dddIHBx', tidx, appeared or 0, tonumber(h[2]), pid, #rch, appeared and 3 or 1))
    for _, sys in ipairs(order) do
      local e = sums[sys]
      set_row(sys, day, slot, row_of(e[1], e[2], e[3], rchs))
    end
  end
end
bump()
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


class Cache:
    """What a process read of the rows, by (key prefix, store generation,
    version key: ``p<day>``, ``w<day>:<system>``, ``t<day>:<system>``), each
    with the version it was read at, least recently used out past
    ``most_bytes``. An item is read again when its version (``vers``: the
    stamp of the last script call that wrote it, from ``vseq``) moved."""

    def __init__(self, most_bytes: int) -> None:
        self.most_bytes = most_bytes
        self.nbytes = 0
        self.items: OrderedDict[tuple[str, str, str], tuple[int, Any, int]] = OrderedDict()
        self.lock = threading.Lock()

    def peek(self, key: tuple[str, str, str]) -> Any:
        """What is kept under ``key`` whatever its version (None: nothing)."""
        with self.lock:
            item = self.items.get(key)
            return None if item is None else item[1]

    def get(self, key: tuple[str, str, str], version: int) -> Any:
        with self.lock:
            item = self.items.get(key)
            if item is None or item[0] != version:
                return None
            self.items.move_to_end(key)
            return item[1]

    def put(self, key: tuple[str, str, str], version: int, value: Any, nbytes: int) -> None:
        with self.lock:
            old = self.items.pop(key, None)
            if old is not None:
                self.nbytes -= old[2]
            self.items[key] = (version, value, nbytes)
            self.nbytes += nbytes
            while self.nbytes > self.most_bytes and len(self.items) > 1:
                _, (_, _, n) = self.items.popitem(last=False)
                self.nbytes -= n


#: every reader's rows and cores in this process (``BOSS_RADAR_CACHE_MB``,
#: default 512: a 90-day window's cores at 50 systems x 2,000 patch sets a
#: day take about 260 MB, the rows of the days read last the rest)
CACHE = Cache(int(os.environ.get("BOSS_RADAR_CACHE_MB", "512")) * 2**20)


def _versions(store: Any, names: list[str], days: list[int]) -> tuple[str, np.ndarray]:
    """The store's generation and, in one sync of its versions
    (:mod:`engine.radar.versions`), those of ``days``' rows: the patch
    sets' (row 0), then each of ``names``' (a row each)."""
    m = mirror(store)
    gen = m.sync(store)
    table = [m.of("p", "", days), *(m.of("w", name, days) for name in names)]
    return gen, np.stack(table)


class Span:
    """The rows of ``days`` (every patch set's, and per system its rows):
    from the process's :data:`CACHE`, what changed since read in one
    pipelined round trip."""

    def __init__(self, store: Any, systems: Iterable[str], days: Iterable[int]) -> None:
        self.days = list(days)
        names = list(systems)
        wanted: list[tuple[str, str, int, str]] = [("p", f"p{d}", d, "") for d in self.days]
        for name in names:
            wanted += [("w", f"w{d}:{name}", d, name) for d in self.days]
        gen, table = _versions(store, names, self.days)
        versions = table.ravel().tolist()
        self.gen = gen
        #: the version of each of its days' rows read (``p<day>``, ``w<day>:<system>``)
        self.versions = dict(zip((w[1] for w in wanted), versions, strict=True))
        found: dict[str, Any] = {}
        missing = []
        for (kind, field, day, name), version in zip(wanted, versions, strict=True):
            value = CACHE.get((store.prefix, gen, field), version)
            if value is None:
                missing.append((kind, field, day, name, version))
            else:
                found[field] = value
        # the patch sets' rows first: a system's rows are cut to their length
        missing.sort(key=lambda m: m[0] != "p")
        pipe = store.client.pipeline(transaction=False)
        for kind, _, day, name, _ in missing:
            key = {"p": "prow", "w": "rows"}[kind]
            pipe.get(store.k(key, name, str(day)) if name else store.k(key, str(day)))
        for (kind, field, day, _, version), blob in zip(
            missing, pipe.execute() if missing else [], strict=True
        ):
            blob = blob or b""
            if kind == "p":
                value = _columns(np.frombuffer(blob, dtype=PROW))
            else:
                # rows written after the day's patch sets were read: not theirs
                size = len(found[f"p{day}"]["time"]) * ROW.itemsize
                padded = blob[:size] + b"\0" * (size - len(blob))
                value = _columns(np.frombuffer(padded, dtype=ROW))
            found[field] = value
            CACHE.put(
                (store.prefix, gen, field), version, value, sum(c.nbytes for c in value.values())
            )
        self.sizes = [len(found[f"p{d}"]["time"]) for d in self.days]
        self.ps = _concat([found[f"p{d}"] for d in self.days], PROW)
        self.rows = {
            n: _concat(
                [
                    _fit(found[f"w{d}:{n}"], size)
                    for d, size in zip(self.days, self.sizes, strict=True)
                ],
                ROW,
            )
            for n in names
        }


#: a day's rows as contiguous columns, one array per field
Columns = dict[str, np.ndarray]


def _columns(rows: np.ndarray) -> Columns:
    return {f: np.ascontiguousarray(rows[f]) for f in rows.dtype.names if f != "pad"}


def _fit(rows: Columns, size: int) -> Columns:
    """A system's rows of a day as long as the day's patch sets: rows read
    before patch sets it has no row for came (its version did not move)
    end with zero rows for them."""
    have = len(rows["reports"])
    if have == size:
        return rows
    if have > size:
        return {f: c[:size] for f, c in rows.items()}
    return {f: np.concatenate((c, np.zeros(size - have, dtype=c.dtype))) for f, c in rows.items()}


def _concat(days: list[Columns], dtype: np.dtype) -> Columns:
    if not days:
        return _columns(np.zeros(0, dtype=dtype))
    if len(days) == 1:
        return days[0]
    return {f: np.concatenate([d[f] for d in days]) for f in days[0]}


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


def _context(store: Any, names: list[str], since: float) -> dict[str, Any]:
    """Per system its projects, the days it reported on from ``since`` on
    and its newest; the project numbers; the prune watermark: one pipelined
    round trip (and one more for the systems with no report day since
    ``since``: their newest)."""
    pipe = store.client.pipeline(transaction=False)
    pipe.hgetall(store.k("projids"))
    pipe.get(store.k("pruned"))
    lo = math.floor(since / DAY)
    for name in names:
        pipe.smembers(store.k("sysproj", name))
        pipe.zrangebyscore(store.k("rtdays", name), str(lo), "+inf")
    answers = pipe.execute()
    out: dict[str, Any] = {
        "pids": {_s(k): int(v) for k, v in answers[0].items()},
        "pruned": float(answers[1]) if answers[1] is not None else -math.inf,
        "projects": {},
        "rt": {},
        "newest": {},
    }
    silent = []
    for i, name in enumerate(names):
        projects, days = answers[2 + 2 * i : 4 + 2 * i]
        out["projects"][name] = {_s(p) for p in projects}
        # those after ``until`` too (a window in the past): none of their reports count
        out["rt"][name] = days = [int(d) for d in days]
        if days:
            out["newest"][name] = days[-1]
        else:
            silent.append(name)
    if silent:
        pipe = store.client.pipeline(transaction=False)
        for name in silent:
            pipe.zrevrange(store.k("rtdays", name), 0, 0)
        for name, newest in zip(silent, pipe.execute(), strict=True):
            if newest:
                out["newest"][name] = int(newest[0])
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


def _scope(
    ps: Columns, projects: set[str], pids: Mapping[str, int], project: str | None
) -> np.ndarray:
    wanted = [pids[p] for p in projects if p in pids and (project is None or p == project)]
    return np.isin(ps["project"], np.array(wanted, dtype=np.uint32))


#: the newest days of a window left to its edges with its first: reports still land there
FRESH = 3


def figures(
    store: Any,
    systems: Mapping[str, Mapping[str, Any]],
    gate: str | None,
    *,
    since: float,
    until: float,
    project: str | None = None,
    now: float | None = None,
    systems_known: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """``stats.system_figures`` of every system in ``systems`` over
    ``[since, until]`` (the systems that do not report on ``project``, when
    given, left out), from the rows: the window's core days from what this
    process kept of them (:func:`_cores`), its edge days read
    (``engine/radar/parts.py``)."""
    names = list(systems)
    ctx = _context(store, names, since)
    if project:
        names = [n for n in names if project in ctx["projects"][n]]
    floor = max(since, ctx["pruned"])
    bounds = _bounds(store, floor, until)
    first, last = bounds if bounds else (0, -1)
    every = systems_known if systems_known is not None else systems
    gate_name = gate if gate and gate in every else None
    wanted = names + ([gate_name] if gate_name and gate_name not in names else [])
    days = list(range(first, last + 1))
    core_days = days[1:-FRESH]
    edge_days = days[:1] + days[-FRESH:] if core_days else days
    scope_of = {n: _scope_key(ctx["projects"][n], ctx["pids"], project) for n in names}
    cores = _cores(store, names, gate_name, scope_of, core_days, now, round((until - since) / DAY))
    span = Span(store, wanted, edge_days)
    reports = _report_days(store, names, ctx["rt"], ctx["newest"], floor, until)
    ps = span.ps
    window = _alive(store, span, floor, now, ps["time"] <= until)
    masks: dict[tuple[int, ...], np.ndarray] = {}  # most systems report on the same projects
    for scope in set(scope_of.values()):
        masks[scope] = window & np.isin(ps["project"], np.array(scope, dtype=np.uint32))
    memos = {
        n: _memo(store, span.gen, n, (gate_name, scope_of[n], edge_days[0] if edge_days else 0))
        for n in names
    }
    edges = parts.parts_of(
        {n: masks[scope_of[n]] for n in names},
        ps,
        span.rows,
        gate_name,
        _runs(store, span, names),
        memos,
    )
    out = []
    for name in names:
        mine = masks[scope_of[name]]
        core, edge, memo = cores.part.get(name), edges[name], memos[name]
        streaks = None
        if core is not None:
            made_of = (core.t, core.a, core.v, edge.t, edge.a, edge.v)
            kept = memo.get("streaks")
            if kept is not None and all(a is b for a, b in zip(kept[0], made_of, strict=True)):
                streaks = kept[1]
            else:
                streaks = parts.merged_streaks(core, edge)
                memo["streaks"] = (made_of, streaks)
        f = parts.combine(core, edge, streaks)
        streaks = {k: f.pop(k) for k in ("streak", "fail_run", "longest_fail_streak")}
        last_report = _last_report(store, reports[name], ctx["pruned"], name)
        if last_report is None:
            arrived = f["patch_sets"]
        else:
            arrived = int(np.count_nonzero(mine & (ps["time"] > last_report)))
            arrived += cores.after(name, last_report)
        meta = systems[name]
        out.append(
            {
                "name": name,
                "classified": bool(meta.get("classified", True)),
                "gate": name == gate or bool(meta.get("gate")),
                "forge": meta.get("forge"),
                **f,  # patch_sets ... recheck_rate, in stats.system_figures's order
                "last_report": last_report,
                "since_last_s": None if last_report is None else max(0.0, until - last_report),
                "arrived_since_last": arrived,
                "longest_silence_s": reports[name].silence(since, floor, until),
                **streaks,
            }
        )
    return out


def _runs(
    store: Any, span: Span, names: list[str]
) -> dict[str, list[tuple[int, np.ndarray, np.ndarray]]]:
    """Per system, each day of ``span``'s first row in the span with the
    day's verdicts and answers in order (:func:`parts.verdicts_in_order`,
    :func:`parts.responses_in_order`), kept in :data:`CACHE` by the
    version of the system's rows of the day, so that only the days that
    moved are sorted again (the same objects while kept: ``figures``'s
    memos know them). The answers' order also reads the patch sets' upload
    times and flags at the system's rows, but a patch set's upload stored
    late writes every system's row of it again (``RadarStore.add``'s
    script: ``redo``), and a new patch set, which moves the day's patch
    sets' version, moves none of them."""
    starts = np.concatenate(([0], np.cumsum(span.sizes)[:-1])).tolist() if span.days else []
    out: dict[str, list[tuple[int, np.ndarray, np.ndarray]]] = {}
    for name in names:
        rows = span.rows[name]
        mine = []
        for d, start, size in zip(span.days, starts, span.sizes, strict=True):
            w = span.versions[f"w{d}:{name}"]
            vkey = (store.prefix, span.gen, f"ov{d}:{name}")
            rkey = (store.prefix, span.gen, f"or{d}:{name}")
            vi, ri = CACHE.get(vkey, w), CACHE.get(rkey, w)
            where = slice(start, start + size)
            if vi is None:
                vi = parts.verdicts_in_order({f: c[where] for f, c in rows.items()})
                CACHE.put(vkey, w, vi, vi.nbytes + 64)
            if ri is None:
                ri = parts.responses_in_order(
                    {f: span.ps[f][where] for f in ("flags", "appeared")},
                    {f: c[where] for f, c in rows.items()},
                )
                CACHE.put(rkey, w, ri, ri.nbytes + 64)
            mine.append((start, vi, ri))
        out[name] = mine
    return out


def _memo(store: Any, gen: str, name: str, of: tuple[Any, ...]) -> dict[str, Any]:
    """``name``'s memo of its edges (:func:`parts.cores_of`'s ``memos``) and
    of its streaks (``"streaks"``: made of which arrays, the figures) of the
    last answer, per gate, scope and first edge day (a window of another
    length keeps its own), in :data:`CACHE`: about what its edges' verdicts
    and answers take."""
    key = (store.prefix, gen, f"m\x1f{name}\x1f{of}")
    memo = CACHE.get(key, 0)
    if memo is None:
        memo = {}
        CACHE.put(key, 0, memo, _EDGE_MEMO_BYTES)
    return memo


#: what a memo of :func:`_memo` takes, about (a 90-day window's edges at
#: 2,000 patch sets a day: 6,000 verdicts, 16 bytes each, and as many answers)
_EDGE_MEMO_BYTES = 200_000


def _scope_key(
    projects: Iterable[str], pids: Mapping[str, int], project: str | None
) -> tuple[int, ...]:
    """The project numbers of a system's scope (of ``project`` alone, when given)."""
    return tuple(
        sorted(pids[p] for p in projects if p in pids and (project is None or p == project))
    )


#: a kept core takes its moved days out and in again when they are at most
#: this many (and at most a quarter of its days); else it is computed anew
_MOVED_DAYS = 8


class _Cores:
    """What :func:`_cores` gives: per system its core's :class:`parts.Part`,
    and per scope its patch sets' times by day (for ``arrived_since_last``)."""

    def __init__(self) -> None:
        self.part: dict[str, parts.Part] = {}
        self.times: dict[tuple[int, ...], list[np.ndarray]] = {}
        self.scope_of: Mapping[str, tuple[int, ...]] = {}

    def after(self, name: str, t: float) -> int:
        """How many of ``name``'s scope's core patch sets came after ``t``."""
        n = 0
        for times in reversed(self.times.get(self.scope_of.get(name, ()), [])):
            if not len(times):
                continue
            if times[-1] <= t:
                break  # the days before hold earlier times
            n += len(times) - int(np.searchsorted(times, t, side="right"))
        return n


def _cores(
    store: Any,
    names: list[str],
    gate: str | None,
    scope_of: Mapping[str, tuple[int, ...]],
    days: list[int],
    now: float | None,
    length: int = 0,
) -> _Cores:
    """Per system, the :class:`parts.Part` of ``days`` (a window's core:
    whole days, none of the newest), from its :class:`parts.Core` kept in
    :data:`CACHE` with the versions of each day's rows it was made from
    (the patch sets', the system's, the gate's) and until when each day's
    patch sets are all alive: a day that moved (or left or joined the
    core) is taken out and put in again, the others kept. A core is kept
    per window ``length`` (in days: a 7-day and a 90-day window asked in
    turn keep one each). Per scope, its patch sets' times there by day."""
    out = _Cores()
    out.scope_of = scope_of
    if not days:
        return out
    now_s = time.time() if now is None else now
    systems = names + ([gate] if gate and gate not in names else [])
    gen, table = _versions(store, systems, days)
    n = len(days)
    pv = dict(zip(days, table[0].tolist(), strict=True))
    wv = {name: table[i + 1] for i, name in enumerate(systems)}
    no_gate = np.zeros(n, dtype=np.int64)
    shape = tuple(days)
    at_day = {d: i for i, d in enumerate(days)}
    # (name, key, the days to read, the kept core or None, the days that left it)
    plan: list[tuple[str, tuple[str, str, str], list[int], Any, list[int]]] = []
    wanted: dict[str, np.ndarray] = {}  # per system, its days' versions (days x 3)
    for name in names:
        theirs = wv[gate] if gate and gate != name else no_gate
        wanted[name] = np.stack((table[0], wv[name], theirs), axis=1)
        key = (store.prefix, gen, f"c\x1f{name}\x1f{gate}\x1f{scope_of[name]}\x1f{length}")
        kept = CACHE.get(key, 0)
        if kept is None:
            plan.append((name, key, days, None, []))
            continue
        core, made_days, made, until, digests = kept
        if made_days == shape:  # the same days: compared at once
            moved_at = np.flatnonzero((made != wanted[name]).any(axis=1) | (until <= now_s))
            moved, gone = [days[i] for i in moved_at], []
        else:  # the window moved: day by day
            had = {d: i for i, d in enumerate(made_days)}
            moved = [
                d
                for i, d in enumerate(days)
                if d not in had or (made[had[d]] != wanted[name][i]).any() or until[had[d]] <= now_s
            ]
            gone = [int(d) for d in core.days if d not in at_day]
            if not moved:  # days left the core, none moved or joined
                if gone:
                    core = core.replaced(np.asarray(gone, np.int64), parts.Core.empty())
                until = np.asarray([until[had[d]] for d in days])
                digests = {d: digests[d] for d in days if d in digests}
                CACHE.put(key, 0, (core, shape, wanted[name], until, digests), _nbytes(core, n))
        if not moved:
            out.part[name] = core.part
            continue
        if len(moved) + len(gone) <= min(_MOVED_DAYS, max(1, n // 4)):
            plan.append((name, key, moved, kept, gone))
        else:
            plan.append((name, key, days, None, []))
    read = sorted({d for _, _, todo, _, _ in plan for d in todo})
    scopes = {scope_of[name] for name in names}
    if read:
        span = Span(store, [name for name, *_ in plan] + ([gate] if gate else []), read)
        ps = span.ps
        alive = _alive(store, span, -math.inf, now)
        day_of = np.repeat(np.asarray(read, dtype=np.int32), span.sizes)
        ends = np.cumsum(span.sizes)
        slices = {
            d: slice(int(e - size), int(e))
            for d, size, e in zip(read, span.sizes, ends, strict=True)
        }
        # per day: until when every one of its patch sets is alive (a lower bound)
        now_ms = math.floor(now_s * 1000)
        doubted = alive & (np.floor(ps["expires"] * 1000) < now_ms)
        valid_now: dict[int, float] = {}
        at = 0
        for d, size in zip(read, span.sizes, strict=True):
            sl = slice(at, at + size)
            at += size
            if doubted[sl].any():
                valid_now[d] = -math.inf  # alive past its bound: asked again next time
            else:
                live = ps["expires"][sl][alive[sl]]
                valid_now[d] = float(live.min()) if len(live) else math.inf
        masks = {
            scope: alive & np.isin(ps["project"], np.array(scope, dtype=np.uint32))
            for scope in {scope_of[name] for name, *_ in plan}
        }
        # per scope and day: whether its patch sets are those the kept cores
        # were made from (their times, uploads, flags, which are alive)
        unmoved: dict[tuple[tuple[int, ...], int], bool] = {}
        for scope, mask in masks.items():
            at = 0
            for d, size in zip(read, span.sizes, strict=True):
                sl = slice(at, at + size)
                at += size
                times = np.sort(ps["time"][sl][mask[sl]], kind="stable")
                digest = hashlib.blake2b(digest_size=16)
                for column in (ps["time"][sl], ps["appeared"][sl], ps["flags"][sl], mask[sl]):
                    digest.update(np.ascontiguousarray(column).tobytes())
                key = (store.prefix, span.gen, f"cs\x1f{scope}\x1f{d}")
                before = CACHE.peek(key)
                unmoved[(scope, d)] = before is not None and before[2] == digest.digest()
                CACHE.put(key, pv[d], (valid_now[d], times, digest.digest()), times.nbytes + 64)
        groups: dict[tuple[int, ...], list[Any]] = {}  # by the days to read
        for entry in plan:
            groups.setdefault(tuple(entry[2]), []).append(entry)
        for todo, group in groups.items():
            if len(todo) < len(read):
                chosen = np.isin(day_of, todo)
                sub_ps = {f: c[chosen] for f, c in ps.items()}
                theirs = {e[0] for e in group} | ({gate} if gate else set())
                sub_rows = {w: {f: c[chosen] for f, c in span.rows[w].items()} for w in theirs}
                sub_day = day_of[chosen]
                mine = {e[0]: masks[scope_of[e[0]]][chosen] for e in group}
            else:
                sub_ps, sub_rows, sub_day = ps, span.rows, day_of
                mine = {e[0]: masks[scope_of[e[0]]] for e in group}
            # its own rows and its scope's patch sets as they were (no day
            # left): its counts only, its verdicts and response times not sorted
            now_digests = {
                e[0]: {
                    d: _digest_now(e[3], shape, wanted[e[0]], at_day[d], d, span, slices[d], e[0])
                    for d in todo
                }
                for e in group
            }
            counted = set()
            for name, _, _, kept, gone in group:
                if (
                    kept is not None
                    and not gone
                    and all(
                        kept[4].get(d) == now_digests[name][d]
                        and unmoved.get((scope_of[name], d), False)
                        for d in todo
                    )
                ):
                    counted.add(name)
            made = parts.cores_of(
                {n: m for n, m in mine.items() if n not in counted}, sub_ps, sub_rows, gate, sub_day
            )
            made |= parts.cores_of(
                {n: m for n, m in mine.items() if n in counted},
                sub_ps,
                sub_rows,
                gate,
                sub_day,
                sort=False,
            )
            for name, key, _, kept, gone in group:
                fresh = made[name]
                if kept is None:
                    core, digests = fresh, {}
                    until = np.full(n, math.inf)
                else:
                    old, made_days, _, until, digests = kept
                    core = old.replaced(
                        np.asarray(list(todo) + gone, np.int64), fresh, name in counted
                    )
                    if made_days == shape:
                        until = until.copy()
                    else:
                        had = {d: i for i, d in enumerate(made_days)}
                        until = np.asarray([until[had[d]] if d in had else math.inf for d in days])
                    digests = dict(digests)
                for d in todo:
                    until[at_day[d]] = valid_now[d]
                digests.update(now_digests[name])
                digests = {d: digests[d] for d in days if d in digests}
                CACHE.put(key, 0, (core, shape, wanted[name], until, digests), _nbytes(core, n))
                out.part[name] = core.part
    for scope in scopes:
        by_day = []
        for d in days:
            hit = CACHE.get((store.prefix, gen, f"cs\x1f{scope}\x1f{d}"), pv[d])
            if hit is None or hit[0] <= now_s:
                one = Span(store, [], [d])
                mask = _alive(store, one, -math.inf, now) & np.isin(
                    one.ps["project"], np.array(scope, dtype=np.uint32)
                )
                times = np.sort(one.ps["time"][mask], kind="stable")
                expires = one.ps["expires"][mask]
                until = float(expires.min()) if len(expires) else math.inf
                hit = (until, times, b"")  # no digest: the next read of the day moves the cores
                CACHE.put(
                    (store.prefix, one.gen, f"cs\x1f{scope}\x1f{d}"), pv[d], hit, times.nbytes + 64
                )
            by_day.append(hit[1])
        out.times[scope] = by_day
    return out


def _nbytes(core: parts.Core, days: int) -> int:
    """What :func:`_cores` keeps of a core of ``days`` days, in bytes: the
    core, its days' versions (3 a day), until when each day's patch sets
    are all alive, its rows' digests by day."""
    return core.nbytes + 96 * days + 64


def _digest_now(
    kept: Any,
    shape: tuple[int, ...],
    versions: np.ndarray,
    i: int,
    day: int,
    span: Span,
    where: slice,
    name: str,
) -> bytes:
    """:func:`_digest` of ``name``'s rows of ``day`` (the ``i``-th of the
    core's days ``shape``) in ``span``: the kept core's when its rows'
    version did not move since (only the gate's or the patch sets' did;
    rows longer by patch sets it has no row for change no verdict, and
    the patch sets' own digest tells those apart)."""
    if kept is not None and kept[1] == shape and kept[2][i][1] == versions[i][1] and day in kept[4]:
        return kept[4][day]
    return _digest(span.rows[name], where)


def _digest(rows: Columns, where: slice) -> bytes:
    """A digest of what of a system's rows its verdicts and response times
    are made of."""
    digest = hashlib.blake2b(digest_size=16)
    for column in ("first", "last", "reports", "verdict", "judged"):
        digest.update(np.ascontiguousarray(rows[column][where]).tobytes())
    return digest.digest()


class _Days:
    """A system's report days (``days``, sorted) in a window: each one's
    first and last report and longest gap between two (NaN, NaN, -inf: none
    there), those of the days the window holds whole from what
    :func:`_report_days` kept; the report times of the others, and of the
    newest day (``arrays``)."""

    def __init__(
        self, days: np.ndarray, summary: np.ndarray, arrays: dict[int, np.ndarray]
    ) -> None:
        self.days = days
        self.summary = summary  # (days, 3): first, last, longest gap inside
        self.arrays = arrays

    def silence(self, since: float, floor: float, until: float) -> float:
        """``longest_silence_s``: the longest gap between ``since`` (else the
        first report), the reports of ``[floor, until]`` and ``until``."""
        lo, hi, inner = self.summary[:, 0], self.summary[:, 1], self.summary[:, 2]
        there = ~np.isnan(lo)
        if not there.any():
            origin = since if since > 0 else until
            return max(0.0, until - origin)
        lo, hi, inner = lo[there], hi[there], inner[there]
        start, prev = float(lo[0]), float(hi[-1])
        best = float(inner.max())
        if len(lo) > 1:
            best = max(best, float((lo[1:] - hi[:-1]).max()))
        origin = since if since > 0 else start
        return max(0.0, best, start - origin, until - prev)


def _gaps(times: np.ndarray) -> tuple[float, float, float]:
    """Sorted report times' first, last and longest gap (NaN, NaN, -inf: none)."""
    if not len(times):
        return math.nan, math.nan, -math.inf
    inner = float(np.diff(times).max()) if len(times) > 1 else -math.inf
    return float(times[0]), float(times[-1]), inner


def _report_days(
    store: Any,
    names: list[str],
    rt: Mapping[str, list[int]],
    newest: Mapping[str, int],
    floor: float,
    until: float,
) -> dict[str, _Days]:
    """Per system its :class:`_Days` of the days ``rt`` gives it. A whole
    day's first and last report and longest gap are kept in :data:`CACHE`
    per system and window length with the versions of its days
    (``t<day>:<system>``: a report stored there, an import, a prune moves
    one); the report times are read only of the days that moved, are not
    whole in ``[floor, until]`` or are the newest, and only those two are
    kept (a whole day's times are summed up once: kept, a 90-day window's
    took 67 MB at 50 systems, and pushed its cores' rows out of the cache).
    One round trip for the versions, one for what moved."""
    asked = {name: sorted(rt.get(name, [])) for name in names}
    m = mirror(store)
    gen = m.sync(store)
    length = round((until - floor) / DAY)
    plans: dict[str, tuple[list[int], np.ndarray, np.ndarray, list[int], tuple[str, str, str]]] = {}
    for name in names:
        days = asked[name]
        array = m.of("t", name, days)
        key = (store.prefix, gen, f"s\x1f{name}\x1f{length}")
        memo = CACHE.get(key, 0)
        if memo is not None and memo[0] == days:
            whole = memo[2]
            moved = np.flatnonzero(memo[1] != array).tolist()
        else:
            whole = np.empty((len(days), 3))
            moved = list(range(len(days)))
            if memo is not None:  # the window moved to other days: those kept are kept
                had = {d: i for i, d in enumerate(memo[0])}
                moved = []
                for i, (d, v) in enumerate(zip(days, array.tolist(), strict=True)):
                    j = had.get(d)
                    if j is not None and memo[1][j] == v:
                        whole[i] = memo[2][j]
                    else:
                        moved.append(i)
        plans[name] = (days, array, whole, moved, key)
    arrays: dict[str, dict[int, np.ndarray]] = {name: {} for name in names}
    cuts: dict[str, list[int]] = {}
    missing = []
    for name, (days, array, _, moved, _) in plans.items():
        # the days not whole in [floor, until]: the first ones and the last ones
        lo, hi = 0, len(days)
        while lo < hi and days[lo] * DAY < floor:
            lo += 1
        while hi > lo and (days[hi - 1] + 1) * DAY > until:
            hi -= 1
        cuts[name] = [*range(lo), *range(hi, len(days))]
        # read again by the next answer: the cut days and the newest (a
        # whole day that moved is summed up once; its times are not kept)
        again = set(cuts[name])
        if name in newest and days and days[-1] == newest[name]:
            again.add(len(days) - 1)
        for i in {*moved, *again}:
            field = (store.prefix, gen, f"t{days[i]}:{name}")
            hit = CACHE.get(field, int(array[i]))
            if hit is None:
                missing.append((name, days[i], field, int(array[i]), i in again))
            else:
                arrays[name][days[i]] = hit
    if missing:
        pipe = store.client.pipeline(transaction=False)
        for name, d, *_ in missing:
            pipe.get(store.k("rt", name, str(d)))
        for (name, d, field, version, keep), blob in zip(missing, pipe.execute(), strict=True):
            times = np.sort(np.frombuffer(blob or b"", dtype=RT)["at"], kind="stable")
            if keep:
                CACHE.put(field, version, times, times.nbytes)
            arrays[name][d] = times
    out = {}
    for name, (days, array, whole, moved, key) in plans.items():
        mine = arrays[name]
        if moved:
            whole = whole.copy()
            for i in moved:
                whole[i] = _gaps(mine[days[i]])
            CACHE.put(key, 0, (days, array, whole), whole.nbytes + 16 * len(days) + 64)
        summary = whole
        if cuts[name]:
            summary = whole.copy()
            for i in cuts[name]:
                got = mine[days[i]]
                summary[i] = _gaps(got[(got >= floor) & (got <= until)])
        out[name] = _Days(np.asarray(days, dtype=np.int64), summary, mine)
    return out


def _last_report(store: Any, days: _Days, pruned: float, name: str) -> float | None:
    """``name``'s newest report time: from its newest report day, else (all
    of that day's reports before the last prune's cut) the store's."""
    if not len(days.days):
        return None
    newest = int(days.days[-1])
    arr = days.arrays.get(newest)
    if arr is not None:
        kept = arr[arr >= pruned]
        if len(kept):
            return float(kept[-1])
    return store.last_report(name)


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
    ctx = _context(store, names, spans[0][0])
    first = math.floor(spans[0][0] / DAY)
    span = Span(store, names, range(first, math.floor(spans[-1][1] / DAY) + 1))
    ps = span.ps
    offsets = np.concatenate(([0], np.cumsum(span.sizes, dtype=np.int64)))
    in_spans = (ps["time"] >= spans[0][0]) & (ps["time"] <= spans[-1][1])
    alive = _alive(store, span, ctx["pruned"], now, in_spans)
    last = len(spans) - 1
    # each day's patch sets of the window, whatever the system
    days = []
    for i, (a, b) in enumerate(spans):
        d = math.floor(a / DAY) - first
        lo, hi = int(offsets[d]), int(offsets[d + 1])
        t = ps["time"][lo:hi]
        ends = (t <= b) if i == last else (t < b)
        days.append((lo, hi, alive[lo:hi] & (t >= a) & ends))
    out: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        if project and project not in ctx["projects"][name]:
            scope = np.zeros(len(ps["time"]), dtype=bool)
        else:
            scope = _scope(ps, ctx["projects"][name], ctx["pids"], project)
        rows = span.rows[name]
        buckets = []
        for (a, b), (lo, hi, inday) in zip(spans, days, strict=True):
            mine = inday & scope[lo:hi]
            n = rows["reports"][lo:hi]
            own = mine & (n > 0)
            reported = int(np.count_nonzero(own))
            answered = own & (rows["judged"][lo:hi] == 1) & ((ps["flags"][lo:hi] & APPEARED) != 0)
            responses = np.maximum(
                0.0, rows["first"][lo:hi][answered] - ps["appeared"][lo:hi][answered]
            )
            v = np.where(own, rows["verdict"][lo:hi], 0)
            total = int(np.count_nonzero(mine))
            buckets.append(
                {
                    "day": _day(a),
                    "since": a,
                    "until": b,
                    "patch_sets": total,
                    "reported": reported,
                    "reports": int(n.sum(where=own, dtype=np.int64)),
                    "coverage": _ratio(reported, total),
                    "success_rate": _ratio(
                        int(np.count_nonzero(v == CODES[PASS])),
                        int(np.count_nonzero((v >= 1) & (v <= 3))),
                    ),
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
    span = Span(store, [system] if system else [], range(bounds[0], bounds[1] + 1))
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
