"""The radar's Redis keys (every key starts with ``<key_prefix>radar:``).

=====================  ======  ==================================================
key                    type    what
=====================  ======  ==================================================
``ps:<psid>``          hash    ``forge``, ``project``, ``change``, ``patchset``,
                               ``appeared`` (when uploaded), ``merged``, ``expires``
``psr:<psid>``         hash    ``<system>\\x1f<id>``: a report (JSON ``at``,
                               ``verdict``, ``detail``); ``\\x1erecheck\\x1f<id>``:
                               a recheck's time
``psets``              zset    psid by time: when it appeared, else (until it
                               does) its earliest record (the per-time index)
``psets:<project>``    zset    the same, per project
``rt:<system>:<day>``  string  its reports by report day (``rows.RT``: the
                               time, the patch set's day and slot); the days in
                               ``rtdays:<system>`` (zset)
``systems``            hash    system -> JSON ``classified``, ``gate``, ``forge``
``sysproj:<system>``   set     the projects it reported on
``change:<forge>:<p>:<c>``  string  the change's newest patch set (psid)
``cursor:runs``        string  the run store's transitions read so far
``forgot``             string  renamed when prune forgets a system: a writer's
                               memo of the ``sysproj:`` members it wrote is void
=====================  ======  ==================================================

Every write is one Lua script (atomic; a batch of records goes by
EVALSHA, up to 100 records a call, one call in flight) and idempotent: a
record's fields are keyed by its id, a patch set's index time is the time
it appeared, else the earliest of its records (the same whatever order
they come in). ``ps:`` and ``psr:`` expire ``retention`` after their
newest record (rounded up to the hour); the indexes are trimmed by :meth:`RadarStore.prune`.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from redis.exceptions import NoScriptError

from engine.radar.model import (
    APPEARED,
    ERROR,
    FAIL,
    MERGED,
    PASS,
    RECHECK,
    REPORT,
    SKIPPED,
    Record,
)
from engine.radar.rows import ROW_OF, RT
from engine.radar.versions import stamp

__all__ = ["PatchSet", "RadarStore"]

SEP = "\x1f"
DAY = 86400.0
#: a patch set's keys expire ``retention`` after its newest record, rounded up
#: to this: the records of one hour extend them once, not each
EXPIRY_STEP = 3600.0
#: ``json.dumps(..., separators=(",", ":"))``, the encoder made once
_compact = json.JSONEncoder(separators=(",", ":")).encode
#: a system's ``systems`` value by ``(classified, gate, forge)``
_SYSMETA: dict[tuple[bool, bool, str], str] = {}
#: a verdict's code in the rows (engine/radar/rows.py)
_CODE = {PASS: "1", FAIL: "2", ERROR: "3", SKIPPED: "4"}
#: script calls sent before the oldest one's answer is read
_IN_FLIGHT = 3
#: records per script call (each record's writes stay atomic and in order)
_PER_CALL = 100
RECHECK_FIELD = "\x1erecheck" + SEP

_RECORD = (
    """
