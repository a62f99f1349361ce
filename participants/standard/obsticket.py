"""obsticket: a lock on an OBS project, held by one run at a time.

BOSS_check_SR takes the lock of the request's target project before its
checks and releases it at the end, so two requests for one project are never
decided at once. The lock lives in the run store's Redis (the ``[boss]``
section of the participant's INI names it, as for every BOSS process), under
``<key_prefix>obsticket:<project>``; its value names the run holding it.
Any number of instances may serve ``obsticket``: the lock is one Redis key
taken with ``SET NX`` and released with a compare-and-delete.

Params
------

| param | meaning |
|---|---|
| ``action`` | ``get``, ``require``, ``try`` or ``release`` |
| ``lock_project`` (or ``project``) | the project to lock (``${ev.target_project}``) |
| ``wait`` | ``get`` only: the longest wait, seconds (0: for ever); then the step fails |

Semantics (the holder is the run, ``wfid``; a step of the same run may take
a lock it holds again):

* ``get``: take the lock, waiting (polling every ``poll`` seconds) while
  another run holds it. A cancelled step stops waiting and takes nothing.
  Writes ``obsticket: {project, holder: wfid}``; ``result = True``.
* ``try``: take it if it is free, never wait: ``result`` is true when this
  run now holds it, false (with a line in ``msg`` naming the holder) when
  another run does.
* ``require``: the lock must be held by this run already (a guard before a
  step that changes the project): otherwise the step fails, naming the
  holder.
* ``release``: let it go if this run holds it; releasing a lock this run
  does not hold does nothing (a line in ``msg``), so releasing twice (the
  cancel handler and the normal path) is safe.

Waiting is not fair (no queue): when the lock is released, whichever waiting
run polls first takes it. A run killed while it holds a lock keeps it: with
``ttl`` set the lock expires that many seconds after it was taken (keep it
above the longest handling of a request), otherwise release it by hand
(``redis-cli DEL <key_prefix>obsticket:<project>``).

Configuration (``[obsticket]``)
-------------------------------

| key | default | meaning |
|---|---|---|
| ``redis_url`` | the ``[boss]`` run store | where the locks live |
| ``poll`` | 1 | seconds between two attempts of a waiting ``get`` |
| ``wait`` | 0 | default longest wait of ``get`` (0: no limit) |
| ``ttl`` | 0 | seconds after which a lock expires (0: never) |

Example INI::

    [participant]
    name = obsticket
    code = participants.standard.obsticket
    class = ObsTicket

    [boss]
    redis_url = redis://localhost:6379/0

    [obsticket]
    poll = 2
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from participants.handler import LifecycleControl, Participant
from participants.standard.config import Section
from participants.workitem import Workitem

__all__ = ["LockTimeout", "ObsTicket", "ParticipantHandler"]

_RELEASE = """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if cjson.decode(v)['holder'] == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return -1
"""


class LockTimeout(RuntimeError):
    """``get`` waited ``wait`` seconds and the lock was still taken."""


class ObsTicket(Participant):
    client: redis.Redis | None = None
    prefix = "boss:"
    poll = 1.0
    default_wait = 0.0
    ttl = 0

    def handle_lifecycle_control(self, ctrl: LifecycleControl) -> None:
        super().handle_lifecycle_control(ctrl)
        if ctrl.message == "start":
            from engine.config import Config

            cfg = Section(ctrl.config, "obsticket")
            boss = Config.from_parser(ctrl.config) if ctrl.config is not None else Config()
            url = cfg.get("redis_url") or boss.resolved_redis_url()
            self.prefix = boss.key_prefix
            self.poll = cfg.float("poll", 1.0)
            self.default_wait = cfg.float("wait", 0.0)
            self.ttl = cfg.int("ttl", 0)
            self.client = self.connect(url)
        elif ctrl.message in ("stop", "die") and self.client is not None:
            self.client.close()

    @staticmethod
    def connect(url: str) -> redis.Redis:
        if url.startswith("unix://"):
            return redis.Redis(unix_socket_path=url.removeprefix("unix://"))
        from engine.store.connection import client_for

        return client_for(url)[0]

    def key(self, project: str) -> str:
        return f"{self.prefix}obsticket:{project}"

    def holder(self, project: str) -> dict[str, Any] | None:
        assert self.client is not None
        raw = self.client.get(self.key(project))
        return json.loads(raw) if raw else None

    def _take(self, project: str, wfid: str) -> bool:
        assert self.client is not None
        value = json.dumps({"holder": wfid, "at": time.time()})
        if self.client.set(self.key(project), value, nx=True, ex=self.ttl or None):
            return True
        held = self.holder(project)
        return bool(held and held.get("holder") == wfid)

    def handle_wi(self, wi: Workitem) -> None:
        if self.client is None:
            raise RuntimeError("obsticket was not started")
        action = str(wi.params.get("action") or "")
        project = str(wi.params.get("lock_project") or wi.params.get("project") or "")
        if not project:
            raise ValueError("obsticket: no params.lock_project")
        wfid = str(wi.wfid)
        if action == "get":
            wait = float(wi.params.get("wait", self.default_wait) or 0)
            deadline = time.monotonic() + wait if wait > 0 else None
            while not self._take(project, wfid):
                if wi.cancelled:
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    held = self.holder(project) or {}
                    raise LockTimeout(
                        f"obsticket: {project} still held by run "
                        f"{held.get('holder')} after {wait:g}s"
                    )
                time.sleep(self.poll)
            wi.fields["obsticket"] = {"project": project, "holder": wfid}
            wi.result = True
        elif action == "try":
            wi.result = self._take(project, wfid)
            if wi.result:
                wi.fields["obsticket"] = {"project": project, "holder": wfid}
            else:
                held = self.holder(project) or {}
                wi.msg.append(f"{project} is locked by run {held.get('holder')}")
        elif action == "require":
            held = self.holder(project)
            if not held or held.get("holder") != wfid:
                raise RuntimeError(
                    f"obsticket: run {wfid} does not hold the lock of {project}"
                    f" (held by {held.get('holder') if held else 'nobody'})"
                )
            wi.result = True
        elif action == "release":
            done = self.client.eval(_RELEASE, 1, self.key(project), wfid)
            if done != 1:
                wi.msg.append(f"obsticket: {project} was not locked by this run")
            wi.fields.pop("obsticket", None)
            wi.result = True
        else:
            raise ValueError(f"obsticket: action {action!r} is not get, try, require or release")


ParticipantHandler = ObsTicket
