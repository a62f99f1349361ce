"""``GET /api/stream``: run and step transitions as server-sent events
(``webui.live``), and the template filters of the live pages.

Query: ``wfid`` (only that run's transitions: a run page). Resumes after
the ``Last-Event-ID`` header (or ``?last_id=``). Reads follow the run
list's access rule (the app's gate: anonymous when allowed).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, request

from webui.live import Hub, parse_id
from webui.services import services

__all__ = ["ago", "hub", "iso", "literal", "live", "stream_position"]

live = Blueprint("live", __name__)

_hub_lock = threading.Lock()


def hub() -> Hub:
    """This app's hub (made on first use)."""
    ext = current_app.extensions
    with _hub_lock:
        found = ext.get("boss_live")
        if found is None:
            svc = services()
            key = getattr(svc.store, "transitions_key", f"{svc.config.key_prefix}transitions")
            found = ext["boss_live"] = Hub(svc.client, key)
    return found


def stream_position() -> str:
    """The stream's newest id now: a page rendered from the store's state
    as it is now asks the stream for what comes after it (``?last_id=``),
    so a transition between the render and the connection is not lost."""
    return hub().last_id()


@live.get("/api/stream")
def stream() -> Response:
    last = request.headers.get("Last-Event-ID") or request.args.get("last_id")
    if parse_id(last) is None:
        last = None
    wfid = request.args.get("wfid") or None
    return Response(
        hub().stream(last, wfid),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# -- template filters of the live pages ----------------------------------------------


def _epoch(t: Any) -> float | None:
    if t in (None, ""):
        return None
    try:
        return float(t)
    except (TypeError, ValueError):
        try:
            return datetime.fromisoformat(str(t).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None


@live.app_template_filter("iso")
def iso(t: Any) -> str:
    """ISO 8601 UTC, for ``<time datetime=...>``."""
    e = _epoch(t)
    if e is None:
        return ""
    return datetime.fromtimestamp(e, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@live.app_template_filter("ago")
def ago(t: Any, now: float | None = None) -> str:
    """``3 min ago``: how long ago (boss.js keeps it fresh)."""
    e = _epoch(t)
    if e is None:
        return "-"
    s = max(0.0, (now if now is not None else time.time()) - e)
    if s < 45:
        return "just now"
    if s < 5400:
        return f"{round(s / 60)} min ago"
    if s < 129600:
        return f"{round(s / 3600)} h ago"
    return f"{round(s / 86400)} d ago"


@live.app_template_filter("literal")
def literal(value: Any) -> str:
    """A field value as JSON text with its real characters (``<>&'`` as
    they are: the template escapes them as HTML, where ``tojson`` would
    show ``\\u003c``): strings quoted, numbers, booleans and null bare."""
    return json.dumps(value, ensure_ascii=False, default=str)