local P = ARGV[#ARGV]
"""
    + ROW_OF
    + """
local names = {'forge', 'project', 'change', 'patchset'}
local IDX = {appeared = 1, expires = 2, day = 3, slot = 4, rch = 5,
  forge = 6, project = 7, change = 8, patchset = 9}
-- ``systems`` (read at the first report) and the ``sysproj:`` members this
-- call wrote: written again only if they changed
local meta, added = nil, {}
-- this process's memo of the (system, project) pairs it wrote (ARGV: the
-- memo's generation, a new one's) holds if ``forgot`` still names it (prune
-- renames it when it forgets a system; a flushed store has none)
local gen = redis.call('GET', P .. 'forgot')
if not gen then
  gen = ARGV[#ARGV - 1]
  redis.call('SET', P .. 'forgot', gen)
end
local every_pair = gen ~= ARGV[#ARGV - 2]
local psets = P .. 'psets'
-- the call's patch sets: their fields as read and changed by the call's
-- records (written at its end, one HSET and the expiry each), in order
local pss, order = {}, {}
-- an empty store's rows will hold every record (a store filled before: rows.rebuild)
local legacy = redis.call('EXISTS', P .. 'rows') == 0
if legacy and redis.call('EXISTS', P .. 'psets') == 0 then
  redis.call('SET', P .. 'rows', '1')
  legacy = false
end
-- a store filled before the rows keeps its report index (sys:<system>) until rebuilt
for k = 0, #KEYS - 1, 2 do
local a = k / 2 * 14
local kind, psid, at, expires = ARGV[a+1], ARGV[a+2], tonumber(ARGV[a+3]), tonumber(ARGV[a+4])
local s = pss[psid]
if not s then
  local known = redis.call('HMGET', KEYS[k+1], 'appeared', 'expires', 'day', 'slot', 'rch',
    'forge', 'project', 'change', 'patchset')
  -- up: the fields to write; wrote: a report or recheck stored; newslot: its
  -- slot given by this call (its rows zero until this call writes them)
  s = {ps = KEYS[k+1], psr = KEYS[k+2], known = known, up = {}, moved = false,
    wrote = false, newslot = false}
  pss[psid] = s
  order[#order + 1] = psid
end
local known, up = s.known, s.up
local function put(f, v)
  up[f] = v
  local i = IDX[f]
  if i then known[i] = v end
end
local had = known[2]
for i = 1, 4 do
  local v = ARGV[a+4+i]
  if v ~= '' and known[5+i] ~= v then put(names[i], v) end
end
local appeared = known[1] and tonumber(known[1])
-- fresh: a report or recheck not stored before; changed: a report's content
-- before this one; redo: every system's row again; placed: the patch set's row
local tidx, fresh, changed, redo, placed = nil, false, nil, false, false
if kind == 'appeared' then
  local t = at
  if appeared and appeared < at then t = appeared end
  if t ~= appeared then
    appeared, redo = t, true
    put('appeared', t)
    redis.call('ZADD', psets, t, psid)
    redis.call('ZADD', P .. 'psets:' .. ARGV[a+6], t, psid)
  end
  tidx = t
  if ARGV[a+7] ~= '' then
    -- the change's newest patch set
    local ck = P .. 'change:' .. ARGV[a+5] .. ':' .. ARGV[a+6] .. ':' .. ARGV[a+7]
    local cur = redis.call('GET', ck)
    local cur_t = cur and tonumber(redis.call('ZSCORE', psets, cur)) or nil
    if (not cur_t) or cur_t <= t then redis.call('SET', ck, psid) end
    redis.call('PEXPIREAT', ck, math.floor(expires * 1000))
  end
else
  if appeared then
    tidx = appeared
  else
    local cur = s.tidx or redis.call('ZSCORE', psets, psid)
    tidx = cur and tonumber(cur)
    if (not tidx) or at < tidx then
      tidx, placed = at, true
      redis.call('ZADD', psets, at, psid)
      redis.call('ZADD', P .. 'psets:' .. ARGV[a+6], at, psid)
    end
    s.tidx = tidx
  end
  if kind == 'merged' then
    put('merged', ARGV[a+3])
  elseif kind == 'recheck' then
    fresh = redis.call('HSET', KEYS[k+2], ARGV[a+9], ARGV[a+3]) == 1
  elseif kind == 'report' then
    -- a report's id is stable, its content may change (a check run completed)
    if redis.call('HSETNX', KEYS[k+2], ARGV[a+9], ARGV[a+10]) == 1 then
      fresh = true
    else
      local prev = redis.call('HGET', KEYS[k+2], ARGV[a+9])
      if prev ~= ARGV[a+10] then
        redis.call('HSET', KEYS[k+2], ARGV[a+9], ARGV[a+10])
        changed = prev
      end
    end
    if legacy and (fresh or changed) then
      redis.call('ZADD', P .. 'sys:' .. ARGV[a+11], at, psid .. '\\31' .. ARGV[a+9])
    end
    local system = ARGV[a+11]
    if not meta then
      meta = {}
      local all = redis.call('HGETALL', P .. 'systems')
      for j = 1, #all, 2 do meta[all[j]] = all[j + 1] end
    end
    if meta[system] ~= ARGV[a+12] then
      redis.call('HSET', P .. 'systems', system, ARGV[a+12])
      meta[system] = ARGV[a+12]
    end
    if every_pair or ARGV[a+14] ~= '' then
      local sp = system .. '\\0' .. ARGV[a+6]
      if not added[sp] then
        redis.call('SADD', P .. 'sysproj:' .. system, ARGV[a+6])
        added[sp] = true
      end
    end
  end
end
if fresh or changed then s.wrote = true end
local old = tonumber(known[2] or '0')
-- the rows (engine/radar/rows.py)
local rch = known[5] or ''
if kind == 'recheck' and fresh then
  rch = rch == '' and ARGV[a+3] or (rch .. ' ' .. ARGV[a+3])
  put('rch', rch)
  redo = true
end
local day = math.floor(tidx / DAY)
local oday, slot = known[3] and tonumber(known[3]), known[4] and tonumber(known[4])
if (not slot) or oday ~= day then
  if slot then
    set_prow(oday, slot, ZP)
    local _, systems = reports_of(KEYS[k+2], nil)
    for _, sys in ipairs(systems) do set_row(sys, oday, slot, ZR) end
  end
  slot = redis.call('RPUSH', P .. 'pslist:' .. day, psid) - 1
  put('day', day)
  put('slot', slot)
  s.newslot = true
  redo = true
end
if expires > old then put('expires', expires); s.moved = true; old = expires end
if redo or placed or (not had) then
  -- its expiry here is a lower bound: rows.py asks the key past it
  local nrech = 0
  if rch ~= '' then nrech = select(2, string.gsub(rch, ' ', ' ')) + 1 end
  set_prow(day, slot, struct.pack('<dddIHBx', tidx, appeared or 0, old,
    pid_of(ARGV[a+6]), nrech, appeared and 3 or 1))
end
local system = ARGV[a+11]
if fresh and kind == 'report' then
  add_rt(system, at, day, slot)
  if (not redo) and rch == '' then
    local was = get_row(system, day, slot, s.newslot)
    set_row(system, day, slot, row_plus(was, at, tonumber(ARGV[a+13])))
  elseif not redo then
    row_again(KEYS[k+2], system, day, slot, rch)
  end
end
if changed then
  -- the report's time moved
  local was = cjson.decode(changed).at
  if was ~= at then
    touched['t' .. math.floor(was / DAY) .. ':' .. system] = true
    local key = P .. 'rt:' .. system .. ':' .. math.floor(was / DAY)
    flush_rt(key)
    local blob = redis.call('GET', key) or ''
    local exact, packed, found = struct.pack('<dII', was, day, slot), struct.pack('<d', was), nil
    for j = 1, #blob, 16 do
      local entry = string.sub(blob, j, j + 15)
      if entry == exact then found = j; break end
      if (not found) and string.sub(entry, 1, 8) == packed then found = j end
    end
    if found then
      redis.call('SET', key, string.sub(blob, 1, found - 1) .. string.sub(blob, found + 16))
    end
    add_rt(system, at, day, slot)
  end
  if not redo then row_again(KEYS[k+2], system, day, slot, rch) end
end
if redo then
  local sums, systems = reports_of(KEYS[k+2], nil)
  for _, sys in ipairs(systems) do
    local e = sums[sys]
    set_row(sys, day, slot, row_of(e[1], e[2], e[3], rch))
  end
end
end
-- the patch sets' fields and expiry: ps: and psr: expire together
for _, psid in ipairs(order) do
  local s = pss[psid]
  local args = {}
  for f, v in pairs(s.up) do args[#args + 1] = f; args[#args + 1] = v end
  if #args > 0 then redis.call('HSET', s.ps, unpack(args)) end
  local at = math.floor(tonumber(s.known[2]) * 1000)
  if s.moved then redis.call('PEXPIREAT', s.ps, at) end
  if s.moved or s.wrote then redis.call('PEXPIREAT', s.psr, at) end
end
bump()
return gen
"""
)


@dataclass
class PatchSet:
    """A patch set as stored: its identity, when it appeared (None: not
    seen), merged, the index time, its reports per system
    (``[(id, at, verdict, detail)]``) and its rechecks' times."""

    psid: str
    forge: str
    project: str
    change: str | None
    patchset: str | None
    time: float
    appeared: float | None
    merged: float | None
    reports: dict[str, list[tuple[str, float, str | None, str | None]]] = field(
        default_factory=dict
    )
    rechecks: list[float] = field(default_factory=list)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RadarStore:
    """The radar's records in Redis (see the module docstring)."""

    def __init__(self, client: Any, prefix: str = "boss:", retention: float = 90 * 86400.0) -> None:
        self.client = client
        self.prefix = f"{prefix}radar:"
        self.retention = retention
        self.expiry_step = EXPIRY_STEP
        self._script = client.register_script(_RECORD)
        # the (system, project) pairs this store wrote to ``sysproj:``, while
        # the store's ``forgot`` names this generation (see the script)
        self._pairs: set[tuple[str, str]] = set()
        self._pairs_gen = ""

    @classmethod
    def from_url(
        cls, url: str, prefix: str = "boss:", retention: float = 90 * 86400.0
    ) -> RadarStore:
        from engine.store.connection import client_for

        return cls(client_for(url)[0], prefix, retention)

    def k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # -- writing ---------------------------------------------------------------------

    def resolve(self, record: Record) -> Record | None:
        """A recheck that names a change, not its patch set: on the change's
        newest patch set (None: none known)."""
        if record.key:
            return record
        psid = self.client.get(self.k("change", record.forge, record.project, record.change or ""))
        if psid is None:
            return None
        key = _s(psid).rsplit(":", 1)[1]
        return replace(record, key=key, patchset=key)

    def add(self, records: Iterable[Record], now: float | None = None) -> int:
        """Store ``records``; returns how many were stored (a record older
        than the retention is not). Rechecks that name a change are
        resolved first, before any of the batch is written (as one
        pipeline would)."""
        now = time.time() if now is None else now
        kept: list[Record] = []
        for record in records:
            if not record.key:
                resolved = self.resolve(record)
                if resolved is None:
                    continue
                record = resolved
            if record.at + self.retention < now:
                continue
            kept.append(record)
        if kept:
            self._run(kept)
        return len(kept)

    def _run(self, records: list[Record]) -> None:
        """``records`` by the script, ``_PER_CALL`` a call (the script loops
        over them, each record's writes as before), by EVALSHA on one
        connection with one call in flight while the next is encoded (no
        SCRIPT EXISTS round trip first). A server without the script
        (restarted, flushed) gets it and the call again on the same
        connection, and so does the call in flight behind it, which failed
        the same way: the calls run in the order they were made."""
        sha = self._script.sha
        pool = self.client.connection_pool
        conn = pool.get_connection()
        # the commands whose answers are awaited, in order (None: a SCRIPT LOAD)
        pending: deque[list[Any] | None] = deque()

        def answer() -> None:
            command = pending.popleft()
            try:
                gen = conn.read_response()
                if command is not None and gen is not None:
                    gen = _s(gen)
                    if gen != self._pairs_gen:
                        # a store that forgot a system, or a new one: the memo is void
                        self._pairs.clear()
                        self._pairs_gen = gen
            except NoScriptError:
                conn.send_command("SCRIPT", "LOAD", self._script.script)
                conn.send_command("EVALSHA", sha, *(command or []))
                pending.extend([None, command])

        try:
            for start in range(0, len(records), _PER_CALL):
                command = self._command(records[start : start + _PER_CALL])
                conn.send_command("EVALSHA", sha, *command)
                pending.append(command)
                while len(pending) > 1:
                    answer()
            while pending:
                answer()
        except BaseException:
            conn.disconnect()  # replies may be pending: never reuse it
            self._pairs.clear()  # some may not be written
            self._pairs_gen = ""
            raise
        finally:
            pool.release(conn)

    def _command(self, records: list[Record]) -> list[Any]:
        """EVALSHA's arguments after the SHA for ``records``: the number of
        keys, every record's two keys (``ps:``, ``psr:``), every record's
        arguments (``_NARGS``), the pairs memo's generation, a new one's, the
        key prefix. A patch set's keys are made once a call (a call's
        records are mostly of a few patch sets); a (system, project) pair
        this process wrote before is not written again while the memo holds
        (the script says when it does not)."""
        keys: list[str] = []
        args: list[str] = []
        p, step, retention = self.prefix, self.expiry_step, self.retention
        made: dict[str, tuple[str, str]] = {}
        pairs = self._pairs
        for record in records:
            psid = record.psid
            system = record.system or ""
            value = sysmeta = fieldname = code = new_pair = ""
            kind = record.kind
            if kind == REPORT:
                fieldname = f"{system}{SEP}{record.id}"
                value = _compact(
                    {"at": record.at, "verdict": record.verdict, "detail": record.detail}
                )
                meta = (record.classified, record.gate, record.forge)
                sysmeta = _SYSMETA.get(meta) or _SYSMETA.setdefault(
                    meta,
                    _compact({"classified": meta[0], "gate": meta[1], "forge": meta[2]}),
                )
                code = _CODE.get(record.verdict or "", "")
                pair = (system, record.project)
                if pair not in pairs:
                    pairs.add(pair)
                    new_pair = "1"
            elif kind == RECHECK:
                fieldname = RECHECK_FIELD + record.id
            elif kind not in (APPEARED, MERGED):
                raise ValueError(f"unknown record kind {kind!r}")
            both = made.get(psid)
            if both is None:
                both = made[psid] = (f"{p}ps:{psid}", f"{p}psr:{psid}")
            keys += both
            at = record.at
            args += (
                kind,
                psid,
                repr(at),
                repr(float(math.ceil((at + retention) / step) * step)),
                record.forge,
                record.project,
                record.change or "",
                record.patchset or "",
                fieldname,
                value,
                system,
                sysmeta,
                code,
                new_pair,
            )
        return [len(keys), *keys, *args, self._pairs_gen, uuid.uuid4().hex, p]

    def prune(self, now: float | None = None) -> int:
        """Trim the indexes of what is older than the retention; returns the
        entries removed (a system left with no report is forgotten). The
        rows and report entries of the days wholly before the cut go; what
        they keep of the cut's own day is left out of everything from then
        on (the ``pruned`` mark)."""
        now = time.time() if now is None else now
        cut = now - self.retention
        cut_day = math.floor(cut / DAY)
        before = self._pruned()
        if before < cut:
            self.client.set(self.k("pruned"), repr(cut))
        removed = 0
        projects: set[str] = set()
        systems = list(self.systems())
        oldest = self.client.zrange(self.k("psets"), 0, 0, withscores=True)
        first_day = math.floor(oldest[0][1] / DAY) if oldest else cut_day
        for system in systems:
            days = self._rt_days(system)
            old = [d for d in days if d < cut_day]
            if old:
                first_day = min(first_day, old[0])
                pipe = self.client.pipeline(transaction=False)
                for day in old:
                    pipe.strlen(self.k("rt", system, str(day)))
                removed += sum(pipe.execute()) // RT.itemsize
            if cut_day in days:
                blob = self.client.get(self.k("rt", system, str(cut_day))) or b""
                at = np.frombuffer(blob, dtype=RT)["at"]
                removed += int(((at < cut) & (at >= before)).sum())
            if self.last_report(system) is None:
                self.client.hdel(self.k("systems"), system)
                self.client.delete(self.k("sysproj", system), self.k("rtdays", system))
                # every writer's memo of the pairs it wrote is void
                self.client.set(self.k("forgot"), uuid.uuid4().hex)
                old = days
            else:
                projects |= self.projects(system)
            pipe = self.client.pipeline(transaction=False)
            for day in old:
                pipe.delete(self.k("rt", system, str(day)))
            pipe.zremrangebyscore(self.k("rtdays", system), "-inf", f"({cut_day}")
            pipe.execute()
        removed += self.client.zremrangebyscore(self.k("psets"), "-inf", f"({cut}")
        for project in projects:
            self.client.zremrangebyscore(self.k("psets", project), "-inf", f"({cut}")
        pipe = self.client.pipeline(transaction=False)
        for day in range(first_day, cut_day):
            pipe.delete(self.k("prow", str(day)), self.k("pslist", str(day)))
            for system in systems:
                pipe.delete(self.k("rows", system, str(day)))
        pipe.execute()
        # readers' caches drop those days
        stamp(self.client, self.prefix, [f"p{day}" for day in range(first_day, cut_day)])
        return removed

    # -- the runs' cursor ------------------------------------------------------------

    def runs_cursor(self) -> str:
        value = self.client.get(self.k("cursor", "runs"))
        return _s(value) if value is not None else "0-0"

    def set_runs_cursor(self, cursor: str) -> None:
        self.client.set(self.k("cursor", "runs"), cursor)

    # -- reading ---------------------------------------------------------------------

    def systems(self) -> dict[str, dict[str, Any]]:
        """Every system: ``{name: {classified, gate, forge}}``."""
        return {_s(k): json.loads(v) for k, v in self.client.hgetall(self.k("systems")).items()}

    def projects(self, system: str) -> set[str]:
        return {_s(p) for p in self.client.smembers(self.k("sysproj", system))}

    def patch_sets(self, since: float, until: float, project: str | None = None) -> list[PatchSet]:
        """The patch sets whose index time is in ``[since, until]``, with all
        their reports and rechecks (two reads per patch set, pipelined)."""
        index = self.k("psets", project) if project else self.k("psets")
        rows = self.client.zrangebyscore(index, since, until, withscores=True)
        out: list[PatchSet] = []
        chunk = 2000
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            out += self._read(part)
        return out

    def _read(self, rows: list[tuple[Any, float]]) -> list[PatchSet]:
        """The patch sets of index ``rows`` (psid, score) with their reports
        and rechecks (two reads each, pipelined); expired ones left out."""
        pipe = self.client.pipeline(transaction=False)
        for psid, _ in rows:
            pipe.hgetall(self.k("ps", _s(psid)))
            pipe.hgetall(self.k("psr", _s(psid)))
        answers = pipe.execute()
        out = []
        for i, (psid, score) in enumerate(rows):
            meta = {_s(k): _s(v) for k, v in answers[2 * i].items()}
            if meta:
                out.append(self._patch_set(_s(psid), score, meta, answers[2 * i + 1]))
        return out

    def newest(
        self,
        since: float,
        until: float,
        project: str | None,
        limit: int,
        system: str | None = None,
    ) -> list[PatchSet]:
        """The newest ``limit`` patch sets of ``[since, until]`` (those
        ``system`` reported on, when given), newest first as ``(time, psid)``
        orders them: read from the newest back, a chunk at a time."""
        index = self.k("psets", project) if project else self.k("psets")
        out: list[PatchSet] = []
        chunk, start = max(limit, 50), 0
        while len(out) < limit:
            rows = self.client.zrevrangebyscore(
                index, until, since, start=start, num=chunk, withscores=True
            )
            if not rows:
                break
            start += len(rows)
            out += [ps for ps in self._read(rows) if system is None or system in ps.reports]
            chunk = min(chunk * 4, 5000)
        return out[:limit]

    @staticmethod
    def _patch_set(
        psid: str, score: float, meta: dict[str, str], fields: dict[Any, Any]
    ) -> PatchSet:
        ps = PatchSet(
            psid,
            meta.get("forge", ""),
            meta.get("project", ""),
            meta.get("change"),
            meta.get("patchset"),
            float(score),
            float(meta["appeared"]) if "appeared" in meta else None,
            float(meta["merged"]) if "merged" in meta else None,
        )
        for key, value in fields.items():
            name = _s(key)
            if name.startswith(RECHECK_FIELD):
                ps.rechecks.append(float(_s(value)))
                continue
            system, _, rid = name.partition(SEP)
            data = json.loads(value)
            ps.reports.setdefault(system, []).append(
                (rid, float(data["at"]), data.get("verdict"), data.get("detail"))
            )
        ps.rechecks.sort()
        for reports in ps.reports.values():
            reports.sort(key=lambda r: (r[1], r[0]))
        return ps

    def _pruned(self) -> float:
        value = self.client.get(self.k("pruned"))
        return float(value) if value is not None else -math.inf

    def _rt(self, system: str, days: Iterable[int]) -> Any:
        """``system``'s report entries (``rows.RT``) of ``days``, those the
        last prune left in the cut's day left out."""
        pipe = self.client.pipeline(transaction=False)
        for day in days:
            pipe.get(self.k("rt", system, str(day)))
        entries = np.frombuffer(b"".join(b or b"" for b in pipe.execute()), dtype=RT)
        return entries[entries["at"] >= self._pruned()]

    def _rt_days(self, system: str, lo: float = -math.inf, hi: float = math.inf) -> list[int]:
        """The days ``system`` has report entries on, ``[lo, hi]``, oldest first."""
        lo_s = "-inf" if lo == -math.inf else str(math.floor(lo / DAY))
        hi_s = "+inf" if hi == math.inf else str(math.floor(hi / DAY))
        return [int(d) for d in self.client.zrangebyscore(self.k("rtdays", system), lo_s, hi_s)]

    def _legacy(self) -> bool:
        """A store filled before the rows: its report index is ``sys:<system>``
        (a zset of ``<psid>\\x1f<field>`` by report time) until ``rows.rebuild``."""
        return not self.client.exists(self.k("rows"))

    def report_times(self, system: str, since: float, until: float) -> list[float]:
        """The times of ``system``'s reports in ``[since, until]``, oldest first."""
        if self._legacy():
            rows = self.client.zrangebyscore(self.k("sys", system), since, until, withscores=True)
            return [float(score) for _, score in rows]
        at = self._rt(system, self._rt_days(system, since, until))["at"]
        return sorted(float(t) for t in at[(at >= since) & (at <= until)])

    def first_report(self, system: str, until: float) -> float | None:
        """The time of ``system``'s oldest report at or before ``until``."""
        if self._legacy():
            rows = self.client.zrangebyscore(
                self.k("sys", system), 0, until, start=0, num=1, withscores=True
            )
            return float(rows[0][1]) if rows else None
        for day in self._rt_days(system, 0, until):
            at = self._rt(system, [day])["at"]
            at = at[(at >= 0) & (at <= until)]
            if len(at):
                return float(at.min())
        return None

    def last_report(self, system: str) -> float | None:
        """The time of ``system``'s newest report."""
        if self._legacy():
            rows = self.client.zrevrange(self.k("sys", system), 0, 0, withscores=True)
            return float(rows[0][1]) if rows else None
        for day in reversed(self._rt_days(system)):
            at = self._rt(system, [day])["at"]
            if len(at):
                return float(at.max())
        return None

    def recent(self, system: str, limit: int = 20) -> list[dict[str, Any]]:
        """``system``'s newest reports: ``psid``, ``at``, ``verdict``, ``detail``, ..."""
        if self._legacy():
            rows = self.client.zrevrange(self.k("sys", system), 0, limit - 1, withscores=True)
            return self._reports(
                [(_s(m).partition(SEP)[0], _s(m).partition(SEP)[2]) for m, _ in rows]
            )
        days = self._rt_days(system)
        picked: list[Any] = []
        while days and sum(len(p) for p in picked) < limit:
            picked.append(self._rt(system, [days.pop()]))
        if not picked:
            return []
        entries = np.concatenate(picked)
        entries = entries[np.argsort(-entries["at"], kind="stable")][:limit]
        pipe = self.client.pipeline(transaction=False)
        for e in entries:
            pipe.lindex(self.k("pslist", str(int(e["day"]))), int(e["slot"]))
        psids = [_s(p) if p is not None else None for p in pipe.execute()]
        known = sorted({p for p in psids if p})
        pipe = self.client.pipeline(transaction=False)
        for psid in known:
            pipe.hgetall(self.k("psr", psid))
        fields = dict(zip(known, pipe.execute(), strict=True))
        prefix = system + SEP
        pairs: list[tuple[str, str]] = []
        for e, psid in zip(entries, psids, strict=True):
            # the report of the entry: the system's field on the patch set with its time
            for key, raw in sorted(fields.get(psid or "", {}).items(), reverse=True):
                name = _s(key)
                if (
                    name.startswith(prefix)
                    and (psid, name) not in pairs
                    and float(json.loads(raw)["at"]) == float(e["at"])
                ):
                    pairs.append((psid, name))
                    break
        return self._reports(pairs)

    def _reports(self, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """The reports ``(psid, field)`` with their patch sets' identity."""
        pipe = self.client.pipeline(transaction=False)
        for psid, fieldname in pairs:
            pipe.hget(self.k("psr", psid), fieldname)
            pipe.hgetall(self.k("ps", psid))
        answers = pipe.execute()
        out = []
        for i, (psid, fieldname) in enumerate(pairs):
            raw, meta = answers[2 * i], {_s(k): _s(v) for k, v in answers[2 * i + 1].items()}
            if raw is None:
                continue
            data = json.loads(raw)
            out.append(
                {
                    "psid": psid,
                    "project": meta.get("project"),
                    "change": meta.get("change"),
                    "patchset": meta.get("patchset"),
                    "id": fieldname.partition(SEP)[2],
                    "at": data["at"],
                    "verdict": data.get("verdict"),
                    "detail": data.get("detail"),
                    "appeared": float(meta["appeared"]) if "appeared" in meta else None,
                }
            )
        return out
