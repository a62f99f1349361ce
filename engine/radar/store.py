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
``sys:<system>``       zset    ``<psid>\\x1f<id>`` by report time (per system)
``systems``            hash    system -> JSON ``classified``, ``gate``, ``forge``
``sysproj:<system>``   set     the projects it reported on
``change:<forge>:<p>:<c>``  string  the change's newest patch set (psid)
``cursor:runs``        string  the run store's transitions read so far
=====================  ======  ==================================================

Every write is one Lua script (atomic, one round trip) and idempotent: a
record's fields are keyed by its id, a patch set's index time is the time
it appeared, else the earliest of its records (the same whatever order
they come in). ``ps:`` and ``psr:`` expire ``retention`` after their
newest record; the indexes are trimmed by :meth:`RadarStore.prune`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from engine.radar.model import APPEARED, MERGED, RECHECK, REPORT, Record

__all__ = ["PatchSet", "RadarStore"]

SEP = "\x1f"
RECHECK_FIELD = "\x1erecheck" + SEP

_RECORD = """
local kind, psid, at, expires = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local names = {'forge', 'project', 'change', 'patchset'}
for i = 1, 4 do
  if ARGV[4 + i] ~= '' then redis.call('HSET', KEYS[1], names[i], ARGV[4 + i]) end
end
local appeared = redis.call('HGET', KEYS[1], 'appeared')
if kind == 'appeared' then
  local t = at
  if appeared and tonumber(appeared) < at then t = tonumber(appeared) end
  redis.call('HSET', KEYS[1], 'appeared', t)
  redis.call('ZADD', KEYS[3], t, psid)
  redis.call('ZADD', KEYS[4], t, psid)
  if ARGV[12] ~= '' then
    local cur = redis.call('GET', KEYS[7])
    local cur_t = cur and tonumber(redis.call('ZSCORE', KEYS[3], cur)) or nil
    if (not cur_t) or cur_t <= t then redis.call('SET', KEYS[7], psid) end
    redis.call('PEXPIREAT', KEYS[7], math.floor(expires * 1000))
  end
else
  if not appeared then
    local cur = redis.call('ZSCORE', KEYS[3], psid)
    if (not cur) or at < tonumber(cur) then
      redis.call('ZADD', KEYS[3], at, psid)
      redis.call('ZADD', KEYS[4], at, psid)
    end
  end
  if kind == 'merged' then
    redis.call('HSET', KEYS[1], 'merged', ARGV[3])
  elseif kind == 'recheck' then
    redis.call('HSET', KEYS[2], ARGV[9], ARGV[3])
  elseif kind == 'report' then
    redis.call('HSET', KEYS[2], ARGV[9], ARGV[10])
    redis.call('ZADD', KEYS[5], at, psid .. ARGV[13] .. ARGV[9])
    redis.call('HSET', KEYS[6], ARGV[11], ARGV[14])
    redis.call('SADD', KEYS[8], ARGV[6])
  end
end
local old = tonumber(redis.call('HGET', KEYS[1], 'expires') or '0')
if expires > old then
  redis.call('HSET', KEYS[1], 'expires', expires)
  redis.call('PEXPIREAT', KEYS[1], math.floor(expires * 1000))
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('PEXPIREAT', KEYS[2], math.floor(expires * 1000))
  end
elseif redis.call('TTL', KEYS[2]) == -1 then
  redis.call('PEXPIREAT', KEYS[2], math.floor(old * 1000))
end
return 1
"""


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
        self._script = client.register_script(_RECORD)

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
        """Store ``records`` (one pipeline); returns how many were stored
        (a record older than the retention is not)."""
        now = time.time() if now is None else now
        pipe = self.client.pipeline(transaction=False)
        stored = 0
        for record in records:
            if not record.key:
                resolved = self.resolve(record)
                if resolved is None:
                    continue
                record = resolved
            if record.at + self.retention < now:
                continue
            self._queue(pipe, record)
            stored += 1
        if stored:
            pipe.execute()
        return stored

    def _queue(self, pipe: Any, record: Record) -> None:
        psid = record.psid
        system = record.system or ""
        value = ""
        sysmeta = ""
        fieldname = ""
        if record.kind == REPORT:
            fieldname = f"{system}{SEP}{record.id}"
            value = json.dumps(
                {"at": record.at, "verdict": record.verdict, "detail": record.detail},
                separators=(",", ":"),
            )
            sysmeta = json.dumps(
                {"classified": record.classified, "gate": record.gate, "forge": record.forge},
                separators=(",", ":"),
            )
        elif record.kind == RECHECK:
            fieldname = RECHECK_FIELD + record.id
        elif record.kind not in (APPEARED, MERGED):
            raise ValueError(f"unknown record kind {record.kind!r}")
        change_key = (
            self.k("change", record.forge, record.project, record.change) if record.change else ""
        )
        keys = [
            self.k("ps", psid),
            self.k("psr", psid),
            self.k("psets"),
            self.k("psets", record.project),
            self.k("sys", system),
            self.k("systems"),
            change_key or self.k("change", "-"),
            self.k("sysproj", system),
        ]
        args = [
            record.kind,
            psid,
            repr(record.at),
            repr(record.at + self.retention),
            record.forge,
            record.project,
            record.change or "",
            record.patchset or "",
            fieldname,
            value,
            system,
            change_key,
            SEP,
            sysmeta,
        ]
        self._script(keys=keys, args=args, client=pipe)

    def prune(self, now: float | None = None) -> int:
        """Trim the indexes of what is older than the retention; returns the
        entries removed (a system left with no report is forgotten)."""
        now = time.time() if now is None else now
        cut = now - self.retention
        removed = 0
        projects: set[str] = set()
        for system in self.systems():
            removed += self.client.zremrangebyscore(self.k("sys", system), "-inf", f"({cut}")
            if not self.client.exists(self.k("sys", system)):
                self.client.hdel(self.k("systems"), system)
                self.client.delete(self.k("sysproj", system))
            else:
                projects |= self.projects(system)
        removed += self.client.zremrangebyscore(self.k("psets"), "-inf", f"({cut}")
        for project in projects:
            self.client.zremrangebyscore(self.k("psets", project), "-inf", f"({cut}")
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
            pipe = self.client.pipeline(transaction=False)
            for psid, _ in part:
                pipe.hgetall(self.k("ps", _s(psid)))
                pipe.hgetall(self.k("psr", _s(psid)))
            answers = pipe.execute()
            for i, (psid, score) in enumerate(part):
                meta = {_s(k): _s(v) for k, v in answers[2 * i].items()}
                if not meta:
                    continue  # expired
                out.append(self._patch_set(_s(psid), score, meta, answers[2 * i + 1]))
        return out

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

    def report_times(self, system: str, since: float, until: float) -> list[float]:
        """The times of ``system``'s reports in ``[since, until]``, oldest first."""
        rows = self.client.zrangebyscore(self.k("sys", system), since, until, withscores=True)
        return [float(score) for _, score in rows]

    def last_report(self, system: str) -> float | None:
        rows = self.client.zrevrange(self.k("sys", system), 0, 0, withscores=True)
        return float(rows[0][1]) if rows else None

    def recent(self, system: str, limit: int = 20) -> list[dict[str, Any]]:
        """``system``'s newest reports: ``psid``, ``at``, ``verdict``, ``detail``, ..."""
        rows = self.client.zrevrange(self.k("sys", system), 0, limit - 1, withscores=True)
        pipe = self.client.pipeline(transaction=False)
        members = []
        for member, _score in rows:
            psid, _, fieldname = _s(member).partition(SEP)
            members.append((psid, fieldname))
            pipe.hget(self.k("psr", psid), fieldname)
            pipe.hgetall(self.k("ps", psid))
        answers = pipe.execute()
        out = []
        for i, (psid, fieldname) in enumerate(members):
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
