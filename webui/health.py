"""CI health: per participant and per process, success rate, duration
percentiles, queue wait and failure streaks, by day.

Source: the traceability graph's Activity events (``engine.trace.activity``).
For a step, ActivityTriggered -> Started is the queue wait (the workitem
waited for a participant instance), Started -> Finished the duration, the
Finished event's conclusion the outcome; for a run, Triggered -> Finished.

Aggregated incrementally (``Health.update``, run before every read, at
most once a second per process; idempotent, so any number of web
processes and ``boss stats`` share it). Keys under ``<prefix>web:health:``::

    cursor               ms: Finished events up to here are counted
    done:<day>           set: Finished event ids counted (3 days, for the
                         look-back window that catches late events)
    day:<day>            hash "<kind>|<name>|<n|ok|fail|aborted|maxstreak>" -> int
    dur:<day>:<kind>|<name>   list: durations in seconds
    wait:<day>:<kind>|<name>  list: queue waits in seconds
    streak               hash "<kind>|<name>" -> the current run of failures
    names                set "<kind>|<name>"
    total                hash steps, runs: Finished events counted

``kind`` is ``participant`` or ``process``. A report over a window reads
one hash and two lists per name and day: fast whatever the number of runs.
Outcomes: SUCCESSFUL is a success; FAILED, UNSUCCESSFUL and TIMED_OUT are
failures (a streak counts them in a row, per name); ABORTED (cancelled)
is neither.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from engine.trace import activity_id, percentile

__all__ = ["Health", "parse_since"]

_FINISHED = "EiffelActivityFinishedEvent"
_FAIL = {"FAILED", "UNSUCCESSFUL", "TIMED_OUT"}
_LOOKBACK_MS = 5 * 60 * 1000
_BATCH = 2000


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _day(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def parse_since(text: str | None, default_days: int = 7) -> int:
    """``7d``, ``12h``, ``30m`` or a number of days: how many seconds back."""
    if not text:
        return default_days * 86400
    text = text.strip()
    unit = {"d": 86400, "h": 3600, "m": 60, "s": 1}.get(text[-1:].lower())
    try:
        return int(float(text[:-1]) * unit) if unit else int(float(text) * 86400)
    except ValueError:
        raise ValueError(f"since={text!r}: like 7d, 12h or 30m") from None


def _custom(event: dict[str, Any], key: str) -> str | None:
    for item in (event.get("data") or {}).get("customData") or ():
        if item.get("key") == key:
            return str(item.get("value"))
    return None


class Health:
    def __init__(self, client: redis.Redis, prefix: str, graph: Any) -> None:
        self.client = client
        self.graph = graph
        self.k = f"{prefix}web:health:"
        self._last = 0.0
        self._lock = threading.Lock()

    # -- aggregation ---------------------------------------------------------------
    def update(self, *, force: bool = False) -> int:
        """Count the Finished events since the cursor; how many were new."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last < 1.0:
                return 0
            self._last = now
            cursor = int(self.client.get(self.k + "cursor") or 0)
            lo = max(0, cursor - _LOOKBACK_MS)
            counted = 0
            while True:
                ids = self.graph.ids_by_type(_FINISHED, lo, None, _BATCH)
                if not ids:
                    break
                counted += self._count(ids)
                last = self.graph.get(ids[-1])
                top = last["meta"]["time"] if last else lo
                cursor = max(cursor, top)
                if len(ids) < _BATCH:
                    break
                lo = top if top > lo else top + 1
            self.client.set(self.k + "cursor", cursor)
            return counted

    def _count(self, ids: list[str]) -> int:
        finished = [e for e in self.graph.get_many(ids) if e is not None]
        pipe = self.client.pipeline(transaction=False)
        for ev in finished:
            pipe.sismember(self.k + "done:" + _day(ev["meta"]["time"]), ev["meta"]["id"])
        fresh = [ev for ev, seen in zip(finished, pipe.execute(), strict=True) if not seen]
        if not fresh:
            return 0
        trig_ids = [
            next(
                (x["target"] for x in ev.get("links", ()) if x["type"] == "ACTIVITY_EXECUTION"), ""
            )
            for ev in fresh
        ]
        triggers = self.graph.get_many(trig_ids)
        started_ids = []
        for trig in triggers:
            eid = _custom(trig, "step") if trig else None
            wfid = _custom(trig, "wfid") if trig else None
            started_ids.append(activity_id(wfid, eid, "started") if wfid and eid else "")
        starts = self.graph.get_many([s or "none" for s in started_ids])
        # in time order, so the streaks follow the outcomes as they came
        rows = sorted(zip(fresh, triggers, starts, strict=True), key=lambda r: r[0]["meta"]["time"])
        pipe = self.client.pipeline(transaction=False)
        streak_keys = []
        for ev, trig, start in rows:
            day = _day(ev["meta"]["time"])
            pipe.sadd(self.k + "done:" + day, ev["meta"]["id"])
            pipe.expire(self.k + "done:" + day, 3 * 86400)
            if trig is None:
                continue
            run = "boss.run" in ((trig.get("data") or {}).get("categories") or ())
            if run:
                name = f"process|{trig['data'].get('name')}"
            else:
                participant = _custom(trig, "participant")
                if not participant:
                    continue  # a subprocess step: counted as its own run
                name = f"participant|{participant}"
            conclusion = ((ev.get("data") or {}).get("outcome") or {}).get("conclusion")
            t_trig = trig["meta"]["time"]
            t_start = start["meta"]["time"] if start else None
            t_end = ev["meta"]["time"]
            dh = self.k + "day:" + day
            pipe.sadd(self.k + "names", name)
            pipe.hincrby(dh, f"{name}|n", 1)
            outcome = (
                "ok" if conclusion == "SUCCESSFUL" else "fail" if conclusion in _FAIL else "aborted"
            )
            pipe.hincrby(dh, f"{name}|{outcome}", 1)
            pipe.hincrby(self.k + "total", "runs" if run else "steps", 1)
            if outcome != "aborted":
                pipe.rpush(
                    f"{self.k}dur:{day}:{name}", round((t_end - (t_start or t_trig)) / 1000, 3)
                )
            if t_start is not None:
                pipe.rpush(f"{self.k}wait:{day}:{name}", round((t_start - t_trig) / 1000, 3))
            streak_keys.append((name, outcome, dh))
            for key in (f"{self.k}dur:{day}:{name}", f"{self.k}wait:{day}:{name}", dh):
                pipe.expire(key, 400 * 86400)
        pipe.execute()
        # streaks: sequential per name (one small script would do it too)
        for name, outcome, dh in streak_keys:
            if outcome == "fail":
                current = self.client.hincrby(self.k + "streak", name, 1)
                best = int(self.client.hget(dh, f"{name}|maxstreak") or 0)
                if current > best:
                    self.client.hset(dh, f"{name}|maxstreak", current)
            elif outcome == "ok":
                self.client.hset(self.k + "streak", name, 0)
        return len(fresh)

    # -- reports -------------------------------------------------------------------
    def report(self, since_s: int = 7 * 86400, *, now: float | None = None) -> dict[str, Any]:
        """The figures over the last ``since_s`` seconds (documented in
        docs/webui.md): ``{"since", "until", "days", "participants",
        "processes"}``; each name has ``runs``, ``ok``, ``failed``,
        ``aborted``, ``success_rate``, ``duration`` and ``queue_wait``
        (p50/p90/p99/max, seconds), ``streak`` (current failures in a row),
        ``max_streak`` and ``days`` (the same per day, for the trend)."""
        self.update()
        now = time.time() if now is None else now
        start = datetime.fromtimestamp(now - since_s, UTC).date()
        end = datetime.fromtimestamp(now, UTC).date()
        days = []
        d = start
        while d <= end:
            days.append(d.strftime("%Y-%m-%d"))
            d += timedelta(days=1)
        names = sorted(_s(x) for x in self.client.smembers(self.k + "names"))
        pipe = self.client.pipeline(transaction=False)
        for day in days:
            pipe.hgetall(self.k + "day:" + day)
        day_hashes = [{_s(k): int(v) for k, v in h.items()} for h in pipe.execute()]
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            for day in days:
                pipe.lrange(f"{self.k}dur:{day}:{name}", 0, -1)
                pipe.lrange(f"{self.k}wait:{day}:{name}", 0, -1)
        lists = pipe.execute()
        streaks = {_s(k): int(v) for k, v in self.client.hgetall(self.k + "streak").items()}
        out: dict[str, Any] = {
            "since": now - since_s,
            "until": now,
            "days": days,
            "participants": {},
            "processes": {},
        }
        i = 0
        for name in names:
            kind, _, label = name.partition("|")
            per_day = []
            all_dur: list[float] = []
            all_wait: list[float] = []
            totals = {"runs": 0, "ok": 0, "failed": 0, "aborted": 0, "max_streak": 0}
            for day, h in zip(days, day_hashes, strict=True):
                dur = [float(x) for x in lists[i]]
                wait = [float(x) for x in lists[i + 1]]
                i += 2
                n, ok = h.get(f"{name}|n", 0), h.get(f"{name}|ok", 0)
                fail, aborted = h.get(f"{name}|fail", 0), h.get(f"{name}|aborted", 0)
                mx = h.get(f"{name}|maxstreak", 0)
                totals["runs"] += n
                totals["ok"] += ok
                totals["failed"] += fail
                totals["aborted"] += aborted
                totals["max_streak"] = max(totals["max_streak"], mx)
                all_dur += dur
                all_wait += wait
                per_day.append(
                    {
                        "day": day,
                        "runs": n,
                        "ok": ok,
                        "failed": fail,
                        "success_rate": _rate(ok, fail),
                        "duration_p50": percentile(dur, 50),
                        "queue_wait_p50": percentile(wait, 50),
                        "max_streak": mx,
                    }
                )
            if not totals["runs"]:
                continue
            entry = {
                **totals,
                "success_rate": _rate(totals["ok"], totals["failed"]),
                "duration": _pcts(all_dur),
                "queue_wait": _pcts(all_wait),
                "streak": streaks.get(name, 0),
                "days": per_day,
            }
            out["participants" if kind == "participant" else "processes"][label] = entry
        return out

    def totals(self) -> dict[str, int]:
        return {_s(k): int(v) for k, v in self.client.hgetall(self.k + "total").items()}


def _rate(ok: int, fail: int) -> float | None:
    return round(ok / (ok + fail), 4) if ok + fail else None


def _pcts(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }
