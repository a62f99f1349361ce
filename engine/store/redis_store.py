"""``RedisStore``: the run store over Redis or Valkey (redis-py, hiredis parser).

Key layout (every key starts with ``prefix``, default ``"boss:"``, so test
runs and several installations can share one server)::

    run:<wfid>              hash: state (compact JSON), v (version), status,
                            name, at (launched_at), errors (JSON list, only
                            while the run has unresolved errors)
    runs                    zset wfid -> launched_at: every run
    runs:status:<status>    zset wfid -> launched_at: runs in that status
    runs:name:<name>        zset wfid -> launched_at: runs of that definition
    runs:errors             zset wfid -> launched_at: runs with errors
    def:<digest>            hash: source, filename
    timers                  zset timer id -> due
    timer:payloads          hash timer id -> payload JSON
    participants            list of patterns, in match order
    participants:regs       hash pattern -> registration JSON
    listeners               hash listener id -> spec JSON
    mutex:<name>            string: the holder
    mutex:<name>:q          list: the waiters, first come first served
    transitions             stream: one entry per run or step transition (a
                            save that changes the run's summary: status,
                            outcome, positions), fields kind (run or step) and
                            data (the summary JSON, ``base.transition``), the
                            run hash's live field; capped with XADD MAXLEN ~
                            (``transitions_maxlen``; 0 keeps no stream). The
                            web UI's live view (``webui.live``) reads it.

The run hash also keeps ``live`` (that summary) and ``outcome``
(``engine.core.outcome``), for the run list, and ``w``: the token of its
last write (``run_save.lua``), by which a save the client sent again after a
lost reply recognises itself.

Every write that touches more than one key is atomic: a Lua script (run
via EVALSHA, ``register_script``) or a MULTI/EXEC pipeline. The scripts live
beside this module as ``engine/store/*.lua`` files (shipped as package data,
read with importlib.resources): they are easier to read, diff and
syntax-highlight there than as Python strings. They touch keys they compute
from the prefix (the old status index, for instance, is only known once the
script has read the run), so on Redis Cluster give the prefix a hash tag
(``"{boss}:"``) to keep every key in one slot.

Round trips: ``load_run`` is one HMGET; ``save_run``, ``create_run``,
``delete_run``, ``list_runs`` and ``claim_due_timers`` one script call each;
``create_run_written`` (an engine's launch) stores the run's definition with
the run and returns the listeners' version, in the same one call.

Replication (``wait_replicas`` > 0, the default on Sentinel): ``save_run``
(and ``save_runs``) sends ``WAIT wait_replicas wait_timeout`` in the same
pipeline as its script and raises ``ReplicationError`` (a
``redis.TimeoutError``: transient, the message is not acknowledged and comes
again) when fewer replicas acknowledged the save. A save or create whose
reply was lost, sent again by the client (``engine.store.connection`` waits
out a failover) and which then finds its own write in place counts as done,
not as a conflict.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

import redis

from engine import jsontext
from engine.core.registrations import Registration
from engine.core.states import RUN_STATES
from engine.store.base import (
    TRANSITIONS_MAXLEN,
    ConflictError,
    RunExists,
    RunStore,
    RunSummary,
    StoreError,
    Written,
    index_fields,
    transition,
)

__all__ = ["RedisStore", "ReplicationError", "call_readonly", "normalise_url"]

_dumps = jsontext.dumps_text
_loads = jsontext.loads  # accepts bytes as well as str

#: scheme aliases redis-py does not know, mapped to the ones it does
_SCHEMES = {
    "valkey://": "redis://",
    "valkeys://": "rediss://",
    "valkey+unix://": "unix://",
    "redis+unix://": "unix://",
}


def normalise_url(url: str) -> str:
    """Map ``valkey://``, ``valkeys://`` and ``valkey+unix://`` to the
    ``redis://``, ``rediss://`` and ``unix://`` that redis-py reads."""
    for alias, scheme in _SCHEMES.items():
        if url.startswith(alias):
            return scheme + url[len(alias) :]
    return url


@functools.cache
def _script(name: str) -> str:
    return resources.files("engine.store").joinpath(f"{name}.lua").read_text(encoding="utf-8")


