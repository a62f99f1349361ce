"""Who launched a run, and the run list's filters beyond status and name.

The run store indexes runs by status and by process name
(``engine.store.redis_store``). The web UI adds, under ``<prefix>web:``::

    web:owner                  hash wfid -> the user who launched it from the UI
    web:runs:f:<field>=<value> zset wfid -> launched_at: runs whose launch
                               field (top level, scalar) had that value;
                               ``launched_by`` is the owner
    web:fields                 set: the field names indexed so far
    web:idx:seen               zset wfid -> launched_at: runs indexed
    web:idx:cursor             string: launched_at up to which every run is indexed

The field indexes are kept by ``catch_up`` (called before a filtered list,
at most every half second, by any web process: every write is idempotent):
it reads the runs launched since the cursor from the store's ``runs``
index, and indexes each once. So no other component has to know about it,
and a run launched by the CLI or a launcher is filterable too.

Run ownership: the UI records the user *before* it sends the launch
message (``web:owner``); runs launched elsewhere have no owner and only
admins act on them.

Filtering by a field that is not indexed (a nested ``a.b`` path, or a name
left out of ``[web] index_fields``) falls back to a bounded scan of the
newest ``scan_limit`` candidate runs, and says so (``partial``).
"""

from __future__ import annotations

import functools
import json
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import redis

from engine.core import runstate
from engine.core.outcome import run_outcome
from engine.core.states import RUN_STATES
from engine.store.base import RunSummary
from engine.store.redis_store import call_readonly

__all__ = ["Page", "RunIndex"]

OWNER_FIELD = "launched_by"


@functools.cache
def _script() -> str:
    return resources.files("webui").joinpath("runs_filter.lua").read_text(encoding="utf-8")


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str) and len(value) <= 200:
        return value
    return None


def lookup(fields: dict[str, Any], path: str) -> Any:
    cur: Any = fields
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


@dataclass
class Page:
    """One page of a run list."""

    runs: list[RunSummary]
    total: int  # runs that pass every filter (status included)
    counts: dict[str, int]  # per status, of the runs that pass the other filters
    partial: bool = False  # a field was not indexed: only the newest runs were looked at
    scanned: int = 0
    notes: list[str] = field(default_factory=list)


