"""Step logs over HTTP, for the run page's step panel (``static/steplogs.js``)
and for scripts. Under ``/api`` (registered by ``webui.app``), read-only, so
the access rule is the run page's: anyone who may read pages (anonymous
when ``[web] anonymous`` allows it; ``webui.app``'s gate) may read them.

* ``GET /api/runs/<wfid>/logs?step=EXPID&after=ID&limit=N``: the lines
  after the stream id ``after`` (JSON: ``lines``, ``last_id`` to ask on
  from, ``live``);
* ``GET /api/runs/<wfid>/logs/stream?step=EXPID``: the same as server-sent
  events (``text/event-stream``): an ``event: line`` per line whose
  ``id:`` is its stream id (an ``EventSource`` that reconnects resumes
  after it with ``Last-Event-ID``), a comment every ``HEARTBEAT`` seconds
  of silence, and ``event: end`` once the run has ended (or stopped on an
  error) and its lines are all sent. Each stream holds one server thread,
  blocked in Redis (``XREAD BLOCK``) between lines;
* ``GET /api/runs/<wfid>/logs/steps``: the run's steps for the panel
  (from the timeline, the positions and the logs kept);
* ``GET /api/runs/<wfid>/logs/steps/<expid>``: what is kept of one step
  beside its log (``engine.store.steplogs.step_detail``: input fields
  while it is a position, errors with their tracebacks) and its counts.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify, request

from engine.store.steplogs import (
    StepLogs,
    StepLogsUnavailable,
    run_over,
    step_detail,
    step_logs_for,
)
from webui import views
from webui.access import Refused
from webui.services import Services, services

__all__ = ["HEARTBEAT", "logs"]

logs = Blueprint("logs", __name__)

#: seconds of silence after which a stream sends a comment (proxies and
#: browsers keep an idle connection open)
HEARTBEAT = 15.0
_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


def _steplogs(svc: Services) -> StepLogs:
    config = svc.config
    try:
        return step_logs_for(
            svc.store,
            ttl=config.step_log_ttl,
            max_lines=config.step_log_lines,
            max_bytes=config.step_log_bytes,
        )
    except StepLogsUnavailable as exc:
        raise Refused(str(exc), 501) from None


def _known(svc: Services, steplogs: StepLogs, wfid: str) -> None:
    if svc.store.load_run(wfid) is None and not steplogs.steps(wfid):
        raise Refused(f"no run {wfid}", 404)


def _after(value: str | None) -> str:
    value = (value or "0-0").strip()
    if not _ID.match(value):
        raise Refused(f"after: {value!r} is not a stream id (like 1700000000000-0)", 400)
    return value


@logs.get("/runs/<wfid>/logs")
def lines(wfid: str) -> Any:
    svc = services()
    steplogs = _steplogs(svc)
    _known(svc, steplogs, wfid)
    try:
        limit = max(1, min(5000, int(request.args.get("limit", "1000"))))
    except ValueError:
        raise Refused("limit: not a number", 400) from None
    found, last = steplogs.read(
        wfid,
        step=request.args.get("step") or None,
        after=_after(request.args.get("after")),
        limit=limit,
    )
    return jsonify(
        {
            "wfid": wfid,
            "lines": [x.as_dict() for x in found],
            "last_id": last,
            "live": not run_over(svc.store, wfid),
        }
    )


@logs.get("/runs/<wfid>/logs/stream")
def stream(wfid: str) -> Any:
    svc = services()
    steplogs = _steplogs(svc)
    _known(svc, steplogs, wfid)
    step = request.args.get("step") or None
    after = _after(request.headers.get("Last-Event-ID") or request.args.get("after"))
    store = svc.store

    def events() -> Iterator[str]:
        yield "retry: 2000\n\n"
        quiet_since = time.monotonic()
        for found, _last in steplogs.follow(
            wfid, over=lambda: run_over(store, wfid), step=step, after=after
        ):
            now = time.monotonic()
            if found:
                yield "".join(
                    f"id: {x.id}\nevent: line\ndata: {json.dumps(x.as_dict())}\n\n" for x in found
                )
                quiet_since = now
            elif now - quiet_since >= HEARTBEAT:
                yield ": keep-alive\n\n"
                quiet_since = now
        yield "event: end\ndata: {}\n\n"

    return Response(
        events(),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@logs.get("/runs/<wfid>/logs/steps")
def steps(wfid: str) -> Any:
    svc = services()
    steplogs = _steplogs(svc)
    _known(svc, steplogs, wfid)
    out: dict[str, dict[str, Any]] = {}

    def put(expid: str | None, **info: Any) -> None:
        if not expid:
            return
        row = out.setdefault(
            expid, {"expid": expid, "name": None, "participant": None, "state": None, "lines": 0}
        )
        row.update({k: v for k, v in info.items() if v is not None})

    for s in views.run_timeline(svc, wfid).get("steps", []):
        if not s.get("run"):
            put(
                s.get("expid"),
                name=s.get("name"),
                participant=s.get("participant"),
                state=s.get("state"),
            )
    try:
        positions = svc.engine.positions(wfid)
    except Exception:  # an ended run has none; a deleted one neither
        positions = []
    for p in positions:
        put(p.expid, name=p.name, participant=p.participant, state=p.state)
    for expid, counts in steplogs.steps(wfid).items():
        put(expid, lines=counts["lines"], dropped=counts["dropped"])
    return jsonify(
        {"wfid": wfid, "steps": list(out.values()), "live": not run_over(svc.store, wfid)}
    )


@logs.get("/runs/<wfid>/logs/steps/<expid>")
def step(wfid: str, expid: str) -> Any:
    svc = services()
    steplogs = _steplogs(svc)
    detail = step_detail(svc.store, wfid, expid)
    if detail is None:
        _known(svc, steplogs, wfid)
        detail = {"expid": expid, "status": None, "positions": [], "errors": [], "output": None}
    counts = steplogs.steps(wfid).get(expid, {"lines": 0, "bytes": 0, "dropped": 0})
    return jsonify({"wfid": wfid, **detail, "log": counts})
