"""``MemoryStore``: the run store in one process's memory.

For the in-process harness and the benchmark, so it is built for speed:

* One lock guards everything; serialising and deserialising happen outside
  it.
* Run states (and timer payloads, listener specs, error lists) are kept as
  ``marshal`` bytes: ``load_run`` hands out an independent copy for the cost
  of one ``marshal.loads`` (several times faster than ``copy.deepcopy`` or
  JSON), and a caller that keeps mutating a saved state cannot reach into the
  store.
* The run indexes (all, per status, per name, with errors) are sorted lists
  of ``(launched_at, wfid)`` kept with ``bisect``, so a page of
  ``list_runs`` costs its own length, not a sort of every run. Ties on
  ``launched_at`` order by wfid, as a Redis sorted set does, so both stores
  list in the same order.
* Timers sit in a heap with lazy deletion (a replaced or cancelled timer's
  old entry is skipped when it reaches the top).
* The transitions stream (``RedisStore``'s ``transitions``) is off by
  default (``transitions=0``: the harness and the benchmark do not pay for
  it); ``MemoryStore(transitions=N)`` keeps the newest N in a deque, with
  ids shaped like Redis stream ids.
"""

from __future__ import annotations

import heapq
import marshal
import threading
import time
from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass
from typing import Any

from engine.core.registrations import Registration
from engine.core.states import RUN_STATES
from engine.store.base import (
    ConflictError,
    RunExists,
    RunStore,
    RunSummary,
    index_fields,
    transition,
)

__all__ = ["MemoryStore"]

# marshal version 2 writes no back-references: an object that appears twice in
# a state comes back as two independent copies, exactly as it would from the
# JSON that RedisStore keeps, so both stores behave alike.


def _dumps(value: Any) -> bytes:
    return marshal.dumps(value, 2)


_loads = marshal.loads


@dataclass(slots=True, eq=False)
class _Run:
    blob: bytes
    version: int
    status: str
    name: str
    at: float
    errors: bytes | None


