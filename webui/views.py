"""What the pages and the JSON API show, as plain data (one function per
view; ``blueprints.pages`` renders it, ``blueprints.api`` returns it)."""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any

from engine.core import runstate, states
from engine.core.outcome import OUTCOMES
from engine.engine import UnknownRun
from engine.trace import activity_id, unshared_event
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
    "trace_site_label",
    "trace_sites",
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
    outcome = (args.get("outcome") or "").strip().lower() or None
    outcome = _OUTCOME_ALIASES.get(outcome, outcome) if outcome else None
    if outcome is not None and outcome not in OUTCOMES:
        raise Refused(f"outcome={outcome!r}: one of {', '.join(OUTCOMES)} (or failed)", 400)
    return {
        "status": status,
        "name": args.get("name") or None,
        "fields": fields,
        "outcome": outcome,
    }


#: what the run list's ``outcome`` filter also accepts
_OUTCOME_ALIASES = {"failed": "failure", "passed": "success", "ok": "success"}


def run_actions(status: str) -> list[str]:
    """The run controls valid in ``status`` (what ``webui.actions`` and the
    engine accept): cancel and kill while the run is live, pause only
    while it runs, resume only while it is paused (a run in error waits
    for a replay, a cancel or a kill: the engine ignores a resume of a run
    that is not paused)."""
    if status in states.ENDED_RUN_STATES:
        return []
    out = ["cancel", "kill"]
    if status == states.RUNNING:
        out.append("pause")
    if status == states.PAUSED:
        out.append("resume")
    return out


def _row(summary: dict[str, Any] | None) -> dict[str, Any]:
    """What the run list shows of a run beyond its index entry."""
    if not summary:
        return {"outcome": None, "ended_at": None, "positions": []}
    return {
        "outcome": summary.get("outcome"),
        "ended_at": summary.get("ended_at"),
        "positions": [
            {"expid": p.get("expid"), "participant": p.get("participant"), "state": p.get("state")}
            for p in summary.get("positions") or ()
        ],
    }


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
        outcome=f["outcome"],
    )
    wfids = [r.wfid for r in page.runs]
    owners = svc.index.owners(wfids)
    summaries = svc.store.run_summaries(wfids) if hasattr(svc.store, "run_summaries") else {}
    return {
        "runs": [
            {
                "wfid": r.wfid,
                "name": r.name,
                "status": r.status,
                "launched_at": r.launched_at,
                "owner": owners.get(r.wfid),
                **_row(summaries.get(r.wfid)),
            }
            for r in page.runs
        ],
        "now": time.time(),
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
        "actions": run_actions(info.status),
        # the trace event page of the run's root ActivityTriggered
        "trace_event": activity_id(wfid, None, "triggered"),
    }


def run_timeline(svc: Services, wfid: str, now: float | None = None) -> dict[str, Any]:
    """The run's steps from its trace events, with what its state knows
    (positions, errors: the events may be late or missing) and the Gantt
    chart's geometry (``gantt``)."""
    from engine.trace import activity_id
    from webui.timeline import add_run_state, gantt, timeline

    try:
        events = svc.graph.chain(activity_id(wfid, None, "triggered"))
        tl = timeline(events)
    except Exception as exc:  # the graph is optional: say so, do not fail the page
        tl = timeline([])
        tl["settled"] = True
        tl["error"] = f"traceability graph: {exc}"
    with contextlib.suppress(Refused):
        st = _state(svc, wfid)
        d = _definition_or_none(svc, st)
        positions = [
            {
                "eid": x.eid,
                "expid": x.node_id,
                "path": _call_path(st, d, x),
                "name": x.describe(d)[1] if d is not None else x.participant,
                "state": x.state,
                "since": x.since,
            }
            for x in runstate.positions(st)
        ]
        add_run_state(
            tl,
            launched_at=st.get("launched_at"),
            status=runstate.status(st),
            positions=positions,
            errors=list(runstate.errors(st)),
        )
    tl["gantt"] = gantt(tl, time.time() if now is None else now)
    return tl


def _definition_or_none(svc: Services, st: dict[str, Any]) -> Any:
    try:
        return svc.engine.definition(runstate.definition_digest(st))
    except Exception:
        return None


def _call_path(st: dict[str, Any], d: Any, x: runstate.Expression) -> str:
    """The position's id in ``definition_graph``: its node id behind the
    node ids of the subprocess calls it runs in."""
    from webui.graphs import SEP

    base = x.node_id.partition("#")[0].partition("@")[0]
    if d is None:
        return base
    calls: list[str] = []
    parent = x.parent
    while parent is not None and len(calls) < 50:
        ex = runstate.expression(st, parent)
        if ex is None:
            break
        try:
            node = d.node(ex.node_id)
        except KeyError:
            node = None
        if (
            node is not None
            and node.kind in ("subprocess", "participant")
            and node.opts.get("ref") in d.subprocesses
        ):
            calls.append(node.id)
        parent = ex.parent
    return SEP.join([*reversed(calls), base])


