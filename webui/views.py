"""What the pages and the JSON API show, as plain data (one function per
view; ``blueprints.pages`` renders it, ``blueprints.api`` returns it)."""

from __future__ import annotations

import contextlib
import re
import time
from collections import OrderedDict
from typing import Any

from engine.core import runstate, states
from engine.engine import UnknownRun
from webui.access import Refused
from webui.services import Services
from webui.users import User

__all__ = [
    "error_groups",
    "participants_view",
    "run_detail",
    "run_graph",
    "run_timeline",
    "runs_page",
    "trace_graph",
    "trace_search",
]

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def _int(args: Any, name: str, default: int, lo: int = 0, hi: int = 10_000) -> int:
    raw = args.get(name)
    if raw in (None, ""):
        return default
    try:
        return max(lo, min(hi, int(raw)))
    except ValueError:
        raise Refused(f"{name}={raw!r}: not a number", 400) from None


def run_filters(args: Any) -> dict[str, Any]:
    """The run list's filters from query arguments: ``status``, ``name``,
    ``project``, ``field`` (repeatable ``key=value``), ``mine``."""
    status = args.get("status") or None
    if status is not None and status not in states.RUN_STATES:
        raise Refused(f"status={status!r}: one of {', '.join(states.RUN_STATES)}", 400)
    fields: dict[str, str] = {}
    if args.get("project"):
        fields["project"] = args["project"]
    for pair in args.getlist("field") if hasattr(args, "getlist") else []:
        key, sep, value = pair.partition("=")
        if pair and not sep:
            raise Refused(f"field={pair!r}: give key=value", 400)
        if key.strip():
            fields[key.strip()] = value.strip()
    return {"status": status, "name": args.get("name") or None, "fields": fields}