def call_readonly(
    script: Any, keys: list[str], args: list[Any], client: redis.Redis | None = None
) -> Any:
    """Run a Lua script that only reads, by ``EVALSHA_RO`` (Redis/Valkey 7):
    a store user that may only read (the web UI's, ``engine.store.acl``) may
    run it, where ``EVALSHA`` asks for write access to the keys it is given.
    ``script`` is a registered ``redis.commands.core.Script``; loaded when
    the server does not know it; plain ``EVALSHA`` on a server without
    ``EVALSHA_RO``."""
    client = client if client is not None else script.registered_client
    try:
        return client.evalsha_ro(script.sha, len(keys), *keys, *args)
    except redis.exceptions.NoScriptError:
        client.script_load(script.script)
        return client.evalsha_ro(script.sha, len(keys), *keys, *args)
    except redis.exceptions.ResponseError as exc:
        if "unknown command" not in str(exc).lower():
            raise
        return script(keys=keys, args=args, client=client)


def _token() -> str:
    """A write's token (``run_save.lua``, ``run_create.lua``)."""
    return os.urandom(8).hex()


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _index_fields(state: dict[str, Any]) -> tuple[str, str, str, str, str]:
    """wfid, status, name, launched_at (as the exact text Redis parses back
    to the same double) and errors JSON ("" when there are none)."""
    wfid, status, name, at, errors = index_fields(state)
    return wfid, status, name, repr(at), "" if errors is None else _dumps(errors)


#: milliseconds a run save waits for its replicas by default: WAIT returns as
#: soon as they acknowledge (a millisecond or so on a LAN), so this bounds
#: only a degraded moment, such as the seconds after a failover before the
#: Sentinels have re-pointed the other replicas at the new primary
WAIT_TIMEOUT = 5000


class ReplicationError(StoreError, redis.TimeoutError):
    """Fewer replicas than ``wait_replicas`` acknowledged a run save within
    ``wait_timeout``: the save may be lost if the primary fails now."""