def run_graph(svc: Services, wfid: str) -> dict[str, Any]:
    from webui.graphs import definition_graph, graph_marks

    st = _state(svc, wfid)
    d = svc.engine.definition(runstate.definition_digest(st))
    tl = run_timeline(svc, wfid)
    finished = [
        s
        for s in tl["steps"]
        if s["expid"] and s["state"] == "finished" and s.get("source") != "state"
    ]
    marks = graph_marks(d, finished, [])
    for x in runstate.positions(st):
        marks[_call_path(st, d, x)] = x.state
    status = runstate.status(st)
    if status == states.FINISHED:
        marks["end"] = "done"
    graph = definition_graph(d, marks)
    graph["status"] = status
    graph["positions"] = [_call_path(st, d, x) for x in runstate.positions(st)]
    return graph


# -- errors ---------------------------------------------------------------------------


def error_groups(svc: Services, limit: int = 2000) -> list[dict[str, Any]]:
    """Unresolved errors across runs, grouped by cause: the error class and
    the normalised message (``webui.errorgroups``), with the participants
    and processes involved and a preview of the traceback."""
    from webui.errorgroups import group_errors

    names: dict[str, str | None] = {}

    def process_of(wfid: str) -> str | None:
        if wfid not in names:
            if len(names) >= 500:  # enough to name the processes involved
                return None
            loaded = svc.store.load_run(wfid)
            names[wfid] = (str(loaded[0].get("name") or "") or None) if loaded else None
        return names[wfid]

    groups = group_errors(svc.engine.list_errors(0, limit), process_of=process_of)
    for g in groups:
        g["participant"] = ", ".join(g["participants"])
    return groups


# -- participants ---------------------------------------------------------------------


def participants_view(svc: Services, with_skynet: bool = True) -> dict[str, Any]:
    """Registrations, queue depths, the participant instances serving each
    queue (``webui.deadletters.instances``: consumers on RabbitMQ, control
    bindings on the embedded broker), engine workers and SkyNET pools."""
    from webui.deadletters import instances
    from webui.metrics import queue_depths

    regs = [
        {"pattern": r.pattern, "queue": r.queue, "regex": r.regex}
        for r in svc.engine.registrations()
    ]
    depths = queue_depths(svc)
    served = instances(svc, [r["queue"] for r in regs])
    return {
        "registrations": regs,
        "queues": depths,
        "instances": served,
        "engine_queue": svc.config.engine_queue,
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
    if not found and _UUID.match(q):
        # an event a held one links to but this site never received: a
        # stand-in, so that the search leads to its placeholder page
        info = unshared_event(g, q)
        if info is not None:
            linkers = [e for e in g.get_many([x["source"] for x in info["linked_from"]]) if e]
            found[q] = {
                "meta": {
                    "id": q,
                    "type": f"not shared (site {trace_site_label(svc, info['domain'])})",
                    "time": min((e["meta"]["time"] for e in linkers), default=0),
                },
                "data": {},
                "links": [],
            }
    return sorted(found.values(), key=lambda e: e["meta"]["time"])


def trace_sites(svc: Services) -> tuple[str, dict[str, str]]:
    """This site's name (its Eiffel ``domainId``) and its peers' names by
    their domains (``[federation]``; none when not federated)."""
    from engine.federation import load_federation

    try:
        settings = load_federation(svc.config)
    except Exception:  # a broken [federation] section is the bridge's to report
        return svc.config.eiffel_domain, {}
    peers = {(p.domain or p.name): p.name for p in settings.peer_settings}
    return settings.site_name(svc.config), peers


def trace_site_label(svc: Services, domain: str | None) -> str:
    """The site as shown: "this site", the peer's name, the domain, or "unknown"."""
    if not domain:
        return "unknown"
    here, peers = trace_sites(svc)
    return "this site" if domain == here else peers.get(domain, domain)


def trace_graph(svc: Services, eid: str, args: Any) -> dict[str, Any]:
    """The trace graph around ``eid``: its events with their sites, and the
    events they link to that this site never received as placeholders.
    ``eid`` may be such a placeholder: then its centre, with what links to
    it."""
    from engine.trace import Hit
    from webui.graphs import trace_elements

    g = svc.graph
    here, peers = trace_sites(svc)
    center = g.get(eid)
    link_types = [x for x in (args.get("linkTypes") or "").split(",") if x] or None
    levels = _int(args, "levels", 4, 1, 20)
    limit = _int(args, "limit", 200, 1, 2000)
    if center is None:
        info = unshared_event(g, eid)
        if info is None:
            raise Refused(f"no event {eid}", 404)
        sources = list(dict.fromkeys(x["source"] for x in info["linked_from"]))
        downs = [Hit(e, 1, "") for e in g.get_many(sources) if e is not None]
        out = trace_elements(
            None,
            [],
            downs,
            placeholders=[{"id": eid, "domain": info["domain"]}],
            here=here,
            peers=peers,
            center_id=eid,
        )
        out["event"] = None
        out["not_shared"] = info
        return out
    ups = g.upstream(eid, link_types, levels, limit)
    downs = g.downstream(eid, link_types, levels, limit)
    out = trace_elements(
        center,
        ups,
        downs,
        placeholders=_unreceived(g, [center, *(h.event for h in [*ups, *downs])], link_types),
        here=here,
        peers=peers,
    )
    out["event"] = center
    return out


def _unreceived(
    g: Any, events: list[dict[str, Any]], link_types: list[str] | None
) -> list[dict[str, Any]]:
    """The link targets of ``events`` this graph never received
    (``engine.trace.unreceived``)."""
    from engine.trace import unreceived

    return unreceived(g, events, link_types)


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