class _Index:
    """A sorted list of ``(launched_at, wfid)``; iterated newest first."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[tuple[float, str]] = []

    def add(self, at: float, wfid: str) -> None:
        insort(self.items, (at, wfid))

    def remove(self, at: float, wfid: str) -> None:
        items = self.items
        i = bisect_left(items, (at, wfid))
        if i < len(items) and items[i] == (at, wfid):
            del items[i]

    def __len__(self) -> int:
        return len(self.items)

    def page(self, offset: int, limit: int) -> list[str]:
        items = self.items
        stop = len(items) - offset
        start = max(0, stop - limit)
        return [items[i][1] for i in range(stop - 1, start - 1, -1)]

    def newest_first(self):
        return (wfid for _, wfid in reversed(self.items))


def _index_fields(state: dict[str, Any]) -> tuple[str, str, str, float, bytes | None]:
    wfid, status, name, at, errors = index_fields(state)
    return wfid, status, name, at, None if errors is None else _dumps(errors)


class MemoryStore(RunStore):
    """The run store in memory (see the module docstring). Thread-safe."""

    durable = False  # it dies with the engine's process: no outbox needed

    def __init__(self, *, transitions: int = 0) -> None:
        self._lock = threading.Lock()
        #: the transitions stream, when kept: (id, kind, summary), newest last
        self._transitions: deque[tuple[str, str, dict[str, Any]]] | None = (
            deque(maxlen=transitions) if transitions > 0 else None
        )
        self._live: dict[str, tuple[str, dict[str, Any]]] = {}  # wfid -> (status, summary)
        self._last_id = (0, 0)
        self._definitions: dict[str, tuple[str, str | None]] = {}
        self._runs: dict[str, _Run] = {}
        self._all = _Index()
        self._by_status: dict[str, _Index] = {}
        self._by_name: dict[str, _Index] = {}
        self._with_errors = _Index()
        # timers: id -> (due, generation, payload); heap of (due, id, generation)
        self._timers: dict[str, tuple[float, int, bytes]] = {}
        self._heap: list[tuple[float, str, int]] = []
        self._generation = 0
        self._participants: list[Registration] = []
        self._listeners: dict[str, bytes] = {}
        self._listeners_v = 0
        self._mutexes: dict[str, tuple[str, deque[str]]] = {}
        self._engines: dict[str, tuple[float, dict[str, Any]]] = {}

    # -- definitions ------------------------------------------------------
    def put_definition(self, digest: str, source: str, filename: str | None = None) -> None:
        with self._lock:
            self._definitions.setdefault(digest, (source, filename))

    def get_definition(self, digest: str) -> tuple[str, str | None] | None:
        return self._definitions.get(digest)

    # -- runs -------------------------------------------------------------
    def _index(self, wfid: str, status: str, name: str, at: float, errors: bytes | None) -> None:
        self._all.add(at, wfid)
        idx = self._by_status.get(status)
        if idx is None:
            idx = self._by_status[status] = _Index()
        idx.add(at, wfid)
        idx = self._by_name.get(name)
        if idx is None:
            idx = self._by_name[name] = _Index()
        idx.add(at, wfid)
        if errors is not None:
            self._with_errors.add(at, wfid)

    def _unindex(self, wfid: str, run: _Run) -> None:
        at = run.at
        self._all.remove(at, wfid)
        self._by_status[run.status].remove(at, wfid)
        self._by_name[run.name].remove(at, wfid)
        if run.errors is not None:
            self._with_errors.remove(at, wfid)

    def create_run(self, state: dict[str, Any]) -> int:
        wfid, status, name, at, errors = _index_fields(state)
        blob = _dumps(state)
        with self._lock:
            if wfid in self._runs:
                raise RunExists(wfid)
            self._runs[wfid] = _Run(blob, 1, status, name, at, errors)
            self._index(wfid, status, name, at, errors)
            if self._transitions is not None:
                self._transition(wfid, state, None)
        return 1

    def _transition(self, wfid: str, state: dict[str, Any], old_status: str | None) -> None:
        """Append the run's summary to the stream if it changed (the lock is held)."""
        live, _ = transition(state)
        if self._live.get(wfid, (None, None))[1] == live:
            return
        self._live[wfid] = (live["status"], live)
        ms = int(time.time() * 1000)
        last_ms, seq = self._last_id
        self._last_id = (ms, 0) if ms > last_ms else (last_ms, seq + 1)
        kind = "step" if old_status == live["status"] else "run"
        assert self._transitions is not None
        self._transitions.append((f"{self._last_id[0]}-{self._last_id[1]}", kind, live))

    def transitions(
        self, after: str = "0-0", count: int = 1000
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """The transitions kept after stream id ``after`` (oldest first):
        ``(id, kind, summary)``; empty when the stream is off."""
        ms, _, seq = after.partition("-")
        key = (int(ms), int(seq or 0))
        with self._lock:
            rows = list(self._transitions or ())
        out = []
        for row in rows:
            a, _, b = row[0].partition("-")
            if (int(a), int(b)) > key:
                out.append((row[0], row[1], _loads(_dumps(row[2]))))
        return out[:count]

    def run_summaries(self, wfids: list[str]) -> dict[str, dict[str, Any] | None]:
        """Each run's summary (``base.transition``); None for one not stored."""
        out: dict[str, dict[str, Any] | None] = {}
        for wfid in wfids:
            loaded = self.load_run(wfid)
            out[wfid] = None if loaded is None else transition(loaded[0])[0]
        return out

    def load_run(self, wfid: str) -> tuple[dict[str, Any], int] | None:
        with self._lock:
            run = self._runs.get(wfid)
            if run is None:
                return None
            blob, version = run.blob, run.version
        return _loads(blob), version

    def save_run(self, state: dict[str, Any], version: int) -> int:
        wfid, status, name, at, errors = _index_fields(state)
        blob = _dumps(state)
        with self._lock:
            run = self._runs.get(wfid)
            if run is None:
                raise ConflictError(f"run {wfid} is not stored")
            if run.version != version:
                raise ConflictError(f"run {wfid} is no longer at version {version}")
            if self._transitions is not None:
                self._transition(wfid, state, run.status)
            if (
                run.status != status
                or run.name != name
                or run.at != at
                or (run.errors is None) != (errors is None)
            ):
                self._unindex(wfid, run)
                self._index(wfid, status, name, at, errors)
                run.status, run.name, run.at = status, name, at
            run.blob = blob
            run.errors = errors
            run.version = version = version + 1
        return version

    def delete_run(self, wfid: str) -> None:
        with self._lock:
            run = self._runs.pop(wfid, None)
            self._live.pop(wfid, None)
            if run is not None:
                self._unindex(wfid, run)

    def _list_runs(
        self, status: str | None, name: str | None, offset: int, limit: int
    ) -> list[RunSummary]:
        empty = _Index()
        with self._lock:
            runs = self._runs
            if status is not None and name is not None:
                # walk the smaller index, test the other field
                by_status = self._by_status.get(status, empty)
                by_name = self._by_name.get(name, empty)
                walk = by_status if len(by_status) <= len(by_name) else by_name
                wfids = []
                for wfid in walk.newest_first():
                    run = runs[wfid]
                    if run.status == status and run.name == name:
                        if offset:
                            offset -= 1
                            continue
                        wfids.append(wfid)
                        if len(wfids) >= limit:
                            break
            elif status is not None:
                wfids = self._by_status.get(status, empty).page(offset, limit)
            elif name is not None:
                wfids = self._by_name.get(name, empty).page(offset, limit)
            else:
                wfids = self._all.page(offset, limit)
            rows = [(wfid, runs[wfid]) for wfid in wfids]
            return [RunSummary(wfid, run.name, run.status, run.at) for wfid, run in rows]

    def count_runs(self) -> dict[str, int]:
        with self._lock:
            return {s: len(self._by_status[s]) if s in self._by_status else 0 for s in RUN_STATES}

    def _list_errors(self, offset: int, limit: int) -> list[dict[str, Any]]:
        want = offset + limit
        with self._lock:
            blobs = []
            for wfid in self._with_errors.newest_first():
                blobs.append((wfid, self._runs[wfid].errors))
                if len(blobs) >= want:  # every such run has at least one error
                    break
        out: list[dict[str, Any]] = []
        for wfid, blob in blobs:
            for error in _loads(blob):
                error["wfid"] = wfid
                out.append(error)
        return out[offset:want]

    # -- timers -----------------------------------------------------------
    def schedule_timer(self, timer_id: str, due: float, payload: dict[str, Any]) -> None:
        due = float(due)
        blob = _dumps(payload)
        with self._lock:
            self._generation += 1
            self._timers[timer_id] = (due, self._generation, blob)
            heapq.heappush(self._heap, (due, timer_id, self._generation))
            if len(self._heap) > 2 * len(self._timers) + 64:
                self._compact()

    def _compact(self) -> None:
        self._heap = [(due, tid, gen) for tid, (due, gen, _) in self._timers.items()]
        heapq.heapify(self._heap)

    def cancel_timer(self, timer_id: str) -> None:
        with self._lock:
            self._timers.pop(timer_id, None)

    def _drop_stale(self) -> None:
        heap, timers = self._heap, self._timers
        while heap:
            _, tid, gen = heap[0]
            entry = timers.get(tid)
            if entry is not None and entry[1] == gen:
                return
            heapq.heappop(heap)

    def claim_due_timers(self, now: float, limit: int = 100) -> list[tuple[str, dict[str, Any]]]:
        claimed = []
        with self._lock:
            heap, timers = self._heap, self._timers
            while len(claimed) < limit:
                self._drop_stale()
                if not heap or heap[0][0] > now:
                    break
                _, tid, _ = heapq.heappop(heap)
                claimed.append((tid, timers.pop(tid)[2]))
        return [(tid, _loads(blob)) for tid, blob in claimed]

    def lease_due_timers(
        self, now: float, lease: float, limit: int = 100
    ) -> list[tuple[str, float, dict[str, Any]]]:
        due = float(now) + float(lease)
        claimed = self.claim_due_timers(now, limit)
        with self._lock:
            for tid, payload in claimed:
                self._generation += 1
                self._timers[tid] = (due, self._generation, _dumps(payload))
                heapq.heappush(self._heap, (due, tid, self._generation))
        return [(tid, due, payload) for tid, payload in claimed]

    def ack_timer(self, timer_id: str, leased_due: float) -> bool:
        with self._lock:
            entry = self._timers.get(timer_id)
            if entry is not None and entry[0] == float(leased_due):
                del self._timers[timer_id]
                return True
            return False

    def reschedule_timer(self, timer_id: str, due: float) -> bool:
        with self._lock:
            entry = self._timers.get(timer_id)
            if entry is None:
                return False
            self._generation += 1
            self._timers[timer_id] = (float(due), self._generation, entry[2])
            heapq.heappush(self._heap, (float(due), timer_id, self._generation))
            return True

    def next_timer_due(self) -> float | None:
        with self._lock:
            self._drop_stale()
            return self._heap[0][0] if self._heap else None

    def timers(self, wfid: str | None = None) -> list[tuple[str, float, dict[str, Any]]]:
        with self._lock:
            entries = sorted((due, tid, blob) for tid, (due, _, blob) in self._timers.items())
        out = []
        for due, tid, blob in entries:
            payload = _loads(blob)
            if wfid is None or payload.get("wfid") == wfid:
                out.append((tid, due, payload))
        return out

    # -- participant registrations ---------------------------------------
    def register_participant(self, registration: Registration, position: int | None = None) -> None:
        # a private copy: the caller may go on mutating its options
        reg = Registration(
            registration.pattern,
            registration.queue,
            registration.regex,
            _loads(_dumps(registration.options)),
        )
        with self._lock:
            regs = self._participants
            for i, known in enumerate(regs):
                if known.pattern == reg.pattern:
                    if position is None:
                        regs[i] = reg
                        return
                    del regs[i]
                    break
            if position is None:
                regs.append(reg)
            else:
                regs.insert(position, reg)

    def unregister_participant(self, pattern: str) -> bool:
        with self._lock:
            for i, known in enumerate(self._participants):
                if known.pattern == pattern:
                    del self._participants[i]
                    return True
        return False

    def participants(self) -> list[Registration]:
        with self._lock:
            return list(self._participants)

    # -- listeners --------------------------------------------------------
    def add_listener(self, listener_id: str, spec: dict[str, Any]) -> None:
        blob = _dumps(spec)
        with self._lock:
            self._listeners[listener_id] = blob
            self._listeners_v += 1

    def remove_listener(self, listener_id: str) -> bool:
        with self._lock:
            self._listeners_v += 1
            return self._listeners.pop(listener_id, None) is not None

    def listeners_version(self) -> int:
        return self._listeners_v

    def load_run_and_listeners_version(self, wfid: str) -> tuple[dict[str, Any], int, int] | None:
        with self._lock:
            run = self._runs.get(wfid)
            if run is None:
                return None
            blob, version, lv = run.blob, run.version, self._listeners_v
        return _loads(blob), version, lv

    def listeners(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            items = list(self._listeners.items())
        return [(lid, _loads(blob)) for lid, blob in items]

    # -- mutexes ----------------------------------------------------------
    def acquire_mutex(self, name: str, holder: str) -> bool:
        with self._lock:
            entry = self._mutexes.get(name)
            if entry is None:
                self._mutexes[name] = (holder, deque())
                return True
            if entry[0] == holder:
                return True
            if holder not in entry[1]:
                entry[1].append(holder)
            return False

    def release_mutex(self, name: str, holder: str) -> str | None:
        with self._lock:
            entry = self._mutexes.get(name)
            if entry is None:
                return None
            current, waiters = entry
            if current != holder:
                if holder in waiters:
                    waiters.remove(holder)
                return None
            if not waiters:
                del self._mutexes[name]
                return None
            nxt = waiters.popleft()
            self._mutexes[name] = (nxt, waiters)
            return nxt

    def mutex(self, name: str) -> tuple[str | None, list[str]]:
        with self._lock:
            entry = self._mutexes.get(name)
            if entry is None:
                return None, []
            return entry[0], list(entry[1])

    # -- engine workers ---------------------------------------------------
    def engine_heartbeat(self, engine_id: str, ttl: float, info: dict[str, Any]) -> None:
        with self._lock:
            self._engines[engine_id] = (time.monotonic() + ttl, {**info, "id": engine_id})

    def engine_alive(self, engine_id: str) -> bool:
        entry = self._engines.get(engine_id)
        return entry is not None and entry[0] > time.monotonic()

    def engine_gone(self, engine_id: str) -> None:
        with self._lock:
            self._engines.pop(engine_id, None)

    def engines(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            return [dict(info) for until, info in self._engines.values() if until > now]