def runs_page(svc: Services, args: Any, user: User | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    f = run_filters(args)
    if args.get("mine") and user is not None and not user.anonymous:
        f["fields"]["launched_by"] = user.name
    limit = _int(args, "limit", svc.web.page_size, 1, 500)
    offset = _int(args, "offset", 0, 0, 10_000_000)
    page = svc.index.page(
        svc.store,
        status=f["status"],
        name=f["name"],
        filters=f["fields"],
        offset=offset,
        limit=limit,
    )
    owners = svc.index.owners([r.wfid for r in page.runs])
    return {
        "runs": [
            {
                "wfid": r.wfid,
                "name": r.name,
                "status": r.status,
                "launched_at": r.launched_at,
                "owner": owners.get(r.wfid),
            }
            for r in page.runs
        ],
        "total": page.total,
        "counts": page.counts,
        "offset": offset,
        "limit": limit,
        "filters": f,
        "partial": page.partial,
        "notes": page.notes,
        "server_ms": round((time.perf_counter() - t0) * 1000, 2),
    }


def _state(svc: Services, wfid: str) -> dict[str, Any]:
    try:
        return svc.engine.state(wfid)
    except UnknownRun:
        raise Refused(f"no run {wfid}", 404) from None


def run_detail(svc: Services, wfid: str) -> dict[str, Any]:
    try:
        info = svc.engine.run(wfid)
    except UnknownRun:
        raise Refused(f"no run {wfid}", 404) from None
    st = _state(svc, wfid)
    full_errors = {e["id"]: e for e in runstate.errors(st)}
    errors = []
    for e in info.errors:
        errors.append({**e, "fields": full_errors.get(e["id"], {}).get("fields")})
    return {
        **info.as_dict(definition=True),
        "errors": errors,
        "owner": svc.index.owner(wfid),
        "live": info.status not in states.ENDED_RUN_STATES,
    }


def run_timeline(svc: Services, wfid: str) -> dict[str, Any]:
    from engine.trace import activity_id
    from webui.graphs import timeline

    try:
        events = svc.graph.chain(activity_id(wfid, None, "triggered"))
    except Exception as exc:  # the graph is optional: say so, do not fail the page
        return {
            "run": None,
            "steps": [],
            "events": 0,
            "settled": True,
            "error": f"traceability graph: {exc}",
        }
    return timeline(events)


def run_graph(svc: Services, wfid: str) -> dict[str, Any]:
    from webui.graphs import definition_graph

    st = _state(svc, wfid)
    d = svc.engine.definition(runstate.definition_digest(st))
    marks: dict[str, str] = {}
    for step in run_timeline(svc, wfid)["steps"]:
        if step["expid"] and step["state"] == "finished":
            marks[step["expid"]] = (
                "failed" if step["outcome"] in ("FAILED", "UNSUCCESSFUL", "TIMED_OUT") else "done"
            )
    for x in runstate.positions(st):
        marks[x.node_id] = x.state
    status = runstate.status(st)
    if status == states.FINISHED:
        marks["end"] = "done"
    graph = definition_graph(d, marks)
    graph["status"] = status
    return graph


# -- errors ---------------------------------------------------------------------------


def error_groups(svc: Services, limit: int = 2000) -> list[dict[str, Any]]:
    """Unresolved errors across runs, grouped by participant and message."""
    groups: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
    for e in svc.engine.list_errors(0, limit):
        who = e.get("participant") or e.get("name") or e.get("expid") or "?"
        message = f"{e.get('class')}: {e.get('message')}"
        g = groups.setdefault(
            (who, message), {"participant": who, "message": message, "count": 0, "errors": []}
        )
        g["count"] += 1
        g["errors"].append(
            {"wfid": e["wfid"], "error_id": e["id"], "expid": e.get("expid"), "at": e.get("at")}
        )
    return sorted(groups.values(), key=lambda g: -g["count"])


# -- participants ---------------------------------------------------------------------


def participants_view(svc: Services, with_skynet: bool = True) -> dict[str, Any]:
    from webui.metrics import queue_depths

    regs = [
        {"pattern": r.pattern, "queue": r.queue, "regex": r.regex}
        for r in svc.engine.registrations()
    ]
    depths = queue_depths(svc)
    return {
        "registrations": regs,
        "queues": depths,
        "engines": svc.store.engines(),
        "skynet": svc.skynet.hosts() if with_skynet else [],
        "skynet_configured": bool(svc.web.skynet_hosts),
    }


# -- traceability ---------------------------------------------------------------------


def trace_search(svc: Services, q: str) -> list[dict[str, Any]]:
    """Events by id, commit sha, artifact identity or baseline / confidence
    level name."""
    from engine.trace import find_source_change

    q = q.strip()
    if not q:
        return []
    g = svc.graph
    found: dict[str, dict[str, Any]] = {}
    if _UUID.match(q):
        ev = g.get(q)
        if ev is not None:
            found[q] = ev
    for ev in find_source_change(g, q):
        found[ev["meta"]["id"]] = ev
    for etype, path in (
        ("EiffelArtifactCreatedEvent", "identity"),
        ("EiffelCompositionDefinedEvent", "name"),
        ("EiffelConfidenceLevelModifiedEvent", "name"),
    ):
        with contextlib.suppress(KeyError):
            for ev in g.find(etype, path, q, 200):
                found[ev["meta"]["id"]] = ev
    return sorted(found.values(), key=lambda e: e["meta"]["time"])


def trace_graph(svc: Services, eid: str, args: Any) -> dict[str, Any]:
    from webui.graphs import trace_elements

    g = svc.graph
    center = g.get(eid)
    if center is None:
        raise Refused(f"no event {eid}", 404)
    link_types = [x for x in (args.get("linkTypes") or "").split(",") if x] or None
    levels = _int(args, "levels", 4, 1, 20)
    limit = _int(args, "limit", 200, 1, 2000)
    ups = g.upstream(eid, link_types, levels, limit)
    downs = g.downstream(eid, link_types, levels, limit)
    out = trace_elements(center, ups, downs)
    out["event"] = center
    return out


def leadtime_series(
    svc: Services, level: str, since_s: int, value: str = "SUCCESS"
) -> dict[str, Any]:
    """Lead time per change made in the window, for a chart over time."""
    from engine.trace import metrics

    now_ms = int(time.time() * 1000)
    result = metrics.lead_times(svc.graph, now_ms - since_s * 1000, now_ms, level, value)
    ids = list(result["per_change"])
    points = []
    for ev in svc.graph.get_many(ids):
        if ev is None:
            continue
        seconds = result["per_change"][ev["meta"]["id"]]
        points.append(
            {"change": ev["meta"]["id"], "time": ev["meta"]["time"] / 1000, "seconds": seconds}
        )
    points.sort(key=lambda p: p["time"])
    return {
        "level": level,
        "value": value,
        "points": points,
        **{k: result[k] for k in ("count", "pending", "p50", "p90", "p99")},
    }
