"""Step logs in Redis: what participants' handlers logged and printed, per run.

A participant runtime (``participants.steplog``) publishes the lines of the
job in hand in numbered batches on the broker (queue ``<engine_queue>.logs``);
a writer in the aggregator process (``engine.trace.aggregator.StepLogWriter``)
hands each batch to ``StepLogs.write``, and the CLI (``boss logs``) and the web
UI read them back here. Keys, beside the run store's (``<prefix>``):

* ``<prefix>logs:<wfid>``: a stream, one entry per line, every step of the
  run in it: ``s`` the step (expid), ``p`` the participant, ``j`` the job
  (``<instance>.<n>``: one attempt of one step), ``t`` the time the line was
  made (epoch seconds), ``l`` the level (``INFO``..., ``stdout``, ``stderr``,
  or ``boss`` for what BOSS itself says, e.g. that a bound was reached),
  ``m`` the text. Its entry ids are what a reader resumes from.
* ``<prefix>logs:<wfid>:m``: a hash of bookkeeping: per step the lines and
  bytes kept (``n:``, ``b:``) and whether the bound was hit (``t:``); per job
  the next batch number expected (``x:``) and batches that came early
  (``h:<job>:<n>``); ``open``, how many jobs have sent their first batch and
  not their last; ``s:<job>``, set by the engine when a reply says its job
  sent batches (``log_job``), and ``f:<job>``, set here when that job's last
  batch is stored: ``follow`` ends only when every ``s:`` has its ``f:``.

The writer may store a step's last batch after its run ended: the batch
went to the broker before the reply, but a busy writer can hold it unwritten
(delivered, not yet acknowledged: no queue count shows it). The reply's
``log_job`` (``note_sent``) is what tells readers a job's lines are still to
come, even when no batch of it has been stored yet.

Batches are applied in their order, once: a batch that comes twice (the
broker gave it again) is ignored, one that comes before an earlier one (two
writers, competing consumers) waits in the hash until the gap is filled;
all of it in one Lua script per batch. Each step keeps at most ``max_lines``
lines and ``max_bytes`` bytes of text; the first line over says so (a
``boss`` line) and later ones are counted, not kept. Both keys expire
``ttl`` seconds after the run's last line.

Needs a Redis client (``RedisStore.client``): the in-memory store has no
step logs (``step_logs_for`` says so with ``StepLogsUnavailable``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from engine.core import runstate, states

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_LINES",
    "DEFAULT_TTL",
    "StepLogs",
    "StepLogsUnavailable",
    "run_over",
    "step_detail",
    "step_logs_for",
]

DEFAULT_MAX_LINES = 10_000
DEFAULT_MAX_BYTES = 1 << 20
DEFAULT_TTL = 7 * 86400.0

_WRITE = """
local stream, meta = KEYS[1], KEYS[2]
local body = ARGV[1]
local ttl, maxl, maxb = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local written = 0
local function line(m, t, level, text)
  redis.call('XADD', stream, '*', 'step', m.step, 'participant', m.participant, 'job', m.job,
    'time', t, 'level', level, 'text', text)
end
local function apply(m)
  local step = m.step
  local nkey, bkey, tkey = 'n:' .. step, 'b:' .. step, 't:' .. step
  local n = tonumber(redis.call('HGET', meta, nkey) or '0')
  local b = tonumber(redis.call('HGET', meta, bkey) or '0')
  local truncated = redis.call('HEXISTS', meta, tkey) == 1
  if m.seq == 0 then redis.call('HINCRBY', meta, 'open', 1) end
  local dropped = 0
  for _, l in ipairs(m.lines) do
    local text = l[3]
    if l[2] == 'boss' then
      line(m, l[1], 'boss', text)
      written = written + 1
    elseif n + 1 > maxl or b + #text > maxb then
      dropped = dropped + 1
      if not truncated then
        truncated = true
        redis.call('HSET', meta, tkey, 1)
        line(m, l[1], 'boss', 'the log of step ' .. step .. ' reached its bound (' .. maxl ..
          ' lines or ' .. maxb .. ' bytes): later lines are not kept')
        written = written + 1
      end
    else
      line(m, l[1], l[2], text)
      n = n + 1
      b = b + #text
      written = written + 1
    end
  end
  redis.call('HSET', meta, nkey, n, bkey, b)
  if dropped > 0 then redis.call('HINCRBY', meta, 'd:' .. step, dropped) end
  if m.final then
    if redis.call('HINCRBY', meta, 'open', -1) < 0 then redis.call('HSET', meta, 'open', 0) end
    redis.call('HSET', meta, 'f:' .. m.job, 1)
  end