class RedisStore(RunStore):
    """The run store on a Redis or Valkey server (see the module docstring).

    ``target`` is a URL (``redis://``, ``rediss://``, ``unix://``, their
    ``valkey`` spellings, ``redis+sentinel://``: ``engine.store.connection``)
    or a ready ``redis.Redis`` client. ``close()`` closes the connection pool
    of a client built from a URL; a client passed in stays its owner's to
    close. ``ca``, ``cert``, ``key``: TLS files for a TLS URL.
    ``wait_replicas``: replicas that must acknowledge each run save (see the
    module docstring); None: the URL's ``wait_replicas``, else 1 on Sentinel
    and 0 otherwise. ``wait_timeout``: milliseconds WAIT waits for them
    (None: the URL's ``wait_timeout``, else ``WAIT_TIMEOUT``).
    """

    def __init__(
        self,
        target: str | redis.Redis,
        prefix: str = "boss:",
        *,
        transitions_maxlen: int = TRANSITIONS_MAXLEN,
        ca: str = "",
        cert: str = "",
        key: str = "",
        wait_replicas: int | None = None,
        wait_timeout: int | None = None,
    ) -> None:
        if isinstance(target, str):
            from engine.store.connection import client_for, is_sentinel

            self._redis, url_options = client_for(target, ca=ca, cert=cert, key=key)
            self._owned = True
            if wait_replicas is None:
                default = 1 if is_sentinel(target) else 0
                wait_replicas = int(url_options.get("wait_replicas", default))
            if wait_timeout is None:
                wait_timeout = int(url_options.get("wait_timeout", WAIT_TIMEOUT))
        else:
            self._redis = target
            self._owned = False
        #: replicas that must acknowledge a run save (0: no WAIT)
        self.wait_replicas = max(0, int(wait_replicas or 0))
        #: milliseconds WAIT waits for them
        self.wait_timeout = max(0, int(WAIT_TIMEOUT if wait_timeout is None else wait_timeout))
        self.prefix = prefix
        #: this thread's pipeline of deferred timer writes (``deferred_timers``)
        self._deferred = threading.local()
        self._k_run = f"{prefix}run:"
        self._k_runs = f"{prefix}runs"
        self._k_status = f"{prefix}runs:status:"
        self._k_name = f"{prefix}runs:name:"
        self._k_errors = f"{prefix}runs:errors"
        self._k_def = f"{prefix}def:"
        self._k_timers = f"{prefix}timers"
        self._k_payloads = f"{prefix}timer:payloads"
        self._k_parts = f"{prefix}participants"
        self._k_regs = f"{prefix}participants:regs"
        self._k_listeners = f"{prefix}listeners"
        self._k_mutex = f"{prefix}mutex:"
        #: the stream of transitions (see the module docstring)
        self.transitions_key = f"{prefix}transitions"
        self._maxlen = str(max(0, int(transitions_maxlen)))
        reg = self._redis.register_script
        self._create = reg(_script("run_create"))
        self._save = reg(_script("run_save"))
        self._delete = reg(_script("run_delete"))
        self._list = reg(_script("run_list"))
        self._take = reg(_script("timer_take"))  # claims and leases
        self._ack = reg(_script("timer_ack"))
        self._k_engine = f"{prefix}engine:"
        self._k_engines = f"{prefix}engines"
        self._register = reg(_script("participant_register"))
        self._acquire = reg(_script("mutex_acquire"))
        self._release = reg(_script("mutex_release"))
        self._put_def = reg(_script("definition_put"))

    @property
    def client(self) -> redis.Redis:
        """The redis-py client (for tools and tests)."""
        return self._redis

    def __repr__(self) -> str:
        return f"<RedisStore {self._redis!r} prefix={self.prefix!r}>"

    # -- definitions ------------------------------------------------------
    def put_definition(self, digest: str, source: str, filename: str | None = None) -> None:
        self._put_def(keys=[self._k_def + digest], args=[source, filename or ""])

    def get_definition(self, digest: str) -> tuple[str, str | None] | None:
        source, filename = self._redis.hmget(self._k_def + digest, "source", "filename")
        if source is None:
            return None
        return _str(source), None if filename is None else _str(filename)

    # -- runs -------------------------------------------------------------
    def create_run(self, state: dict[str, Any]) -> int:
        token = _token()
        args = self._create_args(state, token)
        wfid = args[1]
        if not self._create(keys=[self._k_run + wfid], args=args):
            if self._own_write(wfid, token):
                return 1
            raise RunExists(wfid)
        return 1

    def _create_args(self, state: dict[str, Any], token: str) -> list[Any]:
        wfid, args = self._run_args(state, token)
        return [self.prefix, wfid, *args]

    def _run_args(self, state: dict[str, Any], token: str) -> tuple[str, list[Any]]:
        """The run's wfid and the run scripts' arguments after the prefix,
        the wfid (and a save's version): the state, its index fields, the
        write's token."""
        wfid, status, name, at, errors = _index_fields(state)
        live, outcome = transition(state)
        return wfid, [
            _dumps(state),
            status,
            name,
            at,
            errors,
            _dumps(live),
            outcome,
            self._maxlen,
            token,
        ]

    def create_run_written(
        self, state: dict[str, Any], definition: tuple[str, str, str | None] | None = None
    ) -> Written:
        # one round trip: the definition (unless stored), the run, and the
        # listeners' version (run_create.lua)
        token = _token()
        args = self._create_args(state, token)
        wfid = args[1]
        args.append(self._k_listeners + ":v")
        if definition is not None:
            digest, source, filename = definition
            args += [self._k_def + digest, source, filename or ""]
        got = self._create(keys=[self._k_run + wfid], args=args)
        if isinstance(got, list):
            return Written(1, token, args[2], int(got[1]))
        if self._own_write(wfid, token):
            return Written(1, token, args[2], self.listeners_version())
        raise RunExists(wfid)

    def _own_write(self, wfid: str, token: str) -> bool:
        """Whether the run's last write was the one with ``token``: a write
        sent again after its reply was lost (the client retries on a lost
        connection), which had been done the first time."""
        return _str(self._redis.hget(self._k_run + wfid, "w") or b"") == token

    def _waited(self, pipe: redis.client.Pipeline, wfids: list[str]) -> list[Any]:
        """Execute ``pipe`` (EVALSHA run saves) with WAIT after them; raise
        ``ReplicationError`` when a save was not acknowledged by enough
        replicas. The script is loaded again once if the server lost it (a
        new primary)."""
        pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout)
        *results, acked = pipe.execute(raise_on_error=False)
        for r in (*results, acked):
            if isinstance(r, Exception):
                raise r
        if int(acked) < self.wait_replicas and any(int(r) > 0 for r in results):
            raise ReplicationError(
                f"run save ({', '.join(wfids)}) acknowledged by {acked} of "
                f"{self.wait_replicas} replicas within {self.wait_timeout} ms"
            )
        return results

    def _save_waited(self, keys: list[str], args: list[Any]) -> int:
        """The save script and WAIT in one pipeline (one round trip)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.evalsha(self._save.sha, len(keys), *keys, *args)
        try:
            return int(self._waited(pipe, [args[1]])[0])
        except redis.exceptions.NoScriptError:  # a new primary
            self._redis.script_load(self._save.script)
            pipe = self._redis.pipeline(transaction=False)
            pipe.evalsha(self._save.sha, len(keys), *keys, *args)
            return int(self._waited(pipe, [args[1]])[0])

    def load_run(self, wfid: str) -> tuple[dict[str, Any], int] | None:
        state, version = self._redis.hmget(self._k_run + wfid, "state", "v")
        if state is None:
            return None
        return _loads(state), int(version)

    def _save_args(self, state: dict[str, Any], version: int) -> tuple[list[str], list[Any]]:
        wfid, args = self._run_args(state, _token())
        return [self._k_run + wfid], [self.prefix, wfid, int(version), *args]

    def save_run(self, state: dict[str, Any], version: int) -> int:
        keys, args = self._save_args(state, version)
        if self.wait_replicas:
            new = self._save_waited(keys, args)
        else:
            new = self._save(keys=keys, args=args)
        wfid = args[1]
        if new > 0:
            return new
        if new == 0:
            if self._own_write(wfid, args[-1]):
                return int(version) + 1
            raise ConflictError(f"run {wfid} is no longer at version {version}")
        raise ConflictError(f"run {wfid} is not stored")

    @property
    def written_saves(self) -> bool:  # type: ignore[override]
        # (a save that waits for replicas goes its own way: _save_waited)
        return not self.wait_replicas

    def save_run_written(
        self, state: dict[str, Any], version: int, last_write: str | None = None
    ) -> Written:
        keys, args = self._save_args(state, version)
        wfid, data, token = args[1], args[3], args[11]
        got = self._save(keys=keys, args=[*args, last_write or "", self._k_listeners + ":v"])
        if isinstance(got, list):
            return Written(int(got[0]), token, data, int(got[1]))
        if int(got) == 0 and self._own_write(wfid, token):
            return Written(int(version) + 1, token, data, self.listeners_version())
        if int(got) == 0:
            raise ConflictError(f"run {wfid} is no longer at version {version} or was written over")
        raise ConflictError(f"run {wfid} is not stored")

    def transitions(
        self, after: str = "0-0", count: int = 1000
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """The transitions stored after stream id ``after`` (oldest first):
        ``(id, kind, summary)``."""
        rows = self._redis.xrange(self.transitions_key, f"({after}", "+", count=count)
        return [(_str(i), _str(f[b"kind"]), _loads(f[b"data"])) for i, f in rows]

    def run_summaries(self, wfids: list[str]) -> dict[str, dict[str, Any] | None]:
        """The ``live`` summary of each run (``base.transition``), one round
        trip; None for a run not stored. A run last saved before the
        summary existed gets one computed from its state."""
        if not wfids:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for wfid in wfids:
            pipe.hget(self._k_run + wfid, "live")
        out: dict[str, dict[str, Any] | None] = {}
        missing = []
        for wfid, blob in zip(wfids, pipe.execute(), strict=True):
            out[wfid] = None if blob is None else _loads(blob)
            if blob is None:
                missing.append(wfid)
        for wfid in missing:
            loaded = self.load_run(wfid)
            if loaded is not None:
                out[wfid] = transition(loaded[0])[0]
        return out

    def delete_run(self, wfid: str) -> None:
        self._delete(keys=[self._k_run + wfid], args=[self.prefix, wfid])

    def _list_runs(
        self, status: str | None, name: str | None, offset: int, limit: int
    ) -> list[RunSummary]:
        keys = []
        if status is not None:
            keys.append(self._k_status + status)
        if name is not None:
            keys.append(self._k_name + name)
        flat = call_readonly(self._list, keys or [self._k_runs], [self._k_run, offset, limit])
        return [
            RunSummary(_str(flat[i]), _str(flat[i + 1]), _str(flat[i + 2]), float(flat[i + 3]))
            for i in range(0, len(flat), 4)
        ]

    def count_runs(self) -> dict[str, int]:
        pipe = self._redis.pipeline(transaction=False)
        for status in RUN_STATES:
            pipe.zcard(self._k_status + status)
        return dict(zip(RUN_STATES, pipe.execute(), strict=True))

    def _list_errors(self, offset: int, limit: int) -> list[dict[str, Any]]:
        # every run in the index has at least one error, so the first
        # offset + limit runs hold the page
        wfids = self._redis.zrevrange(self._k_errors, 0, offset + limit - 1)
        if not wfids:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for wfid in wfids:
            pipe.hget(self._k_run + _str(wfid), "errors")
        out: list[dict[str, Any]] = []
        for wfid, blob in zip(wfids, pipe.execute(), strict=True):
            if blob is None:  # the run cleared its errors in between
                continue
            wfid = _str(wfid)
            for error in _loads(blob):
                error["wfid"] = wfid
                out.append(error)
            if len(out) >= offset + limit:
                break
        return out[offset : offset + limit]

    # -- timers -----------------------------------------------------------
    @contextmanager
    def deferred_timers(self) -> Iterator[None]:
        pipe = getattr(self._deferred, "pipe", None)
        if pipe is not None:
            yield  # nested: the outer block sends them
            return
        pipe = self._deferred.pipe = self._redis.pipeline(transaction=True)
        try:
            yield
        finally:
            self._deferred.pipe = None
            if len(pipe):
                pipe.execute()

    def schedule_timer(self, timer_id: str, due: float, payload: dict[str, Any]) -> None:
        deferred = getattr(self._deferred, "pipe", None)
        pipe = deferred if deferred is not None else self._redis.pipeline(transaction=True)
        pipe.zadd(self._k_timers, {timer_id: due})
        pipe.hset(self._k_payloads, timer_id, _dumps(payload))
        if deferred is None:
            pipe.execute()

    def cancel_timer(self, timer_id: str) -> None:
        deferred = getattr(self._deferred, "pipe", None)
        pipe = deferred if deferred is not None else self._redis.pipeline(transaction=True)
        pipe.zrem(self._k_timers, timer_id)
        pipe.hdel(self._k_payloads, timer_id)
        if deferred is None:
            pipe.execute()

    def claim_due_timers(self, now: float, limit: int = 100) -> list[tuple[str, dict[str, Any]]]:
        if limit <= 0:
            return []
        flat = self._take(
            keys=[self._k_timers, self._k_payloads], args=[repr(float(now)), "", limit]
        )
        return [
            (_str(flat[i]), {} if flat[i + 1] is None else _loads(flat[i + 1]))
            for i in range(0, len(flat), 2)
        ]

    def lease_due_timers(
        self, now: float, lease: float, limit: int = 100
    ) -> list[tuple[str, float, dict[str, Any]]]:
        if limit <= 0:
            return []
        due = float(now) + float(lease)
        flat = self._take(
            keys=[self._k_timers, self._k_payloads], args=[repr(float(now)), repr(due), limit]
        )
        return [
            (_str(flat[i]), due, {} if flat[i + 1] is None else _loads(flat[i + 1]))
            for i in range(0, len(flat), 2)
        ]

    def ack_timer(self, timer_id: str, leased_due: float) -> bool:
        return bool(
            self._ack(
                keys=[self._k_timers, self._k_payloads], args=[timer_id, repr(float(leased_due))]
            )
        )

    def reschedule_timer(self, timer_id: str, due: float) -> bool:
        pipe = self._redis.pipeline(transaction=True)
        pipe.zadd(self._k_timers, {timer_id: float(due)}, xx=True)
        pipe.zscore(self._k_timers, timer_id)
        return pipe.execute()[1] is not None

    def next_timer_due(self) -> float | None:
        first = self._redis.zrange(self._k_timers, 0, 0, withscores=True)
        return first[0][1] if first else None

    def timers(self, wfid: str | None = None) -> list[tuple[str, float, dict[str, Any]]]:
        pipe = self._redis.pipeline(transaction=True)
        pipe.zrange(self._k_timers, 0, -1, withscores=True)
        pipe.hgetall(self._k_payloads)
        entries, payloads = pipe.execute()
        out = []
        for timer_id, due in entries:
            blob = payloads.get(timer_id)
            payload = {} if blob is None else _loads(blob)
            if wfid is None or payload.get("wfid") == wfid:
                out.append((_str(timer_id), due, payload))
        return out

    # -- participant registrations ---------------------------------------
    def register_participant(self, registration: Registration, position: int | None = None) -> None:
        blob = _dumps(
            {
                "pattern": registration.pattern,
                "queue": registration.queue,
                "regex": registration.regex,
                "options": registration.options,
            }
        )
        self._register(
            keys=[self._k_parts, self._k_regs],
            args=[registration.pattern, blob, "" if position is None else int(position)],
        )

    def unregister_participant(self, pattern: str) -> bool:
        pipe = self._redis.pipeline(transaction=True)
        pipe.lrem(self._k_parts, 0, pattern)
        pipe.hdel(self._k_regs, pattern)
        return pipe.execute()[1] == 1

    def participants(self) -> list[Registration]:
        pipe = self._redis.pipeline(transaction=True)
        pipe.lrange(self._k_parts, 0, -1)
        pipe.hgetall(self._k_regs)
        order, regs = pipe.execute()
        out = []
        for pattern in order:
            blob = regs.get(pattern)
            if blob is not None:
                d = _loads(blob)
                out.append(Registration(d["pattern"], d["queue"], d["regex"], d["options"]))
        return out

    # -- listeners --------------------------------------------------------
    def add_listener(self, listener_id: str, spec: dict[str, Any]) -> None:
        p = self._redis.pipeline(transaction=True)
        p.hset(self._k_listeners, listener_id, _dumps(spec))
        p.incr(self._k_listeners + ":v")
        p.execute()

    def remove_listener(self, listener_id: str) -> bool:
        p = self._redis.pipeline(transaction=True)
        p.hdel(self._k_listeners, listener_id)
        p.incr(self._k_listeners + ":v")
        return p.execute()[0] == 1

    def listeners_version(self) -> int:
        return int(self._redis.get(self._k_listeners + ":v") or 0)

    def load_run_and_listeners_version(self, wfid: str) -> tuple[dict[str, Any], int, int] | None:
        p = self._redis.pipeline(transaction=False)
        p.hmget(self._k_run + wfid, "state", "v")
        p.get(self._k_listeners + ":v")
        (state, version), lv = p.execute()
        if state is None:
            return None
        return _loads(state), int(version), int(lv or 0)

    def load_runs(
        self, wfids: list[str]
    ) -> tuple[dict[str, tuple[dict[str, Any], int] | None], int]:
        p = self._redis.pipeline(transaction=False)
        for wfid in wfids:
            p.hmget(self._k_run + wfid, "state", "v")
        p.get(self._k_listeners + ":v")
        *runs, lv = p.execute()
        out: dict[str, tuple[dict[str, Any], int] | None] = {}
        for wfid, (state, version) in zip(wfids, runs, strict=True):
            out[wfid] = None if state is None else (_loads(state), int(version))
        return out, int(lv or 0)

    def save_runs(self, saves: list[tuple[dict[str, Any], int]]) -> list[int]:
        if len(saves) == 1:
            return super().save_runs(saves)
        p = self._redis.pipeline(transaction=False)
        for state, version in saves:
            keys, args = self._save_args(state, version)
            self._save(keys=keys, args=args, client=p)
        if self.wait_replicas:
            return [max(0, int(v)) for v in self._waited(p, [s["wfid"] for s, _ in saves])]
        return [max(0, int(v)) for v in p.execute()]

    def save_runs_written(
        self, saves: list[tuple[dict[str, Any], int, str | None]]
    ) -> list[Written | None]:
        if len(saves) == 1:
            return super().save_runs_written(saves)
        p = self._redis.pipeline(transaction=False)
        sent = []
        for state, version, last_write in saves:
            keys, args = self._save_args(state, version)
            extra = [last_write or "", self._k_listeners + ":v"]
            self._save(keys=keys, args=[*args, *extra], client=p)
            sent.append(args)
        out: list[Written | None] = []
        for args, got in zip(sent, p.execute(), strict=True):
            wfid, data, token = args[1], args[3], args[11]
            if isinstance(got, list):
                out.append(Written(int(got[0]), token, data, int(got[1])))
            elif int(got) == 0 and self._own_write(wfid, token):
                # sent again after its reply was lost: done the first time
                out.append(Written(int(args[2]) + 1, token, data, self.listeners_version()))
            else:
                out.append(None)
        return out

    def listeners(self) -> list[tuple[str, dict[str, Any]]]:
        return [
            (_str(lid), _loads(blob))
            for lid, blob in self._redis.hgetall(self._k_listeners).items()
        ]

    # -- mutexes ----------------------------------------------------------
    def _mutex_keys(self, name: str) -> list[str]:
        key = self._k_mutex + name
        return [key, key + ":q"]

    def acquire_mutex(self, name: str, holder: str) -> bool:
        return self._acquire(keys=self._mutex_keys(name), args=[holder]) == 1

    def release_mutex(self, name: str, holder: str) -> str | None:
        nxt = self._release(keys=self._mutex_keys(name), args=[holder])
        return None if nxt is None else _str(nxt)

    def mutex(self, name: str) -> tuple[str | None, list[str]]:
        key, queue = self._mutex_keys(name)
        pipe = self._redis.pipeline(transaction=True)
        pipe.get(key)
        pipe.lrange(queue, 0, -1)
        holder, waiters = pipe.execute()
        return (None if holder is None else _str(holder)), [_str(w) for w in waiters]

    # -- lifecycle --------------------------------------------------------
    # -- engine workers ---------------------------------------------------
    def engine_heartbeat(self, engine_id: str, ttl: float, info: dict[str, Any]) -> None:
        import time

        pipe = self._redis.pipeline(transaction=True)
        pipe.set(
            self._k_engine + engine_id,
            _dumps({**info, "id": engine_id}),
            px=max(1, int(ttl * 1000)),
        )
        pipe.zadd(self._k_engines, {engine_id: time.time()})
        pipe.execute()

    def engine_alive(self, engine_id: str) -> bool:
        return bool(self._redis.exists(self._k_engine + engine_id))

    def engine_gone(self, engine_id: str) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._k_engine + engine_id)
        pipe.zrem(self._k_engines, engine_id)
        pipe.execute()

    def engines(self) -> list[dict[str, Any]]:
        ids = [_str(x) for x in self._redis.zrange(self._k_engines, 0, -1)]
        if not ids:
            return []
        blobs = self._redis.mget([self._k_engine + i for i in ids])
        gone = [i for i, b in zip(ids, blobs, strict=True) if b is None]
        if gone:
            # housekeeping the workers do too: a store user that may only
            # read (the web UI's, engine.store.acl) leaves it to them
            with contextlib.suppress(redis.exceptions.NoPermissionError):
                self._redis.zrem(self._k_engines, *gone)
        return [_loads(b) for b in blobs if b is not None]

    def close(self) -> None:
        if self._owned:
            self._redis.close()
            self._redis.connection_pool.disconnect()

    # -- maintenance ------------------------------------------------------
    def scan_keys(self) -> Iterable[str]:
        """Every key under this store's prefix (SCAN; for tools and tests)."""
        pattern = _glob_escape(self.prefix) + "*"
        for key in self._redis.scan_iter(match=pattern, count=1000):
            yield _str(key)


def _glob_escape(text: str) -> str:
    """Escape the glob characters of SCAN MATCH."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
