"""The reports to make, in Redis: idempotent, durable, retried.

A *job* is one call (``Report``) for one transition of one run: its id is
``<wfid>|<transition>|<action>``. Keys under ``<key_prefix>reporters:``::

    job:<id>     hash: spec (JSON), state (pending, sending, retrying,
                 done, failed, skipped), attempts, result (JSON), error,
                 at; kept ``remember`` seconds
    due          sorted set: job id -> when it may be sent (a job being
                 sent: when its lease ends)
    errors       list (newest first): the jobs that failed for good
    run:<trig>   the wfid of a run's ActivityTriggered id (finished
                 events name only that); kept ``remember`` seconds

``add`` creates a job and schedules it in one script, *only if the job
never existed*: a redelivered transition adds nothing, whatever state its
first copy reached. ``claim`` takes the first due job and moves its due
time to the end of a lease in one script: a sender that dies mid-call
leaves the job to be taken again when the lease ends (at least once).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["Jobs", "job_id"]

_ADD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'spec', ARGV[1], 'state', 'pending', 'attempts', 0, 'at', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[5])
return 1
"""

_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
if #ids == 0 then return false end
local id = ids[1]
redis.call('ZADD', KEYS[1], ARGV[2], id)
local key = ARGV[3] .. id
if redis.call('EXISTS', key) == 0 then redis.call('ZREM', KEYS[1], id) return {id, false} end
redis.call('HSET', key, 'state', 'sending')
local n = redis.call('HINCRBY', key, 'attempts', 1)
return {id, redis.call('HGET', key, 'spec'), n}
"""

_SUPERSEDE = """
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'pending' or st == 'retrying' then
  redis.call('HSET', KEYS[1], 'state', 'skipped')
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 1
end
return 0
"""


def job_id(wfid: str, transition: str, action: str) -> str:
    return f"{wfid}|{transition}|{action}"


def _s(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


class Jobs:
    """The job store over a redis-py client."""

    def __init__(self, client: Any, prefix: str, *, remember: float = 30 * 86400.0) -> None:
        self.client = client
        self.k = f"{prefix}reporters:"
        self.remember = int(remember)
        self._add = client.register_script(_ADD)
        self._claim = client.register_script(_CLAIM)
        self._supersede = client.register_script(_SUPERSEDE)

    # -- runs ----------------------------------------------------------------

    def note_run(self, trig: str, wfid: str) -> None:
        """Remember which run an ActivityTriggered id is."""
        self.client.set(self.k + "run:" + trig, wfid, ex=self.remember)

    def run_of(self, trig: str) -> str | None:
        return _s(self.client.get(self.k + "run:" + trig))

    # -- jobs ----------------------------------------------------------------

    def add(self, spec: Mapping[str, Any], *, delay: float = 0.0) -> bool:
        """Create and schedule a job; False when it existed (nothing is done)."""
        jid = spec["id"]
        now = time.time()
        return bool(
            self._add(
                keys=[self.k + "job:" + jid, self.k + "due"],
                args=[json.dumps(spec), now + delay, now, self.remember, jid],
            )
        )

    def claim(self, lease: float) -> tuple[str, dict[str, Any] | None, int] | None:
        """The first due job (its id, spec, attempt number), leased; None if none is due."""
        now = time.time()
        got = self._claim(keys=[self.k + "due"], args=[now, now + lease, self.k + "job:"])
        if not got:
            return None
        jid = _s(got[0])
        if not got[1]:
            return jid, None, 0
        return jid, json.loads(got[1]), int(got[2])

    def supersede(self, jid: str) -> bool:
        """Skip a job not being sent (pending or waiting for a retry): a
        later one of the same run and action says what it would have."""
        keys = [self.k + "job:" + jid, self.k + "due"]
        return bool(self._supersede(keys=keys, args=[jid]))

    def get(self, jid: str) -> dict[str, Any] | None:
        raw = self.client.hgetall(self.k + "job:" + jid)
        if not raw:
            return None
        out = {_s(k): _s(v) for k, v in raw.items()}
        out["id"] = jid
        for key in ("spec", "result"):
            if out.get(key):
                out[key] = json.loads(out[key])
        out["attempts"] = int(out.get("attempts") or 0)
        return out

    def state(self, jid: str) -> str | None:
        return _s(self.client.hget(self.k + "job:" + jid, "state"))

    def exists(self, jid: str) -> bool:
        return bool(self.client.exists(self.k + "job:" + jid))

    def done(self, jid: str, result: Any, state: str = "done") -> None:
        pipe = self.client.pipeline()
        pipe.zrem(self.k + "due", jid)
        pipe.hset(
            self.k + "job:" + jid,
            mapping={"state": state, "result": json.dumps(result), "at": time.time()},
        )
        pipe.hdel(self.k + "job:" + jid, "error")
        pipe.execute()

    def later(
        self, jid: str, delay: float, error: str | None = None, *, attempt: bool = True
    ) -> None:
        """Send it again in ``delay`` seconds (``attempt`` False: this try
        did not count: it only waited for the job before it)."""
        pipe = self.client.pipeline()
        pipe.zadd(self.k + "due", {jid: time.time() + delay})
        mapping: dict[str, Any] = {"state": "retrying" if error else "pending"}
        if error:
            mapping["error"] = error
        pipe.hset(self.k + "job:" + jid, mapping=mapping)
        if not attempt:
            pipe.hincrby(self.k + "job:" + jid, "attempts", -1)
        pipe.execute()

    def fail(self, jid: str, spec: Mapping[str, Any], error: str, keep: int) -> None:
        """A job given up: recorded for ``boss reporter errors``."""
        record = {
            "id": jid,
            "wfid": spec.get("wfid"),
            "transition": spec.get("transition"),
            "action": spec.get("action"),
            "forge": (spec.get("change") or {}).get("source"),
            "project": (spec.get("change") or {}).get("project"),
            "error": error,
            "at": time.time(),
        }
        pipe = self.client.pipeline()
        pipe.zrem(self.k + "due", jid)
        pipe.hset(self.k + "job:" + jid, mapping={"state": "failed", "error": error})
        pipe.lpush(self.k + "errors", json.dumps(record))
        pipe.ltrim(self.k + "errors", 0, max(0, keep - 1))
        pipe.execute()

    def retry(self, jid: str) -> bool:
        """Schedule a failed (or any) job again at once; False if it is unknown."""
        key = self.k + "job:" + jid
        if not self.client.exists(key):
            return False
        pipe = self.client.pipeline()
        pipe.hset(key, mapping={"state": "pending", "attempts": 0})
        pipe.zadd(self.k + "due", {jid: time.time()})
        pipe.execute()
        return True

    def errors(self, limit: int = 100) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.client.lrange(self.k + "errors", 0, limit - 1)]

    def of_run(self, wfid: str) -> list[dict[str, Any]]:
        """Every job of a run (``boss reporter show``)."""
        out = []
        for key in self.client.scan_iter(match=f"{self.k}job:{wfid}|*", count=500):
            jid = _s(key)[len(self.k) + 4 :]
            job = self.get(jid)
            if job:
                out.append(job)
        return sorted(out, key=lambda j: float(j.get("at") or 0))

    def pending(self) -> int:
        return int(self.client.zcard(self.k + "due"))