end
local m = cjson.decode(body)
local xkey = 'x:' .. m.job
local expected = tonumber(redis.call('HGET', meta, xkey) or '0')
if m.seq < expected then return -1 end
if m.seq > expected then
  redis.call('HSET', meta, 'h:' .. m.job .. ':' .. m.seq, body)
  redis.call('PEXPIRE', meta, ttl)
  return -2
end
apply(m)
expected = expected + 1
while true do
  local hkey = 'h:' .. m.job .. ':' .. expected
  local held = redis.call('HGET', meta, hkey)
  if not held then break end
  redis.call('HDEL', meta, hkey)
  apply(cjson.decode(held))
  expected = expected + 1
end
if m.final then redis.call('HDEL', meta, xkey) else redis.call('HSET', meta, xkey, expected) end
redis.call('PEXPIRE', meta, ttl)
if redis.call('EXISTS', stream) == 1 then redis.call('PEXPIRE', stream, ttl) end
return written
"""


class StepLogsUnavailable(RuntimeError):
    """The store has no Redis behind it (the in-memory store of unit tests)."""


@dataclass(frozen=True, slots=True)
class Line:
    """One stored line."""

    id: str
    step: str
    participant: str
    job: str
    t: float
    level: str
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "step": self.step,
            "participant": self.participant,
            "job": self.job,
            "t": self.t,
            "level": self.level,
            "text": self.text,
        }


def _s(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _line(entry_id: Any, fields: dict[Any, Any]) -> Line:
    f = {_s(k): _s(v) for k, v in fields.items()}
    try:
        t = float(f.get("time", "0"))
    except ValueError:
        t = 0.0
    return Line(
        _s(entry_id),
        f.get("step", ""),
        f.get("participant", ""),
        f.get("job", ""),
        t,
        f.get("level", ""),
        f.get("text", ""),
    )


def check_batch(data: Any) -> str | None:
    """Why a decoded batch is not one ``participants.steplog`` sends (None: it is)."""
    if not isinstance(data, dict):
        return "not a JSON object"
    for key in ("wfid", "step", "participant", "job"):
        if not isinstance(data.get(key), str) or not data[key]:
            return f"{key!r} is not a non-empty string"
    if not isinstance(data.get("seq"), int) or data["seq"] < 0:
        return "'seq' is not a batch number"
    lines = data.get("lines")
    if not isinstance(lines, list):
        return "'lines' is not a list"
    for item in lines:
        if (
            not isinstance(item, list)
            or len(item) != 3
            or not all(isinstance(x, str) for x in item)
        ):
            return "a line is not [time, level, text] strings"
    return None


class StepLogs:
    """Write and read the step logs of runs (see the module docstring)."""

    def __init__(
        self,
        client: Any,
        prefix: str = "boss:",
        *,
        ttl: float = DEFAULT_TTL,
        max_lines: int = DEFAULT_MAX_LINES,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = ttl
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._write = client.register_script(_WRITE)

    def key(self, wfid: str) -> str:
        return f"{self.prefix}logs:{wfid}"

    # -- writing ---------------------------------------------------------------------------

    def write(self, bodies: list[bytes | str]) -> tuple[int, list[tuple[bytes | str, str]]]:
        """Apply batches (JSON bodies from the broker) in one round trip:
        the lines kept, and the bodies refused with the reason. Raises when
        Redis cannot be written (the caller gives the messages back)."""
        refused: list[tuple[bytes | str, str]] = []
        good: list[tuple[str, str]] = []
        for body in bodies:
            try:
                data = json.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                refused.append((body, f"not JSON: {exc}"))
                continue
            why = check_batch(data)
            if why is not None:
                refused.append((body, why))
                continue
            text = body.decode() if isinstance(body, bytes) else body
            good.append((data["wfid"], text))
        written = 0
        if good:
            pipe = self.client.pipeline(transaction=False)
            args = [int(self.ttl * 1000), self.max_lines, self.max_bytes]
            for wfid, text in good:
                key = self.key(wfid)
                self._write(keys=[key, key + ":m"], args=[text, *args], client=pipe)
            written = sum(max(0, int(n)) for n in pipe.execute())
        return written, refused

    def note_sent(self, jobs: list[tuple[str, str]]) -> None:
        """Note ``(wfid, job)`` pairs whose replies say the job sent step-log
        batches (the engine, before it applies the reply: before the run can
        end), in one round trip; noting one twice is harmless."""
        if not jobs:
            return
        pipe = self.client.pipeline(transaction=False)
        for wfid, job in jobs:
            meta = self.key(wfid) + ":m"
            pipe.hset(meta, f"s:{job}", 1)
            pipe.pexpire(meta, int(self.ttl * 1000))
        pipe.execute()

    # -- reading ---------------------------------------------------------------------------

    def read(
        self, wfid: str, *, step: str | None = None, after: str = "0-0", limit: int = 1000
    ) -> tuple[list[Line], str]:
        """Up to ``limit`` entries after the id ``after`` (of ``step`` only,
        when given), and the id to read on from (the last entry looked at,
        ``after`` when there were none)."""
        entries = self.client.xrange(self.key(wfid), min=f"({after}", max="+", count=limit)
        return self._pick(entries, step, after)

    def wait(
        self, wfid: str, *, step: str | None = None, after: str = "0-0", block: float = 1.0
    ) -> tuple[list[Line], str]:
        """As ``read``, but blocks up to ``block`` seconds for the next entries
        (``XREAD BLOCK``: a connection waits in Redis, no polling)."""
        got = self.client.xread({self.key(wfid): after}, count=1000, block=int(block * 1000))
        entries = got[0][1] if got else []
        return self._pick(entries, step, after)

    @staticmethod
    def _pick(entries: list[Any], step: str | None, after: str) -> tuple[list[Line], str]:
        lines = [_line(i, f) for i, f in entries]
        last = lines[-1].id if lines else after
        if step is not None:
            lines = [x for x in lines if x.step == step]
        return lines, last

    def steps(self, wfid: str) -> dict[str, dict[str, int]]:
        """Per step: the lines and bytes kept, and the lines not kept."""
        meta = {_s(k): _s(v) for k, v in self.client.hgetall(self.key(wfid) + ":m").items()}
        out: dict[str, dict[str, int]] = {}
        for k, v in meta.items():
            kind, _, step = k.partition(":")
            if kind in ("n", "b", "d") and step:
                name = {"n": "lines", "b": "bytes", "d": "dropped"}[kind]
                out.setdefault(step, {"lines": 0, "bytes": 0, "dropped": 0})[name] = int(v)
        return out

    def open_jobs(self, wfid: str) -> int:
        """Jobs that sent their first batch and not yet their last."""
        return int(self.client.hget(self.key(wfid) + ":m", "open") or 0)

    def unwritten(self, wfid: str) -> int:
        """Jobs whose lines are still to come: stored in part (``open``),
        or named by a reply (``note_sent``) and their last batch not stored."""
        meta = {_s(k): _s(v) for k, v in self.client.hgetall(self.key(wfid) + ":m").items()}
        noted = sum(
            1 for k in meta if k.startswith("s:") and f"f:{k.removeprefix('s:')}" not in meta
        )
        return max(0, int(meta.get("open") or 0)) + noted

    def follow(
        self,
        wfid: str,
        *,
        over: Callable[[], bool],
        step: str | None = None,
        after: str = "0-0",
        block: float = 1.0,
        quiet: float = 0.5,
        grace: float = 10.0,
        pending: Callable[[], bool] | None = None,
    ) -> Iterator[tuple[list[Line], str]]:
        """Lines as they come: ``(lines, last id)`` after each wait (``lines``
        may be empty: the caller's chance to send a heartbeat). Ends once
        ``over()`` (the run ended) and every job's last batch is stored
        (``unwritten``: also the jobs a reply named before any batch of
        theirs was stored), and ``quiet`` seconds passed without a line; or
        ``grace`` seconds after the run ended (a participant killed
        mid-step never sends its last). ``pending()``, when given, says
        batches still wait on the broker for the writer (from a participant
        that names no ``log_job`` in its replies): it is waited for too, up
        to ``grace``."""
        last = after
        ended: float | None = None
        while True:
            lines, last = self.read(wfid, step=step, after=last)
            if lines:
                yield lines, last
                continue
            if ended is None and over():
                ended = time.monotonic()
            late = ended is not None and time.monotonic() - ended > grace
            if ended is not None and (
                late or (self.unwritten(wfid) <= 0 and not (pending is not None and pending()))
            ):
                lines, last = self.wait(wfid, step=step, after=last, block=quiet)
                if lines:
                    yield lines, last
                    continue
                return
            lines, last = self.wait(wfid, step=step, after=last, block=block)
            yield lines, last


def step_logs_for(store: Any, **options: Any) -> StepLogs:
    """The step logs beside a run store (``RedisStore``: same client and
    prefix); ``StepLogsUnavailable`` for a store without Redis."""
    client = getattr(store, "client", None)
    if client is None:
        raise StepLogsUnavailable(
            f"step logs need the Redis store; {type(store).__name__} keeps none"
        )
    return StepLogs(client, getattr(store, "prefix", "boss:"), **options)


def run_over(store: Any, wfid: str) -> bool:
    """Whether ``wfid`` runs no step for now: ended, stopped on an error
    (a replay starts it again: follow it anew then), or gone."""
    loaded = store.load_run(wfid)
    if loaded is None:
        return True
    status = runstate.status(runstate.upgrade(loaded[0]))
    return status in states.ENDED_RUN_STATES or status == states.ERROR


def step_detail(store: Any, wfid: str, expid: str) -> dict[str, Any] | None:
    """What the run state keeps of step ``expid`` beside its log: the
    workitem fields it was dispatched with while it is a position (waits or
    failed), and its errors (class, message, traceback, the failed
    workitem's fields). A reply's fields are not kept per step: they are
    merged into the run's fields. None: no such run."""
    loaded = store.load_run(wfid)
    if loaded is None:
        return None
    st = runstate.upgrade(loaded[0])
    inputs = [
        {
            "eid": x.eid,
            "state": x.state,
            "participant": x.participant,
            "since": x.since,
            "fields": dict(x.workitem_fields),
        }
        for x in runstate.positions(st)
        if x.node_id == expid
    ]
    errors = [
        {k: e.get(k) for k in ("id", "eid", "class", "message", "traceback", "at", "fields")}
        for e in runstate.errors(st)
        if e.get("expid") == expid
    ]
    return {
        "expid": expid,
        "status": runstate.status(st),
        "positions": inputs,
        "errors": errors,
        "output": None,
        "output_note": "A step's reply is not kept on its own: its fields are merged into "
        "the run's fields",
    }