class RunIndex:
    """Ownership and field indexes (see the module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        *,
        indexed: set[str] | None = None,
        scan_limit: int = 5000,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.indexed = indexed
        self.scan_limit = scan_limit
        self.k = f"{prefix}web:"
        self._filter = client.register_script(_script())
        self._last = 0.0
        self._lock = threading.Lock()

    # -- ownership -----------------------------------------------------------------
    def set_owner(self, wfid: str, user: str) -> None:
        self.client.hset(self.k + "owner", wfid, user)

    def owner(self, wfid: str) -> str | None:
        raw = self.client.hget(self.k + "owner", wfid)
        return None if raw is None else _s(raw)

    def owners(self, wfids: list[str]) -> dict[str, str | None]:
        if not wfids:
            return {}
        raw = self.client.hmget(self.k + "owner", wfids)
        return {w: (None if r is None else _s(r)) for w, r in zip(wfids, raw, strict=True)}

    # -- indexing ------------------------------------------------------------------
    def _key(self, name: str, value: str) -> str:
        return f"{self.k}runs:f:{name}={value}"

    def catch_up(self, *, force: bool = False, batch: int = 500) -> int:
        """Index the runs launched since the cursor; how many were new."""
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last < 0.5:
                return 0
            self._last = now
        cursor = float(self.client.get(self.k + "idx:cursor") or 0)
        # a run is stored a moment after its launched_at (and engine hosts'
        # clocks differ): look a minute back, skipping the runs seen already
        lo = max(0.0, cursor - 60.0)
        pipe = self.client.pipeline(transaction=False)
        pipe.zrangebyscore(f"{self.prefix}runs", lo, "+inf", withscores=True)
        pipe.zrangebyscore(self.k + "idx:seen", lo, "+inf")
        rows, seen_raw = pipe.execute()
        seen = set(seen_raw)
        fresh = [(_s(w), at) for w, at in rows if w not in seen]
        for i in range(0, len(fresh), batch):
            self._index(fresh[i : i + batch])
        if rows:
            top = max(cursor, rows[-1][1])
            pipe = self.client.pipeline(transaction=False)
            pipe.set(self.k + "idx:cursor", repr(top))
            pipe.zremrangebyscore(self.k + "idx:seen", "-inf", f"({top - 120.0!r}")
            pipe.execute()
        return len(fresh)

    def _index(self, runs: list[tuple[str, float]]) -> int:
        pipe = self.client.pipeline(transaction=False)
        for wfid, _ in runs:
            pipe.hget(f"{self.prefix}run:{wfid}", "state")
        pipe.hmget(self.k + "owner", [w for w, _ in runs])
        *states, owners = pipe.execute()
        pipe = self.client.pipeline(transaction=False)
        names: set[str] = set()
        for (wfid, at), blob, owner in zip(runs, states, owners, strict=True):
            if blob is None:
                continue
            fields = runstate.stored_fields(json.loads(blob))
            for name, value in fields.items():
                if self.indexed is not None and name not in self.indexed:
                    continue
                text = _scalar(value)
                if text is not None and "=" not in name:
                    pipe.zadd(self._key(name, text), {wfid: at})
                    names.add(name)
            if owner is not None:
                pipe.zadd(self._key(OWNER_FIELD, _s(owner)), {wfid: at})
                names.add(OWNER_FIELD)
            pipe.zadd(self.k + "idx:seen", {wfid: at})
        if names:
            pipe.sadd(self.k + "fields", *names)
        pipe.execute()
        return len(runs)

    def field_names(self) -> list[str]:
        return sorted(_s(x) for x in self.client.smembers(self.k + "fields"))

    def is_indexed(self, name: str) -> bool:
        if name == OWNER_FIELD:
            return True
        return "." not in name and (self.indexed is None or name in self.indexed)

    # -- listing -------------------------------------------------------------------
    def page(
        self,
        store: Any,
        *,
        status: str | None = None,
        name: str | None = None,
        filters: dict[str, str] | None = None,
        offset: int = 0,
        limit: int = 50,
        outcome: str | None = None,
    ) -> Page:
        """A page of runs, newest first, with the counts per status.
        ``outcome``: only runs with that outcome (``engine.core.outcome``,
        kept in the run hash by the store)."""
        filters = {k: v for k, v in (filters or {}).items() if k and v is not None}
        if not filters and name is None and outcome is None:
            counts = store.count_runs()
            runs = store.list_runs(status=status, offset=offset, limit=limit)
            total = counts.get(status, 0) if status else sum(counts.values())
            return Page(runs, total, counts)
        indexed = {k: v for k, v in filters.items() if self.is_indexed(k)}
        scanned = {k: v for k, v in filters.items() if k not in indexed}
        if indexed:
            self.catch_up()
        keys = [self._key(k, v) for k, v in indexed.items()]
        if name is not None:
            keys.append(f"{self.prefix}runs:name:{name}")
        if scanned:
            return self._scan(
                keys or [f"{self.prefix}runs"], status, scanned, offset, limit, outcome
            )
        flat_counts, rows = call_readonly(
            self._filter,
            keys or [f"{self.prefix}runs"],
            [f"{self.prefix}run:", status or "", max(0, offset), limit, outcome or ""],
        )
        counts = dict.fromkeys(RUN_STATES, 0)
        for i in range(0, len(flat_counts), 2):
            counts[_s(flat_counts[i])] = int(flat_counts[i + 1])
        runs = [
            RunSummary(_s(rows[i]), _s(rows[i + 1]), _s(rows[i + 2]), float(rows[i + 3]))
            for i in range(0, len(rows), 4)
        ]
        total = counts.get(status, 0) if status else sum(counts.values())
        return Page(runs, total, counts)

    def _scan(
        self,
        keys: list[str],
        status: str | None,
        wanted: dict[str, str],
        offset: int,
        limit: int,
        outcome: str | None = None,
    ) -> Page:
        """Bounded scan for filters on fields that are not indexed."""
        # the candidates: the indexed filters first (one index, or their
        # intersection through the script with no page), newest first
        if len(keys) == 1:
            ids = [_s(x) for x in self.client.zrevrange(keys[0], 0, self.scan_limit - 1)]
        else:
            _, rows = call_readonly(
                self._filter, keys, [f"{self.prefix}run:", "", 0, self.scan_limit]
            )
            ids = [_s(rows[i]) for i in range(0, len(rows), 4)]
        counts = dict.fromkeys(RUN_STATES, 0)
        matched: list[RunSummary] = []
        for i in range(0, len(ids), 200):
            chunk = ids[i : i + 200]
            pipe = self.client.pipeline(transaction=False)
            for wfid in chunk:
                pipe.hget(f"{self.prefix}run:{wfid}", "state")
            for wfid, blob in zip(chunk, pipe.execute(), strict=True):
                if blob is None:
                    continue
                st = json.loads(blob)
                fields = runstate.stored_fields(st)
                if all(_text(lookup(fields, k)) == v for k, v in wanted.items()):
                    run_status = runstate.status(st)
                    if outcome is not None and run_outcome(run_status, fields) != outcome:
                        continue
                    counts[run_status] = counts.get(run_status, 0) + 1
                    if status is None or run_status == status:
                        matched.append(
                            RunSummary(wfid, st["name"], run_status, float(st["launched_at"]))
                        )
        total = len(matched)
        note = (
            f"{', '.join(wanted)} {'is' if len(wanted) == 1 else 'are'} not indexed: "
            f"looked at the newest {len(ids)} runs only"
        )
        return Page(
            matched[offset : offset + limit],
            total,
            counts,
            partial=len(ids) >= self.scan_limit,
            scanned=len(ids),
            notes=[note],
        )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    s = _scalar(value)
    return s if s is not None else json.dumps(value, sort_keys=True)
